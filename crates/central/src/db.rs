//! PostgreSQL storage of the central server.
//!
//! Storage is bounded by design:
//! * `central_signals` holds every accepted signal verbatim (audit, re-scoring), partitioned by
//!   day of arrival; a day past `signal_retention_days` is dropped as a whole partition, which
//!   costs nothing, so months of signals stay fast to insert and to query by day. A DEFAULT
//!   partition catches rows if maintenance ever lags, so no accepted signal is refused.
//! * `central_reports` is what the consensus reads: one row per (IP, machine) with first/last
//!   seen and a count, upserted with each signal in the same transaction. Its size is the number
//!   of distinct (IP, machine) pairs within the consensus window, whatever the signal volume.
//! * `central_blocklist` is the list with a change sequence: each listing or delisting takes the
//!   next value, so a LAPI's pull is `seq > its cursor`. Only the consensus job writes it, under
//!   an advisory lock, one transaction per pass, so a reader never sees a gap below the highest
//!   sequence it sees.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::consensus::{Change, Evidence, MachineStats, Outcome};
use crate::network;

const MIGRATIONS: &[(i64, &str)] = &[(1, V1)];

const V1: &str = r"
CREATE TABLE central_machines (
    id BIGSERIAL PRIMARY KEY,
    machine_id TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_login BIGINT,
    last_push BIGINT,
    last_pull BIGINT,
    ip_address TEXT NOT NULL DEFAULT '',
    network TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    scenarios TEXT NOT NULL DEFAULT '',
    confirmed BIGINT NOT NULL DEFAULT 0,
    false_positives BIGINT NOT NULL DEFAULT 0,
    signals BIGINT NOT NULL DEFAULT 0,
    pull_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE central_signals (
    received_at BIGINT NOT NULL,
    machine BIGINT NOT NULL,
    network TEXT NOT NULL,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    scenario TEXT NOT NULL,
    scenario_hash TEXT NOT NULL,
    scenario_version TEXT NOT NULL,
    scenario_trust TEXT NOT NULL,
    alert_uuid TEXT NOT NULL,
    start_at TEXT NOT NULL,
    stop_at TEXT NOT NULL,
    as_number TEXT NOT NULL,
    country TEXT NOT NULL
) PARTITION BY RANGE (received_at);
CREATE TABLE central_signals_default PARTITION OF central_signals DEFAULT;
CREATE INDEX central_signals_value ON central_signals (value);
CREATE TABLE central_reports (
    ip TEXT NOT NULL,
    machine BIGINT NOT NULL,
    network TEXT NOT NULL,
    scenario TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    count BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (ip, machine)
);
CREATE INDEX central_reports_updated_at ON central_reports (updated_at);
CREATE INDEX central_reports_last_seen ON central_reports (last_seen);
CREATE TABLE central_confirmed (
    ip TEXT PRIMARY KEY,
    confirmed_at BIGINT NOT NULL
);
CREATE SEQUENCE central_blocklist_seq;
CREATE TABLE central_blocklist (
    ip TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    scenario TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    networks BIGINT NOT NULL,
    machines BIGINT NOT NULL,
    first_report BIGINT NOT NULL,
    listed_at BIGINT NOT NULL,
    deleted_at BIGINT,
    seq BIGINT NOT NULL
);
CREATE INDEX central_blocklist_seq_idx ON central_blocklist (seq);
CREATE TABLE central_metrics (
    id BIGSERIAL PRIMARY KEY,
    machine BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX central_metrics_received_at ON central_metrics (received_at);
CREATE TABLE central_kv (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
";

/// The advisory lock key of the consensus job ("RAMP").
const JOB_LOCK: i64 = 0x5241_4d50;

/// A registered machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRow {
    /// Row id (the engine's machine key).
    pub id: i64,
    /// Login.
    pub machine_id: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// Network at the latest login.
    pub network: String,
    /// Registration (ms).
    pub created_at: i64,
    /// Confirmed reports.
    pub confirmed: i64,
    /// False positives.
    pub false_positives: i64,
    /// Signals accepted.
    pub signals: i64,
    /// Stream cursor.
    pub pull_seq: i64,
}

/// One accepted signal, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalRow {
    /// `Ip`, `Range` or another scope.
    pub scope: String,
    /// The attacker.
    pub value: String,
    /// Scenario.
    pub scenario: String,
    /// Scenario hash.
    pub scenario_hash: String,
    /// Scenario version.
    pub scenario_version: String,
    /// `certified`, `custom`...
    pub scenario_trust: String,
    /// Alert UUID.
    pub alert_uuid: String,
    /// RFC 3339.
    pub start_at: String,
    /// RFC 3339.
    pub stop_at: String,
    /// Attacker's AS, as the reporter enriched it.
    pub as_number: String,
    /// Attacker's country.
    pub country: String,
}

/// The consensus input a signal adds.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// IP or range.
    pub ip: String,
    /// Scenario.
    pub scenario: String,
    /// Weight.
    pub weight: f64,
    /// Signals folded in.
    pub count: i64,
}

