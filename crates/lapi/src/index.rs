//! Decisions held in memory: what bouncers read never touches the database.
//!
//! * Exact IPv4/IPv6 addresses are hash-map keys; CIDR ranges are keyed by (prefix length,
//!   network) with a count per prefix length, so "which ranges contain this IP" costs one probe
//!   per prefix length actually in use (usually one to three).
//! * Every change (a decision became active, expired, or was deleted) is appended to a change log
//!   with a sequence number. A bouncer's stream position is a sequence number, so a poll costs
//!   O(changes since its last poll) and can never skip a change the way a timestamp cursor can.
//! * Decisions with the same (scope, type, value) form a group; bouncers are told about the
//!   group's longest active decision only (CrowdSec's "dedup"), and when that one ends early the
//!   next-longest is sent as new instead of the target silently staying unbanned.
//!
//! Expired decisions stay for `retention` so that `deleted` can list them, then are evicted.

use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;

use hashbrown::HashMap;
use model::IpRange;
use store::StoredDecision;

/// Interned string id (scopes, types, origins and scenarios repeat across millions of rows).
pub type Sym = u32;

#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
    /// Each name as a JSON string literal, escaped once instead of per rendered decision.
    json: Vec<Box<str>>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = Sym::try_from(self.names.len()).unwrap_or(Sym::MAX);
        self.names.push(s.into());
        self.json.push(
            serde_json::to_string(s)
                .unwrap_or_else(|_| "\"\"".into())
                .into(),
        );
        self.ids.insert(s.into(), id);
        id
    }
    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }
    pub(crate) fn name(&self, id: Sym) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }
    pub(crate) fn json(&self, id: Sym) -> &str {
        self.json.get(id as usize).map_or("\"\"", |s| s)
    }
}

/// What a decision applies to, stored compactly (an IP needs no string).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One IPv4 address.
    V4(u32),
    /// One IPv6 address.
    V6(u128),
    /// An IPv4 network (address, prefix length).
    Net4(u32, u8),
    /// An IPv6 network.
    Net6(u128, u8),
    /// Any other scope's value.
    Other(Box<str>),
}

impl Target {
    fn new(value: &str, range: Option<IpRange>) -> Self {
        match range {
            Some(IpRange::V4(a, b)) if a == b => Self::V4(a),
            Some(IpRange::V6(a, b)) if a == b => Self::V6(a),
            Some(IpRange::V4(a, b)) => {
                Self::Net4(a, (32 - (b - a).wrapping_add(1).trailing_zeros()) as u8)
            }
            Some(IpRange::V6(a, b)) => {
                let size = (b - a).wrapping_add(1);
                let len = if size == 0 {
                    0
                } else {
                    128 - size.trailing_zeros()
                };
                Self::Net6(a, len as u8)
            }
            None => Self::Other(value.into()),
        }
    }

    /// The value as the API shows it.
    pub fn write_value(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            Self::V4(a) => write!(out, "{}", std::net::Ipv4Addr::from(*a)),
            Self::V6(a) => write!(out, "{}", std::net::Ipv6Addr::from(*a)),
            Self::Net4(a, l) => write!(out, "{}/{l}", std::net::Ipv4Addr::from(*a)),
            Self::Net6(a, l) => write!(out, "{}/{l}", std::net::Ipv6Addr::from(*a)),
            Self::Other(s) => {
                out.push_str(s);
                Ok(())
            }
        };
    }

    /// The address interval, for IP targets.
    pub fn range(&self) -> Option<IpRange> {
        Some(match *self {
            Self::V4(a) => IpRange::V4(a, a),
            Self::V6(a) => IpRange::V6(a, a),
            Self::Net4(a, l) => {
                IpRange::V4(a, a | (u32::MAX.checked_shr(u32::from(l)).unwrap_or(0)))
            }
            Self::Net6(a, l) => {
                IpRange::V6(a, a | (u128::MAX.checked_shr(u32::from(l)).unwrap_or(0)))
            }
            Self::Other(_) => return None,
        })
    }
}

