//! `Sprintf`: Go's `fmt.Sprintf` for the verbs hub content uses, with Go's error markers
//! (`%!d(string=x)`, `%!v(MISSING)`, `%!(EXTRA ...)`) so output matches CrowdSec byte for byte.

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::Value;

use super::str_arg;

pub(super) fn register(f: &mut Functions) {
    f.register("Sprintf", Arity::AtLeast(1), true, |args| {
        let format = str_arg("Sprintf", args, 0)?;
        Ok(Value::from(go_sprintf(
            format,
            args.get(1..).unwrap_or_default(),
        )))
    });
}

/// Flags, width and precision of one verb.
#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Formats like Go's `fmt.Sprintf`.
pub(super) fn go_sprintf(format: &str, args: &[Value<'_>]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut next_arg = 0;
    let mut it = format.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = it.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            it.next();
        }
        spec.width = read_num(&mut it, args, &mut next_arg, &mut out);
        if it.peek() == Some(&'.') {
            it.next();
            spec.prec = Some(read_num(&mut it, args, &mut next_arg, &mut out).unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(v) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        format_arg(&mut out, &spec, verb, v);
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, v) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if v.is_nil() {
                out.push_str("<nil>");
            } else {
                out.push_str(&format!("{}={}", go_type(v), go_value(v)));
            }
        }
        out.push(')');
    }
    out
}

/// Go's `tooLarge`: widths and precisions beyond a million are refused.
const MAX_NUM: usize = 1_000_000;

/// Reads a width or precision: digits, or `*` taking an int argument. As in Go, a number that
/// grows past [`MAX_NUM`] swallows the rest of the format (which then ends in `%!(NOVERB)`), and a
/// `*` argument past it is a bad width.
fn read_num(
    it: &mut std::iter::Peekable<std::str::Chars<'_>>,
    args: &[Value<'_>],
    next_arg: &mut usize,
    out: &mut String,
) -> Option<usize> {
    if it.peek() == Some(&'*') {
        it.next();
        let v = args.get(*next_arg);
        *next_arg += 1;
        return match v {
            Some(Value::Int(n)) if (0..=MAX_NUM as i64).contains(n) => usize::try_from(*n).ok(),
            _ => {
                out.push_str("%!(BADWIDTH)");
                None
            }
        };
    }
    let mut n: Option<usize> = None;
    while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
        if n.is_some_and(|n| n > MAX_NUM) {
            it.for_each(drop);
            return None;
        }
        it.next();
        n = Some(n.unwrap_or(0) * 10 + d as usize);
    }
    n
}

/// Go's name for the dynamic type of a value, as shown in error markers and by `%T`.
fn go_type(v: &Value<'_>) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) | Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Duration(_) => "time.Duration",
        Value::Time(_) => "time.Time",
        Value::Obj(o) => o.type_name(),
        Value::Shared(o) => o.type_name(),
    }
}

/// `%v` of a value, Go style (floats use `%g`'s shortest form: `1e+06`).
fn go_value(v: &Value<'_>) -> String {
    let mut s = String::new();
    format_arg(&mut s, &Spec::default(), 'v', v);
    s
}

fn format_arg(out: &mut String, spec: &Spec, verb: char, v: &Value<'_>) {
    if verb == 'T' {
        pad(out, spec, go_type(v), false);
        return;
    }
    match v {
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, spec, verb, item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, spec, verb, &Value::Str(k));
                out.push(':');
                format_arg(out, spec, verb, item);
            }
            out.push(']');
        }
        Value::Obj(_) | Value::Shared(_) => {
            let plain = v.as_object().map(|o| o.to_value()).unwrap_or_default();
            if matches!(plain, Value::Nil) {
                bad_verb(out, verb, v);
            } else {
                format_arg(out, spec, verb, &plain);
            }
        }
        _ => match format_scalar(spec, verb, v) {
            Some((text, numeric)) => pad(out, spec, &text, numeric),
            None => bad_verb(out, verb, v),
        },
    }
}

fn bad_verb(out: &mut String, verb: char, v: &Value<'_>) {
    if v.is_nil() {
        out.push_str(&format!("%!{verb}(<nil>)"));
    } else {
        out.push_str(&format!("%!{verb}({}={})", go_type(v), go_value(v)));
    }
}

