//! `rampart lapi`: the Local API server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `rampart lapi`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (CrowdSec's config.yaml keys: api.server, db_config).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Listen address (overrides api.server.listen_uri).
    #[arg(long)]
    listen: Option<String>,
    /// Database URL: sqlite:///path.db, postgres://user@host/db, mysql://user@host/db.
    #[arg(long, env = "RAMPART_DB")]
    db: Option<String>,
    /// profiles.yaml (overrides api.server.profiles_path; default: CrowdSec's default profiles).
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// Prometheus metrics address (default: the configuration's `prometheus` section, else
    /// 127.0.0.1:6060); `off` disables.
    #[arg(long)]
    metrics: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_, mut cfg) = super::config::resolve(args.config.as_deref(), args.db.as_deref())?;
    let file = args
        .config
        .as_deref()
        .map(super::config::ConfigFile::load)
        .transpose()?;
    let metrics_addr = super::config::metrics_addr(args.metrics.as_deref(), file.as_ref())?;
    if let Some(l) = &args.listen {
        cfg.listen = super::config::parse_listen(l)?;
    }
    if let Some(p) = args.profiles {
        cfg.profiles = Some(p);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let lapi = lapi::Lapi::open(cfg).await.context("starting the LAPI")?;
        let listener = lapi.bind().await?;
        let addr = listener
            .local_addr()
            .context("reading the listen address")?;
        eprintln!(
            "rampart LAPI listening on http://{addr} ({} active decisions, database {})",
            lapi.active_decisions(),
            redact(lapi.store().url())
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut exporter = telemetry::Exporter::new(env!("CARGO_PKG_VERSION"));
        lapi.register_metrics(&mut exporter);
        let metrics = super::spawn_metrics(exporter, metrics_addr, stop_rx).await;
        lapi.serve(listener, super::shutdown_signal()).await?;
        let _ = stop_tx.send(true);
        if let Some(m) = metrics {
            let _ = m.await;
        }
        eprintln!("rampart LAPI stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
