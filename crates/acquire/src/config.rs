//! `acquis.yaml` / `acquis.d/*.yaml` and replay DSNs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::error::AcquireError;
use crate::split::DEFAULT_MAX_LINE;

/// How a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Follow forever (default).
    Tail,
    /// Read what is there once, then end.
    Cat,
}

/// One datasource, as configured.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// What to read.
    pub kind: SourceKind,
    /// `tail` or `cat`.
    pub mode: Mode,
    /// `labels`; `type` is mandatory.
    pub labels: HashMap<String, String>,
    /// `name`.
    pub name: Option<String>,
    /// `unique_id`.
    pub unique_id: Option<String>,
    /// `log_level` (accepted; Rampart logs through `tracing` filters).
    pub log_level: Option<String>,
    /// `use_time_machine`: live lines are processed as TIMEMACHINE events.
    pub use_time_machine: bool,
    /// `transform`: expression applied by the binary before parsing.
    pub transform: Option<String>,
    /// Where this source was configured (`file, document N` or the DSN), for messages.
    pub origin: String,
}

/// The datasource and its own keys.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// `source: file`.
    File(FileSpec),
    /// `source: journalctl`.
    Journal(JournalSpec),
    /// `source: syslog`.
    Syslog(SyslogSpec),
    /// Standard input (replay of `-`).
    Stdin,
}

/// Keys of the file datasource.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// `filename` and `filenames`: glob patterns.
    pub filenames: Vec<String>,
    /// `exclude_regexps`: paths matching any of these are not read.
    pub exclude_regexps: Vec<String>,
    /// `poll_without_inotify`: `Some(true)` polls with `stat`; unset polls automatically on
    /// network filesystems and when inotify cannot be set up.
    pub poll_without_inotify: Option<bool>,
    /// `force_inotify`: never switch to polling because of the filesystem type.
    pub force_inotify: bool,
    /// `max_buffer_size`: longest line; longer lines are cut (default 64 KiB).
    pub max_buffer_size: usize,
    /// `discovery_poll_enable`.
    pub discovery_poll_enable: bool,
    /// `discovery_poll_interval` (default 30 s): how often globs are re-scanned besides
    /// directory events.
    pub discovery_poll_interval: Duration,
}

impl FileSpec {
    /// A file source for these glob patterns with default settings.
    pub fn new(filenames: Vec<String>) -> Self {
        FileSpec {
            filenames,
            exclude_regexps: Vec::new(),
            poll_without_inotify: None,
            force_inotify: false,
            max_buffer_size: DEFAULT_MAX_LINE,
            discovery_poll_enable: false,
            discovery_poll_interval: Duration::from_secs(30),
        }
    }
}

/// Keys of the journalctl datasource.
#[derive(Debug, Clone)]
pub struct JournalSpec {
    /// `journalctl_filter`: arguments passed to `journalctl` (matches such as
    /// `_SYSTEMD_UNIT=ssh.service`).
    pub filters: Vec<String>,
    /// `since` (DSN): passed as `--since` when there is no saved cursor.
    pub since: Option<String>,
    /// `journal_directory` (Rampart): read this journal directory (`--directory`), e.g. a
    /// host journal mounted into a container.
    pub directory: Option<PathBuf>,
    /// The program to run (default `journalctl`, looked up in `PATH`).
    pub program: PathBuf,
}

impl JournalSpec {
    /// A journal source with these filters.
    pub fn new(filters: Vec<String>) -> Self {
        JournalSpec {
            filters,
            since: None,
            directory: None,
            program: PathBuf::from("journalctl"),
        }
    }
}

/// Keys of the syslog datasource.
#[derive(Debug, Clone)]
pub struct SyslogSpec {
    /// `listen_addr` (default 127.0.0.1).
    pub listen_addr: String,
    /// `listen_port` (default 514; 0 picks a free port).
    pub listen_port: u16,
    /// Listen on UDP (`protocol: udp`, the default, or `udp+tcp`).
    pub udp: bool,
    /// Listen on TCP (`protocol: tcp` or `udp+tcp`).
    pub tcp: bool,
    /// `max_message_len` (default 2048): longer messages are cut.
    pub max_message_len: usize,
    /// `disable_rfc_parser`: only strip the `<PRI>` instead of re-rendering the line.
    pub disable_rfc_parser: bool,
}

impl Default for SyslogSpec {
    fn default() -> Self {
        SyslogSpec {
            listen_addr: "127.0.0.1".into(),
            listen_port: 514,
            udp: true,
            tcp: false,
            max_message_len: 2048,
            disable_rfc_parser: false,
        }
    }
}

