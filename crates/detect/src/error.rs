use thiserror::Error;

/// A scenario that cannot be loaded: names the file, the scenario and what is wrong.
#[derive(Debug, Error)]
pub enum DetectError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Scenario file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys.
    #[error("{path}: {message}")]
    Yaml {
        /// Scenario file.
        path: String,
        /// Parser message, with line and column.
        message: String,
    },
    /// A value is out of range, missing or inconsistent.
    #[error("{path}: scenario {name:?}: {message}")]
    Invalid {
        /// Scenario file.
        path: String,
        /// Scenario name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An expression does not compile.
    #[error("{path}: scenario {name:?}: {field}: {source}")]
    Expr {
        /// Scenario file.
        path: String,
        /// Scenario name.
        name: String,
        /// Which key (`filter`, `groupby`...).
        field: &'static str,
        /// Compile error with position and caret (boxed: it carries the whole expression).
        source: Box<expr::CompileError>,
    },
}
