//! An expr-lang compatible expression language: the language of every filter, groupby, statics
//! expression, whitelist, profile and hub-test assertion in CrowdSec content.
//!
//! Expressions are compiled once against an [`Env`] (variables, their static types, and the
//! [`Functions`] the caller registered) into a [`Program`], then evaluated many times. Field paths
//! on described host types (`evt.Meta.log_type`) are resolved to slots when compiling, constant
//! lists become hash sets and constant regexes are compiled once, so a typical filter runs without
//! heap allocation.
//!
//! The crate knows nothing of logs, events or alerts: callers expose their data through
//! [`Object`] and register their helpers. CrowdSec's helper set lives in [`crowdsec`].

mod builtins;
mod compile;
pub mod crowdsec;
mod error;
mod eval;
mod facts;
mod func;
mod lexer;
mod listmatch;
mod object;
mod parser;
pub mod time;
mod value;

pub use compile::{Env, Program};
pub use error::{CompileError, EvalError};
pub use func::{Arity, Function, Functions, NativeFn};
pub use object::{FieldDesc, FieldType, Missing, Object, TypeDesc};
pub use value::{ListIter, Map, Value, format_go_float, from_json, to_json};
