//! `rampart run`: the agent and the LAPI in one process — acquisition, parsing and buckets on
//! worker threads, alerts through the durable outbox to the LAPI (in-process by default, on
//! SQLite), graceful shutdown on SIGTERM with bucket state saved.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use detect::{Overflow, ShardedDetector};
use parse::{Event, ExpectMode, Parsers};

/// Arguments of `rampart run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (CrowdSec's config.yaml keys).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Content directory (parsers/, scenarios/, postoverflows/, patterns/, data/); default:
    /// the configuration's hub_dir, else RAMPART_HUB, else the bundled content.
    #[arg(long)]
    hub: Option<PathBuf>,
    /// Acquisition file (CrowdSec acquis.yaml format); default: detected logs of this machine.
    #[arg(long)]
    acquis: Option<PathBuf>,
    /// Where state lives: database, read positions, alert queue, bucket state.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// LAPI listen address.
    #[arg(long)]
    listen: Option<String>,
    /// Database URL (default: SQLite in the data directory).
    #[arg(long, env = "RAMPART_DB")]
    db: Option<String>,
    /// Do not run a LAPI here; send alerts to the one in --credentials (CrowdSec's too).
    #[arg(long)]
    no_lapi: bool,
    /// LAPI credentials (url, login, password) for --no-lapi, or where to keep the local ones.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Read the bundled demo logs instead of this machine's logs.
    #[arg(long)]
    demo: bool,
}

