//! End-to-end compatibility with CrowdSec's own programs, unmodified, as Debian ships them:
//! `crowdsec-custom-bouncer` 0.0.15, `crowdsec-firewall-bouncer` 0.0.25 (nftables, in a network
//! namespace) and the `crowdsec` 1.4.6 agent replaying `demo/auth.log` as a watcher, all against
//! Rampart's LAPI (`rampart lapi`); and the other way round, Rampart's agent (`rampart run
//! --no-lapi`) sending its alerts to CrowdSec's LAPI.
//!
//! Each test starts its own LAPI on a free port with a fresh SQLite database; everything it starts
//! is stopped, and its namespace deleted, even when it fails (see `compat/mod.rs`).
//! Without the packages (or without root for the namespace test) a test says `skipped: ...` on
//! stderr; with `CI=true` it fails instead. `scripts/test.sh` installs the packages when root.
//!
//! `RAMPART_COMPAT_LAPI=crowdsec` runs the same tests against CrowdSec's own LAPI (`crowdsec
//! -no-cs`, administered with `cscli`): what the suite expects is what CrowdSec does.
//! `RAMPART_COMPAT_KEEP=1` keeps each test's directory (configurations and logs).

#![allow(clippy::unwrap_used)]

mod compat;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use compat::{
    Api, DEBIAN_HUB, DEBIAN_PATTERNS, Harness, Lapi, Needs, Programs, SCENARIO, go_duration_secs,
    nft_element, shift_syslog,
};
use serde_json::Value;

const PASSWORD: &str = "compat-test-password-0123456789";
/// How long a bouncer may take to apply a change (it polls every second).
const BOUNCER_WAIT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A machine `tester` (what cscli is to CrowdSec) and its JWT.
fn tester(h: &Harness, lapi: &Lapi, api: &Api) -> String {
    lapi.add_machine(h, "tester", PASSWORD);
    api.login("tester", PASSWORD)
}

/// `[]` and `null` both mean "nothing" in a stream answer (CrowdSec 1.4.6 sends `null`).
fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        other => panic!("expected a list or null, got {other}"),
    }
}

// ------------------------------------------------------------------ crowdsec-custom-bouncer

/// Debian's crowdsec-custom-bouncer running a script that records its calls.
struct CustomBouncer {
    calls: PathBuf,
}

