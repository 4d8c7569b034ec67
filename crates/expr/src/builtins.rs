//! The language built-ins of expr-lang (`len`, `any`, `filter`, `upper`, `duration`, ...), as opposed
//! to the helpers a caller registers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{Datelike, FixedOffset, Timelike};
use regex::Regex;

use crate::compile::Node;
use crate::error::EvalError;
use crate::eval::{Cx, eval, fetch, list_items};
use crate::time;
use crate::value::{Map, Value, from_json, to_json};

fn err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::new(msg))
}

macro_rules! builtins {
    ($($variant:ident = $name:literal ($min:expr, $max:expr) $pure:literal),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Builtin { $($variant),* }

        impl Builtin {
            pub(crate) fn lookup(name: &str) -> Option<Builtin> {
                match name { $($name => Some(Builtin::$variant),)* _ => None }
            }
            pub(crate) fn name(self) -> &'static str {
                match self { $(Builtin::$variant => $name),* }
            }
            pub(crate) fn arity(self) -> (usize, usize) {
                match self { $(Builtin::$variant => ($min, $max)),* }
            }
            /// Whether a call with constant arguments may be folded at compile time.
            pub(crate) fn is_pure(self) -> bool {
                match self { $(Builtin::$variant => $pure),* }
            }
        }
    };
}

const MANY: usize = usize::MAX;

builtins! {
    Len = "len" (1, 1) true,
    Type = "type" (1, 1) true,
    Abs = "abs" (1, 1) true,
    Ceil = "ceil" (1, 1) true,
    Floor = "floor" (1, 1) true,
    Round = "round" (1, 1) true,
    Int = "int" (1, 1) true,
    Float = "float" (1, 1) true,
    String = "string" (1, 1) true,
    Trim = "trim" (1, 2) true,
    TrimPrefix = "trimPrefix" (1, 2) true,
    TrimSuffix = "trimSuffix" (1, 2) true,
    Upper = "upper" (1, 1) true,
    Lower = "lower" (1, 1) true,
    Split = "split" (2, 3) true,
    SplitAfter = "splitAfter" (2, 3) true,
    Replace = "replace" (3, 3) true,
    Repeat = "repeat" (2, 2) true,
    Join = "join" (1, 2) true,
    IndexOf = "indexOf" (2, 2) true,
    LastIndexOf = "lastIndexOf" (2, 2) true,
    HasPrefix = "hasPrefix" (2, 2) true,
    HasSuffix = "hasSuffix" (2, 2) true,
    Max = "max" (1, MANY) true,
    Min = "min" (1, MANY) true,
    Mean = "mean" (1, MANY) true,
    Median = "median" (1, MANY) true,
    ToJson = "toJSON" (1, 1) true,
    FromJson = "fromJSON" (1, 1) true,
    ToBase64 = "toBase64" (1, 1) true,
    FromBase64 = "fromBase64" (1, 1) true,
    Now = "now" (0, 0) false,
    Duration = "duration" (1, 1) true,
    Date = "date" (1, 3) true,
    First = "first" (1, 1) true,
    Last = "last" (1, 1) true,
    Get = "get" (2, 2) true,
    Take = "take" (2, 2) true,
    Keys = "keys" (1, 1) true,
    Values = "values" (1, 1) true,
    ToPairs = "toPairs" (1, 1) true,
    FromPairs = "fromPairs" (1, 1) true,
    Reverse = "reverse" (1, 1) true,
    Uniq = "uniq" (1, 1) true,
    Concat = "concat" (1, MANY) true,
    Flatten = "flatten" (1, 1) true,
    Sort = "sort" (1, 2) true,
    BitAnd = "bitand" (2, 2) true,
    BitOr = "bitor" (2, 2) true,
    BitXor = "bitxor" (2, 2) true,
    BitNand = "bitnand" (2, 2) true,
    BitNot = "bitnot" (1, 1) true,
    BitShl = "bitshl" (2, 2) true,
    BitShr = "bitshr" (2, 2) true,
    BitUshr = "bitushr" (2, 2) true,
}

