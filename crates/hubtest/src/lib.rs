//! CrowdSec hub test cases (`cscli hubtest` format): the parser half.
//!
//! A case folder holds `config.yaml`, a log file and `parser.assert` / `scenario.assert`. The log is
//! replayed in time-machine mode through the listed parsers; every line of `parser.assert` must be
//! true with `results` bound to stage → parser → outcomes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use detect::{Detector, Overflow, ScenarioFile, Scenarios};
use expr::{Env, FieldType, Map, Value};
use serde::{Deserialize, Serialize};

use hub::Hub;
use parse::Dump;
use parse::Node;
use parse::config::{NodeConfig, StaticConfig};
use parse::{Ctx, Event, ExpectMode, Line, ParserFile, Parsers};

/// `config.yaml` of a case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CaseConfig {
    /// Parser items (names or hub-relative paths).
    #[serde(deserialize_with = "null_as_empty")]
    pub parsers: Vec<String>,
    /// Scenario items.
    #[serde(deserialize_with = "null_as_empty")]
    pub scenarios: Vec<String>,
    /// Postoverflow items.
    #[serde(deserialize_with = "null_as_empty")]
    pub postoverflows: Vec<String>,
    /// Collections.
    #[serde(deserialize_with = "null_as_empty")]
    pub collections: Vec<String>,
    /// Log file name, relative to the case folder.
    pub log_file: String,
    /// Acquisition `type` label.
    pub log_type: String,
    /// Extra acquisition labels.
    pub labels: BTreeMap<String, String>,
    /// When true the parser half is not asserted.
    pub ignore_parsers: bool,
    /// Statics applied to every event before the first stage.
    pub override_statics: Vec<StaticConfig>,
}

/// Hub test configs write `scenarios:` with no value when a case has none.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Option<Vec<Option<String>>> = Deserialize::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect())
}

/// Outcome of one half of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    /// Every assertion held.
    Pass,
    /// Something failed.
    Fail,
    /// Not asserted for this case.
    Absent,
}

/// Result of one case, as `rampart hubtest run -o json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case folder name.
    pub name: String,
    /// Parser half.
    pub parser: Half,
    /// Scenario half.
    pub scenario: Half,
    /// What failed, one line each.
    pub failures: Vec<String>,
}

/// A parsing context over a hub's patterns and data files.
pub fn hub_ctx(hub: &Hub) -> Result<Ctx, String> {
    let data = hub.root().join("data");
    Ctx::new(Some(&hub.root().join("patterns")), Some(&data)).map_err(|e| e.to_string())
}

fn non_empty(items: &[String]) -> impl Iterator<Item = &String> {
    items.iter().filter(|s| !s.trim().is_empty())
}

/// Runs one case folder: the parser half unless `ignore_parsers`, the scenario half when the
/// case lists scenarios.
pub fn run_case(hub: &Hub, dir: &Path) -> CaseResult {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut result = CaseResult {
        name,
        parser: Half::Absent,
        scenario: Half::Absent,
        failures: Vec::new(),
    };
    let cfg: CaseConfig = match std::fs::read_to_string(dir.join("config.yaml"))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_saphyr::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            result.parser = Half::Fail;
            result.failures.push(format!("config.yaml: {e}"));
            return result;
        }
    };
    let want_parser = !cfg.ignore_parsers;
    let want_scenario =
        non_empty(&cfg.scenarios).next().is_some() || non_empty(&cfg.collections).next().is_some();
    if !want_parser && !want_scenario {
        return result;
    }
    let replayed = match replay(hub, dir, &cfg) {
        Ok(r) => r,
        Err(e) => {
            if want_parser {
                result.parser = Half::Fail;
            }
            if want_scenario {
                result.scenario = Half::Fail;
            }
            result.failures.push(e);
            return result;
        }
    };
    let mut record = |half: &mut Half, outcome: Result<Vec<String>, String>| match outcome {
        Ok(f) if f.is_empty() => *half = Half::Pass,
        Ok(f) => {
            *half = Half::Fail;
            result.failures.extend(f);
        }
        Err(e) => {
            *half = Half::Fail;
            result.failures.push(e);
        }
    };
    let mut parser = Half::Absent;
    let mut scenario = Half::Absent;
    if want_parser {
        record(&mut parser, parser_half(dir, &replayed));
    }
    if want_scenario {
        record(&mut scenario, scenario_half(hub, dir, &cfg, &replayed));
    }
    result.parser = parser;
    result.scenario = scenario;
    result
}

