//! nftables mode: a table per family (`ip <table>`, `ip6 <table>`) owned by the bouncer, with per
//! origin a hash set of addresses and an interval set of networks (both `flags timeout`, element
//! timeouts = time left), and a base chain per hook whose rules drop or reject their sources.
//!
//! Each batch of decisions is one `nft -f -` script, which nftables applies as one transaction,
//! however many decisions it holds. The startup load (and a rebuild after an error) fills a second
//! generation of sets beside the live one, 100,000 elements per `nft` run, then points the rules
//! at it and drops the old sets in one transaction: a restart after a crash replaces what the
//! previous run left instead of adding to it, the old sets enforce until the switch, and `nft`
//! never holds a million elements at once (it needs about 430 MB for that).
//!
//! nft 1.0.6 (Debian 12) refuses to delete an element that is gone, including one the kernel just
//! expired, and fails the whole script. Addresses are therefore replaced with "add with a short
//! timeout, delete, add" (valid whether or not the element is still there). Interval sets cannot
//! use that form (nft's overlap check in that version ignores the delete), so networks are
//! deleted plainly, and if an element expired meanwhile the script is retried after reading the
//! set back from the kernel.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use crate::cmd::{self, FwError};
use crate::config::{Config, DenyAction, NftFamily};
use crate::firewall::{Backend, Counters};
use crate::segments::{self, Segments};
use crate::state::{Edits, FamilyEdits, FamilySet, OriginSets, State};
use crate::target::{Addr, Cidr};

/// Elements per `add element` statement. Statements of 1,000 to 100,000 elements load a million
/// in the same time with nft 1.0.6; this keeps each line of the script moderate.
const CHUNK: usize = 10_000;
/// Attempts at a batch before falling back to a full rebuild.
const ATTEMPTS: usize = 3;
/// The longest element timeout written (10 years): the kernel refuses values somewhere between
/// 100,000 and 1,000,000 days, and one refused element would fail a whole batch. Longer bans are
/// re-armed by every restart's rebuild.
const MAX_TIMEOUT_MS: u64 = 3650 * 24 * 3600 * 1000;

/// The element timeout (ms) of a ban ending at `expiry`.
fn timeout(expiry: u64, now: u64) -> u64 {
    expiry.saturating_sub(now).clamp(1, MAX_TIMEOUT_MS)
}

/// One family's table, chains and sets.
struct Side<A> {
    family: &'static str,
    saddr: &'static str,
    addr_type: &'static str,
    table: String,
    chain: String,
    priority: i32,
    prefix: String,
    /// By origin index: (address set, network set).
    names: Vec<(String, String)>,
    used: HashSet<String>,
    /// By origin index: the network pieces believed to be in the kernel.
    segs: Vec<Segments<A>>,
    /// Set generation (0 or 1): a rebuild fills the other generation's sets, then switches the
    /// rules over in one transaction.
    generation: u8,
    pick: fn(&OriginSets) -> &FamilySet<A>,
    edits: fn(&Edits) -> &BTreeMap<usize, FamilyEdits<A>>,
}

