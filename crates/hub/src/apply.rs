//! Carrying out a [`Plan`]: fetch and check every item first, then write, link, and fetch data
//! files and patterns. A failed fetch or a digest mismatch stops before anything is written;
//! a data file that cannot be fetched is a warning (the item loads with it empty, as in
//! CrowdSec), because offline hubs rarely carry the large ones (GeoIP databases).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::HubError;
use crate::data::{DataEntry, PATTERN_FILES, data_entries, url_path};
use crate::index::Index;
use crate::item::{IndexItem, ItemType, safe_join, sha256_hex};
use crate::layout::{Layout, canonical};
use crate::plan::{Action, Plan};
use crate::source::HubSource;
use crate::state::{Item, LocalHub};

/// Progress of long operations, for the caller to draw.
pub trait Progress {
    /// A phase of `total` steps begins.
    fn start(&self, label: &str, total: u64);
    /// One step done.
    fn advance(&self, what: &str);
    /// The phase is over.
    fn finish(&self);
}

/// Draws nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str) {}
    fn finish(&self) {}
}

/// Where content comes from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The hub.
    pub hub: &'a HubSource,
    /// Where data files are looked up first, by the path of their URL (`web/x.txt`); by
    /// default the hub directory's `data/` when the hub is a directory.
    pub data_mirror: Option<&'a HubSource>,
}

/// One thing that was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// `download`, `enable`, `disable`, `purge`, `data`, `pattern`.
    pub action: &'static str,
    /// `type:name`, or a file name for data files and patterns.
    pub what: String,
    /// Version (downloads) or the item a data file is for.
    pub detail: String,
}

/// What an operation did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Changes made, in order.
    pub done: Vec<Done>,
    /// Things not done, or needing attention.
    pub warnings: Vec<String>,
}

struct Fetched {
    path: PathBuf,
    bytes: Vec<u8>,
    in_place: bool,
}

