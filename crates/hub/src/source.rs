//! Where hub content comes from: a directory laid out as the hub repository, or an HTTP(S) base
//! URL serving the same tree (`<base>/.index.json`, `<base>/parsers/...`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::HubError;
use crate::item::safe_join;
use crate::layout::{absolute, canonical};

/// CrowdSec's hub CDN, master branch.
pub const DEFAULT_HUB_URL: &str = "https://cdn-hub.crowdsec.net/crowdsecurity/master";

/// A hub to fetch from.
#[derive(Debug, Clone)]
pub enum HubSource {
    /// A hub checkout or offline copy (read only: nothing is ever written there).
    Dir(PathBuf),
    /// A base URL.
    Http {
        /// Without trailing slash.
        base: String,
        /// Shared client (connection reuse).
        client: reqwest::Client,
    },
}

const NETWORK_HINT: &str = "check the network and proxy settings (HTTPS_PROXY), or use --hub-url DIR with an offline copy of the hub";

impl HubSource {
    /// `http://…`/`https://…` is a URL, anything else a directory (which must exist).
    pub fn parse(s: &str) -> Result<HubSource, HubError> {
        if s.starts_with("http://") || s.starts_with("https://") {
            let client = reqwest::Client::builder()
                .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(300))
                .build()
                .map_err(|e| HubError::Fetch {
                    url: s.to_owned(),
                    message: e.to_string(),
                    hint: None,
                })?;
            return Ok(HubSource::Http {
                base: s.trim_end_matches('/').to_owned(),
                client,
            });
        }
        let dir = absolute(Path::new(s));
        if !dir.is_dir() {
            return Err(HubError::Fetch {
                url: s.to_owned(),
                message: "no such directory".into(),
                hint: Some(
                    "--hub-url takes a hub directory (holding .index.json) or an http(s) base URL",
                ),
            });
        }
        Ok(HubSource::Dir(dir))
    }

    /// For messages: the directory or URL.
    pub fn describe(&self) -> String {
        match self {
            HubSource::Dir(d) => d.display().to_string(),
            HubSource::Http { base, .. } => base.clone(),
        }
    }

    /// Where `rel` (a hub path) comes from, for messages.
    pub fn location(&self, rel: &str) -> String {
        match self {
            HubSource::Dir(d) => d.join(rel).display().to_string(),
            HubSource::Http { base, .. } => format!("{base}/{rel}"),
        }
    }

    /// True when the source is the directory `dir` itself (an offline hub used in place).
    pub fn is_dir(&self, dir: &Path) -> bool {
        matches!(self, HubSource::Dir(d) if canonical(d) == canonical(dir))
    }

    /// The file at hub path `rel`.
    pub async fn fetch(&self, rel: &str) -> Result<Vec<u8>, HubError> {
        match self {
            HubSource::Dir(d) => {
                let p = safe_join(d, rel)?;
                std::fs::read(&p).map_err(|e| HubError::Fetch {
                    url: p.display().to_string(),
                    message: e.to_string(),
                    hint: Some("the hub directory lacks a file its index lists"),
                })
            }
            HubSource::Http { base, client } => {
                safe_join(Path::new("."), rel)?;
                get(client, &format!("{base}/{rel}")).await
            }
        }
    }

    /// Any URL, with this source's client (data files live outside the hub).
    pub(crate) async fn fetch_url(&self, url: &str) -> Result<Vec<u8>, HubError> {
        match self {
            HubSource::Http { client, .. } => get(client, url).await,
            HubSource::Dir(_) => {
                let client = reqwest::Client::builder()
                    .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(300))
                    .build()
                    .map_err(|e| HubError::Fetch {
                        url: url.to_owned(),
                        message: e.to_string(),
                        hint: None,
                    })?;
                get(&client, url).await
            }
        }
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, HubError> {
    let fail = |message: String, hint: Option<&'static str>| HubError::Fetch {
        url: url.to_owned(),
        message,
        hint,
    };
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(error_chain(&e), Some(NETWORK_HINT)))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::NOT_FOUND {
            Some(
                "the hub has no such file: is the URL a hub base URL serving .index.json, and is the index current (`rampart hub update`)?",
            )
        } else if status.is_server_error() {
            Some("the server failed: try again later")
        } else {
            None
        };
        return Err(fail(format!("HTTP {status}"), hint));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| fail(error_chain(&e), Some(NETWORK_HINT)))?;
    Ok(body.to_vec())
}

/// reqwest's top-level message is generic ("error sending request"); the cause says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
