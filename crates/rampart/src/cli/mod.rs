//! Command-line interface, one module per noun as in cscli.

mod admin;
mod alerts;
mod allowlists;
mod capi;
mod central;
mod config;
mod content;
mod decisions;
mod explain;
mod hub;
mod hubtest;
mod lapi;
mod metrics;
mod output;
mod pipeline;
mod remote;
mod replay;
mod run;
mod setup;
mod simulation;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rampart: collaborative intrusion prevention, compatible with CrowdSec content and bouncers.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

pub(crate) use output::Output;

#[derive(Debug, Subcommand)]
enum Command {
    /// Run hub test cases (cscli hubtest format).
    Hubtest {
        #[command(subcommand)]
        action: HubtestAction,
    },
    /// Show how log lines go through the parser stages.
    Explain(explain::Args),
    /// Replay a log through parsers and scenarios (time machine) and print the alerts.
    Replay(replay::Args),
    /// Run the Local API server.
    Lapi(lapi::Args),
    /// Run the Central API (self-hosted community blocklist), or simulate its consensus.
    Central(central::Args),
    /// Create the default configuration layout (/etc/rampart) and a systemd unit.
    Setup(setup::Args),
    /// Run the agent and the Local API (SQLite by default) on this machine's logs.
    Run(run::Args),
    /// Manage machines (agents and admin clients) allowed to log in to the LAPI.
    Machines {
        #[command(subcommand)]
        action: admin::MachinesAction,
        #[command(flatten)]
        db: admin::DbArgs,
    },
    /// List, add, delete and import decisions (through the LAPI, as this host's machine).
    Decisions {
        #[command(subcommand)]
        action: decisions::Action,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// List, inspect, delete and flush alerts.
    Alerts {
        #[command(subcommand)]
        action: alerts::Action,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// Manage allowlists: IPs and ranges that are never banned.
    Allowlists {
        #[command(subcommand)]
        action: allowlists::Action,
        #[command(flatten)]
        db: admin::DbArgs,
    },
    /// Put scenarios in simulation (decisions recorded, not enforced) or take them out.
    Simulation {
        #[command(subcommand)]
        action: simulation::Action,
        #[command(flatten)]
        args: simulation::Args,
    },
    /// Show the agent's and LAPI's Prometheus metrics as tables (like cscli metrics).
    Metrics(metrics::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Show the effective configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
        /// Configuration file.
        #[arg(short, long, global = true)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "human", global = true)]
        output: Output,
    },
    /// Hub index: list installed items, update the index, upgrade everything.
    Hub(hub::HubCmd),
    /// Collections: items that pull in parsers, scenarios and other collections.
    Collections(hub::ItemCmd),
    /// Parsers: turn log lines into events.
    Parsers(hub::ItemCmd),
    /// Scenarios: leaky buckets that turn events into alerts.
    Scenarios(hub::ItemCmd),
    /// Postoverflows: parsers run on alerts (whitelists, rDNS).
    Postoverflows(hub::ItemCmd),
    /// Contexts: alert context sent to the console.
    Contexts(hub::ItemCmd),
    /// This LAPI's account on a central API: register, status.
    Capi {
        #[command(subcommand)]
        action: capi::Action,
        #[command(flatten)]
        args: capi::Args,
    },
    /// Manage bouncers and their API keys.
    Bouncers {
        #[command(subcommand)]
        action: admin::BouncersAction,
        #[command(flatten)]
        db: admin::DbArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Settings after flags, configuration file and defaults.
    Show,
}

#[derive(Debug, Subcommand)]
enum HubtestAction {
    /// Run test cases and report pass/fail per case.
    Run {
        /// Hub directory (holds .index.json, parsers/, patterns/, data/).
        #[arg(long)]
        hub: PathBuf,
        /// Folder of test cases (default: HUB/tests).
        #[arg(long)]
        tests: Option<PathBuf>,
        /// Only these cases.
        names: Vec<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "human")]
        output: Output,
    },
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Hubtest {
            action:
                HubtestAction::Run {
                    hub,
                    tests,
                    names,
                    output,
                },
        } => {
            let tests = tests.unwrap_or_else(|| hub.join("tests"));
            hubtest::run(&hub, &tests, &names, output)
        }
        Command::Explain(args) => explain::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Lapi(args) => lapi::run(args),
        Command::Central(args) => central::run(args),
        Command::Setup(args) => setup::run(args),
        Command::Run(args) => run::run(args),
        Command::Machines { action, db } => admin::machines(action, db),
        Command::Decisions { action, remote } => decisions::run(action, remote),
        Command::Alerts { action, remote } => alerts::run(action, remote),
        Command::Metrics(args) => metrics::run(args),
        Command::Capi { action, args } => capi::run(action, args),
        Command::Config {
            action: ConfigAction::Show,
            config,
            output,
        } => config::show(config.as_deref(), output),
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rampart", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulation { action, args } => simulation::run(action, args),
        Command::Allowlists { action, db } => allowlists::run(action, db),
        Command::Hub(cmd) => hub::run_hub(cmd),
        Command::Collections(cmd) => hub::run_items(::hub::ItemType::Collections, cmd),
        Command::Parsers(cmd) => hub::run_items(::hub::ItemType::Parsers, cmd),
        Command::Scenarios(cmd) => hub::run_items(::hub::ItemType::Scenarios, cmd),
        Command::Postoverflows(cmd) => hub::run_items(::hub::ItemType::PostOverflows, cmd),
        Command::Contexts(cmd) => hub::run_items(::hub::ItemType::Contexts, cmd),
        Command::Bouncers { action, db } => admin::bouncers(action, db),
    }
}

/// Serves `exporter` at `addr` until `stop` turns true. A port already taken (CrowdSec's
/// 6060 on the same host, say) is reported and the daemon goes on without metrics.
pub(crate) async fn spawn_metrics(
    exporter: telemetry::Exporter,
    addr: Option<std::net::SocketAddr>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let addr = addr?;
    match telemetry::bind(addr).await {
        Ok(listener) => {
            let shown = listener.local_addr().map_or(addr, |a| a);
            eprintln!("rampart: Prometheus metrics on http://{shown}/metrics");
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = std::sync::Arc::new(exporter).serve(listener, stopped).await {
                    tracing::warn!(error = %e, "metrics endpoint stopped");
                }
            }))
        }
        Err(e) => {
            eprintln!(
                "rampart: cannot serve metrics on {addr} ({e}); running without them (use --metrics ADDR or --metrics off)"
            );
            None
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (daemons stop cleanly on either).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