impl Builtin {
    pub(crate) fn ty(self) -> crate::compile::Ty {
        use crate::compile::Ty;
        match self {
            Builtin::Len | Builtin::Int | Builtin::IndexOf | Builtin::LastIndexOf => Ty::Int,
            Builtin::Float | Builtin::Mean | Builtin::Median => Ty::Float,
            Builtin::HasPrefix | Builtin::HasSuffix => Ty::Bool,
            Builtin::Type
            | Builtin::String
            | Builtin::Trim
            | Builtin::TrimPrefix
            | Builtin::TrimSuffix
            | Builtin::Upper
            | Builtin::Lower
            | Builtin::Replace
            | Builtin::Repeat
            | Builtin::Join
            | Builtin::ToJson
            | Builtin::ToBase64
            | Builtin::FromBase64 => Ty::Str,
            Builtin::Duration => Ty::Duration,
            Builtin::Now | Builtin::Date => Ty::Time,
            Builtin::Split
            | Builtin::SplitAfter
            | Builtin::Keys
            | Builtin::Values
            | Builtin::ToPairs
            | Builtin::Take
            | Builtin::Reverse
            | Builtin::Uniq
            | Builtin::Concat
            | Builtin::Flatten
            | Builtin::Sort => Ty::List,
            _ => Ty::Any,
        }
    }
}

/// Predicates: built-ins whose second argument is a closure evaluated per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PredKind {
    All,
    None,
    Any,
    One,
    Filter,
    Map,
    Count,
    Find,
    FindIndex,
    FindLast,
    FindLastIndex,
    Sum,
    GroupBy,
    SortBy,
    Reduce,
}

impl PredKind {
    pub(crate) fn lookup(name: &str) -> Option<PredKind> {
        Some(match name {
            "all" => PredKind::All,
            "none" => PredKind::None,
            "any" => PredKind::Any,
            "one" => PredKind::One,
            "filter" => PredKind::Filter,
            "map" => PredKind::Map,
            "count" => PredKind::Count,
            "find" => PredKind::Find,
            "findIndex" => PredKind::FindIndex,
            "findLast" => PredKind::FindLast,
            "findLastIndex" => PredKind::FindLastIndex,
            "sum" => PredKind::Sum,
            "groupBy" => PredKind::GroupBy,
            "sortBy" => PredKind::SortBy,
            "reduce" => PredKind::Reduce,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            PredKind::All => "all",
            PredKind::None => "none",
            PredKind::Any => "any",
            PredKind::One => "one",
            PredKind::Filter => "filter",
            PredKind::Map => "map",
            PredKind::Count => "count",
            PredKind::Find => "find",
            PredKind::FindIndex => "findIndex",
            PredKind::FindLast => "findLast",
            PredKind::FindLastIndex => "findLastIndex",
            PredKind::Sum => "sum",
            PredKind::GroupBy => "groupBy",
            PredKind::SortBy => "sortBy",
            PredKind::Reduce => "reduce",
        }
    }

    pub(crate) fn arity(self) -> (usize, usize) {
        match self {
            PredKind::Count | PredKind::Sum => (1, 2),
            PredKind::SortBy | PredKind::Reduce => (2, 3),
            _ => (2, 2),
        }
    }

    pub(crate) fn ty(self) -> crate::compile::Ty {
        use crate::compile::Ty;
        match self {
            PredKind::All | PredKind::None | PredKind::Any | PredKind::One => Ty::Bool,
            PredKind::Count | PredKind::FindIndex | PredKind::FindLastIndex => Ty::Int,
            PredKind::Filter | PredKind::Map | PredKind::SortBy => Ty::List,
            _ => Ty::Any,
        }
    }
}

fn truthy(v: Value<'_>, what: &str) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => err(format!(
            "{what}: predicate must return a bool, got {}",
            other.type_name()
        )),
    }
}

