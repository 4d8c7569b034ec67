//! A synthetic community to measure the consensus: honest machines in many networks seeing
//! attackers with realistic overlap (most attackers hit a few machines, mass scanners hit
//! thousands, sweeps stay inside one hoster for a while), honest false positives, and sybil
//! groups of fake machines in one to three networks flooding reports of benign addresses.
//!
//! [`run_engine`] drives the consensus engine in process with simulated time (the 10k-machine
//! world); [`run_http`] drives the real server over HTTP and PostgreSQL at a smaller scale, to
//! measure ingestion and check the whole path end to end.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consensus::{Change, Engine, Evidence, Ledger, MachineStats};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// A small deterministic generator (splitmix64), so a seed gives the same world every time.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
    /// Exponential with this mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// The world's parameters.
#[derive(Debug, Clone)]
pub struct World {
    /// Honest machines.
    pub honest_machines: usize,
    /// Their networks.
    pub honest_networks: usize,
    /// Sybil groups: (machines, networks, echo the public list to farm trust).
    pub sybil_groups: Vec<(usize, usize, bool)>,
    /// Benign addresses each sybil group reports.
    pub sybil_targets: usize,
    /// New attackers per simulated hour.
    pub attackers_per_hour: usize,
    /// Simulated hours; attackers of the first half only build trust (warm-up).
    pub hours: i64,
    /// Share of honest reports that are false positives (benign addresses).
    pub honest_fp_rate: f64,
    /// Consensus pass interval (ms of simulated time).
    pub pass_ms: i64,
    /// Seed.
    pub seed: u64,
}

impl Default for World {
    fn default() -> Self {
        Self {
            honest_machines: 10_000,
            honest_networks: 500,
            sybil_groups: vec![(1000, 1, false), (1000, 2, false), (1000, 3, true)],
            sybil_targets: 50,
            attackers_per_hour: 1500,
            hours: 48,
            honest_fp_rate: 0.01,
            pass_ms: 10_000,
            seed: 42,
        }
    }
}

/// What the run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Attackers started in the measured half.
    pub attackers: usize,
    /// Of which reported by 5+ machines in 3+ networks.
    pub eligible: usize,
    /// Eligible and listed within 10 minutes of becoming eligible.
    pub eligible_listed_10m: usize,
    /// Eligible and listed at all.
    pub eligible_listed: usize,
    /// Attackers listed (measured half).
    pub attackers_listed: usize,
    /// Benign addresses listed (sybil targets and honest false positives), whole run.
    pub benign_listed: usize,
    /// Benign addresses reported (whole run).
    pub benign_reported: usize,
    /// Listed values, whole run.
    pub listed_total: usize,
    /// First report → listing (ms), per listed measured attacker.
    pub first_to_listed: Vec<i64>,
    /// Eligibility → listing (ms), per eligible listed attacker.
    pub eligible_to_listed: Vec<i64>,
    /// Reports fed to the engine.
    pub reports: usize,
    /// Wall time of the run.
    pub wall: Duration,
}

