//! `ParseKV` and `ParseKVLax`: `key=value` logs (auditd, keycloak, grafana...) decoded into a
//! `map[string]string` under `target[key]`, usually `evt.Unmarshaled`.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::{Map, Value};

use super::{arg, str_arg, type_error};

/// CrowdSec's pattern: a value is quoted (escapes allowed, kept as written), bare, or empty.
static KEY_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<key>[^=\s]+)=(?:"(?P<quoted_value>[^"\\]*(?:\\.[^"\\]*)*)"|(?P<value>[^=\s]+)|\s*)"#,
    )
    .ok()
});

/// Where a key starts in lax mode; stricter than the key of [`KEY_VALUE`] so that `=` inside
/// free-text values does not start a new key.
static KEY_START: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"([a-zA-Z_][a-zA-Z0-9_.-]*)=").ok());

/// Decoded `key=value` pairs, in line order.
type Pairs = Vec<(String, String)>;

pub(super) fn register(f: &mut Functions) {
    f.register("ParseKV", Arity::Exact(3), false, |a| {
        parse_into("ParseKV", a, parse_strict)
    });
    f.register("ParseKVLax", Arity::Exact(3), false, |a| {
        parse_into("ParseKVLax", a, parse_lax)
    });
}

/// Parses the blob and merges the pairs into `target[key]`, which must be absent or a map.
/// Returns nil on success, as the Go helper does (hub filters test `== nil` or `in ['', nil]`).
fn parse_into<'a>(
    func: &str,
    args: &[Value<'a>],
    parse: fn(&str) -> Option<Pairs>,
) -> Result<Value<'a>, EvalError> {
    let blob = str_arg(func, args, 0)?;
    let target = arg(args, 1);
    let key = str_arg(func, args, 2)?;
    let obj = target
        .as_object()
        .ok_or_else(|| type_error(func, 1, "a host map such as evt.Unmarshaled", target))?;
    let mut map: Map<'static> = match obj.get(key) {
        None | Some(Value::Nil) => Map::new(),
        Some(existing) => match existing.into_owned() {
            Value::Map(m) => (*m).clone(),
            _ => {
                return Err(EvalError::new(format!(
                    "{func}: target is not a map[string]string"
                )));
            }
        },
    };
    let pairs =
        parse(blob).ok_or_else(|| EvalError::new(format!("{func}: invalid input format")))?;
    for (k, v) in pairs {
        map.insert(k, Value::from(v));
    }
    obj.set(key, Value::map(map))?;
    Ok(Value::Nil)
}

fn parse_strict(blob: &str) -> Option<Pairs> {
    let re = KEY_VALUE.as_ref()?;
    let pairs: Pairs = re
        .captures_iter(blob)
        .map(|c| {
            let key = c.name("key").map_or("", |m| m.as_str());
            let value = c
                .name("quoted_value")
                .filter(|m| !m.as_str().is_empty())
                .or_else(|| c.name("value").filter(|m| !m.as_str().is_empty()))
                .map_or("", |m| m.as_str());
            (key.to_owned(), value.to_owned())
        })
        .collect();
    (!pairs.is_empty()).then_some(pairs)
}

/// Values run up to the next `key=` that is not inside quotes, so they may contain spaces.
fn parse_lax(blob: &str) -> Option<Pairs> {
    let re = KEY_START.as_ref()?;
    let starts: Vec<(usize, usize, &str)> = re
        .captures_iter(blob)
        .filter_map(|c| {
            let whole = c.get(0)?;
            let key = c.get(1)?;
            (!inside_quotes(blob, whole.start())).then_some((
                whole.start(),
                whole.end(),
                key.as_str(),
            ))
        })
        .collect();
    if starts.is_empty() {
        return None;
    }
    let pairs = starts
        .iter()
        .enumerate()
        .map(|(i, &(_, value_start, key))| {
            let value_end = starts.get(i + 1).map_or(blob.len(), |next| next.0);
            let raw = blob.get(value_start..value_end).unwrap_or("").trim();
            (key.to_owned(), lax_value(raw))
        })
        .collect();
    Some(pairs)
}

