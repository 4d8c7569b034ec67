//! `rampart decisions list|add|delete|import`: cscli's verbs and flags, through the LAPI with
//! this host's machine credentials.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use model::{Alert, Decision, IpRange, Source};

use super::Output;
use super::output;
use super::remote::{RemoteArgs, borrowed, runtime};

/// Filters shared by `list` and `delete`, with cscli's flag names.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Filters {
    #[command(flatten)]
    target: super::remote::Target,
    /// Decision type (ban, captcha...).
    #[arg(short = 't', long = "type")]
    kind: Option<String>,
    /// Origin (crowdsec, cscli, cscli-import, CAPI, lists...).
    #[arg(long)]
    origin: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// List active decisions (and their alerts).
    List {
        #[command(flatten)]
        filters: Filters,
        /// Include expired decisions and decisions from blocklists.
        #[arg(short, long)]
        all: bool,
        /// Only alerts newer than this (e.g. 4h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only alerts older than this.
        #[arg(long)]
        until: Option<String>,
        /// Alerts to read (0: all).
        #[arg(short, long, default_value_t = 100)]
        limit: u64,
        /// Hide simulated decisions.
        #[arg(long)]
        no_simu: bool,
    },
    /// Add a decision.
    Add {
        /// Source IP.
        #[arg(short, long)]
        ip: Option<String>,
        /// Source range (CIDR).
        #[arg(short, long)]
        range: Option<String>,
        /// Duration (Go syntax, days allowed: 4h, 7d, 1h30m).
        #[arg(short, long, default_value = "4h")]
        duration: String,
        /// Value for a non-IP scope (--scope country --value FR).
        #[arg(short, long)]
        value: Option<String>,
        /// Scope for --value.
        #[arg(long, default_value = "ip")]
        scope: String,
        /// Reason (the decision's scenario).
        #[arg(short = 'R', long)]
        reason: Option<String>,
        /// Decision type.
        #[arg(short = 't', long = "type", default_value = "ban")]
        kind: String,
    },
    /// Delete (expire) decisions.
    Delete {
        #[command(flatten)]
        filters: Filters,
        /// Decision id.
        #[arg(long)]
        id: Option<i64>,
        /// Every decision.
        #[arg(long)]
        all: bool,
    },
    /// Import decisions from a CSV, JSON or plain list (one value per line) file; `-` is stdin.
    Import {
        /// File to read.
        #[arg(short, long)]
        input: PathBuf,
        /// csv, json or values (default: from the extension, else values).
        #[arg(long)]
        format: Option<String>,
        /// Duration for records without one.
        #[arg(short, long, default_value = "4h")]
        duration: String,
        /// Scope for records without one.
        #[arg(long, default_value = "ip")]
        scope: String,
        /// Reason for records without one.
        #[arg(short = 'R', long, default_value = "manual")]
        reason: String,
        /// Type for records without one.
        #[arg(short = 't', long = "type", default_value = "ban")]
        kind: String,
        /// Decisions per request (one alert each).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
}

impl Filters {
    fn query(&self, delete: bool) -> Vec<(&'static str, String)> {
        let mut q = self.target.query();
        if let Some(k) = &self.kind {
            q.push((if delete { "type" } else { "decision_type" }, k.clone()));
        }
        if let Some(o) = &self.origin {
            q.push(("origin", o.clone()));
        }
        q
    }

    fn is_empty(&self) -> bool {
        self.query(true).is_empty()
    }
}

pub(crate) fn run(action: Action, remote: RemoteArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match action {
            Action::List {
                filters,
                all,
                since,
                until,
                limit,
                no_simu,
            } => list(&remote, &filters, all, since, until, limit, no_simu).await,
            Action::Add {
                ip,
                range,
                duration,
                value,
                scope,
                reason,
                kind,
            } => add(&remote, ip, range, &duration, value, &scope, reason, &kind).await,
            Action::Delete { filters, id, all } => delete(&remote, &filters, id, all).await,
            Action::Import {
                input,
                format,
                duration,
                scope,
                reason,
                kind,
                batch,
            } => {
                let defaults = Record {
                    duration: Some(duration),
                    origin: None,
                    reason: Some(reason),
                    scope: Some(scope),
                    kind: Some(kind),
                    value: String::new(),
                };
                import(&remote, &input, format.as_deref(), &defaults, batch).await
            }
        }
    })
}

