//! The state of every item: the index joined with what is downloaded and installed.
//!
//! Rules are cscli's (`pkg/cwhub/sync.go`): an installed file's sha256 names its version; no
//! match means the file was edited (**tainted**); a regular file, or a link that does not point
//! into the hub directory, is a **local** item, which hub commands never change. A collection
//! is tainted when one of its installed sub-items is tainted or missing, and not up to date when
//! one of them is outdated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::HubError;
use crate::index::Index;
use crate::item::{Dependencies, IndexItem, ItemType, compare_versions, sha256_hex};
use crate::layout::{Layout, canonical};

/// (type, name).
pub type ItemKey = (ItemType, String);

/// Single-word status (cscli's `Status()`), mutually exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not installed.
    NotInstalled,
    /// Installed, edited locally (or a sub-item is).
    Tainted,
    /// A local item.
    Local,
    /// Installed, an update is available.
    Outdated,
    /// Installed at the latest version.
    UpToDate,
}

impl Status {
    /// cscli's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotInstalled => "not-installed",
            Status::Tainted => "tainted",
            Status::Local => "local",
            Status::Outdated => "outdated",
            Status::UpToDate => "up-to-date",
        }
    }
}

/// What is on disk for one item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemState {
    /// The install link, or the local file.
    pub local_path: Option<PathBuf>,
    /// Version whose digest matches the file; `?` when none does.
    pub local_version: Option<String>,
    /// sha256 of the installed (else downloaded) file.
    pub local_hash: Option<String>,
    /// The downloaded file in the hub directory, when present.
    pub download_path: Option<PathBuf>,
    /// A local item (not managed by the hub).
    pub local: bool,
    /// At the latest version (collections: and every sub-item too).
    pub up_to_date: bool,
    /// Edited locally, or (collections) a sub-item is tainted or missing.
    pub tainted: bool,
    /// The items responsible for the taint (`type:name`), sorted.
    pub tainted_by: Vec<String>,
    /// Collections that pull this item in, directly or not, sorted case-insensitively.
    pub belongs_to_collections: Vec<String>,
}

impl ItemState {
    /// Installed (linked into the config directory, or a local file).
    pub fn installed(&self) -> bool {
        self.local_path.is_some()
    }

    /// Downloaded into the hub directory.
    pub fn downloaded(&self) -> bool {
        self.download_path.is_some()
    }

    /// cscli's compound status (`enabled,update-available`).
    pub fn text(&self) -> String {
        let mut s = String::from(if self.installed() {
            "enabled"
        } else {
            "disabled"
        });
        if self.local {
            s.push_str(",local");
        }
        if self.tainted {
            s.push_str(",tainted");
        } else if !self.up_to_date && !self.local {
            s.push_str(",update-available");
        }
        s
    }

    /// cscli's single-word status.
    pub fn status(&self) -> Status {
        if !self.installed() {
            Status::NotInstalled
        } else if self.tainted {
            Status::Tainted
        } else if self.local {
            Status::Local
        } else if !self.up_to_date {
            Status::Outdated
        } else {
            Status::UpToDate
        }
    }

    /// cscli's emoji for the status.
    pub fn emoji(&self) -> &'static str {
        if self.local {
            "🏠"
        } else if !self.installed() {
            "🚫"
        } else if self.tainted || !self.up_to_date {
            "⚠️"
        } else {
            "✔️"
        }
    }
}

/// One item with its state.
#[derive(Debug, Clone)]
pub struct Item {
    /// Type.
    pub kind: ItemType,
    /// Name (`crowdsecurity/sshd-logs`).
    pub name: String,
    /// What the index says; `None` for a local item.
    pub index: Option<IndexItem>,
    /// What is on disk.
    pub state: ItemState,
    /// Stage of a local parser or postoverflow (from its directory).
    pub local_stage: Option<String>,
    /// A local item that hides a hub item of the same name.
    pub shadows_hub_item: bool,
}

