//! Pratt parser producing the AST, with expr-lang's precedences and quirks (negated operators such
//! as `not in`, pipes, `let`, predicates with `#` and `.field` shorthand, chained comparisons).

use crate::error::CompileError;
use crate::lexer::{Tok, Token, lex};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub(crate) kind: Ast,
    pub(crate) pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Pointer(String),
    Array(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Member {
        obj: Box<Expr>,
        name: String,
        optional: bool,
    },
    Index {
        obj: Box<Expr>,
        index: Box<Expr>,
        optional: bool,
    },
    Slice {
        obj: Box<Expr>,
        from: Option<Box<Expr>>,
        to: Option<Box<Expr>>,
    },
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Method {
        obj: Box<Expr>,
        name: String,
        args: Vec<Expr>,
        optional: bool,
    },
    Closure(Box<Expr>),
    Unary {
        op: &'static str,
        x: Box<Expr>,
    },
    Binary {
        op: &'static str,
        l: Box<Expr>,
        r: Box<Expr>,
    },
    Cond {
        c: Box<Expr>,
        a: Box<Expr>,
        b: Box<Expr>,
    },
    Let {
        name: String,
        value: Box<Expr>,
        body: Box<Expr>,
    },
    Seq(Vec<Expr>),
}

fn binary_prec(op: &str) -> Option<(u8, bool)> {
    // (precedence, right associative)
    Some(match op {
        "|" => (0, false),
        "or" | "||" => (10, false),
        "and" | "&&" => (15, false),
        "==" | "!=" | "<" | ">" | ">=" | "<=" | "in" | "matches" | "contains" | "startsWith"
        | "endsWith" => (20, false),
        ".." => (25, false),
        "+" | "-" => (30, false),
        "*" | "/" | "%" => (60, false),
        "**" | "^" => (100, true),
        "??" => (250, false),
        _ => return None,
    })
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | "<" | ">" | ">=" | "<=")
}

fn negatable(op: &str) -> bool {
    matches!(
        op,
        "in" | "matches" | "contains" | "startsWith" | "endsWith"
    )
}

pub(crate) struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

/// Deep nesting is refused instead of overflowing the stack.
const MAX_DEPTH: usize = 100;
/// Longest left-nested chain of operators or postfix accesses. Chains of `&&` / `||` do not
/// count: the compiler flattens them into one node, and hub whitelists have long ones.
const MAX_CHAIN: usize = 100;

