//! The crate's one error type. Every message names what failed and where, and ends with what
//! to do next, because these errors end up in front of an operator, not a programmer.

use std::path::PathBuf;

/// What can go wrong while reading a hub or changing an installation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The local copy of the index is missing.
    #[error(
        "no hub index at {}: run `rampart hub update` to fetch it (`--hub-url DIR|URL` chooses the hub)",
        path.display()
    )]
    NoIndex {
        /// Where it was expected.
        path: PathBuf,
    },
    /// The index is not JSON, or not shaped like a hub index.
    #[error(
        "{origin} is not a valid hub index: {message}; run `rampart hub update` to fetch it again"
    )]
    BadIndex {
        /// File or URL the index came from.
        origin: String,
        /// What is wrong with it (with line and column for JSON errors).
        message: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}{}", path.display(), hint_suffix(hint))]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
        /// What to do about it, when we can tell.
        hint: Option<&'static str>,
    },
    /// No item of that type and name.
    #[error("{message}")]
    NotFound {
        /// Names the item, suggests a near name and the command that lists them.
        message: String,
    },
    /// Downloaded content does not match the index's digest.
    #[error(
        "{item} {version} from {origin}: sha256 {got} does not match the index ({want}); the hub is inconsistent or the download was altered: run `rampart hub update` and try again"
    )]
    HashMismatch {
        /// `type:name`.
        item: String,
        /// The version that was expected.
        version: String,
        /// Where the content came from.
        origin: String,
        /// Digest of what was received.
        got: String,
        /// Digest the index gives for that version.
        want: String,
    },
    /// A network or hub-directory fetch failed.
    #[error("cannot fetch {url}: {message}{}", hint_suffix(hint))]
    Fetch {
        /// URL or path.
        url: String,
        /// Why.
        message: String,
        /// What to do about it.
        hint: Option<&'static str>,
    },
    /// The requested change would destroy something the user made.
    #[error("{0}")]
    Conflict(String),
    /// Input that is unsafe or malformed (paths escaping their directory, dependency cycles).
    #[error("{0}")]
    Invalid(String),
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!(" ({h})")).unwrap_or_default()
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> HubError {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                Some("run as root, or choose writable directories with --config-dir and --hub-dir")
            }
            _ => None,
        };
        HubError::Io {
            path: path.into(),
            source,
            hint,
        }
    }
}