pub(crate) fn predicate<'a>(
    kind: PredKind,
    list: &Node,
    body: &Node,
    slot: usize,
    init: Option<&Node>,
    cx: &mut Cx<'a, '_>,
) -> Result<Value<'a>, EvalError> {
    let lv = eval(list, cx)?;
    let what = kind.name();
    let Some(items) = lv.iter_list() else {
        return err(format!("{what}: expected an array, got {}", lv.type_name()));
    };
    let run = |cx: &mut Cx<'a, '_>, i: usize, v: Value<'a>| -> Result<Value<'a>, EvalError> {
        cx.locals.set(slot, v);
        cx.locals.set(slot + 1, Value::Int(i as i64));
        eval(body, cx)
    };
    match kind {
        PredKind::All | PredKind::None | PredKind::Any | PredKind::One => {
            let mut matched = 0usize;
            for (i, v) in items.enumerate() {
                let b = truthy(run(cx, i, v)?, what)?;
                match kind {
                    PredKind::All if !b => return Ok(Value::Bool(false)),
                    PredKind::None if b => return Ok(Value::Bool(false)),
                    PredKind::Any if b => return Ok(Value::Bool(true)),
                    PredKind::One if b => {
                        matched += 1;
                        if matched > 1 {
                            return Ok(Value::Bool(false));
                        }
                    }
                    _ => {}
                }
            }
            Ok(Value::Bool(match kind {
                PredKind::All | PredKind::None => true,
                PredKind::Any => false,
                _ => matched == 1,
            }))
        }
        PredKind::Filter => {
            let mut out = Vec::new();
            for (i, v) in items.enumerate() {
                if truthy(run(cx, i, v.clone())?, what)? {
                    out.push(v);
                }
            }
            Ok(Value::list(out))
        }
        PredKind::Map => {
            let mut out = Vec::new();
            for (i, v) in items.enumerate() {
                out.push(run(cx, i, v)?);
            }
            Ok(Value::list(out))
        }
        PredKind::Count => {
            let mut n = 0;
            for (i, v) in items.enumerate() {
                if truthy(run(cx, i, v)?, what)? {
                    n += 1;
                }
            }
            Ok(Value::Int(n))
        }
        PredKind::Find | PredKind::FindIndex => {
            for (i, v) in items.enumerate() {
                if truthy(run(cx, i, v.clone())?, what)? {
                    return Ok(if kind == PredKind::Find {
                        v
                    } else {
                        Value::Int(i as i64)
                    });
                }
            }
            Ok(if kind == PredKind::Find {
                Value::Nil
            } else {
                Value::Int(-1)
            })
        }
        PredKind::FindLast | PredKind::FindLastIndex => {
            let all: Vec<Value<'a>> = items.collect();
            for (i, v) in all.into_iter().enumerate().rev() {
                if truthy(run(cx, i, v.clone())?, what)? {
                    return Ok(if kind == PredKind::FindLast {
                        v
                    } else {
                        Value::Int(i as i64)
                    });
                }
            }
            Ok(if kind == PredKind::FindLast {
                Value::Nil
            } else {
                Value::Int(-1)
            })
        }
        PredKind::Sum => {
            let mut acc = Value::Int(0);
            for (i, v) in items.enumerate() {
                let x = run(cx, i, v)?;
                acc = crate::eval::binary(crate::compile::BinOp::Add, acc, x)?;
            }
            Ok(acc)
        }
        PredKind::GroupBy => {
            let mut groups: Map<'a> = Map::new();
            for (i, v) in items.enumerate() {
                let k = run(cx, i, v.clone())?;
                let key = k.as_str().map_or_else(|| k.to_string(), str::to_owned);
                let entry = groups.entry(key).or_insert_with(|| Value::list(Vec::new()));
                if let Value::List(l) = entry {
                    Arc::make_mut(l).push(v);
                }
            }
            Ok(Value::map(groups))
        }
        PredKind::SortBy => {
            let mut keyed = Vec::new();
            for (i, v) in items.enumerate() {
                keyed.push((run(cx, i, v.clone())?, v));
            }
            let desc = match init {
                Some(n) => order_is_desc(&eval(n, cx)?)?,
                None => false,
            };
            sort_values(&mut keyed, |p| &p.0)?;
            if desc {
                keyed.reverse();
            }
            Ok(Value::list(keyed.into_iter().map(|p| p.1).collect()))
        }
        PredKind::Reduce => {
            let mut all = items.peekable();
            let mut acc = match init {
                Some(n) => eval(n, cx)?,
                None => match all.next() {
                    Some(v) => v,
                    None => return err("reduce of empty array with no initial value"),
                },
            };
            let offset = usize::from(init.is_none());
            for (i, v) in all.enumerate() {
                cx.locals.set(slot + 2, acc);
                acc = run(cx, i + offset, v)?;
                if nested_deeper_than(&acc, MAX_ACC_DEPTH) {
                    return err(format!(
                        "reduce: accumulator nested more than {MAX_ACC_DEPTH} levels deep"
                    ));
                }
            }
            Ok(acc)
        }
    }
}

