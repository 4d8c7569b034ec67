//! Rampart's LAPI (SQLite) syncing with Rampart's central server (a real PostgreSQL): the
//! community list and a blocklist link reach bouncers as `CAPI` / `lists` decisions, allowlists
//! hold, alerts are shared as signals (simulated and manual ones are not), signals wait while
//! the central server is down, and delisted values are lifted.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use central::{Central, CentralConfig};
use client::capi::{Capi, OnlineCredentials};
use lapi::capi::CapiConfig;
use lapi::{Lapi, LapiConfig};

const PASSWORD: &str = "a-long-enough-password";

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn central_config(db: &testkit::TempDb, addr: std::net::SocketAddr) -> CentralConfig {
    let mut cfg = CentralConfig {
        listen: addr,
        db_url: db.url.clone(),
        public_url: Some(format!("http://{addr}")),
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        registrations_per_hour: 0,
        job_interval: Duration::from_millis(200),
        blocklists: vec![central::config::BlocklistDef {
            name: "ssh-only".into(),
            scenarios: vec!["ssh".into()],
            remediation: "ban".into(),
            duration: Duration::from_secs(3600),
        }],
        ..CentralConfig::default()
    };
    // A fleet: every machine trusted from the start (trust is the engine's tests' business).
    cfg.consensus.trust.new_machine = 1.0;
    cfg
}

async fn start_central(cfg: &CentralConfig) -> (Arc<Central>, tokio::sync::oneshot::Sender<()>) {
    let c = Central::open(cfg.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Arc::clone(&c).serve(listener, async move {
        let _ = rx.await;
    }));
    (c, tx)
}

fn alert(value: &str, simulated: bool, manual: bool) -> model::Alert {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    model::Alert {
        scenario: "crowdsecurity/ssh-bf".into(),
        scenario_hash: "abc".into(),
        scenario_version: "1.0".into(),
        message: format!("Ip {value} performed 'crowdsecurity/ssh-bf'"),
        events_count: 6,
        start_at: now.clone(),
        stop_at: now,
        simulated,
        source: model::Source {
            scope: "Ip".into(),
            value: value.into(),
            ip: value.into(),
            ..model::Source::default()
        },
        events: vec![model::AlertEvent {
            meta: vec![model::MetaItem {
                key: "log_line".into(),
                value: "Failed password for root from a private log line".into(),
            }],
            timestamp: String::new(),
        }],
        decisions: if manual {
            vec![model::Decision {
                duration: "4h".into(),
                origin: "cscli".into(),
                scenario: "manual".into(),
                scope: "Ip".into(),
                kind: "ban".into(),
                value: value.into(),
                ..model::Decision::default()
            }]
        } else {
            Vec::new()
        },
        ..model::Alert::default()
    }
}