impl<A: Addr> Side<A> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cfg: &NftFamily,
        prefix: &str,
        family: &'static str,
        saddr: &'static str,
        addr_type: &'static str,
        pick: fn(&OriginSets) -> &FamilySet<A>,
        edits: fn(&Edits) -> &BTreeMap<usize, FamilyEdits<A>>,
    ) -> Self {
        Self {
            family,
            saddr,
            addr_type,
            table: cfg.table.clone(),
            chain: cfg.chain.clone(),
            priority: cfg.priority,
            prefix: prefix.to_owned(),
            names: Vec::new(),
            used: HashSet::new(),
            segs: Vec::new(),
            generation: 0,
            pick,
            edits,
        }
    }

    /// Gives origins that have none their set names (stable for the life of the table).
    fn name_origins(&mut self, state: &State) {
        while self.names.len() < state.origins.len() {
            let origin = &state.origins[self.names.len()].name;
            let mut base: String = origin
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect();
            if base.is_empty() {
                base.push('_');
            }
            let mut name = format!("{}-{base}", self.prefix);
            let mut n = 1;
            while self.used.contains(&name) {
                n += 1;
                name = format!("{}-{base}_{n}", self.prefix);
            }
            self.used.insert(name.clone());
            // Base names never contain '.', so the '.1' and '.ranges' suffixes cannot collide.
            if self.generation == 1 {
                name.push_str(".1");
            }
            let ranges = format!("{name}.ranges");
            self.names.push((name, ranges));
            self.segs.push(Segments::new());
        }
    }

    fn reset(&mut self, generation: u8) {
        self.names.clear();
        self.used.clear();
        self.segs.clear();
        self.generation = generation;
    }

    /// `add set` for an origin's two sets.
    fn add_sets(&self, i: usize, out: &mut String) {
        let Some((s, r)) = self.names.get(i) else {
            return;
        };
        let (fam, table, t) = (self.family, &self.table, self.addr_type);
        let _ = writeln!(
            out,
            "add set {fam} {table} {s} {{ type {t}; flags timeout; }}"
        );
        let _ = writeln!(
            out,
            "add set {fam} {table} {r} {{ type {t}; flags interval, timeout; }}"
        );
    }

    /// Sets and rules for an origin that appeared after the table was built.
    fn new_origin(&self, i: usize, hooks: &[String], verdict: &str, out: &mut String) {
        self.add_sets(i, out);
        for h in hooks {
            self.rules(i, verdict, out, h);
        }
    }

    fn rules(&self, i: usize, verdict: &str, out: &mut String, hook: &str) {
        let Some((s, r)) = self.names.get(i) else {
            return;
        };
        for set in [s, r] {
            let _ = writeln!(
                out,
                "add rule {} {} {}-{hook} {} @{set} {verdict}",
                self.family, self.table, self.chain, self.saddr
            );
        }
    }

    /// The table's current objects (`nft -t list table`: without elements).
    fn inspect(&self, bin: &std::path::Path) -> Existing {
        match cmd::run(
            bin,
            &["-t", "list", "table", self.family, &self.table],
            None,
        ) {
            Ok(text) => Existing::parse(&text, &self.prefix),
            Err(_) => Existing::default(),
        }
    }

    /// Switches the chains over to this generation's sets and drops `old` sets, in one
    /// transaction; base chains are recreated, so a changed priority or hook list applies.
    fn switch(
        &self,
        ex: &Existing,
        hooks: &[String],
        verdict: &str,
        counters: bool,
        out: &mut String,
    ) {
        let (fam, table) = (self.family, &self.table);
        let ours = format!("{}-", self.chain);
        for c in ex.chains.iter().filter(|c| c.starts_with(&ours)) {
            let _ = writeln!(
                out,
                "flush chain {fam} {table} {c}\ndelete chain {fam} {table} {c}"
            );
        }
        for h in hooks {
            let _ = writeln!(
                out,
                "add chain {fam} {table} {}-{h} {{ type filter hook {h} priority {}; policy accept; }}",
                self.chain, self.priority
            );
            if counters {
                // Everything the chain sees: the `processed` metric.
                let _ = writeln!(out, "add rule {fam} {table} {}-{h} counter", self.chain);
            }
            for i in 0..self.names.len() {
                self.rules(i, verdict, out, h);
            }
        }
        for set in &ex.referenced {
            let _ = writeln!(out, "delete set {fam} {table} {set}");
        }
    }

    /// The table, this generation's empty sets, and no leftovers: sets the live rules do not
    /// use (an interrupted rebuild's, origins no longer seen) are deleted first.
    fn prepare(&self, ex: &Existing, out: &mut String) {
        let (fam, table) = (self.family, &self.table);
        let _ = writeln!(out, "add table {fam} {table}");
        for set in ex.sets.iter().filter(|s| !ex.referenced.contains(s)) {
            let _ = writeln!(out, "delete set {fam} {table} {set}");
        }
        for i in 0..self.names.len() {
            self.add_sets(i, out);
        }
    }

    /// `add element` statements, `CHUNK` elements each.
    fn elements(
        &self,
        w: &mut dyn Write,
        verb: &str,
        set: &str,
        items: &mut dyn Iterator<Item = (A, A, Option<u64>)>,
    ) -> std::io::Result<()> {
        let mut line = String::with_capacity(64 * CHUNK.min(1024));
        let mut n = 0;
        for (start, end, timeout) in items {
            if n == 0 {
                line.clear();
                let _ = write!(
                    line,
                    "{verb} element {} {} {set} {{ ",
                    self.family, self.table
                );
            } else {
                line.push_str(", ");
            }
            start.write_to(&mut line);
            if end != start {
                line.push('-');
                end.write_to(&mut line);
            }
            if let Some(t) = timeout {
                let _ = write!(line, " timeout {t}ms");
            }
            n += 1;
            if n == CHUNK {
                line.push_str(" }\n");
                w.write_all(line.as_bytes())?;
                n = 0;
            }
        }
        if n > 0 {
            line.push_str(" }\n");
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// Writes every element of `state` (into freshly created sets).
    fn load(
        &self,
        state: &State,
        segs: &[Segments<A>],
        now: u64,
        w: &mut dyn Write,
    ) -> std::io::Result<()> {
        for (i, o) in state.origins.iter().enumerate() {
            let fs = (self.pick)(o);
            let Some((s, r)) = self.names.get(i) else {
                continue;
            };
            self.elements(
                w,
                "add",
                s,
                &mut fs
                    .singles
                    .iter()
                    .filter(|(_, e)| **e > now)
                    .map(|(a, e)| (*a, *a, Some(timeout(*e, now)))),
            )?;
            if let Some(seg) = segs.get(i) {
                self.elements(
                    w,
                    "add",
                    r,
                    &mut seg
                        .iter()
                        .map(|(s, (e, x))| (*s, *e, Some(timeout(*x, now)))),
                )?;
            }
        }
        Ok(())
    }

    fn all_segments(&self, state: &State, now: u64) -> Vec<Segments<A>> {
        state
            .origins
            .iter()
            .map(|o| {
                segments::segments(
                    (self.pick)(o)
                        .ranges
                        .iter()
                        .filter(|(_, e)| **e > now)
                        .map(|(c, e)| (*c, *e)),
                )
            })
            .collect()
    }

    /// The script for one batch; returns the network pieces the kernel holds once it ran.
    fn delta(
        &self,
        state: &State,
        edits: &Edits,
        now: u64,
        buf: &mut Vec<u8>,
    ) -> Vec<(usize, Segments<A>)> {
        let mut new_segs = Vec::new();
        for (&i, fe) in (self.edits)(edits) {
            let Some(o) = state.origins.get(i) else {
                continue;
            };
            let fs = (self.pick)(o);
            let Some((s, r)) = self.names.get(i) else {
                continue;
            };
            let current = |a: &A| fs.singles.get(a).copied().filter(|e| *e > now);
            let touch: Vec<A> = fe
                .singles
                .iter()
                .filter(|(a, before)| before.is_some() || current(a).is_some())
                .map(|(a, _)| *a)
                .collect();
            let _ = self.elements(
                buf,
                "add",
                s,
                &mut touch.iter().map(|a| (*a, *a, Some(1000))),
            );
            let _ = self.elements(buf, "delete", s, &mut touch.iter().map(|a| (*a, *a, None)));
            let _ = self.elements(
                buf,
                "add",
                s,
                &mut touch
                    .iter()
                    .filter_map(|a| current(a).map(|e| (*a, *a, Some(timeout(e, now))))),
            );
            if !fe.ranges.is_empty() {
                let old = self.segs.get(i).cloned().unwrap_or_default();
                let new = segments::segments(
                    fs.ranges
                        .iter()
                        .filter(|(_, e)| **e > now)
                        .map(|(c, e)| (*c, *e)),
                );
                let (dels, adds) = segments::diff(&old, &new, now);
                let _ = self.elements(
                    buf,
                    "delete",
                    r,
                    &mut dels.iter().map(|(a, b)| (*a, *b, None)),
                );
                let _ = self.elements(
                    buf,
                    "add",
                    r,
                    &mut adds
                        .iter()
                        .map(|(a, b, e)| (*a, *b, Some(timeout(*e, now)))),
                );
                new_segs.push((i, new));
            }
        }
        new_segs
    }

    /// Reads the network sets of `origins` back from the kernel.
    fn resync(&mut self, bin: &std::path::Path, origins: &[usize], now: u64) {
        for &i in origins {
            let Some((_, r)) = self.names.get(i) else {
                continue;
            };
            let r = r.clone();
            let out = match cmd::run(
                bin,
                &["-j", "list", "set", self.family, &self.table, &r],
                None,
            ) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read set {r} back");
                    continue;
                }
            };
            let read = parse_set_elements::<A>(&out, now);
            let old = self.segs.get(i).cloned().unwrap_or_default();
            // The kernel reports whole seconds: keep this side's exact expiry where it matches.
            let merged = read
                .into_iter()
                .map(|(s, (e, x))| match old.get(&s) {
                    Some((oe, ox)) if *oe == e && ox.abs_diff(x) < 2000 => (s, (e, *ox)),
                    _ => (s, (e, x)),
                })
                .collect();
            if let Some(slot) = self.segs.get_mut(i) {
                *slot = merged;
            }
        }
    }

    fn counters(
        &self,
        bin: &std::path::Path,
        hooks: &[String],
        state: &State,
        out: &mut Counters,
    ) -> Result<(), FwError> {
        let mut dropped: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        let mut processed = (0u64, 0u64);
        let by_set: std::collections::HashMap<&str, usize> = self
            .names
            .iter()
            .enumerate()
            .flat_map(|(i, (s, r))| [(s.as_str(), i), (r.as_str(), i)])
            .collect();
        for h in hooks {
            let chain = format!("{}-{h}", self.chain);
            let text = cmd::run(
                bin,
                &["-j", "list", "chain", self.family, &self.table, &chain],
                None,
            )?;
            let v: Value = serde_json::from_str(&text).map_err(|e| FwError::Output {
                command: format!("nft -j list chain {} {} {chain}", self.family, self.table),
                reason: e.to_string(),
            })?;
            for item in v["nftables"].as_array().into_iter().flatten() {
                let Some(exprs) = item["rule"]["expr"].as_array() else {
                    continue;
                };
                let counter = exprs.iter().find_map(|e| {
                    let c = e.get("counter")?;
                    Some((c["packets"].as_u64()?, c["bytes"].as_u64()?))
                });
                let Some((p, b)) = counter else {
                    continue;
                };
                let set = exprs.iter().find_map(|e| {
                    e["match"]["right"]
                        .as_str()
                        .and_then(|r| r.strip_prefix('@'))
                });
                match set.and_then(|s| by_set.get(s)) {
                    Some(&i) => {
                        let d = dropped.entry(i).or_default();
                        d.0 += p;
                        d.1 += b;
                    }
                    None if exprs.len() == 1 => {
                        processed.0 += p;
                        processed.1 += b;
                    }
                    None => {}
                }
            }
        }
        for (i, (p, b)) in dropped {
            if let Some(o) = state.origins.get(i) {
                out.dropped.push((o.name.clone(), A::LABEL, p, b));
            }
        }
        out.processed.push((A::LABEL, processed.0, processed.1));
        Ok(())
    }
}

