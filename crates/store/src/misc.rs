//! Usage metrics, key/value config items, allowlists and the retention (flush) job.

use model::IpRange;
use sqlx::Row;

use crate::decisions::{CHUNK, marks};
use crate::{Store, StoreError, now_ms};

/// An allowlist and its items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
    /// Entries.
    pub items: Vec<AllowlistItem>,
}

/// One allowlisted IP or range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowlistItem {
    /// IP or CIDR as given.
    pub value: String,
    /// Why it is allowlisted.
    pub comment: String,
    /// Created (ms).
    pub created_at: i64,
    /// Expiry (ms); `None` = never.
    pub expires_at: Option<i64>,
}

/// Retention: how much history the database keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlushPolicy {
    /// Keep at most this many alerts (oldest go first).
    pub max_items: Option<i64>,
    /// Delete alerts created longer ago than this (ms).
    pub max_age_ms: Option<i64>,
    /// Delete usage metrics older than this (ms).
    pub metrics_max_age_ms: Option<i64>,
}

/// What a flush removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushReport {
    /// Alerts deleted.
    pub alerts: u64,
    /// Ids of decisions deleted with them (all expired: alerts with an active decision stay).
    pub decision_ids: Vec<i64>,
    /// Metrics rows deleted.
    pub metrics: u64,
}

impl Store {
    /// Stores one usage-metrics payload.
    pub async fn insert_metrics(
        &self,
        generated_type: &str,
        generated_by: &str,
        payload: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(self.sql(
            "INSERT INTO metrics (generated_type, generated_by, received_at, payload) VALUES (?, ?, ?, ?)",
        ))
        .bind(generated_type)
        .bind(generated_by)
        .bind(now_ms())
        .bind(payload)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Number of stored metrics payloads from one component.
    pub async fn count_metrics(&self, generated_by: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(self.sql("SELECT COUNT(*) FROM metrics WHERE generated_by = ?"))
                .bind(generated_by)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// A config item (`None` when unset).
    pub async fn config_item(&self, name: &str) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> =
            sqlx::query_scalar(self.sql("SELECT value FROM config_items WHERE name = ?"))
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        Ok(v.flatten())
    }

    /// Sets a config item.
    pub async fn set_config_item(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let n = sqlx::query(self.sql("UPDATE config_items SET value = ? WHERE name = ?"))
            .bind(value)
            .bind(name)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            sqlx::query(self.sql("INSERT INTO config_items (name, value) VALUES (?, ?)"))
                .bind(name)
                .bind(value)
                .execute(self.pool())
                .await
                .map_err(|e| StoreError::from_insert(e, || format!("config item '{name}'")))?;
        }
        Ok(())
    }

