//! Starting and stopping all sources; the position saver.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Line;
use crate::config::{Mode, SourceKind, SourceSpec};
use crate::error::AcquireError;
use crate::file::{self, Msg, Out, StartArgs};
use crate::journal::{self, JournalArgs};
use crate::split::DEFAULT_MAX_LINE;
use crate::state::Store;
use crate::{stdin, syslog};

/// How often moved positions are written.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// At shutdown, how long lines already handed out may take to be acknowledged.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// The running sources.
///
/// Lines go to the channel given to [`Acquisition::start`]; the channel closes when every source
/// has ended (only one-shot sources end by themselves). Positions are saved in the state
/// directory every second and at [`Acquisition::shutdown`]; dropping the acquisition stops the
/// sources and saves too, without waiting.
pub struct Acquisition {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    threads: Vec<(std::thread::JoinHandle<()>, SyncSender<Msg>)>,
    store: Option<Arc<Store>>,
    saver: Option<JoinHandle<()>>,
    listening: Vec<(&'static str, SocketAddr)>,
    started: bool,
    stopped: bool,
}

impl Acquisition {
    /// Starts every source. Errors (missing `journalctl`, a port in use, an unwritable state
    /// directory) stop the sources already started.
    pub async fn start(
        specs: Vec<SourceSpec>,
        state_dir: PathBuf,
        tx: mpsc::Sender<Line>,
    ) -> Result<Acquisition, AcquireError> {
        let persists = specs.iter().any(|s| {
            s.mode == Mode::Tail && matches!(s.kind, SourceKind::File(_) | SourceKind::Journal(_))
        });
        let store = if persists {
            let dir = state_dir.clone();
            let opened = tokio::task::spawn_blocking(move || Store::open(&dir))
                .await
                .map_err(|e| AcquireError::Source {
                    origin: state_dir.display().to_string(),
                    message: e.to_string(),
                })??;
            Some(Arc::new(opened))
        } else {
            None
        };
        for spec in &specs {
            if let SourceKind::Journal(j) = &spec.kind {
                journal::check_program(j).await?;
            }
        }
        let mut acq = Acquisition {
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
            threads: Vec::new(),
            store: store.clone(),
            saver: None,
            listening: Vec::new(),
            started: false,
            stopped: false,
        };
        let rt = tokio::runtime::Handle::current();
        let dirty = store.as_ref().map(|s| s.dirty.clone()).unwrap_or_default();
        let mut keys = HashSet::new();
        for spec in specs {
            let labels = Arc::new(spec.labels.clone());
            let origin = if spec.origin.is_empty() {
                spec.module().to_string()
            } else {
                spec.origin.clone()
            };
            match spec.kind {
                SourceKind::File(f) => {
                    let key = unique_key(&mut keys, format!("file:{}", f.filenames.join(",")));
                    let prior = store.as_ref().and_then(|s| s.get(&key).cloned());
                    let spawned = file::spawn(StartArgs {
                        spec: f,
                        mode: spec.mode,
                        key,
                        origin,
                        prior,
                        dirty: dirty.clone(),
                        out: Out {
                            tx: tx.clone(),
                            cancel: acq.cancel.clone(),
                            rt: rt.clone(),
                            labels,
                        },
                    })?;
                    if let (Some(store), Some(p)) = (&store, spawned.persist) {
                        store.register(p);
                    }
                    acq.threads.push((spawned.thread, spawned.wake));
                    if let Some(ready) = spawned.ready {
                        // Files present now start at their end; anything written after
                        // `start` returns is read.
                        let _ = ready.await;
                    }
                }
                SourceKind::Journal(j) => {
                    let key = unique_key(&mut keys, format!("journalctl:{}", j.filters.join(" ")));
                    let prior = store.as_ref().and_then(|s| s.get(&key).cloned());
                    let (task, persist) = journal::spawn(JournalArgs {
                        spec: j,
                        mode: spec.mode,
                        key,
                        origin,
                        prior,
                        dirty: dirty.clone(),
                        tx: tx.clone(),
                        cancel: acq.cancel.clone(),
                        labels,
                    });
                    if let (Some(store), Some(p)) = (&store, persist) {
                        store.register(p);
                    }
                    acq.tasks.push(task);
                }
                SourceKind::Syslog(s) => {
                    let (udp, tcp) = syslog::bind(&s).await?;
                    let ctx = syslog::Ctx {
                        spec: Arc::new(s),
                        labels,
                        tx: tx.clone(),
                        cancel: acq.cancel.clone(),
                    };
                    if let Some(udp) = udp {
                        if let Ok(addr) = udp.local_addr() {
                            acq.listening.push(("udp", addr));
                        }
                        acq.tasks
                            .push(tokio::spawn(syslog::serve_udp(udp, ctx.clone())));
                    }
                    if let Some(tcp) = tcp {
                        if let Ok(addr) = tcp.local_addr() {
                            acq.listening.push(("tcp", addr));
                        }
                        acq.tasks.push(tokio::spawn(syslog::serve_tcp(tcp, ctx)));
                    }
                }
                SourceKind::Stdin => {
                    acq.tasks.push(tokio::spawn(stdin::run(
                        labels,
                        tx.clone(),
                        acq.cancel.clone(),
                        DEFAULT_MAX_LINE,
                    )));
                }
            }
        }
        if let Some(store) = store.filter(|s| s.has_providers()) {
            let cancel = acq.cancel.clone();
            acq.saver = Some(tokio::spawn(async move {
                let mut every = tokio::time::interval(SAVE_EVERY);
                loop {
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => return,
                        _ = every.tick() => {
                            let s = store.clone();
                            let _ = tokio::task::spawn_blocking(move || s.save_if_dirty()).await;
                        }
                    }
                }
            }));
        }
        acq.started = true;
        Ok(acq)
    }

