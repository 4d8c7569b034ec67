//! Lines per second through CrowdSec's own hub parsers, on the shared corpus generator's logs:
//! `syslog-logs` + `sshd-logs` + `dateparse-enrich` on auth.log, and `nginx-logs` + `http-logs` +
//! `dateparse-enrich` on access.log.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hub::Hub;
use parse::{Event, ExpectMode, Line, ParserFile, Parsers};

const LINES: usize = 20_000;

fn shared() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    d.join("compat/crowdsec-hub").is_dir().then_some(d)
}

fn load(hub: &Hub, names: &[&str]) -> Parsers {
    let files: Vec<ParserFile> = names
        .iter()
        .map(|n| ParserFile::from_hub_path(&hub.item_path("parsers", n).unwrap()).unwrap())
        .collect();
    let root = hub.root();
    let ctx = parse::Ctx::new(Some(&root.join("patterns")), Some(&root.join("data"))).unwrap();
    Parsers::load(ctx, &files).unwrap()
}

fn lines(path: &Path, n: usize) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(n)
        .map(str::to_owned)
        .collect()
}

fn run(parsers: &Parsers, raw: &[String], kind: &str) -> usize {
    let mut labels = HashMap::new();
    labels.insert("type".to_owned(), kind.to_owned());
    let mut ok = 0;
    for r in raw {
        let line = Line {
            raw: r.clone(),
            src: "bench.log".into(),
            time: None,
            labels: labels.clone(),
            process: true,
            module: "file".into(),
        };
        let mut evt = Event::from_line(line, ExpectMode::TimeMachine);
        ok += usize::from(parsers.parse(&mut evt));
    }
    ok
}

fn bench(c: &mut Criterion) {
    let Some(shared) = shared() else {
        println!(
            "skipped: ../shared/compat/crowdsec-hub not found (the hub parsers this bench runs)"
        );
        return;
    };
    let hub = Hub::open(&shared.join("compat/crowdsec-hub")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(shared.join("bench/gen_corpus.py"))
        .args(["--lines", &(LINES * 2).to_string(), "--seed", "1", "--out"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "gen_corpus.py failed");

    let sshd = load(
        &hub,
        &[
            "crowdsecurity/syslog-logs",
            "crowdsecurity/sshd-logs",
            "crowdsecurity/dateparse-enrich",
        ],
    );
    let nginx = load(
        &hub,
        &[
            "crowdsecurity/syslog-logs",
            "crowdsecurity/nginx-logs",
            "crowdsecurity/http-logs",
            "crowdsecurity/dateparse-enrich",
        ],
    );
    let auth = lines(&dir.path().join("auth.log"), LINES);
    let access = lines(&dir.path().join("access.log"), LINES);

    let mut table = Vec::new();
    for (name, parsers, raw, kind) in [
        ("sshd", &sshd, &auth, "syslog"),
        ("nginx", &nginx, &access, "nginx"),
    ] {
        let parsed = run(parsers, raw, kind);
        let t = std::time::Instant::now();
        run(parsers, raw, kind);
        let secs = t.elapsed().as_secs_f64();
        table.push((name, raw.len(), parsed, raw.len() as f64 / secs));

        let mut g = c.benchmark_group("pipeline");
        g.throughput(Throughput::Elements(raw.len() as u64));
        g.sample_size(10);
        g.bench_function(name, |b| b.iter(|| run(parsers, raw, kind)));
        g.finish();
    }
    println!("\n| chain | lines | parsed | lines/s (one pass) |\n|---|---|---|---|");
    for (name, n, parsed, rate) in table {
        println!("| {name} | {n} | {parsed} | {rate:.0} |");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
