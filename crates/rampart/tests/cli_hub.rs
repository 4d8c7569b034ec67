//! End-to-end: `rampart hub ...` and the item nouns driven through the built binary, against
//! CrowdSec's hub snapshot (`../shared/compat/crowdsec-hub`) served as a directory and over HTTP
//! by a small server in this file, and against small hubs written by the tests.
//!
//! Snapshots live in `tests/data/hub/`; `UPDATE_GOLDEN=1` rewrites them. Temporary paths are
//! replaced by `$TMP`, the snapshot's by `$HUB`, and table padding is squeezed so that the
//! snapshots do not depend on how long those paths are.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

fn shared_hub(test: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/crowdsec-hub");
    if p.join(".index.json").is_file() {
        return Some(p.canonicalize().unwrap());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: ../shared/compat/crowdsec-hub is required under CI=true"
    );
    let _ = std::io::stderr().write_all(
        format!("skipped: {test}: ../shared/compat/crowdsec-hub not found\n").as_bytes(),
    );
    None
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary with only the environment this file chooses for the hub.
fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env_remove("RAMPART_CONFIG_DIR")
        .env_remove("RAMPART_HUB_DIR")
        .env_remove("RAMPART_HUB_URL")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = rampart(args);
    assert!(
        o.status.success(),
        "rampart {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs and expects failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let o = rampart(args);
    assert!(
        !o.status.success(),
        "rampart {} should have failed\nstdout:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stderr).unwrap()
}

/// A scratch installation: `$TMP/etc` (config dir, with the hub cache in `etc/hub`).
struct Site {
    tmp: tempfile::TempDir,
    hub_url: String,
}

impl Site {
    fn new(hub_url: &str) -> Site {
        Site {
            tmp: tempfile::tempdir().unwrap(),
            hub_url: hub_url.to_owned(),
        }
    }

    fn etc(&self) -> PathBuf {
        self.tmp.path().join("etc")
    }

    /// `rampart <args> --config-dir $TMP/etc --hub-url URL`.
    fn args<'a>(&'a self, args: &[&'a str], owned: &'a mut Vec<String>) -> Vec<&'a str> {
        owned.push(self.etc().display().to_string());
        owned.push(self.hub_url.clone());
        let mut v = args.to_vec();
        v.extend(["--config-dir", &owned[0], "--hub-url", &owned[1]]);
        v
    }

    fn ok(&self, args: &[&str]) -> String {
        let mut o = Vec::new();
        let a = self.args(args, &mut o);
        ok(&a)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut o = Vec::new();
        let a = self.args(args, &mut o);
        rampart(&a)
    }

    /// Paths made stable for snapshots.
    fn redact(&self, text: &str, hub: Option<&Path>) -> String {
        let mut t = text.replace(&self.tmp.path().display().to_string(), "$TMP");
        if let Some(h) = hub {
            t = t.replace(&h.display().to_string(), "$HUB");
        }
        t
    }
}

/// Table padding depends on the longest cell, which depends on the temporary directory's
/// name: squeeze runs of spaces and rule characters.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev = '\0';
    for c in text.chars() {
        let squeezable = matches!(c, ' ' | '-' | '=');
        if squeezable && c == prev {
            continue;
        }
        out.push(c);
        prev = c;
    }
    out
}

fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hub")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        text,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