/// The text for one scalar and whether it is a number (zero padding goes after the sign);
/// `None` when the verb does not apply to the value.
fn format_scalar(spec: &Spec, verb: char, v: &Value<'_>) -> Option<(String, bool)> {
    let text = match (v, verb) {
        (Value::Nil, 'v') => "<nil>".to_owned(),
        (Value::Bool(b), 'v' | 't') => b.to_string(),
        (Value::Int(i), 'v' | 'd') => {
            return Some((signed(spec, *i < 0, i.unsigned_abs().to_string()), true));
        }
        (Value::Int(i), 'x') => {
            return Some((
                signed(spec, *i < 0, format!("{:x}", i.unsigned_abs())),
                true,
            ));
        }
        (Value::Int(i), 'X') => {
            return Some((
                signed(spec, *i < 0, format!("{:X}", i.unsigned_abs())),
                true,
            ));
        }
        (Value::Int(i), 'o') => {
            return Some((
                signed(spec, *i < 0, format!("{:o}", i.unsigned_abs())),
                true,
            ));
        }
        (Value::Int(i), 'b') => {
            return Some((
                signed(spec, *i < 0, format!("{:b}", i.unsigned_abs())),
                true,
            ));
        }
        (Value::Int(i), 'c') => u32::try_from(*i)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{fffd}')
            .to_string(),
        (Value::Int(i), 'q') => {
            let c = u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            format!(
                "'{}'",
                if c == '\'' {
                    "\\'".to_owned()
                } else {
                    escape_char(c, '\'')
                }
            )
        }
        (Value::Float(x), 'v' | 'g' | 'G' | 'f' | 'F' | 'e' | 'E') => {
            return Some((format_float(spec, verb, *x), true));
        }
        (Value::Str(_) | Value::String(_), 'v' | 's' | 'q' | 'x' | 'X') => {
            let s = v.as_str().unwrap_or_default();
            let s = match spec.prec {
                Some(p) => s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i]),
                None => s,
            };
            match verb {
                'q' => quote(s),
                'x' => hex_bytes(s, false),
                'X' => hex_bytes(s, true),
                _ => s.to_owned(),
            }
        }
        (Value::Duration(d), 'd') => {
            return Some((signed(spec, *d < 0, d.unsigned_abs().to_string()), true));
        }
        (Value::Duration(_) | Value::Time(_), 'v' | 's') => v.to_string(),
        _ => return None,
    };
    Some((text, false))
}

/// Prefixes the sign Go would print.
fn signed(spec: &Spec, negative: bool, digits: String) -> String {
    if negative {
        format!("-{digits}")
    } else if spec.plus {
        format!("+{digits}")
    } else if spec.space {
        format!(" {digits}")
    } else {
        digits
    }
}

fn format_float(spec: &Spec, verb: char, x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            if spec.plus { "+Inf" } else { "Inf" }.to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    let body = match verb {
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), x.abs()),
        'e' | 'E' => go_exp(&format!("{:.*e}", spec.prec.unwrap_or(6), x.abs())),
        _ => format_g(x.abs(), spec.prec),
    };
    let body = if verb.is_ascii_uppercase() {
        body.to_uppercase()
    } else {
        body
    };
    signed(spec, x.is_sign_negative() && x != 0.0, body)
}

/// Rewrites Rust's exponent (`1.5e3`, `2e-7`) as Go's (`1.5e+03`, `2e-07`).
fn go_exp(s: &str) -> String {
    let Some((mant, exp)) = s.split_once('e') else {
        return s.to_owned();
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.unsigned_abs())
}

/// Go's `%g` (and `%v` for floats): shortest digits, exponent form when the exponent is below -4
/// or at least the precision (6 when shortest).
fn format_g(x: f64, prec: Option<usize>) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let sci = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, x),
        None => format!("{x:e}"),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let eprec = prec.map_or(6, |p| p.max(1) as i32);
    let strip = |m: &str| -> String {
        if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            m.to_owned()
        }
    };
    if exp < -4 || exp >= eprec {
        return go_exp(&format!("{}e{exp}", strip(mant)));
    }
    match prec {
        None => format!("{x}"),
        Some(p) => {
            let decimals = (p.max(1) as i32 - 1 - exp).max(0) as usize;
            strip(&format!("{x:.decimals$}"))
        }
    }
}

/// Go's `strconv.Quote`: printable characters kept, the rest escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        out.push_str(&escape_char(c, '"'));
    }
    out.push('"');
    out
}

