//! The event that travels from acquisition through the parser stages to the buckets, and its view
//! for expressions (`evt.Meta.x`, `evt.GetMeta("x")` ...), with CrowdSec's field names.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, FixedOffset};
use expr::{EvalError, FieldDesc, FieldType, Map, Missing, Object, TypeDesc, Value};

/// What produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventType {
    /// A log line.
    #[default]
    Log,
    /// A bucket overflow (postoverflow stages).
    Overflow,
}

/// Whether bucket clocks follow the wall clock or the events' own timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectMode {
    /// Live logs.
    #[default]
    Live,
    /// Replay of cold logs (hub tests, `rampart replay`).
    TimeMachine,
}

/// The raw line as acquisition produced it.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// The log line.
    pub raw: String,
    /// Where it came from (file path, journalctl filter, syslog peer).
    pub src: String,
    /// Acquisition time.
    pub time: Option<DateTime<FixedOffset>>,
    /// Acquisition labels; `type` selects parsers.
    pub labels: HashMap<String, String>,
    /// Whether the line is to be processed.
    pub process: bool,
    /// Datasource name (`file`, `journalctl`, `syslog`...).
    pub module: String,
}

/// `evt.Unmarshaled`: JSON decoded by helpers during evaluation, hence interior mutability (a
/// lock, so that events can be shared between threads; it is never contended).
#[derive(Debug, Default)]
pub struct Unmarshaled(Mutex<Map<'static>>);

impl Unmarshaled {
    /// Locked access to the map.
    pub fn lock(&self) -> MutexGuard<'_, Map<'static>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for Unmarshaled {
    fn clone(&self) -> Self {
        Unmarshaled(Mutex::new(self.lock().clone()))
    }
}

/// `SetMeta`/`SetParsed` calls recorded during an evaluation.
#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<Vec<(PendingTarget, String, String)>>);

impl Pending {
    fn push(&self, p: (PendingTarget, String, String)) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(p);
    }
    fn take(&mut self) -> Vec<(PendingTarget, String, String)> {
        std::mem::take(self.0.get_mut().unwrap_or_else(PoisonError::into_inner))
    }
    fn take_shared(&self) -> Vec<(PendingTarget, String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Clone for Pending {
    fn clone(&self) -> Self {
        Pending::default()
    }
}

impl Object for Unmarshaled {
    fn type_name(&self) -> &'static str {
        "map[string]interface {}"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        self.lock().get(key).cloned()
    }
    fn missing(&self) -> Missing {
        Missing::Nil
    }
    fn len(&self) -> Option<usize> {
        Some(self.lock().len())
    }
    fn keys(&self) -> Vec<Value<'_>> {
        self.lock()
            .keys()
            .map(|k| Value::string(k.as_str()))
            .collect()
    }
    fn set(&self, key: &str, value: Value<'static>) -> Result<(), EvalError> {
        self.lock().insert(key.to_owned(), value);
        Ok(())
    }
    fn to_value(&self) -> Value<'static> {
        Value::map(self.lock().clone())
    }
}

/// A parsed (or being parsed) log event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Log or overflow.
    pub kind: EventType,
    /// Live or time machine.
    pub expect_mode: ExpectMode,
    /// Set by a matching whitelist.
    pub whitelisted: bool,
    /// Reason of the first matching whitelist.
    pub whitelist_reason: String,
    /// Current parser stage.
    pub stage: String,
    /// The raw line.
    pub line: Line,
    /// Grok captures and `parsed:` statics.
    pub parsed: HashMap<String, String>,
    /// Enrichment outputs.
    pub enriched: HashMap<String, String>,
    /// JSON decoded by `UnmarshalJSON`.
    pub unmarshaled: Unmarshaled,
    /// Normalised fields, the only part that reaches the LAPI.
    pub meta: HashMap<String, String>,
    /// Event time.
    pub time: Option<DateTime<FixedOffset>>,
    /// Raw timestamp text extracted by parsers.
    pub str_time: String,
    /// Optional Go layout for `str_time`.
    pub str_time_format: String,
    /// RFC 3339 timestamp set by date enrichment.
    pub marshaled_time: String,
    /// False once the event is dropped.
    pub process: bool,
    /// The overflow an overflow event carries (`evt.Overflow`). The detect crate fills it; this
    /// crate only exposes it, so postoverflow parsers can read `evt.Overflow.Alert...`.
    pub overflow: Option<std::sync::Arc<dyn Object>>,
    /// Statics that target `evt.Overflow.…` (postoverflows such as `ipv6_to_range` rewrite the
    /// alert source): recorded here as (path below `Overflow`, value) for the owner of the
    /// overflow to apply.
    pub overflow_edits: Vec<(String, String)>,
    /// `evt.SetMeta` / `evt.SetParsed` calls made during an evaluation, applied after it (an
    /// expression only borrows the event).
    pub(crate) pending: Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingTarget {
    Meta,
    Parsed,
}

