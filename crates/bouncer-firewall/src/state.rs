//! What should be enforced: per decision origin and family, the banned addresses and networks
//! with the instant each ban ends. Backends turn this state (at start) and its edits (afterwards)
//! into kernel set updates.
//!
//! Expiry needs no edit: the kernel drops an element when its timeout ends, and
//! [`State::prune`] forgets it on this side.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use hashbrown::HashMap;

use crate::decision::Ban;
use crate::target::{Addr, Cidr, Target};

/// Milliseconds on a monotonic clock (wall-clock jumps must not shorten or stretch bans).
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The bans of one origin in one family.
#[derive(Debug)]
pub(crate) struct FamilySet<A> {
    /// Single addresses → expiry (ms, [`now_ms`] clock).
    pub(crate) singles: Map<A, u64>,
    /// Networks → expiry. Ordered so that backends walk them deterministically.
    pub(crate) ranges: BTreeMap<Cidr<A>, u64>,
}

impl<A> Default for FamilySet<A> {
    fn default() -> Self {
        Self {
            singles: Map::default(),
            ranges: BTreeMap::new(),
        }
    }
}

impl<A: Addr> FamilySet<A> {
    pub(crate) fn len(&self) -> usize {
        self.singles.len() + self.ranges.len()
    }

    fn put(&mut self, c: Cidr<A>, expiry: u64, edits: &mut FamilyEdits<A>) {
        if c.len == A::BITS {
            let before = self.singles.insert(c.start, expiry);
            edits.singles.entry(c.start).or_insert(before);
        } else {
            let before = self.ranges.insert(c, expiry);
            edits.ranges.entry(c).or_insert(before);
        }
    }

    fn remove(&mut self, c: Cidr<A>, edits: &mut FamilyEdits<A>) {
        if c.len == A::BITS {
            if let Some(before) = self.singles.remove(&c.start) {
                edits.singles.entry(c.start).or_insert(Some(before));
            }
        } else if let Some(before) = self.ranges.remove(&c) {
            edits.ranges.entry(c).or_insert(Some(before));
        }
    }

    fn prune(&mut self, now: u64) {
        self.singles.retain(|_, e| *e > now);
        self.ranges.retain(|_, e| *e > now);
    }
}

/// One origin's sets.
#[derive(Debug)]
pub(crate) struct OriginSets {
    pub(crate) name: String,
    pub(crate) v4: FamilySet<u32>,
    pub(crate) v6: FamilySet<u128>,
}

/// Everything to enforce. Origins keep their index for the life of the state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) origins: Vec<OriginSets>,
    index: Map<String, usize>,
}

/// A change read from the LAPI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Enforce until `expiry`.
    Put(Ban, u64),
    /// Stop enforcing.
    Remove(Ban),
}

/// What one batch of changes did to one family of one origin: for every touched element, its
/// expiry before the batch (the current value is in the state).
#[derive(Debug)]
pub(crate) struct FamilyEdits<A> {
    pub(crate) singles: Map<A, Option<u64>>,
    pub(crate) ranges: Map<Cidr<A>, Option<u64>>,
}

impl<A> Default for FamilyEdits<A> {
    fn default() -> Self {
        Self {
            singles: Map::default(),
            ranges: Map::default(),
        }
    }
}

impl<A> FamilyEdits<A> {
    pub(crate) fn is_empty(&self) -> bool {
        self.singles.is_empty() && self.ranges.is_empty()
    }
}

/// What one batch did, by origin index.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    /// Origins that appeared in this batch (their sets and rules must be created first).
    pub(crate) new_origins: Vec<usize>,
    pub(crate) v4: BTreeMap<usize, FamilyEdits<u32>>,
    pub(crate) v6: BTreeMap<usize, FamilyEdits<u128>>,
}

impl Edits {
    pub(crate) fn is_empty(&self) -> bool {
        self.new_origins.is_empty()
            && self.v4.values().all(FamilyEdits::is_empty)
            && self.v6.values().all(FamilyEdits::is_empty)
    }
}

