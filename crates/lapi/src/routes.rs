//! The LAPI v1 routes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::StreamExt;
use model::{
    Alert, DeleteResponse, IpRange, WatcherAuthRequest, WatcherAuthResponse, WatcherRegistration,
    normalize_scope, parse_duration_days,
};
use serde_json::json;
use store::{AlertFilter, NewMachine, now_ms};
use tower_http::decompression::RequestDecompressionLayer;

use crate::Lapi;
use crate::http::{ApiError, ApiJson, BouncerAuth, ClientIp, MachineAuth, user_agent};
use crate::index::Filter;

type Params = Query<Vec<(String, String)>>;
type Res = Result<Response, ApiError>;

/// Unauthenticated bodies are small; authenticated ones may carry big alert batches.
const SMALL_BODY: usize = 2 << 20;
const BIG_BODY: usize = 50 << 20;

pub(crate) fn router(lapi: Arc<Lapi>) -> Router {
    let open = Router::new()
        .route("/v1/watchers", post(register))
        .route("/v1/watchers/login", post(login))
        .layer(DefaultBodyLimit::max(SMALL_BODY));
    let authed = Router::new()
        .route("/v1/refresh_token", get(refresh_token))
        .route("/v1/watchers/self", delete(delete_self))
        .route("/v1/heartbeat", get(heartbeat))
        .route(
            "/v1/alerts",
            post(push_alerts).get(search_alerts).delete(delete_alerts),
        )
        .route("/v1/alerts/{id}", get(get_alert).delete(delete_alert))
        .route("/v1/decisions", get(get_decisions).delete(delete_decisions))
        .route("/v1/decisions/{id}", delete(delete_decision))
        .route("/v1/decisions/stream", get(stream))
        .route("/v1/usage-metrics", post(usage_metrics))
        .route("/v1/allowlists", get(allowlists))
        .route("/v1/allowlists/check", post(allowlist_check_bulk))
        .route("/v1/allowlists/check/{*target}", get(allowlist_check))
        .route("/v1/allowlists/{name}", get(allowlist))
        .layer(DefaultBodyLimit::max(BIG_BODY));
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "up"})) }),
        )
        .merge(open)
        .merge(authed)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&lapi),
            crate::metrics::track,
        ))
        .layer(RequestDecompressionLayer::new())
        .with_state(lapi)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn ok_json<T: serde::Serialize>(status: StatusCode, v: &T) -> Res {
    Ok(json_response(
        status,
        serde_json::to_vec(v).map_err(ApiError::internal)?,
    ))
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "parameter '{name}': '{v}' is not a boolean"
        ))),
    }
}

fn parse_int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("parameter '{name}': '{v}' is not a number")))
}

