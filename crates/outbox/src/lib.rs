//! The agent's durable alert queue.
//!
//! Every alert is appended to `queue.jsonl` (one JSON alert per line) and synced to disk before
//! [`Outbox::push`] returns, so an alert the detector raised survives a crash, a `kill -9` or a LAPI
//! outage. A delivery task sends the queue in order, in batches, and records how far the LAPI
//! acknowledged in `queue.offset` (not flushed: a stale offset after a crash only resends alerts
//! the LAPI recognises); once everything is acknowledged and the file passed 1 MiB it is emptied.
//!
//! A batch can carry a *mark* (an opaque text, e.g. the reader's positions after the lines that
//! raised the batch), written in the same synced append as its alerts and kept in `mark.json` once
//! the queue is emptied: [`Outbox::last_mark`] gives it back after a restart, so a crash between
//! "alerts queued" and "read positions saved" neither loses nor repeats anything.
//!
//! Each alert gets a UUID when it is queued. If the agent dies between the LAPI's answer and the
//! offset being written, the batch is sent again; Rampart's LAPI recognises the UUIDs and stores
//! nothing twice (a CrowdSec LAPI would store the few alerts of that batch twice).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use model::Alert;

/// What the queue can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A queue file could not be read or written.
    #[error("alert queue {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Where alerts go: the LAPI, through [`client::Watcher`].
pub trait Sink: Send + Sync {
    /// Delivers a batch; an error means "retry later".
    fn send(
        &self,
        alerts: &[Alert],
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

impl Sink for client::Watcher {
    async fn send(&self, alerts: &[Alert]) -> Result<(), String> {
        self.push_alerts(alerts)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The queue.
#[derive(Debug)]
pub struct Outbox {
    queue_path: PathBuf,
    offset_path: PathBuf,
    file: Mutex<File>,
    /// Bytes of `queue.jsonl` acknowledged by the LAPI.
    acked: AtomicU64,
    /// Bytes written.
    written: AtomicU64,
    /// Alerts queued and not yet acknowledged.
    depth: AtomicU64,
    /// Alerts the sink accepted since start.
    sent: AtomicU64,
    /// Failed delivery attempts since start.
    failures: AtomicU64,
    wake: tokio::sync::Notify,
    /// Alerts per request.
    batch: usize,
    /// The latest mark pushed (or found at open).
    mark: Mutex<Option<String>>,
    mark_path: PathBuf,
}

/// How a mark is recorded in the queue: a JSON object no alert has.
const MARK_PREFIX: &[u8] = b"{\"rampart_mark\":";

#[derive(serde::Serialize, serde::Deserialize)]
struct MarkRecord {
    rampart_mark: String,
}

fn mark_of(line: &[u8]) -> Option<String> {
    if !line.starts_with(MARK_PREFIX) {
        return None;
    }
    serde_json::from_slice::<MarkRecord>(line)
        .ok()
        .map(|m| m.rampart_mark)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Outbox {
    /// Opens (or creates) the queue in `dir`. A record cut short by a crash mid-write is
    /// dropped (it was never acknowledged to the detector as queued).
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let queue_path = dir.join("queue.jsonl");
        let offset_path = dir.join("queue.offset");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&queue_path)
            .map_err(io(&queue_path))?;
        let len = file.metadata().map_err(io(&queue_path))?.len();
        // Find the end of the last complete record.
        let mut reader = BufReader::new(&mut file);
        let mut good = 0u64;
        let mut line = Vec::new();
        let mark_path = dir.join("mark.json");
        let mut mark = std::fs::read_to_string(&mark_path).ok();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io(&queue_path))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            if let Some(m) = mark_of(&line) {
                mark = Some(m);
            }
            good += n as u64;
        }
        drop(reader);
        if good < len {
            tracing::warn!(path = %queue_path.display(), bytes = len - good, "dropping a partial record at the end of the alert queue");
            file.set_len(good).map_err(io(&queue_path))?;
        }
        let acked = match std::fs::read_to_string(&offset_path) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or(0).min(good),
            Err(_) => 0,
        };
        let out = Self {
            queue_path,
            offset_path,
            file: Mutex::new(file),
            acked: AtomicU64::new(acked),
            written: AtomicU64::new(good),
            depth: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            batch: 100,
            mark: Mutex::new(mark),
            mark_path,
        };
        let pending = out.read_from(acked, usize::MAX)?.0.len() as u64;
        out.depth.store(pending, Ordering::Relaxed);
        Ok(out)
    }