impl SourceSpec {
    /// A source with the given kind, mode and `type` label.
    pub fn new(kind: SourceKind, mode: Mode, log_type: &str) -> Self {
        let mut labels = HashMap::new();
        labels.insert("type".to_string(), log_type.to_string());
        SourceSpec {
            kind,
            mode,
            labels,
            name: None,
            unique_id: None,
            log_level: None,
            use_time_machine: false,
            transform: None,
            origin: String::new(),
        }
    }

    /// The datasource name (`file`, `journalctl`, `syslog`, `stdin`).
    pub fn module(&self) -> &'static str {
        match self.kind {
            SourceKind::File(_) => "file",
            SourceKind::Journal(_) => "journalctl",
            SourceKind::Syslog(_) => "syslog",
            SourceKind::Stdin => "stdin",
        }
    }

    /// `labels.type`.
    pub fn log_type(&self) -> &str {
        self.labels.get("type").map(String::as_str).unwrap_or("")
    }
}

const COMMON_KEYS: &[&str] = &[
    "source",
    "mode",
    "labels",
    "log_level",
    "name",
    "use_time_machine",
    "unique_id",
    "transform",
];
const FILE_KEYS: &[&str] = &[
    "filename",
    "filenames",
    "exclude_regexps",
    "force_inotify",
    "poll_without_inotify",
    "max_buffer_size",
    "discovery_poll_enable",
    "discovery_poll_interval",
];
const JOURNAL_KEYS: &[&str] = &["journalctl_filter", "journal_directory"];
const SYSLOG_KEYS: &[&str] = &[
    "listen_addr",
    "listen_port",
    "protocol",
    "max_message_len",
    "disable_rfc_parser",
];
const UNSUPPORTED_SOURCES: &[&str] = &[
    "docker",
    "cloudwatch",
    "kinesis",
    "kafka",
    "k8s-audit",
    "http",
    "loki",
    "victorialogs",
    "s3",
    "appsec",
    "wineventlog",
];

/// Reads `acquis.yaml` (`file`) and `acquis.d/*.yaml|*.yml` (`dir`, sorted by name).
///
/// A missing `dir` is not an error; a missing `file` is. Empty documents are skipped; unknown
/// keys, a missing `labels.type` and unsupported sources are errors naming the file, the
/// document and the key.
pub fn load_acquis(
    file: Option<&Path>,
    dir: Option<&Path>,
) -> Result<Vec<SourceSpec>, AcquireError> {
    let mut specs = Vec::new();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|e| AcquireError::io(file, e))?;
        specs.extend(parse_acquis(file, &text)?);
    }
    if let Some(dir) = dir {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(specs),
            Err(e) => return Err(AcquireError::io(dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| AcquireError::io(dir, e))?;
            let path = entry.path();
            let yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if yaml && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| AcquireError::io(&path, e))?;
            specs.extend(parse_acquis(&path, &text)?);
        }
    }
    Ok(specs)
}

/// One document's top-level keys with their lines, in order.
struct Doc(Vec<(Spanned<String>, Value)>);

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Doc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of datasource keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Value>()?;
                    out.push((key, value));
                }
                Ok(Doc(out))
            }
        }
        de.deserialize_map(V)
    }
}

/// Document number of a line: separators (`---`) before it, the first one not counted when it
/// opens the file.
fn doc_number(text: &str, line: usize) -> usize {
    let mut separators = 0;
    let mut leading = false;
    let mut seen_content = false;
    for (i, l) in text.lines().enumerate() {
        if i + 1 >= line {
            break;
        }
        let is_sep = l == "---" || l.starts_with("--- ") || l.starts_with("---\t");
        if is_sep {
            if !seen_content && separators == 0 {
                leading = true;
            }
            separators += 1;
            seen_content = true;
        } else {
            let t = l.trim();
            if !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') {
                seen_content = true;
            }
        }
    }
    if leading { separators } else { separators + 1 }
}

