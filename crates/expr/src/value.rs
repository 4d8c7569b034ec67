//! Runtime values.
//!
//! A `Value<'a>` may borrow from the environment (`Str(&'a str)`, `Obj(&'a dyn Object)`), so reading
//! `evt.Meta.log_type` costs no allocation: the string is never copied out of the event. Values built
//! during evaluation (concatenations, lists, maps) are reference counted so that cloning one is cheap.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::object::Object;

/// A map built by an expression or a helper. Keys are strings, as in every map the hub uses;
/// ordered so that printing and `toJSON` are deterministic (Go sorts map keys there too).
pub type Map<'a> = BTreeMap<String, Value<'a>>;

/// A value as seen by expressions.
#[derive(Clone, Default)]
pub enum Value<'a> {
    /// Go's `nil`.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// Go `int` (64 bits, wrapping arithmetic).
    Int(i64),
    /// Go `float64`.
    Float(f64),
    /// A string borrowed from the environment or from the compiled program.
    Str(&'a str),
    /// A string built at run time.
    String(Arc<str>),
    /// A list.
    List(Arc<Vec<Value<'a>>>),
    /// A string-keyed map.
    Map(Arc<Map<'a>>),
    /// A host object (an event, an alert, a map owned by the host...).
    Obj(&'a dyn Object),
    /// A host object owned by the value itself (returned by helpers).
    Shared(Arc<dyn Object>),
    /// Go `time.Duration`, in nanoseconds.
    Duration(i64),
    /// Go `time.Time`.
    Time(DateTime<FixedOffset>),
}

impl<'a> Value<'a> {
    /// Builds a run-time string value.
    pub fn string(s: impl Into<Arc<str>>) -> Self {
        Value::String(s.into())
    }

    /// Builds a list value.
    pub fn list(items: Vec<Value<'a>>) -> Self {
        Value::List(Arc::new(items))
    }

    /// Builds a map value.
    pub fn map(m: Map<'a>) -> Self {
        Value::Map(Arc::new(m))
    }

    /// The string content, when the value is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, when the value is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, when the value is an int or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Whether this is `nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The host object behind the value, owned or borrowed.
    pub fn as_object(&self) -> Option<&dyn Object> {
        match self {
            Value::Obj(o) => Some(*o),
            Value::Shared(o) => Some(&**o),
            _ => None,
        }
    }

    /// expr's name for the value's type, as `type()` returns it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) | Value::String(_) => "string",
            Value::List(_) => "array",
            Value::Map(_) => "map",
            Value::Obj(o) => o.type_name(),
            Value::Shared(o) => o.type_name(),
            Value::Duration(_) => "duration",
            Value::Time(_) => "time",
        }
    }

    /// Copies everything borrowed so the value no longer depends on the environment.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Nil => Value::Nil,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::String(s.into()),
            Value::String(s) => Value::String(s),
            Value::List(l) => {
                Value::List(Arc::new(l.iter().map(|v| v.clone().into_owned()).collect()))
            }
            Value::Map(m) => Value::Map(Arc::new(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.clone().into_owned()))
                    .collect(),
            )),
            Value::Obj(o) => o.to_value(),
            Value::Shared(o) => Value::Shared(o),
            Value::Duration(d) => Value::Duration(d),
            Value::Time(t) => Value::Time(t),
        }
    }

    /// Number of elements of a string (bytes, as Go's `len`), list, map or list-like object.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            Value::String(s) => Some(s.len()),
            Value::List(l) => Some(l.len()),
            Value::Map(m) => Some(m.len()),
            Value::Obj(o) => o.len(),
            Value::Shared(o) => o.len(),
            _ => None,
        }
    }

    /// Whether `len()` is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The elements of a list or list-like object; `None` for anything else.
    pub fn iter_list(&self) -> Option<ListIter<'_, 'a>> {
        match self {
            Value::List(l) => Some(ListIter::Slice(l.iter())),
            Value::Obj(o) if o.is_list() => Some(ListIter::Obj { obj: *o, next: 0 }),
            Value::Nil => Some(ListIter::Empty),
            _ => None,
        }
    }

    /// Converts to a Go-like textual representation, as `string()` and `Sprintf("%v")` do.
    pub fn to_display_string(&self) -> String {
        self.to_string()
    }
}

