//! `.index.json`: item type → item name → [`IndexItem`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::HubError;
use crate::item::{IndexItem, ItemType, safe_join};

/// A parsed hub index. Items the index describes badly are left out and reported in
/// [`Index::warnings`], so one broken entry upstream does not stop every hub command.
#[derive(Debug, Clone, Default)]
pub struct Index {
    items: BTreeMap<ItemType, BTreeMap<String, IndexItem>>,
    /// Entries that were skipped, and why.
    pub warnings: Vec<String>,
}

impl Index {
    /// Parses index text; `origin` (file or URL) is named in errors.
    pub fn parse(text: &[u8], origin: &str) -> Result<Index, HubError> {
        let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(text)
            .map_err(|e| HubError::BadIndex {
                origin: origin.to_owned(),
                message: format!("line {} column {}: {e}", e.line(), e.column()),
            })?;
        let mut index = Index::default();
        let mut known_types = 0;
        for (key, value) in raw {
            let Some(kind) = ItemType::parse(&key) else {
                // Types from newer hubs that this version does not manage.
                continue;
            };
            known_types += 1;
            let serde_json::Value::Object(entries) = value else {
                return Err(HubError::BadIndex {
                    origin: origin.to_owned(),
                    message: format!("\"{key}\" is not an object of items"),
                });
            };
            let map = index.items.entry(kind).or_default();
            for (name, v) in entries {
                match serde_json::from_value::<IndexItem>(v) {
                    Ok(item) => match validate(kind, &name, &item) {
                        Ok(()) => {
                            map.insert(name, item);
                        }
                        Err(why) => index
                            .warnings
                            .push(format!("{origin}: {kind}:{name} skipped: {why}")),
                    },
                    Err(e) => index
                        .warnings
                        .push(format!("{origin}: {kind}:{name} skipped: {e}")),
                }
            }
        }
        if known_types == 0 {
            return Err(HubError::BadIndex {
                origin: origin.to_owned(),
                message: "it has none of the item types (parsers, scenarios, collections...)"
                    .into(),
            });
        }
        Ok(index)
    }

    /// Reads an index file.
    pub fn load(path: &Path) -> Result<Index, HubError> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                HubError::NoIndex {
                    path: path.to_path_buf(),
                }
            } else {
                HubError::io(path, e)
            }
        })?;
        Index::parse(&bytes, &path.display().to_string())
    }

    /// One item.
    pub fn get(&self, kind: ItemType, name: &str) -> Option<&IndexItem> {
        self.items.get(&kind)?.get(name)
    }

    /// Items of one type, by name.
    pub fn of(&self, kind: ItemType) -> impl Iterator<Item = (&String, &IndexItem)> {
        self.items.get(&kind).into_iter().flatten()
    }

    /// Number of items of one type.
    pub fn count(&self, kind: ItemType) -> usize {
        self.items.get(&kind).map_or(0, BTreeMap::len)
    }
}

fn validate(kind: ItemType, name: &str, item: &IndexItem) -> Result<(), String> {
    safe_join(Path::new("."), name).map_err(|e| e.to_string())?;
    safe_join(Path::new("."), &item.path).map_err(|e| e.to_string())?;
    if !item.path.starts_with(&format!("{}/", kind.as_str())) {
        return Err(format!("path {:?} is not under {kind}/", item.path));
    }
    if !(item.path.ends_with(".yaml") || item.path.ends_with(".yml")) {
        return Err(format!("path {:?} is not a YAML file", item.path));
    }
    if kind.has_stage() && item.stage.as_deref().is_none_or(str::is_empty) {
        return Err("no stage".into());
    }
    if let Some(stage) = &item.stage {
        safe_join(Path::new("."), stage).map_err(|e| e.to_string())?;
        if stage.contains('/') {
            return Err(format!("stage {stage:?} has a slash"));
        }
    }
    if item.version.is_empty() {
        return Err("no version".into());
    }
    if item.latest_digest().is_none() {
        return Err(format!("no digest for its latest version {}", item.version));
    }
    for d in item.dependencies.iter() {
        safe_join(Path::new("."), d.1).map_err(|e| format!("dependency {}: {e}", d.1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_entries_are_skipped_with_a_reason() {
        let text = br#"{
          "parsers": {
            "a/good": {"path": "parsers/s01-parse/a/good.yaml", "stage": "s01-parse", "version": "0.1",
                       "versions": {"0.1": {"digest": "ab"}}},
            "a/escape": {"path": "parsers/../../etc/x.yaml", "stage": "s01-parse", "version": "0.1",
                       "versions": {"0.1": {"digest": "ab"}}},
            "a/nostage": {"path": "parsers/a/x.yaml", "version": "0.1", "versions": {"0.1": {"digest": "ab"}}}
          },
          "collections": {
            "a/c": {"path": "collections/a/c.yaml", "version": "0.2", "versions": {"0.2": {"digest": "cd"}},
                    "parsers": ["a/good"], "scenarios": null}
          },
          "future-type": {}
        }"#;
        let idx = Index::parse(text, "test").unwrap();
        assert!(idx.get(ItemType::Parsers, "a/good").is_some());
        assert_eq!(idx.count(ItemType::Parsers), 1);
        assert_eq!(idx.warnings.len(), 2, "{:?}", idx.warnings);
        let c = idx.get(ItemType::Collections, "a/c").unwrap();
        assert_eq!(c.dependencies.parsers, vec!["a/good".to_owned()]);
        assert!(c.dependencies.scenarios.is_empty());
    }

    #[test]
    fn not_json_names_line_and_column() {
        let e = Index::parse(b"{\n  \"parsers\": [", "/h/.index.json").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("/h/.index.json") && m.contains("line 2"), "{m}");
        assert!(m.contains("rampart hub update"), "{m}");
    }
}