/// One decision in memory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Database id.
    pub id: i64,
    /// Created (ms).
    pub created_at: i64,
    /// Expiry (ms).
    pub until: i64,
    /// Scope.
    pub scope: Sym,
    /// Type.
    pub kind: Sym,
    /// Origin.
    pub origin: Sym,
    /// Scenario.
    pub scenario: Sym,
    /// Target.
    pub target: Target,
    /// UUID.
    pub uuid: u128,
    /// Simulation mode.
    pub simulated: bool,
    group: u64,
}

/// A set of decision ids, with no allocation for the common single one.
#[derive(Debug, Clone)]
enum Ids {
    One(i64),
    // Boxed so that an id set is 16 bytes, not 32: most targets have a single decision, and at a
    // million decisions the two maps of id sets shrink by ~30 MB.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<i64>>),
}

impl Ids {
    fn push(&mut self, id: i64) {
        match self {
            Self::One(a) => *self = Self::Many(Box::new(vec![*a, id])),
            Self::Many(v) => v.push(id),
        }
    }
    /// Removes `id`; true when the set became empty.
    fn remove(&mut self, id: i64) -> bool {
        match self {
            Self::One(a) => *a == id,
            Self::Many(v) => {
                v.retain(|x| *x != id);
                if let [only] = v.as_slice() {
                    let only = *only;
                    *self = Self::One(only);
                    return false;
                }
                v.is_empty()
            }
        }
    }
    fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        let (one, many) = match self {
            Self::One(a) => (Some(*a), &[][..]),
            Self::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().copied())
    }
}

fn add<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Ids>, k: K, id: i64) {
    match map.get_mut(&k) {
        Some(ids) => ids.push(id),
        None => {
            map.insert(k, Ids::One(id));
        }
    }
}

fn del<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Ids>, k: &K, id: i64) {
    if let Some(ids) = map.get_mut(k)
        && ids.remove(id)
    {
        map.remove(k);
    }
}

/// Decisions by id in a slab: entries sit in one `Vec` (no per-slot hash-map overhead, which at
/// a million decisions is the difference between ~100 and ~250 bytes each) and a small id → slot
/// map finds them.
#[derive(Debug, Default)]
struct EntryMap {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_id: HashMap<i64, u32>,
}

impl EntryMap {
    fn get(&self, id: &i64) -> Option<&Entry> {
        let slot = *self.by_id.get(id)?;
        self.slots.get(slot as usize)?.as_ref()
    }
    fn get_mut(&mut self, id: &i64) -> Option<&mut Entry> {
        let slot = *self.by_id.get(id)?;
        self.slots.get_mut(slot as usize)?.as_mut()
    }
    fn insert(&mut self, id: i64, e: Entry) {
        if let Some(old) = self.get_mut(&id) {
            *old = e;
            return;
        }
        let slot = match self.free.pop() {
            Some(f) => {
                self.slots[f as usize] = Some(e);
                f
            }
            None => {
                self.slots.push(Some(e));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_id.insert(id, slot);
    }
    fn remove(&mut self, id: &i64) -> Option<Entry> {
        let slot = self.by_id.remove(id)?;
        let e = self.slots.get_mut(slot as usize)?.take();
        self.free.push(slot);
        e
    }
    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }
}

/// One change-log record.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// Position in the log.
    pub seq: u64,
    /// When it happened (ms).
    pub at: i64,
    /// The decision.
    pub id: i64,
}

/// What a bouncer asked to see (`scopes`, `origins`, `scenarios_containing`...).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Scopes (normalised); empty = any.
    pub scopes: Vec<String>,
    /// Origins; empty = any.
    pub origins: Vec<String>,
    /// Types; empty = any.
    pub types: Vec<String>,
    /// Exact value.
    pub value: Option<String>,
    /// Lower-cased words, one of which the scenario must contain.
    pub scenarios_containing: Vec<String>,
    /// Lower-cased words none of which the scenario may contain.
    pub scenarios_not_containing: Vec<String>,
    /// Include simulated decisions.
    pub simulated: bool,
}

