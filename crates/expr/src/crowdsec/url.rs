//! URL helpers: Go's `net/url` escaping and query parsing (`ParseUri`, `PathUnescape`, ...) and
//! CrowdSec's lenient `ParseQuery`/`ExtractQueryParam` that keep going past bad escapes.

use std::borrow::Cow;

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::{Map, Value};

use super::{arg, str_arg, string_list};

pub(super) fn register(f: &mut Functions) {
    f.register("PathUnescape", Arity::Exact(1), true, |a| {
        unescape_helper("PathUnescape", a, false)
    });
    f.register("QueryUnescape", Arity::Exact(1), true, |a| {
        unescape_helper("QueryUnescape", a, true)
    });
    f.register("PathEscape", Arity::Exact(1), true, |a| {
        Ok(Value::from(escape(str_arg("PathEscape", a, 0)?, false)))
    });
    f.register("QueryEscape", Arity::Exact(1), true, |a| {
        Ok(Value::from(escape(str_arg("QueryEscape", a, 0)?, true)))
    });
    f.register("ParseUri", Arity::Exact(1), true, |a| {
        let uri = str_arg("ParseUri", a, 0)?;
        Ok(values_map(parse_uri(uri).unwrap_or_default()))
    });
    f.register("ParseQuery", Arity::Exact(1), true, |a| {
        Ok(values_map(parse_query_lenient(str_arg(
            "ParseQuery",
            a,
            0,
        )?)))
    });
    f.register("ExtractQueryParam", Arity::Exact(2), true, |a| {
        let uri = str_arg("ExtractQueryParam", a, 0)?;
        let name = str_arg("ExtractQueryParam", a, 1)?;
        let values = uri
            .split_once('?')
            .map(|(_, q)| parse_query_lenient(q))
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
            .unwrap_or_default();
        Ok(string_list(values))
    });
}

/// Query values in first-seen key order, each key with all its values (Go's `url.Values`).
type Values = Vec<(String, Vec<String>)>;

fn add(values: &mut Values, key: String, value: String) {
    match values.iter_mut().find(|(k, _)| *k == key) {
        Some((_, vs)) => vs.push(value),
        None => values.push((key, vec![value])),
    }
}

fn values_map<'a>(values: Values) -> Value<'a> {
    Value::map(
        values
            .into_iter()
            .map(|(k, vs)| (k, string_list(vs)))
            .collect::<Map<'a>>(),
    )
}

