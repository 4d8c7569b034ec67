//! Reaching the LAPI as a machine, as cscli does: the credentials file of this host (the one
//! `rampart run` writes, or `api.client.credentials_path`), a JWT login, then typed calls.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Output;

/// Where the LAPI and its credentials are.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RemoteArgs {
    /// Configuration file (its api.client.credentials_path is used).
    #[arg(short, long, global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Credentials file (url, login, password), as CrowdSec's local_api_credentials.yaml.
    #[arg(long, env = "RAMPART_CREDENTIALS", global = true)]
    pub(crate) credentials: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "human", global = true)]
    pub(crate) output: Output,
}

impl RemoteArgs {
    /// The credentials file: the flag, the configuration's, /etc/rampart's, else the one
    /// `rampart run` keeps in its data directory.
    pub(crate) fn credentials_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.credentials {
            return Ok(p.clone());
        }
        let file = self
            .config
            .as_deref()
            .map(super::config::ConfigFile::load)
            .transpose()?;
        if let Some(p) = file.as_ref().and_then(|f| f.credentials_path()) {
            return Ok(p.to_owned());
        }
        let candidates = [
            PathBuf::from("/etc/rampart/local_api_credentials.yaml"),
            super::config::default_data_dir().join("local_api_credentials.yaml"),
        ];
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .with_context(|| {
                format!(
                    "no LAPI credentials found (looked for {}). Start `rampart run` (it writes \
                     them), or create a machine with `rampart machines add NAME --auto -f FILE` \
                     and pass `--credentials FILE`",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            })
    }

    /// A logged-in watcher.
    pub(crate) async fn watcher(&self) -> anyhow::Result<client::Watcher> {
        let path = self.credentials_path()?;
        let creds = client::Credentials::load(&path)?;
        let w = client::Watcher::from_credentials(&creds);
        w.login()
            .await
            .map_err(|e| login_help(e, &creds.url, &path))?;
        Ok(w)
    }
}

fn login_help(e: client::ClientError, url: &str, path: &Path) -> anyhow::Error {
    let hint = match e.status() {
        Some(401 | 403) => format!(
            "the LAPI at {url} refused the machine in {} (wrong password, or not validated: \
             `rampart machines validate NAME`)",
            path.display()
        ),
        _ => format!(
            "is the LAPI running at {url}? (`rampart run` or `rampart lapi`; the URL comes from {})",
            path.display()
        ),
    };
    anyhow::anyhow!("{e}\n{hint}")
}

/// A single-threaded runtime for one admin command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Query pairs as the client takes them.
pub(crate) fn borrowed<'a>(q: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    q.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Who an alert or decision is about, with cscli's flag names (shared by `alerts` and
/// `decisions`).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Target {
    /// Source IP.
    #[arg(short, long)]
    pub(crate) ip: Option<String>,
    /// Source range (CIDR).
    #[arg(short, long)]
    pub(crate) range: Option<String>,
    /// Scope (ip, range, country, as...).
    #[arg(long)]
    pub(crate) scope: Option<String>,
    /// Value for --scope.
    #[arg(short, long)]
    pub(crate) value: Option<String>,
    /// Scenario (reason).
    #[arg(short, long)]
    pub(crate) scenario: Option<String>,
    /// With --ip/--range: what lies inside the range, instead of what covers it.
    #[arg(long)]
    pub(crate) contained: bool,
}

impl Target {
    /// The LAPI query parameters.
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("ip", &self.ip),
            ("range", &self.range),
            ("scope", &self.scope),
            ("value", &self.value),
            ("scenario", &self.scenario),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if self.contained {
            q.push(("contains", "false".into()));
        }
        q
    }
}