impl Filter {
    /// The same test on a database row (decisions the index no longer holds).
    pub fn matches_stored(&self, d: &StoredDecision) -> bool {
        let has = |set: &[String], v: &str| set.is_empty() || set.iter().any(|s| s == v);
        if (d.simulated && !self.simulated)
            || !has(&self.scopes, &d.scope)
            || !has(&self.origins, &d.origin)
            || !has(&self.types, &d.kind)
        {
            return false;
        }
        if self.value.as_ref().is_some_and(|v| *v != d.value) {
            return false;
        }
        let sc = d.scenario.to_lowercase();
        if !self.scenarios_containing.is_empty()
            && !self
                .scenarios_containing
                .iter()
                .any(|w| sc.contains(w.as_str()))
        {
            return false;
        }
        !self
            .scenarios_not_containing
            .iter()
            .any(|w| sc.contains(w.as_str()))
    }
}

/// A filter with names resolved to symbols once per request.
pub(crate) struct Resolved<'f> {
    scopes: Option<Vec<Sym>>,
    origins: Option<Vec<Sym>>,
    types: Option<Vec<Sym>>,
    f: &'f Filter,
}

/// Matches no symbol (a name never interned cannot match any entry).
const NO_SYM: Sym = Sym::MAX;

impl Inner {
    pub(crate) fn resolve<'f>(&self, f: &'f Filter) -> Resolved<'f> {
        let r = |names: &[String]| {
            (!names.is_empty()).then(|| {
                names
                    .iter()
                    .map(|n| self.syms.get(n).unwrap_or(NO_SYM))
                    .collect()
            })
        };
        Resolved {
            scopes: r(&f.scopes),
            origins: r(&f.origins),
            types: r(&f.types),
            f,
        }
    }
}

impl Resolved<'_> {
    pub(crate) fn matches(&self, e: &Entry, syms: &Interner) -> bool {
        if e.simulated && !self.f.simulated {
            return false;
        }
        let has = |set: &Option<Vec<Sym>>, s: Sym| set.as_ref().is_none_or(|v| v.contains(&s));
        if !has(&self.scopes, e.scope) || !has(&self.origins, e.origin) || !has(&self.types, e.kind)
        {
            return false;
        }
        if let Some(v) = &self.f.value {
            let mut s = String::new();
            e.target.write_value(&mut s);
            if &s != v {
                return false;
            }
        }
        if !self.f.scenarios_containing.is_empty() || !self.f.scenarios_not_containing.is_empty() {
            let sc = syms.name(e.scenario).to_lowercase();
            if !self.f.scenarios_containing.is_empty()
                && !self
                    .f
                    .scenarios_containing
                    .iter()
                    .any(|w| sc.contains(w.as_str()))
            {
                return false;
            }
            if self
                .f
                .scenarios_not_containing
                .iter()
                .any(|w| sc.contains(w.as_str()))
            {
                return false;
            }
        }
        true
    }
}

/// The index proper; the LAPI wraps it in a lock.
#[derive(Debug)]
pub struct Inner {
    pub(crate) syms: Interner,
    entries: EntryMap,
    v4: HashMap<u32, Ids>,
    v6: HashMap<u128, Ids>,
    nets4: HashMap<(u8, u32), Ids>,
    len4: Vec<u32>,
    nets6: HashMap<(u8, u128), Ids>,
    len6: Vec<u32>,
    groups: HashMap<u64, Ids>,
    active: BTreeSet<(i64, i64)>,
    expired: BTreeSet<(i64, i64)>,
    log: VecDeque<Change>,
    seq: u64,
    hasher: foldhash::fast::RandomState,
    retention_ms: i64,
}

impl Inner {
    /// An empty index keeping expired decisions for `retention_ms`.
    pub fn new(retention_ms: i64) -> Self {
        Self {
            syms: Interner::default(),
            entries: EntryMap::default(),
            v4: HashMap::new(),
            v6: HashMap::new(),
            nets4: HashMap::new(),
            len4: vec![0; 33],
            nets6: HashMap::new(),
            len6: vec![0; 129],
            groups: HashMap::new(),
            active: BTreeSet::new(),
            expired: BTreeSet::new(),
            log: VecDeque::new(),
            seq: 0,
            hasher: foldhash::fast::RandomState::default(),
            retention_ms,
        }
    }

