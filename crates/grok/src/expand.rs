//! Grok expansion and Go RE2 → Rust `regex-syntax` translation, in one scanner pass.
//!
//! Doing both in one pass matters: whether `%{` or `{` is special depends on whether we are
//! inside a character class or a `\Q…\E` quote, which only a scanner that understands the regex
//! syntax can tell. The output is a pattern for `regex-syntax` in Unicode mode, in which
//! `.` and negated classes match whole code points like Go, while the Perl classes are rewritten
//! to their ASCII meaning as in RE2.

use crate::error::GrokError;
use crate::set::PatternSet;

/// Guards against exponential blow-up of DAG-shaped definitions before the regex compiler's
/// own size limit would ever see the pattern.
pub(crate) const MAX_EXPANDED_LEN: usize = 8 << 20;
/// Deeper than any real pattern set (the hub peaks around 10); keeps recursion off the guard page.
pub(crate) const MAX_DEPTH: usize = 64;

const ASCII_DIGIT: &str = "0-9";
const ASCII_WORD: &str = "0-9A-Za-z_";
// RE2's \s: no \v, unlike Perl.
const ASCII_SPACE: &str = r"\t\n\x0C\r ";

/// One field as seen by its level: user name → internal group name.
pub(crate) type FieldMap = Vec<(String, String)>;

/// What `expand` hands to the compiler.
#[derive(Debug)]
pub(crate) struct Expansion {
    pub(crate) regex: String,
    /// `%{X:field}` names, resolved with grokky's precedence.
    pub(crate) fields: FieldMap,
    /// Plain `(?P<name>…)` groups, in pattern order.
    pub(crate) named_groups: FieldMap,
}

/// Where the text being scanned comes from, for error messages.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    name: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn describe(&self) -> String {
        format!("{} ({})", self.name, self.origin)
    }
}

enum Event {
    Direct(String, String),
    Nested(FieldMap),
}

pub(crate) fn expand(set: &PatternSet, pattern: &str) -> Result<Expansion, GrokError> {
    let mut ex = Expander {
        set,
        out: String::with_capacity(pattern.len() * 4),
        next_group: 0,
        stack: Vec::new(),
        named_groups: Vec::new(),
    };
    let ctx = Ctx {
        name: "top-level pattern",
        origin: "compile",
    };
    let fields = ex.expand_text(pattern, ctx)?;
    Ok(Expansion {
        regex: ex.out,
        fields,
        named_groups: ex.named_groups,
    })
}

struct Expander<'s> {
    set: &'s PatternSet,
    out: String,
    next_group: usize,
    stack: Vec<&'s str>,
    named_groups: FieldMap,
}

impl<'s> Expander<'s> {
    fn fresh_group(&mut self, prefix: char) -> String {
        let name = format!("{prefix}{}", self.next_group);
        self.next_group += 1;
        name
    }

    fn syntax(ctx: Ctx<'_>, construct: impl Into<String>) -> GrokError {
        GrokError::Syntax {
            pattern: ctx.name.to_owned(),
            origin: ctx.origin.to_owned(),
            construct: construct.into(),
        }
    }

    /// Expands one pattern text (a definition or the top-level pattern) and returns its field
    /// map resolved the way grokky builds `Pattern.s`: a name given directly at this level
    /// (`%{X:name}`) shadows the same name coming from inside a sub-pattern; among equals the
    /// later one wins (grokky overwrites its map entry in reference order).
    fn expand_text(&mut self, text: &'s str, ctx: Ctx<'_>) -> Result<FieldMap, GrokError> {
        let mut events = Vec::new();
        let mut cur = Cursor::new(text);
        while let Some(c) = cur.peek() {
            match c {
                '%' => {
                    if let Some(r) = parse_ref(cur.rest()) {
                        cur.advance(r.len);
                        self.expand_ref(r.name, r.field, ctx, &mut events)?;
                    } else {
                        self.out.push('%');
                        cur.bump();
                    }
                }
                '\\' => self.escape(&mut cur, false, ctx)?,
                '[' => self.class(&mut cur, ctx)?,
                '(' => self.group_open(&mut cur, ctx)?,
                '{' => {
                    // Go treats a brace that does not form `{n}`, `{n,}` or `{n,m}` as a
                    // literal; regex-syntax rejects it.
                    if let Some(n) = repeat_len(cur.rest()) {
                        self.out.push_str(&cur.rest()[..n]);
                        cur.advance(n);
                    } else {
                        self.out.push_str(r"\{");
                        cur.bump();
                    }
                }
                '}' => {
                    self.out.push_str(r"\}");
                    cur.bump();
                }
                _ => {
                    self.out.push(c);
                    cur.bump();
                }
            }
        }
        Ok(resolve(events))
    }