    /// Creates an allowlist.
    pub async fn create_allowlist(&self, name: &str, description: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(self.sql("INSERT INTO allowlists (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)"))
            .bind(name)
            .bind(description)
            .bind(now)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::from_insert(e, || format!("allowlist '{name}'")))?;
        Ok(())
    }

    /// Deletes an allowlist and its items.
    pub async fn delete_allowlist(&self, name: &str) -> Result<(), StoreError> {
        let id = self.allowlist_id(name).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(self.sql("DELETE FROM allowlist_items WHERE allowlist_id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql("DELETE FROM allowlists WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn allowlist_id(&self, name: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(self.sql("SELECT id FROM allowlists WHERE name = ?"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("allowlist '{name}'")))
    }

    /// Adds items (IPs or CIDRs; the caller validated them) to an allowlist.
    pub async fn add_allowlist_items(
        &self,
        name: &str,
        items: &[AllowlistItem],
    ) -> Result<(), StoreError> {
        let id = self.allowlist_id(name).await?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for it in items {
            let (size, si, ss, ei, es) =
                IpRange::parse(&it.value).map_or((0, 0, 0, 0, 0), |r| r.to_columns());
            sqlx::query(self.sql(
                "INSERT INTO allowlist_items (allowlist_id, value, comment, created_at, expires_at, ip_size, start_ip, start_suffix, end_ip, end_suffix) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(id)
            .bind(&it.value)
            .bind(&it.comment)
            .bind(now)
            .bind(it.expires_at)
            .bind(size)
            .bind(si)
            .bind(ss)
            .bind(ei)
            .bind(es)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(self.sql("UPDATE allowlists SET updated_at = ? WHERE id = ?"))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes items by value.
    pub async fn remove_allowlist_items(
        &self,
        name: &str,
        values: &[String],
    ) -> Result<u64, StoreError> {
        let id = self.allowlist_id(name).await?;
        let mut n = 0;
        for chunk in values.chunks(CHUNK) {
            let mut q = sqlx::query(self.sql(&format!(
                "DELETE FROM allowlist_items WHERE allowlist_id = ? AND value IN ({})",
                marks(chunk.len())
            )))
            .bind(id);
            for v in chunk {
                q = q.bind(v.as_str());
            }
            n += q.execute(self.pool()).await?.rows_affected();
        }
        Ok(n)
    }

    /// Every allowlist with its unexpired items.
    pub async fn allowlists(&self) -> Result<Vec<Allowlist>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, description, created_at, updated_at FROM allowlists ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut lists = Vec::with_capacity(rows.len());
        for r in &rows {
            lists.push(Allowlist {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                description: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                created_at: r.try_get(3)?,
                updated_at: r.try_get(4)?,
                items: Vec::new(),
            });
        }
        let now = now_ms();
        let rows = sqlx::query(self.sql(
            "SELECT allowlist_id, value, comment, created_at, expires_at FROM allowlist_items \
             WHERE expires_at IS NULL OR expires_at > ? ORDER BY id",
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let list: i64 = r.try_get(0)?;
            if let Some(l) = lists.iter_mut().find(|l| l.id == list) {
                l.items.push(AllowlistItem {
                    value: r.try_get(1)?,
                    comment: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                    created_at: r.try_get(3)?,
                    expires_at: r.try_get(4)?,
                });
            }
        }
        Ok(lists)
    }

    /// Applies a retention policy. Alerts that still carry an active decision are never deleted
    /// (deleting them would silently lift bans).
    pub async fn flush(&self, p: &FlushPolicy) -> Result<FlushReport, StoreError> {
        let now = now_ms();
        let mut report = FlushReport::default();
        let keep_active =
            "NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = alerts.id AND d.until > ?)";
        let mut victims: Vec<i64> = Vec::new();
        if let Some(age) = p.max_age_ms {
            let rows = sqlx::query(self.sql(&format!(
                "SELECT id FROM alerts WHERE created_at < ? AND {keep_active}"
            )))
            .bind(now - age)
            .bind(now)
            .fetch_all(self.pool())
            .await?;
            for r in &rows {
                victims.push(r.try_get(0)?);
            }
        }
        if let Some(max) = p.max_items {
            let max_id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM alerts")
                .fetch_one(self.pool())
                .await?;
            if let Some(max_id) = max_id {
                let rows = sqlx::query(self.sql(&format!(
                    "SELECT id FROM alerts WHERE id <= ? AND {keep_active}"
                )))
                .bind(max_id - max)
                .bind(now)
                .fetch_all(self.pool())
                .await?;
                for r in &rows {
                    victims.push(r.try_get(0)?);
                }
            }
        }
        victims.sort_unstable();
        victims.dedup();
        if !victims.is_empty() {
            let (n, ids) = self.delete_alerts_by_id(&victims).await?;
            report.alerts = n;
            report.decision_ids = ids;
        }
        if let Some(age) = p.metrics_max_age_ms {
            report.metrics = sqlx::query(self.sql("DELETE FROM metrics WHERE received_at < ?"))
                .bind(now - age)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(report)
    }
}

impl Store {
    /// PostgreSQL `NOTIFY` (a no-op elsewhere): tells other replicas that decisions changed.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.dialect() == crate::Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}
