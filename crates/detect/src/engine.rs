//! Bucket instances and the pour/overflow cycle, step for step as CrowdSec runs its processors:
//! type processor, `distinct`, `cancel_on`, pour into the token bucket, `condition` or bayesian
//! update; at overflow the alert is built, then `overflow_filter` and `blackhole` may discard it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use expr::{Missing, Object, Value};
use parse::{Event, EventType, ExpectMode, Parsers};

use crate::limiter::Limiter;
use crate::overflow::{Overflow, Sources};
use crate::scenario::{BucketType, Routed, Scenario, Scenarios};
use model::{Alert, AlertEvent, MetaItem, Source};

/// Counters, overall and per scenario (indexes follow [`Scenarios::iter`]).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Events poured into at least one scenario.
    pub poured_events: u64,
    /// Events that no scenario took.
    pub unpoured_events: u64,
    /// Per scenario: events poured.
    pub poured: Vec<u64>,
    /// Per scenario: overflows emitted.
    pub overflowed: Vec<u64>,
    /// Per scenario: instances that died idle.
    pub underflowed: Vec<u64>,
    /// Per scenario: instances destroyed by `cancel_on`.
    pub canceled: Vec<u64>,
    /// Per scenario: instances created.
    pub instantiated: Vec<u64>,
    /// Per scenario: instances alive (filled by [`Detector::stats_snapshot`] only).
    pub live: Vec<u64>,
    /// Expression errors at run time (logged once per scenario and field).
    pub runtime_errors: u64,
}

pub(crate) type Key = (u32, Box<str>);

/// One live bucket instance (a scenario × a groupby value).
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub(crate) limiter: Limiter,
    pub(crate) queue: VecDeque<Arc<Event>>,
    pub(crate) first: Option<DateTime<FixedOffset>>,
    pub(crate) last: Option<DateTime<FixedOffset>>,
    pub(crate) total: u64,
    pub(crate) distinct: HashSet<String>,
    pub(crate) guillotined: Vec<bool>,
    /// Wall-clock deadline (ns): underflow, or the timed overflow of a counter.
    pub(crate) deadline_ns: Option<i64>,
    pub(crate) mode: ExpectMode,
}

impl Instance {
    pub(crate) fn new(sc: &Scenario, mode: ExpectMode) -> Self {
        Instance {
            limiter: Limiter::new(sc.capacity, sc.leak_ns),
            queue: VecDeque::new(),
            first: None,
            last: None,
            total: 0,
            distinct: HashSet::new(),
            guillotined: vec![false; sc.bayes.len()],
            deadline_ns: None,
            mode,
        }
    }

    fn push(&mut self, sc: &Scenario, evt: &Arc<Event>) {
        if let Some(size) = sc.queue_size {
            while self.queue.len() > size {
                self.queue.pop_front();
            }
        }
        self.queue.push_back(Arc::clone(evt));
    }
}

/// Holds the bucket instances of a set of scenarios.
#[derive(Debug)]
pub struct Detector {
    scenarios: Arc<Scenarios>,
    pub(crate) instances: HashMap<Key, Instance>,
    /// Per scenario: groupby → blackhole expiry (ns, overflow time base).
    pub(crate) blackholes: Vec<HashMap<Box<str>, i64>>,
    stats: Stats,
    /// Latest event time seen in time-machine mode, the clock of garbage collection.
    log_clock_ns: i64,
    pours_since_gc: u32,
    candidates: Vec<u32>,
    routed: Vec<Routed>,
}

