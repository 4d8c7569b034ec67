//! JSON helpers: `JsonExtract*` (the `buger/jsonparser` semantics CrowdSec uses), `ToJsonString`
//! (Go's `encoding/json` output) and `UnmarshalJSON`.
//!
//! Extraction scans the raw text instead of decoding the whole document: only the values on the
//! path are skipped over, and the result is a slice of the input, as jsonparser returns. String
//! values come back without their quotes but still escaped (`JsonExtract`), which is what hub
//! content compares against.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::{Value, from_json};

use super::{arg, str_arg, type_error};

pub(super) fn register(f: &mut Functions) {
    f.register("JsonExtract", Arity::Exact(2), true, |a| {
        str_arg("JsonExtract", a, 0)?;
        let path = split_path(str_arg("JsonExtract", a, 1)?);
        Ok(extract(arg(a, 0), |doc| lookup(doc, &path).map(raw_text)))
    });
    f.register("JsonExtractLib", Arity::AtLeast(1), true, |a| {
        str_arg("JsonExtractLib", a, 0)?;
        let keys = key_args("JsonExtractLib", a)?;
        Ok(extract(arg(a, 0), |doc| lookup(doc, &keys).map(raw_text)))
    });
    f.register("JsonExtractUnescape", Arity::AtLeast(1), true, |a| {
        str_arg("JsonExtractUnescape", a, 0)?;
        let keys = key_args("JsonExtractUnescape", a)?;
        Ok(extract(arg(a, 0), |doc| match lookup(doc, &keys)? {
            (raw, Kind::String) => unescape(raw),
            _ => None,
        }))
    });
    f.register("JsonExtractSlice", Arity::Exact(2), true, |a| {
        decode_typed("JsonExtractSlice", a, Kind::Array)
    });
    f.register("JsonExtractObject", Arity::Exact(2), true, |a| {
        decode_typed("JsonExtractObject", a, Kind::Object)
    });
    f.register("ToJsonString", Arity::Exact(1), true, |a| {
        let mut out = String::new();
        Ok(match write_json(&mut out, arg(a, 0)) {
            Ok(()) => Value::from(out),
            // Go logs the marshalling error and returns "".
            Err(()) => Value::Str(""),
        })
    });
    f.register("UnmarshalJSON", Arity::Exact(3), false, unmarshal_json);
}

/// Type of a JSON value, as jsonparser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Object,
    Array,
    Bool,
    Null,
}

/// `a.b[0].c` → `["a", "b", "[0]", "c"]`, as CrowdSec splits paths before calling jsonparser.
fn split_path(path: &str) -> Vec<Cow<'_, str>> {
    if path.starts_with('[') {
        path.split('.').map(Cow::Borrowed).collect()
    } else if path.contains('[') {
        path.replace('[', ".[")
            .split('.')
            .map(|k| Cow::Owned(k.to_owned()))
            .collect()
    } else {
        path.split('.').map(Cow::Borrowed).collect()
    }
}

/// The keys after the document: strings, or lists of strings.
fn key_args<'v>(func: &str, args: &'v [Value<'_>]) -> Result<Vec<Cow<'v, str>>, EvalError> {
    let mut keys = Vec::new();
    for (i, v) in args.iter().enumerate().skip(1) {
        if let Some(s) = v.as_str() {
            keys.push(Cow::Borrowed(s));
            continue;
        }
        let items = v
            .iter_list()
            .ok_or_else(|| type_error(func, i, "a string or a list of strings", v))?;
        for item in items {
            let s = item
                .as_str()
                .ok_or_else(|| type_error(func, i, "a string or a list of strings", v))?;
            keys.push(Cow::Owned(s.to_owned()));
        }
    }
    Ok(keys)
}

/// Runs an extraction on the document argument, keeping the result borrowed from it when
/// possible; "" when nothing is found.
fn extract<'a>(doc: &Value<'a>, f: impl FnOnce(&str) -> Option<Cow<'_, str>>) -> Value<'a> {
    match doc {
        Value::Str(s) => match f(s) {
            Some(Cow::Borrowed(b)) => Value::Str(b),
            Some(Cow::Owned(o)) => Value::from(o),
            None => Value::Str(""),
        },
        Value::String(s) => f(s).map_or(Value::Str(""), |r| Value::string(r.as_ref())),
        _ => Value::Str(""),
    }
}

fn raw_text((raw, _): (&str, Kind)) -> Cow<'_, str> {
    Cow::Borrowed(raw)
}

