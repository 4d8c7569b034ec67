//! Hot paths of the decision index: `?ip=` lookups with a million decisions (hits and misses,
//! exact IPs and ranges), a stream delta after a few changes, and loading the index.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use lapi::index::{Filter, Inner};
use model::IpRange;
use store::StoredDecision;

fn decision(id: i64, ip: u32, len: u8) -> StoredDecision {
    let value = if len == 32 {
        std::net::Ipv4Addr::from(ip).to_string()
    } else {
        format!(
            "{}/{len}",
            std::net::Ipv4Addr::from(ip & (u32::MAX << (32 - len)))
        )
    };
    StoredDecision {
        id,
        alert_id: 1,
        created_at: 0,
        updated_at: 0,
        until: i64::MAX / 2,
        scenario: "crowdsecurity/ssh-bf".into(),
        kind: "ban".into(),
        scope: if len == 32 {
            "Ip".into()
        } else {
            "Range".into()
        },
        value: value.clone(),
        origin: "CAPI".into(),
        simulated: false,
        uuid: String::new(),
        range: IpRange::parse(&value).ok(),
    }
}

fn ips(n: usize, seed: u32) -> Vec<u32> {
    // A cheap deterministic generator (xorshift) spreads addresses over the whole space.
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
        .collect()
}

fn build(n: usize) -> (Inner, Vec<u32>) {
    let mut ix = Inner::new(3_600_000);
    let addrs = ips(n, 7);
    for (i, a) in addrs.iter().enumerate() {
        let len = if i % 100 == 0 { 24 } else { 32 };
        ix.upsert(&decision(i as i64 + 1, *a, len), 0);
    }
    (ix, addrs)
}

fn bench(c: &mut Criterion) {
    let (ix, addrs) = build(1_000_000);
    let misses = ips(4096, 99);
    let filter = Filter::default();
    let mut out = Vec::with_capacity(8);
    let mut i = 0usize;
    c.bench_function("lookup_hit_1M", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % addrs.len();
            let a = addrs[i];
            ix.lookup(&IpRange::V4(a, a), true, &mut out);
            out.len()
        })
    });
    c.bench_function("lookup_miss_1M", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % misses.len();
            let a = misses[i];
            ix.lookup(&IpRange::V4(a, a), true, &mut out);
            out.len()
        })
    });
    c.bench_function("lookup_and_filter_1M", |b| {
        b.iter(|| {
            out.clear();
            i = (i + 1) % addrs.len();
            let a = addrs[i];
            ix.lookup(&IpRange::V4(a, a), true, &mut out);
            ix.retain_matching(&mut out, &filter, 0);
            out.len()
        })
    });
    let mut ix2 = ix;
    let pos = ix2.seq();
    for k in 0..10 {
        ix2.set_until(k + 1, 10, 10);
    }
    c.bench_function("stream_delta_10_changes_1M", |b| {
        b.iter(|| ix2.delta(pos, &filter, true, 10))
    });
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("index_100k", |b| b.iter(|| build(100_000).0.active_len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
