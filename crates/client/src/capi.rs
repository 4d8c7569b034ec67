//! A client of a Central API (Rampart's `rampart central`, or any server speaking CrowdSec's
//! CAPI): registration, login with the scenarios the LAPI's machines run, signal pushes, the
//! community-blocklist stream, metrics, and blocklist-link downloads.

use std::sync::Arc;
use std::time::Duration;

use model::capi::{MetricsPush, Signal, StreamV3};
use model::{StreamResponse, WatcherAuthRequest, WatcherAuthResponse, WatcherRegistration};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{ClientError, decode, http_err};

/// `online_api_credentials.yaml`: `url`, `login`, `password` (an empty or comment-only file
/// means "no central API", as in CrowdSec).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OnlineCredentials {
    /// Central API base URL.
    #[serde(default)]
    pub url: String,
    /// Machine id.
    #[serde(default)]
    pub login: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// PAPI URL (CrowdSec's console; unused).
    #[serde(default)]
    pub papi_url: String,
}

impl OnlineCredentials {
    /// Reads the file; `Ok(None)` when it is empty or lacks url/login/password.
    pub fn load(path: &std::path::Path) -> Result<Option<Self>, ClientError> {
        let bad = |reason: String| ClientError::Credentials {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let meaningful = text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if !meaningful {
            return Ok(None);
        }
        let c: Self = serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if c.url.is_empty() || c.login.is_empty() || c.password.is_empty() {
            return Ok(None);
        }
        Ok(Some(c))
    }
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    version: u8,
    login: String,
    password: String,
    forwarded_for: Option<String>,
    scenarios: Mutex<Vec<String>>,
    token: Mutex<Option<(String, i64)>>,
}

/// A LAPI's session with a central API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Capi(Arc<Inner>);

impl Capi {
    /// A client for `url` speaking CAPI `v{version}` (2 or 3) as machine `login`.
    pub fn new(url: &str, login: &str, password: &str, version: u8) -> Self {
        Self(Arc::new(Inner {
            http: crate::http(
                concat!("rampart/v", env!("CARGO_PKG_VERSION")),
                Duration::from_secs(60),
            ),
            base: url.trim_end_matches('/').to_owned(),
            version,
            login: login.to_owned(),
            password: password.to_owned(),
            forwarded_for: None,
            scenarios: Mutex::new(Vec::new()),
            token: Mutex::new(None),
        }))
    }

