//! Compatibility tests against the CrowdSec hub snapshot in `/work/shared/compat` (read in
//! place, never copied into the repo). Without it every test prints a skip notice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use grok::{Captures, Grok, PatternSet};
use serde_json::Value;

fn hub_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/crowdsec-hub");
    if dir.is_dir() {
        Some(dir)
    } else {
        // Written to the real stderr: the test harness captures println! of passing tests,
        // and a skip must never look like a silent pass.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"skipped: ../shared/compat not found\n",
        );
        None
    }
}

fn hub_set(hub: &Path) -> PatternSet {
    let mut set = PatternSet::new();
    match set.load_dir(hub.join("patterns")) {
        Ok(n) => assert!(n > 250, "only {n} definitions loaded"),
        Err(e) => panic!("{e}"),
    }
    set
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// A hub parser file reduced to what grok cares about.
struct Parser {
    path: PathBuf,
    syntax: Vec<(String, String)>,
    patterns: Vec<String>,
    named: Vec<String>,
    /// Groks in document order with their `apply_on`, names written as `%{NAME}`.
    nodes: Vec<(String, Option<String>)>,
    /// Fields that statics overwrite after the grok ran.
    static_parsed: Vec<String>,
}

fn collect(v: &Value, p: &mut Parser) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(syntax)) = map.get("pattern_syntax") {
                for (k, def) in syntax {
                    if let Some(def) = def.as_str() {
                        p.syntax.push((k.clone(), def.to_owned()));
                    }
                }
            }
            let grok = map.get("grok");
            let apply_on = grok
                .and_then(|g| g.get("apply_on"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(pattern) = grok.and_then(|g| g.get("pattern")).and_then(Value::as_str) {
                p.patterns.push(pattern.to_owned());
                p.nodes.push((pattern.to_owned(), apply_on.clone()));
            }
            // `grok.name` refers to a library definition instead of an inline pattern.
            if let Some(name) = grok.and_then(|g| g.get("name")).and_then(Value::as_str) {
                p.named.push(name.to_owned());
                p.nodes.push((format!("%{{{name}}}"), apply_on));
            }
            if let Some(field) = map.get("parsed").and_then(Value::as_str) {
                p.static_parsed.push(field.to_owned());
            }
            map.values().for_each(|v| collect(v, p));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, p)),
        _ => {}
    }
}

