//! Following the LAPI: the full list at start, then changes by Rampart's push (`wait=`) or, against
//! a LAPI without it (CrowdSec's), by polling every `update_frequency`.
//!
//! Stream bodies are parsed while they arrive (see [`crate::decision`]). This is why the bouncer
//! does not use `client::Bouncer::stream`, which returns a whole `Vec<Decision>`: for a million
//! decisions that is the 200 MB body plus the decisions, instead of the bans alone.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::decision::{Accept, List, Skip, WireDecision};
use crate::firewall::Msg;
use crate::metrics::Metrics;
use crate::state::{Change, State, now_ms};

/// What talking to the LAPI can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LapiError {
    /// TLS material in the configuration.
    #[error("{path}: {reason}")]
    Tls { path: String, reason: String },
    /// Network or HTTP failure.
    #[error("cannot reach the LAPI at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    /// The LAPI refused the request.
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The body is not a stream answer.
    #[error("{url}: unexpected answer: {reason}")]
    Decode { url: String, reason: String },
}

/// The bouncer's HTTP session.
pub(crate) struct Lapi {
    http: reqwest::Client,
    url: String,
    key: String,
    query: Vec<(&'static str, String)>,
}

impl Lapi {
    pub(crate) fn new(cfg: &Config) -> Result<Self, LapiError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!(
                "rampart-firewall-bouncer/v",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(Duration::from_secs(10))
            // Between two reads of a body, not for the whole answer: a million-decision
            // startup body takes seconds, a push waits up to push_wait for its first byte.
            .read_timeout(cfg.push_wait + Duration::from_secs(30))
            .tls_danger_accept_invalid_certs(cfg.insecure_skip_verify);
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| LapiError::Tls {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
        };
        if let Some(ca) = &cfg.ca_cert_path {
            let pem = read(ca)?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| LapiError::Tls {
                path: ca.display().to_string(),
                reason: e.to_string(),
            })?;
            b = b.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&cfg.cert_path, &cfg.key_path) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| LapiError::Tls {
                path: cert.display().to_string(),
                reason: e.to_string(),
            })?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| LapiError::Tls {
            path: cfg.path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut query = Vec::new();
        for (k, v) in [
            ("scopes", &cfg.scopes),
            ("origins", &cfg.origins),
            ("scenarios_containing", &cfg.scenarios_containing),
            ("scenarios_not_containing", &cfg.scenarios_not_containing),
        ] {
            if !v.is_empty() {
                query.push((k, v.join(",")));
            }
        }
        Ok(Self {
            http,
            url: format!("{}/v1/decisions/stream", cfg.api_url.trim_end_matches('/')),
            key: cfg.api_key.clone(),
            query,
        })
    }

