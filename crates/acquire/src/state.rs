//! Persisted positions: one JSON file in the state directory, replaced atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AcquireError;

pub(crate) const STATE_FILE: &str = "acquisition-positions.json";
const VERSION: u32 = 1;
/// State of sources that are not configured any more is dropped after this long.
const STALE_SOURCE_DAYS: i64 = 30;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct StateFile {
    #[serde(default)]
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) sources: BTreeMap<String, SourceState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SourceState {
    pub(crate) updated: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) files: Vec<FileEntry>,
    /// journald: cursor of the last processed entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<String>,
    /// journald: where reading started before any entry was processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<String>,
}

impl SourceState {
    pub(crate) fn new() -> Self {
        SourceState {
            updated: Utc::now(),
            files: Vec::new(),
            cursor: None,
            since: None,
        }
    }
}

/// One file content: where it was last seen, its identity and how far it was processed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ino: Option<u64>,
    /// Bytes covered by the fingerprint (at most 1 KiB).
    pub(crate) fp_len: u32,
    /// Hash of the first `fp_len` bytes (decompressed for `.gz`).
    pub(crate) fp: String,
    /// Offset just after the last processed line.
    pub(crate) offset: u64,
    /// A compressed file read to its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) done: bool,
    pub(crate) seen: DateTime<Utc>,
}

/// A running source that has positions to save.
pub(crate) trait Persist: Send + Sync {
    fn key(&self) -> &str;
    fn snapshot(&self) -> SourceState;
    /// Lines handed out and not yet done or dropped.
    fn live_acks(&self) -> usize;
}

/// The state file of one acquisition.
pub(crate) struct Store {
    path: PathBuf,
    loaded: StateFile,
    providers: Mutex<Vec<Arc<dyn Persist>>>,
    pub(crate) dirty: Arc<AtomicBool>,
    /// Held while a snapshot is taken and written, so the last write is the newest; `true`
    /// once closed (the final save was made: no later write may replace it).
    writing: Mutex<bool>,
    /// Set when lines were acknowledged whose effects could not be made durable: from then on
    /// positions are not saved, so a restart reads those lines again rather than skipping them.
    frozen: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Store {
    /// Opens (or creates) the state directory and reads its positions. A corrupt state file is
    /// set aside with a warning: starting is more important than old positions.
    pub(crate) fn open(dir: &Path) -> Result<Store, AcquireError> {
        std::fs::create_dir_all(dir).map_err(|e| AcquireError::io(dir, e))?;
        let path = dir.join(STATE_FILE);
        let loaded = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(state) => state,
                Err(e) => {
                    let aside = dir.join(format!(
                        "{STATE_FILE}.corrupt-{}",
                        Utc::now().format("%Y%m%dT%H%M%S")
                    ));
                    tracing::warn!(
                        file = %path.display(),
                        moved_to = %aside.display(),
                        "acquisition positions unreadable ({e}); starting without them"
                    );
                    let _ = std::fs::rename(&path, &aside);
                    StateFile::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(AcquireError::io(&path, e)),
        };
        Ok(Store {
            path,
            loaded,
            providers: Mutex::new(Vec::new()),
            dirty: Arc::new(AtomicBool::new(true)),
            writing: Mutex::new(false),
            frozen: AtomicBool::new(false),
            last_error: Mutex::new(None),
        })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&SourceState> {
        self.loaded.sources.get(key)
    }

    pub(crate) fn register(&self, p: Arc<dyn Persist>) {
        self.providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p);
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn providers(&self) -> Vec<Arc<dyn Persist>> {
        self.providers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn has_providers(&self) -> bool {
        !self.providers().is_empty()
    }

    pub(crate) fn live_acks(&self) -> usize {
        self.providers().iter().map(|p| p.live_acks()).sum()
    }

    /// Writes the current positions if anything moved since the last write.
    pub(crate) fn save_if_dirty(&self) {
        if self.dirty.swap(false, Ordering::Relaxed) {
            self.save();
        }
    }

    /// Writes the current positions (temporary file, fsync, rename).
    pub(crate) fn save(&self) {
        self.write(false);
    }

    /// The final save: later saves do nothing.
    pub(crate) fn close(&self) {
        self.write(true);
    }

    /// Blocks position writes while the guard lives (a caller making a batch durable elsewhere
    /// takes its snapshot under it, so no write can get ahead of that).
    pub(crate) fn hold(&self) -> std::sync::MutexGuard<'_, bool> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops all later position writes (see `frozen`).
    pub(crate) fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// The positions file as it would be written now.
    pub(crate) fn snapshot_json(&self) -> Option<String> {
        serde_json::to_string(&self.build()).ok()
    }

    fn write(&self, close: bool) {
        let mut closed = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        if *closed || self.frozen.load(Ordering::SeqCst) {
            return;
        }
        *closed = close;
        let out = self.build();
        let result = write_atomic(&self.path, &out);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => *last = None,
            Err(e) => {
                self.dirty.store(true, Ordering::Relaxed);
                let msg = e.to_string();
                if last.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(file = %self.path.display(), "cannot save acquisition positions: {msg}");
                }
                *last = Some(msg);
            }
        }
    }

    fn build(&self) -> StateFile {
        let mut out = StateFile {
            version: VERSION,
            sources: BTreeMap::new(),
        };
        let now = Utc::now();
        for (key, state) in &self.loaded.sources {
            if now.signed_duration_since(state.updated).num_days() < STALE_SOURCE_DAYS {
                out.sources.insert(key.clone(), state.clone());
            }
        }
        for p in self.providers() {
            out.sources.insert(p.key().to_string(), p.snapshot());
        }
        out
    }
}

/// Folds a snapshot taken by [`Store::snapshot_json`] into the positions file in `dir`: each
/// source whose snapshot is newer than the saved state is replaced. Returns whether anything
/// changed. This is how a crash between "alerts queued" and "positions saved" is repaired: the
/// alert queue carries the snapshot, and the next start adopts it before reading.
pub fn merge_positions(dir: &Path, snapshot: &str) -> Result<bool, AcquireError> {
    let mark: StateFile = serde_json::from_str(snapshot).map_err(|e| {
        AcquireError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })?;
    std::fs::create_dir_all(dir).map_err(|e| AcquireError::io(dir, e))?;
    let path = dir.join(STATE_FILE);
    let mut current: StateFile = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
        Err(e) => return Err(AcquireError::io(&path, e)),
    };
    let mut changed = false;
    for (key, state) in mark.sources {
        let newer = current
            .sources
            .get(&key)
            .is_none_or(|c| c.updated < state.updated);
        if newer {
            current.sources.insert(key, state);
            changed = true;
        }
    }
    if changed {
        current.version = VERSION;
        write_atomic(&path, &current).map_err(|e| AcquireError::io(&path, e))?;
    }
    Ok(changed)
}

fn write_atomic(path: &Path, state: &StateFile) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