fn parse_range(name: &str, v: &str) -> Result<IpRange, ApiError> {
    IpRange::parse(v).map_err(|e| ApiError::bad_request(format!("parameter '{name}': {e}")))
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn scopes(v: &str) -> Vec<String> {
    list(v)
        .iter()
        .map(|s| normalize_scope(s).to_owned())
        .collect()
}

fn ago_ms(name: &str, v: &str) -> Result<i64, ApiError> {
    let d = parse_duration_days(v).ok_or_else(|| {
        ApiError::bad_request(format!("parameter '{name}': '{v}' is not a duration"))
    })?;
    Ok(now_ms() - d / 1_000_000)
}

// ---------------------------------------------------------------------------------------------
// Watchers

async fn register(
    State(lapi): State<Arc<Lapi>>,
    ip: ClientIp,
    ApiJson(body): ApiJson<WatcherRegistration>,
) -> Res {
    if body.machine_id.trim().is_empty() || body.password.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "machine_id and password are required",
        ));
    }
    if body.machine_id.len() > 255 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "machine_id is longer than 255 characters",
        ));
    }
    let cfg = lapi.config();
    if cfg.disable_remote_registration && !ip.0.is_loopback() {
        return Err(ApiError::forbidden(
            "registration is only allowed from the local host",
        ));
    }
    let mut validated = false;
    if let Some(token) = &body.registration_token {
        match &cfg.auto_registration {
            Some(auto)
                if !auto.token.is_empty() && crate::auth::constant_eq(token, &auto.token) =>
            {
                if !auto.allowed_ranges.iter().any(|n| n.contains(&ip.0)) {
                    return Err(ApiError::unauthorized(format!(
                        "IP {} is not allowed to auto-register",
                        ip.0
                    )));
                }
                validated = true;
            }
            Some(_) => return Err(ApiError::unauthorized("invalid registration token")),
            None => {}
        }
    }
    let password = body.password.clone();
    let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad_request(format!("cannot hash password: {e}")))?;
    let m = NewMachine {
        machine_id: body.machine_id.clone(),
        password_hash: hash,
        ip_address: ip.0.to_string(),
        is_validated: validated,
        auth_type: "password".into(),
    };
    match lapi.store().create_machine(&m).await {
        Ok(_) => Ok((if validated {
            StatusCode::ACCEPTED
        } else {
            StatusCode::CREATED
        })
        .into_response()),
        Err(store::StoreError::Exists(_)) => Err(ApiError::forbidden(format!(
            "user '{}': user already exist",
            body.machine_id
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn login(
    State(lapi): State<Arc<Lapi>>,
    ip: ClientIp,
    cert: PeerIdentity,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WatcherAuthRequest>,
) -> Res {
    if !lapi.limiter.allowed(ip.0) {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "too many failed logins, retry in a minute".into(),
            with_code: true,
        });
    }
    let ua = user_agent(&headers);
    let version = match ua.split('/').collect::<Vec<_>>().as_slice() {
        [_, v] => (*v).to_owned(),
        _ => {
            return Err(ApiError::unauthorized(format!(
                "bad User-Agent '{ua}': expected name/version"
            )));
        }
    };
    if body.machine_id.is_none()
        && let Some(cert) = cert.0
    {
        return tls_login(&lapi, ip, &cert, &version, body.scenarios.as_deref()).await;
    }
    let (Some(id), Some(password)) = (body.machine_id.as_deref(), body.password.as_deref()) else {
        return Err(ApiError::unauthorized(
            "machine_id and password are required",
        ));
    };
    let fail = |msg: String| {
        lapi.limiter.failed(ip.0);
        ApiError::unauthorized(msg)
    };
    let Some(m) = lapi.store().machine(id).await? else {
        return Err(fail(format!("machine '{id}' does not exist")));
    };
    if m.auth_type != "password" {
        return Err(fail(format!(
            "machine '{id}' authenticates with {}",
            m.auth_type
        )));
    }
    let (pw, hash) = (password.to_owned(), m.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&pw, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        return Err(fail("incorrect Username or Password".into()));
    }
    if !m.is_validated {
        return Err(fail(format!(
            "machine '{id}' is not validated yet (run: rampart machines validate {id})"
        )));
    }
    lapi.limiter.succeeded(ip.0);
    let scenarios = body
        .scenarios
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| s.join(","));
    lapi.store()
        .machine_logged_in(id, &ip.0.to_string(), &version, scenarios.as_deref())
        .await?;
    token_response(&lapi, id, None)
}

/// The verified client certificate of the connection, if any.
struct PeerIdentity(Option<crate::tls::PeerCert>);

impl axum::extract::FromRequestParts<Arc<Lapi>> for PeerIdentity {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &Arc<Lapi>,
    ) -> Result<Self, ApiError> {
        Ok(Self(crate::tls::peer(parts)))
    }
}

