//! Loading a content directory laid out like an installed CrowdSec config or a hub checkout:
//! `parsers/`, `scenarios/`, `postoverflows/`, `patterns/`, `data/`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use detect::{ScenarioFile, Scenarios};
use parse::{Ctx, ParserFile, Parsers};

/// Default content directory: `RAMPART_HUB`, else the repository's own `hub/`.
pub(crate) fn default_hub() -> PathBuf {
    std::env::var_os("RAMPART_HUB")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hub"))
}

/// Every `.yaml`/`.yml` below `dir` (absent directory: none), sorted.
pub(crate) fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut out).with_context(|| format!("cannot read {}", dir.display()))?;
    }
    out.sort();
    Ok(out)
}

fn join<E: ToString>(errs: Vec<E>) -> anyhow::Error {
    anyhow::anyhow!(
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// A parsing context over the content's patterns and data.
pub(crate) fn ctx(hub: &Path) -> anyhow::Result<Ctx> {
    ctx_with(hub, None)
}

/// A parsing context; data files come from `hub/data`, else from `data` (CrowdSec keeps them in
/// `config_paths.data_dir`, away from the config directory).
pub(crate) fn ctx_with(hub: &Path, data: Option<&Path>) -> anyhow::Result<Ctx> {
    let own = hub.join("data");
    let data = if own.is_dir() {
        Some(own.as_path())
    } else {
        data
    };
    Ok(Ctx::new(Some(&hub.join("patterns")), data)?)
}

/// Parsers of a stage tree (`parsers/` or `postoverflows/`).
pub(crate) fn parsers(hub: &Path, folder: &str) -> anyhow::Result<Parsers> {
    parsers_in(hub, folder, ctx(hub)?)
}

/// Parsers of a stage tree, with a given context.
pub(crate) fn parsers_in(hub: &Path, folder: &str, ctx: Ctx) -> anyhow::Result<Parsers> {
    let files: Vec<ParserFile> = yaml_files(&hub.join(folder))?
        .iter()
        .filter_map(|p| ParserFile::from_hub_path(p))
        .collect();
    Parsers::load(ctx, &files).map_err(join)
}

/// Every scenario of `scenarios/`, compiled against the parsers' context.
pub(crate) fn scenarios(hub: &Path, ctx: &Ctx) -> anyhow::Result<Scenarios> {
    let files: Vec<ScenarioFile> = yaml_files(&hub.join("scenarios"))?
        .into_iter()
        .map(ScenarioFile::new)
        .collect();
    Scenarios::load(ctx, &files).map_err(join)
}

/// CrowdSec's `simulation.yaml`.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Simulation {
    /// Global switch.
    #[serde(default)]
    pub(crate) simulation: bool,
    /// Scenarios that are the exception to the global switch.
    #[serde(default)]
    pub(crate) exclusions: Vec<String>,
}

/// Reads a `simulation.yaml`.
pub(crate) fn simulation(path: &Path) -> anyhow::Result<Simulation> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(Simulation::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
