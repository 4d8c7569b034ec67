use std::path::PathBuf;

/// Everything that can go wrong while loading pattern definitions or compiling a grok pattern.
///
/// Messages name the offending pattern and where it was defined (`file:line`, `built-in` or
/// `pattern_syntax`) so that a broken hub item can be found without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrokError {
    /// `%{NAME}` points at a definition that does not exist.
    #[error("unknown grok pattern {name} referenced from {from}")]
    UnknownPattern { name: String, from: String },

    /// A definition (indirectly) references itself; `chain` lists the path, e.g. `A -> B -> A`.
    #[error("grok pattern cycle: {chain}")]
    Cycle { chain: String },

    /// Expansion nests deeper than the engine is willing to recurse.
    #[error("grok pattern nesting deeper than {limit} levels while expanding {name} ({origin})")]
    TooDeep {
        name: String,
        origin: String,
        limit: usize,
    },

    /// The fully expanded regex would exceed the size limit.
    #[error("expanded grok pattern exceeds {limit} bytes (while expanding {name})")]
    TooLarge { name: String, limit: usize },

    /// A pattern name that is not `\w+`.
    #[error("invalid grok pattern name {name:?} ({origin})")]
    InvalidName { name: String, origin: String },

    /// A construct Go's RE2 syntax would reject and that we cannot translate.
    #[error("in {pattern} ({origin}): {construct}")]
    Syntax {
        pattern: String,
        origin: String,
        construct: String,
    },

    /// The translated regex was rejected by the regex engine (parse error, size limit, …).
    #[error("regex error in {pattern}: {message}")]
    Regex { pattern: String, message: String },

    /// A pattern file or directory could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