    /// Current log position: a bouncer that has seen up to here has seen everything.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of active decisions.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// A decision by id.
    pub fn get(&self, id: i64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    fn group_key(&self, scope: Sym, kind: Sym, target: &Target) -> u64 {
        self.hasher.hash_one((scope, kind, target))
    }

    fn log(&mut self, id: i64, at: i64) {
        self.seq += 1;
        self.log.push_back(Change {
            seq: self.seq,
            at,
            id,
        });
    }

    /// Adds (or updates) a decision from the database.
    pub fn upsert(&mut self, d: &StoredDecision, now: i64) {
        if let Some(e) = self.entries.get(&d.id) {
            if e.until != d.until {
                self.set_until(d.id, d.until, now);
            }
            return;
        }
        let scope = self.syms.intern(&d.scope);
        let kind = self.syms.intern(&d.kind);
        let origin = self.syms.intern(&d.origin);
        let scenario = self.syms.intern(&d.scenario);
        let target = Target::new(
            &d.value,
            d.range
                .filter(|_| d.scope == model::scope::IP || d.scope == model::scope::RANGE),
        );
        let group = self.group_key(scope, kind, &target);
        let uuid = uuid::Uuid::parse_str(&d.uuid).map_or(0, |u| u.as_u128());
        let e = Entry {
            id: d.id,
            created_at: d.created_at,
            until: d.until,
            scope,
            kind,
            origin,
            scenario,
            target,
            uuid,
            simulated: d.simulated,
            group,
        };
        add(&mut self.groups, group, d.id);
        if d.until > now {
            self.link(&e);
            self.active.insert((d.until, d.id));
            self.log(d.id, now);
        } else {
            self.expired.insert((d.until, d.id));
        }
        self.entries.insert(d.id, e);
    }

    fn link(&mut self, e: &Entry) {
        match e.target {
            Target::V4(a) => add(&mut self.v4, a, e.id),
            Target::V6(a) => add(&mut self.v6, a, e.id),
            Target::Net4(a, l) => {
                add(&mut self.nets4, (l, a), e.id);
                self.len4[usize::from(l)] += 1;
            }
            Target::Net6(a, l) => {
                add(&mut self.nets6, (l, a), e.id);
                self.len6[usize::from(l)] += 1;
            }
            Target::Other(_) => {}
        }
    }

    fn unlink(&mut self, id: i64) {
        let Some(e) = self.entries.get(&id) else {
            return;
        };
        match e.target {
            Target::V4(a) => del(&mut self.v4, &a, id),
            Target::V6(a) => del(&mut self.v6, &a, id),
            Target::Net4(a, l) => {
                del(&mut self.nets4, &(l, a), id);
                self.len4[usize::from(l)] -= 1;
            }
            Target::Net6(a, l) => {
                del(&mut self.nets6, &(l, a), id);
                self.len6[usize::from(l)] -= 1;
            }
            Target::Other(_) => {}
        }
    }

    /// Changes a decision's expiry (deletion sets it to now).
    pub fn set_until(&mut self, id: i64, until: i64, now: i64) {
        let Some(old) = self.entries.get(&id).map(|e| e.until) else {
            return;
        };
        let was_active = self.active.remove(&(old, id));
        if !was_active {
            self.expired.remove(&(old, id));
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.until = until;
        }
        if until > now {
            if !was_active {
                let e = self.entries.get(&id).cloned();
                if let Some(e) = e {
                    self.link(&e);
                }
            }
            self.active.insert((until, id));
        } else {
            if was_active {
                self.unlink(id);
            }
            self.expired.insert((until, id));
        }
        self.log(id, now);
    }

    /// Moves decisions whose time is up to the expired set (logging each) and evicts expired
    /// ones older than the retention. Cheap when nothing is due.
    pub fn expire_due(&mut self, now: i64) {
        while let Some(&(until, id)) = self.active.first() {
            if until > now {
                break;
            }
            self.active.pop_first();
            self.unlink(id);
            self.expired.insert((until, id));
            self.log(id, now);
        }
        let horizon = now - self.retention_ms;
        while let Some(&(until, id)) = self.expired.first() {
            if until > horizon {
                break;
            }
            self.expired.pop_first();
            if let Some(e) = self.entries.remove(&id) {
                del(&mut self.groups, &e.group, id);
            }
        }
        while let Some(c) = self.log.front() {
            if c.at > horizon {
                break;
            }
            self.log.pop_front();
        }
    }

    /// Expired decisions that ended at or before this time (ms) are no longer held.
    pub fn horizon(&self, now: i64) -> i64 {
        now - self.retention_ms
    }

    /// Whether the index holds any decision for the same (scope, type, value) as `d`.
    pub fn knows_target(&self, d: &StoredDecision) -> bool {
        let (Some(scope), Some(kind)) = (self.syms.get(&d.scope), self.syms.get(&d.kind)) else {
            return false;
        };
        let ip_scope = d.scope == model::scope::IP || d.scope == model::scope::RANGE;
        let target = Target::new(&d.value, d.range.filter(|_| ip_scope));
        self.groups
            .contains_key(&self.group_key(scope, kind, &target))
    }

    /// When the next active decision ends (ms).
    pub fn next_expiry(&self) -> Option<i64> {
        self.active.first().map(|&(u, _)| u)
    }

    /// Oldest position the log can still answer from.
    pub fn log_start(&self) -> u64 {
        self.log.front().map_or(self.seq, |c| c.seq - 1)
    }

    /// Active decisions whose target contains `r` (`contains`) or lies inside it.
    pub fn lookup(&self, r: &IpRange, contains: bool, out: &mut Vec<i64>) {
        if contains {
            match *r {
                IpRange::V4(a, b) => {
                    if a == b
                        && let Some(ids) = self.v4.get(&a)
                    {
                        out.extend(ids.iter());
                    }
                    for (l, n) in self.len4.iter().enumerate() {
                        if *n == 0 {
                            continue;
                        }
                        let mask = u32::MAX.checked_shl(32 - l as u32).unwrap_or(0);
                        let net = a & mask;
                        if (b & mask) == net
                            && let Some(ids) = self.nets4.get(&(l as u8, net))
                        {
                            out.extend(ids.iter());
                        }
                    }
                }
                IpRange::V6(a, b) => {
                    if a == b
                        && let Some(ids) = self.v6.get(&a)
                    {
                        out.extend(ids.iter());
                    }
                    for (l, n) in self.len6.iter().enumerate() {
                        if *n == 0 {
                            continue;
                        }
                        let mask = u128::MAX.checked_shl(128 - l as u32).unwrap_or(0);
                        let net = a & mask;
                        if (b & mask) == net
                            && let Some(ids) = self.nets6.get(&(l as u8, net))
                        {
                            out.extend(ids.iter());
                        }
                    }
                }
            }
        } else {
            // Decisions inside a range: a scan, fine for the admin queries that ask it.
            for &(_, id) in &self.active {
                if let Some(t) = self.entries.get(&id).and_then(|e| e.target.range())
                    && r.contains(&t)
                {
                    out.push(id);
                }
            }
        }
    }

    /// Active decisions counted by (scenario, origin, type), as names.
    pub fn active_counts(&self, now: i64) -> Vec<((&str, &str, &str), i64)> {
        let mut by: HashMap<(Sym, Sym, Sym), i64> = HashMap::new();
        for &(until, id) in self.active.range((now + 1, i64::MIN)..) {
            debug_assert!(until > now);
            if let Some(e) = self.entries.get(&id) {
                *by.entry((e.scenario, e.origin, e.kind)).or_default() += 1;
            }
        }
        by.into_iter()
            .map(|((s, o, k), n)| ((self.syms.name(s), self.syms.name(o), self.syms.name(k)), n))
            .collect()
    }

    /// Every active decision id, oldest first by id.
    pub fn active_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.active.iter().map(|&(_, id)| id).collect();
        v.sort_unstable();
        v
    }

