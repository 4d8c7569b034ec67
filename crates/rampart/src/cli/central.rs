//! `rampart central`: the self-hostable Central API (community blocklist), and
//! `rampart central simulate`, which measures its consensus on a synthetic world.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

/// Arguments of `rampart central`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Settings file (central.yaml: listen, db_url, consensus rules, blocklists...).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:8090).
    #[arg(long)]
    listen: Option<String>,
    /// PostgreSQL URL.
    #[arg(long, env = "RAMPART_CENTRAL_DB")]
    db: Option<String>,
    /// URL LAPIs reach this server at (used in blocklist links).
    #[arg(long)]
    public_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Run a synthetic community through the consensus and print precision, recall, time to
    /// listing and ingestion rate.
    Simulate(SimArgs),
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Honest machines.
    #[arg(long, default_value_t = 10_000)]
    machines: usize,
    /// Networks the honest machines sit in.
    #[arg(long, default_value_t = 500)]
    networks: usize,
    /// A sybil group as MACHINES:NETWORKS, with `:echo` to also echo the public list (repeat;
    /// default 1000:1, 1000:2, 1000:3:echo).
    #[arg(long = "sybils")]
    sybils: Vec<String>,
    /// Benign addresses each sybil group reports.
    #[arg(long, default_value_t = 50)]
    targets: usize,
    /// New attackers per simulated hour.
    #[arg(long, default_value_t = 1500)]
    attackers_per_hour: usize,
    /// Simulated hours (the first half warms trust up).
    #[arg(long, default_value_t = 48)]
    hours: i64,
    /// Seed of the synthetic world.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also drive the real server over HTTP on this PostgreSQL database (it is written to:
    /// use an empty one).
    #[arg(long)]
    http_db: Option<String>,
    /// Machines of the HTTP run.
    #[arg(long, default_value_t = 200)]
    http_machines: usize,
    /// Networks of the HTTP run.
    #[arg(long, default_value_t = 40)]
    http_networks: usize,
    /// Signals per machine in the HTTP run.
    #[arg(long, default_value_t = 250)]
    http_signals: usize,
    /// Signals per push in the HTTP run.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Concurrent pushers in the HTTP run.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn load(args: &Args) -> anyhow::Result<central::CentralConfig> {
    let mut cfg = central::CentralConfig::default();
    if let Some(p) = &args.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        central::config::CentralFile::parse(&text)
            .and_then(|f| f.apply(&mut cfg))
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    if let Some(l) = &args.listen {
        cfg.listen = super::config::parse_listen(l)?;
    }
    if let Some(d) = &args.db {
        cfg.db_url.clone_from(d);
    }
    if let Some(u) = &args.public_url {
        cfg.public_url = Some(u.clone());
    }
    if let Ok(secret) = std::env::var("RAMPART_CENTRAL_SECRET") {
        if secret.len() < 64 {
            bail!("RAMPART_CENTRAL_SECRET must be at least 64 bytes long");
        }
        cfg.jwt_secret = Some(secret.into_bytes());
    }
    Ok(cfg)
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = load(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(Action::Simulate(sim)) = args.action {
        return rt.block_on(simulate(sim, cfg));
    }
    rt.block_on(async move {
        let c = central::Central::open(cfg)
            .await
            .context("starting the central API")?;
        let listener = c.bind().await?;
        let addr = listener
            .local_addr()
            .context("reading the listen address")?;
        eprintln!(
            "rampart central listening on http://{addr} (CAPI v2 and v3; database {})",
            super::lapi::redact(&c.config().db_url)
        );
        c.serve(listener, super::shutdown_signal()).await?;
        eprintln!("rampart central stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn sybil_groups(specs: &[String]) -> anyhow::Result<Vec<(usize, usize, bool)>> {
    if specs.is_empty() {
        return Ok(central::sim::World::default().sybil_groups);
    }
    specs
        .iter()
        .map(|s| {
            let parts: Vec<&str> = s.split(':').collect();
            let num = |i: usize| -> anyhow::Result<usize> {
                parts
                    .get(i)
                    .and_then(|p| p.parse().ok())
                    .with_context(|| format!("--sybils {s}: expected MACHINES:NETWORKS[:echo]"))
            };
            let echo = match parts.get(2) {
                None => false,
                Some(&"echo") => true,
                Some(other) => bail!("--sybils {s}: '{other}' is not `echo`"),
            };
            Ok((num(0)?, num(1)?.max(1), echo))
        })
        .collect()
}

async fn simulate(a: SimArgs, cfg: central::CentralConfig) -> anyhow::Result<ExitCode> {
    let world = central::sim::World {
        honest_machines: a.machines,
        honest_networks: a.networks.max(1),
        sybil_groups: sybil_groups(&a.sybils)?,
        sybil_targets: a.targets,
        attackers_per_hour: a.attackers_per_hour,
        hours: a.hours.max(2),
        seed: a.seed,
        ..central::sim::World::default()
    };
    let engine = central::consensus::Engine::new(cfg.consensus.clone())
        .map_err(|e| anyhow::anyhow!("consensus: {e}"))?;
    eprintln!(
        "simulating {} honest machines in {} networks, {} sybil groups, {} h...",
        world.honest_machines,
        world.honest_networks,
        world.sybil_groups.len(),
        world.hours
    );
    let w = world.clone();
    let mut res = tokio::task::spawn_blocking(move || central::sim::run_engine(&w, &engine))
        .await
        .context("simulation thread")?;
    println!("## Consensus on the synthetic world (engine in process)\n");
    println!("{}", res.table(&world));
    if let Some(db) = a.http_db {
        let mut cfg = cfg;
        cfg.db_url = db;
        cfg.listen = "127.0.0.1:0".parse()?;
        cfg.trusted_proxies = vec!["127.0.0.1/32".parse()?];
        cfg.registrations_per_hour = 0;
        cfg.signals_per_minute = 0;
        cfg.max_batch = cfg.max_batch.max(a.batch);
        // Machines of this run are minutes old: let confirmations count at once (the fleet
        // setting) so the listing path is exercised end to end.
        cfg.consensus.trust.age_ramp_ms = 0;
        let c = central::Central::open(cfg)
            .await
            .context("starting the central API")?;
        let listener = c.bind().await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(Arc::clone(&c).serve_requests(listener, std::future::pending()));
        eprintln!(
            "driving {url} with {} machines over HTTP...",
            a.http_machines
        );
        let c2 = Arc::clone(&c);
        let r = central::sim::run_http(
            &url,
            a.http_machines.max(1),
            a.http_networks.max(1),
            a.http_signals,
            a.batch,
            a.concurrency,
            move || async move {
                // First pass confirms the shared attackers (credits the reporters), the second
                // lists them with the trust earned.
                let mut job = central::job::Job::default();
                for _ in 0..2 {
                    if let Err(e) = job.run(c2.db(), c2.engine(), central::store_now()).await {
                        eprintln!("consensus pass failed: {e}");
                    }
                }
            },
        )
        .await
        .context("HTTP run")?;
        println!("## Real server: HTTP + PostgreSQL\n");
        println!("{}", r.table());
    }
    Ok(ExitCode::SUCCESS)
}