/// Elements of `nft -j list set` as pieces with their expiry on this side's clock.
fn parse_set_elements<A: Addr>(json: &str, now: u64) -> Segments<A> {
    let mut out = Segments::new();
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return out;
    };
    for item in v["nftables"].as_array().into_iter().flatten() {
        for el in item["set"]["elem"].as_array().into_iter().flatten() {
            let (val, expires) = match el.get("elem") {
                Some(e) => (&e["val"], e["expires"].as_u64()),
                None => (el, None),
            };
            let range = if let Some(s) = val.as_str() {
                A::parse(s).map(|a| (a, a))
            } else if let Some(p) = val.get("prefix") {
                match (p["addr"].as_str().and_then(A::parse), p["len"].as_u64()) {
                    (Some(a), Some(len)) => {
                        let len = u8::try_from(len).unwrap_or(A::BITS);
                        Some((a, Cidr { start: a, len }.end()))
                    }
                    _ => None,
                }
            } else if let Some(r) = val["range"].as_array() {
                match (
                    r.first().and_then(Value::as_str).and_then(A::parse),
                    r.get(1).and_then(Value::as_str).and_then(A::parse),
                ) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                }
            } else {
                None
            };
            if let Some((a, b)) = range {
                let expiry = now + expires.unwrap_or(0).saturating_mul(1000);
                out.insert(a, (b, expiry));
            }
        }
    }
    out
}

