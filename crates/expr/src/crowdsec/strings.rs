//! Wrappers over Go's `strings` package (`Split`, `Trim`, `Replace`, ...), with Go's edge cases.

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::Value;

use super::{arg, int_arg, str_arg, str_pieces, sub_str, type_error};

pub(super) fn register(f: &mut Functions) {
    f.register("Upper", Arity::Exact(1), true, upper);
    f.register("Lower", Arity::Exact(1), true, lower);
    f.register("Fields", Arity::Exact(1), true, fields);
    f.register("Index", Arity::Exact(2), true, index);
    f.register("IndexAny", Arity::Exact(2), true, index_any);
    f.register("Join", Arity::Exact(2), true, join);
    f.register("Split", Arity::Exact(2), true, |a| {
        split("Split", a, false, -1)
    });
    f.register("SplitAfter", Arity::Exact(2), true, |a| {
        split("SplitAfter", a, true, -1)
    });
    f.register("SplitN", Arity::Exact(3), true, |a| {
        split("SplitN", a, false, int_arg("SplitN", a, 2)?)
    });
    f.register("SplitAfterN", Arity::Exact(3), true, |a| {
        split("SplitAfterN", a, true, int_arg("SplitAfterN", a, 2)?)
    });
    f.register("Replace", Arity::Exact(4), true, |a| {
        replace("Replace", a, int_arg("Replace", a, 3)?)
    });
    f.register("ReplaceAll", Arity::Exact(3), true, |a| {
        replace("ReplaceAll", a, -1)
    });
    f.register("Trim", Arity::Exact(2), true, |a| {
        trim_with("Trim", a, |s, set| s.trim_matches(|c| set.contains(c)))
    });
    f.register("TrimLeft", Arity::Exact(2), true, |a| {
        trim_with("TrimLeft", a, |s, set| {
            s.trim_start_matches(|c| set.contains(c))
        })
    });
    f.register("TrimRight", Arity::Exact(2), true, |a| {
        trim_with("TrimRight", a, |s, set| {
            s.trim_end_matches(|c| set.contains(c))
        })
    });
    f.register("TrimPrefix", Arity::Exact(2), true, |a| {
        trim_with("TrimPrefix", a, |s, p| s.strip_prefix(p).unwrap_or(s))
    });
    f.register("TrimSuffix", Arity::Exact(2), true, |a| {
        trim_with("TrimSuffix", a, |s, p| s.strip_suffix(p).unwrap_or(s))
    });
    f.register("TrimSpace", Arity::Exact(1), true, trim_space);
}

/// The first argument as a string value (kept as a `Value` so slices of it stay borrowed).
fn str_value<'v, 'a>(func: &str, args: &'v [Value<'a>]) -> Result<&'v Value<'a>, EvalError> {
    str_arg(func, args, 0)?;
    Ok(arg(args, 0))
}

fn upper<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    convert_case("Upper", args, true)
}

fn lower<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    convert_case("Lower", args, false)
}

/// The only character of a case mapping, `None` when it expands to several.
fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// Go's `strings.ToUpper`/`ToLower` map rune to rune (Unicode simple case mapping), so `ß` stays
/// `ß` where Rust's `to_uppercase` would give `SS`. Unchanged input is returned as is.
fn convert_case<'a>(func: &str, args: &[Value<'a>], up: bool) -> Result<Value<'a>, EvalError> {
    let s = str_arg(func, args, 0)?;
    let map = |c: char| -> char {
        let simple = if up {
            single(c.to_uppercase())
        } else {
            single(c.to_lowercase())
        };
        match (simple, c) {
            (Some(m), _) => m,
            // The one multi-rune full mapping whose simple mapping is not the identity.
            (None, '\u{130}') if !up => 'i',
            (None, _) => c,
        }
    };
    if s.is_ascii() {
        let changed = if up {
            s.bytes().any(|b| b.is_ascii_lowercase())
        } else {
            s.bytes().any(|b| b.is_ascii_uppercase())
        };
        if !changed {
            return Ok(arg(args, 0).clone());
        }
        return Ok(Value::from(if up {
            s.to_ascii_uppercase()
        } else {
            s.to_ascii_lowercase()
        }));
    }
    let out: String = s.chars().map(map).collect();
    if out == s {
        return Ok(arg(args, 0).clone());
    }
    Ok(Value::from(out))
}

