//! The kernel side: a [`Backend`] per mode, and the thread that owns it.
//!
//! One thread applies everything, in order: the startup snapshot (one atomic rebuild), then
//! batches of changes. Batches that queue up while a previous one is being applied are merged
//! and applied as one, so a burst of decisions costs one `nft`/`ipset` process, not one per
//! decision.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::cmd::FwError;
use crate::state::{Change, Edits, State, now_ms};

/// Packets and bytes the kernel counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counters {
    /// (origin, ip_type, packets, bytes) dropped (or rejected) by that origin's rules.
    pub(crate) dropped: Vec<(String, &'static str, u64, u64)>,
    /// (ip_type, packets, bytes) seen by the bouncer's chains.
    pub(crate) processed: Vec<(&'static str, u64, u64)>,
}

/// A way of enforcing the state in the kernel.
pub(crate) trait Backend: Send {
    /// Replaces whatever this bouncer left in the kernel (a previous run, a crash) with `state`,
    /// atomically where the tools allow it.
    fn rebuild(&mut self, state: &State, now: u64) -> Result<(), FwError>;
    /// Applies what one batch changed (`state` already holds the result).
    fn apply(&mut self, state: &State, edits: &Edits, now: u64) -> Result<(), FwError>;
    /// Periodic upkeep (re-arming timeouts longer than the kernel allows).
    fn refresh(&mut self, _state: &State, _now: u64) -> Result<(), FwError> {
        Ok(())
    }
    /// Reads the rule counters.
    fn counters(&mut self, state: &State) -> Result<Counters, FwError>;
    /// Removes the bouncer's tables, chains, rules and sets.
    fn remove(&mut self) -> Result<(), FwError>;
}

/// Requests to the firewall thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The full decision list (startup, or a resync).
    Snapshot(State),
    /// Changes, in LAPI order, deletions of each answer before its additions.
    Changes(Vec<Change>),
    /// Current kernel counters (`None` when they cannot be read).
    Counters(oneshot::Sender<Option<Counters>>),
    /// Stop after what is queued before this.
    Shutdown,
}

/// What the thread publishes for metrics and logs.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// (origin, ip_type, count) of bans held.
    pub(crate) held: Vec<(String, &'static str, usize)>,
    /// Whether the first snapshot is in the kernel.
    pub(crate) loaded: bool,
}

const UPKEEP: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(10);

