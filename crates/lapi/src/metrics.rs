//! The LAPI's Prometheus metrics, under CrowdSec's names: requests per route, per machine and per
//! bouncer, request durations, decision lookups that found something or not, and scrape-time
//! gauges of active decisions, alerts and machine heartbeats.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hashbrown::HashMap;
use telemetry::prometheus_client::metrics::family::Family;
use telemetry::prometheus_client::metrics::histogram::Histogram;
use telemetry::{Counters, Exporter, Gauges, Refresh};

use crate::{BouncerInfo, Lapi};

type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];

/// Who a request was authenticated as, filled in by the auth extractors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Who(Arc<OnceLock<Identity>>);

#[derive(Debug)]
enum Identity {
    Machine(String),
    Bouncer(Arc<BouncerInfo>),
}

impl Who {
    pub(crate) fn machine(&self, id: &str) {
        let _ = self.0.set(Identity::Machine(id.to_owned()));
    }
    pub(crate) fn bouncer(&self, b: &Arc<BouncerInfo>) {
        let _ = self.0.set(Identity::Bouncer(Arc::clone(b)));
    }
}

/// Alert counts come from a GROUP BY over the alerts table; at most this often.
const ALERTS_EVERY_MS: i64 = 30_000;

/// The families; cheap to clone (each is an `Arc`).
#[derive(Debug)]
pub(crate) struct LapiMetrics {
    route: Counters<L2>,
    machine: Counters<L3>,
    bouncer: Counters<L3>,
    decisions_ok: Counters<L1>,
    decisions_ko: Counters<L1>,
    duration: Family<L2, Histogram, fn() -> Histogram>,
    active: Gauges<L3>,
    alerts: Gauges<L1>,
    heartbeat: Gauges<L1>,
    alerts_at: AtomicI64,
    counting_alerts: AtomicBool,
}

impl Default for LapiMetrics {
    fn default() -> Self {
        Self {
            route: Family::default(),
            machine: Family::default(),
            bouncer: Family::default(),
            decisions_ok: Family::default(),
            decisions_ko: Family::default(),
            duration: Family::new_with_constructor(telemetry::request_buckets),
            active: Family::default(),
            alerts: Family::default(),
            heartbeat: Family::default(),
            alerts_at: AtomicI64::new(0),
            counting_alerts: AtomicBool::new(false),
        }
    }
}

impl LapiMetrics {
    /// A bouncer's `GET /v1/decisions` found decisions (or not).
    pub(crate) fn lookup(&self, bouncer: &str, found: bool) {
        let f = if found {
            &self.decisions_ok
        } else {
            &self.decisions_ko
        };
        f.get_or_create(&[("bouncer", bouncer.to_owned())]).inc();
    }
}

/// Middleware: counts and times every request by matched route.
pub(crate) async fn track(State(lapi): State<Arc<Lapi>>, mut req: Request, next: Next) -> Response {
    let who = Who::default();
    req.extensions_mut().insert(who.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unknown", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &lapi.metrics;
    m.duration
        .get_or_create(&[("endpoint", route.clone()), ("method", method.clone())])
        .observe(started.elapsed().as_secs_f64());
    match who.0.get() {
        Some(Identity::Machine(id)) => {
            m.machine
                .get_or_create(&[
                    ("machine", id.clone()),
                    ("route", route.clone()),
                    ("method", method.clone()),
                ])
                .inc();
        }
        Some(Identity::Bouncer(b)) => {
            m.bouncer
                .get_or_create(&[
                    ("bouncer", b.name.clone()),
                    ("route", route.clone()),
                    ("method", method.clone()),
                ])
                .inc();
        }
        None => {}
    }
    m.route
        .get_or_create(&[("route", route), ("method", method)])
        .inc();
    resp
}

impl Lapi {
    /// Registers the LAPI's families and its scrape-time refresh in `ex`.
    pub fn register_metrics(self: &Arc<Self>, ex: &mut Exporter) {
        let m = &self.metrics;
        let r = ex.registry();
        r.register(
            "cs_lapi_route_requests",
            "Requests per route and method",
            m.route.clone(),
        );
        r.register(
            "cs_lapi_machine_requests",
            "Requests per machine, route and method",
            m.machine.clone(),
        );
        r.register(
            "cs_lapi_bouncer_requests",
            "Requests per bouncer, route and method",
            m.bouncer.clone(),
        );
        r.register(
            "cs_lapi_decisions_ok",
            "Decision lookups that found decisions, per bouncer",
            m.decisions_ok.clone(),
        );
        r.register(
            "cs_lapi_decisions_ko",
            "Decision lookups that found none, per bouncer",
            m.decisions_ko.clone(),
        );
        r.register(
            "cs_lapi_request_duration_seconds",
            "Time to answer, per endpoint and method",
            m.duration.clone(),
        );
        r.register(
            "cs_active_decisions",
            "Active decisions per scenario (reason), origin and type (action)",
            m.active.clone(),
        );
        r.register(
            "cs_alerts",
            "Alerts per scenario (blocklist alerts excluded)",
            m.alerts.clone(),
        );
        r.register(
            "cs_machines_last_heartbeat_timestamp",
            "Last heartbeat of each machine (Unix seconds)",
            m.heartbeat.clone(),
        );
        ex.add_refresh(Arc::clone(self) as Arc<dyn Refresh>);
    }

    async fn refresh_metrics(&self) {
        let m = &self.metrics;
        let now = store::now_ms();
        let counts: Vec<(L3, i64)> = match self.index.read() {
            Ok(ix) => ix
                .active_counts(now)
                .into_iter()
                .map(|((s, o, k), n)| {
                    (
                        [
                            ("reason", s.to_owned()),
                            ("origin", o.to_owned()),
                            ("action", k.to_owned()),
                        ],
                        n,
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        m.active.clear();
        for (l, n) in counts {
            m.active.get_or_create(&l).set(n);
        }
        match self.store.machines().await {
            Ok(ms) => {
                m.heartbeat.clear();
                for mc in ms {
                    if let Some(t) = mc.last_heartbeat {
                        m.heartbeat
                            .get_or_create(&[("machine", mc.machine_id)])
                            .set(t / 1000);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot list machines"),
        }
        let due = now.saturating_sub(m.alerts_at.load(Ordering::Relaxed)) >= ALERTS_EVERY_MS;
        // One scrape at a time recounts; concurrent ones serve the last counts.
        if due
            && m.counting_alerts
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            m.alerts_at.store(now, Ordering::Relaxed);
            match self.store.alert_counts_by_scenario().await {
                Ok(rows) => {
                    let mut seen: HashMap<String, i64> = HashMap::new();
                    for (s, n) in rows {
                        *seen.entry(s).or_default() += n;
                    }
                    m.alerts.clear();
                    for (s, n) in seen {
                        m.alerts.get_or_create(&[("reason", s)]).set(n);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics: cannot count alerts"),
            }
            m.counting_alerts.store(false, Ordering::Release);
        }
    }
}

impl Refresh for Lapi {
    fn refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.refresh_metrics())
    }
}