/// How deep `reduce` may nest lists and maps in its accumulator. Dropping, printing, comparing or
/// serializing a value recurses once per level, so an accumulator wrapped anew at every step
/// (`reduce(1..1000000, {[#acc]})`) would otherwise overflow the stack and abort the process.
const MAX_ACC_DEPTH: usize = 1000;

/// Whether lists and maps nest more than `max` levels deep in `v` (iterative, no recursion).
fn nested_deeper_than(v: &Value<'_>, max: usize) -> bool {
    fn is_container(v: &Value<'_>) -> bool {
        matches!(v, Value::List(_) | Value::Map(_))
    }
    if !is_container(v) {
        return false;
    }
    let mut stack = vec![(v, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > max {
            return true;
        }
        let inner = |c: &&Value<'_>| is_container(c);
        match v {
            Value::List(l) => stack.extend(l.iter().filter(inner).map(|c| (c, depth + 1))),
            Value::Map(m) => stack.extend(m.values().filter(inner).map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    false
}

fn order_is_desc(v: &Value<'_>) -> Result<bool, EvalError> {
    match v.as_str() {
        Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        _ => err(format!("sort order must be \"asc\" or \"desc\", got {v}")),
    }
}

fn sort_values<T>(items: &mut [T], key: impl Fn(&T) -> &Value<'_>) -> Result<(), EvalError> {
    let mut failed = None;
    items.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        x.compare(y).unwrap_or_else(|| {
            failed = Some(format!(
                "cannot sort {} and {}",
                x.type_name(),
                y.type_name()
            ));
            std::cmp::Ordering::Equal
        })
    });
    match failed {
        Some(m) => err(m),
        None => Ok(()),
    }
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Arc<Regex>>> = RefCell::new(HashMap::new());
}

/// Compiles a regex built at run time, with a small per-thread cache so a pattern that changes
/// rarely is not recompiled per event.
pub(crate) fn dynamic_regex(p: &str) -> Result<Arc<Regex>, EvalError> {
    REGEX_CACHE.with(|c| {
        if let Some(r) = c.borrow().get(p) {
            return Ok(r.clone());
        }
        let re = Arc::new(
            Regex::new(p)
                .map_err(|e| EvalError::new(format!("invalid regular expression: {e}")))?,
        );
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(p.to_owned(), re.clone());
        Ok(re)
    })
}

fn str_arg<'v, 'a>(b: Builtin, args: &'v [Value<'a>], i: usize) -> Result<&'v str, EvalError> {
    match args.get(i) {
        Some(v) => v.as_str().ok_or_else(|| {
            EvalError::new(format!(
                "{}: argument {} must be a string, got {}",
                b.name(),
                i + 1,
                v.type_name()
            ))
        }),
        None => err(format!("{}: missing argument {}", b.name(), i + 1)),
    }
}

fn int_arg(b: Builtin, args: &[Value<'_>], i: usize) -> Result<i64, EvalError> {
    match args.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        Some(v) => err(format!(
            "{}: argument {} must be an int, got {}",
            b.name(),
            i + 1,
            v.type_name()
        )),
        None => err(format!("{}: missing argument {}", b.name(), i + 1)),
    }
}

/// Returns `sub` as a borrowed slice of `arg` when `arg` is borrowed, avoiding a copy.
fn substr<'a>(arg: &Value<'a>, sub: &str) -> Value<'a> {
    match arg {
        Value::Str(s) => {
            let start = sub.as_ptr() as usize - s.as_ptr() as usize;
            Value::Str(&s[start..start + sub.len()])
        }
        _ => Value::string(sub),
    }
}

/// Numbers of `max(1, 2)` or `max([1, 2])`.
fn numbers<'a>(b: Builtin, args: &[Value<'a>]) -> Result<Vec<Value<'a>>, EvalError> {
    let items: Vec<Value<'a>> = if args.len() == 1 {
        match args[0].iter_list() {
            Some(it) => it.collect(),
            None => vec![args[0].clone()],
        }
    } else {
        args.to_vec()
    };
    for v in &items {
        if v.as_f64().is_none() {
            return err(format!(
                "{}: expected numbers, got {}",
                b.name(),
                v.type_name()
            ));
        }
    }
    Ok(items)
}

fn flatten_into<'a>(v: &Value<'a>, out: &mut Vec<Value<'a>>) {
    match v.iter_list() {
        Some(it) if !v.is_nil() => {
            for x in it {
                flatten_into(&x, out);
            }
        }
        _ => out.push(v.clone()),
    }
}

