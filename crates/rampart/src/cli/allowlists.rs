//! `rampart allowlists`: ranges that must never be banned. Like cscli, these commands work on the
//! database; a running LAPI picks changes up within seconds.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use model::IpRange;

use super::Output;
use super::admin::DbArgs;
use super::output;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Create an allowlist.
    Create {
        /// Name.
        name: String,
        /// Description.
        #[arg(short, long, default_value = "")]
        description: String,
    },
    /// List allowlists.
    List,
    /// Show an allowlist's items.
    Inspect {
        /// Name.
        name: String,
    },
    /// Add IPs or ranges to an allowlist.
    Add {
        /// Name.
        name: String,
        /// IPs or CIDR ranges.
        #[arg(required = true)]
        values: Vec<String>,
        /// Expire the items after this long (e.g. 7d).
        #[arg(short, long)]
        expiration: Option<String>,
        /// Why (cscli's -d).
        #[arg(short = 'd', long, default_value = "")]
        comment: String,
    },
    /// Remove items from an allowlist.
    Remove {
        /// Name.
        name: String,
        /// Values as added.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Delete an allowlist.
    Delete {
        /// Name.
        name: String,
    },
    /// Tell whether IPs or ranges are allowlisted, and by what.
    Check {
        /// IPs or CIDR ranges.
        #[arg(required = true)]
        values: Vec<String>,
    },
}

fn ts(ms: Option<i64>) -> String {
    ms.map(store::ms_to_rfc3339)
        .unwrap_or_else(|| "never".into())
}

pub(crate) fn run(action: Action, db: DbArgs) -> anyhow::Result<ExitCode> {
    super::remote::runtime()?.block_on(async move {
        let store = db.open().await?;
        let out = db.output;
        match action {
            Action::Create { name, description } => {
                store
                    .create_allowlist(&name, &description)
                    .await
                    .map_err(|e| match e {
                        store::StoreError::Exists(_) => {
                            anyhow::anyhow!("allowlist '{name}' already exists")
                        }
                        e => e.into(),
                    })?;
                eprintln!("allowlist '{name}' created");
            }
            Action::List => {
                let lists = store.allowlists().await?;
                if out == Output::Json {
                    let v: Vec<_> = lists
                        .iter()
                        .map(|l| {
                            serde_json::json!({"name": l.name, "description": l.description,
                                "created_at": ts(Some(l.created_at)), "updated_at": ts(Some(l.updated_at)),
                                "items": l.items.len()})
                        })
                        .collect();
                    output::json(&v)?;
                } else {
                    let rows: Vec<Vec<String>> = lists
                        .iter()
                        .map(|l| {
                            vec![
                                l.name.clone(),
                                l.description.clone(),
                                ts(Some(l.created_at)),
                                ts(Some(l.updated_at)),
                                l.items.len().to_string(),
                            ]
                        })
                        .collect();
                    output::rows(
                        out,
                        &["Name", "Description", "Created at", "Updated at", "Items"],
                        &rows,
                    );
                }
            }
            Action::Inspect { name } => {
                let list = store
                    .allowlists()
                    .await?
                    .into_iter()
                    .find(|l| l.name == name)
                    .with_context(|| format!("no allowlist named '{name}' (`rampart allowlists list`)"))?;
                if out == Output::Json {
                    let items: Vec<_> = list
                        .items
                        .iter()
                        .map(|i| {
                            serde_json::json!({"value": i.value, "comment": i.comment,
                                "created_at": ts(Some(i.created_at)), "expiration": ts(i.expires_at)})
                        })
                        .collect();
                    output::json(&serde_json::json!({"name": list.name, "description": list.description, "items": items}))?;
                } else {
                    let rows: Vec<Vec<String>> = list
                        .items
                        .iter()
                        .map(|i| {
                            vec![
                                i.value.clone(),
                                ts(Some(i.created_at)),
                                ts(i.expires_at),
                                i.comment.clone(),
                            ]
                        })
                        .collect();
                    output::rows(out, &["Value", "Created at", "Expiration", "Comment"], &rows);
                }
            }
            Action::Add {
                name,
                values,
                expiration,
                comment,
            } => {
                let expires_at = match expiration {
                    Some(e) => {
                        let ns = model::parse_duration_days(&e)
                            .filter(|d| *d > 0)
                            .with_context(|| format!("--expiration: '{e}' is not a positive duration (e.g. 7d)"))?;
                        Some(store::now_ms() + ns / 1_000_000)
                    }
                    None => None,
                };
                let mut items = Vec::new();
                for v in &values {
                    IpRange::parse(v).map_err(|e| anyhow::anyhow!("'{v}': {e}"))?;
                    items.push(store::AllowlistItem {
                        value: v.clone(),
                        comment: comment.clone(),
                        created_at: 0,
                        expires_at,
                    });
                }
                store
                    .add_allowlist_items(&name, &items)
                    .await
                    .map_err(|e| not_found(e, &name))?;
                eprintln!("{} item(s) added to '{name}'", items.len());
            }
            Action::Remove { name, values } => {
                let n = store
                    .remove_allowlist_items(&name, &values)
                    .await
                    .map_err(|e| not_found(e, &name))?;
                eprintln!("{n} item(s) removed from '{name}'");
            }
            Action::Delete { name } => {
                store
                    .delete_allowlist(&name)
                    .await
                    .map_err(|e| not_found(e, &name))?;
                eprintln!("allowlist '{name}' deleted");
            }
            Action::Check { values } => {
                let lists = store.allowlists().await?;
                let mut rows = Vec::new();
                for v in &values {
                    let r = IpRange::parse(v).map_err(|e| anyhow::anyhow!("'{v}': {e}"))?;
                    let hits: Vec<String> = lists
                        .iter()
                        .flat_map(|l| l.items.iter().map(move |i| (l, i)))
                        .filter(|(_, i)| {
                            IpRange::parse(&i.value).is_ok_and(|ir| ir.contains(&r) || r.contains(&ir))
                        })
                        .map(|(l, i)| format!("{} ({})", l.name, i.value))
                        .collect();
                    rows.push(vec![
                        v.clone(),
                        (!hits.is_empty()).to_string(),
                        hits.join(", "),
                    ]);
                }
                if out == Output::Json {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|r| serde_json::json!({"value": r[0], "allowlisted": r[1] == "true", "by": r[2]}))
                        .collect();
                    output::json(&v)?;
                } else {
                    output::rows(out, &["Value", "Allowlisted", "By"], &rows);
                }
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn not_found(e: store::StoreError, name: &str) -> anyhow::Error {
    match e {
        store::StoreError::NotFound(_) => {
            anyhow::anyhow!(
                "no allowlist named '{name}' (create it with `rampart allowlists create {name}`)"
            )
        }
        e => e.into(),
    }
}
