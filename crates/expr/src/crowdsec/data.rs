//! Hub data files (`data:` entries) and the helpers reading them: `File`, `RegexpInFile`,
//! `FileMap`, `LookupFile`.
//!
//! Files are keyed by base name, as CrowdSec does, and loaded once per kind. Everything a lookup
//! needs is built at load time (one `RegexSet` per regexp file, an equality table, an Aho-Corasick
//! automaton and compiled regexes per map file), and `File()` hands out the same shared list on
//! every call.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet};

use crate::func::{Arity, Functions};
use crate::value::{Map, Value};

use super::{HelperContext, HelperError, str_arg};

/// The `type` of a hub `data:` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataKind {
    /// One string per line, for `File()`.
    String,
    /// One regular expression per line, for `RegexpInFile()`.
    Regexp,
    /// JSON lines `{"pattern", "tag", "type"}`, for `FileMap()` and `LookupFile()`.
    Map,
}

impl DataKind {
    /// Parses a `data:` entry's `type` (`string`, `regexp` or `regex`, `map`).
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "string" => Some(DataKind::String),
            "regexp" | "regex" => Some(DataKind::Regexp),
            "map" => Some(DataKind::Map),
            _ => None,
        }
    }
}

/// Loaded data files, by base name.
#[derive(Debug, Default)]
pub(super) struct DataStore {
    files: RwLock<Files>,
}

#[derive(Debug, Default)]
struct Files {
    strings: HashMap<String, Arc<Vec<Value<'static>>>>,
    regexps: HashMap<String, Arc<RegexFile>>,
    maps: HashMap<String, Arc<MapFile>>,
}

/// A `regexp` file: a set when the patterns fit in one, else the patterns one by one.
#[derive(Debug)]
enum RegexFile {
    Set(RegexSet),
    List(Vec<Regex>),
}

impl RegexFile {
    fn is_match(&self, s: &str) -> bool {
        match self {
            RegexFile::Set(set) => set.is_match(s),
            RegexFile::List(list) => list.iter().any(|re| re.is_match(s)),
        }
    }
}

/// A `map` file: its rows and the lookup structures for `LookupFile`.
#[derive(Debug)]
struct MapFile {
    rows: Arc<Vec<Value<'static>>>,
    tags: Vec<Arc<str>>,
    equals: HashMap<String, usize>,
    contains: Option<(AhoCorasick, Vec<usize>)>,
    regexes: Vec<(Regex, usize)>,
}

