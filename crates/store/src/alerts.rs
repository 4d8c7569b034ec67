//! Alert rows, their decisions, and CrowdSec's alert search filters.

use model::{Alert, AlertEvent, IpRange, MetaItem, Source};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::decisions::{self, CHUNK, NewDecision, StoredDecision, marks, ms_to_rfc3339};
use crate::{Store, StoreError, now_ms};

/// An alert to store: the API object (with `uuid`, `machine_id` and `kind` already set) and the
/// decisions the profiles (or the client) attached.
#[derive(Debug, Clone, Default)]
pub struct NewAlert {
    /// The alert; its `decisions` field is ignored in favour of `decisions` below.
    pub alert: Alert,
    /// `start_at` as milliseconds (filters compare it).
    pub started_at: i64,
    /// Decisions to store with it.
    pub decisions: Vec<NewDecision>,
}

/// What storing an alert produced.
#[derive(Debug, Clone)]
pub struct StoredAlert {
    /// Row id.
    pub id: i64,
    /// Its decisions, with their ids.
    pub decisions: Vec<StoredDecision>,
}

/// CrowdSec's alert search and delete filters (`GET`/`DELETE /v1/alerts`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Source scope (normalised).
    pub scope: Option<String>,
    /// Source value.
    pub value: Option<String>,
    /// Alert scenario, or the scenario of one of its decisions.
    pub scenario: Option<String>,
    /// Source address or range, with `contains`.
    pub ip: Option<IpRange>,
    /// `true`: alerts whose source contains `ip`; `false`: alerts whose source lies inside it.
    pub contains: bool,
    /// `started_at` at or after (ms).
    pub since: Option<i64>,
    /// `started_at` at or before (ms).
    pub until: Option<i64>,
    /// `created_at` at or before (ms).
    pub created_before: Option<i64>,
    /// `Some(false)` excludes simulated alerts.
    pub simulated: Option<bool>,
    /// Has (or has not) a decision still active.
    pub has_active_decision: Option<bool>,
    /// Has a decision of this type.
    pub decision_type: Option<String>,
    /// Has a decision of this origin.
    pub origin: Option<String>,
    /// `false` hides community-blocklist and list alerts.
    pub include_capi: bool,
    /// Alert kind.
    pub kind: Option<String>,
    /// Newest first unless `sort_asc`.
    pub sort_asc: bool,
    /// At most this many (0 or `None` = all).
    pub limit: Option<i64>,
    /// Load decisions of the returned alerts.
    pub with_decisions: bool,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
enum Bind {
    I(i64),
    S(String),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    for b in binds {
        q = match b {
            Bind::I(v) => q.bind(*v),
            Bind::S(v) => q.bind(v.as_str()),
        };
    }
    q
}

/// SQL for "the column pair `(hi, lo)` compared with the value pair".
fn pair_cmp(hi: &str, lo: &str, op: &str, v: (i64, i64), binds: &mut Vec<Bind>) -> String {
    // (hi, lo) op (a, b)  ⇔  hi op' a OR (hi = a AND lo op b), with op' the strict form.
    let strict = op.trim_end_matches('=');
    binds.extend([Bind::I(v.0), Bind::I(v.0), Bind::I(v.1)]);
    format!("({hi} {strict} ? OR ({hi} = ? AND {lo} {op} ?))")
}

/// Range predicate on `ip_size, start_ip, start_suffix, end_ip, end_suffix` columns.
fn range_predicate(prefix: &str, r: &IpRange, contains: bool, binds: &mut Vec<Bind>) -> String {
    let (size, s_hi, s_lo, e_hi, e_lo) = r.to_columns();
    binds.push(Bind::I(size));
    let (si, ss, ei, es) = (
        format!("{prefix}start_ip"),
        format!("{prefix}start_suffix"),
        format!("{prefix}end_ip"),
        format!("{prefix}end_suffix"),
    );
    let (a, b) = if contains {
        // The row's interval contains the queried one.
        (
            pair_cmp(&si, &ss, "<=", (s_hi, s_lo), binds),
            pair_cmp(&ei, &es, ">=", (e_hi, e_lo), binds),
        )
    } else {
        (
            pair_cmp(&si, &ss, ">=", (s_hi, s_lo), binds),
            pair_cmp(&ei, &es, "<=", (e_hi, e_lo), binds),
        )
    };
    format!("{prefix}ip_size = ? AND {a} AND {b}")
}

