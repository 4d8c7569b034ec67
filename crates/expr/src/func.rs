//! The registry of functions that callers make available to expressions.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::EvalError;
use crate::value::Value;

/// Signature every native function has. Arguments may borrow from the environment and so may the
/// result (a helper returning a sub-slice of its input allocates nothing).
pub type NativeFn = dyn for<'a> Fn(&[Value<'a>]) -> Result<Value<'a>, EvalError> + Send + Sync;

/// How many arguments a function takes; checked at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly n.
    Exact(usize),
    /// From min to max inclusive.
    Range(usize, usize),
    /// At least n.
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` arguments are accepted.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exact(k) => n == k,
            Arity::Range(a, b) => (a..=b).contains(&n),
            Arity::AtLeast(a) => n >= a,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arity::Exact(k) => write!(f, "{k}"),
            Arity::Range(a, b) => write!(f, "{a} to {b}"),
            Arity::AtLeast(a) => write!(f, "at least {a}"),
        }
    }
}

/// A registered function.
pub struct Function {
    /// Name as called in expressions.
    pub name: String,
    /// Accepted argument counts.
    pub arity: Arity,
    /// When true, a call whose arguments are all constants is evaluated once at compile time
    /// (`File("bad_ua.txt")`, `duration("5m")`): the function must not depend on anything but its
    /// arguments and state that is fixed once expressions are compiled.
    pub pure: bool,
    /// The implementation.
    pub call: Box<NativeFn>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Function({}/{})", self.name, self.arity)
    }
}

/// Functions visible to expressions, by name.
#[derive(Debug, Default, Clone)]
pub struct Functions {
    map: HashMap<String, Arc<Function>>,
}

impl Functions {
    /// An empty registry (the language built-ins are always available).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a function.
    pub fn register<F>(&mut self, name: &str, arity: Arity, pure: bool, f: F)
    where
        F: for<'a> Fn(&[Value<'a>]) -> Result<Value<'a>, EvalError> + Send + Sync + 'static,
    {
        self.map.insert(
            name.to_owned(),
            Arc::new(Function {
                name: name.to_owned(),
                arity,
                pure,
                call: Box::new(f),
            }),
        );
    }

    /// Looks a function up.
    pub fn get(&self, name: &str) -> Option<&Arc<Function>> {
        self.map.get(name)
    }

    /// Names of all registered functions.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}
