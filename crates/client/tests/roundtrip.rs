//! The client against a real LAPI over HTTP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use client::{Bouncer, StreamOptions, Watcher};
use model::{Alert, Decision, Source};

fn manual_ban(ip: &str) -> Alert {
    let now = chrono::Utc::now().to_rfc3339();
    Alert {
        scenario: "manual 'ban' from 'test'".into(),
        message: "test".into(),
        start_at: now.clone(),
        stop_at: now,
        events_count: 1,
        leakspeed: "0".into(),
        source: Source {
            scope: "Ip".into(),
            value: ip.into(),
            ..Source::default()
        },
        decisions: vec![Decision {
            duration: "1h".into(),
            origin: "cscli".into(),
            scenario: "manual".into(),
            scope: "Ip".into(),
            kind: "ban".into(),
            value: ip.into(),
            ..Decision::default()
        }],
        ..Alert::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_and_bouncer_round_trip() {
    let db = testkit::sqlite();
    let cfg = lapi::LapiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: db.url.clone(),
        ..lapi::LapiConfig::default()
    };
    let server = lapi::Lapi::open(cfg).await.unwrap();
    let listener = server.bind().await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(std::sync::Arc::clone(&server).serve(listener, std::future::pending()));

    assert!(
        !Watcher::register(&url, "agent", "pw", None).await.unwrap(),
        "needs validation"
    );
    let w = Watcher::new(&url, "agent", "pw");
    let e = w.heartbeat().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(e.to_string().contains("not validated"), "{e}");
    server.store().validate_machine("agent").await.unwrap();
    w.heartbeat().await.unwrap();

    let key = lapi::new_api_key();
    let b = store::NewBouncer {
        name: "b".into(),
        api_key_hash: lapi::hash_api_key(&key),
        auth_type: "api-key".into(),
        ..Default::default()
    };
    server.store().create_bouncer(&b).await.unwrap();
    let bouncer = Bouncer::new(&url, &key, "test-bouncer/v1");
    let opts = StreamOptions::default();
    assert!(bouncer.stream(true, &opts).await.unwrap().new.is_empty());

    let waiting = {
        let b = bouncer.clone();
        tokio::spawn(async move {
            b.wait(Duration::from_secs(20), &StreamOptions::default())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids = w.push_alerts(&[manual_ban("192.0.2.1")]).await.unwrap();
    assert_eq!(ids.len(), 1);
    let pushed = waiting.await.unwrap().unwrap();
    assert_eq!(pushed.new.len(), 1);
    assert_eq!(pushed.new[0].value, "192.0.2.1");
    assert_eq!(
        bouncer
            .decisions(&[("ip", "192.0.2.1")])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        bouncer
            .decisions(&[("ip", "192.0.2.2")])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.alerts(&[("ip", "192.0.2.1")]).await.unwrap().len(), 1);
    assert_eq!(w.delete_decisions(&[("ip", "192.0.2.1")]).await.unwrap(), 1);
    assert_eq!(bouncer.stream(false, &opts).await.unwrap().deleted.len(), 1);

    let bad = Bouncer::new(&url, "wrong", "test-bouncer/v1");
    assert_eq!(
        bad.stream(true, &opts).await.unwrap_err().status(),
        Some(403)
    );
    let nowhere = Bouncer::new("http://127.0.0.1:9/", &key, "x/1");
    assert!(
        nowhere
            .stream(true, &opts)
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot reach")
    );
}