impl Event {
    /// A fresh log event for a line.
    pub fn from_line(line: Line, mode: ExpectMode) -> Self {
        Event {
            time: line.time,
            line,
            expect_mode: mode,
            process: true,
            ..Default::default()
        }
    }

    /// The IPs this event is about, as CrowdSec's `ParseIPSources`: `Meta.source_ip` for a log
    /// event, the `IP` of every source for an overflow.
    pub fn ip_sources(&self) -> Vec<String> {
        match (&self.kind, &self.overflow) {
            (EventType::Overflow, Some(ov)) => {
                let Some(Value::Obj(sources)) = ov.get("Sources") else {
                    return Vec::new();
                };
                sources
                    .keys()
                    .iter()
                    .filter_map(|k| k.as_str().and_then(|k| sources.get(k)))
                    .filter_map(|src| match src {
                        Value::Obj(o) => o.get("IP").and_then(|ip| ip.as_str().map(str::to_owned)),
                        _ => None,
                    })
                    .filter(|ip| !ip.is_empty())
                    .collect()
            }
            _ => self
                .meta
                .get("source_ip")
                .filter(|ip| !ip.is_empty())
                .map(|ip| vec![ip.clone()])
                .unwrap_or_default(),
        }
    }

    /// Applies `SetMeta`/`SetParsed` calls recorded while `source` (this event, before it was
    /// copied) was evaluated: scenario filters may call them, and the poured copy must carry
    /// their effect as CrowdSec's does.
    pub fn apply_pending_from(&mut self, source: &Event) {
        let pending = source.pending.take_shared();
        self.apply_edits(pending);
    }

    /// Applies `SetMeta`/`SetParsed` calls recorded during the last evaluation.
    pub fn apply_pending(&mut self) {
        let pending = self.pending.take();
        self.apply_edits(pending);
    }

    fn apply_edits(&mut self, pending: Vec<(PendingTarget, String, String)>) {
        for (t, k, v) in pending {
            match t {
                PendingTarget::Meta => self.meta.insert(k, v),
                PendingTarget::Parsed => self.parsed.insert(k, v),
            };
        }
    }

    /// Reads a string field by CrowdSec path (`Line.Raw`, `Parsed.x`, `evt.Meta.y`, `StrTime`).
    pub fn get_path(&self, path: &str) -> Option<&str> {
        let path = path.strip_prefix("evt.").unwrap_or(path);
        let (head, rest) = path.split_once('.').unwrap_or((path, ""));
        match (head, rest) {
            ("Line", "Raw") => Some(&self.line.raw),
            ("Line", "Src") => Some(&self.line.src),
            ("Line", "Module") => Some(&self.line.module),
            ("Parsed", k) => self.parsed.get(k).map(String::as_str),
            ("Meta", k) => self.meta.get(k).map(String::as_str),
            ("Enriched", k) => self.enriched.get(k).map(String::as_str),
            ("StrTime", "") => Some(&self.str_time),
            ("MarshaledTime", "") => Some(&self.marshaled_time),
            ("WhitelistReason", "") => Some(&self.whitelist_reason),
            // `apply_on: message` names a key of Parsed.
            (k, "") => self.parsed.get(k).map(String::as_str),
            _ => None,
        }
    }

