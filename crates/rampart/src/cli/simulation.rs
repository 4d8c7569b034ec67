//! `rampart simulation status|enable|disable`: scenarios whose decisions are recorded but not
//! enforced, in CrowdSec's `simulation.yaml` (global switch + exceptions).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::Output;
use super::content::Simulation;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Show what runs in simulation.
    Status,
    /// Put scenarios (or, with --global, all of them) in simulation.
    Enable {
        /// Scenario names.
        scenarios: Vec<String>,
        /// Every scenario.
        #[arg(short, long)]
        global: bool,
    },
    /// Take scenarios (or, with --global, all of them) out of simulation.
    Disable {
        /// Scenario names.
        scenarios: Vec<String>,
        /// Every scenario.
        #[arg(short, long)]
        global: bool,
    },
}

/// Where the content (and its simulation.yaml) is.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (its config_paths.hub_dir is used).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Content directory holding simulation.yaml (default: as `rampart run`).
    #[arg(long, global = true)]
    hub: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "human", global = true)]
    output: Output,
}

fn path(args: &Args) -> anyhow::Result<PathBuf> {
    let hub = match &args.hub {
        Some(h) => h.clone(),
        None => args
            .config
            .as_deref()
            .map(super::config::ConfigFile::load)
            .transpose()?
            .and_then(|f| f.config_paths.and_then(|p| p.config_dir.or(p.hub_dir)))
            .unwrap_or_else(super::content::default_hub),
    };
    Ok(hub.join("simulation.yaml"))
}

fn save(path: &Path, s: &Simulation) -> anyhow::Result<()> {
    let mut text = format!("simulation: {}\n", s.simulation);
    if s.exclusions.is_empty() {
        text.push_str("exclusions: []\n");
    } else {
        text.push_str("exclusions:\n");
        for e in &s.exclusions {
            text.push_str(&format!("  - {e}\n"));
        }
    }
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Sets whether `name` simulates, whatever the global switch.
fn set(s: &mut Simulation, name: &str, simulate: bool) {
    // Exclusions are the exceptions to the global switch.
    let exception = simulate != s.simulation;
    s.exclusions.retain(|e| e != name);
    if exception {
        s.exclusions.push(name.to_owned());
    }
}

pub(crate) fn run(action: Action, args: Args) -> anyhow::Result<ExitCode> {
    let path = path(&args)?;
    let mut sim = if path.is_file() {
        super::content::simulation(&path)?
    } else {
        Simulation::default()
    };
    let (scenarios, global, on) = match action {
        Action::Status => {
            if args.output == Output::Json {
                super::output::json(&serde_json::json!({
                    "simulation": sim.simulation, "exclusions": sim.exclusions}))?;
            } else if sim.simulation {
                println!("global simulation: enabled");
                if !sim.exclusions.is_empty() {
                    println!("Scenarios not in simulation mode:");
                    for e in &sim.exclusions {
                        println!("  - {e}");
                    }
                }
            } else {
                println!("global simulation: disabled");
                if sim.exclusions.is_empty() {
                    println!("No scenario in simulation mode.");
                } else {
                    println!("Scenarios in simulation mode:");
                    for e in &sim.exclusions {
                        println!("  - {e}");
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Enable { scenarios, global } => (scenarios, global, true),
        Action::Disable { scenarios, global } => (scenarios, global, false),
    };
    match (global, scenarios.is_empty()) {
        (true, true) => {
            sim.simulation = on;
            sim.exclusions.clear();
        }
        (false, false) => {
            for s in &scenarios {
                set(&mut sim, s, on);
            }
        }
        (true, false) => bail!("give scenario names or --global, not both"),
        (false, true) => bail!("give scenario names, or --global for all of them"),
    }
    save(&path, &sim)?;
    eprintln!(
        "{} updated; reload to apply: `systemctl reload rampart` or `kill -HUP <pid of rampart run>`",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_are_exceptions_to_the_global_switch() {
        let mut s = Simulation::default();
        set(&mut s, "a/b", true);
        assert_eq!(s.exclusions, ["a/b"]);
        set(&mut s, "a/b", false);
        assert!(s.exclusions.is_empty());
        s.simulation = true;
        set(&mut s, "c/d", false);
        assert_eq!(s.exclusions, ["c/d"]);
        set(&mut s, "c/d", true);
        assert!(s.exclusions.is_empty());
    }
}
