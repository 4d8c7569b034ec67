//! Evaluation of compiled trees.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::builtins;
use crate::compile::{BinOp, Node, Program};
use crate::error::EvalError;
use crate::object::{Missing, Object};
use crate::value::{Map, Value};

const INLINE_LOCALS: usize = 9;

/// Local variables of one run (`let` bindings, predicate elements); on the stack when few.
pub(crate) enum Locals<'a> {
    Inline([Value<'a>; INLINE_LOCALS]),
    Heap(Vec<Value<'a>>),
}

impl<'a> Locals<'a> {
    pub(crate) fn new(n: usize) -> Self {
        if n <= INLINE_LOCALS {
            Locals::Inline(Default::default())
        } else {
            Locals::Heap(vec![Value::Nil; n])
        }
    }

    fn get(&self, i: usize) -> Value<'a> {
        match self {
            Locals::Inline(a) => a.get(i).cloned().unwrap_or_default(),
            Locals::Heap(v) => v.get(i).cloned().unwrap_or_default(),
        }
    }

    pub(crate) fn set(&mut self, i: usize, v: Value<'a>) {
        let slot = match self {
            Locals::Inline(a) => a.get_mut(i),
            Locals::Heap(h) => h.get_mut(i),
        };
        if let Some(s) = slot {
            *s = v;
        }
    }
}

pub(crate) struct Cx<'a, 'v> {
    pub(crate) vars: &'v [Value<'a>],
    pub(crate) locals: Locals<'a>,
}

pub(crate) fn run<'a>(p: &Program, vars: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let mut cx = Cx {
        vars,
        locals: Locals::new(p.locals),
    };
    eval(&p.root, &mut cx)
}

fn err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::new(msg))
}

