//! Configuration: CrowdSec's `config.yaml` key names (`api.server.*`, `db_config.*`), so an
//! existing CrowdSec configuration can be pointed at unchanged. Sections Rampart does not use are
//! ignored; `${VAR}` references are expanded from the environment, as CrowdSec does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    api: Option<Api>,
    #[serde(default)]
    db_config: Option<DbConfig>,
    #[serde(default)]
    pub(crate) config_paths: Option<ConfigPaths>,
    #[serde(default)]
    pub(crate) crowdsec_service: Option<AgentService>,
    #[serde(default)]
    prometheus: Option<Prometheus>,
}

/// `prometheus`: where the metrics endpoint listens.
#[derive(Debug, Default, Deserialize)]
struct Prometheus {
    enabled: Option<bool>,
    level: Option<String>,
    listen_addr: Option<String>,
    listen_port: Option<u16>,
}

/// `config_paths`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigPaths {
    /// CrowdSec's config directory: installed items live there (hub_dir is then the download
    /// cache, not content).
    pub(crate) config_dir: Option<PathBuf>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) hub_dir: Option<PathBuf>,
}

/// `crowdsec_service` (the agent).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AgentService {
    pub(crate) acquisition_path: Option<PathBuf>,
    pub(crate) acquisition_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct Api {
    #[serde(default)]
    server: Option<Server>,
    #[serde(default)]
    client: Option<ApiClient>,
}

