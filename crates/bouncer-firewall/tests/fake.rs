//! A LAPI without push, answering `GET /v1/decisions/stream` the way CrowdSec 1.4.6 does: the
//! full list on `startup=true`, otherwise what changed since the previous call, at once (an
//! unknown `wait=` is ignored), and `{"deleted":null,"new":null}` when nothing did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

#[derive(Default)]
pub(crate) struct Fake {
    active: Vec<Value>,
    new: Vec<Value>,
    deleted: Vec<Value>,
    /// Query strings received.
    pub(crate) requests: Vec<HashMap<String, String>>,
}

fn decision(value: &str, duration: &str) -> Value {
    let scope = if value.contains('/') { "Range" } else { "Ip" };
    json!({"duration": duration, "id": 1, "origin": "cscli", "scenario": "manual",
           "scope": scope, "type": "ban", "value": value})
}

impl Fake {
    pub(crate) fn ban(&mut self, value: &str, duration: &str) {
        let d = decision(value, duration);
        self.active.push(d.clone());
        self.new.push(d);
    }

    pub(crate) fn unban(&mut self, value: &str) {
        self.active.retain(|d| d["value"] != value);
        self.deleted.push(decision(value, "-1s"));
    }
}

/// Serves the fake on the namespace's loopback; returns its URL.
pub(crate) async fn serve(fake: Arc<Mutex<Fake>>) -> String {
    let app = axum::Router::new().route(
        "/v1/decisions/stream",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| {
                let fake = Arc::clone(&fake);
                async move {
                    let mut f = fake.lock().unwrap_or_else(|e| e.into_inner());
                    let startup = q.get("startup").is_some_and(|v| v == "true");
                    f.requests.push(q);
                    let body = if startup {
                        f.new.clear();
                        f.deleted.clear();
                        json!({"new": f.active, "deleted": []})
                    } else if f.new.is_empty() && f.deleted.is_empty() {
                        json!({"deleted": null, "new": null})
                    } else {
                        json!({"new": std::mem::take(&mut f.new), "deleted": std::mem::take(&mut f.deleted)})
                    };
                    axum::Json(body)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap_or_else(|e| panic!("fake LAPI: {e}"));
    let url = format!(
        "http://{}/",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}
