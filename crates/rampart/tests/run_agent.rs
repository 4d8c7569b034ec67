//! `rampart run` end to end: the real binary tails a real log file, its in-process LAPI gets the
//! alert, and a bouncer sees the ban; SIGTERM stops it cleanly, and a restart reads on from where
//! it stopped.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, port: u16) -> Agent {
    let log = std::fs::File::create(
        dir.join(format!("agent-{}.log", Instant::now().elapsed().as_nanos())),
    )
    .unwrap();
    Agent(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["run", "--acquis"])
            .arg(dir.join("acquis.yaml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn wait_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut buf);
            if buf.contains("\"up\"") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "LAPI did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sshd_failures(ip: &str, n: usize) -> String {
    let now = chrono::Local::now().format("%b %e %H:%M:%S");
    (0..n)
        .map(|i| format!("{now} web1 sshd[{}]: Failed password for invalid user admin{i} from {ip} port {} ssh2\n", 1000 + i, 40000 + i))
        .collect()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

async fn decision_for(port: u16, key: &str, ip: &str) -> bool {
    let url = format!("http://127.0.0.1:{port}/v1/decisions?ip={ip}");
    let r = reqwest::Client::new()
        .get(url)
        .header("X-Api-Key", key)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v.as_array().is_some_and(|a| !a.is_empty())
}

async fn wait_decision(port: u16, key: &str, ip: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !decision_for(port, key, ip).await {
        assert!(Instant::now() < deadline, "no decision for {ip}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(agent: &mut Agent) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = agent.0.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp dir with an sshd log and its acquisition, a running agent whose LAPI is up, the
/// database URL and a bouncer key.
struct Setup {
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
    port: u16,
    db: String,
    key: String,
    agent: Agent,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(
        &log,
        "Dec  1 00:00:00 web1 sshd[1]: Server listening on 0.0.0.0 port 22.\n",
    );
    std::fs::write(
        dir.path().join("acquis.yaml"),
        format!(
            "source: file\nfilenames:\n  - {}\nlabels:\n  type: syslog\n",
            log.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let agent = start(dir.path(), port);
    wait_health(port);
    let db = format!("sqlite://{}", dir.path().join("data/rampart.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["bouncers", "add", "test", "--db", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    Setup {
        dir,
        log,
        port,
        db,
        key,
        agent,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_attack_becomes_a_ban_and_a_restart_reads_on() {
    let Setup {
        dir,
        log,
        port,
        db,
        key,
        mut agent,
    } = setup();
    // Tailing: only what is written after start counts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&log, &sshd_failures("192.0.2.10", 8));
    wait_decision(port, &key, "192.0.2.10").await;
    assert!(sigterm(&mut agent).success());

    // While it is down, another attack is logged; after the restart it is read (and the first
    // one is not read again: one alert per attacker).
    append(&log, &sshd_failures("192.0.2.11", 8));
    let mut agent = start(dir.path(), port);
    wait_health(port);
    wait_decision(port, &key, "192.0.2.11").await;
    let store = store::Store::open(&db).await.unwrap();
    let alerts = store
        .search_alerts(&store::AlertFilter {
            include_capi: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ips: Vec<String> = alerts.iter().map(|a| a.source.value.clone()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips, ["192.0.2.10", "192.0.2.11"]);
    let mut first: Vec<&str> = alerts
        .iter()
        .filter(|a| a.source.value == "192.0.2.10")
        .map(|a| a.scenario.as_str())
        .collect();
    let n = first.len();
    first.sort_unstable();
    first.dedup();
    assert_eq!(n, first.len(), "the first attack was read twice: {first:?}");
    assert!(sigterm(&mut agent).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_an_alert_neither_loses_nor_doubles() {
    let Setup {
        dir,
        log,
        port,
        db,
        key,
        mut agent,
    } = setup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&log, &sshd_failures("192.0.2.20", 8));
    wait_decision(port, &key, "192.0.2.20").await;
    // No chance to save anything on the way out.
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    append(&log, &sshd_failures("192.0.2.21", 8));
    let mut agent = start(dir.path(), port);
    wait_health(port);
    wait_decision(port, &key, "192.0.2.21").await;
    let store = store::Store::open(&db).await.unwrap();
    let alerts = store
        .search_alerts(&store::AlertFilter {
            include_capi: true,
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    for ip in ["192.0.2.20", "192.0.2.21"] {
        let mut scenarios: Vec<&str> = alerts
            .iter()
            .filter(|a| a.source.value == ip)
            .map(|a| a.scenario.as_str())
            .collect();
        assert!(!scenarios.is_empty(), "no alert for {ip}");
        let n = scenarios.len();
        scenarios.sort_unstable();
        scenarios.dedup();
        assert_eq!(
            n,
            scenarios.len(),
            "{ip} alerted twice for one attack: {scenarios:?}"
        );
    }
    assert!(sigterm(&mut agent).success());
}
