//! What an install, remove or upgrade will do, decided before anything is touched.
//!
//! Policy (see crowdsec#704, #851 and PR #1089 in `shared/research/user-pains.md`): only items the
//! user asked for, or that a collection they asked for pulls in, are downloaded or enabled; an
//! item edited locally is never replaced or removed without `force`; local items are never
//! touched; `upgrade` only upgrades what is installed.

use std::collections::BTreeSet;

use crate::HubError;
use crate::item::ItemType;
use crate::state::{Item, ItemKey, LocalHub};

/// One change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Fetch the latest version into the hub directory (checked against the index digest).
    Download,
    /// Link the item into the config directory.
    Enable,
    /// Make sure the item's data files are present.
    Data,
    /// Remove the link.
    Disable,
    /// Delete the downloaded file.
    Purge,
}

impl Action {
    /// Verb for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Download => "download",
            Action::Enable => "enable",
            Action::Data => "data",
            Action::Disable => "disable",
            Action::Purge => "purge",
        }
    }
}

/// A change to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What.
    pub action: Action,
    /// Which item.
    pub key: ItemKey,
    /// The version it goes to (downloads).
    pub version: Option<String>,
    /// Replace a file even though it was edited locally.
    pub overwrite: bool,
}

/// How serious a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// For information (already installed, up to date).
    Info,
    /// Something the user asked for was not done, or needs attention.
    Warning,
}

/// A remark made while planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How serious.
    pub level: Level,
    /// The message, naming the item and what to do.
    pub message: String,
}

/// The changes, in order, and the remarks.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Changes.
    pub steps: Vec<Step>,
    /// Remarks.
    pub notes: Vec<Note>,
}

impl Plan {
    fn push(&mut self, action: Action, key: &ItemKey, version: Option<&str>, overwrite: bool) {
        let step = Step {
            action,
            key: key.clone(),
            version: version.map(str::to_owned),
            overwrite,
        };
        if !self.steps.contains(&step) {
            self.steps.push(step);
        }
    }

    fn note(&mut self, level: Level, message: String) {
        if !self.notes.iter().any(|n| n.message == message) {
            self.notes.push(Note { level, message });
        }
    }

    /// True when nothing changes on disk (data checks aside).
    pub fn changes_nothing(&self) -> bool {
        self.steps.iter().all(|s| s.action == Action::Data)
    }
}

/// Options of an install.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    /// Replace edited and outdated files.
    pub force: bool,
    /// Download only, do not enable.
    pub download_only: bool,
    /// Report unknown names as warnings instead of failing.
    pub ignore_missing: bool,
}

fn cmd(item: &Item) -> String {
    format!("rampart {} ", item.kind)
}