    /// Writes a string field by path, as a `target:` static does. Returns false for paths that are
    /// not settable strings.
    pub fn set_path(&mut self, path: &str, value: String) -> bool {
        let path = path.strip_prefix("evt.").unwrap_or(path);
        let (head, rest) = path.split_once('.').unwrap_or((path, ""));
        match (head, rest) {
            ("Parsed", k) if !k.is_empty() => {
                self.parsed.insert(k.to_owned(), value);
                true
            }
            ("Overflow", k) if !k.is_empty() && self.overflow.is_some() => {
                self.overflow_edits.push((k.to_owned(), value));
                true
            }
            ("Meta", k) if !k.is_empty() => {
                self.meta.insert(k.to_owned(), value);
                true
            }
            ("Enriched", k) if !k.is_empty() => {
                self.enriched.insert(k.to_owned(), value);
                true
            }
            ("StrTime", "") => {
                self.str_time = value;
                true
            }
            ("StrTimeFormat", "") => {
                self.str_time_format = value;
                true
            }
            ("MarshaledTime", "") => {
                self.marshaled_time = value;
                true
            }
            ("WhitelistReason", "") => {
                self.whitelist_reason = value;
                true
            }
            ("Line", "Raw") => {
                self.line.raw = value;
                true
            }
            ("Line", "Src") => {
                self.line.src = value;
                true
            }
            ("Line", "Module") => {
                self.line.module = value;
                true
            }
            ("Line", labels) if labels.starts_with("Labels.") => {
                let key = &labels["Labels.".len()..];
                self.line.labels.insert(key.to_owned(), value);
                true
            }
            _ => false,
        }
    }
}

macro_rules! fields {
    ($($name:literal = $slot:literal : $ty:expr),* $(,)?) => {
        &[$(FieldDesc { name: $name, slot: $slot, ty: $ty }),*]
    };
}

/// Expression view of [`Line`].
pub static LINE_TYPE: TypeDesc = TypeDesc {
    name: "Line",
    fields: fields! {
        "Raw" = 0: FieldType::Str,
        "Src" = 1: FieldType::Str,
        "Time" = 2: FieldType::Time,
        "Labels" = 3: FieldType::StrMap,
        "Process" = 4: FieldType::Bool,
        "Module" = 5: FieldType::Str,
    },
    methods: &[],
};

/// Expression view of [`Event`].
pub static EVENT_TYPE: TypeDesc = TypeDesc {
    name: "Event",
    fields: fields! {
        "Type" = 0: FieldType::Int,
        "ExpectMode" = 1: FieldType::Int,
        "Whitelisted" = 2: FieldType::Bool,
        "WhitelistReason" = 3: FieldType::Str,
        "Stage" = 4: FieldType::Str,
        "Line" = 5: FieldType::Obj(&LINE_TYPE),
        "Parsed" = 6: FieldType::StrMap,
        "Enriched" = 7: FieldType::StrMap,
        "Unmarshaled" = 8: FieldType::AnyMap,
        "Meta" = 9: FieldType::StrMap,
        "Time" = 10: FieldType::Time,
        "StrTime" = 11: FieldType::Str,
        "StrTimeFormat" = 12: FieldType::Str,
        "MarshaledTime" = 13: FieldType::Str,
        "Process" = 14: FieldType::Bool,
        // Overflows are attached by the detect crate; log events read them as nil.
        "Overflow" = 15: FieldType::Any,
        "Appsec" = 16: FieldType::Any,
    },
    methods: &[
        "GetType",
        "GetMeta",
        "SetMeta",
        "SetParsed",
        "ParseIPSources",
    ],
};

fn time_value(t: &Option<DateTime<FixedOffset>>) -> Value<'static> {
    match t {
        Some(t) => Value::Time(*t),
        // Go's zero time.
        None => {
            Value::Time(DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z").unwrap_or_default())
        }
    }
}