    /// Whether `e` (which `keep` accepts) is its group's longest decision.
    fn is_top(&self, e: &Entry, now: i64, keep: &dyn Fn(&Entry) -> bool) -> bool {
        match self.groups.get(&e.group) {
            Some(Ids::One(id)) => *id == e.id,
            _ => self
                .group_top(e.group, now, keep)
                .is_some_and(|(top, _)| top == e.id),
        }
    }

    /// The group's longest decision among those `keep` accepts: `(id, active)`.
    fn group_top(
        &self,
        group: u64,
        now: i64,
        keep: &dyn Fn(&Entry) -> bool,
    ) -> Option<(i64, bool)> {
        let ids = self.groups.get(&group)?;
        if let Ids::One(id) = ids {
            // Most targets have one decision: no comparison needed.
            let e = self.entries.get(id)?;
            return keep(e).then_some((e.id, e.until > now));
        }
        let mut best: Option<&Entry> = None;
        for id in ids.iter() {
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            if !keep(e) {
                continue;
            }
            if best.is_none_or(|b| (e.until, e.id) > (b.until, b.id)) {
                best = Some(e);
            }
        }
        best.map(|e| (e.id, e.until > now))
    }

    /// Full snapshot for `startup=true`: active decisions (the longest per group when `dedup`)
    /// and expired ones still held whose group has nothing active.
    pub fn snapshot(&self, f: &Filter, dedup: bool, now: i64) -> (Vec<i64>, Vec<i64>) {
        let r = self.resolve(f);
        let keep = |e: &Entry| r.matches(e, &self.syms);
        let mut new = Vec::new();
        let mut deleted = Vec::new();
        for &(_, id) in &self.active {
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            if !keep(e) {
                continue;
            }
            if !dedup || self.is_top(e, now, &keep) {
                new.push(id);
            }
        }
        for &(_, id) in &self.expired {
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            if !keep(e) {
                continue;
            }
            if !dedup || self.group_top(e.group, now, &keep) == Some((id, false)) {
                deleted.push(id);
            }
        }
        new.sort_unstable();
        deleted.sort_unstable();
        (new, deleted)
    }