/// Runs until the channel closes; then removes the bouncer's rules if `cleanup`.
pub(crate) fn run(
    mut rx: mpsc::Receiver<Msg>,
    mut backend: Box<dyn Backend>,
    published: Arc<Mutex<Published>>,
    rt: tokio::runtime::Handle,
    cleanup: bool,
) {
    let mut state: Option<State> = None;
    let mut broken = false;
    let mut next_upkeep = Instant::now() + UPKEEP;
    let mut stop = false;
    while !stop {
        let wait = if broken {
            RETRY
        } else {
            next_upkeep.saturating_duration_since(Instant::now())
        };
        let msg = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
        match msg {
            Ok(None) | Ok(Some(Msg::Shutdown)) => break,
            Ok(Some(Msg::Snapshot(s))) => {
                let started = Instant::now();
                let n = s.len();
                match backend.rebuild(&s, now_ms()) {
                    Ok(()) => {
                        broken = false;
                        tracing::info!(
                            decisions = n,
                            ms = started.elapsed().as_millis() as u64,
                            "decision list loaded into the kernel"
                        );
                    }
                    Err(e) => {
                        broken = true;
                        tracing::error!(error = %e, "cannot load the decision list into the kernel; retrying");
                    }
                }
                state = Some(s);
            }
            Ok(Some(Msg::Changes(mut changes))) => {
                // Merge whatever else is already waiting into this batch.
                let mut merged = 1;
                while let Ok(next) = rx.try_recv() {
                    match next {
                        Msg::Changes(more) => {
                            changes.extend(more);
                            merged += 1;
                        }
                        Msg::Counters(reply) => {
                            let c = state.as_ref().and_then(|s| backend.counters(s).ok());
                            let _ = reply.send(c);
                        }
                        Msg::Snapshot(s) => {
                            // A newer full list supersedes the pending changes.
                            changes.clear();
                            state = Some(s);
                            broken = true;
                        }
                        Msg::Shutdown => {
                            stop = true;
                            break;
                        }
                    }
                }
                let Some(s) = state.as_mut() else {
                    continue;
                };
                let started = Instant::now();
                let edits = s.apply(&changes);
                if broken || edits.is_empty() {
                    continue;
                }
                match backend.apply(s, &edits, now_ms()) {
                    Ok(()) => tracing::debug!(
                        changes = changes.len(),
                        batches = merged,
                        ms = started.elapsed().as_millis() as u64,
                        "applied"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "applying changes failed; rebuilding from the full list");
                        broken = true;
                    }
                }
            }
            Ok(Some(Msg::Counters(reply))) => {
                let c = state.as_ref().and_then(|s| match backend.counters(s) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read counters");
                        None
                    }
                });
                let _ = reply.send(c);
            }
            Err(_) => {}
        }
        let now = now_ms();
        if let Some(s) = state.as_mut() {
            if broken {
                match backend.rebuild(s, now) {
                    Ok(()) => {
                        broken = false;
                        tracing::info!(decisions = s.len(), "kernel sets rebuilt");
                    }
                    Err(e) => tracing::error!(error = %e, "rebuilding the kernel sets failed"),
                }
            }
            if Instant::now() >= next_upkeep {
                s.prune(now);
                if let Err(e) = backend.refresh(s, now) {
                    tracing::warn!(error = %e, "refreshing long timeouts failed");
                }
                next_upkeep = Instant::now() + UPKEEP;
            }
            if let Ok(mut p) = published.lock() {
                p.held = s.held();
                p.loaded = !broken;
            }
        }
    }
    if cleanup {
        match backend.remove() {
            Ok(()) => tracing::info!("firewall rules and sets removed"),
            Err(e) => tracing::error!(error = %e, "removing the firewall rules failed"),
        }
    } else {
        tracing::info!("firewall rules and sets kept (cleanup_on_exit: false)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Ban;
    use crate::target::Target;

    /// Records what the thread asks of the kernel; `apply` fails while `fail_apply` is set.
    #[derive(Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        fail_apply: bool,
    }

    impl Backend for Recorder {
        fn rebuild(&mut self, state: &State, _: u64) -> Result<(), FwError> {
            if let Ok(mut c) = self.calls.lock() {
                c.push(format!("rebuild {}", state.len()));
            }
            Ok(())
        }
        fn apply(&mut self, state: &State, _: &Edits, _: u64) -> Result<(), FwError> {
            if let Ok(mut c) = self.calls.lock() {
                c.push(format!("apply {}", state.len()));
            }
            if self.fail_apply {
                return Err(FwError::Output {
                    command: "test".into(),
                    reason: "refused".into(),
                });
            }
            Ok(())
        }
        fn counters(&mut self, _: &State) -> Result<Counters, FwError> {
            Ok(Counters::default())
        }
        fn remove(&mut self) -> Result<(), FwError> {
            if let Ok(mut c) = self.calls.lock() {
                c.push("remove".into());
            }
            Ok(())
        }
    }

    fn put(v: &str) -> Change {
        let ban = Ban {
            origin: "crowdsec".into(),
            target: Target::parse(v).unwrap_or_else(|| panic!("{v}")),
            left_ms: 0,
        };
        Change::Put(ban, now_ms() + 3_600_000)
    }

    fn drive(backend: Recorder, msgs: Vec<Msg>, cleanup: bool) -> Vec<String> {
        let calls = Arc::clone(&backend.calls);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::channel(64);
        // Everything is queued before the thread starts: the changes must be merged.
        for m in msgs {
            tx.try_send(m).unwrap_or_else(|e| panic!("{e}"));
        }
        let handle = rt.handle().clone();
        let published = Arc::new(Mutex::new(Published::default()));
        let t = std::thread::spawn(move || run(rx, Box::new(backend), published, handle, cleanup));
        let _ = t.join();
        drop(tx);
        calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    #[test]
    fn queued_changes_are_applied_as_one_batch_and_cleanup_is_optional() {
        let mut s = State::default();
        s.apply(&[put("192.0.2.1")]);
        let calls = drive(
            Recorder::default(),
            vec![
                Msg::Snapshot(s),
                Msg::Changes(vec![put("192.0.2.2")]),
                Msg::Changes(vec![put("192.0.2.3")]),
                Msg::Changes(vec![put("192.0.2.4")]),
                Msg::Shutdown,
            ],
            true,
        );
        assert_eq!(calls, ["rebuild 1", "apply 4", "remove"]);
        let calls = drive(Recorder::default(), vec![Msg::Shutdown], false);
        assert!(calls.is_empty(), "{calls:?}");
    }

    #[test]
    fn a_refused_batch_falls_back_to_a_rebuild() {
        let calls = drive(
            Recorder {
                fail_apply: true,
                ..Recorder::default()
            },
            vec![
                Msg::Snapshot(State::default()),
                Msg::Changes(vec![put("192.0.2.2")]),
                Msg::Shutdown,
            ],
            false,
        );
        assert_eq!(calls, ["rebuild 0", "apply 1", "rebuild 1"]);
    }
}