/// Carries out `plan` against the hub `hub` was loaded from.
pub async fn apply(
    hub: &LocalHub,
    plan: &Plan,
    sources: Sources<'_>,
    progress: &dyn Progress,
) -> Result<Report, HubError> {
    let layout = hub.layout();
    let mut report = Report::default();
    let in_place = sources.hub.is_dir(&layout.hub_dir);

    // 1. Fetch and check every download before touching anything.
    let downloads: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Download)
        .collect();
    let mut fetched: Vec<(crate::state::ItemKey, Fetched)> = Vec::new();
    if !downloads.is_empty() {
        progress.start("fetching items", downloads.len() as u64);
    }
    for step in &downloads {
        let item = item_of(hub, &step.key)?;
        let ix = index_of(item)?;
        let path = layout.download_path(ix)?;
        let bytes = latest_content(item, ix, sources.hub, &path, in_place).await?;
        fetched.push((
            step.key.clone(),
            Fetched {
                path,
                bytes,
                in_place,
            },
        ));
        progress.advance(&item.fq_name());
    }
    if !downloads.is_empty() {
        progress.finish();
    }

    // 2. Write downloads.
    for (key, f) in &fetched {
        let item = item_of(hub, key)?;
        if !f.in_place {
            write_atomic(&f.path, &f.bytes)?;
        }
        report.done.push(Done {
            action: "download",
            what: item.fq_name(),
            detail: item
                .index
                .as_ref()
                .map(|i| i.version.clone())
                .unwrap_or_default(),
        });
    }

    // 3. Links, in plan order.
    for step in &plan.steps {
        let item = item_of(hub, &step.key)?;
        match step.action {
            Action::Disable => {
                if let Some(link) = &item.state.local_path {
                    let is_link =
                        std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink());
                    if is_link {
                        std::fs::remove_file(link).map_err(|e| HubError::io(link, e))?;
                        report.done.push(Done {
                            action: "disable",
                            what: item.fq_name(),
                            detail: String::new(),
                        });
                    } else {
                        report.warnings.push(format!(
                            "{} was not disabled: {} is not a link into the hub",
                            item.fq_name(),
                            link.display()
                        ));
                    }
                }
            }
            Action::Purge => {
                let Some(p) = &item.state.download_path else {
                    continue;
                };
                if in_place {
                    report.warnings.push(format!(
                        "{} was not purged: the hub directory {} is the hub itself (--hub-url), which is never written to",
                        item.fq_name(),
                        layout.hub_dir.display()
                    ));
                    continue;
                }
                match std::fs::remove_file(p) {
                    Ok(()) => report.done.push(Done {
                        action: "purge",
                        what: item.fq_name(),
                        detail: String::new(),
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(HubError::io(p, e)),
                }
            }
            Action::Enable => {
                let ix = index_of(item)?;
                let link = layout.install_path(item.kind, ix)?;
                let target = layout.download_path(ix)?;
                if link_into(&link, &target, &layout.hub_dir)? {
                    report.done.push(Done {
                        action: "enable",
                        what: item.fq_name(),
                        detail: String::new(),
                    });
                }
            }
            Action::Download | Action::Data => {}
        }
    }

    // 4. Data files of every item that is (now) installed.
    let mut wanted: Vec<(String, DataEntry, bool, Option<&IndexItem>)> = Vec::new();
    let mut seen = BTreeSet::new();
    for step in plan.steps.iter().filter(|s| s.action == Action::Data) {
        let item = item_of(hub, &step.key)?;
        let Some(ix) = &item.index else {
            continue;
        };
        let text = match fetched.iter().find(|(k, _)| *k == step.key) {
            Some((_, f)) => String::from_utf8_lossy(&f.bytes).into_owned(),
            None => match std::fs::read_to_string(layout.download_path(ix)?) {
                Ok(t) => t,
                Err(_) => continue,
            },
        };
        let entries = match data_entries(&text) {
            Ok(e) => e,
            Err(e) => {
                report.warnings.push(format!(
                    "{}: cannot read its data entries ({e}); its data files were not fetched",
                    item.fq_name()
                ));
                continue;
            }
        };
        for e in entries {
            if seen.insert(e.dest_file.clone()) {
                wanted.push((item.fq_name(), e, step.overwrite, Some(ix)));
            }
        }
    }
    let mut todo = Vec::new();
    for (owner, entry, overwrite, ix) in wanted {
        let dest = match layout.data_path(&entry.dest_file) {
            Ok(d) => d,
            Err(e) => {
                report.warnings.push(format!("{owner}: {e}"));
                continue;
            }
        };
        if dest.is_file() && !overwrite {
            continue;
        }
        todo.push((owner, entry, dest, ix));
    }
    if !todo.is_empty() {
        progress.start("fetching data files", todo.len() as u64);
    }
    for (owner, entry, dest, ix) in &todo {
        match fetch_data(entry, *ix, sources).await {
            Ok(bytes) => {
                write_atomic(dest, &bytes)?;
                report.done.push(Done {
                    action: "data",
                    what: entry.dest_file.clone(),
                    detail: owner.clone(),
                });
            }
            Err(why) => report.warnings.push(format!(
                "data file {} for {owner} is missing ({why}); the item is installed and runs without it until it is in place: download {} to {}, or point --data-url at a copy",
                entry.dest_file,
                entry.source_url.as_deref().unwrap_or("it"),
                dest.display()
            )),
        }
        progress.advance(&entry.dest_file);
    }
    if !todo.is_empty() {
        progress.finish();
    }

    // 5. Grok patterns, which the hub's parsers need but the hub index does not list.
    let enabled: Vec<&Item> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Enable)
        .filter_map(|s| hub.get_key(&s.key))
        .collect();
    if !enabled.is_empty() {
        ensure_patterns(layout, sources.hub, &mut report).await?;
        let crowdsec_items = enabled.iter().any(|i| {
            i.kind == ItemType::Parsers
                && i.index.as_ref().and_then(|x| x.author.as_deref()) != Some("rampart")
        });
        let missing: Vec<&str> = PATTERN_FILES
            .iter()
            .copied()
            .filter(|f| *f != "rampart" && !layout.pattern_dir.join(f).is_file())
            .collect();
        if crowdsec_items && missing.len() == PATTERN_FILES.len() - 1 {
            report.warnings.push(format!(
                "no CrowdSec grok pattern files in {} (linux-syslog, ssh, nginx...): the hub's parsers need them; copy CrowdSec's config/patterns there (Debian: /etc/crowdsec/patterns), or install from a hub directory that has patterns/ (--hub-url DIR)",
                layout.pattern_dir.display()
            ));
        }
    }
    Ok(report)
}

