//! CrowdSec's CAPI routes, under `/v2` (CrowdSec 1.4.x) and `/v3` (later CrowdSec, Rampart).
//! The two versions differ only in the stream's shape: v2 answers LAPI-style decisions, v3
//! groups values by scenario and adds blocklist links.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use model::capi::{
    BlocklistLink, DecisionGroup, DeletedGroup, GroupDecision, Signal, StreamLinks, StreamV3,
};
use model::{
    Decision, IpRange, StreamResponse, WatcherAuthRequest, WatcherAuthResponse,
    WatcherRegistration, normalize_scope, scope,
};
use serde_json::json;
use tower_http::decompression::RequestDecompressionLayer;

use crate::db::{ListedRow, ReportRow, SignalRow};
use crate::http::{ApiError, ApiJson, ClientIp, MachineAuth};
use crate::{Central, store_now};

type Res = Result<Response, ApiError>;

/// CrowdSec's origin for community decisions.
pub const CAPI_ORIGIN: &str = "CAPI";

/// The router.
pub fn router(central: Arc<Central>) -> Router {
    let mut r = Router::new().route(
        "/health",
        get(|| async { axum::Json(json!({"status": "up"})) }),
    );
    for v in ["/v2", "/v3"] {
        r = r
            .route(&format!("{v}/watchers"), post(register))
            .route(&format!("{v}/watchers/login"), post(login))
            .route(&format!("{v}/watchers/enroll"), post(enroll))
            .route(&format!("{v}/watchers/reset"), post(ok))
            .route(&format!("{v}/signals"), post(signals))
            .route(&format!("{v}/metrics"), post(metrics))
            .route(&format!("{v}/metrics/"), post(metrics))
            .route(&format!("{v}/usage-metrics"), post(usage_metrics))
            .route(&format!("{v}/decisions/delete"), post(ok_authed))
            .route(&format!("{v}/decisions/sync"), post(ok_authed));
    }
    r.route("/v2/decisions/stream", get(stream_v2))
        .route("/v3/decisions/stream", get(stream_v3))
        .route("/v3/blocklists/{name}", get(blocklist))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "not found"})),
            )
        })
        .layer(DefaultBodyLimit::max(16 << 20))
        .layer(RequestDecompressionLayer::new())
        .with_state(central)
}

fn json_ok<T: serde::Serialize>(v: &T) -> Res {
    let body = serde_json::to_vec(v).map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response())
}

async fn ok() -> Res {
    json_ok(&json!({"message": "OK"}))
}

async fn ok_authed(_m: MachineAuth) -> Res {
    json_ok(&json!({"message": "OK"}))
}

async fn enroll(_m: MachineAuth) -> Res {
    json_ok(&json!({"message": "this Rampart central server has no console: nothing to enroll"}))
}

/// Machine ids are what `cscli` generates (48 alphanumerics) or what an operator picks.
fn check_machine_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 255 {
        return Err(ApiError::unprocessable(
            "machine_id: must be 1 to 255 characters",
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(ApiError::unprocessable(format!(
            "machine_id: '{id}' may only hold letters, digits and - _ . @"
        )));
    }
    Ok(())
}

async fn register(
    State(c): State<Arc<Central>>,
    ip: ClientIp,
    ApiJson(body): ApiJson<WatcherRegistration>,
) -> Res {
    check_machine_id(&body.machine_id)?;
    if body.password.len() < 8 {
        return Err(ApiError::unprocessable(
            "password: at least 8 characters are required",
        ));
    }
    if !c.cfg.registration {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "registration is closed on this central server; ask its operator",
        ));
    }
    let network = c.networks.of(ip.0);
    if !c.limits.register(&network) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many registrations from network {network}; retry within the hour"),
        ));
    }
    let password = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || bcrypt::hash(password, 10))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let created =
        c.db.register(
            &body.machine_id,
            &hash,
            &ip.0.to_string(),
            &network,
            store_now(),
        )
        .await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("machine '{}' is already registered", body.machine_id),
        ));
    }
    tracing::info!(machine = %body.machine_id, %network, "machine registered");
    json_ok(&json!({"message": "OK"}))
}

