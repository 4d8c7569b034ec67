//! Tokens of expr-lang source, with byte offsets for diagnostics.

use crate::error::CompileError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    /// `#`, `#index`, `#acc`...
    Pointer(String),
    /// Operators and punctuation, including word operators (`and`, `not`, `in`, `matches`...).
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
}

const WORD_OPS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "let",
];

// Longest first so that `**` wins over `*` and `?.` over `?`.
const SYMBOLS: &[&str] = &[
    "...", "==", "!=", "<=", ">=", "&&", "||", "**", "??", "?.", "..", "+", "-", "*", "/", "%",
    "^", "<", ">", "!", "(", ")", "[", "]", "{", "}", ",", ":", ".", "?", "|", ";", "=",
];

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, CompileError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = src[i + 2..]
                .find("*/")
                .ok_or_else(|| CompileError::at(src, i, "unterminated comment"))?;
            i += end + 4;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, len) = lex_number(src, i)?;
            out.push(Token { tok, pos: start });
            i += len;
            continue;
        }
        if c == b'"' || c == b'\'' {
            let (s, len) = lex_string(src, i)?;
            out.push(Token {
                tok: Tok::Str(s),
                pos: start,
            });
            i += len;
            continue;
        }
        if c == b'`' {
            let end = src[i + 1..]
                .find('`')
                .ok_or_else(|| CompileError::at(src, i, "unterminated raw string"))?;
            out.push(Token {
                tok: Tok::Str(src[i + 1..i + 1 + end].to_owned()),
                pos: start,
            });
            i += end + 2;
            continue;
        }
        if c == b'#' {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Pointer(src[start + 1..i].to_owned()),
                pos: start,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            let word = &src[start..i];
            let tok = match WORD_OPS.iter().find(|w| **w == word) {
                Some(w) => Tok::Op(w),
                None => Tok::Ident(word.to_owned()),
            };
            out.push(Token { tok, pos: start });
            continue;
        }
        match SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            Some(s) => {
                // `?.` followed by a digit is a ternary and a float (`a ?.5 : 1`).
                if *s == "?." && b.get(i + 2).is_some_and(u8::is_ascii_digit) {
                    out.push(Token {
                        tok: Tok::Op("?"),
                        pos: start,
                    });
                    i += 1;
                } else {
                    out.push(Token {
                        tok: Tok::Op(s),
                        pos: start,
                    });
                    i += s.len();
                }
            }
            None => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(CompileError::at(
                    src,
                    i,
                    format!("unexpected character {ch:?}"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), CompileError> {
    let b = src.as_bytes();
    let mut i = start;
    let bad = |msg: &str| CompileError::at(src, start, msg.to_owned());
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
        let radix = match b[i + 1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            _ => 2,
        };
        i += 2;
        let d0 = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let digits: String = src[d0..i].chars().filter(|c| *c != '_').collect();
        let v = i64::from_str_radix(&digits, radix).map_err(|_| bad("invalid integer literal"))?;
        return Ok((Tok::Int(v), i - start));
    }
    let mut is_float = false;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    // A '.' starts a fraction unless it is the range operator `..` or a member access.
    if i < b.len()
        && b[i] == b'.'
        && b.get(i + 1) != Some(&b'.')
        && !b
            .get(i + 1)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        is_float = true;
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            is_float = true;
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text: String = src[start..i].chars().filter(|c| *c != '_').collect();
    if is_float {
        let v: f64 = text.parse().map_err(|_| bad("invalid float literal"))?;
        Ok((Tok::Float(v), i - start))
    } else {
        match text.parse::<i64>() {
            Ok(v) => Ok((Tok::Int(v), i - start)),
            // Go's expr turns integer literals that overflow int into floats.
            Err(_) => {
                let v: f64 = text.parse().map_err(|_| bad("invalid number literal"))?;
                Ok((Tok::Float(v), i - start))
            }
        }
    }
}

fn lex_string(src: &str, start: usize) -> Result<(String, usize), CompileError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let here = start + 1 + off;
        if c == quote {
            return Ok((out, off + 2));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            '`' => out.push('`'),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut hex = String::new();
                for _ in 0..n {
                    match chars.next() {
                        Some((_, h)) if h.is_ascii_hexdigit() => hex.push(h),
                        _ => return Err(CompileError::at(src, here, "invalid escape sequence")),
                    }
                }
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| CompileError::at(src, here, "invalid escape sequence"))?;
                let ch = char::from_u32(code)
                    .ok_or_else(|| CompileError::at(src, here, "invalid unicode code point"))?;
                out.push(ch);
            }
            '0'..='7' => {
                let mut code = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.next() {
                        Some((_, d)) if d.is_digit(8) => {
                            code = code * 8 + d.to_digit(8).unwrap_or(0)
                        }
                        _ => return Err(CompileError::at(src, here, "invalid octal escape")),
                    }
                }
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            other => {
                return Err(CompileError::at(
                    src,
                    here,
                    format!("invalid escape sequence \\{other}"),
                ));
            }
        }
    }
    Err(CompileError::at(src, start, "unterminated string literal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_strings_and_operators() {
        assert_eq!(
            toks("1..3 1.5 0x1F 1_000 'a\\n' \"b\\\"\" `r\\n`"),
            vec![
                Tok::Int(1),
                Tok::Op(".."),
                Tok::Int(3),
                Tok::Float(1.5),
                Tok::Int(31),
                Tok::Int(1000),
                Tok::Str("a\n".into()),
                Tok::Str("b\"".into()),
                Tok::Str("r\\n".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("a?.b ?? #.c not in"),
            vec![
                Tok::Ident("a".into()),
                Tok::Op("?."),
                Tok::Ident("b".into()),
                Tok::Op("??"),
                Tok::Pointer(String::new()),
                Tok::Op("."),
                Tok::Ident("c".into()),
                Tok::Op("not"),
                Tok::Op("in"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = lex("a == 'oops").unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        let e = lex("a\n @").unwrap_err();
        assert_eq!((e.line, e.column), (2, 2));
    }
}
