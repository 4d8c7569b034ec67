//! CrowdSec hub test cases (`cscli hubtest` format): the parser half.
//!
//! A case folder holds `config.yaml`, a log file and `parser.assert` / `scenario.assert`. The log is
//! replayed in time-machine mode through the listed parsers; every line of `parser.assert` must be
//! true with `results` bound to stage → parser → outcomes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use expr::{Env, FieldType, Map, Value};
use serde::{Deserialize, Serialize};

use crate::config::{NodeConfig, StaticConfig};
use crate::event::{Event, ExpectMode, Line};
use crate::loader::{Ctx, ParserFile, Parsers};
use crate::node::Node;
use crate::pipeline::Dump;

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

/// The hub: its root folder and `.index.json`.
#[derive(Debug)]
pub struct Hub {
    root: PathBuf,
    index: serde_json::Value,
}

impl Hub {
    /// Opens a hub directory (it must contain `.index.json`).
    pub fn open(root: &Path) -> Result<Hub, String> {
        let p = root.join(".index.json");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let index = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Hub {
            root: root.to_path_buf(),
            index,
        })
    }

    /// Hub root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of an item given by name (`crowdsecurity/sshd-logs`) or hub-relative path.
    pub fn item_path(&self, kind: &str, item: &str) -> Result<PathBuf, String> {
        if item.starts_with("./") || item.ends_with(".yaml") {
            let rel = item.trim_start_matches("./");
            let p = self.root.join(rel);
            // The hub repository keeps its tests in `.tests/`; snapshots may name it `tests/`.
            if !p.exists()
                && let Some(rest) = rel.strip_prefix(".tests/")
            {
                let alt = self.root.join("tests").join(rest);
                if alt.exists() {
                    return Ok(alt);
                }
            }
            return Ok(p);
        }
        self.index
            .get(kind)
            .and_then(|k| k.get(item))
            .and_then(|i| i.get("path"))
            .and_then(|p| p.as_str())
            .map(|p| self.root.join(p))
            .ok_or_else(|| format!("{kind} item {item:?} is not in the hub index"))
    }

    /// Expands collections (recursively) into their items of `kind`.
    pub fn collection_items(
        &self,
        collection: &str,
        kind: &str,
        out: &mut BTreeSet<String>,
        seen: &mut BTreeSet<String>,
    ) {
        if !seen.insert(collection.to_owned()) {
            return;
        }
        let Some(c) = self
            .index
            .get("collections")
            .and_then(|c| c.get(collection))
        else {
            return;
        };
        if let Some(items) = c.get(kind).and_then(|v| v.as_array()) {
            out.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
        if let Some(subs) = c.get("collections").and_then(|v| v.as_array()) {
            for s in subs.iter().filter_map(|v| v.as_str()) {
                self.collection_items(s, kind, out, seen);
            }
        }
    }

    /// A parsing context over this hub's patterns and data files.
    pub fn ctx(&self) -> Result<Ctx, String> {
        let data = self.root.join("data");
        Ctx::new(Some(&self.root.join("patterns")), Some(&data)).map_err(|e| e.to_string())
    }
}

fn non_empty(items: &[String]) -> impl Iterator<Item = &String> {
    items.iter().filter(|s| !s.trim().is_empty())
}

/// Runs the parser half of one case folder.
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
    if non_empty(&cfg.scenarios).next().is_some() || !cfg.collections.is_empty() {
        // The scenario half needs the detection engine, which this crate does not have.
        result.scenario = Half::Fail;
        result
            .failures
            .push("scenario.assert: the scenario half is not run by the parser engine".into());
    }
    if cfg.ignore_parsers {
        return result;
    }
    match parser_half(hub, dir, &cfg) {
        Ok(failures) if failures.is_empty() => result.parser = Half::Pass,
        Ok(failures) => {
            result.parser = Half::Fail;
            result.failures.splice(0..0, failures);
        }
        Err(e) => {
            result.parser = Half::Fail;
            result.failures.insert(0, e);
        }
    }
    result
}

/// Loads the case's parsers and replays its log; returns (dump, parsers) for assertions.
fn replay(hub: &Hub, dir: &Path, cfg: &CaseConfig) -> Result<(Dump, Parsers), String> {
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
    let mut ctx = hub.ctx()?;
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
    let parsers = Parsers::load(ctx, &files).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let log_path = dir.join(&cfg.log_file);
    let text =
        std::fs::read_to_string(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut labels: std::collections::HashMap<String, String> =
        cfg.labels.clone().into_iter().collect();
    labels.insert("type".into(), cfg.log_type.clone());
    let mut dump = Dump::new();
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
        parsers.parse_dumped(&mut evt, &mut dump);
    }
    Ok((dump, parsers))
}

fn parser_half(hub: &Hub, dir: &Path, cfg: &CaseConfig) -> Result<Vec<String>, String> {
    let asserts = std::fs::read_to_string(dir.join("parser.assert")).unwrap_or_default();
    let lines: Vec<&str> = asserts.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err("parser.assert: empty (nothing would be checked)".into());
    }
    let (dump, parsers) = replay(hub, dir, cfg)?;
    let results = results_value(&dump);
    let env = Env::new(parsers.ctx().functions().clone()).var("results", FieldType::Any);
    let vars = [results];
    let mut failures = Vec::new();
    for l in lines {
        match env.compile(l) {
            Err(e) => failures.push(format!("parser.assert: {l}: {}", e.message)),
            Ok(p) => match p.run(&vars) {
                Ok(Value::Bool(true)) => {}
                Ok(v) => failures.push(format!("parser.assert: {l}: got {v:?}")),
                Err(e) => failures.push(format!("parser.assert: {l}: {}", e.message)),
            },
        }
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
