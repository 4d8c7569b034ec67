use thiserror::Error;

/// What a database operation can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL names no backend Rampart supports.
    #[error("unsupported database URL '{0}': use sqlite://PATH, postgres://... or mysql://...")]
    BadUrl(String),
    /// A unique name is taken (machine id, bouncer name, allowlist name).
    #[error("{0} already exists")]
    Exists(String),
    /// The row asked for is not there.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value could not be read back (corrupt or foreign row).
    #[error("database row {table}#{id}: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Row id.
        id: i64,
        /// What is wrong.
        reason: String,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the error is a unique-constraint violation (two writers racing for one name).
    pub(crate) fn from_insert(e: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Self::Exists(what());
        }
        Self::Sql(e)
    }
}