impl State {
    fn origin(&mut self, name: &str, edits: Option<&mut Edits>) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = self.origins.len();
        self.origins.push(OriginSets {
            name: name.to_owned(),
            v4: FamilySet::default(),
            v6: FamilySet::default(),
        });
        self.index.insert(name.to_owned(), i);
        if let Some(e) = edits {
            e.new_origins.push(i);
        }
        i
    }

    /// Adds a ban while building a fresh state (no edits recorded); the longest wins.
    pub(crate) fn insert(&mut self, ban: &Ban, expiry: u64) {
        let i = self.origin(&ban.origin, None);
        let o = &mut self.origins[i];
        match ban.target {
            Target::V4(c) => insert_longest(&mut o.v4, c, expiry),
            Target::V6(c) => insert_longest(&mut o.v6, c, expiry),
        }
    }

    /// Applies a batch in order and says what changed. Within a batch, several `Put`s of one
    /// target keep the longest (what CrowdSec's bouncer does with duplicates); a `Put` after a
    /// `Remove` re-adds.
    pub(crate) fn apply(&mut self, changes: &[Change]) -> Edits {
        let mut edits = Edits::default();
        let mut put_in_batch: Map<(usize, Target), u64> = Map::default();
        for ch in changes {
            match ch {
                Change::Put(ban, expiry) => {
                    let i = self.origin(&ban.origin, Some(&mut edits));
                    let key = (i, ban.target);
                    let expiry = match put_in_batch.get(&key) {
                        Some(e) if *e >= *expiry => continue,
                        _ => *expiry,
                    };
                    put_in_batch.insert(key, expiry);
                    let o = &mut self.origins[i];
                    match ban.target {
                        Target::V4(c) => o.v4.put(c, expiry, edits.v4.entry(i).or_default()),
                        Target::V6(c) => o.v6.put(c, expiry, edits.v6.entry(i).or_default()),
                    }
                }
                Change::Remove(ban) => {
                    let Some(&i) = self.index.get(&ban.origin) else {
                        continue;
                    };
                    put_in_batch.remove(&(i, ban.target));
                    let o = &mut self.origins[i];
                    match ban.target {
                        Target::V4(c) => o.v4.remove(c, edits.v4.entry(i).or_default()),
                        Target::V6(c) => o.v6.remove(c, edits.v6.entry(i).or_default()),
                    }
                }
            }
        }
        edits
    }

    /// Forgets bans whose time is over (the kernel has already dropped them).
    pub(crate) fn prune(&mut self, now: u64) {
        for o in &mut self.origins {
            o.v4.prune(now);
            o.v6.prune(now);
        }
    }

    /// Number of held bans per origin name and family label.
    pub(crate) fn held(&self) -> Vec<(String, &'static str, usize)> {
        let mut out = Vec::new();
        for o in &self.origins {
            out.push((o.name.clone(), u32::LABEL, o.v4.len()));
            out.push((o.name.clone(), u128::LABEL, o.v6.len()));
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.origins.iter().map(|o| o.v4.len() + o.v6.len()).sum()
    }
}

fn insert_longest<A: Addr>(f: &mut FamilySet<A>, c: Cidr<A>, expiry: u64) {
    let slot = if c.len == A::BITS {
        f.singles.entry(c.start).or_insert(0)
    } else {
        f.ranges.entry(c).or_insert(0)
    };
    *slot = (*slot).max(expiry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(origin: &str, value: &str) -> Ban {
        Ban {
            origin: origin.into(),
            target: Target::parse(value).unwrap_or(Target::V4(Cidr { start: 0, len: 0 })),
            left_ms: 0,
        }
    }

    #[test]
    fn edits_record_the_value_before_the_batch() {
        let mut s = State::default();
        s.insert(&ban("crowdsec", "192.0.2.1"), 100);
        s.insert(&ban("crowdsec", "192.0.2.1"), 50);
        assert_eq!(s.origins[0].v4.singles.get(&0xc000_0201), Some(&100));
        let e = s.apply(&[
            Change::Remove(ban("crowdsec", "192.0.2.1")),
            Change::Put(ban("crowdsec", "192.0.2.1"), 70),
            Change::Put(ban("crowdsec", "192.0.2.1"), 60),
            Change::Put(ban("cscli", "2001:db8::/64"), 80),
            Change::Remove(ban("unknown", "192.0.2.9")),
        ]);
        assert_eq!(e.new_origins, vec![1]);
        assert_eq!(s.origins[0].v4.singles.get(&0xc000_0201), Some(&70));
        assert_eq!(
            e.v4.get(&0).and_then(|f| f.singles.get(&0xc000_0201)),
            Some(&Some(100))
        );
        assert_eq!(s.origins[1].v6.ranges.len(), 1);
        assert_eq!(s.len(), 2);
        s.prune(75);
        assert_eq!(s.len(), 1);
        assert!(s.apply(&[]).is_empty());
    }
}