pub(crate) fn eval<'a>(n: &Node, cx: &mut Cx<'a, '_>) -> Result<Value<'a>, EvalError> {
    match n {
        Node::Const(v) => Ok(v.clone()),
        Node::Var(i) => Ok(cx.vars.get(*i).cloned().unwrap_or_default()),
        Node::Local(i) => Ok(cx.locals.get(*i)),
        Node::Slot { obj, slot, name } => {
            let o = eval(obj, cx)?;
            match o {
                Value::Obj(o) => Ok(o.get_slot(*slot)),
                Value::Shared(o) => Ok(o.get_slot(*slot).into_owned()),
                Value::Nil => err(format!("cannot fetch {name} from <nil>")),
                other => member(other, name, false),
            }
        }
        Node::Member {
            obj,
            name,
            optional,
        } => {
            let o = eval(obj, cx)?;
            member(o, name, *optional)
        }
        Node::Index {
            obj,
            index,
            optional,
        } => {
            let o = eval(obj, cx)?;
            let i = eval(index, cx)?;
            fetch(o, &i, *optional)
        }
        Node::Slice { obj, from, to } => {
            let o = eval(obj, cx)?;
            let from = match from {
                Some(f) => Some(eval(f, cx)?),
                None => None,
            };
            let to = match to {
                Some(t) => Some(eval(t, cx)?),
                None => None,
            };
            slice(o, from, to)
        }
        Node::Not(x) => match eval(x, cx)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => err(format!("invalid operation: not {}", other.type_name())),
        },
        Node::Neg(x) => match eval(x, cx)? {
            Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
            Value::Float(f) => Ok(Value::Float(-f)),
            Value::Duration(d) => Ok(Value::Duration(-d)),
            other => err(format!("invalid operation: -{}", other.type_name())),
        },
        Node::Plus(x) => match eval(x, cx)? {
            v @ (Value::Int(_) | Value::Float(_)) => Ok(v),
            other => err(format!("invalid operation: +{}", other.type_name())),
        },
        Node::And(items) => {
            for i in items {
                match eval(i, cx)? {
                    Value::Bool(true) => {}
                    Value::Bool(false) => return Ok(Value::Bool(false)),
                    other => {
                        return err(format!("invalid operation: {} && ...", other.type_name()));
                    }
                }
            }
            Ok(Value::Bool(true))
        }
        Node::Or(items) => {
            for i in items {
                match eval(i, cx)? {
                    Value::Bool(false) => {}
                    Value::Bool(true) => return Ok(Value::Bool(true)),
                    other => {
                        return err(format!("invalid operation: {} || ...", other.type_name()));
                    }
                }
            }
            Ok(Value::Bool(false))
        }
        Node::EqConst { x, c, negate } => {
            let v = eval(x, cx)?;
            Ok(Value::Bool((v == *c) != *negate))
        }
        Node::InSet { x, set } => {
            let v = eval(x, cx)?;
            let found = match v.as_str() {
                Some(s) => set.strs.contains(s),
                None => set.others.contains(&v),
            };
            Ok(Value::Bool(found))
        }
        Node::MatchesConst { x, re } => match eval(x, cx)? {
            v if v.as_str().is_some() => Ok(Value::Bool(re.is_match(v.as_str().unwrap_or("")))),
            other => err(format!(
                "invalid operation: {} matches string",
                other.type_name()
            )),
        },
        Node::Bin { op, l, r } => {
            let a = eval(l, cx)?;
            let b = eval(r, cx)?;
            binary(*op, a, b)
        }
        Node::Cond { c, a, b } => match eval(c, cx)? {
            Value::Bool(true) => eval(a, cx),
            Value::Bool(false) => eval(b, cx),
            other => err(format!(
                "non-bool condition in ternary: {}",
                other.type_name()
            )),
        },
        Node::Coalesce(l, r) => match eval(l, cx) {
            Ok(Value::Nil) | Err(_) => eval(r, cx),
            Ok(v) => Ok(v),
        },
        Node::Call { f, args } => {
            let mut vals: [Value<'a>; 4] = Default::default();
            if args.len() <= vals.len() {
                for (slot, a) in vals.iter_mut().zip(args) {
                    *slot = eval(a, cx)?;
                }
                (f.call)(&vals[..args.len()])
            } else {
                let vals = args
                    .iter()
                    .map(|a| eval(a, cx))
                    .collect::<Result<Vec<_>, _>>()?;
                (f.call)(&vals)
            }
        }
        Node::Builtin { b, args } => builtins::call(*b, args, cx),
        Node::AnyConst { x, m } => {
            if m.needles().is_empty() {
                return Ok(Value::Bool(false));
            }
            let v = eval(x, cx)?;
            if let Some(s) = v.as_str() {
                return Ok(Value::Bool(m.any(s)));
            }
            // Not a string: the comparison itself decides (false, or a type error), entry by
            // entry as the plain predicate would.
            for n in m.needles() {
                if let Value::Bool(true) = binary(m.op(), v.clone(), n.clone())? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        Node::Pred {
            kind,
            list,
            body,
            slot,
            init,
        } => builtins::predicate(*kind, list, body, *slot, init.as_deref(), cx),
        Node::Method {
            obj,
            name,
            args,
            optional,
        } => {
            let o = eval(obj, cx)?;
            if o.is_nil() {
                if *optional {
                    return Ok(Value::Nil);
                }
                return err(format!("cannot call method {name} on <nil>"));
            }
            let vals = args
                .iter()
                .map(|a| eval(a, cx))
                .collect::<Result<Vec<_>, _>>()?;
            method(o, name, &vals)
        }
        Node::Array(items) => {
            let v = items
                .iter()
                .map(|i| eval(i, cx))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::list(v))
        }
        Node::MapLit(items) => {
            let mut m = Map::new();
            for (k, v) in items {
                let k = eval(k, cx)?;
                let v = eval(v, cx)?;
                let key = match k.as_str() {
                    Some(s) => s.to_owned(),
                    None => k.to_string(),
                };
                m.insert(key, v);
            }
            Ok(Value::map(m))
        }
        Node::Let { slot, value, body } => {
            let v = eval(value, cx)?;
            cx.locals.set(*slot, v);
            eval(body, cx)
        }
        Node::Seq(items) => {
            let mut last = Value::Nil;
            for i in items {
                last = eval(i, cx)?;
            }
            Ok(last)
        }
    }
}

fn object_member<'a>(
    o: &'a dyn Object,
    name: &str,
    optional: bool,
) -> Result<Value<'a>, EvalError> {
    match o.get(name) {
        Some(v) => Ok(v),
        None => match o.missing() {
            Missing::EmptyString => Ok(Value::Str("")),
            Missing::Nil => Ok(Value::Nil),
            Missing::Error if optional => Ok(Value::Nil),
            Missing::Error => err(format!("type {} has no field {name}", o.type_name())),
        },
    }
}