fn quantile(v: &mut [i64], q: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn secs(ms: i64) -> String {
    format!("{:.0} s", ms as f64 / 1000.0)
}

impl Results {
    /// A Markdown table.
    pub fn table(&mut self, w: &World) -> String {
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "n/a".to_owned()
            } else {
                format!("{:.2} %", 100.0 * a as f64 / b as f64)
            }
        };
        let sybils: usize = w.sybil_groups.iter().map(|g| g.0).sum();
        let groups = w
            .sybil_groups
            .iter()
            .map(|(m, n, echo)| {
                format!(
                    "{m} in {n} network{}{}",
                    if *n > 1 { "s" } else { "" },
                    if *echo { " (echoing the list)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let precision = pct(self.listed_total - self.benign_listed, self.listed_total);
        let mut out = String::new();
        let _ = writeln!(out, "| metric | value |\n|---|---|");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, "| {k} | {v} |");
        };
        row(
            "honest machines / networks",
            format!("{} / {}", w.honest_machines, w.honest_networks),
        );
        row("sybil machines", format!("{sybils} ({groups})"));
        row(
            "sybil targets (benign IPs)",
            format!("{} per group", w.sybil_targets),
        );
        row(
            "simulated time",
            format!(
                "{} h (first half warms trust up, second half measured)",
                w.hours
            ),
        );
        row("reports fed to the engine", self.reports.to_string());
        row("attackers (measured half)", self.attackers.to_string());
        row(
            "reported by 5+ machines in 3+ networks",
            self.eligible.to_string(),
        );
        row(
            "of those, listed within 10 min of the 5th machine / 3rd network",
            pct(self.eligible_listed_10m, self.eligible),
        );
        row(
            "of those, listed at all",
            pct(self.eligible_listed, self.eligible),
        );
        row(
            "recall over all attackers (most are seen by 1-2 machines)",
            pct(self.attackers_listed, self.attackers),
        );
        row(
            "benign IPs listed / reported",
            format!("{} / {}", self.benign_listed, self.benign_reported),
        );
        row("precision of the blocklist", precision);
        let mut a = self.first_to_listed.clone();
        row(
            "first report → listed: median / p95",
            format!(
                "{} / {}",
                secs(quantile(&mut a, 0.5)),
                secs(quantile(&mut a, 0.95))
            ),
        );
        let mut b = self.eligible_to_listed.clone();
        row(
            "eligible → listed: median / p95",
            format!(
                "{} / {}",
                secs(quantile(&mut b, 0.5)),
                secs(quantile(&mut b, 0.95))
            ),
        );
        row(
            "engine throughput (in process, incl. passes)",
            format!(
                "{:.0} reports/s ({:.1} s wall)",
                self.reports as f64 / self.wall.as_secs_f64().max(1e-9),
                self.wall.as_secs_f64()
            ),
        );
        out
    }
}

/// One scheduled report.
#[derive(Debug, Clone, Copy)]
struct Ev {
    at: i64,
    machine: u32,
    target: u32,
}

/// Targets: attackers, then benign addresses.
struct Target {
    value: String,
    attacker: bool,
    start: i64,
    measured: bool,
}

/// Runs the world through the engine with simulated time.
pub fn run_engine(w: &World, engine: &Engine) -> Results {
    let wall = Instant::now();
    let mut rng = Rng::new(w.seed);
    let t0 = 400 * DAY;
    let end = t0 + w.hours * HOUR;
    let half = t0 + w.hours * HOUR / 2;

    // Networks with a heavy-tailed size (a few big hosters, many small ones).
    let weights: Vec<f64> = (0..w.honest_networks)
        .map(|i| 1.0 / (1.0 + i as f64).powf(0.8))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut net_of: Vec<u64> = Vec::new();
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); w.honest_networks];
    let mut ledger = Ledger::new();
    for m in 0..w.honest_machines {
        // Every network gets at least one machine, the rest by weight.
        let n = if m < w.honest_networks {
            m
        } else {
            let mut x = rng.unit() * total;
            let mut n = 0;
            while n + 1 < weights.len() && x > weights[n] {
                x -= weights[n];
                n += 1;
            }
            n
        };
        net_of.push(n as u64);
        members[n].push(m as u32);
        // Most members have been around for months; one in twenty joined in the last two weeks.
        let age = if rng.unit() < 0.05 {
            rng.unit() * 14.0 * DAY as f64
        } else {
            (30.0 + rng.unit() * 335.0) * DAY as f64
        };
        ledger.machines.insert(
            m as u64,
            MachineStats {
                created_at: t0 - age as i64,
                ..MachineStats::default()
            },
        );
    }
    let honest = w.honest_machines;
    let mut sybil_ranges = Vec::new();
    for (g, (count, nets, _)) in w.sybil_groups.iter().enumerate() {
        let first = net_of.len();
        for i in 0..*count {
            net_of.push(1_000_000 + (g * 10 + i % nets.max(&1)) as u64);
            // Sybils may be aged accounts too: age alone earns nothing.
            let created = if g % 2 == 0 { t0 } else { t0 - 300 * DAY };
            ledger.machines.insert(
                (first + i) as u64,
                MachineStats {
                    created_at: created,
                    ..MachineStats::default()
                },
            );
        }
        sybil_ranges.push(first..first + count);
    }

    let mut targets: Vec<Target> = Vec::new();
    let mut events: Vec<Ev> = Vec::new();
    let benign_value = |i: usize| format!("198.18.{}.{}", (i / 250) % 256, 1 + i % 250);
    // Benign addresses: sybil targets first, then the honest false positives.
    for (g, range) in sybil_ranges.iter().enumerate() {
        for t in 0..w.sybil_targets {
            let id = targets.len() as u32;
            targets.push(Target {
                value: benign_value(g * 1000 + t),
                attacker: false,
                start: t0,
                measured: false,
            });
            // Every sybil floods every target, again every few hours.
            for m in range.clone() {
                let mut at = t0 + (rng.unit() * HOUR as f64) as i64;
                while at < end {
                    events.push(Ev {
                        at,
                        machine: m as u32,
                        target: id,
                    });
                    at += 6 * HOUR + (rng.unit() * HOUR as f64) as i64;
                }
            }
        }
    }
    let hours = usize::try_from(w.hours).unwrap_or(0);
    let attackers = w.attackers_per_hour * hours;
    let mut fp_pool = 0usize;
    for a in 0..attackers {
        let start = t0 + (a as f64 / attackers as f64 * (end - t0) as f64) as i64;
        let id = targets.len() as u32;
        targets.push(Target {
            value: format!(
                "{}.{}.{}.{}",
                11 + a / 16_000_000 % 100,
                (a / 62_500) % 256,
                (a / 250) % 250,
                1 + a % 250
            ),
            attacker: true,
            start,
            measured: start >= half,
        });
        // How many machines see it: a discrete Pareto (most attackers hit 1-2 machines, mass
        // scanners thousands).
        let k = ((1.0 / (1.0 - rng.unit()).powf(1.0 / 1.1)).floor() as usize).clamp(1, 3000);
        let mut net = rng.below(w.honest_networks);
        let mut seen = HashSet::new();
        let mut tries = 0;
        while seen.len() < k.min(honest) && tries < k * 4 {
            tries += 1;
            // Sweeps stay inside a hoster for a while.
            if rng.unit() > 0.3 {
                net = rng.below(w.honest_networks);
            }
            let pool = &members[net];
            if pool.is_empty() {
                continue;
            }
            let m = pool[rng.below(pool.len())];
            if !seen.insert(m) {
                continue;
            }
            // Detection, then the LAPI's push interval.
            let delay = rng.exp(3.0 * MIN as f64) + rng.unit() * 30_000.0;
            events.push(Ev {
                at: start + delay as i64,
                machine: m,
                target: id,
            });
        }
        // Honest false positives: a benign address (customer NAT, crawler) reported by one or
        // two machines of the same network.
        if rng.unit() < w.honest_fp_rate * k as f64 {
            let fid = targets.len() as u32;
            let value = if fp_pool.is_multiple_of(10) {
                format!("66.249.66.{}", 1 + fp_pool % 200)
            } else {
                benign_value(100_000 + fp_pool)
            };
            fp_pool += 1;
            targets.push(Target {
                value,
                attacker: false,
                start,
                measured: false,
            });
            let net = rng.below(w.honest_networks);
            for _ in 0..1 + rng.below(2) {
                let pool = &members[net];
                events.push(Ev {
                    at: start + rng.exp(10.0 * MIN as f64) as i64,
                    machine: pool[rng.below(pool.len())],
                    target: fid,
                });
            }
        }
    }
    events.sort_unstable_by_key(|e| e.at);

    let mut res = Results {
        reports: events.len(),
        ..Results::default()
    };
    let scen_attack: Arc<str> = Arc::from("crowdsecurity/ssh-bf");
    let scen_fake: Arc<str> = Arc::from("crowdsecurity/http-probing");
    let index: HashMap<String, u32> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.value.clone(), i as u32))
        .collect();
    // Per target: machines and networks seen, first report, eligibility time, listing time.
    let mut seen_m: HashMap<u32, HashSet<u32>> = HashMap::new();
    let mut seen_n: HashMap<u32, HashSet<u64>> = HashMap::new();
    let mut first: HashMap<u32, i64> = HashMap::new();
    let mut eligible_at: HashMap<u32, i64> = HashMap::new();
    let mut listed_at: HashMap<u32, i64> = HashMap::new();
    let mut benign_reported: HashSet<u32> = HashSet::new();
    let mut public_list: Vec<u32> = Vec::new();
    let echo_groups: Vec<std::ops::Range<usize>> = w
        .sybil_groups
        .iter()
        .zip(&sybil_ranges)
        .filter(|((_, _, echo), _)| *echo)
        .map(|(_, r)| r.clone())
        .collect();

    let mut next_pass = t0 + w.pass_ms;
    let mut next_full = t0 + HOUR;
    let mut i = 0;
    let mut echo_cursor = 0usize;
    while next_pass <= end + w.pass_ms {
        while i < events.len() && events[i].at <= next_pass {
            let e = events[i];
            i += 1;
            let t = &targets[e.target as usize];
            let honest_machine = (e.machine as usize) < honest;
            let ev = Evidence {
                machine: u64::from(e.machine),
                network: net_of[e.machine as usize],
                scenario: if honest_machine {
                    Arc::clone(&scen_attack)
                } else {
                    Arc::clone(&scen_fake)
                },
                weight: 1.0,
                first_seen: e.at,
                last_seen: e.at,
            };
            if !ledger.report(engine, &t.value, ev) {
                // Allowlisted: the reporter's false positive.
                if let Some(s) = ledger.machines.get_mut(&u64::from(e.machine)) {
                    s.false_positives += 1;
                }
            }
            if !t.attacker {
                benign_reported.insert(e.target);
            }
            first.entry(e.target).or_insert(e.at);
            if honest_machine {
                let ms = seen_m.entry(e.target).or_default();
                ms.insert(e.machine);
                let ns = seen_n.entry(e.target).or_default();
                ns.insert(net_of[e.machine as usize]);
                if ms.len() >= 5 && ns.len() >= 3 {
                    eligible_at.entry(e.target).or_insert(e.at);
                }
            }
        }
        // Echoing sybils report what the list already holds, hoping to earn trust.
        for range in &echo_groups {
            while echo_cursor < public_list.len() {
                let target = public_list[echo_cursor];
                echo_cursor += 1;
                for m in range.clone().step_by(10) {
                    res.reports += 1;
                    ledger.report(
                        engine,
                        &targets[target as usize].value,
                        Evidence {
                            machine: m as u64,
                            network: net_of[m],
                            scenario: Arc::clone(&scen_fake),
                            weight: 1.0,
                            first_seen: next_pass,
                            last_seen: next_pass,
                        },
                    );
                }
            }
        }
        let out = if next_pass >= next_full {
            next_full += HOUR;
            let o = ledger.evaluate(engine, next_pass);
            ledger.prune(engine, next_pass);
            o
        } else {
            ledger.evaluate_dirty(engine, next_pass)
        };
        for c in out.changes {
            if let Change::Listed { value, .. } = c
                && let Some(&id) = index.get(&value)
            {
                listed_at.entry(id).or_insert(next_pass);
                public_list.push(id);
            }
        }
        next_pass += w.pass_ms;
    }

    res.benign_reported = benign_reported.len();
    for (id, t) in targets.iter().enumerate() {
        let id = id as u32;
        let listed = listed_at.get(&id).copied();
        if listed.is_some() {
            res.listed_total += 1;
            if !t.attacker {
                res.benign_listed += 1;
            }
        }
        if !t.attacker || !t.measured || !first.contains_key(&id) {
            continue;
        }
        let _ = t.start;
        res.attackers += 1;
        if let Some(l) = listed {
            res.attackers_listed += 1;
            res.first_to_listed.push(l - first[&id]);
        }
        if let Some(&el) = eligible_at.get(&id) {
            res.eligible += 1;
            if let Some(l) = listed {
                res.eligible_listed += 1;
                let d = (l - el).max(0);
                res.eligible_to_listed.push(d);
                if d <= 10 * MIN {
                    res.eligible_listed_10m += 1;
                }
            }
        }
    }
    res.wall = wall.elapsed();
    res
}

