//! The agent's pipeline thread (lines → events → buckets → alerts → outbox) and its metrics.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use detect::{Overflow, ShardedDetector, Stats};
use parse::{Event, ExpectMode, Parsers};
use telemetry::prometheus_client::metrics::counter::Counter;
use telemetry::prometheus_client::metrics::family::Family;
use telemetry::prometheus_client::metrics::gauge::Gauge;
use telemetry::prometheus_client::metrics::histogram::Histogram;
use telemetry::{Counters, Exporter, Gauges, Refresh};

type L1 = [(&'static str, String); 1];
type L2 = [(&'static str, String); 2];
type L3 = [(&'static str, String); 3];

/// The agent's families, under CrowdSec's names where CrowdSec has the metric. They outlive
/// reloads: a SIGHUP starts a new pipeline that keeps adding to the same counters.
#[derive(Debug)]
pub(crate) struct AgentMetrics {
    file_hits: Counters<L3>,
    journal_hits: Counters<L3>,
    syslog_hits: Counters<L3>,
    stdin_hits: Counters<L3>,
    parser_hits: Counters<L2>,
    parser_ok: Counters<L3>,
    parser_ko: Counters<L3>,
    poured: Counters<L3>,
    overflowed: Counters<L1>,
    underflowed: Counters<L1>,
    canceled: Counters<L1>,
    instantiated: Counters<L1>,
    buckets: Gauges<L1>,
    queue: Gauge,
    batch_seconds: Histogram,
    outbox: Option<Arc<outbox::Outbox>>,
    outbox_queued: Gauge,
    alerts_sent: Counter,
    delivery_failures: Counter,
    sent_seen: AtomicU64,
    failures_seen: AtomicU64,
}

impl AgentMetrics {
    pub(crate) fn new(outbox: Option<Arc<outbox::Outbox>>) -> Self {
        Self {
            file_hits: Family::default(),
            journal_hits: Family::default(),
            syslog_hits: Family::default(),
            stdin_hits: Family::default(),
            parser_hits: Family::default(),
            parser_ok: Family::default(),
            parser_ko: Family::default(),
            poured: Family::default(),
            overflowed: Family::default(),
            underflowed: Family::default(),
            canceled: Family::default(),
            instantiated: Family::default(),
            buckets: Family::default(),
            queue: Gauge::default(),
            batch_seconds: telemetry::work_buckets(),
            outbox,
            outbox_queued: Gauge::default(),
            alerts_sent: Counter::default(),
            delivery_failures: Counter::default(),
            sent_seen: AtomicU64::new(0),
            failures_seen: AtomicU64::new(0),
        }
    }

    pub(crate) fn register(self: &Arc<Self>, ex: &mut Exporter) {
        let r = ex.registry();
        for (name, help, f) in [
            (
                "cs_filesource_hits",
                "Lines read from files",
                &self.file_hits,
            ),
            (
                "cs_journalctlsource_hits",
                "Lines read from journald",
                &self.journal_hits,
            ),
            (
                "cs_syslogsource_hits",
                "Messages received by the syslog server",
                &self.syslog_hits,
            ),
            (
                "rampart_stdinsource_hits",
                "Lines read from standard input",
                &self.stdin_hits,
            ),
            (
                "cs_parser_hits_ok",
                "Lines that parsed, per source",
                &self.parser_ok,
            ),
            (
                "cs_parser_hits_ko",
                "Lines no parser took, per source",
                &self.parser_ko,
            ),
        ] {
            r.register(name, help, f.clone());
        }
        r.register(
            "cs_parser_hits",
            "Lines given to the parsers, per source",
            self.parser_hits.clone(),
        );
        for (name, help, f) in [
            (
                "cs_bucket_overflowed",
                "Overflows, per scenario",
                &self.overflowed,
            ),
            (
                "cs_bucket_underflowed",
                "Bucket instances that died idle, per scenario",
                &self.underflowed,
            ),
            (
                "cs_bucket_canceled",
                "Bucket instances ended by cancel_on, per scenario",
                &self.canceled,
            ),
            (
                "cs_bucket_instantiation",
                "Bucket instances created, per scenario",
                &self.instantiated,
            ),
        ] {
            r.register(name, help, f.clone());
        }
        r.register(
            "cs_bucket_poured",
            "Events poured, per source, datasource and scenario",
            self.poured.clone(),
        );
        r.register(
            "cs_buckets",
            "Live bucket instances, per scenario",
            self.buckets.clone(),
        );
        r.register(
            "rampart_acquisition_queue_lines",
            "Lines read and waiting for the pipeline (bounded: readers wait when it is full)",
            self.queue.clone(),
        );
        r.register(
            "rampart_pipeline_batch_seconds",
            "Time to parse and pour one batch of lines",
            self.batch_seconds.clone(),
        );
        r.register(
            "rampart_outbox_queued_alerts",
            "Alerts on disk waiting for the LAPI",
            self.outbox_queued.clone(),
        );
        r.register(
            "rampart_alerts_sent",
            "Alerts the LAPI accepted",
            self.alerts_sent.clone(),
        );
        r.register(
            "rampart_alert_delivery_failures",
            "Failed attempts to deliver alerts to the LAPI",
            self.delivery_failures.clone(),
        );
        ex.add_refresh(Arc::clone(self) as Arc<dyn Refresh>);
    }

    fn hits(&self, module: &str) -> &Counters<L3> {
        match module {
            "journalctl" => &self.journal_hits,
            "syslog" => &self.syslog_hits,
            "stdin" => &self.stdin_hits,
            _ => &self.file_hits,
        }
    }

    /// Adds the growth of the bucket counters since `last`.
    fn buckets_from(&self, names: &[L1], now: &Stats, last: &Stats) {
        for (f, cur, prev) in [
            (&self.overflowed, &now.overflowed, &last.overflowed),
            (&self.underflowed, &now.underflowed, &last.underflowed),
            (&self.canceled, &now.canceled, &last.canceled),
            (&self.instantiated, &now.instantiated, &last.instantiated),
        ] {
            for (i, v) in cur.iter().enumerate() {
                let d = v.saturating_sub(prev.get(i).copied().unwrap_or(0));
                if let (true, Some(l)) = (d > 0, names.get(i)) {
                    f.get_or_create(l).inc_by(d);
                }
            }
        }
        // Several scenarios may share a name (one file per stage); sum them.
        let mut live: HashMap<&str, i64> = HashMap::new();
        for (i, l) in names.iter().enumerate() {
            let n = now.live.get(i).copied().unwrap_or(0);
            *live.entry(l[0].1.as_str()).or_default() += i64::try_from(n).unwrap_or(i64::MAX);
        }
        for (name, n) in live {
            self.buckets
                .get_or_create(&[("name", name.to_owned())])
                .set(n);
        }
    }
}

impl Refresh for AgentMetrics {
    fn refresh(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let Some(o) = &self.outbox else { return };
            self.outbox_queued
                .set(i64::try_from(o.depth()).unwrap_or(i64::MAX));
            let sent = o.sent();
            let before = self.sent_seen.swap(sent, Ordering::Relaxed);
            self.alerts_sent.inc_by(sent.saturating_sub(before));
            let failures = o.failures();
            let before = self.failures_seen.swap(failures, Ordering::Relaxed);
            self.delivery_failures
                .inc_by(failures.saturating_sub(before));
        })
    }
}

/// What one pipeline run needs.
pub(crate) struct Pipeline {
    pub(crate) parsers: Arc<Parsers>,
    pub(crate) post: Arc<Parsers>,
    pub(crate) scenarios: Arc<detect::Scenarios>,
    pub(crate) outbox: Arc<outbox::Outbox>,
    pub(crate) state: std::path::PathBuf,
    pub(crate) saver: acquire::PositionSaver,
    pub(crate) metrics: Arc<AgentMetrics>,
}

/// Per-batch line counts, keyed by borrowed labels so counting allocates nothing per line.
#[derive(Default)]
struct Tally {
    read: u64,
    ok: u64,
    /// Per scenario index: events routed to it.
    poured: HashMap<u32, u64>,
}

impl Pipeline {
    /// Runs on its own thread until acquisition drops its sender. Lines are acknowledged (their
    /// read position may be saved) only once their events were poured and any alert they caused
    /// is on disk in the outbox.
    pub(crate) fn run(self, mut rx: tokio::sync::mpsc::Receiver<acquire::Line>) {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(1);
        let mut shards: Vec<detect::Detector> = (0..threads)
            .map(|_| detect::Detector::new(self.scenarios.clone()))
            .collect();
        if self.state.is_file() {
            match detect::Detector::load_states(&mut shards, &self.state) {
                Ok(n) => tracing::info!(instances = n, "bucket state restored"),
                Err(e) => tracing::warn!(error = %e, "bucket state not restored"),
            }
        }
        let names: Vec<L1> = self
            .scenarios
            .iter()
            .map(|s| [("name", s.name.clone())])
            .collect();
        let mut last_stats = Stats::default();
        let mut detector = ShardedDetector::with_detectors(self.scenarios.clone(), shards, 16);
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        else {
            tracing::error!("pipeline: cannot start its timer runtime");
            return;
        };
        let m = &self.metrics;
        let mut batch: Vec<acquire::Line> = Vec::with_capacity(1024);
        let mut last_tick = Instant::now();
        let mut marks_ok = true;
        loop {
            batch.clear();
            let first = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            });
            let closed = match first {
                Ok(Some(l)) => {
                    batch.push(l);
                    while batch.len() < 1024 {
                        match rx.try_recv() {
                            Ok(l) => batch.push(l),
                            Err(_) => break,
                        }
                    }
                    false
                }
                Ok(None) => true,
                Err(_) => false,
            };
            let started = Instant::now();
            let batch_was_empty = batch.is_empty();
            m.queue.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
            let now = chrono::Utc::now().fixed_offset();
            let mut tally: HashMap<(&str, &'static str, &str), Tally> = HashMap::new();
            for l in &batch {
                let kind = l.labels.get("type").map_or("", String::as_str);
                let t = tally.entry((l.src.as_str(), l.module, kind)).or_default();
                t.read += 1;
                let line = parse::Line {
                    raw: l.raw.clone(),
                    src: l.src.clone(),
                    time: Some(now),
                    labels: (*l.labels).clone(),
                    process: true,
                    module: l.module.to_owned(),
                };
                let mut evt = Event::from_line(line, ExpectMode::Live);
                if self.parsers.parse(&mut evt) {
                    t.ok += 1;
                    if detector.pour(evt) {
                        for si in detector.last_routed() {
                            *t.poured.entry(*si).or_default() += 1;
                        }
                    }
                }
            }
            for ((src, module, kind), t) in tally {
                let l3 = [
                    ("source", src.to_owned()),
                    ("type", module.to_owned()),
                    ("acquis_type", kind.to_owned()),
                ];
                m.hits(module)
                    .get_or_create(&[
                        ("source", src.to_owned()),
                        ("datasource_type", module.to_owned()),
                        ("acquis_type", kind.to_owned()),
                    ])
                    .inc_by(t.read);
                m.parser_hits
                    .get_or_create(&[("source", src.to_owned()), ("type", module.to_owned())])
                    .inc_by(t.read);
                if t.ok > 0 {
                    m.parser_ok.get_or_create(&l3).inc_by(t.ok);
                }
                if t.read > t.ok {
                    m.parser_ko.get_or_create(&l3).inc_by(t.read - t.ok);
                }
                for (si, n) in t.poured {
                    if let Some([(_, name)]) = names.get(si as usize) {
                        m.poured
                            .get_or_create(&[
                                ("source", src.to_owned()),
                                ("type", module.to_owned()),
                                ("name", name.clone()),
                            ])
                            .inc_by(n);
                    }
                }
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                detector.tick(now);
                last_tick = Instant::now();
                let st = detector.stats();
                m.buckets_from(&names, &st, &last_stats);
                last_stats = st;
            }
            if !batch.is_empty() || closed {
                detector.sync();
            }
            let fresh: Vec<Overflow> = detector.overflows().try_iter().collect();
            let queued_alerts = !fresh.is_empty();
            if queued_alerts {
                let alerts = accept(&self.post, &mut detector, fresh);
                for a in &alerts {
                    eprintln!(
                        "rampart: alert {} from {} {} ({} events){}",
                        a.scenario,
                        a.source.scope,
                        a.source.value,
                        a.events_count,
                        if a.simulated { " [simulated]" } else { "" }
                    );
                }
                // The alerts and the read positions after their lines go to disk in one synced
                // append (the positions as the outbox's mark, adopted at the next start if newer
                // than the positions file): a kill at any point neither loses nor repeats an
                // alert. Position writes wait meanwhile, so none can get ahead of the alerts.
                let hold = self.saver.hold();
                for l in batch.drain(..) {
                    l.ack.done();
                }
                let mark = if marks_ok { hold.mark() } else { None };
                if let Err(e) = self.outbox.push_marked(&alerts, mark.as_deref()) {
                    // Lines are acknowledged but their alerts are not on disk: save no position
                    // from now on, so a restart reads them again (repeating is better than
                    // losing).
                    hold.freeze();
                    marks_ok = false;
                    tracing::error!(error = %e, "cannot queue alerts; read positions are no longer saved until restart");
                }
                // No position save here: the mark in the outbox already holds the positions, and
                // the saver writes them within a second; a flush per alert would only add disk
                // waits to detection.
                drop(hold);
            } else {
                for l in batch.drain(..) {
                    l.ack.done();
                }
            }
            if !closed && !batch_was_empty {
                m.batch_seconds.observe(started.elapsed().as_secs_f64());
            }
            if closed {
                break;
            }
        }
        detector.flush();
        let st = detector.stats();
        m.buckets_from(&names, &st, &last_stats);
        let (rest, detectors) = detector.shutdown();
        let alerts = accept_final(&self.post, rest);
        if let Err(e) = self.outbox.push(&alerts) {
            tracing::error!(error = %e, "cannot queue the last alerts");
        }
        match detect::Detector::save_states(&detectors, &self.state) {
            Ok(n) => tracing::info!(instances = n, "bucket state saved"),
            Err(e) => tracing::warn!(error = %e, "bucket state not saved"),
        }
    }
}

fn accept(
    post: &Parsers,
    detector: &mut ShardedDetector,
    fresh: Vec<Overflow>,
) -> Vec<model::Alert> {
    let mut alerts = Vec::new();
    for o in fresh {
        let Some(o) = detect::postoverflow(post, o, ExpectMode::Live) else {
            continue;
        };
        if o.reprocess {
            detector.pour(detect::overflow_event(o.clone(), ExpectMode::Live));
        }
        alerts.extend(o.alerts);
    }
    alerts
}

fn accept_final(post: &Parsers, rest: Vec<Overflow>) -> Vec<model::Alert> {
    rest.into_iter()
        .filter_map(|o| detect::postoverflow(post, o, ExpectMode::Live))
        .flat_map(|o| o.alerts)
        .collect()
}