/// (scenario, source value, events) of each alert of a replay, sorted.
fn replay(content: &Path, log: &str, kind: &str) -> Vec<(String, String, i64)> {
    let out = ok(&[
        "replay",
        "--file",
        repo().join("demo").join(log).to_str().unwrap(),
        "--type",
        kind,
        "-o",
        "json",
        "--hub",
        content.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
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

const FOUR: [&str; 4] = [
    "crowdsecurity/sshd",
    "crowdsecurity/nginx",
    "crowdsecurity/linux",
    "crowdsecurity/base-http-scenarios",
];

#[test]
fn collections_installed_from_a_hub_directory_raise_alerts_on_replay() {
    let Some(hub) = shared_hub("collections_installed_from_a_hub_directory_raise_alerts_on_replay")
    else {
        return;
    };
    let site = Site::new(hub.to_str().unwrap());
    let updated = site.ok(&["hub", "update"]);
    assert!(updated.contains("index updated"), "{updated}");
    assert_eq!(site.ok(&["hub", "list"]), "No items to display\n");

    let mut install = vec!["collections", "install"];
    install.extend(FOUR);
    let out = site.ok(&install);
    assert!(
        out.contains("enabled:") && out.contains("Reload Rampart"),
        "{out}"
    );

    // The config directory is a content directory: links, data files and patterns.
    let etc = site.etc();
    let link = etc.join("parsers/s01-parse/sshd-logs.yaml");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        etc.join("hub/parsers/s01-parse/crowdsecurity/sshd-logs.yaml")
    );
    assert_eq!(
        std::fs::read(etc.join("data/sqli_probe_patterns.txt")).unwrap(),
        std::fs::read(hub.join("data/web/sqli_probe_patterns.txt")).unwrap()
    );
    assert!(etc.join("patterns/ssh").is_file());

    let table = site.ok(&["collections", "list"]);
    assert!(!table.contains('\u{1b}'), "colour in piped output");
    golden(
        "collections-list.txt",
        &squeeze(&site.redact(&table, Some(&hub))),
    );
    golden(
        "parsers-list.json",
        &site.redact(&site.ok(&["parsers", "list", "-o", "json"]), Some(&hub)),
    );
    golden(
        "hub-list.csv",
        &site.redact(&site.ok(&["hub", "list", "-o", "raw"]), Some(&hub)),
    );
    // Installing again changes nothing.
    assert!(site.ok(&install).contains("Nothing to do"));

    // Every alert comes from a scenario installed here (a file may hold several).
    let installed: String = std::fs::read_dir(etc.join("scenarios"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let mut text = String::new();
    for (log, kind) in [("auth.log", "syslog"), ("nginx-access.log", "nginx")] {
        let alerts = replay(&etc, log, kind);
        assert!(!alerts.is_empty(), "no alert from {log}");
        for (scenario, value, n) in alerts {
            assert!(
                installed.contains(&format!("name: {scenario}\n")),
                "{scenario} is not an installed scenario"
            );
            text.push_str(&format!("{log} {scenario} {value} {n}\n"));
        }
    }
    golden("replay-alerts.txt", &text);
}

#[test]
fn edited_items_are_reported_tainted_and_never_overwritten_silently() {
    let Some(hub) = shared_hub("edited_items_are_reported_tainted_and_never_overwritten_silently")
    else {
        return;
    };
    let site = Site::new(hub.to_str().unwrap());
    site.ok(&["hub", "update"]);
    site.ok(&["collections", "install", "crowdsecurity/sshd"]);
    let installed = site.etc().join("parsers/s01-parse/sshd-logs.yaml");
    let pristine = std::fs::read_to_string(&installed).unwrap();
    let edited = format!("{pristine}# tuned for our bastion\n");
    std::fs::write(&installed, &edited).unwrap();

    golden(
        "tainted-collections.json",
        &site.redact(&site.ok(&["collections", "list", "-o", "json"]), Some(&hub)),
    );
    let table = site.ok(&["parsers", "list"]);
    assert!(table.contains("⚠️  enabled,tainted"), "{table}");
    golden(
        "tainted-inspect.yaml",
        &site.redact(
            &site.ok(&["parsers", "inspect", "crowdsecurity/sshd-logs"]),
            Some(&hub),
        ),
    );

    for args in [
        &["hub", "upgrade"][..],
        &["parsers", "upgrade", "crowdsecurity/sshd-logs"],
        &["collections", "install", "crowdsecurity/sshd"],
        &["parsers", "remove", "crowdsecurity/sshd-logs"],
    ] {
        let o = site.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("edited locally") || err.contains("belongs to"),
            "{args:?} said nothing: {err}"
        );
        assert!(err.contains("--force"), "{args:?}: {err}");
        assert_eq!(
            std::fs::read_to_string(&installed).unwrap(),
            edited,
            "{args:?}"
        );
    }

    let diff = site.ok(&["parsers", "inspect", "crowdsecurity/sshd-logs", "--diff"]);
    assert!(diff.contains("-# tuned for our bastion"), "{diff}");
    let why = site.ok(&["collections", "inspect", "crowdsecurity/sshd", "--diff"]);
    assert!(
        why.contains("-> parsers:crowdsecurity/sshd-logs") && why.contains("-# tuned"),
        "{why}"
    );

    site.ok(&["parsers", "upgrade", "crowdsecurity/sshd-logs", "--force"]);
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), pristine);
    let v: Value = serde_json::from_str(&site.ok(&["collections", "list", "-o", "json"])).unwrap();
    assert_eq!(v["collections"][0]["status"], "enabled");
}

/// Serves a directory over HTTP/1.1, one request per connection, recording request paths.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(root: PathBuf) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &root, &log);
        }
    });
    Server { addr, requests }
}

fn answer(mut s: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let path = path.split('?').next().unwrap_or_default().to_owned();
    log.lock().unwrap().push(path.clone());
    let rel = path.trim_start_matches('/');
    let body = if rel.split('/').any(|c| c == "..") {
        None
    } else {
        std::fs::read(root.join(rel))
            .ok()
            .filter(|_| root.join(rel).is_file())
    };
    match body {
        Some(b) => {
            s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            )?;
            s.write_all(&b)?;
        }
        None => s.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?,
    }
    s.flush()
}

