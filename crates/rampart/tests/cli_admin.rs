//! The admin commands end to end: the built `rampart` binary against a real `rampart lapi` on
//! SQLite and on PostgreSQL, with golden files for table, CSV and JSON output. Both backends
//! must print the same thing.
//!
//! Golden files live in `tests/data/cli/`; `UPDATE_GOLDEN=1` rewrites them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

mod support;

use support::{Guard as Server, free_port, wait_health};

/// A LAPI with an admin machine whose credentials are in `creds`.
struct Env {
    _server: Server,
    dir: tempfile::TempDir,
    db: String,
    port: u16,
    mport: u16,
    creds: PathBuf,
}

fn env(db: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mport = free_port();
    let log = std::fs::File::create(dir.path().join("lapi.log")).unwrap();
    let server = Server(
        Command::new(BIN)
            .args(["lapi", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--db", db, "--metrics", &format!("127.0.0.1:{mport}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_health(port);
    let creds = dir.path().join("creds.yaml");
    let out = Command::new(BIN)
        .args(["machines", "add", "admin", "--auto", "--db", db])
        .args(["--url", &format!("http://127.0.0.1:{port}/"), "-f"])
        .arg(&creds)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Env {
        _server: server,
        dir,
        db: db.to_owned(),
        port,
        mport,
        creds,
    }
}

impl Env {
    /// Runs `rampart ARGS` as the admin machine.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("RAMPART_CREDENTIALS", &self.creds)
            .env("RAMPART_DB", &self.db)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rampart {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "rampart {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }
}

/// Is `w` a Go duration like `99h59m59s`, `4h0m0s`, `-1s`?
fn is_duration(w: &str) -> bool {
    let w = w.strip_prefix('-').unwrap_or(w);
    !w.is_empty()
        && w.chars().all(|c| c.is_ascii_digit() || "hms.".contains(c))
        && w.ends_with('s')
        && w.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Is `w` an RFC 3339 timestamp?
fn is_time(w: &str) -> bool {
    w.len() >= 20 && w.as_bytes().get(4) == Some(&b'-') && w.as_bytes().get(10) == Some(&b'T')
}

fn is_uuid(w: &str) -> bool {
    w.len() == 36
        && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && w.matches('-').count() == 4
}

/// Volatile words (durations, times, uuids) replaced by placeholders.
fn redact_word(w: &str) -> String {
    if is_uuid(w) {
        "<uuid>".into()
    } else if is_duration(w) {
        "<duration>".into()
    } else if is_time(w) {
        "<time>".into()
    } else {
        w.to_owned()
    }
}

/// A table reduced to its cells (borders and padding dropped), volatile cells redacted.
fn cells(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('+') {
            continue;
        }
        if line.starts_with('|') {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| redact_word(c.trim()))
                .collect();
            out.push_str(&cells.join(" | "));
        } else {
            out.push_str(
                &line
                    .split(' ')
                    .map(redact_word)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        out.push('\n');
    }
    out
}

/// CSV with volatile fields redacted.
fn csv_cells(text: &str) -> String {
    text.lines()
        .map(|l| l.split(',').map(redact_word).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// JSON with volatile fields redacted (times, durations, uuids, the machine's name kept).
fn json_cells(text: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), &x) {
                        ("uuid", serde_json::Value::String(_)) => *x = "<uuid>".into(),
                        (_, serde_json::Value::String(s)) => *x = redact_word(s).into(),
                        _ => walk(x),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    // Keys sorted here: whether serde_json keeps insertion order depends on the features other
    // crates of the build turn on.
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let b: std::collections::BTreeMap<String, serde_json::Value> =
                    m.into_iter().map(|(k, x)| (k, sorted(x))).collect();
                serde_json::Value::Object(b.into_iter().collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    walk(&mut v);
    serde_json::to_string_pretty(&sorted(v)).unwrap() + "\n"
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cli")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() || !path.exists() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        actual,
        want,
        "output differs from {} (UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

fn scenario(e: &Env) {
    // decisions add: an IP, a range, a country.
    e.ok(&[
        "decisions",
        "add",
        "-i",
        "192.0.2.1",
        "-d",
        "100h",
        "-R",
        "test reason",
    ]);
    e.ok(&[
        "decisions",
        "add",
        "-r",
        "198.51.100.0/24",
        "-d",
        "100h",
        "-t",
        "captcha",
    ]);
    e.ok(&[
        "decisions",
        "add",
        "--scope",
        "country",
        "-v",
        "FR",
        "-d",
        "100h",
    ]);
    let err = e.fails(&["decisions", "add", "-i", "not-an-ip"]);
    assert!(err.contains("'not-an-ip'"), "{err}");
    let err = e.fails(&["decisions", "add"]);
    assert!(err.contains("--ip"), "{err}");

    golden("decisions_list.txt", &cells(&e.ok(&["decisions", "list"])));
    golden(
        "decisions_list.csv",
        &csv_cells(&e.ok(&["decisions", "list", "-o", "raw"])),
    );
    golden(
        "decisions_list.json",
        &json_cells(&e.ok(&["decisions", "list", "-o", "json"])),
    );
    golden(
        "decisions_list_ip.txt",
        &cells(&e.ok(&["decisions", "list", "-i", "198.51.100.7"])),
    );

    // import: plain values, CSV with cscli's columns, JSON; bad input names its line.
    let values = e.dir.path().join("ips.txt");
    let list: String = (0..1000)
        .map(|i| format!("203.0.113.{}\n", i % 250))
        .chain((0..1000).map(|i| format!("10.9.{}.{}\n", i / 250, i % 250)))
        .collect();
    std::fs::write(&values, list).unwrap();
    e.ok(&[
        "decisions",
        "import",
        "-i",
        values.to_str().unwrap(),
        "-R",
        "bulk",
        "--batch",
        "700",
    ]);
    let csv = e.dir.path().join("d.csv");
    std::fs::write(
        &csv,
        "duration,origin,reason,scope,type,value\n24h,,from csv,ip,captcha,192.0.2.50\n,,,range,,192.0.2.128/25\n",
    )
    .unwrap();
    e.ok(&["decisions", "import", "-i", csv.to_str().unwrap()]);
    let bad = e.dir.path().join("bad.txt");
    std::fs::write(&bad, "192.0.2.60\nnonsense\n").unwrap();
    let err = e.fails(&["decisions", "import", "-i", bad.to_str().unwrap()]);
    assert!(
        err.contains("line 2") && err.contains("nothing imported"),
        "{err}"
    );
    let all = e.ok(&["decisions", "list", "-o", "raw", "-l", "0"]);
    // 3 added + 2000 imported + 2 from CSV, one header line.
    assert_eq!(all.lines().count(), 1 + 3 + 2000 + 2, "{all}");
    golden(
        "decisions_list_csv_import.txt",
        &cells(&e.ok(&[
            "decisions",
            "list",
            "--origin",
            "cscli-import",
            "-s",
            "from csv",
        ])),
    );

    // delete by ip, by id; expired decisions no longer listed.
    e.ok(&["decisions", "delete", "-i", "192.0.2.1"]);
    let out = e.ok(&["decisions", "list", "-i", "192.0.2.1"]);
    assert!(out.contains("(none)"), "{out}");
    let err = e.fails(&["decisions", "delete"]);
    assert!(err.contains("--all"), "{err}");

    // alerts: list, inspect, delete.
    golden(
        "alerts_list.txt",
        &cells(&e.ok(&["alerts", "list", "-s", "manual 'ban' from 'admin'"])),
    );
    golden(
        "alerts_inspect.txt",
        &cells(&e.ok(&["alerts", "inspect", "2"])),
    );
    golden(
        "alerts_inspect.json",
        &json_cells(&e.ok(&["alerts", "inspect", "2", "-o", "json"])),
    );
    e.ok(&["alerts", "delete", "--id", "3"]);
    let out = e.ok(&["alerts", "list", "--scope", "Country"]);
    assert!(out.contains("(none)"), "{out}");
    let err = e.fails(&["alerts", "inspect", "999"]);
    assert!(err.contains("999"), "{err}");
    e.ok(&["alerts", "flush", "--max-items", "100000"]);

    // allowlists.
    e.ok(&["allowlists", "create", "office", "-d", "our networks"]);
    e.ok(&[
        "allowlists",
        "add",
        "office",
        "192.0.2.0/28",
        "2001:db8::1",
        "-d",
        "hq",
    ]);
    let err = e.fails(&["allowlists", "add", "office", "nope"]);
    assert!(err.contains("'nope'"), "{err}");
    let err = e.fails(&["allowlists", "add", "missing", "192.0.2.1"]);
    assert!(err.contains("allowlists create missing"), "{err}");
    golden(
        "allowlists_check.txt",
        &cells(&e.ok(&[
            "allowlists",
            "check",
            "192.0.2.3",
            "192.0.2.99",
            "2001:db8::1",
        ])),
    );
    golden(
        "allowlists_inspect.txt",
        &cells(&e.ok(&["allowlists", "inspect", "office"])),
    );
    e.ok(&["allowlists", "remove", "office", "2001:db8::1"]);
    e.ok(&["allowlists", "delete", "office"]);

    // machines, bouncers.
    e.ok(&[
        "bouncers",
        "add",
        "fw",
        "-k",
        "0123456789abcdef0123456789abcdef",
    ]);
    let b = e.ok(&["bouncers", "list", "-o", "raw"]);
    assert!(
        b.starts_with("Name,IP Address,Valid") && b.contains("fw,"),
        "{b}"
    );
    let m = e.ok(&["machines", "list", "-o", "json"]);
    assert!(m.contains("\"machineId\": \"admin\""), "{m}");
    // A machine that registers itself waits for validation; prune removes it, not the admin.
    let pending = e.dir.path().join("pending.yaml");
    e.ok(&[
        "lapi",
        "register",
        "--url",
        &format!("http://127.0.0.1:{}/", e.port),
        "--machine",
        "pending",
        "-f",
        pending.to_str().unwrap(),
    ]);
    let m = e.ok(&["machines", "list", "-o", "raw"]);
    assert!(m.contains("pending,") && m.contains(",pending,"), "{m}");
    let err = e.fails(&["machines", "prune", "--not-validated-only"]);
    assert!(err.contains("--force"), "{err}");
    e.ok(&["machines", "prune", "--not-validated-only", "--force"]);
    let m = e.ok(&["machines", "list", "-o", "raw"]);
    assert!(!m.contains("pending") && m.contains("admin,"), "{m}");

    // lapi status: good and bad credentials.
    let out = e.ok(&["lapi", "status"]);
    assert!(out.contains("successfully interact"), "{out}");
    let wrong = e.dir.path().join("wrong.yaml");
    std::fs::write(
        &wrong,
        format!(
            "url: http://127.0.0.1:{}/\nlogin: admin\npassword: nope\n",
            e.port
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["lapi", "status", "--credentials"])
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));

    // metrics: the LAPI's endpoint rendered as tables.
    let out = e.ok(&["metrics", "--url", &format!("http://127.0.0.1:{}", e.mport)]);
    assert!(
        out.contains("Local API Metrics") && out.contains("/v1/alerts POST"),
        "{out}"
    );
    assert!(out.contains("Local API Decisions"), "{out}");
    let j = e.ok(&[
        "metrics",
        "-o",
        "json",
        "--url",
        &format!("http://127.0.0.1:{}/metrics", e.mport),
    ]);
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(
        j["decisions"]["bulk cscli-import ban"]["count"], 2000.0,
        "{j}"
    );
}

#[test]
fn admin_commands_on_sqlite() {
    let db = testkit::sqlite();
    scenario(&env(&db.url));
}

#[test]
fn admin_commands_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(testkit::postgres()) else {
        return;
    };
    scenario(&env(&db.url));
    drop(db);
}

#[test]
fn simulation_config_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["simulation", "enable", "crowdsecurity/ssh-bf", "--hub", hub]);
    run(&[
        "simulation",
        "enable",
        "crowdsecurity/http-probing",
        "--hub",
        hub,
    ]);
    run(&[
        "simulation",
        "disable",
        "crowdsecurity/ssh-bf",
        "--hub",
        hub,
    ]);
    golden(
        "simulation_status.txt",
        &run(&["simulation", "status", "--hub", hub]),
    );
    run(&["simulation", "enable", "--global", "--hub", hub]);
    let s = run(&["simulation", "status", "-o", "json", "--hub", hub]);
    assert!(s.contains("\"simulation\": true"), "{s}");
    let text = std::fs::read_to_string(dir.path().join("simulation.yaml")).unwrap();
    assert_eq!(text, "simulation: true\nexclusions: []\n");

    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "config_paths:\n  data_dir: /srv/rampart\n  hub_dir: /srv/hub\ndb_config:\n  type: postgres\n  user: u\n  password: secret\n  db_name: d\n  host: 127.0.0.1\n  port: 5432\nprometheus:\n  enabled: true\n  listen_addr: 0.0.0.0\n  listen_port: 6061\n",
    )
    .unwrap();
    let show = run(&["config", "show", "-c", cfg.to_str().unwrap(), "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["prometheus"], "http://0.0.0.0:6061/metrics");
    assert_eq!(v["hub_dir"], "/srv/hub");
    assert!(!show.contains("secret"), "the password leaked: {show}");
    let bash = run(&["completion", "bash"]);
    assert!(
        bash.contains("decisions") && bash.contains("complete"),
        "{bash}"
    );
}

#[test]
fn capi_register_and_status_against_rampart_central() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = rt.block_on(testkit::postgres()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("central.log")).unwrap();
    let _central = Server(
        Command::new(BIN)
            .args(["central", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--db", &db.url])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_health(port);
    let creds = dir.path().join("online.yaml");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("-f")
            .arg(&creds)
            .output()
            .unwrap()
    };
    let out = run(&[
        "capi",
        "register",
        "--url",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&creds).unwrap();
    let login = text
        .lines()
        .find_map(|l| l.strip_prefix("login: "))
        .unwrap();
    assert_eq!(login.len(), 48, "CrowdSec-shaped machine id: {login}");
    let out = run(&["capi", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("successfully interact"));
    // Wrong password: refused, with the file named.
    std::fs::write(&creds, text.replace("password: ", "password: x")).unwrap();
    let out = run(&["capi", "status"]);
    assert!(!out.status.success());
    // An empty file means "sync off", and says how to turn it on.
    std::fs::write(&creds, "# no central API\n").unwrap();
    let out = run(&["capi", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("capi register"));
    drop(db);
}