/// Login of a machine identified by its client certificate: `<CN>@<client IP>`, created
/// validated on first use (as CrowdSec does).
async fn tls_login(
    lapi: &Lapi,
    ip: ClientIp,
    cert: &crate::tls::PeerCert,
    version: &str,
    scenarios: Option<&[String]>,
) -> Res {
    let allowed = lapi
        .config()
        .tls
        .as_ref()
        .map(|t| t.agents_allowed_ou.clone())
        .unwrap_or_default();
    if !cert.allowed(&allowed) {
        return Err(ApiError::unauthorized(format!(
            "certificate OU {:?} is not an allowed agent OU",
            cert.ous
        )));
    }
    let id = format!("{}@{}", cert.cn, ip.0);
    match lapi.store().machine(&id).await? {
        Some(m) if m.auth_type != "tls" => {
            return Err(ApiError::unauthorized(format!(
                "machine '{id}' exists with auth type {}",
                m.auth_type
            )));
        }
        Some(_) => {}
        None => {
            let m = NewMachine {
                machine_id: id.clone(),
                password_hash: String::new(),
                ip_address: ip.0.to_string(),
                is_validated: true,
                auth_type: "tls".into(),
            };
            match lapi.store().create_machine(&m).await {
                Ok(_) | Err(store::StoreError::Exists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let scenarios = scenarios.filter(|s| !s.is_empty()).map(|s| s.join(","));
    lapi.store()
        .machine_logged_in(&id, &ip.0.to_string(), version, scenarios.as_deref())
        .await?;
    token_response(lapi, &id, None)
}

fn token_response(lapi: &Lapi, id: &str, orig_iat: Option<i64>) -> Res {
    let (token, exp) = lapi.jwt.issue(id, orig_iat).map_err(ApiError::internal)?;
    let expire = chrono::DateTime::from_timestamp(exp, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    ok_json(
        StatusCode::OK,
        &WatcherAuthResponse {
            code: 200,
            expire,
            token,
        },
    )
}

async fn refresh_token(State(lapi): State<Arc<Lapi>>, m: MachineAuth) -> Res {
    token_response(&lapi, &m.machine_id, Some(m.orig_iat))
}

async fn delete_self(State(lapi): State<Arc<Lapi>>, m: MachineAuth) -> Res {
    lapi.store().delete_machine(&m.machine_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn heartbeat(State(lapi): State<Arc<Lapi>>, m: MachineAuth) -> Res {
    lapi.store().machine_heartbeat(&m.machine_id).await?;
    Ok(StatusCode::OK.into_response())
}

// ---------------------------------------------------------------------------------------------
// Alerts

async fn push_alerts(
    State(lapi): State<Arc<Lapi>>,
    m: MachineAuth,
    ApiJson(alerts): ApiJson<Vec<Alert>>,
) -> Res {
    for (i, a) in alerts.iter().enumerate() {
        if a.scenario.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("alert #{i}: scenario is required"),
            ));
        }
        if a.source.scope.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("alert #{i}: source.scope is required"),
            ));
        }
    }
    let ids = lapi.ingest(alerts, &m.machine_id).await?;
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    ok_json(StatusCode::CREATED, &ids)
}

fn alert_filter(q: &[(String, String)], for_delete: bool) -> Result<AlertFilter, ApiError> {
    let mut f = AlertFilter {
        contains: true,
        include_capi: true,
        with_decisions: true,
        limit: Some(100),
        ..AlertFilter::default()
    };
    let mut ip = None;
    let mut range = None;
    for (k, v) in q {
        match k.as_str() {
            "scope" => f.scope = Some(normalize_scope(v).to_owned()),
            "value" => f.value = Some(v.clone()),
            "scenario" => f.scenario = Some(v.clone()),
            "ip" => ip = Some(parse_range(k, v)?),
            "range" => range = Some(parse_range(k, v)?),
            "contains" => f.contains = parse_bool(k, v)?,
            "since" => f.since = Some(ago_ms(k, v)?),
            "until" => f.until = Some(ago_ms(k, v)?),
            "created_before" => f.created_before = Some(ago_ms(k, v)?),
            "simulated" => f.simulated = Some(parse_bool(k, v)?),
            "has_active_decision" => f.has_active_decision = Some(parse_bool(k, v)?),
            "decision_type" => f.decision_type = Some(v.clone()),
            "origin" => {
                f.origin = Some(v.clone());
                f.include_capi = true;
            }
            "include_capi" => f.include_capi = parse_bool(k, v)?,
            "kind" => f.kind = Some(v.clone()),
            "limit" if !for_delete => f.limit = Some(parse_int(k, v)?),
            "sort" if !for_delete => f.sort_asc = v.eq_ignore_ascii_case("asc"),
            "with_decisions" if !for_delete => f.with_decisions = parse_bool(k, v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown filter parameter '{other}'"
                )));
            }
        }
    }
    f.ip = range.or(ip);
    if for_delete {
        f.limit = None;
    }
    Ok(f)
}

