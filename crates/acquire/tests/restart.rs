//! Restarts with the same state directory: reading resumes after the last acknowledged line,
//! nothing is read twice, nothing is skipped — also when files changed while stopped.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use acquire::{Line, Mode};
use common::*;
use tokio::sync::mpsc;

/// Receives `n` lines without acknowledging them.
async fn take(rx: &mut mpsc::Receiver<Line>, n: usize) -> Vec<Line> {
    let mut out = Vec::new();
    while out.len() < n {
        let line = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} lines", out.len()))
            .expect("channel closed");
        out.push(line);
    }
    out
}

/// Receives until `expected` lines came, acknowledging them; then shuts down and checks
/// nothing else came.
async fn expect_exactly(acq: acquire::Acquisition, rx: mpsc::Receiver<Line>, expected: &[String]) {
    let col = Collector::spawn(rx);
    col.wait_count(expected.len()).await;
    acq.shutdown().await;
    let (got, mut rx) = col.stop().await;
    let mut raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    while let Ok(line) = rx.try_recv() {
        raws.push(line.raw);
    }
    assert_eq!(raws, expected, "lines after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_after_the_last_contiguous_acked_line() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    append(&log, &numbered("old", 0..10));
    let spec = || file_spec(&[&log], Mode::Tail);

    let (acq, mut rx) = start(vec![spec()], &state).await;
    let first = numbered("new", 0..100);
    append(&log, &first);
    let mut lines = take(&mut rx, 100).await;
    let raws: Vec<String> = lines.iter().map(|l| l.raw.clone()).collect();
    assert_eq!(
        raws, first,
        "a first start begins at the end of existing files"
    );
    // Parallel workers finish out of order: 0..60 done (backwards), 70 done, the rest not.
    let rest = lines.split_off(60);
    for line in lines.into_iter().rev() {
        line.ack.done();
    }
    let mut rest = rest.into_iter();
    let held: Vec<Line> = rest.by_ref().take(10).collect();
    if let Some(l70) = rest.next() {
        l70.ack.done();
    }
    drop(held);
    drop(rest);
    acq.shutdown().await;
    drop(rx);

    append(&log, &numbered("new", 100..150));
    let (acq, rx) = start(vec![spec()], &state).await;
    expect_exactly(acq, rx, &numbered("new", 60..150)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_acquisition_saves_positions_too() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let spec = || file_spec(&[&log], Mode::Tail);

    let (acq, mut rx) = start(vec![spec()], &state).await;
    append(&log, &numbered("a", 0..40));
    let lines = take(&mut rx, 40).await;
    for line in lines.into_iter().take(25) {
        line.ack.done();
    }
    drop(acq);
    drop(rx);

    append(&log, &numbered("a", 40..45));
    let (acq, rx) = start(vec![spec()], &state).await;
    expect_exactly(acq, rx, &numbered("a", 25..45)).await;
}

/// Reads and acknowledges `n` lines, then receives `m` more without acknowledging them and
/// shuts down.
async fn run_and_stop(
    spec: acquire::SourceSpec,
    state: &Path,
    log: &Path,
    acked: &[String],
    unacked: &[String],
) {
    let (acq, mut rx) = start(vec![spec], state).await;
    append(log, acked);
    for line in take(&mut rx, acked.len()).await {
        line.ack.done();
    }
    append(log, unacked);
    let held = take(&mut rx, unacked.len()).await;
    drop(held);
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_while_stopped() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let spec = || file_spec(&[&log], Mode::Tail);
    let mut daemon = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    run_and_stop(
        spec(),
        &state,
        &log,
        &numbered("a", 0..50),
        &numbered("a", 50..70),
    )
    .await;

    // Rotated while Rampart was down; the daemon logged a little more to the old file, then
    // to the new one.
    std::fs::rename(&log, logs.join("app.log.1")).unwrap();
    for line in numbered("a", 70..80) {
        writeln!(daemon, "{line}").unwrap();
    }
    append(&log, &numbered("b", 0..30));

    let (acq, rx) = start(vec![spec()], &state).await;
    let col = Collector::spawn(rx);
    let mut expected = numbered("a", 50..80);
    expected.extend(numbered("b", 0..30));
    col.wait_count(expected.len()).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    assert_exactly_once(&raws, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_and_compressed_while_stopped() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let spec = || file_spec(&[&logs.join("app.log*")], Mode::Tail);
    run_and_stop(
        spec(),
        &state,
        &log,
        &numbered("a", 0..50),
        &numbered("a", 50..70),
    )
    .await;

    let rotated = logs.join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let data = std::fs::read(&rotated).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(logs.join("app.log.1.gz")).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(&rotated).unwrap();
    append(&log, &numbered("b", 0..5));

    let (acq, rx) = start(vec![spec()], &state).await;
    let col = Collector::spawn(rx);
    let mut expected = numbered("a", 50..70);
    expected.extend(numbered("b", 0..5));
    col.wait_count(expected.len()).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    assert_exactly_once(&raws, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_or_truncated_while_stopped_starts_over() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let spec = || file_spec(&[&log], Mode::Tail);
    run_and_stop(spec(), &state, &log, &numbered("a", 0..30), &[]).await;

    // Longer than before, other content: the fingerprint no longer matches.
    let replaced = numbered("z", 0..100);
    std::fs::write(&log, replaced.join("\n") + "\n").unwrap();
    let (acq, rx) = start(vec![spec()], &state).await;
    expect_exactly(acq, rx, &replaced).await;

    // Shorter than the saved position.
    let short = numbered("y", 0..3);
    std::fs::write(&log, short.join("\n") + "\n").unwrap();
    let (acq, rx) = start(vec![spec()], &state).await;
    expect_exactly(acq, rx, &short).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_file_that_grew_while_stopped_resumes() {
    // Shorter than a full fingerprint when saved; longer at restart.
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let spec = || file_spec(&[&log], Mode::Tail);
    run_and_stop(spec(), &state, &log, &numbered("s", 0..3), &[]).await;
    append(&log, &numbered("s", 3..80));
    let (acq, rx) = start(vec![spec()], &state).await;
    expect_exactly(acq, rx, &numbered("s", 3..80)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_set_aside() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    append(&log, &numbered("old", 0..3));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("acquisition-positions.json"), b"{ not json").unwrap();
    let (acq, rx) = start(vec![file_spec(&[&log], Mode::Tail)], &state).await;
    let col = Collector::spawn(rx);
    append(&log, &numbered("new", 0..3));
    col.wait_count(3).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    assert_eq!(
        got.into_iter().map(|g| g.raw).collect::<Vec<_>>(),
        numbered("new", 0..3)
    );
    let names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("acquisition-positions.json.corrupt-")),
        "{names:?}"
    );
    let saved = std::fs::read_to_string(state.join("acquisition-positions.json")).unwrap();
    assert!(saved.contains("app.log"), "{saved}");
}