/// What a table holds before a rebuild.
#[derive(Debug, Default, PartialEq, Eq)]
struct Existing {
    /// Whether the table exists.
    table: bool,
    sets: Vec<String>,
    chains: Vec<String>,
    /// Sets of this bouncer that rules use (the live generation).
    referenced: Vec<String>,
}

impl Existing {
    /// Reads `nft -t list table` output.
    fn parse(text: &str, prefix: &str) -> Existing {
        let mut ex = Existing {
            table: !text.trim().is_empty(),
            ..Existing::default()
        };
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("set ").and_then(|r| r.strip_suffix(" {")) {
                ex.sets.push(name.to_owned());
            } else if let Some(name) = line
                .strip_prefix("chain ")
                .and_then(|r| r.strip_suffix(" {"))
            {
                ex.chains.push(name.to_owned());
            }
            for word in line.split_whitespace() {
                if let Some(set) = word.strip_prefix('@')
                    && set.starts_with(prefix)
                    && !ex.referenced.iter().any(|r| r == set)
                {
                    ex.referenced.push(set.to_owned());
                }
            }
        }
        ex
    }

    /// The generation the rules use, if any.
    fn live_gen(&self) -> Option<u8> {
        self.referenced
            .first()
            .map(|s| u8::from(s.ends_with(".1") || s.ends_with(".1.ranges")))
    }
}

