//! `POST /v1/alerts`: normalise, drop allowlisted alerts, attach decisions (the client's, or the
//! profiles'), store, index, wake bouncers.

use model::{Alert, IpRange, normalize_scope, parse_duration_days, scope};
use store::{NewAlert, NewDecision, StoreError, now_ms};

use std::sync::Arc;

use crate::Lapi;
use crate::profiles::DecisionSpec;

/// Parses an RFC 3339 time to ms; `None` when malformed.
pub(crate) fn rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The integer interval a decision targets, or why it cannot be stored.
fn decision_range(scope_name: &str, value: &str) -> Result<Option<IpRange>, String> {
    match scope_name {
        scope::IP => match IpRange::parse(value) {
            Ok(r) if r.is_single() => Ok(Some(r)),
            _ => Err(format!("'{value}' is not an IP address")),
        },
        scope::RANGE => IpRange::parse(value).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

/// A decision to store: scope normalised, target checked, `until` counted from the alert's end.
fn new_decision(d: DecisionSpec, stop_ms: i64) -> Result<NewDecision, String> {
    let scope_name = normalize_scope(&d.scope).to_owned();
    let range = decision_range(&scope_name, &d.value)?;
    Ok(NewDecision {
        until: stop_ms.saturating_add(d.duration_ns / 1_000_000),
        scenario: d.scenario,
        kind: d.kind,
        scope: scope_name,
        value: d.value,
        origin: d.origin,
        simulated: d.simulated,
        uuid: uuid::Uuid::new_v4().to_string(),
        range,
    })
}

impl Lapi {
    /// Stores pushed alerts; returns their ids in input order (skipped alerts have none).
    pub(crate) async fn ingest(
        &self,
        alerts: Vec<Alert>,
        machine_id: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        // Alerts carrying a UUID the LAPI already stored are a retry of a push whose answer was
        // lost (Rampart's agent queues alerts on disk and resends them): answered with the stored
        // id, not stored twice. CrowdSec agents send no UUID and always get a new one.
        let given: Vec<String> = alerts
            .iter()
            .filter(|a| uuid::Uuid::parse_str(&a.uuid).is_ok())
            .map(|a| a.uuid.clone())
            .collect();
        let known = if given.is_empty() {
            Default::default()
        } else {
            self.store.alert_ids_by_uuid(&given).await?
        };
        // Per input alert: the id it already has, or its place in `batch`.
        let mut slots: Vec<Result<i64, usize>> = Vec::with_capacity(alerts.len());
        let mut batch = Vec::with_capacity(alerts.len());
        // Notification plugins per stored alert (same order as `batch`).
        let mut plugins: Vec<Vec<String>> = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            a.source.scope = normalize_scope(&a.source.scope).to_owned();
            a.machine_id = machine_id.to_owned();
            if let Some(id) = known.get(&a.uuid) {
                slots.push(Ok(*id));
                continue;
            }
            if uuid::Uuid::parse_str(&a.uuid).is_err() {
                a.uuid = uuid::Uuid::new_v4().to_string();
            }
            a.id = None;
            a.created_at = String::new();
            if a.kind.is_empty() {
                a.kind = if a.decisions.is_empty() {
                    "crowdsec".into()
                } else {
                    "cscli".into()
                };
            }
            let stop = rfc3339_ms(&a.stop_at).unwrap_or(now);
            let started_at = rfc3339_ms(&a.start_at).unwrap_or(now);
            let decisions = if a.decisions.is_empty() {
                if matches!(a.source.scope.as_str(), scope::IP | scope::RANGE)
                    && let Ok(r) = IpRange::parse(&a.source.value)
                {
                    let reasons = self.allowlisted(&r);
                    if !reasons.is_empty() {
                        tracing::info!(value = %a.source.value, scenario = %a.scenario, reason = %reasons.join(", "), "alert dropped: allowlisted");
                        continue;
                    }
                }
                let history = if self.profiles.needs_history() {
                    self.store.decision_history(&a.source.value).await?
                } else {
                    Vec::new()
                };
                let outcome = self.profiles.evaluate(&a, history, now);
                plugins.push(outcome.notifications.clone());
                let mut out = Vec::with_capacity(outcome.decisions.len());
                for d in outcome.decisions {
                    match new_decision(d, stop) {
                        Ok(nd) => out.push(nd),
                        Err(e) => {
                            tracing::warn!(scenario = %a.scenario, error = %e, "profile decision discarded")
                        }
                    }
                }
                out
            } else {
                plugins.push(Vec::new());
                let given = std::mem::take(&mut a.decisions);
                let mut out = Vec::with_capacity(given.len());
                for d in given {
                    let Some(duration_ns) = parse_duration_days(&d.duration) else {
                        tracing::warn!(scenario = %a.scenario, duration = %d.duration, "decision with an invalid duration discarded");
                        continue;
                    };
                    let spec = DecisionSpec {
                        kind: d.kind,
                        duration_ns,
                        scope: d.scope,
                        value: d.value,
                        origin: d.origin,
                        scenario: d.scenario,
                        simulated: d.simulated,
                    };
                    match new_decision(spec, stop) {
                        Ok(nd) => out.push(nd),
                        Err(e) => {
                            tracing::warn!(scenario = %a.scenario, error = %e, "decision discarded")
                        }
                    }
                }
                if out.is_empty() {
                    tracing::warn!(scenario = %a.scenario, "alert dropped: none of its decisions was valid");
                    plugins.pop();
                    continue;
                }
                out
            };
            slots.push(Err(batch.len()));
            batch.push(NewAlert {
                alert: a,
                started_at,
                decisions,
            });
        }
        if batch.is_empty() {
            return Ok(slots.into_iter().filter_map(Result::ok).collect());
        }
        let stored = self.store.insert_alerts(&batch).await?;
        self.capi_enqueue(&batch, &stored);
        let any_decision = stored.iter().any(|s| !s.decisions.is_empty());
        if any_decision {
            let now = now_ms();
            if let Ok(mut ix) = self.index.write() {
                for s in &stored {
                    for d in &s.decisions {
                        ix.upsert(d, now);
                    }
                }
            }
            self.changed(true).await;
        }
        if self.notifications.receiver_count() > 0 {
            let now = now_ms();
            for ((na, st), names) in batch.iter().zip(&stored).zip(plugins) {
                if names.is_empty() {
                    continue;
                }
                let mut alert = na.alert.clone();
                alert.id = Some(st.id);
                alert.decisions = st.decisions.iter().map(|d| d.to_model(now, true)).collect();
                let _ = self.notifications.send(Arc::new(crate::Notification {
                    alert,
                    plugins: names,
                }));
            }
        }
        if let Err(e) = self.store.machine_pushed(machine_id).await {
            tracing::warn!(error = %e, machine = machine_id, "could not record last push");
        }
        Ok(slots
            .into_iter()
            .filter_map(|s| match s {
                Ok(id) => Some(id),
                Err(i) => stored.get(i).map(|st| st.id),
            })
            .collect())
    }
}
