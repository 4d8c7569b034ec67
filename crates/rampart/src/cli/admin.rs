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
    output: Output,
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
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn open(db: &DbArgs) -> anyhow::Result<store::Store> {
    let (url, _) = super::config::resolve(db.config.as_deref(), db.db.as_deref())?;
    store::Store::open(&url)
        .await
        .with_context(|| format!("opening the database {url}"))
}

fn ts(ms: Option<i64>) -> String {
    ms.filter(|v| *v > 0)
        .map(store::ms_to_rfc3339)
        .unwrap_or_else(|| "-".into())
}

/// Prints rows as an aligned table.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    line(w.iter().map(|n| "-".repeat(*n)).collect());
    for r in rows {
        line(r.clone());
    }
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
        let store = open(&db).await?;
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
                                if m.is_validated { "✔️".into() } else { "🚫".into() },
                                m.version.clone(),
                                m.auth_type.clone(),
                                ts(m.last_heartbeat),
                            ]
                        })
                        .collect();
                    table(&["Name", "IP Address", "Last Update", "Status", "Version", "Auth Type", "Last Heartbeat"], &rows);
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
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn bouncers(action: BouncersAction, db: DbArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = open(&db).await?;
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
                                if b.revoked { "🚫".into() } else { "✔️".into() },
                                ts(b.last_pull),
                                b.kind.clone(),
                                b.version.clone(),
                                b.auth_type.clone(),
                            ]
                        })
                        .collect();
                    table(&["Name", "IP Address", "Valid", "Last API pull", "Type", "Version", "Auth Type"], &rows);
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
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