#[test]
fn an_http_hub_serves_the_index_items_data_files_and_patterns() {
    let Some(hub) = shared_hub("an_http_hub_serves_the_index_items_data_files_and_patterns") else {
        return;
    };
    let server = serve(hub.clone());
    let base = format!("http://{}", server.addr);
    let site = Site::new(&base);
    site.ok(&["hub", "update"]);
    let data_url = format!("{base}/data");
    let out = site.ok(&[
        "collections",
        "install",
        "crowdsecurity/linux",
        "--data-url",
        &data_url,
    ]);
    assert!(out.contains("crowdsecurity/sshd-logs"), "{out}");
    site.ok(&[
        "scenarios",
        "install",
        "crowdsecurity/http-sqli-probing",
        "--data-url",
        &data_url,
    ]);

    let requests = server.requests.lock().unwrap().clone();
    for want in [
        "/.index.json",
        "/collections/crowdsecurity/sshd.yaml",
        "/parsers/s01-parse/crowdsecurity/sshd-logs.yaml",
        "/scenarios/crowdsecurity/http-sqli-probing.yaml",
        "/data/web/sqli_probe_patterns.txt",
        "/patterns/ssh",
    ] {
        assert!(
            requests.iter().any(|r| r == want),
            "{want} not requested: {requests:?}"
        );
    }
    let etc = site.etc();
    assert_eq!(
        std::fs::read(etc.join("data/sqli_probe_patterns.txt")).unwrap(),
        std::fs::read(hub.join("data/web/sqli_probe_patterns.txt")).unwrap()
    );
    assert_eq!(
        std::fs::read(etc.join("parsers/s01-parse/sshd-logs.yaml")).unwrap(),
        std::fs::read(hub.join("parsers/s01-parse/crowdsecurity/sshd-logs.yaml")).unwrap()
    );
    golden(
        "http-hub-list.json",
        &site.redact(&site.ok(&["hub", "list", "-o", "json"]), Some(&hub)),
    );

    // What was installed is a working content directory.
    let alerts = replay(&etc, "auth.log", "syslog");
    assert!(
        alerts.iter().any(|a| a.0 == "crowdsecurity/ssh-bf"),
        "{alerts:?}"
    );
}

/// A hub of two items written by the test, with the digests the test chooses.
fn small_hub(root: &Path, good_digest: bool) {
    let parser = "name: acme/p\nfilter: \"1 == 1\"\n";
    let collection = "name: acme/c\nparsers: [acme/p]\n";
    let digest = |s: &str| {
        if good_digest {
            hub::sha256_hex(s.as_bytes())
        } else {
            "0".repeat(64)
        }
    };
    for (rel, text) in [
        ("parsers/s01-parse/acme/p.yaml", parser),
        ("collections/acme/c.yaml", collection),
    ] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let index = json!({
        "parsers": {"acme/p": {"path": "parsers/s01-parse/acme/p.yaml", "stage": "s01-parse",
            "version": "0.1", "versions": {"0.1": {"digest": digest(parser)}},
            "description": "a parser"}},
        "collections": {"acme/c": {"path": "collections/acme/c.yaml", "version": "0.1",
            "versions": {"0.1": {"digest": hub::sha256_hex(collection.as_bytes())}},
            "parsers": ["acme/p"], "description": "a collection"}},
    });
    std::fs::write(root.join(".index.json"), index.to_string()).unwrap();
}

