//! The same store scenario against SQLite, PostgreSQL and MariaDB (real servers).

#![allow(clippy::unwrap_used)]

use model::{Alert, IpRange, Source};
use store::{
    AlertFilter, AllowlistItem, FlushPolicy, NewAlert, NewBouncer, NewDecision, NewMachine, Store,
    StoreError, now_ms,
};

fn decision(value: &str, scope: &str, until: i64) -> NewDecision {
    NewDecision {
        until,
        scenario: "test/scenario".into(),
        kind: "ban".into(),
        scope: scope.into(),
        value: value.into(),
        origin: "cscli".into(),
        simulated: false,
        uuid: uuid::Uuid::new_v4().to_string(),
        range: IpRange::parse(value).ok(),
    }
}

fn alert(scenario: &str, value: &str, scope: &str, decisions: Vec<NewDecision>) -> NewAlert {
    NewAlert {
        alert: Alert {
            uuid: uuid::Uuid::new_v4().to_string(),
            machine_id: "m1".into(),
            scenario: scenario.into(),
            message: format!("{value} did {scenario}"),
            start_at: "2026-12-01T10:00:00Z".into(),
            stop_at: "2026-12-01T10:00:05Z".into(),
            events_count: 3,
            capacity: 5,
            leakspeed: "10s".into(),
            kind: "crowdsec".into(),
            source: Source {
                scope: scope.into(),
                value: value.into(),
                ip: value.into(),
                ..Source::default()
            },
            ..Alert::default()
        },
        started_at: now_ms() - 60_000,
        decisions,
    }
}

