//! The central server over real HTTP and a real PostgreSQL (testkit): registration, login,
//! signal pushes, the consensus pass, the v2 and v3 streams, blocklist links, bad payloads,
//! rate limits, and durability across a restart.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use central::consensus::ConsensusConfig;
use central::{Central, CentralConfig};
use client::capi::Capi;
use model::capi::Signal;

async fn database() -> Option<testkit::TempDb> {
    testkit::postgres().await
}

fn config(db: &testkit::TempDb) -> CentralConfig {
    let mut consensus = ConsensusConfig::default();
    // A fleet whose machines are all trusted from the start: the HTTP path is under test here,
    // trust is the engine's unit tests' and the simulation's business.
    consensus.trust.new_machine = 1.0;
    CentralConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: db.url.clone(),
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        consensus,
        registrations_per_hour: 0,
        job_interval: Duration::from_secs(3600),
        blocklists: vec![central::config::BlocklistDef {
            name: "ssh-only".into(),
            scenarios: vec!["ssh".into()],
            remediation: "ban".into(),
            duration: Duration::from_secs(3600),
        }],
        ..CentralConfig::default()
    }
}

/// Serves `c` (without the periodic jobs: tests run the consensus pass themselves).
async fn serve(c: &Arc<Central>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = central::routes::router(Arc::clone(c));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (url, tx)
}

async fn machine(url: &str, name: &str, network_ip: &str) -> Capi {
    let c = Capi::new(url, name, "a-long-enough-password", 3).with_forwarded_for(network_ip);
    c.register().await.unwrap();
    c.login(&["crowdsecurity/ssh-bf".to_owned()]).await.unwrap();
    c
}

fn signal(value: &str, scenario: &str) -> Signal {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Signal {
        message: format!("Ip {value} performed '{scenario}'"),
        scenario: scenario.into(),
        scenario_hash: "hash".into(),
        scenario_version: "1.0".into(),
        source: model::Source {
            scope: "Ip".into(),
            value: value.into(),
            ip: value.into(),
            ..model::Source::default()
        },
        start_at: now.clone(),
        stop_at: now,
        ..Signal::default()
    }
}