/// What to read: the acquisition file, else this machine's known logs, else the demo logs.
fn sources(
    args: &Args,
    file: Option<&super::config::ConfigFile>,
) -> anyhow::Result<(Vec<acquire::SourceSpec>, String)> {
    if let Some(a) = &args.acquis {
        let specs = acquire::load_acquis(Some(a), None)?;
        return Ok((specs, format!("acquisition from {}", a.display())));
    }
    if let Some(svc) = file.and_then(|f| f.crowdsec_service.as_ref())
        && (svc.acquisition_path.is_some() || svc.acquisition_dir.is_some())
    {
        let dir = svc.acquisition_dir.as_deref().filter(|d| d.is_dir());
        let specs = acquire::load_acquis(svc.acquisition_path.as_deref(), dir)?;
        let what = svc
            .acquisition_path
            .as_deref()
            .or(dir)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !specs.is_empty() {
            return Ok((specs, format!("acquisition from {what}")));
        }
        eprintln!("rampart: {what} defines no source; looking for this machine's logs");
    }
    let etc = Path::new("/etc/rampart/acquis.yaml");
    if !args.demo && etc.is_file() {
        let dir = Path::new("/etc/rampart/acquis.d");
        let specs = acquire::load_acquis(Some(etc), dir.is_dir().then_some(dir))?;
        return Ok((specs, format!("acquisition from {}", etc.display())));
    }
    let (mut doc, found) = if args.demo {
        (String::new(), Vec::new())
    } else {
        super::setup::detected_logs()
    };
    let what = if found.is_empty() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo");
        for (file, kind) in [("auth.log", "syslog"), ("nginx-access.log", "nginx")] {
            // `cat`: the demo logs are read once, at the speed of a burst, so their attacks
            // overflow the buckets on the wall clock just as live ones do.
            doc.push_str(&format!(
                "---\nsource: file\nmode: cat\nfilenames: [{}]\nlabels:\n  type: {kind}\n",
                demo.join(file).display()
            ));
        }
        format!(
            "no known log found on this machine: reading the demo logs in {}",
            demo.display()
        )
    } else {
        format!("reading {}", found.join(", "))
    };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let path = dir.path().join("acquis.yaml");
    std::fs::write(&path, doc).context("writing the generated acquisition")?;
    Ok((acquire::load_acquis(Some(&path), None)?, what))
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = args
        .config
        .as_deref()
        .map(super::config::ConfigFile::load)
        .transpose()?;
    let paths = file.as_ref().and_then(|f| f.config_paths.as_ref());
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| paths.and_then(|p| p.data_dir.clone()))
        .unwrap_or_else(super::config::default_data_dir);
    let hub = args
        .hub
        .clone()
        .or_else(|| paths.and_then(|p| p.hub_dir.clone()))
        .unwrap_or_else(super::content::default_hub);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let (_, mut cfg) = super::config::resolve(args.config.as_deref(), args.db.as_deref())?;
    if args.db.is_none()
        && file
            .as_ref()
            .and_then(|f| f.db_url().ok().flatten())
            .is_none()
    {
        cfg.db_url = format!("sqlite://{}", data_dir.join("rampart.db").display());
    }
    if let Some(l) = &args.listen {
        cfg.listen = super::config::parse_listen(l)?;
    }

    let parsers = Arc::new(
        super::content::parsers(&hub, "parsers")
            .with_context(|| format!("loading parsers from {}", hub.display()))?,
    );
    let mut scenarios = super::content::scenarios(&hub, parsers.ctx())
        .with_context(|| format!("loading scenarios from {}", hub.display()))?;
    let sim = hub.join("simulation.yaml");
    if sim.is_file() {
        let s = super::content::simulation(&sim)?;
        scenarios.set_simulation(s.simulation, &s.exclusions);
    }
    let scenarios = Arc::new(scenarios);
    let post = Arc::new(super::content::parsers(&hub, "postoverflows")?);
    let (specs, what) = sources(&args, file.as_ref())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The LAPI, unless alerts go elsewhere.
        let (lapi_task, creds) = if args.no_lapi {
            let path = args
                .credentials
                .clone()
                .context("--no-lapi needs --credentials FILE (url, login, password)")?;
            (None, client::Credentials::load(&path)?)
        } else {
            let lapi = lapi::Lapi::open(cfg.clone())
                .await
                .context("starting the LAPI")?;
            let listener = lapi.bind().await?;
            let addr = listener.local_addr()?;
            let creds_path = args
                .credentials
                .clone()
                .unwrap_or_else(|| data_dir.join("local_api_credentials.yaml"));
            let creds = local_credentials(&lapi, &creds_path, &format!("http://{addr}/")).await?;
            let mut rx = stop_rx.clone();
            let task = tokio::spawn(Arc::clone(&lapi).serve(listener, async move {
                let _ = rx.wait_for(|s| *s).await;
            }));
            eprintln!(
                "rampart LAPI listening on http://{addr} (database {})",
                cfg.db_url
            );
            (Some(task), creds)
        };

        let outbox = Arc::new(outbox::Outbox::open(&data_dir.join("outbox"))?);
        let watcher =
            Arc::new(client::Watcher::from_credentials(&creds).with_scenarios(scenarios.names()));
        let delivery = {
            let (q, w, mut rx) = (Arc::clone(&outbox), Arc::clone(&watcher), stop_rx.clone());
            tokio::spawn(async move {
                q.run(&*w, async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            })
        };

        let (tx, rx) = tokio::sync::mpsc::channel::<acquire::Line>(4096);
        let acquisition = acquire::Acquisition::start(specs, data_dir.join("acquire"), tx).await?;
        eprintln!("rampart agent: {what}; {} scenarios", scenarios.len());
        let state = data_dir.join("buckets.json");
        let saver = acquisition.position_saver();
        let worker = {
            let (p, po, sc, q) = (
                Arc::clone(&parsers),
                Arc::clone(&post),
                Arc::clone(&scenarios),
                Arc::clone(&outbox),
            );
            std::thread::Builder::new()
                .name("pipeline".into())
                .spawn(move || pipeline(rx, &p, &po, sc, &q, &state, &saver))
                .context("starting the pipeline thread")?
        };

        super::shutdown_signal().await;
        eprintln!("rampart: stopping (saving read positions, bucket state and queued alerts)");
        acquisition.shutdown().await;
        // The pipeline ends when acquisition has dropped its sender.
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        // Give queued alerts a moment to reach the LAPI before it stops; what is left stays on disk.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while outbox.depth() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = stop_tx.send(true);
        let _ = delivery.await;
        if let Some(t) = lapi_task {
            let _ = t.await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The agent's own machine on the local LAPI: read from `path`, or created (validated) with a
/// random password and written there (mode 0600).
async fn local_credentials(
    lapi: &lapi::Lapi,
    path: &Path,
    url: &str,
) -> anyhow::Result<client::Credentials> {
    if path.is_file() {
        let mut c = client::Credentials::load(path)?;
        if lapi.store().machine(&c.login).await?.is_some() {
            c.url = url.to_owned();
            return Ok(c);
        }
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let login = format!("rampart-{host}-{}", &uuid_hex()[..8]);
    let password = uuid_hex();
    let m = store::NewMachine {
        machine_id: login.clone(),
        password_hash: lapi::hash_password(&password)?,
        ip_address: "127.0.0.1".into(),
        is_validated: true,
        auth_type: "password".into(),
    };
    lapi.store().create_machine(&m).await?;
    let text = format!("url: {url}\nlogin: {login}\npassword: {password}\n");
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(client::Credentials {
        url: url.to_owned(),
        login,
        password,
    })
}

fn uuid_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lines → events → buckets → alerts → outbox, on its own thread. Lines are acknowledged (their
/// read position may be saved) only once their events were poured and any alert they caused is
/// on disk in the outbox.
fn pipeline(
    mut rx: tokio::sync::mpsc::Receiver<acquire::Line>,
    parsers: &Parsers,
    post: &Parsers,
    scenarios: Arc<detect::Scenarios>,
    outbox: &outbox::Outbox,
    state: &Path,
    saver: &acquire::PositionSaver,
) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let mut shards: Vec<detect::Detector> = (0..threads)
        .map(|_| detect::Detector::new(scenarios.clone()))
        .collect();
    if state.is_file() {
        match detect::Detector::load_states(&mut shards, state) {
            Ok(n) => tracing::info!(instances = n, "bucket state restored"),
            Err(e) => tracing::warn!(error = %e, "bucket state not restored"),
        }
    }
    let mut detector = ShardedDetector::with_detectors(scenarios, shards, 16);
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        tracing::error!("pipeline: cannot start its timer runtime");
        return;
    };
    let mut batch: Vec<acquire::Line> = Vec::with_capacity(1024);
    let mut last_tick = std::time::Instant::now();
    loop {
        batch.clear();
        let first = rt
            .block_on(async { tokio::time::timeout(Duration::from_millis(200), rx.recv()).await });
        let closed = match first {
            Ok(Some(l)) => {
                batch.push(l);
                while batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(l) => batch.push(l),
                        Err(_) => break,
                    }
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        };
        let now = chrono::Utc::now().fixed_offset();
        for l in &batch {
            let line = parse::Line {
                raw: l.raw.clone(),
                src: l.src.clone(),
                time: Some(now),
                labels: (*l.labels).clone(),
                process: true,
                module: l.module.to_owned(),
            };
            let mut evt = Event::from_line(line, ExpectMode::Live);
            if parsers.parse(&mut evt) {
                detector.pour(evt);
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            detector.tick(now);
            last_tick = std::time::Instant::now();
        }
        if !batch.is_empty() || closed {
            detector.sync();
        }
        let fresh: Vec<Overflow> = detector.overflows().try_iter().collect();
        let fresh_empty = fresh.is_empty();
        if !fresh_empty {
            let alerts = accept(post, &mut detector, fresh);
            for a in &alerts {
                eprintln!(
                    "rampart: alert {} from {} {} ({} events){}",
                    a.scenario,
                    a.source.scope,
                    a.source.value,
                    a.events_count,
                    if a.simulated { " [simulated]" } else { "" }
                );
            }
            if let Err(e) = outbox.push(&alerts) {
                // Not acknowledging keeps these lines to be read again after a restart.
                tracing::error!(error = %e, "cannot queue alerts; lines are not acknowledged");
                continue;
            }
        }
        let queued_alerts = !fresh_empty;
        for l in batch.drain(..) {
            l.ack.done();
        }
        if queued_alerts {
            // Alerts are on disk: the lines that raised them must not be read again after a crash.
            saver.save_now();
        }
        if closed {
            break;
        }
    }
    detector.flush();
    let (rest, detectors) = detector.shutdown();
    let alerts = accept_final(post, rest);
    if let Err(e) = outbox.push(&alerts) {
        tracing::error!(error = %e, "cannot queue the last alerts");
    }
    match detect::Detector::save_states(&detectors, state) {
        Ok(n) => tracing::info!(instances = n, "bucket state saved"),
        Err(e) => tracing::warn!(error = %e, "bucket state not saved"),
    }
}

fn accept(
    post: &Parsers,
    detector: &mut ShardedDetector,
    fresh: Vec<Overflow>,
) -> Vec<model::Alert> {
    let mut alerts = Vec::new();
    for o in fresh {
        let Some(o) = detect::postoverflow(post, o, ExpectMode::Live) else {
            continue;
        };
        if o.reprocess {
            detector.pour(detect::overflow_event(o.clone(), ExpectMode::Live));
        }
        alerts.extend(o.alerts);
    }
    alerts
}

fn accept_final(post: &Parsers, rest: Vec<Overflow>) -> Vec<model::Alert> {
    rest.into_iter()
        .filter_map(|o| detect::postoverflow(post, o, ExpectMode::Live))
        .flat_map(|o| o.alerts)
        .collect()
}
