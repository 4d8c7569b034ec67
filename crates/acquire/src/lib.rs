//! Log acquisition for Rampart: files, journald, a syslog server and stdin.
//!
//! Every source sends [`Line`]s into one bounded channel, so a burst blocks the readers instead of
//! growing memory.
//! Each line carries an [`Ack`]: the consumer calls [`Ack::done`] once the line is fully processed,
//! and a source's position is persisted only up to its last contiguous done line (lines may be
//! finished out of order by parallel workers), so a restart neither loses nor repeats lines.
//!
//! Files are identified by device, inode and a fingerprint of their first bytes, which makes
//! rename rotation, copytruncate (including reading the copy for lines the truncation took away),
//! compressed rotated copies and restarts safe.

mod ack;
mod acquisition;
mod config;
mod error;
mod file;
mod journal;
mod split;
mod state;
mod stdin;
mod syslog;

use std::collections::HashMap;
use std::sync::Arc;

pub use ack::Ack;
pub use acquisition::{Acquisition, PositionHold, PositionSaver};
pub use config::{
    FileSpec, JournalSpec, Mode, SourceKind, SourceSpec, SyslogSpec, dsn_spec, load_acquis,
};
pub use error::AcquireError;
pub use state::merge_positions;
pub use syslog::render_syslog;

/// One log line, as a datasource read it.
#[derive(Debug)]
pub struct Line {
    /// The line without its line ending, invalid UTF-8 replaced.
    pub raw: String,
    /// Where it came from: file path, journal filters, syslog peer address, `stdin`.
    pub src: String,
    /// Datasource: `file`, `journalctl`, `syslog` or `stdin`.
    pub module: &'static str,
    /// The source's labels (`type` selects parsers).
    pub labels: Arc<HashMap<String, String>>,
    /// Acquisition time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Call [`Ack::done`] when the line is fully processed.
    pub ack: Ack,
}
