//! AST → executable tree: names resolved to variable and local slots, struct fields to host slots,
//! constants folded, constant lists turned into hash sets, constant regexes compiled.

use std::collections::HashSet;
use std::sync::Arc;

use regex::Regex;

use crate::builtins::{Builtin, PredKind};
use crate::error::{CompileError, EvalError};
use crate::eval;
use crate::func::{Function, Functions};
use crate::object::{FieldType, TypeDesc};
use crate::parser::{Ast, Expr, parse};
use crate::value::Value;

/// Compile-time environment: the variables an expression may read and the functions it may call.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, FieldType)>,
    funcs: Functions,
}

impl Env {
    /// An environment with the given functions and no variables.
    pub fn new(funcs: Functions) -> Self {
        Env {
            vars: Vec::new(),
            funcs,
        }
    }

    /// Declares a variable; its position is its index in the slice passed to [`Program::run`].
    pub fn var(mut self, name: &str, ty: FieldType) -> Self {
        self.vars.push((name.to_owned(), ty));
        self
    }

    /// The registered functions.
    pub fn functions(&self) -> &Functions {
        &self.funcs
    }

    /// Mutable access to the registered functions.
    pub fn functions_mut(&mut self) -> &mut Functions {
        &mut self.funcs
    }

    /// Compiles an expression.
    pub fn compile(&self, src: &str) -> Result<Program, CompileError> {
        let ast = parse(src)?;
        let mut c = Compiler {
            src,
            env: self,
            scopes: Vec::new(),
            preds: Vec::new(),
            next_local: 0,
            max_locals: 0,
        };
        let (root, _) = c.compile(&ast)?;
        Ok(Program {
            root,
            locals: c.max_locals,
            source: src.to_owned(),
        })
    }
}

/// A compiled expression, cheap to evaluate and safe to share between threads.
#[derive(Debug)]
pub struct Program {
    pub(crate) root: Node,
    pub(crate) locals: usize,
    source: String,
}