/// What the HTTP run measured.
#[derive(Debug, Clone, Default)]
pub struct HttpResults {
    /// Machines registered and logged in.
    pub machines: usize,
    /// Networks they came from (X-Forwarded-For).
    pub networks: usize,
    /// Signals accepted.
    pub signals: usize,
    /// Signals per push.
    pub batch: usize,
    /// Concurrent pushers.
    pub concurrency: usize,
    /// Wall time of the pushes.
    pub push_wall: Duration,
    /// Attackers the stream listed after one pass.
    pub listed: usize,
    /// Attackers that should be listed.
    pub expected: usize,
    /// Sybil targets listed.
    pub benign_listed: usize,
}

impl HttpResults {
    /// A Markdown table.
    pub fn table(&self) -> String {
        format!(
            "| metric | value |\n|---|---|\n| machines / networks (X-Forwarded-For) | {} / {} |\n| signals pushed | {} in batches of {}, {} pushers |\n| ingestion over HTTP + PostgreSQL | {:.0} signals/s ({:.1} s) |\n| attackers listed by the pass / expected | {} / {} |\n| sybil targets listed | {} |\n",
            self.machines,
            self.networks,
            self.signals,
            self.batch,
            self.concurrency,
            self.signals as f64 / self.push_wall.as_secs_f64().max(1e-9),
            self.push_wall.as_secs_f64(),
            self.listed,
            self.expected,
            self.benign_listed,
        )
    }
}

