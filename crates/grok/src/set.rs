use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::BASE_PATTERNS;
use crate::error::GrokError;
use crate::expand::{self, is_word_byte};
use crate::matcher::Grok;

/// Where a definition came from; shown in error messages.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    Builtin,
    File { path: Arc<Path>, line: usize },
    Added(Arc<str>),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Added(label) => f.write_str(label),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Definition {
    pub(crate) text: String,
    pub(crate) origin: Origin,
}

/// A library of named grok pattern definitions.
///
/// References are resolved when a pattern is compiled, not when it is added, so definitions
/// may be added in any order and a later definition of a name replaces the earlier one.
/// Cloning is the intended way to give each parser its own `pattern_syntax` on top of a
/// shared base.
#[derive(Clone, Debug, Default)]
pub struct PatternSet {
    defs: HashMap<String, Definition>,
}

impl PatternSet {
    /// A set holding the built-in base patterns (USERNAME, INT, IP, SYSLOGBASE, …).
    pub fn new() -> Self {
        let mut set = Self::empty();
        for (name, text) in BASE_PATTERNS {
            set.defs.insert(
                (*name).to_owned(),
                Definition {
                    text: (*text).to_owned(),
                    origin: Origin::Builtin,
                },
            );
        }
        set
    }

    /// A set without any definitions.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds or replaces one definition, e.g. from a parser's `pattern_syntax`.
    pub fn add(&mut self, name: &str, definition: &str) -> Result<(), GrokError> {
        self.add_with_origin(name, definition, "pattern_syntax")
    }

    /// Like [`PatternSet::add`], with a label (such as the parser file) used in error messages.
    pub fn add_with_origin(
        &mut self,
        name: &str,
        definition: &str,
        origin: &str,
    ) -> Result<(), GrokError> {
        if name.is_empty() || !name.bytes().all(is_word_byte) {
            return Err(GrokError::InvalidName {
                name: name.to_owned(),
                origin: origin.to_owned(),
            });
        }
        self.defs.insert(
            name.to_owned(),
            Definition {
                text: definition.to_owned(),
                origin: Origin::Added(Arc::from(origin)),
            },
        );
        Ok(())
    }

    /// Loads every pattern file of `dir`, in file-name order.
    ///
    /// Like CrowdSec, files whose name contains a `.` are skipped (READMEs, editor backups,
    /// hidden files); sub-directories are ignored.
    pub fn load_dir(&mut self, dir: impl AsRef<Path>) -> Result<usize, GrokError> {
        let dir = dir.as_ref();
        let io = |source| GrokError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let dotted = entry.file_name().to_string_lossy().contains('.');
            if !dotted && entry.file_type().map_err(io)?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        let mut total = 0;
        for f in files {
            total += self.load_file(&f)?;
        }
        Ok(total)
    }

    /// Loads one pattern file; returns the number of definitions read.
    pub fn load_file(&mut self, path: impl AsRef<Path>) -> Result<usize, GrokError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GrokError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(self.load_str(&text, Arc::from(path)))
    }

    /// Loads definitions from pattern-file text (`NAME<whitespace>regex` per line).
    ///
    /// Lines that are not definitions (comments, blank lines, anything not starting with
    /// `\w+` followed by whitespace) are ignored, as CrowdSec does.
    fn load_str(&mut self, text: &str, path: Arc<Path>) -> usize {
        let mut count = 0;
        for (idx, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let Some((name, def)) = split_definition(line) else {
                continue;
            };
            self.defs.insert(
                name.to_owned(),
                Definition {
                    text: def.to_owned(),
                    origin: Origin::File {
                        path: Arc::clone(&path),
                        line: idx + 1,
                    },
                },
            );
            count += 1;
        }
        count
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// The raw (unexpanded) definition of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.defs.get(name).map(|d| d.text.as_str())
    }

    pub(crate) fn get_entry(&self, name: &str) -> Option<(&str, &Definition)> {
        self.defs.get_key_value(name).map(|(k, v)| (k.as_str(), v))
    }

    /// All defined names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    /// Number of definitions.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether the set has no definitions.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Expands `pattern` against this set and compiles it.
    pub fn compile(&self, pattern: &str) -> Result<Grok, GrokError> {
        let expansion = expand::expand(self, pattern)?;
        Grok::build(pattern, expansion)
    }

    /// The regex `pattern` expands to, as handed to the regex engine; for diagnostics.
    pub fn expand(&self, pattern: &str) -> Result<String, GrokError> {
        expand::expand(self, pattern).map(|e| e.regex)
    }
}

fn split_definition(line: &str) -> Option<(&str, &str)> {
    let name_len = line.bytes().take_while(|b| is_word_byte(*b)).count();
    if name_len == 0 {
        return None;
    }
    let (name, rest) = line.split_at(name_len);
    let def = rest.trim_start();
    // A name must be followed by whitespace and a non-empty definition.
    (def.len() < rest.len() && !def.is_empty()).then_some((name, def))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_lines() {
        assert_eq!(split_definition("FOO  a b "), Some(("FOO", "a b ")));
        assert_eq!(split_definition("FOO\t%{BAR}"), Some(("FOO", "%{BAR}")));
        assert_eq!(split_definition("# comment"), None);
        assert_eq!(split_definition(""), None);
        assert_eq!(split_definition("FOO"), None);
        assert_eq!(split_definition("FOO-BAR x"), None);
    }

    #[test]
    fn load_str_and_override() {
        let mut set = PatternSet::empty();
        let n = set.load_str("# c\n\nA a\r\nB %{A}b\nA z\n", Arc::from(Path::new("mem")));
        assert_eq!(n, 3);
        assert_eq!(set.get("A"), Some("z"));
        assert!(set.add("bad name", "x").is_err());
        assert!(set.add("C", "c").is_ok());
        assert_eq!(set.len(), 3);
    }
}
