//! `rampart replay`: cold logs through parsers and scenarios in time-machine mode (bucket
//! clocks follow the log's own timestamps), printing the alerts.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use detect::{Detector, Overflow};
use parse::{Event, ExpectMode, Line};

use super::Output;

/// Arguments of `rampart replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Log file to replay (`-` for stdin).
    #[arg(long)]
    file: PathBuf,
    /// Acquisition type label (`syslog`, `nginx`...), as in acquis.yaml.
    #[arg(long = "type")]
    log_type: String,
    /// Content directory with parsers/, scenarios/, postoverflows/, patterns/ and data/.
    #[arg(long, default_value_os_t = super::content::default_hub())]
    hub: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "human")]
    output: Output,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let parsers = super::content::parsers(&args.hub, "parsers")
        .with_context(|| format!("loading parsers from {}", args.hub.display()))?;
    let scenarios = super::content::scenarios(&args.hub, parsers.ctx())
        .with_context(|| format!("loading scenarios from {}", args.hub.display()))?;
    let post = super::content::parsers(&args.hub, "postoverflows")?;
    let mut detector = Detector::new(Arc::new(scenarios));

    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let labels: std::collections::HashMap<String, String> =
        [("type".to_owned(), args.log_type.clone())]
            .into_iter()
            .collect();
    let src = args.file.display().to_string();
    let (mut lines, mut parsed) = (0u64, 0u64);
    let mut overflows = Vec::new();
    for (n, raw) in reader.split(b'\n').enumerate() {
        let raw = raw.with_context(|| format!("reading {src} at line {}", n + 1))?;
        // Invalid UTF-8 is kept, replaced, rather than failing the whole replay.
        let raw = String::from_utf8_lossy(&raw)
            .trim_end_matches('\r')
            .to_owned();
        if raw.trim().is_empty() {
            continue;
        }
        lines += 1;
        let line = Line {
            raw,
            src: src.clone(),
            time: Some(chrono::Utc::now().fixed_offset()),
            labels: labels.clone(),
            process: true,
            module: "file".into(),
        };
        let mut evt = Event::from_line(line, ExpectMode::TimeMachine);
        if parsers.parse(&mut evt) {
            parsed += 1;
            detector.pour(&evt, &mut overflows);
        }
    }
    detector.finish(&mut overflows);
    let alerts: Vec<Overflow> = overflows
        .into_iter()
        .filter_map(|o| detect::postoverflow(&post, o, ExpectMode::TimeMachine))
        .collect();
    match args.output {
        Output::Json => {
            let list: Vec<&detect::Alert> = alerts.iter().flat_map(|o| o.alerts.iter()).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Output::Human => {
            println!(
                "{lines} lines read, {parsed} parsed, {} alerts",
                alerts.len()
            );
            if !alerts.is_empty() {
                println!(
                    "\n{:<40} {:<8} {:<40} {:>6}  FIRST SEEN → OVERFLOW",
                    "SCENARIO", "SCOPE", "VALUE", "EVENTS"
                );
            }
            for o in &alerts {
                for a in &o.alerts {
                    println!(
                        "{:<40} {:<8} {:<40} {:>6}  {} → {}",
                        a.scenario,
                        a.source.scope,
                        a.source.value,
                        a.events_count,
                        a.start_at,
                        a.stop_at
                    );
                }
            }
            let errors = detector.stats().runtime_errors + parsers.ctx().runtime_errors();
            if errors > 0 {
                eprintln!("{errors} expression errors at run time (RAMPART_LOG=debug shows them)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