/// Strips surrounding quotes and decodes `\\` and `\"` in quoted values; bare values are kept.
fn lax_value(s: &str) -> String {
    let Some(body) = s.strip_prefix('"') else {
        return s.to_owned();
    };
    match body.strip_suffix('"') {
        Some(inner) => inner.replace("\\\\", "\\").replace("\\\"", "\""),
        None => body.to_owned(),
    }
}

/// Whether an odd number of unescaped quotes precede (or sit at) `pos`.
fn inside_quotes(s: &str, pos: usize) -> bool {
    let b = s.as_bytes();
    let mut inside = false;
    for (i, c) in b.iter().enumerate().take(pos.saturating_add(1)) {
        if *c != b'"' {
            continue;
        }
        let backslashes = b[..i].iter().rev().take_while(|c| **c == b'\\').count();
        if backslashes % 2 == 0 {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::super::json::tests::Target;
    use super::super::testutil::*;
    use crate::object::Object;
    use crate::value::{Map, Value};

    fn kv_map(pairs: &[(&str, &str)]) -> Value<'static> {
        Value::map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::string(*v)))
                .collect::<Map<'static>>(),
        )
    }

    #[test]
    fn parse_kv_strict() {
        let f = funcs();
        let t = Target::default();
        let line = r#"type=USER_AUTH msg="op=PAM:auth acct=\"bob\"" res=failed empty= x"#;
        let r = ok(&f, "ParseKV", &[s(line), Value::Obj(&t), s("auditd")]);
        assert!(r.is_nil());
        assert_eq!(
            t.get("auditd").unwrap(),
            kv_map(&[
                ("type", "USER_AUTH"),
                ("msg", r#"op=PAM:auth acct=\"bob\""#),
                ("res", "failed"),
                ("empty", ""),
            ])
        );
        // A second call merges into the same map.
        ok(
            &f,
            "ParseKV",
            &[s("res=success k=é"), Value::Obj(&t), s("auditd")],
        );
        let Value::Map(m) = t.get("auditd").unwrap() else {
            panic!()
        };
        assert_eq!(m.get("res"), Some(&Value::string("success")));
        assert_eq!(m.get("k"), Some(&Value::string("é")));
        assert_eq!(m.get("type"), Some(&Value::string("USER_AUTH")));
    }

    #[test]
    fn parse_kv_errors() {
        let f = funcs();
        let t = Target::default();
        assert!(call(&f, "ParseKV", &[s("no pairs here"), Value::Obj(&t), s("k")]).is_err());
        assert!(call(&f, "ParseKV", &[s(""), Value::Obj(&t), s("k")]).is_err());
        t.0.lock().unwrap().insert("bad".into(), Value::Int(1));
        assert!(call(&f, "ParseKV", &[s("a=b"), Value::Obj(&t), s("bad")]).is_err());
        assert!(call(&f, "ParseKV", &[s("a=b"), Value::Nil, s("k")]).is_err());
    }

    #[test]
    fn parse_kv_lax() {
        let f = funcs();
        let t = Target::default();
        let line = r#"level=info msg=user logged in from 1.2.3.4 path="/a b=c" user.name=bob"#;
        ok(&f, "ParseKVLax", &[s(line), Value::Obj(&t), s("app")]);
        assert_eq!(
            t.get("app").unwrap(),
            kv_map(&[
                ("level", "info"),
                ("msg", "user logged in from 1.2.3.4"),
                ("path", "/a b=c"),
                ("user.name", "bob"),
            ])
        );
        ok(
            &f,
            "ParseKVLax",
            &[s(r#"a="unterminated b"#), Value::Obj(&t), s("u")],
        );
        assert_eq!(t.get("u").unwrap(), kv_map(&[("a", "unterminated b")]));
        assert!(call(&f, "ParseKVLax", &[s("=== ..."), Value::Obj(&t), s("x")]).is_err());
    }
}
