//! The file datasource on real files: first start, truncation, globs, polling, compressed
//! files, one-shot reads, long and invalid lines.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;

use acquire::{FileSpec, Mode, SourceKind, SourceSpec, dsn_spec};
use common::*;

async fn run_until(
    specs: Vec<SourceSpec>,
    state: &Path,
    act: impl FnOnce(),
    expected: &[String],
) -> Vec<Got> {
    let (acq, rx) = start(specs, state).await;
    let col = Collector::spawn(rx);
    act();
    col.wait_count(expected.len()).await;
    acq.shutdown().await;
    let (got, mut rx) = col.stop().await;
    let mut got = got;
    while let Ok(line) = rx.try_recv() {
        got.push(Got {
            raw: line.raw,
            src: line.src,
        });
    }
    let raws: Vec<String> = got.iter().map(|g| g.raw.clone()).collect();
    assert_exactly_once(&raws, expected);
    got
}

fn gz(path: &Path, lines: &[String]) {
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    for l in lines {
        writeln!(enc, "{l}").unwrap();
    }
    enc.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_follows_from_the_end_and_lines_carry_source_and_labels() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("auth.log");
    append(&log, &numbered("before", 0..20));
    let expected = numbered("after", 0..10);
    let (acq, rx) = start(vec![file_spec(&[&log], Mode::Tail)], &state).await;
    append(&log, &expected);
    let mut rx = rx;
    for want in &expected {
        let line = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&line.raw, want);
        assert_eq!(line.src, log.display().to_string());
        assert_eq!(line.module, "file");
        assert_eq!(line.labels.get("type").map(String::as_str), Some("test"));
        assert!(line.ack.is_tracked());
        line.ack.done();
    }
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_restarts_at_the_beginning() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let (acq, rx) = start(vec![file_spec(&[&log], Mode::Tail)], &state).await;
    let col = Collector::spawn(rx);
    append(&log, &numbered("one", 0..50));
    col.wait_count(50).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &numbered("two", 0..5));
    col.wait_count(55).await;
    // Truncated and rewritten longer than before, with other content.
    std::fs::write(&log, numbered("three", 0..80).join("\n") + "\n").unwrap();
    col.wait_count(135).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    let mut expected = numbered("one", 0..50);
    expected.extend(numbered("two", 0..5));
    expected.extend(numbered("three", 0..80));
    assert_exactly_once(&raws, &expected);
}