#[test]
fn errors_name_what_and_where_and_say_what_to_do_next() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_hub(&src, true);
    let site = Site::new(src.to_str().unwrap());

    let err = String::from_utf8(site.run(&["parsers", "list"]).stderr).unwrap();
    assert!(
        err.contains(".index.json") && err.contains("rampart hub update"),
        "{err}"
    );

    site.ok(&["hub", "update"]);
    let err = String::from_utf8(site.run(&["collections", "install", "acme/cc"]).stderr).unwrap();
    assert!(
        err.contains("can't find 'acme/cc' in collections, did you mean 'acme/c'?"),
        "{err}"
    );
    assert!(err.contains("rampart collections list -a"), "{err}");

    // A hub whose file does not match its index.
    let bad = tmp.path().join("bad");
    small_hub(&bad, false);
    let other = Site::new(bad.to_str().unwrap());
    other.ok(&["hub", "update"]);
    let o = other.run(&["collections", "install", "acme/c"]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(!o.status.success());
    assert!(
        err.contains("parsers:acme/p") && err.contains("sha256") && err.contains("hub update"),
        "{err}"
    );
    assert!(!other.etc().join("collections").exists(), "half an install");

    // A broken index.
    std::fs::write(other.etc().join("hub/.index.json"), "{\"parsers\": [").unwrap();
    let err = String::from_utf8(other.run(&["parsers", "list"]).stderr).unwrap();
    assert!(
        err.contains("hub/.index.json is not a valid hub index") && err.contains("line 1"),
        "{err}"
    );

    // Unreachable and missing hubs.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = fails(&[
        "hub",
        "update",
        "--config-dir",
        other.etc().to_str().unwrap(),
        "--hub-url",
        &format!("http://{closed}"),
    ]);
    assert!(
        err.contains("cannot fetch") && err.contains("network"),
        "{err}"
    );
    let err = fails(&[
        "hub",
        "update",
        "--config-dir",
        other.etc().to_str().unwrap(),
        "--hub-url",
        tmp.path().join("nowhere").to_str().unwrap(),
    ]);
    assert!(
        err.contains("no such directory") && err.contains("--hub-url"),
        "{err}"
    );

    // Removing what a collection needs, and a local file.
    site.ok(&["collections", "install", "acme/c"]);
    let o = site.run(&["parsers", "remove", "acme/p"]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("belongs to the installed collection(s) acme/c")
            && err.contains("rampart parsers remove acme/p --force"),
        "{err}"
    );
}

#[test]
fn config_yaml_paths_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_hub(&src, true);
    std::fs::create_dir_all(src.join("patterns")).unwrap();
    std::fs::write(src.join("patterns/ssh"), "X .*\n").unwrap();

    // CrowdSec's keys: config_dir, hub_dir, index_path, data_dir.
    let cs = tmp.path().join("crowdsec");
    let config = cs.join("config.yaml");
    std::fs::create_dir_all(&cs).unwrap();
    std::fs::write(
        &config,
        format!(
            "common:\n  log_media: stdout\nconfig_paths:\n  config_dir: {d}/etc/\n  data_dir: {d}/data/\n  hub_dir: {d}/cache/\n  index_path: {d}/cache/.index.json\n",
            d = cs.display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let s = src.to_str().unwrap();
    ok(&["hub", "update", "-c", c, "--hub-url", s]);
    assert!(cs.join("cache/.index.json").is_file());
    ok(&["collections", "install", "acme/c", "-c", c, "--hub-url", s]);
    assert!(cs.join("etc/parsers/s01-parse/p.yaml").is_file());
    assert!(cs.join("etc/patterns/ssh").is_file());
    let listed: Value =
        serde_json::from_str(&ok(&["parsers", "list", "-c", c, "-o", "json"])).unwrap();
    assert_eq!(listed["parsers"][0]["status"], "enabled");

    // Rampart's own config (`rampart setup`): hub_dir names the content directory itself, so
    // the hub cache goes below it.
    let rp = tmp.path().join("rampart");
    std::fs::create_dir_all(&rp).unwrap();
    let rconfig = rp.join("config.yaml");
    std::fs::write(
        &rconfig,
        format!(
            "config_paths:\n  data_dir: {d}/state\n  hub_dir: {d}\n",
            d = rp.display()
        ),
    )
    .unwrap();
    let rc = rconfig.to_str().unwrap();
    ok(&["hub", "update", "-c", rc, "--hub-url", s]);
    assert!(rp.join("hub/.index.json").is_file());
    ok(&["collections", "install", "acme/c", "-c", rc, "--hub-url", s]);
    assert!(rp.join("parsers/s01-parse/p.yaml").is_file());

    // Colour is for terminals, or when asked for.
    let plain = ok(&["parsers", "list", "-c", rc]);
    assert!(!plain.contains('\u{1b}'));
    let coloured = ok(&["parsers", "list", "-c", rc, "--color", "yes"]);
    assert!(coloured.contains('\u{1b}'), "{coloured}");
}

#[test]
fn dry_runs_change_nothing_and_types_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_hub(&src, true);
    let site = Site::new(src.to_str().unwrap());
    site.ok(&["hub", "update"]);
    let plan = site.ok(&["collections", "install", "acme/c", "--dry-run"]);
    assert!(
        plan.contains("download:") && plan.contains("parsers: acme/p (0.1)"),
        "{plan}"
    );
    assert!(!site.etc().join("collections").exists());
    let json: Value = serde_json::from_str(&site.ok(&[
        "collections",
        "install",
        "acme/c",
        "--dry-run",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(json[0]["action"], "download");
    let types = site.ok(&["hub", "types", "-o", "json"]);
    assert_eq!(
        types.trim(),
        r#"["parsers","postoverflows","scenarios","contexts","appsec-configs","appsec-rules","collections"]"#
    );
}
