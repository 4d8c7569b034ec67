//! The configuration file: the keys of `crowdsec-firewall-bouncer.yaml` that mean the same thing
//! here, plus a few of Rampart's own (`push`, `push_wait`, `cleanup_on_exit`, `counters`).
//!
//! Unknown keys are errors (a typo must not silently keep a default); keys of CrowdSec's bouncer
//! that have no meaning here (`pid_dir`, `daemonize`, log rotation, `pf`) are accepted and
//! ignored with a warning, so an existing file can be pointed at this bouncer unchanged.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// YAML syntax, an unknown key or a wrongly typed value.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value that parses but cannot be used.
    #[error("{path}: key '{key}': {message}")]
    Invalid {
        path: String,
        key: &'static str,
        message: String,
    },
}

/// How decisions are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Own nftables tables, sets and chains.
    Nftables,
    /// ipset sets referenced by iptables/ip6tables rules.
    Iptables,
}

/// What a matching packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenyAction {
    Drop,
    Reject,
}

/// One address family's nftables objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NftFamily {
    pub(crate) enabled: bool,
    pub(crate) table: String,
    /// Base chains are named `<chain>-<hook>`.
    pub(crate) chain: String,
    pub(crate) priority: i32,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) path: PathBuf,
    pub(crate) mode: Mode,
    pub(crate) api_url: String,
    pub(crate) api_key: String,
    pub(crate) insecure_skip_verify: bool,
    pub(crate) cert_path: Option<PathBuf>,
    pub(crate) key_path: Option<PathBuf>,
    pub(crate) ca_cert_path: Option<PathBuf>,
    pub(crate) retry_initial_connect: bool,
    pub(crate) update_frequency: Duration,
    pub(crate) push: bool,
    pub(crate) push_wait: Duration,
    pub(crate) scopes: Vec<String>,
    pub(crate) origins: Vec<String>,
    pub(crate) scenarios_containing: Vec<String>,
    pub(crate) scenarios_not_containing: Vec<String>,
    pub(crate) supported_decisions_types: Vec<String>,
    pub(crate) ipv4: bool,
    pub(crate) ipv6: bool,
    pub(crate) deny_action: DenyAction,
    pub(crate) deny_log: bool,
    pub(crate) deny_log_prefix: String,
    pub(crate) blacklists_ipv4: String,
    pub(crate) blacklists_ipv6: String,
    pub(crate) ipset_size: u32,
    pub(crate) iptables_v4_chains: Vec<String>,
    pub(crate) iptables_v6_chains: Vec<String>,
    pub(crate) iptables_add_rule_comments: bool,
    pub(crate) nft_v4: NftFamily,
    pub(crate) nft_v6: NftFamily,
    pub(crate) nftables_hooks: Vec<String>,
    pub(crate) counters: bool,
    pub(crate) cleanup_on_exit: bool,
    pub(crate) log_level: String,
    pub(crate) log_file: Option<PathBuf>,
    pub(crate) prometheus: Option<std::net::SocketAddr>,
    /// Keys accepted for compatibility but without effect, for a warning at start.
    pub(crate) ignored: Vec<&'static str>,
}

