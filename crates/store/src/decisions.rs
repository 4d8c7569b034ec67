//! Decision rows. The LAPI answers bouncers from memory; this module persists what it holds and
//! reloads it at start.

use model::{Decision, IpRange, format_remaining};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, now_ms};

/// A decision as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDecision {
    /// Row id; increases with creation.
    pub id: i64,
    /// The alert it belongs to.
    pub alert_id: i64,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms); deleting a decision sets `until` and this to now.
    pub updated_at: i64,
    /// Expiry (ms).
    pub until: i64,
    /// Scenario or reason.
    pub scenario: String,
    /// `ban`, `captcha`...
    pub kind: String,
    /// Normalised scope.
    pub scope: String,
    /// Target value.
    pub value: String,
    /// Origin.
    pub origin: String,
    /// Simulation mode.
    pub simulated: bool,
    /// Stable id.
    pub uuid: String,
    /// Address interval for `Ip`/`Range` scopes.
    pub range: Option<IpRange>,
}

impl StoredDecision {
    /// The API shape, with `duration` as the time left at `now_ms`.
    pub fn to_model(&self, now_ms: i64, with_until: bool) -> Decision {
        Decision {
            duration: format_remaining((self.until - now_ms).saturating_mul(1_000_000)),
            id: self.id,
            origin: self.origin.clone(),
            scenario: self.scenario.clone(),
            scope: self.scope.clone(),
            simulated: self.simulated,
            kind: self.kind.clone(),
            until: if with_until {
                ms_to_rfc3339(self.until)
            } else {
                String::new()
            },
            uuid: self.uuid.clone(),
            value: self.value.clone(),
        }
    }
}

/// RFC 3339 text of a millisecond timestamp.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// A decision to store with its alert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewDecision {
    /// Expiry (ms).
    pub until: i64,
    /// Scenario or reason.
    pub scenario: String,
    /// `ban`, `captcha`...
    pub kind: String,
    /// Normalised scope.
    pub scope: String,
    /// Target value.
    pub value: String,
    /// Origin.
    pub origin: String,
    /// Simulation mode.
    pub simulated: bool,
    /// Stable id (the caller makes it, so it can match rows to what it sent).
    pub uuid: String,
    /// Address interval for `Ip`/`Range` scopes.
    pub range: Option<IpRange>,
}

pub(crate) const COLS: &str = "id, alert_id, created_at, updated_at, until, scenario, type, scope, value, origin, simulated, uuid, \
    ip_size, start_ip, start_suffix, end_ip, end_suffix";

pub(crate) fn from_row(r: &AnyRow) -> Result<StoredDecision, sqlx::Error> {
    let size: i64 = r.try_get(12)?;
    let range = IpRange::from_columns(
        size,
        r.try_get(13)?,
        r.try_get(14)?,
        r.try_get(15)?,
        r.try_get(16)?,
    );
    Ok(StoredDecision {
        id: r.try_get(0)?,
        alert_id: r.try_get(1)?,
        created_at: r.try_get(2)?,
        updated_at: r.try_get(3)?,
        until: r.try_get(4)?,
        scenario: r.try_get(5)?,
        kind: r.try_get(6)?,
        scope: r.try_get(7)?,
        value: r.try_get(8)?,
        origin: r.try_get(9)?,
        simulated: r.try_get::<i64, _>(10)? != 0,
        uuid: r.try_get(11)?,
        range,
    })
}

/// Rows per multi-row statement: 17 columns × 500 stays under every backend's bind limit.
pub(crate) const CHUNK: usize = 500;

impl Store {
    /// Decisions whose expiry is after `until_after` (ms), in id order: what the LAPI's memory
    /// index holds (active ones plus recently expired ones, for the stream's `deleted`).
    pub async fn decisions_until_after(
        &self,
        until_after: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {COLS} FROM decisions WHERE until > ? ORDER BY id"
        )))
        .bind(until_after)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Decisions that ended in `(after, up_to]` (ms), in id order.
    pub async fn decisions_until_between(
        &self,
        after: i64,
        up_to: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {COLS} FROM decisions WHERE until > ? AND until <= ? ORDER BY id"
        )))
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Decisions changed after `updated_after` (ms): how a replica catches up with another's
    /// writes.
    pub async fn decisions_updated_after(
        &self,
        updated_after: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {COLS} FROM decisions WHERE updated_at > ? ORDER BY id"
        )))
        .bind(updated_after)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Decisions by id.
    pub async fn decisions_by_id(&self, ids: &[i64]) -> Result<Vec<StoredDecision>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let q = format!(
                "SELECT {COLS} FROM decisions WHERE id IN ({}) ORDER BY id",
                marks(chunk.len())
            );
            let mut query = sqlx::query(self.sql(&q));
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(self.pool()).await? {
                out.push(from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// Sets `until` (and `updated_at`) of these decisions to `at` (ms): how decisions are deleted,
    /// so that bouncers learn about it from the stream's `deleted`.
    pub async fn expire_decisions(&self, ids: &[i64], at: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut tx = self.pool().begin().await?;
        for chunk in ids.chunks(CHUNK) {
            let q = format!(
                "UPDATE decisions SET until = ?, updated_at = ? WHERE id IN ({})",
                marks(chunk.len())
            );
            let mut query = sqlx::query(self.sql(&q)).bind(at).bind(at);
            for id in chunk {
                query = query.bind(*id);
            }
            n += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// `(created_at, until)` of every decision ever taken against `value`, for the profile
    /// helpers that count repeat offences (`GetDecisionsCount`...).
    pub async fn decision_history(&self, value: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(self.sql("SELECT created_at, until FROM decisions WHERE value = ?"))
            .bind(value)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Number of decisions still active.
    pub async fn count_active_decisions(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(self.sql("SELECT COUNT(*) FROM decisions WHERE until > ?"))
                .bind(now_ms())
                .fetch_one(self.pool())
                .await?,
        )
    }
}

/// `?, ?, ?` for `n` values.
pub(crate) fn marks(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}