/// `.name` on any value.
pub(crate) fn member<'a>(o: Value<'a>, name: &str, optional: bool) -> Result<Value<'a>, EvalError> {
    match o {
        Value::Obj(o) => object_member(o, name, optional),
        Value::Shared(o) => Ok(object_member(&*o, name, optional)?.into_owned()),
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or_default()),
        Value::Nil if optional => Ok(Value::Nil),
        Value::Nil => err(format!("cannot fetch {name} from <nil>")),
        other => err(format!("cannot fetch {name} from {}", other.type_name())),
    }
}

fn norm_index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { len + i } else { i };
    if (0..len).contains(&i) {
        Some(i as usize)
    } else {
        None
    }
}

/// `o[i]` on any value.
pub(crate) fn fetch<'a>(
    o: Value<'a>,
    i: &Value<'_>,
    optional: bool,
) -> Result<Value<'a>, EvalError> {
    match (&o, i) {
        (Value::Nil, _) if optional => Ok(Value::Nil),
        (Value::List(l), Value::Int(k)) => match norm_index(*k, l.len()) {
            Some(k) => Ok(l[k].clone()),
            None => err(format!(
                "index out of range: {k} (array of length {})",
                l.len()
            )),
        },
        (Value::Str(_) | Value::String(_), Value::Int(k)) => {
            let s = o.as_str().unwrap_or("");
            match norm_index(*k, s.len()) {
                Some(k) => Ok(Value::string(char::from(s.as_bytes()[k]).to_string())),
                None => err(format!(
                    "index out of range: {k} (string of length {})",
                    s.len()
                )),
            }
        }
        (Value::Obj(ob), Value::Int(k)) if ob.is_list() => {
            let len = ob.len().unwrap_or(0);
            match norm_index(*k, len).and_then(|k| ob.index(k)) {
                Some(v) => Ok(v),
                None => err(format!("index out of range: {k} (array of length {len})")),
            }
        }
        (Value::Shared(ob), Value::Int(k)) if ob.is_list() => {
            let len = ob.len().unwrap_or(0);
            match norm_index(*k, len).and_then(|k| ob.index(k)) {
                Some(v) => Ok(v.into_owned()),
                None => err(format!("index out of range: {k} (array of length {len})")),
            }
        }
        (_, k) => match k.as_str() {
            Some(key) => member(o, key, optional),
            None => err(format!(
                "cannot index {} with {}",
                o.type_name(),
                k.type_name()
            )),
        },
    }
}

fn slice_bounds(
    len: usize,
    from: Option<Value<'_>>,
    to: Option<Value<'_>>,
) -> Result<(usize, usize), EvalError> {
    let conv = |v: Option<Value<'_>>, default: i64| -> Result<i64, EvalError> {
        match v {
            None => Ok(default),
            Some(Value::Int(i)) => Ok(i),
            Some(other) => err(format!(
                "slice index must be an int, got {}",
                other.type_name()
            )),
        }
    };
    let len_i = len as i64;
    let mut a = conv(from, 0)?;
    let mut b = conv(to, len_i)?;
    if a < 0 {
        a += len_i;
    }
    if b < 0 {
        b += len_i;
    }
    let a = a.clamp(0, len_i) as usize;
    let b = b.clamp(0, len_i) as usize;
    Ok((a, b.max(a)))
}