    /// Changes after log position `since`: for each touched group the bouncer is told its current
    /// state — the longest active decision as new, or (when nothing is active any more) the
    /// latest one as deleted. `None` when the log no longer reaches back that far.
    pub fn delta(
        &self,
        since: u64,
        f: &Filter,
        dedup: bool,
        now: i64,
    ) -> Option<(Vec<i64>, Vec<i64>)> {
        if since < self.log_start() {
            return None;
        }
        let r = self.resolve(f);
        let keep = |e: &Entry| r.matches(e, &self.syms);
        let skip = usize::try_from(since - self.log_start()).unwrap_or(usize::MAX);
        let mut new = Vec::new();
        let mut deleted = Vec::new();
        let mut seen_groups: hashbrown::HashSet<u64> = hashbrown::HashSet::new();
        let mut seen_ids: hashbrown::HashSet<i64> = hashbrown::HashSet::new();
        for c in self.log.iter().skip(skip) {
            let Some(e) = self.entries.get(&c.id) else {
                continue;
            };
            if dedup {
                if !seen_groups.insert(e.group) {
                    continue;
                }
                match self.group_top(e.group, now, &keep) {
                    Some((id, true)) => new.push(id),
                    Some((id, false)) => deleted.push(id),
                    None => {}
                }
            } else {
                if !seen_ids.insert(c.id) || !keep(e) {
                    continue;
                }
                if e.until > now {
                    new.push(c.id)
                } else {
                    deleted.push(c.id)
                }
            }
        }
        new.sort_unstable();
        new.dedup();
        deleted.sort_unstable();
        deleted.dedup();
        Some((new, deleted))
    }

