//! Rampart's Local API: CrowdSec's LAPI v1 (watchers, alerts, decisions, stream, usage metrics,
//! allowlists) so that CrowdSec agents and bouncers work against it unchanged, plus additive
//! extensions (long-poll push on the stream).
//!
//! Writes go to the database first and then into the in-memory [`index`]; every read a bouncer
//! makes is answered from that index, so bouncers never wait on the database and a stream poll
//! costs O(changes). Replicas on one PostgreSQL learn each other's writes through LISTEN/NOTIFY
//! (and a periodic catch-up that also covers MySQL).

pub mod auth;
pub mod capi;
mod config;
mod http;
pub mod index;
mod ingest;
mod metrics;
pub mod profiles;
mod render;
mod routes;
mod tls;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hashbrown::HashMap;
use model::IpRange;
use store::{Store, StoreError, now_ms};
use tokio::sync::watch;

pub use auth::{hash_api_key, hash_password, new_api_key, verify_password};
pub use config::{AutoRegistration, LapiConfig, TlsConfig};
pub use profiles::{ProfileError, Profiles};

/// Why the LAPI could not start.
#[derive(Debug, thiserror::Error)]
pub enum LapiError {
    /// Database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Profiles.
    #[error(transparent)]
    Profiles(#[from] ProfileError),
    /// Listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Serving.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// TLS material.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A bouncer known by its key hash.
#[derive(Debug)]
pub(crate) struct BouncerInfo {
    pub(crate) name: String,
    pub(crate) revoked: bool,
    /// Last `last_pull` written to the database (ms), to write it at most once a minute.
    pub(crate) last_pull_written: AtomicI64,
    /// `last_pull` as loaded from the database at start (for the time-based stream fallback).
    pub(crate) last_pull_db: AtomicI64,
    pub(crate) user_agent: Mutex<String>,
}

/// One allowlisted range.
#[derive(Debug, Clone)]
pub(crate) struct AllowEntry {
    pub(crate) range: IpRange,
    pub(crate) reason: String,
    pub(crate) expires_at: Option<i64>,
}

/// An alert that matched profiles naming notification plugins: what a notifier receives.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The stored alert (with its id and decisions).
    pub alert: model::Alert,
    /// Plugin configuration names from the matching profiles, in profile order.
    pub plugins: Vec<String>,
}

/// The running LAPI's shared state.
#[derive(Debug)]
pub struct Lapi {
    cfg: LapiConfig,
    store: Store,
    index: RwLock<index::Inner>,
    changes: watch::Sender<u64>,
    profiles: Profiles,
    jwt: auth::Jwt,
    bouncers: RwLock<HashMap<String, Arc<BouncerInfo>>>,
    cursors: Mutex<HashMap<String, u64>>,
    allowlists: RwLock<Vec<AllowEntry>>,
    limiter: auth::LoginLimiter,
    replica_id: String,
    synced_until: AtomicI64,
    notifications: tokio::sync::broadcast::Sender<Arc<Notification>>,
    metrics: metrics::LapiMetrics,
    /// Turns true when the server starts shutting down, so parked long-polls answer at once
    /// instead of holding the shutdown for their whole wait.
    closing: watch::Sender<bool>,
    /// Community sync: the signal push queue (see `capi.rs`).
    sharing: capi::Sharing,
}

const NOTIFY_CHANNEL: &str = "rampart_decisions";

impl Lapi {
    /// Opens the database, loads profiles, rebuilds the decision index from the database.
    pub async fn open(cfg: LapiConfig) -> Result<Arc<Self>, LapiError> {
        let store = Store::open(&cfg.db_url).await?;
        let profiles = match &cfg.profiles {
            Some(p) => Profiles::load(p)?,
            None => Profiles::default_profiles(),
        };
        let now = now_ms();
        let retention_ms = i64::try_from(cfg.retention.as_millis()).unwrap_or(i64::MAX / 4);
        let mut inner = index::Inner::new(retention_ms);
        let started = std::time::Instant::now();
        let rows = store.decisions_until_after(now - retention_ms).await?;
        for d in &rows {
            inner.upsert(d, now);
        }
        tracing::info!(
            decisions = rows.len(),
            active = inner.active_len(),
            ms = started.elapsed().as_millis() as u64,
            "decision index loaded"
        );
        drop(rows);
        let (changes, _) = watch::channel(inner.seq());
        let sharing = capi::Sharing::new(cfg.capi.as_ref());
        let lapi = Arc::new(Self {
            jwt: auth::Jwt::new(cfg.jwt_secret.as_deref()),
            limiter: auth::LoginLimiter::new(10, Duration::from_secs(60)),
            cfg,
            store,
            index: RwLock::new(inner),
            changes,
            profiles,
            bouncers: RwLock::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            allowlists: RwLock::new(Vec::new()),
            replica_id: uuid::Uuid::new_v4().simple().to_string(),
            synced_until: AtomicI64::new(now),
            notifications: tokio::sync::broadcast::channel(1024).0,
            metrics: metrics::LapiMetrics::default(),
            closing: watch::channel(false).0,
            sharing,
        });
        lapi.reload_bouncers().await?;
        lapi.reload_allowlists().await?;
        Ok(lapi)
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Settings.
    pub fn config(&self) -> &LapiConfig {
        &self.cfg
    }

    /// Alerts whose matching profiles name notification plugins. A slow receiver misses the
    /// oldest (the channel holds 1024) rather than slowing alert ingestion.
    pub fn subscribe_notifications(&self) -> tokio::sync::broadcast::Receiver<Arc<Notification>> {
        self.notifications.subscribe()
    }

    /// Number of active decisions held.
    pub fn active_decisions(&self) -> usize {
        self.index.read().map(|i| i.active_len()).unwrap_or(0)
    }

    /// Re-reads bouncers (keys) from the database.
    pub async fn reload_bouncers(&self) -> Result<(), StoreError> {
        let rows = self.store.bouncers().await?;
        let mut map = HashMap::with_capacity(rows.len());
        let old = self.bouncers.read().map(|b| b.clone()).unwrap_or_default();
        for b in rows {
            let info = old
                .get(&b.api_key_hash)
                .filter(|i| i.name == b.name && i.revoked == b.revoked)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(BouncerInfo {
                        name: b.name.clone(),
                        revoked: b.revoked,
                        last_pull_written: AtomicI64::new(b.last_pull.unwrap_or(0)),
                        last_pull_db: AtomicI64::new(b.last_pull.unwrap_or(0)),
                        user_agent: Mutex::new(String::new()),
                    })
                });
            map.insert(b.api_key_hash, info);
        }
        if let Ok(mut w) = self.bouncers.write() {
            *w = map;
        }
        Ok(())
    }