async fn search_alerts(State(lapi): State<Arc<Lapi>>, _m: MachineAuth, Query(q): Params) -> Res {
    let f = alert_filter(&q, false)?;
    let alerts = lapi.store().search_alerts(&f).await?;
    ok_json(StatusCode::OK, &alerts)
}

async fn get_alert(State(lapi): State<Arc<Lapi>>, _m: MachineAuth, Path(id): Path<String>) -> Res {
    let id = parse_int("alert_id", &id)?;
    match lapi.store().alert(id).await? {
        Some(a) => ok_json(StatusCode::OK, &a),
        None => Err(ApiError::not_found(format!("alert {id} not found"))),
    }
}

async fn delete_alerts(
    State(lapi): State<Arc<Lapi>>,
    _m: MachineAuth,
    ip: ClientIp,
    Query(q): Params,
) -> Res {
    if !ip.trusted(&lapi) {
        return Err(ApiError::forbidden(format!(
            "access forbidden from this IP ({})",
            ip.0
        )));
    }
    let f = alert_filter(&q, true)?;
    let (n, decisions) = lapi.store().delete_alerts(&f).await?;
    lapi.end_in_index(&decisions, now_ms()).await;
    ok_json(
        StatusCode::OK,
        &DeleteResponse {
            nb_deleted: n.to_string(),
        },
    )
}

