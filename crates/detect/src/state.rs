//! Bucket state that survives a restart: live instances (their token bucket, counters, queue
//! and distinct values) and armed blackholes, written as JSON on shutdown and read at start.
//!
//! Instances are matched to scenarios by name, so a state file outlives a reordering of the
//! scenario list; instances of scenarios that are gone are dropped with a warning.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use parse::{Event, ExpectMode, Line};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::engine::{Detector, Instance};
use crate::limiter::Limiter;

/// Why a state file could not be written or read.
#[derive(Debug, Error)]
pub enum StateError {
    /// File system error.
    #[error("bucket state {path}: {source}")]
    Io {
        /// State file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Not a state file of ours.
    #[error("bucket state {path}: {message}")]
    Format {
        /// State file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    instances: Vec<SavedInstance>,
    blackholes: Vec<SavedBlackhole>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedBlackhole {
    scenario: String,
    group: String,
    until_ns: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedInstance {
    scenario: String,
    group: String,
    limiter: Limiter,
    queue: Vec<SavedEvent>,
    first: Option<DateTime<FixedOffset>>,
    last: Option<DateTime<FixedOffset>>,
    total: u64,
    distinct: Vec<String>,
    guillotined: Vec<bool>,
    deadline_ns: Option<i64>,
    time_machine: bool,
}

/// The parts of an event that scenarios and alerts read.
#[derive(Debug, Serialize, Deserialize)]
struct SavedEvent {
    raw: String,
    src: String,
    module: String,
    labels: HashMap<String, String>,
    parsed: HashMap<String, String>,
    enriched: HashMap<String, String>,
    meta: HashMap<String, String>,
    time: Option<DateTime<FixedOffset>>,
    str_time: String,
    marshaled_time: String,
}

impl SavedEvent {
    fn from_event(e: &Event) -> Self {
        SavedEvent {
            raw: e.line.raw.clone(),
            src: e.line.src.clone(),
            module: e.line.module.clone(),
            labels: e.line.labels.clone(),
            parsed: e.parsed.clone(),
            enriched: e.enriched.clone(),
            meta: e.meta.clone(),
            time: e.time,
            str_time: e.str_time.clone(),
            marshaled_time: e.marshaled_time.clone(),
        }
    }

    fn into_event(self, mode: ExpectMode) -> Event {
        let line = Line {
            raw: self.raw,
            src: self.src,
            time: self.time,
            labels: self.labels,
            process: true,
            module: self.module,
        };
        let mut e = Event::from_line(line, mode);
        e.parsed = self.parsed;
        e.enriched = self.enriched;
        e.meta = self.meta;
        e.str_time = self.str_time;
        e.marshaled_time = self.marshaled_time;
        e
    }
}

impl Detector {
    /// Writes live instances and blackholes to `path` (atomically: temp file, then rename).
    pub fn save_state(&self, path: &Path) -> Result<usize, StateError> {
        Detector::save_states(std::slice::from_ref(self), path)
    }

    /// Restores instances saved by [`Detector::save_state`]; returns how many were restored.
    /// A missing file restores nothing.
    pub fn load_state(&mut self, path: &Path) -> Result<usize, StateError> {
        Detector::load_states(std::slice::from_mut(self), path)
    }

    /// Writes the instances of several shards into one state file.
    pub fn save_states(shards: &[Detector], path: &Path) -> Result<usize, StateError> {
        let at = path.display().to_string();
        let io = |source| StateError::Io {
            path: at.clone(),
            source,
        };
        let Some(first) = shards.first() else {
            return Ok(0);
        };
        let names: Vec<&str> = first.scenarios().iter().map(|s| s.name.as_str()).collect();
        let name = |i: u32| names.get(i as usize).copied().unwrap_or("").to_owned();
        let instances: Vec<SavedInstance> = shards
            .iter()
            .flat_map(|d| d.instances.iter())
            .map(|((si, group), i)| SavedInstance {
                scenario: name(*si),
                group: group.to_string(),
                limiter: i.limiter.clone(),
                queue: i.queue.iter().map(|e| SavedEvent::from_event(e)).collect(),
                first: i.first,
                last: i.last,
                total: i.total,
                distinct: i.distinct.iter().cloned().collect(),
                guillotined: i.guillotined.clone(),
                deadline_ns: i.deadline_ns,
                time_machine: i.mode == ExpectMode::TimeMachine,
            })
            .collect();
        let blackholes = shards
            .iter()
            .flat_map(|d| d.blackholes.iter().enumerate())
            .flat_map(|(si, m)| {
                let scenario = name(si as u32);
                m.iter().map(move |(g, until)| SavedBlackhole {
                    scenario: scenario.clone(),
                    group: g.to_string(),
                    until_ns: *until,
                })
            })
            .collect();
        let n = instances.len();
        let file = StateFile {
            version: VERSION,
            instances,
            blackholes,
        };
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        serde_json::to_writer(&mut f, &file).map_err(|e| StateError::Format {
            path: at.clone(),
            message: e.to_string(),
        })?;
        f.flush().map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(n)
    }

    /// Restores a state file into shards, each instance on the shard that owns its key
    /// ([`crate::ShardedDetector::shard_of`]).
    pub fn load_states(shards: &mut [Detector], path: &Path) -> Result<usize, StateError> {
        let n = shards.len();
        if n == 0 {
            return Ok(0);
        }
        let at = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(StateError::Io { path: at, source }),
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| StateError::Format {
            path: at.clone(),
            message: e.to_string(),
        })?;
        if file.version != VERSION {
            return Err(StateError::Format {
                path: at,
                message: format!("version {} (this build reads {VERSION})", file.version),
            });
        }
        let index: HashMap<String, u32> = shards[0]
            .scenarios()
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i as u32))
            .collect();
        let mut restored = 0;
        for s in file.instances {
            let Some(&si) = index.get(&s.scenario) else {
                tracing::warn!(
                    scenario = s.scenario,
                    "bucket state of a scenario that is no longer loaded, dropped"
                );
                continue;
            };
            let mode = if s.time_machine {
                ExpectMode::TimeMachine
            } else {
                ExpectMode::Live
            };
            let inst = Instance {
                limiter: s.limiter,
                queue: s
                    .queue
                    .into_iter()
                    .map(|e| std::sync::Arc::new(e.into_event(mode)))
                    .collect::<VecDeque<_>>(),
                first: s.first,
                last: s.last,
                total: s.total,
                distinct: s.distinct.into_iter().collect::<HashSet<_>>(),
                guillotined: s.guillotined,
                deadline_ns: s.deadline_ns,
                mode,
            };
            let shard = crate::ShardedDetector::shard_of(si, &s.group, n);
            shards[shard].instances.insert((si, s.group.into()), inst);
            restored += 1;
        }
        for b in file.blackholes {
            if let Some(&si) = index.get(&b.scenario) {
                let shard = crate::ShardedDetector::shard_of(si, &b.group, n);
                shards[shard].blackholes[si as usize].insert(b.group.into(), b.until_ns);
            }
        }
        Ok(restored)
    }
}
