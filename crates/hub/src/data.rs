//! Data files (`data:` entries of parsers, scenarios and postoverflows) and grok patterns.

use serde::Deserialize;

/// One `data:` entry of an item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataEntry {
    /// Where CrowdSec downloads it from.
    #[serde(default)]
    pub source_url: Option<String>,
    /// File name in the data directory.
    pub dest_file: String,
    /// `string`, `regexp`, `map`... (absent for files only enrichers open, such as GeoIP).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// The `data:` entries of every document of an item file, each file once.
pub fn data_entries(text: &str) -> Result<Vec<DataEntry>, String> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        data: Option<Vec<DataEntry>>,
    }
    let docs: Vec<Option<Doc>> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    let mut out: Vec<DataEntry> = Vec::new();
    for d in docs.into_iter().flatten() {
        for e in d.data.unwrap_or_default() {
            if !e.dest_file.is_empty() && !out.iter().any(|o| o.dest_file == e.dest_file) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// The path part of a data URL (`https://hub-data.crowdsec.net/web/x.txt` → `web/x.txt`),
/// which is where a hub mirror keeps the file.
pub(crate) fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/')?.1;
    let path = path.split(['?', '#']).next().unwrap_or(path);
    (!path.is_empty()).then_some(path)
}

/// Pattern files CrowdSec ships in `config/patterns` (the hub does not carry them; a hub
/// mirror may, under `patterns/`), plus the one Rampart's own hub adds.
pub const PATTERN_FILES: &[&str] = &[
    "aws",
    "bacula",
    "bro",
    "cowrie_honeypot",
    "exim",
    "firewalls",
    "haproxy",
    "java",
    "junos",
    "linux-syslog",
    "mcollective",
    "modsecurity",
    "mongodb",
    "mysql",
    "nagios",
    "nginx",
    "paths",
    "postgresql",
    "rails",
    "redis",
    "ruby",
    "smb",
    "ssh",
    "tcpdump",
    "rampart",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_from_every_document() {
        let text = "name: a\ndata:\n  - source_url: https://h.example/web/x.txt\n    dest_file: x.txt\n    type: string\n---\nname: b\ndata:\n  - dest_file: x.txt\n  - dest_file: GeoLite2-City.mmdb\n    source_url: https://h.example/mmdb/GeoLite2-City.mmdb\n---\nname: c\n";
        let e = data_entries(text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].kind.as_deref(), Some("string"));
        assert_eq!(e[1].dest_file, "GeoLite2-City.mmdb");
    }

    #[test]
    fn url_paths() {
        assert_eq!(
            url_path("https://hub-data.crowdsec.net/web/x.txt?x=1"),
            Some("web/x.txt")
        );
        assert_eq!(url_path("https://host"), None);
    }
}
