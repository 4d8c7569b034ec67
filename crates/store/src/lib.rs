//! The LAPI's database. One [`Store`] type speaks SQLite (the default: bundled, WAL), PostgreSQL
//! and MySQL/MariaDB through sqlx's `Any` driver; the few places where the dialects differ
//! (placeholders, DDL types) are rendered by [`Dialect`], so every query is written once and the
//! same test suite runs against all three real servers.
//!
//! Times are stored as Unix milliseconds (`BIGINT`), which every backend compares and indexes the
//! same way; IP ranges use CrowdSec's signed-integer columns so range queries are plain integer
//! comparisons. Reads that must be fast (decision lookups, the bouncer stream) are not served from
//! here: the LAPI keeps those in memory and only loads them from the database at start.

mod alerts;
mod bouncers;
mod decisions;
mod dialect;
mod error;
mod machines;
mod misc;
mod schema;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use alerts::{AlertFilter, NewAlert, StoredAlert};
pub use bouncers::{Bouncer, NewBouncer};
pub use decisions::{NewDecision, StoredDecision, ms_to_rfc3339};
pub use dialect::Dialect;
pub use error::StoreError;
pub use machines::{Machine, NewMachine};
pub use misc::{Allowlist, AllowlistItem, FlushPolicy, FlushReport};

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .finish()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Connects (creating a SQLite file if needed) and brings the schema up to date.
    /// URLs: `sqlite:///abs/path.db`, `sqlite://rel.db`, `sqlite::memory:`, `postgres://...`,
    /// `mysql://...` (MariaDB too).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url).ok_or_else(|| StoreError::BadUrl(url.to_owned()))?;
        let mut url_owned = url.to_owned();
        if dialect == Dialect::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            url_owned.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let opts = AnyConnectOptions::from_str(&url_owned)?.disable_statement_logging();
        let max = match dialect {
            // SQLite has one writer at a time; a few readers beside it is all that helps.
            Dialect::Sqlite if url.contains(":memory:") => 1,
            Dialect::Sqlite => 4,
            _ => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL + NORMAL: ~14x faster small writes than the rollback journal, and
                        // readers never wait for a writer (CrowdSec's "database is locked").
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 30000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    } else if dialect == Dialect::Mysql {
                        sqlx::query("SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_TRANS_TABLES'")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let store = Self {
            pool,
            dialect,
            url: url.to_owned(),
        };
        schema::migrate(&store).await?;
        Ok(store)
    }

    /// Which backend this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL it was opened with (for PostgreSQL LISTEN connections).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Renders a query written with `?` placeholders for this backend.
    pub(crate) fn sql(&self, q: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.dialect.placeholders(q))
    }
}
