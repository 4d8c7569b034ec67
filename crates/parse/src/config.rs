//! CrowdSec parser YAML, as written in the hub. Unknown keys are ignored (hub compatibility); the
//! compiler in `node.rs` validates what the keys mean.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

/// A map that keeps the file's order (pattern definitions may reference earlier ones).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of pattern names to grok patterns")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// One node (a top-level document or a child in `nodes`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// Node name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Format version.
    pub format: Option<serde_json::Value>,
    /// Per-node debug.
    pub debug: bool,
    /// Entry condition.
    pub filter: Option<String>,
    /// `continue` or `next_stage`.
    pub onsuccess: Option<String>,
    /// Patterns added to the shared grok library.
    pub pattern_syntax: Ordered,
    /// The grok step.
    pub grok: Option<GrokConfig>,
    /// Children.
    pub nodes: Vec<NodeConfig>,
    /// Statics applied on success.
    pub statics: Vec<StaticConfig>,
    /// Whitelist.
    pub whitelist: Option<WhitelistConfig>,
    /// Stash entries.
    pub stash: Vec<StashConfig>,
    /// Data files.
    pub data: Vec<DataConfig>,
}

/// `grok:` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GrokConfig {
    /// Inline pattern.
    pub pattern: Option<String>,
    /// Library pattern name.
    pub name: Option<String>,
    /// Field the pattern applies to (`Line.Raw` or a key of Parsed).
    pub apply_on: Option<String>,
    /// Expression whose string result the pattern applies to.
    pub expression: Option<String>,
    /// Statics applied when the pattern matched.
    pub statics: Vec<StaticConfig>,
}

/// One static: one target and one source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StaticConfig {
    /// `evt.Meta[key]`.
    pub meta: Option<String>,
    /// `evt.Parsed[key]`.
    pub parsed: Option<String>,
    /// `evt.Enriched[key]`.
    pub enriched: Option<String>,
    /// Any string field by path.
    pub target: Option<String>,
    /// An enrichment method.
    pub method: Option<String>,
    /// A literal value.
    pub value: Option<serde_json::Value>,
    /// An expression.
    pub expression: Option<String>,
}

/// `whitelist:` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WhitelistConfig {
    /// Reason reported for whitelisted events.
    pub reason: String,
    /// Exact IPs.
    pub ip: Vec<String>,
    /// Ranges.
    pub cidr: Vec<String>,
    /// Expressions.
    pub expression: Vec<String>,
}

/// `stash:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StashConfig {
    /// Cache name.
    pub name: String,
    /// Key expression.
    pub key: String,
    /// Value expression.
    pub value: String,
    /// Time to live (Go duration).
    pub ttl: String,
    /// Maximum entries.
    pub size: Option<usize>,
    /// Eviction strategy (LRU only; others are read as LRU).
    pub strategy: Option<String>,
}

/// `data:` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DataConfig {
    /// Where cscli downloads it from (unused at run time).
    pub source_url: Option<String>,
    /// File name in the data directory.
    pub dest_file: String,
    /// `string`, `regexp`/`regex`, `map`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}