    /// CrowdSec's time-based delta, for a bouncer whose log position this process does not know
    /// (first poll after a restart): new = active created after `last_pull`, deleted = ended
    /// since `last_pull` − 2 s.
    pub fn since_time(
        &self,
        last_pull: i64,
        f: &Filter,
        dedup: bool,
        now: i64,
    ) -> (Vec<i64>, Vec<i64>) {
        let r = self.resolve(f);
        let keep = |e: &Entry| r.matches(e, &self.syms);
        let mut new = Vec::new();
        let mut deleted = Vec::new();
        for e in self.entries.values() {
            if !keep(e) {
                continue;
            }
            let top = !dedup || self.is_top(e, now, &keep);
            if !top {
                continue;
            }
            if e.until > now && e.created_at > last_pull {
                new.push(e.id);
            } else if e.until <= now && e.until > last_pull - 2000 {
                deleted.push(e.id);
            }
        }
        new.sort_unstable();
        deleted.sort_unstable();
        (new, deleted)
    }

    /// Active decision ids matching a filter (for `GET /v1/decisions` without `ip`/`range`).
    pub fn scan(&self, f: &Filter) -> Vec<i64> {
        let r = self.resolve(f);
        let mut v: Vec<i64> = self
            .active
            .iter()
            .filter_map(|&(_, id)| {
                self.entries
                    .get(&id)
                    .filter(|e| r.matches(e, &self.syms))
                    .map(|e| e.id)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Keeps the ids of active decisions that pass `f` (resolving the filter once).
    pub fn retain_matching(&self, ids: &mut Vec<i64>, f: &Filter, now: i64) {
        let r = self.resolve(f);
        ids.retain(|id| {
            self.entries
                .get(id)
                .is_some_and(|e| e.until > now && r.matches(e, &self.syms))
        });
    }

    /// Whether `e` passes `f` (for ids found by [`Inner::lookup`]).
    pub fn matches(&self, e: &Entry, f: &Filter) -> bool {
        self.resolve(f).matches(e, &self.syms)
    }

    /// `(created_at, until)` of every held decision against `value` (active or recently expired).
    pub fn value_history(&self, value: &str) -> Vec<(i64, i64)> {
        let mut s = String::new();
        self.entries
            .values()
            .filter(|e| {
                s.clear();
                e.target.write_value(&mut s);
                s == value
            })
            .map(|e| (e.created_at, e.until))
            .collect()
    }

    /// An interned symbol as a JSON string literal.
    pub(crate) fn sym_json(&self, s: Sym) -> &str {
        self.syms.json(s)
    }

    /// Name of an interned symbol.
    pub fn sym(&self, s: Sym) -> &str {
        self.syms.name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: i64, value: &str, scope: &str, until: i64) -> StoredDecision {
        StoredDecision {
            id,
            alert_id: 1,
            created_at: 1000 + id,
            updated_at: 1000,
            until,
            scenario: "crowdsecurity/ssh-bf".into(),
            kind: "ban".into(),
            scope: scope.into(),
            value: value.into(),
            origin: "crowdsec".into(),
            simulated: false,
            uuid: String::new(),
            range: IpRange::parse(value).ok(),
        }
    }

    fn ip(s: &str) -> IpRange {
        IpRange::parse(s).unwrap_or(IpRange::V4(1, 0))
    }

    #[test]
    fn finds_exact_ips_and_containing_ranges_of_the_same_family() {
        let mut ix = Inner::new(60_000);
        ix.upsert(&d(1, "192.0.2.7", "Ip", 10_000), 0);
        ix.upsert(&d(2, "192.0.2.0/24", "Range", 10_000), 0);
        ix.upsert(&d(3, "10.0.0.0/8", "Range", 10_000), 0);
        ix.upsert(&d(4, "2001:db8::/32", "Range", 10_000), 0);
        ix.upsert(&d(5, "2001:db8::5", "Ip", 10_000), 0);
        let mut out = Vec::new();
        ix.lookup(&ip("192.0.2.7"), true, &mut out);
        out.sort_unstable();
        assert_eq!(out, [1, 2]);
        out.clear();
        ix.lookup(&ip("2001:db8::5"), true, &mut out);
        out.sort_unstable();
        assert_eq!(out, [4, 5]);
        out.clear();
        ix.lookup(&ip("10.9.9.9"), true, &mut out);
        assert_eq!(out, [3]);
        out.clear();
        ix.lookup(&ip("::ffff:192.0.2.7"), true, &mut out);
        assert!(out.is_empty(), "no cross-family match");
        out.clear();
        ix.lookup(&ip("192.0.0.0/16"), false, &mut out);
        out.sort_unstable();
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn expiry_and_deletion_reach_the_log_and_leave_lookups() {
        let mut ix = Inner::new(60_000);
        ix.upsert(&d(1, "192.0.2.7", "Ip", 10_000), 0);
        ix.upsert(&d(2, "192.0.2.8", "Ip", 20_000), 0);
        let f = Filter::default();
        let after_insert = ix.seq();
        ix.expire_due(10_000);
        let mut out = Vec::new();
        ix.lookup(&ip("192.0.2.7"), true, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ix.delta(after_insert, &f, true, 10_000),
            Some((vec![], vec![1]))
        );
        ix.set_until(2, 10_500, 10_500);
        assert_eq!(
            ix.delta(after_insert, &f, true, 10_500),
            Some((vec![], vec![1, 2]))
        );
        // Past the retention, expired ones are evicted and old positions fall back.
        ix.expire_due(200_000);
        assert!(ix.get(1).is_none());
        assert_eq!(ix.delta(0, &f, true, 200_000), None);
    }

    #[test]
    fn a_group_shows_its_longest_decision_and_falls_back_when_it_ends() {
        let mut ix = Inner::new(60_000);
        ix.upsert(&d(1, "192.0.2.7", "Ip", 50_000), 0);
        ix.upsert(&d(2, "192.0.2.7", "Ip", 20_000), 0);
        let f = Filter::default();
        assert_eq!(ix.snapshot(&f, true, 0), (vec![1], vec![]));
        assert_eq!(ix.snapshot(&f, false, 0), (vec![1, 2], vec![]));
        let pos = ix.seq();
        // The long one is deleted: the short one must now be sent, not nothing.
        ix.set_until(1, 100, 100);
        assert_eq!(ix.delta(pos, &f, true, 100), Some((vec![2], vec![])));
        let pos = ix.seq();
        ix.expire_due(20_000);
        assert_eq!(ix.delta(pos, &f, true, 20_000), Some((vec![], vec![2])));
    }

    #[test]
    fn filters_apply_to_scopes_origins_and_scenarios() {
        let mut ix = Inner::new(60_000);
        ix.upsert(&d(1, "192.0.2.7", "Ip", 50_000), 0);
        let mut other = d(2, "alice", "username", 50_000);
        other.origin = "cscli".into();
        other.scenario = "manual ban".into();
        ix.upsert(&other, 0);
        let f = Filter {
            scopes: vec!["Ip".into()],
            ..Filter::default()
        };
        assert_eq!(ix.snapshot(&f, true, 0).0, vec![1]);
        let f = Filter {
            origins: vec!["cscli".into()],
            ..Filter::default()
        };
        assert_eq!(ix.snapshot(&f, true, 0).0, vec![2]);
        let f = Filter {
            scenarios_containing: vec!["ssh".into()],
            ..Filter::default()
        };
        assert_eq!(ix.snapshot(&f, true, 0).0, vec![1]);
        let f = Filter {
            scenarios_not_containing: vec!["ssh".into()],
            ..Filter::default()
        };
        assert_eq!(ix.snapshot(&f, true, 0).0, vec![2]);
        let f = Filter {
            origins: vec!["never-seen".into()],
            ..Filter::default()
        };
        assert!(ix.snapshot(&f, true, 0).0.is_empty());
        assert_eq!(ix.value_history("alice").len(), 1);
    }
}