async fn pass(c: &Central) -> central::job::PassReport {
    let mut job = central::job::Job::default();
    loop {
        if let Some(r) = job
            .run(c.db(), c.engine(), central::store_now())
            .await
            .unwrap()
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn values(s: &model::capi::StreamV3) -> Vec<String> {
    let mut v: Vec<String> = s
        .new
        .iter()
        .flat_map(|g| g.decisions.iter().map(|d| d.value.clone()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn register_login_push_pull_round_trip() {
    let Some(db) = database().await else { return };
    let c = Central::open(config(&db)).await.unwrap();
    let (url, _stop) = serve(&c).await;

    // Five machines in three networks report an attacker; five machines of one network report
    // a benign address; everyone reports a public resolver (allowlisted).
    let mut honest = Vec::new();
    for (i, net) in [
        "203.0.113.10",
        "203.0.113.11",
        "198.51.100.5",
        "192.0.2.200",
        "192.0.2.201",
    ]
    .iter()
    .enumerate()
    {
        honest.push(machine(&url, &format!("honest{i}"), net).await);
    }
    let mut sybils = Vec::new();
    for i in 0..5 {
        sybils.push(machine(&url, &format!("sybil{i}"), &format!("100.64.9.{}", i + 1)).await);
    }
    for m in &honest {
        m.push_signals(&[
            signal("192.0.2.66", "crowdsecurity/ssh-bf"),
            signal("1.1.1.1", "crowdsecurity/ssh-bf"),
        ])
        .await
        .unwrap();
    }
    for m in &sybils {
        // A flood: a hundred reports of the same address are one voice.
        let flood: Vec<Signal> = (0..100)
            .map(|_| signal("198.51.100.77", "crowdsecurity/http-probing"))
            .collect();
        m.push_signals(&flood).await.unwrap();
    }
    assert_eq!(c.db().count_signals().await.unwrap(), 5 * 2 + 5 * 100);

    let r = pass(&c).await;
    assert_eq!((r.listed, r.delisted), (1, 0), "{r:?}");

    // v3: groups by scenario, with the configured blocklist link.
    let s = honest[0].stream_v3(true).await.unwrap();
    assert_eq!(values(&s), vec!["192.0.2.66".to_owned()]);
    assert_eq!(s.new[0].scenario, "crowdsecurity/ssh-bf");
    assert_eq!(s.new[0].scope, "ip");
    assert_eq!(s.new[0].decisions[0].duration, "48h0m0s");
    let links = s.links.clone().unwrap();
    assert_eq!(links.blocklists.len(), 1);
    assert!(
        links.blocklists[0].url.ends_with("/v3/blocklists/ssh-only"),
        "{links:?}"
    );
    // Without additional_pull: no links; without community_pull: no decisions.
    assert!(
        honest[0]
            .stream(false, true, false)
            .await
            .unwrap()
            .links
            .is_none()
    );
    assert!(
        honest[0]
            .stream(true, false, true)
            .await
            .unwrap()
            .new
            .is_empty()
    );

    // The link's content, and a 304 once the client has it.
    let link_url = format!("{url}/v3/blocklists/ssh-only");
    let (list, last) = honest[0].blocklist(&link_url, None).await.unwrap().unwrap();
    assert_eq!(list, vec!["192.0.2.66".to_owned()]);
    assert!(
        honest[0]
            .blocklist(&link_url, last.as_deref())
            .await
            .unwrap()
            .is_none()
    );

    // v2 (CrowdSec 1.4): LAPI-style decisions with origin CAPI.
    let v2 =
        Capi::new(&url, "honest1", "a-long-enough-password", 2).with_forwarded_for("203.0.113.11");
    v2.login(&[]).await.unwrap();
    let s2 = v2.stream_v2(true).await.unwrap();
    assert_eq!(s2.new.len(), 1);
    let d = &s2.new[0];
    assert_eq!(
        (
            d.origin.as_str(),
            d.kind.as_str(),
            d.scope.as_str(),
            d.value.as_str()
        ),
        ("CAPI", "ban", "Ip", "192.0.2.66")
    );

    // Reports stop: after a few half-lives the value is delisted, and a LAPI that already
    // pulled hears only that.
    sqlx::query("UPDATE central_reports SET last_seen = last_seen - 345600000, first_seen = first_seen - 345600000")
        .execute(c.db().pool())
        .await
        .unwrap();
    let r = pass(&c).await;
    assert_eq!((r.listed, r.delisted), (0, 1), "{r:?}");
    let s = honest[0].stream_v3(false).await.unwrap();
    assert!(s.new.is_empty(), "{s:?}");
    assert_eq!(s.deleted.len(), 1);
    assert_eq!(s.deleted[0].decisions, vec!["192.0.2.66".to_owned()]);
    let again = honest[0].stream_v3(false).await.unwrap();
    assert!(
        again.deleted.is_empty(),
        "the delisting is reported once: {again:?}"
    );
    let s2 = v2.stream_v2(false).await.unwrap();
    assert_eq!(s2.deleted.len(), 1);
    assert_eq!(s2.deleted[0].origin, "CAPI");

    // The false positives were counted on the reporters.
    let m = c.db().machine("honest0").await.unwrap().unwrap();
    assert_eq!((m.false_positives, m.signals), (1, 2));

    // Metrics are stored.
    honest[0]
        .push_metrics(&model::capi::MetricsPush {
            apil_version: "v1.4.6".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c.db().count_metrics(m.id).await.unwrap(), 1);
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_message_naming_the_field() {
    let Some(db) = database().await else { return };
    let mut cfg = config(&db);
    cfg.signals_per_minute = 60;
    cfg.max_batch = 150;
    let c = Central::open(cfg).await.unwrap();
    let (url, _stop) = serve(&c).await;
    let m = machine(&url, "m1", "203.0.113.1").await;
    let http = reqwest::Client::new();
    let token = {
        let r: serde_json::Value = http
            .post(format!("{url}/v3/watchers/login"))
            .json(&serde_json::json!({"machine_id": "m1", "password": "a-long-enough-password", "scenarios": []}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["token"].as_str().unwrap().to_owned()
    };
    let post = |body: String, auth: bool| {
        let mut r = http
            .post(format!("{url}/v3/signals"))
            .header("Content-Type", "application/json")
            .body(body);
        if auth {
            r = r.bearer_auth(&token);
        }
        r.send()
    };
    let check = |r: reqwest::Response, status: u16, words: &'static [&'static str]| async move {
        let got = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(got, status, "{text}");
        for w in words {
            assert!(text.contains(w), "{w:?} not in {text}");
        }
    };
    check(post("[]".into(), false).await.unwrap(), 401, &["Bearer"]).await;
    check(
        post("[{".into(), true).await.unwrap(),
        400,
        &["invalid request body"],
    )
    .await;
    check(
        post(
            r#"[{"source": {"scope": "Ip", "value": "192.0.2.1"}}]"#.into(),
            true,
        )
        .await
        .unwrap(),
        422,
        &["scenario"],
    )
    .await;
    let mut s = signal("192.0.2.999", "x/y");
    let body = serde_json::to_string(&vec![signal("192.0.2.1", "x/y"), s.clone()]).unwrap();
    check(
        post(body, true).await.unwrap(),
        422,
        &["[1].source.value", "192.0.2.999"],
    )
    .await;
    s.source.value = "192.0.2.1".into();
    s.stop_at = "yesterday".into();
    check(
        post(serde_json::to_string(&vec![s]).unwrap(), true)
            .await
            .unwrap(),
        422,
        &["[0].stop_at"],
    )
    .await;
    let big: Vec<Signal> = (0..151).map(|_| signal("192.0.2.1", "x/y")).collect();
    check(
        post(serde_json::to_string(&big).unwrap(), true)
            .await
            .unwrap(),
        413,
        &["151"],
    )
    .await;
    // 120 signals of burst, then the bucket is empty.
    let batch: Vec<Signal> = (0..100).map(|_| signal("192.0.2.1", "x/y")).collect();
    m.push_signals(&batch).await.unwrap();
    let e = m.push_signals(&batch).await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e}");
    // Registration and login errors.
    let r = http
        .post(format!("{url}/v2/watchers"))
        .json(&serde_json::json!({"machine_id": "bad id!", "password": "a-long-enough-password"}))
        .send()
        .await
        .unwrap();
    check(r, 422, &["machine_id"]).await;
    let r = http
        .post(format!("{url}/v2/watchers"))
        .json(&serde_json::json!({"machine_id": "m1", "password": "a-long-enough-password"}))
        .send()
        .await
        .unwrap();
    check(r, 403, &["already registered"]).await;
    let r = http
        .post(format!("{url}/v2/watchers/login"))
        .json(&serde_json::json!({"machine_id": "m1", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    check(r, 401, &["incorrect"]).await;
}

#[tokio::test]
async fn accepted_signals_survive_a_restart() {
    let Some(db) = database().await else { return };
    {
        let c = Central::open(config(&db)).await.unwrap();
        let (url, stop) = serve(&c).await;
        let m = machine(&url, "m1", "203.0.113.1").await;
        m.push_signals(&[signal("192.0.2.1", "x/y"), signal("192.0.2.2", "x/y")])
            .await
            .unwrap();
        let _ = stop.send(());
        c.db().pool().close().await;
    }
    let c = Central::open(config(&db)).await.unwrap();
    assert_eq!(c.db().count_signals().await.unwrap(), 2);
    // Maintenance: today's partitions exist; dropping everything older than tomorrow keeps
    // nothing of today.
    c.maintain().await.unwrap();
    let parts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'central_signals'",
    )
    .fetch_one(c.db().pool())
    .await
    .unwrap();
    assert!(parts >= 4, "default + 3 days, got {parts}");
    let day = 24 * 3600 * 1000;
    let tomorrow = (central::store_now() / day + 1) * day;
    assert!(c.db().drop_partitions_before(tomorrow).await.unwrap() >= 1);
    assert_eq!(c.db().count_signals().await.unwrap(), 0);
}
