//! How hub commands print: per-type tables for people, JSON with cscli's field names, `raw`
//! CSV with cscli's columns, and the YAML `inspect` shows.

use std::collections::BTreeMap;
use std::io::Write;

use ::hub::{Action, Item, ItemType, Level, LocalHub, Plan, Report, Sources, Status, UpdateReport};
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde::Serialize;

use super::{Ctx, Output};

/// Warnings on stderr, one per line.
pub(super) fn warnings(list: &[String]) {
    let mut err = std::io::stderr().lock();
    for w in list {
        let _ = err.write_all(format!("warning: {w}\n").as_bytes());
    }
}

/// The planner's remarks on stderr.
pub(super) fn notes(plan: &Plan) {
    let mut err = std::io::stderr().lock();
    for n in &plan.notes {
        let tag = match n.level {
            Level::Info => "note",
            Level::Warning => "warning",
        };
        let _ = err.write_all(format!("{tag}: {}\n", n.message).as_bytes());
    }
}

fn table(ctx: &Ctx, headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::ASCII_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if ctx.color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t.set_header(headers.iter().map(|h| {
        let c = Cell::new(h);
        if ctx.color {
            c.add_attribute(comfy_table::Attribute::Bold)
        } else {
            c
        }
    }));
    t
}

fn status_color(status: Status) -> Color {
    match status {
        Status::UpToDate => Color::Green,
        Status::Outdated => Color::Yellow,
        Status::Tainted => Color::Red,
        Status::Local => Color::Cyan,
        Status::NotInstalled => Color::DarkGrey,
    }
}

fn path_text(p: Option<&std::path::Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// cscli's `list -o json` entry, in its field order.
#[derive(Serialize)]
struct ListEntry<'a> {
    name: &'a str,
    local_version: String,
    local_path: String,
    description: String,
    utf8_status: String,
    status: String,
}

fn description(item: &Item) -> String {
    item.index
        .as_ref()
        .and_then(|i| i.description.clone())
        .unwrap_or_default()
}

