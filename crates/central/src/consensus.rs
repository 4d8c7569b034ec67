//! The consensus engine: which reported IPs the community lists, and how much each reporting
//! machine is believed. Pure: no HTTP, no SQL, no clock (time is an argument), so the server's
//! consensus job and the simulation run exactly the same code.
//!
//! # Rules, and why
//!
//! * **One voice per machine and IP.** Evidence is keyed by (IP, machine): a machine that reports
//!   an IP a thousand times weighs what it weighs when it reports it once (a flood is one voice).
//! * **A machine's weight is earned** ([`Engine::trust`]). A new machine starts at
//!   `trust.new_machine` (0.05). Trust grows with *confirmations* — IPs it reported before they
//!   were corroborated by `confirm_networks` distinct networks — and is gated by age (ramping
//!   over `trust.age_ramp`). A machine that only reports what nobody else sees stays at the floor
//!   however old it is, so buying old accounts does not help; a report that merely echoes an
//!   already-confirmed IP earns nothing, so replaying the public blocklist does not help either.
//!   Reports on allowlisted addresses are false positives and divide trust.
//! * **A network is a few voices at most.** Machines are grouped by network (their AS, else their
//!   /24 or /48). Within a network contributions are sorted and summed geometrically
//!   (`c₁ + c₂·r + c₃·r² …`, r = `network_decay`), capped at `network_cap`: a thousand sybils in
//!   one network weigh at most `c_max / (1 − r)`, i.e. twice one of them.
//! * **Diversity is required.** An IP is listed when its score (sum of network voices) reaches
//!   `threshold` *and* at least `min_networks` networks each give a voice of at least
//!   `min_network_voice` *and* at least `min_machines` machines reported it. Untrusted machines
//!   (0.05) cannot make a network voice of 0.25 however many they are, so sybil groups of new or
//!   unconfirmed machines list nothing, whatever the number of networks.
//! * **Recency decays.** A report's weight halves every `half_life`; reports older than `window`
//!   are dropped. A listed IP stays listed while its score is at least `keep_threshold` (lower
//!   than `threshold`, so a borderline IP does not flap) and is delisted when reports stop.
//! * **Scenarios weigh differently.** `scenario_weights` by name, times a factor per scenario
//!   trust (`certified` 1, `tainted`/`custom` 0.5, `manual` 0: an operator's manual ban is an
//!   opinion, not a detection).
//! * **Allowlists win.** Ranges in `allowlist` (CDNs, search engines, resolvers, private space)
//!   are never listed, whatever the evidence.
//!
//! Known limit: a group that controls at least `confirm_networks` networks can corroborate its
//! own reports and farm trust slowly; the default (4) sits above the 1–3 networks a sybil group
//! is assumed to hold. Raise it as the community grows.

use std::collections::HashMap;
use std::sync::Arc;

use model::IpRange;
use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How machine trust is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// Trust of a machine with no confirmed report.
    pub new_machine: f64,
    /// Age (ms) at which a machine's trust is no longer held back by its age.
    #[serde(deserialize_with = "crate::config::de_ms")]
    pub age_ramp_ms: i64,
    /// Confirmations for half of the earnable trust.
    pub confirm_half: f64,
    /// Each false positive divides trust by `1 + fp_penalty`·(count).
    pub fp_penalty: f64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            new_machine: 0.05,
            age_ramp_ms: 2 * DAY_MS,
            confirm_half: 3.0,
            fp_penalty: 0.5,
        }
    }
}

/// A named allowlisted range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllowEntry {
    /// IP or CIDR.
    pub range: String,
    /// Why (shown in logs).
    #[serde(default)]
    pub reason: String,
}