/// Iterator over the elements of a list value.
pub enum ListIter<'v, 'a> {
    /// Elements of an expression list.
    Slice(std::slice::Iter<'v, Value<'a>>),
    /// Elements of a list-like host object.
    Obj {
        /// The object.
        obj: &'a dyn Object,
        /// Next index.
        next: usize,
    },
    /// Nothing (nil lists).
    Empty,
}

impl<'a> Iterator for ListIter<'_, 'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        match self {
            ListIter::Slice(it) => it.next().cloned(),
            ListIter::Obj { obj, next } => {
                let v = obj.index(*next)?;
                *next += 1;
                Some(v)
            }
            ListIter::Empty => None,
        }
    }
}

impl PartialEq for Value<'_> {
    /// expr's `==`: numbers compare across int and float, strings by content, lists and maps deeply,
    /// host objects by identity unless they convert to plain values.
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Nil, Nil) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Int(a), Float(b)) | (Float(b), Int(a)) => (*a as f64) == *b,
            (Float(a), Float(b)) => a == b,
            (Duration(a), Duration(b)) => a == b,
            (Time(a), Time(b)) => a == b,
            (List(a), List(b)) => a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x == y),
            (Map(a), Map(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w))
            }
            (Obj(a), Obj(b)) => std::ptr::addr_eq(*a as *const dyn Object, *b as *const dyn Object),
            (Shared(a), Shared(b)) => Arc::ptr_eq(a, b),
            _ => match (self.as_str(), other.as_str()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl Value<'_> {
    /// expr's ordering for `<`, `>`, `<=`, `>=`; `None` when the types cannot be ordered.
    pub fn compare(&self, other: &Value<'_>) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Int(a), Float(b)) => (*a as f64).partial_cmp(b),
            (Float(a), Int(b)) => a.partial_cmp(&(*b as f64)),
            (Float(a), Float(b)) => a.partial_cmp(b),
            (Duration(a), Duration(b)) => Some(a.cmp(b)),
            (Time(a), Time(b)) => Some(a.cmp(b)),
            _ => match (self.as_str(), other.as_str()) {
                (Some(a), Some(b)) => Some(a.cmp(b)),
                _ => None,
            },
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::String(s) => write!(f, "{:?}", &**s),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => f.debug_map().entries(m.iter()).finish(),
            Value::Obj(o) => write!(f, "<{}>", o.type_name()),
            Value::Shared(o) => write!(f, "<{}>", o.type_name()),
            other => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Go's `%v` rendering, which is what `string()` and `Sprintf("%v")` produce.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("<nil>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&format_go_float(*x)),
            Value::Str(s) => f.write_str(s),
            Value::String(s) => f.write_str(s),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("map[")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("]")
            }
            Value::Obj(o) => write!(f, "{}", o.to_value()),
            Value::Shared(o) => write!(f, "{}", o.to_value()),
            Value::Duration(d) => f.write_str(&crate::time::format_duration(*d)),
            Value::Time(t) => f.write_str(&crate::time::format_go_time(t)),
        }
    }
}

/// Formats a float as Go's `%v` does (shortest representation, exponent for large magnitudes).
pub fn format_go_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        // Go prints e.g. 1e+21 and 1e-05.
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{x}")
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value<'_> {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}
impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::String(s.into())
    }
}
impl<'a> From<Vec<Value<'a>>> for Value<'a> {
    fn from(v: Vec<Value<'a>>) -> Self {
        Value::list(v)
    }
}

/// Converts JSON into a value (as `fromJSON` does: numbers become floats, as in Go).
pub fn from_json(j: &serde_json::Value) -> Value<'static> {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(a) => Value::list(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::map(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

/// Converts a value into JSON (as `toJSON` and `ToJsonString` do).
pub fn to_json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Str(s) => serde_json::Value::String((*s).to_owned()),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        Value::Obj(o) => to_json(&o.to_value()),
        Value::Shared(o) => to_json(&o.to_value()),
        Value::Duration(d) => serde_json::Value::from(*d),
        Value::Time(t) => serde_json::Value::String(t.to_rfc3339()),
    }
}