/// `list` for some types: installed items (every item with `all`), or the ones named.
pub(super) fn list(
    ctx: &Ctx,
    hub: &LocalHub,
    kinds: &[ItemType],
    names: &[String],
    all: bool,
    omit_empty: bool,
) -> anyhow::Result<()> {
    let select = |kind: ItemType| -> Vec<&Item> {
        if names.is_empty() {
            hub.items(kind)
                .into_iter()
                .filter(|i| all || i.state.installed())
                .collect()
        } else {
            names.iter().filter_map(|n| hub.get(kind, n)).collect()
        }
    };
    match ctx.output {
        Output::Human => {
            let mut out = String::new();
            for &kind in kinds {
                let items = select(kind);
                if omit_empty && items.is_empty() {
                    continue;
                }
                let mut t = table(ctx, &["Name", "📦 Status", "Version", "Local Path"]);
                for i in &items {
                    let status = format!("{}  {}", i.state.emoji(), i.state.text());
                    let mut cell = Cell::new(status);
                    if ctx.color {
                        cell = cell.fg(status_color(i.state.status()));
                    }
                    t.add_row(vec![
                        Cell::new(&i.name),
                        cell,
                        Cell::new(i.state.local_version.as_deref().unwrap_or_default()),
                        Cell::new(path_text(i.state.local_path.as_deref())),
                    ]);
                }
                out.push_str(&format!("{}\n{t}\n", kind.as_str().to_uppercase()));
            }
            if out.is_empty() {
                out.push_str("No items to display\n");
            }
            print!("{out}");
        }
        Output::Json => {
            let mut map: BTreeMap<&str, Vec<ListEntry>> = BTreeMap::new();
            for &kind in kinds {
                let entries = select(kind)
                    .into_iter()
                    .map(|i| ListEntry {
                        name: &i.name,
                        local_version: i.state.local_version.clone().unwrap_or_default(),
                        local_path: path_text(i.state.local_path.as_deref()),
                        description: description(i),
                        utf8_status: format!("{}  {}", i.state.emoji(), i.state.text()),
                        status: i.state.text(),
                    })
                    .collect();
                map.insert(kind.as_str(), entries);
            }
            println!("{}", serde_json::to_string_pretty(&map)?);
        }
        Output::Raw => {
            let many = kinds.len() > 1;
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            let mut header = vec!["name", "status", "version", "description"];
            if many {
                header.push("type");
            }
            w.write_record(&header)?;
            for &kind in kinds {
                for i in select(kind) {
                    let mut row = vec![
                        i.name.clone(),
                        i.state.text(),
                        i.state.local_version.clone().unwrap_or_default(),
                        description(i),
                    ];
                    if many {
                        row.push(kind.as_str().to_owned());
                    }
                    w.write_record(&row)?;
                }
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// `hub types`.
pub(super) fn types(output: Output) -> anyhow::Result<()> {
    let names: Vec<&str> = ItemType::ALL.iter().map(|t| t.as_str()).collect();
    match output {
        Output::Human => names.iter().for_each(|n| println!("- {n}")),
        Output::Json => println!("{}", serde_json::to_string(&names)?),
        Output::Raw => names.iter().for_each(|n| println!("{n}")),
    }
    Ok(())
}

/// `hub update`.
pub(super) fn updated(
    ctx: &Ctx,
    source: &::hub::HubSource,
    r: &UpdateReport,
) -> anyhow::Result<()> {
    let counts: BTreeMap<&str, usize> = r.counts.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    match ctx.output {
        Output::Json => {
            #[derive(Serialize)]
            struct Out<'a> {
                source: String,
                index_path: String,
                changed: bool,
                in_place: bool,
                items: &'a BTreeMap<&'a str, usize>,
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&Out {
                    source: source.describe(),
                    index_path: ctx.layout.index_path.display().to_string(),
                    changed: r.changed,
                    in_place: r.in_place,
                    items: &counts,
                })?
            );
        }
        Output::Raw => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(["type", "items"])?;
            for (t, n) in &counts {
                w.write_record([t.to_string(), n.to_string()])?;
            }
            w.flush()?;
        }
        Output::Human => {
            let what = if r.in_place {
                format!(
                    "using the hub directory {} in place",
                    ctx.layout.hub_dir.display()
                )
            } else if r.changed {
                format!(
                    "index updated from {} into {}",
                    source.describe(),
                    ctx.layout.index_path.display()
                )
            } else {
                format!("index from {} is unchanged", source.describe())
            };
            let total: usize = counts.values().sum();
            let detail: Vec<String> = counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(t, n)| format!("{n} {t}"))
                .collect();
            println!("{what}: {total} items ({})", detail.join(", "));
        }
    }
    Ok(())
}

/// cscli's `inspect -o json`, in its field order (without the embedded content), plus the
/// author, labels and `tainted_by`.
#[derive(Serialize)]
struct Inspected<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    references: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<&'a BTreeMap<String, ::hub::VersionInfo>>,
    #[serde(flatten)]
    dependencies: ::hub::Dependencies,
    #[serde(skip_serializing_if = "String::is_empty")]
    local_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    local_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    local_hash: String,
    installed: bool,
    downloaded: bool,
    up_to_date: bool,
    tainted: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tainted_by: &'a [String],
    local: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    belongs_to_collections: &'a [String],
}

