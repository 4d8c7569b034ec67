//! TLS and client-certificate authentication (CrowdSec's OU rules), with certificates minted by
//! the test: a CA, the server, an agent (OU `agent-ou`), a bouncer (OU `bouncer-ou`) and a
//! certificate with an OU nobody allowed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use lapi::{Lapi, LapiConfig, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Pki {
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "rampart test CA");
        let cert = p.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            ca: Issuer::new(p, key),
        }
    }

    /// `(cert PEM, key PEM)`.
    fn leaf(&self, cn: &str, ou: &str, sans: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        let cert = p.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn client(pki: &Pki, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .user_agent("crowdsec/v1.7.0")
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_authenticate_agents_and_bouncers_by_ou() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (srv_cert, srv_key) = pki.leaf("localhost", "server", &["localhost", "127.0.0.1"]);
    let db = testkit::sqlite();
    let cfg = LapiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_url: db.url.clone(),
        tls: Some(TlsConfig {
            cert_file: write("srv.pem", &srv_cert),
            key_file: write("srv.key", &srv_key),
            ca_cert_path: Some(write("ca.pem", &pki.ca_pem)),
            agents_allowed_ou: vec!["agent-ou".into()],
            bouncers_allowed_ou: vec!["bouncer-ou".into()],
        }),
        ..LapiConfig::default()
    };
    let lapi = Lapi::open(cfg).await.unwrap();
    let listener = lapi.bind().await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(std::sync::Arc::clone(&lapi).serve(listener, std::future::pending()));
    let url = |p: &str| format!("https://localhost:{port}{p}");

    // An agent logs in with its certificate only and pushes a manual ban.
    let agent = client(&pki, Some(&pki.leaf("web1", "agent-ou", &[])));
    let mut r = None;
    for _ in 0..50 {
        match agent
            .post(url("/v1/watchers/login"))
            .json(&json!({"scenarios": []}))
            .send()
            .await
        {
            Ok(resp) => {
                r = Some(resp);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let r = r.expect("TLS LAPI reachable");
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = lapi
        .store()
        .machine("web1@127.0.0.1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.auth_type.as_str(), m.is_validated), ("tls", true));
    let now = chrono::Utc::now().to_rfc3339();
    let alert = json!([{"capacity":0,"decisions":[{"duration":"1h","origin":"cscli","scenario":"manual","scope":"Ip","type":"ban","value":"192.0.2.5"}],
        "events":[],"events_count":1,"leakspeed":"0","message":"m","scenario":"manual","scenario_hash":"","scenario_version":"",
        "simulated":false,"source":{"scope":"Ip","value":"192.0.2.5"},"start_at":now,"stop_at":now}]);
    let r = agent
        .post(url("/v1/alerts"))
        .bearer_auth(&token)
        .json(&alert)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // A bouncer reads decisions with its certificate only; it is created as <CN>@<ip>.
    let bouncer = client(&pki, Some(&pki.leaf("fw1", "bouncer-ou", &[])));
    let r = bouncer
        .get(url("/v1/decisions/stream?startup=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["new"][0]["value"],
        "192.0.2.5"
    );
    assert_eq!(
        lapi.store()
            .bouncer("fw1@127.0.0.1")
            .await
            .unwrap()
            .unwrap()
            .auth_type,
        "tls"
    );

    // Wrong OUs are refused on both sides; no certificate and no key is refused too.
    let intruder = client(&pki, Some(&pki.leaf("evil", "other-ou", &[])));
    let r = intruder
        .get(url("/v1/decisions/stream?startup=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = intruder
        .post(url("/v1/watchers/login"))
        .json(&json!({"scenarios": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let bouncer_as_agent = bouncer
        .post(url("/v1/watchers/login"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bouncer_as_agent.status(), StatusCode::UNAUTHORIZED);
    let anonymous = client(&pki, None);
    let r = anonymous
        .get(url("/v1/decisions/stream?startup=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A certificate from another CA does not even complete the handshake.
    let other = Pki::new();
    let stranger = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .identity(
            reqwest::Identity::from_pem(
                {
                    let (c, k) = other.leaf("fw1", "bouncer-ou", &[]);
                    format!("{c}{k}")
                }
                .as_bytes(),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    assert!(
        stranger
            .get(url("/v1/decisions/stream?startup=true"))
            .send()
            .await
            .is_err()
    );
}