/// Decodes the escapes of a JSON string body.
fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(raw));
    }
    serde_json::from_str::<String>(&format!("\"{raw}\""))
        .ok()
        .map(Cow::Owned)
}

fn decode_typed<'a>(func: &str, args: &[Value<'a>], want: Kind) -> Result<Value<'a>, EvalError> {
    let doc = str_arg(func, args, 0)?;
    let path = split_path(str_arg(func, args, 1)?);
    Ok(match lookup(doc, &path) {
        Some((raw, kind)) if kind == want => {
            serde_json::from_str::<serde_json::Value>(raw).map_or(Value::Nil, |j| from_json(&j))
        }
        _ => Value::Nil,
    })
}

/// Finds the value at `path` (object keys, or `[n]` indexes into arrays) and returns its raw text
/// (a string's body without quotes) and its kind.
fn lookup<'s, K: AsRef<str>>(doc: &'s str, path: &[K]) -> Option<(&'s str, Kind)> {
    let b = doc.as_bytes();
    let mut pos = skip_ws(b, 0);
    for key in path {
        let key = key.as_ref();
        pos = match b.get(pos)? {
            b'{' => find_key(doc, pos, key)?,
            b'[' => find_index(b, pos, array_index(key)?)?,
            _ => return None,
        };
    }
    let (end, kind) = value_end(b, pos)?;
    let raw = if kind == Kind::String {
        doc.get(pos + 1..end - 1)?
    } else {
        doc.get(pos..end)?
    };
    Some((raw, kind))
}