/// A listed (or recently delisted) value.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRow {
    /// IP or range.
    pub value: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// Scenario with the most weight.
    pub scenario: String,
    /// Score when listed.
    pub score: f64,
    /// When listed (ms).
    pub listed_at: i64,
    /// First report (ms).
    pub first_report: i64,
}

/// A stream answer for one machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pull {
    /// Listed now.
    pub new: Vec<ListedRow>,
    /// Delisted since the machine's previous pull.
    pub deleted: Vec<ListedRow>,
}

/// The central database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
}

fn scope_of(value: &str) -> &'static str {
    if value.contains('/') {
        model::scope::RANGE
    } else {
        model::scope::IP
    }
}

fn listed_from_row(r: &sqlx::postgres::PgRow) -> Result<ListedRow, sqlx::Error> {
    Ok(ListedRow {
        value: r.try_get("ip")?,
        scope: r.try_get("scope")?,
        scenario: r.try_get("scenario")?,
        score: r.try_get("score")?,
        listed_at: r.try_get("listed_at")?,
        first_report: r.try_get("first_report")?,
    })
}

impl Db {
    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await?;
        let db = Self { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Two replicas starting together must not both migrate.
        sqlx::query("SELECT pg_advisory_xact_lock(5)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS central_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM central_schema")
            .fetch_one(&mut *tx)
            .await?;
        for (version, ddl) in MIGRATIONS {
            if *version <= current.unwrap_or(0) {
                continue;
            }
            for stmt in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned()))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO central_schema (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::store_now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    // ----------------------------------------------------------------------------- machines

    /// Registers a machine; `false` when the id is taken.
    pub async fn register(
        &self,
        machine_id: &str,
        password_hash: &str,
        ip: &str,
        network: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "INSERT INTO central_machines (machine_id, password_hash, created_at, ip_address, network) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (machine_id) DO NOTHING",
        )
        .bind(machine_id)
        .bind(password_hash)
        .bind(now)
        .bind(ip)
        .bind(network)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A machine by login.
    pub async fn machine(&self, machine_id: &str) -> Result<Option<MachineRow>, sqlx::Error> {
        let r = sqlx::query(
            "SELECT id, machine_id, password_hash, network, created_at, confirmed, false_positives, signals, pull_seq \
             FROM central_machines WHERE machine_id = $1",
        )
        .bind(machine_id)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| {
            Ok(MachineRow {
                id: r.try_get(0)?,
                machine_id: r.try_get(1)?,
                password_hash: r.try_get(2)?,
                network: r.try_get(3)?,
                created_at: r.try_get(4)?,
                confirmed: r.try_get(5)?,
                false_positives: r.try_get(6)?,
                signals: r.try_get(7)?,
                pull_seq: r.try_get(8)?,
            })
        })
        .transpose()
    }