/// The consensus rules (see the module documentation for the reasoning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Score to be listed.
    pub threshold: f64,
    /// Score to stay listed.
    pub keep_threshold: f64,
    /// Networks that must each give at least `min_network_voice`.
    pub min_networks: usize,
    /// Smallest network voice that counts towards `min_networks`.
    pub min_network_voice: f64,
    /// Distinct reporting machines required.
    pub min_machines: usize,
    /// Most a single network can add to a score.
    pub network_cap: f64,
    /// Ratio of the geometric sum inside one network.
    pub network_decay: f64,
    /// Half-life of a report's weight (ms).
    #[serde(deserialize_with = "crate::config::de_ms")]
    pub half_life_ms: i64,
    /// Reports older than this (ms) are ignored and pruned.
    #[serde(deserialize_with = "crate::config::de_ms")]
    pub window_ms: i64,
    /// Distinct networks (any trust) that confirm an IP and credit its earlier reporters.
    pub confirm_networks: usize,
    /// Trust.
    pub trust: TrustConfig,
    /// Weight per scenario name (default `default_scenario_weight`).
    pub scenario_weights: HashMap<String, f64>,
    /// Weight of a scenario not in `scenario_weights`.
    pub default_scenario_weight: f64,
    /// Factor per `scenario_trust` of the signal (`certified`, `tainted`, `custom`, `manual`).
    pub scenario_trust_weights: HashMap<String, f64>,
    /// Never listed.
    pub allowlist: Vec<AllowEntry>,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            threshold: 1.2,
            keep_threshold: 0.5,
            min_networks: 3,
            min_network_voice: 0.25,
            min_machines: 3,
            network_cap: 1.0,
            network_decay: 0.5,
            half_life_ms: DAY_MS,
            window_ms: 7 * DAY_MS,
            confirm_networks: 4,
            trust: TrustConfig::default(),
            scenario_weights: HashMap::new(),
            default_scenario_weight: 1.0,
            scenario_trust_weights: [
                ("certified", 1.0),
                ("tainted", 0.5),
                ("custom", 0.5),
                ("manual", 0.0),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            allowlist: default_allowlist(),
        }
    }
}

/// Ranges no community list may contain: private and special-purpose space (it means a
/// different host at every site), public resolvers, the large CDNs (one address fronts
/// thousands of sites) and search-engine crawlers. Documentation ranges are *not* here: they
/// stand for attackers in tests.
pub fn default_allowlist() -> Vec<AllowEntry> {
    let groups: &[(&str, &[&str])] = &[
        (
            "private or special-purpose space",
            &[
                "0.0.0.0/8",
                "10.0.0.0/8",
                "100.64.0.0/10",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "224.0.0.0/4",
                "240.0.0.0/4",
                "::1/128",
                "::/128",
                "fc00::/7",
                "fe80::/10",
                "ff00::/8",
            ],
        ),
        (
            "public DNS resolver",
            &[
                "8.8.8.8/32",
                "8.8.4.4/32",
                "1.1.1.1/32",
                "1.0.0.1/32",
                "9.9.9.9/32",
                "149.112.112.112/32",
                "208.67.222.222/32",
                "208.67.220.220/32",
            ],
        ),
        (
            "Cloudflare",
            &[
                "173.245.48.0/20",
                "103.21.244.0/22",
                "103.22.200.0/22",
                "103.31.4.0/22",
                "141.101.64.0/18",
                "108.162.192.0/18",
                "190.93.240.0/20",
                "188.114.96.0/20",
                "197.234.240.0/22",
                "198.41.128.0/17",
                "162.158.0.0/15",
                "104.16.0.0/13",
                "104.24.0.0/14",
                "172.64.0.0/13",
                "131.0.72.0/22",
                "2400:cb00::/32",
                "2606:4700::/32",
                "2803:f800::/32",
                "2405:b500::/32",
                "2405:8100::/32",
                "2a06:98c0::/29",
                "2c0f:f248::/32",
            ],
        ),
        ("Googlebot", &["66.249.64.0/19"]),
        (
            "Bingbot",
            &[
                "157.55.39.0/24",
                "207.46.13.0/24",
                "40.77.167.0/24",
                "13.66.139.0/24",
            ],
        ),
    ];
    groups
        .iter()
        .flat_map(|(reason, ranges)| {
            ranges.iter().map(|r| AllowEntry {
                range: (*r).to_owned(),
                reason: (*reason).to_owned(),
            })
        })
        .collect()
}

/// What the engine knows of a machine.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineStats {
    /// Registration time (ms).
    pub created_at: i64,
    /// IPs it reported before they were confirmed.
    pub confirmed: u32,
    /// Reports of allowlisted addresses.
    pub false_positives: u32,
}

/// One machine's report of one IP (the latest of possibly many).
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Machine key.
    pub machine: u64,
    /// Network key of the machine when it reported.
    pub network: u64,
    /// Scenario of its latest report.
    pub scenario: Arc<str>,
    /// Scenario weight × scenario-trust factor.
    pub weight: f64,
    /// First report (ms).
    pub first_seen: i64,
    /// Latest report (ms).
    pub last_seen: i64,
}

