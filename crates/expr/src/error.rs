//! Compile-time diagnostics and run-time errors.

use std::fmt;

/// An error raised while evaluating an expression. CrowdSec logs these and treats the expression
/// as false or empty; callers decide the same.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    /// Builds an error from a message.
    pub fn new(message: impl Into<String>) -> Self {
        EvalError {
            message: message.into(),
        }
    }
}

/// An expression that does not compile: where, what, and the source with a caret under the spot.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub struct CompileError {
    /// What was wrong, e.g. `expected ')' but found ','`.
    pub message: String,
    /// 1-based line in the expression.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The whole expression.
    pub expression: String,
}

impl CompileError {
    pub(crate) fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source
            .get(line_start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        CompileError {
            message: message.into(),
            line,
            column,
            expression: source.to_owned(),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} (at {}:{})", self.message, self.line, self.column)?;
        let text = self.expression.lines().nth(self.line - 1).unwrap_or("");
        writeln!(f, " | {text}")?;
        write!(f, " | {}^", " ".repeat(self.column.saturating_sub(1)))
    }
}