    /// Records a login: where from, which version, which scenarios.
    pub async fn logged_in(
        &self,
        id: i64,
        ip: &str,
        network: &str,
        version: &str,
        scenarios: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE central_machines SET last_login = $1, ip_address = $2, network = $3, version = $4, \
             scenarios = CASE WHEN $5 = '' THEN scenarios ELSE $5 END WHERE id = $6",
        )
        .bind(now)
        .bind(ip)
        .bind(network)
        .bind(version)
        .bind(scenarios)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The network a machine was last seen from.
    pub async fn machine_network(&self, id: i64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT network FROM central_machines WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    // ------------------------------------------------------------------------------ signals

    /// Stores a batch of signals, folds them into the report aggregate and counts false
    /// positives, in one transaction: once this returns, the signals survive a restart.
    pub async fn insert_signals(
        &self,
        machine: i64,
        network: &str,
        signals: &[SignalRow],
        reports: &[ReportRow],
        false_positives: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !signals.is_empty() {
            let col = |f: fn(&SignalRow) -> &String| -> Vec<String> {
                signals.iter().map(|s| f(s).clone()).collect()
            };
            sqlx::query(
                "INSERT INTO central_signals (received_at, machine, network, scope, value, scenario, scenario_hash, \
                 scenario_version, scenario_trust, alert_uuid, start_at, stop_at, as_number, country) \
                 SELECT $1, $2, $3, * FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                 $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])",
            )
            .bind(now)
            .bind(machine)
            .bind(network)
            .bind(col(|s| &s.scope))
            .bind(col(|s| &s.value))
            .bind(col(|s| &s.scenario))
            .bind(col(|s| &s.scenario_hash))
            .bind(col(|s| &s.scenario_version))
            .bind(col(|s| &s.scenario_trust))
            .bind(col(|s| &s.alert_uuid))
            .bind(col(|s| &s.start_at))
            .bind(col(|s| &s.stop_at))
            .bind(col(|s| &s.as_number))
            .bind(col(|s| &s.country))
            .execute(&mut *tx)
            .await?;
        }
        if !reports.is_empty() {
            sqlx::query(
                "INSERT INTO central_reports (ip, machine, network, scenario, weight, first_seen, last_seen, count, updated_at) \
                 SELECT r.ip, $1, $2, r.scenario, r.weight, $3, $3, r.count, $3 \
                 FROM UNNEST($4::text[], $5::text[], $6::float8[], $7::int8[]) AS r(ip, scenario, weight, count) \
                 ON CONFLICT (ip, machine) DO UPDATE SET network = EXCLUDED.network, scenario = EXCLUDED.scenario, \
                 weight = EXCLUDED.weight, last_seen = EXCLUDED.last_seen, \
                 count = central_reports.count + EXCLUDED.count, updated_at = EXCLUDED.updated_at",
            )
            .bind(machine)
            .bind(network)
            .bind(now)
            .bind(reports.iter().map(|r| r.ip.clone()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.scenario.clone()).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.weight).collect::<Vec<_>>())
            .bind(reports.iter().map(|r| r.count).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE central_machines SET last_push = $1, signals = signals + $2, \
             false_positives = false_positives + $3 WHERE id = $4",
        )
        .bind(now)
        .bind(i64::try_from(signals.len()).unwrap_or(i64::MAX))
        .bind(false_positives)
        .bind(machine)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Signals stored, all days together.
    pub async fn count_signals(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM central_signals")
            .fetch_one(&self.pool)
            .await
    }

    /// Stores a metrics push.
    pub async fn insert_metrics(
        &self,
        machine: i64,
        kind: &str,
        payload: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO central_metrics (machine, received_at, kind, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind(machine)
        .bind(now)
        .bind(kind)
        .bind(payload)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Metrics pushes stored for a machine.
    pub async fn count_metrics(&self, machine: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM central_metrics WHERE machine = $1")
            .bind(machine)
            .fetch_one(&self.pool)
            .await
    }

    // ----------------------------------------------------------------------------- consensus

    /// Opens the consensus pass's transaction, or `None` when another replica holds the job.
    pub async fn begin_job(&self) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(JOB_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        Ok(got.then_some(tx))
    }

    /// Every machine's consensus stats.
    pub async fn machine_stats(
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<HashMap<u64, MachineStats>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT id, created_at, confirmed, false_positives FROM central_machines")
                .fetch_all(&mut **tx)
                .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            out.insert(
                id.cast_unsigned(),
                MachineStats {
                    created_at: r.try_get(1)?,
                    confirmed: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(u32::MAX),
                    false_positives: u32::try_from(r.try_get::<i64, _>(3)?).unwrap_or(u32::MAX),
                },
            );
        }
        Ok(out)
    }

    /// IPs whose reports changed after `since` (ms), plus every listed IP.
    pub async fn ips_to_evaluate(
        tx: &mut Transaction<'static, Postgres>,
        since: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT ip FROM central_reports WHERE updated_at > $1 \
             UNION SELECT ip FROM central_blocklist WHERE deleted_at IS NULL",
        )
        .bind(since)
        .fetch_all(&mut **tx)
        .await
    }

    /// The evidence, confirmation and listing state of `ips`.
    pub async fn load_ips(
        tx: &mut Transaction<'static, Postgres>,
        ips: &[String],
    ) -> Result<crate::consensus::Ledger, sqlx::Error> {
        let mut ledger = crate::consensus::Ledger::new();
        let mut scenarios: HashMap<String, Arc<str>> = HashMap::new();
        for chunk in ips.chunks(10_000) {
            let rows = sqlx::query(
                "SELECT ip, machine, network, scenario, weight, first_seen, last_seen FROM central_reports WHERE ip = ANY($1)",
            )
            .bind(chunk)
            .fetch_all(&mut **tx)
            .await?;
            for r in &rows {
                let ip: String = r.try_get(0)?;
                let scenario: String = r.try_get(3)?;
                let scenario = match scenarios.get(&scenario) {
                    Some(s) => Arc::clone(s),
                    None => {
                        let s: Arc<str> = Arc::from(scenario.as_str());
                        scenarios.insert(scenario, Arc::clone(&s));
                        s
                    }
                };
                let machine: i64 = r.try_get(1)?;
                let e = Evidence {
                    machine: machine.cast_unsigned(),
                    network: network::key(r.try_get::<&str, _>(2)?),
                    scenario,
                    weight: r.try_get(4)?,
                    first_seen: r.try_get(5)?,
                    last_seen: r.try_get(6)?,
                };
                ledger.ips.entry(ip).or_default().evidence.push(e);
            }
            let confirmed: Vec<String> =
                sqlx::query_scalar("SELECT ip FROM central_confirmed WHERE ip = ANY($1)")
                    .bind(chunk)
                    .fetch_all(&mut **tx)
                    .await?;
            for ip in confirmed {
                ledger.ips.entry(ip).or_default().confirmed = true;
            }
            let listed: Vec<String> = sqlx::query_scalar(
                "SELECT ip FROM central_blocklist WHERE deleted_at IS NULL AND ip = ANY($1)",
            )
            .bind(chunk)
            .fetch_all(&mut **tx)
            .await?;
            for ip in listed {
                ledger.ips.entry(ip).or_default().listed = true;
            }
        }
        Ok(ledger)
    }

    /// Writes what a consensus pass decided.
    pub async fn apply_outcome(
        tx: &mut Transaction<'static, Postgres>,
        out: &Outcome,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if !out.confirmed_ips.is_empty() {
            sqlx::query(
                "INSERT INTO central_confirmed (ip, confirmed_at) SELECT ip, $1 FROM UNNEST($2::text[]) AS t(ip) \
                 ON CONFLICT (ip) DO NOTHING",
            )
            .bind(now)
            .bind(&out.confirmed_ips)
            .execute(&mut **tx)
            .await?;
        }
        if !out.credits.is_empty() {
            let ids: Vec<i64> = out.credits.iter().map(|c| c.0.cast_signed()).collect();
            let n: Vec<i64> = out.credits.iter().map(|c| i64::from(c.1)).collect();
            sqlx::query(
                "UPDATE central_machines m SET confirmed = m.confirmed + c.n \
                 FROM UNNEST($1::int8[], $2::int8[]) AS c(id, n) WHERE m.id = c.id",
            )
            .bind(ids)
            .bind(n)
            .execute(&mut **tx)
            .await?;
        }
        for c in &out.changes {
            match c {
                Change::Listed {
                    value,
                    verdict,
                    first_report,
                } => {
                    sqlx::query(
                        "INSERT INTO central_blocklist (ip, scope, scenario, score, networks, machines, first_report, listed_at, deleted_at, seq) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, nextval('central_blocklist_seq')) \
                         ON CONFLICT (ip) DO UPDATE SET scope = EXCLUDED.scope, scenario = EXCLUDED.scenario, score = EXCLUDED.score, \
                         networks = EXCLUDED.networks, machines = EXCLUDED.machines, first_report = EXCLUDED.first_report, \
                         listed_at = EXCLUDED.listed_at, deleted_at = NULL, seq = EXCLUDED.seq",
                    )
                    .bind(value)
                    .bind(scope_of(value))
                    .bind(&*verdict.scenario)
                    .bind(verdict.score)
                    .bind(i64::try_from(verdict.networks).unwrap_or(i64::MAX))
                    .bind(i64::try_from(verdict.machines).unwrap_or(i64::MAX))
                    .bind(first_report)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                }
                Change::Delisted { value } => {
                    sqlx::query(
                        "UPDATE central_blocklist SET deleted_at = $1, seq = nextval('central_blocklist_seq') WHERE ip = $2",
                    )
                    .bind(now)
                    .bind(value)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        if !out.changes.is_empty() {
            sqlx::query(
                "INSERT INTO central_kv (name, value) VALUES ('blocklist_changed', $1) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(now.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------- stream

    /// What machine `id` pulls: every listed value, and values delisted since its previous pull
    /// (since `deleted_since` on a startup pull). Moves its cursor.
    pub async fn pull(
        &self,
        id: i64,
        startup: bool,
        deleted_since: i64,
        now: i64,
    ) -> Result<Pull, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let cursor: i64 = sqlx::query_scalar("SELECT pull_seq FROM central_machines WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        let rows = sqlx::query(
            "SELECT ip, scope, scenario, score, listed_at, first_report, seq FROM central_blocklist \
             WHERE deleted_at IS NULL ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut max_seq = cursor;
        let mut out = Pull::default();
        for r in &rows {
            max_seq = max_seq.max(r.try_get::<i64, _>("seq")?);
            out.new.push(listed_from_row(r)?);
        }
        let deleted = if startup || cursor == 0 {
            sqlx::query(
                "SELECT ip, scope, scenario, score, listed_at, first_report, seq FROM central_blocklist \
                 WHERE deleted_at IS NOT NULL AND deleted_at >= $1 ORDER BY seq",
            )
            .bind(deleted_since)
            .fetch_all(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "SELECT ip, scope, scenario, score, listed_at, first_report, seq FROM central_blocklist \
                 WHERE deleted_at IS NOT NULL AND seq > $1 ORDER BY seq",
            )
            .bind(cursor)
            .fetch_all(&mut *tx)
            .await?
        };
        for r in &deleted {
            max_seq = max_seq.max(r.try_get::<i64, _>("seq")?);
            out.deleted.push(listed_from_row(r)?);
        }
        sqlx::query("UPDATE central_machines SET pull_seq = $1, last_pull = $2 WHERE id = $3")
            .bind(max_seq)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Listed values, for the plain-text blocklists.
    pub async fn listed(&self) -> Result<Vec<ListedRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT ip, scope, scenario, score, listed_at, first_report FROM central_blocklist \
             WHERE deleted_at IS NULL ORDER BY ip",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(listed_from_row).collect()
    }

    /// When the blocklist last changed (ms), if ever.
    pub async fn blocklist_changed(&self) -> Result<Option<i64>, sqlx::Error> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM central_kv WHERE name = 'blocklist_changed'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    // --------------------------------------------------------------------------- maintenance

    /// Creates the partitions of the day of `now` and the two days after it.
    pub async fn ensure_partitions(&self, now: i64) -> Result<(), sqlx::Error> {
        const DAY: i64 = 24 * 3600 * 1000;
        let today = now.div_euclid(DAY) * DAY;
        for d in 0..3 {
            let from = today + d * DAY;
            let name = partition_name(from);
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(&self.pool)
                .await?;
            if exists {
                continue;
            }
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF central_signals FOR VALUES FROM ({from}) TO ({})",
                from + DAY
            );
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(&self.pool)
                .await
            {
                // Rows for that day already sit in the DEFAULT partition (maintenance lagged):
                // they stay there, queryable, until retention drops them.
                tracing::warn!(partition = %name, error = %e, "cannot create signal partition");
            }
        }
        Ok(())
    }

    /// Drops day partitions that end before `before` (ms); returns how many.
    pub async fn drop_partitions_before(&self, before: i64) -> Result<u64, sqlx::Error> {
        const DAY: i64 = 24 * 3600 * 1000;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'central_signals' \
             AND c.relname LIKE 'central_signals_d%'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for name in names {
            let Some(start) = name
                .strip_prefix("central_signals_d")
                .and_then(|d| d.parse::<i64>().ok())
            else {
                continue;
            };
            if start * DAY + DAY <= before {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
                    .execute(&self.pool)
                    .await?;
                n += 1;
            }
        }
        sqlx::query("DELETE FROM central_signals_default WHERE received_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(n)
    }

    /// Drops reports last seen before `before` (ms).
    pub async fn prune_reports(&self, before: i64) -> Result<u64, sqlx::Error> {
        let r = sqlx::query("DELETE FROM central_reports WHERE last_seen < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM central_confirmed c WHERE confirmed_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM central_reports r WHERE r.ip = c.ip)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Forgets delistings older than `before` (ms).
    pub async fn prune_deleted(&self, before: i64) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "DELETE FROM central_blocklist WHERE deleted_at IS NOT NULL AND deleted_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Drops metrics older than `before` (ms).
    pub async fn prune_metrics(&self, before: i64) -> Result<u64, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM central_metrics WHERE received_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

/// `central_signals_d<days since epoch>`.
fn partition_name(day_start_ms: i64) -> String {
    format!(
        "central_signals_d{}",
        day_start_ms.div_euclid(24 * 3600 * 1000)
    )
}