async fn shared_values(c: &Central, machine: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT value FROM central_signals WHERE machine = $1")
        .bind(machine)
        .fetch_all(c.db().pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapi_shares_signals_and_serves_the_community_list() {
    let Some(pg) = testkit::postgres().await else {
        return;
    };
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ccfg = central_config(&pg, addr);
    let (central, stop) = start_central(&ccfg).await;
    let curl = format!("http://{addr}/");

    // The LAPI's account on the central server, and five machines in three other networks
    // that report an attacker (and an address the LAPI's operator allowlisted).
    Capi::new(&curl, "lapi-1", PASSWORD, 3)
        .register()
        .await
        .unwrap();
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
        let m = Capi::new(&curl, &format!("peer{i}"), PASSWORD, 3).with_forwarded_for(net);
        m.register().await.unwrap();
        m.login(&[]).await.unwrap();
        let s = |v: &str| model::capi::Signal {
            scenario: "crowdsecurity/ssh-bf".into(),
            scenario_hash: "abc".into(),
            scenario_version: "1.0".into(),
            source: model::Source {
                scope: "Ip".into(),
                value: v.into(),
                ..model::Source::default()
            },
            start_at: String::new(),
            stop_at: String::new(),
            ..model::capi::Signal::default()
        };
        m.push_signals(&[s("192.0.2.66"), s("203.0.113.99")])
            .await
            .unwrap();
    }
    wait_for("the central pass to list both", || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM central_blocklist WHERE deleted_at IS NULL")
                .fetch_one(central.db().pool())
                .await
                .unwrap();
        (n == 2).then_some(())
    })
    .await;

    let ldb = testkit::sqlite();
    let mut capi = CapiConfig::new(OnlineCredentials {
        url: curl.clone(),
        login: "lapi-1".into(),
        password: PASSWORD.into(),
        papi_url: String::new(),
    });
    capi.push_interval = Duration::from_millis(300);
    capi.pull_interval = Duration::from_secs(1);
    capi.pull_jitter = Duration::ZERO;
    capi.metrics_interval = Duration::from_secs(1);
    let lcfg = LapiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: ldb.url.clone(),
        capi: Some(capi),
        ..LapiConfig::default()
    };
    let lapi = Lapi::open(lcfg).await.unwrap();
    let store = lapi.store().clone();
    store.create_allowlist("mine", "ours").await.unwrap();
    store
        .add_allowlist_items(
            "mine",
            &[store::AllowlistItem {
                value: "203.0.113.99".into(),
                comment: "a partner".into(),
                ..store::AllowlistItem::default()
            }],
        )
        .await
        .unwrap();
    lapi.reload_allowlists().await.unwrap();
    let key = lapi::new_api_key();
    store
        .create_bouncer(&store::NewBouncer {
            name: "fw".into(),
            api_key_hash: lapi::hash_api_key(&key),
            auth_type: "api-key".into(),
            auto_created: false,
            ip_address: String::new(),
        })
        .await
        .unwrap();
    store
        .create_machine(&store::NewMachine {
            machine_id: "agent".into(),
            password_hash: lapi::hash_password(PASSWORD).unwrap(),
            ip_address: String::new(),
            is_validated: true,
            auth_type: "password".into(),
        })
        .await
        .unwrap();
    let listener = lapi.bind().await.unwrap();
    let lurl = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(Arc::clone(&lapi).serve(listener, std::future::pending()));
    let bouncer = client::Bouncer::new(&lurl, &key, "test-bouncer/v1");

    // The community list and the link reach the bouncer; the allowlisted value does not.
    let origins = |ip: &'static str| {
        let b = bouncer.clone();
        async move {
            let mut o: Vec<String> = b
                .decisions(&[("ip", ip)])
                .await
                .unwrap()
                .into_iter()
                .map(|d| format!("{}/{}/{}", d.origin, d.scenario, d.kind))
                .collect();
            o.sort();
            o
        }
    };
    let got = wait_for("CAPI and lists decisions for 192.0.2.66", || async {
        let o = origins("192.0.2.66").await;
        (o.len() == 2).then_some(o)
    })
    .await;
    assert_eq!(
        got,
        vec![
            "CAPI/crowdsecurity/ssh-bf/ban".to_owned(),
            "lists/ssh-only/ban".to_owned()
        ]
    );
    assert!(origins("203.0.113.99").await.is_empty());
    let stream = bouncer
        .stream(true, &client::StreamOptions::default())
        .await
        .unwrap();
    assert!(
        stream
            .new
            .iter()
            .any(|d| d.value == "192.0.2.66" && d.origin == "CAPI")
    );

    // Alerts are shared, except simulated and manual ones; log lines never leave.
    let watcher = client::Watcher::new(&lurl, "agent", PASSWORD);
    watcher
        .push_alerts(&[
            alert("192.0.2.77", false, false),
            alert("192.0.2.78", true, false),
            alert("192.0.2.79", false, true),
        ])
        .await
        .unwrap();
    let me = central.db().machine("lapi-1").await.unwrap().unwrap();
    wait_for("the LAPI's signal", || async {
        shared_values(&central, me.id)
            .await
            .contains(&"192.0.2.77".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(
        shared_values(&central, me.id).await,
        vec!["192.0.2.77".to_owned()]
    );

    // The central server goes away: bouncers keep their decisions, the LAPI keeps its signals
    // and delivers them when the server is back.
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher
        .push_alerts(&[alert("192.0.2.80", false, false)])
        .await
        .unwrap();
    assert_eq!(origins("192.0.2.66").await.len(), 2);
    let (central, _stop) = start_central(&ccfg).await;
    wait_for(
        "the signal kept while the central server was down",
        || async {
            shared_values(&central, me.id)
                .await
                .contains(&"192.0.2.80".to_owned())
                .then_some(())
        },
    )
    .await;

    // Reports of 192.0.2.66 stop (four days pass): it is delisted, and the LAPI lifts it.
    sqlx::query(
        "UPDATE central_reports SET last_seen = last_seen - 345600000, first_seen = first_seen - 345600000 WHERE ip = '192.0.2.66'",
    )
    .execute(central.db().pool())
    .await
    .unwrap();
    wait_for("192.0.2.66 to be lifted at the bouncer", || async {
        origins("192.0.2.66").await.is_empty().then_some(())
    })
    .await;
    let deleted = bouncer
        .stream(false, &client::StreamOptions::default())
        .await
        .unwrap();
    assert!(
        deleted.deleted.iter().any(|d| d.value == "192.0.2.66"),
        "{deleted:?}"
    );

    // Metrics were pushed.
    wait_for("a metrics push", || async {
        (central.db().count_metrics(me.id).await.unwrap() > 0).then_some(())
    })
    .await;
}