pub(crate) fn parse_acquis(file: &Path, text: &str) -> Result<Vec<SourceSpec>, AcquireError> {
    let docs: Vec<Doc> = serde_saphyr::from_multiple(text).map_err(|e| AcquireError::Yaml {
        file: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut specs = Vec::new();
    for doc in docs {
        if doc.0.is_empty() {
            continue;
        }
        let first_line = doc
            .0
            .first()
            .map(|(k, _)| k.referenced.line() as usize)
            .unwrap_or(1);
        let ctx = DocCtx {
            file,
            doc: doc_number(text, first_line),
            line: first_line,
        };
        specs.push(build_spec(&ctx, doc)?);
    }
    Ok(specs)
}

struct DocCtx<'a> {
    file: &'a Path,
    doc: usize,
    line: usize,
}

impl DocCtx<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> AcquireError {
        AcquireError::Config {
            file: self.file.to_path_buf(),
            doc: self.doc,
            line,
            message: message.into(),
        }
    }
}

fn build_spec(ctx: &DocCtx<'_>, doc: Doc) -> Result<SourceSpec, AcquireError> {
    let mut fields: Vec<(String, usize, Value)> = Vec::new();
    for (key, value) in doc.0 {
        let line = key.referenced.line() as usize;
        if fields.iter().any(|(k, _, _)| *k == key.value) {
            return Err(ctx.err(line, format!("duplicate key `{}`", key.value)));
        }
        fields.push((key.value, line, value));
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, l, v)| (*l, v))
    };

    let source = match get("source") {
        Some((_, Value::String(s))) => s.clone(),
        Some((line, _)) => return Err(ctx.err(line, "`source` must be a string")),
        None if get("filename").is_some() || get("filenames").is_some() => "file".to_string(),
        None if get("journalctl_filter").is_some() => "journalctl".to_string(),
        None => {
            return Err(ctx.err(
                ctx.line,
                "no `source` (and no `filename`, `filenames` or `journalctl_filter` to infer it from)",
            ));
        }
    };
    let own_keys: &[&str] = match source.as_str() {
        "file" => FILE_KEYS,
        "journalctl" => JOURNAL_KEYS,
        "syslog" => SYSLOG_KEYS,
        other if UNSUPPORTED_SOURCES.contains(&other) => {
            let line = get("source").map(|(l, _)| l).unwrap_or(ctx.line);
            return Err(ctx.err(
                line,
                format!("source `{other}` is not supported by Rampart (supported: file, journalctl, syslog)"),
            ));
        }
        other => {
            let line = get("source").map(|(l, _)| l).unwrap_or(ctx.line);
            let hint = suggest(other, &["file", "journalctl", "syslog"]);
            return Err(ctx.err(line, format!("unknown source `{other}`{hint}")));
        }
    };
    for (key, line, _) in &fields {
        if !COMMON_KEYS.contains(&key.as_str()) && !own_keys.contains(&key.as_str()) {
            let all: Vec<&str> = COMMON_KEYS.iter().chain(own_keys).copied().collect();
            let hint = suggest(key, &all);
            return Err(ctx.err(
                *line,
                format!("unknown key `{key}` for source `{source}`{hint}"),
            ));
        }
    }

    let mode = match get("mode") {
        None => Mode::Tail,
        Some((line, v)) => match v.as_str() {
            Some("tail") => Mode::Tail,
            Some("cat") => Mode::Cat,
            _ => return Err(ctx.err(line, format!("`mode` must be `tail` or `cat`, not {v}"))),
        },
    };
    let labels = match get("labels") {
        None => HashMap::new(),
        Some((line, Value::Object(map))) => {
            let mut labels = HashMap::new();
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(ctx.err(line, format!("label `{k}` must be a scalar"))),
                };
                labels.insert(k.clone(), v);
            }
            labels
        }
        Some((line, _)) => return Err(ctx.err(line, "`labels` must be a mapping")),
    };
    if labels.get("type").is_none_or(|t| t.is_empty()) {
        let line = get("labels").map(|(l, _)| l).unwrap_or(ctx.line);
        return Err(ctx.err(
            line,
            "`labels.type` is mandatory (it selects the parsers, e.g. `type: syslog`)",
        ));
    }
    let opt_string = |name: &str| -> Result<Option<String>, AcquireError> {
        match get(name) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((line, _)) => Err(ctx.err(line, format!("`{name}` must be a string"))),
        }
    };
    let opt_bool = |name: &str| -> Result<Option<bool>, AcquireError> {
        match get(name) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((line, _)) => Err(ctx.err(line, format!("`{name}` must be true or false"))),
        }
    };
    let opt_uint = |name: &str| -> Result<Option<u64>, AcquireError> {
        match get(name) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((line, v)) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                n.map(Some).ok_or_else(|| {
                    ctx.err(
                        line,
                        format!("`{name}` must be a non-negative integer, not {v}"),
                    )
                })
            }
        }
    };
    let string_list = |name: &str| -> Result<Vec<String>, AcquireError> {
        match get(name) {
            None | Some((_, Value::Null)) => Ok(Vec::new()),
            Some((_, Value::String(s))) => Ok(vec![s.clone()]),
            Some((line, Value::Array(items))) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ctx.err(line, format!("`{name}` must be a list of strings"))),
                })
                .collect(),
            Some((line, _)) => Err(ctx.err(line, format!("`{name}` must be a list of strings"))),
        }
    };

    let kind = match source.as_str() {
        "file" => {
            let mut filenames = Vec::new();
            if let Some(f) = opt_string("filename")? {
                filenames.push(f);
            }
            filenames.extend(string_list("filenames")?);
            if filenames.is_empty() {
                return Err(ctx.err(ctx.line, "a file source needs `filename` or `filenames`"));
            }
            let mut spec = FileSpec::new(filenames);
            for (i, glob) in spec.filenames.iter().enumerate() {
                if let Err(e) = globset::Glob::new(glob) {
                    let line = get("filenames")
                        .or(get("filename"))
                        .map(|(l, _)| l)
                        .unwrap_or(ctx.line);
                    return Err(ctx.err(line, format!("invalid glob #{} `{glob}`: {e}", i + 1)));
                }
            }
            spec.exclude_regexps = string_list("exclude_regexps")?;
            for re in &spec.exclude_regexps {
                if let Err(e) = regex::Regex::new(re) {
                    let line = get("exclude_regexps").map(|(l, _)| l).unwrap_or(ctx.line);
                    return Err(ctx.err(line, format!("invalid regexp `{re}`: {e}")));
                }
            }
            spec.poll_without_inotify = opt_bool("poll_without_inotify")?;
            spec.force_inotify = opt_bool("force_inotify")?.unwrap_or(false);
            if let Some(n) = opt_uint("max_buffer_size")?
                && n > 0
            {
                spec.max_buffer_size = usize::try_from(n).unwrap_or(usize::MAX);
            }
            spec.discovery_poll_enable = opt_bool("discovery_poll_enable")?.unwrap_or(false);
            if let Some(text) = opt_string("discovery_poll_interval")? {
                let line = get("discovery_poll_interval")
                    .map(|(l, _)| l)
                    .unwrap_or(ctx.line);
                spec.discovery_poll_interval = parse_go_duration(&text)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        ctx.err(line, format!("invalid duration `{text}` (e.g. 30s, 1m)"))
                    })?;
            }
            SourceKind::File(spec)
        }
        "journalctl" => {
            let filters = string_list("journalctl_filter")?;
            if filters.is_empty() {
                return Err(ctx.err(
                    ctx.line,
                    "a journalctl source needs `journalctl_filter` (e.g. [\"_SYSTEMD_UNIT=ssh.service\"])",
                ));
            }
            let mut spec = JournalSpec::new(filters);
            spec.directory = opt_string("journal_directory")?.map(PathBuf::from);
            SourceKind::Journal(spec)
        }
        _ => {
            if mode == Mode::Cat {
                let line = get("mode").map(|(l, _)| l).unwrap_or(ctx.line);
                return Err(ctx.err(line, "the syslog source only supports `mode: tail`"));
            }
            let mut spec = SyslogSpec::default();
            if let Some(addr) = opt_string("listen_addr")? {
                spec.listen_addr = addr;
            }
            if let Some(port) = opt_uint("listen_port")? {
                let line = get("listen_port").map(|(l, _)| l).unwrap_or(ctx.line);
                spec.listen_port = u16::try_from(port)
                    .map_err(|_| ctx.err(line, format!("`listen_port` {port} is not a port")))?;
            }
            if let Some(proto) = opt_string("protocol")? {
                let line = get("protocol").map(|(l, _)| l).unwrap_or(ctx.line);
                (spec.udp, spec.tcp) = match proto.to_ascii_lowercase().as_str() {
                    "udp" | "" => (true, false),
                    "tcp" => (false, true),
                    "udp+tcp" | "tcp+udp" | "udp,tcp" | "tcp,udp" | "both" => (true, true),
                    _ => {
                        return Err(ctx.err(
                            line,
                            format!("`protocol` must be udp, tcp or udp+tcp, not `{proto}`"),
                        ));
                    }
                };
            }
            if let Some(n) = opt_uint("max_message_len")?
                && n > 0
            {
                spec.max_message_len = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20);
            }
            spec.disable_rfc_parser = opt_bool("disable_rfc_parser")?.unwrap_or(false);
            SourceKind::Syslog(spec)
        }
    };

    Ok(SourceSpec {
        kind,
        mode,
        labels,
        name: opt_string("name")?,
        unique_id: opt_string("unique_id")?,
        log_level: opt_string("log_level")?,
        use_time_machine: opt_bool("use_time_machine")?.unwrap_or(false),
        transform: opt_string("transform")?,
        origin: format!("{}, document {}", ctx.file.display(), ctx.doc),
    })
}

