//! The journalctl datasource: runs `journalctl -o json`, rebuilds the classic short line
//! (`Mon DD HH:MM:SS host ident[pid]: message`, what CrowdSec reads so that `type: syslog`
//! parsers apply) and persists the journal cursor of the last processed entry.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Local, TimeZone, Utc};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Line;
use crate::ack::{Ack, Tracker};
use crate::config::{JournalSpec, Mode};
use crate::error::AcquireError;
use crate::state::{Persist, SourceState};

const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long resets the restart back-off.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Fails clearly when the journalctl program cannot be run.
pub(crate) async fn check_program(spec: &JournalSpec) -> Result<(), AcquireError> {
    let result = Command::new(&spec.program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let detail = match result {
        Ok(status) if status.success() => return Ok(()),
        Ok(status) => format!("`--version` exited with {status}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "not found in PATH".to_string(),
        Err(e) => e.to_string(),
    };
    Err(AcquireError::Journalctl {
        filters: spec.filters.join(" "),
        program: spec.program.display().to_string(),
        detail,
    })
}

pub(crate) struct JournalArgs {
    pub(crate) spec: JournalSpec,
    pub(crate) mode: Mode,
    pub(crate) key: String,
    pub(crate) origin: String,
    pub(crate) prior: Option<SourceState>,
    pub(crate) dirty: Arc<AtomicBool>,
    pub(crate) tx: mpsc::Sender<Line>,
    pub(crate) cancel: CancellationToken,
    pub(crate) labels: Arc<HashMap<String, String>>,
}

struct JournalPersist {
    key: String,
    tracker: Arc<Tracker<Option<String>>>,
    since: Mutex<Option<String>>,
}

impl Persist for JournalPersist {
    fn key(&self) -> &str {
        &self.key
    }

    fn snapshot(&self) -> SourceState {
        let mut state = SourceState::new();
        state.cursor = self.tracker.committed();
        if state.cursor.is_none() {
            state.since = self.since.lock().unwrap_or_else(|e| e.into_inner()).clone();
        }
        state
    }

    fn live_acks(&self) -> usize {
        self.tracker.live()
    }
}

/// Starts the reader task; tail sources also return their position keeper.
pub(crate) fn spawn(args: JournalArgs) -> (tokio::task::JoinHandle<()>, Option<Arc<dyn Persist>>) {
    let tail = args.mode == Mode::Tail;
    let prior_cursor = args.prior.as_ref().and_then(|p| p.cursor.clone());
    let since = if tail && prior_cursor.is_none() {
        // First start: from now on (kept until an entry is processed, so a restart before
        // that does not skip what was logged meanwhile).
        let since = args
            .prior
            .as_ref()
            .and_then(|p| p.since.clone())
            .or(args.spec.since.clone());
        Some(since.unwrap_or_else(|| {
            let now = Utc::now();
            format!("@{}.{:06}", now.timestamp(), now.timestamp_subsec_micros())
        }))
    } else {
        args.spec.since.clone()
    };
    let tracker = Tracker::new(prior_cursor.clone(), args.dirty, args.origin.clone());
    let persist: Option<Arc<dyn Persist>> = tail.then(|| {
        Arc::new(JournalPersist {
            key: args.key.clone(),
            tracker: tracker.clone(),
            since: Mutex::new(since.clone()),
        }) as Arc<dyn Persist>
    });
    let reader = Reader {
        src: args.spec.filters.join(" "),
        spec: args.spec,
        tail,
        origin: args.origin,
        tracker: tail.then_some(tracker),
        tx: args.tx,
        cancel: args.cancel,
        labels: args.labels,
    };
    let task = tokio::spawn(reader.run(prior_cursor, since));
    (task, persist)
}

struct Reader {
    spec: JournalSpec,
    src: String,
    tail: bool,
    origin: String,
    tracker: Option<Arc<Tracker<Option<String>>>>,
    tx: mpsc::Sender<Line>,
    cancel: CancellationToken,
    labels: Arc<HashMap<String, String>>,
}

enum RunEnd {
    Exited,
    Stopped,
}

impl Reader {
    async fn run(self, mut cursor: Option<String>, since: Option<String>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = Instant::now();
            match self.run_once(&mut cursor, since.as_deref()).await {
                RunEnd::Stopped => return,
                RunEnd::Exited if !self.tail => return,
                RunEnd::Exited => {}
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff = Duration::from_secs(1);
            }
            tracing::warn!(
                source = %self.origin,
                "journalctl stopped; restarting in {}s",
                backoff.as_secs()
            );
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn command(&self, cursor: Option<&str>, since: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.spec.program);
        if let Some(dir) = &self.spec.directory {
            cmd.arg("--directory").arg(dir);
        }
        cmd.args(["--output=json", "--no-pager", "--quiet"]);
        if self.tail {
            cmd.arg("--follow");
        }
        match (cursor, since) {
            (Some(c), _) => {
                cmd.arg(format!("--after-cursor={c}"));
            }
            (None, Some(s)) => {
                cmd.arg(format!("--since={s}"));
            }
            (None, None) => {}
        }
        cmd.args(&self.spec.filters);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run_once(&self, cursor: &mut Option<String>, since: Option<&str>) -> RunEnd {
        let mut child = match self.command(cursor.as_deref(), since).spawn() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(source = %self.origin, "cannot run {}: {e}", self.spec.program.display());
                return RunEnd::Exited;
            }
        };
        if let Some(stderr) = child.stderr.take() {
            let origin = self.origin.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(source = %origin, "journalctl: {line}");
                }
            });
        }
        let Some(stdout) = child.stdout.take() else {
            return RunEnd::Exited;
        };
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = tokio::select! {
                r = reader.read_until(b'\n', &mut buf) => r,
                () = self.cancel.cancelled() => {
                    let _ = child.kill().await;
                    return RunEnd::Stopped;
                }
            };
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(source = %self.origin, "reading journalctl output: {e}");
                    break;
                }
            }
            let Ok(entry) = serde_json::from_slice::<Map<String, Value>>(&buf) else {
                tracing::debug!(source = %self.origin, "not a JSON journal entry, skipped");
                continue;
            };
            if self.entry(&entry, cursor).await.is_err() {
                let _ = child.kill().await;
                return RunEnd::Stopped;
            }
        }
        match child.wait().await {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!(source = %self.origin, "journalctl exited with {status}"),
            Err(e) => tracing::warn!(source = %self.origin, "journalctl: {e}"),
        }
        RunEnd::Exited
    }

    /// Hands out one journal entry (one line per line of its message).
    async fn entry(
        &self,
        entry: &Map<String, Value>,
        cursor: &mut Option<String>,
    ) -> Result<(), ()> {
        let this = field(entry, "__CURSOR");
        let previous = cursor.clone();
        if this.is_some() {
            cursor.clone_from(&this);
        }
        let message = field(entry, "MESSAGE").unwrap_or_default();
        let prefix = short_prefix(entry);
        let pieces: Vec<&str> = message
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        if pieces.is_empty() {
            if let (Some(t), Some(_)) = (&self.tracker, &this) {
                t.advance(this.clone());
            }
            return Ok(());
        }
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let ack = match &self.tracker {
                // Only the last line of an entry moves the cursor past it.
                Some(t) => t.push(if i == last && this.is_some() {
                    this.clone()
                } else {
                    previous.clone()
                }),
                None => Ack::noop(),
            };
            let line = Line {
                raw: format!("{prefix}{piece}"),
                src: self.src.clone(),
                module: "journalctl",
                labels: self.labels.clone(),
                time: Utc::now(),
                ack,
            };
            tokio::select! {
                r = self.tx.send(line) => r.map_err(|_| ())?,
                () = self.cancel.cancelled() => return Err(()),
            }
        }
        Ok(())
    }
}

