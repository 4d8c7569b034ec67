//! `rampart explain`: how lines go through the parser stages, node by node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use parse::{Event, ExpectMode, Line, ParserFile, Parsers, Trace};

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
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../hub"))]
    hub: PathBuf,
    /// Also list the parsers whose filter did not accept the line.
    #[arg(short, long)]
    verbose: bool,
}

fn parser_files(hub: &std::path::Path) -> anyhow::Result<Vec<ParserFile>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    let dir = hub.join("parsers");
    walk(&dir, &mut paths)
        .with_context(|| format!("cannot read parsers from {}", dir.display()))?;
    Ok(paths
        .iter()
        .filter_map(|p| ParserFile::from_hub_path(p))
        .collect())
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
    let data = args.hub.join("data");
    let ctx = parse::Ctx::new(Some(&args.hub.join("patterns")), Some(&data))?;
    let parsers = Parsers::load(ctx, &parser_files(&args.hub)?).map_err(|errs| {
        anyhow::anyhow!(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
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
