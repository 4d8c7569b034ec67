//! `rampart alerts list|inspect|delete|flush`: cscli's verbs. All but `flush` go through the
//! LAPI; `flush` works on the database directly, as cscli's does.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use model::Alert;

use super::Output;
use super::output;
use super::remote::{RemoteArgs, borrowed, runtime};

type Filters = super::remote::Target;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// List alerts.
    List {
        #[command(flatten)]
        filters: Filters,
        /// Include alerts from blocklists (community, lists).
        #[arg(short, long)]
        all: bool,
        /// Only alerts newer than this (e.g. 4h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only alerts older than this.
        #[arg(long)]
        until: Option<String>,
        /// Only alerts with an active decision of this type.
        #[arg(long)]
        r#type: Option<String>,
        /// Alerts to show (0: all).
        #[arg(short, long, default_value_t = 50)]
        limit: u64,
    },
    /// Show alerts in full.
    Inspect {
        /// Alert ids.
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Also show the events.
        #[arg(short, long)]
        details: bool,
    },
    /// Delete alerts (and their decisions).
    Delete {
        #[command(flatten)]
        filters: Filters,
        /// Alert id.
        #[arg(long)]
        id: Option<i64>,
        /// Every alert.
        #[arg(short, long)]
        all: bool,
    },
    /// Apply retention now: keep at most --max-items alerts and none older than --max-age
    /// (alerts that still carry an active decision are kept).
    Flush {
        /// Alerts to keep at most.
        #[arg(long, default_value_t = 5000)]
        max_items: i64,
        /// Age beyond which alerts go (e.g. 7d).
        #[arg(long, default_value = "7d")]
        max_age: String,
        /// Database URL (default: the configuration's db_config, else the local SQLite).
        #[arg(long, env = "RAMPART_DB")]
        db: Option<String>,
    },
}

pub(crate) fn run(action: Action, remote: RemoteArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match action {
            Action::List {
                filters,
                all,
                since,
                until,
                r#type,
                limit,
            } => {
                let w = remote.watcher().await?;
                let mut q = filters.query();
                if !all {
                    q.push(("include_capi", "false".into()));
                }
                for (k, v) in [
                    ("since", since),
                    ("until", until),
                    ("decision_type", r#type),
                ] {
                    if let Some(v) = v {
                        q.push((k, v));
                    }
                }
                q.push(("limit", limit.to_string()));
                let alerts = w.alerts(&borrowed(&q)).await?;
                if remote.output == Output::Json {
                    output::json(&alerts)?;
                } else {
                    let rows: Vec<Vec<String>> = alerts.iter().map(row).collect();
                    output::rows(remote.output, HEADERS, &rows);
                }
            }
            Action::Inspect { ids, details } => {
                let w = remote.watcher().await?;
                let mut all = Vec::new();
                for id in ids {
                    let a = w.alert(id).await.with_context(|| format!("alert {id}"))?;
                    all.push(a);
                }
                match remote.output {
                    Output::Json => output::json(&all)?,
                    Output::Raw => {
                        let rows: Vec<Vec<String>> = all.iter().map(row).collect();
                        output::rows(Output::Raw, HEADERS, &rows);
                    }
                    Output::Human => {
                        for a in &all {
                            print!("{}", inspect(a, details));
                        }
                    }
                }
            }
            Action::Delete { filters, id, all } => {
                let q = filters.query();
                if id.is_none() && !all && q.is_empty() {
                    bail!(
                        "say which alerts to delete: --ip, --range, --scenario, --id... or --all"
                    );
                }
                let w = remote.watcher().await?;
                let n = match id {
                    Some(id) => w.delete_alert(id).await?,
                    None => w.delete_alerts(&borrowed(&q)).await?,
                };
                eprintln!("{n} alert(s) deleted");
            }
            Action::Flush {
                max_items,
                max_age,
                db,
            } => {
                let age = model::parse_duration_days(&max_age).with_context(|| {
                    format!("--max-age: '{max_age}' is not a duration (e.g. 7d, 12h)")
                })?;
                let (url, _) = super::config::resolve(remote.config.as_deref(), db.as_deref())?;
                let store = store::Store::open(&url)
                    .await
                    .with_context(|| format!("opening the database {url}"))?;
                let report = store
                    .flush(&store::FlushPolicy {
                        max_items: Some(max_items),
                        max_age_ms: Some(age / 1_000_000),
                        metrics_max_age_ms: None,
                    })
                    .await?;
                store.close().await;
                eprintln!(
                    "{} alert(s) flushed ({} expired decision(s) with them)",
                    report.alerts,
                    report.decision_ids.len()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// cscli's columns for alerts.
const HEADERS: &[&str] = &[
    "ID",
    "value",
    "reason",
    "country",
    "as",
    "decisions",
    "created_at",
];

fn row(a: &Alert) -> Vec<String> {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for d in &a.decisions {
        match kinds.iter_mut().find(|(k, _)| *k == d.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((d.kind.clone(), 1)),
        }
    }
    let value = if a.source.value.is_empty() {
        a.source.scope.clone()
    } else {
        format!("{}:{}", a.source.scope, a.source.value)
    };
    vec![
        a.id.unwrap_or_default().to_string(),
        value,
        a.scenario.clone(),
        a.source.cn.clone(),
        match (a.source.as_number.as_str(), a.source.as_name.as_str()) {
            ("", "") => String::new(),
            (n, name) => format!("{n} {name}").trim().to_owned(),
        },
        kinds
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(" "),
        a.created_at.clone(),
    ]
}

fn inspect(a: &Alert, details: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n################################################################"
    );
    for (k, v) in [
        ("ID", a.id.unwrap_or_default().to_string()),
        ("Date", a.created_at.clone()),
        ("Machine", a.machine_id.clone()),
        ("Simulation", a.simulated.to_string()),
        ("Reason", a.scenario.clone()),
        ("Events Count", a.events_count.to_string()),
        (
            "Scope:Value",
            format!("{}:{}", a.source.scope, a.source.value),
        ),
        ("Country", a.source.cn.clone()),
        (
            "AS",
            format!("{} {}", a.source.as_number, a.source.as_name)
                .trim()
                .to_owned(),
        ),
        ("Begin", a.start_at.clone()),
        ("End", a.stop_at.clone()),
        ("UUID", a.uuid.clone()),
    ] {
        let _ = writeln!(s, " - {k:<13}: {v}");
    }
    let rows: Vec<Vec<String>> = a
        .decisions
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                format!("{}:{}", d.scope, d.value),
                d.kind.clone(),
                d.duration.clone(),
                d.origin.clone(),
            ]
        })
        .collect();
    let _ = writeln!(s, "\n - Decisions:");
    let _ = writeln!(
        s,
        "{}",
        output::table_text(
            &["ID", "scope:value", "action", "expiration", "origin"],
            &rows
        )
    );
    if details {
        let _ = writeln!(s, "\n - Events:");
        for (i, e) in a.events.iter().enumerate() {
            let _ = writeln!(s, "  - event {} ({})", i + 1, e.timestamp);
            let rows: Vec<Vec<String>> = e
                .meta
                .iter()
                .map(|m| vec![m.key.clone(), m.value.clone()])
                .collect();
            let _ = writeln!(s, "{}", output::table_text(&["key", "value"], &rows));
        }
    }
    s
}