fn ns(t: &DateTime<FixedOffset>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Instances are checked for idleness every this many pours in time-machine mode, so memory
/// stays bounded on long replays with millions of distinct keys.
const GC_EVERY: u32 = 1_024;

enum Outcome {
    Kept,
    Dropped,
    Overflow(DateTime<FixedOffset>),
}

impl Detector {
    /// A detector with no instances.
    pub fn new(scenarios: Arc<Scenarios>) -> Self {
        let n = scenarios.len();
        Detector {
            blackholes: vec![HashMap::new(); n],
            stats: Stats {
                poured: vec![0; n],
                overflowed: vec![0; n],
                underflowed: vec![0; n],
                canceled: vec![0; n],
                instantiated: vec![0; n],
                ..Stats::default()
            },
            scenarios,
            instances: HashMap::new(),
            log_clock_ns: i64::MIN,
            pours_since_gc: 0,
            candidates: Vec::new(),
            routed: Vec::new(),
        }
    }

    /// The scenarios.
    pub fn scenarios(&self) -> &Scenarios {
        &self.scenarios
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counters with the live instances per scenario counted (one pass over the instances).
    pub fn stats_snapshot(&self) -> Stats {
        let mut s = self.stats.clone();
        s.live = vec![0; self.scenarios.len()];
        for (si, _) in self.instances.keys() {
            if let Some(n) = s.live.get_mut(*si as usize) {
                *n += 1;
            }
        }
        s
    }

    /// Live bucket instances.
    pub fn instance_count(&self) -> usize {
        self.instances.len()
    }

    fn runtime_error(&mut self, si: u32, field: &'static str, msg: &str) {
        self.stats.runtime_errors += 1;
        self.scenarios.runtime_error(si, field, msg);
    }

    /// Pours a parsed event with the wall clock as "now"; returns the overflows it caused.
    pub fn pour(&mut self, evt: &Event, out: &mut Vec<Overflow>) -> bool {
        self.pour_at(evt, Utc::now().fixed_offset(), out)
    }

    /// Pours a parsed event; `now` is the wall clock (live mode and timers).
    pub fn pour_at(
        &mut self,
        evt: &Event,
        now: DateTime<FixedOffset>,
        out: &mut Vec<Overflow>,
    ) -> bool {
        let mut routed = std::mem::take(&mut self.routed);
        self.scenarios
            .route(evt, now, &mut self.candidates, &mut routed);
        let poured = !routed.is_empty();
        if poured {
            let mut copy = evt.clone();
            copy.apply_pending_from(evt);
            let events = EventCopies::new(copy);
            for r in routed.drain(..) {
                let e = events.for_scenario(&self.scenarios, r.scenario);
                self.pour_routed(r, &e, now, out);
            }
            self.stats.poured_events += 1;
        } else {
            self.stats.unpoured_events += 1;
        }
        self.routed = routed;
        poured
    }

    /// Pours an event already routed (filter and groupby done, possibly on another thread)
    /// into its instance.
    pub fn pour_routed(
        &mut self,
        r: Routed,
        evt: &Arc<Event>,
        now: DateTime<FixedOffset>,
        out: &mut Vec<Overflow>,
    ) {
        let scenarios = Arc::clone(&self.scenarios);
        let Some(sc) = scenarios.list.get(r.scenario as usize) else {
            return;
        };
        if evt.expect_mode == ExpectMode::TimeMachine {
            self.log_clock_ns = self.log_clock_ns.max(ns(&r.time));
        }
        self.stats.poured[r.scenario as usize] += 1;
        self.pour_one(sc, r.scenario, r, evt, now, out);
        self.pours_since_gc += 1;
        if self.pours_since_gc >= GC_EVERY {
            self.pours_since_gc = 0;
            if self.log_clock_ns != i64::MIN {
                self.gc_log_time(self.log_clock_ns);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pour_one(
        &mut self,
        sc: &Scenario,
        si: u32,
        mut routed: Routed,
        evt: &Arc<Event>,
        now: DateTime<FixedOffset>,
        out: &mut Vec<Overflow>,
    ) {
        let t = routed.time;
        let key: Key = (si, std::mem::take(&mut routed.group));
        let now_ns = ns(&now);
        // An idle instance is replaced by a fresh one: by log time in time-machine mode, by the
        // wall clock otherwise (where `tick` normally got there first).
        if let Some(inst) = self.instances.get(&key) {
            let expired = match inst.mode {
                ExpectMode::TimeMachine => inst
                    .last
                    .is_some_and(|last| ns(&t) > ns(&last).saturating_add(sc.lifetime_ns)),
                ExpectMode::Live => inst.deadline_ns.is_some_and(|d| now_ns > d),
            };
            if expired {
                self.expire(&key, now, out);
            }
        }
        if !self.instances.contains_key(&key) {
            self.stats.instantiated[si as usize] += 1;
            self.instances
                .insert(key.clone(), Instance::new(sc, evt.expect_mode));
        }
        let outcome = self.run_processors(sc, si, &key, evt, &mut routed);
        match outcome {
            Outcome::Dropped => {}
            Outcome::Kept => {
                if let Some(inst) = self.instances.get_mut(&key)
                    && (sc.kind != BucketType::Counter || inst.deadline_ns.is_none())
                {
                    inst.deadline_ns = Some(now_ns.saturating_add(sc.lifetime_ns));
                }
            }
            Outcome::Overflow(at) => {
                if let Some(inst) = self.instances.remove(&key) {
                    self.overflow(sc, si, &key, inst, at, out);
                }
            }
        }
    }

    fn run_processors(
        &mut self,
        sc: &Scenario,
        si: u32,
        key: &Key,
        shared: &Arc<Event>,
        routed: &mut Routed,
    ) -> Outcome {
        let t = routed.time;
        let evt: &Event = shared;
        if sc.kind == BucketType::Trigger {
            let Some(inst) = self.instances.get_mut(key) else {
                return Outcome::Dropped;
            };
            inst.first = Some(t);
            inst.last = Some(t);
            inst.total = 1;
            inst.push(sc, shared);
            return Outcome::Overflow(t);
        }
        if let Some(value) = routed.distinct.take() {
            let Some(value) = value else {
                return Outcome::Dropped;
            };
            let Some(inst) = self.instances.get_mut(key) else {
                return Outcome::Dropped;
            };
            if !inst.distinct.insert(value) {
                return Outcome::Dropped;
            }
        }
        if routed.cancel {
            self.instances.remove(key);
            self.stats.canceled[si as usize] += 1;
            return Outcome::Dropped;
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return Outcome::Dropped;
        };
        inst.total += 1;
        if inst.first.is_none() {
            inst.first = Some(t);
        }
        inst.last = Some(t);
        let conditional = matches!(sc.kind, BucketType::Conditional);
        let allowed = inst.limiter.allow(ns(&t)) || conditional;
        inst.push(sc, shared);
        if !allowed {
            return Outcome::Overflow(t);
        }
        match sc.kind {
            BucketType::Conditional => {
                let Some(cond) = &sc.condition else {
                    return Outcome::Kept;
                };
                let res = {
                    let q = QueueView::new(&inst.queue);
                    let l = LeakyView {
                        sc,
                        inst,
                        ovflw: None,
                    };
                    cond.run_bool(&[Value::Obj(evt), Value::Obj(&q), Value::Obj(&l)])
                };
                match res {
                    Ok(true) => Outcome::Overflow(inst.last.unwrap_or(t)),
                    Ok(false) => Outcome::Kept,
                    Err(e) => {
                        let m = e.message;
                        self.runtime_error(si, "condition", &m);
                        Outcome::Kept
                    }
                }
            }
            BucketType::Bayesian => {
                let mut p = sc.bayes_prior;
                let mut err = None;
                let mut fired = inst.guillotined.clone();
                {
                    let q = QueueView::new(&inst.queue);
                    let l = LeakyView {
                        sc,
                        inst,
                        ovflw: None,
                    };
                    let vars = [Value::Obj(evt), Value::Obj(&q), Value::Obj(&l)];
                    for (i, c) in sc.bayes.iter().enumerate() {
                        let hit = if fired[i] {
                            true
                        } else {
                            match c.program.run_bool(&vars) {
                                Ok(b) => b,
                                Err(e) => {
                                    err = Some(e.message);
                                    false
                                }
                            }
                        };
                        if hit && c.guillotine {
                            fired[i] = true;
                        }
                        let (pe, pb) = if hit {
                            (c.p_evil, c.p_benign)
                        } else {
                            (1.0 - c.p_evil, 1.0 - c.p_benign)
                        };
                        let denom = pe * p + pb * (1.0 - p);
                        if denom > 0.0 {
                            p = pe * p / denom;
                        }
                    }
                }
                inst.guillotined = fired;
                if let Some(m) = err {
                    self.runtime_error(si, "bayesian_conditions", &m);
                }
                let Some(inst) = self.instances.get(key) else {
                    return Outcome::Dropped;
                };
                if p > sc.bayes_threshold {
                    Outcome::Overflow(inst.last.unwrap_or(t))
                } else {
                    Outcome::Kept
                }
            }
            _ => Outcome::Kept,
        }
    }

    /// An instance's lifetime ended: counters overflow with what they hold, others underflow.
    fn expire(&mut self, key: &Key, now: DateTime<FixedOffset>, out: &mut Vec<Overflow>) {
        let Some(inst) = self.instances.remove(key) else {
            return;
        };
        let scenarios = Arc::clone(&self.scenarios);
        let Some(sc) = scenarios.list.get(key.0 as usize) else {
            return;
        };
        if sc.kind == BucketType::Counter && inst.total > 0 {
            let at = match inst.mode {
                ExpectMode::Live => now,
                ExpectMode::TimeMachine => inst.first.map_or(now, |f| {
                    DateTime::from_timestamp_nanos(ns(&f).saturating_add(sc.duration_ns))
                        .with_timezone(f.offset())
                }),
            };
            self.overflow(sc, key.0, key, inst, at, out);
        } else {
            self.stats.underflowed[key.0 as usize] += 1;
        }
    }

    /// Fires wall-clock timers: idle instances die, counters overflow. Call about once a second
    /// in live mode.
    pub fn tick(&mut self, now: DateTime<FixedOffset>, out: &mut Vec<Overflow>) {
        let now_ns = ns(&now);
        let due: Vec<Key> = self
            .instances
            .iter()
            .filter(|(_, i)| {
                i.mode == ExpectMode::Live && i.deadline_ns.is_some_and(|d| d <= now_ns)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.expire(&k, now, out);
        }
    }

    /// Drops time-machine instances that are idle at log time `at_ns` (their bucket refilled
    /// or their lifetime passed). CrowdSec never collects these during a replay; we do, so a
    /// replay of a huge log keeps a bounded memory.
    pub fn gc_log_time(&mut self, at_ns: i64) {
        let scenarios = Arc::clone(&self.scenarios);
        let mut dead = Vec::new();
        for (k, inst) in &self.instances {
            if inst.mode != ExpectMode::TimeMachine {
                continue;
            }
            let Some(sc) = scenarios.list.get(k.0 as usize) else {
                continue;
            };
            if sc.kind == BucketType::Counter {
                continue;
            }
            // Only instances past their lifetime: the next event of their key would replace them
            // anyway, so dropping them early changes nothing. (A refilled bucket is not enough:
            // its distinct values, first time and count still show in a later alert.)
            let idle = inst
                .last
                .is_some_and(|l| at_ns > ns(&l).saturating_add(sc.lifetime_ns));
            if idle {
                dead.push(k.clone());
            }
        }
        for k in dead {
            self.instances.remove(&k);
            self.stats.underflowed[k.0 as usize] += 1;
        }
    }

    /// Ends a replay: counters still collecting overflow as their timer would have fired.
    pub fn finish(&mut self, out: &mut Vec<Overflow>) {
        let keys: Vec<Key> = self
            .instances
            .iter()
            .filter(|(k, _)| {
                self.scenarios
                    .list
                    .get(k.0 as usize)
                    .is_some_and(|s| s.kind == BucketType::Counter)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let now = Utc::now().fixed_offset();
        for k in keys {
            self.expire(&k, now, out);
        }
    }

    fn overflow(
        &mut self,
        sc: &Scenario,
        si: u32,
        key: &Key,
        inst: Instance,
        at: DateTime<FixedOffset>,
        out: &mut Vec<Overflow>,
    ) {
        let built = build_overflow(sc, key, &inst, at);
        // overflow_filter, then blackhole, in CrowdSec's processor order. Both run even when
        // the alert could not be built (the blackhole is still armed).
        if let Some(f) = &sc.overflow_filter {
            let signal = built.as_ref().ok().cloned().unwrap_or_default();
            let q = QueueView::new(&inst.queue);
            let l = LeakyView {
                sc,
                inst: &inst,
                ovflw: Some(at),
            };
            match f.run_bool(&[Value::Obj(&q), Value::Obj(&signal), Value::Obj(&l)]) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    self.runtime_error(si, "overflow_filter", &e.message);
                    return;
                }
            }
        }
        if let Some(bh) = sc.blackhole_ns {
            let at_ns = ns(&at);
            let holes = &mut self.blackholes[si as usize];
            if holes.get(&key.1).is_some_and(|&exp| exp > at_ns) {
                return;
            }
            holes.retain(|_, exp| *exp > at_ns);
            holes.insert(key.1.clone(), at_ns.saturating_add(bh));
        }
        match built {
            Ok(ov) => {
                self.stats.overflowed[si as usize] += 1;
                out.push(ov);
            }
            Err(e) => {
                self.runtime_error(si, "alert", &e);
            }
        }
    }
}

fn marshal(t: &DateTime<FixedOffset>) -> String {
    parse::enrich::date::marshal_time(t)
}

fn source_of(sc: &Scenario, evt: &Event) -> Result<Vec<(String, Source)>, String> {
    let scope = sc.scope.kind.as_str();
    if evt.kind == EventType::Overflow {
        // An overflow poured again (reprocess) keeps its sources, widened to Range if asked.
        let Some(ov) = evt.overflow.as_deref() else {
            return Ok(Vec::new());
        };
        let Some(Value::Obj(srcs)) = ov.get("Sources") else {
            return Ok(Vec::new());
        };
        let mut res = Vec::new();
        for k in srcs.keys() {
            let Some(k) = k.as_str() else { continue };
            let Some(Value::Obj(s)) = srcs.get(k) else {
                continue;
            };
            let field = |n: &str| {
                s.get(n)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            let mut src = Source {
                scope: field("Scope"),
                value: field("Value"),
                ip: field("IP"),
                range: field("Range"),
                as_number: field("AsNumber"),
                as_name: field("AsName"),
                cn: field("Cn"),
                ..Source::default()
            };
            if src.scope == scope {
                res.push((k.to_owned(), src));
            } else if scope == "Range" && src.scope == "Ip" {
                src.scope = "Range".into();
                src.value = src.range.clone();
                if let Some(e) = &sc.scope.expr {
                    src.value = e
                        .run(&[Value::Obj(evt)])
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                }
                if !src.value.is_empty() {
                    res.push((src.value.clone(), src));
                }
            }
        }
        return Ok(res);
    }
    let run_scope = |e: &expr::Program| -> Result<String, String> {
        e.run(&[Value::Obj(evt)])
            .map(|v| v.as_str().map(str::to_owned).unwrap_or_default())
            .map_err(|e| format!("scope expression: {}", e.message))
    };
    match scope {
        "Ip" | "Range" => {
            let ip = evt
                .meta
                .get("source_ip")
                .ok_or_else(|| format!("scope is {scope} but Meta[source_ip] doesn't exist"))?;
            if ip.parse::<IpAddr>().is_err() {
                return Err(format!("scope is {scope} but {ip:?} isn't a valid ip"));
            }
            let mut src = Source {
                scope: scope.to_owned(),
                ip: ip.clone(),
                ..Source::default()
            };
            if let Some(v) = evt
                .enriched
                .get("ASNumber")
                .or_else(|| evt.enriched.get("ASNNumber"))
            {
                src.as_number = v.clone();
            }
            if let Some(v) = evt.enriched.get("IsoCode") {
                src.cn = v.clone();
            }
            if let Some(v) = evt.enriched.get("ASNOrg") {
                src.as_name = v.clone();
            }
            src.latitude = evt
                .enriched
                .get("Latitude")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            src.longitude = evt
                .enriched
                .get("Longitude")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if let Some(r) = evt.meta.get("SourceRange").filter(|r| !r.is_empty()) {
                let net: ipnet::IpNet = r
                    .parse()
                    .map_err(|_| format!("declared range {r} of {ip} can't be parsed"))?;
                src.range = net.trunc().to_string();
            }
            src.value = if scope == "Ip" {
                src.ip.clone()
            } else {
                src.range.clone()
            };
            if scope == "Range"
                && let Some(e) = &sc.scope.expr
            {
                src.value = run_scope(e)?;
            }
            Ok(vec![(src.value.clone(), src)])
        }
        _ => {
            let e = sc.scope.expr.as_ref().ok_or("empty scope information")?;
            let value = run_scope(e)?;
            Ok(vec![(
                value.clone(),
                Source {
                    scope: scope.to_owned(),
                    value,
                    ..Source::default()
                },
            )])
        }
    }
}

fn build_overflow(
    sc: &Scenario,
    key: &Key,
    inst: &Instance,
    at: DateTime<FixedOffset>,
) -> Result<Overflow, String> {
    let mut sources = Sources::default();
    let mut source_scope = String::new();
    for evt in &inst.queue {
        for (k, src) in source_of(sc, evt)
            .map_err(|e| format!("while extracting scope from bucket {}: {e}", sc.name))?
        {
            if source_scope.is_empty() {
                source_scope = src.scope.clone();
            }
            if src.scope != source_scope {
                return Err(format!(
                    "event has multiple source types: {} != {}",
                    src.scope, source_scope
                ));
            }
            sources.0.insert(k, src);
        }
    }
    let source_str = match sources.0.len() {
        0 => "UNKNOWN".to_owned(),
        1 => sources.0.keys().next().cloned().unwrap_or_default(),
        n => format!("{n} sources"),
    };
    let first = inst.first.unwrap_or(at);
    let last = inst.last.unwrap_or(at);
    let message = format!(
        "{source_scope} {source_str} performed '{}' ({} events over {}) at {}",
        sc.name,
        inst.total,
        expr::time::format_duration(ns(&at).saturating_sub(ns(&first))),
        expr::time::format_go_time(&last),
    );
    let events = inst
        .queue
        .iter()
        .filter(|e| e.kind == EventType::Log || !e.meta.is_empty())
        .map(|e| {
            let mut meta: Vec<MetaItem> = e
                .meta
                .iter()
                .map(|(k, v)| MetaItem {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            meta.sort_by(|a, b| a.key.cmp(&b.key));
            let timestamp = if !e.marshaled_time.is_empty() {
                e.marshaled_time.clone()
            } else {
                e.time.as_ref().map(marshal).unwrap_or_default()
            };
            AlertEvent { meta, timestamp }
        })
        .collect();
    let base = Alert {
        scenario: sc.name.clone(),
        scenario_hash: sc.hash.clone(),
        scenario_version: sc.version.clone(),
        capacity: i32::try_from(sc.capacity).unwrap_or(i32::MAX),
        leakspeed: expr::time::format_duration(sc.leak_ns),
        events_count: i32::try_from(inst.total).unwrap_or(i32::MAX),
        message,
        start_at: marshal(&first),
        stop_at: marshal(&at),
        simulated: sc.simulated,
        remediation: sc.remediation,
        source: Source::default(),
        events,
        scenario_labels: sc.labels.clone(),
        ..Alert::default()
    };
    let alerts = sources
        .0
        .values()
        .map(|s| Alert {
            source: s.clone(),
            ..base.clone()
        })
        .collect();
    Ok(Overflow {
        scenario: sc.name.clone(),
        mapkey: key.1.to_string(),
        sources,
        alerts,
        reprocess: sc.reprocess,
        whitelisted: false,
        time: marshal(&at),
    })
}

/// Runs postoverflow parsers (whitelists, rdns...) on an overflow; `None` when a whitelist
/// discarded it.
pub fn postoverflow(parsers: &Parsers, ov: Overflow, mode: ExpectMode) -> Option<Overflow> {
    let mut evt = overflow_event(ov.clone(), mode);
    parsers.parse(&mut evt);
    if evt.whitelisted {
        return None;
    }
    let mut ov = ov;
    for (path, value) in std::mem::take(&mut evt.overflow_edits) {
        apply_edit(&mut ov, &path, value);
    }
    Some(ov)
}

/// Applies a postoverflow static to the overflow. `Alert.Source` is the source of the first
/// alert, which is also the entry of `Sources` it came from (CrowdSec shares them).
fn apply_edit(ov: &mut Overflow, path: &str, value: String) {
    let Some(field) = path.strip_prefix("Alert.Source.") else {
        tracing::warn!(
            path,
            "postoverflow static target under evt.Overflow is not supported"
        );
        return;
    };
    let Some(alert) = ov.alerts.first_mut() else {
        return;
    };
    let key = ov
        .sources
        .0
        .iter()
        .find(|(_, s)| **s == alert.source)
        .map(|(k, _)| k.clone());
    let set = |s: &mut Source| match field {
        "Value" => s.value = value.clone(),
        "Scope" => s.scope = value.clone(),
        "IP" => s.ip = value.clone(),
        "Range" => s.range = value.clone(),
        "AsNumber" => s.as_number = value.clone(),
        "AsName" => s.as_name = value.clone(),
        "Cn" => s.cn = value.clone(),
        _ => {}
    };
    set(&mut alert.source);
    if let Some(src) = key.and_then(|k| ov.sources.0.get_mut(&k)) {
        set(src);
    }
}

/// The event an overflow becomes (`evt.Type == overflow`, `evt.Overflow`), for postoverflows
/// and reprocessing.
pub fn overflow_event(ov: Overflow, mode: ExpectMode) -> Event {
    let mut evt = Event::default();
    evt.kind = EventType::Overflow;
    evt.expect_mode = mode;
    evt.marshaled_time = ov.time.clone();
    evt.time = DateTime::parse_from_rfc3339(&ov.time).ok();
    evt.process = true;
    evt.overflow = Some(Arc::new(ov));
    evt
}

/// The whole event and, made on first need, its slim copy: what an alert needs of it (meta,
/// enrichment, times, overflow) without the raw line and parsed fields, which are most of its
/// size. Instances of scenarios that never look into their queue keep the slim one.
pub(crate) struct EventCopies {
    full: Arc<Event>,
    slim: std::cell::OnceCell<Arc<Event>>,
}

impl EventCopies {
    pub(crate) fn new(evt: Event) -> Self {
        EventCopies {
            full: Arc::new(evt),
            slim: std::cell::OnceCell::new(),
        }
    }

    pub(crate) fn for_scenario(&self, scenarios: &Scenarios, si: u32) -> Arc<Event> {
        if scenarios.full_events(si) {
            return Arc::clone(&self.full);
        }
        Arc::clone(self.slim.get_or_init(|| Arc::new(slim(&self.full))))
    }
}

fn slim(e: &Event) -> Event {
    let mut s = Event::default();
    s.kind = e.kind;
    s.expect_mode = e.expect_mode;
    s.meta = e.meta.clone();
    s.enriched = e.enriched.clone();
    s.time = e.time;
    s.marshaled_time = e.marshaled_time.clone();
    s.overflow = e.overflow.clone();
    s.process = e.process;
    s.line.src = e.line.src.clone();
    s.line.module = e.line.module.clone();
    s.line.time = e.line.time;
    s
}

/// `queue` in conditions and overflow filters: `queue.Queue` is the event list.
#[derive(Debug)]
struct QueueView<'a>(QueueList<'a>);

/// `queue.Queue` as a list object: conditions such as `queue.Queue[-4:]` or
/// `any(queue.Queue, …)` read events in place instead of copying the whole queue at every pour
/// (unbounded conditional buckets would otherwise cost O(n) allocations per event).
#[derive(Debug)]
struct QueueList<'a>(&'a VecDeque<Arc<Event>>);

impl<'a> QueueView<'a> {
    fn new(q: &'a VecDeque<Arc<Event>>) -> Self {
        QueueView(QueueList(q))
    }
}

impl Object for QueueView<'_> {
    fn type_name(&self) -> &'static str {
        "Queue"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        match key {
            "Queue" => Some(Value::Obj(&self.0)),
            "L" => Some(Value::Int(self.0.0.len() as i64)),
            _ => None,
        }
    }
}

impl Object for QueueList<'_> {
    fn type_name(&self) -> &'static str {
        "[]types.Event"
    }
    fn get(&self, _key: &str) -> Option<Value<'_>> {
        None
    }
    fn len(&self) -> Option<usize> {
        Some(self.0.len())
    }
    fn is_list(&self) -> bool {
        true
    }
    fn index(&self, index: usize) -> Option<Value<'_>> {
        self.0.get(index).map(|e| Value::Obj(&**e as &dyn Object))
    }
    fn to_value(&self) -> Value<'static> {
        Value::list(self.0.iter().map(|e| e.to_value()).collect())
    }
}