/// A replayed log: what the parsers recorded, and the events that left them.
struct Replayed {
    dump: Dump,
    parsers: Parsers,
    events: Vec<Event>,
}

/// Loads the case's parsers and replays its log in time-machine mode.
fn replay(hub: &Hub, dir: &Path, cfg: &CaseConfig) -> Result<Replayed, String> {
    let mut names: BTreeSet<String> = non_empty(&cfg.parsers).cloned().collect();
    let mut seen = BTreeSet::new();
    for c in non_empty(&cfg.collections) {
        hub.collection_items(c, "parsers", &mut names, &mut seen);
    }
    let mut files = Vec::new();
    for n in &names {
        let p = hub.item_path("parsers", n)?;
        files.push(
            ParserFile::from_hub_path(&p)
                .ok_or_else(|| format!("{}: cannot tell its stage", p.display()))?,
        );
    }
    let mut ctx = hub_ctx(hub)?;
    let overrides = if cfg.override_statics.is_empty() {
        None
    } else {
        let node_cfg = NodeConfig {
            name: Some("override_statics".into()),
            statics: cfg.override_statics.clone(),
            ..Default::default()
        };
        Some(Node::compile(&node_cfg, &mut ctx, "config.yaml", None).map_err(|e| e.to_string())?)
    };
    let parsers = Parsers::load(ctx, &files).map_err(join_errors)?;
    let log_path = dir.join(&cfg.log_file);
    let text =
        std::fs::read_to_string(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut labels: std::collections::HashMap<String, String> =
        cfg.labels.clone().into_iter().collect();
    labels.insert("type".into(), cfg.log_type.clone());
    let mut dump = Dump::new();
    let mut events = Vec::new();
    for raw in text.lines() {
        if raw.trim().is_empty() {
            continue;
        }
        let line = Line {
            raw: raw.to_owned(),
            src: cfg.log_file.clone(),
            time: Some(chrono::Utc::now().fixed_offset()),
            labels: labels.clone(),
            process: true,
            module: "file".into(),
        };
        let mut evt = Event::from_line(line, ExpectMode::TimeMachine);
        if let Some(o) = &overrides {
            o.apply_statics_only(&mut evt, parsers.ctx());
        }
        if parsers.parse_dumped(&mut evt, &mut dump) {
            events.push(evt);
        }
    }
    Ok(Replayed {
        dump,
        parsers,
        events,
    })
}

fn join_errors<E: ToString>(errs: Vec<E>) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_lines(path: &Path, what: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(format!("{what}: empty (nothing would be checked)"));
    }
    Ok(lines)
}

fn check(env: &Env, vars: &[Value<'_>], lines: &[String], what: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for l in lines {
        match env.compile(l) {
            Err(e) => failures.push(format!("{what}: {l}: {}", e.message)),
            Ok(p) => match p.run(vars) {
                Ok(Value::Bool(true)) => {}
                Ok(v) => failures.push(format!("{what}: {l}: got {v:?}")),
                Err(e) => failures.push(format!("{what}: {l}: {}", e.message)),
            },
        }
    }
    failures
}

fn parser_half(dir: &Path, r: &Replayed) -> Result<Vec<String>, String> {
    let lines = assert_lines(&dir.join("parser.assert"), "parser.assert")?;
    let env = Env::new(r.parsers.ctx().functions().clone()).var("results", FieldType::Any);
    Ok(check(
        &env,
        &[results_value(&r.dump)],
        &lines,
        "parser.assert",
    ))
}