/// Elements of a rebuild, handed to `nft` a few statements at a time: each process then holds
/// about 100,000 elements (≈ 45 MB) instead of the whole list (≈ 430 MB for a million).
struct Batcher<'a> {
    bin: &'a std::path::Path,
    buf: Vec<u8>,
    statements: usize,
    error: Option<FwError>,
}

const STATEMENTS_PER_RUN: usize = 10;

impl Batcher<'_> {
    fn flush_batch(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        self.statements = 0;
        match cmd::run(
            self.bin,
            &["-f", "-"],
            Some(&mut |w: &mut dyn Write| w.write_all(&buf)),
        ) {
            Ok(_) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                self.error = Some(e);
                Err(std::io::Error::other(msg))
            }
        }
    }
}

impl Write for Batcher<'_> {
    /// Every call is one whole statement (see `Side::elements`).
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.statements += 1;
        if self.statements >= STATEMENTS_PER_RUN {
            self.flush_batch()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_batch()
    }
}

/// The nftables backend.
pub(crate) struct Nft {
    bin: PathBuf,
    hooks: Vec<String>,
    verdict: String,
    counters: bool,
    v4: Option<Side<u32>>,
    v6: Option<Side<u128>>,
    /// Tables of disabled families, removed at start in case an earlier run made them.
    stale: Vec<(&'static str, String)>,
}

impl Nft {
    pub(crate) fn new(cfg: &Config) -> Self {
        let mut verdict = String::new();
        if cfg.counters {
            verdict.push_str("counter ");
        }
        if cfg.deny_log {
            let _ = write!(verdict, "log prefix \"{}\" ", cfg.deny_log_prefix);
        }
        verdict.push_str(match cfg.deny_action {
            DenyAction::Drop => "drop",
            DenyAction::Reject => "reject",
        });
        let v4 = cfg.ipv4.then(|| {
            Side::new(
                &cfg.nft_v4,
                &cfg.blacklists_ipv4,
                "ip",
                "ip saddr",
                "ipv4_addr",
                |o| &o.v4,
                |e| &e.v4,
            )
        });
        let v6 = cfg.ipv6.then(|| {
            Side::new(
                &cfg.nft_v6,
                &cfg.blacklists_ipv6,
                "ip6",
                "ip6 saddr",
                "ipv6_addr",
                |o| &o.v6,
                |e| &e.v6,
            )
        });
        let mut stale = Vec::new();
        if v4.is_none() {
            stale.push(("ip", cfg.nft_v4.table.clone()));
        }
        if v6.is_none() {
            stale.push(("ip6", cfg.nft_v6.table.clone()));
        }
        Self {
            bin: cmd::find("nft"),
            hooks: cfg.nftables_hooks.clone(),
            verdict,
            counters: cfg.counters,
            v4,
            v6,
            stale,
        }
    }

