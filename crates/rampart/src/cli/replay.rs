//! `rampart replay`: cold logs through parsers and scenarios in time-machine mode (bucket
//! clocks follow the log's own timestamps), printing the alerts.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use detect::{Overflow, ShardedDetector};
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
    /// Worker threads for parsing and buckets (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// CrowdSec `simulation.yaml` (default: HUB/simulation.yaml when it exists): simulated
    /// scenarios still alert, flagged `simulated`, and no decision will be taken for them.
    #[arg(long)]
    simulation: Option<PathBuf>,
    /// Bucket state file: restored before the replay when it exists, written after it, so a
    /// log replayed in pieces gives the alerts of one replay (counters are then left running
    /// instead of being closed at the end).
    #[arg(long)]
    state: Option<PathBuf>,
}

/// Lines parsed per batch: big enough to amortise handing work to threads, small enough to
/// keep memory flat on huge files.
const BATCH: usize = 1024;

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let parsers = super::content::parsers(&args.hub, "parsers")
        .with_context(|| format!("loading parsers from {}", args.hub.display()))?;
    let scenarios = super::content::scenarios(&args.hub, parsers.ctx())
        .with_context(|| format!("loading scenarios from {}", args.hub.display()))?;
    let post = super::content::parsers(&args.hub, "postoverflows")?;
    let mut scenarios = scenarios;
    let sim_path = args
        .simulation
        .clone()
        .unwrap_or_else(|| args.hub.join("simulation.yaml"));
    if args.simulation.is_some() || sim_path.is_file() {
        let sim = super::content::simulation(&sim_path)?;
        scenarios.set_simulation(sim.simulation, &sim.exclusions);
    }
    let scenarios = Arc::new(scenarios);
    let (indexed, always) = scenarios.index_coverage();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut shards: Vec<detect::Detector> = (0..threads)
        .map(|_| detect::Detector::new(scenarios.clone()))
        .collect();
    if let Some(state) = &args.state {
        let n = detect::Detector::load_states(&mut shards, state)?;
        tracing::info!(instances = n, state = %state.display(), "bucket state restored");
    }
    let mut detector = ShardedDetector::with_detectors(scenarios.clone(), shards, 16);

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
    let mut sink = Sink::new(args.output)?;
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut split = reader.split(b'\n').enumerate();
    loop {
        batch.clear();
        for (n, raw) in split.by_ref() {
            let raw = raw.with_context(|| format!("reading {src} at line {}", n + 1))?;
            // Invalid UTF-8 is kept, replaced, rather than failing the whole replay.
            let raw = String::from_utf8_lossy(&raw)
                .trim_end_matches('\r')
                .to_owned();
            if raw.trim().is_empty() {
                continue;
            }
            let line = Line {
                raw,
                src: src.clone(),
                time: Some(chrono::Utc::now().fixed_offset()),
                labels: labels.clone(),
                process: true,
                module: "file".into(),
            };
            batch.push(Event::from_line(line, ExpectMode::TimeMachine));
            if batch.len() == BATCH {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        lines += batch.len() as u64;
        // Parse the batch on all threads, then pour in file order: buckets see each source's
        // events in the order they were logged.
        let chunk = batch.len().div_ceil(threads);
        let ok: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks_mut(chunk)
                .map(|part| {
                    s.spawn(|| {
                        part.iter_mut()
                            .map(|e| parsers.parse(e))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (evt, ok) in batch.drain(..).zip(ok) {
            if ok {
                parsed += 1;
                detector.pour(evt);
            }
        }
        detector.sync();
        let fresh: Vec<Overflow> = detector.overflows().try_iter().collect();
        sink.emit(accept(&post, &mut detector, fresh))?;
    }
    // Reprocessed overflows may still be on their way through the shards.
    detector.flush();
    let (rest, mut detectors) = detector.shutdown();
    let mut finish = Vec::new();
    match &args.state {
        Some(state) => {
            let n = detect::Detector::save_states(&detectors, state)?;
            tracing::info!(instances = n, state = %state.display(), "bucket state saved");
        }
        None => {
            for d in &mut detectors {
                d.finish(&mut finish);
            }
        }
    }
    let last: Vec<Overflow> = rest
        .into_iter()
        .chain(finish)
        .filter_map(|o| detect::postoverflow(&post, o, ExpectMode::TimeMachine))
        .collect();
    sink.emit(last)?;
    let count = sink.finish()?;
    if args.output == Output::Human {
        println!("\n{lines} lines read, {parsed} parsed, {count} alerts");
        println!(
            "{} scenarios ({indexed} skipped for unrelated events by the filter index, {always} see every event), {threads} threads",
            scenarios.len()
        );
        for (stage, all, always) in parsers.route_coverage() {
            tracing::debug!(stage, nodes = all, unindexed = always, "parser index");
        }
        let errors = scenarios.runtime_errors() + parsers.ctx().runtime_errors();
        if errors > 0 {
            eprintln!("{errors} expression errors at run time (RAMPART_LOG=debug shows them)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs postoverflows on new overflows, keeps those not whitelisted, and pours the ones whose
/// scenario asks for `reprocess` back into the scenarios (as CrowdSec does, e.g. for
/// `ban-defcon` range scenarios fed by other overflows).
fn accept(
    post: &parse::Parsers,
    detector: &mut ShardedDetector,
    fresh: Vec<Overflow>,
) -> Vec<Overflow> {
    let mut alerts = Vec::with_capacity(fresh.len());
    for o in fresh {
        let Some(o) = detect::postoverflow(post, o, ExpectMode::TimeMachine) else {
            continue;
        };
        if o.reprocess {
            detector.pour(detect::overflow_event(o.clone(), ExpectMode::TimeMachine));
        }
        alerts.push(o);
    }
    alerts
}

/// Alerts are written as each batch of the log is done (sorted within the batch, which keeps
/// the output deterministic), so a replay's memory does not grow with its alert count.
struct Sink {
    output: Output,
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    count: usize,
}

impl Sink {
    fn new(output: Output) -> std::io::Result<Self> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if output == Output::Json {
            out.write_all(b"[")?;
        }
        Ok(Sink {
            output,
            out,
            count: 0,
        })
    }

    fn emit(&mut self, mut batch: Vec<Overflow>) -> anyhow::Result<()> {
        batch.sort_by(|a, b| {
            (&a.time, &a.scenario, a.source_values(), &a.mapkey).cmp(&(
                &b.time,
                &b.scenario,
                b.source_values(),
                &b.mapkey,
            ))
        });
        for a in batch.iter().flat_map(|o| o.alerts.iter()) {
            match self.output {
                Output::Json => {
                    if self.count > 0 {
                        self.out.write_all(b",")?;
                    }
                    self.out.write_all(b"\n")?;
                    serde_json::to_writer_pretty(&mut self.out, a)?;
                }
                Output::Human | Output::Raw => {
                    if self.count == 0 {
                        writeln!(
                            self.out,
                            "{:<40} {:<8} {:<40} {:>6}  FIRST SEEN → OVERFLOW",
                            "SCENARIO", "SCOPE", "VALUE", "EVENTS"
                        )?;
                    }
                    writeln!(
                        self.out,
                        "{:<40} {:<8} {:<40} {:>6}  {} → {}",
                        a.scenario,
                        a.source.scope,
                        a.source.value,
                        a.events_count,
                        a.start_at,
                        a.stop_at
                    )?;
                }
            }
            self.count += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<usize> {
        if self.output == Output::Json {
            self.out.write_all(b"\n]\n")?;
        }
        self.out.flush()?;
        Ok(self.count)
    }
}