fn slice<'a>(
    o: Value<'a>,
    from: Option<Value<'_>>,
    to: Option<Value<'_>>,
) -> Result<Value<'a>, EvalError> {
    match o {
        Value::Str(s) => {
            let (a, b) = slice_bounds(s.len(), from, to)?;
            Ok(s.get(a..b).map_or_else(
                || Value::string(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned()),
                Value::Str,
            ))
        }
        Value::String(s) => {
            let (a, b) = slice_bounds(s.len(), from, to)?;
            Ok(Value::string(
                String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned(),
            ))
        }
        Value::List(l) => {
            let (a, b) = slice_bounds(l.len(), from, to)?;
            Ok(Value::list(l[a..b].to_vec()))
        }
        Value::Obj(ob) if ob.is_list() => {
            let (a, b) = slice_bounds(ob.len().unwrap_or(0), from, to)?;
            Ok(Value::list((a..b).filter_map(|i| ob.index(i)).collect()))
        }
        Value::Nil => Ok(Value::Nil),
        other => err(format!("cannot slice {}", other.type_name())),
    }
}

fn arith_err<T>(op: &str, a: &Value<'_>, b: &Value<'_>) -> Result<T, EvalError> {
    err(format!(
        "invalid operation: {} {op} {} (mismatched types)",
        a.type_name(),
        b.type_name()
    ))
}

pub(crate) fn binary<'a>(op: BinOp, a: Value<'a>, b: Value<'a>) -> Result<Value<'a>, EvalError> {
    use Value::*;
    match op {
        BinOp::Eq => Ok(Bool(a == b)),
        BinOp::Ne => Ok(Bool(a != b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let Some(ord) = a.compare(&b) else {
                let sym = match op {
                    BinOp::Lt => "<",
                    BinOp::Le => "<=",
                    BinOp::Gt => ">",
                    _ => ">=",
                };
                return arith_err(sym, &a, &b);
            };
            Ok(Bool(match op {
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        BinOp::Add => match (&a, &b) {
            (Int(x), Int(y)) => Ok(Int(x.wrapping_add(*y))),
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                Ok(Float(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)))
            }
            (Duration(x), Duration(y)) => Ok(Duration(x.wrapping_add(*y))),
            (Time(t), Duration(d)) | (Duration(d), Time(t)) => {
                Ok(Time(*t + chrono::Duration::nanoseconds(*d)))
            }
            _ => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => {
                    let mut s = std::string::String::with_capacity(x.len() + y.len());
                    s.push_str(x);
                    s.push_str(y);
                    Ok(Value::string(s))
                }
                _ => arith_err("+", &a, &b),
            },
        },
        BinOp::Sub => match (&a, &b) {
            (Int(x), Int(y)) => Ok(Int(x.wrapping_sub(*y))),
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                Ok(Float(a.as_f64().unwrap_or(0.0) - b.as_f64().unwrap_or(0.0)))
            }
            (Duration(x), Duration(y)) => Ok(Duration(x.wrapping_sub(*y))),
            (Time(t), Duration(d)) => Ok(Time(*t - chrono::Duration::nanoseconds(*d))),
            (Time(x), Time(y)) => Ok(Duration((*x - *y).num_nanoseconds().unwrap_or(i64::MAX))),
            _ => arith_err("-", &a, &b),
        },
        BinOp::Mul => match (&a, &b) {
            (Int(x), Int(y)) => Ok(Int(x.wrapping_mul(*y))),
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                Ok(Float(a.as_f64().unwrap_or(0.0) * b.as_f64().unwrap_or(0.0)))
            }
            (Duration(d), Int(i)) | (Int(i), Duration(d)) => Ok(Duration(d.wrapping_mul(*i))),
            _ => arith_err("*", &a, &b),
        },
        // expr's `/` always divides as floats.
        BinOp::Div => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Ok(Float(x / y)),
            _ => arith_err("/", &a, &b),
        },
        BinOp::Mod => match (&a, &b) {
            (Int(_), Int(0)) => err("integer divide by zero"),
            (Int(x), Int(y)) => Ok(Int(x.wrapping_rem(*y))),
            _ => arith_err("%", &a, &b),
        },
        BinOp::Pow => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Ok(Float(x.powf(y))),
            _ => arith_err("**", &a, &b),
        },
        BinOp::Range => match (&a, &b) {
            (Int(x), Int(y)) => {
                if y.saturating_sub(*x) > 10_000_000 {
                    return err("range too large");
                }
                Ok(Value::list((*x..=*y).map(Int).collect()))
            }
            _ => arith_err("..", &a, &b),
        },
        BinOp::In => contains_value(&b, &a).map(Bool),
        BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith => {
            let (Some(x), Some(y)) = (a.as_str(), b.as_str()) else {
                let sym = match op {
                    BinOp::Contains => "contains",
                    BinOp::StartsWith => "startsWith",
                    _ => "endsWith",
                };
                return arith_err(sym, &a, &b);
            };
            Ok(Bool(match op {
                BinOp::Contains => x.contains(y),
                BinOp::StartsWith => x.starts_with(y),
                _ => x.ends_with(y),
            }))
        }
        BinOp::Matches => {
            let (Some(x), Some(p)) = (a.as_str(), b.as_str()) else {
                return arith_err("matches", &a, &b);
            };
            let re = builtins::dynamic_regex(p)?;
            Ok(Bool(re.is_match(x)))
        }
    }
}