/// The file as written. Every key of CrowdSec's firewall bouncer is listed, so that an unknown
/// key can be refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    mode: Option<String>,
    api_url: Option<String>,
    api_key: Option<String>,
    insecure_skip_verify: Option<bool>,
    cert_path: Option<String>,
    key_path: Option<String>,
    ca_cert_path: Option<String>,
    retry_initial_connect: Option<bool>,
    update_frequency: Option<String>,
    push: Option<bool>,
    push_wait: Option<String>,
    scopes: Option<Vec<String>>,
    origins: Option<Vec<String>>,
    scenarios_containing: Option<Vec<String>>,
    scenarios_not_containing: Option<Vec<String>>,
    supported_decisions_types: Option<Vec<String>>,
    disable_ipv4: Option<bool>,
    disable_ipv6: Option<bool>,
    deny_action: Option<String>,
    deny_log: Option<bool>,
    deny_log_prefix: Option<String>,
    blacklists_ipv4: Option<String>,
    blacklists_ipv6: Option<String>,
    ipset_type: Option<String>,
    ipset_size: Option<u32>,
    ipset_disable_timeouts: Option<bool>,
    iptables_chains: Option<Vec<String>>,
    iptables_v4_chains: Option<Vec<String>>,
    iptables_v6_chains: Option<Vec<String>>,
    iptables_add_rule_comments: Option<bool>,
    nftables: Option<RawNftables>,
    nftables_hooks: Option<Vec<String>>,
    counters: Option<bool>,
    cleanup_on_exit: Option<bool>,
    log_mode: Option<String>,
    log_dir: Option<String>,
    log_level: Option<String>,
    prometheus: Option<RawPrometheus>,
    // Accepted for compatibility, without effect.
    pid_dir: Option<serde::de::IgnoredAny>,
    daemonize: Option<serde::de::IgnoredAny>,
    log_compression: Option<serde::de::IgnoredAny>,
    log_max_size: Option<serde::de::IgnoredAny>,
    log_max_backups: Option<serde::de::IgnoredAny>,
    log_max_age: Option<serde::de::IgnoredAny>,
    pf: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNftables {
    ipv4: Option<RawNftFamily>,
    ipv6: Option<RawNftFamily>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNftFamily {
    enabled: Option<bool>,
    #[serde(rename = "set-only")]
    set_only: Option<bool>,
    table: Option<String>,
    chain: Option<String>,
    priority: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    enabled: Option<bool>,
    listen_addr: Option<String>,
    listen_port: Option<u16>,
}

/// ipset names are at most 31 bytes; the bouncer appends `-<n>` and a temporary `t`.
const IPSET_NAME_MAX: usize = 31;
const IPSET_SUFFIX_MAX: usize = "-9999t".len();

impl Config {
    /// Reads, expands `${VAR}` and validates `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text =
            expand_env(text, |k| std::env::var(k).ok()).map_err(|var| ConfigError::Parse {
                path: shown.clone(),
                message: format!("environment variable '{var}' is not set"),
            })?;
        let raw: Raw = if text.trim().is_empty() {
            Raw::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?
        };
        raw.validate(path)
    }
}

