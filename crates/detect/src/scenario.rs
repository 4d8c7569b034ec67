//! Loading and compiling scenarios.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use expr::{Env, FieldType, Program};
use parse::{Ctx, EVENT_TYPE};
use sha2::{Digest, Sha256};

use crate::config::ScenarioConfig;
use crate::error::DetectError;

/// The five bucket types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketType {
    /// Token bucket: overflows when more than `capacity` events arrive faster than the leak.
    Leaky,
    /// Overflows on the first event.
    Trigger,
    /// Collects for `duration`, then overflows with everything collected.
    Counter,
    /// Overflows when `condition` becomes true.
    Conditional,
    /// Overflows when the posterior probability passes the threshold.
    Bayesian,
}

/// One `bayesian_conditions` entry, compiled.
#[derive(Debug)]
pub(crate) struct BayesCond {
    pub(crate) program: Program,
    pub(crate) p_evil: f64,
    pub(crate) p_benign: f64,
    pub(crate) guillotine: bool,
}

/// Decision scope of a scenario.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) kind: String,
    pub(crate) expr: Option<Program>,
}

/// A compiled scenario.
#[derive(Debug)]
pub struct Scenario {
    /// Name (`crowdsecurity/ssh-bf`).
    pub name: String,
    /// Bucket type.
    pub kind: BucketType,
    /// File it came from.
    pub path: PathBuf,
    /// Capacity (-1: unbounded).
    pub capacity: i64,
    /// Nanoseconds per leaked token (0 when none).
    pub leak_ns: i64,
    /// Counter duration in nanoseconds.
    pub duration_ns: i64,
    /// Blackhole in nanoseconds.
    pub blackhole_ns: Option<i64>,
    /// Re-inject overflows.
    pub reprocess: bool,
    /// Labels as written.
    pub labels: BTreeMap<String, serde_json::Value>,
    /// `labels.remediation` is true.
    pub remediation: bool,
    /// sha256 of the file.
    pub hash: String,
    /// Installed version.
    pub version: String,
    /// In simulation mode.
    pub simulated: bool,
    /// Idle time after which an instance dies (underflow) or, for counters, overflows.
    pub lifetime_ns: i64,
    /// Events kept in the instance queue (the queue holds one more); `None`: all.
    pub(crate) queue_size: Option<usize>,
    pub(crate) filter: Program,
    pub(crate) groupby: Option<Program>,
    pub(crate) distinct: Option<Program>,
    pub(crate) cancel_on: Option<Program>,
    pub(crate) overflow_filter: Option<Program>,
    pub(crate) condition: Option<Program>,
    pub(crate) bayes: Vec<BayesCond>,
    pub(crate) bayes_prior: f64,
    pub(crate) bayes_threshold: f64,
    pub(crate) scope: Scope,
}

/// A scenario file to load, with its installed hub version if known.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    /// Path of the YAML file.
    pub path: PathBuf,
    /// Installed hub version (`scenario_version` of alerts).
    pub version: Option<String>,
}

impl ScenarioFile {
    /// A file with no hub version.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ScenarioFile {
            path: path.into(),
            version: None,
        }
    }
}

/// All loaded scenarios, in load order.
#[derive(Debug, Default)]
pub struct Scenarios {
    pub(crate) list: Vec<Scenario>,
}

fn duration(
    s: &Option<String>,
    key: &str,
    invalid: &dyn Fn(String) -> DetectError,
) -> Result<Option<i64>, DetectError> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => match expr::time::parse_duration(v) {
            Some(ns) if ns > 0 => Ok(Some(ns)),
            _ => Err(invalid(format!(
                "{key}: {v:?} is not a positive duration (e.g. 10s, 1m30s)"
            ))),
        },
    }
}

