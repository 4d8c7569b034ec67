//! What the LAPI is told at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use store::FlushPolicy;

/// Auto-registration: machines presenting this token from these ranges are validated at once.
#[derive(Debug, Clone, Default)]
pub struct AutoRegistration {
    /// Shared token (at least 32 characters).
    pub token: String,
    /// Client ranges allowed to use it.
    pub allowed_ranges: Vec<IpNet>,
}

/// Server TLS, with optional client-certificate authentication.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// CA that signs client certificates (enables client-certificate auth).
    pub ca_cert_path: Option<PathBuf>,
    /// OUs a machine certificate must carry.
    pub agents_allowed_ou: Vec<String>,
    /// OUs a bouncer certificate must carry.
    pub bouncers_allowed_ou: Vec<String>,
}

/// LAPI settings (CrowdSec's `api.server` and `db_config` keys map onto these).
#[derive(Debug, Clone)]
pub struct LapiConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Database URL.
    pub db_url: String,
    /// `profiles.yaml`; CrowdSec's default profiles when `None`.
    pub profiles: Option<PathBuf>,
    /// Clients that may delete alerts (besides loopback).
    pub trusted_ips: Vec<IpNet>,
    /// Read the client IP from `X-Forwarded-For` when the peer is a trusted proxy.
    pub use_forwarded_for_headers: bool,
    /// Proxies whose forwarded headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Token-based machine auto-registration.
    pub auto_registration: Option<AutoRegistration>,
    /// Only loopback may register machines.
    pub disable_remote_registration: bool,
    /// JWT secret shared by replicas (`None`: random per process).
    pub jwt_secret: Option<Vec<u8>>,
    /// Database retention.
    pub flush: FlushPolicy,
    /// How long expired decisions stay in memory for the stream's `deleted`.
    pub retention: Duration,
    /// Longest `wait=` a bouncer may ask for on the stream.
    pub max_wait: Duration,
    /// How often a replica reads the others' decision changes from the database (PostgreSQL also
    /// pushes them at once with LISTEN/NOTIFY).
    pub replica_sync: Duration,
    /// TLS.
    pub tls: Option<TlsConfig>,
    /// Community sync with a central API (`online_client`); off when `None`.
    pub capi: Option<crate::capi::CapiConfig>,
}

impl Default for LapiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db_url: "sqlite://rampart.db".into(),
            profiles: None,
            trusted_ips: Vec::new(),
            use_forwarded_for_headers: false,
            trusted_proxies: Vec::new(),
            auto_registration: None,
            disable_remote_registration: false,
            jwt_secret: None,
            flush: FlushPolicy {
                max_items: None,
                max_age_ms: Some(7 * 24 * 3600 * 1000),
                metrics_max_age_ms: Some(7 * 24 * 3600 * 1000),
            },
            retention: Duration::from_secs(3 * 3600),
            max_wait: Duration::from_secs(300),
            replica_sync: Duration::from_secs(5),
            tls: None,
            capi: None,
        }
    }
}