impl Raw {
    fn validate(self, path: &Path) -> Result<Config, ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            key,
            message,
        };
        let mode = match self.mode.as_deref().map(str::trim) {
            Some("nftables") => Mode::Nftables,
            Some("iptables") => Mode::Iptables,
            Some(m @ ("ipset" | "pf" | "dry-run")) => {
                return Err(bad(
                    "mode",
                    format!("'{m}' is not supported by this bouncer; use nftables or iptables"),
                ));
            }
            Some(m) => return Err(bad("mode", format!("'{m}': expected nftables or iptables"))),
            None => return Err(bad("mode", "is required (nftables or iptables)".into())),
        };
        let api_url = self.api_url.unwrap_or_default().trim().to_owned();
        if api_url.is_empty() {
            return Err(bad("api_url", "is required".into()));
        }
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(bad(
                "api_url",
                format!("'{api_url}' is not an http:// or https:// URL"),
            ));
        }
        let api_key = self.api_key.unwrap_or_default().trim().to_owned();
        let cert_path = self.cert_path.filter(|s| !s.is_empty()).map(PathBuf::from);
        let key_path = self.key_path.filter(|s| !s.is_empty()).map(PathBuf::from);
        if api_key.is_empty() && cert_path.is_none() {
            return Err(bad(
                "api_key",
                "is required (or cert_path and key_path for TLS authentication)".into(),
            ));
        }
        if cert_path.is_some() != key_path.is_some() {
            return Err(bad(
                "cert_path",
                "cert_path and key_path go together".into(),
            ));
        }
        let duration = |key: &'static str, v: Option<String>, default: Duration| {
            let Some(s) = v else {
                return Ok(default);
            };
            match model::parse_duration_days(&s) {
                Some(ns) if ns > 0 => Ok(Duration::from_nanos(ns.unsigned_abs())),
                _ => Err(bad(
                    key,
                    format!("'{s}' is not a positive duration (like 10s or 1m)"),
                )),
            }
        };
        let update_frequency = duration(
            "update_frequency",
            self.update_frequency,
            Duration::from_secs(10),
        )?;
        let push_wait = duration("push_wait", self.push_wait, Duration::from_secs(30))?;
        let deny_action = match self.deny_action.as_deref().map(str::trim) {
            None | Some("") => DenyAction::Drop,
            Some(a) if a.eq_ignore_ascii_case("drop") => DenyAction::Drop,
            Some(a) if a.eq_ignore_ascii_case("reject") => DenyAction::Reject,
            Some(a) => {
                return Err(bad(
                    "deny_action",
                    format!("'{a}': expected DROP or REJECT"),
                ));
            }
        };
        let deny_log_prefix = self
            .deny_log_prefix
            .unwrap_or_else(|| "rampart drop: ".into());
        if mode == Mode::Iptables && deny_log_prefix.len() > 29 {
            return Err(bad(
                "deny_log_prefix",
                format!("'{deny_log_prefix}' is longer than iptables' 29-character LOG prefix"),
            ));
        }
        if deny_log_prefix.contains(['"', '\n', '\\']) {
            return Err(bad(
                "deny_log_prefix",
                "must not contain quotes, backslashes or newlines".into(),
            ));
        }
        let name = |key: &'static str, v: Option<String>, default: &str| {
            let s = v.unwrap_or_else(|| default.into());
            if s.is_empty()
                || !s.starts_with(|c: char| c.is_ascii_alphabetic())
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            {
                return Err(bad(
                    key,
                    format!("'{s}': use letters, digits, '-' and '_', starting with a letter"),
                ));
            }
            Ok(s)
        };
        let blacklists_ipv4 = name(
            "blacklists_ipv4",
            self.blacklists_ipv4,
            "rampart-blacklists",
        )?;
        let blacklists_ipv6 = name(
            "blacklists_ipv6",
            self.blacklists_ipv6,
            "rampart6-blacklists",
        )?;
        if mode == Mode::Iptables && blacklists_ipv4 == blacklists_ipv6 {
            return Err(bad(
                "blacklists_ipv6",
                format!(
                    "'{blacklists_ipv6}' is also blacklists_ipv4: ipset names are shared by both families"
                ),
            ));
        }
        if mode == Mode::Iptables {
            for (key, v) in [
                ("blacklists_ipv4", &blacklists_ipv4),
                ("blacklists_ipv6", &blacklists_ipv6),
            ] {
                if v.len() + IPSET_SUFFIX_MAX > IPSET_NAME_MAX {
                    return Err(bad(
                        key,
                        format!(
                            "'{v}' is too long: ipset names are at most {IPSET_NAME_MAX} bytes \
                             and the bouncer appends up to {IPSET_SUFFIX_MAX}"
                        ),
                    ));
                }
            }
        }
        match self.ipset_type.as_deref() {
            None | Some("nethash" | "hash:net") => {}
            Some(t) => {
                return Err(bad(
                    "ipset_type",
                    format!("'{t}': only nethash (hash:net) holds both addresses and ranges"),
                ));
            }
        }
        if self.ipset_disable_timeouts == Some(true) {
            return Err(bad(
                "ipset_disable_timeouts",
                "is not supported: expiry is left to the kernel's set timeouts".into(),
            ));
        }
        // Large enough for the community blocklist plus a million local decisions: ipset's
        // own default (65,536) is the cliff users hit.
        let ipset_size = self.ipset_size.unwrap_or(4 << 20);
        if ipset_size < 1024 {
            return Err(bad(
                "ipset_size",
                format!("{ipset_size} is too small (at least 1024)"),
            ));
        }
        let chain_list = |key: &'static str, v: Vec<String>| {
            for c in &v {
                if c.is_empty()
                    || c.len() > 28
                    || !c
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_'))
                {
                    return Err(bad(key, format!("'{c}' is not an iptables chain name")));
                }
            }
            Ok(v)
        };
        let common = self.iptables_chains.unwrap_or_else(|| vec!["INPUT".into()]);
        let iptables_v4_chains = chain_list(
            "iptables_v4_chains",
            self.iptables_v4_chains.unwrap_or_else(|| common.clone()),
        )?;
        let iptables_v6_chains = chain_list(
            "iptables_v6_chains",
            self.iptables_v6_chains.unwrap_or_else(|| common.clone()),
        )?;
        chain_list("iptables_chains", common)?;

        let nft = self.nftables.unwrap_or_default();
        let family = |key: &'static str,
                      raw: Option<RawNftFamily>,
                      table: &str,
                      chain: &str|
         -> Result<NftFamily, ConfigError> {
            let raw = raw.unwrap_or_default();
            if raw.set_only == Some(true) {
                return Err(bad(
                    key,
                    "set-only is not supported: the bouncer owns its table, sets and chains".into(),
                ));
            }
            let ident = |what: &str, v: Option<String>, default: &str| {
                let s = v.unwrap_or_else(|| default.into());
                if s.is_empty()
                    || !s.starts_with(|c: char| c.is_ascii_alphabetic())
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                {
                    return Err(bad(
                        key,
                        format!(
                            "{what} '{s}': use letters, digits, '-' and '_', starting with a letter"
                        ),
                    ));
                }
                Ok(s)
            };
            Ok(NftFamily {
                enabled: raw.enabled.unwrap_or(true),
                table: ident("table", raw.table, table)?,
                chain: ident("chain", raw.chain, chain)?,
                priority: raw.priority.unwrap_or(-10),
            })
        };
        let nft_v4 = family("nftables.ipv4", nft.ipv4, "rampart", "rampart-chain")?;
        let nft_v6 = family("nftables.ipv6", nft.ipv6, "rampart6", "rampart6-chain")?;
        let nftables_hooks = self.nftables_hooks.unwrap_or_else(|| vec!["input".into()]);
        if nftables_hooks.is_empty() {
            return Err(bad("nftables_hooks", "needs at least one hook".into()));
        }
        for h in &nftables_hooks {
            if !matches!(h.as_str(), "input" | "forward" | "prerouting") {
                return Err(bad(
                    "nftables_hooks",
                    format!("'{h}': expected input, forward or prerouting"),
                ));
            }
        }

        let mut ipv4 = !self.disable_ipv4.unwrap_or(false);
        let mut ipv6 = !self.disable_ipv6.unwrap_or(false);
        if mode == Mode::Nftables {
            ipv4 &= nft_v4.enabled;
            ipv6 &= nft_v6.enabled;
        }
        if !ipv4 && !ipv6 {
            return Err(bad(
                "disable_ipv4",
                "both IPv4 and IPv6 are disabled: nothing to enforce".into(),
            ));
        }

        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        let log_level = match log_level.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "fatal" | "panic" => "error",
            other => {
                return Err(bad(
                    "log_level",
                    format!("'{other}': expected trace, debug, info, warning or error"),
                ));
            }
        }
        .to_owned();
        let log_file = match self.log_mode.as_deref() {
            None | Some("stdout") => None,
            Some("file") => Some(
                Path::new(self.log_dir.as_deref().unwrap_or("/var/log/"))
                    .join("rampart-firewall-bouncer.log"),
            ),
            Some(m) => return Err(bad("log_mode", format!("'{m}': expected stdout or file"))),
        };
        let prometheus = match self.prometheus {
            Some(p) if p.enabled.unwrap_or(false) => {
                let addr = p.listen_addr.unwrap_or_else(|| "127.0.0.1".into());
                let ip: IpAddr = addr.trim().parse().map_err(|_| {
                    bad(
                        "prometheus.listen_addr",
                        format!("'{addr}' is not an IP address"),
                    )
                })?;
                Some(std::net::SocketAddr::new(
                    ip,
                    p.listen_port.unwrap_or(60601),
                ))
            }
            _ => None,
        };
        let types = self
            .supported_decisions_types
            .unwrap_or_else(|| vec!["ban".into()])
            .into_iter()
            .map(|t| t.to_lowercase())
            .collect();

        let mut ignored = Vec::new();
        for (key, set) in [
            ("pid_dir", self.pid_dir.is_some()),
            ("daemonize", self.daemonize.is_some()),
            ("log_compression", self.log_compression.is_some()),
            ("log_max_size", self.log_max_size.is_some()),
            ("log_max_backups", self.log_max_backups.is_some()),
            ("log_max_age", self.log_max_age.is_some()),
            ("pf", self.pf.is_some()),
        ] {
            if set {
                ignored.push(key);
            }
        }

        Ok(Config {
            path: path.to_owned(),
            mode,
            api_url,
            api_key,
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
            cert_path,
            key_path,
            ca_cert_path: self
                .ca_cert_path
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            retry_initial_connect: self.retry_initial_connect.unwrap_or(true),
            update_frequency,
            push: self.push.unwrap_or(true),
            push_wait,
            scopes: self.scopes.unwrap_or_default(),
            origins: self.origins.unwrap_or_default(),
            scenarios_containing: self.scenarios_containing.unwrap_or_default(),
            scenarios_not_containing: self.scenarios_not_containing.unwrap_or_default(),
            supported_decisions_types: types,
            ipv4,
            ipv6,
            deny_action,
            deny_log: self.deny_log.unwrap_or(false),
            deny_log_prefix,
            blacklists_ipv4,
            blacklists_ipv6,
            ipset_size,
            iptables_v4_chains,
            iptables_v6_chains,
            iptables_add_rule_comments: self.iptables_add_rule_comments.unwrap_or(true),
            nft_v4,
            nft_v6,
            nftables_hooks,
            counters: self.counters.unwrap_or(true),
            cleanup_on_exit: self.cleanup_on_exit.unwrap_or(true),
            log_level,
            log_file,
            prometheus,
            ignored,
        })
    }
}