async fn list(
    remote: &RemoteArgs,
    f: &Filters,
    all: bool,
    since: Option<String>,
    until: Option<String>,
    limit: u64,
    no_simu: bool,
) -> anyhow::Result<ExitCode> {
    let w = remote.watcher().await?;
    let mut q = f.query(false);
    if !all {
        q.push(("has_active_decision", "true".into()));
        if f.origin.is_none() {
            q.push(("include_capi", "false".into()));
        }
    }
    if let Some(s) = since {
        q.push(("since", s));
    }
    if let Some(u) = until {
        q.push(("until", u));
    }
    if no_simu {
        q.push(("simulated", "false".into()));
    }
    q.push(("limit", limit.to_string()));
    let alerts = w.alerts(&borrowed(&q)).await?;
    if remote.output == Output::Json {
        output::json(&alerts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for a in &alerts {
        for d in &a.decisions {
            if no_simu && d.simulated {
                continue;
            }
            let target = format!("{}:{}", d.scope, d.value);
            rows.push(vec![
                d.id.to_string(),
                d.origin.clone(),
                if d.simulated {
                    format!("(simul){target}")
                } else {
                    target
                },
                d.scenario.clone(),
                d.kind.clone(),
                a.source.cn.clone(),
                as_text(&a.source),
                a.events_count.to_string(),
                d.duration.clone(),
                a.id.unwrap_or_default().to_string(),
            ]);
        }
    }
    output::rows(
        remote.output,
        &[
            "ID",
            "Source",
            "Scope:Value",
            "Reason",
            "Action",
            "Country",
            "AS",
            "Events",
            "expiration",
            "Alert ID",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn as_text(s: &Source) -> String {
    match (s.as_number.as_str(), s.as_name.as_str()) {
        ("", "") => String::new(),
        (n, "") => n.to_owned(),
        (n, name) => format!("{n} {name}"),
    }
}

/// A decision to add: `value` is required, the rest falls back to defaults.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Record {
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default, alias = "scenario")]
    reason: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    value: String,
}

/// Checks and normalises one decision; `at` names where it came from in errors.
fn decision(r: &Record, d: &Record, origin: &str, at: &str) -> anyhow::Result<Decision> {
    let value = r.value.trim();
    if value.is_empty() {
        bail!("{at}: empty value");
    }
    let scope = model::normalize_scope(
        r.scope
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(d.scope.as_deref())
            .unwrap_or("ip"),
    )
    .to_owned();
    let mut scope = scope;
    if scope == "Ip" && value.contains('/') {
        scope = "Range".into();
    }
    if scope == "Ip" || scope == "Range" {
        IpRange::parse(value).map_err(|e| anyhow::anyhow!("{at}: '{value}': {e}"))?;
    }
    let duration = r
        .duration
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(d.duration.as_deref())
        .unwrap_or("4h");
    if model::parse_duration_days(duration).is_none() {
        bail!("{at}: '{duration}' is not a duration (e.g. 4h, 7d, 1h30m)");
    }
    Ok(Decision {
        duration: duration.to_owned(),
        origin: r
            .origin
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| origin.to_owned()),
        scenario: r
            .reason
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| d.reason.clone())
            .unwrap_or_default(),
        scope,
        kind: r
            .kind
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| d.kind.clone())
            .unwrap_or_else(|| "ban".into()),
        value: value.to_owned(),
        ..Decision::default()
    })
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[allow(clippy::too_many_arguments)]
async fn add(
    remote: &RemoteArgs,
    ip: Option<String>,
    range: Option<String>,
    duration: &str,
    value: Option<String>,
    scope: &str,
    reason: Option<String>,
    kind: &str,
) -> anyhow::Result<ExitCode> {
    let (scope, value) = match (ip, range, value) {
        (Some(ip), None, None) => ("ip".to_owned(), ip),
        (None, Some(r), None) => ("range".to_owned(), r),
        (None, None, Some(v)) => (scope.to_owned(), v),
        (None, None, None) => {
            bail!("say what to decide on: --ip IP, --range CIDR, or --scope S --value V")
        }
        _ => bail!("give only one of --ip, --range and --value"),
    };
    let w = remote.watcher().await?;
    let login = w.login_name().to_owned();
    let reason = reason.unwrap_or_else(|| format!("manual '{kind}' from '{login}'"));
    let d = decision(
        &Record {
            duration: Some(duration.to_owned()),
            origin: None,
            reason: Some(reason.clone()),
            scope: Some(scope),
            kind: Some(kind.to_owned()),
            value,
        },
        &Record::default(),
        "cscli",
        "the decision",
    )?;
    let now = now_rfc3339();
    let ip = if d.scope == "Ip" {
        d.value.clone()
    } else {
        String::new()
    };
    let alert = Alert {
        scenario: reason.clone(),
        message: reason.clone(),
        capacity: 0,
        leakspeed: "0".into(),
        events_count: 1,
        start_at: now.clone(),
        stop_at: now,
        remediation: true,
        kind: "cscli".into(),
        source: Source {
            scope: d.scope.clone(),
            value: d.value.clone(),
            ip,
            range: if d.scope == "Range" {
                d.value.clone()
            } else {
                String::new()
            },
            ..Source::default()
        },
        decisions: vec![d.clone()],
        ..Alert::default()
    };
    w.push_alerts(&[alert]).await?;
    eprintln!(
        "Decision successfully added: {} {}:{} for {} ({reason})",
        d.kind, d.scope, d.value, d.duration
    );
    Ok(ExitCode::SUCCESS)
}