    /// Sends `X-Forwarded-For: ip` (simulations behind a trusted proxy; before first use).
    pub fn with_forwarded_for(self, ip: &str) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|a| Inner {
            http: a.http.clone(),
            base: a.base.clone(),
            version: a.version,
            login: a.login.clone(),
            password: a.password.clone(),
            forwarded_for: a.forwarded_for.clone(),
            scenarios: Mutex::new(Vec::new()),
            token: Mutex::new(None),
        });
        inner.forwarded_for = Some(ip.to_owned());
        Self(Arc::new(inner))
    }

    /// The machine id.
    pub fn login_name(&self) -> &str {
        &self.0.login
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v{}{path}", self.0.base, self.0.version)
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.0.http.request(method, url);
        match &self.0.forwarded_for {
            Some(ip) => r.header("X-Forwarded-For", ip),
            None => r,
        }
    }

    /// `POST /watchers`: registers this machine.
    pub async fn register(&self) -> Result<(), ClientError> {
        let url = self.url("/watchers");
        let body = WatcherRegistration {
            machine_id: self.0.login.clone(),
            password: self.0.password.clone(),
            registration_token: None,
        };
        let resp = self
            .request(Method::POST, &url)
            .json(&body)
            .send()
            .await
            .map_err(http_err(&url))?;
        decode::<serde_json::Value>(&Method::POST, &url, resp)
            .await
            .map(|_| ())
    }

    /// Logs in now, declaring `scenarios` (they are kept for later logins).
    pub async fn login(&self, scenarios: &[String]) -> Result<(), ClientError> {
        *self.0.scenarios.lock().await = scenarios.to_vec();
        self.relogin().await
    }

    async fn relogin(&self) -> Result<(), ClientError> {
        let url = self.url("/watchers/login");
        let body = WatcherAuthRequest {
            machine_id: Some(self.0.login.clone()),
            password: Some(self.0.password.clone()),
            scenarios: Some(self.0.scenarios.lock().await.clone()),
        };
        let resp = self
            .request(Method::POST, &url)
            .json(&body)
            .send()
            .await
            .map_err(http_err(&url))?;
        let auth: WatcherAuthResponse = decode(&Method::POST, &url, resp).await?;
        let exp = chrono::DateTime::parse_from_rfc3339(&auth.expire).map_or(0, |t| t.timestamp());
        *self.0.token.lock().await = Some((auth.token, exp));
        Ok(())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        crate::call_bearer(self, method, self.url(path), query, body).await
    }

    /// `POST /signals`.
    pub async fn push_signals(&self, signals: &[Signal]) -> Result<(), ClientError> {
        let body = serde_json::to_value(signals).map_err(|e| ClientError::Decode {
            url: self.0.base.clone(),
            reason: e.to_string(),
        })?;
        self.call::<serde_json::Value>(Method::POST, "/signals", &[], Some(&body))
            .await
            .map(|_| ())
    }

    /// `GET /decisions/stream` in v3 form (`community`/`additional`: CrowdSec's
    /// `pull.community` and `pull.blocklists`).
    pub async fn stream(
        &self,
        startup: bool,
        community: bool,
        additional: bool,
    ) -> Result<StreamV3, ClientError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if startup {
            q.push(("startup", "true"));
        }
        if !community {
            q.push(("community_pull", "false"));
        }
        if !additional {
            q.push(("additional_pull", "false"));
        }
        self.call(Method::GET, "/decisions/stream", &q, None).await
    }

    /// [`Capi::stream`] with both pulls on.
    pub async fn stream_v3(&self, startup: bool) -> Result<StreamV3, ClientError> {
        self.stream(startup, true, true).await
    }

    /// `GET /decisions/stream` of a v2 server (LAPI-style decisions).
    pub async fn stream_v2(&self, startup: bool) -> Result<StreamResponse, ClientError> {
        let q: &[(&str, &str)] = if startup { &[("startup", "true")] } else { &[] };
        self.call(Method::GET, "/decisions/stream", q, None).await
    }

    /// `POST /metrics/`.
    pub async fn push_metrics(&self, m: &MetricsPush) -> Result<(), ClientError> {
        let body = serde_json::to_value(m).map_err(|e| ClientError::Decode {
            url: self.0.base.clone(),
            reason: e.to_string(),
        })?;
        self.call::<serde_json::Value>(Method::POST, "/metrics/", &[], Some(&body))
            .await
            .map(|_| ())
    }

    /// Downloads a blocklist link (no CAPI token, as CrowdSec does): `Ok(None)` when unchanged
    /// since `if_modified_since` (an HTTP date), else its values and `Last-Modified`.
    pub async fn blocklist(
        &self,
        url: &str,
        if_modified_since: Option<&str>,
    ) -> Result<Option<(Vec<String>, Option<String>)>, ClientError> {
        let mut req = self.0.http.get(url);
        if let Some(s) = if_modified_since {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, s);
        }
        let resp = req.send().await.map_err(http_err(url))?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return decode::<serde_json::Value>(&Method::GET, url, resp)
                .await
                .map(|_| None);
        }
        let last = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.map_err(http_err(url))?;
        let values = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Ok(Some((values, last)))
    }
}

impl crate::Bearer for Capi {
    fn token_slot(&self) -> &Mutex<Option<(String, i64)>> {
        &self.0.token
    }
    fn relogin(&self) -> impl std::future::Future<Output = Result<(), ClientError>> + Send {
        Capi::relogin(self)
    }
    fn builder(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.request(method, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_commented_credentials_disable_the_central_api() {
        let dir = std::env::temp_dir().join(format!("rampart-capi-creds-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("online_api_credentials.yaml");
        std::fs::write(&p, "# offline\n").unwrap();
        assert!(OnlineCredentials::load(&p).unwrap().is_none());
        std::fs::write(&p, "url: http://127.0.0.1:1/\nlogin: m\npassword: p\n").unwrap();
        let c = OnlineCredentials::load(&p).unwrap().unwrap();
        assert_eq!(
            (c.url.as_str(), c.login.as_str()),
            ("http://127.0.0.1:1/", "m")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