/// `inspect`: YAML for people and `raw`, JSON for `json`, as cscli.
pub(super) fn inspect(ctx: &Ctx, hub: &LocalHub, item: &Item) -> anyhow::Result<()> {
    let ix = item.index.as_ref();
    let st = &item.state;
    let deps = if item.kind == ItemType::Collections {
        hub.current_dependencies(item)
    } else {
        ::hub::Dependencies::default()
    };
    let v = Inspected {
        kind: item.kind.as_str(),
        stage: item.stage(),
        name: &item.name,
        author: ix.and_then(|i| i.author.as_deref()),
        file_name: ix.map(|i| i.file_name()).or_else(|| {
            st.local_path
                .as_deref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
        }),
        description: ix.and_then(|i| i.description.as_deref()),
        labels: ix.and_then(|i| i.labels.as_ref()).filter(|l| !l.is_null()),
        references: ix.map_or(&[], |i| &i.references[..]),
        path: ix.map(|i| i.path.as_str()),
        version: ix.map(|i| i.version.as_str()),
        versions: ix
            .map(|i| &i.versions)
            .filter(|_| ctx.output == Output::Json),
        dependencies: deps,
        local_path: path_text(st.local_path.as_deref()),
        local_version: st.local_version.clone().unwrap_or_default(),
        local_hash: st.local_hash.clone().unwrap_or_default(),
        installed: st.installed(),
        downloaded: st.downloaded(),
        up_to_date: st.up_to_date,
        tainted: st.tainted,
        tainted_by: &st.tainted_by,
        local: st.local,
        belongs_to_collections: &st.belongs_to_collections,
    };
    match ctx.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Output::Human | Output::Raw => {
            print!("{}", serde_saphyr::to_string(&v)?);
            if ctx.output == Output::Human && st.tainted {
                println!(
                    "\nThis item is tainted. Use `rampart {} inspect --diff {}` to see why.",
                    item.kind, item.name
                );
            }
        }
    }
    Ok(())
}

/// `inspect --diff`: for each culprit of a taint, the diff of the local file against the
/// latest version (or why there is none).
pub(super) async fn why_tainted(
    hub: &LocalHub,
    item: &Item,
    sources: Sources<'_>,
    rev: bool,
) -> anyhow::Result<String> {
    let fq = item.fq_name();
    if !item.state.installed() {
        return Ok(format!("# {fq} is not installed"));
    }
    if !item.state.tainted {
        return Ok(format!("# {fq} is not tainted"));
    }
    let mut out = vec![format!("# Let's see why {fq} is tainted.")];
    for culprit in &item.state.tainted_by {
        let sub = culprit
            .split_once(':')
            .and_then(|(t, n)| Some((ItemType::parse(t)?, n)))
            .and_then(|(t, n)| hub.get(t, n));
        let Some(sub) = sub else {
            out.push(format!("\n-> {culprit}\n# not in the hub index"));
            continue;
        };
        out.push(format!("\n-> {culprit}\n"));
        if !sub.state.installed() {
            out.push(format!(
                "# {culprit} is not installed: `rampart {} install {}` restores it",
                sub.kind, sub.name
            ));
            continue;
        }
        let Some(local_path) = sub.state.local_path.as_deref() else {
            continue;
        };
        let local = std::fs::read_to_string(local_path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", local_path.display()))?;
        let (latest, origin) = ::hub::pristine_content(sub, sources).await?;
        let latest = String::from_utf8_lossy(&latest).into_owned();
        let local_name = local_path.display().to_string();
        let d = if rev {
            ::hub::unified_diff(&origin, &local_name, &latest, &local)
        } else {
            ::hub::unified_diff(&local_name, &origin, &local, &latest)
        };
        out.push(if d.is_empty() {
            format!("# {culprit}: no difference in content")
        } else {
            d
        });
    }
    Ok(out.join("\n"))
}

fn group(entries: &[(ItemType, String, String)]) -> Vec<String> {
    let mut by_type: BTreeMap<usize, (ItemType, Vec<String>)> = BTreeMap::new();
    for (t, name, extra) in entries {
        let pos = ItemType::ALL.iter().position(|x| x == t).unwrap_or(0);
        let shown = if extra.is_empty() {
            name.clone()
        } else {
            format!("{name} ({extra})")
        };
        by_type
            .entry(pos)
            .or_insert_with(|| (*t, Vec::new()))
            .1
            .push(shown);
    }
    by_type
        .into_values()
        .map(|(t, names)| format!("  {t}: {}", names.join(", ")))
        .collect()
}

/// `--dry-run`: what would change.
pub(super) fn plan(ctx: &Ctx, plan: &Plan) -> anyhow::Result<()> {
    let version_of = |s: &::hub::Step| s.version.clone().unwrap_or_default();
    match ctx.output {
        Output::Json | Output::Raw => {
            #[derive(Serialize)]
            struct Row {
                action: &'static str,
                #[serde(rename = "type")]
                kind: &'static str,
                name: String,
                version: String,
            }
            let rows: Vec<Row> = plan
                .steps
                .iter()
                .filter(|s| s.action != Action::Data)
                .map(|s| Row {
                    action: s.action.as_str(),
                    kind: s.key.0.as_str(),
                    name: s.key.1.clone(),
                    version: version_of(s),
                })
                .collect();
            if ctx.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut w = csv::Writer::from_writer(std::io::stdout().lock());
                w.write_record(["action", "type", "name", "version"])?;
                for r in rows {
                    w.write_record([r.action, r.kind, &r.name, &r.version])?;
                }
                w.flush()?;
            }
        }
        Output::Human => {
            let mut lines = Vec::new();
            for action in [
                Action::Download,
                Action::Enable,
                Action::Disable,
                Action::Purge,
            ] {
                let entries: Vec<(ItemType, String, String)> = plan
                    .steps
                    .iter()
                    .filter(|s| s.action == action)
                    .map(|s| (s.key.0, s.key.1.clone(), version_of(s)))
                    .collect();
                if !entries.is_empty() {
                    lines.push(format!("{}:", action.as_str()));
                    lines.extend(group(&entries));
                }
            }
            if lines.is_empty() {
                println!("Nothing to do.");
            } else {
                println!("Plan (nothing changed, --dry-run):\n{}", lines.join("\n"));
            }
        }
    }
    Ok(())
}

