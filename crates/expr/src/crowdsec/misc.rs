//! Small helpers: `Atof`, `Get`, `ToString`, `Match`, `KeyExists`, `B64Decode`,
//! `FloatApproxEqual`, `LogInfo`, `Hostname`, `Flatten`, `Distinct`, `FlattenDistinct`, `basename`.

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine;

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::Value;

use super::{arg, float_arg, int_arg, str_arg, sub_str, type_error};

pub(super) fn register(f: &mut Functions) {
    f.register("Atof", Arity::Exact(1), true, |a| {
        let s = str_arg("Atof", a, 0)?;
        Ok(Value::Float(parse_go_float(s).unwrap_or(0.0)))
    });
    f.register("Get", Arity::Exact(2), true, get);
    f.register("ToString", Arity::Exact(1), true, |a| {
        Ok(match arg(a, 0) {
            v @ (Value::Str(_) | Value::String(_)) => v.clone(),
            _ => Value::Str(""),
        })
    });
    f.register("Match", Arity::Exact(2), true, |a| {
        let pattern = str_arg("Match", a, 0)?;
        let name = str_arg("Match", a, 1)?;
        Ok(Value::Bool(glob_match(pattern.as_bytes(), name.as_bytes())))
    });
    f.register("KeyExists", Arity::Exact(2), true, key_exists);
    f.register("B64Decode", Arity::Exact(1), true, |a| {
        let s = str_arg("B64Decode", a, 0)?;
        // Go's decoder skips line breaks inside the input.
        let compact: Cow<'_, str> = if s.contains(['\r', '\n']) {
            Cow::Owned(s.replace(['\r', '\n'], ""))
        } else {
            Cow::Borrowed(s)
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| EvalError::new(format!("B64Decode: {e}")))?;
        Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned()))
    });
    f.register("FloatApproxEqual", Arity::Exact(2), true, |a| {
        let x = float_arg("FloatApproxEqual", a, 0)?;
        let y = float_arg("FloatApproxEqual", a, 1)?;
        Ok(Value::Bool((x - y).abs() < 1e-6))
    });
    f.register("LogInfo", Arity::AtLeast(1), false, |a| {
        let msg = super::sprintf::sprintf_args("LogInfo", a)?;
        tracing::info!(target: "expr", "{msg}");
        Ok(Value::Bool(true))
    });
    f.register("Hostname", Arity::Exact(0), false, |_| {
        hostname()
            .map(Value::from)
            .ok_or_else(|| EvalError::new("Hostname: cannot read the host name"))
    });
    f.register("Flatten", Arity::AtLeast(0), true, |a| {
        let mut out = Vec::new();
        flatten_into(&mut out, a);
        Ok(Value::list(out))
    });
    f.register("Distinct", Arity::Exact(1), true, |a| {
        let v = arg(a, 0);
        match v.iter_list() {
            Some(items) if !v.is_nil() => Ok(Value::list(distinct(items))),
            Some(_) => Ok(Value::list(Vec::new())),
            // Go returns nil for anything that is not a slice.
            None => Ok(Value::Nil),
        }
    });
    f.register("FlattenDistinct", Arity::AtLeast(0), true, |a| {
        let mut out = Vec::new();
        flatten_into(&mut out, a);
        Ok(Value::list(distinct(out.into_iter())))
    });
    f.register("basename", Arity::Exact(1), true, |a| {
        str_arg("basename", a, 0)?;
        Ok(sub_str(arg(a, 0), base_name))
    });
}

/// Go's `strconv.ParseFloat`; Rust's parser accepts the same decimal, exponent, `Inf` and `NaN`
/// forms (not Go's hexadecimal floats, which logs do not contain).
pub(super) fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

fn get<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = arg(args, 0);
    let index = int_arg("Get", args, 1)?;
    if list.iter_list().is_none() {
        return Err(type_error("Get", 0, "a list", list));
    }
    let item = usize::try_from(index).ok().and_then(|i| match list {
        Value::List(l) => l.get(i).cloned(),
        Value::Obj(o) => o.index(i),
        _ => None,
    });
    Ok(item.unwrap_or(Value::Str("")))
}