fn fields<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let v = str_value("Fields", args)?;
    Ok(str_pieces(v, |s| s.split_whitespace().collect()))
}

/// Go's byte offsets, -1 when absent.
fn offset(pos: Option<usize>) -> Value<'static> {
    Value::Int(pos.map_or(-1, |p| p as i64))
}

fn index<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = str_arg("Index", args, 0)?;
    let sub = str_arg("Index", args, 1)?;
    Ok(offset(s.find(sub)))
}

fn index_any<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let s = str_arg("IndexAny", args, 0)?;
    let chars = str_arg("IndexAny", args, 1)?;
    Ok(offset(s.find(|c| chars.contains(c))))
}

fn join<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = arg(args, 0);
    let sep = str_arg("Join", args, 1)?;
    let items = list
        .iter_list()
        .ok_or_else(|| type_error("Join", 0, "a list of strings", list))?;
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        let s = item.as_str().ok_or_else(|| {
            EvalError::new(format!(
                "Join: element {i} of argument 1 must be a string, got {}",
                item.type_name()
            ))
        })?;
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(s);
    }
    Ok(Value::from(out))
}

fn split<'a>(func: &str, args: &[Value<'a>], after: bool, n: i64) -> Result<Value<'a>, EvalError> {
    let v = str_value(func, args)?;
    let sep = str_arg(func, args, 1)?;
    Ok(str_pieces(v, |s| gen_split(s, sep, after, n)))
}

/// Go's `genSplit`: `n < 0` means all pieces, `n == 0` none, an empty separator splits into
/// characters, and with `after` the separator stays at the end of each piece (`SplitAfter`).
fn gen_split<'s>(s: &'s str, sep: &str, after: bool, n: i64) -> Vec<&'s str> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        return explode(s, n);
    }
    let n = if n < 0 {
        s.matches(sep).count() + 1
    } else {
        usize::try_from(n).unwrap_or(usize::MAX).min(s.len() + 1)
    };
    let mut out = Vec::with_capacity(n.min(64));
    let mut rest = s;
    while out.len() + 1 < n {
        let Some(m) = rest.find(sep) else { break };
        out.push(&rest[..m + if after { sep.len() } else { 0 }]);
        rest = &rest[m + sep.len()..];
    }
    out.push(rest);
    out
}

/// Splits into characters, the last piece holding the rest when `n` is reached.
fn explode(s: &str, n: i64) -> Vec<&str> {
    let count = s.chars().count();
    let n = if n < 0 {
        count
    } else {
        usize::try_from(n).unwrap_or(usize::MAX).min(count)
    };
    let mut out = Vec::with_capacity(n);
    let mut rest = s;
    while out.len() + 1 < n {
        let Some(c) = rest.chars().next() else { break };
        out.push(&rest[..c.len_utf8()]);
        rest = &rest[c.len_utf8()..];
    }
    if n > 0 {
        out.push(rest);
    }
    out
}

fn replace<'a>(func: &str, args: &[Value<'a>], n: i64) -> Result<Value<'a>, EvalError> {
    let v = str_value(func, args)?;
    let s = str_arg(func, args, 0)?;
    let old = str_arg(func, args, 1)?;
    let new = str_arg(func, args, 2)?;
    if old == new || n == 0 || (!old.is_empty() && !s.contains(old)) {
        return Ok(v.clone());
    }
    let out = match usize::try_from(n) {
        Ok(n) => s.replacen(old, new, n),
        Err(_) => s.replace(old, new),
    };
    Ok(Value::from(out))
}

