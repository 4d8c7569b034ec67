//! Bouncers: remediation components authenticated by an API key, stored as its SHA-512 hex
//! digest (CrowdSec's format, so keys carry over from a CrowdSec database).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, now_ms};

/// A bouncer as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bouncer {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// SHA-512 hex of its API key.
    pub api_key_hash: String,
    /// Revoked keys are refused.
    pub revoked: bool,
    /// Last IP seen.
    pub ip_address: String,
    /// Type from its User-Agent (`crowdsec-firewall-bouncer`).
    pub kind: String,
    /// Version from its User-Agent.
    pub version: String,
    /// Last decisions pull (ms).
    pub last_pull: Option<i64>,
    /// `api-key` or `tls`.
    pub auth_type: String,
    /// Created by the LAPI itself (TLS, shared keys).
    pub auto_created: bool,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

/// A bouncer to create.
#[derive(Debug, Clone, Default)]
pub struct NewBouncer {
    /// Unique name.
    pub name: String,
    /// SHA-512 hex of its API key.
    pub api_key_hash: String,
    /// `api-key` or `tls`.
    pub auth_type: String,
    /// Created by the LAPI itself.
    pub auto_created: bool,
    /// IP it was created from.
    pub ip_address: String,
}

const COLS: &str = "id, name, api_key, revoked, ip_address, type, version, last_pull, auth_type, auto_created, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<Bouncer, sqlx::Error> {
    Ok(Bouncer {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        api_key_hash: r.try_get("api_key")?,
        revoked: r.try_get::<i64, _>("revoked")? != 0,
        ip_address: r.try_get("ip_address")?,
        kind: r.try_get("type")?,
        version: r.try_get("version")?,
        last_pull: r.try_get("last_pull")?,
        auth_type: r.try_get("auth_type")?,
        auto_created: r.try_get::<i64, _>("auto_created")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a bouncer; [`StoreError::Exists`] when the name is taken.
    pub async fn create_bouncer(&self, b: &NewBouncer) -> Result<Bouncer, StoreError> {
        let now = now_ms();
        sqlx::query(self.sql(
            "INSERT INTO bouncers (name, api_key, auth_type, auto_created, ip_address, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&b.name)
        .bind(&b.api_key_hash)
        .bind(&b.auth_type)
        .bind(i64::from(b.auto_created))
        .bind(&b.ip_address)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_insert(e, || format!("bouncer '{}'", b.name)))?;
        self.bouncer(&b.name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("bouncer '{}'", b.name)))
    }

    /// One bouncer by name.
    pub async fn bouncer(&self, name: &str) -> Result<Option<Bouncer>, StoreError> {
        let row = sqlx::query(self.sql(&format!("SELECT {COLS} FROM bouncers WHERE name = ?")))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every bouncer, oldest first.
    pub async fn bouncers(&self) -> Result<Vec<Bouncer>, StoreError> {
        let rows = sqlx::query(self.sql(&format!("SELECT {COLS} FROM bouncers ORDER BY id")))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a bouncer.
    pub async fn delete_bouncer(&self, name: &str) -> Result<(), StoreError> {
        let n = sqlx::query(self.sql("DELETE FROM bouncers WHERE name = ?"))
            .bind(name)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("bouncer '{name}'")));
        }
        Ok(())
    }

    /// Records what a request tells about a bouncer: IP, User-Agent type/version, last pull.
    pub async fn bouncer_seen(
        &self,
        name: &str,
        ip: &str,
        kind: &str,
        version: &str,
        last_pull: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        match last_pull {
            Some(p) => {
                sqlx::query(self.sql(
                    "UPDATE bouncers SET ip_address = ?, type = ?, version = ?, last_pull = ?, updated_at = ? WHERE name = ?",
                ))
                .bind(ip)
                .bind(kind)
                .bind(version)
                .bind(p)
                .bind(now)
                .bind(name)
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query(self.sql(
                    "UPDATE bouncers SET ip_address = ?, type = ?, version = ?, updated_at = ? WHERE name = ?",
                ))
                .bind(ip)
                .bind(kind)
                .bind(version)
                .bind(now)
                .bind(name)
                .execute(self.pool())
                .await?;
            }
        }
        Ok(())
    }
}