    /// Tables this bouncer may own, for (family, table) loops.
    fn tables(&self) -> Vec<(&'static str, String)> {
        let mut t: Vec<(&'static str, String)> = self.stale.clone();
        if let Some(s) = &self.v4 {
            t.push((s.family, s.table.clone()));
        }
        if let Some(s) = &self.v6 {
            t.push((s.family, s.table.clone()));
        }
        t
    }

    fn run_script(&self, script: &[u8]) -> Result<(), FwError> {
        cmd::run(
            &self.bin,
            &["-f", "-"],
            Some(&mut |w: &mut dyn Write| w.write_all(script)),
        )
        .map(|_| ())
    }

    fn try_apply(&mut self, state: &State, edits: &Edits, now: u64) -> Result<(), FwError> {
        let mut head = String::new();
        for &i in &edits.new_origins {
            if let Some(s) = &self.v4 {
                s.new_origin(i, &self.hooks, &self.verdict, &mut head);
            }
            if let Some(s) = &self.v6 {
                s.new_origin(i, &self.hooks, &self.verdict, &mut head);
            }
        }
        let mut script = head.into_bytes();
        let segs4 = self
            .v4
            .as_ref()
            .map(|s| s.delta(state, edits, now, &mut script))
            .unwrap_or_default();
        let segs6 = self
            .v6
            .as_ref()
            .map(|s| s.delta(state, edits, now, &mut script))
            .unwrap_or_default();
        if script.is_empty() {
            return Ok(());
        }
        self.run_script(&script)?;
        if let Some(s) = self.v4.as_mut() {
            for (i, seg) in segs4 {
                if let Some(slot) = s.segs.get_mut(i) {
                    *slot = seg;
                }
            }
        }
        if let Some(s) = self.v6.as_mut() {
            for (i, seg) in segs6 {
                if let Some(slot) = s.segs.get_mut(i) {
                    *slot = seg;
                }
            }
        }
        Ok(())
    }
}

impl Backend for Nft {
    /// A new generation of sets is created and filled beside the live one (which keeps
    /// enforcing, after a crash too), then one transaction points the rules at it and drops the
    /// old sets. A restart thus replaces, never adds, and never leaves a moment unprotected.
    fn rebuild(&mut self, state: &State, now: u64) -> Result<(), FwError> {
        let mut prepare = String::new();
        for (fam, table) in &self.stale {
            // `add` first so that `delete` cannot fail: together, "remove it if it exists".
            let _ = writeln!(
                prepare,
                "add table {fam} {table}\ndelete table {fam} {table}"
            );
        }
        let bin = self.bin.clone();
        let ex4 = self
            .v4
            .as_ref()
            .map(|s| s.inspect(&bin))
            .unwrap_or_default();
        let ex6 = self
            .v6
            .as_ref()
            .map(|s| s.inspect(&bin))
            .unwrap_or_default();
        if let Some(s) = self.v4.as_mut() {
            s.reset(ex4.live_gen().map_or(0, |g| 1 - g));
            s.name_origins(state);
            s.prepare(&ex4, &mut prepare);
        }
        if let Some(s) = self.v6.as_mut() {
            s.reset(ex6.live_gen().map_or(0, |g| 1 - g));
            s.name_origins(state);
            s.prepare(&ex6, &mut prepare);
        }
        self.run_script(prepare.as_bytes())?;

        let segs4 = self
            .v4
            .as_ref()
            .map(|s| s.all_segments(state, now))
            .unwrap_or_default();
        let segs6 = self
            .v6
            .as_ref()
            .map(|s| s.all_segments(state, now))
            .unwrap_or_default();
        let mut batcher = Batcher {
            bin: &bin,
            buf: Vec::new(),
            statements: 0,
            error: None,
        };
        let mut loaded = Ok(());
        if let Some(s) = &self.v4 {
            loaded = loaded.and_then(|()| s.load(state, &segs4, now, &mut batcher));
        }
        if let Some(s) = &self.v6 {
            loaded = loaded.and_then(|()| s.load(state, &segs6, now, &mut batcher));
        }
        if let Err(e) = loaded.and_then(|()| batcher.flush()) {
            return Err(batcher.error.take().unwrap_or(FwError::Output {
                command: "nft -f -".into(),
                reason: e.to_string(),
            }));
        }

        let mut switch = String::new();
        if let Some(s) = &self.v4 {
            s.switch(&ex4, &self.hooks, &self.verdict, self.counters, &mut switch);
        }
        if let Some(s) = &self.v6 {
            s.switch(&ex6, &self.hooks, &self.verdict, self.counters, &mut switch);
        }
        self.run_script(switch.as_bytes())?;
        if let Some(s) = self.v4.as_mut() {
            s.segs = segs4;
        }
        if let Some(s) = self.v6.as_mut() {
            s.segs = segs6;
        }
        Ok(())
    }

