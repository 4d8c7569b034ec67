//! Steady-state matching cost: an nginx access line at three lengths (the long ones are where
//! the regex crate's default capture engine falls off the PikeVM cliff) and a line that the
//! big sshd alternation must reject.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use grok::{Captures, Grok, PatternSet};

/// Written here rather than read from the hub so the bench runs without `/work/shared`; same
/// shape as the hub's NGINXACCESS.
const NGINX_FALLBACK: &str = r#"%{IPORHOST:remote_addr} - %{USERNAME:remote_user} \[%{HTTPDATE:time_local}\] "%{WORD:method} %{URIPATHPARAM:request} HTTP/%{NUMBER:http_version}" %{NUMBER:status} %{NUMBER:body_bytes_sent} "%{DATA:http_referer}" "%{DATA:http_user_agent}""#;
const SSHD_FALLBACK: &str = r"Failed %{WORD:auth} for (?:invalid user )?%{USERNAME:user} from %{IP:ip} port %{NUMBER:port}|Invalid user %{USERNAME:user} from %{IP:ip}|Disconnecting: %{GREEDYDATA:status} \[%{GREEDYDATA:privsep}\]";

fn library() -> (PatternSet, bool) {
    let mut set = PatternSet::new();
    let hub =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/crowdsec-hub/patterns");
    let loaded = hub.is_dir() && set.load_dir(&hub).is_ok();
    if !loaded {
        eprintln!("hub patterns not found, using built-in stand-ins");
    }
    (set, loaded)
}

fn compile(set: &PatternSet, pattern: &str) -> Grok {
    set.compile(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn nginx_line(target_len: usize) -> String {
    let head = r#"203.0.113.9 - - [28/Jan/2016:14:19:36 +0300] "GET /zero.html?id=42 HTTP/1.1" 200 398 "-" ""#;
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/47.0 ";
    let mut line = head.to_owned();
    while line.len() + 1 < target_len {
        let room = target_len - 1 - line.len();
        line.push_str(&ua[..room.min(ua.len())]);
    }
    line.push('"');
    line
}

fn bench(c: &mut Criterion) {
    let (set, hub) = library();
    let nginx = compile(
        &set,
        if hub {
            "%{NGINXACCESS}"
        } else {
            NGINX_FALLBACK
        },
    );
    let sshd = compile(&set, if hub { "%{SSHD_LOG}" } else { SSHD_FALLBACK });
    let mut caps = Captures::new();

    for (label, len) in [("200B", 200), ("1.6KB", 1600), ("8KB", 8192)] {
        let line = nginx_line(len);
        assert!(
            nginx.captures(&line, &mut caps),
            "bench line must match: {line}"
        );
        c.bench_function(&format!("nginx captures {label}"), |b| {
            b.iter(|| {
                let ok = nginx.captures(black_box(&line), &mut caps);
                black_box(nginx.fields(&line, &caps).count());
                ok
            })
        });
    }
    let line = nginx_line(200);
    c.bench_function("nginx is_match 200B", |b| {
        b.iter(|| nginx.is_match(black_box(&line)))
    });

    let miss = "Connection from 198.51.100.7 port 52814 on 192.0.2.10 port 22 rdomain \"\"";
    assert!(!sshd.captures(miss, &mut caps));
    c.bench_function("sshd non-matching line", |b| {
        b.iter(|| sshd.captures(black_box(miss), &mut caps))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