fn where_clause(f: &AlertFilter, now: i64, binds: &mut Vec<Bind>) -> String {
    let mut w: Vec<String> = Vec::new();
    let eq = |w: &mut Vec<String>, col: &str, v: &Option<String>, binds: &mut Vec<Bind>| {
        if let Some(v) = v {
            w.push(format!("{col} = ?"));
            binds.push(Bind::S(v.clone()));
        }
    };
    eq(&mut w, "alerts.source_scope", &f.scope, binds);
    eq(&mut w, "alerts.source_value", &f.value, binds);
    eq(&mut w, "alerts.kind", &f.kind, binds);
    if let Some(s) = &f.scenario {
        w.push("(alerts.scenario = ? OR EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = alerts.id AND d.scenario = ?))".into());
        binds.extend([Bind::S(s.clone()), Bind::S(s.clone())]);
    }
    if let Some(r) = &f.ip {
        w.push(range_predicate("alerts.", r, f.contains, binds));
    }
    for (col, op, v) in [
        ("alerts.started_at", ">=", f.since),
        ("alerts.started_at", "<=", f.until),
        ("alerts.created_at", "<=", f.created_before),
    ] {
        if let Some(v) = v {
            w.push(format!("{col} {op} ?"));
            binds.push(Bind::I(v));
        }
    }
    if f.simulated == Some(false) {
        w.push("alerts.simulated = 0".into());
    }
    if let Some(active) = f.has_active_decision {
        let not = if active { "" } else { "NOT " };
        w.push(format!(
            "{not}EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = alerts.id AND d.until > ?)"
        ));
        binds.push(Bind::I(now));
    }
    for (col, v) in [("type", &f.decision_type), ("origin", &f.origin)] {
        if let Some(v) = v {
            w.push(format!(
                "EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = alerts.id AND d.{col} = ?)"
            ));
            binds.push(Bind::S(v.clone()));
        }
    }
    if !f.include_capi {
        w.push(
            "NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = alerts.id AND d.origin IN ('CAPI', 'lists')) \
             AND alerts.source_scope <> 'crowdsecurity/community-blocklist' AND alerts.source_scope NOT LIKE 'lists:%'"
                .into(),
        );
    }
    if w.is_empty() {
        "1 = 1".into()
    } else {
        w.join(" AND ")
    }
}

const ALERT_COLS: &str = "id, created_at, uuid, machine_id, scenario, scenario_hash, scenario_version, message, events_count, \
    start_at, stop_at, capacity, leak_speed, simulated, remediation, kind, source_scope, source_value, source_ip, source_range, \
    source_as_number, source_as_name, source_country, source_latitude, source_longitude, events, meta";

fn alert_from_row(r: &AnyRow) -> Result<Alert, StoreError> {
    let id: i64 = r.try_get("id")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "alerts",
        id,
        reason,
    };
    let events: Vec<AlertEvent> = match r.try_get::<Option<String>, _>("events")? {
        Some(s) if !s.is_empty() => {
            serde_json::from_str(&s).map_err(|e| corrupt(format!("events: {e}")))?
        }
        _ => Vec::new(),
    };
    let meta: Vec<MetaItem> = match r.try_get::<Option<String>, _>("meta")? {
        Some(s) if !s.is_empty() => {
            serde_json::from_str(&s).map_err(|e| corrupt(format!("meta: {e}")))?
        }
        _ => Vec::new(),
    };
    Ok(Alert {
        id: Some(id),
        created_at: ms_to_rfc3339(r.try_get("created_at")?),
        uuid: r.try_get("uuid")?,
        machine_id: r.try_get("machine_id")?,
        scenario: r.try_get("scenario")?,
        scenario_hash: r.try_get("scenario_hash")?,
        scenario_version: r.try_get("scenario_version")?,
        message: r
            .try_get::<Option<String>, _>("message")?
            .unwrap_or_default(),
        events_count: i32::try_from(r.try_get::<i64, _>("events_count")?).unwrap_or(i32::MAX),
        start_at: r.try_get("start_at")?,
        stop_at: r.try_get("stop_at")?,
        capacity: i32::try_from(r.try_get::<i64, _>("capacity")?).unwrap_or(i32::MAX),
        leakspeed: r.try_get("leak_speed")?,
        simulated: r.try_get::<i64, _>("simulated")? != 0,
        remediation: r.try_get::<i64, _>("remediation")? != 0,
        kind: r.try_get("kind")?,
        source: Source {
            scope: r.try_get("source_scope")?,
            value: r.try_get("source_value")?,
            ip: r.try_get("source_ip")?,
            range: r.try_get("source_range")?,
            as_number: r.try_get("source_as_number")?,
            as_name: r
                .try_get::<Option<String>, _>("source_as_name")?
                .unwrap_or_default(),
            cn: r.try_get("source_country")?,
            latitude: r.try_get::<f64, _>("source_latitude")? as f32,
            longitude: r.try_get::<f64, _>("source_longitude")? as f32,
        },
        events,
        meta,
        ..Alert::default()
    })
}

