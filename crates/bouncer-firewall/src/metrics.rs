//! Prometheus metrics under CrowdSec's firewall-bouncer names, so existing dashboards work:
//! bans held per origin and family, and the kernel's drop and processed counters, read from the
//! rules at scrape time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use crate::decision::Skip;
use crate::firewall::{Counters, Msg, Published};

/// Every metric this bouncer exports.
#[derive(Debug, Clone, Copy)]
enum Metric {
    BannedIps,
    DroppedPackets,
    DroppedBytes,
    ProcessedPackets,
    ProcessedBytes,
    LapiRequests,
    LapiFailures,
    Skipped,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::BannedIps => "fw_bouncer_banned_ips",
            Metric::DroppedPackets => "fw_bouncer_dropped_packets",
            Metric::DroppedBytes => "fw_bouncer_dropped_bytes",
            Metric::ProcessedPackets => "fw_bouncer_processed_packets",
            Metric::ProcessedBytes => "fw_bouncer_processed_bytes",
            // Counters get `_total` appended by the encoder.
            Metric::LapiRequests => "lapi_requests",
            Metric::LapiFailures => "lapi_requests_failures",
            Metric::Skipped => "fw_bouncer_decisions_skipped",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Metric::BannedIps => "Bans (addresses and networks) held in the kernel sets",
            Metric::DroppedPackets => "Packets dropped or rejected by the bans of an origin",
            Metric::DroppedBytes => "Bytes dropped or rejected by the bans of an origin",
            Metric::ProcessedPackets => "Packets that went through the bouncer's chains",
            Metric::ProcessedBytes => "Bytes that went through the bouncer's chains",
            Metric::LapiRequests => "Requests made to the LAPI",
            Metric::LapiFailures => "Requests to the LAPI that failed",
            Metric::Skipped => "Decisions received but not enforced, by reason",
        }
    }
}

/// Shared metric state.
#[derive(Debug)]
pub(crate) struct Metrics {
    lapi_requests: Counter,
    lapi_failures: Counter,
    skipped: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            lapi_requests: Counter::default(),
            lapi_failures: Counter::default(),
            skipped: Family::default(),
        }
    }

    pub(crate) fn lapi_request(&self) {
        self.lapi_requests.inc();
    }

    pub(crate) fn lapi_failure(&self) {
        self.lapi_failures.inc();
    }

    pub(crate) fn skipped(&self, counts: &[(Skip, u64)]) {
        for (s, n) in counts {
            self.skipped
                .get_or_create(&vec![("reason", s.as_str())])
                .inc_by(*n);
        }
    }
}

/// Reads the firewall thread's figures at scrape time.
#[derive(Debug)]
struct KernelCollector {
    published: Arc<Mutex<Published>>,
    counters: Arc<Mutex<Counters>>,
}

impl Collector for KernelCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let held = self
            .published
            .lock()
            .map(|p| p.held.clone())
            .unwrap_or_default();
        let m = Metric::BannedIps;
        let mut fam = enc.encode_descriptor(
            m.name(),
            m.help(),
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (origin, ip_type, n) in &held {
            let labels = [("origin", origin.as_str()), ("ip_type", ip_type)];
            let g = ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX));
            g.encode(fam.encode_family(&labels)?)?;
        }
        let c = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (m, pick) in [
            (Metric::DroppedPackets, 0usize),
            (Metric::DroppedBytes, 1usize),
        ] {
            let mut fam = enc.encode_descriptor(
                m.name(),
                m.help(),
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (origin, ip_type, p, b) in &c.dropped {
                let v = if pick == 0 { *p } else { *b };
                let labels = [("origin", origin.as_str()), ("ip_type", ip_type)];
                ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                    .encode(fam.encode_family(&labels)?)?;
            }
        }
        for (m, pick) in [
            (Metric::ProcessedPackets, 0usize),
            (Metric::ProcessedBytes, 1usize),
        ] {
            let mut fam = enc.encode_descriptor(
                m.name(),
                m.help(),
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (ip_type, p, b) in &c.processed {
                let v = if pick == 0 { *p } else { *b };
                let labels = [("ip_type", *ip_type)];
                ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                    .encode(fam.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    published: Arc<Mutex<Published>>,
    fw: mpsc::Sender<Msg>,
) -> std::io::Result<()> {
    let counters = Arc::new(Mutex::new(Counters::default()));
    let mut registry = Registry::default();
    for (m, c) in [
        (Metric::LapiRequests, &metrics.lapi_requests),
        (Metric::LapiFailures, &metrics.lapi_failures),
    ] {
        registry.register(m.name(), m.help(), c.clone());
    }
    registry.register(
        Metric::Skipped.name(),
        Metric::Skipped.help(),
        metrics.skipped.clone(),
    );
    registry.register_collector(Box::new(KernelCollector {
        published,
        counters: Arc::clone(&counters),
    }));
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (registry, counters, fw) =
                (Arc::clone(&registry), Arc::clone(&counters), fw.clone());
            async move {
                let (tx, rx) = oneshot::channel();
                // The firewall thread may be busy loading a big list: serve the previous
                // counters rather than hang the scrape.
                if fw.send(Msg::Counters(tx)).await.is_ok()
                    && let Ok(Ok(Some(c))) = tokio::time::timeout(Duration::from_secs(5), rx).await
                    && let Ok(mut slot) = counters.lock()
                {
                    *slot = c;
                }
                let mut body = String::new();
                if prometheus_client::encoding::text::encode(&mut body, &registry).is_err() {
                    return (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        [("content-type", "text/plain")],
                        String::new(),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    axum::serve(listener, app).await
}
