//! Debian's `crowdsec` 1.4.6 LAPI registered to Rampart's central server (`rampart central` on a
//! real PostgreSQL), its `online_api_credentials.yaml` pointed at it: it pulls the community
//! blocklist (CAPI v2) and serves it to bouncers as `CAPI` decisions, and pushes its alerts as
//! signals that count in the consensus.
//!
//! CrowdSec 1.4.6 pulls only once a machine that declared scenarios has logged in, and pushes
//! signals every 30 s ± 15 s: the test logs a watcher in with scenarios and posts an alert
//! through CrowdSec's own LAPI, then polls with generous deadlines.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod compat;

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::Duration;

use compat::{DEBIAN_HUB, Harness, Needs};
use serde_json::{Value, json};

const PASSWORD: &str = "compat-test-password-0123456789";
const TEST: &str = "crowdsec_lapi_pulls_and_pushes_through_rampart_central";

/// A small HTTP client with its own runtime (the harness is synchronous).
struct Http {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder()
                .user_agent("crowdsec/v1.4.6-compat-test")
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        })
    }

    fn ok(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Value {
        match self.request(method, url, headers, body) {
            Ok((200..=299, v)) => v,
            other => panic!("{method} {url}: {other:?}"),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A machine of the community, in the network of `forwarded` (the server trusts 127.0.0.1 as a
/// proxy); returns its token.
fn peer(http: &Http, central: &str, name: &str, forwarded: &str) -> String {
    let xff = [("X-Forwarded-For", forwarded)];
    http.ok(
        "POST",
        &format!("{central}/v3/watchers"),
        &xff,
        Some(&json!({"machine_id": name, "password": PASSWORD})),
    );
    let v = http.ok(
        "POST",
        &format!("{central}/v3/watchers/login"),
        &xff,
        Some(&json!({"machine_id": name, "password": PASSWORD, "scenarios": ["crowdsecurity/ssh-bf"]})),
    );
    v["token"].as_str().unwrap().to_owned()
}

fn signal(value: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"message": format!("Ip {value} performed 'crowdsecurity/ssh-bf'"),
           "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "h", "scenario_version": "0.1",
           "source": {"scope": "Ip", "value": value, "ip": value},
           "start_at": now, "stop_at": now})
}

fn listed(http: &Http, central: &str, token: &str) -> Vec<String> {
    let bearer = format!("Bearer {token}");
    let v = http.ok(
        "GET",
        &format!("{central}/v3/decisions/stream?startup=true"),
        &[("Authorization", &bearer)],
        None,
    );
    v["new"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["decisions"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d["value"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn crowdsec_lapi_pulls_and_pushes_through_rampart_central() {
    let Some(progs) = Needs::default()
        .programs(&["crowdsec", "cscli"])
        .files(&[DEBIAN_HUB, "/etc/crowdsec/profiles.yaml"])
        .check(TEST)
    else {
        return;
    };
    let http = Http::new();
    let Some(pg) = http.rt.block_on(testkit::postgres()) else {
        return;
    };
    let h = Harness::new();

    // Rampart's central server, trusting every machine from the start (a fleet).
    let cport = free_port();
    let central = format!("http://127.0.0.1:{cport}");
    let ccfg = h.write(
        "central.yaml",
        &format!(
            "listen: 127.0.0.1:{cport}\ndb_url: {}\ntrusted_proxies: [127.0.0.1/32]\njob_interval: 1s\nregistrations_per_hour: 0\nconsensus:\n  trust:\n    new_machine: 1.0\n",
            pg.url
        ),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["central", "-c"])
        .arg(&ccfg)
        .env("RAMPART_LOG", "info,sqlx=warn");
    h.spawn("central", cmd);
    h.wait_for("rampart central's /health", Duration::from_secs(30), || {
        matches!(
            http.request("GET", &format!("{central}/health"), &[], None),
            Ok((200, _))
        )
        .then_some(())
    });

    // The community: five machines in three networks report 192.0.2.66; four machines in two
    // networks report 192.0.2.77 (two networks are not enough to list it).
    let mut tokens = Vec::new();
    for (i, net) in [
        "203.0.113.10",
        "203.0.113.11",
        "198.51.100.5",
        "192.0.2.200",
        "192.0.2.201",
    ]
    .iter()
    .enumerate()
    {
        let t = peer(&http, &central, &format!("peer{i}"), net);
        let bearer = format!("Bearer {t}");
        let mut batch = vec![signal("192.0.2.66")];
        if !net.starts_with("198.") {
            batch.push(signal("192.0.2.77"));
        }
        http.ok(
            "POST",
            &format!("{central}/v2/signals"),
            &[("Authorization", &bearer), ("X-Forwarded-For", net)],
            Some(&Value::Array(batch)),
        );
        tokens.push(t);
    }
    h.wait_for("192.0.2.66 to be listed", Duration::from_secs(60), || {
        listed(&http, &central, &tokens[0])
            .contains(&"192.0.2.66".to_owned())
            .then_some(())
    });
    assert!(!listed(&http, &central, &tokens[0]).contains(&"192.0.2.77".to_owned()));

    // CrowdSec's LAPI, registered to the central server like `cscli capi register` does.
    let cs_login = "crowdsec146lapimachine0123456789abcdefghijklmnop";
    http.ok(
        "POST",
        &format!("{central}/v2/watchers"),
        &[],
        Some(&json!({"machine_id": cs_login, "password": PASSWORD})),
    );
    let creds = h.write(
        "crowdsec/online_api_credentials.yaml",
        &format!("url: {central}/\nlogin: {cs_login}\npassword: {PASSWORD}\n"),
    );
    let lport = free_port();
    let lapi = format!("http://127.0.0.1:{lport}");
    let d = h.path("crowdsec");
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::copy("/etc/crowdsec/profiles.yaml", d.join("profiles.yaml")).unwrap();
    // 1.4.6 console options: share alerts of hub and local scenarios, not manual decisions.
    h.write(
        "crowdsec/console.yaml",
        "share_manual_decisions: false\nshare_custom: true\nshare_tainted: true\n",
    );
    let dd = d.display();
    let cfg = h.write(
        "crowdsec/config.yaml",
        &format!(
            "common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: .
config_paths:
  config_dir: {dd}/
  data_dir: {dd}/data/
  simulation_path: {dd}/simulation.yaml
  hub_dir: {DEBIAN_HUB}/
  index_path: {DEBIAN_HUB}/.index.json
  notification_dir: {dd}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
db_config:
  type: sqlite
  db_path: {dd}/data/crowdsec.db
  use_wal: true
api:
  client:
    credentials_path: {dd}/local_api_credentials.yaml
  server:
    listen_uri: 127.0.0.1:{lport}
    profiles_path: {dd}/profiles.yaml
    console_path: {dd}/console.yaml
    online_client:
      credentials_path: {}
prometheus:
  enabled: false
",
            creds.display()
        ),
    );
    let mut cmd = Command::new(progs.get("crowdsec"));
    cmd.arg("-c").arg(&cfg).arg("-no-cs");
    h.spawn("crowdsec-lapi", cmd);
    h.wait_for("CrowdSec's LAPI /health", Duration::from_secs(60), || {
        matches!(
            http.request("GET", &format!("{lapi}/health"), &[], None),
            Ok((200, _))
        )
        .then_some(())
    });
    let cscli = || {
        let mut c = Command::new(progs.get("cscli"));
        c.arg("-c").arg(&cfg).arg("--error");
        c
    };
    h.output(
        cscli()
            .args(["machines", "add", "tester", "--password", PASSWORD, "-f"])
            .arg(h.path("crowdsec/tester.yaml")),
    );
    let key = h
        .output(cscli().args(["bouncers", "add", "probe", "-o", "raw"]))
        .trim()
        .to_owned();

    // A watcher that runs scenarios logs in: CrowdSec 1.4.6 starts pulling.
    let v = http.ok(
        "POST",
        &format!("{lapi}/v1/watchers/login"),
        &[],
        Some(&json!({"machine_id": "tester", "password": PASSWORD, "scenarios": ["crowdsecurity/ssh-bf"]})),
    );
    let bearer = format!("Bearer {}", v["token"].as_str().unwrap());
    let decision = h.wait_for(
        "CrowdSec's LAPI to serve the community decision for 192.0.2.66",
        Duration::from_secs(120),
        || {
            let (status, v) = http
                .request(
                    "GET",
                    &format!("{lapi}/v1/decisions?ip=192.0.2.66"),
                    &[("X-Api-Key", &key)],
                    None,
                )
                .ok()?;
            (status == 200).then_some(())?;
            v.as_array()?.first().cloned()
        },
    );
    assert_eq!(decision["origin"], "CAPI", "{decision}");
    assert_eq!(decision["type"], "ban", "{decision}");
    assert_eq!(decision["scope"], "Ip", "{decision}");
    assert_eq!(decision["scenario"], "crowdsecurity/ssh-bf", "{decision}");
    let left = compat::go_duration_secs(decision["duration"].as_str().unwrap());
    assert!(
        left > 40.0 * 3600.0,
        "the community decision lasts 48 h: {decision}"
    );

    // An alert through CrowdSec's LAPI reaches the central server as a signal (30 s ± 15 s
    // later) and is the third network that lists 192.0.2.77.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let alert = json!([{
        "capacity": 5, "decisions": [], "events": [], "events_count": 6, "leakspeed": "10s",
        "message": "Ip 192.0.2.77 performed 'crowdsecurity/ssh-bf' (6 events over 3s)",
        "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f",
        "scenario_version": "0.1", "simulated": false,
        "source": {"ip": "192.0.2.77", "scope": "Ip", "value": "192.0.2.77"},
        "start_at": now, "stop_at": now,
    }]);
    http.ok(
        "POST",
        &format!("{lapi}/v1/alerts"),
        &[("Authorization", &bearer)],
        Some(&alert),
    );
    h.wait_for(
        "CrowdSec's signal to list 192.0.2.77 on the central server",
        Duration::from_secs(150),
        || {
            listed(&http, &central, &tokens[0])
                .contains(&"192.0.2.77".to_owned())
                .then_some(())
        },
    );
    // (Log fields may carry colour codes: look for both words on one line.)
    let log = h.log("central");
    assert!(
        log.lines()
            .any(|l| l.contains("signals accepted") && l.contains(cs_login)),
        "no push from CrowdSec's LAPI in the central log\n{}",
        h.context()
    );
}