/// ` (did you mean `x`?)` when a known word is close.
fn suggest(word: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k))
            if d <= 2
                || (k.starts_with(word) && word.len() >= 4)
                || (word.starts_with(k) && k.len() >= 4) =>
        {
            format!(" (did you mean `{k}`?)")
        }
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Go `time.ParseDuration` for the units used in configuration (`ns us µs ms s m h`).
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A one-shot source from a replay DSN, CrowdSec's `-dsn`: `file://<glob>[?max_buffer_size=N]`,
/// `journalctl://filters=<match>[&filters=…][&since=…]`, or `-` / `stdin://` for standard input.
pub fn dsn_spec(dsn: &str, log_type: &str) -> Result<SourceSpec, AcquireError> {
    let err = |message: String| AcquireError::Dsn {
        dsn: dsn.to_string(),
        message,
    };
    if log_type.is_empty() {
        return Err(err("a log type (labels.type) is required".into()));
    }
    let kind = if dsn == "-" || dsn == "stdin://" || dsn == "file://-" {
        SourceKind::Stdin
    } else if let Some(rest) = dsn.strip_prefix("file://") {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(err("no path after file://".into()));
        }
        let path = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|e| err(format!("path is not UTF-8: {e}")))?
            .into_owned();
        if let Err(e) = globset::Glob::new(&path) {
            return Err(err(format!("invalid glob: {e}")));
        }
        let mut spec = FileSpec::new(vec![path]);
        for (k, v) in parse_query(query) {
            match k.as_str() {
                "log_level" => {}
                "max_buffer_size" => {
                    spec.max_buffer_size = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err(format!("invalid max_buffer_size `{v}`")))?;
                }
                other => return Err(err(format!("unknown parameter `{other}` for file://"))),
            }
        }
        SourceKind::File(spec)
    } else if let Some(rest) = dsn.strip_prefix("journalctl://") {
        let mut spec = JournalSpec::new(Vec::new());
        for (k, v) in parse_query(rest.trim_start_matches('?')) {
            match k.as_str() {
                "filters" => spec.filters.push(v),
                "since" => spec.since = Some(v),
                "log_level" => {}
                other => {
                    return Err(err(format!(
                        "unknown parameter `{other}` for journalctl://"
                    )));
                }
            }
        }
        if spec.filters.is_empty() {
            return Err(err(
                "journalctl:// needs at least one `filters=` (e.g. journalctl://filters=_SYSTEMD_UNIT=ssh.service)"
                    .into(),
            ));
        }
        SourceKind::Journal(spec)
    } else {
        let scheme = dsn.split_once("://").map(|(s, _)| s).unwrap_or("");
        return Err(err(if scheme.is_empty() {
            "expected <scheme>://… (file://, journalctl://) or `-` for stdin".into()
        } else {
            format!("scheme `{scheme}` is not supported (file://, journalctl://)")
        }));
    };
    let mut spec = SourceSpec::new(kind, Mode::Cat, log_type);
    spec.origin = format!("DSN {dsn}");
    Ok(spec)
}

/// `a=b&c=d` with Go's query decoding (`+` is a space, `%XX` escapes); the value runs to the
/// next `&`, so it may contain `=`.
fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("5d"), None);
    }

    #[test]
    fn document_numbers_count_separators() {
        let text = "a: 1\n---\nb: 2\n---\n---\nc: 3\n";
        assert_eq!(doc_number(text, 1), 1);
        assert_eq!(doc_number(text, 3), 2);
        assert_eq!(doc_number(text, 6), 4);
        let text = "# comment\n---\na: 1\n---\nb: 2\n";
        assert_eq!(doc_number(text, 3), 1);
        assert_eq!(doc_number(text, 5), 2);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("journalctl_filters", JOURNAL_KEYS),
            " (did you mean `journalctl_filter`?)"
        );
        assert_eq!(suggest("zzz", FILE_KEYS), "");
    }
}