    /// Alerts per request (default 100).
    pub fn with_batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Queues alerts durably (written and synced before returning).
    pub fn push(&self, alerts: &[Alert]) -> Result<(), OutboxError> {
        self.push_marked(alerts, None)
    }

    /// The latest mark pushed, in this run or a previous one.
    pub fn last_mark(&self) -> Option<String> {
        self.mark
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Queues alerts and a mark in one synced append: after a crash, either both are there or
    /// neither is.
    pub fn push_marked(&self, alerts: &[Alert], mark: Option<&str>) -> Result<(), OutboxError> {
        if alerts.is_empty() && mark.is_none() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(alerts.len() * 1024);
        for a in alerts {
            let mut a = a.clone();
            if uuid::Uuid::parse_str(&a.uuid).is_err() {
                a.uuid = uuid::Uuid::new_v4().to_string();
            }
            // Serialising our own type cannot fail.
            let _ = serde_json::to_writer(&mut buf, &a);
            buf.push(b'\n');
        }
        if let Some(m) = mark {
            let _ = serde_json::to_writer(
                &mut buf,
                &MarkRecord {
                    rampart_mark: m.to_owned(),
                },
            );
            buf.push(b'\n');
        }
        let mut f = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.write_all(&buf).map_err(io(&self.queue_path))?;
        self.written.fetch_add(buf.len() as u64, Ordering::SeqCst);
        self.depth.fetch_add(alerts.len() as u64, Ordering::Relaxed);
        if let Some(m) = mark {
            *self
                .mark
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(m.to_owned());
        }
        // Delivery starts from the page cache while the flush runs, so the disk is not on the
        // path from a log line to a ban. The caller still learns of the alerts' durability
        // before it acknowledges their lines: a crash before the flush completes re-reads them.
        self.wake.notify_one();
        f.sync_data().map_err(io(&self.queue_path))?;
        drop(f);
        Ok(())
    }

    /// Alerts queued and not yet acknowledged.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Alerts delivered since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Failed delivery attempts since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Up to `max` alerts from byte `from`, and the byte after the last one read.
    fn read_from(&self, from: u64, max: usize) -> Result<(Vec<Alert>, u64), OutboxError> {
        let end = self.written.load(Ordering::SeqCst);
        let mut f = File::open(&self.queue_path).map_err(io(&self.queue_path))?;
        f.seek(SeekFrom::Start(from))
            .map_err(io(&self.queue_path))?;
        let mut reader = BufReader::new(f);
        let mut pos = from;
        let mut out = Vec::new();
        let mut line = String::new();
        while out.len() < max && pos < end {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io(&self.queue_path))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            pos += n as u64;
            if line.as_bytes().starts_with(MARK_PREFIX) {
                continue;
            }
            match serde_json::from_str::<Alert>(&line) {
                Ok(a) => out.push(a),
                Err(e) => {
                    tracing::error!(path = %self.queue_path.display(), offset = pos, error = %e, "unreadable alert in the queue, skipped")
                }
            }
        }
        Ok((out, pos))
    }