    fn apply(&mut self, state: &State, edits: &Edits, now: u64) -> Result<(), FwError> {
        if let Some(s) = self.v4.as_mut() {
            s.name_origins(state);
        }
        if let Some(s) = self.v6.as_mut() {
            s.name_origins(state);
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            // Each attempt is timed afresh: pieces that ended meanwhile are no longer deleted.
            let now = if attempt == 0 {
                now
            } else {
                crate::state::now_ms()
            };
            match self.try_apply(state, edits, now) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "nft batch refused; reading network sets back");
                    let bin = self.bin.clone();
                    if let Some(s) = self.v4.as_mut() {
                        let touched: Vec<usize> = (s.edits)(edits)
                            .iter()
                            .filter(|(_, f)| !f.ranges.is_empty())
                            .map(|(i, _)| *i)
                            .collect();
                        s.resync(&bin, &touched, now);
                    }
                    if let Some(s) = self.v6.as_mut() {
                        let touched: Vec<usize> = (s.edits)(edits)
                            .iter()
                            .filter(|(_, f)| !f.ranges.is_empty())
                            .map(|(i, _)| *i)
                            .collect();
                        s.resync(&bin, &touched, now);
                    }
                    last = Some(e);
                }
            }
        }
        match last {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn counters(&mut self, state: &State) -> Result<Counters, FwError> {
        let mut out = Counters::default();
        if let Some(s) = &self.v4 {
            s.counters(&self.bin, &self.hooks, state, &mut out)?;
        }
        if let Some(s) = &self.v6 {
            s.counters(&self.bin, &self.hooks, state, &mut out)?;
        }
        Ok(out)
    }

    fn remove(&mut self) -> Result<(), FwError> {
        let mut script = String::new();
        for (fam, table) in self.tables() {
            let _ = writeln!(
                script,
                "add table {fam} {table}\ndelete table {fam} {table}"
            );
        }
        self.run_script(script.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Ban;
    use crate::state::Change;
    use crate::target::Target;

    fn config() -> Config {
        Config::parse(
            std::path::Path::new("t.yaml"),
            "mode: nftables\napi_url: http://x/\napi_key: k\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn ban(origin: &str, v: &str) -> Ban {
        Ban {
            origin: origin.into(),
            target: Target::parse(v).unwrap_or_else(|| panic!("{v}")),
            left_ms: 0,
        }
    }

    #[test]
    fn set_names_are_valid_identifiers_and_unique() {
        let mut st = State::default();
        st.insert(&ban("lists:firehol level1", "1.2.3.4"), 10);
        st.insert(&ban("lists_firehol_level1", "1.2.3.5"), 10);
        st.insert(&ban("", "1.2.3.6"), 10);
        let mut n = Nft::new(&config());
        let s = n.v4.as_mut().unwrap_or_else(|| panic!("v4"));
        s.name_origins(&st);
        let names: Vec<&str> = s.names.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "rampart-blacklists-lists_firehol_level1",
                "rampart-blacklists-lists_firehol_level1_2",
                "rampart-blacklists-_"
            ]
        );
        assert_eq!(
            s.names[0].1,
            "rampart-blacklists-lists_firehol_level1.ranges"
        );
    }

    #[test]
    fn batch_script_replaces_addresses_and_only_changed_pieces() {
        let mut st = State::default();
        st.insert(&ban("crowdsec", "192.0.2.1"), 10_000);
        st.insert(&ban("crowdsec", "10.0.0.0/16"), 10_000);
        let mut n = Nft::new(&config());
        if let Some(s) = n.v4.as_mut() {
            s.name_origins(&st);
            s.segs = s.all_segments(&st, 0);
        }
        let edits = st.apply(&[
            Change::Remove(ban("crowdsec", "192.0.2.1")),
            Change::Put(ban("crowdsec", "10.0.1.0/24"), 20_000),
            Change::Put(ban("cscli", "2001:db8::1"), 5_000),
        ]);
        for s in [
            n.v4.as_mut().map(|s| s.name_origins(&st)),
            n.v6.as_mut().map(|s| s.name_origins(&st)),
        ] {
            assert!(s.is_some());
        }
        let mut script = Vec::new();
        let v4 =
            n.v4.as_ref()
                .map(|s| s.delta(&st, &edits, 1_000, &mut script));
        let v6 =
            n.v6.as_ref()
                .map(|s| s.delta(&st, &edits, 1_000, &mut script));
        let script = String::from_utf8(script).unwrap_or_default();
        let want = "\
add element ip rampart rampart-blacklists-crowdsec { 192.0.2.1 timeout 1000ms }
delete element ip rampart rampart-blacklists-crowdsec { 192.0.2.1 }
delete element ip rampart rampart-blacklists-crowdsec.ranges { 10.0.0.0-10.0.255.255 }
add element ip rampart rampart-blacklists-crowdsec.ranges { 10.0.0.0-10.0.0.255 timeout 9000ms, 10.0.1.0-10.0.1.255 timeout 19000ms, 10.0.2.0-10.0.255.255 timeout 9000ms }
add element ip6 rampart6 rampart6-blacklists-cscli { 2001:db8::1 timeout 1000ms }
delete element ip6 rampart6 rampart6-blacklists-cscli { 2001:db8::1 }
add element ip6 rampart6 rampart6-blacklists-cscli { 2001:db8::1 timeout 4000ms }
";
        assert_eq!(script, want);
        assert_eq!(v4.map(|v| v.len()), Some(1));
        assert_eq!(v6.map(|v| v.len()), Some(0));
    }

    #[test]
    fn a_rebuild_fills_the_other_generation() {
        let text = "table ip rampart {
	set rampart-blacklists-cscli {
		type ipv4_addr
		flags timeout
	}

	set rampart-blacklists-cscli.ranges {
		type ipv4_addr
		flags interval,timeout
	}

	set rampart-blacklists-old.1 {
		type ipv4_addr
		flags timeout
	}

	chain rampart-chain-input {
		type filter hook input priority filter - 10; policy accept;
		counter packets 1 bytes 52
		ip saddr @rampart-blacklists-cscli counter packets 0 bytes 0 drop
		ip saddr @rampart-blacklists-cscli.ranges counter packets 0 bytes 0 drop
	}
}
";
        let ex = Existing::parse(text, "rampart-blacklists");
        assert!(ex.table);
        assert_eq!(ex.chains, ["rampart-chain-input"]);
        assert_eq!(ex.sets.len(), 3);
        assert_eq!(
            ex.referenced,
            [
                "rampart-blacklists-cscli",
                "rampart-blacklists-cscli.ranges"
            ]
        );
        assert_eq!(ex.live_gen(), Some(0));
        assert_eq!(Existing::parse("", "x").live_gen(), None);

        let mut st = State::default();
        st.insert(&ban("cscli", "192.0.2.1"), 10);
        let mut n = Nft::new(&config());
        let Some(s) = n.v4.as_mut() else {
            panic!("v4");
        };
        s.reset(1);
        s.name_origins(&st);
        let mut script = String::new();
        s.prepare(&ex, &mut script);
        s.switch(
            &ex,
            &["input".to_owned()],
            "counter drop",
            true,
            &mut script,
        );
        assert_eq!(
            script,
            "\
add table ip rampart
delete set ip rampart rampart-blacklists-old.1
add set ip rampart rampart-blacklists-cscli.1 { type ipv4_addr; flags timeout; }
add set ip rampart rampart-blacklists-cscli.1.ranges { type ipv4_addr; flags interval, timeout; }
flush chain ip rampart rampart-chain-input
delete chain ip rampart rampart-chain-input
add chain ip rampart rampart-chain-input { type filter hook input priority -10; policy accept; }
add rule ip rampart rampart-chain-input counter
add rule ip rampart rampart-chain-input ip saddr @rampart-blacklists-cscli.1 counter drop
add rule ip rampart rampart-chain-input ip saddr @rampart-blacklists-cscli.1.ranges counter drop
delete set ip rampart rampart-blacklists-cscli
delete set ip rampart rampart-blacklists-cscli.ranges
"
        );
    }

    #[test]
    fn reads_set_elements_back() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"set": {"family": "ip", "name": "r",
            "elem": [{"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 25}}, "timeout": 18000, "expires": 17999}},
                     {"elem": {"val": {"range": ["10.0.1.3", "10.0.1.77"]}, "timeout": 100, "expires": 99}},
                     {"elem": {"val": "10.0.2.1", "timeout": 3, "expires": 2}}]}}]}"#;
        let s = parse_set_elements::<u32>(json, 5);
        let got: Vec<_> = s.into_iter().collect();
        assert_eq!(
            got,
            vec![
                (0x0a00_0000, (0x0a00_007f, 5 + 17_999_000)),
                (0x0a00_0103, (0x0a00_014d, 5 + 99_000)),
                (0x0a00_0201, (0x0a00_0201, 5 + 2_000)),
            ]
        );
        assert!(parse_set_elements::<u32>("garbage", 0).is_empty());
    }
}
