//! `rampart hub list|update|upgrade|types` and the item nouns — `collections`, `parsers`,
//! `scenarios`, `postoverflows`, `contexts` with `list|install|remove|upgrade|inspect` — as
//! cscli has them (`cmd/crowdsec-cli/clihub`, `cliitem`).
//!
//! Paths follow CrowdSec's `config_paths`: items are installed as links in the config directory
//! (`parsers/s01-parse/sshd-logs.yaml`) to files downloaded into the hub directory, data files
//! go to the data directory and grok patterns to `<config_dir>/patterns`, so the config
//! directory is what `rampart run|replay --hub` loads. Without `-c`, Rampart's layout is used:
//! `/etc/rampart` with `hub/`, `data/` and `patterns/` inside it.

mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ::hub::{HubSource, InstallOptions, ItemType, Layout, LocalHub, Plan, Progress, Sources};
use anyhow::Context as _;
use serde::Deserialize;

use super::Output;

/// Where the hub lives and how to print; shared by `hub` and the item nouns.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HubArgs {
    /// CrowdSec (or Rampart) config.yaml: `config_paths` (config_dir, hub_dir, index_path,
    /// data_dir, pattern_dir) and `cscli.hub_branch` / `__hub_url_template__` are used.
    #[arg(short = 'c', long, global = true)]
    config: Option<PathBuf>,
    /// Where items are installed (the content directory `run`/`replay --hub` read)
    /// [default: config's config_dir, else /etc/rampart].
    #[arg(long, global = true, env = "RAMPART_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Local copy of the hub: index and downloaded items [default: CONFIG_DIR/hub].
    #[arg(long, global = true, env = "RAMPART_HUB_DIR")]
    hub_dir: Option<PathBuf>,
    /// Where items' data files go [default: CONFIG_DIR/data; a CrowdSec config's data_dir].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// The hub to fetch from: a directory laid out as the hub repository, or an http(s) base
    /// URL serving .index.json [default: CrowdSec's hub CDN, master branch].
    #[arg(long, global = true, env = "RAMPART_HUB_URL")]
    hub_url: Option<String>,
    /// Where data files are fetched from instead of their URLs: a directory or base URL
    /// holding them by URL path (`web/sqli_probe_patterns.txt`) [default: the hub
    /// directory's data/ when --hub-url is a directory].
    #[arg(long, global = true)]
    data_url: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value = "human")]
    output: Output,
    /// Colours in tables: only on a terminal by default.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    color: Color,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Color {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Yes,
    /// Never.
    No,
}

/// `rampart hub ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct HubCmd {
    #[command(subcommand)]
    action: HubAction,
    #[command(flatten)]
    args: HubArgs,
}

