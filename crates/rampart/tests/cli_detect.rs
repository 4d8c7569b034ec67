//! End-to-end: `rampart replay` and `rampart hubtest` on Rampart's own content and demo logs.
//! The expected alerts were cross-checked with CrowdSec 1.4.6 replaying the same files with the
//! same content (see demo/README.md).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn replay(log: &str, kind: &str) -> Vec<(String, String, i64)> {
    let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["replay", "--file"])
        .arg(repo().join("demo").join(log))
        .args(["--type", kind, "-o", "json", "--hub"])
        .arg(repo().join("hub"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut got: Vec<(String, String, i64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["scenario"].as_str().unwrap().to_owned(),
                a["source"]["value"].as_str().unwrap().to_owned(),
                a["events_count"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    got
}

fn golden(name: &str, got: &[(String, String, i64)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text: String = got
        .iter()
        .map(|(s, v, n)| format!("{s} {v} {n}\n"))
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn replay_of_demo_logs_gives_the_expected_alerts() {
    golden("auth.log.alerts", &replay("auth.log", "syslog"));
    golden(
        "nginx-access.log.alerts",
        &replay("nginx-access.log", "nginx"),
    );
    golden(
        "apache-access.log.alerts",
        &replay("apache-access.log", "apache2"),
    );
}

#[test]
fn own_hub_tests_pass() {
    let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["hubtest", "run", "--hub"])
        .arg(repo().join("hub"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn replay_of_a_missing_file_is_a_clear_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "replay",
            "--file",
            "/nonexistent/x.log",
            "--type",
            "syslog",
            "--hub",
        ])
        .arg(repo().join("hub"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.log"));
}

#[test]
fn replay_is_deterministic_whatever_the_thread_count() {
    let run = |threads: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["replay", "--file"])
            .arg(repo().join("demo/auth.log"))
            .args([
                "--type",
                "syslog",
                "-o",
                "json",
                "--threads",
                threads,
                "--hub",
            ])
            .arg(repo().join("hub"))
            .output()
            .unwrap();
        assert!(o.status.success());
        o.stdout
    };
    let one = run("1");
    assert_eq!(one, run("3"));
    assert_eq!(one, run("3"));
}

fn replay_args(log: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["replay", "--file"])
        .arg(log)
        .args(["--type", "syslog", "-o", "json", "--hub"])
        .arg(repo().join("hub"))
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn keys(alerts: &[serde_json::Value]) -> Vec<String> {
    let mut k: Vec<String> = alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}",
                a["scenario"], a["source"]["value"], a["events_count"], a["stop_at"]
            )
        })
        .collect();
    k.sort();
    k
}

#[test]
fn bucket_state_carries_a_replay_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("demo/auth.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Cut in the middle of an attack.
    let (a, b) = lines.split_at(lines.len() / 2);
    let first = dir.path().join("first.log");
    let second = dir.path().join("second.log");
    std::fs::write(&first, a.join("\n") + "\n").unwrap();
    std::fs::write(&second, b.join("\n") + "\n").unwrap();
    let state = dir.path().join("buckets.json");
    let st = state.to_str().unwrap();

    let whole = replay_args(&repo().join("demo/auth.log"), &[]);
    let mut pieces = replay_args(&first, &["--state", st]);
    assert!(state.is_file());
    pieces.extend(replay_args(&second, &["--state", st]));
    assert_eq!(keys(&pieces), keys(&whole));

    // Without the state the second half alone misses what started in the first.
    let mut cold = replay_args(&first, &[]);
    cold.extend(replay_args(&second, &[]));
    assert_ne!(keys(&cold), keys(&whole));
}

#[test]
fn simulation_yaml_flags_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("simulation.yaml");
    std::fs::write(
        &sim,
        "simulation: false\nexclusions:\n  - rampart/ssh-bruteforce\n",
    )
    .unwrap();
    let alerts = replay_args(
        &repo().join("demo/auth.log"),
        &["--simulation", sim.to_str().unwrap()],
    );
    assert!(!alerts.is_empty());
    for a in &alerts {
        let simulated = a["simulated"].as_bool().unwrap();
        assert_eq!(simulated, a["scenario"] == "rampart/ssh-bruteforce", "{a}");
    }
    std::fs::write(&sim, "simulation: true\nbogus: 1\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["replay", "--type", "syslog", "--file"])
        .arg(repo().join("demo/auth.log"))
        .args(["--simulation", sim.to_str().unwrap(), "--hub"])
        .arg(repo().join("hub"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bogus"));
}
