//! Machines (watchers): agents and admin clients that log in with a password (stored as bcrypt,
//! as CrowdSec does) or a TLS client certificate.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, now_ms};

/// A machine as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    /// Row id.
    pub id: i64,
    /// Login.
    pub machine_id: String,
    /// bcrypt hash of the password (empty for TLS machines).
    pub password_hash: String,
    /// Last IP it logged in from.
    pub ip_address: String,
    /// Comma-joined scenarios it declared at its last login.
    pub scenarios: String,
    /// Version from its User-Agent.
    pub version: String,
    /// Admitted by an admin or an auto-registration token.
    pub is_validated: bool,
    /// `password` or `tls`.
    pub auth_type: String,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
    /// Last alert push (ms).
    pub last_push: Option<i64>,
    /// Last heartbeat (ms).
    pub last_heartbeat: Option<i64>,
    /// OS name from usage metrics.
    pub osname: String,
    /// OS version from usage metrics.
    pub osversion: String,
    /// Hub state (JSON) from usage metrics.
    pub hubstate: String,
    /// Datasources (JSON) from usage metrics.
    pub datasources: String,
}

/// A machine to create.
#[derive(Debug, Clone, Default)]
pub struct NewMachine {
    /// Login.
    pub machine_id: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// IP it registered from.
    pub ip_address: String,
    /// Validated at creation.
    pub is_validated: bool,
    /// `password` or `tls`.
    pub auth_type: String,
}

const COLS: &str = "id, machine_id, password, ip_address, scenarios, version, is_validated, auth_type, \
    created_at, updated_at, last_push, last_heartbeat, osname, osversion, hubstate, datasources";

fn from_row(r: &AnyRow) -> Result<Machine, sqlx::Error> {
    Ok(Machine {
        id: r.try_get("id")?,
        machine_id: r.try_get("machine_id")?,
        password_hash: r.try_get("password")?,
        ip_address: r.try_get("ip_address")?,
        scenarios: r
            .try_get::<Option<String>, _>("scenarios")?
            .unwrap_or_default(),
        version: r.try_get("version")?,
        is_validated: r.try_get::<i64, _>("is_validated")? != 0,
        auth_type: r.try_get("auth_type")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_push: r.try_get("last_push")?,
        last_heartbeat: r.try_get("last_heartbeat")?,
        osname: r.try_get("osname")?,
        osversion: r.try_get("osversion")?,
        hubstate: r
            .try_get::<Option<String>, _>("hubstate")?
            .unwrap_or_default(),
        datasources: r
            .try_get::<Option<String>, _>("datasources")?
            .unwrap_or_default(),
    })
}

impl Store {
    /// Creates a machine; [`StoreError::Exists`] when the id is taken.
    pub async fn create_machine(&self, m: &NewMachine) -> Result<Machine, StoreError> {
        let now = now_ms();
        sqlx::query(self.sql(
            "INSERT INTO machines (machine_id, password, ip_address, is_validated, auth_type, created_at, updated_at, scenarios) \
             VALUES (?, ?, ?, ?, ?, ?, ?, '')",
        ))
        .bind(&m.machine_id)
        .bind(&m.password_hash)
        .bind(&m.ip_address)
        .bind(i64::from(m.is_validated))
        .bind(&m.auth_type)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::from_insert(e, || format!("machine '{}'", m.machine_id)))?;
        self.machine(&m.machine_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("machine '{}'", m.machine_id)))
    }

    /// One machine by login.
    pub async fn machine(&self, machine_id: &str) -> Result<Option<Machine>, StoreError> {
        let row =
            sqlx::query(self.sql(&format!("SELECT {COLS} FROM machines WHERE machine_id = ?")))
                .bind(machine_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Every machine, oldest first.
    pub async fn machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query(self.sql(&format!("SELECT {COLS} FROM machines ORDER BY id")))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Marks a machine validated.
    pub async fn validate_machine(&self, machine_id: &str) -> Result<(), StoreError> {
        let n = sqlx::query(
            self.sql("UPDATE machines SET is_validated = 1, updated_at = ? WHERE machine_id = ?"),
        )
        .bind(now_ms())
        .bind(machine_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("machine '{machine_id}'")));
        }
        Ok(())
    }

    /// Deletes a machine (its alerts stay, attributed by name).
    pub async fn delete_machine(&self, machine_id: &str) -> Result<(), StoreError> {
        let n = sqlx::query(self.sql("DELETE FROM machines WHERE machine_id = ?"))
            .bind(machine_id)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("machine '{machine_id}'")));
        }
        Ok(())
    }

    /// Records a successful login: IP, version from the User-Agent, declared scenarios.
    pub async fn machine_logged_in(
        &self,
        machine_id: &str,
        ip: &str,
        version: &str,
        scenarios: Option<&str>,
    ) -> Result<(), StoreError> {
        let q = if scenarios.is_some() {
            "UPDATE machines SET ip_address = ?, version = ?, updated_at = ?, last_heartbeat = ?, scenarios = ? WHERE machine_id = ?"
        } else {
            "UPDATE machines SET ip_address = ?, version = ?, updated_at = ?, last_heartbeat = ? WHERE machine_id = ?"
        };
        let now = now_ms();
        let mut query = sqlx::query(self.sql(q))
            .bind(ip)
            .bind(version)
            .bind(now)
            .bind(now);
        if let Some(s) = scenarios {
            query = query.bind(s);
        }
        query.bind(machine_id).execute(self.pool()).await?;
        Ok(())
    }

    /// Updates `last_heartbeat`.
    pub async fn machine_heartbeat(&self, machine_id: &str) -> Result<(), StoreError> {
        sqlx::query(self.sql("UPDATE machines SET last_heartbeat = ? WHERE machine_id = ?"))
            .bind(now_ms())
            .bind(machine_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Updates `last_push`.
    pub async fn machine_pushed(&self, machine_id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            self.sql("UPDATE machines SET last_push = ?, last_heartbeat = ? WHERE machine_id = ?"),
        )
        .bind(now)
        .bind(now)
        .bind(machine_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores what a machine's usage metrics say about it.
    pub async fn machine_usage(
        &self,
        machine_id: &str,
        osname: &str,
        osversion: &str,
        hubstate: &str,
        datasources: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(self.sql(
            "UPDATE machines SET osname = ?, osversion = ?, hubstate = ?, datasources = ?, updated_at = ? WHERE machine_id = ?",
        ))
        .bind(osname)
        .bind(osversion)
        .bind(hubstate)
        .bind(datasources)
        .bind(now_ms())
        .bind(machine_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