#[derive(Debug, clap::Subcommand)]
enum HubAction {
    /// List installed items of every type (all items with -a).
    List {
        /// Also items that are not installed.
        #[arg(short, long)]
        all: bool,
    },
    /// Fetch the latest index (the catalogue of items) from the hub.
    Update {
        /// Keep the items' content in the index, so later installs need no download.
        #[arg(long)]
        with_content: bool,
    },
    /// Upgrade every installed item to its latest version (edited items are kept unless
    /// --force).
    Upgrade {
        /// Replace items edited locally too.
        #[arg(long)]
        force: bool,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the item types.
    Types,
}

/// `rampart collections|parsers|scenarios|postoverflows|contexts ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct ItemCmd {
    #[command(subcommand)]
    action: ItemAction,
    #[command(flatten)]
    args: HubArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ItemAction {
    /// List installed items (all with -a, or the ones named).
    List {
        /// Items to show (installed or not).
        names: Vec<String>,
        /// Also items that are not installed.
        #[arg(short, long)]
        all: bool,
    },
    /// Download and enable items, with the items, data files and patterns they need.
    Install {
        /// Item names (`crowdsecurity/sshd`).
        #[arg(required = true)]
        names: Vec<String>,
        /// Only download into the hub directory, do not enable.
        #[arg(short, long)]
        download_only: bool,
        /// Replace items edited locally or outdated, and fetch data files again.
        #[arg(long)]
        force: bool,
        /// Go on when a name is unknown.
        #[arg(long)]
        ignore: bool,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Disable items (and, for collections, what only they pulled in).
    #[command(alias = "delete")]
    Remove {
        /// Item names.
        names: Vec<String>,
        /// Every installed item of this type.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Delete the downloaded files from the hub directory too.
        #[arg(long)]
        purge: bool,
        /// Remove items edited locally, or that an installed collection needs.
        #[arg(long)]
        force: bool,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Upgrade installed items to their latest version.
    Upgrade {
        /// Item names.
        names: Vec<String>,
        /// Every installed item of this type.
        #[arg(short, long, conflicts_with = "names")]
        all: bool,
        /// Replace items edited locally too.
        #[arg(long)]
        force: bool,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show an item's details and state (with --diff: what was edited in a tainted item).
    Inspect {
        /// Item names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Show the local edits against the latest version.
        #[arg(long)]
        diff: bool,
        /// With --diff: latest version → local file instead of local → latest.
        #[arg(long, requires = "diff")]
        rev: bool,
    },
}

/// The subset of config.yaml the hub commands read.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config_paths: Option<ConfigPaths>,
    #[serde(default)]
    cscli: Option<CscliSection>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigPaths {
    config_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    hub_dir: Option<PathBuf>,
    index_path: Option<PathBuf>,
    pattern_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct CscliSection {
    hub_branch: Option<String>,
    #[serde(rename = "__hub_url_template__")]
    hub_url_template: Option<String>,
}

/// Everything a command needs: the directories, where to fetch from, how to print.
struct Ctx {
    layout: Layout,
    source: String,
    data_url: Option<String>,
    output: Output,
    color: bool,
}

impl Ctx {
    fn new(args: &HubArgs) -> anyhow::Result<Ctx> {
        let file = match &args.config {
            Some(p) => Some(read_config(p)?),
            None => None,
        };
        let paths = file.as_ref().and_then(|f| f.config_paths.as_ref());
        // A CrowdSec config names its config_dir; Rampart's own (from `rampart setup`) does
        // not, and uses hub_dir for the content directory itself.
        let crowdsec_style = paths.is_some_and(|p| p.config_dir.is_some());
        let config_dir = args
            .config_dir
            .clone()
            .or_else(|| paths.and_then(|p| p.config_dir.clone()))
            .or_else(|| {
                args.config
                    .as_deref()
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
            })
            .unwrap_or_else(|| PathBuf::from("/etc/rampart"));
        let from_config_hub = paths
            .and_then(|p| p.hub_dir.clone())
            .filter(|h| absolute(h) != absolute(&config_dir));
        let hub_dir = args
            .hub_dir
            .clone()
            .or(from_config_hub)
            .unwrap_or_else(|| config_dir.join("hub"));
        let mut layout = Layout::new(&config_dir, &hub_dir);
        if args.hub_dir.is_none()
            && let Some(ix) = paths.and_then(|p| p.index_path.as_deref())
        {
            layout = layout.with_index_path(ix);
        }
        if let Some(d) = args.data_dir.as_deref().or_else(|| {
            paths
                .filter(|_| crowdsec_style)
                .and_then(|p| p.data_dir.as_deref())
        }) {
            layout = layout.with_data_dir(d);
        }
        if let Some(p) = paths.and_then(|p| p.pattern_dir.as_deref()) {
            layout = layout.with_pattern_dir(p);
        }
        let source = args
            .hub_url
            .clone()
            .or_else(|| file.as_ref().and_then(url_from_template))
            .unwrap_or_else(|| ::hub::DEFAULT_HUB_URL.to_owned());
        let color = match args.color {
            Color::Yes => true,
            Color::No => false,
            Color::Auto => {
                use std::io::IsTerminal;
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Ok(Ctx {
            layout,
            source,
            data_url: args.data_url.clone(),
            output: args.output,
            color,
        })
    }

    fn hub(&self) -> anyhow::Result<LocalHub> {
        Ok(LocalHub::load(self.layout.clone())?)
    }

    fn source(&self) -> anyhow::Result<HubSource> {
        HubSource::parse(&self.source).context("the hub (--hub-url)")
    }

    fn data_mirror(&self) -> anyhow::Result<Option<HubSource>> {
        self.data_url
            .as_deref()
            .map(HubSource::parse)
            .transpose()
            .context("the data mirror (--data-url)")
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Reads config.yaml (its `.local` copy when there is one, as `rampart run` does), expanding
/// `${VAR}` as CrowdSec does: unknown variables are left as written.
fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let local = PathBuf::from(format!("{}.local", path.display()));
    let path = if local.is_file() {
        local.as_path()
    } else {
        path
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (-c)", path.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => out.push_str(&rest[i..i + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if out.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_saphyr::from_str(&out).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// cscli's `__hub_url_template__` (`https://host/crowdsecurity/%s/%s`: branch, then path) as
/// a base URL.
fn url_from_template(file: &ConfigFile) -> Option<String> {
    let c = file.cscli.as_ref()?;
    let t = c.hub_url_template.as_deref()?;
    let base = t.strip_suffix("/%s")?;
    let branch = c.hub_branch.as_deref().unwrap_or("master");
    Some(base.replacen("%s", branch, 1))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `rampart hub ...`.
pub(crate) fn run_hub(cmd: HubCmd) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(&cmd.args)?;
    match cmd.action {
        HubAction::List { all } => {
            let hub = ctx.hub()?;
            render::warnings(&hub.warnings);
            render::list(&ctx, &hub, &ItemType::ALL, &[], all, true)?;
        }
        HubAction::Update { with_content } => {
            let source = ctx.source()?;
            let report =
                runtime()?.block_on(::hub::update_index(&ctx.layout, &source, with_content))?;
            render::warnings(&report.warnings);
            render::updated(&ctx, &source, &report)?;
            if let Ok(hub) = LocalHub::load(ctx.layout.clone()) {
                let outdated: usize = ItemType::ALL
                    .iter()
                    .map(|t| {
                        hub.installed(*t)
                            .iter()
                            .filter(|i| !i.state.local && !i.file_is_latest())
                            .count()
                    })
                    .sum();
                if outdated > 0 && ctx.output == Output::Human {
                    println!("{outdated} installed item(s) can be upgraded: `rampart hub upgrade`");
                }
            }
        }
        HubAction::Upgrade { force, dry_run } => {
            let hub = ctx.hub()?;
            let plan = hub.plan_upgrade_all(force)?;
            execute(&ctx, &hub, &plan, dry_run)?;
        }
        HubAction::Types => render::types(ctx.output)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `rampart <type> ...`.
pub(crate) fn run_items(kind: ItemType, cmd: ItemCmd) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(&cmd.args)?;
    let hub = ctx.hub()?;
    match cmd.action {
        ItemAction::List { names, all } => {
            for n in &names {
                hub.find(kind, n)?;
            }
            render::list(&ctx, &hub, &[kind], &names, all, false)?;
        }
        ItemAction::Install {
            names,
            download_only,
            force,
            ignore,
            dry_run,
        } => {
            let opts = InstallOptions {
                force,
                download_only,
                ignore_missing: ignore,
            };
            let plan = hub.plan_install(kind, &names, opts)?;
            execute(&ctx, &hub, &plan, dry_run)?;
        }
        ItemAction::Remove {
            names,
            all,
            purge,
            force,
            dry_run,
        } => {
            let plan = hub.plan_remove(kind, &names, all, purge, force)?;
            execute(&ctx, &hub, &plan, dry_run)?;
        }
        ItemAction::Upgrade {
            names,
            all,
            force,
            dry_run,
        } => {
            let plan = hub.plan_upgrade(kind, &names, all, force)?;
            execute(&ctx, &hub, &plan, dry_run)?;
        }
        ItemAction::Inspect { names, diff, rev } => {
            let items = names
                .iter()
                .map(|n| hub.find(kind, n))
                .collect::<Result<Vec<_>, _>>()?;
            if diff {
                let source = ctx.source()?;
                let mirror = ctx.data_mirror()?;
                let sources = Sources {
                    hub: &source,
                    data_mirror: mirror.as_ref(),
                };
                let rt = runtime()?;
                for item in items {
                    let text = rt.block_on(render::why_tainted(&hub, item, sources, rev))?;
                    println!("{text}");
                }
            } else {
                for item in items {
                    render::inspect(&ctx, &hub, item)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints or carries out a plan.
fn execute(ctx: &Ctx, hub: &LocalHub, plan: &Plan, dry_run: bool) -> anyhow::Result<()> {
    render::notes(plan);
    if dry_run {
        return render::plan(ctx, plan);
    }
    if plan.steps.is_empty() {
        return render::report(ctx, &::hub::Report::default(), false);
    }
    let source = ctx.source()?;
    let mirror = ctx.data_mirror()?;
    let sources = Sources {
        hub: &source,
        data_mirror: mirror.as_ref(),
    };
    let progress = Bar::default();
    let report = runtime()?.block_on(::hub::apply(hub, plan, sources, &progress))?;
    render::warnings(&report.warnings);
    let changed = report
        .done
        .iter()
        .any(|d| matches!(d.action, "enable" | "disable" | "download"));
    render::report(ctx, &report, changed)
}

/// Progress on stderr; indicatif draws nothing when stderr is not a terminal.
#[derive(Default)]
struct Bar {
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:20} [{bar:30}] {pos}/{len} {prefix}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, what: &str) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.set_prefix(what.to_owned());
            b.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}