/// A journal field as text: a string, or bytes (non-UTF-8 values come as arrays of numbers);
/// the first value of a repeated field.
fn field(entry: &Map<String, Value>, name: &str) -> Option<String> {
    value_text(entry.get(name)?)
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.first().and_then(value_text),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Mon DD HH:MM:SS host ident[pid]: ` as journalctl's short output prints it (local time).
fn short_prefix(entry: &Map<String, Value>) -> String {
    let ts = field(entry, "__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|us| Local.timestamp_micros(us).single())
        .unwrap_or_else(Local::now);
    let host = field(entry, "_HOSTNAME").unwrap_or_else(|| "localhost".into());
    let ident = field(entry, "SYSLOG_IDENTIFIER")
        .or_else(|| field(entry, "_COMM"))
        .unwrap_or_else(|| "unknown".into());
    let pid = field(entry, "_PID").or_else(|| field(entry, "SYSLOG_PID"));
    match pid {
        Some(pid) => format!("{} {host} {ident}[{pid}]: ", ts.format("%b %d %H:%M:%S")),
        None => format!("{} {host} {ident}: ", ts.format("%b %d %H:%M:%S")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn fields_as_text() {
        let e = entry(r#"{"MESSAGE":[104,105,255],"X":["a","b"],"Y":[[111,107],"z"]}"#);
        assert_eq!(field(&e, "MESSAGE").as_deref(), Some("hi\u{fffd}"));
        assert_eq!(field(&e, "X").as_deref(), Some("a"));
        assert_eq!(field(&e, "Y").as_deref(), Some("ok"));
        assert_eq!(field(&e, "Z"), None);
    }

    #[test]
    fn short_line_prefix() {
        let e = entry(
            r#"{"__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"box","SYSLOG_IDENTIFIER":"sshd","_PID":"42"}"#,
        );
        let p = short_prefix(&e);
        assert!(p.ends_with(" box sshd[42]: "), "{p}");
        let expected = Local
            .timestamp_micros(1_700_000_000_000_000)
            .single()
            .map(|t| t.format("%b %d %H:%M:%S").to_string())
            .unwrap_or_default();
        assert!(p.starts_with(&expected), "{p}");
        let e = entry(r#"{"_COMM":"cron"}"#);
        assert!(short_prefix(&e).ends_with(" localhost cron: "));
    }
}