impl Object for Line {
    fn type_name(&self) -> &'static str {
        "Line"
    }
    fn desc(&self) -> Option<&'static TypeDesc> {
        Some(&LINE_TYPE)
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        LINE_TYPE.field(key).map(|f| self.get_slot(f.slot))
    }
    fn get_slot(&self, slot: u16) -> Value<'_> {
        match slot {
            0 => Value::Str(&self.raw),
            1 => Value::Str(&self.src),
            2 => time_value(&self.time),
            3 => Value::Obj(&self.labels),
            4 => Value::Bool(self.process),
            _ => Value::Str(&self.module),
        }
    }
    fn to_value(&self) -> Value<'static> {
        let mut m = Map::new();
        for f in LINE_TYPE.fields {
            m.insert(f.name.to_owned(), self.get_slot(f.slot).into_owned());
        }
        Value::map(m)
    }
}

impl Object for Event {
    fn type_name(&self) -> &'static str {
        "Event"
    }
    fn desc(&self) -> Option<&'static TypeDesc> {
        Some(&EVENT_TYPE)
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        EVENT_TYPE.field(key).map(|f| self.get_slot(f.slot))
    }
    fn get_slot(&self, slot: u16) -> Value<'_> {
        match slot {
            0 => Value::Int(match self.kind {
                EventType::Log => 0,
                EventType::Overflow => 1,
            }),
            1 => Value::Int(match self.expect_mode {
                ExpectMode::Live => 0,
                ExpectMode::TimeMachine => 1,
            }),
            2 => Value::Bool(self.whitelisted),
            3 => Value::Str(&self.whitelist_reason),
            4 => Value::Str(&self.stage),
            5 => Value::Obj(&self.line),
            6 => Value::Obj(&self.parsed),
            7 => Value::Obj(&self.enriched),
            8 => Value::Obj(&self.unmarshaled),
            9 => Value::Obj(&self.meta),
            10 => time_value(&self.time),
            11 => Value::Str(&self.str_time),
            12 => Value::Str(&self.str_time_format),
            13 => Value::Str(&self.marshaled_time),
            14 => Value::Bool(self.process),
            15 => self.overflow.as_deref().map_or(Value::Nil, Value::Obj),
            _ => Value::Nil,
        }
    }
    fn call<'s>(
        &'s self,
        method: &str,
        args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        let str_arg = |i: usize| -> Result<&str, EvalError> {
            args.get(i).and_then(Value::as_str).ok_or_else(|| {
                EvalError::new(format!("{method}: argument {} must be a string", i + 1))
            })
        };
        Some(match method {
            "GetType" => Ok(Value::Str(match self.kind {
                EventType::Log => "log",
                EventType::Overflow => "overflow",
            })),
            "GetMeta" => {
                str_arg(0).map(|k| Value::Str(self.meta.get(k).map_or("", String::as_str)))
            }
            "SetMeta" | "SetParsed" => (|| {
                let k = str_arg(0)?.to_owned();
                let v = str_arg(1)?.to_owned();
                let t = if method == "SetMeta" {
                    PendingTarget::Meta
                } else {
                    PendingTarget::Parsed
                };
                self.pending.push((t, k, v));
                Ok(Value::Bool(true))
            })(),
            "ParseIPSources" => Ok(Value::list(
                self.ip_sources().into_iter().map(Value::string).collect(),
            )),
            _ => return None,
        })
    }
    fn to_value(&self) -> Value<'static> {
        let mut m = Map::new();
        for f in EVENT_TYPE.fields {
            m.insert(f.name.to_owned(), self.get_slot(f.slot).into_owned());
        }
        Value::map(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_write_strings() {
        let mut e = Event::default();
        assert!(e.set_path("evt.StrTime", "x".into()));
        assert!(e.set_path("Meta.a", "1".into()));
        assert!(e.set_path("evt.Parsed.b", "2".into()));
        assert!(!e.set_path("Whitelisted", "true".into()));
        assert_eq!(e.get_path("StrTime"), Some("x"));
        assert_eq!(e.get_path("evt.Meta.a"), Some("1"));
        assert_eq!(e.get_path("b"), Some("2"));
        assert_eq!(e.get_path("Parsed.none"), None);
    }
}