async fn login(
    State(c): State<Arc<Central>>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WatcherAuthRequest>,
) -> Res {
    let (Some(id), Some(password)) = (body.machine_id.as_deref(), body.password.as_deref()) else {
        return Err(ApiError::unauthorized(
            "machine_id and password are required",
        ));
    };
    let Some(m) = c.db.machine(id).await? else {
        return Err(ApiError::unauthorized(format!(
            "machine '{id}' is not registered"
        )));
    };
    let (pw, hash) = (password.to_owned(), m.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        return Err(ApiError::unauthorized("incorrect machine_id or password"));
    }
    let network = c.networks.of(ip.0);
    let version = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(128)
        .collect::<String>();
    let scenarios = body.scenarios.unwrap_or_default().join(",");
    c.db.logged_in(
        m.id,
        &ip.0.to_string(),
        &network,
        &version,
        &scenarios,
        store_now(),
    )
    .await?;
    let (token, exp) = c.jwt.issue(id, m.id).map_err(ApiError::internal)?;
    let expire = chrono::DateTime::from_timestamp(exp, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    json_ok(&WatcherAuthResponse {
        code: 200,
        expire,
        token,
    })
}

/// Checks one signal; returns what to store and, for IP and range scopes, the value the
/// consensus counts.
fn check_signal(i: usize, s: &Signal) -> Result<(SignalRow, Option<String>), ApiError> {
    let bad = |field: &str, why: String| ApiError::unprocessable(format!("[{i}].{field}: {why}"));
    if s.scenario.trim().is_empty() {
        return Err(bad("scenario", "is required".into()));
    }
    if s.scenario.len() > 255 {
        return Err(bad("scenario", "is longer than 255 characters".into()));
    }
    let scope_name = normalize_scope(&s.source.scope).to_owned();
    if scope_name.is_empty() {
        return Err(bad("source.scope", "is required".into()));
    }
    let value = if s.source.value.is_empty() {
        s.source.ip.clone()
    } else {
        s.source.value.clone()
    };
    let counted = match scope_name.as_str() {
        scope::IP => match IpRange::parse(&value) {
            Ok(r) if r.is_single() => Some(r.start_addr().to_string()),
            _ => {
                return Err(bad(
                    "source.value",
                    format!("'{value}' is not an IP address"),
                ));
            }
        },
        scope::RANGE => match value.parse::<ipnet::IpNet>() {
            Ok(n) => Some(n.trunc().to_string()),
            Err(_) => {
                return Err(bad(
                    "source.value",
                    format!("'{value}' is not a CIDR range"),
                ));
            }
        },
        // Other scopes (usernames, countries) are kept for the record but never listed.
        _ => None,
    };
    for (field, v) in [("start_at", &s.start_at), ("stop_at", &s.stop_at)] {
        if !v.is_empty() && chrono::DateTime::parse_from_rfc3339(v).is_err() {
            return Err(bad(field, format!("'{v}' is not an RFC 3339 time")));
        }
    }
    let trust = if s.scenario_trust.is_empty() {
        // CrowdSec's rule, for senders that do not say.
        if s.decisions.first().is_some_and(|d| d.origin == "cscli") {
            "manual"
        } else if s.scenario_hash.is_empty() {
            "custom"
        } else if s.scenario_version.is_empty() || s.scenario_version == "?" {
            "tainted"
        } else {
            "certified"
        }
    } else {
        s.scenario_trust.as_str()
    };
    let cut = |v: &str| v.chars().take(255).collect::<String>();
    Ok((
        SignalRow {
            scope: scope_name,
            value: cut(&value),
            scenario: s.scenario.clone(),
            scenario_hash: cut(&s.scenario_hash),
            scenario_version: cut(&s.scenario_version),
            scenario_trust: cut(trust),
            alert_uuid: cut(&s.uuid),
            start_at: cut(&s.start_at),
            stop_at: cut(&s.stop_at),
            as_number: cut(&s.source.as_number),
            country: cut(&s.source.cn),
        },
        counted,
    ))
}

async fn signals(
    State(c): State<Arc<Central>>,
    m: MachineAuth,
    ApiJson(batch): ApiJson<Vec<Signal>>,
) -> Res {
    if batch.len() > c.cfg.max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} signals in one push; at most {} are accepted",
                batch.len(),
                c.cfg.max_batch
            ),
        ));
    }
    let mut rows = Vec::with_capacity(batch.len());
    // One report per value and push: a flood within a batch is one voice too.
    let mut reports: BTreeMap<String, ReportRow> = BTreeMap::new();
    let mut false_positives: BTreeMap<String, ()> = BTreeMap::new();
    for (i, s) in batch.iter().enumerate() {
        let (row, counted) = check_signal(i, s)?;
        if let Some(value) = counted {
            if c.engine.allowlisted(&value).is_some() {
                false_positives.insert(value, ());
            } else {
                let weight = c.engine.weight(&row.scenario, &row.scenario_trust);
                let r = reports.entry(value.clone()).or_insert(ReportRow {
                    ip: value,
                    scenario: row.scenario.clone(),
                    weight,
                    count: 0,
                });
                r.count += 1;
                if weight > r.weight {
                    r.weight = weight;
                    r.scenario.clone_from(&row.scenario);
                }
            }
        }
        rows.push(row);
    }
    if !c.limits.take_signals(m.id, rows.len()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "machine '{}' exceeds {} signals per minute; retry later",
                m.login, c.cfg.signals_per_minute
            ),
        ));
    }
    let network = c.db.machine_network(m.id).await?.ok_or_else(|| {
        ApiError::unauthorized(format!("machine '{}' is no longer registered", m.login))
    })?;
    let reports: Vec<ReportRow> = reports.into_values().collect();
    c.db.insert_signals(
        m.id,
        &network,
        &rows,
        &reports,
        i64::try_from(false_positives.len()).unwrap_or(0),
        store_now(),
    )
    .await?;
    tracing::info!(machine = %m.login, signals = rows.len(), counted = reports.len(), "signals accepted");
    json_ok(&json!({"message": "OK"}))
}