const DATE_LAYOUTS: &[&str] = &[
    "2006-01-02T15:04:05.999999999Z07:00",
    "2006-01-02T15:04:05Z07:00",
    "2006-01-02 15:04:05.999999999 -0700 MST",
    "2006-01-02 15:04:05 -0700",
    "2006-01-02 15:04:05",
    "2006-01-02T15:04:05",
    "2006-01-02",
    "Mon, 02 Jan 2006 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 -0700",
    "02 Jan 06 15:04 MST",
    "Mon Jan _2 15:04:05 2006",
    "Mon Jan _2 15:04:05 MST 2006",
];

pub(crate) fn call<'a>(
    b: Builtin,
    arg_nodes: &[Node],
    cx: &mut Cx<'a, '_>,
) -> Result<Value<'a>, EvalError> {
    // Most built-ins take few arguments: keep them on the stack.
    let mut vals: [Value<'a>; 4] = Default::default();
    if arg_nodes.len() <= vals.len() {
        for (slot, n) in vals.iter_mut().zip(arg_nodes) {
            *slot = eval(n, cx)?;
        }
        return apply(b, &vals[..arg_nodes.len()]);
    }
    let args = arg_nodes
        .iter()
        .map(|n| eval(n, cx))
        .collect::<Result<Vec<_>, _>>()?;
    apply(b, &args)
}