pub(crate) fn parse(src: &str) -> Result<Expr, CompileError> {
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(p.err_here("empty expression"));
    }
    let e = p.sequence()?;
    if p.peek() != &Tok::Eof {
        return Err(p.err_here(&format!("unexpected {}", describe(p.peek()))));
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Ident(s) => format!("identifier {s}"),
        Tok::Pointer(s) => format!("#{s}"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::Eof => "end of expression".to_owned(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }

    fn pos(&self) -> usize {
        self.toks[self.i].pos
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), CompileError> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(self.err_here(&format!(
                "expected '{op}' but found {}",
                describe(self.peek())
            )))
        }
    }

    fn err_here(&self, msg: &str) -> CompileError {
        CompileError::at(self.src, self.pos(), msg)
    }

    fn enter(&mut self) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here("expression nested too deeply"));
        }
        Ok(())
    }

    /// `a; b; c` (and `let` bindings), as allowed at the top level and inside parentheses.
    fn sequence(&mut self) -> Result<Expr, CompileError> {
        let pos = self.pos();
        let mut items = vec![self.expression(0)?];
        while self.eat(";") {
            if matches!(self.peek(), Tok::Eof) || self.is_op(")") {
                break;
            }
            items.push(self.expression(0)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr {
                kind: Ast::Seq(items),
                pos,
            }
        })
    }

    fn expression(&mut self, prec: u8) -> Result<Expr, CompileError> {
        self.enter()?;
        let r = self.expression_inner(prec);
        self.depth -= 1;
        r
    }

    fn expression_inner(&mut self, prec: u8) -> Result<Expr, CompileError> {
        if prec == 0 && self.is_op("let") {
            return self.let_binding();
        }
        let mut left = self.unary()?;
        let mut prev_op = "";
        let mut chain = 0;
        // Left-nested chains (`a + b + c ...`) deepen the tree without recursing here, but
        // compiling and evaluating them recurses: bound them like nesting.
        while let Tok::Op(op) = *self.peek() {
            if !matches!(op, "&&" | "||" | "and" | "or") {
                chain += 1;
            }
            if self.depth + chain > MAX_CHAIN {
                return Err(self.err_here("expression nested too deeply"));
            }
            let op_pos = self.pos();
            let mut negate = false;
            let mut op = op;
            if op == "not" {
                match self.peek_at(1) {
                    Tok::Op(next) if negatable(next) => {
                        let Some((p, _)) = binary_prec(next) else {
                            break;
                        };
                        if p < prec {
                            break;
                        }
                        negate = true;
                        op = next;
                        self.bump();
                    }
                    _ => break,
                }
            }
            let Some((p, right_assoc)) = binary_prec(op) else {
                break;
            };
            if p < prec {
                break;
            }
            self.bump();
            if op == "|" {
                let name_pos = self.pos();
                let Tok::Ident(name) = self.peek().clone() else {
                    return Err(self.err_here("expected a function name after '|'"));
                };
                self.bump();
                let mut args = vec![left];
                if self.eat("(") {
                    args.extend(self.call_args()?);
                }
                left = Expr {
                    kind: Ast::Call { name, args },
                    pos: name_pos,
                };
                prev_op = op;
                continue;
            }
            if prev_op == "??" && op != "??" {
                return Err(CompileError::at(
                    self.src,
                    op_pos,
                    format!(
                        "operator ({op}) and coalesce expressions (??) cannot be mixed; wrap either in parentheses"
                    ),
                ));
            }
            let right = if right_assoc {
                self.expression(p)?
            } else {
                self.expression(p + 1)?
            };
            left = if is_comparison(op) {
                chain_comparison(left, op, right, op_pos)
            } else {
                Expr {
                    kind: Ast::Binary {
                        op,
                        l: Box::new(left),
                        r: Box::new(right),
                    },
                    pos: op_pos,
                }
            };
            if negate {
                left = Expr {
                    kind: Ast::Unary {
                        op: "not",
                        x: Box::new(left),
                    },
                    pos: op_pos,
                };
            }
            prev_op = op;
        }
        if prec == 0 && self.is_op("?") {
            let pos = self.pos();
            self.bump();
            // The elvis form `a ?: b` means `a ?? b` with truthiness; expr treats it as nil-check.
            if self.eat(":") {
                let b = self.expression(0)?;
                return Ok(Expr {
                    kind: Ast::Binary {
                        op: "??",
                        l: Box::new(left),
                        r: Box::new(b),
                    },
                    pos,
                });
            }
            let a = self.expression(0)?;
            self.expect(":")?;
            let b = self.expression(0)?;
            left = Expr {
                kind: Ast::Cond {
                    c: Box::new(left),
                    a: Box::new(a),
                    b: Box::new(b),
                },
                pos,
            };
        }
        Ok(left)
    }

    fn let_binding(&mut self) -> Result<Expr, CompileError> {
        let pos = self.pos();
        self.bump();
        let Tok::Ident(name) = self.peek().clone() else {
            return Err(self.err_here("expected a variable name after 'let'"));
        };
        self.bump();
        self.expect("=")?;
        let value = self.expression(0)?;
        self.expect(";")?;
        let body = self.sequence()?;
        Ok(Expr {
            kind: Ast::Let {
                name,
                value: Box::new(value),
                body: Box::new(body),
            },
            pos,
        })
    }

    fn unary(&mut self) -> Result<Expr, CompileError> {
        let pos = self.pos();
        let op = match self.peek() {
            Tok::Op("not") | Tok::Op("!") => Some(("not", 50)),
            Tok::Op("-") => Some(("-", 90)),
            Tok::Op("+") => Some(("+", 90)),
            _ => None,
        };
        if let Some((op, p)) = op {
            self.bump();
            let x = self.expression(p)?;
            let e = Expr {
                kind: Ast::Unary { op, x: Box::new(x) },
                pos,
            };
            return self.postfix(e);
        }
        let e = self.primary()?;
        self.postfix(e)
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let pos = self.pos();
        let t = self.bump();
        let kind = match t.tok {
            Tok::Int(i) => Ast::Int(i),
            Tok::Float(f) => Ast::Float(f),
            Tok::Str(s) => Ast::Str(s),
            Tok::Pointer(p) => Ast::Pointer(p),
            Tok::Ident(name) => match name.as_str() {
                "if" if !self.is_op("(") || self.paren_is_condition() => return self.if_else(pos),
                "true" => Ast::Bool(true),
                "false" => Ast::Bool(false),
                "nil" => Ast::Nil,
                _ => {
                    if self.eat("(") {
                        let args = self.call_args()?;
                        Ast::Call { name, args }
                    } else {
                        Ast::Ident(name)
                    }
                }
            },
            Tok::Op("(") => {
                let e = self.sequence()?;
                self.expect(")")?;
                return Ok(e);
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.expression(0)?);
                    if !self.eat(",") {
                        break;
                    }
                }
                self.expect("]")?;
                Ast::Array(items)
            }
            Tok::Op("{") => {
                let mut items = Vec::new();
                while !self.is_op("}") {
                    let kpos = self.pos();
                    let key = match self.bump().tok {
                        Tok::Ident(s) | Tok::Str(s) => Expr {
                            kind: Ast::Str(s),
                            pos: kpos,
                        },
                        Tok::Int(i) => Expr {
                            kind: Ast::Str(i.to_string()),
                            pos: kpos,
                        },
                        Tok::Op("(") => {
                            let k = self.expression(0)?;
                            self.expect(")")?;
                            k
                        }
                        other => {
                            return Err(CompileError::at(
                                self.src,
                                kpos,
                                format!(
                                    "a map key must be an identifier, a string, a number or a parenthesised expression, found {}",
                                    describe(&other)
                                ),
                            ));
                        }
                    };
                    self.expect(":")?;
                    let v = self.expression(0)?;
                    items.push((key, v));
                    if !self.eat(",") {
                        break;
                    }
                }
                self.expect("}")?;
                Ast::Map(items)
            }
            // `.field` shorthand for `#.field` inside predicates.
            Tok::Op(".") => {
                let Tok::Ident(name) = self.peek().clone() else {
                    return Err(self.err_here("expected a field name after '.'"));
                };
                self.bump();
                let obj = Expr {
                    kind: Ast::Pointer(String::new()),
                    pos,
                };
                let npos = self.pos();
                if self.eat("(") {
                    let args = self.call_args()?;
                    Ast::Method {
                        obj: Box::new(obj),
                        name,
                        args,
                        optional: false,
                    }
                } else {
                    let _ = npos;
                    Ast::Member {
                        obj: Box::new(obj),
                        name,
                        optional: false,
                    }
                }
            }
            other => {
                return Err(CompileError::at(
                    self.src,
                    pos,
                    format!("unexpected {}", describe(&other)),
                ));
            }
        };
        Ok(Expr { kind, pos })
    }

    /// `if c { a } else { b }` (the `if` is consumed), with `else if` chains.
    fn if_else(&mut self, pos: usize) -> Result<Expr, CompileError> {
        let c = self.expression(0)?;
        self.expect("{")?;
        let a = self.sequence()?;
        self.expect("}")?;
        if !matches!(self.peek(), Tok::Ident(w) if w == "else") {
            return Err(self.err_here("expected 'else' after the if block"));
        }
        self.bump();
        let b = if matches!(self.peek(), Tok::Ident(w) if w == "if") {
            let p = self.pos();
            self.bump();
            self.if_else(p)?
        } else {
            self.expect("{")?;
            let b = self.sequence()?;
            self.expect("}")?;
            b
        };
        Ok(Expr {
            kind: Ast::Cond {
                c: Box::new(c),
                a: Box::new(a),
                b: Box::new(b),
            },
            pos,
        })
    }

    /// `if(...)` could be a call of a function named `if`; it is a condition when a `{` follows the
    /// matching parenthesis.
    fn paren_is_condition(&self) -> bool {
        let mut depth = 0usize;
        let mut i = self.i;
        while i < self.toks.len() {
            match &self.toks[i].tok {
                Tok::Op("(") => depth += 1,
                Tok::Op(")") => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return self.toks.get(i + 1).is_some_and(|t| t.tok != Tok::Op("("));
                    }
                }
                Tok::Eof => return false,
                _ => {}
            }
            i += 1;
        }
        false
    }

    /// Arguments after `(`; a `{...}` argument is a closure (predicate).
    fn call_args(&mut self) -> Result<Vec<Expr>, CompileError> {
        let mut args = Vec::new();
        while !self.is_op(")") {
            if self.is_op("{") && self.looks_like_closure() {
                let pos = self.pos();
                self.bump();
                let body = self.sequence()?;
                self.expect("}")?;
                args.push(Expr {
                    kind: Ast::Closure(Box::new(body)),
                    pos,
                });
            } else {
                args.push(self.expression(0)?);
            }
            if !self.eat(",") {
                break;
            }
        }
        self.expect(")")?;
        Ok(args)
    }

    /// `{a: 1}` is a map literal and `{# > 1}` a closure: a map starts with `key :`.
    fn looks_like_closure(&self) -> bool {
        !(matches!(self.peek_at(1), Tok::Ident(_) | Tok::Str(_) | Tok::Int(_))
            && self.peek_at(2) == &Tok::Op(":")
            || self.peek_at(1) == &Tok::Op("}"))
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, CompileError> {
        let mut chain = 0;
        loop {
            chain += 1;
            if self.depth + chain > MAX_CHAIN {
                return Err(self.err_here("expression nested too deeply"));
            }
            let pos = self.pos();
            if self.is_op(".") || self.is_op("?.") {
                let optional = self.is_op("?.");
                self.bump();
                if optional && self.is_op("[") {
                    self.bump();
                    let index = self.expression(0)?;
                    self.expect("]")?;
                    e = Expr {
                        kind: Ast::Index {
                            obj: Box::new(e),
                            index: Box::new(index),
                            optional,
                        },
                        pos,
                    };
                    continue;
                }
                let name = match self.peek().clone() {
                    Tok::Ident(n) => n,
                    // Word operators are valid field names after a dot (`evt.Meta.in`).
                    Tok::Op(o) if o.chars().all(|c| c.is_ascii_alphabetic()) => o.to_owned(),
                    other => {
                        return Err(self.err_here(&format!(
                            "expected a field name after '.', found {}",
                            describe(&other)
                        )));
                    }
                };
                self.bump();
                if self.eat("(") {
                    let args = self.call_args()?;
                    e = Expr {
                        kind: Ast::Method {
                            obj: Box::new(e),
                            name,
                            args,
                            optional,
                        },
                        pos,
                    };
                } else {
                    e = Expr {
                        kind: Ast::Member {
                            obj: Box::new(e),
                            name,
                            optional,
                        },
                        pos,
                    };
                }
            } else if self.is_op("[") {
                self.bump();
                if self.eat(":") {
                    let to = if self.is_op("]") {
                        None
                    } else {
                        Some(Box::new(self.expression(0)?))
                    };
                    self.expect("]")?;
                    e = Expr {
                        kind: Ast::Slice {
                            obj: Box::new(e),
                            from: None,
                            to,
                        },
                        pos,
                    };
                    continue;
                }
                let index = self.expression(0)?;
                if self.eat(":") {
                    let to = if self.is_op("]") {
                        None
                    } else {
                        Some(Box::new(self.expression(0)?))
                    };
                    self.expect("]")?;
                    e = Expr {
                        kind: Ast::Slice {
                            obj: Box::new(e),
                            from: Some(Box::new(index)),
                            to,
                        },
                        pos,
                    };
                    continue;
                }
                self.expect("]")?;
                e = Expr {
                    kind: Ast::Index {
                        obj: Box::new(e),
                        index: Box::new(index),
                        optional: false,
                    },
                    pos,
                };
            } else {
                return Ok(e);
            }
        }
    }
}

