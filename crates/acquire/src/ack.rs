//! Acknowledgements and per-source watermarks.
//!
//! A source numbers its lines in reading order and records, for each, the position to persist
//! once it and every line before it are done. Workers finish lines in any order; the watermark
//! only moves over a contiguous run of done lines.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Receives the outcome of one tracked line.
pub(crate) trait AckSink: Send + Sync {
    fn done(&self, seq: u64);
    fn abandon(&self, seq: u64);
}

/// Completion handle of one [`crate::Line`].
///
/// Call [`Ack::done`] when the line is fully processed (parsed and poured, or deliberately
/// ignored). An `Ack` dropped without `done` means "not processed": the source's persisted
/// position stops before that line, so it is read again after a restart.
pub struct Ack {
    inner: Option<(Arc<dyn AckSink>, u64)>,
}

impl Ack {
    /// An acknowledgement that tracks nothing (syslog, stdin, one-shot reads).
    pub fn noop() -> Ack {
        Ack { inner: None }
    }

    pub(crate) fn tracked(sink: Arc<dyn AckSink>, seq: u64) -> Ack {
        Ack {
            inner: Some((sink, seq)),
        }
    }

    /// Whether this acknowledgement moves a persisted position.
    pub fn is_tracked(&self) -> bool {
        self.inner.is_some()
    }

    /// Marks the line fully processed.
    pub fn done(mut self) {
        if let Some((sink, seq)) = self.inner.take() {
            sink.done(seq);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some((sink, seq)) = self.inner.take() {
            sink.abandon(seq);
        }
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some((_, seq)) => write!(f, "Ack({seq})"),
            None => f.write_str("Ack(noop)"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Live,
    Done,
    Abandoned,
}

struct Slot<P> {
    state: SlotState,
    pos: P,
}

struct Inner<P> {
    /// Sequence number of `slots[0]`.
    base: u64,
    slots: VecDeque<Slot<P>>,
    committed: P,
    live: usize,
    warned: bool,
    /// An abandoned line reached the front: the watermark cannot move again in this run, so
    /// only the sequence numbers of live lines are kept (memory stays bounded).
    stuck: Option<HashSet<u64>>,
    /// Next sequence number once stuck.
    next: u64,
}

/// The watermark of one source (one file content, one journal reader).
pub(crate) struct Tracker<P> {
    inner: Mutex<Inner<P>>,
    dirty: Arc<AtomicBool>,
    name: String,
}

impl<P: Clone + Send + 'static> Tracker<P> {
    pub(crate) fn new(committed: P, dirty: Arc<AtomicBool>, name: String) -> Arc<Self> {
        Arc::new(Tracker {
            inner: Mutex::new(Inner {
                base: 0,
                slots: VecDeque::new(),
                committed,
                live: 0,
                warned: false,
                stuck: None,
                next: 0,
            }),
            dirty,
            name,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<P>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a line that ends at `pos` and returns its acknowledgement.
    pub(crate) fn push(self: &Arc<Self>, pos: P) -> Ack {
        let seq = {
            let mut inner = self.lock();
            inner.live += 1;
            let seq = inner.next;
            inner.next += 1;
            match &mut inner.stuck {
                Some(live) => {
                    live.insert(seq);
                }
                None => inner.slots.push_back(Slot {
                    state: SlotState::Live,
                    pos,
                }),
            }
            seq
        };
        Ack::tracked(self.clone(), seq)
    }

    /// Moves the position without a line (skipped empty lines): committed at once when nothing
    /// is pending, else together with the last pending line.
    pub(crate) fn advance(&self, pos: P) {
        let mut inner = self.lock();
        if inner.stuck.is_some() {
            return;
        }
        match inner.slots.back_mut() {
            Some(slot) => slot.pos = pos,
            None => {
                inner.committed = pos;
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The persisted-to-be position: end of the last contiguous done line.
    pub(crate) fn committed(&self) -> P {
        self.lock().committed.clone()
    }

    /// Lines handed out and neither done nor dropped yet.
    pub(crate) fn live(&self) -> usize {
        self.lock().live
    }

    fn settle(&self, seq: u64, state: SlotState) {
        let mut inner = self.lock();
        if let Some(live) = &mut inner.stuck {
            if live.remove(&seq) {
                inner.live -= 1;
            }
            return;
        }
        let Some(idx) = seq.checked_sub(inner.base) else {
            return;
        };
        let Ok(idx) = usize::try_from(idx) else {
            return;
        };
        let Some(slot) = inner.slots.get_mut(idx) else {
            return;
        };
        if slot.state != SlotState::Live {
            return;
        }
        slot.state = state;
        inner.live -= 1;
        if state == SlotState::Abandoned && !inner.warned {
            inner.warned = true;
            tracing::debug!(
                source = %self.name,
                "a line was dropped before it was processed: its position is not saved, it will be read again after a restart"
            );
        }
        let mut moved = false;
        while inner
            .slots
            .front()
            .is_some_and(|s| s.state == SlotState::Done)
        {
            if let Some(slot) = inner.slots.pop_front() {
                inner.committed = slot.pos;
                inner.base += 1;
                moved = true;
            }
        }
        if moved {
            self.dirty.store(true, Ordering::Relaxed);
        }
        if inner
            .slots
            .front()
            .is_some_and(|s| s.state == SlotState::Abandoned)
        {
            let base = inner.base;
            let live: HashSet<u64> = (base..)
                .zip(inner.slots.iter())
                .filter(|(_, s)| s.state == SlotState::Live)
                .map(|(seq, _)| seq)
                .collect();
            inner.slots.clear();
            inner.stuck = Some(live);
        }
    }
}

impl<P: Clone + Send + 'static> AckSink for Tracker<P> {
    fn done(&self, seq: u64) {
        self.settle(seq, SlotState::Done);
    }

    fn abandon(&self, seq: u64) {
        self.settle(seq, SlotState::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_moves_over_contiguous_done_lines_only() {
        let dirty = Arc::new(AtomicBool::new(false));
        let t = Tracker::new(0u64, dirty.clone(), "t".into());
        let a = t.push(10);
        let b = t.push(20);
        let c = t.push(30);
        assert_eq!(t.live(), 3);
        c.done();
        assert_eq!(t.committed(), 0);
        a.done();
        assert_eq!(t.committed(), 10);
        assert!(dirty.load(Ordering::Relaxed));
        t.advance(35);
        b.done();
        assert_eq!(t.committed(), 35);
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn a_dropped_ack_holds_the_watermark() {
        let t = Tracker::new(0u64, Arc::new(AtomicBool::new(false)), "t".into());
        let a = t.push(10);
        let b = t.push(20);
        drop(a);
        b.done();
        assert_eq!(t.committed(), 0);
        assert_eq!(t.live(), 0);
        t.advance(25);
        assert_eq!(t.committed(), 0);
        let c = t.push(30);
        assert_eq!(t.live(), 1);
        c.done();
        assert_eq!(t.live(), 0);
        assert_eq!(t.committed(), 0);
    }

    #[test]
    fn advance_with_nothing_pending_commits() {
        let t = Tracker::new(0u64, Arc::new(AtomicBool::new(false)), "t".into());
        t.advance(7);
        assert_eq!(t.committed(), 7);
        Ack::noop().done();
    }
}