fn scenario_half(
    hub: &Hub,
    dir: &Path,
    cfg: &CaseConfig,
    r: &Replayed,
) -> Result<Vec<String>, String> {
    let lines = assert_lines(&dir.join("scenario.assert"), "scenario.assert")?;
    let items = |kind: &str, listed: &[String]| -> Result<Vec<PathBuf>, String> {
        let mut names: BTreeSet<String> = non_empty(listed).cloned().collect();
        let mut seen = BTreeSet::new();
        for c in non_empty(&cfg.collections) {
            hub.collection_items(c, kind, &mut names, &mut seen);
        }
        names.iter().map(|n| hub.item_path(kind, n)).collect()
    };
    let files: Vec<ScenarioFile> = items("scenarios", &cfg.scenarios)?
        .into_iter()
        .map(ScenarioFile::new)
        .collect();
    let scenarios = Scenarios::load(r.parsers.ctx(), &files).map_err(join_errors)?;
    let post_files = items("postoverflows", &cfg.postoverflows)?
        .iter()
        .map(|p| {
            ParserFile::from_hub_path(p)
                .ok_or_else(|| format!("{}: cannot tell its stage", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let post = if post_files.is_empty() {
        None
    } else {
        Some(Parsers::load(hub_ctx(hub)?, &post_files).map_err(join_errors)?)
    };
    let mut detector = Detector::new(Arc::new(scenarios));
    let mut overflows: Vec<Overflow> = Vec::new();
    let mut fresh = Vec::new();
    for evt in &r.events {
        detector.pour(evt, &mut fresh);
        // Postoverflows, then reprocessing of the overflows that ask for it (their events go
        // back into the scenarios right away, as CrowdSec's output routine does).
        while !fresh.is_empty() {
            for ov in std::mem::take(&mut fresh) {
                let kept = match &post {
                    Some(p) => detect::postoverflow(p, ov, ExpectMode::TimeMachine),
                    None => Some(ov),
                };
                let Some(ov) = kept else { continue };
                if ov.reprocess {
                    let again = detect::overflow_event(ov.clone(), ExpectMode::TimeMachine);
                    detector.pour(&again, &mut fresh);
                }
                overflows.push(ov);
            }
        }
    }
    // cscli hubtest orders results by scenario then sources, descending.
    overflows.sort_by_cached_key(|o| {
        std::cmp::Reverse(format!("{}{}", o.scenario, o.source_values().join("@")))
    });
    let events: Vec<Event> = overflows
        .into_iter()
        .map(|o| detect::overflow_event(o, ExpectMode::TimeMachine))
        .collect();
    let results = Value::list(
        events
            .iter()
            .map(|e| Value::Obj(e as &dyn expr::Object))
            .collect(),
    );
    let env = Env::new(r.parsers.ctx().functions().clone()).var("results", FieldType::Any);
    let mut failures = check(&env, &[results], &lines, "scenario.assert");
    if !failures.is_empty() {
        // What the run produced, so a failing case can be understood without a debugger.
        let field = |o: &dyn expr::Object, name: &str| match o.get("Alert") {
            Some(Value::Obj(a)) => a
                .get(name)
                .map(|v| v.to_display_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        let produced: Vec<String> = events
            .iter()
            .filter_map(|e| e.overflow.as_deref())
            .map(|o| {
                let sources = match o.call("GetSources", &[]) {
                    Some(Ok(v)) => v.to_display_string(),
                    _ => String::new(),
                };
                format!(
                    "{} {sources} ({} events)",
                    field(o, "Scenario"),
                    field(o, "EventsCount")
                )
            })
            .collect();
        failures.push(format!(
            "scenario half: {} events poured, {} overflows: [{}]",
            r.events.len(),
            produced.len(),
            produced.join(", ")
        ));
    }
    Ok(failures)
}

/// `results` as assertions see it, borrowing the dumped events.
pub fn results_value(dump: &Dump) -> Value<'_> {
    let mut stages = Map::new();
    for (stage, nodes) in dump {
        let mut m = Map::new();
        for (node, outcomes) in nodes {
            let list = outcomes
                .iter()
                .map(|(ok, evt)| {
                    let mut r = Map::new();
                    r.insert("Success".into(), Value::Bool(*ok));
                    r.insert("Evt".into(), Value::Obj(evt));
                    Value::map(r)
                })
                .collect();
            m.insert(node.clone(), Value::list(list));
        }
        stages.insert(stage.clone(), Value::map(m));
    }
    let mut success = Map::new();
    success.insert(String::new(), Value::list(Vec::new()));
    stages.insert("success".into(), Value::map(success));
    Value::map(stages)
}

/// Lists the case folders of a tests directory, optionally only the named ones.
pub fn list_cases(tests: &Path, only: &[String]) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(tests).map_err(|e| format!("{}: {e}", tests.display()))?;
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("config.yaml").is_file())
        .filter(|p| {
            only.is_empty()
                || p.file_name()
                    .is_some_and(|n| only.iter().any(|o| *o == n.to_string_lossy()))
        })
        .collect();
    out.sort();
    let missing: Vec<&str> = only
        .iter()
        .filter(|o| {
            !out.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy() == o.as_str())
            })
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no test case named {} in {} (a case is a folder with config.yaml)",
            missing.join(", "),
            tests.display()
        ));
    }
    Ok(out)
}