fn apply<'a>(b: Builtin, args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    use Builtin as B;
    let a0 = args.first().cloned().unwrap_or_default();
    match b {
        B::Len => match a0.len() {
            Some(n) => Ok(Value::Int(n as i64)),
            None => err(format!(
                "invalid argument for len (type {})",
                a0.type_name()
            )),
        },
        B::Type => Ok(Value::Str(a0.type_name())),
        B::Abs => match a0 {
            Value::Int(i) => Ok(Value::Int(i.wrapping_abs())),
            Value::Float(f) => Ok(Value::Float(f.abs())),
            other => err(format!(
                "invalid argument for abs (type {})",
                other.type_name()
            )),
        },
        B::Ceil | B::Floor | B::Round => match a0 {
            Value::Int(i) => Ok(Value::Float(i as f64)),
            Value::Float(f) => Ok(Value::Float(match b {
                B::Ceil => f.ceil(),
                B::Floor => f.floor(),
                _ => f.round(),
            })),
            other => err(format!(
                "invalid argument for {} (type {})",
                b.name(),
                other.type_name()
            )),
        },
        B::Int => {
            match &a0 {
                Value::Int(i) => Ok(Value::Int(*i)),
                Value::Float(f) => Ok(Value::Int(*f as i64)),
                Value::Duration(d) => Ok(Value::Int(*d)),
                v => match v.as_str() {
                    Some(s) => s.trim().parse::<i64>().map(Value::Int).map_err(|_| {
                        EvalError::new(format!("int: cannot parse {s:?} as an integer"))
                    }),
                    None => err(format!("invalid argument for int (type {})", v.type_name())),
                },
            }
        }
        B::Float => {
            match &a0 {
                Value::Int(i) => Ok(Value::Float(*i as f64)),
                Value::Float(f) => Ok(Value::Float(*f)),
                v => match v.as_str() {
                    Some(s) => s.trim().parse::<f64>().map(Value::Float).map_err(|_| {
                        EvalError::new(format!("float: cannot parse {s:?} as a number"))
                    }),
                    None => err(format!(
                        "invalid argument for float (type {})",
                        v.type_name()
                    )),
                },
            }
        }
        B::String => match a0 {
            v @ (Value::Str(_) | Value::String(_)) => Ok(v),
            v => Ok(Value::string(v.to_string())),
        },
        B::Trim | B::TrimPrefix | B::TrimSuffix => {
            let s = str_arg(b, args, 0)?;
            let out = match (b, args.get(1)) {
                (B::Trim, None) => s.trim(),
                (B::Trim, Some(_)) => {
                    let cut = str_arg(b, args, 1)?;
                    s.trim_matches(|c| cut.contains(c))
                }
                (B::TrimPrefix, _) => {
                    let p = if args.len() > 1 {
                        str_arg(b, args, 1)?
                    } else {
                        " "
                    };
                    s.strip_prefix(p).unwrap_or(s)
                }
                _ => {
                    let p = if args.len() > 1 {
                        str_arg(b, args, 1)?
                    } else {
                        " "
                    };
                    s.strip_suffix(p).unwrap_or(s)
                }
            };
            Ok(substr(&a0, out))
        }
        B::Upper => Ok(Value::string(str_arg(b, args, 0)?.to_uppercase())),
        B::Lower => Ok(Value::string(str_arg(b, args, 0)?.to_lowercase())),
        B::Split | B::SplitAfter => {
            let s = str_arg(b, args, 0)?;
            let sep = str_arg(b, args, 1)?;
            let n = if args.len() > 2 {
                int_arg(b, args, 2)?
            } else {
                -1
            };
            Ok(Value::list(
                go_split(s, sep, n, b == B::SplitAfter)
                    .into_iter()
                    .map(|p| substr(&a0, p))
                    .collect(),
            ))
        }
        B::Replace => {
            let s = str_arg(b, args, 0)?;
            Ok(Value::string(
                s.replace(str_arg(b, args, 1)?, str_arg(b, args, 2)?),
            ))
        }
        B::Repeat => {
            let s = str_arg(b, args, 0)?;
            let n = int_arg(b, args, 1)?;
            if n < 0 || (s.len() as i64).saturating_mul(n) > 64 << 20 {
                return err("repeat: count out of range");
            }
            Ok(Value::string(s.repeat(n as usize)))
        }
        B::Join => {
            let sep = if args.len() > 1 {
                str_arg(b, args, 1)?
            } else {
                ""
            };
            let Some(items) = a0.iter_list() else {
                return err(format!("join: expected an array, got {}", a0.type_name()));
            };
            let mut out = String::new();
            for (i, v) in items.enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                match v.as_str() {
                    Some(s) => out.push_str(s),
                    None => {
                        return err(format!(
                            "join: elements must be strings, got {}",
                            v.type_name()
                        ));
                    }
                }
            }
            Ok(Value::string(out))
        }
        B::IndexOf | B::LastIndexOf => {
            let s = str_arg(b, args, 0)?;
            let sub = str_arg(b, args, 1)?;
            let found = if b == B::IndexOf {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            Ok(Value::Int(
                found.map_or(-1, |i| s[..i].chars().count() as i64),
            ))
        }
        B::HasPrefix => Ok(Value::Bool(
            str_arg(b, args, 0)?.starts_with(str_arg(b, args, 1)?),
        )),
        B::HasSuffix => Ok(Value::Bool(
            str_arg(b, args, 0)?.ends_with(str_arg(b, args, 1)?),
        )),
        B::Max | B::Min => {
            let items = numbers(b, args)?;
            let mut best: Option<Value<'a>> = None;
            for v in items {
                best = Some(match best {
                    None => v,
                    Some(cur) => {
                        let greater = v.compare(&cur) == Some(std::cmp::Ordering::Greater);
                        if greater == (b == B::Max) { v } else { cur }
                    }
                });
            }
            Ok(best.unwrap_or_default())
        }
        B::Mean => {
            let items = numbers(b, args)?;
            if items.is_empty() {
                return Ok(Value::Float(0.0));
            }
            let sum: f64 = items.iter().filter_map(Value::as_f64).sum();
            Ok(Value::Float(sum / items.len() as f64))
        }
        B::Median => {
            let mut xs: Vec<f64> = numbers(b, args)?.iter().filter_map(Value::as_f64).collect();
            if xs.is_empty() {
                return Ok(Value::Float(0.0));
            }
            xs.sort_by(f64::total_cmp);
            let n = xs.len();
            Ok(Value::Float(if n % 2 == 1 {
                xs[n / 2]
            } else {
                (xs[n / 2 - 1] + xs[n / 2]) / 2.0
            }))
        }
        B::ToJson => serde_json::to_string_pretty(&to_json(&a0))
            .map(Value::string)
            .map_err(|e| EvalError::new(format!("toJSON: {e}"))),
        B::FromJson => {
            let s = str_arg(b, args, 0)?;
            let j: serde_json::Value =
                serde_json::from_str(s).map_err(|e| EvalError::new(format!("fromJSON: {e}")))?;
            Ok(from_json(&j))
        }
        B::ToBase64 => Ok(Value::string(
            base64::engine::general_purpose::STANDARD.encode(str_arg(b, args, 0)?),
        )),
        B::FromBase64 => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(str_arg(b, args, 0)?)
                .map_err(|e| EvalError::new(format!("fromBase64: {e}")))?;
            Ok(Value::string(String::from_utf8_lossy(&bytes).into_owned()))
        }
        B::Now => Ok(Value::Time(time::now())),
        B::Duration => {
            let s = str_arg(b, args, 0)?;
            time::parse_duration(s)
                .map(Value::Duration)
                .ok_or_else(|| EvalError::new(format!("duration: invalid duration {s:?}")))
        }
        B::Date => {
            if let Value::Time(t) = a0 {
                return Ok(Value::Time(t));
            }
            let s = str_arg(b, args, 0)?;
            let utc = FixedOffset::east_opt(0).ok_or_else(|| EvalError::new("bad offset"))?;
            if args.len() > 2 {
                return err(
                    "date: time zones by name are not supported; use an offset in the value",
                );
            }
            let parsed = if args.len() > 1 {
                time::parse_with_layout(str_arg(b, args, 1)?, s, utc)
            } else {
                DATE_LAYOUTS
                    .iter()
                    .find_map(|l| time::parse_with_layout(l, s, utc))
            };
            parsed
                .map(Value::Time)
                .ok_or_else(|| EvalError::new(format!("date: cannot parse {s:?}")))
        }
        B::First | B::Last => {
            let items = list_items(&a0, b.name())?;
            Ok(if b == B::First {
                items.first()
            } else {
                items.last()
            }
            .cloned()
            .unwrap_or_default())
        }
        B::Get => Ok(fetch(a0, &args[1], true).unwrap_or_default()),
        B::Take => {
            let items = list_items(&a0, b.name())?;
            let n = int_arg(b, args, 1)?.max(0) as usize;
            Ok(Value::list(items.iter().take(n).cloned().collect()))
        }
        B::Keys | B::Values | B::ToPairs => {
            let pairs: Vec<(Value<'a>, Value<'a>)> = match &a0 {
                Value::Map(m) => m
                    .iter()
                    .map(|(k, v)| (Value::string(k.as_str()), v.clone()))
                    .collect(),
                Value::Obj(o) => o
                    .keys()
                    .into_iter()
                    .map(|k| {
                        let v = k.as_str().and_then(|s| o.get(s)).unwrap_or_default();
                        (k, v)
                    })
                    .collect(),
                other => {
                    return err(format!(
                        "{}: expected a map, got {}",
                        b.name(),
                        other.type_name()
                    ));
                }
            };
            Ok(Value::list(
                pairs
                    .into_iter()
                    .map(|(k, v)| match b {
                        B::Keys => k,
                        B::Values => v,
                        _ => Value::list(vec![k, v]),
                    })
                    .collect(),
            ))
        }
        B::FromPairs => {
            let mut m = Map::new();
            for p in list_items(&a0, b.name())?.iter() {
                let pair = list_items(p, b.name())?;
                if pair.len() != 2 {
                    return err("fromPairs: each pair must have 2 elements");
                }
                let k = pair[0]
                    .as_str()
                    .map_or_else(|| pair[0].to_string(), str::to_owned);
                m.insert(k, pair[1].clone());
            }
            Ok(Value::map(m))
        }
        B::Reverse => {
            let mut items = list_items(&a0, b.name())?.to_vec();
            items.reverse();
            Ok(Value::list(items))
        }
        B::Uniq => {
            let mut out: Vec<Value<'a>> = Vec::new();
            for v in list_items(&a0, b.name())?.iter() {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        }
        B::Concat => {
            let mut out = Vec::new();
            for a in args {
                out.extend(list_items(a, b.name())?.iter().cloned());
            }
            Ok(Value::list(out))
        }
        B::Flatten => {
            let mut out = Vec::new();
            for v in list_items(&a0, b.name())?.iter() {
                flatten_into(v, &mut out);
            }
            Ok(Value::list(out))
        }
        B::Sort => {
            let mut items = list_items(&a0, b.name())?.to_vec();
            sort_values(&mut items, |v| v)?;
            if args.len() > 1 && order_is_desc(&args[1])? {
                items.reverse();
            }
            Ok(Value::list(items))
        }
        B::BitAnd | B::BitOr | B::BitXor | B::BitNand | B::BitShl | B::BitShr | B::BitUshr => {
            let x = int_arg(b, args, 0)?;
            let y = int_arg(b, args, 1)?;
            let shift = || -> Result<u32, EvalError> {
                u32::try_from(y)
                    .ok()
                    .filter(|s| *s < 64)
                    .ok_or_else(|| EvalError::new("invalid shift count"))
            };
            Ok(Value::Int(match b {
                B::BitAnd => x & y,
                B::BitOr => x | y,
                B::BitXor => x ^ y,
                B::BitNand => x & !y,
                B::BitShl => x << shift()?,
                B::BitShr => x >> shift()?,
                _ => ((x as u64) >> shift()?) as i64,
            }))
        }
        B::BitNot => Ok(Value::Int(!int_arg(b, args, 0)?)),
    }
}