/// Drives a running server at `url` (it must trust 127.0.0.1 as a proxy, so each machine's
/// `X-Forwarded-For` gives it a network): registers machines, pushes signals concurrently,
/// measures the ingestion rate, then lets `pass` run the consensus and reads the stream.
pub async fn run_http<F, Fut>(
    url: &str,
    machines: usize,
    networks: usize,
    signals_per_machine: usize,
    batch: usize,
    concurrency: usize,
    pass: F,
) -> Result<HttpResults, client::ClientError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use client::capi::Capi;
    let run = format!(
        "{:x}",
        Rng::new(crate::store_now().cast_unsigned()).next_u64() & 0xffff_ffff
    );
    let mut clients = Vec::with_capacity(machines);
    for m in 0..machines {
        let forwarded = format!(
            "203.{}.{}.{}",
            (m % networks) / 256,
            (m % networks) % 256,
            1 + m / networks % 250
        );
        let id = format!("sim{run}m{m}");
        let c = Capi::new(url, &id, "simulation-password", 3).with_forwarded_for(&forwarded);
        c.register().await?;
        c.login(&["crowdsecurity/ssh-bf".to_owned()]).await?;
        clients.push(c);
    }
    // Attackers every machine sees (listed), a long tail each seen once (not listed), and a
    // sybil group: machines of one network reporting the same benign address.
    let shared: Vec<String> = (0..20).map(|i| format!("192.0.2.{}", i + 1)).collect();
    let sybil_target = "198.18.0.1".to_owned();
    let sybil_nets = 1;
    let mut work = Vec::new();
    for (m, c) in clients.iter().enumerate() {
        let mut values: Vec<String> = Vec::with_capacity(signals_per_machine);
        let sybil = m % networks < sybil_nets;
        for s in 0..signals_per_machine {
            let v = if sybil && s % 2 == 0 {
                sybil_target.clone()
            } else if s < shared.len() && !sybil {
                shared[s].clone()
            } else {
                format!("100.{}.{}.{}", (m / 250) % 250, m % 250, 1 + s % 250)
            };
            values.push(v);
        }
        for chunk in values.chunks(batch.max(1)) {
            work.push((c.clone(), chunk.to_vec()));
        }
    }
    let total: usize = work.iter().map(|w| w.1.len()).sum();
    let started = Instant::now();
    let work = Arc::new(std::sync::Mutex::new(work));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let work = Arc::clone(&work);
        tasks.push(tokio::spawn(async move {
            loop {
                let next = work.lock().ok().and_then(|mut w| w.pop());
                let Some((c, values)) = next else {
                    return Ok::<(), client::ClientError>(());
                };
                let signals: Vec<model::capi::Signal> =
                    values.iter().map(|v| sim_signal(v)).collect();
                c.push_signals(&signals).await?;
            }
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => r?,
            Err(e) => {
                return Err(client::ClientError::Decode {
                    url: url.to_owned(),
                    reason: format!("pusher task failed: {e}"),
                });
            }
        }
    }
    let push_wall = started.elapsed();
    pass().await;
    let stream = clients[0].stream_v3(true).await?;
    let listed: HashSet<String> = stream
        .new
        .iter()
        .flat_map(|g| g.decisions.iter().map(|d| d.value.clone()))
        .collect();
    Ok(HttpResults {
        machines,
        networks,
        signals: total,
        batch,
        concurrency,
        push_wall,
        listed: shared.iter().filter(|v| listed.contains(*v)).count(),
        expected: shared.len(),
        benign_listed: usize::from(listed.contains(&sybil_target)),
    })
}

