//! HTTP plumbing: error bodies, client IP, authentication extractors, JSON bodies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{BouncerInfo, Lapi};

/// An error answer: a status and `{"message": ...}` (login errors also carry `code`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) with_code: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            with_code: false,
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            with_code: true,
        }
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::NotFound(m) => Self::not_found(format!("{m} not found")),
            store::StoreError::Exists(m) => Self::forbidden(format!("{m}: already exists")),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.with_code {
            json!({"code": self.status.as_u16(), "message": self.message})
        } else {
            json!({"message": self.message})
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The client's address (forwarded headers are believed only from trusted proxies).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl FromRequestParts<Arc<Lapi>> for ClientIp {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, lapi: &Arc<Lapi>) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        let cfg = lapi.config();
        if cfg.use_forwarded_for_headers && cfg.trusted_proxies.iter().any(|n| n.contains(&peer)) {
            let fwd = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .or_else(|| parts.headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
                .and_then(|v| v.trim().parse().ok());
            if let Some(ip) = fwd {
                return Ok(Self(ip));
            }
        }
        Ok(Self(peer))
    }
}

impl ClientIp {
    /// Loopback or in `trusted_ips`.
    pub(crate) fn trusted(&self, lapi: &Lapi) -> bool {
        self.0.is_loopback()
            || lapi
                .config()
                .trusted_ips
                .iter()
                .any(|n| n.contains(&self.0))
    }
}

/// The User-Agent, or "".
pub(crate) fn user_agent(h: &HeaderMap) -> &str {
    h.get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A machine authenticated by its JWT.
#[derive(Debug, Clone)]
pub(crate) struct MachineAuth {
    pub(crate) machine_id: String,
    pub(crate) orig_iat: i64,
}

impl FromRequestParts<Arc<Lapi>> for MachineAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, lapi: &Arc<Lapi>) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let cookie = || {
            parts
                .headers
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|c| {
                    c.split(';')
                        .filter_map(|kv| kv.trim().strip_prefix("jwt="))
                        .next()
                })
        };
        let Some(token) = bearer.or_else(cookie) else {
            return Err(ApiError::unauthorized("auth header is empty"));
        };
        let claims = lapi
            .jwt
            .verify(token)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        if let Some(w) = parts.extensions.get::<crate::metrics::Who>() {
            w.machine(&claims.id);
        }
        Ok(Self {
            machine_id: claims.id,
            orig_iat: claims.orig_iat,
        })
    }
}

/// A bouncer authenticated by its API key.
#[derive(Debug, Clone)]
pub(crate) struct BouncerAuth(pub(crate) Arc<BouncerInfo>);

impl FromRequestParts<Arc<Lapi>> for BouncerAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, lapi: &Arc<Lapi>) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if key.is_empty() {
            return match crate::tls::peer(parts) {
                Some(cert) => tls_bouncer(parts, lapi, &cert).await,
                None => Err(ApiError::forbidden("access forbidden")),
            };
        }
        let hash = crate::auth::hash_api_key(key.trim());
        let found = lapi
            .bouncers
            .read()
            .ok()
            .and_then(|m| m.get(&hash).cloned());
        let info = match found {
            Some(i) => i,
            None => {
                // Keys added by `rampart bouncers add` on the database directly: look again.
                lapi.reload_bouncers().await.map_err(ApiError::from)?;
                lapi.bouncers
                    .read()
                    .ok()
                    .and_then(|m| m.get(&hash).cloned())
                    .ok_or_else(|| ApiError::forbidden("access forbidden"))?
            }
        };
        if info.revoked {
            return Err(ApiError::forbidden("access forbidden"));
        }
        // Bookkeeping (type/version from the User-Agent, last pull) at most once a minute, so
        // the hot path allocates nothing for it.
        let now = store::now_ms();
        let last = info.last_pull_written.load(Ordering::Relaxed);
        let ua_ref = user_agent(&parts.headers);
        let ua_changed = info
            .user_agent
            .lock()
            .map(|u| u.as_str() != ua_ref)
            .unwrap_or(false);
        if ua_changed || now - last > 60_000 {
            let ua = ua_ref.to_owned();
            let ip = ClientIp::from_request_parts(parts, lapi)
                .await?
                .0
                .to_string();
            info.last_pull_written.store(now, Ordering::Relaxed);
            if let Ok(mut u) = info.user_agent.lock() {
                u.clone_from(&ua);
            }
            let (kind, version) = match ua.split_once('/') {
                Some((t, v)) if !v.contains('/') => (t.to_owned(), v.to_owned()),
                _ => (ua.clone(), "N/A".to_owned()),
            };
            let store = lapi.store().clone();
            let name = info.name.clone();
            tokio::spawn(async move {
                if let Err(e) = store
                    .bouncer_seen(&name, &ip, &kind, &version, Some(now))
                    .await
                {
                    tracing::warn!(error = %e, bouncer = %name, "could not record bouncer pull");
                }
            });
        }
        if let Some(w) = parts.extensions.get::<crate::metrics::Who>() {
            w.bouncer(&info);
        }
        Ok(Self(info))
    }
}

/// A bouncer identified by its client certificate: `<CN>@<client IP>`, created on first use.
async fn tls_bouncer(
    parts: &mut Parts,
    lapi: &Arc<Lapi>,
    cert: &crate::tls::PeerCert,
) -> Result<BouncerAuth, ApiError> {
    let allowed = lapi
        .config()
        .tls
        .as_ref()
        .map(|t| t.bouncers_allowed_ou.clone())
        .unwrap_or_default();
    if !cert.allowed(&allowed) {
        return Err(ApiError::forbidden(format!(
            "access forbidden: certificate OU {:?} is not an allowed bouncer OU",
            cert.ous
        )));
    }
    let ip = ClientIp::from_request_parts(parts, lapi).await?.0;
    let name = format!("{}@{ip}", cert.cn);
    let key = format!("tls:{name}");
    if let Some(info) = lapi.bouncers.read().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(BouncerAuth(info));
    }
    match lapi.store().bouncer(&name).await? {
        Some(b) if b.auth_type != "tls" => {
            return Err(ApiError::forbidden(format!(
                "bouncer '{name}' exists with auth type {}",
                b.auth_type
            )));
        }
        Some(_) => {}
        None => {
            let nb = store::NewBouncer {
                name: name.clone(),
                api_key_hash: String::new(),
                auth_type: "tls".into(),
                auto_created: true,
                ip_address: ip.to_string(),
            };
            match lapi.store().create_bouncer(&nb).await {
                Ok(_) | Err(store::StoreError::Exists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let info = Arc::new(BouncerInfo {
        name,
        revoked: false,
        last_pull_written: std::sync::atomic::AtomicI64::new(0),
        last_pull_db: std::sync::atomic::AtomicI64::new(0),
        user_agent: std::sync::Mutex::new(String::new()),
    });
    if let Ok(mut m) = lapi.bouncers.write() {
        m.insert(key, Arc::clone(&info));
    }
    Ok(BouncerAuth(info))
}

/// A JSON body with CrowdSec's status codes: malformed JSON → 400, wrong shape → 422, both with
/// a message naming the problem (serde's, with line and column).
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let status = e.status();
                ApiError::new(
                    status,
                    format!("cannot read request body: {}", e.body_text()),
                )
            })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            use serde_json::error::Category;
            let status = match e.classify() {
                Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, format!("invalid request body: {e}"))
        })
    }
}
