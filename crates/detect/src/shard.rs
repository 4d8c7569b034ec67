//! Buckets sharded across threads by (scenario, groupby): routing (filters, groupby) runs on
//! the caller's thread, each instance lives on exactly one shard, and a shard's queue is FIFO,
//! so the events of one instance are poured in order while different sources go in parallel.
//! Queues are bounded: a burst blocks the caller (back-pressure) instead of growing memory.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use chrono::{DateTime, FixedOffset, Utc};
use parse::Event;

use crate::engine::{Detector, Stats};
use crate::overflow::Overflow;
use crate::scenario::{Routed, Scenarios};

/// One routed event for a shard: its instance, the event, the wall clock when it arrived.
type Item = (Routed, Arc<Event>, DateTime<FixedOffset>);

enum Msg {
    /// Events for this shard, in order: handing them over in batches keeps thread wake-ups
    /// (futex calls) off the per-event path.
    Pour(Vec<Item>),
    Tick(DateTime<FixedOffset>),
    /// Answered once everything sent before it is processed and its overflows are out.
    Sync(SyncSender<()>),
    /// Answered with a snapshot of the shard's counters, live instances included.
    Stats(SyncSender<Stats>),
}

/// Events buffered per shard before they are handed over.
const SEND_BATCH: usize = 256;

/// A set of detector threads fed by [`ShardedDetector::pour`].
#[derive(Debug)]
pub struct ShardedDetector {
    scenarios: Arc<Scenarios>,
    senders: Vec<SyncSender<Msg>>,
    handles: Vec<JoinHandle<Detector>>,
    overflows: Receiver<Overflow>,
    candidates: Vec<u32>,
    routed: Vec<Routed>,
    per_shard: Vec<Vec<Item>>,
    poured_events: u64,
    unpoured_events: u64,
    last_routed: Vec<u32>,
}

impl ShardedDetector {
    /// Starts `threads` shards (at least one), each with a queue of `depth` events.
    pub fn new(scenarios: Arc<Scenarios>, threads: usize, depth: usize) -> Self {
        Self::with_detectors(
            scenarios.clone(),
            (0..threads.max(1))
                .map(|_| Detector::new(scenarios.clone()))
                .collect(),
            depth,
        )
    }