impl Scenarios {
    /// Loads scenario files (every document of each). All files are tried; every problem is
    /// reported, and nothing is returned unless all load.
    pub fn load(ctx: &Ctx, files: &[ScenarioFile]) -> Result<Scenarios, Vec<DetectError>> {
        let mut list = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            let at = f.path.display().to_string();
            let bytes = match std::fs::read(&f.path) {
                Ok(b) => b,
                Err(e) => {
                    errors.push(DetectError::Io {
                        path: at,
                        source: e,
                    });
                    continue;
                }
            };
            let hash = hex::encode(Sha256::digest(&bytes));
            let text = String::from_utf8_lossy(&bytes);
            let docs: Vec<Option<ScenarioConfig>> = match serde_saphyr::from_multiple(&text) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(DetectError::Yaml {
                        path: at,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            for cfg in docs.into_iter().flatten() {
                match Scenario::compile(&cfg, ctx, &f.path) {
                    Ok(mut s) => {
                        s.hash = hash.clone();
                        s.version = f.version.clone().unwrap_or_default();
                        list.push(s);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(Scenarios { list })
        } else {
            Err(errors)
        }
    }

    /// Scenarios in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Scenario> {
        self.list.iter()
    }

    /// Number of scenarios.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none are loaded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Puts the named scenarios in simulation mode (alerts flagged `simulated`, no decisions).
    /// `"*"`-style global simulation is `all`.
    pub fn set_simulation(&mut self, all: bool, names: &[String]) {
        for s in &mut self.list {
            s.simulated = all != names.contains(&s.name);
        }
    }
}

impl Scenario {
    /// Validates and compiles one scenario document, with CrowdSec's rules.
    pub fn compile(cfg: &ScenarioConfig, ctx: &Ctx, path: &Path) -> Result<Scenario, DetectError> {
        let at = path.display().to_string();
        let name = cfg.name.clone();
        let invalid = |message: String| DetectError::Invalid {
            path: at.clone(),
            name: name.clone(),
            message,
        };
        if cfg.name.is_empty() {
            return Err(invalid("`name` is required".into()));
        }
        if cfg.description.is_empty() {
            return Err(invalid("`description` is required".into()));
        }
        if cfg.filter.trim().is_empty() {
            return Err(invalid("`filter` is required".into()));
        }
        let kind = match cfg.kind.as_str() {
            "leaky" => BucketType::Leaky,
            "trigger" => BucketType::Trigger,
            "counter" => BucketType::Counter,
            "conditional" => BucketType::Conditional,
            "bayesian" => BucketType::Bayesian,
            other => {
                return Err(invalid(format!(
                    "type {other:?} is not one of leaky, trigger, counter, conditional, bayesian"
                )));
            }
        };
        let leak_ns = duration(&cfg.leakspeed, "leakspeed", &invalid)?;
        let duration_ns = duration(&cfg.duration, "duration", &invalid)?;
        let blackhole_ns = duration(&cfg.blackhole, "blackhole", &invalid)?;
        let capacity = cfg.capacity.unwrap_or(0);
        match kind {
            BucketType::Leaky => {
                if capacity <= 0 {
                    return Err(invalid("leaky buckets need a capacity above 0".into()));
                }
                if leak_ns.is_none() {
                    return Err(invalid("leaky buckets need a leakspeed".into()));
                }
            }
            BucketType::Trigger => {
                if capacity != 0 {
                    return Err(invalid("trigger buckets must have capacity 0".into()));
                }
            }
            BucketType::Counter => {
                if duration_ns.is_none() {
                    return Err(invalid("counter buckets need a duration".into()));
                }
                if capacity != -1 {
                    return Err(invalid("counter buckets must have capacity -1".into()));
                }
            }
            BucketType::Conditional => {
                if cfg.condition.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    return Err(invalid("conditional buckets need a condition".into()));
                }
                if leak_ns.is_none() {
                    return Err(invalid("conditional buckets need a leakspeed".into()));
                }
            }
            BucketType::Bayesian => {
                if cfg.bayesian_conditions.as_ref().is_none_or(Vec::is_empty) {
                    return Err(invalid("bayesian buckets need bayesian_conditions".into()));
                }
                let in_unit = |p: Option<f64>| p.is_some_and(|p| p > 0.0 && p <= 1.0);
                if !in_unit(cfg.bayesian_prior) || !in_unit(cfg.bayesian_threshold) {
                    return Err(invalid(
                        "bayesian_prior and bayesian_threshold must be in (0, 1]".into(),
                    ));
                }
                if leak_ns.is_none() {
                    return Err(invalid("bayesian buckets need a leakspeed".into()));
                }
                if capacity != -1 && capacity != 0 {
                    return Err(invalid("bayesian buckets must have capacity -1".into()));
                }
            }
        }
        ctx.load_data_entries(&cfg.data, &at)
            .map_err(|e| invalid(e.to_string()))?;

        let funcs = ctx.functions().clone();
        let evt_env = Env::new(funcs.clone()).var("evt", FieldType::Obj(&EVENT_TYPE));
        let cond_env = Env::new(funcs.clone())
            .var("evt", FieldType::Obj(&EVENT_TYPE))
            .var("queue", FieldType::Any)
            .var("leaky", FieldType::Any);
        let ovf_env = Env::new(funcs)
            .var("queue", FieldType::Any)
            .var("signal", FieldType::Any)
            .var("leaky", FieldType::Any);
        let comp = |env: &Env, field: &'static str, src: &str| {
            env.compile(src).map_err(|e| DetectError::Expr {
                path: at.clone(),
                name: name.clone(),
                field,
                source: Box::new(e),
            })
        };
        let opt = |env: &Env, field: &'static str, src: &Option<String>| {
            src.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| comp(env, field, s))
                .transpose()
        };

