//! `rampart capi register|status`: this LAPI's account on a central API (`rampart central`, or
//! CrowdSec's), as cscli's `capi` noun.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Register this LAPI with a central API and write its online credentials.
    Register {
        /// Central API base URL (e.g. http://central.example:8081/).
        #[arg(short, long)]
        url: String,
        /// Protocol version: 3 (current) or 2 (CrowdSec 1.4).
        #[arg(long, default_value_t = 3)]
        version: u8,
    },
    /// Check that the online credentials log in.
    Status,
}

/// Where the online credentials are.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (its api.server.online_client.credentials_path is used).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Online credentials file (default: the configuration's, else
    /// /etc/rampart/online_api_credentials.yaml).
    #[arg(short = 'f', long, global = true)]
    file: Option<PathBuf>,
}

fn path(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(f) = &args.file {
        return Ok(f.clone());
    }
    let file = args
        .config
        .as_deref()
        .map(super::config::ConfigFile::load)
        .transpose()?;
    Ok(file
        .as_ref()
        .and_then(|f| f.online_credentials_path().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/etc/rampart/online_api_credentials.yaml")))
}

/// CrowdSec's machine ids: the host's machine-id (32 hex) and 16 random alphanumerics.
fn machine_id() -> String {
    let base: String = std::fs::read_to_string("/etc/machine-id")
        .unwrap_or_default()
        .trim()
        .replace('-', "")
        .chars()
        .take(32)
        .collect();
    let base = if base.len() == 32 {
        base
    } else {
        random(32, b"0123456789abcdef")
    };
    base + &random(
        16,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    )
}

fn random(n: usize, alphabet: &[u8]) -> String {
    (0..n)
        .map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())]))
        .collect()
}

pub(crate) fn run(action: Action, args: Args) -> anyhow::Result<ExitCode> {
    let file = path(&args)?;
    let rt = super::remote::runtime()?;
    match action {
        Action::Register { url, version } => {
            if !matches!(version, 2 | 3) {
                anyhow::bail!("--version: 2 or 3");
            }
            let login = machine_id();
            let password = random(
                64,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789",
            );
            let capi = client::capi::Capi::new(&url, &login, &password, version);
            rt.block_on(capi.register())
                .with_context(|| format!("registering with the central API at {url}"))?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(
                &file,
                format!("url: {url}\nlogin: {login}\npassword: {password}\n"),
            )
            .with_context(|| format!("writing {}", file.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
            eprintln!(
                "Registered '{login}' with {url}; credentials in {}.\nPoint api.server.online_client.credentials_path at it and restart the LAPI to share signals and receive the community blocklist.",
                file.display()
            );
        }
        Action::Status => {
            let creds = client::capi::OnlineCredentials::load(&file)?.with_context(|| {
                format!(
                    "{} holds no central API credentials (empty: sync is off). Register with `rampart capi register --url URL -f {}`",
                    file.display(),
                    file.display()
                )
            })?;
            let version = if creds.url.trim_end_matches('/').ends_with("/v2") {
                2
            } else {
                3
            };
            let base = creds.url.trim_end_matches('/').trim_end_matches("/v2");
            let capi = client::capi::Capi::new(base, &creds.login, &creds.password, version);
            rt.block_on(capi.login(&[])).with_context(|| {
                format!(
                    "logging in to the central API at {} as {}",
                    creds.url, creds.login
                )
            })?;
            eprintln!("Loaded credentials from {}", file.display());
            eprintln!(
                "Trying to authenticate with username {} on {}",
                creds.login, creds.url
            );
            println!("You can successfully interact with Central API (CAPI)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
