//! Where things live on disk: CrowdSec's `config_paths`.

use std::path::{Path, PathBuf};

use crate::HubError;
use crate::item::{IndexItem, ItemType, safe_join};

/// The directories a hub installation uses.
///
/// Installed items are links in `config_dir` (`parsers/s01-parse/sshd-logs.yaml`) to the files
/// downloaded into `hub_dir` (`parsers/s01-parse/crowdsecurity/sshd-logs.yaml`), as cscli lays
/// them out; `config_dir` with its `patterns/` and `data/` is then a complete content directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Installed items, one directory per type.
    pub config_dir: PathBuf,
    /// The local copy of the hub: the index and downloaded items.
    pub hub_dir: PathBuf,
    /// The local copy of `.index.json`.
    pub index_path: PathBuf,
    /// Where items' data files go (`dest_file`).
    pub data_dir: PathBuf,
    /// Grok pattern files.
    pub pattern_dir: PathBuf,
}

impl Layout {
    /// CrowdSec's defaults below two directories: the index in `hub_dir`, data files and
    /// patterns in `config_dir`. Relative paths are made absolute, because links must be.
    pub fn new(config_dir: &Path, hub_dir: &Path) -> Layout {
        let config_dir = absolute(config_dir);
        let hub_dir = absolute(hub_dir);
        Layout {
            index_path: hub_dir.join(".index.json"),
            data_dir: config_dir.join("data"),
            pattern_dir: config_dir.join("patterns"),
            config_dir,
            hub_dir,
        }
    }

    /// Replaces the data directory.
    pub fn with_data_dir(mut self, dir: &Path) -> Layout {
        self.data_dir = absolute(dir);
        self
    }

    /// Replaces the index path.
    pub fn with_index_path(mut self, path: &Path) -> Layout {
        self.index_path = absolute(path);
        self
    }

    /// Replaces the pattern directory.
    pub fn with_pattern_dir(mut self, dir: &Path) -> Layout {
        self.pattern_dir = absolute(dir);
        self
    }

    /// Where an item is installed: `config_dir/<type>/[<stage>/]<file>` (no author, as cscli).
    pub fn install_path(&self, kind: ItemType, item: &IndexItem) -> Result<PathBuf, HubError> {
        let mut rel = kind.as_str().to_owned();
        if let Some(stage) = item.stage.as_deref().filter(|_| kind.has_stage()) {
            rel.push('/');
            rel.push_str(stage);
        }
        rel.push('/');
        rel.push_str(item.file_name());
        safe_join(&self.config_dir, &rel)
    }

    /// Where an item is downloaded: `hub_dir/<path>`.
    pub fn download_path(&self, item: &IndexItem) -> Result<PathBuf, HubError> {
        safe_join(&self.hub_dir, &item.path)
    }

    /// Where a data file goes.
    pub fn data_path(&self, dest_file: &str) -> Result<PathBuf, HubError> {
        safe_join(&self.data_dir, dest_file)
    }
}

/// `p` made absolute against the working directory, without resolving links.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `p` with links resolved when it exists, else as given.
pub(crate) fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