impl LocalHub {
    /// Plans installing items of `kind` and everything they pull in.
    pub fn plan_install(
        &self,
        kind: ItemType,
        names: &[String],
        opts: InstallOptions,
    ) -> Result<Plan, HubError> {
        let mut plan = Plan::default();
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            let item = match self.find(kind, name) {
                Ok(i) => i,
                Err(e) if opts.ignore_missing => {
                    plan.note(Level::Warning, e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.closure(item, &mut order, &mut seen, &mut Vec::new())?;
        }
        for key in &order {
            let Some(item) = self.get_key(key) else {
                continue;
            };
            self.plan_one_install(item, opts, &mut plan);
        }
        Ok(plan)
    }

    fn plan_one_install(&self, item: &Item, opts: InstallOptions, plan: &mut Plan) {
        let key = (item.kind, item.name.clone());
        let Some(ix) = &item.index else {
            if item.shadows_hub_item {
                plan.note(
                    Level::Warning,
                    format!(
                        "{} is a local item ({}): the hub version is not installed; move the file away to use it",
                        item.fq_name(),
                        shown(item)
                    ),
                );
            }
            return;
        };
        let st = &item.state;
        let edited = st.local_version.as_deref() == Some("?");
        if st.installed() {
            if edited {
                if opts.force {
                    plan.push(Action::Download, &key, Some(&ix.version), true);
                } else {
                    plan.note(Level::Warning, kept_tainted(item));
                }
            } else if !item.file_is_latest() {
                if opts.force {
                    plan.push(Action::Download, &key, Some(&ix.version), true);
                } else {
                    plan.note(
                        Level::Info,
                        format!(
                            "{} is installed at version {}, the latest is {}: `{}upgrade {}`",
                            item.fq_name(),
                            st.local_version.as_deref().unwrap_or("?"),
                            ix.version,
                            cmd(item),
                            item.name
                        ),
                    );
                }
            }
            plan.push(Action::Data, &key, None, opts.force);
            return;
        }
        if st.downloaded() && edited && !opts.force {
            plan.note(
                Level::Warning,
                format!(
                    "{}: the downloaded copy {} was edited; it is left alone and the item is not enabled (`--force` replaces it with version {})",
                    item.fq_name(),
                    st.download_path.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
                    ix.version
                ),
            );
            return;
        }
        if !item.file_is_latest() || opts.force {
            plan.push(Action::Download, &key, Some(&ix.version), opts.force);
        }
        if !opts.download_only {
            plan.push(Action::Enable, &key, None, false);
            plan.push(Action::Data, &key, None, opts.force);
        }
    }

    /// Post-order walk: dependencies before the collections that need them.
    fn closure(
        &self,
        item: &Item,
        order: &mut Vec<ItemKey>,
        seen: &mut BTreeSet<ItemKey>,
        stack: &mut Vec<ItemKey>,
    ) -> Result<(), HubError> {
        let key = (item.kind, item.name.clone());
        if stack.contains(&key) {
            let mut names: Vec<String> = stack.iter().map(|k| k.1.clone()).collect();
            names.push(key.1.clone());
            return Err(HubError::Invalid(format!(
                "collections form a cycle ({}): the hub index is broken; `rampart hub update` may fix it",
                names.join(" → ")
            )));
        }
        if !seen.insert(key.clone()) {
            return Ok(());
        }
        stack.push(key.clone());
        // The latest version's sub-items: an install brings the latest.
        let deps = item
            .index
            .as_ref()
            .map(|i| i.dependencies.clone())
            .unwrap_or_default();
        let mut missing = Vec::new();
        for (t, n) in deps.iter() {
            match self.get(t, n) {
                Some(sub) => self.closure(sub, order, seen, stack)?,
                None => missing.push(format!("{t}:{n}")),
            }
        }
        stack.pop();
        if !missing.is_empty() {
            return Err(HubError::NotFound {
                message: format!(
                    "{} needs {}, which the hub index does not have: run `rampart hub update`, or check the hub (--hub-url)",
                    item.fq_name(),
                    missing.join(", ")
                ),
            });
        }
        order.push(key);
        Ok(())
    }

    /// Plans removing items (or every installed item of `kind` with `all`).
    pub fn plan_remove(
        &self,
        kind: ItemType,
        names: &[String],
        all: bool,
        purge: bool,
        force: bool,
    ) -> Result<Plan, HubError> {
        let mut plan = Plan::default();
        let targets: Vec<&Item> = if all {
            self.items(kind)
                .into_iter()
                .filter(|i| {
                    !i.state.local && (i.state.installed() || (purge && i.state.downloaded()))
                })
                .collect()
        } else {
            if names.is_empty() {
                return Err(HubError::Invalid(format!(
                    "name at least one {} to remove, or use --all",
                    kind.singular()
                )));
            }
            names
                .iter()
                .map(|n| self.find(kind, n))
                .collect::<Result<_, _>>()?
        };
        let mut done = BTreeSet::new();
        for item in targets {
            if !force && !all {
                let parents: Vec<&str> = item
                    .state
                    .belongs_to_collections
                    .iter()
                    .filter(|c| {
                        self.get(ItemType::Collections, c)
                            .is_some_and(|c| c.state.installed())
                    })
                    .map(String::as_str)
                    .collect();
                if !parents.is_empty() && item.state.installed() {
                    plan.note(
                        Level::Warning,
                        format!(
                            "{} was not removed: it belongs to the installed collection(s) {}; remove those, or `{}remove {} --force`",
                            item.fq_name(),
                            parents.join(", "),
                            cmd(item),
                            item.name
                        ),
                    );
                    continue;
                }
            }
            self.plan_one_remove(item, purge, force, &mut plan, &mut done);
        }
        Ok(plan)
    }

    fn plan_one_remove(
        &self,
        item: &Item,
        purge: bool,
        force: bool,
        plan: &mut Plan,
        done: &mut BTreeSet<ItemKey>,
    ) {
        let key = (item.kind, item.name.clone());
        if !done.insert(key.clone()) {
            return;
        }
        if item.state.local {
            plan.note(
                Level::Warning,
                format!(
                    "{} is a local item ({}): hub commands do not remove it; delete the file yourself",
                    item.fq_name(),
                    shown(item)
                ),
            );
            return;
        }
        if !item.state.installed() {
            if purge && item.state.downloaded() {
                plan.push(Action::Purge, &key, None, force);
            } else {
                plan.note(Level::Info, format!("{} is not installed", item.fq_name()));
            }
            return;
        }
        if item.state.local_version.as_deref() == Some("?") && !force {
            plan.note(
                Level::Warning,
                format!(
                    "{} was not removed: it was edited locally ({}); `{}inspect {} --diff` shows the changes, `--force` removes it anyway",
                    item.fq_name(),
                    shown(item),
                    cmd(item),
                    item.name
                ),
            );
            return;
        }
        plan.push(Action::Disable, &key, None, force);
        if purge {
            plan.push(Action::Purge, &key, None, force);
        }
        if item.kind == ItemType::Collections {
            for sub in self.safe_to_remove(item) {
                if let Some(sub) = self.get_key(&sub) {
                    self.plan_one_remove(sub, purge, force, plan, done);
                }
            }
        }
    }

    /// Sub-items of `item` that no other installed collection needs (cscli's rule: a collection
    /// that is itself an ancestor or a descendant of `item` does not count).
    fn safe_to_remove(&self, item: &Item) -> Vec<ItemKey> {
        let descendants = self.descendants(item);
        let ancestors = &item.state.belongs_to_collections;
        let mut out = Vec::new();
        for (t, n) in self.current_dependencies(item).iter() {
            let Some(sub) = self.get(t, n) else {
                continue;
            };
            let blocked = sub.state.belongs_to_collections.iter().any(|parent| {
                parent != &item.name
                    && !ancestors.contains(parent)
                    && !descendants.contains(&(ItemType::Collections, parent.clone()))
                    && self
                        .get(ItemType::Collections, parent)
                        .is_some_and(|p| p.state.installed())
            });
            if !blocked {
                out.push((t, n.to_owned()));
            }
        }
        out
    }

    /// Plans upgrading installed items of `kind` (every one with `all`), collections with the
    /// sub-items their latest version adds.
    pub fn plan_upgrade(
        &self,
        kind: ItemType,
        names: &[String],
        all: bool,
        force: bool,
    ) -> Result<Plan, HubError> {
        let targets: Vec<&Item> = if all || names.is_empty() {
            if !all {
                return Err(HubError::Invalid(format!(
                    "name at least one {} to upgrade, or use --all",
                    kind.singular()
                )));
            }
            self.installed(kind)
        } else {
            names
                .iter()
                .map(|n| self.find(kind, n))
                .collect::<Result<_, _>>()?
        };
        let mut plan = Plan::default();
        let mut seen = BTreeSet::new();
        for item in targets {
            if !item.state.installed() {
                plan.note(
                    Level::Warning,
                    format!(
                        "{} is not installed: `{}install {}`",
                        item.fq_name(),
                        cmd(item),
                        item.name
                    ),
                );
                continue;
            }
            let before = plan.steps.len();
            self.upgrade_rec(item, force, &mut plan, &mut seen)?;
            if plan.steps[before..]
                .iter()
                .all(|s| s.action == Action::Data)
                && !item.state.local
                && !item.state.tainted
                && !all
            {
                plan.note(Level::Info, format!("{} is up to date", item.fq_name()));
            }
        }
        Ok(plan)
    }

    /// Plans `hub upgrade`: every installed item of every type.
    pub fn plan_upgrade_all(&self, force: bool) -> Result<Plan, HubError> {
        let mut plan = Plan::default();
        let mut seen = BTreeSet::new();
        for kind in ItemType::ALL {
            for item in self.installed(kind) {
                self.upgrade_rec(item, force, &mut plan, &mut seen)?;
            }
        }
        Ok(plan)
    }

    fn upgrade_rec(
        &self,
        item: &Item,
        force: bool,
        plan: &mut Plan,
        seen: &mut BTreeSet<ItemKey>,
    ) -> Result<(), HubError> {
        let key = (item.kind, item.name.clone());
        if !seen.insert(key.clone()) {
            return Ok(());
        }
        let Some(ix) = &item.index else {
            return Ok(());
        };
        let edited = item.state.local_version.as_deref() == Some("?");
        if edited && !force {
            plan.note(Level::Warning, kept_tainted(item));
        } else if !item.file_is_latest() || (edited && force) {
            plan.push(Action::Download, &key, Some(&ix.version), force);
        }
        if item.kind == ItemType::Collections && (!edited || force) {
            for (t, n) in ix.dependencies.iter() {
                let Some(sub) = self.get(t, n) else {
                    return Err(HubError::NotFound {
                        message: format!(
                            "{} needs {t}:{n}, which the hub index does not have: run `rampart hub update`",
                            item.fq_name()
                        ),
                    });
                };
                if sub.state.installed() {
                    self.upgrade_rec(sub, force, plan, seen)?;
                } else {
                    // Items the new version of the collection added.
                    let mut order = Vec::new();
                    let mut s2 = BTreeSet::new();
                    self.closure(sub, &mut order, &mut s2, &mut Vec::new())?;
                    for k in order {
                        if let Some(i) = self.get_key(&k) {
                            if i.state.installed() {
                                self.upgrade_rec(i, force, plan, seen)?;
                            } else if seen.insert(k.clone()) {
                                self.plan_one_install(i, InstallOptions::default(), plan);
                            }
                        }
                    }
                }
            }
        }
        if !item.state.local {
            plan.push(Action::Data, &key, None, false);
        }
        Ok(())
    }
}

fn shown(item: &Item) -> String {
    item.state
        .local_path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn kept_tainted(item: &Item) -> String {
    format!(
        "{} was left as it is: it was edited locally ({}); `{}inspect {} --diff` shows the changes, `--force` replaces them with the latest version",
        item.fq_name(),
        shown(item),
        cmd(item),
        item.name
    )
}