        let scope = match &cfg.scope {
            None => Scope {
                kind: "Ip".into(),
                expr: None,
            },
            Some(sc) => {
                let kind = if sc.kind.is_empty() {
                    "Ip".to_owned()
                } else {
                    sc.kind.clone()
                };
                let expr = opt(&evt_env, "scope.expression", &sc.expression)?;
                if kind == "Ip" && expr.is_some() {
                    return Err(invalid("scope Ip takes no expression".into()));
                }
                if kind != "Ip" && kind != "Range" && expr.is_none() {
                    return Err(invalid(format!("scope {kind} needs an expression")));
                }
                Scope { kind, expr }
            }
        };
        let mut bayes = Vec::new();
        for c in cfg.bayesian_conditions.iter().flatten() {
            bayes.push(BayesCond {
                program: comp(&cond_env, "bayesian_conditions.condition", &c.condition)?,
                p_evil: c.prob_given_evil,
                p_benign: c.prob_given_benign,
                guillotine: c.guillotine,
            });
        }
        let labels = cfg.labels.clone().unwrap_or_default();
        let remediation = match labels.get("remediation") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        let leak = leak_ns.unwrap_or(0);
        let lifetime_ns = match kind {
            BucketType::Leaky => (capacity + 1).saturating_mul(leak),
            BucketType::Counter => duration_ns.unwrap_or(0),
            BucketType::Conditional | BucketType::Bayesian => leak,
            BucketType::Trigger => 0,
        };
        // CrowdSec keeps `capacity` events, or `cache_size` when it is smaller or the bucket is
        // unbounded; the queue holds one more than that.
        let cache = cfg.cache_size.filter(|&c| c > 0);
        let size = match cache {
            Some(c) if c <= capacity || capacity == -1 => c,
            _ => capacity,
        };
        let queue_size = usize::try_from(size).ok();

        Ok(Scenario {
            name: cfg.name.clone(),
            kind,
            path: path.to_path_buf(),
            capacity,
            leak_ns: leak,
            duration_ns: duration_ns.unwrap_or(0),
            blackhole_ns,
            reprocess: cfg.reprocess,
            labels,
            remediation,
            hash: String::new(),
            version: String::new(),
            simulated: false,
            lifetime_ns,
            queue_size,
            filter: comp(&evt_env, "filter", &cfg.filter)?,
            groupby: opt(&evt_env, "groupby", &cfg.groupby)?,
            distinct: opt(&evt_env, "distinct", &cfg.distinct)?,
            cancel_on: opt(&evt_env, "cancel_on", &cfg.cancel_on)?,
            overflow_filter: opt(&ovf_env, "overflow_filter", &cfg.overflow_filter)?,
            condition: opt(&cond_env, "condition", &cfg.condition)?,
            bayes,
            bayes_prior: cfg.bayesian_prior.unwrap_or(0.0),
            bayes_threshold: cfg.bayesian_threshold.unwrap_or(0.0),
            scope,
        })
    }
}