impl CustomBouncer {
    fn start(h: &Harness, progs: &Programs, lapi: &Lapi, key: &str) -> CustomBouncer {
        // The bouncer runs `SCRIPT add|del VALUE SECONDS SCENARIO DECISION_JSON` per decision;
        // the script writes one line per call, its arguments separated by tabs, in one write.
        let calls = h.path("calls.tsv");
        let script = h.write(
            "hook.sh",
            &format!(
                "#!/bin/sh\nline=\nfor a in \"$@\"; do line=\"$line$a\t\"; done\nprintf '%s\\n' \"$line\" >> '{}'\n",
                calls.display()
            ),
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // Debian's /etc/crowdsec/bouncers/crowdsec-custom-bouncer.yaml, pointed at the LAPI
        // under test, in the foreground, logging to stdout, without its Prometheus listener.
        let cfg = h.write(
            "custom-bouncer.yaml",
            &format!(
                "bin_path: {script}
feed_via_stdin: false
total_retries: 0
scenarios_containing: []
scenarios_not_containing: []
origins: []
piddir: {dir}
update_frequency: 1s
cache_retention_duration: 10s
daemonize: false
log_mode: stdout
log_level: info
api_url: {url}/
api_key: {key}
prometheus:
  enabled: false
",
                script = script.display(),
                dir = h.path("").display(),
                url = lapi.url,
            ),
        );
        let mut cmd = Command::new(progs.get("crowdsec-custom-bouncer"));
        cmd.arg("-c").arg(&cfg);
        h.spawn("custom-bouncer", cmd);
        CustomBouncer { calls }
    }

    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                l.trim_end_matches('\t')
                    .split('\t')
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    /// Waits for a call `verb value ...`; returns its arguments.
    fn wait_call(&self, h: &Harness, verb: &str, value: &str) -> Vec<String> {
        h.wait_for(
            &format!("the custom bouncer's script to be called with `{verb} {value}`"),
            BOUNCER_WAIT,
            || {
                self.calls()
                    .into_iter()
                    .find(|c| c.len() >= 2 && c[0] == verb && c[1] == value)
            },
        )
    }
}

#[test]
fn custom_bouncer_runs_its_script_for_added_and_deleted_decisions() {
    let Some(progs) = Needs::default()
        .programs(&["crowdsec-custom-bouncer"])
        .check("custom_bouncer_runs_its_script_for_added_and_deleted_decisions")
    else {
        return;
    };
    let h = Harness::new();
    let lapi = h.start_lapi(Ipv4Addr::LOCALHOST, &progs);
    let api = Api::new(&lapi.url);
    let jwt = tester(&h, &lapi, &api);
    let key = lapi.add_bouncer(&h, "custom-bouncer");

    // Before the bouncer starts: it must get this one from its first `?startup=true` pull.
    api.add_decisions(&jwt, &[("Ip", "192.0.2.10")], "1h");
    let bouncer = CustomBouncer::start(&h, &progs, &lapi, &key);
    let wait_call = |verb: &str, value: &str| bouncer.wait_call(&h, verb, value);
    let read_calls = || bouncer.calls();
    let check_add = |call: &[String], scope: &str, value: &str| {
        assert_eq!(call.len(), 5, "script called with {call:?}");
        let secs: i64 = call[2].parse().unwrap();
        assert!(
            (3500..=3600).contains(&secs),
            "a 1h decision given to the script with {secs} s left: {call:?}"
        );
        assert_eq!(call[3], SCENARIO, "script called with {call:?}");
        let d: Value = serde_json::from_str(&call[4]).unwrap();
        assert_eq!(d["value"], value, "{d}");
        assert_eq!(d["scope"], scope, "{d}");
        assert_eq!(d["type"], "ban", "{d}");
        assert_eq!(d["origin"], "cscli", "{d}");
        assert_eq!(d["scenario"], SCENARIO, "{d}");
        let left = go_duration_secs(d["duration"].as_str().unwrap());
        assert!((3500.0..=3600.0).contains(&left), "{d}");
    };

    let call = wait_call("add", "192.0.2.10");
    check_add(&call, "Ip", "192.0.2.10");

    // While it runs: an IPv6 address and a range, picked up by its delta pulls.
    api.add_decisions(
        &jwt,
        &[("Ip", "2001:db8::10"), ("Range", "198.51.100.0/24")],
        "1h",
    );
    let call = wait_call("add", "2001:db8::10");
    check_add(&call, "Ip", "2001:db8::10");
    let call = wait_call("add", "198.51.100.0/24");
    check_add(&call, "Range", "198.51.100.0/24");

    assert_eq!(api.delete_decisions(&jwt, "192.0.2.10"), 1);
    wait_call("del", "192.0.2.10");
    assert_eq!(api.delete_decisions(&jwt, "2001:db8::10"), 1);
    wait_call("del", "2001:db8::10");

    let calls = read_calls();
    assert!(
        !calls
            .iter()
            .any(|c| c[0] == "del" && c[1] == "198.51.100.0/24"),
        "the range was never deleted, yet the script was called with `del` for it: {calls:?}"
    );
    for value in ["192.0.2.10", "2001:db8::10", "198.51.100.0/24"] {
        let adds = calls
            .iter()
            .filter(|c| c[0] == "add" && c[1] == value)
            .count();
        assert_eq!(adds, 1, "`add {value}` called {adds} times: {calls:?}");
    }
}

#[test]
fn custom_bouncer_is_told_at_startup_of_decisions_that_expired_hours_ago() {
    let Some(progs) = Needs::default()
        .programs(&["crowdsec-custom-bouncer"])
        .check("custom_bouncer_is_told_at_startup_of_decisions_that_expired_hours_ago")
    else {
        return;
    };
    let h = Harness::new();
    let lapi = h.start_lapi(Ipv4Addr::LOCALHOST, &progs);
    let api = Api::new(&lapi.url);
    let jwt = tester(&h, &lapi, &api);
    // A 1h ban from an alert that stopped 6 h ago (over for 5 h), and a current one.
    let six_hours_ago = chrono::Utc::now() - chrono::Duration::hours(6);
    api.add_decisions_at(&jwt, &[("Ip", "192.0.2.60")], "1h", six_hours_ago);
    api.add_decisions(&jwt, &[("Ip", "192.0.2.61")], "1h");
    // The bouncer is started later; the LAPI may have restarted meanwhile.
    h.restart_lapi(&lapi);
    let jwt = api.login("tester", PASSWORD);
    let bearer = format!("Bearer {jwt}");
    let alerts = list(&api.call(
        "GET",
        "/v1/alerts",
        &[("Authorization", &bearer)],
        None,
        200,
    ));
    assert_eq!(
        alerts.len(),
        2,
        "the two alerts, after a restart: {alerts:?}"
    );

    // CrowdSec's startup snapshot: `new` = active decisions, `deleted` = every expired decision
    // still in its database (until the flush removes it, 7 days by default), so that a bouncer
    // started after a long stop removes what expired meanwhile.
    let probe = lapi.add_bouncer(&h, "probe");
    let v = api.call(
        "GET",
        "/v1/decisions/stream?startup=true",
        &[("X-Api-Key", &probe)],
        None,
        200,
    );
    let value = |d: &Value| d["value"].as_str().unwrap_or_default().to_owned();
    let new: Vec<String> = list(&v["new"]).iter().map(value).collect();
    let deleted: Vec<String> = list(&v["deleted"]).iter().map(value).collect();
    assert_eq!(new, ["192.0.2.61"], "stream?startup=true answered {v}");

    let key = lapi.add_bouncer(&h, "custom-bouncer");
    let bouncer = CustomBouncer::start(&h, &progs, &lapi, &key);
    bouncer.wait_call(&h, "add", "192.0.2.61");
    assert_eq!(
        deleted,
        ["192.0.2.60"],
        "stream?startup=true must list the decision that expired 5 h ago in `deleted`, as \
         CrowdSec does: {v}"
    );
    bouncer.wait_call(&h, "del", "192.0.2.60");
}

// ------------------------------------------------------------------ crowdsec-firewall-bouncer

#[test]
fn firewall_bouncer_fills_and_empties_its_nftables_sets() {
    let Some(progs) = Needs::default()
        .programs(&["crowdsec-firewall-bouncer", "nft", "ip"])
        .root()
        .check("firewall_bouncer_fills_and_empties_its_nftables_sets")
    else {
        return;
    };
    let mut h = Harness::new();
    // The bouncer runs in its own network namespace (its tables must not touch the host's
    // firewall) and reaches the LAPI over a veth pair.
    let ns = h.netns(progs.get("ip"));
    let (ns, host_ip) = (ns.name.clone(), ns.host_ip);
    let lapi = h.start_lapi(host_ip, &progs);
    let api = Api::new(&lapi.url);
    let jwt = tester(&h, &lapi, &api);
    let key = lapi.add_bouncer(&h, "firewall-bouncer");

    api.add_decisions(&jwt, &[("Ip", "192.0.2.20")], "1h");

    // Debian's /etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml in nftables mode, pointed
    // at the LAPI under test, in the foreground, logging to stdout, without Prometheus.
    let cfg = h.write(
        "firewall-bouncer.yaml",
        &format!(
            "mode: nftables
pid_dir: {dir}
update_frequency: 1s
daemonize: false
log_mode: stdout
log_level: info
api_url: {url}/
api_key: {key}
insecure_skip_verify: false
disable_ipv6: false
deny_action: DROP
deny_log: false
supported_decisions_types:
  - ban
blacklists_ipv4: crowdsec-blacklists
blacklists_ipv6: crowdsec6-blacklists
ipset_type: nethash
iptables_chains:
  - INPUT
nftables:
  ipv4:
    enabled: true
    set-only: false
    table: crowdsec
    chain: crowdsec-chain
  ipv6:
    enabled: true
    set-only: false
    table: crowdsec6
    chain: crowdsec6-chain
prometheus:
  enabled: false
",
            dir = h.path("").display(),
            url = lapi.url,
        ),
    );
    let mut cmd = Command::new(progs.get("ip"));
    cmd.args(["netns", "exec", &ns])
        .arg(progs.get("crowdsec-firewall-bouncer"))
        .arg("-c")
        .arg(&cfg);
    h.spawn("firewall-bouncer", cmd);

    let nft = progs.get("nft");
    // `nft list table`, or None while the bouncer has not created it.
    let table = |family: &str, name: &str| -> Option<String> {
        let o = Command::new(progs.get("ip"))
            .args(["netns", "exec", &ns])
            .arg(nft)
            .args(["list", "table", family, name])
            .output()
            .unwrap();
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let wait_set = |family: &str, name: &str, ip: &str, present: bool| -> String {
        h.wait_for(
            &format!(
                "{ip} to be {} nftables table {family} {name}",
                if present { "in" } else { "gone from" }
            ),
            BOUNCER_WAIT,
            || table(family, name).filter(|t| nft_element(t, ip).is_some() == present),
        )
    };
    // The element's timeout is the decision's remaining duration as the bouncer parsed it (a
    // duration Go cannot parse would silently become 4h).
    let check_timeout = |text: &str, ip: &str| {
        let secs = nft_element(text, ip).flatten();
        assert!(
            secs.is_some_and(|s| (3500.0..=3600.0).contains(&s)),
            "{ip} of a 1h decision has timeout {secs:?} s in the set:\n{text}"
        );
    };

    let t = wait_set("ip", "crowdsec", "192.0.2.20", true);
    check_timeout(&t, "192.0.2.20");

    api.add_decisions(&jwt, &[("Ip", "192.0.2.21"), ("Ip", "2001:db8::21")], "1h");
    let t = wait_set("ip", "crowdsec", "192.0.2.21", true);
    check_timeout(&t, "192.0.2.21");
    let t = wait_set("ip6", "crowdsec6", "2001:db8::21", true);
    check_timeout(&t, "2001:db8::21");

    assert_eq!(api.delete_decisions(&jwt, "192.0.2.20"), 1);
    assert_eq!(api.delete_decisions(&jwt, "2001:db8::21"), 1);
    wait_set("ip", "crowdsec", "192.0.2.20", false);
    wait_set("ip6", "crowdsec6", "2001:db8::21", false);
    let v4 = table("ip", "crowdsec").unwrap();
    assert!(
        nft_element(&v4, "192.0.2.21").is_some(),
        "192.0.2.21 was not deleted but left the set:\n{v4}\n{}",
        h.context()
    );
}

// ------------------------------------------------------------------ crowdsec agent (watcher)

/// One alert as the agent logs it when a bucket overflows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Overflow {
    scenario: String,
    ip: String,
    events: u64,
    message: String,
}

/// `msg="Ip 203.0.113.45 performed 'crowdsecurity/ssh-bf' (7 events over 16s) at ..."`
fn overflows(agent_log: &str) -> Vec<Overflow> {
    let mut out = Vec::new();
    for line in agent_log.lines() {
        let Some(msg) = line.split_once("msg=\"").map(|(_, m)| m) else {
            continue;
        };
        let Some(msg) = msg.rsplit_once('"').map(|(m, _)| m) else {
            continue;
        };
        let words: Vec<&str> = msg.split(' ').collect();
        if words.len() < 5 || words[0] != "Ip" || words[2] != "performed" {
            continue;
        }
        out.push(Overflow {
            scenario: words[3].trim_matches('\'').to_owned(),
            ip: words[1].to_owned(),
            events: words[4].trim_start_matches('(').parse().unwrap(),
            message: msg.to_owned(),
        });
    }
    out.sort();
    out
}

struct Replay {
    h: Harness,
    api: Api,
    jwt: String,
    bouncer_key: String,
    overflows: Vec<Overflow>,
}

/// Replays `log` (syslog, sshd) with Debian's crowdsec 1.4.6 agent registered as machine `agent`
/// of the LAPI under test.
fn agent_replay(test: &str, log: &str) -> Option<Replay> {
    let progs = Needs::default()
        .programs(&["crowdsec", "mkfifo"])
        .files(&[DEBIAN_HUB, DEBIAN_PATTERNS])
        .check(test)?;
    let h = Harness::new();
    let lapi = h.start_lapi(Ipv4Addr::LOCALHOST, &progs);
    let api = Api::new(&lapi.url);
    let jwt = tester(&h, &lapi, &api);
    let bouncer_key = lapi.add_bouncer(&h, "stream-reader");
    lapi.add_machine(&h, "agent", PASSWORD);
    let cfg = h.crowdsec_agent_config(&lapi, "agent", PASSWORD);

    // The log goes through a FIFO that stays open until the agent's alerts are in the LAPI.
    // With a plain file the replay can end before the agent is ready to send anything: 1.4.6
    // logs in (twice, in a row) before its output loop takes the first overflow, and if the end
    // of the file shuts it down first it keeps one overflow and hangs on the others.
    let fifo = h.path("auth.log");
    h.output(Command::new(progs.get("mkfifo")).arg(&fifo));
    let (close_fifo, closed) = std::sync::mpsc::channel::<()>();
    {
        let (fifo, text) = (fifo.clone(), log.to_owned());
        // Read-write: opening does not wait for the agent, and the agent sees the end of the
        // file only when this end is closed (or the test fails and drops `close_fifo`).
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
            let _ = closed.recv();
        });
    }
    let mut cmd = Command::new(progs.get("crowdsec"));
    cmd.arg("-c")
        .arg(&cfg)
        .arg("-dsn")
        .arg(format!("file://{}", fifo.display()))
        .args(["-type", "syslog", "-no-api"])
        // Year-less syslog stamps are read in local time; the shifted log is written in UTC.
        .env("TZ", "UTC");
    h.spawn("agent", cmd);
    let bearer = format!("Bearer {jwt}");
    let mut seen = ((0, 0), std::time::Instant::now());
    h.wait_for(
        "the agent's alerts (as many as it logged, none for 2 s) in GET /v1/alerts",
        Duration::from_secs(90),
        || {
            let logged = overflows(&h.log("agent")).len();
            let stored = list(&api.call(
                "GET",
                "/v1/alerts",
                &[("Authorization", &bearer)],
                None,
                200,
            ))
            .len();
            if (logged, stored) != seen.0 {
                seen = ((logged, stored), std::time::Instant::now());
            }
            (logged > 0 && stored >= logged && seen.1.elapsed() > Duration::from_secs(2))
                .then_some(())
        },
    );
    drop(close_fifo);
    let (status, out) = h.wait_exit("agent", Duration::from_secs(60));
    assert!(
        status.success(),
        "the agent failed: {status}\n{}",
        h.context()
    );
    // The only errors expected: the GeoIP enrichers, whose databases are not shipped.
    let errors: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("level=error") || l.contains("level=fatal"))
        .filter(|l| !l.contains("unable to register plugin 'GeoIp") && !l.contains("'IpToRange'"))
        .collect();
    assert!(
        errors.is_empty(),
        "the agent logged errors:\n{}\n{}",
        errors.join("\n"),
        h.context()
    );
    let overflows = overflows(&out);
    // (10 alerts on demo/auth.log with the sshd scenarios of Debian's hub copy, for 4 IPs.)
    assert!(
        !overflows.is_empty(),
        "the agent raised no alert\n{}",
        h.context()
    );
    Some(Replay {
        h,
        api,
        jwt,
        bouncer_key,
        overflows,
    })
}

