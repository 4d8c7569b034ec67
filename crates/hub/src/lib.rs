//! A CrowdSec-format hub on disk: `.index.json`, item paths, collection dependencies.
//!
//! Used by the hub-test runner and (later) by hub management commands; it knows nothing of what
//! the items mean.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