fn unescape_helper<'a>(
    func: &str,
    args: &[Value<'a>],
    query: bool,
) -> Result<Value<'a>, EvalError> {
    let s = str_arg(func, args, 0)?;
    Ok(match go_unescape(s, query) {
        Some(Cow::Owned(o)) => Value::from(o),
        // Unchanged or invalid (Go returns the input on error): hand back the argument itself.
        _ => arg(args, 0).clone(),
    })
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.QueryUnescape` (`query`, where `+` is a space) or `url.PathUnescape`; `None` on a
/// malformed escape.
fn go_unescape(s: &str, query: bool) -> Option<Cow<'_, str>> {
    if !(s.contains('%') || query && s.contains('+')) {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

/// Go's `url.QueryEscape` (`query`) or `url.PathEscape`.
fn escape(s: &str, query: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        let keep = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'_' | b'.' | b'~')
            || (!query && matches!(c, b'$' | b'&' | b'+' | b':' | b'=' | b'@'));
        if keep {
            out.push(c as char);
        } else if c == b' ' && query {
            out.push('+');
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// `url.Parse(uri)` then `url.ParseQuery(u.RawQuery)`; `None` when Go reports an error (CrowdSec
/// then returns an empty map).
fn parse_uri(uri: &str) -> Option<Values> {
    if uri.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return None;
    }
    let (rest, _fragment) = uri.split_once('#').unwrap_or((uri, ""));
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let mut values = Values::new();
    let mut failed = false;
    for part in query.split('&') {
        if part.contains(';') {
            failed = true;
            continue;
        }
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (go_unescape(k, true), go_unescape(v, true)) {
            (Some(k), Some(v)) => add(&mut values, k.into_owned(), v.into_owned()),
            _ => failed = true,
        }
    }
    (!failed).then_some(values)
}

/// CrowdSec's `ParseQuery`: `&`-separated, `;` allowed in values, malformed escapes kept as is.
fn parse_query_lenient(query: &str) -> Values {
    let mut values = Values::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        add(&mut values, lenient_unescape(k), lenient_unescape(v));
    }
    values
}

fn lenient_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'+' {
            out.push(b' ');
        } else if let (b'%', Some(hi), Some(lo)) = (
            c,
            b.get(i + 1).copied().and_then(hex_val),
            b.get(i + 2).copied().and_then(hex_val),
        ) {
            out.push(hi << 4 | lo);
            i += 2;
        } else {
            out.push(c);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::value::{Map, Value};

    fn qmap(pairs: &[(&str, &[&'static str])]) -> Value<'static> {
        Value::map(
            pairs
                .iter()
                .map(|(k, vs)| {
                    (
                        (*k).to_owned(),
                        Value::list(vs.iter().map(|v| Value::string(*v)).collect()),
                    )
                })
                .collect::<Map<'static>>(),
        )
    }

    #[test]
    fn unescape_returns_input_on_error() {
        let f = funcs();
        assert_eq!(ok(&f, "PathUnescape", &[s("a%20b+c")]), s("a b+c"));
        assert_eq!(ok(&f, "QueryUnescape", &[s("a%20b+c")]), s("a b c"));
        assert_eq!(ok(&f, "PathUnescape", &[s("100%")]), s("100%"));
        assert_eq!(ok(&f, "QueryUnescape", &[s("%zz+")]), s("%zz+"));
        assert_eq!(ok(&f, "PathUnescape", &[s("caf%C3%A9")]), s("café"));
        assert!(matches!(
            ok(&f, "PathUnescape", &[s("plain")]),
            Value::Str("plain")
        ));
        assert_eq!(ok(&f, "PathUnescape", &[s("")]), s(""));
        assert!(call(&f, "PathUnescape", &[Value::Nil]).is_err());
    }

    #[test]
    fn escape_like_go() {
        let f = funcs();
        assert_eq!(
            ok(&f, "PathEscape", &[s("a b/c?d=e&f+g@h;i,j")]),
            s("a%20b%2Fc%3Fd=e&f+g@h%3Bi%2Cj")
        );
        assert_eq!(
            ok(&f, "QueryEscape", &[s("a b/c?d=e&f+g")]),
            s("a+b%2Fc%3Fd%3De%26f%2Bg")
        );
        assert_eq!(ok(&f, "QueryEscape", &[s("é~")]), s("%C3%A9~"));
    }

    #[test]
    fn parse_uri() {
        let f = funcs();
        assert_eq!(
            ok(&f, "ParseUri", &[s("/path?a=1&b=x%20y&a=2#frag")]),
            qmap(&[("a", &["1", "2"]), ("b", &["x y"])])
        );
        assert_eq!(ok(&f, "ParseUri", &[s("/path")]), qmap(&[]));
        assert_eq!(ok(&f, "ParseUri", &[s("/p?a=%zz")]), qmap(&[]));
        assert_eq!(ok(&f, "ParseUri", &[s("/p?a=1;b=2")]), qmap(&[]));
        assert_eq!(
            ok(&f, "ParseUri", &[s("/p?flag&x=")]),
            qmap(&[("flag", &[""]), ("x", &[""])])
        );
    }

    #[test]
    fn lenient_query_parsing() {
        let f = funcs();
        assert_eq!(
            ok(&f, "ParseQuery", &[s("a=1;2&b=%zz&c=%41+%&&d")]),
            qmap(&[
                ("a", &["1;2"]),
                ("b", &["%zz"]),
                ("c", &["A %"]),
                ("d", &[""])
            ])
        );
        assert_eq!(ok(&f, "ParseQuery", &[s("")]), qmap(&[]));
        assert_eq!(
            ok(
                &f,
                "ExtractQueryParam",
                &[s("/x?id=1&id=2;x&other=3"), s("id")]
            ),
            Value::list(vec![Value::string("1"), Value::string("2;x")])
        );
        assert_eq!(
            ok(&f, "ExtractQueryParam", &[s("/x?id=1"), s("nope")]),
            strs(&[])
        );
        assert_eq!(ok(&f, "ExtractQueryParam", &[s("/x"), s("id")]), strs(&[]));
    }
}
