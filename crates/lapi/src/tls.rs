//! TLS for the LAPI and CrowdSec's client-certificate authentication: a client certificate
//! chaining to the configured CA, with an OU from `agents_allowed_ou` (machines) or
//! `bouncers_allowed_ou` (bouncers), identifies `<CN>@<client IP>` without password or key.
//! Clients without a certificate still use passwords and API keys on the same port.

use std::sync::Arc;

use axum::http::request::Parts;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{LapiError, TlsConfig};

/// What a verified client certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerCert {
    pub(crate) cn: String,
    pub(crate) ous: Vec<String>,
}

fn tls_err(what: String) -> LapiError {
    LapiError::Tls(what)
}

/// The rustls server configuration for `t`.
pub(crate) fn server_config(t: &TlsConfig) -> Result<rustls::ServerConfig, LapiError> {
    // Several crypto providers can be compiled in; pick aws-lc-rs once for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .map_err(|e| tls_err(format!("{}: {e}", t.cert_file.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(format!("{}: {e}", t.cert_file.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{}: no certificate found",
            t.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| tls_err(format!("{}: {e}", t.key_file.display())))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &t.ca_cert_path {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?
            {
                let c = c.map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
                roots
                    .add(c)
                    .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
            }
            // Certificates are optional (passwords and keys still work) but, when presented,
            // must chain to the CA and be valid now.
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        tls_err(format!(
            "{} / {}: {e}",
            t.cert_file.display(),
            t.key_file.display()
        ))
    })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The verified client certificate of this request's connection, if any.
pub(crate) fn peer(parts: &Parts) -> Option<PeerCert> {
    let info = parts.extensions.get::<Arc<axum_server::tls::TlsInfo>>()?;
    let der = info.peer_certificates.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())?
        .to_owned();
    let ous = subject
        .iter_organizational_unit()
        .filter_map(|a| a.as_str().ok().map(str::to_owned))
        .collect();
    Some(PeerCert { cn, ous })
}

impl PeerCert {
    /// Whether one of its OUs is allowed.
    pub(crate) fn allowed(&self, allowed: &[String]) -> bool {
        self.ous.iter().any(|o| allowed.contains(o))
    }
}