    fn ack(&self, to: u64, n: usize) -> Result<(), OutboxError> {
        self.acked.store(to, Ordering::SeqCst);
        let _ = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(n as u64))
            });
        let f = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let written = self.written.load(Ordering::SeqCst);
        if to == written && written >= TRUNCATE_AT {
            // Everything delivered and the file is big: empty it (under the lock, so no push
            // interleaves), keeping the latest mark first.
            if let Some(m) = self.last_mark() {
                write_atomic(&self.mark_path, &m)?;
            }
            f.set_len(0).map_err(io(&self.queue_path))?;
            self.written.store(0, Ordering::SeqCst);
            self.acked.store(0, Ordering::SeqCst);
            write_quick(&self.offset_path, "0")?;
        } else {
            write_quick(&self.offset_path, &to.to_string())?;
        }
        Ok(())
    }

    /// Sends queued alerts until `shutdown` resolves, retrying with back-off (1 s doubling to
    /// 30 s) while the sink fails. Returns once the queue is drained after shutdown, or at
    /// shutdown when the sink is failing (the rest stays queued for the next start).
    pub async fn run<S: Sink>(&self, sink: &S, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_secs(1);
        let mut stopping = false;
        loop {
            let from = self.acked.load(Ordering::SeqCst);
            let batch = match self.read_from(from, self.batch) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the alert queue");
                    (Vec::new(), from)
                }
            };
            let (alerts, to) = batch;
            if to > from {
                if alerts.is_empty() {
                    // Only marks or unreadable records: nothing to send.
                    if let Err(e) = self.ack(to, 0) {
                        tracing::error!(error = %e, "cannot record queue progress");
                    }
                    continue;
                }
                match sink.send(&alerts).await {
                    Ok(()) => {
                        backoff = Duration::from_secs(1);
                        self.sent.fetch_add(alerts.len() as u64, Ordering::Relaxed);
                        if let Err(e) = self.ack(to, alerts.len()) {
                            tracing::error!(error = %e, "cannot record queue progress");
                        }
                        continue;
                    }
                    Err(e) => {
                        self.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, queued = self.depth(), retry_in = ?backoff, "alert delivery failed; alerts stay queued");
                        if stopping {
                            return;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = &mut shutdown => stopping = true,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
            }
            if stopping {
                return;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = &mut shutdown => stopping = true,
            }
        }
    }
}

/// The queue file is emptied once fully delivered and at least this big: emptying it after every
/// delivery would put a truncate and two flushes on every alert.
const TRUNCATE_AT: u64 = 1 << 20;

/// Replaces a file without flushing it: used for the delivery offset, where a stale value after
/// a crash only means resending alerts the LAPI already has (it recognises their UUIDs).
fn write_quick(path: &Path, text: &str) -> Result<(), OutboxError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn write_atomic(path: &Path, text: &str) -> Result<(), OutboxError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Sink for Count {
        async fn send(&self, alerts: &[Alert]) -> Result<(), String> {
            self.0.fetch_add(alerts.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn alert() -> Alert {
        Alert {
            scenario: "s".into(),
            ..Alert::default()
        }
    }

    async fn deliver_all(q: &Outbox, sink: &Count) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let run = q.run(sink, async {
            let _ = rx.await;
        });
        tokio::pin!(run);
        loop {
            tokio::select! {
                () = &mut run => break,
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if q.depth() == 0 {
                        let _ = tx.send(());
                        (&mut run).await;
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "not delivered");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_big_delivered_queue_is_emptied_and_its_mark_kept_aside() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = Outbox::open(dir.path()).expect("open").with_batch(500);
        let big = Alert {
            message: "x".repeat(2048),
            ..alert()
        };
        q.push_marked(&vec![big; 600], Some("m9")).expect("push");
        let sink = Count(AtomicUsize::new(0));
        deliver_all(&q, &sink).await;
        assert_eq!(sink.0.load(Ordering::SeqCst), 600);
        let len = std::fs::metadata(dir.path().join("queue.jsonl"))
            .expect("queue")
            .len();
        assert_eq!(len, 0, "over 1 MiB and delivered: emptied");
        drop(q);
        let q = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(q.last_mark().as_deref(), Some("m9"));
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn marks_survive_restarts_and_delivery_and_are_never_sent() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = Outbox::open(dir.path()).expect("open");
        assert_eq!(q.last_mark(), None);
        q.push_marked(&[alert(), alert()], Some("m1"))
            .expect("push");
        q.push_marked(&[alert()], Some("m2")).expect("push");
        drop(q);
        // A crash here: the mark comes back from the queue itself.
        let q = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(q.last_mark().as_deref(), Some("m2"));
        assert_eq!(q.depth(), 3, "marks are not alerts");
        let sink = Count(AtomicUsize::new(0));
        deliver_all(&q, &sink).await;
        assert_eq!(sink.0.load(Ordering::SeqCst), 3);
        drop(q);
        // Delivered: the mark is still there after a restart.
        let q = Outbox::open(dir.path()).expect("reopen");
        assert_eq!(q.depth(), 0);
        assert_eq!(q.last_mark().as_deref(), Some("m2"));
    }
}