async fn metrics(
    State(c): State<Arc<Central>>,
    m: MachineAuth,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Res {
    // Kept as sent: CrowdSec versions differ in which fields they fill (or send as null).
    let payload = body.to_string();
    c.db.insert_metrics(m.id, "metrics", &payload, store_now())
        .await?;
    json_ok(&json!({"message": "OK"}))
}

async fn usage_metrics(
    State(c): State<Arc<Central>>,
    m: MachineAuth,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Res {
    c.db.insert_metrics(m.id, "usage", &body.to_string(), store_now())
        .await?;
    json_ok(&json!({"message": "OK"}))
}

/// The stream's options.
struct StreamQuery {
    startup: bool,
    community: bool,
    additional: bool,
}

fn stream_query(q: &[(String, String)]) -> Result<StreamQuery, ApiError> {
    let mut out = StreamQuery {
        startup: false,
        community: true,
        additional: true,
    };
    for (k, v) in q {
        let flag = || match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("parameter '{k}': '{v}' is not a boolean"),
            )),
        };
        match k.as_str() {
            "startup" => out.startup = flag()?,
            "community_pull" => out.community = flag()?,
            "additional_pull" => out.additional = flag()?,
            // Filters CrowdSec's client may add; the community list is not filtered per client.
            _ => {}
        }
    }
    Ok(out)
}

async fn pull(c: &Central, m: &MachineAuth, q: &StreamQuery) -> Result<crate::db::Pull, ApiError> {
    if !q.community {
        return Ok(crate::db::Pull::default());
    }
    let now = store_now();
    let keep = i64::try_from(c.cfg.deleted_retention.as_millis()).unwrap_or(i64::MAX);
    Ok(c.db
        .pull(m.id, q.startup, now.saturating_sub(keep), now)
        .await?)
}

