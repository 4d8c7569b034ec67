//! `rampart run` end to end: the real binary tails a real log file, its in-process LAPI gets the
//! alert, and a bouncer sees the ban; SIGTERM stops it cleanly, and a restart reads on from where
//! it stopped.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Guard as Agent, free_port, wait_health};

fn start(dir: &Path, port: u16) -> Agent {
    start_with_metrics(dir, port, None)
}

fn start_with_metrics(dir: &Path, port: u16, metrics: Option<u16>) -> Agent {
    let metrics = metrics.map_or_else(|| "off".to_owned(), |p| format!("127.0.0.1:{p}"));
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
            .args(["--metrics", &metrics])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
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
    setup_with_metrics(None)
}

fn setup_with_metrics(metrics: Option<u16>) -> Setup {
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
    let agent = start_with_metrics(dir.path(), port, metrics);
    wait_health(port);
    // The LAPI answers before the agent has opened its files; tailing starts at their end.
    wait_log(dir.path(), "rampart agent:", 1);
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
    one_alert_per_scenario(&db, &["192.0.2.20", "192.0.2.21"]).await;
    assert!(sigterm(&mut agent).success());
}

/// The value of the sample whose line starts with `series` (name and labels as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_lines_buckets_alerts_and_lapi_requests() {
    let mport = free_port();
    // `_dir` keeps the temporary directory alive until the end of the test.
    let Setup {
        dir: _dir,
        log,
        port,
        key,
        mut agent,
        ..
    } = setup_with_metrics(Some(mport));
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&log, &sshd_failures("192.0.2.30", 8));
    // One line no parser takes.
    append(&log, "this is not a log line\n");
    wait_decision(port, &key, "192.0.2.30").await;
    let src = log.display().to_string();
    let expected = [
        (
            format!(
                "cs_filesource_hits_total{{source=\"{src}\",datasource_type=\"file\",acquis_type=\"syslog\"}}"
            ),
            9.0,
        ),
        (
            format!("cs_parser_hits_total{{source=\"{src}\",type=\"file\"}}"),
            9.0,
        ),
        (
            format!(
                "cs_parser_hits_ok_total{{source=\"{src}\",type=\"file\",acquis_type=\"syslog\"}}"
            ),
            8.0,
        ),
        (
            format!(
                "cs_parser_hits_ko_total{{source=\"{src}\",type=\"file\",acquis_type=\"syslog\"}}"
            ),
            1.0,
        ),
        (
            "cs_bucket_overflowed_total{name=\"rampart/ssh-bruteforce\"}".to_owned(),
            1.0,
        ),
        (
            format!(
                "cs_bucket_poured_total{{source=\"{src}\",type=\"file\",name=\"rampart/ssh-bruteforce\"}}"
            ),
            8.0,
        ),
        (
            "cs_active_decisions{reason=\"rampart/ssh-bruteforce\",origin=\"crowdsec\",action=\"ban\"}"
                .to_owned(),
            1.0,
        ),
        ("rampart_outbox_queued_alerts".to_owned(), 0.0),
        (
            "cs_lapi_decisions_ok_total{bouncer=\"test\"}".to_owned(),
            1.0,
        ),
    ];
    // Bucket counters are published once a second: poll until they all show.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(mport).await;
        let missing: Vec<String> = expected
            .iter()
            .filter(|(series, want)| sample(&text, series) != Some(*want))
            .map(|(series, want)| format!("{series} = {want} (got {:?})", sample(&text, series)))
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not as expected:\n{}\n--- exposition ---\n{text}",
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(sample(&text, "rampart_alerts_sent_total").is_some_and(|v| v >= 1.0));
    assert!(
        text.lines()
            .any(|l| l.starts_with("cs_lapi_machine_requests_total{")
                && l.contains("route=\"/v1/alerts\",method=\"POST\"")),
        "{text}"
    );
    assert!(text.contains("cs_buckets{name=\"rampart/ssh-bruteforce\"}"));
    assert!(text.contains("cs_lapi_request_duration_seconds_bucket{"));
    assert!(text.contains("cs_info{version="));
    cscli_reads_the_exposition(mport, &src);
    assert!(sigterm(&mut agent).success());
}

/// Debian's `cscli metrics` (CrowdSec 1.4.6) renders Rampart's endpoint: dashboards and habits
/// built on CrowdSec's metric names carry over.
fn cscli_reads_the_exposition(mport: u16, src: &str) {
    let out = match Command::new("cscli")
        .args([
            "metrics",
            "-o",
            "json",
            "-u",
            &format!("http://127.0.0.1:{mport}"),
        ])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "cscli is required under CI=true (scripts/test.sh installs crowdsec): {e}"
            );
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: cscli metrics compatibility (crowdsec is not installed)\n",
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // cscli prints one JSON object per table, back to back.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut objects = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let acquisition = objects.next().unwrap().unwrap();
    let file = &acquisition[format!("file:{src}")];
    assert_eq!(file["reads"], 9, "{text}");
    assert_eq!(file["parsed"], 8, "{text}");
    assert_eq!(file["unparsed"], 1, "{text}");
    assert_eq!(file["pour"], 24, "{text}");
    let overflows = objects
        .filter_map(Result::ok)
        .find_map(|o| o["rampart/ssh-bruteforce"].get("overflow").cloned());
    assert_eq!(overflows, Some(serde_json::json!(1)), "{text}");
}

