//! Shared helpers for the acquisition tests: real files, real sockets, generous deadlines.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acquire::{Acquisition, FileSpec, Line, Mode, SourceKind, SourceSpec};
use tokio::sync::{Notify, mpsc};

/// Upper bound for anything to show up; never a speed expectation.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) fn file_spec(patterns: &[&Path], mode: Mode) -> SourceSpec {
    let spec = FileSpec::new(patterns.iter().map(|p| p.display().to_string()).collect());
    SourceSpec::new(SourceKind::File(spec), mode, "test")
}

pub(crate) fn polling(mut spec: SourceSpec) -> SourceSpec {
    if let SourceKind::File(f) = &mut spec.kind {
        f.poll_without_inotify = Some(true);
    }
    spec
}

/// Logs to the test output when `RUST_LOG` is set.
pub(crate) fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub(crate) async fn start(
    specs: Vec<SourceSpec>,
    state: &Path,
) -> (Acquisition, mpsc::Receiver<Line>) {
    logs();
    let (tx, rx) = mpsc::channel(64);
    let acq = Acquisition::start(specs, state.to_path_buf(), tx)
        .await
        .unwrap();
    (acq, rx)
}

/// A received line, its ack already given.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) raw: String,
    pub(crate) src: String,
}

/// Receives and acknowledges every line in the background.
pub(crate) struct Collector {
    lines: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<mpsc::Receiver<Line>>,
    stop: Arc<Notify>,
}

impl Collector {
    pub(crate) fn spawn(mut rx: mpsc::Receiver<Line>) -> Collector {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(Notify::new());
        let (l, s) = (lines.clone(), stop.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    line = rx.recv() => {
                        let Some(line) = line else { break };
                        l.lock().unwrap().push(Got { raw: line.raw.clone(), src: line.src.clone() });
                        line.ack.done();
                    }
                    () = s.notified() => break,
                }
            }
            rx
        });
        Collector { lines, task, stop }
    }

    /// The shared list, for writer threads that wait on progress.
    pub(crate) fn shared(&self) -> Arc<Mutex<Vec<Got>>> {
        self.lines.clone()
    }

    pub(crate) fn lines(&self) -> Vec<Got> {
        self.lines.lock().unwrap().clone()
    }

    pub(crate) fn raws(&self) -> Vec<String> {
        self.lines().into_iter().map(|g| g.raw).collect()
    }

    /// Waits until `cond` holds for the received lines (or the deadline passes).
    pub(crate) async fn wait_until(&self, what: &str, cond: impl Fn(&[Got]) -> bool) {
        let end = Instant::now() + DEADLINE;
        loop {
            if cond(&self.lines.lock().unwrap()) {
                return;
            }
            if Instant::now() > end {
                let got = self.lines();
                panic!(
                    "timed out waiting for {what}; got {} lines, last: {:?}",
                    got.len(),
                    got.last()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn wait_count(&self, n: usize) {
        self.wait_until(&format!("{n} lines"), |l| l.len() >= n)
            .await;
    }

    /// Stops collecting and gives the receiver back.
    pub(crate) async fn stop(self) -> (Vec<Got>, mpsc::Receiver<Line>) {
        self.stop.notify_one();
        let rx = self.task.await.unwrap();
        let lines = self.lines.lock().unwrap().clone();
        (lines, rx)
    }
}

/// Appends lines to a file (opened in append mode each time, like a logger).
pub(crate) fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

pub(crate) fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("{prefix} line {i:06} padding-to-make-it-longer"))
        .collect()
}

/// Sequence number of a `numbered` line.
pub(crate) fn seq(raw: &str) -> usize {
    raw.split(" line ")
        .nth(1)
        .and_then(|r| r.get(..6))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered line: {raw}"))
}

/// Asserts every line of `expected` was received exactly once.
pub(crate) fn assert_exactly_once(got: &[String], expected: &[String]) {
    let mut counts = std::collections::HashMap::new();
    for g in got {
        *counts.entry(g.as_str()).or_insert(0usize) += 1;
    }
    let doubled: Vec<_> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(l, _)| *l)
        .collect();
    assert!(
        doubled.is_empty(),
        "read twice: {:?}",
        &doubled[..doubled.len().min(5)]
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !counts.contains_key(e.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "never read ({}): {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let extra: Vec<_> = got.iter().filter(|g| !expected.contains(g)).collect();
    assert!(
        extra.is_empty(),
        "unexpected: {:?}",
        &extra[..extra.len().min(5)]
    );
}

/// Blocks (in a writer thread) until a received line satisfies `cond`.
pub(crate) fn block_until(lines: &Arc<Mutex<Vec<Got>>>, what: &str, cond: impl Fn(&Got) -> bool) {
    let end = Instant::now() + DEADLINE;
    while !lines.lock().unwrap().iter().any(&cond) {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn tmp() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&logs).unwrap();
    (dir, logs, state)
}