async fn delete(
    remote: &RemoteArgs,
    f: &Filters,
    id: Option<i64>,
    all: bool,
) -> anyhow::Result<ExitCode> {
    if id.is_none() && !all && f.is_empty() {
        bail!(
            "say which decisions to delete: --ip, --range, --id, --scenario, --origin... or --all"
        );
    }
    let w = remote.watcher().await?;
    let n = match id {
        Some(id) => w.delete_decision(id).await?,
        None => w.delete_decisions(&borrowed(&f.query(true))).await?,
    };
    eprintln!("{n} decision(s) deleted");
    Ok(ExitCode::SUCCESS)
}

/// Reads records in `format` (csv with a header line, a JSON array, or one value per line).
fn read_records(text: &str, format: &str) -> anyhow::Result<Vec<(String, Record)>> {
    match format {
        "csv" => {
            let mut r = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let mut out = Vec::new();
            for (i, rec) in r.deserialize::<Record>().enumerate() {
                // +2: the header is line 1.
                let at = format!("line {}", i + 2);
                out.push((at.clone(), rec.with_context(|| at.clone())?));
            }
            Ok(out)
        }
        "json" => {
            let recs: Vec<Record> = serde_json::from_str(text)
                .context("expected a JSON array of {\"value\": ..., \"duration\"?: ..., \"reason\"?: ..., \"scope\"?: ..., \"type\"?: ...}")?;
            Ok(recs
                .into_iter()
                .enumerate()
                .map(|(i, r)| (format!("item {}", i + 1), r))
                .collect())
        }
        "values" => Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#')
            })
            .map(|(i, l)| {
                (
                    format!("line {}", i + 1),
                    Record {
                        value: l.trim().to_owned(),
                        ..Record::default()
                    },
                )
            })
            .collect()),
        other => bail!("unknown format '{other}' (csv, json or values)"),
    }
}

async fn import(
    remote: &RemoteArgs,
    input: &PathBuf,
    format: Option<&str>,
    defaults: &Record,
    batch: usize,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let name = input.display().to_string();
    let text = if name == "-" {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(input).with_context(|| format!("reading {name}"))?
    };
    let format = format.map(str::to_owned).unwrap_or_else(|| {
        match input.extension().and_then(|e| e.to_str()) {
            Some("csv") => "csv".into(),
            Some("json") => "json".into(),
            _ => "values".into(),
        }
    });
    let records = read_records(&text, &format).with_context(|| format!("{name} ({format})"))?;
    let mut decisions = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (at, r) in &records {
        match decision(r, defaults, "cscli-import", &format!("{name}: {at}")) {
            Ok(d) => decisions.push(d),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(10).map(String::as_str).collect();
        bail!(
            "{} invalid record(s), nothing imported:\n{}{}",
            errors.len(),
            shown.join("\n"),
            if errors.len() > 10 { "\n..." } else { "" }
        );
    }
    if decisions.is_empty() {
        bail!("{name}: no decision to import");
    }
    let w = remote.watcher().await?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(decisions.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} decisions ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let total = decisions.len();
    for chunk in decisions.chunks(batch.max(1)) {
        let now = now_rfc3339();
        let alert = Alert {
            scenario: format!("import {name}: {} IPs", chunk.len()),
            message: String::new(),
            leakspeed: "0".into(),
            start_at: now.clone(),
            stop_at: now,
            remediation: true,
            kind: "cscli".into(),
            source: Source {
                scope: "cscli/import".into(),
                value: name.clone(),
                ..Source::default()
            },
            decisions: chunk.to_vec(),
            ..Alert::default()
        };
        w.push_alerts(&[alert])
            .await
            .with_context(|| format!("after {} of {total} decisions", bar.position()))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "Imported {total} decisions from {name} in {secs:.2} s ({:.0}/s)",
        total as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Record {
        Record {
            duration: Some("4h".into()),
            reason: Some("manual".into()),
            scope: Some("ip".into()),
            kind: Some("ban".into()),
            ..Record::default()
        }
    }

    #[test]
    fn csv_records_use_cscli_columns_and_defaults() {
        let text = "duration,origin,reason,scope,type,value\n24h,,bad guy,ip,captcha,192.0.2.1\n,,,,,192.0.2.0/24\n";
        let recs = read_records(text, "csv").unwrap();
        let d0 = decision(&recs[0].1, &defaults(), "cscli-import", "x").unwrap();
        assert_eq!(
            (
                d0.duration.as_str(),
                d0.scenario.as_str(),
                d0.kind.as_str(),
                d0.scope.as_str()
            ),
            ("24h", "bad guy", "captcha", "Ip")
        );
        assert_eq!(d0.origin, "cscli-import");
        let d1 = decision(&recs[1].1, &defaults(), "cscli-import", "x").unwrap();
        assert_eq!((d1.scope.as_str(), d1.duration.as_str()), ("Range", "4h"));
    }

    #[test]
    fn bad_records_name_their_line() {
        let recs = read_records("192.0.2.1\n\n# comment\nnot-an-ip\n", "values").unwrap();
        assert_eq!(recs.len(), 2);
        let err = decision(&recs[1].1, &defaults(), "cscli-import", "f: line 4")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f: line 4: 'not-an-ip'"), "{err}");
        let err = read_records("[{\"valu\": 1}]", "json").unwrap_err();
        assert!(format!("{err:#}").contains("JSON array"));
    }
}
