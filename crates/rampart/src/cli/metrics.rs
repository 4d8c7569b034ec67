//! `rampart metrics`: reads the Prometheus endpoint of `rampart run`/`rampart lapi` (or
//! CrowdSec's) and renders cscli-like tables — acquisition, buckets, LAPI routes, machines,
//! bouncers, decisions, alerts — plus Rampart's own queue figures.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Output;
use super::output;

/// Arguments of `rampart metrics`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Prometheus URL (default: the configuration's `prometheus` section, else
    /// http://127.0.0.1:6060/metrics).
    #[arg(short, long)]
    url: Option<String>,
    /// Configuration file.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "human")]
    output: Output,
}

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus/OpenMetrics text format (comments skipped; label values unescaped).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = body.len();
            let (mut key, mut val) = (String::new(), String::new());
            let mut in_val = false;
            while let Some((i, c)) = chars.next() {
                if in_val {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(match n {
                                    'n' => '\n',
                                    other => other,
                                });
                            }
                        }
                        '"' => {
                            labels.insert(std::mem::take(&mut key), std::mem::take(&mut val));
                            in_val = false;
                        }
                        c => val.push(c),
                    }
                } else {
                    match c {
                        '}' => {
                            end = i + 1;
                            break;
                        }
                        '"' => in_val = true,
                        '=' | ',' | ' ' => {}
                        c => key.push(c),
                    }
                }
            }
            &body[end.min(body.len())..]
        } else {
            rest
        };
        let Some(v) = rest.split_whitespace().next() else {
            continue;
        };
        if let Ok(value) = v.parse::<f64>() {
            out.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
    }
    out
}

fn label<'a>(s: &'a Sample, k: &str) -> &'a str {
    s.labels.get(k).map_or("", String::as_str)
}

/// Sums samples of `name` by a key built from their labels.
fn sum_by(
    samples: &[Sample],
    name: &str,
    key: impl Fn(&Sample) -> String,
    into: &mut BTreeMap<String, BTreeMap<&'static str, f64>>,
    column: &'static str,
) {
    for s in samples.iter().filter(|s| s.name == name) {
        *into.entry(key(s)).or_default().entry(column).or_default() += s.value;
    }
}

fn cell(m: &BTreeMap<&'static str, f64>, k: &str) -> String {
    m.get(k).map_or_else(|| "-".into(), |v| format!("{v}"))
}

/// The tables: title, headers, rows (first cell the key).
type Tables = Vec<(&'static str, Vec<&'static str>, Vec<Vec<String>>)>;

