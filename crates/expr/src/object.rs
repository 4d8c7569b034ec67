//! Host objects: how the caller exposes its own data (events, alerts, results) to expressions.
//!
//! The engine knows nothing of logs. A host type implements [`Object`] for run-time access and may
//! publish a static [`TypeDesc`] so that field paths are resolved to slots when an expression is
//! compiled (and typos in field names become compile errors, as in CrowdSec).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::error::EvalError;
use crate::value::{Map, Value};

/// What reading a key that an object does not hold yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A struct: reading an unknown field is an error.
    Error,
    /// A `map[string]string`: a missing key reads as `""`.
    EmptyString,
    /// A `map[string]any`: a missing key reads as `nil`.
    Nil,
}

/// Run-time view of a host value.
/// Objects are `Send + Sync` so that compiled programs (which may hold constant values) and events
/// can be shared between worker threads; mutable parts use locks.
pub trait Object: fmt::Debug + Send + Sync {
    /// The name shown in errors and returned by `type()`.
    fn type_name(&self) -> &'static str;

    /// Reads a field (structs) or a key (maps) by name; `None` when absent.
    fn get(&self, key: &str) -> Option<Value<'_>>;

    /// Reads a field by the slot its [`TypeDesc`] gave it. Only called for slots the descriptor
    /// returned by [`Object::desc`] declares.
    fn get_slot(&self, slot: u16) -> Value<'_> {
        let _ = slot;
        Value::Nil
    }

    /// The static description of this type, if it has one.
    fn desc(&self) -> Option<&'static TypeDesc> {
        None
    }

    /// What a missing key reads as.
    fn missing(&self) -> Missing {
        Missing::Error
    }

    /// Number of elements (maps and lists), `None` when `len()` does not apply.
    fn len(&self) -> Option<usize> {
        None
    }

    /// Whether `len()` is zero.
    fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Whether the object behaves as a list (indexable by position, iterable by predicates).
    fn is_list(&self) -> bool {
        false
    }

    /// The element at `index` of a list-like object.
    fn index(&self, index: usize) -> Option<Value<'_>> {
        let _ = index;
        None
    }

    /// Keys of a map-like object, in a stable order.
    fn keys(&self) -> Vec<Value<'_>> {
        Vec::new()
    }

    /// Calls a method (`evt.GetMeta("x")`); `None` when the object has no such method.
    fn call<'s>(
        &'s self,
        method: &str,
        args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        let _ = (method, args);
        None
    }

    /// Stores a value under `key` (for helpers such as `UnmarshalJSON` that fill a target map).
    fn set(&self, key: &str, value: Value<'static>) -> Result<(), EvalError> {
        let _ = (key, value);
        Err(EvalError::new(format!(
            "cannot assign into {}",
            self.type_name()
        )))
    }

    /// A plain copy (maps, lists, scalars) of the object, for `toJSON`, printing and comparisons.
    fn to_value(&self) -> Value<'static> {
        Value::Nil
    }
}

/// Static description of a host type, used at compile time.
#[derive(Debug)]
pub struct TypeDesc {
    /// Type name, for error messages.
    pub name: &'static str,
    /// Known fields.
    pub fields: &'static [FieldDesc],
    /// Known method names (calls to other names are compile errors).
    pub methods: &'static [&'static str],
}

impl TypeDesc {
    /// Finds a field by name.
    pub fn field(&self, name: &str) -> Option<&'static FieldDesc> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One field of a [`TypeDesc`].
#[derive(Debug)]
pub struct FieldDesc {
    /// Field name as written in expressions (`Meta`).
    pub name: &'static str,
    /// Slot passed to [`Object::get_slot`].
    pub slot: u16,
    /// Type of the field.
    pub ty: FieldType,
}

/// Compile-time type of a field.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// Unknown or dynamic.
    Any,
    /// A string.
    Str,
    /// An int.
    Int,
    /// A float.
    Float,
    /// A bool.
    Bool,
    /// A `time.Time`.
    Time,
    /// A `map[string]string`: member access reads keys, missing keys read as `""`.
    StrMap,
    /// A `map[string]any`.
    AnyMap,
    /// Another described host type.
    Obj(&'static TypeDesc),
}

fn str_map_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<Value<'a>> {
    let mut v: Vec<Value<'a>> = keys.map(|k| Value::Str(k)).collect();
    v.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    v
}

macro_rules! impl_str_map {
    ($t:ty) => {
        impl Object for $t {
            fn type_name(&self) -> &'static str {
                "map[string]string"
            }
            fn get(&self, key: &str) -> Option<Value<'_>> {
                self.get(key).map(|s| Value::Str(s.as_str()))
            }
            fn missing(&self) -> Missing {
                Missing::EmptyString
            }
            fn len(&self) -> Option<usize> {
                Some(<$t>::len(self))
            }
            fn keys(&self) -> Vec<Value<'_>> {
                str_map_keys(<$t>::keys(self))
            }
            fn to_value(&self) -> Value<'static> {
                Value::map(
                    self.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.as_str().into())))
                        .collect::<Map<'static>>(),
                )
            }
        }
    };
}

impl_str_map!(HashMap<String, String>);
impl_str_map!(BTreeMap<String, String>);