async fn exercise(store: &Store, backend: &str) {
    // Machines and bouncers.
    let m = NewMachine {
        machine_id: "m1".into(),
        password_hash: "$2b$hash".into(),
        auth_type: "password".into(),
        ..NewMachine::default()
    };
    store.create_machine(&m).await.unwrap();
    assert!(
        matches!(store.create_machine(&m).await, Err(StoreError::Exists(_))),
        "{backend}"
    );
    store.validate_machine("m1").await.unwrap();
    store
        .machine_logged_in("m1", "127.0.0.1", "v1.0", Some("a,b"))
        .await
        .unwrap();
    let got = store.machine("m1").await.unwrap().unwrap();
    assert!(
        got.is_validated && got.scenarios == "a,b" && got.version == "v1.0",
        "{backend}: {got:?}"
    );
    assert!(matches!(
        store.validate_machine("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let b = NewBouncer {
        name: "fw".into(),
        api_key_hash: "abc".into(),
        auth_type: "api-key".into(),
        ..NewBouncer::default()
    };
    store.create_bouncer(&b).await.unwrap();
    store
        .bouncer_seen(
            "fw",
            "10.0.0.1",
            "crowdsec-firewall-bouncer",
            "v0.0.28",
            Some(42),
        )
        .await
        .unwrap();
    let got = store.bouncer("fw").await.unwrap().unwrap();
    assert_eq!(
        (got.kind.as_str(), got.last_pull),
        ("crowdsec-firewall-bouncer", Some(42)),
        "{backend}"
    );

    // Alerts with decisions of every kind of target.
    let now = now_ms();
    let stored = store
        .insert_alerts(&[
            alert(
                "crowdsecurity/ssh-bf",
                "192.0.2.7",
                "Ip",
                vec![decision("192.0.2.7", "Ip", now + 3_600_000)],
            ),
            alert(
                "crowdsecurity/http-probing",
                "2001:db8::1",
                "Ip",
                vec![decision("2001:db8::1", "Ip", now + 3_600_000)],
            ),
            alert(
                "cscli",
                "198.51.100.0/24",
                "Range",
                vec![decision("198.51.100.0/24", "Range", now - 1_000)],
            ),
            alert(
                "custom",
                "alice",
                "username",
                vec![decision("alice", "username", now + 60_000)],
            ),
        ])
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "{backend}");
    let bulk: Vec<NewDecision> = (0..1200)
        .map(|i| decision(&format!("10.1.{}.{}", i / 256, i % 256), "Ip", now + 1000))
        .collect();
    let big = store
        .insert_alerts(&[alert("lists", "x", "lists:test", bulk)])
        .await
        .unwrap();
    assert_eq!(big[0].decisions.len(), 1200, "{backend}");
    let first = &stored[0].decisions[0];
    assert_eq!(first.range, IpRange::parse("192.0.2.7").ok());

    // Searches.
    let all = AlertFilter {
        include_capi: true,
        with_decisions: true,
        ..AlertFilter::default()
    };
    assert_eq!(
        store.search_alerts(&all).await.unwrap().len(),
        5,
        "{backend}"
    );
    let f = AlertFilter {
        ip: IpRange::parse("192.0.2.7").ok(),
        contains: true,
        ..all.clone()
    };
    let r = store.search_alerts(&f).await.unwrap();
    assert_eq!(r.len(), 1, "{backend}");
    assert_eq!(r[0].decisions.len(), 1);
    assert!(
        r[0].decisions[0].duration.starts_with("59m")
            || r[0].decisions[0].duration.starts_with("1h"),
        "{:?}",
        r[0].decisions[0]
    );
    let f = AlertFilter {
        ip: IpRange::parse("198.51.100.9").ok(),
        contains: true,
        ..all.clone()
    };
    assert_eq!(
        store.search_alerts(&f).await.unwrap().len(),
        1,
        "{backend}: range contains ip"
    );
    let f = AlertFilter {
        ip: IpRange::parse("192.0.0.0/8").ok(),
        contains: false,
        ..all.clone()
    };
    assert_eq!(
        store.search_alerts(&f).await.unwrap().len(),
        1,
        "{backend}: alerts inside a range"
    );
    let f = AlertFilter {
        ip: IpRange::parse("2001:db8::/32").ok(),
        contains: false,
        ..all.clone()
    };
    assert_eq!(
        store.search_alerts(&f).await.unwrap().len(),
        1,
        "{backend}: v6"
    );
    let f = AlertFilter {
        has_active_decision: Some(true),
        ..all.clone()
    };
    assert_eq!(
        store.search_alerts(&f).await.unwrap().len(),
        4,
        "{backend}: active"
    );
    let f = AlertFilter {
        scenario: Some("custom".into()),
        ..all.clone()
    };
    assert_eq!(
        store.search_alerts(&f).await.unwrap()[0].source.value,
        "alice"
    );
    let f = AlertFilter {
        limit: Some(2),
        sort_asc: true,
        ..all.clone()
    };
    let r = store.search_alerts(&f).await.unwrap();
    assert_eq!(
        r.iter().map(|a| a.scenario.as_str()).collect::<Vec<_>>(),
        ["crowdsecurity/ssh-bf", "crowdsecurity/http-probing"]
    );
    let f = AlertFilter {
        include_capi: false,
        ..all.clone()
    };
    assert_eq!(
        store.search_alerts(&f).await.unwrap().len(),
        4,
        "{backend}: lists hidden"
    );
    let one = store.alert(stored[3].id).await.unwrap().unwrap();
    assert_eq!(one.decisions[0].value, "alice");

    // Decisions: reload, expire, history.
    let live = store.decisions_until_after(now).await.unwrap();
    assert_eq!(live.len(), 1203, "{backend}");
    assert_eq!(store.expire_decisions(&[first.id], now).await.unwrap(), 1);
    assert_eq!(store.decisions_until_after(now).await.unwrap().len(), 1202);
    assert_eq!(
        store
            .decisions_updated_after(now - 1)
            .await
            .unwrap()
            .iter()
            .filter(|d| d.id == first.id)
            .count(),
        1
    );
    assert_eq!(store.decision_history("192.0.2.7").await.unwrap().len(), 1);

    // Flush keeps alerts with active decisions.
    let report = store
        .flush(&FlushPolicy {
            max_items: Some(0),
            ..FlushPolicy::default()
        })
        .await
        .unwrap();
    assert_eq!(
        report.alerts, 2,
        "{backend}: the ssh alert (expired now) and the expired range alert"
    );
    assert_eq!(store.count_alerts().await.unwrap(), 3);

    // Delete by filter returns the decision ids.
    let f = AlertFilter {
        scenario: Some("lists".into()),
        include_capi: true,
        ..AlertFilter::default()
    };
    let (n, ids) = store.delete_alerts(&f).await.unwrap();
    assert_eq!((n, ids.len()), (1, 1200), "{backend}");

    // Allowlists, config items, metrics.
    store
        .create_allowlist("office", "our ranges")
        .await
        .unwrap();
    let items = vec![
        AllowlistItem {
            value: "203.0.113.0/24".into(),
            comment: "hq".into(),
            ..AllowlistItem::default()
        },
        AllowlistItem {
            value: "203.0.114.1".into(),
            expires_at: Some(now - 1),
            ..AllowlistItem::default()
        },
    ];
    store.add_allowlist_items("office", &items).await.unwrap();
    let lists = store.allowlists().await.unwrap();
    assert_eq!(lists[0].items.len(), 1, "{backend}: expired item hidden");
    store.set_config_item("k", "v1").await.unwrap();
    store.set_config_item("k", "v2").await.unwrap();
    assert_eq!(store.config_item("k").await.unwrap().as_deref(), Some("v2"));
    store.insert_metrics("LP", "m1", "{}").await.unwrap();
    assert_eq!(store.count_metrics("m1").await.unwrap(), 1);
    store.delete_allowlist("office").await.unwrap();
    store.delete_bouncer("fw").await.unwrap();
    store.delete_machine("m1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_behaves_the_same() {
    for db in testkit::all_backends().await {
        let store = Store::open(&db.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        exercise(&store, db.backend).await;
        store.close().await;
        // Reopening runs no migration twice.
        let again = Store::open(&db.url).await.unwrap();
        again.close().await;
    }
}

#[tokio::test]
async fn bad_urls_are_named() {
    let e = Store::open("redis://127.0.0.1").await.unwrap_err();
    assert!(e.to_string().contains("redis://127.0.0.1"), "{e}");
}
