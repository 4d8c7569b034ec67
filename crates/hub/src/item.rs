//! Hub item types and what the index says about one item.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::HubError;

/// The kinds of hub items, named as their directories and index keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemType {
    /// `parsers/<stage>/`
    Parsers,
    /// `postoverflows/<stage>/`
    PostOverflows,
    /// `scenarios/`
    Scenarios,
    /// `contexts/` (alert context for the console)
    Contexts,
    /// `appsec-configs/`
    AppsecConfigs,
    /// `appsec-rules/`
    AppsecRules,
    /// `collections/`: items that pull in other items.
    Collections,
}

impl ItemType {
    /// Every type, in CrowdSec's order: sub-items before the collections that hold them.
    pub const ALL: [ItemType; 7] = [
        ItemType::Parsers,
        ItemType::PostOverflows,
        ItemType::Scenarios,
        ItemType::Contexts,
        ItemType::AppsecConfigs,
        ItemType::AppsecRules,
        ItemType::Collections,
    ];

    /// Directory and index key (`parsers`).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Parsers => "parsers",
            ItemType::PostOverflows => "postoverflows",
            ItemType::Scenarios => "scenarios",
            ItemType::Contexts => "contexts",
            ItemType::AppsecConfigs => "appsec-configs",
            ItemType::AppsecRules => "appsec-rules",
            ItemType::Collections => "collections",
        }
    }

    /// One of them (`parser`).
    pub fn singular(self) -> &'static str {
        match self {
            ItemType::Parsers => "parser",
            ItemType::PostOverflows => "postoverflow",
            ItemType::Scenarios => "scenario",
            ItemType::Contexts => "context",
            ItemType::AppsecConfigs => "appsec-config",
            ItemType::AppsecRules => "appsec-rule",
            ItemType::Collections => "collection",
        }
    }

    /// The type named `s` (`parsers`).
    pub fn parse(s: &str) -> Option<ItemType> {
        ItemType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Parsers and postoverflows are installed under a stage directory.
    pub fn has_stage(self) -> bool {
        matches!(self, ItemType::Parsers | ItemType::PostOverflows)
    }
}

impl std::fmt::Display for ItemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One known version of an item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// sha256 (hex) of the item file at that version.
    #[serde(default)]
    pub digest: String,
    /// Deprecated versions still identify installed files.
    #[serde(default)]
    pub deprecated: bool,
}

/// A data file an item needs, as Rampart's own index lists them (CrowdSec's index does not;
/// there they are read from the item's `data:` entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexData {
    /// File name in the data directory.
    #[serde(default)]
    pub dest_file: String,
    /// Path of the file in the hub, relative to its root.
    #[serde(default)]
    pub path: Option<String>,
    /// sha256 of the file.
    #[serde(default)]
    pub digest: Option<String>,
    /// Upstream URL.
    #[serde(default)]
    pub source_url: Option<String>,
}

/// Items a collection pulls in, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// Parser names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub parsers: Vec<String>,
    /// Postoverflow names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub postoverflows: Vec<String>,
    /// Scenario names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub scenarios: Vec<String>,
    /// Collection names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub collections: Vec<String>,
    /// Context names.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub contexts: Vec<String>,
    /// Appsec configuration names.
    #[serde(
        default,
        rename = "appsec-configs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub appsec_configs: Vec<String>,
    /// Appsec rule names.
    #[serde(
        default,
        rename = "appsec-rules",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub appsec_rules: Vec<String>,
}

impl Dependencies {
    /// Every (type, name), in [`ItemType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ItemType, &str)> {
        ItemType::ALL
            .into_iter()
            .flat_map(move |t| self.of(t).iter().map(move |n| (t, n.as_str())))
    }

    /// Names of one type.
    pub fn of(&self, t: ItemType) -> &[String] {
        match t {
            ItemType::Parsers => &self.parsers,
            ItemType::PostOverflows => &self.postoverflows,
            ItemType::Scenarios => &self.scenarios,
            ItemType::Contexts => &self.contexts,
            ItemType::AppsecConfigs => &self.appsec_configs,
            ItemType::AppsecRules => &self.appsec_rules,
            ItemType::Collections => &self.collections,
        }
    }

    /// True when the collection pulls in nothing.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Hub indexes write `null` for an empty list.
