//! Overlapping networks as disjoint intervals, for nftables interval sets.
//!
//! An interval set refuses overlapping elements, and its `auto-merge` would fuse a /24 inside a
//! /16 into one element that can no longer be deleted on its own. So the set holds the union of a
//! origin's networks cut into disjoint pieces, each with the latest expiry among the networks
//! covering it: the kernel's own timeouts then end every piece exactly when its last covering ban
//! ends, and an edit replaces only the pieces it changes.

use std::collections::BTreeMap;

use crate::target::{Addr, Cidr};

/// Disjoint pieces: start → (end, expiry), ends inclusive.
pub(crate) type Segments<A> = BTreeMap<A, (A, u64)>;

/// Cuts `ranges` (expiries already in the future) into disjoint pieces; adjacent pieces with the
/// same expiry are joined.
pub(crate) fn segments<A: Addr>(ranges: impl Iterator<Item = (Cidr<A>, u64)>) -> Segments<A> {
    // (address, expiry, +1 start / -1 end+1)
    let mut events: Vec<(A, u64, i8)> = Vec::new();
    for (c, e) in ranges {
        events.push((c.start, e, 1));
        if let Some(after) = c.end().succ() {
            events.push((after, e, -1));
        }
    }
    events.sort_unstable_by_key(|(a, _, _)| *a);
    let mut out: Segments<A> = BTreeMap::new();
    // expiry → number of open ranges with it
    let mut open: BTreeMap<u64, u32> = BTreeMap::new();
    let mut i = 0;
    let mut last: Option<(A, A, u64)> = None;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            let (_, e, d) = events[i];
            if d > 0 {
                *open.entry(e).or_insert(0) += 1;
            } else if let Some(n) = open.get_mut(&e) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&e);
                }
            }
            i += 1;
        }
        let Some((&max, _)) = open.last_key_value() else {
            continue;
        };
        // This piece runs from `at` to the address before the next event (or the top).
        let end = match events.get(i) {
            Some((next, _, _)) => match next.pred() {
                Some(p) => p,
                None => continue,
            },
            None => at.last_of(0),
        };
        match &mut last {
            Some((_, prev_end, e)) if *e == max && prev_end.succ() == Some(at) => *prev_end = end,
            _ => {
                if let Some((s, en, e)) = last.take() {
                    out.insert(s, (en, e));
                }
                last = Some((at, end, max));
            }
        }
    }
    if let Some((s, en, e)) = last {
        out.insert(s, (en, e));
    }
    out
}

/// Pieces to delete from the kernel (in `old`, not identical in `new`, still alive at `now`)
/// and pieces to add (in `new`, not identical in `old`).
#[allow(clippy::type_complexity)]
pub(crate) fn diff<A: Addr>(
    old: &Segments<A>,
    new: &Segments<A>,
    now: u64,
) -> (Vec<(A, A)>, Vec<(A, A, u64)>) {
    let dels = old
        .iter()
        .filter(|(s, v)| v.1 > now && new.get(s) != Some(v))
        .map(|(s, (e, _))| (*s, *e))
        .collect();
    let adds = new
        .iter()
        .filter(|(s, v)| v.1 > now && old.get(s) != Some(v))
        .map(|(s, (e, x))| (*s, *e, *x))
        .collect();
    (dels, adds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(start: u32, len: u8) -> Cidr<u32> {
        Cidr { start, len }
    }

    #[test]
    fn nested_ranges_are_cut_with_the_latest_expiry() {
        // 10.0.0.0/16 until 100, 10.0.1.0/24 inside it until 200.
        let s = segments([(c(0x0a00_0000, 16), 100), (c(0x0a00_0100, 24), 200)].into_iter());
        let got: Vec<_> = s.iter().map(|(a, (b, e))| (*a, *b, *e)).collect();
        assert_eq!(
            got,
            vec![
                (0x0a00_0000, 0x0a00_00ff, 100),
                (0x0a00_0100, 0x0a00_01ff, 200),
                (0x0a00_0200, 0x0a00_ffff, 100),
            ]
        );
        // An inner range that ends first leaves the outer one whole.
        let s = segments([(c(0x0a00_0000, 16), 300), (c(0x0a00_0100, 24), 200)].into_iter());
        assert_eq!(s.len(), 1);
        // Adjacent ranges with one expiry are joined; the top of the space has no successor.
        let s = segments([(c(0xffff_ff00, 25), 5), (c(0xffff_ff80, 25), 5)].into_iter());
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![(0xffff_ff00, (u32::MAX, 5))]
        );
        let s = segments([(c(0, 0), 5)].into_iter());
        assert_eq!(s.into_iter().collect::<Vec<_>>(), vec![(0, (u32::MAX, 5))]);
    }

    #[test]
    fn diff_replaces_only_changed_pieces() {
        let old = segments([(c(0x0a00_0000, 24), 100), (c(0x0b00_0000, 24), 100)].into_iter());
        let new = segments([(c(0x0a00_0000, 24), 100), (c(0x0b00_0000, 24), 150)].into_iter());
        let (dels, adds) = diff(&old, &new, 10);
        assert_eq!(dels, vec![(0x0b00_0000, 0x0b00_00ff)]);
        assert_eq!(adds, vec![(0x0b00_0000, 0x0b00_00ff, 150)]);
        // Pieces already expired in the kernel are not deleted again.
        let (dels, adds) = diff(&old, &BTreeMap::new(), 100);
        assert!(dels.is_empty() && adds.is_empty());
    }

    fn cidr_strategy() -> impl Strategy<Value = (Cidr<u32>, u64)> {
        // A small corner of the space so that ranges nest and touch often.
        (0u32..64, 26u8..=32, 1u64..5).prop_map(|(a, len, e)| {
            let mask = u32::MAX << (32 - u32::from(len));
            let c = Cidr {
                start: (0x0a00_0000 + a) & mask,
                len,
            };
            (c, e * 10)
        })
    }

    proptest! {
        /// Every address is covered by exactly the pieces the naive model says, with the latest
        /// expiry of the ranges containing it; pieces are disjoint and ordered.
        #[test]
        fn pieces_match_a_naive_model(ranges in proptest::collection::vec(cidr_strategy(), 0..12)) {
            let s = segments(ranges.iter().copied());
            let mut prev_end: Option<u32> = None;
            for (start, (end, _)) in &s {
                prop_assert!(start <= end);
                if let Some(p) = prev_end {
                    prop_assert!(p < *start);
                }
                prev_end = Some(*end);
            }
            for addr in 0x0a00_0000u32..0x0a00_0000 + 80 {
                let want = ranges
                    .iter()
                    .filter(|(c, _)| c.start <= addr && addr <= c.end())
                    .map(|(_, e)| *e)
                    .max();
                let got = s
                    .range(..=addr)
                    .next_back()
                    .filter(|(_, (end, _))| addr <= *end)
                    .map(|(_, (_, e))| *e);
                prop_assert_eq!(got, want, "address {:#x}", addr);
            }
        }
    }
}