async fn delete_alert(
    State(lapi): State<Arc<Lapi>>,
    _m: MachineAuth,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Res {
    if !ip.trusted(&lapi) {
        return Err(ApiError::forbidden(format!(
            "access forbidden from this IP ({})",
            ip.0
        )));
    }
    let id = parse_int("alert_id", &id)?;
    let (n, decisions) = lapi.store().delete_alerts_by_id(&[id]).await?;
    if n == 0 {
        return Err(ApiError::not_found(format!("alert {id} not found")));
    }
    lapi.end_in_index(&decisions, now_ms()).await;
    ok_json(
        StatusCode::OK,
        &DeleteResponse {
            nb_deleted: n.to_string(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Decisions

/// `GET /v1/decisions`: answered from the index.
async fn get_decisions(State(lapi): State<Arc<Lapi>>, b: BouncerAuth, Query(q): Params) -> Res {
    let mut f = Filter::default();
    let mut target = None;
    let mut contains = true;
    let (mut limit, mut offset, mut id_gt) = (None, 0usize, None);
    for (k, v) in &q {
        match k.as_str() {
            "ip" | "range" => target = Some(parse_range(k, v)?),
            "contains" => contains = parse_bool(k, v)?,
            "scope" | "scopes" => f.scopes = scopes(v),
            "value" => f.value = Some(v.clone()),
            "type" => f.types = list(v),
            "origins" => f.origins = list(v),
            "scenarios_containing" => f.scenarios_containing = list(&v.to_lowercase()),
            "scenarios_not_containing" => f.scenarios_not_containing = list(&v.to_lowercase()),
            "simulated" => f.simulated = !v.eq_ignore_ascii_case("false"),
            "limit" => limit = Some(usize::try_from(parse_int(k, v)?).unwrap_or(0)),
            "offset" => offset = usize::try_from(parse_int(k, v)?).unwrap_or(0),
            "id_gt" => id_gt = Some(parse_int(k, v)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown filter parameter '{other}'"
                )));
            }
        }
    }
    let now = now_ms();
    expire_if_due(&lapi, now);
    let body = {
        let ix = lapi.index.read().map_err(ApiError::internal)?;
        let mut ids = Vec::new();
        match &target {
            Some(r) => {
                ix.lookup(r, contains, &mut ids);
                ix.retain_matching(&mut ids, &f, now);
                ids.sort_unstable();
                ids.dedup();
            }
            None => ids = ix.scan(&f),
        }
        if let Some(g) = id_gt {
            ids.retain(|id| *id > g);
        }
        let ids: Vec<i64> = ids
            .into_iter()
            .skip(offset)
            .take(limit.filter(|l| *l > 0).unwrap_or(usize::MAX))
            .collect();
        lapi.metrics.lookup(&b.0.name, !ids.is_empty());
        crate::render::array_or_null(&ids, &ix, now)
    };
    Ok(json_response(StatusCode::OK, body))
}

/// Logs decisions whose time is up before answering, so a poll never reports a decision that
/// already ended as active (the background job may not have run yet).
fn expire_if_due(lapi: &Lapi, now: i64) {
    let due = lapi
        .index
        .read()
        .ok()
        .and_then(|ix| ix.next_expiry())
        .is_some_and(|n| n <= now);
    if due && let Ok(mut ix) = lapi.index.write() {
        ix.expire_due(now);
    }
}

/// `GET /v1/decisions/stream`, plus `wait=<duration>`: when there is nothing new, hold the request
/// until something changes or the wait is over.
async fn stream(
    State(lapi): State<Arc<Lapi>>,
    BouncerAuth(b): BouncerAuth,
    method: axum::http::Method,
    Query(q): Params,
) -> Res {
    if method == axum::http::Method::HEAD {
        // A key check: must not move the bouncer's position.
        return Ok(StatusCode::OK.into_response());
    }
    let mut f = Filter {
        scopes: vec!["Ip".into(), "Range".into()],
        ..Filter::default()
    };
    let (mut startup, mut dedup, mut wait) = (false, true, None);
    for (k, v) in &q {
        match k.as_str() {
            "startup" => startup = parse_bool(k, v)?,
            // An empty `scopes=` (some bouncers always send the key) keeps the default.
            "scopes" if !v.trim().is_empty() => f.scopes = scopes(v),
            "scopes" => {}
            "origins" => f.origins = list(v),
            "scenarios_containing" => f.scenarios_containing = list(&v.to_lowercase()),
            "scenarios_not_containing" => f.scenarios_not_containing = list(&v.to_lowercase()),
            "dedup" => dedup = parse_bool(k, v)?,
            "simulated" => f.simulated = !v.eq_ignore_ascii_case("false"),
            "wait" => {
                let d = parse_duration_days(v).filter(|d| *d >= 0).ok_or_else(|| {
                    ApiError::bad_request(format!("parameter 'wait': '{v}' is not a duration"))
                })?;
                wait = Some(
                    Duration::from_nanos(u64::try_from(d).unwrap_or(0)).min(lapi.config().max_wait),
                );
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown stream parameter '{other}'"
                )));
            }
        }
    }
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let mut rx = lapi.changes.subscribe();
    loop {
        let now = now_ms();
        expire_if_due(&lapi, now);
        let cursor = lapi
            .cursors
            .lock()
            .ok()
            .and_then(|c| c.get(&b.name).copied());
        let (new, deleted, seq) = {
            let ix = lapi.index.read().map_err(ApiError::internal)?;
            let seq = ix.seq();
            let (new, deleted) = if startup {
                ix.snapshot(&f, dedup, now)
            } else {
                match cursor.and_then(|c| ix.delta(c, &f, dedup, now)) {
                    Some(d) => d,
                    None => ix.since_time(b.last_pull_db.load(Ordering::Relaxed), &f, dedup, now),
                }
            };
            (new, deleted, seq)
        };
        let empty = new.is_empty() && deleted.is_empty();
        if let (true, false, Some(deadline)) = (empty, startup, deadline) {
            // Park until the log moves past what this bouncer has seen.
            if let Ok(mut c) = lapi.cursors.lock() {
                c.insert(b.name.clone(), seq);
            }
            rx.mark_unchanged();
            if *rx.borrow() > seq {
                continue;
            }
            let mut closing = lapi.closing.subscribe();
            tokio::select! {
                r = tokio::time::timeout_at(deadline, rx.changed()) => {
                    if let Ok(Ok(())) = r {
                        continue;
                    }
                }
                // Shutting down: answer with what there is rather than hold the shutdown.
                _ = closing.wait_for(|c| *c) => {}
            }
        }
        if let Ok(mut c) = lapi.cursors.lock() {
            c.insert(b.name.clone(), seq);
        }
        b.last_pull_db.store(now, Ordering::Relaxed);
        let cold = if startup {
            cold_deleted(&lapi, &f, dedup, now).await?
        } else {
            Vec::new()
        };
        return Ok(stream_body(lapi, new, deleted, cold, now));
    }
}