/// The stored alerts must be the agent's, each with the default profile's decision
/// (ban, Ip, 4h from the alert's `stop_at`); returns the decision's remaining seconds per alert.
fn check_alerts(r: &Replay) -> Vec<f64> {
    let bearer = format!("Bearer {}", r.jwt);
    let alerts = list(&r.api.call(
        "GET",
        "/v1/alerts",
        &[("Authorization", &bearer)],
        None,
        200,
    ));
    let mut got: Vec<Overflow> = alerts
        .iter()
        .map(|a| Overflow {
            scenario: a["scenario"].as_str().unwrap_or_default().to_owned(),
            ip: a["source"]["value"].as_str().unwrap_or_default().to_owned(),
            events: a["events_count"].as_u64().unwrap_or_default(),
            message: a["message"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        r.overflows,
        "GET /v1/alerts does not give back the agent's alerts\n{}",
        r.h.context()
    );
    let mut left = Vec::new();
    for a in &alerts {
        let ip = a["source"]["value"].as_str().unwrap();
        assert_eq!(a["machine_id"], "agent", "{a}");
        assert_eq!(a["source"]["scope"], "Ip", "{a}");
        assert_eq!(a["source"]["ip"], ip, "{a}");
        let hash = a["scenario_hash"].as_str().unwrap_or_default();
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "the agent sends the scenario's sha256 as scenario_hash: {a}"
        );
        assert!(
            !list(&a["events"]).is_empty(),
            "the agent sends the overflow's events: {a}"
        );
        let decisions = list(&a["decisions"]);
        assert_eq!(decisions.len(), 1, "one decision per alert expected: {a}");
        let d = &decisions[0];
        assert_eq!(d["type"], "ban", "{a}");
        assert_eq!(d["scope"], "Ip", "{a}");
        assert_eq!(d["value"], ip, "{a}");
        assert_eq!(d["origin"], "crowdsec", "{a}");
        assert_eq!(d["scenario"], a["scenario"], "{a}");
        left.push(go_duration_secs(d["duration"].as_str().unwrap()));
    }
    left
}

fn stream(r: &Replay) -> (Vec<Value>, Vec<Value>) {
    let v = r.api.call(
        "GET",
        "/v1/decisions/stream?startup=true",
        &[("X-Api-Key", &r.bouncer_key)],
        None,
        200,
    );
    (list(&v["new"]), list(&v["deleted"]))
}

fn values(decisions: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in decisions {
        *m.entry(d["value"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn agent_replay_alerts_land_and_their_bans_reach_bouncers() {
    // demo/auth.log moved to end two minutes ago: the 4h bans are active.
    let now = chrono::Utc::now();
    if chrono::Datelike::ordinal(&now) == 1 && chrono::Timelike::hour(&now) < 2 {
        // The moved log would start last year, and year-less stamps are read in this one.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: compat_crowdsec::agent_replay_alerts_land_and_their_bans_reach_bouncers: the first two hours of a year\n",
        );
        return;
    }
    let log = std::fs::read_to_string(repo().join("demo/auth.log")).unwrap();
    let log = shift_syslog(&log, chrono::Duration::minutes(2));
    let Some(r) = agent_replay(
        "agent_replay_alerts_land_and_their_bans_reach_bouncers",
        &log,
    ) else {
        return;
    };
    for secs in check_alerts(&r) {
        // until = stop_at + 4h, and the log spans the last hour.
        assert!(
            (2.5 * 3600.0..=4.0 * 3600.0 + 5.0).contains(&secs),
            "a ban from a fresh alert has {secs} s left (expected under 4h, over 2h30)"
        );
    }
    let ips: BTreeSet<String> = r.overflows.iter().map(|o| o.ip.clone()).collect();
    let (new, deleted) = stream(&r);
    let got = values(&new);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        ips,
        "stream?startup=true `new` must hold the agent's bans: {new:?}"
    );
    assert!(
        got.values().all(|&n| n == 1),
        "stream?startup=true must give one (the longest) decision per IP, as CrowdSec does: {new:?}"
    );
    for d in &new {
        assert_eq!(d["type"], "ban", "{d}");
        assert_eq!(d["scope"], "Ip", "{d}");
        assert_eq!(d["origin"], "crowdsec", "{d}");
    }
    assert!(deleted.is_empty(), "nothing was deleted: {deleted:?}");

    // The live-mode bouncer query.
    let ip = &r.overflows[0].ip;
    let v = r.api.call(
        "GET",
        &format!("/v1/decisions?ip={ip}"),
        &[("X-Api-Key", &r.bouncer_key)],
        None,
        200,
    );
    let found = list(&v);
    assert!(
        !found.is_empty()
            && found
                .iter()
                .all(|d| d["value"] == ip.as_str() && d["type"] == "ban"),
        "GET /v1/decisions?ip={ip} answered {v}"
    );
}

#[test]
fn agent_replay_of_an_old_log_gives_only_expired_bans() {
    // demo/auth.log as is (12 March): decisions last 4h from the alert's stop_at, so they are
    // over when the LAPI stores them: bouncers must never see them as new.
    let log = std::fs::read_to_string(repo().join("demo/auth.log")).unwrap();
    let Some(r) = agent_replay("agent_replay_of_an_old_log_gives_only_expired_bans", &log) else {
        return;
    };
    let now = chrono::Utc::now();
    let march = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&now), 3, 13).unwrap();
    if now.date_naive() <= march {
        // Around 12 March the replayed log is recent and its bans could still be active.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"note: compat_crowdsec::agent_replay_of_an_old_log_gives_only_expired_bans: demo/auth.log is recent today, expiry not checked\n",
        );
        check_alerts(&r);
        return;
    }
    for secs in check_alerts(&r) {
        assert!(secs < 0.0, "a ban from a 12 March alert has {secs} s left");
    }
    let ips: BTreeSet<String> = r.overflows.iter().map(|o| o.ip.clone()).collect();
    let (new, deleted) = stream(&r);
    assert!(
        new.is_empty(),
        "expired bans must not be streamed as new: {new:?}"
    );
    // (CrowdSec also lists them all in `deleted`; the custom bouncer test
    // `custom_bouncer_is_told_at_startup_of_decisions_that_expired_hours_ago` checks that.)
    let foreign: Vec<&Value> = deleted
        .iter()
        .filter(|d| !ips.contains(d["value"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        foreign.is_empty(),
        "deleted decisions nobody made: {foreign:?}"
    );
    let ip = &r.overflows[0].ip;
    let v = r.api.call(
        "GET",
        &format!("/v1/decisions?ip={ip}"),
        &[("X-Api-Key", &r.bouncer_key)],
        None,
        200,
    );
    assert!(
        list(&v).is_empty(),
        "GET /v1/decisions?ip={ip} answered {v}"
    );
}

// ------------------------------------------------------------------ Rampart's agent → CrowdSec's LAPI

/// Failed SSH logins for `rampart run` to read: record `n` is one line from its own address, or
/// (every tenth) six lines from one attacker. Returns the text and adds the alerts it must raise,
/// per (scenario, address), to `want`.
fn failed_logins(
    records: std::ops::Range<u32>,
    want: &mut BTreeMap<(String, String), usize>,
) -> String {
    let stamp = chrono::Local::now().format("%b %e %H:%M:%S");
    let mut text = String::new();
    for n in records {
        let ip = format!("198.18.{}.{}", n / 250, n % 250 + 1);
        let lines = if n % 10 == 9 {
            *want
                .entry(("rampart/ssh-bruteforce".into(), ip.clone()))
                .or_default() += 1;
            6
        } else {
            1
        };
        *want
            .entry(("rampart-test/ssh-line".into(), ip.clone()))
            .or_default() += lines;
        for k in 0..lines {
            text.push_str(&format!(
                "{stamp} web1 sshd[{}]: Failed password for invalid user u{n}x{k} from {ip} port {} ssh2\n",
                1000 + n,
                1024 + k
            ));
        }
    }
    text
}

/// Waits until `GET /v1/alerts` gives exactly the alerts in `want` (counted per scenario and
/// source address) and nothing more comes for two seconds; returns them.
fn wait_alerts(
    h: &Harness,
    api: &Api,
    tester_password: &str,
    want: &BTreeMap<(String, String), usize>,
) -> Vec<Value> {
    let total: usize = want.values().sum();
    let mut last = (usize::MAX, std::time::Instant::now());
    let alerts = h.wait_for(
        &format!("{total} alerts in CrowdSec's LAPI, then none for 2 s"),
        Duration::from_secs(60),
        || {
            // Tokens do not outlive a LAPI restart; a fresh one each round costs little here.
            let bearer = format!("Bearer {}", api.login("tester", tester_password));
            let v = api.call(
                "GET",
                "/v1/alerts?limit=1000",
                &[("Authorization", &bearer)],
                None,
                200,
            );
            let alerts = list(&v);
            if alerts.len() != last.0 {
                last = (alerts.len(), std::time::Instant::now());
            }
            (alerts.len() > total
                || (alerts.len() == total && last.1.elapsed() >= Duration::from_secs(2)))
            .then_some(alerts)
        },
    );
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for a in &alerts {
        let key = (
            a["scenario"].as_str().unwrap_or_default().to_owned(),
            a["source"]["value"].as_str().unwrap_or_default().to_owned(),
        );
        *got.entry(key).or_default() += 1;
    }
    if &got != want {
        let diff: Vec<String> = want
            .keys()
            .chain(got.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| want.get(*k) != got.get(*k))
            .map(|k| {
                format!(
                    "{} {}: expected {}, got {}",
                    k.0,
                    k.1,
                    want.get(k).copied().unwrap_or(0),
                    got.get(k).copied().unwrap_or(0)
                )
            })
            .collect();
        panic!(
            "CrowdSec's LAPI holds {} alerts, {total} expected:\n{}\n{}",
            alerts.len(),
            diff.join("\n"),
            h.context()
        );
    }
    alerts
}

#[test]
fn rampart_agent_feeds_crowdsec_lapi_across_its_restart() {
    const NAME: &str = "rampart_agent_feeds_crowdsec_lapi_across_its_restart";
    let Some(progs) = Needs::default()
        .programs(&["crowdsec", "cscli"])
        .files(&[DEBIAN_HUB, "/etc/crowdsec/profiles.yaml"])
        .check(NAME)
    else {
        return;
    };
    let h = Harness::new();
    // CrowdSec's LAPI whatever RAMPART_COMPAT_LAPI says: the agent is what is under test.
    let lapi = h.start_crowdsec_lapi(Ipv4Addr::LOCALHOST, &progs);
    let api = Api::new(&lapi.url);
    lapi.add_machine(&h, "tester", PASSWORD);
    let key = lapi.add_bouncer(&h, "probe");
    lapi.add_machine(&h, "rampart-agent", PASSWORD);
    let creds = h.write(
        "rampart-agent/credentials.yaml",
        &format!(
            "url: {}/\nlogin: rampart-agent\npassword: {PASSWORD}\n",
            lapi.url
        ),
    );
    let log = h.write("rampart-agent/auth.log", "");
    let acquis = h.write(
        "rampart-agent/acquis.yaml",
        &format!(
            "source: file\nfilenames:\n  - {}\nlabels:\n  type: syslog\n",
            log.display()
        ),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["run", "--no-lapi", "--credentials"])
        .arg(&creds)
        .arg("--acquis")
        .arg(&acquis)
        .arg("--hub")
        .arg(h.agent_content())
        .arg("--data-dir")
        .arg(h.path("rampart-agent/data"))
        .env("RAMPART_LOG", "info,sqlx=warn");
    h.spawn("rampart-agent", cmd);
    h.wait_for(
        "rampart run to follow its log",
        Duration::from_secs(30),
        || {
            h.log("rampart-agent")
                .contains("rampart agent: ")
                .then_some(())
        },
    );
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    };

    let mut want = BTreeMap::new();
    append(&failed_logins(0..30, &mut want));
    wait_alerts(&h, &api, PASSWORD, &want);

    // CrowdSec's LAPI goes away while lines are logged (connections refused: nothing can be
    // stored twice) and comes back with a new JWT signing key: the agent logs in again and
    // delivers its queue.
    h.stop("lapi");
    append(&failed_logins(30..60, &mut want));
    h.wait_for(
        "the agent to queue the alerts",
        Duration::from_secs(30),
        || {
            let n = h.log("rampart-agent").matches("rampart: alert ").count();
            (n >= want.values().sum::<usize>()).then_some(())
        },
    );
    h.restart_lapi(&lapi);
    let alerts = wait_alerts(&h, &api, PASSWORD, &want);

    for a in &alerts {
        let ip = a["source"]["value"].as_str().unwrap();
        assert_eq!(a["machine_id"], "rampart-agent", "{a}");
        assert_eq!(a["source"]["scope"], "Ip", "{a}");
        let decisions = list(&a["decisions"]);
        assert_eq!(decisions.len(), 1, "one decision per alert expected: {a}");
        let d = &decisions[0];
        assert_eq!(d["type"], "ban", "{a}");
        assert_eq!(d["scope"], "Ip", "{a}");
        assert_eq!(d["value"], ip, "{a}");
        assert_eq!(d["origin"], "crowdsec", "{a}");
        assert_eq!(d["scenario"], a["scenario"], "{a}");
        let left = go_duration_secs(d["duration"].as_str().unwrap());
        assert!(
            (3.5 * 3600.0..=4.0 * 3600.0 + 5.0).contains(&left),
            "a fresh alert's ban has {left} s left (the default profile gives 4h): {a}"
        );
    }
    // What a bouncer sees: a ban for every address that logged a failure.
    let decisions = list(&api.call("GET", "/v1/decisions", &[("X-Api-Key", &key)], None, 200));
    let banned: BTreeSet<String> = decisions
        .iter()
        .map(|d| d["value"].as_str().unwrap_or_default().to_owned())
        .collect();
    let attacked: BTreeSet<String> = want.keys().map(|(_, ip)| ip.clone()).collect();
    assert_eq!(banned, attacked, "GET /v1/decisions answered {decisions:?}");

    h.stop("rampart-agent");
    let (status, _) = h.wait_exit("rampart-agent", Duration::from_secs(1));
    assert!(status.success(), "rampart run: {status}\n{}", h.context());
}

/// `rampart-firewall-bouncer`, built by the same `cargo test --workspace` (it sits beside this
/// test's own binary directory).
fn rampart_firewall_bouncer() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let p = dir.join("rampart-firewall-bouncer");
    p.is_file().then_some(p)
}