/// `needle in haystack`.
pub(crate) fn contains_value(haystack: &Value<'_>, needle: &Value<'_>) -> Result<bool, EvalError> {
    match haystack {
        Value::Nil => Ok(false),
        Value::List(l) => Ok(l.iter().any(|v| v == needle)),
        Value::Map(m) => match needle.as_str() {
            Some(k) => Ok(m.contains_key(k)),
            None => Ok(false),
        },
        Value::Obj(_) | Value::Shared(_) => {
            let o = haystack
                .as_object()
                .ok_or_else(|| EvalError::new("not an object"))?;
            if o.is_list() {
                let n = o.len().unwrap_or(0);
                Ok((0..n).filter_map(|i| o.index(i)).any(|v| v == *needle))
            } else {
                match needle.as_str() {
                    Some(k) => Ok(o.get(k).is_some()),
                    None => Ok(false),
                }
            }
        }
        other => err(format!(
            "invalid operation: {} in {}",
            needle.type_name(),
            other.type_name()
        )),
    }
}

/// Methods on values: host-object methods, and Go's `time.Time` / `time.Duration` methods.
fn method<'a>(o: Value<'a>, name: &str, args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &o {
        Value::Obj(ob) => match ob.call(name, args) {
            Some(r) => r,
            None => err(format!("type {} has no method {name}", ob.type_name())),
        },
        Value::Shared(ob) => match ob.call(name, args) {
            Some(r) => r.map(Value::into_owned),
            None => err(format!("type {} has no method {name}", ob.type_name())),
        },
        Value::Time(t) => builtins::time_method(t, name, args),
        Value::Duration(d) => builtins::duration_method(*d, name),
        Value::Str(_) | Value::String(_) if name == "String" => Ok(o.clone()),
        _ => err(format!("type {} has no method {name}", o.type_name())),
    }
}

/// Clones a list's elements into an owned vector (for sort, reverse...).
pub(crate) fn list_items<'a>(v: &Value<'a>, what: &str) -> Result<Arc<Vec<Value<'a>>>, EvalError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        _ => match v.iter_list() {
            Some(it) => Ok(Arc::new(it.collect())),
            None => err(format!("{what}: expected an array, got {}", v.type_name())),
        },
    }
}
