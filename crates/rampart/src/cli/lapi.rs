//! `rampart lapi`: the Local API server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `rampart lapi`: the server, or `status`/`register` as cscli's `lapi` noun.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Configuration file (CrowdSec's config.yaml keys: api.server, db_config).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Listen address (overrides api.server.listen_uri).
    #[arg(long)]
    listen: Option<String>,
    /// Database URL: sqlite:///path.db, postgres://user@host/db, mysql://user@host/db.
    #[arg(long, env = "RAMPART_DB")]
    db: Option<String>,
    /// profiles.yaml (overrides api.server.profiles_path; default: CrowdSec's default profiles).
    #[arg(long)]
    profiles: Option<PathBuf>,
    /// Prometheus metrics address (default: the configuration's `prometheus` section, else
    /// 127.0.0.1:6060); `off` disables.
    #[arg(long)]
    metrics: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check that this host's machine can log in to the LAPI.
    Status {
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
    /// Register this host as a machine of a LAPI and write its credentials file.
    Register {
        /// LAPI URL.
        #[arg(short, long, default_value = "http://127.0.0.1:8080/")]
        url: String,
        /// Machine id (default: rampart-<hostname>-<random>).
        #[arg(long)]
        machine: Option<String>,
        /// Credentials file to write (default: the one `rampart decisions` and co. read).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// Auto-registration token (the machine is then validated at once).
        #[arg(long)]
        token: Option<String>,
        #[command(flatten)]
        remote: super::remote::RemoteArgs,
    },
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(Action::Status { remote }) => return status(&remote),
        Some(Action::Register {
            url,
            machine,
            file,
            token,
            remote,
        }) => return register(&url, machine, file, token.as_deref(), &remote),
        None => {}
    }
    let (_, mut cfg) = super::config::resolve(args.config.as_deref(), args.db.as_deref())?;
    let file = args
        .config
        .as_deref()
        .map(super::config::ConfigFile::load)
        .transpose()?;
    let metrics_addr = super::config::metrics_addr(args.metrics.as_deref(), file.as_ref())?;
    if let Some(l) = &args.listen {
        cfg.listen = super::config::parse_listen(l)?;
    }
    if let Some(p) = args.profiles {
        cfg.profiles = Some(p);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let lapi = lapi::Lapi::open(cfg).await.context("starting the LAPI")?;
        let listener = lapi.bind().await?;
        let addr = listener
            .local_addr()
            .context("reading the listen address")?;
        eprintln!(
            "rampart LAPI listening on http://{addr} ({} active decisions, database {})",
            lapi.active_decisions(),
            redact(lapi.store().url())
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut exporter = telemetry::Exporter::new(env!("CARGO_PKG_VERSION"));
        lapi.register_metrics(&mut exporter);
        let metrics = super::spawn_metrics(exporter, metrics_addr, stop_rx).await;
        lapi.serve(listener, super::shutdown_signal()).await?;
        let _ = stop_tx.send(true);
        if let Some(m) = metrics {
            let _ = m.await;
        }
        eprintln!("rampart LAPI stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Hides a password in a database URL.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn status(remote: &super::remote::RemoteArgs) -> anyhow::Result<ExitCode> {
    let path = remote.credentials_path()?;
    let creds = client::Credentials::load(&path)?;
    super::remote::runtime()?.block_on(async {
        remote.watcher().await?;
        eprintln!("Loaded credentials from {}", path.display());
        eprintln!(
            "Trying to authenticate with username {} on {}",
            creds.login, creds.url
        );
        println!("You can successfully interact with Local API (LAPI)");
        Ok(ExitCode::SUCCESS)
    })
}

fn register(
    url: &str,
    machine: Option<String>,
    file: Option<PathBuf>,
    token: Option<&str>,
    remote: &super::remote::RemoteArgs,
) -> anyhow::Result<ExitCode> {
    let file = match file {
        Some(f) => f,
        None => remote.credentials_path().unwrap_or_else(|_| {
            super::config::default_data_dir().join("local_api_credentials.yaml")
        }),
    };
    let machine = machine.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let tail: String = (0..8)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random_range(0..36)]))
            .collect();
        format!("rampart-{host}-{tail}")
    });
    let password: String = (0..64)
        .map(|_| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789"
                    [rand::random_range(0..61)],
            )
        })
        .collect();
    let validated = super::remote::runtime()?
        .block_on(client::Watcher::register(url, &machine, &password, token))
        .with_context(|| format!("registering '{machine}' at {url}"))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(
        &file,
        format!("url: {url}\nlogin: {machine}\npassword: {password}\n"),
    )
    .with_context(|| format!("writing {}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
    eprintln!(
        "Successfully registered '{machine}' to {url}; credentials in {}",
        file.display()
    );
    if !validated {
        eprintln!(
            "An admin must validate it on the LAPI host: `rampart machines validate {machine}`"
        );
    }
    Ok(ExitCode::SUCCESS)
}