fn array_index(key: &str) -> Option<usize> {
    key.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Position of the value under `key` in the object starting at `pos`.
fn find_key(doc: &str, mut pos: usize, key: &str) -> Option<usize> {
    let b = doc.as_bytes();
    pos += 1;
    loop {
        pos = skip_ws(b, pos);
        if *b.get(pos)? != b'"' {
            return None;
        }
        let key_end = string_end(b, pos)?;
        let raw_key = doc.get(pos + 1..key_end - 1)?;
        pos = skip_ws(b, key_end);
        if *b.get(pos)? != b':' {
            return None;
        }
        pos = skip_ws(b, pos + 1);
        let matches = if raw_key.contains('\\') {
            unescape(raw_key).is_some_and(|k| k == key)
        } else {
            raw_key == key
        };
        if matches {
            return Some(pos);
        }
        let (end, _) = value_end(b, pos)?;
        pos = skip_ws(b, end);
        match b.get(pos)? {
            b',' => pos += 1,
            _ => return None,
        }
    }
}

/// Position of element `index` of the array starting at `pos`.
fn find_index(b: &[u8], mut pos: usize, index: usize) -> Option<usize> {
    pos += 1;
    for _ in 0..index {
        pos = skip_ws(b, pos);
        let (end, _) = value_end(b, pos)?;
        pos = skip_ws(b, end);
        match b.get(pos)? {
            b',' => pos += 1,
            _ => return None,
        }
    }
    pos = skip_ws(b, pos);
    (*b.get(pos)? != b']').then_some(pos)
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while matches!(b.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// End (exclusive) and kind of the value starting at `pos`.
fn value_end(b: &[u8], pos: usize) -> Option<(usize, Kind)> {
    let kind = match b.get(pos)? {
        b'"' => return Some((string_end(b, pos)?, Kind::String)),
        b'{' | b'[' => return block_end(b, pos),
        b't' | b'f' => Kind::Bool,
        b'n' => Kind::Null,
        b'-' | b'0'..=b'9' => Kind::Number,
        _ => return None,
    };
    let end = b[pos..]
        .iter()
        .position(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']'))
        .map_or(b.len(), |n| pos + n);
    Some((end, kind))
}

/// End (exclusive, after the closing quote) of the string starting at `pos`.
fn string_end(b: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

fn block_end(b: &[u8], pos: usize) -> Option<(usize, Kind)> {
    let kind = if b[pos] == b'{' {
        Kind::Object
    } else {
        Kind::Array
    };
    let mut depth = 0usize;
    let mut i = pos;
    loop {
        match b.get(i)? {
            b'"' => {
                i = string_end(b, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some((i + 1, kind));
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Writes a value as Go's `json.Marshal` would: sorted keys, HTML-safe escapes, Go's float
/// formatting. Fails on NaN and infinities, as Go does.
pub(super) fn write_json(out: &mut String, v: &Value<'_>) -> Result<(), ()> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Duration(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&json_float(*f).ok_or(())?),
        Value::Str(_) | Value::String(_) => write_json_string(out, v.as_str().unwrap_or_default()),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_json(out, item)?;
            }
            out.push('}');
        }
        Value::Obj(_) | Value::Shared(_) => {
            let plain = v.as_object().map(|o| o.to_value()).unwrap_or_default();
            write_json(out, &plain)?;
        }
        Value::Time(t) => write_json_string(
            out,
            &crate::time::format_with_layout("2006-01-02T15:04:05.999999999Z07:00", t),
        ),
    }
    Ok(())
}

/// Go's `encoding/json` float: shortest digits, exponent only below 1e-6 or from 1e21.
fn json_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        return Some(match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        });
    }
    Some(format!("{f}"))
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn unmarshal_json<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let blob = str_arg("UnmarshalJSON", args, 0)?;
    let target = arg(args, 1);
    let key = str_arg("UnmarshalJSON", args, 2)?;
    let obj = target.as_object().ok_or_else(|| {
        type_error(
            "UnmarshalJSON",
            1,
            "a host map such as evt.Unmarshaled",
            target,
        )
    })?;
    match serde_json::from_str::<serde_json::Value>(blob) {
        Ok(j) => {
            obj.set(key, from_json(&j))?;
            Ok(Value::Nil)
        }
        // Hub filters test `UnmarshalJSON(...) in ['', nil]`: any other value means failure.
        Err(e) => Ok(Value::from(format!("UnmarshalJSON: {e}"))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::{Arc, Mutex};

    use super::super::testutil::*;
    use crate::error::EvalError;
    use crate::object::{Missing, Object};
    use crate::value::{Map, Value};

    /// A stand-in for `evt.Unmarshaled`: a `map[string]any` helpers can write into.
    #[derive(Debug, Default)]
    pub(crate) struct Target(pub(crate) Mutex<Map<'static>>);

    impl Object for Target {
        fn type_name(&self) -> &'static str {
            "map[string]interface {}"
        }
        fn get(&self, key: &str) -> Option<Value<'_>> {
            self.0.lock().unwrap().get(key).cloned()
        }
        fn missing(&self) -> Missing {
            Missing::Nil
        }
        fn set(&self, key: &str, value: Value<'static>) -> Result<(), EvalError> {
            self.0.lock().unwrap().insert(key.to_owned(), value);
            Ok(())
        }
        fn to_value(&self) -> Value<'static> {
            Value::map(self.0.lock().unwrap().clone())
        }
    }

    const DOC: &str = r#"{"a": {"b": [1, {"c": "x\"y"}, [true]]}, "s": "plain", "n": 1.5e3,
        "z": null, "o": {"k": "v"}, "arr": ["p", "q"], "esc\u0041": 1, "u": "caf\u00e9"}"#;

    #[test]
    fn json_extract_paths() {
        let f = funcs();
        let je = |p: &'static str| ok(&f, "JsonExtract", &[s(DOC), s(p)]);
        assert_eq!(je("s"), s("plain"));
        assert!(matches!(je("s"), Value::Str("plain")));
        assert_eq!(je("a.b[0]"), s("1"));
        assert_eq!(je("a.b[1].c"), s("x\\\"y"));
        assert_eq!(je("a.b[2][0]"), s("true"));
        assert_eq!(je("n"), s("1.5e3"));
        assert_eq!(je("z"), s("null"));
        assert_eq!(je("o"), s("{\"k\": \"v\"}"));
        assert_eq!(je("escA"), s("1"));
        assert_eq!(je("missing"), s(""));
        assert_eq!(je("a.b[9]"), s(""));
        assert_eq!(je("s.x"), s(""));
        assert_eq!(ok(&f, "JsonExtract", &[s("not json"), s("a")]), s(""));
        assert_eq!(ok(&f, "JsonExtract", &[s(""), s("a")]), s(""));
        assert_eq!(ok(&f, "JsonExtract", &[s("{\"a\":"), s("a")]), s(""));
        assert_eq!(
            ok(&f, "JsonExtract", &[s("[{\"a\":2}]"), s("[0].a")]),
            s("2")
        );
        assert_eq!(
            ok(&f, "JsonExtract", &[Value::string(DOC), s("s")]),
            s("plain")
        );
        assert!(call(&f, "JsonExtract", &[Value::Nil, s("a")]).is_err());
    }

    #[test]
    fn json_extract_lib_and_unescape() {
        let f = funcs();
        assert_eq!(
            ok(
                &f,
                "JsonExtractLib",
                &[s(DOC), s("a"), s("b"), s("[1]"), s("c")]
            ),
            s("x\\\"y")
        );
        assert_eq!(
            ok(&f, "JsonExtractLib", &[s(DOC), strs(&["o", "k"])]),
            s("v")
        );
        assert_eq!(
            ok(
                &f,
                "JsonExtractUnescape",
                &[s(DOC), s("a"), s("b"), s("[1]"), s("c")]
            ),
            s("x\"y")
        );
        assert_eq!(ok(&f, "JsonExtractUnescape", &[s(DOC), s("u")]), s("café"));
        assert_eq!(ok(&f, "JsonExtractUnescape", &[s(DOC), s("n")]), s(""));
        assert_eq!(ok(&f, "JsonExtractUnescape", &[s(DOC), s("nope")]), s(""));
        assert!(call(&f, "JsonExtractLib", &[s(DOC), Value::Int(1)]).is_err());
    }

    #[test]
    fn json_extract_typed() {
        let f = funcs();
        assert_eq!(
            ok(&f, "JsonExtractSlice", &[s(DOC), s("arr")]),
            strs(&["p", "q"])
        );
        assert_eq!(ok(&f, "JsonExtractSlice", &[s(DOC), s("s")]), Value::Nil);
        assert_eq!(ok(&f, "JsonExtractSlice", &[s(DOC), s("nope")]), Value::Nil);
        let mut m = Map::new();
        m.insert("k".into(), Value::string("v"));
        assert_eq!(
            ok(&f, "JsonExtractObject", &[s(DOC), s("o")]),
            Value::map(m)
        );
        assert_eq!(ok(&f, "JsonExtractObject", &[s(DOC), s("arr")]), Value::Nil);
        assert_eq!(
            ok(&f, "JsonExtractSlice", &[s("{\"a\":[1,2"), s("a")]),
            Value::Nil
        );
    }

    #[test]
    fn to_json_string_matches_go() {
        let f = funcs();
        let mut m = Map::new();
        m.insert("b".into(), Value::Float(1.0));
        m.insert(
            "a".into(),
            Value::list(vec![Value::Int(2), Value::Nil, Value::Bool(true)]),
        );
        m.insert("h".into(), s("<a&b>\n\"é\""));
        assert_eq!(
            ok(&f, "ToJsonString", &[Value::map(m)]),
            s(r#"{"a":[2,null,true],"b":1,"h":"\u003ca\u0026b\u003e\n\"é\""}"#)
        );
        assert_eq!(ok(&f, "ToJsonString", &[Value::Float(1e21)]), s("1e+21"));
        assert_eq!(ok(&f, "ToJsonString", &[Value::Float(1e-7)]), s("1e-7"));
        assert_eq!(ok(&f, "ToJsonString", &[Value::Float(0.5)]), s("0.5"));
        assert_eq!(ok(&f, "ToJsonString", &[Value::Float(f64::NAN)]), s(""));
        assert_eq!(ok(&f, "ToJsonString", &[s("x")]), s("\"x\""));
    }

    #[test]
    fn unmarshal_json_writes_into_target() {
        let f = funcs();
        let t = Arc::new(Target::default());
        let target = Value::Obj(&*t);
        let r = ok(
            &f,
            "UnmarshalJSON",
            &[s(r#"{"x": [1, "y"]}"#), target.clone(), s("k")],
        );
        assert!(r.is_nil());
        let got = t.get("k").unwrap();
        let mut m = Map::new();
        m.insert(
            "x".into(),
            Value::list(vec![Value::Float(1.0), Value::string("y")]),
        );
        assert_eq!(got, Value::map(m));
        let r = ok(&f, "UnmarshalJSON", &[s("{bad"), target.clone(), s("k2")]);
        assert!(r.as_str().unwrap().starts_with("UnmarshalJSON: "));
        assert!(t.get("k2").is_none());
        let r = ok(&f, "UnmarshalJSON", &[s(""), target, s("k3")]);
        assert!(!r.is_nil());
        assert!(
            call(
                &f,
                "UnmarshalJSON",
                &[s("{}"), Value::map(Map::new()), s("k")]
            )
            .is_err()
        );
        assert!(call(&f, "UnmarshalJSON", &[s("{}"), Value::Nil, s("k")]).is_err());
    }
}