/// Go's `strings.SplitN` / `SplitAfterN`.
fn go_split<'s>(s: &'s str, sep: &str, n: i64, after: bool) -> Vec<&'s str> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let mut parts: Vec<&str> = s
            .char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect();
        if n > 0 && parts.len() > n as usize {
            let k = n as usize - 1;
            let start: usize = parts[..k].iter().map(|p| p.len()).sum();
            parts.truncate(k);
            parts.push(&s[start..]);
        }
        return parts;
    }
    let mut out = Vec::new();
    let mut rest = s;
    while n < 0 || (out.len() as i64) < n - 1 {
        let Some(i) = rest.find(sep) else { break };
        let end = if after { i + sep.len() } else { i };
        out.push(&rest[..end]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

pub(crate) fn time_method<'a>(
    t: &chrono::DateTime<FixedOffset>,
    name: &str,
    args: &[Value<'a>],
) -> Result<Value<'a>, EvalError> {
    let arg_time = || match args.first() {
        Some(Value::Time(u)) => Ok(*u),
        _ => err(format!("{name}: expected a time argument")),
    };
    Ok(match name {
        "Year" => Value::Int(i64::from(t.year())),
        "Month" => Value::Int(i64::from(t.month())),
        "Day" => Value::Int(i64::from(t.day())),
        "Hour" => Value::Int(i64::from(t.hour())),
        "Minute" => Value::Int(i64::from(t.minute())),
        "Second" => Value::Int(i64::from(t.second())),
        "Nanosecond" => Value::Int(i64::from(t.nanosecond())),
        "YearDay" => Value::Int(i64::from(t.ordinal())),
        "Weekday" => Value::Int(i64::from(t.weekday().num_days_from_sunday())),
        "Unix" => Value::Int(t.timestamp()),
        "UnixMilli" => Value::Int(t.timestamp_millis()),
        "UnixNano" => Value::Int(t.timestamp_nanos_opt().unwrap_or(0)),
        "UTC" => Value::Time(t.with_timezone(&chrono::Utc).fixed_offset()),
        "Local" => Value::Time(*t),
        "String" => Value::string(time::format_go_time(t)),
        "IsZero" => Value::Bool(t.timestamp() == -62135596800 && t.timestamp_subsec_nanos() == 0),
        "Format" => match args.first().and_then(Value::as_str) {
            Some(l) => Value::string(time::format_with_layout(l, t)),
            None => return err("Format: expected a layout string"),
        },
        "Add" => match args.first() {
            Some(Value::Duration(d)) => Value::Time(*t + chrono::Duration::nanoseconds(*d)),
            _ => return err("Add: expected a duration"),
        },
        "Sub" => Value::Duration((*t - arg_time()?).num_nanoseconds().unwrap_or(i64::MAX)),
        "After" => Value::Bool(*t > arg_time()?),
        "Before" => Value::Bool(*t < arg_time()?),
        "Equal" => Value::Bool(*t == arg_time()?),
        _ => return err(format!("type time has no method {name}")),
    })
}

pub(crate) fn duration_method<'a>(d: i64, name: &str) -> Result<Value<'a>, EvalError> {
    Ok(match name {
        "Hours" => Value::Float(d as f64 / 3.6e12),
        "Minutes" => Value::Float(d as f64 / 6e10),
        "Seconds" => Value::Float(d as f64 / 1e9),
        "Milliseconds" => Value::Int(d / 1_000_000),
        "Microseconds" => Value::Int(d / 1_000),
        "Nanoseconds" => Value::Int(d),
        "Abs" => Value::Duration(d.wrapping_abs()),
        "String" => Value::string(time::format_duration(d)),
        _ => return err(format!("type duration has no method {name}")),
    })
}
