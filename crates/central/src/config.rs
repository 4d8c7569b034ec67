//! Settings of `rampart central`, and its YAML file (`central.yaml`, unknown keys rejected).
//!
//! ```yaml
//! listen: 0.0.0.0:8090
//! db_url: postgres://rampart@127.0.0.1/central
//! public_url: https://central.example.org   # base of blocklist links
//! trusted_proxies: [10.0.0.0/8]            # X-Forwarded-For is believed only from these
//! asn_db: /var/lib/rampart/GeoLite2-ASN.mmdb  # machine networks by AS (else /24 and /48)
//! decision_duration: 48h
//! blocklists:
//!   - {name: rampart/ssh, scenarios: [ssh], duration: 24h}
//! consensus:
//!   threshold: 1.2
//!   min_networks: 3
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::consensus::ConsensusConfig;

/// A list offered as a link in the v3 stream: the community list filtered by scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocklistDef {
    /// Name (LAPIs use it as the decisions' scenario, origin `lists`).
    pub name: String,
    /// Listed IPs whose scenario contains one of these words (all when empty).
    #[serde(default)]
    pub scenarios: Vec<String>,
    /// Decision type.
    #[serde(default = "default_remediation")]
    pub remediation: String,
    /// How long each decision lasts.
    #[serde(default = "default_list_duration", deserialize_with = "de_duration")]
    pub duration: Duration,
}

fn default_remediation() -> String {
    "ban".into()
}

fn default_list_duration() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct CentralConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// PostgreSQL URL.
    pub db_url: String,
    /// Base URL LAPIs reach this server at (blocklist links); `http://<listen>` when unset.
    pub public_url: Option<String>,
    /// JWT secret shared by replicas (random per process when `None`: clients log in again).
    pub jwt_secret: Option<Vec<u8>>,
    /// Proxies whose `X-Forwarded-For` gives the client address.
    pub trusted_proxies: Vec<IpNet>,
    /// MaxMind ASN database: machine networks by AS number.
    pub asn_db: Option<PathBuf>,
    /// The consensus rules.
    pub consensus: ConsensusConfig,
    /// How often the consensus pass runs.
    pub job_interval: Duration,
    /// Signals a machine may push per minute (a token bucket holding two minutes' worth).
    pub signals_per_minute: u32,
    /// Most signals in one push.
    pub max_batch: usize,
    /// Whether `POST /watchers` is open.
    pub registration: bool,
    /// Registrations per network per hour (0 = unlimited).
    pub registrations_per_hour: u32,
    /// Duration of each community decision handed to LAPIs.
    pub decision_duration: Duration,
    /// Days of raw signals kept.
    pub signal_retention_days: u32,
    /// How long delisted IPs are still reported as `deleted` to LAPIs that pull late.
    pub deleted_retention: Duration,
    /// Extra lists offered as links.
    pub blocklists: Vec<BlocklistDef>,
}

impl Default for CentralConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            db_url: "postgres://postgres@127.0.0.1:5432/rampart_central".into(),
            public_url: None,
            jwt_secret: None,
            trusted_proxies: Vec::new(),
            asn_db: None,
            consensus: ConsensusConfig::default(),
            job_interval: Duration::from_secs(10),
            signals_per_minute: 600,
            max_batch: 500,
            registration: true,
            registrations_per_hour: 20,
            decision_duration: Duration::from_secs(48 * 3600),
            signal_retention_days: 30,
            deleted_retention: Duration::from_secs(7 * 24 * 3600),
            blocklists: Vec::new(),
        }
    }
}

/// `central.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralFile {
    listen: Option<String>,
    db_url: Option<String>,
    public_url: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    asn_db: Option<PathBuf>,
    #[serde(default)]
    consensus: Option<ConsensusConfig>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    job_interval: Option<Duration>,
    signals_per_minute: Option<u32>,
    max_batch: Option<usize>,
    registration: Option<bool>,
    registrations_per_hour: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    decision_duration: Option<Duration>,
    signal_retention_days: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    deleted_retention: Option<Duration>,
    #[serde(default)]
    blocklists: Vec<BlocklistDef>,
}

impl CentralFile {
    /// Parses YAML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies the file over `cfg`.
    pub fn apply(self, cfg: &mut CentralConfig) -> Result<(), String> {
        if let Some(l) = self.listen {
            cfg.listen = l
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .map_err(|_| format!("listen: '{l}' is not an address:port"))?;
        }
        if let Some(u) = self.db_url {
            cfg.db_url = u;
        }
        if self.public_url.is_some() {
            cfg.public_url = self.public_url;
        }
        for p in &self.trusted_proxies {
            let net = p
                .parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("trusted_proxies: '{p}' is not an IP or CIDR"))?;
            cfg.trusted_proxies.push(net);
        }
        if self.asn_db.is_some() {
            cfg.asn_db = self.asn_db;
        }
        if let Some(c) = self.consensus {
            cfg.consensus = c;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { cfg.$f = v; } )* };
        }
        set!(
            job_interval,
            signals_per_minute,
            max_batch,
            registration,
            registrations_per_hour,
            decision_duration,
            signal_retention_days,
            deleted_retention
        );
        for b in &self.blocklists {
            if b.name.is_empty() || b.name.contains(['?', '#', ' ']) {
                return Err(format!("blocklists: '{}' is not a valid list name", b.name));
            }
        }
        cfg.blocklists.extend(self.blocklists);
        Ok(())
    }
}

/// A duration written as a Go duration (`90s`, `48h`, `7d`) or as milliseconds.
fn parse_duration(v: &serde_json::Value) -> Result<Duration, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Duration::from_millis)
            .ok_or_else(|| format!("'{n}' is not a positive number of milliseconds")),
        serde_json::Value::String(s) => model::parse_duration_days(s)
            .filter(|ns| *ns >= 0)
            .map(|ns| Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
            .ok_or_else(|| format!("'{s}' is not a duration (e.g. 90s, 48h, 7d)")),
        other => Err(format!("{other} is not a duration")),
    }
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    parse_duration(&v).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// Milliseconds fields of the consensus rules also take Go durations.
pub(crate) fn de_ms<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    de_duration(d).map(|x| i64::try_from(x.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_applies_and_names_bad_keys() {
        let f = CentralFile::parse(
            "listen: 0.0.0.0:9000\ndecision_duration: 24h\nconsensus:\n  threshold: 2\n  half_life_ms: 12h\nblocklists:\n  - {name: ssh, scenarios: [ssh], duration: 12h}\n",
        )
        .unwrap();
        let mut cfg = CentralConfig::default();
        f.apply(&mut cfg).unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.decision_duration, Duration::from_secs(24 * 3600));
        assert_eq!(cfg.consensus.threshold, 2.0);
        assert_eq!(cfg.consensus.half_life_ms, 12 * 3600 * 1000);
        assert_eq!(cfg.blocklists[0].duration, Duration::from_secs(12 * 3600));
        let e = CentralFile::parse("consensus:\n  treshold: 2\n").unwrap_err();
        assert!(e.contains("treshold"), "{e}");
        let e = CentralFile::parse("decision_duration: soon\n").unwrap_err();
        assert!(e.contains("soon"), "{e}");
    }
}
