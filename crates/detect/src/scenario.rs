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
    /// Whether queued events must stay whole: conditions, overflow filters and scope
    /// expressions read any field of them; otherwise the alert only needs meta, enrichment and
    /// time, and a slim copy keeps bucket memory small.
    pub(crate) full_events: bool,
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
    pub(crate) index: crate::index::FilterIndex,
    errors: std::sync::atomic::AtomicU64,
    logged: std::sync::Mutex<std::collections::HashSet<(u32, &'static str)>>,
}

/// An event accepted by a scenario's filter: which scenario, which instance, at what time.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Scenario index (load order).
    pub scenario: u32,
    /// `groupby` value.
    pub group: Box<str>,
    /// Bucket time: the event's own in time-machine mode, the wall clock in live mode.
    pub time: chrono::DateTime<chrono::FixedOffset>,
    /// The scenario's `distinct` value for this event: `None` without `distinct`, `Some(None)`
    /// when it could not be computed (the event is then dropped, as CrowdSec does).
    pub distinct: Option<Option<String>>,
    /// The scenario's `cancel_on` held for this event.
    pub cancel: bool,
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
            let index = crate::index::FilterIndex::build(&list);
            Ok(Scenarios {
                list,
                index,
                ..Scenarios::default()
            })
        } else {
            Err(errors)
        }
    }

    /// Scenarios in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Scenario> {
        self.list.iter()
    }

    /// How many scenarios the filter index can skip for unrelated events, and how many every
    /// event must be offered to.
    pub fn index_coverage(&self) -> (usize, usize) {
        self.index.coverage()
    }

    /// Expression errors at run time so far (filters, groupby, and those reported by detectors).
    pub fn runtime_errors(&self) -> u64 {
        self.errors.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a run-time expression error; logs the first one of each scenario and field.
    pub(crate) fn runtime_error(&self, si: u32, field: &'static str, msg: &str) {
        self.errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = self
            .logged
            .lock()
            .map(|mut l| l.insert((si, field)))
            .unwrap_or(false);
        if first {
            let name = self.list.get(si as usize).map_or("?", |s| s.name.as_str());
            tracing::warn!(
                scenario = name,
                field,
                error = msg,
                "scenario expression failed"
            );
        }
    }

    /// The scenarios `evt` goes into: candidates from the filter index, then each filter and
    /// groupby run. Read-only, so any thread may route while shards hold the instances.
    pub fn route(
        &self,
        evt: &parse::Event,
        now: chrono::DateTime<chrono::FixedOffset>,
        candidates: &mut Vec<u32>,
        out: &mut Vec<Routed>,
    ) {
        use expr::Value;
        out.clear();
        if evt.whitelisted {
            return;
        }
        let time = match evt.expect_mode {
            parse::ExpectMode::TimeMachine => {
                chrono::DateTime::parse_from_rfc3339(&evt.marshaled_time).ok()
            }
            parse::ExpectMode::Live => Some(now),
        };
        self.index.candidates(evt, candidates);
        let vars = [Value::Obj(evt)];
        for &si in candidates.iter() {
            let Some(sc) = self.list.get(si as usize) else {
                continue;
            };
            match sc.filter.run(&vars) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => continue,
                Ok(v) => {
                    let msg = format!("filter returned {} instead of a bool", v.type_name());
                    self.runtime_error(si, "filter", &msg);
                    continue;
                }
                Err(e) => {
                    self.runtime_error(si, "filter", &e.message);
                    continue;
                }
            }
            let group: Box<str> = match &sc.groupby {
                None => "".into(),
                Some(g) => match g.run(&vars) {
                    Ok(v) if v.as_str().is_some() => v.as_str().unwrap_or_default().into(),
                    Ok(v) => {
                        let msg = format!("groupby returned {} instead of a string", v.type_name());
                        self.runtime_error(si, "groupby", &msg);
                        continue;
                    }
                    Err(e) => {
                        self.runtime_error(si, "groupby", &e.message);
                        continue;
                    }
                },
            };
            // CrowdSec cannot pour a time-machine event without a timestamp into a bucket, but
            // a trigger fires anyway, at the wall-clock time.
            let time = match (time, sc.kind) {
                (None, BucketType::Trigger) => Some(now),
                (t, _) => t,
            };
            let Some(time) = time else {
                self.runtime_error(
                    si,
                    "MarshaledTime",
                    "time-machine event without a parsable evt.MarshaledTime",
                );
                continue;
            };
            // distinct and cancel_on only read the event: computed here, on the routing thread,
            // so the bucket can keep a slim copy of the event.
            let distinct = sc.distinct.as_ref().map(|d| match d.run(&vars) {
                Ok(v) => Some(v.to_display_string()),
                Err(e) => {
                    self.runtime_error(si, "distinct", &e.message);
                    None
                }
            });
            let cancel = match sc.cancel_on.as_ref().map(|c| c.run_bool(&vars)) {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    self.runtime_error(si, "cancel_on", &e.message);
                    false
                }
                None => false,
            };
            out.push(Routed {
                scenario: si,
                group,
                time,
                distinct,
                cancel,
            });
        }
    }

    /// Whether instances of scenario `si` keep whole events (see `Scenario::full_events`).
    pub(crate) fn full_events(&self, si: u32) -> bool {
        self.list.get(si as usize).is_none_or(|s| s.full_events)
    }

    /// Scenario names, in load order (what an agent declares to its LAPI at login).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.list.iter().map(|s| s.name.clone()).collect();
        v.dedup();
        v
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
            full_events: cfg.condition.is_some()
                || cfg.overflow_filter.is_some()
                || cfg.bayesian_conditions.is_some()
                || cfg.scope.as_ref().is_some_and(|s| s.expression.is_some()),
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
