//! Rampart's Central API: a self-hostable community network that speaks CrowdSec's CAPI (v2 for
//! CrowdSec 1.4.x, v3 for later versions and Rampart), so Rampart and CrowdSec LAPIs can share
//! what attacks them and pull back a community blocklist.
//!
//! * [`routes`]: registration and login, signal ingestion (batched, validated, rate-limited per
//!   machine), metrics, the decision stream LAPIs pull (v2 `new`/`deleted` decisions, v3 groups
//!   plus blocklist links) and the plain-text blocklists those links point at.
//! * [`consensus`]: the pure engine that decides what is listed and how far each machine is
//!   believed. It knows nothing of HTTP or SQL.
//! * [`db`]: PostgreSQL. Raw signals go to a table partitioned by day (old days are dropped
//!   whole, so months of signals stay cheap); the consensus reads a rolling aggregate with one
//!   row per (IP, machine), pruned past the consensus window; the blocklist carries a change
//!   sequence so each LAPI pulls only what changed since its last pull.
//! * [`job`]: the consensus pass, run every few seconds by whichever replica holds a PostgreSQL
//!   advisory lock, so any number of stateless replicas can sit behind a load balancer.
//! * [`sim`]: a synthetic world (honest machines, attackers, sybil groups) driven through the
//!   engine in process, or through the real HTTP server and PostgreSQL.
//!
//! Must not know: the LAPI, its database, bouncers.

pub mod config;
pub mod consensus;
pub mod db;
mod http;
pub mod job;
pub mod network;
pub mod routes;
pub mod sim;

use std::sync::Arc;
use std::time::Duration;

pub use config::CentralConfig;
use consensus::Engine;

/// Why the central server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CentralError {
    /// Database.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Bad settings.
    #[error("configuration: {0}")]
    Config(String),
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
}

/// The running server's shared state.
#[derive(Debug)]
pub struct Central {
    cfg: CentralConfig,
    db: db::Db,
    engine: Engine,
    jwt: http::Jwt,
    networks: network::Networks,
    limits: http::Limits,
}

impl Central {
    /// Connects to PostgreSQL, brings the schema up to date and parses the rules.
    pub async fn open(cfg: CentralConfig) -> Result<Arc<Self>, CentralError> {
        let engine = Engine::new(cfg.consensus.clone()).map_err(CentralError::Config)?;
        let networks = network::Networks::open(cfg.asn_db.as_deref())
            .map_err(|e| CentralError::Config(e.to_string()))?;
        let db = db::Db::open(&cfg.db_url).await?;
        db.ensure_partitions(store_now()).await?;
        Ok(Arc::new(Self {
            jwt: http::Jwt::new(cfg.jwt_secret.as_deref()),
            limits: http::Limits::new(cfg.signals_per_minute, cfg.registrations_per_hour),
            cfg,
            db,
            engine,
            networks,
        }))
    }

    /// The database.
    pub fn db(&self) -> &db::Db {
        &self.db
    }

    /// Settings.
    pub fn config(&self) -> &CentralConfig {
        &self.cfg
    }

    /// The consensus rules.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Binds the configured address.
    pub async fn bind(&self) -> Result<tokio::net::TcpListener, CentralError> {
        tokio::net::TcpListener::bind(self.cfg.listen)
            .await
            .map_err(|source| CentralError::Listen {
                addr: self.cfg.listen,
                source,
            })
    }

    /// Runs the consensus pass and the maintenance (partitions, pruning) until the process
    /// ends.
    pub fn spawn_jobs(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut job = job::Job::default();
            let mut tick = tokio::time::interval(me.cfg.job_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match job.run(&me.db, &me.engine, store_now()).await {
                    Ok(Some(r)) if r.listed + r.delisted > 0 => tracing::info!(
                        listed = r.listed,
                        delisted = r.delisted,
                        evaluated = r.evaluated,
                        "community blocklist updated"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "consensus pass failed"),
                }
            }
        });
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) = me.maintain().await {
                    tracing::warn!(error = %e, "maintenance failed");
                }
            }
        });
    }

    /// Creates the coming days' signal partitions and prunes what is past retention.
    pub async fn maintain(&self) -> Result<(), sqlx::Error> {
        let now = store_now();
        self.db.ensure_partitions(now).await?;
        let day = 24 * 3600 * 1000;
        let dropped = self
            .db
            .drop_partitions_before(now - i64::from(self.cfg.signal_retention_days) * day)
            .await?;
        let reports = self
            .db
            .prune_reports(now - self.cfg.consensus.window_ms)
            .await?;
        let retention = i64::try_from(self.cfg.deleted_retention.as_millis()).unwrap_or(i64::MAX);
        let deleted = self.db.prune_deleted(now.saturating_sub(retention)).await?;
        self.db.prune_metrics(now - 30 * day).await?;
        if dropped + reports + deleted > 0 {
            tracing::info!(
                partitions = dropped,
                reports,
                deleted,
                "central database pruned"
            );
        }
        Ok(())
    }

    /// Serves until `shutdown` resolves (and runs the jobs meanwhile).
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), CentralError> {
        self.spawn_jobs();
        self.serve_requests(listener, shutdown).await
    }

    /// Serves requests only: no consensus pass or maintenance runs (another replica, or the
    /// caller, runs them).
    pub async fn serve_requests(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), CentralError> {
        let app = routes::router(Arc::clone(&self));
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(CentralError::Serve)
    }
}

/// Milliseconds since the Unix epoch.
pub fn store_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
