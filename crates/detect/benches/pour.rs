//! Bucket updates: events per second poured into leaky scenarios, with few and with many
//! distinct keys (the latter creates and garbage-collects instances).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use detect::{Detector, ScenarioFile, Scenarios};
use parse::{Ctx, Event, ExpectMode, Line};

const SCENARIOS: &str = "type: leaky
name: b/ssh-bf
description: b
filter: evt.Meta.log_type == 'ssh_failed-auth'
groupby: evt.Meta.source_ip
capacity: 5
leakspeed: 10s
blackhole: 1m
labels:
  remediation: true
---
type: leaky
name: b/ssh-user-enum
description: b
filter: evt.Meta.log_type == 'ssh_failed-auth'
groupby: evt.Meta.source_ip
distinct: evt.Meta.target_user
capacity: 5
leakspeed: 10s
blackhole: 1m
---
type: trigger
name: b/http-only
description: b
filter: evt.Meta.log_type in ['http_access-log', 'http_error-log']
groupby: evt.Meta.source_ip
";

fn events(n: usize, keys: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = Event::from_line(Line::default(), ExpectMode::TimeMachine);
            e.meta.insert("log_type".into(), "ssh_failed-auth".into());
            let k = i % keys;
            e.meta.insert(
                "source_ip".into(),
                format!("10.{}.{}.{}", k >> 16 & 255, k >> 8 & 255, k & 255),
            );
            e.meta
                .insert("target_user".into(), format!("user{}", i % 7));
            let t = chrono::DateTime::from_timestamp(1_700_000_000 + (i as i64) * 3, 0).unwrap();
            e.marshaled_time = parse::enrich::date::marshal_time(&t.fixed_offset());
            e
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.yaml");
    std::fs::write(&p, SCENARIOS).unwrap();
    let ctx = Ctx::new(None, None).unwrap();
    let scenarios = Arc::new(Scenarios::load(&ctx, &[ScenarioFile::new(&p)]).unwrap());
    let mut g = c.benchmark_group("pour");
    for (name, keys) in [("10_keys", 10), ("100k_keys", 100_000)] {
        let evs = events(100_000, keys);
        g.throughput(Throughput::Elements(evs.len() as u64));
        g.sample_size(10);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = Detector::new(Arc::clone(&scenarios));
                let mut out = Vec::new();
                for e in &evs {
                    d.pour(e, &mut out);
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