fn parsers(hub: &Path) -> Vec<Parser> {
    let mut files = Vec::new();
    yaml_files(&hub.join("parsers"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut p = Parser {
            path,
            syntax: Vec::new(),
            patterns: Vec::new(),
            named: Vec::new(),
            nodes: Vec::new(),
            static_parsed: Vec::new(),
        };
        docs.iter().for_each(|d| collect(d, &mut p));
        out.push(p);
    }
    out
}

/// Every `%{NAME…}` in `text`, by a deliberately independent, naive scan.
fn references(text: &str, out: &mut BTreeSet<String>) {
    for piece in text.split("%{").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
}

#[test]
fn every_pattern_file_definition_compiles() {
    let Some(hub) = hub_dir() else { return };
    let set = hub_set(&hub);
    let mut file_names = BTreeSet::new();
    for entry in std::fs::read_dir(hub.join("patterns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && set.contains(&name) {
                file_names.insert(name);
            }
        }
    }
    let mut failures = Vec::new();
    for name in &file_names {
        if let Err(e) = set.compile(&format!("%{{{name}}}")) {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "{}/{} pattern file definitions compile",
        file_names.len() - failures.len(),
        file_names.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_referenced_name_is_defined() {
    let Some(hub) = hub_dir() else { return };
    let mut defined: BTreeSet<String> = hub_set(&hub).names().map(str::to_owned).collect();
    let mut refs = BTreeSet::new();
    for entry in std::fs::read_dir(hub.join("patterns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        references(
            &std::fs::read_to_string(entry.path()).unwrap_or_default(),
            &mut refs,
        );
    }
    for p in parsers(&hub) {
        defined.extend(p.syntax.iter().map(|(k, _)| k.clone()));
        references(
            &std::fs::read_to_string(&p.path).unwrap_or_default(),
            &mut refs,
        );
    }
    let missing: Vec<_> = refs.difference(&defined).collect();
    println!(
        "{} referenced names, {} undefined",
        refs.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "undefined grok names: {missing:?}");
}

#[test]
fn every_hub_inline_pattern_compiles() {
    let Some(hub) = hub_dir() else { return };
    let base = hub_set(&hub);
    let (mut total, mut ok, mut syntax_total, mut syntax_ok) = (0, 0, 0, 0);
    let (mut named_total, mut named_ok) = (0, 0);
    let mut failures = Vec::new();
    for p in parsers(&hub) {
        let mut set = base.clone();
        let origin = p
            .path
            .strip_prefix(&hub)
            .unwrap_or(&p.path)
            .display()
            .to_string();
        for (k, def) in &p.syntax {
            if let Err(e) = set.add_with_origin(k, def, &origin) {
                failures.push(e.to_string());
            }
        }
        for (k, _) in &p.syntax {
            syntax_total += 1;
            match set.compile(&format!("%{{{k}}}")) {
                Ok(_) => syntax_ok += 1,
                Err(e) => failures.push(format!("{origin}: pattern_syntax {k}: {e}")),
            }
        }
        for pattern in &p.patterns {
            total += 1;
            match set.compile(pattern) {
                Ok(_) => ok += 1,
                Err(e) => failures.push(format!("{origin}: {e}")),
            }
        }
        for name in &p.named {
            named_total += 1;
            match set.compile(&format!("%{{{name}}}")) {
                Ok(_) => named_ok += 1,
                Err(e) => failures.push(format!("{origin}: grok.name {name}: {e}")),
            }
        }
    }
    println!("{ok}/{total} hub grok patterns compile");
    println!("{syntax_ok}/{syntax_total} hub pattern_syntax definitions compile");
    println!("{named_ok}/{named_total} hub grok.name references compile");
    assert!(total > 200, "found only {total} inline grok patterns");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn compile(set: &PatternSet, p: &str) -> Grok {
    set.compile(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn fields(g: &Grok, line: &str) -> Vec<(String, String)> {
    g.parse(line)
        .unwrap_or_else(|| panic!("{} does not match {line}", g.pattern()))
}

fn get<'a>(f: &'a [(String, String)], k: &str) -> &'a str {
    f.iter()
        .find(|(n, _)| n == k)
        .map_or("<missing>", |(_, v)| v.as_str())
}

#[test]
fn sshd_failed_password_for_invalid_user() {
    let Some(hub) = hub_dir() else { return };
    let set = hub_set(&hub);
    let line = "Failed password for invalid user admin from 192.168.1.20 port 51234 ssh2";
    // The hub's sshd parser references this definition by name (`grok.name: SSHD_USER_FAIL`).
    let g = compile(&set, "%{SSHD_USER_FAIL}");
    let f = fields(&g, line);
    assert_eq!(get(&f, "sshd_invalid_user"), "admin");
    assert_eq!(get(&f, "sshd_client_ip"), "192.168.1.20");
    assert_eq!(get(&f, "sshd_port"), "51234");
    assert_eq!(get(&f, "sshd_protocol"), "ssh2");
    let mut caps = Captures::new();
    assert!(!g.captures(
        "Failed password for root from 192.168.1.20 port 51234 ssh2",
        &mut caps
    ));

    // Through the big alternation the line still matches, but every field name occurs in
    // several alternatives and grokky keeps only the last occurrence of each, so values come
    // back empty; this is why the hub references the individual definitions.
    let g = compile(&set, "%{SSHD_LOG}");
    assert!(g.captures(line, &mut caps));
    assert_eq!(g.get("sshd_client_ip", line, &caps), Some(""));
    assert!(!g.captures(
        "pam_unix(cron:session): session opened for user root",
        &mut caps
    ));
}

#[test]
fn nginx_combined_access_line() {
    let Some(hub) = hub_dir() else { return };
    let set = hub_set(&hub);
    let g = compile(&set, "%{NGINXACCESS}");
    let line = r#"203.0.113.9 - - [28/Jan/2016:14:19:36 +0300] "GET /zero.html?a=1 HTTP/1.1" 404 398 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/47.0.2526.111 Safari/537.36""#;
    let f = fields(&g, line);
    assert_eq!(get(&f, "remote_addr"), "203.0.113.9");
    assert_eq!(get(&f, "remote_user"), "-");
    assert_eq!(get(&f, "time_local"), "28/Jan/2016:14:19:36 +0300");
    assert_eq!(get(&f, "method"), "GET");
    assert_eq!(get(&f, "request"), "/zero.html?a=1");
    assert_eq!(get(&f, "http_version"), "1.1");
    assert_eq!(get(&f, "status"), "404");
    assert_eq!(get(&f, "body_bytes_sent"), "398");
    assert_eq!(get(&f, "http_referer"), "-");
    assert!(get(&f, "http_user_agent").starts_with("Mozilla/5.0 (X11"));
}

#[test]
fn syslog_line_with_syslogbase2() {
    let Some(hub) = hub_dir() else { return };
    let set = hub_set(&hub);
    let g = compile(&set, "^%{SYSLOGLINE}");
    let f = fields(
        &g,
        "Jan  5 06:25:01 myhost sshd[4242]: Invalid user test from 10.1.2.3 port 4000",
    );
    assert_eq!(get(&f, "timestamp"), "Jan  5 06:25:01");
    assert_eq!(get(&f, "timestamp8601"), "");
    assert_eq!(get(&f, "logsource"), "myhost");
    assert_eq!(get(&f, "program"), "sshd");
    assert_eq!(get(&f, "pid"), "4242");
    assert_eq!(
        get(&f, "message"),
        "Invalid user test from 10.1.2.3 port 4000"
    );

    let f = fields(
        &g,
        "2024-03-01T10:00:00+00:00 fw01 kernel: [UFW BLOCK] IN=eth0",
    );
    assert_eq!(get(&f, "timestamp8601"), "2024-03-01T10:00:00+00:00");
    assert_eq!(get(&f, "program"), "kernel");
    assert_eq!(get(&f, "pid"), "");
    assert_eq!(get(&f, "message"), "[UFW BLOCK] IN=eth0");
}

#[test]
fn pf_duplicate_names_follow_grokky() {
    // hub PR #619: with the TCP alternative matching, CrowdSec reported `tcp_seq` but an empty
    // `src_port`, because the later (UDP) alternative's nested `src_port` owns the name.
    let mut set = PatternSet::new();
    for (k, v) in [
        (
            "PF_UDP_DATA",
            "%{INT:src_port},%{INT:dst_port},%{INT:data_length}",
        ),
        (
            "PF_TCP_DATA",
            "%{PF_UDP_DATA:TCP_SOURCE_PORTS},%{WORD:tcp_flags}?,%{DATA:tcp_seq}?,%{DATA:tcp_ack}?,%{DATA:tcp_window}?,%{DATA:urg_data}?,%{GREEDYDATA:tcp_options}?",
        ),
        (
            "PF_PROTOCOL_DATA",
            "(%{PF_TCP_DATA}|%{PF_UDP_DATA:UDP_SOURCE_PORTS})",
        ),
    ] {
        set.add(k, v).unwrap_or_else(|e| panic!("{e}"));
    }
    let g = compile(&set, "%{PF_PROTOCOL_DATA}");
    let f = fields(&g, "59576,22,0,S,17536001,,65535,,mss");
    assert_eq!(get(&f, "tcp_seq"), "17536001");
    assert_eq!(get(&f, "TCP_SOURCE_PORTS"), "59576,22,0");
    assert_eq!(get(&f, "src_port"), "");
    assert_eq!(get(&f, "UDP_SOURCE_PORTS"), "");
}

#[test]
fn eight_kb_nginx_line_matches() {
    let Some(hub) = hub_dir() else { return };
    let set = hub_set(&hub);
    let g = compile(&set, "%{NGINXACCESS}");
    let ua = "Mozilla/5.0 ".repeat(8 * 1024 / 12);
    let line = format!(
        r#"10.0.0.1 - bob [28/Jan/2016:14:19:36 +0300] "POST /api HTTP/2.0" 200 5 "-" "{ua}""#
    );
    assert!(line.len() > 8 * 1024);
    let f = fields(&g, &line);
    assert_eq!(get(&f, "http_user_agent"), ua);
    assert_eq!(get(&f, "remote_user"), "bob");
}

/// Undoes the string escaping of an expr literal in a `parser.assert` line.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Differential check against CrowdSec itself: the hub's functional tests record what the
/// s00 `crowdsecurity/syslog-logs` parser extracted from every syslog test line. Its fields
/// come straight from two groks over the base set plus `SYSLOGLINE`, so they exercise the
/// base patterns and leftmost-first semantics end to end.
#[test]
fn syslog_logs_parser_assertions_agree() {
    let Some(hub) = hub_dir() else { return };
    let mut set = hub_set(&hub);
    let parser = parsers(&hub)
        .into_iter()
        .find(|p| p.path.ends_with("s00-raw/crowdsecurity/syslog-logs.yaml"))
        .unwrap_or_else(|| panic!("syslog-logs parser not found"));
    for (k, v) in &parser.syntax {
        set.add(k, v).unwrap_or_else(|e| panic!("{e}"));
    }
    let nodes: Vec<Grok> = parser.patterns.iter().map(|p| compile(&set, p)).collect();
    let prefix = r#"results["s00-raw"]["crowdsecurity/syslog-logs"]["#;
    let (mut checked, mut failures) = (0, Vec::new());
    let mut dirs: Vec<_> = std::fs::read_dir(hub.join("tests"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let config = std::fs::read_to_string(dir.join("config.yaml")).unwrap_or_default();
        let value = |key: &str| {
            config
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().trim_matches('"').to_owned())
        };
        if value("log_type:").as_deref() != Some("syslog") {
            continue;
        }
        let Some(log_file) = value("log_file:") else {
            continue;
        };
        let log = std::fs::read_to_string(dir.join(&log_file)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
        let asserts = std::fs::read_to_string(dir.join("parser.assert")).unwrap_or_default();
        for a in asserts.lines() {
            let Some(rest) = a.strip_prefix(prefix) else {
                continue;
            };
            let Some((idx, rest)) = rest.split_once(']') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            let Some(rest) = rest.strip_prefix(r#".Evt.Parsed[""#) else {
                continue;
            };
            let Some((key, rest)) = rest.split_once(r#""] == ""#) else {
                continue;
            };
            let Some(expected) = rest.strip_suffix('"') else {
                continue;
            };
            let expected = unescape(expected);
            let Some(line) = lines.get(idx) else { continue };
            let Some(f) = nodes.iter().find_map(|g| g.parse(line)) else {
                failures.push(format!("{}[{idx}] no node matched: {line}", dir.display()));
                continue;
            };
            // Keys the groks do not produce come from statics (e.g. logsource is overwritten).
            let Some((_, got)) = f.iter().find(|(k, _)| k == key) else {
                continue;
            };
            if key == "logsource" {
                continue;
            }
            checked += 1;
            if *got != expected {
                failures.push(format!(
                    "{}[{idx}] {key}: got {got:?}, CrowdSec {expected:?}; line {line}",
                    dir.display()
                ));
            }
        }
    }
    println!(
        "{}/{checked} syslog-logs field assertions agree with CrowdSec",
        checked - failures.len().min(checked)
    );
    assert!(checked > 100, "only {checked} assertions checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Differential check over every s01 parser with hub functional tests: the asserted
/// `Evt.Parsed` of an event carries the `message` the grok ran on and the fields it produced.
/// The first grok node (applied on `message`) that matches is taken as CrowdSec's; fields
/// that statics or other groks overwrite are skipped. Node filters are expressions we cannot
/// evaluate here, so in principle a line could be taken by another node than CrowdSec chose;
/// any disagreement is listed and fails the test.
#[test]
fn s01_parser_assertions_agree() {
    let Some(hub) = hub_dir() else { return };
    let base = hub_set(&hub);
    let all = parsers(&hub);
    let mut compiled: std::collections::HashMap<String, (Vec<Grok>, Vec<String>)> =
        Default::default();
    for p in &all {
        let Some(rel) = p.path.strip_prefix(hub.join("parsers/s01-parse")).ok() else {
            continue;
        };
        let name = rel.with_extension("").display().to_string();
        let mut set = base.clone();
        for (k, v) in &p.syntax {
            set.add(k, v).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut groks = Vec::new();
        // Fields that statics or groks on other inputs (e.g. a child node re-parsing
        // `reason`) may overwrite after the message grok ran.
        let mut skip = p.static_parsed.clone();
        for (pat, on) in &p.nodes {
            let g = compile(&set, pat);
            if on.as_deref() == Some("message") {
                groks.push(g);
            } else {
                skip.extend(g.field_names().map(str::to_owned));
            }
        }
        // Only parsers whose every grok reads `message` can be replayed from the assertions.
        if !p.nodes.is_empty()
            && p.nodes
                .iter()
                .all(|(_, on)| on.as_deref() == Some("message"))
        {
            compiled.insert(name, (groks, skip));
        }
    }

    let prefix = r#"results["s01-parse"][""#;
    let mut succeeded = BTreeSet::new();
    let mut events: std::collections::BTreeMap<(String, String, usize), Vec<(String, String)>> =
        Default::default();
    for entry in std::fs::read_dir(hub.join("tests"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let asserts =
            std::fs::read_to_string(entry.path().join("parser.assert")).unwrap_or_default();
        for a in asserts.lines() {
            let Some(rest) = a.strip_prefix(prefix) else {
                continue;
            };
            let Some((parser, rest)) = rest.split_once(r#""]["#) else {
                continue;
            };
            let Some((idx, rest)) = rest.split_once(']') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            let test = entry.file_name().to_string_lossy().into_owned();
            if rest == ".Success == true" {
                succeeded.insert((test, parser.to_owned(), idx));
                continue;
            }
            let Some(rest) = rest.strip_prefix(r#".Evt.Parsed[""#) else {
                continue;
            };
            let Some((key, rest)) = rest.split_once(r#""] == ""#) else {
                continue;
            };
            let Some(value) = rest.strip_suffix('"') else {
                continue;
            };
            events
                .entry((test, parser.to_owned(), idx))
                .or_default()
                .push((key.to_owned(), unescape(value)));
        }
    }

    let (mut checked, mut agree, mut unmatched, mut via_raw) = (0usize, 0usize, 0usize, 0usize);
    let mut log_lines: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut disagreements = Vec::new();
    for ((test, parser, idx), parsed) in &events {
        let Some((groks, statics)) = compiled.get(parser) else {
            continue;
        };
        let Some((_, message)) = parsed.iter().find(|(k, _)| k == "message") else {
            continue;
        };
        let Some(fields) = groks.iter().find_map(|g| g.parse(message)) else {
            if !succeeded.contains(&(test.clone(), parser.clone(), *idx)) {
                continue;
            }
            let lines = log_lines
                .entry(test.clone())
                .or_insert_with(|| test_log_lines(&hub, test));
            match reproduced_from_raw_line(lines, groks, statics, parsed) {
                Some(n) => {
                    via_raw += 1;
                    checked += n;
                    agree += n;
                }
                None => {
                    unmatched += 1;
                    println!("  unreproduced {test} {parser}[{idx}]: {message}");
                }
            }
            continue;
        };
        for (k, expected) in parsed {
            if k == "message" || statics.contains(k) {
                continue;
            }
            let Some((_, got)) = fields.iter().find(|(f, _)| f == k) else {
                continue;
            };
            checked += 1;
            if got == expected {
                agree += 1;
            } else {
                disagreements.push(format!(
                    "{test} {parser}[{idx}] {k}: got {got:?}, CrowdSec {expected:?}"
                ));
            }
        }
    }
    println!(
        "{agree}/{checked} s01 parser field assertions agree with CrowdSec ({via_raw} events reproduced from the raw log line; {unmatched} successful events not reproducible by any message grok)"
    );
    for d in &disagreements {
        println!("  {d}");
    }
    assert!(checked > 1000, "only {checked} assertions checked");
    assert!(
        disagreements.is_empty(),
        "{} disagreements",
        disagreements.len()
    );
    assert!(
        unmatched * 20 <= events.len(),
        "{unmatched} successful events reproduced by no grok"
    );
}

/// Lines of a functional test's log file.
fn test_log_lines(hub: &Path, test: &str) -> Vec<String> {
    let dir = hub.join("tests").join(test);
    let config = std::fs::read_to_string(dir.join("config.yaml")).unwrap_or_default();
    let Some(file) = config
        .lines()
        .find_map(|l| l.strip_prefix("log_file:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
    else {
        return Vec::new();
    };
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// When a grok overwrote `message`, the asserted event no longer shows its input: look for a
/// raw log line of the test from which one of the parser's groks yields exactly the asserted
/// values (at least two of them, statics excluded).
fn reproduced_from_raw_line(
    lines: &[String],
    groks: &[Grok],
    statics: &[String],
    parsed: &[(String, String)],
) -> Option<usize> {
    for line in lines {
        for g in groks {
            let Some(fields) = g.parse(line) else {
                continue;
            };
            let mut compared = 0;
            let all_equal = parsed
                .iter()
                .filter(|(k, _)| !statics.contains(k))
                .filter_map(|(k, v)| fields.iter().find(|(f, _)| f == k).map(|(_, got)| (got, v)))
                .all(|(got, v)| {
                    compared += 1;
                    got == v
                });
            if all_equal && compared >= 2 {
                return Some(compared);
            }
        }
    }
    None
}
