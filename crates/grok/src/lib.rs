//! Grok patterns the way CrowdSec's grokky library understands them.
//!
//! Grok is named, composable regex macros: `%{IP:source_ip} port %{INT:port}`. This crate
//! owns three jobs:
//!
//! * [`PatternSet`] — the library of named definitions: the built-in Logstash base set that
//!   CrowdSec compiles in, pattern files ([`PatternSet::load_dir`]) and per-parser
//!   `pattern_syntax` ([`PatternSet::add`]). Later definitions replace earlier ones; references
//!   are resolved at compile time, with cycle detection.
//! * Expansion and translation — `%{NAME}` / `%{NAME:field}` are expanded recursively and the
//!   Go RE2 syntax the hub is written in is translated to what `regex-syntax` accepts (literal
//!   braces, `\Q…\E`, octal escapes, duplicate group names, ASCII `\d \w \s \b`).
//! * [`Grok`] — the compiled matcher: a lazy-DFA pass finds the match, then a bounded
//!   backtracker with a large visited set extracts the groups (PikeVM only for very long
//!   matches). Scratch space lives in a caller-owned [`Captures`], so a `Grok` is shared across
//!   threads and matching does not allocate in the steady state.
//!
//! # Field semantics (grokky compatible)
//!
//! * Every `%{NAME:field}` records its group as `field`. When a name occurs several times, the
//!   one written directly in the pattern beats any from inside a referenced sub-pattern, and
//!   among equals the last reference wins (grokky overwrites its map in reference order). A
//!   group that did not participate yields `""`.
//! * Plain named groups `(?P<x>…)` / `(?<x>…)` are also reported (grokky ignores them), but only
//!   for names no `%{…:x}` defines, so grok-defined fields keep grokky's values.
//! * `%{NAME:field:type}` is accepted and the type ignored.
//!
//! # Deliberate differences from CrowdSec
//!
//! * References are resolved at [`PatternSet::compile`] time, so definitions may come in any
//!   order and a redefinition replaces the old one. CrowdSec compiles each definition as it is
//!   added and logs "already registered" on redefinitions; callers wanting that behaviour
//!   check [`PatternSet::contains`] before [`PatternSet::add`].
//!
//! Go's regex semantics are otherwise kept: leftmost-first alternation, ASCII `\d \w \s \b`,
//! while `.` and negated classes match whole code points (the translated regex runs in
//! Unicode mode with the Perl classes rewritten to ASCII sets).
//!
//! # What this crate must not know
//!
//! Nothing about parser YAML, stages, nodes, events or the "a grok without fields never
//! succeeds" rule of the CrowdSec parser: callers decide what a match means and where the
//! fields go.

mod base;
mod error;
mod expand;
mod matcher;
mod set;

