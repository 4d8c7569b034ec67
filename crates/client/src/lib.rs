//! Typed client for CrowdSec-compatible Local APIs (Rampart's or CrowdSec's own).
//!
//! * [`Watcher`]: a machine (agent, admin CLI) that logs in with id and password, keeps its JWT
//!   fresh (renewed a minute before expiry, and once more on a 401), pushes and searches alerts,
//!   deletes decisions.
//! * [`Bouncer`]: an API-key client reading decisions: live lookups, the stream, and Rampart's
//!   push extension (`wait=`), which degrades to a plain poll against a CrowdSec LAPI.

pub mod capi;

use std::path::Path;
use std::time::Duration;

use model::{
    Alert, Decision, DeleteResponse, StreamResponse, WatcherAuthRequest, WatcherAuthResponse,
    WatcherRegistration,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Network or protocol failure.
    #[error("cannot reach the LAPI at {url}: {source}")]
    Http {
        /// URL.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// The LAPI answered with an error.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Api {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Status.
        status: u16,
        /// The LAPI's message.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("{url}: unexpected answer: {reason}")]
    Decode {
        /// URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A credentials file is unusable.
    #[error("{path}: {reason}")]
    Credentials {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl ClientError {
    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `local_api_credentials.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// LAPI base URL.
    pub url: String,
    /// Machine id.
    #[serde(default)]
    pub login: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

impl Credentials {
    /// Reads a credentials file.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::Credentials {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let c: Self = serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if c.url.is_empty() || c.login.is_empty() || c.password.is_empty() {
            return Err(bad("url, login and password are required".into()));
        }
        Ok(c)
    }
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

fn http(user_agent: &str, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(timeout)
        .build()
        // Building fails only without a TLS backend, which this crate always compiles in.
        .unwrap_or_default()
}

/// Maps a transport error on `url`.
fn http_err(url: &str) -> impl FnOnce(reqwest::Error) -> ClientError + '_ {
    move |source| ClientError::Http {
        url: url.to_owned(),
        source,
    }
}

/// A client that authenticates with a bearer token it renews by logging in: a machine on a
/// LAPI, and a LAPI on a central API.
pub(crate) trait Bearer: Sync {
    /// The token and its expiry (Unix seconds).
    fn token_slot(&self) -> &Mutex<Option<(String, i64)>>;
    /// Logs in, filling the slot.
    fn relogin(&self) -> impl std::future::Future<Output = Result<(), ClientError>> + Send;
    /// A request to `url` (headers every call needs included).
    fn builder(&self, method: Method, url: &str) -> reqwest::RequestBuilder;
}

/// The current token, renewed a minute before it expires.
pub(crate) async fn bearer_token<B: Bearer>(b: &B) -> Result<String, ClientError> {
    {
        let t = b.token_slot().lock().await;
        if let Some((tok, exp)) = t.as_ref()
            && *exp - chrono::Utc::now().timestamp() > 60
        {
            return Ok(tok.clone());
        }
    }
    b.relogin().await?;
    Ok(b.token_slot()
        .lock()
        .await
        .as_ref()
        .map(|t| t.0.clone())
        .unwrap_or_default())
}

/// One authenticated call. A 401 means the server restarted with a new secret or the token
/// ended early: the token is dropped and the call made once more after a new login.
pub(crate) async fn call_bearer<B: Bearer, T: DeserializeOwned>(
    b: &B,
    method: Method,
    url: String,
    query: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<T, ClientError> {
    for attempt in 0..2 {
        let token = bearer_token(b).await?;
        let mut req = b
            .builder(method.clone(), &url)
            .bearer_auth(&token)
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(http_err(&url))?;
        if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
            *b.token_slot().lock().await = None;
            continue;
        }
        return decode(&method, &url, resp).await;
    }
    Err(ClientError::Api {
        method: method.to_string(),
        url,
        status: 401,
        message: "login refused".into(),
    })
}

impl Bearer for Watcher {
    fn token_slot(&self) -> &Mutex<Option<(String, i64)>> {
        &self.token
    }
    fn relogin(&self) -> impl std::future::Future<Output = Result<(), ClientError>> + Send {
        self.login()
    }
    fn builder(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }
}

async fn decode<T: DeserializeOwned>(
    method: &Method,
    url: &str,
    resp: reqwest::Response,
) -> Result<T, ClientError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(http_err(url))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(ClientError::Api {
            method: method.to_string(),
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// A machine's session with a LAPI.
#[derive(Debug)]
pub struct Watcher {
    http: reqwest::Client,
    base: String,
    login: String,
    password: String,
    scenarios: Vec<String>,
    token: Mutex<Option<(String, i64)>>,
}

impl Watcher {
    /// A client for `url` (e.g. `http://127.0.0.1:8080/`) logging in as `login`. The User-Agent
    /// is `rampart/<version>` (the LAPI requires `name/version`).
    pub fn new(url: &str, login: &str, password: &str) -> Self {
        Self {
            http: http(
                concat!("rampart/v", env!("CARGO_PKG_VERSION")),
                Duration::from_secs(60),
            ),
            base: base(url),
            login: login.to_owned(),
            password: password.to_owned(),
            scenarios: Vec::new(),
            token: Mutex::new(None),
        }
    }

    /// From `local_api_credentials.yaml`.
    pub fn from_credentials(c: &Credentials) -> Self {
        Self::new(&c.url, &c.login, &c.password)
    }

    /// Scenarios declared at login (the LAPI shares them with the central API).
    pub fn with_scenarios(mut self, scenarios: Vec<String>) -> Self {
        self.scenarios = scenarios;
        self
    }

    /// Registers a machine (`201`: an admin must validate it; `202`: validated by token).
    pub async fn register(
        url: &str,
        machine_id: &str,
        password: &str,
        token: Option<&str>,
    ) -> Result<bool, ClientError> {
        let c = http(
            concat!("rampart/v", env!("CARGO_PKG_VERSION")),
            Duration::from_secs(30),
        );
        let url = format!("{}/v1/watchers", base(url));
        let body = WatcherRegistration {
            machine_id: machine_id.to_owned(),
            password: password.to_owned(),
            registration_token: token.map(str::to_owned),
        };
        let resp = c
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(http_err(&url))?;
        match resp.status() {
            StatusCode::CREATED => Ok(false),
            StatusCode::ACCEPTED => Ok(true),
            _ => decode::<serde_json::Value>(&Method::POST, &url, resp)
                .await
                .map(|_| false),
        }
    }

    /// Logs in now.
    pub async fn login(&self) -> Result<(), ClientError> {
        let url = format!("{}/v1/watchers/login", self.base);
        let body = WatcherAuthRequest {
            machine_id: Some(self.login.clone()),
            password: Some(self.password.clone()),
            scenarios: Some(self.scenarios.clone()),
        };
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(http_err(&url))?;
        let auth: WatcherAuthResponse = decode(&Method::POST, &url, resp).await?;
        let exp = chrono::DateTime::parse_from_rfc3339(&auth.expire).map_or(0, |t| t.timestamp());
        *self.token.lock().await = Some((auth.token, exp));
        Ok(())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        call_bearer(self, method, format!("{}{path}", self.base), query, body).await
    }

    /// Pushes alerts; returns their new ids.
    pub async fn push_alerts(&self, alerts: &[Alert]) -> Result<Vec<i64>, ClientError> {
        let body = serde_json::to_value(alerts).map_err(|e| ClientError::Decode {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let ids: Vec<String> = self
            .call(Method::POST, "/v1/alerts", &[], Some(&body))
            .await?;
        Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// Searches alerts with CrowdSec's filters (`ip`, `scenario`, `since`, `limit`...).
    pub async fn alerts(&self, filters: &[(&str, &str)]) -> Result<Vec<Alert>, ClientError> {
        let v: Option<Vec<Alert>> = self.call(Method::GET, "/v1/alerts", filters, None).await?;
        Ok(v.unwrap_or_default())
    }

    /// Deletes alerts matching filters; returns how many.
    pub async fn delete_alerts(&self, filters: &[(&str, &str)]) -> Result<u64, ClientError> {
        let r: DeleteResponse = self
            .call(Method::DELETE, "/v1/alerts", filters, None)
            .await?;
        Ok(r.nb_deleted.parse().unwrap_or(0))
    }

    /// Deletes (expires) decisions matching filters; returns how many.
    pub async fn delete_decisions(&self, filters: &[(&str, &str)]) -> Result<u64, ClientError> {
        let r: DeleteResponse = self
            .call(Method::DELETE, "/v1/decisions", filters, None)
            .await?;
        Ok(r.nb_deleted.parse().unwrap_or(0))
    }

    /// One alert by id.
    pub async fn alert(&self, id: i64) -> Result<Alert, ClientError> {
        self.call(Method::GET, &format!("/v1/alerts/{id}"), &[], None)
            .await
    }

    /// Deletes one alert (and its decisions); the LAPI allows it from trusted IPs only.
    pub async fn delete_alert(&self, id: i64) -> Result<u64, ClientError> {
        let r: DeleteResponse = self
            .call(Method::DELETE, &format!("/v1/alerts/{id}"), &[], None)
            .await?;
        Ok(r.nb_deleted.parse().unwrap_or(0))
    }

    /// Deletes (expires) one decision by id.
    pub async fn delete_decision(&self, id: i64) -> Result<u64, ClientError> {
        let r: DeleteResponse = self
            .call(Method::DELETE, &format!("/v1/decisions/{id}"), &[], None)
            .await?;
        Ok(r.nb_deleted.parse().unwrap_or(0))
    }

    /// The machine id this client logs in as.
    pub fn login_name(&self) -> &str {
        &self.login
    }

    /// Tells the LAPI this machine is alive.
    pub async fn heartbeat(&self) -> Result<(), ClientError> {
        let url = format!("{}/v1/heartbeat", self.base);
        let token = bearer_token(self).await?;
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(http_err(&url))?;
        if resp.status().is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(&Method::GET, &url, resp)
            .await
            .map(|_| ())
    }
}

/// Which decisions a bouncer wants.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Scopes (default on the server: `ip,range`).
    pub scopes: Vec<String>,
    /// Origins.
    pub origins: Vec<String>,
    /// Words the scenario must contain (one of).
    pub scenarios_containing: Vec<String>,
    /// Words the scenario must not contain.
    pub scenarios_not_containing: Vec<String>,
}

impl StreamOptions {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("scopes", &self.scopes),
            ("origins", &self.origins),
            ("scenarios_containing", &self.scenarios_containing),
            ("scenarios_not_containing", &self.scenarios_not_containing),
        ] {
            if !v.is_empty() {
                q.push((k, v.join(",")));
            }
        }
        q
    }
}

/// A bouncer's API-key session.
#[derive(Debug, Clone)]
pub struct Bouncer {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Bouncer {
    /// A bouncer client; `user_agent` must be `type/version` (the LAPI records both).
    pub fn new(url: &str, api_key: &str, user_agent: &str) -> Self {
        // Long enough for the longest push wait the LAPI grants (5 min) plus transfer.
        Self {
            http: http(user_agent, Duration::from_secs(330)),
            base: base(url),
            key: api_key.to_owned(),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .header("X-Api-Key", &self.key)
            .query(query)
            .send()
            .await
            .map_err(http_err(&url))?;
        decode(&Method::GET, &url, resp).await
    }

    /// Live lookup (`GET /v1/decisions`); `null` reads as no decision.
    pub async fn decisions(&self, filters: &[(&str, &str)]) -> Result<Vec<Decision>, ClientError> {
        let q: Vec<(&str, String)> = filters.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let v: Option<Vec<Decision>> = self.get("/v1/decisions", &q).await?;
        Ok(v.unwrap_or_default())
    }

    /// One stream poll: everything with `startup`, else the changes since the previous poll.
    pub async fn stream(
        &self,
        startup: bool,
        opts: &StreamOptions,
    ) -> Result<StreamResponse, ClientError> {
        let mut q = opts.query();
        if startup {
            q.push(("startup", "true".into()));
        }
        self.get("/v1/decisions/stream", &q).await
    }

    /// Rampart's push: waits up to `wait` for changes and returns as soon as there are some.
    /// A CrowdSec LAPI rejects the unknown parameter; use [`Bouncer::stream`] on a timer there.
    pub async fn wait(
        &self,
        wait: Duration,
        opts: &StreamOptions,
    ) -> Result<StreamResponse, ClientError> {
        let mut q = opts.query();
        q.push(("wait", format!("{}ms", wait.as_millis())));
        self.get("/v1/decisions/stream", &q).await
    }
}