/// `a < b < c` means `a < b && b < c`, as in expr 1.17.
fn chain_comparison(left: Expr, op: &'static str, right: Expr, pos: usize) -> Expr {
    if let Ast::Binary { op: lop, r: lr, .. } = &left.kind
        && is_comparison(lop)
        && matches!(op, "<" | ">" | "<=" | ">=")
        && matches!(*lop, "<" | ">" | "<=" | ">=")
    {
        let mid = (**lr).clone();
        let next = Expr {
            kind: Ast::Binary {
                op,
                l: Box::new(mid),
                r: Box::new(right),
            },
            pos,
        };
        return Expr {
            kind: Ast::Binary {
                op: "&&",
                l: Box::new(left),
                r: Box::new(next),
            },
            pos,
        };
    }
    Expr {
        kind: Ast::Binary {
            op,
            l: Box::new(left),
            r: Box::new(right),
        },
        pos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sexpr(e: &Expr) -> String {
        match &e.kind {
            Ast::Nil => "nil".into(),
            Ast::Bool(b) => b.to_string(),
            Ast::Int(i) => i.to_string(),
            Ast::Float(f) => f.to_string(),
            Ast::Str(s) => format!("{s:?}"),
            Ast::Ident(s) => s.clone(),
            Ast::Pointer(p) => format!("#{p}"),
            Ast::Array(a) => format!("[{}]", a.iter().map(sexpr).collect::<Vec<_>>().join(" ")),
            Ast::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{}:{}", sexpr(k), sexpr(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Ast::Member {
                obj,
                name,
                optional,
            } => {
                format!("{}{}{name}", sexpr(obj), if *optional { "?." } else { "." })
            }
            Ast::Index { obj, index, .. } => format!("{}[{}]", sexpr(obj), sexpr(index)),
            Ast::Slice { obj, from, to } => format!(
                "{}[{}:{}]",
                sexpr(obj),
                from.as_ref().map(|e| sexpr(e)).unwrap_or_default(),
                to.as_ref().map(|e| sexpr(e)).unwrap_or_default()
            ),
            Ast::Call { name, args } => {
                format!(
                    "{name}({})",
                    args.iter().map(sexpr).collect::<Vec<_>>().join(" ")
                )
            }
            Ast::Method {
                obj, name, args, ..
            } => format!(
                "{}.{name}({})",
                sexpr(obj),
                args.iter().map(sexpr).collect::<Vec<_>>().join(" ")
            ),
            Ast::Closure(b) => format!("{{{}}}", sexpr(b)),
            Ast::Unary { op, x } => format!("({op} {})", sexpr(x)),
            Ast::Binary { op, l, r } => format!("({op} {} {})", sexpr(l), sexpr(r)),
            Ast::Cond { c, a, b } => format!("(? {} {} {})", sexpr(c), sexpr(a), sexpr(b)),
            Ast::Let { name, value, body } => {
                format!("(let {name} {} {})", sexpr(value), sexpr(body))
            }
            Ast::Seq(items) => format!(
                "(seq {})",
                items.iter().map(sexpr).collect::<Vec<_>>().join(" ")
            ),
        }
    }

    fn p(s: &str) -> String {
        sexpr(&parse(s).unwrap())
    }

    #[test]
    fn precedence_follows_expr_lang() {
        assert_eq!(p("a || b && c"), "(|| a (&& b c))");
        assert_eq!(p("1 + 2 * 3 ** 2 ** 2"), "(+ 1 (* 2 (** 3 (** 2 2))))");
        assert_eq!(p("not a == b"), "(== (not a) b)");
        assert_eq!(p("a not in [1, 2]"), "(not (in a [1 2]))");
        assert_eq!(p("x ? 1 : y ? 2 : 3"), "(? x 1 (? y 2 3))");
        assert_eq!(p("a ?? b ?? c"), "(?? (?? a b) c)");
        assert_eq!(p("-x.y"), "(- x.y)");
        assert_eq!(p("1 < x < 3"), "(&& (< 1 x) (< x 3))");
        assert_eq!(p("1..3"), "(.. 1 3)");
        assert_eq!(p("a + b == c and d"), "(and (== (+ a b) c) d)");
    }

    #[test]
    fn postfix_forms() {
        assert_eq!(p("evt.Meta?.x[0][1:][:-1]"), "evt.Meta?.x[0][1:][:(- 1)]");
        assert_eq!(p("evt.GetMeta('a')"), "evt.GetMeta(\"a\")");
        assert_eq!(p("any(l, {.Name == 'x'})"), "any(l {(== #.Name \"x\")})");
        assert_eq!(p("{a: 1, 'b': 2}.a"), "{\"a\":1 \"b\":2}.a");
        assert_eq!(p("x | lower() | split(',')"), "split(lower(x) \",\")");
        assert_eq!(
            p("let a = 1; let b = 2; a + b"),
            "(let a 1 (let b 2 (+ a b)))"
        );
        assert_eq!(
            p("(let u = lower(x); u contains 'a')"),
            "(let u lower(x) (contains u \"a\"))"
        );
        assert_eq!(p("map(l, #index)"), "map(l #index)");
    }

    #[test]
    fn errors_are_located() {
        let e = parse("a == (b").unwrap_err();
        assert!(e.message.contains("expected ')'"), "{e}");
        assert_eq!(e.column, 8);
        let e = parse("a ?? b || c").unwrap_err();
        assert!(e.message.contains("cannot be mixed"), "{e}");
        assert!(parse("").is_err());
        assert!(parse(&"(".repeat(1000)).is_err());
        assert!(parse("1+".repeat(5000).trim_end_matches('+')).is_err());
        assert!(parse(&format!("a{}", ".b".repeat(5000))).is_err());
        assert!(parse(&"-".repeat(5000)).is_err());
    }
}