    fn expand_ref(
        &mut self,
        name: &str,
        field: Option<&str>,
        ctx: Ctx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), GrokError> {
        let Some((def_name, def)) = self.set.get_entry(name) else {
            return Err(GrokError::UnknownPattern {
                name: name.to_owned(),
                from: ctx.describe(),
            });
        };
        if let Some(pos) = self.stack.iter().position(|n| *n == def_name) {
            let mut chain: Vec<&str> = self.stack[pos..].to_vec();
            chain.push(def_name);
            return Err(GrokError::Cycle {
                chain: chain.join(" -> "),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(GrokError::TooDeep {
                name: name.to_owned(),
                origin: def.origin.to_string(),
                limit: MAX_DEPTH,
            });
        }
        // grokky wraps every reference in a capture group; only the named ones are ever read
        // back, so unnamed ones become non-capturing and cost the backtracker no slots.
        let group = match field {
            Some(_) => {
                let g = self.fresh_group('g');
                self.out.push_str("(?P<");
                self.out.push_str(&g);
                self.out.push('>');
                Some(g)
            }
            None => {
                self.out.push_str("(?:");
                None
            }
        };
        self.stack.push(def_name);
        let origin = def.origin.to_string();
        let sub = self.expand_text(
            &def.text,
            Ctx {
                name: def_name,
                origin: &origin,
            },
        );
        self.stack.pop();
        let sub = sub?;
        self.out.push(')');
        if self.out.len() > MAX_EXPANDED_LEN {
            return Err(GrokError::TooLarge {
                name: name.to_owned(),
                limit: MAX_EXPANDED_LEN,
            });
        }
        if let (Some(f), Some(g)) = (field, group) {
            events.push(Event::Direct(f.to_owned(), g));
        }
        events.push(Event::Nested(sub));
        Ok(())
    }

    fn group_open(&mut self, cur: &mut Cursor<'_>, ctx: Ctx<'_>) -> Result<(), GrokError> {
        let rest = cur.rest();
        let name_start = if rest.starts_with("(?P<") {
            Some(4)
        } else if rest.starts_with("(?<") && !rest.starts_with("(?<=") && !rest.starts_with("(?<!")
        {
            Some(3)
        } else {
            None
        };
        if let Some(start) = name_start {
            let after = &rest[start..];
            let Some(end) = after.find('>') else {
                return Err(Self::syntax(ctx, "unterminated named group `(?P<`"));
            };
            let user = &after[..end];
            if user.is_empty() || !user.bytes().all(is_word_byte) {
                return Err(Self::syntax(
                    ctx,
                    format!("invalid capture group name {user:?}"),
                ));
            }
            // Renamed so duplicates (legal in Go when they come from different sub-patterns)
            // never clash inside regex-syntax.
            let g = self.fresh_group('u');
            self.out.push_str("(?P<");
            self.out.push_str(&g);
            self.out.push('>');
            self.named_groups.push((user.to_owned(), g));
            cur.advance(start + end + 1);
        } else if rest.starts_with("(?") {
            // Flags and non-capturing groups: the flag letters and `:`/`)` pass through the
            // main loop unchanged.
            self.out.push_str("(?");
            cur.advance(2);
        } else {
            self.out.push_str("(?:");
            cur.bump();
        }
        Ok(())
    }

    fn class(&mut self, cur: &mut Cursor<'_>, ctx: Ctx<'_>) -> Result<(), GrokError> {
        cur.bump();
        self.out.push('[');
        if cur.peek() == Some('^') {
            cur.bump();
            self.out.push('^');
        }
        if cur.peek() == Some(']') {
            cur.bump();
            self.out.push_str(r"\]");
        }
        let mut prev_dash = false;
        loop {
            let Some(c) = cur.peek() else {
                return Err(Self::syntax(ctx, "missing closing ] of character class"));
            };
            let mut dash = false;
            match c {
                ']' => {
                    cur.bump();
                    self.out.push(']');
                    return Ok(());
                }
                '[' => {
                    if let Some(n) = posix_class_len(cur.rest()) {
                        self.out.push_str(&cur.rest()[..n]);
                        cur.advance(n);
                    } else {
                        // Nested classes exist in regex-syntax, not in RE2.
                        self.out.push_str(r"\[");
                        cur.bump();
                    }
                }
                '\\' => self.escape(cur, true, ctx)?,
                // Set operators in regex-syntax (`&&`, `~~`, `--`), plain characters in RE2.
                '&' | '~' | '{' | '}' => {
                    self.out.push('\\');
                    self.out.push(c);
                    cur.bump();
                }
                '-' => {
                    self.out.push_str(if prev_dash { r"\-" } else { "-" });
                    dash = true;
                    cur.bump();
                }
                _ => {
                    self.out.push(c);
                    cur.bump();
                }
            }
            prev_dash = dash;
        }
    }

    fn escape(
        &mut self,
        cur: &mut Cursor<'_>,
        in_class: bool,
        ctx: Ctx<'_>,
    ) -> Result<(), GrokError> {
        cur.bump();
        let Some(c) = cur.bump() else {
            return Err(Self::syntax(ctx, "trailing backslash at end of pattern"));
        };
        let out = &mut self.out;
        match c {
            'd' | 'w' | 's' => {
                let set = perl_class(c);
                if in_class {
                    out.push_str(set);
                } else {
                    out.push('[');
                    out.push_str(set);
                    out.push(']');
                }
            }
            'D' | 'W' | 'S' => {
                // A nested negated class is valid inside and outside a class in regex-syntax.
                out.push_str("[^");
                out.push_str(perl_class(c.to_ascii_lowercase()));
                out.push(']');
            }
            'b' | 'B' if !in_class => {
                out.push_str(if c == 'b' { r"(?-u:\b)" } else { r"(?-u:\B)" });
            }
            'Q' => {
                let rest = cur.rest();
                let (quoted, skip) = match rest.find(r"\E") {
                    Some(end) => (&rest[..end], end + 2),
                    None => (rest, rest.len()),
                };
                for q in quoted.chars() {
                    push_literal(out, q, in_class);
                }
                cur.advance(skip);
            }
            '1'..='7' if !cur.peek().is_some_and(|d| d.is_ascii_digit()) => {
                return Err(Self::syntax(
                    ctx,
                    format!("backreference \\{c} is not supported"),
                ));
            }
            '0'..='7' => {
                // RE2: up to three octal digits in total.
                let mut value = u32::from(c as u8 - b'0');
                for _ in 0..2 {
                    match cur.peek() {
                        Some(d @ '0'..='7') => {
                            value = value * 8 + u32::from(d as u8 - b'0');
                            cur.bump();
                        }
                        _ => break,
                    }
                }
                out.push_str(&format!(r"\x{{{value:X}}}"));
            }
            '8' | '9' => return Err(Self::syntax(ctx, format!("invalid escape \\{c}"))),
            'x' | 'p' | 'P' => {
                out.push('\\');
                out.push(c);
                if cur.peek() == Some('{') {
                    let rest = cur.rest();
                    let Some(end) = rest.find('}') else {
                        return Err(Self::syntax(ctx, format!("unterminated \\{c}{{")));
                    };
                    out.push_str(&rest[..=end]);
                    cur.advance(end + 1);
                } else {
                    let take = if c == 'x' { 2 } else { 1 };
                    for _ in 0..take {
                        match cur.bump() {
                            Some(h) => out.push(h),
                            None => {
                                return Err(Self::syntax(ctx, format!("truncated \\{c} escape")));
                            }
                        }
                    }
                }
            }
            // Go allows escaping any ASCII non-alphanumeric; regex-syntax gives `\<`, `\>` a
            // meaning (word boundaries), so emit the literal instead of the escape.
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => push_literal(out, c, in_class),
            // \a \f \t \n \r \v \A \z and anything invalid: regex-syntax judges.
            c => {
                out.push('\\');
                out.push(c);
            }
        }
        Ok(())
    }
}

fn perl_class(c: char) -> &'static str {
    match c {
        'd' => ASCII_DIGIT,
        'w' => ASCII_WORD,
        _ => ASCII_SPACE,
    }
}

fn push_literal(out: &mut String, c: char, in_class: bool) {
    if regex_syntax::is_meta_character(c) || (in_class && matches!(c, '&' | '~' | '-')) {
        out.push('\\');
        out.push(c);
    } else if c == '\n' || c == ' ' || c.is_control() {
        out.push_str(&format!(r"\x{{{:X}}}", c as u32));
    } else {
        out.push(c);
    }
}

fn resolve(events: Vec<Event>) -> FieldMap {
    let direct: Vec<String> = events
        .iter()
        .filter_map(|e| {
            if let Event::Direct(n, _) = e {
                Some(n.clone())
            } else {
                None
            }
        })
        .collect();
    let mut map: FieldMap = Vec::new();
    let set = |map: &mut FieldMap, name: String, group: String| {
        if let Some(slot) = map.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = group;
        } else {
            map.push((name, group));
        }
    };
    for e in events {
        match e {
            Event::Direct(n, g) => set(&mut map, n, g),
            Event::Nested(sub) => {
                for (n, g) in sub {
                    if !direct.contains(&n) {
                        set(&mut map, n, g);
                    }
                }
            }
        }
    }
    map
}

pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn word_len(s: &str) -> usize {
    s.bytes().take_while(|b| is_word_byte(*b)).count()
}

struct Ref<'a> {
    name: &'a str,
    field: Option<&'a str>,
    len: usize,
}

/// `%{NAME}`, `%{NAME:field}` or `%{NAME:field:type}` (type ignored; grokky has no types, but
/// some hub files carry Logstash-style `:int` suffixes).
fn parse_ref(s: &str) -> Option<Ref<'_>> {
    let body = s.strip_prefix("%{")?;
    let n = word_len(body);
    if n == 0 {
        return None;
    }
    let name = &body[..n];
    let mut i = n;
    let mut field = None;
    for part in 0..2 {
        if body[i..].starts_with(':') {
            let w = word_len(&body[i + 1..]);
            if w == 0 {
                return None;
            }
            if part == 0 {
                field = Some(&body[i + 1..i + 1 + w]);
            }
            i += 1 + w;
        }
    }
    if !body[i..].starts_with('}') {
        return None;
    }
    Some(Ref {
        name,
        field,
        len: 2 + i + 1,
    })
}

/// Length of a valid RE2 repetition `{n}`, `{n,}`, `{n,m}` at the start of `s`.
fn repeat_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = 1;
    let n = digits(i);
    if n == 0 {
        return None;
    }
    i += n;
    if b.get(i) == Some(&b',') {
        i += 1;
        i += digits(i);
    }
    (b.get(i) == Some(&b'}')).then_some(i + 1)
}

