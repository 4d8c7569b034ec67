//! The syslog server over real UDP and TCP sockets on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use acquire::{Acquisition, Line, Mode, SourceKind, SourceSpec, SyslogSpec};
use common::DEADLINE;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

async fn server(udp: bool, tcp: bool) -> (Acquisition, mpsc::Receiver<Line>, tempfile::TempDir) {
    common::logs();
    let spec = SyslogSpec {
        listen_port: 0,
        udp,
        tcp,
        ..SyslogSpec::default()
    };
    let spec = SourceSpec::new(SourceKind::Syslog(spec), Mode::Tail, "syslog");
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel(16);
    let acq = Acquisition::start(vec![spec], dir.path().to_path_buf(), tx)
        .await
        .unwrap();
    (acq, rx, dir)
}

async fn next(rx: &mut mpsc::Receiver<Line>) -> Line {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap()
        .unwrap()
}

const RFC3164: &str = "<34>Oct 11 22:14:15 mymachine sshd[4242]: Failed password for root from 192.0.2.1 port 22 ssh2";
const RFC3164_LINE: &str =
    "Oct 11 22:14:15 mymachine sshd[4242]: Failed password for root from 192.0.2.1 port 22 ssh2";
const RFC5424: &str = "<165>1 2003-10-11T22:14:15.003Z web01 nginx 77 - - GET /admin 404";
const RFC5424_LINE: &str = "Oct 11 22:14:15 web01 nginx[77]: GET /admin 404";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rfc3164_and_rfc5424() {
    let (acq, mut rx, _dir) = server(true, false).await;
    let addr = acq.listening().iter().find(|(p, _)| *p == "udp").unwrap().1;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // UDP may drop a datagram: resend until the line shows up (bounded by the deadline).
    for (msg, want) in [(RFC3164, RFC3164_LINE), (RFC5424, RFC5424_LINE)] {
        let line = loop {
            client.send_to(msg.as_bytes(), addr).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(Some(line)) => break line,
                Ok(None) => panic!("channel closed"),
                Err(_) => continue,
            }
        };
        assert_eq!(line.raw, want);
        assert_eq!(line.src, "127.0.0.1");
        assert_eq!(line.module, "syslog");
        assert!(!line.ack.is_tracked());
        assert_eq!(line.labels.get("type").map(String::as_str), Some("syslog"));
        line.ack.done();
    }
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_newline_and_octet_counted_framing() {
    let (acq, mut rx, _dir) = server(false, true).await;
    let addr = acq.listening().iter().find(|(p, _)| *p == "tcp").unwrap().1;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut data = format!("{RFC3164}\n{RFC5424}\r\n");
    data.push_str(&format!("{} {RFC5424}", RFC5424.len()));
    data.push_str(&format!("{} {RFC3164}", RFC3164.len()));
    // One message split over two writes.
    let (a, b) = data.split_at(data.len() - 20);
    conn.write_all(a.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(b.as_bytes()).await.unwrap();
    conn.shutdown().await.unwrap();
    for want in [RFC3164_LINE, RFC5424_LINE, RFC5424_LINE, RFC3164_LINE] {
        let line = next(&mut rx).await;
        assert_eq!(line.raw, want);
        assert_eq!(line.src, "127.0.0.1");
    }
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_tcp_on_the_same_port() {
    let (acq, mut rx, _dir) = server(true, true).await;
    let ports: Vec<u16> = acq.listening().iter().map(|(_, a)| a.port()).collect();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0], ports[1], "listen_port 0: one free port for both");
    let tcp = acq.listening().iter().find(|(p, _)| *p == "tcp").unwrap().1;
    let mut conn = tokio::net::TcpStream::connect(tcp).await.unwrap();
    conn.write_all(format!("{RFC5424}\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.raw, RFC5424_LINE);
    acq.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = SyslogSpec {
        listen_port: taken.local_addr().unwrap().port(),
        udp: false,
        tcp: true,
        ..SyslogSpec::default()
    };
    let spec = SourceSpec::new(SourceKind::Syslog(spec), Mode::Tail, "syslog");
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let err = Acquisition::start(vec![spec], dir.path().to_path_buf(), tx)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("cannot listen on tcp 127.0.0.1:"),
        "{err}"
    );
}