/// How an IP stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Sum of network voices.
    pub score: f64,
    /// Networks whose voice reaches `min_network_voice`.
    pub networks: usize,
    /// Distinct networks that reported it, trusted or not.
    pub raw_networks: usize,
    /// Distinct machines with a non-zero weight.
    pub machines: usize,
    /// Scenario carrying the most weight.
    pub scenario: Arc<str>,
}

/// The rules, with the allowlist parsed.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: ConsensusConfig,
    allow: Vec<(IpRange, String)>,
}

impl Engine {
    /// Parses the allowlist; entries that are not IPs or CIDRs are returned as errors.
    pub fn new(cfg: ConsensusConfig) -> Result<Self, String> {
        let mut allow = Vec::with_capacity(cfg.allowlist.len());
        for e in &cfg.allowlist {
            let r = IpRange::parse(&e.range).map_err(|err| format!("allowlist: {err}"))?;
            allow.push((r, e.reason.clone()));
        }
        Ok(Self { cfg, allow })
    }

    /// The rules.
    pub fn config(&self) -> &ConsensusConfig {
        &self.cfg
    }

    /// Why `value` may never be listed, if it may not (an allowlisted range contains it or
    /// overlaps it).
    pub fn allowlisted(&self, value: &str) -> Option<&str> {
        let r = IpRange::parse(value).ok()?;
        self.allow
            .iter()
            .find(|(a, _)| a.contains(&r) || r.contains(a))
            .map(|(_, why)| why.as_str())
    }

    /// Scenario weight × scenario-trust factor of a signal.
    pub fn weight(&self, scenario: &str, scenario_trust: &str) -> f64 {
        let w = self
            .cfg
            .scenario_weights
            .get(scenario)
            .copied()
            .unwrap_or(self.cfg.default_scenario_weight);
        let t = if scenario_trust.is_empty() {
            1.0
        } else {
            self.cfg
                .scenario_trust_weights
                .get(scenario_trust)
                .copied()
                .unwrap_or(1.0)
        };
        (w * t).max(0.0)
    }

    /// A machine's trust in `[0, 1]` at `now`.
    pub fn trust(&self, m: &MachineStats, now: i64) -> f64 {
        let t = &self.cfg.trust;
        let age = if t.age_ramp_ms <= 0 {
            1.0
        } else {
            ((now - m.created_at) as f64 / t.age_ramp_ms as f64).clamp(0.0, 1.0)
        };
        let c = f64::from(m.confirmed);
        let earned = if c <= 0.0 {
            0.0
        } else {
            c / (c + t.confirm_half.max(f64::MIN_POSITIVE))
        };
        let base = t.new_machine + (1.0 - t.new_machine) * earned * age;
        let fp = 1.0 + t.fp_penalty * f64::from(m.false_positives);
        (base / fp).clamp(0.0, 1.0)
    }

    /// Scores one IP from its evidence. `trust` gives each machine's trust.
    pub fn assess(&self, evidence: &[Evidence], trust: impl Fn(u64) -> f64, now: i64) -> Verdict {
        let cfg = &self.cfg;
        let mut by_net: HashMap<u64, Vec<f64>> = HashMap::new();
        let mut scen: HashMap<&Arc<str>, f64> = HashMap::new();
        let mut machines = 0;
        let mut raw: Vec<u64> = Vec::new();
        for e in evidence {
            if now - e.last_seen > cfg.window_ms {
                continue;
            }
            raw.push(e.network);
            if e.weight <= 0.0 {
                continue;
            }
            machines += 1;
            let age = (now - e.last_seen).max(0) as f64;
            let decay = if cfg.half_life_ms > 0 {
                0.5f64.powf(age / cfg.half_life_ms as f64)
            } else {
                1.0
            };
            let c = trust(e.machine) * e.weight * decay;
            by_net.entry(e.network).or_default().push(c);
            *scen.entry(&e.scenario).or_default() += c + 1e-9;
        }
        raw.sort_unstable();
        raw.dedup();
        let mut score = 0.0;
        let mut networks = 0;
        for contribs in by_net.values_mut() {
            contribs.sort_unstable_by(|a, b| b.total_cmp(a));
            let mut voice = 0.0;
            let mut f = 1.0;
            for c in contribs.iter() {
                voice += c * f;
                f *= cfg.network_decay;
            }
            let voice = voice.min(cfg.network_cap);
            if voice >= cfg.min_network_voice {
                networks += 1;
            }
            score += voice;
        }
        let scenario = scen
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(s, _)| Arc::clone(s))
            .unwrap_or_else(|| Arc::from(""));
        Verdict {
            score,
            networks,
            raw_networks: raw.len(),
            machines,
            scenario,
        }
    }

    /// Whether a verdict lists an IP that is not listed yet.
    pub fn lists(&self, v: &Verdict) -> bool {
        v.score >= self.cfg.threshold
            && v.networks >= self.cfg.min_networks
            && v.machines >= self.cfg.min_machines
    }

    /// Whether a verdict keeps a listed IP listed.
    pub fn keeps(&self, v: &Verdict) -> bool {
        v.score >= self.cfg.keep_threshold
    }
}

