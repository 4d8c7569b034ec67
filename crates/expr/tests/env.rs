//! A small host environment shaped like CrowdSec's event, for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use expr::{
    Env, EvalError, FieldDesc, FieldType, Functions, Map, Missing, Object, TypeDesc, Value,
};

pub(crate) static LINE: TypeDesc = TypeDesc {
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

pub(crate) static EVENT: TypeDesc = TypeDesc {
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
pub(crate) struct AnyMap(pub(crate) Mutex<Map<'static>>);

impl Object for AnyMap {
    fn type_name(&self) -> &'static str {
        "map[string]interface {}"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn missing(&self) -> Missing {
        Missing::Nil
    }
    fn len(&self) -> Option<usize> {
        Some(self.0.lock().unwrap().len())
    }
    fn set(&self, key: &str, value: Value<'static>) -> Result<(), EvalError> {
        self.0.lock().unwrap().insert(key.to_owned(), value);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Line {
    pub(crate) raw: String,
    pub(crate) labels: HashMap<String, String>,
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
pub(crate) struct Event {
    pub(crate) meta: HashMap<String, String>,
    pub(crate) parsed: HashMap<String, String>,
    pub(crate) unmarshaled: AnyMap,
    pub(crate) line: Line,
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
            _ => Value::Int(0),
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

pub(crate) fn sample_event() -> Event {
    let mut e = Event::default();
    for (k, v) in [
        ("log_type", "ssh_failed-auth"),
        ("source_ip", "192.168.1.10"),
        ("service", "ssh"),
        ("http_status", "404"),
    ] {
        e.meta.insert(k.into(), v.into());
    }
    for (k, v) in [
        ("program", "sshd"),
        ("verb", "GET"),
        ("request", "/wp-login.php?a=1"),
    ] {
        e.parsed.insert(k.into(), v.into());
    }
    e.line.raw = "Jan  1 00:00:00 host sshd[1]: Failed password".into();
    e.line.labels.insert("type".into(), "syslog".into());
    e
}

pub(crate) fn env() -> Env {
    let mut funcs = Functions::new();
    expr::crowdsec::register(
        &mut funcs,
        std::sync::Arc::new(expr::crowdsec::HelperContext::new()),
    );
    Env::new(funcs)
        .var("evt", FieldType::Obj(&EVENT))
        .var("n", FieldType::Any)
        .var("list", FieldType::Any)
}

pub(crate) fn vars(evt: &Event) -> [Value<'_>; 3] {
    [
        Value::Obj(evt),
        Value::Nil,
        Value::list(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
    ]
}
