//! Lines written at a steady rate while the file is rotated: every line is read exactly once,
//! in order within each file.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acquire::Mode;
use common::*;

fn open_append(path: &Path) -> std::fs::File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Lines look like `g<generation> line <seq> …`; within one generation (one file's content)
/// they must arrive in writing order.
fn assert_in_order_per_generation(raws: &[String]) {
    let mut last: std::collections::HashMap<&str, usize> = Default::default();
    for raw in raws {
        let gen_tag = raw.split(' ').next().unwrap();
        let n = seq(raw);
        if let Some(prev) = last.insert(gen_tag, n) {
            assert!(n > prev, "{raw} came after line {prev} of the same file");
        }
    }
}

async fn finish(acq: acquire::Acquisition, col: Collector) -> Vec<String> {
    acq.shutdown().await;
    let (got, mut rx) = col.stop().await;
    let mut raws: Vec<String> = got.into_iter().map(|g| g.raw).collect();
    while let Ok(line) = rx.try_recv() {
        raws.push(line.raw);
    }
    raws
}

/// A daemon that logs to `app.log`; logrotate renames it to `app.log.1`; the daemon writes a
/// few more lines to the renamed file before it reopens `app.log`.
fn rename_writer(
    log: PathBuf,
    seen: Arc<Mutex<Vec<Got>>>,
    gens: usize,
    per_gen: usize,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut f = open_append(&log);
    let mut n = 0;
    for generation in 0..gens {
        for i in 0..per_gen {
            let line = format!("g{generation} line {n:06} rename-rotation-padding-text");
            writeln!(f, "{line}").unwrap();
            all.push(line);
            n += 1;
            if i == 0 {
                // Rotation must not outrun discovery of a file no glob matches once renamed.
                let tag = format!("g{generation} ");
                block_until(&seen, "the new file to be followed", |g| {
                    g.raw.starts_with(&tag)
                });
            }
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if generation + 1 == gens {
            break;
        }
        std::fs::rename(&log, log.with_extension("log.1")).unwrap();
        for _ in 0..20 {
            let line = format!("g{generation} line {n:06} written-after-rename");
            writeln!(f, "{line}").unwrap();
            all.push(line);
            n += 1;
        }
        f = open_append(&log);
    }
    all
}

async fn rename_rotation(poll: bool) {
    let (_dir, logs, state) = tmp();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let mut spec = file_spec(&[&log], Mode::Tail);
    if poll {
        spec = polling(spec);
    }
    let (acq, rx) = start(vec![spec], &state).await;
    let col = Collector::spawn(rx);
    let seen = col.shared();
    let expected = tokio::task::spawn_blocking(move || rename_writer(log, seen, 5, 300))
        .await
        .unwrap();
    col.wait_count(expected.len()).await;
    let raws = finish(acq, col).await;
    assert_exactly_once(&raws, &expected);
    assert_in_order_per_generation(&raws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_reads_every_line_once() {
    rename_rotation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_reads_every_line_once_when_polling() {
    rename_rotation(true).await;
}

/// logrotate's copytruncate: copy `app.log` to `app.log.N`, truncate `app.log`; the daemon
/// keeps appending. The glob matches the copies, so lines not read before the truncation are
/// read from the copy, and lines already read are not read again.
fn copytruncate_writer(
    logs: PathBuf,
    seen: Arc<Mutex<Vec<Got>>>,
    gens: usize,
    per_gen: usize,
) -> Vec<String> {
    let log = logs.join("app.log");
    let mut all = Vec::new();
    let mut f = open_append(&log);
    let mut n = 0;
    for generation in 0..gens {
        for i in 0..per_gen {
            let line = format!("g{generation} line {n:06} copytruncate-padding-text");
            writeln!(f, "{line}").unwrap();
            all.push(line);
            n += 1;
            if i == per_gen / 2 {
                // The file is being read; what follows is written just before the rotation, so
                // part of it is likely only read from the copy.
                let tag = format!("g{generation} ");
                block_until(&seen, "the file to be read", |g| g.raw.starts_with(&tag));
            }
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if generation + 1 < gens {
            std::fs::copy(&log, logs.join(format!("app.log.{}", generation + 1))).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    all
}

async fn copytruncate_rotation(poll: bool) {
    let (_dir, logs, state) = tmp();
    std::fs::write(logs.join("app.log"), "").unwrap();
    let mut spec = file_spec(&[&logs.join("app.log*")], Mode::Tail);
    if poll {
        spec = polling(spec);
    }
    let (acq, rx) = start(vec![spec], &state).await;
    let col = Collector::spawn(rx);
    let dir = logs.clone();
    let seen = col.shared();
    let expected = tokio::task::spawn_blocking(move || copytruncate_writer(dir, seen, 6, 400))
        .await
        .unwrap();
    col.wait_count(expected.len()).await;
    let raws = finish(acq, col).await;
    assert_exactly_once(&raws, &expected);
    assert_in_order_per_generation(&raws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_rotation_reads_every_line_once() {
    copytruncate_rotation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_rotation_reads_every_line_once_when_polling() {
    copytruncate_rotation(true).await;
}

fn gzip(src: &Path, dst: &Path) {
    let data = std::fs::read(src).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
}

/// Rename, then compress the renamed file and delete it (logrotate `compress`), with a glob
/// that matches the compressed names too: compressed copies of content already read are not
/// read again.
fn compress_writer(
    logs: PathBuf,
    seen: Arc<Mutex<Vec<Got>>>,
    gens: usize,
    per_gen: usize,
) -> Vec<String> {
    let log = logs.join("app.log");
    let mut all = Vec::new();
    let mut f = open_append(&log);
    let mut n = 0;
    for generation in 0..gens {
        for i in 0..per_gen {
            let line = format!("g{generation} line {n:06} compress-rotation-padding");
            writeln!(f, "{line}").unwrap();
            all.push(line);
            n += 1;
            if i == per_gen / 2 {
                let tag = format!("g{generation} ");
                block_until(&seen, "the file to be read", |g| g.raw.starts_with(&tag));
            }
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if generation + 1 < gens {
            let rotated = logs.join("app.log.1");
            std::fs::rename(&log, &rotated).unwrap();
            f = open_append(&log);
            gzip(
                &rotated,
                &logs.join(format!("app.log.{}.gz", generation + 1)),
            );
            std::fs::remove_file(&rotated).unwrap();
        }
    }
    all
}

async fn compress_rotation(poll: bool) {
    let (_dir, logs, state) = tmp();
    std::fs::write(logs.join("app.log"), "").unwrap();
    let mut spec = file_spec(&[&logs.join("app.log*")], Mode::Tail);
    if poll {
        spec = polling(spec);
    }
    let (acq, rx) = start(vec![spec], &state).await;
    let col = Collector::spawn(rx);
    let dir = logs.clone();
    let seen = col.shared();
    let expected = tokio::task::spawn_blocking(move || compress_writer(dir, seen, 5, 300))
        .await
        .unwrap();
    col.wait_count(expected.len()).await;
    let raws = finish(acq, col).await;
    assert_exactly_once(&raws, &expected);
    assert_in_order_per_generation(&raws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_compress_rotation_reads_every_line_once() {
    compress_rotation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_compress_rotation_reads_every_line_once_when_polling() {
    compress_rotation(true).await;
}
