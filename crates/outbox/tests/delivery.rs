//! The queue against a real LAPI that is down, then up; and across a simulated crash.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use model::{Alert, Source};
use outbox::Outbox;

fn alert(i: usize) -> Alert {
    let now = chrono::Utc::now().to_rfc3339();
    Alert {
        scenario: "crowdsecurity/ssh-bf".into(),
        message: format!("alert {i}"),
        start_at: now.clone(),
        stop_at: now,
        events_count: 6,
        capacity: 5,
        leakspeed: "10s".into(),
        remediation: true,
        source: Source {
            scope: "Ip".into(),
            value: format!("192.0.2.{}", i % 250),
            ..Source::default()
        },
        ..Alert::default()
    }
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_raised_while_the_lapi_is_down_arrive_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = testkit::sqlite();
    let port = free_port().await;
    let url = format!("http://127.0.0.1:{port}/");

    // The LAPI is down: alerts queue up on disk.
    let q = Arc::new(Outbox::open(dir.path()).unwrap().with_batch(7));
    q.push(&(0..30).map(alert).collect::<Vec<_>>()).unwrap();
    assert_eq!(q.depth(), 30);
    let watcher = Arc::new(client::Watcher::new(&url, "agent", "pw"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let (q, w) = (Arc::clone(&q), Arc::clone(&watcher));
        tokio::spawn(async move {
            q.run(&*w, async {
                let _ = stop_rx.await;
            })
            .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(q.depth(), 30, "nothing delivered, nothing lost");
    runner.abort();
    let _ = stop_tx;
    // "Crash": reopen the queue from disk, with more alerts queued meanwhile.
    drop(q);
    let q = Arc::new(Outbox::open(dir.path()).unwrap().with_batch(7));
    assert_eq!(q.depth(), 30);
    q.push(&(30..45).map(alert).collect::<Vec<_>>()).unwrap();

    // The LAPI comes up.
    let cfg = lapi::LapiConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        db_url: db.url.clone(),
        ..lapi::LapiConfig::default()
    };
    let server = lapi::Lapi::open(cfg).await.unwrap();
    let m = store::NewMachine {
        machine_id: "agent".into(),
        password_hash: lapi::hash_password("pw").unwrap(),
        is_validated: true,
        auth_type: "password".into(),
        ..Default::default()
    };
    server.store().create_machine(&m).await.unwrap();
    let listener = server.bind().await.unwrap();
    tokio::spawn(Arc::clone(&server).serve(listener, std::future::pending()));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let (q, w) = (Arc::clone(&q), Arc::clone(&watcher));
        tokio::spawn(async move {
            q.run(&*w, async {
                let _ = stop_rx.await;
            })
            .await;
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while q.depth() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue not drained: {} left",
            q.depth()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    runner.await.unwrap();
    assert_eq!(
        server.store().count_alerts().await.unwrap(),
        45,
        "every alert once"
    );
    let stored = server
        .store()
        .search_alerts(&store::AlertFilter {
            include_capi: true,
            sort_asc: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let messages: Vec<String> = stored.iter().map(|a| a.message.clone()).collect();
    assert_eq!(
        messages,
        (0..45).map(|i| format!("alert {i}")).collect::<Vec<_>>(),
        "in order"
    );

    // A resend of an acknowledged batch (crash before the offset was written) stores nothing twice.
    let resent: Vec<Alert> = stored
        .iter()
        .take(5)
        .map(|a| Alert {
            id: None,
            decisions: Vec::new(),
            ..a.clone()
        })
        .collect();
    watcher.push_alerts(&resent).await.unwrap();
    assert_eq!(server.store().count_alerts().await.unwrap(), 45);
    // Small queues are kept (emptying costs flushes); everything in it is acknowledged.
    assert_eq!(q.depth(), 0, "everything delivered");
    let offset: u64 = std::fs::read_to_string(dir.path().join("queue.offset"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let len = std::fs::metadata(dir.path().join("queue.jsonl"))
        .unwrap()
        .len();
    assert_eq!(offset, len, "the offset covers the whole queue");
}

#[test]
fn a_record_cut_short_by_a_crash_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Outbox::open(dir.path()).unwrap();
        q.push(&[alert(1), alert(2)]).unwrap();
    }
    let path = dir.path().join("queue.jsonl");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"scenario\":\"half-writ");
    std::fs::write(&path, bytes).unwrap();
    let q = Outbox::open(dir.path()).unwrap();
    assert_eq!(q.depth(), 2);
    q.push(&[alert(3)]).unwrap();
    assert_eq!(q.depth(), 3);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Alert>(l).is_ok())
    );
}
