//! `any(CONSTANT_LIST, {X contains #})` and its kin, the way hub filters test a value against a
//! data file (`any(File("sensitive_data.txt"), {Upper(evt.Meta.http_path) contains Upper(#)})`):
//! evaluated naively that is one comparison — and, with `Upper(#)`, one allocation — per list
//! entry per event. When the list is constant and `X` does not depend on `#`, the compiler
//! precomputes the transformed entries once and matches them all in one pass (Aho-Corasick for
//! `contains`, a hash set for `==`), with the same result.

use std::collections::HashSet;
use std::sync::Arc;

use aho_corasick::AhoCorasick;

use crate::compile::{BinOp, Node};
use crate::value::Value;

#[derive(Debug)]
enum Matcher {
    Contains(AhoCorasick),
    Equals(HashSet<Box<str>>),
    StartsWith,
    EndsWith,
}

/// Precomputed entries of a constant list and how to match a string against them.
#[derive(Debug)]
pub(crate) struct ListMatcher {
    op: BinOp,
    needles: Vec<Value<'static>>,
    matcher: Matcher,
}

impl ListMatcher {
    pub(crate) fn op(&self) -> BinOp {
        self.op
    }

    pub(crate) fn needles(&self) -> &[Value<'static>] {
        &self.needles
    }

    /// Whether any entry matches `hay`.
    pub(crate) fn any(&self, hay: &str) -> bool {
        let strs = || self.needles.iter().filter_map(Value::as_str);
        match &self.matcher {
            Matcher::Contains(ac) => ac.is_match(hay),
            Matcher::Equals(set) => set.contains(hay),
            Matcher::StartsWith => strs().any(|n| hay.starts_with(n)),
            Matcher::EndsWith => strs().any(|n| hay.ends_with(n)),
        }
    }
}

/// A node that cannot read predicate locals: a variable path, or a pure call over such paths.
fn independent(node: &Node) -> bool {
    match node {
        Node::Var(_) | Node::Const(_) => true,
        Node::Slot { obj, .. } | Node::Member { obj, .. } => independent(obj),
        Node::Index { obj, index, .. } => independent(obj) && matches!(**index, Node::Const(_)),
        Node::Call { f, args } => f.pure && args.iter().all(independent),
        _ => false,
    }
}

/// The entries transformed as the body transforms `#`: `#` itself or `F(#)` with `F` pure.
fn needles(entry_side: &Node, slot: usize, list: &[Value<'static>]) -> Option<Vec<Value<'static>>> {
    match entry_side {
        Node::Local(s) if *s == slot => Some(list.to_vec()),
        Node::Call { f, args }
            if f.pure && matches!(args.as_slice(), [Node::Local(s)] if *s == slot) =>
        {
            list.iter()
                .map(|v| {
                    (f.call)(std::slice::from_ref(v))
                        .ok()
                        .map(Value::into_owned)
                })
                .collect()
        }
        _ => None,
    }
}

/// Recognises `any(<constant string list>, {X op <# or F(#)>})`; returns `X` and the matcher.
pub(crate) fn any_const(
    list: &Node,
    body: Node,
    slot: usize,
) -> Result<(Node, Arc<ListMatcher>), Node> {
    let Node::Const(Value::List(items)) = list else {
        return Err(body);
    };
    if !items.iter().all(|v| v.as_str().is_some()) {
        return Err(body);
    }
    let Node::Bin { op, l, r } = body else {
        return Err(body);
    };
    let ok_op = matches!(
        op,
        BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith | BinOp::Eq
    );
    let found = if ok_op && independent(&l) {
        needles(&r, slot, items)
    } else {
        None
    };
    let Some(needles) = found.filter(|n| n.iter().all(|v| v.as_str().is_some())) else {
        return Err(Node::Bin { op, l, r });
    };
    let strs: Vec<&str> = needles.iter().filter_map(Value::as_str).collect();
    let matcher = match op {
        BinOp::Contains => match AhoCorasick::new(&strs) {
            Ok(ac) => Matcher::Contains(ac),
            Err(_) => return Err(Node::Bin { op, l, r }),
        },
        BinOp::Eq => Matcher::Equals(strs.iter().map(|s| Box::from(*s)).collect()),
        BinOp::StartsWith => Matcher::StartsWith,
        _ => Matcher::EndsWith,
    };
    Ok((
        *l,
        Arc::new(ListMatcher {
            op,
            needles,
            matcher,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use crate::{Env, FieldType, Functions};

    fn optimized(src: &str) -> bool {
        let mut funcs = Functions::new();
        crate::crowdsec::register(
            &mut funcs,
            std::sync::Arc::new(crate::crowdsec::HelperContext::new()),
        );
        let env = Env::new(funcs).var("m", FieldType::StrMap);
        format!("{:?}", env.compile(src).unwrap()).contains("AnyConst")
    }

    #[test]
    fn hub_shapes_are_matched_in_one_pass() {
        assert!(optimized("any(['a', 'b'], {m.path contains #})"));
        assert!(optimized("any(['a'], {Upper(m.path) contains Upper(#)})"));
        assert!(optimized("any(['a'], { m.file == #})"));
        assert!(optimized("any(['a'], { m.req endsWith #})"));
    }

    #[test]
    fn anything_else_keeps_the_plain_loop() {
        assert!(!optimized("any(['a'], {# contains m.path})"));
        assert!(!optimized("any(['a'], {m.path contains # && true})"));
        assert!(!optimized("any([1, 2], {m.path == #})"));
        assert!(!optimized("all(['a'], {m.path contains #})"));
    }
}