/// One piece of a stream body.
enum Part {
    /// Literal JSON (`{"new":[`, `],"deleted":[`, `]}`); starts a new array.
    Open(&'static [u8]),
    /// Decisions held by the index.
    Ids(Vec<i64>),
    /// Expired decisions read from the database.
    Cold(Vec<model::Decision>),
}

/// Streams `{"new": [...], "deleted": [...]}` in chunks, taking the index lock per chunk, so a
/// million-decision snapshot never sits in memory whole and never blocks writers for long.
fn stream_body(
    lapi: Arc<Lapi>,
    new: Vec<i64>,
    deleted: Vec<i64>,
    cold: Vec<model::Decision>,
    now: i64,
) -> Response {
    const CHUNK: usize = 2048;
    let total = new.len() + deleted.len() + cold.len();
    let mut parts = vec![Part::Open(b"{\"new\":[")];
    parts.extend(new.chunks(CHUNK).map(|c| Part::Ids(c.to_vec())));
    parts.push(Part::Open(b"],\"deleted\":["));
    parts.extend(deleted.chunks(CHUNK).map(|c| Part::Ids(c.to_vec())));
    parts.extend(cold.chunks(CHUNK).map(|c| Part::Cold(c.to_vec())));
    parts.push(Part::Open(b"]}"));
    drop((new, deleted, cold));
    let mut first = true;
    let mut render = move |p: Part| -> bytes::Bytes {
        match p {
            Part::Open(text) => {
                first = true;
                bytes::Bytes::from_static(text)
            }
            Part::Ids(ids) => {
                let mut out = Vec::with_capacity(ids.len() * 180);
                render_ids(&lapi, &mut out, &ids, now, &mut first);
                out.into()
            }
            Part::Cold(ds) => {
                let mut out = Vec::with_capacity(ds.len() * 180);
                for d in &ds {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut out, d);
                }
                out.into()
            }
        }
    };
    if total <= CHUNK {
        let mut out = Vec::with_capacity(64 + total * 180);
        for p in parts {
            out.extend_from_slice(&render(p));
        }
        return json_response(StatusCode::OK, out);
    }
    let body =
        futures::stream::iter(parts).map(move |p| Ok::<_, std::convert::Infallible>(render(p)));
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response()
}

fn render_ids(lapi: &Lapi, out: &mut Vec<u8>, ids: &[i64], now: i64, first: &mut bool) {
    let Ok(ix) = lapi.index.read() else { return };
    let mut scratch = crate::render::Scratch::default();
    for id in ids {
        // A decision evicted since the ids were taken is simply left out.
        let Some(e) = ix.get(*id) else { continue };
        if !std::mem::take(first) {
            out.push(b',');
        }
        crate::render::decision(out, e, &ix, now, &mut scratch);
    }
}

/// Expired decisions older than what the index keeps, for a `startup=true` pull: CrowdSec lists
/// every expired decision still in its database, and script bouncers that keep state rely on it
/// to clean up after being down. One per (scope, type, value), none whose target the index
/// already reported.
async fn cold_deleted(
    lapi: &Lapi,
    f: &Filter,
    dedup: bool,
    now: i64,
) -> Result<Vec<model::Decision>, ApiError> {
    let horizon = lapi
        .index
        .read()
        .map(|ix| ix.horizon(now))
        .map_err(ApiError::internal)?;
    let rows = lapi
        .store()
        .decisions_until_between(i64::MIN, horizon)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ix = lapi.index.read().map_err(ApiError::internal)?;
    let mut best: hashbrown::HashMap<(&str, &str, &str), &store::StoredDecision> =
        hashbrown::HashMap::new();
    let mut all = Vec::new();
    for d in &rows {
        if ix.get(d.id).is_some() || ix.knows_target(d) || !f.matches_stored(d) {
            continue;
        }
        if dedup {
            let slot = best
                .entry((d.scope.as_str(), d.kind.as_str(), d.value.as_str()))
                .or_insert(d);
            if (d.until, d.id) > (slot.until, slot.id) {
                *slot = d;
            }
        } else {
            all.push(d);
        }
    }
    if dedup {
        all = best.into_values().collect();
    }
    all.sort_unstable_by_key(|d| d.id);
    Ok(all.into_iter().map(|d| d.to_model(now, false)).collect())
}