fn item_of<'h>(hub: &'h LocalHub, key: &crate::state::ItemKey) -> Result<&'h Item, HubError> {
    hub.get_key(key).ok_or_else(|| HubError::NotFound {
        message: format!("{}:{} vanished from the hub", key.0, key.1),
    })
}

fn index_of(item: &Item) -> Result<&IndexItem, HubError> {
    item.index.as_ref().ok_or_else(|| {
        HubError::Conflict(format!(
            "{} is a local item: hub commands leave it alone",
            item.fq_name()
        ))
    })
}

/// The latest version of an item, checked against its digest: the index's embedded content
/// when it matches, else the hub's file.
async fn latest_content(
    item: &Item,
    ix: &IndexItem,
    source: &HubSource,
    hub_path: &Path,
    in_place: bool,
) -> Result<Vec<u8>, HubError> {
    let want = ix.latest_digest().unwrap_or_default();
    if let Some(c) = &ix.content
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(c.trim())
        && sha256_hex(&bytes).eq_ignore_ascii_case(want)
    {
        return Ok(bytes);
    }
    let (bytes, origin) = if in_place {
        (
            std::fs::read(hub_path).map_err(|e| HubError::Fetch {
                url: hub_path.display().to_string(),
                message: e.to_string(),
                hint: Some("the hub directory lacks a file its index lists"),
            })?,
            hub_path.display().to_string(),
        )
    } else {
        (source.fetch(&ix.path).await?, source.location(&ix.path))
    };
    let got = sha256_hex(&bytes);
    if !got.eq_ignore_ascii_case(want) {
        return Err(HubError::HashMismatch {
            item: item.fq_name(),
            version: ix.version.clone(),
            origin,
            got,
            want: want.to_owned(),
        });
    }
    Ok(bytes)
}

/// The latest version of an installed item as the hub has it, for `inspect --diff`.
pub async fn pristine_content(
    item: &Item,
    sources: Sources<'_>,
) -> Result<(Vec<u8>, String), HubError> {
    let ix = index_of(item)?;
    if let Some(c) = &ix.content
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(c.trim())
    {
        return Ok((bytes, format!("{} {} (index)", item.fq_name(), ix.version)));
    }
    let bytes = sources.hub.fetch(&ix.path).await?;
    Ok((bytes, sources.hub.location(&ix.path)))
}