/// What was done.
pub(super) fn report(ctx: &Ctx, r: &Report, changed: bool) -> anyhow::Result<()> {
    match ctx.output {
        Output::Json => {
            #[derive(Serialize)]
            struct Row<'a> {
                action: &'a str,
                what: &'a str,
                detail: &'a str,
            }
            #[derive(Serialize)]
            struct Out<'a> {
                done: Vec<Row<'a>>,
                warnings: &'a [String],
            }
            let done = r
                .done
                .iter()
                .map(|d| Row {
                    action: d.action,
                    what: &d.what,
                    detail: &d.detail,
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&Out {
                    done,
                    warnings: &r.warnings,
                })?
            );
        }
        Output::Raw => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(["action", "what", "detail"])?;
            for d in &r.done {
                w.write_record([d.action, &d.what, &d.detail])?;
            }
            w.flush()?;
        }
        Output::Human => {
            if r.done.is_empty() {
                println!("Nothing to do.");
                return Ok(());
            }
            let mut lines = Vec::new();
            for (action, title) in [
                ("download", "downloaded"),
                ("enable", "enabled"),
                ("disable", "disabled"),
                ("purge", "purged"),
            ] {
                let entries: Vec<(ItemType, String, String)> = r
                    .done
                    .iter()
                    .filter(|d| d.action == action)
                    .filter_map(|d| {
                        let (t, n) = d.what.split_once(':')?;
                        Some((ItemType::parse(t)?, n.to_owned(), d.detail.clone()))
                    })
                    .collect();
                if !entries.is_empty() {
                    lines.push(format!("{title}:"));
                    lines.extend(group(&entries));
                }
            }
            let data: Vec<&str> = r
                .done
                .iter()
                .filter(|d| d.action == "data")
                .map(|d| d.what.as_str())
                .collect();
            if !data.is_empty() {
                lines.push(format!(
                    "data files into {}:\n  {}",
                    ctx.layout.data_dir.display(),
                    data.join(", ")
                ));
            }
            let patterns = r.done.iter().filter(|d| d.action == "pattern").count();
            if patterns > 0 {
                lines.push(format!(
                    "grok patterns: {patterns} file(s) into {}",
                    ctx.layout.pattern_dir.display()
                ));
            }
            println!("{}", lines.join("\n"));
            if changed {
                println!(
                    "\nReload Rampart to use the changes: `systemctl reload rampart` (or send SIGHUP to `rampart run`)."
                );
            }
        }
    }
    Ok(())
}