async fn new_files_are_picked_up(poll: bool) {
    let (_dir, logs, state) = tmp();
    let pattern = logs.join("*.log");
    let nested = logs.join("*").join("nested.log");
    let mut spec = file_spec(&[&pattern, &nested], Mode::Tail);
    if poll {
        spec = polling(spec);
    }
    let mut expected = numbered("a", 0..10);
    expected.extend(numbered("b", 0..10));
    expected.extend(numbered("n", 0..5));
    let logs2 = logs.clone();
    run_until(
        vec![spec],
        &state,
        move || {
            append(&logs2.join("a.log"), &numbered("a", 0..10));
            append(&logs2.join("not-matched.txt"), &numbered("x", 0..10));
            std::fs::create_dir(logs2.join("sub")).unwrap();
            append(&logs2.join("sub").join("nested.log"), &numbered("n", 0..5));
            append(&logs2.join("b.log"), &numbered("b", 0..10));
        },
        &expected,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_picks_up_files_created_after_start() {
    new_files_are_picked_up(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_fallback_picks_up_files_and_appends() {
    new_files_are_picked_up(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_appears_later_is_watched() {
    let (_dir, logs, state) = tmp();
    let later = logs.join("later");
    let spec = file_spec(&[&later.join("*.log")], Mode::Tail);
    let expected = numbered("l", 0..7);
    let e = expected.clone();
    run_until(
        vec![spec],
        &state,
        move || {
            std::fs::create_dir(&later).unwrap();
            append(&later.join("x.log"), &e);
        },
        &expected,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_recreated_file_is_read_from_its_start() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let (acq, rx) = start(vec![file_spec(&[&log], Mode::Tail)], &state).await;
    let col = Collector::spawn(rx);
    append(&log, &numbered("one", 0..10));
    col.wait_count(10).await;
    std::fs::remove_file(&log).unwrap();
    append(&log, &numbered("two", 0..10));
    col.wait_count(20).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    let mut expected = numbered("one", 0..10);
    expected.extend(numbered("two", 0..10));
    assert_exactly_once(&raws, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gz_files_are_read_once() {
    let (_dir, logs, state) = tmp();
    gz(&logs.join("old.log.gz"), &numbered("old", 0..10));
    let spec = || file_spec(&[&logs.join("*.gz")], Mode::Tail);
    let new = numbered("new", 0..300);
    let l = logs.clone();
    let n = new.clone();
    // Present at the first start: skipped, like the end of a plain file. Created later: read.
    run_until(
        vec![spec()],
        &state,
        move || gz(&l.join("new.log.gz"), &n),
        &new,
    )
    .await;
    // Neither is read again after a restart; a third one is.
    let third = numbered("third", 0..5);
    let l = logs.clone();
    let t = third.clone();
    run_until(
        vec![spec()],
        &state,
        move || gz(&l.join("third.log.gz"), &t),
        &third,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_mode_reads_everything_once_and_ends() {
    let (_dir, logs, state) = tmp();
    let plain = numbered("plain", 0..100);
    let packed = numbered("packed", 0..100);
    std::fs::write(logs.join("a.log"), plain.join("\n")).unwrap(); // no final newline
    gz(&logs.join("b.log.gz"), &packed);
    let spec = dsn_spec(&format!("file://{}/*", logs.display()), "nginx").unwrap();
    assert_eq!(spec.mode, Mode::Cat);
    let (acq, mut rx) = start(vec![spec], &state).await;
    let mut got = Vec::new();
    // The channel closes when the one-shot source is done.
    while let Some(line) = tokio::time::timeout(DEADLINE, rx.recv()).await.unwrap() {
        assert_eq!(line.labels.get("type").map(String::as_str), Some("nginx"));
        assert!(!line.ack.is_tracked());
        got.push(line.raw);
    }
    let mut expected = plain;
    expected.extend(packed);
    assert_eq!(got, expected);
    acq.shutdown().await;
    assert!(!state.join("acquisition-positions.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_cut_and_invalid_utf8_is_replaced() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let mut spec = FileSpec::new(vec![log.display().to_string()]);
    spec.max_buffer_size = 1024;
    let spec = SourceSpec::new(SourceKind::File(spec), Mode::Tail, "test");
    let (acq, rx) = start(vec![spec], &state).await;
    let col = Collector::spawn(rx);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&vec![b'x'; 100_000]).unwrap();
    f.write_all(b"\nbad \xff\xfe bytes\r\n\n\nnext\n").unwrap();
    col.wait_count(3).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    assert_eq!(raws.len(), 3, "{raws:?}");
    assert_eq!(raws[0], "x".repeat(1024));
    assert_eq!(raws[1], "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(raws[2], "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_blocks_the_reader_instead_of_buffering() {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let acq = acquire::Acquisition::start(vec![file_spec(&[&log], Mode::Tail)], state.clone(), tx)
        .await
        .unwrap();
    let lines = numbered("burst", 0..2000);
    append(&log, &lines);
    let mut got = Vec::new();
    while got.len() < lines.len() {
        let line = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        got.push(line.raw.clone());
        line.ack.done();
    }
    assert_eq!(got, lines);
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gz_file_still_being_written_is_read_once() {
    let (_dir, logs, state) = tmp();
    let lines = numbered("gz", 0..2000);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for l in &lines {
        writeln!(enc, "{l}").unwrap();
    }
    let bytes = enc.finish().unwrap();
    let path = logs.join("late.log.gz");
    let (acq, rx) = start(vec![file_spec(&[&logs.join("*.gz")], Mode::Tail)], &state).await;
    let col = Collector::spawn(rx);
    // Written in pieces, like a compressor at work; the reader sees incomplete files.
    let mut f = std::fs::File::create(&path).unwrap();
    for piece in bytes.chunks(bytes.len() / 4 + 1) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    col.wait_count(lines.len()).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    assert_eq!(raws, lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclude_regexps_skip_matching_paths() {
    let (_dir, logs, state) = tmp();
    let mut spec = FileSpec::new(vec![logs.join("*").display().to_string()]);
    spec.exclude_regexps = vec![r"\.(gz|bak)$".into()];
    let spec = SourceSpec::new(SourceKind::File(spec), Mode::Tail, "test");
    let expected = numbered("kept", 0..5);
    let (l, e) = (logs.clone(), expected.clone());
    run_until(
        vec![spec],
        &state,
        move || {
            append(&l.join("app.bak"), &numbered("excluded", 0..5));
            gz(&l.join("app.log.gz"), &numbered("excluded-gz", 0..5));
            append(&l.join("app.log"), &e);
        },
        &expected,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_behind_a_symlink_is_followed() {
    // Kubernetes style: the glob matches a symlink; the file it points to is rotated in
    // another directory, which is not watched.
    let (_dir, logs, state) = tmp();
    let pods = logs.join("pods");
    std::fs::create_dir(&pods).unwrap();
    let target = pods.join("0.log");
    std::fs::write(&target, "").unwrap();
    let link_dir = logs.join("containers");
    std::fs::create_dir(&link_dir).unwrap();
    std::os::unix::fs::symlink(&target, link_dir.join("app.log")).unwrap();
    let (acq, rx) = start(
        vec![file_spec(&[&link_dir.join("*.log")], Mode::Tail)],
        &state,
    )
    .await;
    let col = Collector::spawn(rx);
    append(&target, &numbered("first", 0..20));
    col.wait_count(20).await;
    std::fs::rename(&target, pods.join("0.log.20240101")).unwrap();
    append(&target, &numbered("second", 0..20));
    col.wait_count(40).await;
    acq.shutdown().await;
    let (got, _) = col.stop().await;
    assert!(
        got.iter().all(|g| g.src.ends_with("containers/app.log")),
        "{:?}",
        got[0]
    );
    let raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    let mut expected = numbered("first", 0..20);
    expected.extend(numbered("second", 0..20));
    assert_exactly_once(&raws, &expected);
}