impl Item {
    /// `type:name`, as cscli names items in messages.
    pub fn fq_name(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }

    /// The item's stage.
    pub fn stage(&self) -> Option<&str> {
        self.index
            .as_ref()
            .and_then(|i| i.stage.as_deref())
            .or(self.local_stage.as_deref())
    }

    /// True when the installed (or downloaded) file is the latest version.
    pub fn file_is_latest(&self) -> bool {
        match (&self.index, &self.state.local_version) {
            (Some(i), Some(v)) => *v == i.version,
            _ => false,
        }
    }
}

/// The index and the installation, joined.
#[derive(Debug, Clone)]
pub struct LocalHub {
    layout: Layout,
    index: Index,
    items: BTreeMap<ItemKey, Item>,
    /// Things worth telling the user (broken index entries, dangling links, missing
    /// dependencies, collections with updates).
    pub warnings: Vec<String>,
}

impl LocalHub {
    /// Reads the index and scans the hub and config directories.
    pub fn load(layout: Layout) -> Result<LocalHub, HubError> {
        let index = Index::load(&layout.index_path)?;
        Ok(LocalHub::with_index(layout, index))
    }

    /// Same as [`LocalHub::load`] with an index already in hand.
    pub fn with_index(layout: Layout, index: Index) -> LocalHub {
        let mut hub = LocalHub {
            warnings: index.warnings.clone(),
            layout,
            items: BTreeMap::new(),
            index,
        };
        for kind in ItemType::ALL {
            let entries: Vec<(String, IndexItem)> = hub
                .index
                .of(kind)
                .map(|(n, i)| (n.clone(), i.clone()))
                .collect();
            for (name, ix) in entries {
                let mut state = ItemState::default();
                if let Ok(p) = hub.layout.download_path(&ix)
                    && p.is_file()
                {
                    hub.set_version_state(&mut state, &ix, &p);
                    state.download_path = Some(p);
                }
                hub.items.insert(
                    (kind, name.clone()),
                    Item {
                        kind,
                        name,
                        index: Some(ix),
                        state,
                        local_stage: None,
                        shadows_hub_item: false,
                    },
                );
            }
        }
        for kind in ItemType::ALL {
            hub.scan_installed(kind);
        }
        hub.compute_membership();
        hub.name_self_taint();
        hub.propagate_taint();
        hub
    }

    /// The directories in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// One item.
    pub fn get(&self, kind: ItemType, name: &str) -> Option<&Item> {
        self.items.get(&(kind, name.to_owned()))
    }

    pub(crate) fn get_key(&self, key: &ItemKey) -> Option<&Item> {
        self.items.get(key)
    }

    /// Items of one type, sorted by name case-insensitively (cscli's order).
    pub fn items(&self, kind: ItemType) -> Vec<&Item> {
        let mut v: Vec<&Item> = self
            .items
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
            .map(|(_, i)| i)
            .collect();
        v.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    }

    /// Installed items of one type.
    pub fn installed(&self, kind: ItemType) -> Vec<&Item> {
        self.items(kind)
            .into_iter()
            .filter(|i| i.state.installed())
            .collect()
    }

    /// The item, or an error that suggests the nearest name and says how to list them.
    pub fn find(&self, kind: ItemType, name: &str) -> Result<&Item, HubError> {
        if let Some(i) = self.get(kind, name) {
            return Ok(i);
        }
        let mut message = format!("can't find '{name}' in {kind}");
        if let Some(near) = self.nearest(kind, name) {
            message.push_str(&format!(", did you mean '{near}'?"));
        }
        message.push_str(&format!(
            " (`rampart {kind} list -a` lists them; `rampart hub update` refreshes the index)"
        ));
        if let Some(other) = ItemType::ALL
            .into_iter()
            .find(|t| *t != kind && self.get(*t, name).is_some())
        {
            message.push_str(&format!("; '{name}' is one of the {other}"));
        }
        Err(HubError::NotFound { message })
    }