pub use error::GrokError;
pub use matcher::{Captures, Fields, Grok};
pub use set::PatternSet;

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(p: &str) -> Grok {
        match PatternSet::new().compile(p) {
            Ok(g) => g,
            Err(e) => panic!("{p}: {e}"),
        }
    }

    fn parse(g: &Grok, line: &str) -> Vec<(String, String)> {
        g.parse(line).unwrap_or_else(|| panic!("no match: {line}"))
    }

    fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("<missing>")
    }

    #[test]
    fn grok_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Grok>();
        check::<PatternSet>();
        check::<Captures>();
    }

    #[test]
    fn all_base_patterns_compile() {
        let set = PatternSet::new();
        for name in set.names() {
            if let Err(e) = set.compile(&format!("%{{{name}}}")) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn basic_fields_and_reuse() {
        let g = compile(r"%{IP:ip} port %{INT:port}");
        let mut caps = Captures::new();
        let line = "from 10.0.0.1 port 22 ssh2";
        assert!(g.captures(line, &mut caps));
        assert_eq!(g.get("ip", line, &caps), Some("10.0.0.1"));
        assert_eq!(g.get("port", line, &caps), Some("22"));
        assert!(!g.captures("nothing", &mut caps));
        assert_eq!(g.fields("nothing", &caps).count(), 0);
        let line2 = "2001:db8::1 port 443";
        assert!(g.captures(line2, &mut caps));
        assert_eq!(g.get("ip", line2, &caps), Some("2001:db8::1"));
        assert_eq!(g.field_names().collect::<Vec<_>>(), ["ip", "port"]);
    }

    #[test]
    fn captures_moved_between_groks_reinitialises() {
        let a = compile("%{INT:a}");
        let b = compile("%{WORD:w} %{WORD:v}");
        let mut caps = Captures::new();
        assert!(a.captures("x 12", &mut caps));
        assert!(b.captures("hello world", &mut caps));
        assert_eq!(b.get("v", "hello world", &caps), Some("world"));
        // Stale storage from another grok yields nothing rather than garbage.
        assert_eq!(a.get("a", "hello world", &caps), None);
    }

    #[test]
    fn non_participating_group_is_empty() {
        let g = compile(r"^%{WORD:a}(?: %{INT:n})?$");
        let f = parse(&g, "hello");
        assert_eq!(
            f,
            [
                ("a".to_owned(), "hello".to_owned()),
                ("n".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn outer_name_wins_over_nested() {
        let mut set = PatternSet::new();
        set.add("INNER", r"%{WORD:user}@%{WORD:host}").ok();
        let g = set
            .compile(r"%{INNER:user}")
            .unwrap_or_else(|e| panic!("{e}"));
        let f = parse(&g, "bob@example");
        assert_eq!(field(&f, "user"), "bob@example");
        assert_eq!(field(&f, "host"), "example");
    }

    #[test]
    fn same_level_duplicate_last_reference_wins() {
        let g = compile(r"^(?:%{INT:v}|%{WORD:v})$");
        // Only the last `v` is recorded, so the first alternative yields "" (grokky quirk).
        assert_eq!(field(&parse(&g, "abc"), "v"), "abc");
        assert_eq!(field(&parse(&g, "123"), "v"), "");
    }

    #[test]
    fn nested_duplicates_from_different_subpatterns_last_wins() {
        let mut set = PatternSet::new();
        set.add("A", r"a=%{INT:x}").ok();
        set.add("B", r"b=%{INT:x}").ok();
        let g = set.compile(r"%{A} %{B}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(field(&parse(&g, "a=1 b=2"), "x"), "2");
    }

    #[test]
    fn plain_named_groups_are_fields_but_grok_names_win() {
        let g = compile(r"(?P<user>\w+) (?<id>\d+) %{WORD:user}");
        let f = parse(&g, "alice 42 bob");
        assert_eq!(field(&f, "user"), "bob");
        assert_eq!(field(&f, "id"), "42");
        // Duplicate plain names are fine too (renamed internally); the first one is reported.
        let g = compile(r"(?P<x>a)|(?P<x>b)");
        assert_eq!(field(&parse(&g, "b"), "x"), "");
    }

    #[test]
    fn errors_name_things() {
        let mut set = PatternSet::new();
        set.add("LOOP_A", "%{LOOP_B}").ok();
        set.add("LOOP_B", "x%{LOOP_A}").ok();
        set.add("USES_MISSING", "%{NOPE}").ok();
        let err = |p: &str| {
            set.compile(p)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err("%{LOOP_A}"),
            "grok pattern cycle: LOOP_A -> LOOP_B -> LOOP_A"
        );
        assert_eq!(
            err("%{USES_MISSING}"),
            "unknown grok pattern NOPE referenced from USES_MISSING (pattern_syntax)"
        );
        assert!(err("%{NOPE}").contains("referenced from top-level pattern"));
        let e = err("a)(");
        assert!(e.starts_with("regex error in a)(: "), "{e}");
        assert!(err(r"(a)\1").contains("backreference"));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let set = PatternSet::new();
        for p in [
            "", "%", "%{", "%{}", "%{A", "\\", "[", "[]", "[^", "(?P<", "(?P<>x)", "\\x", "\\x{",
            "\\p", "\\Q", "{", "}", "{1,2}", "a{99999}", "(?<=a)", "\\8", "\\Z", "é\\é", "[[:",
            "\\17777",
        ] {
            let _ = set.compile(p);
        }
        let g = compile("%{GREEDYDATA:all}");
        assert_eq!(field(&parse(&g, "héllo wörld"), "all"), "héllo wörld");
    }

    #[test]
    fn random_patterns_and_lines_never_panic() {
        // Deterministic xorshift so failures reproduce; the alphabet is biased towards the
        // characters the scanner treats specially.
        const ALPHABET: &[&str] = &[
            "%{", "}", "{", "\\", "[", "]", "(", ")", "(?P<", ">", "(?", ":", "|", "*", "+", "?",
            "^", "$", "\\Q", "\\E", "\\d", "\\b", "\\x", "\\1", "\\0", "-", "&&", ",", "2", "a",
            "é", "INT", "WORD", ".",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let set = PatternSet::new();
        let mut caps = Captures::new();
        for _ in 0..3000 {
            let len = (next() % 12) as usize;
            let pattern: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let line: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            if let Ok(g) = set.compile(&pattern) {
                g.captures(&line, &mut caps);
                let _ = g.fields(&line, &caps).count();
            }
        }
    }

    #[test]
    fn go_ascii_semantics() {
        // Go's \w and \d are ASCII; `.` is a whole code point.
        let g = compile(r"^(?P<w>\w+)(?P<rest>.)");
        let f = parse(&g, "abcé");
        assert_eq!(field(&f, "w"), "abc");
        assert_eq!(field(&f, "rest"), "é");
        assert!(!compile(r"^\d$").is_match("٣"));
        let g = compile(r"\bfoo\b");
        assert!(g.is_match("a foo b") && !g.is_match("afoob"));
    }

    #[test]
    fn literal_braces_match() {
        let g = compile(r#".*{"ip":"%{IP:ip}"}"#);
        assert_eq!(field(&parse(&g, r#"x {"ip":"1.2.3.4"}"#), "ip"), "1.2.3.4");
        let g = compile(r"%{INT:bytes:int} \Q(a+b)\E");
        assert_eq!(field(&parse(&g, "12 (a+b)"), "bytes"), "12");
    }

    #[test]
    fn long_line_uses_backtracker_and_matches() {
        let g = compile(r#"^%{IPORHOST:ip} "%{DATA:req}" "%{DATA:ua}"$"#);
        let ua = "x".repeat(8 * 1024);
        let line = format!(r#"1.2.3.4 "GET / HTTP/1.1" "{ua}""#);
        let f = parse(&g, &line);
        assert_eq!(field(&f, "ua").len(), 8 * 1024);
        // Beyond the backtracker's reach the PikeVM still answers.
        let big = "y".repeat(2 << 20);
        let line = format!(r#"1.2.3.4 "GET" "{big}""#);
        assert_eq!(field(&parse(&g, &line), "ua").len(), 2 << 20);
    }

    #[test]
    fn apache24_error_line_as_crowdsec_parses_it() {
        // Expected values are CrowdSec's own, from the hub's apache2-logs functional test.
        let g = compile("%{HTTPD_ERRORLOG}");
        let f = parse(
            &g,
            "[Wed Apr 16 16:09:40.056610 2025] [ssl:info] [pid 120974:tid 120974] (70014)End of file found: [client 192.168.1.1:17036] AH02006: SSL handshake stopped: connection was closed",
        );
        for (k, v) in [
            ("timestamp", "Wed Apr 16 16:09:40.056610 2025"),
            ("module", "ssl"),
            ("loglevel", "info"),
            ("pid", "120974"),
            ("tid", "120974"),
            ("proxy_errorcode", "70014"),
            ("proxy_errormessage", "End of file found"),
            ("client", "192.168.1.1"),
            ("clientport", "17036"),
            ("errorcode", "AH02006"),
            ("message", "SSL handshake stopped: connection was closed"),
        ] {
            assert_eq!(field(&f, k), v, "{k}");
        }
    }

    #[test]
    fn brief_base_names_are_all_built_in() {
        let set = PatternSet::new();
        let names = "USERNAME USER INT BASE10NUM NUMBER POSINT NONNEGINT WORD NOTSPACE SPACE DATA GREEDYDATA \
            QUOTEDSTRING UUID MAC CISCOMAC WINDOWSMAC COMMONMAC IPV6 IPV4 IP HOSTNAME HOST IPORHOST HOSTPORT \
            PATH UNIXPATH WINPATH URIPROTO URIHOST URIPATH URIPARAM URIPATHPARAM URI MONTH MONTHNUM MONTHNUM2 \
            MONTHDAY DAY YEAR HOUR MINUTE SECOND TIME DATE_US DATE_EU ISO8601_TIMEZONE ISO8601_SECOND \
            TIMESTAMP_ISO8601 DATE DATESTAMP TZ DATESTAMP_RFC822 DATESTAMP_RFC2822 DATESTAMP_OTHER \
            DATESTAMP_EVENTLOG HTTPDERROR_DATE SYSLOGTIMESTAMP PROG SYSLOGPROG SYSLOGHOST SYSLOGFACILITY \
            HTTPDATE QS SYSLOGBASE COMMONAPACHELOG COMBINEDAPACHELOG HTTPD20_ERRORLOG HTTPD24_ERRORLOG \
            HTTPD_ERRORLOG LOGLEVEL";
        let missing: Vec<&str> = names
            .split_whitespace()
            .filter(|n| !set.contains(n))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn ipv4_takes_the_whole_last_octet() {
        // Current CrowdSec reports 192.168.0.254 here (hub immich/stirling-pdf tests).
        let g = compile("from %{IP:ip}.*");
        assert_eq!(
            field(&parse(&g, "from 192.168.0.254"), "ip"),
            "192.168.0.254"
        );
        let g = compile("^%{IPV4:ip}");
        assert_eq!(field(&parse(&g, "10.1.2.3"), "ip"), "10.1.2.3");
        assert_eq!(field(&parse(&g, "1.2.3.256"), "ip"), "1.2.3.25");
    }

    #[test]
    fn base_patterns_behave() {
        let g = compile("%{SYSLOGBASE} %{GREEDYDATA:message}");
        let f = parse(&g, "Mar  3 12:34:56 host1 sshd[123]: hello there");
        assert_eq!(field(&f, "timestamp"), "Mar  3 12:34:56");
        assert_eq!(field(&f, "logsource"), "host1");
        assert_eq!(field(&f, "program"), "sshd");
        assert_eq!(field(&f, "pid"), "123");
        assert_eq!(field(&f, "message"), "hello there");

        let g = compile("%{COMBINEDAPACHELOG}");
        let f = parse(
            &g,
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 "http://x/" "Mozilla/4.08""#,
        );
        assert_eq!(field(&f, "clientip"), "127.0.0.1");
        assert_eq!(field(&f, "auth"), "frank");
        assert_eq!(field(&f, "timestamp"), "10/Oct/2000:13:55:36 -0700");
        assert_eq!(field(&f, "request"), "/a.gif");
        assert_eq!(field(&f, "agent"), r#""Mozilla/4.08""#);

        let g = compile("^%{TIMESTAMP_ISO8601:ts} %{UUID:id} %{MAC:mac} %{URI:uri}$");
        let f = parse(
            &g,
            "2024-01-02T03:04:05.123+01:00 123e4567-e89b-12d3-a456-426614174000 00:1a:2b:3c:4d:5e https://user@example.com:8443/p/a?q=1",
        );
        assert_eq!(field(&f, "ts"), "2024-01-02T03:04:05.123+01:00");
        assert_eq!(field(&f, "port"), "8443");
        assert_eq!(field(&f, "uri"), "https://user@example.com:8443/p/a?q=1");
    }
}