    /// Re-reads allowlists from the database.
    pub async fn reload_allowlists(&self) -> Result<(), StoreError> {
        let lists = self.store.allowlists().await?;
        let mut entries = Vec::new();
        for l in lists {
            for it in l.items {
                let Ok(range) = IpRange::parse(&it.value) else {
                    continue;
                };
                let comment = if it.comment.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", it.comment)
                };
                entries.push(AllowEntry {
                    range,
                    reason: format!("{} from {}{comment}", it.value, l.name),
                    expires_at: it.expires_at,
                });
            }
        }
        if let Ok(mut w) = self.allowlists.write() {
            *w = entries;
        }
        Ok(())
    }

    /// Reasons `r` is allowlisted (an item contains it or it contains an item), if any.
    pub(crate) fn allowlisted(&self, r: &IpRange) -> Vec<String> {
        let now = now_ms();
        self.allowlists
            .read()
            .map(|l| {
                l.iter()
                    .filter(|e| e.expires_at.is_none_or(|x| x > now))
                    .filter(|e| e.range.contains(r) || r.contains(&e.range))
                    .map(|e| e.reason.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wakes bouncers waiting on the stream and tells other replicas.
    pub(crate) async fn changed(&self, local_write: bool) {
        let seq = self.index.read().map(|i| i.seq()).unwrap_or(0);
        self.changes.send_replace(seq);
        if local_write && let Err(e) = self.store.notify(NOTIFY_CHANNEL, &self.replica_id).await {
            tracing::warn!(error = %e, "could not notify other replicas");
        }
    }

    /// Expires decisions by id (what deleting a decision means), in the database and in memory.
    pub(crate) async fn expire(&self, ids: &[i64]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let n = self.store.expire_decisions(ids, now).await?;
        self.end_in_index(ids, now).await;
        Ok(n)
    }

    /// Ends the still-active decisions among `ids` in memory (their rows were expired or
    /// deleted) and tells waiting bouncers and other replicas.
    pub(crate) async fn end_in_index(&self, ids: &[i64], now: i64) {
        let touched = match self.index.write() {
            Ok(mut ix) => {
                let mut any = false;
                for id in ids {
                    if ix.get(*id).is_some_and(|e| e.until > now) {
                        ix.set_until(*id, now, now);
                        any = true;
                    }
                }
                any
            }
            Err(_) => false,
        };
        if touched {
            self.changed(true).await;
        }
    }

    /// Runs the periodic jobs until the process ends: expiry of due decisions (with wake-ups),
    /// database retention, and catching up with other replicas' writes.
    pub fn spawn_jobs(self: &Arc<Self>) {
        self.spawn_capi();
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let now = now_ms();
                let (before, after, next) = match me.index.write() {
                    Ok(mut ix) => {
                        let before = ix.seq();
                        ix.expire_due(now);
                        (before, ix.seq(), ix.next_expiry())
                    }
                    Err(_) => (0, 0, None),
                };
                if after != before {
                    me.changed(false).await;
                }
                // Sleep until the next decision ends, but at least every second so evictions
                // and clock jumps are handled.
                let wait = next.map_or(1000, |n| (n - now).clamp(5, 1000));
                tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(1000)))
                    .await;
            }
        });
        // `rampart allowlists` edits the database directly (as cscli does), so a running LAPI
        // picks the lists up on its own; they are small.
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.reload_allowlists().await {
                    tracing::warn!(error = %e, "cannot reload allowlists");
                }
            }
        });
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match me.store.flush(&me.cfg.flush).await {
                    Ok(r) if r.alerts > 0 || r.metrics > 0 => {
                        tracing::info!(
                            alerts = r.alerts,
                            decisions = r.decision_ids.len(),
                            metrics = r.metrics,
                            "database flushed"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "database flush failed"),
                }
            }
        });
        if self.store.dialect() != store::Dialect::Sqlite {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.replica_loop().await });
        }
    }

    async fn replica_loop(self: Arc<Self>) {
        let mut listener = None;
        if self.store.dialect() == store::Dialect::Postgres {
            match sqlx::postgres::PgListener::connect(self.store.url()).await {
                Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, "LISTEN failed; replicas sync by polling"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; replicas sync by polling")
                }
            }
        }
        loop {
            let from_other = match listener.as_mut() {
                Some(l) => match tokio::time::timeout(self.cfg.replica_sync, l.recv()).await {
                    Ok(Ok(n)) => n.payload() != self.replica_id,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; polling");
                        listener = None;
                        false
                    }
                    Err(_) => true,
                },
                None => {
                    tokio::time::sleep(self.cfg.replica_sync).await;
                    true
                }
            };
            if from_other && let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "replica catch-up failed");
            }
        }
    }

    /// Reads decisions other replicas created or changed since the last catch-up.
    async fn catch_up(&self) -> Result<(), StoreError> {
        // Replica clocks differ a little: re-read a margin; applying a row twice is a no-op.
        let since = self.synced_until.load(Ordering::Relaxed) - 10_000;
        let now = now_ms();
        let rows = self.store.decisions_updated_after(since).await?;
        self.synced_until.store(now, Ordering::Relaxed);
        if rows.is_empty() {
            return Ok(());
        }
        let changed = match self.index.write() {
            Ok(mut ix) => {
                let before = ix.seq();
                for d in &rows {
                    ix.upsert(d, now);
                }
                ix.seq() != before
            }
            Err(_) => false,
        };
        if changed {
            self.changed(false).await;
        }
        Ok(())
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), LapiError> {
        let app = routes::router(Arc::clone(&self));
        let make = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let me = Arc::clone(&self);
        let shutdown = async move {
            shutdown.await;
            let _ = me.closing.send(true);
        };
        if let Some(t) = &self.cfg.tls {
            let rustls_cfg = tls::server_config(t)?;
            self.spawn_jobs();
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            let std_listener = listener.into_std().map_err(LapiError::Serve)?;
            let tls_cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(rustls_cfg));
            return axum_server::from_tcp_rustls(std_listener, tls_cfg)
                .map_err(LapiError::Serve)?
                .handle(handle)
                .serve(make)
                .await
                .map_err(LapiError::Serve);
        }
        self.spawn_jobs();
        axum::serve(listener, make)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(LapiError::Serve)
    }

    /// Binds the configured address.
    pub async fn bind(&self) -> Result<tokio::net::TcpListener, LapiError> {
        tokio::net::TcpListener::bind(self.cfg.listen)
            .await
            .map_err(|source| LapiError::Listen {
                addr: self.cfg.listen,
                source,
            })
    }
}