/// `DELETE /v1/decisions`: expire the active decisions matching the filters.
async fn delete_decisions(State(lapi): State<Arc<Lapi>>, _m: MachineAuth, Query(q): Params) -> Res {
    let mut f = Filter {
        simulated: true,
        ..Filter::default()
    };
    let mut target = None;
    let mut contains = true;
    let (mut scenario, mut uuid) = (None, None);
    for (k, v) in &q {
        match k.as_str() {
            "ip" | "range" => target = Some(parse_range(k, v)?),
            "contains" => contains = parse_bool(k, v)?,
            "scopes" | "scope" => f.scopes = scopes(v),
            "value" => f.value = Some(v.clone()),
            "type" => f.types = list(v),
            "origin" => f.origins = list(v),
            "scenario" => scenario = Some(v.clone()),
            "uuid" => uuid = Some(v.clone()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown filter parameter '{other}'"
                )));
            }
        }
    }
    let now = now_ms();
    let ids: Vec<i64> = {
        let ix = lapi.index.read().map_err(ApiError::internal)?;
        let mut ids = Vec::new();
        match &target {
            Some(r) => ix.lookup(r, contains, &mut ids),
            None => ids = ix.scan(&f),
        }
        let uuid = uuid
            .as_deref()
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
            .map(|u| u.as_u128());
        ids.into_iter()
            .filter(|id| {
                ix.get(*id).is_some_and(|e| {
                    e.until > now
                        && ix.matches(e, &f)
                        && scenario.as_deref().is_none_or(|s| ix.sym(e.scenario) == s)
                        && uuid.is_none_or(|u| e.uuid == u)
                })
            })
            .collect()
    };
    let n = lapi.expire(&ids).await?;
    ok_json(
        StatusCode::OK,
        &DeleteResponse {
            nb_deleted: n.to_string(),
        },
    )
}

