//! Throwaway databases for tests, on the real servers this machine runs: a SQLite file in a
//! temporary directory, and a fresh database on PostgreSQL (127.0.0.1:5432) and MariaDB
//! (127.0.0.1:3306), dropped again when the guard goes out of scope.
//!
//! Server addresses can be overridden with `RAMPART_TEST_PG` / `RAMPART_TEST_MYSQL` (an admin URL
//! without a database name). A server that cannot be reached is skipped with a message on the
//! real stderr, except under `CI=true`, where it is an error: CI must exercise every backend.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// A database that exists for the life of this value.
#[derive(Debug)]
pub struct TempDb {
    /// `sqlite`, `postgres` or `mysql`.
    pub backend: &'static str,
    /// URL to open it with.
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{}_{n}", std::process::id(), t)
}

fn note(msg: &str) {
    let _ = std::io::stderr().write_all(format!("{msg}\n").as_bytes());
}

/// A fresh SQLite database in a temporary directory.
pub fn sqlite() -> TempDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.db");
    TempDb {
        backend: "sqlite",
        url: format!("sqlite://{}", path.display()),
        admin_url: None,
        name: String::new(),
        _dir: Some(dir),
    }
}

async fn server_db(backend: &'static str, admin_url: String, sep: &str) -> Option<TempDb> {
    let name = unique("rampart_t");
    let created = async {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await?;
        c.close().await?;
        Ok::<(), sqlx::Error>(())
    }
    .await;
    match created {
        Ok(()) => {
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            Some(TempDb {
                backend,
                url: format!("{base}{sep}{name}"),
                admin_url: Some(admin_url),
                name,
                _dir: None,
            })
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{backend} test server at {admin_url} is required under CI=true: {e}");
            }
            note(&format!(
                "SKIPPED: {backend} backend tests, server at {admin_url} unreachable: {e}"
            ));
            None
        }
    }
}

/// A fresh PostgreSQL database, or `None` (with a note) when the server is unreachable.
pub async fn postgres() -> Option<TempDb> {
    let admin = std::env::var("RAMPART_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    server_db("postgres", admin, "/").await
}

/// A fresh MariaDB/MySQL database, or `None` (with a note) when the server is unreachable.
pub async fn mysql() -> Option<TempDb> {
    let admin = std::env::var("RAMPART_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    server_db("mysql", admin, "/").await
}

/// SQLite, PostgreSQL and MariaDB databases (those that are reachable).
pub async fn all_backends() -> Vec<TempDb> {
    let mut v = vec![sqlite()];
    v.extend(postgres().await);
    v.extend(mysql().await);
    v
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let Some(admin) = self.admin_url.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                    let force = if admin.starts_with("postgres") {
                        " WITH (FORCE)"
                    } else {
                        ""
                    };
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}{force}"
                    )))
                    .execute(&mut c)
                    .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}