#[test]
fn rampart_firewall_bouncer_polls_a_crowdsec_lapi() {
    let Some(progs) = Needs::default()
        .programs(&["crowdsec", "cscli", "nft", "ip"])
        .root()
        .check("rampart_firewall_bouncer_polls_a_crowdsec_lapi")
    else {
        return;
    };
    let Some(bouncer) = rampart_firewall_bouncer() else {
        assert!(
            std::env::var("CI").is_err(),
            "rampart-firewall-bouncer is not built next to this test (run `cargo test --workspace`)"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: rampart_firewall_bouncer_polls_a_crowdsec_lapi (build rampart-firewall-bouncer first)\n",
        );
        return;
    };
    let mut h = Harness::new();
    // The bouncer in its own namespace, Debian's CrowdSec 1.4.6 LAPI on the host end of the veth.
    let ns = h.netns(progs.get("ip"));
    let (ns, host_ip) = (ns.name.clone(), ns.host_ip);
    let lapi = h.start_crowdsec_lapi(host_ip, &progs);
    let api = Api::new(&lapi.url);
    let jwt = tester(&h, &lapi, &api);
    let key = lapi.add_bouncer(&h, "rampart-fw");
    api.add_decisions(
        &jwt,
        &[("Ip", "192.0.2.30"), ("Range", "198.51.100.0/24")],
        "1h",
    );

    // Rampart's own keys stay at their defaults: push is tried first and must fall back to
    // polling, since CrowdSec ignores `wait=`.
    let cfg = h.write(
        "rampart-fw.yaml",
        &format!(
            "mode: nftables\napi_url: {url}/\napi_key: {key}\nupdate_frequency: 1s\nlog_mode: stdout\nlog_level: info\ndeny_action: DROP\nprometheus:\n  enabled: false\n",
            url = lapi.url,
        ),
    );
    let mut cmd = Command::new(progs.get("ip"));
    cmd.args(["netns", "exec", &ns])
        .arg(&bouncer)
        .arg("-c")
        .arg(&cfg);
    h.spawn("rampart-fw", cmd);

    let nft = progs.get("nft");
    let ruleset = || -> Option<String> {
        let o = Command::new(progs.get("ip"))
            .args(["netns", "exec", &ns])
            .arg(nft)
            .args(["list", "table", "ip", "rampart"])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // The startup pull: both decisions are in the kernel's sets.
    h.wait_for(
        "the startup decisions in table ip rampart",
        BOUNCER_WAIT,
        || ruleset().filter(|t| t.contains("192.0.2.30") && t.contains("198.51.100.0/24")),
    );
    // A later decision arrives by polling.
    api.add_decisions(&jwt, &[("Ip", "192.0.2.31")], "1h");
    h.wait_for("192.0.2.31 polled from CrowdSec", BOUNCER_WAIT, || {
        ruleset().filter(|t| t.contains("192.0.2.31"))
    });
    // A deletion is applied.
    api.delete_decisions(&jwt, "192.0.2.30");
    h.wait_for("192.0.2.30 removed", BOUNCER_WAIT, || {
        ruleset().filter(|t| !t.contains("192.0.2.30") && t.contains("192.0.2.31"))
    });
    let log = h.log("rampart-fw");
    assert!(
        log.contains("polling"),
        "no fallback to polling logged:\n{log}"
    );
}