    fn nearest(&self, kind: ItemType, name: &str) -> Option<String> {
        self.items(kind)
            .into_iter()
            .map(|i| (edit_distance(name, &i.name), &i.name))
            .filter(|(d, _)| *d < 7)
            .min()
            .map(|(_, n)| n.clone())
    }

    /// Sub-items of the installed version of a collection: its file's lists when it is not the
    /// latest (the index describes the latest), else the index's.
    pub fn current_dependencies(&self, item: &Item) -> Dependencies {
        let Some(ix) = &item.index else {
            return item
                .state
                .local_path
                .as_deref()
                .and_then(read_dependencies)
                .unwrap_or_default();
        };
        if item.kind != ItemType::Collections || item.file_is_latest() {
            return ix.dependencies.clone();
        }
        item.state
            .local_path
            .as_deref()
            .and_then(read_dependencies)
            .unwrap_or_else(|| ix.dependencies.clone())
    }

    /// Every item a collection pulls in, recursively (each once).
    pub(crate) fn descendants(&self, item: &Item) -> Vec<ItemKey> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        seen.insert((item.kind, item.name.clone()));
        let mut todo = vec![item.clone()];
        while let Some(it) = todo.pop() {
            for (t, n) in self.current_dependencies(&it).iter() {
                let key = (t, n.to_owned());
                if seen.insert(key.clone())
                    && let Some(sub) = self.items.get(&key)
                {
                    out.push(key);
                    todo.push(sub.clone());
                }
            }
        }
        out
    }

    fn set_version_state(&self, state: &mut ItemState, ix: &IndexItem, file: &Path) {
        match std::fs::read(file) {
            Ok(bytes) => {
                let hash = sha256_hex(&bytes);
                match ix.version_of(&hash) {
                    Some(v) => {
                        state.up_to_date = compare_versions(v, &ix.version).is_ge();
                        state.local_version = Some(v.to_owned());
                        state.tainted = false;
                    }
                    None => {
                        state.local_version = Some("?".into());
                        state.up_to_date = false;
                        state.tainted = true;
                    }
                }
                state.local_hash = Some(hash);
            }
            Err(_) => {
                state.local_version = None;
                state.local_hash = None;
            }
        }
    }

    fn scan_installed(&mut self, kind: ItemType) {
        let dir = self.layout.config_dir.join(kind.as_str());
        let mut files = Vec::new();
        walk_yaml(&dir, &mut files, &mut self.warnings);
        files.sort();
        let hub_real = canonical(&self.layout.hub_dir);
        // Index paths of this type → name, to recognise link targets.
        let by_path: BTreeMap<String, String> = self
            .index
            .of(kind)
            .map(|(n, i)| (i.path.clone(), n.clone()))
            .collect();
        for path in files {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = match std::fs::read_link(&path) {
                    Ok(t) if t.is_absolute() => t,
                    Ok(t) => path.parent().map_or(t.clone(), |p| p.join(&t)),
                    Err(e) => {
                        self.warnings
                            .push(format!("cannot read link {}: {e}", path.display()));
                        continue;
                    }
                };
                if !target.exists() {
                    self.warnings.push(format!(
                        "{} links to {}, which does not exist: delete the link, or `rampart hub update` and reinstall the item",
                        path.display(),
                        target.display()
                    ));
                    continue;
                }
                let real = canonical(&target);
                let hub_item = real
                    .strip_prefix(&hub_real)
                    .ok()
                    .and_then(|rel| rel.to_str())
                    .map(|rel| rel.replace(std::path::MAIN_SEPARATOR, "/"))
                    .and_then(|rel| by_path.get(&rel).cloned());
                if let Some(name) = hub_item {
                    let key = (kind, name);
                    let Some(item) = self.items.get(&key) else {
                        continue;
                    };
                    if item.state.local || item.state.installed() {
                        self.warnings.push(format!(
                            "{} is installed twice ({} and {}): delete one of them",
                            item.fq_name(),
                            item.state.local_path.as_deref().unwrap_or(&path).display(),
                            path.display()
                        ));
                        continue;
                    }
                    let ix = item.index.clone().unwrap_or_default();
                    let mut state = item.state.clone();
                    self.set_version_state(&mut state, &ix, &real);
                    state.local_path = Some(path.clone());
                    if let Some(it) = self.items.get_mut(&key) {
                        it.state = state;
                    }
                    continue;
                }
            }
            self.add_local(kind, &dir, &path);
        }
    }

    fn add_local(&mut self, kind: ItemType, type_dir: &Path, path: &Path) {
        let rel = path.strip_prefix(type_dir).unwrap_or(path);
        let mut comps: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let stage = if kind.has_stage() && comps.len() > 1 {
            Some(comps.remove(0))
        } else {
            None
        };
        let name = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| local_name(&t))
            .unwrap_or_else(|| comps.join("/"));
        let key = (kind, name.clone());
        let shadows = self.items.get(&key).is_some_and(|i| i.index.is_some());
        if let Some(prev) = self.items.get(&key)
            && prev.state.local
        {
            self.warnings.push(format!(
                "two local {kind} are named '{name}' ({} and {}): rename one",
                prev.state.local_path.as_deref().unwrap_or(path).display(),
                path.display()
            ));
            return;
        }
        if shadows {
            self.warnings.push(format!(
                "local file {} takes the name of hub item {kind}:{name}; hub commands leave it alone",
                path.display()
            ));
        }
        let bytes = std::fs::read(path).unwrap_or_default();
        self.items.insert(
            key,
            Item {
                kind,
                name,
                index: None,
                state: ItemState {
                    local_path: Some(path.to_path_buf()),
                    local_hash: Some(sha256_hex(&bytes)),
                    local: true,
                    up_to_date: true,
                    ..ItemState::default()
                },
                local_stage: stage,
                shadows_hub_item: shadows,
            },
        );
    }

    fn compute_membership(&mut self) {
        let collections: Vec<Item> = self
            .items(ItemType::Collections)
            .into_iter()
            .cloned()
            .collect();
        let mut member: BTreeMap<ItemKey, Vec<String>> = BTreeMap::new();
        for c in &collections {
            for key in self.descendants(c) {
                member.entry(key).or_default().push(c.name.clone());
            }
            for (t, n) in self.current_dependencies(c).iter() {
                if !self.items.contains_key(&(t, n.to_owned())) && c.state.installed() {
                    self.warnings.push(format!(
                        "{} needs {t}:{n}, which is not in the hub index: `rampart hub update` may fix it",
                        c.fq_name()
                    ));
                }
            }
        }
        for (key, mut names) in member {
            names.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
            names.dedup();
            if let Some(it) = self.items.get_mut(&key) {
                it.state.belongs_to_collections = names;
            }
        }
    }

    fn propagate_taint(&mut self) {
        let roots: Vec<ItemKey> = self
            .installed(ItemType::Collections)
            .into_iter()
            .map(|i| (i.kind, i.name.clone()))
            .collect();
        let mut done = BTreeSet::new();
        for key in roots {
            self.check_collection(&key, &mut done, &mut Vec::new());
        }
        let mut notes = Vec::new();
        for c in self.installed(ItemType::Collections) {
            if c.state.local || c.state.tainted {
                continue;
            }
            if let (Some(ix), Some(v)) = (&c.index, &c.state.local_version)
                && *v != ix.version
            {
                notes.push(format!(
                    "update for collection {} available (currently {v}, latest {}): `rampart hub upgrade`",
                    c.name, ix.version
                ));
            }
        }
        self.warnings.extend(notes);
    }

    fn check_collection(
        &mut self,
        key: &ItemKey,
        done: &mut BTreeSet<ItemKey>,
        stack: &mut Vec<ItemKey>,
    ) {
        if done.contains(key) {
            return;
        }
        if stack.contains(key) {
            self.warnings.push(format!(
                "collections:{} is part of a dependency cycle ({}); it is not checked further",
                key.1,
                stack
                    .iter()
                    .map(|k| k.1.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ));
            return;
        }
        let Some(item) = self.items.get(key).cloned() else {
            return;
        };
        // As cscli: only a collection installed at its latest version answers for its
        // sub-items; an older one is "update available", whatever it contains (crowdsec#704).
        if !item.state.installed() || item.state.local || !item.file_is_latest() {
            done.insert(key.clone());
            return;
        }
        stack.push(key.clone());
        let mut culprits = BTreeSet::new();
        let mut outdated = false;
        for (t, n) in self.current_dependencies(&item).iter() {
            let sub_key = (t, n.to_owned());
            if t == ItemType::Collections {
                self.check_collection(&sub_key, done, stack);
            }
            let Some(sub) = self.items.get(&sub_key) else {
                continue;
            };
            if sub.state.tainted {
                if sub.state.tainted_by.is_empty() {
                    culprits.insert(sub.fq_name());
                } else {
                    culprits.extend(sub.state.tainted_by.iter().cloned());
                }
            } else if !sub.state.installed() {
                culprits.insert(sub.fq_name());
            } else if !sub.state.up_to_date && !sub.state.local {
                outdated = true;
            }
        }
        stack.pop();
        if let Some(it) = self.items.get_mut(key) {
            if !culprits.is_empty() {
                it.state.tainted = true;
                it.state.tainted_by = culprits.into_iter().collect();
            }
            if outdated {
                it.state.up_to_date = false;
            }
        }
        done.insert(key.clone());
    }

    /// Items edited in place have their own name in `tainted_by`, as cscli reports them.
    fn name_self_taint(&mut self) {
        for it in self.items.values_mut() {
            if it.state.tainted && it.state.tainted_by.is_empty() {
                it.state.tainted_by = vec![format!("{}:{}", it.kind, it.name)];
            }
        }
    }
}