fn sighup(agent: &Agent) {
    let _ = Command::new("kill")
        .args(["-HUP", &agent.0.id().to_string()])
        .status();
}

/// Waits until the agent's stderr shows `needle` `n` times.
fn wait_log(dir: &Path, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = String::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("agent-"))
            {
                all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        if all.matches(needle).count() >= n {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "'{needle}' not logged {n} times:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_acquisition_and_a_broken_edit_keeps_the_running_one() {
    let Setup {
        dir,
        log,
        port,
        db,
        key,
        mut agent,
    } = setup();
    let second = dir.path().join("second.log");
    append(
        &second,
        "Dec  1 00:00:00 web2 sshd[1]: Server listening on 0.0.0.0 port 22.\n",
    );

    // A broken edit: the reload is refused and the agent keeps reading what it read.
    let acquis = dir.path().join("acquis.yaml");
    std::fs::write(&acquis, "source: file\nfilenames: [unclosed\n").unwrap();
    sighup(&agent);
    wait_log(dir.path(), "reload failed", 1);
    assert!(agent.0.try_wait().unwrap().is_none(), "the agent died");
    append(&log, &sshd_failures("192.0.2.40", 8));
    wait_decision(port, &key, "192.0.2.40").await;

    // A good edit adds a file: after the reload, attacks in it are caught, and the first file is
    // read on from where it was (its attack is not alerted again).
    std::fs::write(
        &acquis,
        format!(
            "source: file\nfilenames:\n  - {}\n  - {}\nlabels:\n  type: syslog\n",
            log.display(),
            second.display()
        ),
    )
    .unwrap();
    sighup(&agent);
    wait_log(dir.path(), "rampart agent:", 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&second, &sshd_failures("192.0.2.41", 8));
    append(&log, &sshd_failures("192.0.2.42", 8));
    wait_decision(port, &key, "192.0.2.41").await;
    wait_decision(port, &key, "192.0.2.42").await;
    assert!(sigterm(&mut agent).success());

    one_alert_per_scenario(&db, &["192.0.2.40", "192.0.2.41", "192.0.2.42"]).await;
}

/// Every IP has alerts, and no scenario alerted twice for it (a line read twice would).
async fn one_alert_per_scenario(db: &str, ips: &[&str]) {
    let store = store::Store::open(db).await.unwrap();
    let alerts = store
        .search_alerts(&store::AlertFilter {
            include_capi: true,
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    for ip in ips {
        let mut scenarios: Vec<&str> = alerts
            .iter()
            .filter(|a| a.source.value == *ip)
            .map(|a| a.scenario.as_str())
            .collect();
        assert!(!scenarios.is_empty(), "no alert for {ip}");
        let n = scenarios.len();
        scenarios.sort_unstable();
        scenarios.dedup();
        assert_eq!(n, scenarios.len(), "{ip} alerted twice: {scenarios:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_held_up_by_a_parked_long_poll() {
    let Setup {
        dir: _dir,
        port,
        key,
        mut agent,
        ..
    } = setup();
    // A bouncer parks on the push stream for up to 5 minutes.
    let url = format!("http://127.0.0.1:{port}/v1/decisions/stream");
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{url}?startup=true"))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();
    assert!(first.status().is_success());
    let parked = tokio::spawn(
        client
            .get(format!("{url}?wait=300s"))
            .header("X-Api-Key", key.clone())
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!parked.is_finished(), "the long-poll should be parked");
    // The agent stops within sigterm()'s deadline (30 s), far less than the 5-minute wait, and
    // the parked bouncer gets an answer rather than a dropped connection.
    assert!(sigterm(&mut agent).success());
    let answer = parked.await.unwrap().unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// `rampart run --demo` in `dir`, its stderr in `dir/agent-*.log`.
fn start_demo(dir: &Path, port: u16) -> Agent {
    let log = std::fs::File::create(dir.join(format!(
        "agent-demo-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )))
    .unwrap();
    Agent(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["run", "--demo", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--metrics", "off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn alert_count(db: &str) -> usize {
    let store = store::Store::open(db).await.unwrap();
    let n = store
        .search_alerts(&store::AlertFilter {
            include_capi: true,
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    store.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_logs_are_read_once_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("data/rampart.db").display());
    let port = free_port();
    let mut agent = start_demo(dir.path(), port);
    wait_health(port);
    wait_log(dir.path(), "reading the demo logs", 1);
    // Alerts arrive within a few seconds; wait until their number holds still.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    loop {
        let n = alert_count(&db).await;
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0 && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(Instant::now() < deadline, "no demo alerts settled ({n})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sigterm(&mut agent).success());
    let first = alert_count(&db).await;

    // A second run of the README's first command says so and raises nothing again.
    let mut agent = start_demo(dir.path(), port);
    wait_health(port);
    wait_log(dir.path(), "demo logs were read by an earlier run", 1);
    assert!(sigterm(&mut agent).success());
    assert_eq!(alert_count(&db).await, first, "the demo was read twice");
}
