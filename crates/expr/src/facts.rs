//! What a compiled boolean expression requires of its input, for callers that index many
//! filters: "this filter can only be true when `evt.Meta.log_type` is one of {…}" lets a caller
//! skip the filter for every other event without running it.

use std::collections::BTreeSet;

use crate::compile::{Node, Program};
use crate::value::Value;

/// The field path of a node: variable index and the names read below it.
fn path_of(node: &Node) -> Option<(usize, Vec<&str>)> {
    match node {
        Node::Var(i) => Some((*i, Vec::new())),
        Node::Slot { obj, name, .. }
        | Node::Member {
            obj,
            name,
            optional: false,
        } => {
            let (v, mut p) = path_of(obj)?;
            p.push(name);
            Some((v, p))
        }
        Node::Index {
            obj,
            index,
            optional: false,
        } => match &**index {
            Node::Const(Value::String(k)) => {
                let (v, mut p) = path_of(obj)?;
                p.push(k);
                Some((v, p))
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_target(node: &Node, var: usize, fields: &[&str]) -> bool {
    path_of(node).is_some_and(|(v, p)| v == var && p == fields)
}

/// `Some(set)`: the expression is false unless the value at the path is in `set`.
/// `None`: no such constraint could be proven.
fn required(node: &Node, var: usize, fields: &[&str]) -> Option<BTreeSet<String>> {
    match node {
        Node::EqConst {
            x,
            c: Value::String(s),
            negate: false,
        } if is_target(x, var, fields) => Some(BTreeSet::from([s.to_string()])),
        Node::InSet { x, set } if set.others.is_empty() && is_target(x, var, fields) => {
            Some(set.strs.iter().map(|s| s.to_string()).collect())
        }
        Node::And(items) => items
            .iter()
            .filter_map(|n| required(n, var, fields))
            .reduce(|a, b| a.intersection(&b).cloned().collect()),
        Node::Or(items) => {
            let mut all = BTreeSet::new();
            for n in items {
                all.extend(required(n, var, fields)?);
            }
            Some(all)
        }
        Node::Const(Value::Bool(false)) => Some(BTreeSet::new()),
        _ => None,
    }
}

impl Program {
    /// The string values the field at `fields` below variable number `var` must take for this
    /// expression to be true, when the expression proves it (through `==`, `in [...]`, `&&` and
    /// `||`); `None` when it does not. A missing map key reads as `""`, so callers must look up
    /// `""` for events without the field.
    pub fn required_values(&self, var: usize, fields: &[&str]) -> Option<BTreeSet<String>> {
        required(&self.root, var, fields)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Env, FieldType, Functions};

    fn req(src: &str) -> Option<Vec<String>> {
        let env = Env::new(Functions::new())
            .var("m", FieldType::StrMap)
            .var("n", FieldType::Any);
        let p = env.compile(src).unwrap();
        p.required_values(0, &["log_type"])
            .map(|s| s.into_iter().collect())
    }

    #[test]
    fn equality_and_membership_constrain() {
        assert_eq!(req("m.log_type == 'a'"), Some(vec!["a".into()]));
        assert_eq!(
            req("m['log_type'] in ['a', 'b']"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            req("m.log_type == 'a' && m.x == 'y'"),
            Some(vec!["a".into()])
        );
        assert_eq!(
            req("m.x == 'y' and m.log_type in ['a','b'] and m.log_type != 'c'"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            req("m.log_type == 'a' || m.log_type == 'b'"),
            Some(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn anything_unproven_is_unconstrained() {
        assert_eq!(req("m.log_type != 'a'"), None);
        assert_eq!(req("m.log_type == 'a' || m.x == 'y'"), None);
        assert_eq!(req("!(m.log_type == 'a')"), None);
        assert_eq!(req("m.log_type startsWith 'a'"), None);
        assert_eq!(req("n.log_type == 'a'"), None);
        assert_eq!(req("m.other == 'a'"), None);
    }
}
