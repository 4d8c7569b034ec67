//! `rampart machines` and `rampart bouncers`: managing who may talk to the LAPI. Like cscli,
//! these work on the database directly, so they also work while the LAPI is down.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::Output;

/// Where the database is.
#[derive(Debug, clap::Args)]
pub(crate) struct DbArgs {
    /// Configuration file (its db_config is used).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Database URL (overrides the configuration).
    #[arg(long, env = "RAMPART_DB", global = true)]
    db: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "human", global = true)]
    pub(crate) output: Output,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MachinesAction {
    /// List machines.
    List,
    /// Add a machine (validated).
    Add {
        /// Machine id (login).
        machine_id: String,
        /// Password.
        #[arg(long, conflicts_with = "auto")]
        password: Option<String>,
        /// Generate a random password and print it.
        #[arg(long)]
        auto: bool,
        /// Write the credentials (url, login, password) to this file, as local_api_credentials.yaml.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// LAPI URL written to the credentials file.
        #[arg(long, default_value = "http://127.0.0.1:8080/")]
        url: String,
    },
    /// Validate a machine that registered itself.
    Validate {
        /// Machine id.
        machine_id: String,
    },
    /// Delete machines.
    Delete {
        /// Machine ids.
        #[arg(required = true)]
        machine_ids: Vec<String>,
    },
    /// Delete machines never validated, or silent (no heartbeat) for longer than --duration.
    Prune {
        /// Silence after which a machine goes (e.g. 10m, 7d).
        #[arg(short, long, default_value = "10m")]
        duration: String,
        /// Only machines that were never validated.
        #[arg(long)]
        not_validated_only: bool,
        /// Do not ask.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BouncersAction {
    /// List bouncers.
    List,
    /// Add a bouncer and print its API key (shown only this once).
    Add {
        /// Bouncer name.
        name: String,
        /// Use this key instead of generating one.
        #[arg(short, long)]
        key: Option<String>,
    },
    /// Delete bouncers.
    Delete {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete bouncers that have not pulled for longer than --duration.
    Prune {
        /// Silence after which a bouncer goes (e.g. 60m, 7d).
        #[arg(short, long, default_value = "60m")]
        duration: String,
        /// Do not ask.
        #[arg(long)]
        force: bool,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

impl DbArgs {
    /// Opens the database of the configuration (or `--db`).
    pub(crate) async fn open(&self) -> anyhow::Result<store::Store> {
        let (url, _) = super::config::resolve(self.config.as_deref(), self.db.as_deref())?;
        store::Store::open(&url)
            .await
            .with_context(|| format!("opening the database {url}"))
    }
}

fn duration_ms(s: &str) -> anyhow::Result<i64> {
    model::parse_duration_days(s)
        .filter(|d| *d > 0)
        .map(|ns| ns / 1_000_000)
        .with_context(|| format!("--duration: '{s}' is not a positive duration (e.g. 10m, 7d)"))
}

fn ts(ms: Option<i64>) -> String {
    ms.filter(|v| *v > 0)
        .map(store::ms_to_rfc3339)
        .unwrap_or_else(|| "-".into())
}

/// cscli's ticks for people, plain words for scripts.
fn status_cell(output: Output, ok: bool) -> String {
    match (output, ok) {
        (Output::Raw, true) => "validated".into(),
        (Output::Raw, false) => "pending".into(),
        (_, true) => "✔️".into(),
        (_, false) => "🚫".into(),
    }
}

/// Asks before deleting, unless `force`; refuses without a terminal to ask on.
fn confirm(what: &str, force: bool) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}: add --force to delete without asking");
    }
    eprint!("{what}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn random_password() -> String {
    // cscli's alphabet (no 'Z'), 64 characters.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789";
    (0..64)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn machines(action: MachinesAction, db: DbArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = db.open().await?;
        match action {
            MachinesAction::List => {
                let ms = store.machines().await?;
                if db.output == Output::Json {
                    let v: Vec<_> = ms
                        .iter()
                        .map(|m| {
                            serde_json::json!({"machineId": m.machine_id, "ipAddress": m.ip_address, "isValidated": m.is_validated,
                            "version": m.version, "auth_type": m.auth_type, "created_at": ts(Some(m.created_at)),
                            "last_heartbeat": ts(m.last_heartbeat), "last_push": ts(m.last_push)})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    let rows: Vec<Vec<String>> = ms
                        .iter()
                        .map(|m| {
                            vec![
                                m.machine_id.clone(),
                                m.ip_address.clone(),
                                ts(Some(m.updated_at)),
                                status_cell(db.output, m.is_validated),
                                m.version.clone(),
                                m.auth_type.clone(),
                                ts(m.last_heartbeat),
                            ]
                        })
                        .collect();
                    super::output::rows(db.output, &["Name", "IP Address", "Last Update", "Status", "Version", "Auth Type", "Last Heartbeat"], &rows);
                }
            }
            MachinesAction::Add { machine_id, password, auto, file, url } => {
                let password = match (password, auto) {
                    (Some(p), _) => p,
                    (None, true) => random_password(),
                    (None, false) => bail!("give --password PASSWORD or --auto to generate one"),
                };
                let hash = lapi::hash_password(&password).context("hashing the password")?;
                let m = store::NewMachine {
                    machine_id: machine_id.clone(),
                    password_hash: hash,
                    ip_address: String::new(),
                    is_validated: true,
                    auth_type: "password".into(),
                };
                match store.create_machine(&m).await {
                    Ok(_) => {}
                    Err(store::StoreError::Exists(_)) => bail!("machine '{machine_id}' already exists (delete it first, or pick another id)"),
                    Err(e) => return Err(e.into()),
                }
                let creds = format!("url: {url}\nlogin: {machine_id}\npassword: {password}\n");
                match file {
                    Some(f) => {
                        std::fs::write(&f, &creds).with_context(|| format!("writing {}", f.display()))?;
                        eprintln!("Machine '{machine_id}' created; credentials written to {}", f.display());
                    }
                    None => {
                        eprintln!("Machine '{machine_id}' created.");
                        if auto {
                            print!("{creds}");
                        }
                    }
                }
            }
            MachinesAction::Validate { machine_id } => {
                store.validate_machine(&machine_id).await?;
                eprintln!("machine '{machine_id}' validated");
            }
            MachinesAction::Delete { machine_ids } => {
                for id in machine_ids {
                    store.delete_machine(&id).await?;
                    eprintln!("machine '{id}' deleted");
                }
            }
            MachinesAction::Prune { duration, not_validated_only, force } => {
                let cutoff = store::now_ms() - duration_ms(&duration)?;
                let gone: Vec<String> = store
                    .machines()
                    .await?
                    .into_iter()
                    .filter(|m| {
                        // Last sign of life: a heartbeat, a push or a login.
                        let seen = [m.last_heartbeat, m.last_push, Some(m.updated_at)]
                            .into_iter()
                            .flatten()
                            .max()
                            .unwrap_or(m.created_at);
                        !m.is_validated || (!not_validated_only && seen < cutoff)
                    })
                    .map(|m| m.machine_id)
                    .collect();
                if gone.is_empty() {
                    eprintln!("no machine to prune");
                } else if confirm(&format!("delete {} machine(s): {}", gone.len(), gone.join(", ")), force)? {
                    for id in &gone {
                        store.delete_machine(id).await?;
                    }
                    eprintln!("{} machine(s) pruned", gone.len());
                }
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn bouncers(action: BouncersAction, db: DbArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = db.open().await?;
        match action {
            BouncersAction::List => {
                let bs = store.bouncers().await?;
                if db.output == Output::Json {
                    let v: Vec<_> = bs
                        .iter()
                        .map(|b| {
                            serde_json::json!({"name": b.name, "ip_address": b.ip_address, "revoked": b.revoked, "type": b.kind,
                            "version": b.version, "last_pull": ts(b.last_pull), "auth_type": b.auth_type, "created_at": ts(Some(b.created_at))})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    let rows: Vec<Vec<String>> = bs
                        .iter()
                        .map(|b| {
                            vec![
                                b.name.clone(),
                                b.ip_address.clone(),
                                status_cell(db.output, !b.revoked),
                                ts(b.last_pull),
                                b.kind.clone(),
                                b.version.clone(),
                                b.auth_type.clone(),
                            ]
                        })
                        .collect();
                    super::output::rows(db.output, &["Name", "IP Address", "Valid", "Last API pull", "Type", "Version", "Auth Type"], &rows);
                }
            }
            BouncersAction::Add { name, key } => {
                let key = key.unwrap_or_else(lapi::new_api_key);
                let b = store::NewBouncer {
                    name: name.clone(),
                    api_key_hash: lapi::hash_api_key(&key),
                    auth_type: "api-key".into(),
                    auto_created: false,
                    ip_address: String::new(),
                };
                match store.create_bouncer(&b).await {
                    Ok(_) => {}
                    Err(store::StoreError::Exists(_)) => bail!("bouncer '{name}' already exists (delete it first, or pick another name)"),
                    Err(e) => return Err(e.into()),
                }
                eprintln!("API key for '{name}' (it will not be shown again):");
                println!("{key}");
            }
            BouncersAction::Delete { names } => {
                for n in names {
                    store.delete_bouncer(&n).await?;
                    eprintln!("bouncer '{n}' deleted");
                }
            }
            BouncersAction::Prune { duration, force } => {
                let cutoff = store::now_ms() - duration_ms(&duration)?;
                let gone: Vec<String> = store
                    .bouncers()
                    .await?
                    .into_iter()
                    .filter(|b| b.last_pull.unwrap_or(b.created_at) < cutoff)
                    .map(|b| b.name)
                    .collect();
                if gone.is_empty() {
                    eprintln!("no bouncer to prune");
                } else if confirm(&format!("delete {} bouncer(s): {}", gone.len(), gone.join(", ")), force)? {
                    for n in &gone {
                        store.delete_bouncer(n).await?;
                    }
                    eprintln!("{} bouncer(s) pruned", gone.len());
                }
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
