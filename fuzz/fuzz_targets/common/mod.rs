//! The environment both targets compile against: an event shaped like CrowdSec's, the CrowdSec
//! helpers with a data file and a stash, as the engine sets them up.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use expr::crowdsec::{DataKind, HelperContext};
use expr::{
    Arity, Env, EvalError, FieldDesc, FieldType, Functions, Map, Missing, Object, TypeDesc, Value,
};

static LINE: TypeDesc = TypeDesc {
    name: "Line",
    fields: &[
        FieldDesc {
            name: "Raw",
            slot: 0,
            ty: FieldType::Str,
        },
        FieldDesc {
            name: "Labels",
            slot: 1,
            ty: FieldType::StrMap,
        },
    ],
    methods: &[],
};

static EVENT: TypeDesc = TypeDesc {
    name: "Event",
    fields: &[
        FieldDesc {
            name: "Meta",
            slot: 0,
            ty: FieldType::StrMap,
        },
        FieldDesc {
            name: "Parsed",
            slot: 1,
            ty: FieldType::StrMap,
        },
        FieldDesc {
            name: "Unmarshaled",
            slot: 2,
            ty: FieldType::AnyMap,
        },
        FieldDesc {
            name: "Line",
            slot: 3,
            ty: FieldType::Obj(&LINE),
        },
        FieldDesc {
            name: "Type",
            slot: 4,
            ty: FieldType::Int,
        },
    ],
    methods: &["GetMeta", "GetType"],
};

#[derive(Debug, Default)]
pub struct AnyMap(Mutex<Map<'static>>);

impl Object for AnyMap {
    fn type_name(&self) -> &'static str {
        "map[string]interface {}"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        self.0.lock().ok()?.get(key).cloned()
    }
    fn missing(&self) -> Missing {
        Missing::Nil
    }
    fn len(&self) -> Option<usize> {
        self.0.lock().ok().map(|m| m.len())
    }
    fn keys(&self) -> Vec<Value<'_>> {
        let Ok(m) = self.0.lock() else {
            return Vec::new();
        };
        m.keys().map(|k| Value::string(k.as_str())).collect()
    }
    fn set(&self, key: &str, value: Value<'static>) -> Result<(), EvalError> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_owned(), value);
        }
        Ok(())
    }
    fn to_value(&self) -> Value<'static> {
        self.0
            .lock()
            .map(|m| Value::map(m.clone()))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct Line {
    raw: String,
    labels: HashMap<String, String>,
}

impl Object for Line {
    fn type_name(&self) -> &'static str {
        "Line"
    }
    fn desc(&self) -> Option<&'static TypeDesc> {
        Some(&LINE)
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        LINE.field(key).map(|f| self.get_slot(f.slot))
    }
    fn get_slot(&self, slot: u16) -> Value<'_> {
        match slot {
            0 => Value::Str(&self.raw),
            _ => Value::Obj(&self.labels),
        }
    }
}

#[derive(Debug, Default)]
pub struct Event {
    meta: HashMap<String, String>,
    parsed: HashMap<String, String>,
    unmarshaled: AnyMap,
    line: Line,
}

impl Object for Event {
    fn type_name(&self) -> &'static str {
        "Event"
    }
    fn desc(&self) -> Option<&'static TypeDesc> {
        Some(&EVENT)
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        EVENT.field(key).map(|f| self.get_slot(f.slot))
    }
    fn get_slot(&self, slot: u16) -> Value<'_> {
        match slot {
            0 => Value::Obj(&self.meta),
            1 => Value::Obj(&self.parsed),
            2 => Value::Obj(&self.unmarshaled),
            3 => Value::Obj(&self.line),
            _ => Value::Int(1),
        }
    }
    fn call<'s>(
        &'s self,
        method: &str,
        args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        match method {
            "GetMeta" => Some(match args.first().and_then(Value::as_str) {
                Some(k) => Ok(Value::Str(self.meta.get(k).map_or("", String::as_str))),
                None => Err(EvalError::new("GetMeta: expected a key")),
            }),
            "GetType" => Some(Ok(Value::Str("log"))),
            _ => None,
        }
    }
}

/// A fixed event: an nginx access-log line parsed by crowdsecurity/nginx-logs.
pub fn event() -> Event {
    let mut e = Event::default();
    for (k, v) in [
        ("log_type", "http_access-log"),
        ("service", "http"),
        ("source_ip", "203.0.113.57"),
        ("http_status", "404"),
        ("http_path", "/wp-login.php"),
        ("http_verb", "GET"),
        ("http_user_agent", "sqlmap/1.7"),
        ("target_fqdn", "www.example.com"),
    ] {
        e.meta.insert(k.into(), v.into());
    }
    for (k, v) in [
        ("program", "nginx"),
        ("verb", "GET"),
        ("request", "/wp-login.php?a=1&b=%41"),
        ("http_user_agent", "sqlmap/1.7"),
        ("status", "404"),
        ("time_local", "08/May/2026:10:21:07 +0000"),
        ("json", r#"{"a":{"b":[1,2,"x"]},"c":"d"}"#),
        ("xml", "<a><b c=\"d\">e</b></a>"),
        ("kv", "a=1 b=\"two words\" c="),
    ] {
        e.parsed.insert(k.into(), v.into());
    }
    e.line.raw =
        r#"203.0.113.57 - - [08/May/2026:10:21:07 +0000] "GET /wp-login.php HTTP/1.1" 404 153"#
            .into();
    e.line.labels.insert("type".into(), "nginx".into());
    e
}

pub fn vars(evt: &Event) -> [Value<'_>; 1] {
    [Value::Obj(evt)]
}

/// The compile environment, built once per process.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let ctx = Arc::new(HelperContext::new());
        let dir = std::env::temp_dir().join(format!("rampart-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, body, kind) in [
            ("bad.txt", "sqlmap\nnikto\nmasscan\n", DataKind::String),
            ("bad.regex", "^sql\n(?i)nik.o\n", DataKind::Regexp),
            (
                "bad.map",
                "{\"pattern\":\"sql\",\"tag\":\"scanner\",\"type\":\"contains\"}\n\
                 {\"pattern\":\"^/wp-\",\"tag\":\"wp\",\"type\":\"regex\"}\n",
                DataKind::Map,
            ),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, body).expect("data file");
            let _ = ctx.load_data_file(&p, kind);
        }
        let _ = std::fs::remove_dir_all(&dir);
        ctx.create_stash("cache", 16, None);
        ctx.stash_set("cache", "k", "v", None);
        let mut funcs = Functions::new();
        expr::crowdsec::register(&mut funcs, ctx);
        // No DNS from the fuzzer.
        funcs.register("LookupHost", Arity::Exact(1), false, |_| {
            Ok(Value::list(Vec::new()))
        });
        Env::new(funcs).var("evt", FieldType::Obj(&EVENT))
    })
}

/// With `RAMPART_FUZZ_LAST=path`, each input is written there before it runs: a stack overflow
/// kills the process before libFuzzer can save a crash artifact, and this file then holds it.
pub fn note_input(data: &[u8]) {
    static PATH: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    if let Some(p) = PATH.get_or_init(|| std::env::var_os("RAMPART_FUZZ_LAST").map(Into::into)) {
        let _ = std::fs::write(p, data);
    }
}
