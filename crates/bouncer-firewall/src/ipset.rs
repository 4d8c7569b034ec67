//! iptables + ipset mode, for hosts without nftables: per origin and family a `hash:net` set
//! (addresses and networks in one set, overlaps allowed, per-element timeouts, `maxelem` far above
//! ipset's 65,536 default), a chain `RAMPART_CHAIN` in the filter table with one rule per set,
//! and a jump to it at the top of each configured chain.
//!
//! Elements always travel through one `ipset -exist restore` per batch. At start the sets are
//! filled under temporary names and swapped in (`ipset swap` is atomic), so a restart after a
//! crash keeps enforcing the old list until the new one is complete; the chain is rewritten with
//! one `iptables-restore --noflush` (declaring a chain there empties it), so rules never double.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use crate::cmd::{self, FwError};
use crate::config::{Config, DenyAction};
use crate::firewall::{Backend, Counters};
use crate::state::{Edits, FamilyEdits, FamilySet, OriginSets, State};
use crate::target::{Addr, Cidr};

/// The chain holding the set rules.
pub(crate) const CHAIN: &str = "RAMPART_CHAIN";
/// ipset's largest timeout (seconds); longer bans are re-armed by [`Backend::refresh`].
const MAX_TIMEOUT_S: u64 = 2_147_483;
/// Re-arm bans whose time left exceeds the kernel's limit minus this margin (ms).
const REFRESH_MARGIN_MS: u64 = 2 * 3600 * 1000;

struct Side<A> {
    family: &'static str,
    iptables: PathBuf,
    restore: PathBuf,
    save: PathBuf,
    prefix: String,
    chains: Vec<String>,
    /// Number of origins whose sets and rules exist.
    known: usize,
    pick: fn(&OriginSets) -> &FamilySet<A>,
    edits: fn(&Edits) -> &std::collections::BTreeMap<usize, FamilyEdits<A>>,
}

/// The ipset timeout (seconds, at least 1) for a ban ending at `expiry`.
fn timeout_s(expiry: u64, now: u64) -> u64 {
    (expiry.saturating_sub(now))
        .div_ceil(1000)
        .clamp(1, MAX_TIMEOUT_S)
}