    /// Starts one shard per given detector (e.g. restored from saved state with
    /// saved state).
    pub fn with_detectors(
        scenarios: Arc<Scenarios>,
        detectors: Vec<Detector>,
        depth: usize,
    ) -> Self {
        // Unbounded on purpose: a shard must never wait for the caller to drain overflows
        // while the caller waits for room in that shard's queue. Overflows are bounded by the
        // events poured, which the input queues bound.
        let (ov_tx, ov_rx) = channel::<Overflow>();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for (i, mut det) in detectors.into_iter().enumerate() {
            let (tx, rx) = sync_channel::<Msg>(depth.max(1));
            let ov_tx = ov_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("buckets-{i}"))
                .spawn(move || {
                    let mut out = Vec::new();
                    for msg in rx {
                        match msg {
                            Msg::Pour(batch) => {
                                for (r, evt, now) in batch {
                                    det.pour_routed(r, &evt, now, &mut out);
                                }
                            }
                            Msg::Tick(now) => det.tick(now, &mut out),
                            Msg::Stats(reply) => {
                                let _ = reply.send(det.stats_snapshot());
                                continue;
                            }
                            Msg::Sync(done) => {
                                for o in out.drain(..) {
                                    let _ = ov_tx.send(o);
                                }
                                let _ = done.send(());
                                continue;
                            }
                        }
                        for o in out.drain(..) {
                            // The receiver is gone only when the owner shut down.
                            if ov_tx.send(o).is_err() {
                                break;
                            }
                        }
                    }
                    det
                });
            match h {
                Ok(h) => {
                    senders.push(tx);
                    handles.push(h);
                }
                Err(e) => tracing::error!(error = %e, "cannot start a bucket thread"),
            }
        }
        let n = senders.len();
        ShardedDetector {
            scenarios,
            senders,
            handles,
            overflows: ov_rx,
            candidates: Vec::new(),
            routed: Vec::new(),
            per_shard: vec![Vec::new(); n],
            poured_events: 0,
            unpoured_events: 0,
            last_routed: Vec::new(),
        }
    }

    /// Shard owning an instance.
    pub fn shard_of(scenario: u32, group: &str, shards: usize) -> usize {
        let mut h = DefaultHasher::new();
        (scenario, group).hash(&mut h);
        (h.finish() % shards.max(1) as u64) as usize
    }

    /// Routes an event and hands it to the shards owning its instances (blocking when their
    /// queues are full). Overflows arrive on [`ShardedDetector::overflows`].
    pub fn pour(&mut self, evt: Event) -> bool {
        self.pour_at(evt, Utc::now().fixed_offset())
    }

    /// Scenario indexes the last poured event was routed to (for per-source pour counts).
    pub fn last_routed(&self) -> &[u32] {
        &self.last_routed
    }

    /// [`ShardedDetector::pour`] with an explicit wall clock.
    pub fn pour_at(&mut self, evt: Event, now: DateTime<FixedOffset>) -> bool {
        let n = self.senders.len();
        if n == 0 {
            return false;
        }
        self.scenarios
            .route(&evt, now, &mut self.candidates, &mut self.routed);
        self.last_routed.clear();
        self.last_routed
            .extend(self.routed.iter().map(|r| r.scenario));
        if self.routed.is_empty() {
            self.unpoured_events += 1;
            return false;
        }
        self.poured_events += 1;
        let mut evt = evt;
        evt.apply_pending();
        let events = crate::engine::EventCopies::new(evt);
        let mut routed = std::mem::take(&mut self.routed);
        for r in routed.drain(..) {
            let s = Self::shard_of(r.scenario, &r.group, n);
            let e = events.for_scenario(&self.scenarios, r.scenario);
            self.per_shard[s].push((r, e, now));
            if self.per_shard[s].len() >= SEND_BATCH {
                self.send(s);
            }
        }
        self.routed = routed;
        true
    }

    fn send(&mut self, s: usize) {
        let batch = std::mem::take(&mut self.per_shard[s]);
        if !batch.is_empty() && self.senders[s].send(Msg::Pour(batch)).is_err() {
            tracing::error!(shard = s, "bucket thread is gone");
        }
    }

    /// Hands every buffered event to its shard. Live callers flush after each read burst so
    /// that an attack is detected within milliseconds, not when a batch fills.
    pub fn flush(&mut self) {
        for s in 0..self.per_shard.len() {
            self.send(s);
        }
    }

    /// Fires wall-clock timers on every shard (after handing over buffered events).
    pub fn tick(&mut self, now: DateTime<FixedOffset>) {
        self.flush();
        for tx in &self.senders {
            let _ = tx.send(Msg::Tick(now));
        }
    }

    /// Waits until every shard has processed all events handed to it, so that
    /// [`ShardedDetector::overflows`] holds everything they caused. Replays call it at batch
    /// boundaries to stay deterministic (reprocessed overflows re-enter at a fixed point).
    pub fn sync(&mut self) {
        self.flush();
        let (tx, rx) = sync_channel::<()>(self.senders.len());
        let mut waiting = 0;
        for s in &self.senders {
            if s.send(Msg::Sync(tx.clone())).is_ok() {
                waiting += 1;
            }
        }
        drop(tx);
        for _ in 0..waiting {
            if rx.recv().is_err() {
                break;
            }
        }
    }

    /// Counters summed over the shards, with live instances per scenario. Each shard answers
    /// between two batches, so this costs one pass over the instances, not a pause per event.
    pub fn stats(&mut self) -> Stats {
        let (tx, rx) = sync_channel::<Stats>(self.senders.len());
        let mut asked = 0;
        for s in &self.senders {
            if s.send(Msg::Stats(tx.clone())).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let mut total = Stats::default();
        for _ in 0..asked {
            match rx.recv() {
                Ok(st) => add_stats(&mut total, &st),
                Err(_) => break,
            }
        }
        total
    }

    /// Overflows produced so far (drain it regularly: shards block when it is full).
    pub fn overflows(&self) -> &Receiver<Overflow> {
        &self.overflows
    }

    /// Stops the shards once their queues are drained; returns the overflows still pending and
    /// the detectors (for stats and state saving).
    pub fn shutdown(mut self) -> (Vec<Overflow>, Vec<Detector>) {
        self.flush();
        let ShardedDetector {
            senders,
            handles,
            overflows,
            ..
        } = self;
        drop(senders);
        let mut pending = Vec::new();
        let mut detectors = Vec::new();
        for h in handles {
            match h.join() {
                Ok(d) => detectors.push(d),
                Err(_) => tracing::error!("a bucket thread panicked; its instances are lost"),
            }
        }
        pending.extend(overflows.try_iter());
        (pending, detectors)
    }

    /// Events routed to at least one scenario, and to none.
    pub fn event_counts(&self) -> (u64, u64) {
        (self.poured_events, self.unpoured_events)
    }
}

/// Sums the per-scenario counters of several shards.
pub fn merge_stats(detectors: &[Detector]) -> Stats {
    let mut total = Stats::default();
    for d in detectors {
        add_stats(&mut total, d.stats());
    }
    total
}

fn add_stats(total: &mut Stats, s: &Stats) {
    total.poured_events += s.poured_events;
    total.unpoured_events += s.unpoured_events;
    total.runtime_errors += s.runtime_errors;
    for (dst, src) in [
        (&mut total.poured, &s.poured),
        (&mut total.overflowed, &s.overflowed),
        (&mut total.underflowed, &s.underflowed),
        (&mut total.canceled, &s.canceled),
        (&mut total.instantiated, &s.instantiated),
        (&mut total.live, &s.live),
    ] {
        if dst.len() < src.len() {
            dst.resize(src.len(), 0);
        }
        for (d, v) in dst.iter_mut().zip(src) {
            *d += v;
        }
    }
}
