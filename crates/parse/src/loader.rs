//! The parsing context shared by all nodes (grok library, expression environment, helpers,
//! enrichers) and the loading of parser files into stages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use expr::crowdsec::{DataKind, HelperContext};
use expr::{Env, FieldType, Functions, Program};

use crate::config::NodeConfig;
use crate::enrich::Enrichers;
use crate::error::ParseError;
use crate::event::{EVENT_TYPE, Event};
use crate::node::Node;

/// Everything nodes share: compiled once at load, read-only while parsing.
pub struct Ctx {
    patterns: grok::PatternSet,
    env: Env,
    helpers: Arc<HelperContext>,
    enrichers: Enrichers,
    data_dir: Option<PathBuf>,
    runtime_errors: AtomicU64,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A context with the grok patterns of `patterns_dir` (CrowdSec's `config/patterns`) on top of
    /// the built-in base set, data files looked up in `data_dir`.
    pub fn new(patterns_dir: Option<&Path>, data_dir: Option<&Path>) -> Result<Ctx, ParseError> {
        let mut patterns = grok::PatternSet::new();
        if let Some(dir) = patterns_dir {
            patterns.load_dir(dir).map_err(|e| ParseError::Grok {
                at: dir.display().to_string(),
                source: e,
            })?;
        }
        let helpers = Arc::new(HelperContext::new());
        let mut funcs = Functions::new();
        expr::crowdsec::register(&mut funcs, helpers.clone());
        let env = Env::new(funcs).var("evt", FieldType::Obj(&EVENT_TYPE));
        Ok(Ctx {
            patterns,
            env,
            helpers,
            enrichers: Enrichers::new(data_dir),
            data_dir: data_dir.map(Path::to_path_buf),
            runtime_errors: AtomicU64::new(0),
        })
    }

    /// The expression environment (`evt`), for callers compiling their own expressions.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Functions available to expressions, for callers building other environments.
    pub fn functions(&self) -> &Functions {
        self.env.functions()
    }

    /// Number of expression run-time errors so far (logged once each, counted always).
    pub fn runtime_errors(&self) -> u64 {
        self.runtime_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn add_pattern(&mut self, name: &str, def: &str) -> Result<(), grok::GrokError> {
        // CrowdSec keeps the first definition of a name: a node's pattern_syntax cannot replace a
        // pattern that another file already defined.
        if self.patterns.contains(name) {
            return Ok(());
        }
        self.patterns.add(name, def)
    }

    pub(crate) fn compile_grok(&self, pattern: &str) -> Result<grok::Grok, grok::GrokError> {
        self.patterns.compile(pattern)
    }

    pub(crate) fn grok_match(&self, g: &grok::Grok, input: &str) -> Option<Vec<(String, String)>> {
        thread_local! {
            // Capture caches per thread and per pattern: a cache handed from one pattern to
            // another is rebuilt, which costs more than the match itself.
            static CAPS: std::cell::RefCell<std::collections::HashMap<u64, grok::Captures>> =
                std::cell::RefCell::new(std::collections::HashMap::new());
        }
        CAPS.with(|caps| {
            let mut caps = caps.borrow_mut();
            let caps = caps.entry(g.id()).or_default();
            let fields = g.match_fields(input, caps)?;
            Some(fields.map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        })
    }

    pub(crate) fn compile_expr(&self, src: &str, at: &str) -> Result<Program, ParseError> {
        self.env.compile(src).map_err(|e| ParseError::Expr {
            at: at.to_owned(),
            source: e,
        })
    }

    pub(crate) fn create_stash(&self, name: &str, size: usize, ttl_ns: i64) {
        let ttl = u64::try_from(ttl_ns)
            .ok()
            .filter(|&n| n > 0)
            .map(std::time::Duration::from_nanos);
        self.helpers.create_stash(name, size, ttl);
    }

    pub(crate) fn stash_set(&self, name: &str, key: &str, value: &str) {
        self.helpers.stash_set(name, key, value, None);
    }

    pub(crate) fn has_method(&self, m: &str) -> bool {
        self.enrichers.has(m)
    }

    pub(crate) fn enrich(&self, method: &str, value: &str, evt: &mut Event) {
        self.enrichers.run(method, value, evt);
    }

    pub(crate) fn runtime_error(&self, src: &str, msg: &str) {
        let n = self.runtime_errors.fetch_add(1, Ordering::Relaxed);
        if n < 20 {
            tracing::debug!(
                expression = src,
                error = msg,
                "expression failed at run time"
            );
        }
    }

    /// Loads the `data:` files a node refers to from the data directory.
    fn load_data(&self, cfg: &NodeConfig, at: &str) -> Result<(), ParseError> {
        self.load_data_entries(&cfg.data, at)
    }

    /// Loads the `data:` entries of an item (parser or scenario) so that `File()` and friends
    /// see them; must happen before expressions using them are compiled.
    pub fn load_data_entries(
        &self,
        entries: &[crate::config::DataConfig],
        at: &str,
    ) -> Result<(), ParseError> {
        for d in entries {
            let Some(dir) = &self.data_dir else {
                return Err(ParseError::Invalid {
                    at: at.to_owned(),
                    message: format!(
                        "data file {} is needed but no data directory is configured",
                        d.dest_file
                    ),
                });
            };
            let kind = match d.kind.as_deref() {
                Some("regexp" | "regex") => DataKind::Regexp,
                Some("map") => DataKind::Map,
                Some("string") => DataKind::String,
                // As CrowdSec: an entry without a type (the GeoIP databases) is only downloaded
                // by the hub, not loaded for expressions; its enricher opens it itself.
                None | Some("") => continue,
                Some(other) => {
                    return Err(ParseError::Invalid {
                        at: format!("{at}: data {}", d.dest_file),
                        message: format!(
                            "unknown data type {other:?} (expected string, regexp or map)"
                        ),
                    });
                }
            };
            let path = find_data_file(dir, &d.dest_file, d.source_url.as_deref());
            if !path.exists() {
                // As CrowdSec: a data file that was never downloaded is reported, and the item
                // loads with it empty (`File()` gives an empty list), so one missing list does
                // not stop the whole agent.
                tracing::warn!(
                    item = at,
                    file = %path.display(),
                    "data file not found: expressions using it see it empty (install it with the hub)"
                );
                continue;
            }
            self.helpers
                .load_data_file_as(&path, &d.dest_file, kind)
                .map_err(|e| ParseError::Invalid {
                    at: format!("{at}: data {}", d.dest_file),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}

/// Data files live in the data directory or, in a hub checkout, one folder below it
/// (`data/web/bad_user_agents.txt`).
fn find_data_file(dir: &Path, name: &str, source_url: Option<&str>) -> PathBuf {
    let direct = dir.join(name);
    if direct.is_file() {
        return direct;
    }
    // A hub checkout stores data under the name of its download URL, which is not always the
    // `dest_file` it is installed as (`path_traversal.txt` → `http_path_traversal.txt`).
    if let Some(url_name) = source_url
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != name)
    {
        let p = find_data_file(dir, url_name, None);
        if p.is_file() {
            return p;
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path().join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    direct
}

/// One parser file and the stage it is installed in.
#[derive(Debug, Clone)]
pub struct ParserFile {
    /// Stage (`s00-raw`...), from the install directory.
    pub stage: String,
    /// Path of the YAML file.
    pub path: PathBuf,
}

impl ParserFile {
    /// Derives the stage from a hub-style path (`parsers/s01-parse/crowdsecurity/x.yaml`).
    pub fn from_hub_path(path: &Path) -> Option<ParserFile> {
        let stage = path
            .ancestors()
            .filter_map(|a| a.file_name()?.to_str())
            .find(|n| {
                n.len() > 3 && n.starts_with('s') && n[1..3].bytes().all(|b| b.is_ascii_digit())
            })?;
        Some(ParserFile {
            stage: stage.to_owned(),
            path: path.to_path_buf(),
        })
    }
}

/// Compiled parser stages.
#[derive(Debug)]
pub struct Parsers {
    pub(crate) ctx: Ctx,
    pub(crate) stages: Vec<String>,
    /// (stage, node) in load order.
    pub(crate) nodes: Vec<(String, Node)>,
    /// Per stage (same order as `stages`): which nodes can accept an event.
    pub(crate) routes: Vec<crate::pipeline::StageRoute>,
}

impl Parsers {
    /// Loads parser files (sorted by path, as CrowdSec does). Every file is tried and every
    /// problem reported; nothing is returned unless all load.
    pub fn load(mut ctx: Ctx, files: &[ParserFile]) -> Result<Parsers, Vec<ParseError>> {
        let mut files = files.to_vec();
        files.sort_by(|a, b| (&a.stage, &a.path).cmp(&(&b.stage, &b.path)));
        let mut nodes = Vec::new();
        let mut errors = Vec::new();
        for f in &files {
            let at = f.path.display().to_string();
            let text = match std::fs::read_to_string(&f.path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(ParseError::Io {
                        path: at,
                        source: e,
                    });
                    continue;
                }
            };
            let docs: Vec<Option<NodeConfig>> = match serde_saphyr::from_multiple(&text) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(ParseError::Yaml {
                        path: at,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            for cfg in docs.into_iter().flatten() {
                // CrowdSec skips documents without name, description and author.
                if cfg.name.is_none() && cfg.description.is_none() && cfg.author.is_none() {
                    continue;
                }
                if let Err(e) = ctx.load_data(&cfg, &at) {
                    errors.push(e);
                    continue;
                }
                match Node::compile(&cfg, &mut ctx, &at, None) {
                    Ok(n) => nodes.push((f.stage.clone(), n)),
                    Err(e) => errors.push(e),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut stages: Vec<String> = nodes.iter().map(|(s, _)| s.clone()).collect();
        stages.sort();
        stages.dedup();
        let routes = stages
            .iter()
            .map(|st| crate::pipeline::StageRoute::build(st, &nodes))
            .collect();
        Ok(Parsers {
            ctx,
            stages,
            nodes,
            routes,
        })
    }

    /// The shared context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Stage names in order.
    pub fn stages(&self) -> &[String] {
        &self.stages
    }
}
