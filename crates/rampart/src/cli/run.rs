//! `rampart run`: the agent and the LAPI in one process — acquisition, parsing and buckets on
//! worker threads, alerts through the durable outbox to the LAPI (in-process by default, on
//! SQLite), Prometheus metrics, graceful shutdown on SIGTERM with bucket state saved, and a
//! reload of content and acquisition on SIGHUP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parse::Parsers;

use super::pipeline::{AgentMetrics, Pipeline};

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
    /// Prometheus metrics address (default: the configuration's `prometheus` section, else
    /// 127.0.0.1:6060); `off` disables.
    #[arg(long)]
    metrics: Option<String>,
}

/// Parsers, scenarios and postoverflows of one content directory.
struct Content {
    parsers: Arc<Parsers>,
    post: Arc<Parsers>,
    scenarios: Arc<detect::Scenarios>,
}

impl Content {
    fn load(hub: &Path, data: Option<&Path>) -> anyhow::Result<Self> {
        let ctx = || super::content::ctx_with(hub, data);
        let parsers = super::content::parsers_in(hub, "parsers", ctx()?)
            .with_context(|| format!("loading parsers from {}", hub.display()))?;
        let mut scenarios = super::content::scenarios(hub, parsers.ctx())
            .with_context(|| format!("loading scenarios from {}", hub.display()))?;
        let sim = hub.join("simulation.yaml");
        if sim.is_file() {
            let s = super::content::simulation(&sim)?;
            scenarios.set_simulation(s.simulation, &s.exclusions);
        }
        let post = super::content::parsers_in(hub, "postoverflows", ctx()?)
            .with_context(|| format!("loading postoverflows from {}", hub.display()))?;
        Ok(Self {
            parsers: Arc::new(parsers),
            post: Arc::new(post),
            scenarios: Arc::new(scenarios),
        })
    }
}

/// What a (re)load reads: the configuration file, the content, the sources.
struct Loaded {
    file: Option<super::config::ConfigFile>,
    hub: PathBuf,
    content: Content,
    specs: Vec<acquire::SourceSpec>,
    what: String,
    data_dir: PathBuf,
    /// The bundled demo logs are read this run (once read, a marker keeps later runs from
    /// reading them, and raising their alerts, again).
    demo: bool,
}

/// Marks that the demo logs were read into this data directory.
fn demo_marker(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-read")
}

fn load(args: &Args) -> anyhow::Result<Loaded> {
    let file = args
        .config
        .as_deref()
        .map(super::config::ConfigFile::load)
        .transpose()?;
    let paths = file.as_ref().and_then(|f| f.config_paths.as_ref());
    // A CrowdSec configuration installs items in config_dir (hub_dir is its download cache);
    // Rampart's own (from `rampart setup`) names the content directory hub_dir.
    let hub = args
        .hub
        .clone()
        .or_else(|| paths.and_then(|p| p.config_dir.clone().or_else(|| p.hub_dir.clone())))
        .unwrap_or_else(super::content::default_hub);
    let content = Content::load(&hub, paths.and_then(|p| p.data_dir.as_deref()))?;
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| paths.and_then(|p| p.data_dir.clone()))
        .unwrap_or_else(super::config::default_data_dir);
    let (specs, what, demo) = sources(args, file.as_ref(), &data_dir)?;
    Ok(Loaded {
        file,
        hub,
        content,
        specs,
        what,
        data_dir,
        demo,
    })
}

/// The running agent: acquisition and the pipeline thread fed by it.
struct Agent {
    acquisition: acquire::Acquisition,
    worker: std::thread::JoinHandle<()>,
}