impl Program {
    /// Evaluates with the variables declared in the [`Env`], in declaration order.
    pub fn run<'a>(&self, vars: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
        eval::run(self, vars)
    }

    /// Evaluates and requires a boolean result (filters, whitelists, assertions).
    pub fn run_bool(&self, vars: &[Value<'_>]) -> Result<bool, EvalError> {
        match self.run(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::new(format!(
                "expected a bool result, got {} ({})",
                other.type_name(),
                other
            ))),
        }
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Static type, as far as the compiler knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Any,
    Nil,
    Bool,
    Int,
    Float,
    Str,
    Time,
    Duration,
    List,
    Map,
    StrMap,
    Obj(&'static TypeDesc),
}

impl Ty {
    fn from_field(f: FieldType) -> Ty {
        match f {
            FieldType::Any | FieldType::AnyMap => Ty::Any,
            FieldType::Str => Ty::Str,
            FieldType::Int => Ty::Int,
            FieldType::Float => Ty::Float,
            FieldType::Bool => Ty::Bool,
            FieldType::Time => Ty::Time,
            FieldType::StrMap => Ty::StrMap,
            FieldType::Obj(d) => Ty::Obj(d),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Any => "any",
            Ty::Nil => "nil",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Str => "string",
            Ty::Time => "time",
            Ty::Duration => "duration",
            Ty::List => "array",
            Ty::Map => "map",
            Ty::StrMap => "map[string]string",
            Ty::Obj(d) => d.name,
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    In,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Range,
}

/// A constant list used with `in`: strings hashed, anything else scanned.
#[derive(Debug)]
pub(crate) struct ConstSet {
    pub(crate) strs: HashSet<Box<str>>,
    pub(crate) others: Vec<Value<'static>>,
}

#[derive(Debug)]
pub(crate) enum Node {
    Const(Value<'static>),
    Var(usize),
    Local(usize),
    Slot {
        obj: Box<Node>,
        slot: u16,
        name: Arc<str>,
    },
    Member {
        obj: Box<Node>,
        name: Arc<str>,
        optional: bool,
    },
    Index {
        obj: Box<Node>,
        index: Box<Node>,
        optional: bool,
    },
    Slice {
        obj: Box<Node>,
        from: Option<Box<Node>>,
        to: Option<Box<Node>>,
    },
    Not(Box<Node>),
    Neg(Box<Node>),
    Plus(Box<Node>),
    /// `a && b && ...`, flattened so that long chains neither recurse nor nest.
    And(Vec<Node>),
    /// `a || b || ...`, flattened likewise.
    Or(Vec<Node>),
    Bin {
        op: BinOp,
        l: Box<Node>,
        r: Box<Node>,
    },
    /// `x == "const"` and `x != "const"`: the constant is compared in place, never cloned.
    EqConst {
        x: Box<Node>,
        c: Value<'static>,
        negate: bool,
    },
    InSet {
        x: Box<Node>,
        set: Arc<ConstSet>,
    },
    MatchesConst {
        x: Box<Node>,
        re: Arc<Regex>,
    },
    Cond {
        c: Box<Node>,
        a: Box<Node>,
        b: Box<Node>,
    },
    Coalesce(Box<Node>, Box<Node>),
    Call {
        f: Arc<Function>,
        args: Vec<Node>,
    },
    Builtin {
        b: Builtin,
        args: Vec<Node>,
    },
    /// `any(<constant strings>, {x op #})`, see `listmatch.rs`.
    AnyConst {
        x: Box<Node>,
        m: Arc<crate::listmatch::ListMatcher>,
    },
    Pred {
        kind: PredKind,
        list: Box<Node>,
        body: Box<Node>,
        slot: usize,
        init: Option<Box<Node>>,
    },
    Method {
        obj: Box<Node>,
        name: Arc<str>,
        args: Vec<Node>,
        optional: bool,
    },
    Array(Vec<Node>),
    MapLit(Vec<(Node, Node)>),
    Let {
        slot: usize,
        value: Box<Node>,
        body: Box<Node>,
    },
    Seq(Vec<Node>),
}

impl Node {
    fn as_const(&self) -> Option<&Value<'static>> {
        match self {
            Node::Const(v) => Some(v),
            _ => None,
        }
    }
}

fn binary_static(op: &str) -> &'static str {
    match op {
        "&&" | "and" => "&&",
        _ => "||",
    }
}

struct Compiler<'e, 's> {
    src: &'s str,
    env: &'e Env,
    /// `let` bindings in scope: name → local slot.
    scopes: Vec<(String, usize)>,
    /// Enclosing predicates: the local slot of their element (`#`); index and accumulator follow.
    preds: Vec<usize>,
    next_local: usize,
    max_locals: usize,
}

type Compiled = Result<(Node, Ty), CompileError>;

impl Compiler<'_, '_> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> CompileError {
        CompileError::at(self.src, pos, msg)
    }

    fn alloc_locals(&mut self, n: usize) -> usize {
        let slot = self.next_local;
        self.next_local += n;
        self.max_locals = self.max_locals.max(self.next_local);
        slot
    }

    fn compile(&mut self, e: &Expr) -> Compiled {
        let (node, ty) = self.compile_inner(e)?;
        self.fold(node, ty, e.pos)
    }

    /// Evaluates constant sub-trees once, here, instead of on every run.
    fn fold(&self, node: Node, ty: Ty, pos: usize) -> Compiled {
        let foldable = match &node {
            Node::Call { f, args } => f.pure && args.iter().all(|a| a.as_const().is_some()),
            Node::Builtin { b, args } => b.is_pure() && args.iter().all(|a| a.as_const().is_some()),
            Node::Bin { l, r, .. } => l.as_const().is_some() && r.as_const().is_some(),
            Node::Not(x) | Node::Neg(x) | Node::Plus(x) => x.as_const().is_some(),
            Node::Array(items) => items.iter().all(|a| a.as_const().is_some()),
            Node::MapLit(items) => items
                .iter()
                .all(|(k, v)| k.as_const().is_some() && v.as_const().is_some()),
            _ => false,
        };
        if !foldable {
            return Ok((node, ty));
        }
        let prog = Program {
            root: node,
            locals: 0,
            source: String::new(),
        };
        match eval::run(&prog, &[]) {
            Ok(v) => {
                let ty = match &v {
                    Value::Str(_) | Value::String(_) => Ty::Str,
                    Value::List(_) => Ty::List,
                    Value::Bool(_) => Ty::Bool,
                    Value::Int(_) => Ty::Int,
                    Value::Float(_) => Ty::Float,
                    Value::Duration(_) => Ty::Duration,
                    _ => ty,
                };
                Ok((Node::Const(v.into_owned()), ty))
            }
            // A constant expression that cannot evaluate would fail on every event: say so now.
            Err(e) => Err(self.err(pos, e.message)),
        }
    }

    fn compile_inner(&mut self, e: &Expr) -> Compiled {
        Ok(match &e.kind {
            Ast::Nil => (Node::Const(Value::Nil), Ty::Nil),
            Ast::Bool(b) => (Node::Const(Value::Bool(*b)), Ty::Bool),
            Ast::Int(i) => (Node::Const(Value::Int(*i)), Ty::Int),
            Ast::Float(f) => (Node::Const(Value::Float(*f)), Ty::Float),
            Ast::Str(s) => (Node::Const(Value::String(s.as_str().into())), Ty::Str),
            Ast::Ident(name) => self.ident(name, e.pos)?,
            Ast::Pointer(p) => {
                let Some(&slot) = self.preds.last() else {
                    return Err(self.err(
                        e.pos,
                        "'#' can only be used inside a predicate such as any(list, {# > 1})",
                    ));
                };
                match p.as_str() {
                    "" => (Node::Local(slot), Ty::Any),
                    "index" => (Node::Local(slot + 1), Ty::Int),
                    "acc" => (Node::Local(slot + 2), Ty::Any),
                    other => return Err(self.err(e.pos, format!("unknown pointer #{other}"))),
                }
            }
            Ast::Array(items) => {
                let nodes = items
                    .iter()
                    .map(|i| self.compile(i).map(|c| c.0))
                    .collect::<Result<Vec<_>, _>>()?;
                (Node::Array(nodes), Ty::List)
            }
            Ast::Map(items) => {
                let mut nodes = Vec::with_capacity(items.len());
                for (k, v) in items {
                    nodes.push((self.compile(k)?.0, self.compile(v)?.0));
                }
                (Node::MapLit(nodes), Ty::Map)
            }
            Ast::Member {
                obj,
                name,
                optional,
            } => {
                let (o, oty) = self.compile(obj)?;
                self.member(o, oty, name, *optional, e.pos)?
            }
            Ast::Index {
                obj,
                index,
                optional,
            } => {
                let (o, oty) = self.compile(obj)?;
                let (i, _) = self.compile(index)?;
                // `m["key"]` on a described struct or string map is the same as `m.key`.
                if let (Some(Value::String(k)), Ty::Obj(_) | Ty::StrMap) = (i.as_const(), oty) {
                    let k = k.clone();
                    return self.member(o, oty, &k, *optional, e.pos);
                }
                let ty = if matches!(oty, Ty::StrMap) {
                    Ty::Str
                } else {
                    Ty::Any
                };
                (
                    Node::Index {
                        obj: Box::new(o),
                        index: Box::new(i),
                        optional: *optional,
                    },
                    ty,
                )
            }
            Ast::Slice { obj, from, to } => {
                let (o, oty) = self.compile(obj)?;
                let from = match from {
                    Some(f) => Some(Box::new(self.compile(f)?.0)),
                    None => None,
                };
                let to = match to {
                    Some(f) => Some(Box::new(self.compile(f)?.0)),
                    None => None,
                };
                (
                    Node::Slice {
                        obj: Box::new(o),
                        from,
                        to,
                    },
                    if matches!(oty, Ty::Str) {
                        Ty::Str
                    } else {
                        Ty::Any
                    },
                )
            }
            Ast::Unary { op, x } => {
                let (n, ty) = self.compile(x)?;
                match *op {
                    "not" => {
                        self.expect_bool(ty, x.pos, "not")?;
                        (Node::Not(Box::new(n)), Ty::Bool)
                    }
                    "-" => (Node::Neg(Box::new(n)), ty),
                    _ => (Node::Plus(Box::new(n)), ty),
                }
            }
            Ast::Binary { op, l, r } => self.binary(op, l, r, e.pos)?,
            Ast::Cond { c, a, b } => {
                let (c, cty) = self.compile(c)?;
                self.expect_bool(cty, e.pos, "?:")?;
                let (a, aty) = self.compile(a)?;
                let (b, _) = self.compile(b)?;
                (
                    Node::Cond {
                        c: Box::new(c),
                        a: Box::new(a),
                        b: Box::new(b),
                    },
                    aty,
                )
            }
            Ast::Let { name, value, body } => {
                let (v, _) = self.compile(value)?;
                let slot = self.alloc_locals(1);
                self.scopes.push((name.clone(), slot));
                let body = self.compile(body);
                self.scopes.pop();
                self.next_local -= 1;
                let (b, ty) = body?;
                (
                    Node::Let {
                        slot,
                        value: Box::new(v),
                        body: Box::new(b),
                    },
                    ty,
                )
            }
            Ast::Seq(items) => {
                let mut nodes = Vec::with_capacity(items.len());
                let mut ty = Ty::Any;
                for i in items {
                    let (n, t) = self.compile(i)?;
                    nodes.push(n);
                    ty = t;
                }
                (Node::Seq(nodes), ty)
            }
            Ast::Closure(_) => {
                return Err(self.err(e.pos, "a closure {...} can only be passed to a predicate such as any(), all() or filter()"));
            }
            Ast::Call { name, args } => self.call(name, args, e.pos)?,
            Ast::Method {
                obj,
                name,
                args,
                optional,
            } => {
                let (o, oty) = self.compile(obj)?;
                if let Ty::Obj(desc) = oty
                    && !desc.methods.contains(&name.as_str())
                {
                    return Err(self.err(e.pos, format!("type {} has no method {name}", desc.name)));
                }
                let args = args
                    .iter()
                    .map(|a| self.compile(a).map(|c| c.0))
                    .collect::<Result<Vec<_>, _>>()?;
                (
                    Node::Method {
                        obj: Box::new(o),
                        name: name.as_str().into(),
                        args,
                        optional: *optional,
                    },
                    Ty::Any,
                )
            }
        })
    }

    fn ident(&mut self, name: &str, pos: usize) -> Compiled {
        if let Some((_, slot)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return Ok((Node::Local(*slot), Ty::Any));
        }
        if let Some(i) = self.env.vars.iter().position(|(n, _)| n == name) {
            return Ok((Node::Var(i), Ty::from_field(self.env.vars[i].1)));
        }
        if self.env.funcs.get(name).is_some() || Builtin::lookup(name).is_some() {
            return Err(self.err(pos, format!("{name} is a function: call it as {name}(...)")));
        }
        Err(self.err(pos, format!("unknown name {name}")))
    }

    fn member(&mut self, o: Node, oty: Ty, name: &str, optional: bool, pos: usize) -> Compiled {
        match oty {
            Ty::Obj(desc) => match desc.field(name) {
                Some(f) => Ok((
                    Node::Slot {
                        obj: Box::new(o),
                        slot: f.slot,
                        name: name.into(),
                    },
                    Ty::from_field(f.ty),
                )),
                None => Err(self.err(pos, format!("type {} has no field {name}", desc.name))),
            },
            Ty::StrMap => Ok((
                Node::Member {
                    obj: Box::new(o),
                    name: name.into(),
                    optional,
                },
                Ty::Str,
            )),
            Ty::Bool | Ty::Int | Ty::Float | Ty::Str | Ty::Time | Ty::Duration | Ty::List => {
                Err(self.err(pos, format!("type {} has no field {name}", oty.name())))
            }
            _ => Ok((
                Node::Member {
                    obj: Box::new(o),
                    name: name.into(),
                    optional,
                },
                Ty::Any,
            )),
        }
    }

    fn expect_bool(&self, ty: Ty, pos: usize, op: &str) -> Result<(), CompileError> {
        match ty {
            Ty::Any | Ty::Bool => Ok(()),
            other => Err(self.err(
                pos,
                format!(
                    "invalid operation: {op} needs a bool, found {}",
                    other.name()
                ),
            )),
        }
    }

    /// Compiles a chain of `&&` (or of `||`) into one n-ary node, walking the left spine in a loop.
    fn logical_chain(&mut self, and: bool, top: &Expr) -> Compiled {
        let same = |op: &str| {
            if and {
                matches!(op, "&&" | "and")
            } else {
                matches!(op, "||" | "or")
            }
        };
        let mut rights = Vec::new();
        let mut cur = top;
        while let Ast::Binary { op, l, r } = &cur.kind {
            if !same(op) {
                break;
            }
            rights.push(&**r);
            cur = l;
        }
        rights.push(cur);
        rights.reverse();
        let mut nodes = Vec::with_capacity(rights.len());
        for e in rights {
            let (n, ty) = self.compile(e)?;
            self.expect_bool(ty, e.pos, if and { "&&" } else { "||" })?;
            nodes.push(n);
        }
        Ok((
            if and {
                Node::And(nodes)
            } else {
                Node::Or(nodes)
            },
            Ty::Bool,
        ))
    }

    fn binary(&mut self, op: &str, l: &Expr, r: &Expr, pos: usize) -> Compiled {
        if matches!(op, "&&" | "and" | "||" | "or") {
            let top = Expr {
                kind: Ast::Binary {
                    op: binary_static(op),
                    l: Box::new(l.clone()),
                    r: Box::new(r.clone()),
                },
                pos,
            };
            return self.logical_chain(matches!(op, "&&" | "and"), &top);
        }
        let (ln, lty) = self.compile(l)?;
        let (rn, rty) = self.compile(r)?;
        let (ln, rn) = (Box::new(ln), Box::new(rn));
        Ok(match op {
            "??" => (Node::Coalesce(ln, rn), Ty::Any),
            "==" | "!=" => {
                let negate = op == "!=";
                match (ln.as_const(), rn.as_const()) {
                    (_, Some(c)) if ln.as_const().is_none() => (
                        Node::EqConst {
                            x: ln,
                            c: c.clone(),
                            negate,
                        },
                        Ty::Bool,
                    ),
                    (Some(c), None) => (
                        Node::EqConst {
                            x: rn,
                            c: c.clone(),
                            negate,
                        },
                        Ty::Bool,
                    ),
                    _ => (
                        Node::Bin {
                            op: if negate { BinOp::Ne } else { BinOp::Eq },
                            l: ln,
                            r: rn,
                        },
                        Ty::Bool,
                    ),
                }
            }
            "in" => {
                if let Some(Value::List(items)) = rn.as_const() {
                    let mut set = ConstSet {
                        strs: HashSet::new(),
                        others: Vec::new(),
                    };
                    for v in items.iter() {
                        match v.as_str() {
                            Some(s) => {
                                set.strs.insert(s.into());
                            }
                            None => set.others.push(v.clone()),
                        }
                    }
                    (
                        Node::InSet {
                            x: ln,
                            set: Arc::new(set),
                        },
                        Ty::Bool,
                    )
                } else {
                    (
                        Node::Bin {
                            op: BinOp::In,
                            l: ln,
                            r: rn,
                        },
                        Ty::Bool,
                    )
                }
            }
            "matches" => {
                if let Some(v) = rn.as_const() {
                    let Some(p) = v.as_str() else {
                        return Err(self.err(r.pos, "matches needs a string pattern"));
                    };
                    let re = Regex::new(p)
                        .map_err(|e| self.err(r.pos, format!("invalid regular expression: {e}")))?;
                    (
                        Node::MatchesConst {
                            x: ln,
                            re: Arc::new(re),
                        },
                        Ty::Bool,
                    )
                } else {
                    (
                        Node::Bin {
                            op: BinOp::Matches,
                            l: ln,
                            r: rn,
                        },
                        Ty::Bool,
                    )
                }
            }
            _ => {
                let bop = match op {
                    "<" => BinOp::Lt,
                    "<=" => BinOp::Le,
                    ">" => BinOp::Gt,
                    ">=" => BinOp::Ge,
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    "/" => BinOp::Div,
                    "%" => BinOp::Mod,
                    "**" | "^" => BinOp::Pow,
                    "contains" => BinOp::Contains,
                    "startsWith" => BinOp::StartsWith,
                    "endsWith" => BinOp::EndsWith,
                    ".." => BinOp::Range,
                    other => return Err(self.err(pos, format!("unknown operator {other}"))),
                };
                let ty = match bop {
                    BinOp::Add => match (lty, rty) {
                        (Ty::Str, Ty::Str) => Ty::Str,
                        (Ty::Int, Ty::Int) => Ty::Int,
                        (a, b) if a.is_numeric() && b.is_numeric() => Ty::Float,
                        (Ty::Str, b) if b.is_numeric() => {
                            return Err(
                                self.err(pos, format!("invalid operation: string + {}", b.name()))
                            );
                        }
                        (a, Ty::Str) if a.is_numeric() => {
                            return Err(
                                self.err(pos, format!("invalid operation: {} + string", a.name()))
                            );
                        }
                        _ => Ty::Any,
                    },
                    BinOp::Sub | BinOp::Mul | BinOp::Mod => match (lty, rty) {
                        (Ty::Int, Ty::Int) => Ty::Int,
                        (a, b) if a.is_numeric() && b.is_numeric() => Ty::Float,
                        _ => Ty::Any,
                    },
                    BinOp::Div | BinOp::Pow => Ty::Float,
                    BinOp::Range => Ty::List,
                    _ => Ty::Bool,
                };
                (
                    Node::Bin {
                        op: bop,
                        l: ln,
                        r: rn,
                    },
                    ty,
                )
            }
        })
    }

    fn call(&mut self, name: &str, args: &[Expr], pos: usize) -> Compiled {
        if let Some(f) = self.env.funcs.get(name) {
            let f = f.clone();
            if !f.arity.accepts(args.len()) {
                return Err(self.err(
                    pos,
                    format!("{name} takes {} arguments, got {}", f.arity, args.len()),
                ));
            }
            let nodes = args
                .iter()
                .map(|a| self.compile(a).map(|c| c.0))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok((Node::Call { f, args: nodes }, Ty::Any));
        }
        if let Some(kind) = PredKind::lookup(name) {
            return self.predicate(kind, name, args, pos);
        }
        let Some(b) = Builtin::lookup(name) else {
            return Err(self.err(pos, format!("unknown function {name}")));
        };
        let (min, max) = b.arity();
        if args.len() < min || args.len() > max {
            let want = if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.err(
                pos,
                format!("{name} takes {want} arguments, got {}", args.len()),
            ));
        }
        let nodes = args
            .iter()
            .map(|a| self.compile(a).map(|c| c.0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Node::Builtin { b, args: nodes }, b.ty()))
    }

    fn predicate(&mut self, kind: PredKind, name: &str, args: &[Expr], pos: usize) -> Compiled {
        let (min, max) = kind.arity();
        if args.len() < min || args.len() > max {
            return Err(self.err(
                pos,
                format!("{name} takes {min} to {max} arguments, got {}", args.len()),
            ));
        }
        let (list, _) = self.compile(&args[0])?;
        let init = match args.get(2) {
            Some(a) => Some(Box::new(self.compile(a)?.0)),
            None => None,
        };
        let slot = self.alloc_locals(3);
        self.preds.push(slot);
        let body = match args.get(1) {
            Some(Expr {
                kind: Ast::Closure(body),
                ..
            }) => self.compile(body),
            // expr 1.17 also accepts a bare expression as the predicate body.
            Some(other) => self.compile(other),
            None => Ok((Node::Local(slot), Ty::Any)),
        };
        self.preds.pop();
        self.next_local -= 3;
        let (body, _) = body?;
        let body = if kind == PredKind::Any && init.is_none() {
            match crate::listmatch::any_const(&list, body, slot) {
                Ok((x, m)) => return Ok((Node::AnyConst { x: Box::new(x), m }, Ty::Bool)),
                Err(body) => body,
            }
        } else {
            body
        };
        Ok((
            Node::Pred {
                kind,
                list: Box::new(list),
                body: Box::new(body),
                slot,
                init,
            },
            kind.ty(),
        ))
    }
}