/// Creates `link` → `target`; false when it already was. Anything else at `link` (a file, a
/// link elsewhere) is the user's and is reported, not replaced.
fn link_into(link: &Path, target: &Path, hub_dir: &Path) -> Result<bool, HubError> {
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if meta.file_type().is_symlink() {
            let current = std::fs::read_link(link).map_err(|e| HubError::io(link, e))?;
            if current == target {
                return Ok(false);
            }
            let resolved = if current.is_absolute() {
                current.clone()
            } else {
                link.parent().map_or(current.clone(), |p| p.join(&current))
            };
            // Our own link to an older path, or one whose target is gone: safe to replace.
            let ours = canonical(&resolved).starts_with(canonical(hub_dir)) || !resolved.exists();
            if !ours {
                return Err(HubError::Conflict(format!(
                    "{} already links to {}, outside the hub directory: it is a local item; move it away, then install again",
                    link.display(),
                    current.display()
                )));
            }
            std::fs::remove_file(link).map_err(|e| HubError::io(link, e))?;
        } else {
            return Err(HubError::Conflict(format!(
                "{} already exists and is not a link into the hub (a local item?); move it away, then install again",
                link.display()
            )));
        }
    }
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
    }
    symlink(target, link).map_err(|e| HubError::io(link, e))?;
    Ok(true)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::copy(target, link).map(|_| ())
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file that
/// would then look "tainted".
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.rampart-tmp",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    std::fs::write(&tmp, bytes).map_err(|e| HubError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        HubError::io(path, e)
    })
}

/// A data file: from the hub itself when its index lists it (Rampart's index does, with a
/// digest), else from the mirror by URL path or file name, else from its URL.
async fn fetch_data(
    entry: &DataEntry,
    ix: Option<&IndexItem>,
    sources: Sources<'_>,
) -> Result<Vec<u8>, String> {
    if let Some(d) = ix
        .into_iter()
        .flat_map(|i| i.data.iter())
        .find(|d| d.dest_file == entry.dest_file && d.path.is_some())
        && let Some(path) = &d.path
    {
        let bytes = sources.hub.fetch(path).await.map_err(|e| e.to_string())?;
        if let Some(want) = &d.digest {
            let got = sha256_hex(&bytes);
            if !got.eq_ignore_ascii_case(want) {
                return Err(format!(
                    "{}: sha256 {got} does not match the index ({want})",
                    sources.hub.location(path)
                ));
            }
        }
        return Ok(bytes);
    }
    let implicit;
    let mirror = match (sources.data_mirror, sources.hub) {
        (Some(m), _) => Some(m),
        (None, HubSource::Dir(d)) if d.join("data").is_dir() => {
            implicit = HubSource::Dir(d.join("data"));
            Some(&implicit)
        }
        _ => None,
    };
    let url = entry.source_url.as_deref().unwrap_or_default();
    if let Some(m) = mirror {
        if let Some(p) = url_path(url)
            && let Ok(b) = m.fetch(p).await
        {
            return Ok(b);
        }
        if let HubSource::Dir(d) = m {
            let by_url = url.rsplit('/').next().unwrap_or_default();
            for name in [entry.dest_file.as_str(), by_url] {
                if !name.is_empty()
                    && let Some(p) = find_file(d, name, 4)
                {
                    return std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
                }
            }
        }
        // A mirror, given or implied by an offline hub, is the only place looked at: no
        // surprise network access.
        return Err(format!("not in {}", m.describe()));
    }
    match (sources.hub, url.is_empty()) {
        (_, true) => Err("its entry has no source_url".into()),
        (HubSource::Dir(d), false) => Err(format!("{} has no data/ folder", d.display())),
        (HubSource::Http { .. }, false) => {
            sources.hub.fetch_url(url).await.map_err(|e| e.to_string())
        }
    }
}