/// The `name:` of an item file (first document), if it has one.
fn local_name(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        name: Option<String>,
    }
    let docs: Vec<Option<Named>> = serde_saphyr::from_multiple(text).ok()?;
    docs.into_iter()
        .flatten()
        .find_map(|d| d.name)
        .filter(|n| !n.trim().is_empty())
}

fn read_dependencies(path: &Path) -> Option<Dependencies> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_saphyr::from_str::<Dependencies>(&text).ok()
}

/// Every `.yaml`/`.yml` below `dir`, links included (dangling ones too, to report them),
/// skipping hidden directories and not following links to directories, as cscli walks.
fn walk_yaml(dir: &Path, out: &mut Vec<PathBuf>, warnings: &mut Vec<String>) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", dir.display()));
            return;
        }
    };
    for e in rd.flatten() {
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        if p.is_dir() && !is_link {
            if !hidden {
                walk_yaml(&p, out, warnings);
            }
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("crowdsecurity/ssh", "crowdsecurity/sshd"), 1);
    }

    #[test]
    fn texts_match_cscli() {
        let mut s = ItemState::default();
        assert_eq!(s.text(), "disabled,update-available");
        assert_eq!(s.status(), Status::NotInstalled);
        s.local_path = Some("/x".into());
        s.up_to_date = true;
        assert_eq!((s.text().as_str(), s.emoji()), ("enabled", "✔️"));
        s.tainted = true;
        assert_eq!(s.text(), "enabled,tainted");
        assert_eq!(s.status(), Status::Tainted);
        let local = ItemState {
            local_path: Some("/y".into()),
            local: true,
            up_to_date: true,
            ..ItemState::default()
        };
        assert_eq!(
            (local.text().as_str(), local.emoji()),
            ("enabled,local", "🏠")
        );
    }
}