fn escape_char(c: char, quote: char) -> String {
    match c {
        '\u{7}' => "\\a".into(),
        '\u{8}' => "\\b".into(),
        '\u{c}' => "\\f".into(),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        '\u{b}' => "\\v".into(),
        '\\' => "\\\\".into(),
        c if c == quote => format!("\\{c}"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
        c if c.is_control() => {
            if (c as u32) < 0x10000 {
                format!("\\u{:04x}", c as u32)
            } else {
                format!("\\U{:08x}", c as u32)
            }
        }
        c => c.to_string(),
    }
}

fn hex_bytes(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

/// Pads to the width: spaces on the left, on the right with `-`, zeros after the sign with `0`.
fn pad(out: &mut String, spec: &Spec, text: &str, numeric: bool) {
    let len = text.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        out.push_str(text);
        return;
    };
    let fill = width - len;
    if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero {
        let (sign, rest) = if numeric && text.starts_with(['-', '+', ' ']) {
            text.split_at(1)
        } else {
            ("", text)
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(text);
    }
}

/// Used by `LogInfo`, which formats like `Sprintf`.
pub(super) fn sprintf_args(func: &str, args: &[Value<'_>]) -> Result<String, EvalError> {
    let format = str_arg(func, args, 0)?;
    Ok(go_sprintf(format, args.get(1..).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::value::{Map, Value};

    fn sp(args: &[Value<'_>]) -> String {
        let f = funcs();
        ok(&f, "Sprintf", args).as_str().unwrap().to_owned()
    }

    #[test]
    fn common_verbs() {
        assert_eq!(sp(&[s("%s-%d"), s("a"), Value::Int(42)]), "a-42");
        assert_eq!(
            sp(&[
                s("%v|%v|%v|%v"),
                Value::Int(1),
                s("x"),
                Value::Bool(true),
                Value::Nil
            ]),
            "1|x|true|<nil>"
        );
        assert_eq!(sp(&[s("%q"), s("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(sp(&[s("%x %X"), s("hi"), Value::Int(255)]), "6869 FF");
        assert_eq!(
            sp(&[
                s("%f %.2f %.0f"),
                Value::Float(1.5),
                Value::Float(1.23456),
                Value::Float(2.5)
            ]),
            "1.500000 1.23 2"
        );
        assert_eq!(sp(&[s("%t"), Value::Bool(false)]), "false");
        assert_eq!(sp(&[s("100%%")]), "100%");
        assert_eq!(sp(&[s("%e"), Value::Float(1234.5)]), "1.234500e+03");
        assert_eq!(
            sp(&[s("%g %g"), Value::Float(0.00001), Value::Float(100.0)]),
            "1e-05 100"
        );
    }

    #[test]
    fn floats_print_as_go_does() {
        assert_eq!(sp(&[s("%v"), Value::Float(1.0)]), "1");
        assert_eq!(sp(&[s("%v"), Value::Float(1_000_000.0)]), "1e+06");
        assert_eq!(sp(&[s("%v"), Value::Float(1.6788e9)]), "1.6788e+09");
        assert_eq!(sp(&[s("%v"), Value::Float(-0.5)]), "-0.5");
        assert_eq!(sp(&[s("%.3g"), Value::Float(1.23456)]), "1.23");
    }

    #[test]
    fn widths_and_flags() {
        assert_eq!(sp(&[s("[%5s]"), s("ab")]), "[   ab]");
        assert_eq!(sp(&[s("[%-5s]"), s("ab")]), "[ab   ]");
        assert_eq!(sp(&[s("[%05d]"), Value::Int(-42)]), "[-0042]");
        assert_eq!(sp(&[s("[%+d]"), Value::Int(5)]), "[+5]");
        assert_eq!(sp(&[s("[%*d]"), Value::Int(4), Value::Int(7)]), "[   7]");
        assert_eq!(sp(&[s("[%.2s]"), s("héllo")]), "[hé]");
        assert_eq!(sp(&[s("[%8.3f]"), Value::Float(1.23456)]), "[   1.235]");
    }

    #[test]
    fn oversized_widths_are_refused_as_go_does() {
        // Found by fuzzing: a width of 10^34 panicked with a capacity overflow.
        assert_eq!(
            sp(&[s("%10000000000000000000000000000000000d"), Value::Int(1)]),
            "%!(NOVERB)%!(EXTRA int=1)"
        );
        assert_eq!(
            sp(&[s("[%.10000000000f]"), Value::Float(1.0)]),
            "[%!(NOVERB)%!(EXTRA float64=1)"
        );
        assert_eq!(
            sp(&[s("[%*d]"), Value::Int(1_000_001), Value::Int(7)]),
            "[%!(BADWIDTH)7]"
        );
        assert_eq!(sp(&[s("%1000000d"), Value::Int(7)]).len(), 1_000_000);
    }

    #[test]
    fn go_error_markers() {
        assert_eq!(sp(&[s("%d"), s("x")]), "%!d(string=x)");
        assert_eq!(sp(&[s("%d"), Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sp(&[s("%s"), Value::Int(3)]), "%!s(int=3)");
        assert_eq!(sp(&[s("%s"), Value::Nil]), "%!s(<nil>)");
        assert_eq!(sp(&[s("%s %s"), s("a")]), "a %!s(MISSING)");
        assert_eq!(sp(&[s("%s"), s("a"), Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(sp(&[s("%")]), "%!(NOVERB)");
        assert_eq!(
            sp(&[s("%T %T"), s("a"), Value::Float(1.0)]),
            "string float64"
        );
    }

    #[test]
    fn composite_values() {
        assert_eq!(sp(&[s("%v"), strs(&["a", "b"])]), "[a b]");
        assert_eq!(
            sp(&[s("%d"), Value::list(vec![Value::Int(1), Value::Int(2)])]),
            "[1 2]"
        );
        let mut m = Map::new();
        m.insert("k".into(), Value::Int(1));
        assert_eq!(sp(&[s("%v"), Value::map(m)]), "map[k:1]");
        assert_eq!(sp(&[s("%v"), Value::Duration(60_000_000_000)]), "1m0s");
    }

    #[test]
    fn format_must_be_a_string() {
        let f = funcs();
        assert!(call(&f, "Sprintf", &[Value::Int(1)]).is_err());
        assert_eq!(sp(&[s("héllo")]), "héllo");
    }
}