/// `api.client`: how admin commands and the agent reach the LAPI.
#[derive(Debug, Default, Deserialize)]
struct ApiClient {
    credentials_path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct Server {
    listen_uri: Option<String>,
    profiles_path: Option<PathBuf>,
    #[serde(default)]
    trusted_ips: Vec<String>,
    #[serde(default)]
    use_forwarded_for_headers: bool,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    disable_remote_lapi_registration: bool,
    auto_registration: Option<AutoReg>,
    tls: Option<Tls>,
    online_client: Option<OnlineClient>,
}

/// `api.server.online_client`: community sync with a central API (`rampart central` or
/// CrowdSec's).
#[derive(Debug, Default, Deserialize)]
struct OnlineClient {
    credentials_path: Option<PathBuf>,
    sharing: Option<bool>,
    pull: Option<OnlinePull>,
}

#[derive(Debug, Default, Deserialize)]
struct OnlinePull {
    community: Option<bool>,
    blocklists: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct AutoReg {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    token: String,
    #[serde(default)]
    allowed_ranges: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Tls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    ca_cert_path: Option<PathBuf>,
    #[serde(default)]
    agents_allowed_ou: Vec<String>,
    #[serde(default)]
    bouncers_allowed_ou: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DbConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    db_path: Option<String>,
    user: Option<String>,
    password: Option<String>,
    db_name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    sslmode: Option<String>,
    flush: Option<Flush>,
}

#[derive(Debug, Default, Deserialize)]
struct Flush {
    max_items: Option<i64>,
    max_age: Option<String>,
    metrics_max_age: Option<String>,
}

/// Expands `${NAME}` from the environment; an unset variable is an error naming it.
fn expand_env(text: &str, origin: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            bail!("{}: unterminated ${{ in configuration", origin.display());
        };
        let name = &after[..end];
        let value = std::env::var(name).with_context(|| {
            format!(
                "{}: environment variable {name} is not set",
                origin.display()
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ConfigFile {
    /// Reads a config file (and merges `<file>.local` over nothing: a `.local` file, when present,
    /// replaces the file, as CrowdSec's overlays are usually whole copies).
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let local = PathBuf::from(format!("{}.local", path.display()));
        let path = if local.is_file() {
            local.as_path()
        } else {
            path
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let text = expand_env(&text, path)?;
        serde_saphyr::from_str(&text)
            .with_context(|| format!("{}: invalid configuration", path.display()))
    }

    /// The database URL `db_config` describes.
    /// `api.server.online_client.credentials_path`.
    pub(crate) fn online_credentials_path(&self) -> Option<&Path> {
        self.api
            .as_ref()?
            .server
            .as_ref()?
            .online_client
            .as_ref()?
            .credentials_path
            .as_deref()
    }

    /// `api.client.credentials_path`.
    pub(crate) fn credentials_path(&self) -> Option<&Path> {
        self.api
            .as_ref()?
            .client
            .as_ref()?
            .credentials_path
            .as_deref()
    }

    pub(crate) fn db_url(&self) -> anyhow::Result<Option<String>> {
        let Some(db) = &self.db_config else {
            return Ok(None);
        };
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let kind = db.kind.as_deref().unwrap_or("sqlite");
        let creds = || {
            let user = db.user.as_deref().map(enc).unwrap_or_default();
            match db.password.as_deref() {
                Some(p) if !p.is_empty() => format!("{user}:{}@", enc(p)),
                _ if !user.is_empty() => format!("{user}@"),
                _ => String::new(),
            }
        };
        let host = db.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let name = db.db_name.clone().unwrap_or_else(|| "rampart".into());
        Ok(Some(match kind {
            "sqlite" => {
                let p = db
                    .db_path
                    .as_deref()
                    .context("db_config: type sqlite needs db_path")?;
                format!("sqlite://{p}")
            }
            "postgres" | "postgresql" | "pgx" => {
                let port = db.port.unwrap_or(5432);
                let ssl = db
                    .sslmode
                    .as_deref()
                    .map(|m| format!("?sslmode={m}"))
                    .unwrap_or_default();
                format!("postgres://{}{host}:{port}/{name}{ssl}", creds())
            }
            "mysql" => format!(
                "mysql://{}{host}:{}/{name}",
                creds(),
                db.port.unwrap_or(3306)
            ),
            other => bail!("db_config: unknown type '{other}' (sqlite, postgres or mysql)"),
        }))
    }

    fn server(&self) -> Option<&Server> {
        self.api.as_ref().and_then(|a| a.server.as_ref())
    }

    /// Applies the `api.server` and `db_config.flush` keys to LAPI settings.
    pub(crate) fn apply(&self, cfg: &mut lapi::LapiConfig) -> anyhow::Result<()> {
        let nets = |v: &[String], key: &str| -> anyhow::Result<Vec<IpNet>> {
            v.iter()
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .with_context(|| format!("api.server.{key}: '{s}' is not an IP or CIDR"))
                })
                .collect()
        };
        if let Some(s) = self.server() {
            if let Some(l) = &s.listen_uri {
                cfg.listen =
                    parse_listen(l).with_context(|| format!("api.server.listen_uri: '{l}'"))?;
            }
            cfg.profiles.clone_from(&s.profiles_path);
            cfg.trusted_ips = nets(&s.trusted_ips, "trusted_ips")?;
            cfg.use_forwarded_for_headers = s.use_forwarded_for_headers;
            cfg.trusted_proxies = nets(&s.trusted_proxies, "trusted_proxies")?;
            if cfg.use_forwarded_for_headers && cfg.trusted_proxies.is_empty() {
                cfg.trusted_proxies = vec!["0.0.0.0/0".parse()?, "::/0".parse()?];
            }
            cfg.disable_remote_registration = s.disable_remote_lapi_registration;
            if let Some(a) = s.auto_registration.as_ref().filter(|a| a.enabled) {
                if a.token.len() < 32 {
                    bail!("api.server.auto_registration.token must be at least 32 characters");
                }
                cfg.auto_registration = Some(lapi::AutoRegistration {
                    token: a.token.clone(),
                    allowed_ranges: nets(&a.allowed_ranges, "auto_registration.allowed_ranges")?,
                });
            }
            if let Some(o) = &s.online_client {
                cfg.capi = online_client(o)?;
            }
            if let Some(t) = &s.tls
                && let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file)
            {
                cfg.tls = Some(lapi::TlsConfig {
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                    ca_cert_path: t.ca_cert_path.clone(),
                    agents_allowed_ou: t.agents_allowed_ou.clone(),
                    bouncers_allowed_ou: t.bouncers_allowed_ou.clone(),
                });
            }
        }
        if let Some(f) = self.db_config.as_ref().and_then(|d| d.flush.as_ref()) {
            let age = |v: &Option<String>, key: &str| -> anyhow::Result<Option<i64>> {
                v.as_deref()
                    .map(|s| {
                        model::parse_duration_days(s)
                            .map(|ns| ns / 1_000_000)
                            .with_context(|| {
                                format!("db_config.flush.{key}: '{s}' is not a duration")
                            })
                    })
                    .transpose()
            };
            cfg.flush.max_items = f.max_items;
            if f.max_age.is_some() {
                cfg.flush.max_age_ms = age(&f.max_age, "max_age")?;
            }
            if f.metrics_max_age.is_some() {
                cfg.flush.metrics_max_age_ms = age(&f.metrics_max_age, "metrics_max_age")?;
            }
        }
        Ok(())
    }
}

/// Community sync settings; `None` (with a note) when the credentials file is empty, as
/// Debian's opt-out is, or cannot be read.
fn online_client(o: &OnlineClient) -> anyhow::Result<Option<lapi::capi::CapiConfig>> {
    let Some(path) = &o.credentials_path else {
        return Ok(None);
    };
    let creds = match client::capi::OnlineCredentials::load(path) {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::info!(path = %path.display(), "no central API credentials: community sync off");
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(error = %e, "api.server.online_client.credentials_path: community sync off");
            return Ok(None);
        }
    };
    let mut c = lapi::capi::CapiConfig::new(creds);
    if let Some(v) = o.sharing {
        c.sharing = v;
    }
    if let Some(p) = &o.pull {
        c.pull_community = p.community.unwrap_or(true);
        c.pull_blocklists = p.blocklists.unwrap_or(true);
    }
    Ok(Some(c))
}

/// Where to serve Prometheus metrics: the flag (`off` disables), else the configuration's
/// `prometheus` section (`enabled: false` or `level: none` disables), else CrowdSec's default
/// 127.0.0.1:6060.
pub(crate) fn metrics_addr(
    flag: Option<&str>,
    file: Option<&ConfigFile>,
) -> anyhow::Result<Option<SocketAddr>> {
    if let Some(f) = flag {
        if matches!(f.trim(), "off" | "none" | "") {
            return Ok(None);
        }
        return parse_listen(f).map(Some).context("--metrics");
    }
    let p = file.and_then(|f| f.prometheus.as_ref());
    if let Some(p) = p
        && (p.enabled == Some(false) || p.level.as_deref() == Some("none"))
    {
        return Ok(None);
    }
    let host = p
        .and_then(|p| p.listen_addr.clone())
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = p.and_then(|p| p.listen_port).unwrap_or(6060);
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    parse_listen(&addr)
        .map(Some)
        .context("prometheus.listen_addr/listen_port")
}

/// `127.0.0.1:8080`, `0.0.0.0:8080`, `localhost:8080`, `[::1]:8080`, `http://127.0.0.1:8080/`.
pub(crate) fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    let s = s.trim().trim_start_matches("http://").trim_end_matches('/');
    let s = s.replace("localhost", "127.0.0.1");
    s.parse()
        .with_context(|| format!("'{s}' is not an address:port"))
}