fn go_duration(d: std::time::Duration) -> String {
    model::format_remaining(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

async fn stream_v2(
    State(c): State<Arc<Central>>,
    m: MachineAuth,
    Query(q): Query<Vec<(String, String)>>,
) -> Res {
    let q = stream_query(&q)?;
    let p = pull(&c, &m, &q).await?;
    let duration = go_duration(c.cfg.decision_duration);
    let decision = |r: &ListedRow, duration: &str| Decision {
        duration: duration.to_owned(),
        origin: CAPI_ORIGIN.into(),
        scenario: r.scenario.clone(),
        scope: r.scope.clone(),
        kind: "ban".into(),
        value: r.value.clone(),
        ..Decision::default()
    };
    json_ok(&StreamResponse {
        new: p.new.iter().map(|r| decision(r, &duration)).collect(),
        deleted: p.deleted.iter().map(|r| decision(r, "0s")).collect(),
    })
}

fn base_url(c: &Central) -> String {
    c.cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", c.cfg.listen))
        .trim_end_matches('/')
        .to_owned()
}

async fn stream_v3(
    State(c): State<Arc<Central>>,
    m: MachineAuth,
    Query(q): Query<Vec<(String, String)>>,
) -> Res {
    let q = stream_query(&q)?;
    let p = pull(&c, &m, &q).await?;
    let duration = go_duration(c.cfg.decision_duration);
    let mut groups: BTreeMap<(String, String), Vec<GroupDecision>> = BTreeMap::new();
    for r in &p.new {
        groups
            .entry((r.scenario.clone(), r.scope.to_ascii_lowercase()))
            .or_default()
            .push(GroupDecision {
                value: r.value.clone(),
                duration: duration.clone(),
            });
    }
    let mut deleted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &p.deleted {
        deleted
            .entry(r.scope.to_ascii_lowercase())
            .or_default()
            .push(r.value.clone());
    }
    let links = q.additional.then(|| StreamLinks {
        blocklists: c
            .cfg
            .blocklists
            .iter()
            .map(|b| BlocklistLink {
                name: b.name.clone(),
                url: format!("{}/v3/blocklists/{}", base_url(&c), b.name),
                remediation: b.remediation.clone(),
                scope: "ip".into(),
                duration: go_duration(b.duration),
            })
            .collect(),
        allowlists: Vec::new(),
    });
    json_ok(&StreamV3 {
        new: groups
            .into_iter()
            .map(|((scenario, scope), decisions)| DecisionGroup {
                scenario,
                scope,
                decisions,
            })
            .collect(),
        deleted: deleted
            .into_iter()
            .map(|(scope, decisions)| DeletedGroup { scope, decisions })
            .collect(),
        links,
    })
}

fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

/// A blocklist link's content: one value per line, with `Last-Modified` and
/// `If-Modified-Since` (304) so a LAPI downloads it only when it changed.
async fn blocklist(
    State(c): State<Arc<Central>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Res {
    let Some(def) = c.cfg.blocklists.iter().find(|b| b.name == name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no blocklist named '{name}'"),
        ));
    };
    let changed = c.db.blocklist_changed().await?.unwrap_or(0);
    // HTTP dates have whole seconds.
    let changed_s = changed.div_euclid(1000);
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        && since.timestamp() >= changed_s
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut body = String::new();
    for r in c.db.listed().await? {
        let wanted =
            def.scenarios.is_empty() || def.scenarios.iter().any(|w| r.scenario.contains(w));
        if wanted {
            body.push_str(&r.value);
            body.push('\n');
        }
    }
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::LAST_MODIFIED, http_date(changed_s * 1000)),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(scope: &str, value: &str) -> Signal {
        Signal {
            scenario: "crowdsecurity/ssh-bf".into(),
            source: model::Source {
                scope: scope.into(),
                value: value.into(),
                ..model::Source::default()
            },
            start_at: "2024-01-01T00:00:00Z".into(),
            stop_at: "2024-01-01T00:00:01Z".into(),
            ..Signal::default()
        }
    }

    #[test]
    fn signals_are_checked_field_by_field() {
        let (row, counted) = check_signal(0, &signal("ip", "192.0.2.7")).unwrap();
        assert_eq!(
            (row.scope.as_str(), counted.as_deref()),
            ("Ip", Some("192.0.2.7"))
        );
        assert_eq!(row.scenario_trust, "custom");
        let (_, counted) = check_signal(0, &signal("Range", "192.0.2.7/24")).unwrap();
        assert_eq!(counted.as_deref(), Some("192.0.2.0/24"));
        let (_, counted) = check_signal(0, &signal("username", "root")).unwrap();
        assert_eq!(counted, None);
        let e = check_signal(3, &signal("Ip", "192.0.2.0/24")).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.starts_with("[3].source.value:"), "{}", e.message);
        let mut s = signal("Ip", "192.0.2.7");
        s.stop_at = "yesterday".into();
        let e = check_signal(0, &s).unwrap_err();
        assert!(e.message.contains("stop_at"), "{}", e.message);
        assert!(check_machine_id("abc-1.x@y").is_ok());
        assert!(check_machine_id("a b").is_err());
    }
}