fn trim_with<'a>(
    func: &str,
    args: &[Value<'a>],
    f: impl for<'s, 't> FnOnce(&'s str, &'t str) -> &'s str,
) -> Result<Value<'a>, EvalError> {
    let v = str_value(func, args)?;
    let set = str_arg(func, args, 1)?;
    Ok(sub_str(v, |s| f(s, set)))
}

fn trim_space<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let v = str_value("TrimSpace", args)?;
    Ok(sub_str(v, str::trim))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::value::Value;

    #[test]
    fn case_conversion() {
        let f = funcs();
        assert_eq!(ok(&f, "Upper", &[s("abcé")]), s("ABCÉ"));
        assert_eq!(ok(&f, "Lower", &[s("ÀB")]), s("àb"));
        assert_eq!(ok(&f, "Upper", &[s("straße")]), s("STRAßE"));
        assert_eq!(ok(&f, "Lower", &[s("İI")]), s("ii"));
        assert!(matches!(ok(&f, "Lower", &[s("ß-é")]), Value::Str(_)));
        assert_eq!(ok(&f, "Upper", &[s("")]), s(""));
        assert!(matches!(ok(&f, "Upper", &[s("ABC")]), Value::Str(_)));
        assert!(call(&f, "Lower", &[Value::Nil]).is_err());
    }

    #[test]
    fn fields_and_index() {
        let f = funcs();
        assert_eq!(
            ok(&f, "Fields", &[s("  a b\t\nc  ")]),
            strs(&["a", "b", "c"])
        );
        assert_eq!(ok(&f, "Fields", &[s("   ")]), strs(&[]));
        assert_eq!(ok(&f, "Index", &[s("chicken"), s("ken")]), Value::Int(4));
        assert_eq!(ok(&f, "Index", &[s("chicken"), s("dmr")]), Value::Int(-1));
        assert_eq!(ok(&f, "Index", &[s("é!"), s("!")]), Value::Int(2));
        assert_eq!(ok(&f, "Index", &[s("x"), s("")]), Value::Int(0));
        assert_eq!(ok(&f, "IndexAny", &[s("golang"), s("ny")]), Value::Int(4));
        assert_eq!(ok(&f, "IndexAny", &[s("chicken"), s("kmr")]), Value::Int(4));
        assert_eq!(ok(&f, "IndexAny", &[s("golang"), s("")]), Value::Int(-1));
    }

    #[test]
    fn join() {
        let f = funcs();
        assert_eq!(
            ok(&f, "Join", &[strs(&["a", "b", "c"]), s(", ")]),
            s("a, b, c")
        );
        assert_eq!(ok(&f, "Join", &[strs(&[]), s(",")]), s(""));
        assert_eq!(ok(&f, "Join", &[Value::Nil, s(",")]), s(""));
        assert!(call(&f, "Join", &[Value::list(vec![Value::Int(1)]), s(",")]).is_err());
        assert!(call(&f, "Join", &[s("ab"), s(",")]).is_err());
    }

    #[test]
    fn split_family_matches_go() {
        let f = funcs();
        assert_eq!(
            ok(&f, "Split", &[s("a,b,c"), s(",")]),
            strs(&["a", "b", "c"])
        );
        assert_eq!(ok(&f, "Split", &[s(""), s(",")]), strs(&[""]));
        assert_eq!(ok(&f, "Split", &[s("a,"), s(",")]), strs(&["a", ""]));
        assert_eq!(
            ok(&f, "Split", &[s("héllo"), s("")]),
            strs(&["h", "é", "l", "l", "o"])
        );
        assert_eq!(ok(&f, "Split", &[s(""), s("")]), strs(&[]));
        assert_eq!(
            ok(&f, "SplitAfter", &[s("a::b"), s("::")]),
            strs(&["a::", "b"])
        );
        assert_eq!(
            ok(&f, "SplitAfter", &[s("a,b,"), s(",")]),
            strs(&["a,", "b,", ""])
        );
        assert_eq!(
            ok(&f, "SplitN", &[s("a,b,c"), s(","), Value::Int(2)]),
            strs(&["a", "b,c"])
        );
        assert_eq!(
            ok(&f, "SplitN", &[s("a,b,c"), s(","), Value::Int(0)]),
            strs(&[])
        );
        assert_eq!(
            ok(&f, "SplitN", &[s("a,b,c"), s(","), Value::Int(-1)]),
            strs(&["a", "b", "c"])
        );
        assert_eq!(
            ok(&f, "SplitN", &[s("abc"), s(""), Value::Int(2)]),
            strs(&["a", "bc"])
        );
        assert_eq!(
            ok(&f, "SplitAfterN", &[s("a,b,c"), s(","), Value::Int(2)]),
            strs(&["a,", "b,c"])
        );
        assert!(call(&f, "SplitN", &[s("a"), s(","), s("2")]).is_err());
        // Pieces of a borrowed input stay borrowed.
        let Value::List(l) = ok(&f, "Split", &[s("x/y"), s("/")]) else {
            panic!()
        };
        assert!(matches!(l[0], Value::Str(_)));
        let owned = Value::string("x/y");
        assert_eq!(ok(&f, "Split", &[owned, s("/")]), strs(&["x", "y"]));
    }

    #[test]
    fn replace_matches_go() {
        let f = funcs();
        let n = Value::Int;
        assert_eq!(
            ok(&f, "Replace", &[s("oink oink oink"), s("k"), s("ky"), n(2)]),
            s("oinky oinky oink")
        );
        assert_eq!(
            ok(&f, "Replace", &[s("oink oink"), s("oink"), s("moo"), n(-1)]),
            s("moo moo")
        );
        assert_eq!(
            ok(&f, "Replace", &[s("abc"), s("b"), s("x"), n(0)]),
            s("abc")
        );
        assert_eq!(
            ok(&f, "ReplaceAll", &[s("abc"), s(""), s("-")]),
            s("-a-b-c-")
        );
        assert_eq!(ok(&f, "ReplaceAll", &[s(""), s("a"), s("b")]), s(""));
        assert!(matches!(
            ok(&f, "ReplaceAll", &[s("abc"), s("z"), s("y")]),
            Value::Str(_)
        ));
    }

    #[test]
    fn trims_borrow_their_input() {
        let f = funcs();
        let r = ok(&f, "TrimSpace", &[s("  hi \n")]);
        assert!(matches!(r, Value::Str("hi")));
        assert_eq!(ok(&f, "TrimSpace", &[s("\u{a0}x\u{3000}")]), s("x"));
        assert_eq!(ok(&f, "Trim", &[s("¡¡Hello!!"), s("!¡")]), s("Hello"));
        assert_eq!(ok(&f, "Trim", &[s("xx"), s("")]), s("xx"));
        assert_eq!(ok(&f, "TrimLeft", &[s("aab"), s("a")]), s("b"));
        assert_eq!(ok(&f, "TrimRight", &[s("baa"), s("a")]), s("b"));
        assert_eq!(ok(&f, "TrimPrefix", &[s("prefix-x"), s("prefix-")]), s("x"));
        assert_eq!(ok(&f, "TrimPrefix", &[s("x"), s("prefix-")]), s("x"));
        assert_eq!(ok(&f, "TrimSuffix", &[s("a.log"), s(".log")]), s("a"));
        assert!(matches!(
            ok(&f, "TrimSuffix", &[s("a.log"), s(".log")]),
            Value::Str("a")
        ));
        assert_eq!(ok(&f, "TrimSpace", &[Value::string(" owned ")]), s("owned"));
        let err = call(&f, "TrimPrefix", &[s("x"), Value::Int(1)]).unwrap_err();
        assert_eq!(
            err.message,
            "TrimPrefix: argument 2 must be a string, got int"
        );
    }
}
