//! `rampart-firewall-bouncer`: enforces a LAPI's decisions on this host's firewall.
//!
//! Reads a `crowdsec-firewall-bouncer.yaml`-compatible file ([`config`]), loads the full decision
//! list into kernel sets with timeouts ([`nft`] or [`ipset`] through [`firewall`]), then follows
//! changes from the LAPI ([`lapi`]): pushed by a Rampart LAPI within milliseconds, polled from a
//! CrowdSec one. On SIGTERM/SIGINT it removes its rules (or keeps them, `cleanup_on_exit: false`);
//! after a crash the next start replaces what is left instead of adding to it.
//!
//! Must not know: the LAPI's storage or any other Rampart crate than `model`. It talks to the
//! LAPI over HTTP only, as CrowdSec's bouncers do.

mod cmd;
mod config;
mod decision;
mod firewall;
mod ipset;
mod lapi;
mod metrics;
mod nft;
mod segments;
mod state;
mod target;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use clap::Parser;

use crate::config::{Config, Mode};
use crate::firewall::{Backend, Published};

/// Enforces CrowdSec/Rampart LAPI decisions with nftables or iptables + ipset.
#[derive(Debug, Parser)]
#[command(name = "rampart-firewall-bouncer", version)]
struct Args {
    /// Configuration file (crowdsec-firewall-bouncer.yaml keys).
    #[arg(
        short = 'c',
        long = "config",
        default_value = "/etc/rampart/firewall-bouncer.yaml"
    )]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(short = 't', long = "test")]
    test: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = Config::load(&args.config)?;
    if args.test {
        println!("{}: configuration OK", args.config.display());
        return Ok(());
    }
    init_logging(&cfg)?;
    for key in &cfg.ignored {
        tracing::warn!(
            "{}: key '{key}' has no effect on this bouncer; ignored",
            cfg.path.display()
        );
    }
    let tools: &[(&str, &str)] = match cfg.mode {
        Mode::Nftables => &[("nft", "nftables")],
        Mode::Iptables => &[("ipset", "ipset"), ("iptables-restore", "iptables")],
    };
    for (tool, package) in tools {
        if !cmd::find(tool).is_file() {
            bail!(
                "`{tool}` not found (mode {:?} needs the {package} package)",
                cfg.mode
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(Arc::new(cfg)))
}

fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    // log_level is this bouncer's verbosity; the HTTP stack stays at warnings unless RUST_LOG
    // says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,rampart_firewall_bouncer={}",
            cfg.log_level
        ))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cfg.log_file {
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(std::io::stdout)
            .init(),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
    }
    Ok(())
}

async fn run(cfg: Arc<Config>) -> anyhow::Result<()> {
    let lapi = lapi::Lapi::new(&cfg)?;
    let backend: Box<dyn Backend> = match cfg.mode {
        Mode::Nftables => Box::new(nft::Nft::new(&cfg)),
        Mode::Iptables => Box::new(ipset::Ipset::new(&cfg)),
    };
    let published = Arc::new(Mutex::new(Published::default()));
    let metrics = Arc::new(metrics::Metrics::new());
    // Bounded: a LAPI faster than the kernel waits for the firewall thread, it does not queue.
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let fw = {
        let published = Arc::clone(&published);
        let rt = tokio::runtime::Handle::current();
        let cleanup = cfg.cleanup_on_exit;
        std::thread::Builder::new()
            .name("firewall".into())
            .spawn(move || firewall::run(rx, backend, published, rt, cleanup))
            .context("cannot start the firewall thread")?
    };
    tracing::info!(
        mode = ?cfg.mode,
        lapi = %cfg.api_url,
        "rampart-firewall-bouncer v{} started",
        env!("CARGO_PKG_VERSION")
    );
    let metrics_task = cfg.prometheus.map(|addr| {
        let serve = metrics::serve(
            addr,
            Arc::clone(&metrics),
            Arc::clone(&published),
            tx.clone(),
        );
        tokio::spawn(async move {
            // Metrics are not worth stopping enforcement for: say so and go on without them.
            if let Err(e) = serve.await {
                tracing::error!(%addr, error = %e, "cannot serve Prometheus metrics");
            }
        })
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let follow = lapi::follow(Arc::clone(&cfg), lapi, tx.clone(), metrics);
    let outcome = tokio::select! {
        r = follow => r.map_err(anyhow::Error::from),
        _ = term.recv() => { tracing::info!("SIGTERM: stopping"); Ok(()) }
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); Ok(()) }
    };
    if let Some(t) = metrics_task {
        t.abort();
    }
    // The firewall thread finishes what is queued before this, then removes its rules (or not).
    let _ = tx.send(firewall::Msg::Shutdown).await;
    drop(tx);
    tokio::task::spawn_blocking(move || fw.join())
        .await
        .ok()
        .and_then(Result::ok);
    outcome
}