async fn delete_decision(
    State(lapi): State<Arc<Lapi>>,
    _m: MachineAuth,
    Path(id): Path<String>,
) -> Res {
    let id = parse_int("decision_id", &id)?;
    let active = lapi
        .index
        .read()
        .ok()
        .and_then(|ix| ix.get(id).map(|e| e.until > now_ms()))
        .unwrap_or(false);
    if !active {
        return Err(ApiError::not_found(format!(
            "decision {id} not found or already expired"
        )));
    }
    let n = lapi.expire(&[id]).await?;
    ok_json(
        StatusCode::OK,
        &DeleteResponse {
            nb_deleted: n.to_string(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Usage metrics

async fn usage_metrics(
    State(lapi): State<Arc<Lapi>>,
    headers: HeaderMap,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Res {
    let _ = parts;
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let unprocessable = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m.to_owned());
    let (kind, who, item) = if headers.contains_key("x-api-key") {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let name = lapi
            .bouncers
            .read()
            .ok()
            .and_then(|m| {
                m.get(&crate::auth::hash_api_key(key.trim()))
                    .map(|b| b.name.clone())
            })
            .ok_or_else(|| ApiError::forbidden("access forbidden"))?;
        let items = payload
            .get("remediation_components")
            .and_then(|v| v.as_array());
        match items.map(Vec::as_slice) {
            Some([one]) => ("RC", name, one.clone()),
            _ => {
                return Err(ApiError::bad_request(
                    "a bouncer must send exactly one remediation_components item",
                ));
            }
        }
    } else {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("auth header is empty"))?;
        let claims = lapi
            .jwt
            .verify(token.trim())
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let items = payload.get("log_processors").and_then(|v| v.as_array());
        match items.map(Vec::as_slice) {
            Some([one]) => ("LP", claims.id, one.clone()),
            _ => {
                return Err(ApiError::bad_request(
                    "a machine must send exactly one log_processors item",
                ));
            }
        }
    };
    for field in ["version", "os", "utc_startup_timestamp"] {
        if item.get(field).is_none() {
            return Err(unprocessable(&format!("{field} is required")));
        }
    }
    if kind == "LP" {
        let os = &item["os"];
        lapi.store()
            .machine_usage(
                &who,
                os.get("name").and_then(|v| v.as_str()).unwrap_or(""),
                os.get("version").and_then(|v| v.as_str()).unwrap_or(""),
                &item
                    .get("hub_items")
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                &item
                    .get("datasources")
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
            .await?;
    }
    let mut stored =
        json!({"metrics": item.get("metrics").cloned().unwrap_or(serde_json::Value::Null)});
    if kind == "RC" {
        stored["type"] = item.get("type").cloned().unwrap_or(serde_json::Value::Null);
    }
    lapi.store()
        .insert_metrics(kind, &who, &stored.to_string())
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

// ---------------------------------------------------------------------------------------------
// Allowlists

fn allowlist_json(l: &store::Allowlist, with_content: bool) -> serde_json::Value {
    let ts = store::ms_to_rfc3339;
    let mut v = json!({
        "name": l.name,
        "allowlist_id": l.id.to_string(),
        "description": l.description,
        "created_at": ts(l.created_at),
        "updated_at": ts(l.updated_at),
        "console_managed": false,
    });
    if with_content {
        v["items"] = l
            .items
            .iter()
            .map(|i| {
                json!({"value": i.value, "description": i.comment, "created_at": ts(i.created_at),
                       "expiration": i.expires_at.map(ts).unwrap_or_default()})
            })
            .collect();
    }
    v
}

async fn allowlists(State(lapi): State<Arc<Lapi>>, _m: MachineAuth, Query(q): Params) -> Res {
    let with_content = q.iter().any(|(k, v)| k == "with_content" && v == "true");
    let lists = lapi.store().allowlists().await?;
    let out: Vec<_> = lists
        .iter()
        .map(|l| allowlist_json(l, with_content))
        .collect();
    ok_json(StatusCode::OK, &out)
}

async fn allowlist(
    State(lapi): State<Arc<Lapi>>,
    _m: MachineAuth,
    Path(name): Path<String>,
) -> Res {
    let lists = lapi.store().allowlists().await?;
    match lists.iter().find(|l| l.name == name) {
        Some(l) => ok_json(StatusCode::OK, &allowlist_json(l, true)),
        None => Err(ApiError::not_found(format!("allowlist '{name}' not found"))),
    }
}

async fn allowlist_check(
    State(lapi): State<Arc<Lapi>>,
    _m: MachineAuth,
    method: axum::http::Method,
    Path(target): Path<String>,
) -> Res {
    let r = parse_range("ip_or_range", target.trim_start_matches('/'))?;
    let reasons = lapi.allowlisted(&r);
    if method == axum::http::Method::HEAD {
        return Ok((if reasons.is_empty() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        })
        .into_response());
    }
    ok_json(
        StatusCode::OK,
        &json!({"allowlisted": !reasons.is_empty(), "reason": reasons.join(", ")}),
    )
}

#[derive(serde::Deserialize)]
struct BulkCheck {
    targets: Vec<String>,
}

async fn allowlist_check_bulk(
    State(lapi): State<Arc<Lapi>>,
    _m: MachineAuth,
    ApiJson(body): ApiJson<BulkCheck>,
) -> Res {
    let mut results = Vec::new();
    for t in &body.targets {
        let r = parse_range("targets", t)?;
        let reasons = lapi.allowlisted(&r);
        if !reasons.is_empty() {
            results.push(json!({"target": t, "allowlists": reasons}));
        }
    }
    ok_json(StatusCode::OK, &json!({"results": results}))
}
