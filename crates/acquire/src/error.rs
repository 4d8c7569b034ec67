use std::path::PathBuf;

/// Errors of configuration loading and of starting sources.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// A file or directory could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        err: std::io::Error,
    },
    /// A YAML file is not valid YAML.
    #[error("{file}: invalid YAML: {message}")]
    Yaml {
        /// The acquisition file.
        file: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A datasource document is invalid.
    #[error("{file}, document {doc} (line {line}): {message}")]
    Config {
        /// The acquisition file.
        file: PathBuf,
        /// 1-based document number in the file.
        doc: usize,
        /// 1-based line of the offending key or document.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A replay DSN is invalid.
    #[error("invalid DSN `{dsn}`: {message}")]
    Dsn {
        /// The DSN as given.
        dsn: String,
        /// What is wrong.
        message: String,
    },
    /// `journalctl` cannot be run.
    #[error(
        "journalctl source `{filters}`: cannot run `{program}` ({detail}); install systemd's journalctl or remove this source"
    )]
    Journalctl {
        /// The source's filters.
        filters: String,
        /// The program that was tried.
        program: String,
        /// Why it failed.
        detail: String,
    },
    /// A syslog listener cannot be opened.
    #[error("syslog source: cannot listen on {proto} {addr}: {err}")]
    Listen {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// Address and port.
        addr: String,
        /// What went wrong.
        #[source]
        err: std::io::Error,
    },
    /// A source cannot be started for another reason.
    #[error("{origin}: {message}")]
    Source {
        /// Where the source was configured.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl AcquireError {
    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        AcquireError::Io {
            path: path.into(),
            err,
        }
    }
}
