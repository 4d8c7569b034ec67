//! A CrowdSec-format hub: its index, the state of every item in an installation, and the
//! changes `hub update`, `install`, `remove` and `upgrade` make.
//!
//! - [`Index`]: `.index.json` (item type → name → path, versions with sha256 digests, sub-items).
//! - [`Layout`]: CrowdSec's `config_paths` — installed items are links in `config_dir` to files
//!   downloaded into `hub_dir`; data files go to `data_dir`, grok patterns to `pattern_dir`.
//! - [`LocalHub`]: the index joined with the disk: installed, up to date, tainted, local.
//! - [`Plan`]: what an install/remove/upgrade will change, decided before anything is touched;
//!   [`apply`] carries it out from a [`HubSource`] (a directory or an HTTP(S) base URL).
//! - [`Hub`]: a read-only view of a hub checkout, for the hub-test runner.
//!
//! It knows nothing of what items mean: parsers and scenarios are files with a name, a version
//! and a digest here.

mod apply;
mod data;
mod diff;
mod error;
mod index;
mod item;
mod layout;
mod plan;
mod source;
mod state;

pub use apply::{
    Done, NoProgress, Progress, Report, Sources, UpdateReport, apply, pristine_content,
    update_index,
};
pub use data::{DataEntry, PATTERN_FILES, data_entries};
pub use diff::unified as unified_diff;
pub use error::HubError;
pub use index::Index;
pub use item::{
    Dependencies, IndexData, IndexItem, ItemType, VersionInfo, compare_versions, sha256_hex,
};
pub use layout::Layout;
pub use plan::{Action, InstallOptions, Level, Note, Plan, Step};
pub use source::{DEFAULT_HUB_URL, HubSource};
pub use state::{Item, ItemKey, ItemState, LocalHub, Status};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A hub checkout read in place (test cases name items by hub name or path).
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
            let rel = item.trim_start_matches("./").trim_start_matches('/');
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
}