    /// A handle that saves read positions on demand. The agent calls it right after queuing
    /// alerts, so that a `kill -9` just after cannot make it read (and alert on) those lines
    /// again.
    pub fn position_saver(&self) -> PositionSaver {
        PositionSaver(self.store.clone())
    }

    /// Addresses the syslog sources listen on (`("udp" | "tcp", address)`), useful with
    /// `listen_port: 0`.
    pub fn listening(&self) -> &[(&'static str, SocketAddr)] {
        &self.listening
    }

    /// Stops every source, waits a little for lines already handed out to be acknowledged,
    /// and saves positions.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for (_, wake) in &self.threads {
            let _ = wake.try_send(Msg::Stop);
        }
        for (thread, _) in std::mem::take(&mut self.threads) {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        if let Some(saver) = self.saver.take() {
            let _ = saver.await;
        }
        if let Some(store) = self.store.clone() {
            let deadline = Instant::now() + DRAIN_WAIT;
            while store.live_acks() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if store.has_providers() {
                let _ = tokio::task::spawn_blocking(move || store.close()).await;
            }
        }
        self.stopped = true;
    }
}

/// Saves read positions now (see [`Acquisition::position_saver`]).
#[derive(Clone)]
pub struct PositionSaver(Option<Arc<Store>>);

impl std::fmt::Debug for PositionSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PositionSaver")
    }
}

impl PositionSaver {
    /// Writes the positions of acknowledged lines if they changed (blocking: file write + fsync).
    pub fn save_now(&self) {
        if let Some(s) = self.0.as_ref().filter(|s| s.has_providers()) {
            s.save_if_dirty();
        }
    }

    /// Holds position writes back until the returned guard is dropped, so a batch's effects
    /// can be made durable (with [`PositionHold::mark`]) before its lines' positions are.
    pub fn hold(&self) -> PositionHold<'_> {
        PositionHold {
            store: self.0.as_deref(),
            _guard: self.0.as_deref().map(crate::state::Store::hold),
        }
    }
}

/// See [`PositionSaver::hold`].
pub struct PositionHold<'a> {
    store: Option<&'a crate::state::Store>,
    _guard: Option<std::sync::MutexGuard<'a, bool>>,
}

impl PositionHold<'_> {
    /// The positions of every acknowledged line, as [`crate::merge_positions`] takes them.
    pub fn mark(&self) -> Option<String> {
        self.store.and_then(crate::state::Store::snapshot_json)
    }

    /// Lines were acknowledged whose effects could not be made durable: save no position from
    /// now on, so a restart reads them again.
    pub fn freeze(&self) {
        if let Some(s) = self.store {
            s.freeze();
        }
    }
}

impl Drop for Acquisition {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.cancel.cancel();
        for (_, wake) in &self.threads {
            let _ = wake.try_send(Msg::Stop);
        }
        if self.started
            && let Some(store) = self.store.as_ref().filter(|s| s.has_providers())
        {
            store.close();
        }
    }
}

fn unique_key(keys: &mut HashSet<String>, key: String) -> String {
    if keys.insert(key.clone()) {
        return key;
    }
    let mut n = 2;
    loop {
        let k = format!("{key}#{n}");
        if keys.insert(k.clone()) {
            return k;
        }
        n += 1;
    }
}