fn key_exists<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let key = str_arg("KeyExists", args, 0)?;
    let found = match arg(args, 1) {
        Value::Map(m) => m.contains_key(key),
        Value::Obj(o) => o.get(key).is_some(),
        Value::Shared(o) => o.get(key).is_some(),
        Value::Nil => false,
        other => return Err(type_error("KeyExists", 1, "a map", other)),
    };
    Ok(Value::Bool(found))
}

/// CrowdSec's recursive glob, byte-wise: `*` matches any run, `?` one byte, and once the name is
/// exhausted only `""` or `"*"` may remain of the pattern (so `Match("a**", "a")` is false).
/// Evaluated as a table over (pattern suffix, name suffix) to stay linear in each dimension.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (p_len, n_len) = (pattern.len(), name.len());
    // next[n] = match(pattern[p+1..], name[n..]); start from the empty pattern.
    let mut next: Vec<bool> = (0..=n_len).map(|n| n == n_len).collect();
    let mut cur = vec![false; n_len + 1];
    for p in (0..p_len).rev() {
        cur[n_len] = p == p_len - 1 && pattern[p] == b'*';
        if pattern[p] == b'*' {
            // any k >= n with next[k], for n < n_len.
            let mut any = next[n_len];
            for n in (0..n_len).rev() {
                any |= next[n];
                cur[n] = any;
            }
        } else {
            for n in 0..n_len {
                cur[n] = (pattern[p] == b'?' || pattern[p] == name[n]) && next[n + 1];
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

/// Flattens nested lists into `out`, depth first.
fn flatten_into<'a>(out: &mut Vec<Value<'a>>, items: &[Value<'a>]) {
    for item in items {
        match item {
            Value::List(l) => flatten_into(out, l),
            Value::Obj(o) if o.is_list() => {
                let inner: Vec<Value<'a>> =
                    item.iter_list().map(Iterator::collect).unwrap_or_default();
                flatten_into(out, &inner);
            }
            other => out.push(other.clone()),
        }
    }
}

/// First occurrences only. Go keys a `map[any]bool`, so `1` (int) and `1.0` (float64) differ and
/// host objects compare by identity; the key is the type plus the value's rendering or address.
fn distinct<'a>(items: impl Iterator<Item = Value<'a>>) -> Vec<Value<'a>> {
    let mut seen: HashSet<(&'static str, String)> = HashSet::new();
    items
        .filter(|v| {
            let repr = match v {
                Value::Obj(o) => format!("{:p}", *o as *const dyn crate::object::Object),
                Value::Shared(o) => format!("{:p}", std::sync::Arc::as_ptr(o)),
                other => format!("{other:?}"),
            };
            seen.insert((v.type_name(), repr))
        })
        .collect()
}

/// Go's `filepath.Base`.
fn base_name(s: &str) -> &str {
    if s.is_empty() {
        return ".";
    }
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// The local host name, as `os.Hostname` reads it on Linux.
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::value::{Map, Value};

    #[test]
    fn atof() {
        let f = funcs();
        assert_eq!(ok(&f, "Atof", &[s("1.5")]), Value::Float(1.5));
        assert_eq!(ok(&f, "Atof", &[s("-2e3")]), Value::Float(-2000.0));
        assert_eq!(ok(&f, "Atof", &[s("abc")]), Value::Float(0.0));
        assert_eq!(ok(&f, "Atof", &[s("")]), Value::Float(0.0));
        assert!(call(&f, "Atof", &[Value::Int(1)]).is_err());
    }

    #[test]
    fn get_and_to_string() {
        let f = funcs();
        let l = strs(&["a", "b"]);
        assert_eq!(ok(&f, "Get", &[l.clone(), Value::Int(1)]), s("b"));
        assert_eq!(ok(&f, "Get", &[l.clone(), Value::Int(2)]), s(""));
        assert_eq!(ok(&f, "Get", &[l, Value::Int(-1)]), s(""));
        assert!(call(&f, "Get", &[s("ab"), Value::Int(0)]).is_err());
        assert_eq!(ok(&f, "ToString", &[s("x")]), s("x"));
        assert_eq!(ok(&f, "ToString", &[Value::Int(1)]), s(""));
        assert_eq!(ok(&f, "ToString", &[Value::Nil]), s(""));
    }

    #[test]
    fn glob_match_follows_crowdsec() {
        let f = funcs();
        let m = |p: &str, n: &str| ok(&f, "Match", &[s(p), s(n)]).as_bool().unwrap();
        assert!(m("*.exe", "cmd.exe"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("**", ""));
        assert!(m("a*", "a"));
        assert!(!m("a**", "a"));
        assert!(m("a**", "ab"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxaxxbxx"));
        assert!(!m("abc", "ab"));
        assert!(m("é*", "été"));
        assert!(m(
            "*cmd.exe /C  > *\\Temp\\* 2>&1*",
            "x cmd.exe /C  > c:\\Temp\\y 2>&1"
        ));
        let long = "a".repeat(5000);
        assert!(!m("*a*a*a*a*a*b", &long));
    }

    #[test]
    fn key_exists() {
        let f = funcs();
        let mut m = Map::new();
        m.insert("k".into(), Value::Nil);
        let m = Value::map(m);
        assert_eq!(ok(&f, "KeyExists", &[s("k"), m.clone()]), Value::Bool(true));
        assert_eq!(ok(&f, "KeyExists", &[s("z"), m]), Value::Bool(false));
        assert_eq!(
            ok(&f, "KeyExists", &[s("z"), Value::Nil]),
            Value::Bool(false)
        );
        let hm: std::collections::HashMap<String, String> =
            [("a".to_owned(), "b".to_owned())].into();
        assert_eq!(
            ok(&f, "KeyExists", &[s("a"), Value::Obj(&hm)]),
            Value::Bool(true)
        );
        assert!(call(&f, "KeyExists", &[s("k"), s("x")]).is_err());
    }

    #[test]
    fn b64_and_floats() {
        let f = funcs();
        assert_eq!(ok(&f, "B64Decode", &[s("aGVsbG8=")]), s("hello"));
        assert_eq!(ok(&f, "B64Decode", &[s("")]), s(""));
        assert_eq!(ok(&f, "B64Decode", &[s("aGVs\r\nbG8=")]), s("hello"));
        assert!(call(&f, "B64Decode", &[s("aGVsbG8")]).is_err());
        assert!(call(&f, "B64Decode", &[s("!!!")]).is_err());
        assert_eq!(
            ok(
                &f,
                "FloatApproxEqual",
                &[Value::Float(1.0), Value::Float(1.0000001)]
            ),
            Value::Bool(true)
        );
        assert_eq!(
            ok(&f, "FloatApproxEqual", &[Value::Float(1.0), Value::Int(2)]),
            Value::Bool(false)
        );
        assert!(call(&f, "FloatApproxEqual", &[s("1"), Value::Float(1.0)]).is_err());
    }

    #[test]
    fn log_info_and_hostname() {
        let f = funcs();
        assert_eq!(
            ok(&f, "LogInfo", &[s("hello %s"), s("x")]),
            Value::Bool(true)
        );
        let h = ok(&f, "Hostname", &[]);
        assert!(!h.as_str().unwrap().is_empty());
    }

    #[test]
    fn flatten_and_distinct() {
        let f = funcs();
        let nested = Value::list(vec![
            s("a"),
            Value::list(vec![s("b"), Value::list(vec![s("a")])]),
        ]);
        assert_eq!(
            ok(&f, "Flatten", &[nested.clone(), s("c")]),
            strs(&["a", "b", "a", "c"])
        );
        assert_eq!(
            ok(&f, "FlattenDistinct", &[nested, s("c")]),
            strs(&["a", "b", "c"])
        );
        let l = Value::list(vec![
            Value::Int(1),
            Value::Float(1.0),
            Value::Int(1),
            s("1"),
        ]);
        assert_eq!(
            ok(&f, "Distinct", &[l]),
            Value::list(vec![Value::Int(1), Value::Float(1.0), s("1")])
        );
        assert_eq!(ok(&f, "Distinct", &[s("x")]), Value::Nil);
        assert_eq!(ok(&f, "Distinct", &[Value::Nil]), strs(&[]));
        assert_eq!(ok(&f, "Flatten", &[]), strs(&[]));
    }

    #[test]
    fn basename() {
        let f = funcs();
        assert_eq!(ok(&f, "basename", &[s("/a/b/c.yaml")]), s("c.yaml"));
        assert_eq!(ok(&f, "basename", &[s("/a/b/")]), s("b"));
        assert_eq!(ok(&f, "basename", &[s("")]), s("."));
        assert_eq!(ok(&f, "basename", &[s("///")]), s("/"));
        assert_eq!(ok(&f, "basename", &[s("x")]), s("x"));
    }
}
