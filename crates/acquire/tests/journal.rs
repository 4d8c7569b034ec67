//! The journalctl datasource against a real journal: entries are written with
//! systemd-journal-remote into a journal directory that `journalctl --directory` reads.
//! Skipped (with a message) where those tools are missing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use acquire::{
    AcquireError, Acquisition, JournalSpec, Line, Mode, SourceKind, SourceSpec, dsn_spec,
};
use common::DEADLINE;
use tokio::sync::mpsc;

fn skip(why: &str) {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("skipped: {why}\n").as_bytes(),
    );
}

/// systemd-journal-remote, when it and journalctl can be run here.
fn journal_remote() -> Option<PathBuf> {
    let journalctl = Command::new("journalctl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !journalctl {
        skip("journalctl is not installed");
        return None;
    }
    let remote = [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if remote.is_none() {
        skip(
            "systemd-journal-remote is not installed (Debian package systemd-journal-remote); it writes the test journal",
        );
    }
    remote
}

struct Journal {
    remote: PathBuf,
    dir: PathBuf,
    monotonic: u64,
}

impl Journal {
    /// Appends entries: (unit, message bytes, microseconds before now).
    fn write(&mut self, entries: &[(&str, &[u8], i64)]) {
        let now = chrono::Utc::now().timestamp_micros();
        let mut export = Vec::new();
        for (unit, message, ago) in entries {
            self.monotonic += 1;
            let ident = unit.trim_end_matches(".service");
            write!(
                export,
                "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=box\nSYSLOG_IDENTIFIER={ident}\n_PID=42\n_SYSTEMD_UNIT={unit}\n",
                now - ago,
                self.monotonic
            )
            .unwrap();
            // Binary-safe field encoding: name, newline, 64-bit little-endian length, data.
            export.extend_from_slice(b"MESSAGE\n");
            export.extend_from_slice(&(message.len() as u64).to_le_bytes());
            export.extend_from_slice(message);
            export.extend_from_slice(b"\n\n");
        }
        let mut child = Command::new(&self.remote)
            .arg("-o")
            .arg(self.dir.join("test.journal"))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&export).unwrap();
        assert!(
            child.wait().unwrap().success(),
            "systemd-journal-remote failed"
        );
    }
}

fn journal_spec(dir: &Path, mode: Mode) -> SourceSpec {
    let mut spec = JournalSpec::new(vec!["_SYSTEMD_UNIT=ssh.service".into()]);
    spec.directory = Some(dir.to_path_buf());
    SourceSpec::new(SourceKind::Journal(spec), mode, "syslog")
}

async fn next(rx: &mut mpsc::Receiver<Line>) -> Line {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

fn message(raw: &str) -> &str {
    raw.split_once(": ").map(|(_, m)| m).unwrap_or(raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_matching_entries_as_short_syslog_lines() {
    let Some(remote) = journal_remote() else {
        return;
    };
    common::logs();
    let tmp = tempfile::tempdir().unwrap();
    let mut journal = Journal {
        remote,
        dir: tmp.path().join("journal"),
        monotonic: 0,
    };
    std::fs::create_dir(&journal.dir).unwrap();
    journal.write(&[
        (
            "ssh.service",
            b"Failed password for root from 192.0.2.1 port 22 ssh2",
            3_000_000,
        ),
        ("cron.service", b"not for us", 2_000_000),
        ("ssh.service", b"first line\nsecond \xff line", 1_000_000),
    ]);
    let mut spec = dsn_spec("journalctl://filters=_SYSTEMD_UNIT=ssh.service", "syslog").unwrap();
    if let SourceKind::Journal(j) = &mut spec.kind {
        j.directory = Some(journal.dir.clone());
    }
    let (tx, mut rx) = mpsc::channel(8);
    let acq = Acquisition::start(vec![spec], tmp.path().join("state"), tx)
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(line) = tokio::time::timeout(DEADLINE, rx.recv()).await.unwrap() {
        assert_eq!(line.module, "journalctl");
        assert_eq!(line.src, "_SYSTEMD_UNIT=ssh.service");
        assert!(line.raw.contains(" box ssh[42]: "), "{}", line.raw);
        got.push(message(&line.raw).to_string());
    }
    assert_eq!(
        got,
        [
            "Failed password for root from 192.0.2.1 port 22 ssh2",
            "first line",
            "second \u{fffd} line"
        ]
    );
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_and_resumes_after_the_last_acked_cursor() {
    let Some(remote) = journal_remote() else {
        return;
    };
    common::logs();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut journal = Journal {
        remote,
        dir: tmp.path().join("journal"),
        monotonic: 0,
    };
    std::fs::create_dir(&journal.dir).unwrap();
    journal.write(&[("ssh.service", b"old, before the first start", 60_000_000)]);

    let (tx, mut rx) = mpsc::channel(8);
    let acq = Acquisition::start(
        vec![journal_spec(&journal.dir, Mode::Tail)],
        state.clone(),
        tx,
    )
    .await
    .unwrap();
    journal.write(&[
        ("ssh.service", b"one", 0),
        ("cron.service", b"noise", 0),
        ("ssh.service", b"two", 0),
        ("ssh.service", b"three", 0),
    ]);
    let lines = [
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    ];
    let msgs: Vec<&str> = lines.iter().map(|l| message(&l.raw)).collect();
    assert_eq!(msgs, ["one", "two", "three"]);
    let [one, two, three] = lines;
    two.ack.done();
    one.ack.done();
    drop(three);
    acq.shutdown().await;
    drop(rx);

    journal.write(&[("ssh.service", b"four", 0)]);
    let (tx, mut rx) = mpsc::channel(8);
    let acq = Acquisition::start(vec![journal_spec(&journal.dir, Mode::Tail)], state, tx)
        .await
        .unwrap();
    for want in ["three", "four"] {
        let line = next(&mut rx).await;
        assert_eq!(message(&line.raw), want);
        line.ack.done();
    }
    journal.write(&[("ssh.service", b"five", 0)]);
    assert_eq!(message(&next(&mut rx).await.raw), "five");
    acq.shutdown().await;
}

#[tokio::test]
async fn a_missing_journalctl_is_a_clear_error() {
    let mut spec = JournalSpec::new(vec!["_SYSTEMD_UNIT=ssh.service".into()]);
    spec.program = PathBuf::from("/nonexistent/journalctl");
    let spec = SourceSpec::new(SourceKind::Journal(spec), Mode::Tail, "syslog");
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let err = Acquisition::start(vec![spec], dir.path().to_path_buf(), tx)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, AcquireError::Journalctl { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("not found") && msg.contains("_SYSTEMD_UNIT=ssh.service"),
        "{msg}"
    );
}
