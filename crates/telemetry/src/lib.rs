//! Prometheus exposition for Rampart's daemons.
//!
//! Each component owns its metric families (prometheus-client types: atomic counters, gauges,
//! histograms) and registers them in one [`Exporter`]; gauges that are cheaper to compute at
//! scrape time than to keep current (active decisions per scenario, say) are filled by a
//! [`Refresh`] hook just before encoding. Names follow CrowdSec's (`cs_*`) where CrowdSec has
//! the metric, so existing dashboards keep working; Rampart's own are `rampart_*`.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

pub use prometheus_client;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A counter family keyed by label pairs.
pub type Counters<L> = Family<L, prometheus_client::metrics::counter::Counter>;
/// A gauge family keyed by label pairs.
pub type Gauges<L> = Family<L, Gauge>;
/// A histogram family keyed by label pairs.
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Content type of the OpenMetrics text exposition (Prometheus negotiates it; Go's text parser
/// used by `cscli metrics` reads it too).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Fills scrape-time gauges.
pub trait Refresh: Send + Sync + 'static {
    /// Called before every encoding.
    fn refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// One registry and the hooks that refresh it.
pub struct Exporter {
    registry: Registry,
    refreshers: Vec<Arc<dyn Refresh>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("refreshers", &self.refreshers.len())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// A registry holding `cs_info{version=...} 1`.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::default();
        let info: Gauges<[(&'static str, String); 1]> = Family::default();
        info.get_or_create(&[("version", version.to_owned())])
            .set(1);
        registry.register("cs_info", "Information about the running version", info);
        Self {
            registry,
            refreshers: Vec::new(),
        }
    }

    /// Where components register their families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds a hook run before each scrape.
    pub fn add_refresh(&mut self, r: Arc<dyn Refresh>) {
        self.refreshers.push(r);
    }

    /// The exposition text, after the refresh hooks ran.
    pub async fn render(&self) -> String {
        for r in &self.refreshers {
            r.refresh().await;
        }
        let mut out = String::with_capacity(16 << 10);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; a label that cannot be encoded can.
            out.clear();
            let _ = writeln!(out, "# encoding failed\n# EOF");
        }
        out
    }

    /// Serves `GET /metrics` on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let me = Arc::clone(&self);
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                        me.render().await,
                    )
                }
            }),
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Binds the metrics address. A taken port is reported, not fatal to the caller's daemon: the
/// caller decides (a busy 6060 is common when CrowdSec runs on the same host).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// A histogram of request durations: CrowdSec's 5 ms … 1 s buckets with finer ones below,
/// since most LAPI answers take well under a millisecond.
pub fn request_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    ])
}

/// A histogram of per-batch work (parsing, pouring): 10 µs … 1 s.
pub fn work_buckets() -> Histogram {
    Histogram::new([
        0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fill(Gauges<[(&'static str, String); 1]>);
    impl Refresh for Fill {
        fn refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            Box::pin(async move {
                self.0.clear();
                self.0.get_or_create(&[("reason", "ssh-bf".into())]).set(3);
            })
        }
    }

    #[tokio::test]
    async fn exposition_has_crowdsec_names_and_refreshed_gauges() {
        let mut ex = Exporter::new("v0.1.0");
        let hits: Counters<[(&'static str, String); 2]> = Family::default();
        ex.registry()
            .register("cs_filesource_hits", "Lines read", hits.clone());
        hits.get_or_create(&[
            ("source", "/var/log/auth.log".into()),
            ("type", "syslog".into()),
        ])
        .inc_by(7);
        let g: Gauges<[(&'static str, String); 1]> = Family::default();
        ex.registry()
            .register("cs_active_decisions", "Active decisions", g.clone());
        ex.add_refresh(Arc::new(Fill(g)));
        let text = ex.render().await;
        assert!(
            text.contains(
                "cs_filesource_hits_total{source=\"/var/log/auth.log\",type=\"syslog\"} 7"
            )
        );
        assert!(text.contains("cs_active_decisions{reason=\"ssh-bf\"} 3"));
        assert!(text.contains("cs_info{version=\"v0.1.0\"} 1"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[tokio::test]
    async fn serves_over_http() {
        let ex = Arc::new(Exporter::new("v0"));
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ex.serve(listener, async move {
            let _ = rx.await;
        }));
        let resp = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("get");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(CONTENT_TYPE)
        );
        assert!(resp.text().await.expect("body").contains("cs_info"));
        let _ = tx.send(());
        let _ = task.await;
    }
}
