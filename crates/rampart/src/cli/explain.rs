//! `rampart explain`: how lines go through the parser stages, node by node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use parse::{Event, ExpectMode, Line, Trace};

/// Arguments of `rampart explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Log file to explain (every line).
    #[arg(long, conflicts_with = "log")]
    file: Option<PathBuf>,
    /// A single log line.
    #[arg(long)]
    log: Option<String>,
    /// Acquisition type label (`syslog`, `nginx`...), as in acquis.yaml.
    #[arg(long = "type")]
    log_type: String,
    /// Content directory with parsers/ and patterns/ (CrowdSec hub layout).
    #[arg(long, default_value_os_t = super::content::default_hub())]
    hub: PathBuf,
    /// Also list the parsers whose filter did not accept the line.
    #[arg(short, long)]
    verbose: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lines: Vec<String> = match (&args.file, &args.log) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .lines()
            .map(str::to_owned)
            .collect(),
        (None, Some(l)) => vec![l.clone()],
        (None, None) => anyhow::bail!("give a log file with --file or a line with --log"),
    };
    let parsers = super::content::parsers(&args.hub, "parsers")?;
    let src = args
        .file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "cli".into());
    for raw in lines.iter().filter(|l| !l.trim().is_empty()) {
        let line = Line {
            raw: raw.clone(),
            src: src.clone(),
            time: Some(chrono::Utc::now().fixed_offset()),
            labels: [("type".to_owned(), args.log_type.clone())]
                .into_iter()
                .collect(),
            process: true,
            module: "file".into(),
        };
        let mut evt = Event::from_line(line, ExpectMode::TimeMachine);
        let mut trace = Trace::default();
        parsers.parse_traced(&mut evt, &mut trace);
        println!("line: {raw}");
        print!("{}", trace.render(args.verbose));
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