fn find_file(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let direct = safe_join(dir, name).ok()?;
    if direct.is_file() {
        return Some(direct);
    }
    if depth == 0 {
        return None;
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    subdirs.iter().find_map(|d| find_file(d, name, depth - 1))
}

/// Puts the grok pattern files in place when they are missing, never replacing one that is
/// there (it may have been edited).
async fn ensure_patterns(
    layout: &Layout,
    source: &HubSource,
    report: &mut Report,
) -> Result<(), HubError> {
    let dir = &layout.pattern_dir;
    match source {
        HubSource::Dir(src) => {
            let from = src.join("patterns");
            let mut files = Vec::new();
            list_files(&from, &from, &mut files);
            for rel in files {
                let dest = dir.join(&rel);
                if dest.exists() {
                    continue;
                }
                let bytes =
                    std::fs::read(from.join(&rel)).map_err(|e| HubError::io(from.join(&rel), e))?;
                write_atomic(&dest, &bytes)?;
                report.done.push(Done {
                    action: "pattern",
                    what: rel.display().to_string(),
                    detail: String::new(),
                });
            }
        }
        HubSource::Http { .. } => {
            let (own, crowdsec): (Vec<&str>, Vec<&str>) = PATTERN_FILES
                .iter()
                .copied()
                .filter(|f| !dir.join(f).exists())
                .partition(|f| *f == "rampart");
            // CrowdSec's CDN carries no patterns: when the first file is not there, the rest
            // of CrowdSec's set is not asked for either.
            for (i, name) in crowdsec.iter().chain(own.iter()).enumerate() {
                match source.fetch(&format!("patterns/{name}")).await {
                    Ok(bytes) => {
                        write_atomic(&dir.join(name), &bytes)?;
                        report.done.push(Done {
                            action: "pattern",
                            what: (*name).to_owned(),
                            detail: String::new(),
                        });
                    }
                    Err(_) if i == 0 && !crowdsec.is_empty() => {
                        if let Some(name) = own.first()
                            && let Ok(bytes) = source.fetch(&format!("patterns/{name}")).await
                        {
                            write_atomic(&dir.join(name), &bytes)?;
                            report.done.push(Done {
                                action: "pattern",
                                what: (*name).to_owned(),
                                detail: String::new(),
                            });
                        }
                        break;
                    }
                    Err(_) => {}
                }
            }
        }
    }
    Ok(())
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            list_files(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
}

/// What `hub update` did.
#[derive(Debug, Clone)]
pub struct UpdateReport {
    /// The index file was rewritten.
    pub changed: bool,
    /// The hub directory is the source itself; nothing was copied.
    pub in_place: bool,
    /// Items per type in the new index.
    pub counts: Vec<(ItemType, usize)>,
    /// Skipped index entries.
    pub warnings: Vec<String>,
}

/// Fetches the index into the layout's index path. Without `with_content` the items' embedded
/// content is dropped (as cscli's default update), so installs fetch each file.
pub async fn update_index(
    layout: &Layout,
    source: &HubSource,
    with_content: bool,
) -> Result<UpdateReport, HubError> {
    let in_place = source.is_dir(&layout.hub_dir)
        && canonical(&layout.index_path) == canonical(&layout.hub_dir.join(".index.json"));
    let bytes = if in_place {
        std::fs::read(&layout.index_path).map_err(|e| HubError::io(&layout.index_path, e))?
    } else {
        source.fetch(".index.json").await?
    };
    let origin = source.location(".index.json");
    let index = Index::parse(&bytes, &origin)?;
    let counts = ItemType::ALL
        .into_iter()
        .map(|t| (t, index.count(t)))
        .collect();
    if in_place {
        return Ok(UpdateReport {
            changed: false,
            in_place,
            counts,
            warnings: index.warnings,
        });
    }
    let out = if with_content {
        bytes
    } else {
        let mut v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| HubError::BadIndex {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        if let Some(types) = v.as_object_mut() {
            for items in types.values_mut().filter_map(|t| t.as_object_mut()) {
                for item in items.values_mut().filter_map(|i| i.as_object_mut()) {
                    item.remove("content");
                }
            }
        }
        serde_json::to_vec(&v).map_err(|e| HubError::BadIndex {
            origin: origin.clone(),
            message: e.to_string(),
        })?
    };
    let changed = std::fs::read(&layout.index_path).ok().as_deref() != Some(&out[..]);
    if changed {
        write_atomic(&layout.index_path, &out)?;
    }
    Ok(UpdateReport {
        changed,
        in_place,
        counts,
        warnings: index.warnings,
    })
}