impl Store {
    /// Stores alerts with their decisions, 50 alerts per transaction (as CrowdSec batches), and
    /// returns what was stored, in input order.
    pub async fn insert_alerts(&self, alerts: &[NewAlert]) -> Result<Vec<StoredAlert>, StoreError> {
        let mut out = Vec::with_capacity(alerts.len());
        for batch in alerts.chunks(50) {
            let mut tx = self.pool().begin().await?;
            for na in batch {
                out.push(self.insert_one(&mut tx, na).await?);
            }
            tx.commit().await?;
        }
        Ok(out)
    }

    async fn insert_one(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        na: &NewAlert,
    ) -> Result<StoredAlert, StoreError> {
        let a = &na.alert;
        let now = now_ms();
        let range = match a.source.scope.as_str() {
            model::scope::IP | model::scope::RANGE => IpRange::parse(&a.source.value).ok(),
            _ => None,
        };
        let (size, si, ss, ei, es) = range.map_or((0, 0, 0, 0, 0), |r| r.to_columns());
        let events = serde_json::to_string(&a.events).unwrap_or_default();
        let meta = serde_json::to_string(&a.meta).unwrap_or_default();
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO alerts (created_at, updated_at, uuid, machine_id, scenario, scenario_hash, scenario_version, message, \
             events_count, start_at, stop_at, started_at, capacity, leak_speed, simulated, remediation, kind, source_scope, \
             source_value, source_ip, source_range, source_as_number, source_as_name, source_country, source_latitude, \
             source_longitude, ip_size, start_ip, start_suffix, end_ip, end_suffix, events, meta) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(now)
        .bind(now)
        .bind(&a.uuid)
        .bind(&a.machine_id)
        .bind(&a.scenario)
        .bind(&a.scenario_hash)
        .bind(&a.scenario_version)
        .bind(&a.message)
        .bind(i64::from(a.events_count))
        .bind(&a.start_at)
        .bind(&a.stop_at)
        .bind(na.started_at)
        .bind(i64::from(a.capacity))
        .bind(&a.leakspeed)
        .bind(i64::from(a.simulated))
        .bind(i64::from(a.remediation))
        .bind(&a.kind)
        .bind(&a.source.scope)
        .bind(&a.source.value)
        .bind(&a.source.ip)
        .bind(&a.source.range)
        .bind(&a.source.as_number)
        .bind(&a.source.as_name)
        .bind(&a.source.cn)
        .bind(f64::from(a.source.latitude))
        .bind(f64::from(a.source.longitude))
        .bind(size)
        .bind(si)
        .bind(ss)
        .bind(ei)
        .bind(es)
        .bind(events)
        .bind(meta)
        .fetch_one(&mut **tx)
        .await?;
        let mut stored = Vec::with_capacity(na.decisions.len());
        for chunk in na.decisions.chunks(CHUNK) {
            let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            let mut q = String::from(
                "INSERT INTO decisions (alert_id, created_at, updated_at, until, scenario, type, scope, value, origin, simulated, uuid, \
                 ip_size, start_ip, start_suffix, end_ip, end_suffix) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    q.push_str(", ");
                }
                q.push_str(row);
            }
            q.push_str(" RETURNING id, uuid");
            let mut query = sqlx::query(self.sql(&q));
            for d in chunk {
                let (size, si, ss, ei, es) = d.range.map_or((0, 0, 0, 0, 0), |r| r.to_columns());
                query = query
                    .bind(id)
                    .bind(now)
                    .bind(now)
                    .bind(d.until)
                    .bind(&d.scenario)
                    .bind(&d.kind)
                    .bind(&d.scope)
                    .bind(&d.value)
                    .bind(&d.origin)
                    .bind(i64::from(d.simulated))
                    .bind(&d.uuid)
                    .bind(size)
                    .bind(si)
                    .bind(ss)
                    .bind(ei)
                    .bind(es);
            }
            let rows = query.fetch_all(&mut **tx).await?;
            // RETURNING order is not guaranteed on every backend: match rows by uuid.
            let mut ids: std::collections::HashMap<String, i64> =
                std::collections::HashMap::with_capacity(rows.len());
            for r in &rows {
                ids.insert(r.try_get(1)?, r.try_get(0)?);
            }
            for d in chunk {
                let did = ids
                    .get(&d.uuid)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt {
                        table: "decisions",
                        id,
                        reason: format!(
                            "inserted decision {} not returned (duplicate uuid?)",
                            d.uuid
                        ),
                    })?;
                stored.push(StoredDecision {
                    id: did,
                    alert_id: id,
                    created_at: now,
                    updated_at: now,
                    until: d.until,
                    scenario: d.scenario.clone(),
                    kind: d.kind.clone(),
                    scope: d.scope.clone(),
                    value: d.value.clone(),
                    origin: d.origin.clone(),
                    simulated: d.simulated,
                    uuid: d.uuid.clone(),
                    range: d.range,
                });
            }
        }
        Ok(StoredAlert {
            id,
            decisions: stored,
        })
    }

    /// Alerts matching a filter, with decisions (durations as time left) when asked.
    pub async fn search_alerts(&self, f: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let now = now_ms();
        let mut binds = Vec::new();
        let w = where_clause(f, now, &mut binds);
        let order = if f.sort_asc { "ASC" } else { "DESC" };
        let mut q = format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE {w} ORDER BY created_at {order}, id {order}"
        );
        if let Some(l) = f.limit.filter(|l| *l > 0) {
            q.push_str(" LIMIT ?");
            binds.push(Bind::I(l));
        }
        let q = self.sql(&q);
        let rows = bind_all(sqlx::query(q), &binds)
            .fetch_all(self.pool())
            .await?;
        let mut alerts = rows
            .iter()
            .map(alert_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if f.with_decisions {
            self.attach_decisions(&mut alerts, now).await?;
        }
        Ok(alerts)
    }

    /// One alert by id, with its decisions.
    pub async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query(self.sql(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut alerts = vec![alert_from_row(&row)?];
        self.attach_decisions(&mut alerts, now_ms()).await?;
        Ok(alerts.pop())
    }

    async fn attach_decisions(&self, alerts: &mut [Alert], now: i64) -> Result<(), StoreError> {
        let ids: Vec<i64> = alerts.iter().filter_map(|a| a.id).collect();
        let mut by_alert: std::collections::HashMap<i64, Vec<model::Decision>> =
            std::collections::HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let q = format!(
                "SELECT {} FROM decisions WHERE alert_id IN ({}) ORDER BY id",
                decisions::COLS,
                marks(chunk.len())
            );
            let mut query = sqlx::query(self.sql(&q));
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(self.pool()).await? {
                let d = decisions::from_row(&r)?;
                by_alert
                    .entry(d.alert_id)
                    .or_default()
                    .push(d.to_model(now, true));
            }
        }
        for a in alerts {
            if let Some(ds) = a.id.and_then(|id| by_alert.remove(&id)) {
                a.decisions = ds;
            }
        }
        Ok(())
    }

    /// Deletes the alerts matching a filter (their decisions with them). Returns how many alerts
    /// went and the ids of the decisions deleted with them.
    pub async fn delete_alerts(&self, f: &AlertFilter) -> Result<(u64, Vec<i64>), StoreError> {
        let mut binds = Vec::new();
        let w = where_clause(f, now_ms(), &mut binds);
        let q = self.sql(&format!("SELECT id FROM alerts WHERE {w}"));
        let ids: Vec<i64> = bind_all(sqlx::query(q), &binds)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        self.delete_alerts_by_id(&ids).await
    }

    /// Deletes alerts (and their decisions) by id.
    pub async fn delete_alerts_by_id(&self, ids: &[i64]) -> Result<(u64, Vec<i64>), StoreError> {
        let mut n = 0;
        let mut decision_ids = Vec::new();
        let mut tx = self.pool().begin().await?;
        for chunk in ids.chunks(CHUNK) {
            let m = marks(chunk.len());
            let mut q =
                sqlx::query(self.sql(&format!("SELECT id FROM decisions WHERE alert_id IN ({m})")));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut *tx).await? {
                decision_ids.push(r.try_get::<i64, _>(0)?);
            }
            let mut q =
                sqlx::query(self.sql(&format!("DELETE FROM decisions WHERE alert_id IN ({m})")));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
            let mut q = sqlx::query(self.sql(&format!("DELETE FROM alerts WHERE id IN ({m})")));
            for id in chunk {
                q = q.bind(*id);
            }
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok((n, decision_ids))
    }

    /// Ids of stored alerts by UUID (those that exist).
    pub async fn alert_ids_by_uuid(
        &self,
        uuids: &[String],
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for chunk in uuids.chunks(CHUNK) {
            let mut q = sqlx::query(self.sql(&format!(
                "SELECT uuid, id FROM alerts WHERE uuid IN ({})",
                marks(chunk.len())
            )));
            for u in chunk {
                q = q.bind(u.as_str());
            }
            for r in q.fetch_all(self.pool()).await? {
                out.insert(r.try_get(0)?, r.try_get(1)?);
            }
        }
        Ok(out)
    }

    /// Alerts per scenario, without the ones that carry blocklists (community or lists), which
    /// say nothing about what attacked this fleet.
    pub async fn alert_counts_by_scenario(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT scenario, COUNT(*) FROM alerts \
             WHERE source_scope NOT LIKE 'lists:%' \
             AND source_scope <> 'crowdsecurity/community-blocklist' GROUP BY scenario",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
        Ok(out)
    }

    /// Number of alerts.
    pub async fn count_alerts(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
            .fetch_one(self.pool())
            .await?)
    }
}