impl MapFile {
    /// The tag of the first match: equality, then leftmost substring, then regexes in file order.
    fn lookup(&self, haystack: &str) -> Option<&Arc<str>> {
        let row = self
            .equals
            .get(haystack)
            .copied()
            .or_else(|| {
                let (ac, rows) = self.contains.as_ref()?;
                rows.get(ac.find(haystack)?.pattern().as_usize()).copied()
            })
            .or_else(|| {
                self.regexes
                    .iter()
                    .find(|(re, _)| re.is_match(haystack))
                    .map(|(_, row)| *row)
            })?;
        self.tags.get(row)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

impl DataStore {
    pub(super) fn has(&self, name: &str, kind: DataKind) -> bool {
        let files = read(&self.files);
        match kind {
            DataKind::String => files.strings.contains_key(name),
            DataKind::Regexp => files.regexps.contains_key(name),
            DataKind::Map => files.maps.contains_key(name),
        }
    }

    pub(super) fn load(&self, path: &Path, kind: DataKind) -> Result<(), HelperError> {
        let name = path
            .file_name()
            .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned();
        self.load_as(path, &name, kind)
    }

    pub(super) fn load_as(
        &self,
        path: &Path,
        name: &str,
        kind: DataKind,
    ) -> Result<(), HelperError> {
        let name = name.to_owned();
        if self.has(&name, kind) {
            return Ok(());
        }
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| HelperError::Io {
            file: file.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        // Comments and empty lines are skipped; line numbers stay those of the file.
        let lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        // Build outside the lock: compiling a large file must not stall helpers running meanwhile.
        enum Loaded {
            Strings(Vec<Value<'static>>),
            Regexps(RegexFile),
            Map(MapFile),
        }
        let loaded = match kind {
            DataKind::String => Loaded::Strings(lines.map(|(_, l)| Value::string(l)).collect()),
            DataKind::Regexp => {
                let mut patterns = Vec::new();
                let mut list = Vec::new();
                for (i, l) in lines {
                    let re = Regex::new(l).map_err(|e| HelperError::Regex {
                        file: file.clone(),
                        line: i + 1,
                        source: Box::new(e),
                    })?;
                    patterns.push(l);
                    list.push(re);
                }
                Loaded::Regexps(match RegexSet::new(&patterns) {
                    Ok(set) => RegexFile::Set(set),
                    Err(_) => RegexFile::List(list),
                })
            }
            DataKind::Map => Loaded::Map(load_map(&file, lines)?),
        };
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        match loaded {
            Loaded::Strings(l) => {
                files.strings.entry(name).or_insert_with(|| Arc::new(l));
            }
            Loaded::Regexps(r) => {
                files.regexps.entry(name).or_insert_with(|| Arc::new(r));
            }
            Loaded::Map(m) => {
                files.maps.entry(name).or_insert_with(|| Arc::new(m));
            }
        }
        Ok(())
    }

    fn strings(&self, name: &str) -> Option<Arc<Vec<Value<'static>>>> {
        read(&self.files).strings.get(name).cloned()
    }

    fn regexps(&self, name: &str) -> Option<Arc<RegexFile>> {
        read(&self.files).regexps.get(name).cloned()
    }

    fn map(&self, name: &str) -> Option<Arc<MapFile>> {
        read(&self.files).maps.get(name).cloned()
    }
}

fn load_map<'l>(
    file: &str,
    lines: impl Iterator<Item = (usize, &'l str)>,
) -> Result<MapFile, HelperError> {
    let mut rows = Vec::new();
    let mut tags = Vec::new();
    let mut equals = HashMap::new();
    let mut contains_patterns = Vec::new();
    let mut contains_rows = Vec::new();
    let mut regexes = Vec::new();
    for (i, line) in lines {
        let bad = |message: String| HelperError::MapEntry {
            file: file.to_owned(),
            line: i + 1,
            message,
        };
        let record: HashMap<String, String> =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let field = |k: &str| record.get(k).map(String::as_str).unwrap_or("");
        for k in ["pattern", "tag", "type"] {
            if field(k).is_empty() {
                return Err(bad(format!("missing mandatory '{k}' field")));
            }
        }
        let row = rows.len();
        match field("type") {
            "equals" => {
                equals.insert(field("pattern").to_owned(), row);
            }
            "contains" => {
                contains_patterns.push(field("pattern").to_owned());
                contains_rows.push(row);
            }
            "regex" => match Regex::new(field("pattern")) {
                Ok(re) => regexes.push((re, row)),
                // CrowdSec skips such rows when it builds its index; say so once, at load.
                Err(e) => tracing::warn!(file, line = i + 1, "skipping invalid regex: {e}"),
            },
            other => return Err(bad(format!("unknown entry type '{other}'"))),
        }
        tags.push(Arc::from(field("tag")));
        rows.push(Value::map(
            record
                .iter()
                .map(|(k, v)| (k.clone(), Value::string(v.as_str())))
                .collect::<Map<'static>>(),
        ));
    }
    let contains = if contains_patterns.is_empty() {
        None
    } else {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&contains_patterns)
            .map_err(|e| HelperError::MapEntry {
                file: file.to_owned(),
                line: 0,
                message: format!("cannot index 'contains' patterns: {e}"),
            })?;
        Some((ac, contains_rows))
    };
    Ok(MapFile {
        rows: Arc::new(rows),
        tags,
        equals,
        contains,
        regexes,
    })
}

pub(super) fn register(f: &mut Functions, ctx: &Arc<HelperContext>) {
    let c = Arc::clone(ctx);
    f.register("File", Arity::Exact(1), true, move |a| {
        let name = str_arg("File", a, 0)?;
        Ok(match c.data.strings(name) {
            Some(list) => Value::List(list),
            None => {
                tracing::error!("file '{name}' (type:string) not found in expr library");
                Value::list(Vec::new())
            }
        })
    });
    let c = Arc::clone(ctx);
    f.register("RegexpInFile", Arity::Exact(2), true, move |a| {
        let data = str_arg("RegexpInFile", a, 0)?;
        let name = str_arg("RegexpInFile", a, 1)?;
        Ok(Value::Bool(match c.data.regexps(name) {
            Some(file) => file.is_match(data),
            None => {
                tracing::error!("file '{name}' (type:regexp) not found in expr library");
                false
            }
        }))
    });
    let c = Arc::clone(ctx);
    f.register("FileMap", Arity::Exact(1), true, move |a| {
        let name = str_arg("FileMap", a, 0)?;
        Ok(match c.data.map(name) {
            Some(file) => Value::List(Arc::clone(&file.rows)),
            None => {
                tracing::error!("file '{name}' (type:map) not found in expr library");
                Value::list(Vec::new())
            }
        })
    });
    let c = Arc::clone(ctx);
    f.register("LookupFile", Arity::Exact(2), true, move |a| {
        let haystack = str_arg("LookupFile", a, 0)?;
        let name = str_arg("LookupFile", a, 1)?;
        Ok(match c.data.map(name) {
            Some(file) => file
                .lookup(haystack)
                .map_or(Value::Str(""), |t| Value::String(Arc::clone(t))),
            None => {
                tracing::error!("file '{name}' (type:map) not found in expr library");
                Value::Str("")
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::super::testutil::*;
    use super::super::{HelperContext, HelperError};
    use super::DataKind;
    use crate::value::Value;

    fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        path
    }

    #[test]
    fn string_files_are_shared_and_loaded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bad_ua.txt", "# comment\nsqlmap\r\n\nnikto\n é \n");
        let ctx = Arc::new(HelperContext::new());
        ctx.load_data_file(&path, DataKind::String).unwrap();
        assert!(ctx.has_data_file("bad_ua.txt", DataKind::String));
        // A second load, even of a changed file, keeps the first content.
        std::fs::write(&path, "other\n").unwrap();
        ctx.load_data_file(&path, DataKind::String).unwrap();
        let f = funcs_with(ctx);
        let a = ok(&f, "File", &[s("bad_ua.txt")]);
        assert_eq!(a, strs(&["sqlmap", "nikto", " é "]));
        let b = ok(&f, "File", &[s("bad_ua.txt")]);
        let (Value::List(a), Value::List(b)) = (a, b) else {
            panic!()
        };
        assert!(Arc::ptr_eq(&a, &b), "File() must not copy the list");
        assert_eq!(ok(&f, "File", &[s("missing.txt")]), strs(&[]));
        assert!(call(&f, "File", &[Value::Int(1)]).is_err());
    }

    #[test]
    fn regexp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "re.txt", "^sqlmap/\n(?i)nikto\n# x\n");
        let ctx = Arc::new(HelperContext::new());
        ctx.load_data_file(&path, DataKind::Regexp).unwrap();
        let f = funcs_with(ctx);
        let m = |d: &str| {
            ok(&f, "RegexpInFile", &[s(d), s("re.txt")])
                .as_bool()
                .unwrap()
        };
        assert!(m("sqlmap/1.0"));
        assert!(m("Mozilla NIKTO"));
        assert!(!m("xsqlmap/"));
        assert!(!m(""));
        assert_eq!(
            ok(&f, "RegexpInFile", &[s("x"), s("nope.txt")]),
            Value::Bool(false)
        );
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = HelperContext::new();
        let err = ctx
            .load_data_file(&dir.path().join("absent.txt"), DataKind::String)
            .unwrap_err();
        assert!(matches!(err, HelperError::Io { .. }));
        assert!(err.to_string().contains("absent.txt"), "{err}");
        let bad = write(&dir, "bad_re.txt", "ok\n(unclosed\n");
        let err = ctx.load_data_file(&bad, DataKind::Regexp).unwrap_err();
        assert!(matches!(err, HelperError::Regex { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("bad_re.txt"));
        assert!(!ctx.has_data_file("bad_re.txt", DataKind::Regexp));
        let bad_map = write(&dir, "m.json", "{\"pattern\":\"a\",\"tag\":\"t\"}\n");
        let err = ctx.load_data_file(&bad_map, DataKind::Map).unwrap_err();
        assert!(err.to_string().contains("'type'"), "{err}");
        let bad_type = write(
            &dir,
            "m2.json",
            "{\"pattern\":\"a\",\"tag\":\"t\",\"type\":\"fuzzy\"}\n",
        );
        assert!(ctx.load_data_file(&bad_type, DataKind::Map).is_err());
        let not_json = write(&dir, "m3.json", "pattern=a\n");
        assert!(ctx.load_data_file(&not_json, DataKind::Map).is_err());
        assert_eq!(DataKind::parse("regex"), Some(DataKind::Regexp));
        assert_eq!(DataKind::parse("bots"), None);
    }

    /// The hub snapshot's data files all load with the kind their items declare.
    #[test]
    fn hub_data_files_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/compat/crowdsec-hub/data/web");
        if !dir.is_dir() {
            return;
        }
        let ctx = Arc::new(HelperContext::new());
        let load = |name: &str, kind| {
            ctx.load_data_file(&dir.join(name), kind)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        load("bad_user_agents.regex.txt", DataKind::Regexp);
        load("thinkphp_cve_2018-20062.txt", DataKind::Regexp);
        load("technology_probing.json", DataKind::Map);
        load("backdoors.txt", DataKind::String);
        let f = funcs_with(Arc::clone(&ctx));
        let ua = ok(
            &f,
            "RegexpInFile",
            &[s("Sqlmap/1.7"), s("bad_user_agents.regex.txt")],
        );
        assert_eq!(ua, Value::Bool(true));
        let ua = ok(
            &f,
            "RegexpInFile",
            &[
                s("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),
                s("bad_user_agents.regex.txt"),
            ],
        );
        assert_eq!(ua, Value::Bool(false));
        let tag = ok(
            &f,
            "LookupFile",
            &[s("/ampps-admin/index.php"), s("technology_probing.json")],
        );
        assert_eq!(tag, s("ampps-admin-login-panel-probing"));
        let Value::List(l) = ok(&f, "File", &[s("backdoors.txt")]) else {
            panic!()
        };
        assert!(!l.is_empty());
    }

    #[test]
    fn map_files() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"pattern": "curl/7.1", "tag": "curl-exact", "type": "equals"}
{"pattern": "curl", "tag": "curl", "type": "contains"}
{"pattern": "bot", "tag": "bot", "type": "contains"}
{"pattern": "^python-requests/\\d", "tag": "python", "type": "regex"}
{"pattern": "([", "tag": "broken", "type": "regex"}
"#;
        let path = write(&dir, "ua_map.json", body);
        let ctx = Arc::new(HelperContext::new());
        ctx.load_data_file(&path, DataKind::Map).unwrap();
        let f = funcs_with(ctx);
        let l = |h: &'static str| ok(&f, "LookupFile", &[s(h), s("ua_map.json")]);
        assert_eq!(l("curl/7.1"), s("curl-exact"));
        assert_eq!(l("my curl/8"), s("curl"));
        // Leftmost match wins among "contains" rows.
        assert_eq!(l("botcurl"), s("bot"));
        assert_eq!(l("python-requests/2.31"), s("python"));
        assert_eq!(l("firefox"), s(""));
        assert_eq!(ok(&f, "LookupFile", &[s("x"), s("nope.json")]), s(""));
        let rows = ok(&f, "FileMap", &[s("ua_map.json")]);
        let Value::List(rows) = rows else { panic!() };
        assert_eq!(rows.len(), 5);
        let Value::Map(first) = &rows[0] else {
            panic!()
        };
        assert_eq!(first.get("tag"), Some(&Value::string("curl-exact")));
        assert_eq!(ok(&f, "FileMap", &[s("nope.json")]), strs(&[]));
    }
}