/// Length of `[:alpha:]` / `[:^alpha:]` at the start of `s`.
fn posix_class_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("[:")?;
    let body = body.strip_prefix('^').unwrap_or(body);
    let n = body.bytes().take_while(u8::is_ascii_lowercase).count();
    (n > 0 && body[n..].starts_with(":]")).then(|| s.len() - body.len() + n + 2)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    /// Callers only advance by lengths measured on ASCII prefixes of `rest()`.
    fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.s.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(p: &str) -> String {
        let set = PatternSet::empty();
        match expand(&set, p) {
            Ok(e) => e.regex,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn braces_that_are_not_repeats_become_literals() {
        assert_eq!(tr(r#".*{"ip":"#), r#".*\{"ip":"#);
        assert_eq!(tr("a{,3}"), r"a\{,3\}");
        assert_eq!(tr("a{2,3}b{4}c{5,}"), "a{2,3}b{4}c{5,}");
        assert_eq!(tr("Parameters: {"), r"Parameters: \{");
    }

    #[test]
    fn quoting_and_octal() {
        assert_eq!(tr(r"\Qa.b{\E+"), r"a\.b\{+");
        assert_eq!(tr(r"\Qa.b"), r"a\.b");
        assert_eq!(tr(r"\141\0"), r"\x{61}\x{0}");
        assert!(tr(r"(a)\1").starts_with("ERR"));
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert_eq!(tr(r"\d\w\s"), r"[0-9][0-9A-Za-z_][\t\n\x0C\r ]");
        assert_eq!(tr(r"[\d.]"), r"[0-9.]");
        assert_eq!(tr(r"[^\S]"), r"[^[^\t\n\x0C\r ]]");
        assert_eq!(tr(r"\bx\B"), r"(?-u:\b)x(?-u:\B)");
    }

    #[test]
    fn classes_escape_rust_only_operators() {
        assert_eq!(tr(r"[a[b&&c~~d--e]"), r"[a\[b\&\&c\~\~d-\-e]");
        assert_eq!(tr(r"[]a]"), r"[\]a]");
        assert_eq!(tr(r"[[:alpha:]%{X}]"), r"[[:alpha:]%\{X\}]");
    }

    #[test]
    fn groups() {
        assert_eq!(
            tr("(a)(?:b)(?i)c(?P<x>d)(?<y>e)"),
            "(?:a)(?:b)(?i)c(?P<u0>d)(?P<u1>e)"
        );
        assert_eq!(tr(r"\<\>\%\ "), r"<>%\x{20}");
    }

    #[test]
    fn reference_syntax() {
        let r = parse_ref("%{IP:src:int} x").map(|r| (r.name, r.field, r.len));
        assert_eq!(r, Some(("IP", Some("src"), 13)));
        assert!(parse_ref("%{IP:}").is_none());
        assert!(parse_ref("%{IP-x}").is_none());
        assert!(parse_ref("%{").is_none());
    }
}