/// Where the database lives when nothing says: `RAMPART_DB`, else `rampart.db` in the default
/// data directory.
pub(crate) fn default_db_url() -> String {
    if let Ok(u) = std::env::var("RAMPART_DB") {
        return u;
    }
    let dir = default_data_dir();
    let _ = std::fs::create_dir_all(&dir);
    format!("sqlite://{}", dir.join("rampart.db").display())
}

/// Where state lives when nothing says: `/var/lib/rampart` for root (as CrowdSec uses
/// /var/lib/crowdsec/data), `$XDG_DATA_HOME/rampart` or `~/.local/share/rampart` otherwise.
pub(crate) fn default_data_dir() -> PathBuf {
    if std::env::var("USER").is_ok_and(|u| u == "root") || home_is_root() {
        PathBuf::from("/var/lib/rampart")
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("rampart")
    }
}

fn home_is_root() -> bool {
    std::env::var("HOME").is_ok_and(|h| h == "/root")
}

/// Database URL and LAPI settings from flags, then the config file, then defaults.
pub(crate) fn resolve(
    config: Option<&Path>,
    db: Option<&str>,
) -> anyhow::Result<(String, lapi::LapiConfig)> {
    let mut cfg = lapi::LapiConfig::default();
    let file = config.map(ConfigFile::load).transpose()?;
    if let Some(f) = &file {
        f.apply(&mut cfg)?;
    }
    let url = match (
        db,
        file.as_ref().map(ConfigFile::db_url).transpose()?.flatten(),
    ) {
        (Some(u), _) => u.to_owned(),
        (None, Some(u)) => u,
        (None, None) => default_db_url(),
    };
    cfg.db_url.clone_from(&url);
    if let Ok(secret) =
        std::env::var("RAMPART_LAPI_SECRET").or_else(|_| std::env::var("CS_LAPI_SECRET"))
    {
        if secret.len() < 64 {
            bail!("RAMPART_LAPI_SECRET must be at least 64 bytes long");
        }
        cfg.jwt_secret = Some(secret.into_bytes());
    }
    cfg.replica_sync = Duration::from_secs(5);
    Ok((url, cfg))
}

