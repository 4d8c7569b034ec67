//! `acquis.yaml` / `acquis.d` parsing and replay DSNs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use acquire::{AcquireError, Mode, SourceKind, dsn_spec, load_acquis};

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn multi_document_file_with_legacy_auto_typing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "acquis.yaml",
        r#"# nginx
filenames:
  - /var/log/nginx/*.log
  - /var/log/nginx/access.log.1
labels:
  type: nginx
---
# empty document
---
filename: /var/log/auth.log
labels:
  type: syslog
---
journalctl_filter:
  - _SYSTEMD_UNIT=ssh.service
labels:
  type: syslog
---
source: syslog
listen_addr: 0.0.0.0
listen_port: 4242
protocol: udp+tcp
max_message_len: 4096
labels:
  type: syslog
  extra: 5
---
source: file
mode: cat
filenames: [/tmp/x.log]
exclude_regexps: ["\\.gz$"]
poll_without_inotify: true
max_buffer_size: 1024
discovery_poll_interval: 1m
use_time_machine: true
name: replay
labels:
  type: apache2
"#,
    );
    let specs = load_acquis(Some(&file), None).unwrap();
    assert_eq!(specs.len(), 5);
    let SourceKind::File(f) = &specs[0].kind else {
        panic!("{:?}", specs[0])
    };
    assert_eq!(
        f.filenames,
        ["/var/log/nginx/*.log", "/var/log/nginx/access.log.1"]
    );
    assert_eq!(specs[0].mode, Mode::Tail);
    assert_eq!(specs[0].log_type(), "nginx");
    assert!(
        specs[0].origin.ends_with("acquis.yaml, document 1"),
        "{}",
        specs[0].origin
    );
    let SourceKind::File(f) = &specs[1].kind else {
        panic!()
    };
    assert_eq!(f.filenames, ["/var/log/auth.log"]);
    assert!(
        specs[1].origin.ends_with("document 3"),
        "{}",
        specs[1].origin
    );
    let SourceKind::Journal(j) = &specs[2].kind else {
        panic!()
    };
    assert_eq!(j.filters, ["_SYSTEMD_UNIT=ssh.service"]);
    let SourceKind::Syslog(s) = &specs[3].kind else {
        panic!()
    };
    assert_eq!(
        (s.listen_addr.as_str(), s.listen_port, s.udp, s.tcp),
        ("0.0.0.0", 4242, true, true)
    );
    assert_eq!(s.max_message_len, 4096);
    assert_eq!(specs[3].labels.get("extra").map(String::as_str), Some("5"));
    let SourceKind::File(f) = &specs[4].kind else {
        panic!()
    };
    assert_eq!(specs[4].mode, Mode::Cat);
    assert_eq!(f.exclude_regexps, ["\\.gz$"]);
    assert_eq!(f.poll_without_inotify, Some(true));
    assert_eq!(f.max_buffer_size, 1024);
    assert_eq!(f.discovery_poll_interval, Duration::from_secs(60));
    assert!(specs[4].use_time_machine);
    assert_eq!(specs[4].name.as_deref(), Some("replay"));
}

#[test]
fn acquis_d_yaml_and_yml_in_name_order_after_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        dir.path(),
        "acquis.yaml",
        "filename: /a.log\nlabels: {type: a}\n",
    );
    let d = dir.path().join("acquis.d");
    std::fs::create_dir(&d).unwrap();
    write(&d, "20-b.yml", "filename: /b.log\nlabels: {type: b}\n");
    write(&d, "10-c.yaml", "filename: /c.log\nlabels: {type: c}\n");
    write(&d, "30-ignored.txt", "not: yaml: at all");
    write(&d, "40-empty.yaml", "# nothing here\n");
    let specs = load_acquis(Some(&main), Some(&d)).unwrap();
    let types: Vec<&str> = specs.iter().map(|s| s.log_type()).collect();
    assert_eq!(types, ["a", "c", "b"]);
    // A missing acquis.d is fine, a missing acquis.yaml is not.
    assert_eq!(
        load_acquis(None, Some(&dir.path().join("nope")))
            .unwrap()
            .len(),
        0
    );
    assert!(matches!(
        load_acquis(Some(&dir.path().join("nope.yaml")), None),
        Err(AcquireError::Io { .. })
    ));
}

fn error_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", text);
    let err = load_acquis(Some(&file), None).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("bad.yaml"), "no file name in: {msg}");
    msg
}

#[test]
fn errors_name_file_document_line_and_key() {
    let msg = error_of(
        "filename: /a.log\nlabels: {type: a}\n---\nsource: journalctl\njournalctl_filters: [x]\nlabels: {type: syslog}\n",
    );
    assert!(msg.contains("document 2"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");
    assert!(msg.contains("unknown key `journalctl_filters`"), "{msg}");
    assert!(msg.contains("did you mean `journalctl_filter`"), "{msg}");

    let msg = error_of("filenames: [/a.log]\nlabels:\n  typ: nginx\n");
    assert!(msg.contains("labels.type"), "{msg}");
    assert!(msg.contains("document 1"), "{msg}");

    let msg = error_of("source: docker\ncontainer_name: [x]\nlabels: {type: a}\n");
    assert!(msg.contains("`docker` is not supported"), "{msg}");

    let msg = error_of("source: fiel\nfilename: /a\nlabels: {type: a}\n");
    assert!(msg.contains("did you mean `file`"), "{msg}");

    let msg = error_of("labels: {type: a}\n");
    assert!(msg.contains("no `source`"), "{msg}");

    let msg = error_of("source: syslog\nlisten_port: 70000\nlabels: {type: a}\n");
    assert!(msg.contains("listen_port"), "{msg}");

    let msg = error_of("source: syslog\nmode: cat\nlabels: {type: a}\n");
    assert!(msg.contains("mode: tail"), "{msg}");

    let msg = error_of("filename: /a\nmode: follow\nlabels: {type: a}\n");
    assert!(msg.contains("`mode` must be"), "{msg}");

    let msg = error_of("filename: /a\ndiscovery_poll_interval: 5x\nlabels: {type: a}\n");
    assert!(msg.contains("invalid duration"), "{msg}");

    let msg = error_of("filename: /a\nlabels: {type: a}\n  bad: [indent\n");
    assert!(msg.contains("invalid YAML"), "{msg}");
}

#[test]
fn replay_dsns() {
    let spec = dsn_spec("file:///var/log/nginx/*.log?max_buffer_size=2048", "nginx").unwrap();
    assert_eq!(spec.mode, Mode::Cat);
    assert_eq!(spec.log_type(), "nginx");
    let SourceKind::File(f) = &spec.kind else {
        panic!()
    };
    assert_eq!(f.filenames, ["/var/log/nginx/*.log"]);
    assert_eq!(f.max_buffer_size, 2048);

    let spec = dsn_spec(
        "journalctl://filters=_SYSTEMD_UNIT=ssh.service&filters=_COMM%3Dsshd&since=2024-01-01",
        "syslog",
    )
    .unwrap();
    let SourceKind::Journal(j) = &spec.kind else {
        panic!()
    };
    assert_eq!(j.filters, ["_SYSTEMD_UNIT=ssh.service", "_COMM=sshd"]);
    assert_eq!(j.since.as_deref(), Some("2024-01-01"));
    assert_eq!(spec.mode, Mode::Cat);

    assert!(matches!(
        dsn_spec("-", "syslog").unwrap().kind,
        SourceKind::Stdin
    ));
    for bad in [
        "docker://x",
        "journalctl://since=1h",
        "file://",
        "/var/log/x",
        "file:///x?foo=1",
    ] {
        let err = dsn_spec(bad, "syslog").err().unwrap();
        assert!(err.to_string().contains(bad), "{err}");
    }
    assert!(dsn_spec("file:///x", "").is_err());
}