/// `leaky` in conditions and overflow filters: the instance.
#[derive(Debug)]
struct LeakyView<'a> {
    sc: &'a Scenario,
    inst: &'a Instance,
    ovflw: Option<DateTime<FixedOffset>>,
}

fn zero_time() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z").unwrap_or_default()
}

impl Object for LeakyView<'_> {
    fn type_name(&self) -> &'static str {
        "Leaky"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(match key {
            "Name" => Value::Str(&self.sc.name),
            "Capacity" => Value::Int(self.sc.capacity),
            "Total_count" => Value::Int(i64::try_from(self.inst.total).unwrap_or(i64::MAX)),
            "First_ts" => Value::Time(self.inst.first.unwrap_or_else(zero_time)),
            "Last_ts" => Value::Time(self.inst.last.unwrap_or_else(zero_time)),
            "Ovflw_ts" => Value::Time(self.ovflw.unwrap_or_else(zero_time)),
            "Leakspeed" => Value::Duration(self.sc.leak_ns),
            "Duration" => Value::Duration(self.sc.lifetime_ns),
            "Simulated" => Value::Bool(self.sc.simulated),
            "Reprocess" => Value::Bool(self.sc.reprocess),
            _ => return None,
        })
    }
    fn missing(&self) -> Missing {
        Missing::Error
    }
}