/// `rampart config show`: the settings a command would use, after flags, file and defaults.
pub(crate) fn show(
    config: Option<&Path>,
    output: super::Output,
) -> anyhow::Result<std::process::ExitCode> {
    let file = config.map(ConfigFile::load).transpose()?;
    let (url, cfg) = resolve(config, None)?;
    let paths = file.as_ref().and_then(|f| f.config_paths.as_ref());
    let data_dir = paths
        .and_then(|p| p.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let hub = paths
        .and_then(|p| p.hub_dir.clone())
        .unwrap_or_else(super::content::default_hub);
    let creds = file
        .as_ref()
        .and_then(|f| f.credentials_path().map(Path::to_path_buf))
        .unwrap_or_else(|| data_dir.join("local_api_credentials.yaml"));
    let metrics = metrics_addr(None, file.as_ref())?;
    let rows = [
        (
            "config_file",
            config.map_or_else(|| "(none: defaults)".into(), |p| p.display().to_string()),
        ),
        ("data_dir", data_dir.display().to_string()),
        ("hub_dir", hub.display().to_string()),
        ("db_url", super::lapi::redact(&url)),
        ("lapi_listen", cfg.listen.to_string()),
        ("tls", cfg.tls.is_some().to_string()),
        ("credentials_path", creds.display().to_string()),
        (
            "prometheus",
            metrics.map_or_else(|| "disabled".into(), |a| format!("http://{a}/metrics")),
        ),
    ];
    if output == super::Output::Json {
        let m: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
            .collect();
        super::output::json(&m)?;
    } else {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(k, v)| vec![(*k).to_owned(), v.clone()])
            .collect();
        super::output::rows(output, &["Setting", "Value"], &rows);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowdsec_config_maps_onto_lapi_settings() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("config.yaml");
        std::fs::write(
            &p,
            "common:\n  log_media: stdout\napi:\n  server:\n    listen_uri: 127.0.0.1:9999\n    trusted_ips: [10.0.0.0/8, 192.0.2.1]\n    online_client:\n      credentials_path: x\ndb_config:\n  type: postgres\n  user: crowdsec\n  password: 'p@ss'\n  db_name: cs\n  host: db\n  flush:\n    max_items: 5000\n    max_age: 7d\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (url, cfg) = resolve(Some(&p), None).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(url, "postgres://crowdsec:p%40ss@db:5432/cs");
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.trusted_ips.len(), 2);
        assert_eq!(cfg.flush.max_items, Some(5000));
        assert_eq!(cfg.flush.max_age_ms, Some(7 * 24 * 3600 * 1000));
    }

    #[test]
    fn online_client_keys_configure_community_sync() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let creds = dir.path().join("online_api_credentials.yaml");
        std::fs::write(
            &creds,
            "url: http://127.0.0.1:8090/\nlogin: m\npassword: p\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("config.yaml");
        std::fs::write(
            &p,
            format!(
                "api:\n  server:\n    online_client:\n      credentials_path: {}\n      sharing: false\n      pull:\n        community: true\n        blocklists: false\n",
                creds.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (_, cfg) = resolve(Some(&p), None).unwrap_or_else(|e| panic!("{e:#}"));
        let c = cfg
            .capi
            .unwrap_or_else(|| panic!("community sync not configured"));
        assert_eq!(c.credentials.login, "m");
        assert!(!c.sharing && c.pull_community && !c.pull_blocklists);
        std::fs::write(&creds, "# offline\n").unwrap_or_else(|e| panic!("{e}"));
        let (_, cfg) = resolve(Some(&p), None).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(cfg.capi.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, "api:\n  server:\n    trusted_ips: [nope]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = format!("{:#}", resolve(Some(&p), None).unwrap_err());
        assert!(e.contains("trusted_ips") && e.contains("nope"), "{e}");
        std::fs::write(
            &p,
            "db_config:\n  type: sqlite\n  db_path: ${RAMPART_SURELY_UNSET_VAR}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = format!("{:#}", resolve(Some(&p), None).unwrap_err());
        assert!(e.contains("RAMPART_SURELY_UNSET_VAR"), "{e}");
    }
}
