//! HTTP plumbing: error bodies, JSON bodies with 400/422, machine tokens, the client address,
//! and per-machine / per-network rate limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Central;

/// An error answer: a status and `{"message": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({"message": self.message})),
        )
            .into_response()
    }
}

/// A JSON body: malformed JSON is 400, a body of the wrong shape 422, both naming the problem.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    e.status(),
                    format!("cannot read request body: {}", e.body_text()),
                )
            })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        parse_body(de).map(ApiJson)
    }
}

/// Deserialises; serde names the missing or mistyped field, with line and column.
fn parse_body<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, ApiError> {
    T::deserialize(de).map_err(|e| {
        use serde_json::error::Category;
        let status = match e.classify() {
            Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("invalid request body: {e}"))
    })
}

/// Token claims: the machine's login and row id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) id: String,
    pub(crate) mid: i64,
    pub(crate) exp: i64,
}

/// HS256 signing keys.
pub(crate) struct Jwt {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jwt(..)")
    }
}

/// Tokens live an hour, as CAPI's do; clients log in again.
pub(crate) const TOKEN_TTL_SECS: i64 = 3600;

impl Jwt {
    pub(crate) fn new(secret: Option<&[u8]>) -> Self {
        let random: [u8; 64] = rand::random();
        let secret = secret.unwrap_or(&random);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub(crate) fn issue(
        &self,
        id: &str,
        mid: i64,
    ) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let exp = chrono::Utc::now().timestamp() + TOKEN_TTL_SECS;
        let claims = Claims {
            id: id.to_owned(),
            mid,
            exp,
        };
        Ok((
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)?,
            exp,
        ))
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)?.claims)
    }
}

/// The client's address; `X-Forwarded-For` only from trusted proxies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl FromRequestParts<Arc<Central>> for ClientIp {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        central: &Arc<Central>,
    ) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
        if central
            .config()
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer))
        {
            // The right-most address not added by a trusted proxy is the client.
            let fwd = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .collect::<Vec<_>>();
            let trusted = |ip: &IpAddr| {
                central
                    .config()
                    .trusted_proxies
                    .iter()
                    .any(|n| n.contains(ip))
            };
            if let Some(ip) = fwd.iter().rev().find(|ip| !trusted(ip)).or(fwd.first()) {
                return Ok(Self(*ip));
            }
        }
        Ok(Self(peer))
    }
}

/// A machine authenticated by its token.
#[derive(Debug, Clone)]
pub(crate) struct MachineAuth {
    pub(crate) login: String,
    pub(crate) id: i64,
}

impl FromRequestParts<Arc<Central>> for MachineAuth {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        central: &Arc<Central>,
    ) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let c = central
            .jwt
            .verify(token)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        Ok(Self {
            login: c.id,
            id: c.mid,
        })
    }
}

/// In-memory limits of this replica: a token bucket of signals per machine, registrations per
/// network and hour. Memory is bounded: idle entries are dropped when the maps grow.
#[derive(Debug)]
pub(crate) struct Limits {
    per_minute: f64,
    per_hour: u32,
    signals: Mutex<HashMap<i64, (f64, Instant)>>,
    registrations: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limits {
    pub(crate) fn new(signals_per_minute: u32, registrations_per_hour: u32) -> Self {
        Self {
            per_minute: f64::from(signals_per_minute),
            per_hour: registrations_per_hour,
            signals: Mutex::new(HashMap::new()),
            registrations: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` signals from the machine's bucket; `false` when it holds fewer.
    pub(crate) fn take_signals(&self, machine: i64, n: usize) -> bool {
        if self.per_minute <= 0.0 {
            return true;
        }
        let Ok(mut m) = self.signals.lock() else {
            return true;
        };
        let burst = self.per_minute * 2.0;
        if m.len() > 200_000 {
            m.retain(|_, (_, t)| t.elapsed().as_secs() < 300);
        }
        let now = Instant::now();
        let e = m.entry(machine).or_insert((burst, now));
        e.0 = (e.0 + now.duration_since(e.1).as_secs_f64() * self.per_minute / 60.0).min(burst);
        e.1 = now;
        let n = n as f64;
        if e.0 >= n {
            e.0 -= n;
            true
        } else {
            false
        }
    }

    /// Counts a registration from `network`; `false` past the hourly limit.
    pub(crate) fn register(&self, network: &str) -> bool {
        if self.per_hour == 0 {
            return true;
        }
        let Ok(mut m) = self.registrations.lock() else {
            return true;
        };
        if m.len() > 100_000 {
            m.retain(|_, (_, t)| t.elapsed().as_secs() < 3600);
        }
        let e = m.entry(network.to_owned()).or_insert((0, Instant::now()));
        if e.1.elapsed().as_secs() >= 3600 {
            *e = (0, Instant::now());
        }
        if e.0 >= self.per_hour {
            return false;
        }
        e.0 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_past_their_burst() {
        let l = Limits::new(60, 2);
        assert!(l.take_signals(1, 100));
        assert!(!l.take_signals(1, 100));
        assert!(l.take_signals(2, 120));
        assert!(l.register("n") && l.register("n") && !l.register("n"));
        assert!(l.register("other"));
    }
}