/// Replaces `${NAME}` with the variable's value; `Err(NAME)` when it is not set. A `$` not
/// followed by `{` is kept, so API keys and passwords containing `$` need no escaping.
fn expand_env(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str("${");
            rest = after;
            continue;
        }
        out.push_str(&var(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/fw.yaml"), text)
    }

    #[test]
    fn debian_default_file_loads_with_its_placeholders_filled() {
        let text = std::fs::read_to_string("/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml")
            .unwrap_or_else(|_| {
                "mode: ${BACKEND}\napi_url: http://127.0.0.1:8080/\napi_key: ${API_KEY}\n\
                 pid_dir: /var/run/\nlog_max_age: 30\npf:\n  anchor_name: \"\"\n"
                    .into()
            });
        let text = expand_env(&text, |k| match k {
            "BACKEND" => Some("nftables".into()),
            "API_KEY" => Some("k".into()),
            _ => None,
        })
        .unwrap_or_default();
        let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.mode, Mode::Nftables);
        assert_eq!(c.api_key, "k");
        assert!(c.ignored.contains(&"pid_dir"));
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse("mode: iptables\napi_url: http://127.0.0.1:8080/\napi_key: abc\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.mode, Mode::Iptables);
        assert_eq!(c.update_frequency, Duration::from_secs(10));
        assert_eq!(c.deny_action, DenyAction::Drop);
        assert_eq!(c.iptables_v4_chains, vec!["INPUT".to_owned()]);
        assert_eq!(c.supported_decisions_types, vec!["ban".to_owned()]);
        assert!(c.push && c.cleanup_on_exit && c.ipv4 && c.ipv6);
        assert!(c.ipset_size > 1 << 20);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let cases = [
            ("api_url: http://x/\napi_key: k\n", "key 'mode'"),
            ("mode: pf\napi_url: http://x/\napi_key: k\n", "key 'mode'"),
            ("mode: nftables\napi_key: k\n", "key 'api_url'"),
            ("mode: nftables\napi_url: http://x/\n", "key 'api_key'"),
            (
                "mode: nftables\napi_url: http://x/\napi_key: k\nupdate_frequency: soon\n",
                "key 'update_frequency'",
            ),
            (
                "mode: nftables\napi_url: http://x/\napi_key: k\ndeny_action: LOG\n",
                "key 'deny_action'",
            ),
            (
                "mode: nftables\napi_url: http://x/\napi_key: k\nupdate_frequencey: 1s\n",
                "update_frequencey",
            ),
            (
                "mode: nftables\napi_url: http://x/\napi_key: k\nnftables:\n  ipv4:\n    set-only: true\n",
                "key 'nftables.ipv4'",
            ),
            (
                "mode: iptables\napi_url: http://x/\napi_key: k\nblacklists_ipv4: a-very-long-blacklist-name-here\n",
                "key 'blacklists_ipv4'",
            ),
            (
                "mode: nftables\napi_url: http://x/\napi_key: k\ndisable_ipv4: true\ndisable_ipv6: true\n",
                "key 'disable_ipv4'",
            ),
            (
                "mode: nftables\napi_url: http://x/\napi_key: k\nprometheus:\n  enabled: true\n  listen_addr: localhost\n",
                "key 'prometheus.listen_addr'",
            ),
        ];
        for (text, want) in cases {
            match parse(text) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("/etc/fw.yaml: "), "{msg}");
                    assert!(msg.contains(want), "{msg} (expected {want})");
                }
            }
        }
    }

    #[test]
    fn env_expansion() {
        let env = |k: &str| (k == "K").then(|| "v".to_owned());
        assert_eq!(expand_env("a: ${K}\n", env), Ok("a: v\n".into()));
        assert_eq!(expand_env("a: $K ${} ${", env), Ok("a: $K ${} ${".into()));
        assert_eq!(expand_env("a: ${MISSING}", env), Err("MISSING".into()));
    }
}
