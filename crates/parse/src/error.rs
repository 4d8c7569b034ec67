//! Errors of loading parser content. Each names the file, the node and the construct.

/// A parser file or node that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML does not parse or does not have the parser shape.
    #[error("{path}: {message}")]
    Yaml {
        /// File path.
        path: String,
        /// The YAML library's message, with line and column.
        message: String,
    },
    /// An expression does not compile.
    #[error("{at}: {source}")]
    Expr {
        /// File, node and field.
        at: String,
        /// The diagnostic, with line, column and caret.
        source: expr::CompileError,
    },
    /// A grok pattern does not compile.
    #[error("{at}: {source}")]
    Grok {
        /// File, node and field.
        at: String,
        /// The grok error.
        source: grok::GrokError,
    },
    /// A value that is not valid for its key.
    #[error("{at}: {message}")]
    Invalid {
        /// File, node and field.
        at: String,
        /// What is wrong.
        message: String,
    },
}