fn null_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// What `.index.json` says about one item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexItem {
    /// Path in the hub (`parsers/s01-parse/crowdsecurity/sshd-logs.yaml`).
    pub path: String,
    /// Stage (parsers and postoverflows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Latest version.
    pub version: String,
    /// Every published version with its digest.
    #[serde(default)]
    pub versions: BTreeMap<String, VersionInfo>,
    /// Author (the path's author directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// One-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base64 Markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    /// Base64 of the latest file, when the index was fetched with content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Scenario labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<serde_json::Value>,
    /// Links.
    #[serde(
        default,
        deserialize_with = "null_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub references: Vec<String>,
    /// Sub-items (collections).
    #[serde(flatten)]
    pub dependencies: Dependencies,
    /// Data files (Rampart's index only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<IndexData>,
}

impl IndexItem {
    /// File name the item is installed under (`sshd-logs.yaml`).
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Digest of the latest version, when the index has one.
    pub fn latest_digest(&self) -> Option<&str> {
        self.versions
            .get(&self.version)
            .map(|v| v.digest.as_str())
            .filter(|d| !d.is_empty())
    }

    /// The version whose digest is `digest`, newest first (two versions may share a file).
    pub fn version_of(&self, digest: &str) -> Option<&str> {
        let mut known: Vec<&String> = self
            .versions
            .iter()
            .filter(|(_, v)| v.digest.eq_ignore_ascii_case(digest))
            .map(|(k, _)| k)
            .collect();
        known.sort_by(|a, b| compare_versions(b, a));
        known.first().map(|v| v.as_str())
    }
}

/// Orders hub versions (`0.9` < `0.10` < `1.0`) by numeric components; non-numeric parts
/// compare as text so that odd versions still sort deterministically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut x = a.trim_start_matches('v').split('.');
    let mut y = b.trim_start_matches('v').split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (Some(p), None) => {
                if p.trim_start_matches('0').is_empty() {
                    continue;
                }
                return Ordering::Greater;
            }
            (None, Some(q)) => {
                if q.trim_start_matches('0').is_empty() {
                    continue;
                }
                return Ordering::Less;
            }
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// `base/rel`, refusing a `rel` that is absolute or climbs out with `..`: index paths, item
/// names and data file names come from the network.
pub(crate) fn safe_join(base: &Path, rel: &str) -> Result<PathBuf, HubError> {
    let p = Path::new(rel);
    let ok = !rel.is_empty()
        && !rel.contains('\0')
        && !rel.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(HubError::Invalid(format!(
            "refusing path {rel:?}: it must stay inside {} (the hub index or item is malformed)",
            base.display()
        )));
    }
    Ok(base.join(p))
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("0.9", "0.10"), Ordering::Less);
        assert_eq!(compare_versions("1.0", "1"), Ordering::Equal);
        assert_eq!(compare_versions("2.1", "2.0"), Ordering::Greater);
        assert_eq!(compare_versions("v1.2", "1.2"), Ordering::Equal);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let base = Path::new("/hub");
        assert!(safe_join(base, "parsers/s01/x.yaml").is_ok());
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "", "a\\b"] {
            assert!(safe_join(base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn newest_version_wins_when_digests_collide() {
        let mut it = IndexItem {
            version: "0.3".into(),
            ..IndexItem::default()
        };
        for (v, d) in [("0.1", "aa"), ("0.2", "bb"), ("0.3", "bb")] {
            it.versions.insert(
                v.into(),
                VersionInfo {
                    digest: d.into(),
                    deprecated: false,
                },
            );
        }
        assert_eq!(it.version_of("bb"), Some("0.3"));
        assert_eq!(it.version_of("AA"), Some("0.1"));
        assert_eq!(it.version_of("cc"), None);
    }
}