    /// One stream request; every entry of the body goes to `sink` as it is parsed. Returns the
    /// sink back.
    pub(crate) async fn stream<S: Sink>(
        &self,
        startup: bool,
        wait: Option<Duration>,
        sink: S,
    ) -> Result<S, LapiError> {
        let mut query = self.query.clone();
        if startup {
            query.push(("startup", "true".into()));
        }
        if let Some(w) = wait {
            query.push(("wait", format!("{}ms", w.as_millis())));
        }
        let url = &self.url;
        let http_err = |source| LapiError::Http {
            url: url.clone(),
            source,
        };
        let mut req = self.http.get(url).query(&query);
        if !self.key.is_empty() {
            req = req.header("X-Api-Key", &self.key);
        }
        let mut resp = req.send().await.map_err(http_err)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            let text = String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(LapiError::Status {
                url: url.clone(),
                status: status.as_u16(),
                message,
            });
        }
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let parser = tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            // serde_json reads its input a byte at a time: buffered, a million-decision body
            // parses in a third of the time.
            let reader = std::io::BufReader::with_capacity(
                1 << 16,
                ChannelReader {
                    rx,
                    cur: Bytes::new(),
                },
            );
            let r = crate::decision::read_stream(reader, &mut |l, d| sink.take(l, d));
            (sink, r)
        });
        let mut transfer = Ok(());
        loop {
            match resp.chunk().await {
                Ok(Some(b)) => {
                    if tx.send(b).await.is_err() {
                        // The parser stopped early: its error says why.
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    transfer = Err(http_err(e));
                    break;
                }
            }
        }
        drop(tx);
        let (sink, parsed) = parser.await.map_err(|e| LapiError::Decode {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        transfer?;
        parsed.map_err(|e| LapiError::Decode {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        Ok(sink)
    }
}

/// The body's chunks as a `Read` for the blocking parser.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Receives the entries of a stream answer.
pub(crate) trait Sink: Send + 'static {
    fn take(&mut self, list: List, d: Option<WireDecision>);
}

/// Startup: builds the state.
struct Snapshot {
    accept: Accept,
    state: State,
    skipped: Vec<(Skip, u64)>,
    seen: u64,
}

impl Sink for Snapshot {
    fn take(&mut self, list: List, d: Option<WireDecision>) {
        // A startup answer's `deleted` lists decisions that ended before: nothing to undo in a
        // state built from scratch.
        if list == List::Deleted {
            return;
        }
        self.seen += 1;
        match d
            .ok_or(Skip::Malformed)
            .and_then(|d| self.accept.ban(d, list))
        {
            Ok(ban) => {
                let expiry = now_ms().saturating_add(ban.left_ms);
                self.state.insert(&ban, expiry);
            }
            Err(skip) => count(&mut self.skipped, skip),
        }
    }
}

/// Later answers: changes, deletions first.
struct Delta {
    accept: Accept,
    removes: Vec<Change>,
    puts: Vec<Change>,
    skipped: Vec<(Skip, u64)>,
    seen: u64,
}

impl Sink for Delta {
    fn take(&mut self, list: List, d: Option<WireDecision>) {
        self.seen += 1;
        match d
            .ok_or(Skip::Malformed)
            .and_then(|d| self.accept.ban(d, list))
        {
            Ok(ban) => match list {
                List::New => {
                    let expiry = now_ms().saturating_add(ban.left_ms);
                    self.puts.push(Change::Put(ban, expiry));
                }
                List::Deleted => self.removes.push(Change::Remove(ban)),
            },
            Err(skip) => count(&mut self.skipped, skip),
        }
    }
}

fn count(v: &mut Vec<(Skip, u64)>, s: Skip) {
    match v.iter_mut().find(|(k, _)| *k == s) {
        Some((_, n)) => *n += 1,
        None => v.push((s, 1)),
    }
}

/// How long a bouncer that fell back to polling waits before trying push again.
const PUSH_RETRY: Duration = Duration::from_secs(300);

/// How long to wait after the n-th failure in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(30))
}

/// Follows the LAPI until the task is dropped. Fails only when the first contact fails and
/// `retry_initial_connect` is off.
pub(crate) async fn follow(
    cfg: Arc<Config>,
    lapi: Lapi,
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
) -> Result<(), LapiError> {
    let accept = Accept {
        types: cfg.supported_decisions_types.clone(),
        ipv4: cfg.ipv4,
        ipv6: cfg.ipv6,
    };
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let snap = Snapshot {
            accept: accept.clone(),
            state: State::default(),
            skipped: Vec::new(),
            seen: 0,
        };
        metrics.lapi_request();
        match lapi.stream(true, None, snap).await {
            Ok(snap) => {
                tracing::info!(
                    received = snap.seen,
                    enforced = snap.state.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "decision list received"
                );
                metrics.skipped(&snap.skipped);
                if tx.send(Msg::Snapshot(snap.state)).await.is_err() {
                    return Ok(());
                }
                break;
            }
            Err(e) => {
                metrics.lapi_failure();
                if failures == 0 && !cfg.retry_initial_connect {
                    return Err(e);
                }
                failures += 1;
                tracing::warn!(error = %e, "cannot get the decision list; retrying");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }

    let mut push = cfg.push;
    // Early empty answers in a row (see below).
    let mut early = 0u32;
    // After falling back to polling, push is tried again now and then: the LAPI may have been
    // upgraded, or two early answers may both have come from one Rampart LAPI shutting down.
    let mut retry_push: Option<Instant> = None;
    let mut warned = false;
    failures = 0;
    if push {
        tracing::info!(wait = ?cfg.push_wait, "following decisions by push");
    } else {
        tracing::info!(every = ?cfg.update_frequency, "following decisions by polling");
    }
    loop {
        if retry_push.is_some_and(|t| Instant::now() >= t) {
            retry_push = None;
            push = true;
            early = 0;
        }
        if !push {
            tokio::time::sleep(cfg.update_frequency).await;
        }
        let delta = Delta {
            accept: accept.clone(),
            removes: Vec::new(),
            puts: Vec::new(),
            skipped: Vec::new(),
            seen: 0,
        };
        let asked = Instant::now();
        metrics.lapi_request();
        let wait = push.then_some(cfg.push_wait);
        match lapi.stream(false, wait, delta).await {
            Ok(mut d) => {
                failures = 0;
                metrics.skipped(&d.skipped);
                if push && d.seen == 0 && asked.elapsed() < cfg.push_wait / 2 {
                    // An empty answer long before the wait is over. Once is a Rampart LAPI
                    // shutting down (it releases parked requests); twice in a row is a LAPI that
                    // ignores `wait=` (CrowdSec's), where asking again at once would busy-loop.
                    early += 1;
                    if early >= 2 {
                        if !warned {
                            tracing::warn!(
                                every = ?cfg.update_frequency,
                                "the LAPI does not hold stream requests (no push support); polling instead"
                            );
                            warned = true;
                        }
                        push = false;
                        retry_push = Some(Instant::now() + PUSH_RETRY);
                    }
                } else {
                    early = 0;
                }
                if d.removes.is_empty() && d.puts.is_empty() {
                    continue;
                }
                tracing::debug!(
                    new = d.puts.len(),
                    deleted = d.removes.len(),
                    "decision changes received"
                );
                let mut changes = std::mem::take(&mut d.removes);
                changes.append(&mut d.puts);
                if tx.send(Msg::Changes(changes)).await.is_err() {
                    return Ok(());
                }
            }
            Err(LapiError::Status {
                status, message, ..
            }) if push && status == 400 && message.contains("wait") => {
                if !warned {
                    tracing::warn!(
                        every = ?cfg.update_frequency,
                        "the LAPI refuses `wait=` (no push support): {message}; polling instead"
                    );
                    warned = true;
                }
                push = false;
                retry_push = Some(Instant::now() + PUSH_RETRY);
            }
            Err(e) => {
                metrics.lapi_failure();
                failures += 1;
                tracing::warn!(error = %e, "cannot get decision changes; retrying");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