impl Agent {
    async fn start(
        content: &Content,
        specs: Vec<acquire::SourceSpec>,
        data_dir: &Path,
        outbox: &Arc<outbox::Outbox>,
        metrics: &Arc<AgentMetrics>,
    ) -> anyhow::Result<Self> {
        // A crash after alerts were queued but before read positions were saved left the
        // positions in the outbox's last mark: adopt them, or those lines would be read (and
        // their alerts raised) again.
        if let Some(mark) = outbox.last_mark() {
            match acquire::merge_positions(&data_dir.join("acquire"), &mark) {
                Ok(true) => eprintln!("rampart: read positions recovered from the alert queue"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot apply the alert queue's read positions")
                }
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<acquire::Line>(4096);
        let acquisition = acquire::Acquisition::start(specs, data_dir.join("acquire"), tx).await?;
        let pipeline = Pipeline {
            parsers: Arc::clone(&content.parsers),
            post: Arc::clone(&content.post),
            scenarios: Arc::clone(&content.scenarios),
            outbox: Arc::clone(outbox),
            state: data_dir.join("buckets.json"),
            saver: acquisition.position_saver(),
            metrics: Arc::clone(metrics),
        };
        let worker = std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || pipeline.run(rx))
            .context("starting the pipeline thread")?;
        Ok(Self {
            acquisition,
            worker,
        })
    }

    /// Stops reading (positions saved), lets the pipeline finish what was read, and saves the
    /// bucket state.
    async fn stop(self) {
        self.acquisition.shutdown().await;
        // The pipeline ends when acquisition has dropped its sender.
        let w = self.worker;
        let _ = tokio::task::spawn_blocking(move || w.join()).await;
    }
}

/// What to read: the acquisition file, else this machine's known logs, else the demo logs.
fn sources(
    args: &Args,
    file: Option<&super::config::ConfigFile>,
    data_dir: &Path,
) -> anyhow::Result<(Vec<acquire::SourceSpec>, String, bool)> {
    if let Some(a) = &args.acquis {
        let specs = acquire::load_acquis(Some(a), None)?;
        return Ok((specs, format!("acquisition from {}", a.display()), false));
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
            return Ok((specs, format!("acquisition from {what}"), false));
        }
        eprintln!("rampart: {what} defines no source; looking for this machine's logs");
    }
    let etc = Path::new("/etc/rampart/acquis.yaml");
    if !args.demo && etc.is_file() {
        let dir = Path::new("/etc/rampart/acquis.d");
        let specs = acquire::load_acquis(Some(etc), dir.is_dir().then_some(dir))?;
        return Ok((specs, format!("acquisition from {}", etc.display()), false));
    }
    let (mut doc, found) = if args.demo {
        (String::new(), Vec::new())
    } else {
        super::setup::detected_logs()
    };
    let marker = demo_marker(data_dir);
    let what = if found.is_empty() && marker.exists() {
        return Ok((
            Vec::new(),
            format!(
                "no known log found on this machine, and the demo logs were read by an earlier run (delete {} to read them again)",
                marker.display()
            ),
            false,
        ));
    } else if found.is_empty() {
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
    Ok((
        acquire::load_acquis(Some(&path), None)?,
        what,
        found.is_empty(),
    ))
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = load(&args)?;
    let data_dir = loaded.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let (_, mut cfg) = super::config::resolve(args.config.as_deref(), args.db.as_deref())?;
    if args.db.is_none()
        && loaded
            .file
            .as_ref()
            .and_then(|f| f.db_url().ok().flatten())
            .is_none()
    {
        cfg.db_url = format!("sqlite://{}", data_dir.join("rampart.db").display());
    }
    if let Some(l) = &args.listen {
        cfg.listen = super::config::parse_listen(l)?;
    }
    let metrics_addr = super::config::metrics_addr(args.metrics.as_deref(), loaded.file.as_ref())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut exporter = telemetry::Exporter::new(env!("CARGO_PKG_VERSION"));
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
            lapi.register_metrics(&mut exporter);
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
        let metrics = Arc::new(AgentMetrics::new(Some(Arc::clone(&outbox))));
        metrics.register(&mut exporter);
        let metrics_task = super::spawn_metrics(exporter, metrics_addr, stop_rx.clone()).await;
        let watcher = Arc::new(
            client::Watcher::from_credentials(&creds)
                .with_scenarios(loaded.content.scenarios.names()),
        );
        let delivery = {
            let (q, w, mut rx) = (Arc::clone(&outbox), Arc::clone(&watcher), stop_rx.clone());
            tokio::spawn(async move {
                q.run(&*w, async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            })
        };

        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let shutdown = super::shutdown_signal();
        tokio::pin!(shutdown);
        let mut loaded = loaded;
        loop {
            let Loaded {
                content,
                specs,
                what,
                hub,
                demo,
                ..
            } = loaded;
            let agent = Agent::start(&content, specs, &data_dir, &outbox, &metrics).await?;
            eprintln!(
                "rampart agent: {what}; {} scenarios from {}",
                content.scenarios.len(),
                hub.display()
            );
            let next = loop {
                tokio::select! {
                    () = &mut shutdown => break None,
                    _ = hangup.recv() => {
                        eprintln!("rampart: SIGHUP: reloading content and acquisition");
                        // Everything is loaded and checked before the running agent stops, so
                        // a broken edit never leaves the host unprotected.
                        let a = &args;
                        match tokio::task::block_in_place(|| load(a)) {
                            Ok(l) => break Some(l),
                            Err(e) => eprintln!(
                                "rampart: reload failed, the running configuration stays: {e:#}"
                            ),
                        }
                    }
                }
            };
            let stopped_demo = |dir: &Path| {
                if demo && let Err(e) = std::fs::write(demo_marker(dir), "") {
                    tracing::warn!(error = %e, "cannot record that the demo logs were read");
                }
            };
            match next {
                Some(mut l) => {
                    agent.stop().await;
                    stopped_demo(&data_dir);
                    if l.demo && demo_marker(&data_dir).exists() {
                        l.specs.clear();
                        l.demo = false;
                        l.what = "the demo logs were read before this reload".into();
                    }
                    loaded = l;
                }
                None => {
                    eprintln!(
                        "rampart: stopping (saving read positions, bucket state and queued alerts)"
                    );
                    agent.stop().await;
                    stopped_demo(&data_dir);
                    break;
                }
            }
        }
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
        if let Some(t) = metrics_task {
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