fn tables(samples: &[Sample]) -> (Tables, serde_json::Value) {
    let mut out: Tables = Vec::new();
    let mut json = serde_json::Map::new();
    let mut table = |title: &'static str,
                     key_header: &'static str,
                     cols: &[(&'static str, &'static str)],
                     data: BTreeMap<String, BTreeMap<&'static str, f64>>| {
        let mut headers = vec![key_header];
        headers.extend(cols.iter().map(|(h, _)| *h));
        let rows: Vec<Vec<String>> = data
            .iter()
            .map(|(k, m)| {
                let mut r = vec![k.clone()];
                r.extend(cols.iter().map(|(_, c)| cell(m, c)));
                r
            })
            .collect();
        json.insert(
            title.to_owned(),
            serde_json::to_value(
                data.iter()
                    .map(|(k, m)| (k.clone(), m.clone()))
                    .collect::<BTreeMap<_, _>>(),
            )
            .unwrap_or_default(),
        );
        if !rows.is_empty() {
            out.push((title, headers, rows));
        }
    };

    let mut acq = BTreeMap::new();
    for (name, kind) in [
        ("cs_filesource_hits_total", "file"),
        ("cs_journalctlsource_hits_total", "journalctl"),
        ("cs_syslogsource_hits_total", "syslog"),
        ("rampart_stdinsource_hits_total", "stdin"),
    ] {
        sum_by(
            samples,
            name,
            |s| format!("{kind}:{}", label(s, "source")),
            &mut acq,
            "reads",
        );
    }
    let src = |s: &Sample| format!("{}:{}", label(s, "type"), label(s, "source"));
    sum_by(samples, "cs_parser_hits_ok_total", src, &mut acq, "parsed");
    sum_by(
        samples,
        "cs_parser_hits_ko_total",
        src,
        &mut acq,
        "unparsed",
    );
    sum_by(samples, "cs_bucket_poured_total", src, &mut acq, "poured");
    table(
        "acquisition",
        "Source",
        &[
            ("Lines read", "reads"),
            ("Lines parsed", "parsed"),
            ("Lines unparsed", "unparsed"),
            ("Lines poured to bucket", "poured"),
        ],
        acq,
    );

    let mut buckets = BTreeMap::new();
    let name = |s: &Sample| label(s, "name").to_owned();
    for (metric, col) in [
        ("cs_buckets", "current"),
        ("cs_bucket_overflowed_total", "overflows"),
        ("cs_bucket_instantiation_total", "instantiated"),
        ("cs_bucket_poured_total", "poured"),
        ("cs_bucket_underflowed_total", "expired"),
        ("cs_bucket_canceled_total", "canceled"),
    ] {
        sum_by(samples, metric, name, &mut buckets, col);
    }
    table(
        "buckets",
        "Bucket",
        &[
            ("Current Count", "current"),
            ("Overflows", "overflows"),
            ("Instantiated", "instantiated"),
            ("Poured", "poured"),
            ("Expired", "expired"),
        ],
        buckets,
    );

    let mut routes = BTreeMap::new();
    sum_by(
        samples,
        "cs_lapi_route_requests_total",
        |s| format!("{} {}", label(s, "route"), label(s, "method")),
        &mut routes,
        "hits",
    );
    table("lapi", "Route Method", &[("Hits", "hits")], routes);

    for (metric, who, title) in [
        ("cs_lapi_machine_requests_total", "machine", "lapi-machine"),
        ("cs_lapi_bouncer_requests_total", "bouncer", "lapi-bouncer"),
    ] {
        let mut m = BTreeMap::new();
        sum_by(
            samples,
            metric,
            |s| {
                format!(
                    "{} {} {}",
                    label(s, who),
                    label(s, "route"),
                    label(s, "method")
                )
            },
            &mut m,
            "hits",
        );
        table(title, "Name Route Method", &[("Hits", "hits")], m);
    }

    let mut lookups = BTreeMap::new();
    let bouncer = |s: &Sample| label(s, "bouncer").to_owned();
    sum_by(
        samples,
        "cs_lapi_decisions_ok_total",
        bouncer,
        &mut lookups,
        "ok",
    );
    sum_by(
        samples,
        "cs_lapi_decisions_ko_total",
        bouncer,
        &mut lookups,
        "ko",
    );
    table(
        "lapi-bouncer-lookups",
        "Bouncer",
        &[("Found", "ok"), ("Not found", "ko")],
        lookups,
    );

    let mut decisions = BTreeMap::new();
    sum_by(
        samples,
        "cs_active_decisions",
        |s| {
            format!(
                "{} {} {}",
                label(s, "reason"),
                label(s, "origin"),
                label(s, "action")
            )
        },
        &mut decisions,
        "count",
    );
    table(
        "decisions",
        "Reason Origin Action",
        &[("Count", "count")],
        decisions,
    );

    let mut alerts = BTreeMap::new();
    sum_by(
        samples,
        "cs_alerts",
        |s| label(s, "reason").to_owned(),
        &mut alerts,
        "count",
    );
    table("alerts", "Reason", &[("Count", "count")], alerts);

    let mut agent = BTreeMap::new();
    for (metric, key) in [
        (
            "rampart_acquisition_queue_lines",
            "lines waiting for the pipeline",
        ),
        (
            "rampart_outbox_queued_alerts",
            "alerts waiting for the LAPI",
        ),
        ("rampart_alerts_sent_total", "alerts sent"),
        ("rampart_alert_delivery_failures_total", "failed deliveries"),
    ] {
        sum_by(samples, metric, |_| key.to_owned(), &mut agent, "value");
    }
    table("agent", "Agent", &[("Value", "value")], agent);
    (out, serde_json::Value::Object(json))
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = match args.url {
        Some(u) => u,
        None => {
            let file = args
                .config
                .as_deref()
                .map(super::config::ConfigFile::load)
                .transpose()?;
            let addr = super::config::metrics_addr(None, file.as_ref())?.context(
                "metrics are disabled in the configuration (prometheus.enabled: false); pass --url",
            )?;
            format!("http://{addr}/metrics")
        }
    };
    let url = if url.ends_with("/metrics") {
        url
    } else {
        format!("{}/metrics", url.trim_end_matches('/'))
    };
    let text = super::remote::runtime()?.block_on(async {
        let resp = reqwest::get(&url).await.with_context(|| {
            format!("cannot read {url}: is `rampart run` (or `rampart lapi`) running with metrics on? (--metrics ADDR)")
        })?;
        anyhow::ensure!(resp.status().is_success(), "{url}: HTTP {}", resp.status());
        resp.text().await.with_context(|| format!("reading {url}"))
    })?;
    let samples = parse(&text);
    let (tables, json) = tables(&samples);
    if args.output == Output::Json {
        output::json(&json)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (title, headers, rows) in &tables {
        if args.output == Output::Human {
            println!("\n{}:", title_text(title));
        }
        output::rows(args.output, headers, rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn title_text(t: &str) -> &'static str {
    match t {
        "acquisition" => "Acquisition Metrics",
        "buckets" => "Bucket Metrics",
        "lapi" => "Local API Metrics",
        "lapi-machine" => "Local API Machines Metrics",
        "lapi-bouncer" => "Local API Bouncers Metrics",
        "lapi-bouncer-lookups" => "Local API Bouncers Decisions",
        "decisions" => "Local API Decisions",
        "alerts" => "Local API Alerts",
        _ => "Agent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes_and_builds_tables() {
        let text = r#"# TYPE cs_filesource_hits counter
cs_filesource_hits_total{source="/var/log/a \"b\".log",datasource_type="file",acquis_type="syslog"} 9
cs_parser_hits_ok_total{source="/var/log/a \"b\".log",type="file",acquis_type="syslog"} 8
cs_bucket_overflowed_total{name="x/ssh"} 1
cs_buckets{name="x/ssh"} 2
garbage line
# EOF
"#;
        let s = parse(text);
        assert_eq!(s.len(), 4);
        assert_eq!(label(&s[0], "source"), "/var/log/a \"b\".log");
        let (t, json) = tables(&s);
        assert_eq!(t[0].2[0][0], "file:/var/log/a \"b\".log");
        assert_eq!(t[0].2[0][1], "9");
        assert_eq!(t[0].2[0][2], "8");
        assert_eq!(json["buckets"]["x/ssh"]["overflows"], 1.0);
    }
}