fn sim_signal(value: &str) -> model::capi::Signal {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    model::capi::Signal {
        message: format!("Ip {value} performed 'crowdsecurity/ssh-bf'"),
        scenario: "crowdsecurity/ssh-bf".into(),
        scenario_hash: "sim".into(),
        scenario_version: "0.1".into(),
        scenario_trust: "certified".into(),
        source: model::Source {
            scope: "Ip".into(),
            value: value.into(),
            ip: value.into(),
            ..model::Source::default()
        },
        start_at: now.clone(),
        stop_at: now.clone(),
        created_at: now,
        ..model::capi::Signal::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_world_lists_attackers_and_no_benign_address() {
        let w = World {
            honest_machines: 600,
            honest_networks: 60,
            sybil_groups: vec![(200, 1, false), (200, 3, true)],
            sybil_targets: 5,
            attackers_per_hour: 200,
            hours: 12,
            pass_ms: 30_000,
            ..World::default()
        };
        let engine = Engine::new(crate::consensus::ConsensusConfig::default()).unwrap();
        let mut r = run_engine(&w, &engine);
        let table = r.table(&w);
        assert_eq!(r.benign_listed, 0, "{table}");
        assert!(r.eligible > 20, "{table}");
        assert!(r.eligible_listed_10m * 100 >= r.eligible * 90, "{table}");
    }
}
