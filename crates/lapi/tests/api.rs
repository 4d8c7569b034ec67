//! The LAPI over real HTTP, on SQLite, PostgreSQL and MariaDB (real servers): every endpoint a
//! CrowdSec agent, cscli or bouncer uses, the push extension, bad input, restarts, and two
//! replicas sharing one PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapi::{Lapi, LapiConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Server {
    base: String,
    lapi: Arc<Lapi>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(db_url: &str) -> Self {
        Self::start_with(db_url, |_| {}).await
    }

    async fn start_with(db_url: &str, tweak: impl FnOnce(&mut LapiConfig)) -> Self {
        let mut cfg = LapiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db_url: db_url.to_owned(),
            jwt_secret: Some(vec![7; 64]),
            replica_sync: Duration::from_millis(500),
            ..LapiConfig::default()
        };
        tweak(&mut cfg);
        let lapi = Lapi::open(cfg).await.unwrap();
        let listener = lapi.bind().await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let l = Arc::clone(&lapi);
        let task = tokio::spawn(async move {
            l.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            lapi,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.lapi.store().close().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("crowdsec/v1.4.6-rampart-test")
        .build()
        .unwrap()
}

async fn add_machine(lapi: &Lapi, id: &str, password: &str) {
    let m = store::NewMachine {
        machine_id: id.into(),
        password_hash: lapi::hash_password(password).unwrap(),
        is_validated: true,
        auth_type: "password".into(),
        ..store::NewMachine::default()
    };
    lapi.store().create_machine(&m).await.unwrap();
}

async fn add_bouncer(lapi: &Lapi, name: &str) -> String {
    let key = lapi::new_api_key();
    let b = store::NewBouncer {
        name: name.into(),
        api_key_hash: lapi::hash_api_key(&key),
        auth_type: "api-key".into(),
        ..Default::default()
    };
    lapi.store().create_bouncer(&b).await.unwrap();
    key
}

async fn login(c: &reqwest::Client, s: &Server, id: &str, password: &str) -> String {
    let r = c
        .post(s.url("/v1/watchers/login"))
        .json(
            &json!({"machine_id": id, "password": password, "scenarios": ["crowdsecurity/ssh-bf"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 200);
    v["token"].as_str().unwrap().to_owned()
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn agent_alert(ip: &str, scenario: &str) -> Value {
    json!({"capacity":5,"decisions":null,"events":[{"meta":[{"key":"source_ip","value":ip}],"timestamp":now_rfc3339()}],
           "events_count":6,"labels":null,"leakspeed":"10s","message":format!("Ip {ip} performed '{scenario}'"),
           "remediation":true,"scenario":scenario,"scenario_hash":"abc","scenario_version":"0.3","simulated":false,
           "source":{"scope":"ip","value":ip,"ip":ip},"start_at":now_rfc3339(),"stop_at":now_rfc3339()})
}

fn cscli_alert(value: &str, scope: &str, duration: &str) -> Value {
    json!({"capacity":0,"decisions":[{"duration":duration,"origin":"cscli","scenario":"manual 'ban' from 'test'","scope":scope,"type":"ban","value":value}],
           "events":[],"events_count":1,"leakspeed":"0","message":"manual","scenario":"manual 'ban' from 'test'","scenario_hash":"",
           "scenario_version":"","simulated":false,"source":{"scope":scope,"value":value},"start_at":now_rfc3339(),"stop_at":now_rfc3339()})
}

async fn post_alerts(c: &reqwest::Client, s: &Server, token: &str, alerts: &Value) -> Vec<String> {
    let r = c
        .post(s.url("/v1/alerts"))
        .bearer_auth(token)
        .json(alerts)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap_or_default()
    );
    r.json().await.unwrap()
}

async fn get_json(c: &reqwest::Client, url: &str, key: &str) -> Value {
    let r = c.get(url).header("X-Api-Key", key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.unwrap()
}

fn values(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["value"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A bouncer long-polling the stream: its answer and how long it waited.
fn spawn_waiter(
    c: &reqwest::Client,
    url: String,
    key: &str,
) -> tokio::task::JoinHandle<(Value, Duration)> {
    let (c, key) = (c.clone(), key.to_owned());
    tokio::spawn(async move {
        let started = Instant::now();
        let v: Value = c
            .get(url)
            .header("X-Api-Key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v, started.elapsed())
    })
}

async fn api_suite(db: &testkit::TempDb) {
    let backend = db.backend;
    let s = Server::start(&db.url).await;
    let c = client();

    // Registration: unvalidated until an admin validates; login errors are 401 with a message.
    let r = c
        .post(s.url("/v1/watchers"))
        .json(&json!({"machine_id":"agent1","password":"pw-agent1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{backend}");
    let r = c
        .post(s.url("/v1/watchers"))
        .json(&json!({"machine_id":"agent1","password":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("user already exist"));
    let r = c
        .post(s.url("/v1/watchers/login"))
        .json(&json!({"machine_id":"agent1","password":"pw-agent1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("not validated"));
    s.lapi.store().validate_machine("agent1").await.unwrap();
    let bad_ua = reqwest::Client::builder()
        .user_agent("curl")
        .build()
        .unwrap();
    let r = bad_ua
        .post(s.url("/v1/watchers/login"))
        .json(&json!({"machine_id":"agent1","password":"pw-agent1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "User-Agent must be name/version"
    );
    let r = c
        .post(s.url("/v1/watchers/login"))
        .json(&json!({"machine_id":"agent1","password":"wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let token = login(&c, &s, "agent1", "pw-agent1").await;
    let m = s.lapi.store().machine("agent1").await.unwrap().unwrap();
    assert_eq!(
        (m.version.as_str(), m.scenarios.as_str()),
        ("v1.4.6-rampart-test", "crowdsecurity/ssh-bf")
    );
    let r = c
        .get(s.url("/v1/heartbeat"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(s.url("/v1/refresh_token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(s.url("/v1/heartbeat"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let key = add_bouncer(&s.lapi, "fw").await;
    let r = c
        .get(s.url("/v1/decisions"))
        .header("X-Api-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "access forbidden"
    );

    // Nothing yet: null, and an empty startup stream.
    assert_eq!(
        get_json(&c, &s.url("/v1/decisions?ip=192.0.2.7"), &key).await,
        Value::Null
    );
    let v = get_json(&c, &s.url("/v1/decisions/stream?startup=true"), &key).await;
    assert_eq!(v, json!({"new": [], "deleted": []}));

    // An agent alert: profiles make a 4h ban; cscli-style alerts carry their own decisions.
    let ids = post_alerts(
        &c,
        &s,
        &token,
        &json!([agent_alert("192.0.2.7", "crowdsecurity/ssh-bf")]),
    )
    .await;
    assert_eq!(ids.len(), 1);
    post_alerts(
        &c,
        &s,
        &token,
        &json!([
            cscli_alert("2001:db8::7", "Ip", "1h"),
            cscli_alert("198.51.100.0/24", "range", "24h"),
            cscli_alert("alice", "username", "1h")
        ]),
    )
    .await;
    let d = get_json(&c, &s.url("/v1/decisions?ip=192.0.2.7"), &key).await;
    assert_eq!(d[0]["type"], "ban");
    assert_eq!(d[0]["origin"], "crowdsec");
    assert_eq!(d[0]["scope"], "Ip");
    let left = d[0]["duration"].as_str().unwrap();
    assert!(left.starts_with("3h59m") || left == "4h0m0s", "{d}");
    assert!(d[0].get("until").is_none() && d[0].get("simulated").is_none());
    assert_eq!(
        values(&get_json(&c, &s.url("/v1/decisions?ip=198.51.100.77"), &key).await),
        ["198.51.100.0/24"]
    );
    assert_eq!(
        values(&get_json(&c, &s.url("/v1/decisions?ip=2001:db8::7"), &key).await),
        ["2001:db8::7"]
    );
    assert_eq!(
        get_json(&c, &s.url("/v1/decisions?ip=2001:db8::8"), &key).await,
        Value::Null
    );
    assert_eq!(
        values(
            &get_json(
                &c,
                &s.url("/v1/decisions?range=198.51.0.0/16&contains=false"),
                &key
            )
            .await
        ),
        ["198.51.100.0/24"]
    );
    assert_eq!(
        values(&get_json(&c, &s.url("/v1/decisions?scope=username&value=alice"), &key).await),
        ["alice"]
    );
    assert_eq!(
        values(&get_json(&c, &s.url("/v1/decisions?origins=cscli&type=ban"), &key).await).len(),
        3
    );

    // Stream: startup lists Ip and Range decisions only (default scopes); then deltas.
    let v = get_json(&c, &s.url("/v1/decisions/stream?startup=true"), &key).await;
    assert_eq!(
        values(&v["new"]),
        ["192.0.2.7", "198.51.100.0/24", "2001:db8::7"],
        "{backend}"
    );
    let v = get_json(&c, &s.url("/v1/decisions/stream"), &key).await;
    assert_eq!(v, json!({"new": [], "deleted": []}));
    let v = get_json(
        &c,
        &s.url("/v1/decisions/stream?startup=true&scopes=username"),
        &key,
    )
    .await;
    assert_eq!(values(&v["new"]), ["alice"]);

    // Deleting (cscli decisions delete) reaches the stream as deleted.
    let r = c
        .delete(s.url("/v1/decisions?ip=192.0.2.7"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"nbDeleted": "1"}));
    let v = get_json(&c, &s.url("/v1/decisions/stream"), &key).await;
    assert_eq!(
        (values(&v["new"]), values(&v["deleted"])),
        (vec![], vec!["192.0.2.7".to_owned()]),
        "{backend}"
    );
    assert_eq!(
        get_json(&c, &s.url("/v1/decisions?ip=192.0.2.7"), &key).await,
        Value::Null
    );

    // Push: a waiting bouncer is woken by a new decision.
    let waiter = spawn_waiter(&c, s.url("/v1/decisions/stream?wait=20s"), &key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    post_alerts(
        &c,
        &s,
        &token,
        &json!([agent_alert("203.0.113.50", "crowdsecurity/http-probing")]),
    )
    .await;
    let (v, waited) = waiter.await.unwrap();
    assert_eq!(values(&v["new"]), ["203.0.113.50"], "{backend}");
    assert!(waited < Duration::from_secs(20), "woken, not timed out");
    // With nothing new, the wait ends empty.
    let v = get_json(&c, &s.url("/v1/decisions/stream?wait=200ms"), &key).await;
    assert_eq!(v, json!({"new": [], "deleted": []}));

    // Alerts search and delete.
    let r = c
        .get(s.url("/v1/alerts?scenario=crowdsecurity/ssh-bf"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let alerts: Value = r.json().await.unwrap();
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["machine_id"], "agent1");
    assert_eq!(alerts[0]["source"]["scope"], "Ip", "scope normalised");
    assert_eq!(alerts[0]["decisions"][0]["value"], "192.0.2.7");
    assert!(alerts[0]["decisions"][0]["until"].is_string());
    let r = c
        .get(s.url("/v1/alerts?ip=198.51.100.1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        1
    );
    let r = c
        .get(s.url("/v1/alerts?has_active_decision=true&limit=0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        4,
        "{backend}"
    );
    let id = alerts[0]["id"].as_i64().unwrap();
    let r = c
        .get(s.url(&format!("/v1/alerts/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id);
    let r = c
        .get(s.url("/v1/alerts/999999"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .delete(s.url("/v1/alerts?scenario=crowdsecurity/http-probing"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"nbDeleted": "1"}));
    let v = get_json(&c, &s.url("/v1/decisions/stream"), &key).await;
    assert_eq!(
        values(&v["deleted"]),
        ["203.0.113.50"],
        "deleting an alert lifts its decisions"
    );

    // Usage metrics from a bouncer and from a machine.
    let rc = json!({"remediation_components":[{"version":"v0.0.31","os":{"name":"debian","version":"12"},"utc_startup_timestamp":1,"type":"crowdsec-firewall-bouncer","metrics":[]}]});
    let r = c
        .post(s.url("/v1/usage-metrics"))
        .header("X-Api-Key", &key)
        .json(&rc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let lp = json!({"log_processors":[{"version":"v1.7","os":{"name":"debian","version":"12"},"utc_startup_timestamp":1,"hub_items":{},"datasources":{"file":1},"metrics":[]}]});
    let r = c
        .post(s.url("/v1/usage-metrics"))
        .bearer_auth(&token)
        .json(&lp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .post(s.url("/v1/usage-metrics"))
        .bearer_auth(&token)
        .json(&rc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Allowlists: allowlisted sources raise no alert and no decision.
    s.lapi.store().create_allowlist("office", "").await.unwrap();
    s.lapi
        .store()
        .add_allowlist_items(
            "office",
            &[store::AllowlistItem {
                value: "192.0.2.0/28".into(),
                comment: "hq".into(),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    s.lapi.reload_allowlists().await.unwrap();
    let ids = post_alerts(
        &c,
        &s,
        &token,
        &json!([agent_alert("192.0.2.9", "crowdsecurity/ssh-bf")]),
    )
    .await;
    assert!(ids.is_empty());
    let r = c
        .get(s.url("/v1/allowlists/check/192.0.2.9"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["allowlisted"], true);
    assert!(v["reason"].as_str().unwrap().contains("office"));
    let r = c
        .head(s.url("/v1/allowlists/check/10.0.0.0/8"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .get(s.url("/v1/allowlists?with_content=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["items"][0]["value"],
        "192.0.2.0/28"
    );

    // Bad input: clear 4xx JSON, never a 500.
    let r = c
        .post(s.url("/v1/alerts"))
        .bearer_auth(&token)
        .body("[{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
    let r = c
        .post(s.url("/v1/alerts"))
        .bearer_auth(&token)
        .json(&json!([{"scenario": 3}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = c
        .get(s.url("/v1/decisions?ip=300.1.1.1"))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("300.1.1.1")
    );
    let r = c
        .get(s.url("/v1/decisions?bogus=1"))
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .get(s.url("/v1/alerts?since=yesterday"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.get(s.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Its own connection: the server closes it after refusing the oversized body.
    let r = client()
        .post(s.url("/v1/watchers"))
        .body(vec![b'x'; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .post(s.url("/v1/alerts"))
        .bearer_auth(&token)
        .json(&json!([cscli_alert("not-an-ip", "Ip", "1h")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "invalid decisions are discarded, not fatal"
    );
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));

    // A restart rebuilds the index from the database.
    s.stop().await;
    let s = Server::start(&db.url).await;
    let c = client();
    assert_eq!(
        values(&get_json(&c, &s.url("/v1/decisions?ip=2001:db8::7"), &key).await),
        ["2001:db8::7"],
        "{backend}"
    );
    let v = get_json(&c, &s.url("/v1/decisions/stream?startup=true"), &key).await;
    assert_eq!(
        values(&v["new"]),
        ["198.51.100.0/24", "2001:db8::7"],
        "{backend}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_api_on_every_backend() {
    for db in testkit::all_backends().await {
        api_suite(&db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited() {
    let db = testkit::sqlite();
    let s = Server::start(&db.url).await;
    add_machine(&s.lapi, "m", "right").await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = c
            .post(s.url("/v1/watchers/login"))
            .json(&json!({"machine_id":"m","password":"wrong"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{statuses:?}"
    );
    s.stop().await;
}

/// Two LAPIs on one PostgreSQL: a decision pushed to one reaches a bouncer waiting on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_decisions_through_postgres() {
    let Some(db) = testkit::postgres().await else {
        return;
    };
    let a = Server::start(&db.url).await;
    let b = Server::start(&db.url).await;
    add_machine(&a.lapi, "agent", "pw").await;
    let key = add_bouncer(&a.lapi, "fw").await;
    let c = client();
    let token = login(&c, &a, "agent", "pw").await;
    assert_eq!(
        get_json(&c, &b.url("/v1/decisions/stream?startup=true"), &key).await,
        json!({"new": [], "deleted": []})
    );
    let waiter = spawn_waiter(&c, b.url("/v1/decisions/stream?wait=20s"), &key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    post_alerts(
        &c,
        &a,
        &token,
        &json!([cscli_alert("192.0.2.99", "Ip", "1h")]),
    )
    .await;
    let (v, waited) = waiter.await.unwrap();
    assert_eq!(values(&v["new"]), ["192.0.2.99"]);
    assert!(
        waited < Duration::from_secs(5),
        "NOTIFY woke the other replica ({waited:?})"
    );
    // A deletion on B reaches A.
    let token_b = login(&c, &b, "agent", "pw").await;
    let r = c
        .delete(b.url("/v1/decisions?ip=192.0.2.99"))
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"nbDeleted": "1"}));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if get_json(&c, &a.url("/v1/decisions?ip=192.0.2.99"), &key).await == Value::Null {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deletion did not reach the other replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_registration_token_validates_machines_from_allowed_ranges() {
    let db = testkit::sqlite();
    let token = "a-registration-token-of-at-least-32-chars";
    let s = Server::start_with(&db.url, |c| {
        c.auto_registration = Some(lapi::AutoRegistration {
            token: token.into(),
            allowed_ranges: vec!["127.0.0.0/8".parse().unwrap()],
        });
    })
    .await;
    let c = client();
    let r = c
        .post(s.url("/v1/watchers"))
        .json(&json!({"machine_id":"auto1","password":"pw","registration_token":token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    login(&c, &s, "auto1", "pw").await;
    let r = c
        .post(s.url("/v1/watchers"))
        .json(&json!({"machine_id":"auto2","password":"pw","registration_token":"wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
    let s = Server::start_with(&db.url, |c| {
        c.auto_registration = Some(lapi::AutoRegistration {
            token: token.into(),
            allowed_ranges: vec!["10.0.0.0/8".parse().unwrap()],
        });
    })
    .await;
    let r = client()
        .post(s.url("/v1/watchers"))
        .json(&json!({"machine_id":"auto3","password":"pw","registration_token":token}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "outside the allowed ranges"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_choose_decisions_and_notifications() {
    let db = testkit::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles.yaml");
    std::fs::write(
        &profiles,
        "name: http_captcha\nfilters: [\"Alert.GetScenario() contains 'http'\"]\ndecisions: [{type: captcha, duration: 1h}]\nnotifications: [slack_default]\non_success: break\n---\n\
         name: escalate\nfilters: [\"Alert.GetScope() == 'Ip'\"]\ndecisions: [{type: ban, duration: 1h}]\n\
         duration_expr: \"Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)\"\non_success: break\n",
    )
    .unwrap();
    let s = Server::start_with(&db.url, |c| c.profiles = Some(profiles.clone())).await;
    let mut notes = s.lapi.subscribe_notifications();
    add_machine(&s.lapi, "agent", "pw").await;
    let key = add_bouncer(&s.lapi, "b").await;
    let c = client();
    let token = login(&c, &s, "agent", "pw").await;
    post_alerts(
        &c,
        &s,
        &token,
        &json!([agent_alert("192.0.2.1", "crowdsecurity/http-probing")]),
    )
    .await;
    let d = get_json(&c, &s.url("/v1/decisions?ip=192.0.2.1"), &key).await;
    assert_eq!(d[0]["type"], "captcha");
    let n = tokio::time::timeout(Duration::from_secs(5), notes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.plugins, ["slack_default"]);
    assert_eq!(n.alert.decisions[0].kind, "captcha");
    // Repeat offenders: 4h, then 8h.
    post_alerts(
        &c,
        &s,
        &token,
        &json!([agent_alert("192.0.2.2", "crowdsecurity/ssh-bf")]),
    )
    .await;
    post_alerts(
        &c,
        &s,
        &token,
        &json!([agent_alert("192.0.2.2", "crowdsecurity/ssh-bf")]),
    )
    .await;
    let d = get_json(&c, &s.url("/v1/decisions?ip=192.0.2.2"), &key).await;
    let mut left: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["duration"].as_str().unwrap())
        .collect();
    left.sort_unstable();
    assert!(
        left[0].starts_with("3h59m") || left[0] == "4h0m0s",
        "{left:?}"
    );
    assert!(
        left[1].starts_with("7h59m") || left[1] == "8h0m0s",
        "{left:?}"
    );
    s.stop().await;
}

/// CrowdSec lists every expired decision still in its database on `startup=true`; stateful
/// script bouncers rely on it. Those older than the index keeps come from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_lists_long_expired_decisions_from_the_database() {
    let db = testkit::sqlite();
    let s = Server::start_with(&db.url, |c| c.retention = Duration::from_secs(60)).await;
    add_machine(&s.lapi, "m", "pw").await;
    let key = add_bouncer(&s.lapi, "b").await;
    let c = client();
    let token = login(&c, &s, "m", "pw").await;
    let old = (chrono::Utc::now() - chrono::Duration::hours(6)).to_rfc3339();
    let mut stale = cscli_alert("192.0.2.60", "Ip", "1h");
    stale["stop_at"] = json!(old);
    stale["start_at"] = json!(old);
    let mut superseded = stale.clone();
    superseded["source"]["value"] = json!("192.0.2.61");
    superseded["decisions"][0]["value"] = json!("192.0.2.61");
    post_alerts(
        &c,
        &s,
        &token,
        &json!([stale, superseded, cscli_alert("192.0.2.61", "Ip", "1h")]),
    )
    .await;
    let v = get_json(&c, &s.url("/v1/decisions/stream?startup=true"), &key).await;
    assert_eq!(values(&v["new"]), ["192.0.2.61"]);
    assert_eq!(
        values(&v["deleted"]),
        ["192.0.2.60"],
        "the old 192.0.2.61 is superseded by the active one"
    );
    assert!(
        v["deleted"][0]["duration"]
            .as_str()
            .unwrap()
            .starts_with("-4h59m")
            || v["deleted"][0]["duration"] == "-5h0m0s",
        "{v}"
    );
    s.stop().await;
}

/// An agent resending a batch whose answer it lost (same alert UUIDs) gets the stored ids back
/// and nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_alerts_are_not_stored_twice() {
    let db = testkit::sqlite();
    let s = Server::start(&db.url).await;
    add_machine(&s.lapi, "m", "pw").await;
    let c = client();
    let token = login(&c, &s, "m", "pw").await;
    let mut a = agent_alert("192.0.2.70", "crowdsecurity/ssh-bf");
    a["uuid"] = json!("4f5b7f0e-9a8c-4b8e-8a43-2d1f0c9b1e01");
    let b = agent_alert("192.0.2.71", "crowdsecurity/ssh-bf");
    let first = post_alerts(&c, &s, &token, &json!([a.clone()])).await;
    let again = post_alerts(&c, &s, &token, &json!([b, a])).await;
    assert_eq!(again.len(), 2);
    assert_eq!(again[1], first[0]);
    assert_eq!(s.lapi.store().count_alerts().await.unwrap(), 2);
    s.stop().await;
}