/// One IP's state in a [`Ledger`].
#[derive(Debug, Clone, Default)]
pub struct IpState {
    /// One entry per reporting machine.
    pub evidence: Vec<Evidence>,
    /// Its early reporters were credited.
    pub confirmed: bool,
    /// Listed now.
    pub listed: bool,
}

/// A change the evaluation made.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Newly listed.
    Listed {
        /// The IP or range.
        value: String,
        /// Why.
        verdict: Verdict,
        /// Earliest report among its evidence (ms).
        first_report: i64,
    },
    /// No longer listed.
    Delisted {
        /// The IP or range.
        value: String,
    },
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Listings and delistings.
    pub changes: Vec<Change>,
    /// IPs confirmed in this pass.
    pub confirmed_ips: Vec<String>,
    /// Confirmations credited, per machine.
    pub credits: Vec<(u64, u32)>,
}

/// Evidence per IP and stats per machine, in memory. The server loads the part it needs from
/// PostgreSQL for each pass; the simulation keeps the whole world in one.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Machines by key.
    pub machines: HashMap<u64, MachineStats>,
    /// IPs by value.
    pub ips: HashMap<String, IpState>,
    dirty: Vec<String>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or merges) one machine's report of `value`. Returns `false` (nothing recorded)
    /// when the value is allowlisted; the caller counts that as a false positive.
    pub fn report(&mut self, engine: &Engine, value: &str, e: Evidence) -> bool {
        if engine.allowlisted(value).is_some() {
            return false;
        }
        let st = self.ips.entry(value.to_owned()).or_default();
        match st.evidence.iter_mut().find(|x| x.machine == e.machine) {
            Some(x) => {
                x.first_seen = x.first_seen.min(e.first_seen);
                if e.last_seen >= x.last_seen {
                    x.last_seen = e.last_seen;
                    x.network = e.network;
                    x.scenario = e.scenario;
                    x.weight = e.weight;
                }
            }
            None => st.evidence.push(e),
        }
        self.dirty.push(value.to_owned());
        true
    }

    /// Marks an IP for the next evaluation (the server loads IPs that changed).
    pub fn touch(&mut self, value: &str) {
        self.dirty.push(value.to_owned());
    }

    /// Evaluates the IPs reported since the last pass plus every listed IP (whose score decays),
    /// applies the changes to the ledger and returns them.
    pub fn evaluate(&mut self, engine: &Engine, now: i64) -> Outcome {
        let mut todo = std::mem::take(&mut self.dirty);
        todo.extend(
            self.ips
                .iter()
                .filter(|(_, s)| s.listed)
                .map(|(k, _)| k.clone()),
        );
        todo.sort_unstable();
        todo.dedup();
        self.evaluate_ips(engine, &todo, now)
    }

    /// Evaluates only the IPs reported since the last pass (listed ones are left to the next
    /// [`Ledger::evaluate`]: their decay is slow, so a frequent pass need not rescore them).
    pub fn evaluate_dirty(&mut self, engine: &Engine, now: i64) -> Outcome {
        let mut todo = std::mem::take(&mut self.dirty);
        todo.sort_unstable();
        todo.dedup();
        self.evaluate_ips(engine, &todo, now)
    }

    /// Evaluates the given IPs.
    pub fn evaluate_ips(&mut self, engine: &Engine, values: &[String], now: i64) -> Outcome {
        let mut out = Outcome::default();
        let mut credits: HashMap<u64, u32> = HashMap::new();
        for value in values {
            let Some(st) = self.ips.get(value) else {
                continue;
            };
            let machines = &self.machines;
            let verdict = engine.assess(
                &st.evidence,
                |m| {
                    machines
                        .get(&m)
                        .map_or(engine.config().trust.new_machine, |s| engine.trust(s, now))
                },
                now,
            );
            let confirm = !st.confirmed && verdict.raw_networks >= engine.config().confirm_networks;
            let allowed = engine.allowlisted(value).is_some();
            let change = if st.listed {
                (allowed || !engine.keeps(&verdict)).then(|| Change::Delisted {
                    value: value.clone(),
                })
            } else if !allowed && engine.lists(&verdict) {
                Some(Change::Listed {
                    value: value.clone(),
                    first_report: st
                        .evidence
                        .iter()
                        .map(|e| e.first_seen)
                        .min()
                        .unwrap_or(now),
                    verdict,
                })
            } else {
                None
            };
            let listed_now = matches!(change, Some(Change::Listed { .. }));
            let Some(st) = self.ips.get_mut(value) else {
                continue;
            };
            // Being listed by trusted voices confirms an IP too, so a community whose members
            // all sit in few networks still earns trust.
            if (confirm || listed_now) && !st.confirmed {
                st.confirmed = true;
                out.confirmed_ips.push(value.clone());
                for e in &st.evidence {
                    if e.weight > 0.0 && e.first_seen <= now {
                        *credits.entry(e.machine).or_default() += 1;
                    }
                }
            }
            match &change {
                Some(Change::Listed { .. }) => st.listed = true,
                Some(Change::Delisted { .. }) => st.listed = false,
                None => {}
            }
            if let Some(c) = change {
                out.changes.push(c);
            }
        }
        for (m, n) in &credits {
            self.machines.entry(*m).or_default().confirmed += n;
        }
        let mut credits: Vec<(u64, u32)> = credits.into_iter().collect();
        credits.sort_unstable();
        out.credits = credits;
        out
    }

    /// Drops evidence older than the window, and IPs left with none that are not listed.
    pub fn prune(&mut self, engine: &Engine, now: i64) {
        let window = engine.config().window_ms;
        self.ips.retain(|_, st| {
            st.evidence.retain(|e| now - e.last_seen <= window);
            st.listed || !st.evidence.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100 * DAY_MS;

    fn engine() -> Engine {
        Engine::new(ConsensusConfig::default()).unwrap()
    }

    fn ev(machine: u64, network: u64, at: i64) -> Evidence {
        Evidence {
            machine,
            network,
            scenario: Arc::from("crowdsecurity/ssh-bf"),
            weight: 1.0,
            first_seen: at,
            last_seen: at,
        }
    }

    fn veteran() -> MachineStats {
        MachineStats {
            created_at: NOW - 60 * DAY_MS,
            confirmed: 20,
            false_positives: 0,
        }
    }

    fn ledger_with(machines: impl IntoIterator<Item = (u64, MachineStats)>) -> Ledger {
        let mut l = Ledger::new();
        l.machines.extend(machines);
        l
    }

    #[test]
    fn trust_needs_confirmations_and_age() {
        let e = engine();
        let fresh = MachineStats {
            created_at: NOW,
            ..MachineStats::default()
        };
        let old_unconfirmed = MachineStats {
            created_at: NOW - 365 * DAY_MS,
            ..MachineStats::default()
        };
        let young_confirmed = MachineStats {
            created_at: NOW - DAY_MS / 2,
            confirmed: 20,
            false_positives: 0,
        };
        assert!((e.trust(&fresh, NOW) - 0.05).abs() < 1e-9);
        assert!((e.trust(&old_unconfirmed, NOW) - 0.05).abs() < 1e-9);
        assert!(e.trust(&young_confirmed, NOW) < 0.3);
        assert!(e.trust(&veteran(), NOW) > 0.8);
        let liar = MachineStats {
            false_positives: 4,
            ..veteran()
        };
        assert!(e.trust(&liar, NOW) < e.trust(&veteran(), NOW) / 2.0);
    }

    #[test]
    fn diverse_trusted_reports_list_an_ip() {
        let e = engine();
        let mut l = ledger_with((1..=5).map(|m| (m, veteran())));
        for (m, net) in [(1, 10), (2, 10), (3, 20), (4, 30), (5, 30)] {
            assert!(l.report(&e, "192.0.2.7", ev(m, net, NOW - 60_000)));
        }
        let out = l.evaluate(&e, NOW);
        assert!(
            matches!(&out.changes[..], [Change::Listed { value, .. }] if value == "192.0.2.7"),
            "{out:?}"
        );
    }

    #[test]
    fn two_networks_are_not_enough() {
        let e = engine();
        let mut l = ledger_with((1..=6).map(|m| (m, veteran())));
        for m in 1..=6 {
            l.report(&e, "192.0.2.7", ev(m, 10 + m % 2, NOW));
        }
        assert!(l.evaluate(&e, NOW).changes.is_empty());
    }

    #[test]
    fn a_thousand_sybils_in_three_networks_list_nothing() {
        let e = engine();
        // Aged accounts, never confirmed: the floor trust, whatever their number.
        let sybil = MachineStats {
            created_at: NOW - 365 * DAY_MS,
            ..MachineStats::default()
        };
        let mut l = ledger_with((1..=1000).map(|m| (m, sybil)));
        for m in 1..=1000 {
            l.report(&e, "198.51.100.9", ev(m, m % 3, NOW));
        }
        let out = l.evaluate(&e, NOW);
        assert!(out.changes.is_empty(), "{out:?}");
        // Three networks cannot confirm for each other either: no trust is farmed.
        assert!(out.credits.is_empty());
        let v = e.assess(&l.ips["198.51.100.9"].evidence, |_| 0.05, NOW);
        assert!(v.score < 0.31 && v.networks == 0, "{v:?}");
    }

    #[test]
    fn a_flood_from_one_machine_is_one_voice() {
        let e = engine();
        let mut l = ledger_with([(1, veteran())]);
        for i in 0..10_000 {
            l.report(&e, "192.0.2.7", ev(1, 10, NOW - i));
        }
        assert_eq!(l.ips["192.0.2.7"].evidence.len(), 1);
        let v = e.assess(&l.ips["192.0.2.7"].evidence, |_| 1.0, NOW);
        assert!((v.score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn allowlisted_addresses_are_never_listed_and_count_as_false_positives() {
        let e = engine();
        let mut l = ledger_with((1..=9).map(|m| (m, veteran())));
        for m in 1..=9 {
            assert!(!l.report(&e, "66.249.66.1", ev(m, m, NOW)));
        }
        assert!(l.evaluate(&e, NOW).changes.is_empty());
        assert_eq!(e.allowlisted("1.1.1.1"), Some("public DNS resolver"));
        assert_eq!(e.allowlisted("192.0.2.1"), None);
    }

    #[test]
    fn confirmation_credits_early_reporters_only() {
        let e = engine();
        let mut l = ledger_with((1..=6).map(|m| (m, MachineStats::default())));
        for m in 1..=4 {
            l.report(&e, "192.0.2.7", ev(m, m, NOW));
        }
        let out = l.evaluate(&e, NOW);
        assert_eq!(out.confirmed_ips, vec!["192.0.2.7".to_owned()]);
        assert_eq!(out.credits, vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
        // Echoing a confirmed IP earns nothing.
        l.report(&e, "192.0.2.7", ev(5, 5, NOW + 1));
        let out = l.evaluate(&e, NOW + 1);
        assert!(out.credits.is_empty());
        assert_eq!(l.machines[&5].confirmed, 0);
    }

    #[test]
    fn listings_decay_away_when_reports_stop() {
        let e = engine();
        let mut l = ledger_with((1..=5).map(|m| (m, veteran())));
        for m in 1..=5 {
            l.report(&e, "192.0.2.7", ev(m, m, NOW));
        }
        assert_eq!(l.evaluate(&e, NOW).changes.len(), 1);
        // Still listed a day later (hysteresis), gone after a few half-lives.
        assert!(l.evaluate(&e, NOW + DAY_MS).changes.is_empty());
        let out = l.evaluate(&e, NOW + 4 * DAY_MS);
        assert!(
            matches!(&out.changes[..], [Change::Delisted { value }] if value == "192.0.2.7"),
            "{out:?}"
        );
        l.prune(&e, NOW + 8 * DAY_MS);
        assert!(l.ips.is_empty());
    }

    #[test]
    fn manual_decisions_do_not_count() {
        let e = engine();
        assert_eq!(e.weight("x", "manual"), 0.0);
        assert_eq!(e.weight("x", "certified"), 1.0);
        assert_eq!(e.weight("x", ""), 1.0);
        let mut l = ledger_with((1..=5).map(|m| (m, veteran())));
        for m in 1..=5 {
            let mut x = ev(m, m, NOW);
            x.weight = 0.0;
            l.report(&e, "192.0.2.7", x);
        }
        assert!(l.evaluate(&e, NOW).changes.is_empty());
    }
}