impl<A: Addr> Side<A> {
    fn set_name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn create(&self, name: &str, maxelem: u32, hashsize: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "create {name} hash:net family {} hashsize {hashsize} maxelem {maxelem} timeout 0",
            self.family
        );
    }

    fn add(out: &mut String, set: &str, c: &Cidr<A>, expiry: u64, now: u64) {
        let _ = write!(out, "add {set} ");
        c.write_to(out);
        let _ = writeln!(out, " timeout {}", timeout_s(expiry, now));
    }

    /// Elements of one origin's family set, up to `max` (a full set refuses the rest and
    /// `ipset restore` would stop at the first refusal).
    fn fill(
        fs: &FamilySet<A>,
        set: &str,
        max: usize,
        now: u64,
        w: &mut dyn Write,
    ) -> std::io::Result<()> {
        let mut line = String::with_capacity(64);
        let singles = fs.singles.iter().map(|(a, e)| {
            (
                Cidr {
                    start: *a,
                    len: A::BITS,
                },
                *e,
            )
        });
        let ranges = fs.ranges.iter().map(|(c, e)| (*c, *e));
        for (c, e) in singles
            .chain(ranges)
            .filter(|(c, e)| *e > now && c.len > 0)
            .take(max)
        {
            line.clear();
            Self::add(&mut line, set, &c, e, now);
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    fn rules(&self, i: usize, origin: &str, cfg: &RuleCfg, out: &mut String) {
        let set = self.set_name(i);
        let comment = if cfg.comments {
            let clean: String = origin
                .chars()
                .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '\''))
                .take(200)
                .collect();
            format!(" -m comment --comment \"rampart: {clean}\"")
        } else {
            String::new()
        };
        if let Some(prefix) = &cfg.log_prefix {
            let _ = writeln!(
                out,
                "-A {CHAIN} -m set --match-set {set} src -j LOG --log-prefix \"{prefix}\""
            );
        }
        let _ = writeln!(
            out,
            "-A {CHAIN} -m set --match-set {set} src{comment} -j {}",
            cfg.target
        );
    }

    fn iptables(&self, args: &[&str]) -> Result<String, FwError> {
        let mut a = vec!["-w"];
        a.extend_from_slice(args);
        cmd::run(&self.iptables, &a, None)
    }

    fn restore(&self, script: &str) -> Result<(), FwError> {
        cmd::run(
            &self.restore,
            &["-w", "--noflush"],
            Some(&mut |w: &mut dyn Write| w.write_all(script.as_bytes())),
        )
        .map(|_| ())
    }

    /// Puts the jump to the chain at the top of every configured chain, once.
    fn jumps(&self) -> Result<(), FwError> {
        for c in &self.chains {
            if self.iptables(&["-C", c, "-j", CHAIN]).is_err() {
                self.iptables(&["-I", c, "1", "-j", CHAIN])?;
            }
        }
        Ok(())
    }

    /// Whether `name` is one of this side's set names (or a temporary one).
    fn ours(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('-'))
            .map(|r| r.trim_end_matches('t'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

struct RuleCfg {
    target: &'static str,
    log_prefix: Option<String>,
    comments: bool,
    counters: bool,
}

/// The iptables + ipset backend.
pub(crate) struct Ipset {
    ipset: PathBuf,
    maxelem: u32,
    rules: RuleCfg,
    v4: Option<Side<u32>>,
    v6: Option<Side<u128>>,
}

impl Ipset {
    pub(crate) fn new(cfg: &Config) -> Self {
        let v4 = cfg.ipv4.then(|| Side {
            family: "inet",
            iptables: cmd::find("iptables"),
            restore: cmd::find("iptables-restore"),
            save: cmd::find("iptables-save"),
            prefix: cfg.blacklists_ipv4.clone(),
            chains: cfg.iptables_v4_chains.clone(),
            known: 0,
            pick: |o| &o.v4,
            edits: |e| &e.v4,
        });
        let v6 = cfg.ipv6.then(|| Side {
            family: "inet6",
            iptables: cmd::find("ip6tables"),
            restore: cmd::find("ip6tables-restore"),
            save: cmd::find("ip6tables-save"),
            prefix: cfg.blacklists_ipv6.clone(),
            chains: cfg.iptables_v6_chains.clone(),
            known: 0,
            pick: |o| &o.v6,
            edits: |e| &e.v6,
        });
        Self {
            ipset: cmd::find("ipset"),
            maxelem: cfg.ipset_size,
            rules: RuleCfg {
                target: match cfg.deny_action {
                    DenyAction::Drop => "DROP",
                    DenyAction::Reject => "REJECT",
                },
                log_prefix: cfg.deny_log.then(|| cfg.deny_log_prefix.clone()),
                comments: cfg.iptables_add_rule_comments,
                counters: cfg.counters,
            },
            v4,
            v6,
        }
    }

    fn ipset_restore(&self, w: cmd::Feed<'_>) -> Result<(), FwError> {
        cmd::run(&self.ipset, &["-exist", "restore"], Some(w)).map(|_| ())
    }

    fn existing_sets(&self) -> Result<HashSet<String>, FwError> {
        Ok(cmd::run(&self.ipset, &["list", "-n"], None)?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Fills temporary sets and swaps them in.
    fn load_side<A: Addr>(
        &self,
        side: &Side<A>,
        state: &State,
        existing: &HashSet<String>,
        now: u64,
    ) -> Result<(), FwError> {
        let mut head = String::new();
        let mut tail = String::new();
        for (i, o) in state.origins.iter().enumerate() {
            let fs = (side.pick)(o);
            let name = side.set_name(i);
            let tmp = format!("{name}t");
            if existing.contains(&tmp) {
                let _ = writeln!(head, "destroy {tmp}");
            }
            // Sized for the load so that the kernel does not rehash a million entries
            // repeatedly while they arrive.
            let hashsize = fs.len().next_power_of_two().clamp(1024, 1 << 22);
            side.create(&tmp, self.maxelem, hashsize, &mut head);
            if existing.contains(&name) {
                let _ = writeln!(tail, "swap {tmp} {name}\ndestroy {tmp}");
            } else {
                let _ = writeln!(tail, "rename {tmp} {name}");
            }
        }
        let max = usize::try_from(self.maxelem).unwrap_or(usize::MAX);
        for o in &state.origins {
            let fs = (side.pick)(o);
            if fs.len() > max {
                tracing::error!(
                    origin = %o.name,
                    decisions = fs.len(),
                    ipset_size = max,
                    "more decisions than the set can hold; raise ipset_size"
                );
            }
        }
        self.ipset_restore(&mut |w: &mut dyn Write| {
            w.write_all(head.as_bytes())?;
            for (i, o) in state.origins.iter().enumerate() {
                let tmp = format!("{}t", side.set_name(i));
                Side::fill((side.pick)(o), &tmp, max, now, w)?;
            }
            w.write_all(tail.as_bytes())
        })
    }

    fn chain_script<A: Addr>(&self, side: &Side<A>, state: &State) -> String {
        let mut s = format!("*filter\n:{CHAIN} - [0:0]\n");
        if self.rules.counters {
            // Everything the chain sees: the `processed` metric.
            let _ = writeln!(s, "-A {CHAIN} -m comment --comment \"rampart: processed\"");
        }
        for (i, o) in state.origins.iter().enumerate() {
            side.rules(i, &o.name, &self.rules, &mut s);
        }
        s.push_str("COMMIT\n");
        s
    }

    fn rebuild_side<A: Addr>(
        &self,
        side: &Side<A>,
        state: &State,
        existing: &HashSet<String>,
        now: u64,
    ) -> Result<(), FwError> {
        self.load_side(side, state, existing, now)?;
        side.restore(&self.chain_script(side, state))?;
        side.jumps()?;
        // Sets of origins an earlier run knew and this one does not: no rule uses them now.
        let wanted: HashSet<String> = (0..state.origins.len()).map(|i| side.set_name(i)).collect();
        let mut destroy = String::new();
        for name in existing {
            if side.ours(name) && !wanted.contains(name) && !name.ends_with('t') {
                let _ = writeln!(destroy, "destroy {name}");
            }
        }
        if !destroy.is_empty() {
            self.ipset_restore(&mut |w: &mut dyn Write| w.write_all(destroy.as_bytes()))?;
        }
        Ok(())
    }

    /// Element lines for one batch of one family.
    fn delta_lines<A: Addr>(
        &self,
        side: &Side<A>,
        state: &State,
        edits: &Edits,
        now: u64,
        out: &mut String,
    ) {
        let max = usize::try_from(self.maxelem).unwrap_or(usize::MAX);
        for (&i, fe) in (side.edits)(edits) {
            let Some(o) = state.origins.get(i) else {
                continue;
            };
            let fs = (side.pick)(o);
            let set = side.set_name(i);
            let full = fs.len() > max;
            if full {
                tracing::error!(origin = %o.name, ipset_size = max, "set full; new decisions of this origin are not enforced, raise ipset_size");
            }
            let singles = fe.singles.iter().map(|(a, before)| {
                (
                    Cidr {
                        start: *a,
                        len: A::BITS,
                    },
                    *before,
                    fs.singles.get(a).copied(),
                )
            });
            let ranges = fe
                .ranges
                .iter()
                .map(|(c, before)| (*c, *before, fs.ranges.get(c).copied()));
            for (c, before, after) in singles.chain(ranges) {
                if c.len == 0 {
                    continue;
                }
                match after.filter(|e| *e > now) {
                    Some(e) if !(full && before.is_none()) => Side::<A>::add(out, &set, &c, e, now),
                    _ if before.is_some() => {
                        let _ = write!(out, "del {set} ");
                        c.write_to(out);
                        out.push('\n');
                    }
                    _ => {}
                }
            }
        }
    }

    fn counters_side<A: Addr>(
        &self,
        side: &Side<A>,
        state: &State,
        out: &mut Counters,
    ) -> Result<(), FwError> {
        let text = cmd::run(&side.save, &["-c", "-t", "filter"], None)?;
        let mut processed = (0, 0);
        let mut dropped = std::collections::BTreeMap::new();
        let prefix = format!("-A {CHAIN} ");
        for line in text.lines() {
            let Some((counts, rule)) = line.strip_prefix('[').and_then(|l| l.split_once("] "))
            else {
                continue;
            };
            if !rule.starts_with(&prefix) || rule.contains("-j LOG") {
                continue;
            }
            let Some((p, b)) = counts.split_once(':') else {
                continue;
            };
            let (Ok(p), Ok(b)) = (p.parse::<u64>(), b.parse::<u64>()) else {
                continue;
            };
            let set = rule
                .split_once("--match-set ")
                .and_then(|(_, r)| r.split_whitespace().next());
            match set {
                Some(set) => {
                    let idx = set
                        .strip_prefix(&side.prefix)
                        .and_then(|r| r.strip_prefix('-'))
                        .and_then(|n| n.parse::<usize>().ok());
                    if let Some(i) = idx {
                        let d: &mut (u64, u64) = dropped.entry(i).or_default();
                        d.0 += p;
                        d.1 += b;
                    }
                }
                None => {
                    processed.0 += p;
                    processed.1 += b;
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

    fn remove_side<A: Addr>(&self, side: &Side<A>, existing: &HashSet<String>) -> Vec<FwError> {
        let mut errors = Vec::new();
        for c in &side.chains {
            // Several jumps can exist if someone else added one; remove them all.
            for _ in 0..16 {
                if side.iptables(&["-D", c, "-j", CHAIN]).is_err() {
                    break;
                }
            }
        }
        if side.iptables(&["-n", "-L", CHAIN]).is_ok() {
            for args in [["-F", CHAIN], ["-X", CHAIN]] {
                if let Err(e) = side.iptables(&args) {
                    errors.push(e);
                }
            }
        }
        let mut destroy = String::new();
        for name in existing {
            if side.ours(name) {
                let _ = writeln!(destroy, "destroy {name}");
            }
        }
        if !destroy.is_empty()
            && let Err(e) =
                self.ipset_restore(&mut |w: &mut dyn Write| w.write_all(destroy.as_bytes()))
        {
            errors.push(e);
        }
        errors
    }
}

impl Backend for Ipset {
    fn rebuild(&mut self, state: &State, now: u64) -> Result<(), FwError> {
        let existing = self.existing_sets()?;
        if let Some(s) = &self.v4 {
            self.rebuild_side(s, state, &existing, now)?;
        }
        if let Some(s) = &self.v6 {
            self.rebuild_side(s, state, &existing, now)?;
        }
        let n = state.origins.len();
        if let Some(s) = self.v4.as_mut() {
            s.known = n;
        }
        if let Some(s) = self.v6.as_mut() {
            s.known = n;
        }
        Ok(())
    }

    fn apply(&mut self, state: &State, edits: &Edits, now: u64) -> Result<(), FwError> {
        let mut script = String::new();
        let n = state.origins.len();
        let mut rules4 = String::new();
        let mut rules6 = String::new();
        if let Some(s) = &self.v4 {
            for i in s.known..n {
                s.create(&s.set_name(i), self.maxelem, 1024, &mut script);
                s.rules(i, &state.origins[i].name, &self.rules, &mut rules4);
            }
            self.delta_lines(s, state, edits, now, &mut script);
        }
        if let Some(s) = &self.v6 {
            for i in s.known..n {
                s.create(&s.set_name(i), self.maxelem, 1024, &mut script);
                s.rules(i, &state.origins[i].name, &self.rules, &mut rules6);
            }
            self.delta_lines(s, state, edits, now, &mut script);
        }
        if !script.is_empty() {
            self.ipset_restore(&mut |w: &mut dyn Write| w.write_all(script.as_bytes()))?;
        }
        if let (false, Some(s)) = (rules4.is_empty(), &self.v4) {
            s.restore(&format!("*filter\n{rules4}COMMIT\n"))?;
        }
        if let (false, Some(s)) = (rules6.is_empty(), &self.v6) {
            s.restore(&format!("*filter\n{rules6}COMMIT\n"))?;
        }
        if let Some(s) = self.v4.as_mut() {
            s.known = n;
        }
        if let Some(s) = self.v6.as_mut() {
            s.known = n;
        }
        Ok(())
    }

    fn refresh(&mut self, state: &State, now: u64) -> Result<(), FwError> {
        let mut script = String::new();
        let limit = MAX_TIMEOUT_S * 1000 - REFRESH_MARGIN_MS;
        fn long<A: Addr>(side: &Side<A>, state: &State, now: u64, limit: u64, out: &mut String) {
            for (i, o) in state.origins.iter().enumerate().take(side.known) {
                let fs = (side.pick)(o);
                let set = side.set_name(i);
                let singles = fs.singles.iter().map(|(a, e)| {
                    (
                        Cidr {
                            start: *a,
                            len: A::BITS,
                        },
                        *e,
                    )
                });
                let ranges = fs.ranges.iter().map(|(c, e)| (*c, *e));
                for (c, e) in singles.chain(ranges) {
                    if e.saturating_sub(now) > limit && c.len > 0 {
                        Side::<A>::add(out, &set, &c, e, now);
                    }
                }
            }
        }
        if let Some(s) = &self.v4 {
            long(s, state, now, limit, &mut script);
        }
        if let Some(s) = &self.v6 {
            long(s, state, now, limit, &mut script);
        }
        if script.is_empty() {
            return Ok(());
        }
        self.ipset_restore(&mut |w: &mut dyn Write| w.write_all(script.as_bytes()))
    }

    fn counters(&mut self, state: &State) -> Result<Counters, FwError> {
        let mut out = Counters::default();
        if let Some(s) = &self.v4 {
            self.counters_side(s, state, &mut out)?;
        }
        if let Some(s) = &self.v6 {
            self.counters_side(s, state, &mut out)?;
        }
        Ok(out)
    }

    fn remove(&mut self) -> Result<(), FwError> {
        let existing = self.existing_sets()?;
        let mut errors = Vec::new();
        if let Some(s) = &self.v4 {
            errors.extend(self.remove_side(s, &existing));
        }
        if let Some(s) = &self.v6 {
            errors.extend(self.remove_side(s, &existing));
        }
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Ban;
    use crate::state::Change;
    use crate::target::Target;

    fn backend() -> Ipset {
        let cfg = Config::parse(
            std::path::Path::new("t.yaml"),
            "mode: iptables\napi_url: http://x/\napi_key: k\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Ipset::new(&cfg)
    }

    fn ban(origin: &str, v: &str) -> Ban {
        Ban {
            origin: origin.into(),
            target: Target::parse(v).unwrap_or_else(|| panic!("{v}")),
            left_ms: 0,
        }
    }

    #[test]
    fn timeouts_are_whole_seconds_within_ipset_limits() {
        assert_eq!(timeout_s(10_001, 10_000), 1);
        assert_eq!(timeout_s(12_500, 10_000), 3);
        assert_eq!(timeout_s(u64::MAX, 0), MAX_TIMEOUT_S);
    }

    #[test]
    fn batch_lines_and_rules() {
        let b = backend();
        let mut st = State::default();
        st.insert(&ban("crowdsec", "192.0.2.1"), 100_000);
        let edits = st.apply(&[
            Change::Remove(ban("crowdsec", "192.0.2.1")),
            Change::Put(ban("crowdsec", "10.0.0.0/8"), 50_000),
            Change::Remove(ban("crowdsec", "192.0.2.99")),
        ]);
        let mut out = String::new();
        if let Some(s) = &b.v4 {
            b.delta_lines(s, &st, &edits, 1_000, &mut out);
        }
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "add rampart-blacklists-0 10.0.0.0/8 timeout 49",
                "del rampart-blacklists-0 192.0.2.1"
            ]
        );
        let mut rules = String::new();
        if let Some(s) = &b.v4 {
            s.rules(0, "lists:a \"b\"", &b.rules, &mut rules);
            assert!(s.ours("rampart-blacklists-12") && s.ours("rampart-blacklists-3t"));
            assert!(!s.ours("rampart-blacklists-") && !s.ours("rampart-blacklists-x"));
        }
        assert_eq!(
            rules,
            "-A RAMPART_CHAIN -m set --match-set rampart-blacklists-0 src -m comment --comment \"rampart: lists:ab\" -j DROP\n"
        );
    }
}
