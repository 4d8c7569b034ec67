//! Community sync with a Central API (`rampart central`, or CrowdSec's): the LAPI shares its
//! alerts as signals and pulls the community blocklist back as decisions of origin `CAPI`
//! (and blocklist links as origin `lists`), which bouncers receive like any other decision.
//!
//! # What is shared
//!
//! Nothing when `sharing` is off (CrowdSec's `online_client.sharing: false`). Otherwise, for
//! each stored alert that is not simulated: scenario name, hash, version and trust, the source
//! (scope, value, IP, range, AS number and name, country, coordinates as the agent enriched
//! them), start/stop/creation times, the alert's UUID, the local machine's id, the message
//! ("Ip X performed 'scenario' (N events over T)") and the decisions taken (type, duration,
//! scope, value, origin). Never shared: the events, their log lines and meta, and the alert
//! context (CrowdSec's `share_context` is always off here). Alerts from manual decisions
//! (`cscli`/`rampart decisions add`) are shared only with `share_manual_decisions`; local
//! (custom) and tainted scenarios follow `share_custom` / `share_tainted` (on, as in CrowdSec).
//!
//! # Failure behaviour
//!
//! The central server may be down for hours: signals wait in a bounded in-memory buffer and are
//! retried at each push; pulls are retried with backoff; community decisions already stored keep
//! protecting until they expire (48 h by default, refreshed daily while listed).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use client::capi::{Capi, OnlineCredentials};
use model::capi::{BlocklistLink, Signal, StreamV3};
use model::{Alert, IpRange, Source, normalize_scope, parse_duration_days, scope};
use store::{NewAlert, NewDecision, StoreError, now_ms};
use tokio::sync::mpsc;

use crate::Lapi;
use crate::index::Filter;

/// Decisions pulled from the community list.
pub const CAPI_ORIGIN: &str = "CAPI";
/// Decisions from blocklist links.
pub const LISTS_ORIGIN: &str = "lists";
/// `source.scope` of the alert holding community decisions (CrowdSec's).
pub const COMMUNITY_SCOPE: &str = "crowdsecurity/community-blocklist";

/// Signals held while the central server is unreachable; the oldest go first past this.
const MAX_BUFFER: usize = 50_000;
/// Signals per push, as CrowdSec sends them.
const PUSH_BATCH: usize = 50;

/// Community sync settings (CrowdSec's `api.server.online_client`).
#[derive(Debug, Clone)]
pub struct CapiConfig {
    /// `online_api_credentials.yaml`.
    pub credentials: OnlineCredentials,
    /// Push signals at all.
    pub sharing: bool,
    /// Share alerts of manual decisions.
    pub share_manual: bool,
    /// Share alerts of local scenarios (no hub hash).
    pub share_custom: bool,
    /// Share alerts of modified hub scenarios.
    pub share_tainted: bool,
    /// Pull the community blocklist.
    pub pull_community: bool,
    /// Pull blocklist links.
    pub pull_blocklists: bool,
    /// CAPI version spoken (3; 2 for servers that only speak CrowdSec 1.4's protocol).
    pub version: u8,
    /// Signal push interval.
    pub push_interval: Duration,
    /// Blocklist pull interval.
    pub pull_interval: Duration,
    /// Each wait is the interval ± up to this, so a fleet does not pull in lockstep.
    pub pull_jitter: Duration,
    /// Metrics push interval.
    pub metrics_interval: Duration,
}

impl CapiConfig {
    /// CrowdSec's defaults for these credentials.
    pub fn new(credentials: OnlineCredentials) -> Self {
        Self {
            credentials,
            sharing: true,
            share_manual: false,
            share_custom: true,
            share_tainted: true,
            pull_community: true,
            pull_blocklists: true,
            version: 3,
            push_interval: Duration::from_secs(10),
            pull_interval: Duration::from_secs(2 * 3600),
            pull_jitter: Duration::from_secs(5 * 60),
            metrics_interval: Duration::from_secs(30 * 60),
        }
    }
}

/// The LAPI's side of the push queue.
#[derive(Debug, Default)]
pub(crate) struct Sharing {
    tx: Option<mpsc::Sender<Signal>>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<Signal>>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Sharing {
    pub(crate) fn new(cfg: Option<&CapiConfig>) -> Self {
        match cfg.filter(|c| c.sharing) {
            Some(_) => {
                let (tx, rx) = mpsc::channel(10_000);
                Self {
                    tx: Some(tx),
                    rx: std::sync::Mutex::new(Some(rx)),
                    dropped: Default::default(),
                }
            }
            None => Self::default(),
        }
    }
}

/// CrowdSec's scenario trust of an alert.
fn scenario_trust(a: &Alert, first_origin: Option<&str>) -> &'static str {
    if first_origin == Some("cscli") {
        "manual"
    } else if a.scenario_hash.is_empty() {
        "custom"
    } else if a.scenario_version.is_empty() || a.scenario_version == "?" {
        "tainted"
    } else {
        "certified"
    }
}

/// An alert as a signal, or `None` when the settings say it stays here.
pub(crate) fn to_signal(
    cfg: &CapiConfig,
    na: &NewAlert,
    st: &store::StoredAlert,
) -> Option<Signal> {
    let a = &na.alert;
    if !cfg.sharing || a.simulated {
        return None;
    }
    let trust = scenario_trust(a, na.decisions.first().map(|d| d.origin.as_str()));
    let allowed = match trust {
        "manual" => cfg.share_manual,
        "custom" => cfg.share_custom,
        "tainted" => cfg.share_tainted,
        _ => true,
    };
    if !allowed {
        return None;
    }
    let now = now_ms();
    Some(Signal {
        message: a.message.clone(),
        scenario: a.scenario.clone(),
        scenario_hash: a.scenario_hash.clone(),
        scenario_version: a.scenario_version.clone(),
        scenario_trust: trust.to_owned(),
        source: Source {
            scope: a.source.scope.clone(),
            value: a.source.value.clone(),
            ip: a.source.ip.clone(),
            range: a.source.range.clone(),
            as_number: a.source.as_number.clone(),
            as_name: a.source.as_name.clone(),
            cn: a.source.cn.clone(),
            latitude: a.source.latitude,
            longitude: a.source.longitude,
        },
        start_at: a.start_at.clone(),
        stop_at: a.stop_at.clone(),
        created_at: store::ms_to_rfc3339(now),
        machine_id: a.machine_id.clone(),
        uuid: a.uuid.clone(),
        decisions: st.decisions.iter().map(|d| d.to_model(now, true)).collect(),
        // Events, meta and context never leave.
        context: Vec::new(),
    })
}

/// What one pull changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullReport {
    /// Decisions added (community and lists).
    pub added: usize,
    /// Decisions refreshed (a new, longer decision for a value already blocked).
    pub refreshed: usize,
    /// Decisions expired (delisted values).
    pub deleted: usize,
    /// Values dropped because an allowlist holds them.
    pub allowlisted: usize,
}

fn jittered(base: Duration, jitter: Duration) -> Duration {
    let j = jitter.as_millis().min(base.as_millis());
    if j == 0 {
        return base;
    }
    let j = u64::try_from(j).unwrap_or(u64::MAX);
    let offset = rand::random_range(0..=2 * j);
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis((base + offset).saturating_sub(j).max(1))
}

impl Lapi {
    /// Hands stored alerts to the push queue (called by ingestion after the database write).
    pub(crate) fn capi_enqueue(&self, batch: &[NewAlert], stored: &[store::StoredAlert]) {
        let (Some(cfg), Some(tx)) = (self.cfg.capi.as_ref(), self.sharing.tx.as_ref()) else {
            return;
        };
        for (na, st) in batch.iter().zip(stored) {
            if let Some(s) = to_signal(cfg, na, st)
                && tx.try_send(s).is_err()
            {
                let n = self
                    .sharing
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped = n + 1,
                        "community push queue full: signals dropped"
                    );
                }
            }
        }
    }

    /// Starts the push, pull and metrics loops when a central API is configured.
    pub(crate) fn spawn_capi(self: &Arc<Self>) {
        let Some(cfg) = self.cfg.capi.clone() else {
            return;
        };
        let c = &cfg.credentials;
        let capi = Capi::new(&c.url, &c.login, &c.password, cfg.version);
        tracing::info!(url = %c.url, sharing = cfg.sharing, community = cfg.pull_community, blocklists = cfg.pull_blocklists, "community sync enabled");
        let rx = self.sharing.rx.lock().ok().and_then(|mut r| r.take());
        if let Some(rx) = rx {
            let (me, capi, cfg) = (Arc::clone(self), capi.clone(), cfg.clone());
            tokio::spawn(async move { me.push_loop(capi, cfg, rx).await });
        }
        if cfg.pull_community || cfg.pull_blocklists {
            let (me, capi, cfg) = (Arc::clone(self), capi.clone(), cfg.clone());
            tokio::spawn(async move { me.pull_loop(capi, cfg).await });
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.metrics_loop(capi, cfg).await });
    }

    /// Logs in (again) declaring the scenarios this LAPI's machines run.
    async fn capi_login(&self, capi: &Capi) -> Result<(), String> {
        let mut scenarios: Vec<String> = self
            .store
            .machines()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .flat_map(|m| {
                m.scenarios
                    .split(',')
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        scenarios.sort();
        scenarios.dedup();
        capi.login(&scenarios).await.map_err(|e| e.to_string())
    }

    async fn push_loop(
        self: Arc<Self>,
        capi: Capi,
        cfg: CapiConfig,
        mut rx: mpsc::Receiver<Signal>,
    ) {
        let mut buffer: VecDeque<Signal> = VecDeque::new();
        let mut logged_in = false;
        let mut next =
            tokio::time::Instant::now() + jittered(cfg.push_interval, cfg.push_interval / 2);
        loop {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => {
                        if buffer.len() >= MAX_BUFFER {
                            buffer.pop_front();
                        }
                        buffer.push_back(s);
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(next) => {
                    next = tokio::time::Instant::now() + cfg.push_interval;
                    if buffer.is_empty() {
                        continue;
                    }
                    if !logged_in {
                        match self.capi_login(&capi).await {
                            Ok(()) => logged_in = true,
                            Err(e) => {
                                tracing::warn!(error = %e, queued = buffer.len(), "central API login failed; signals kept for the next push");
                                continue;
                            }
                        }
                    }
                    let mut sent = 0;
                    while !buffer.is_empty() {
                        let n = buffer.len().min(PUSH_BATCH);
                        let chunk: Vec<Signal> = buffer.iter().take(n).cloned().collect();
                        match capi.push_signals(&chunk).await {
                            Ok(()) => {
                                buffer.drain(..n);
                                sent += n;
                            }
                            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 429) => {
                                // The server refuses these signals for good: retrying cannot help.
                                tracing::warn!(error = %e, dropped = n, "central API refused signals");
                                buffer.drain(..n);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, queued = buffer.len(), "signal push failed; retrying at the next push");
                                break;
                            }
                        }
                    }
                    if sent > 0 {
                        tracing::info!(signals = sent, "signals pushed to the central API");
                    }
                }
            }
        }
    }

    async fn pull_loop(self: Arc<Self>, capi: Capi, cfg: CapiConfig) {
        let mut startup = true;
        let mut backoff = Duration::from_secs(5);
        loop {
            let wait = match self.capi_pull(&capi, &cfg, startup).await {
                Ok(r) => {
                    startup = false;
                    backoff = Duration::from_secs(5);
                    tracing::info!(
                        added = r.added,
                        refreshed = r.refreshed,
                        deleted = r.deleted,
                        allowlisted = r.allowlisted,
                        "community blocklist pulled"
                    );
                    jittered(cfg.pull_interval, cfg.pull_jitter)
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "community blocklist pull failed; current decisions stay until they expire");
                    let w = backoff.min(cfg.pull_interval);
                    backoff = (backoff * 2).min(Duration::from_secs(600));
                    w
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn metrics_loop(self: Arc<Self>, capi: Capi, cfg: CapiConfig) {
        loop {
            tokio::time::sleep(jittered(cfg.metrics_interval, cfg.metrics_interval / 2)).await;
            if let Err(e) = self.capi_metrics(&capi).await {
                tracing::warn!(error = %e, "metrics push to the central API failed");
            }
        }
    }

    /// Pushes CrowdSec's legacy metrics: machines and bouncers with versions and last activity.
    pub async fn capi_metrics(&self, capi: &Capi) -> Result<(), String> {
        use model::capi::{MetricsBouncer, MetricsMachine, MetricsPush};
        let ts = |ms: Option<i64>| ms.map(store::ms_to_rfc3339).unwrap_or_default();
        let machines = self.store.machines().await.map_err(|e| e.to_string())?;
        let bouncers = self.store.bouncers().await.map_err(|e| e.to_string())?;
        let m = MetricsPush {
            apil_version: concat!("rampart/v", env!("CARGO_PKG_VERSION")).into(),
            machines: machines
                .iter()
                .map(|m| MetricsMachine {
                    name: m.machine_id.clone(),
                    version: m.version.clone(),
                    last_update: ts(Some(m.updated_at)),
                    last_push: ts(m.last_push),
                })
                .collect(),
            bouncers: bouncers
                .iter()
                .map(|b| MetricsBouncer {
                    custom_name: b.name.clone(),
                    name: b.kind.clone(),
                    version: b.version.clone(),
                    last_pull: ts(b.last_pull),
                })
                .collect(),
        };
        capi.push_metrics(&m).await.map_err(|e| e.to_string())
    }

    /// Active decisions of `origin` (and `scenario`, when given) by value: ids and latest expiry.
    fn active_by_value(
        &self,
        origin: &str,
        scenario: Option<&str>,
    ) -> HashMap<String, (Vec<i64>, i64)> {
        let mut out: HashMap<String, (Vec<i64>, i64)> = HashMap::new();
        let Ok(ix) = self.index.read() else {
            return out;
        };
        let f = Filter {
            origins: vec![origin.to_owned()],
            simulated: true,
            ..Filter::default()
        };
        let now = now_ms();
        for id in ix.scan(&f) {
            let Some(e) = ix.get(id) else { continue };
            if e.until <= now || scenario.is_some_and(|s| ix.sym(e.scenario) != s) {
                continue;
            }
            let mut v = String::new();
            e.target.write_value(&mut v);
            let slot = out.entry(v).or_default();
            slot.0.push(id);
            slot.1 = slot.1.max(e.until);
        }
        out
    }

    /// Stores one alert holding `decisions` (the community or one list), indexes them and wakes
    /// bouncers: the ingestion path, without profiles.
    async fn store_pulled(
        &self,
        alert: Alert,
        decisions: Vec<NewDecision>,
    ) -> Result<usize, StoreError> {
        if decisions.is_empty() {
            return Ok(0);
        }
        let n = decisions.len();
        let na = NewAlert {
            started_at: now_ms(),
            alert,
            decisions,
        };
        let stored = self.store.insert_alerts(std::slice::from_ref(&na)).await?;
        let now = now_ms();
        if let Ok(mut ix) = self.index.write() {
            for s in &stored {
                for d in &s.decisions {
                    ix.upsert(d, now);
                }
            }
        }
        self.changed(true).await;
        Ok(n)
    }

    /// Turns pulled values into decisions: allowlisted ones dropped, values already blocked for
    /// more than half of `duration` left alone (no churn for bouncers), the rest added.
    fn plan(
        &self,
        values: impl IntoIterator<Item = (String, String, String, i64)>,
        current: &HashMap<String, (Vec<i64>, i64)>,
        origin: &str,
        kind: &str,
        report: &mut PullReport,
    ) -> Vec<NewDecision> {
        let now = now_ms();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (value, scope_name, scenario, duration_ms) in values {
            if !seen.insert(value.clone()) || duration_ms <= 0 {
                continue;
            }
            let scope_name = normalize_scope(&scope_name).to_owned();
            let range = match scope_name.as_str() {
                scope::IP | scope::RANGE => match IpRange::parse(&value) {
                    Ok(r) => Some(r),
                    Err(_) => continue,
                },
                _ => None,
            };
            if let Some(r) = &range
                && !self.allowlisted(r).is_empty()
            {
                report.allowlisted += 1;
                continue;
            }
            let refresh = match current.get(&value) {
                Some((_, until)) if *until - now > duration_ms / 2 => continue,
                Some(_) => true,
                None => false,
            };
            if refresh {
                report.refreshed += 1;
            } else {
                report.added += 1;
            }
            out.push(NewDecision {
                until: now.saturating_add(duration_ms),
                scenario,
                kind: kind.to_owned(),
                scope: scope_name,
                value,
                origin: origin.to_owned(),
                simulated: false,
                uuid: uuid::Uuid::new_v4().to_string(),
                range,
            });
        }
        out
    }

    /// One pull: the community list (`new`/`deleted`), then each blocklist link.
    pub async fn capi_pull(
        &self,
        capi: &Capi,
        cfg: &CapiConfig,
        startup: bool,
    ) -> Result<PullReport, String> {
        self.capi_login(capi).await?;
        let data: StreamV3 = if cfg.version == 2 {
            let v2 = capi.stream_v2(startup).await.map_err(|e| e.to_string())?;
            v2_to_v3(v2)
        } else {
            capi.stream(startup, cfg.pull_community, cfg.pull_blocklists)
                .await
                .map_err(|e| e.to_string())?
        };
        let mut report = PullReport::default();
        if cfg.pull_community {
            // Delisted values first, so a value both delisted and relisted ends up blocked.
            let current = self.active_by_value(CAPI_ORIGIN, None);
            let mut gone = Vec::new();
            for g in &data.deleted {
                for v in &g.decisions {
                    if let Some((ids, _)) = current.get(v) {
                        gone.extend_from_slice(ids);
                    }
                }
            }
            report.deleted +=
                usize::try_from(self.expire(&gone).await.map_err(|e| e.to_string())?).unwrap_or(0);
            let current = self.active_by_value(CAPI_ORIGIN, None);
            let values = data.new.iter().flat_map(|g| {
                g.decisions.iter().map(move |d| {
                    let ms = parse_duration_days(&d.duration).map_or(0, |ns| ns / 1_000_000);
                    (d.value.clone(), g.scope.clone(), g.scenario.clone(), ms)
                })
            });
            let decisions = self.plan(values, &current, CAPI_ORIGIN, "ban", &mut report);
            let before = report.deleted;
            let alert = pulled_alert(
                COMMUNITY_SCOPE,
                format!("update : +{}/-{} IPs", decisions.len(), before),
                "capi",
            );
            self.store_pulled(alert, decisions)
                .await
                .map_err(|e| e.to_string())?;
        }
        if cfg.pull_blocklists
            && let Some(links) = &data.links
        {
            for link in &links.blocklists {
                if let Err(e) = self.pull_link(capi, link, &mut report).await {
                    tracing::warn!(list = %link.name, error = %e, "blocklist download failed");
                }
            }
        }
        Ok(report)
    }

    async fn pull_link(
        &self,
        capi: &Capi,
        link: &BlocklistLink,
        report: &mut PullReport,
    ) -> Result<(), String> {
        let key = format!("blocklist:{}:last_pull", link.name);
        let current = self.active_by_value(LISTS_ORIGIN, Some(&link.name));
        // Re-download everything when nothing of the list is held (first pull, or it expired).
        let since = if current.is_empty() {
            None
        } else {
            self.store
                .config_item(&key)
                .await
                .map_err(|e| e.to_string())?
        };
        let Some((values, last_modified)) = capi
            .blocklist(&link.url, since.as_deref())
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let ms = parse_duration_days(&link.duration).map_or(0, |ns| ns / 1_000_000);
        let keep: std::collections::HashSet<&String> = values.iter().collect();
        let gone: Vec<i64> = current
            .iter()
            .filter(|(v, _)| !keep.contains(v))
            .flat_map(|(_, (ids, _))| ids.iter().copied())
            .collect();
        report.deleted +=
            usize::try_from(self.expire(&gone).await.map_err(|e| e.to_string())?).unwrap_or(0);
        let scope_name = link.scope.clone();
        let decisions = self.plan(
            values.iter().map(|v| {
                let s = if v.contains('/') {
                    "range".to_owned()
                } else {
                    scope_name.clone()
                };
                (v.clone(), s, link.name.clone(), ms)
            }),
            &current,
            LISTS_ORIGIN,
            &link.remediation,
            report,
        );
        let alert = pulled_alert(
            &format!("lists:{}", link.name),
            format!("update : +{}/-{} IPs", decisions.len(), gone.len()),
            "capi",
        );
        self.store_pulled(alert, decisions)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(lm) = last_modified {
            self.store
                .set_config_item(&key, &lm)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The alert that owns pulled decisions, in CrowdSec's shape.
fn pulled_alert(source_scope: &str, scenario: String, kind: &str) -> Alert {
    let now = store::ms_to_rfc3339(now_ms());
    Alert {
        uuid: uuid::Uuid::new_v4().to_string(),
        scenario,
        message: String::new(),
        start_at: now.clone(),
        stop_at: now,
        remediation: true,
        kind: kind.to_owned(),
        source: Source {
            scope: source_scope.to_owned(),
            value: String::new(),
            ..Source::default()
        },
        ..Alert::default()
    }
}

/// A v2 answer (LAPI-style decisions) in v3 shape.
fn v2_to_v3(v2: model::StreamResponse) -> StreamV3 {
    use model::capi::{DecisionGroup, DeletedGroup, GroupDecision};
    let mut new: Vec<DecisionGroup> = Vec::new();
    for d in v2.new {
        let scope_name = d.scope.to_ascii_lowercase();
        let g = match new
            .iter_mut()
            .position(|g| g.scenario == d.scenario && g.scope == scope_name)
        {
            Some(i) => &mut new[i],
            None => {
                new.push(DecisionGroup {
                    scenario: d.scenario.clone(),
                    scope: scope_name,
                    decisions: Vec::new(),
                });
                let last = new.len() - 1;
                &mut new[last]
            }
        };
        g.decisions.push(GroupDecision {
            value: d.value,
            duration: d.duration,
        });
    }
    let deleted = vec![DeletedGroup {
        scope: "ip".into(),
        decisions: v2.deleted.into_iter().map(|d| d.value).collect(),
    }];
    StreamV3 {
        new,
        deleted,
        links: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(hash: &str, version: &str, simulated: bool) -> NewAlert {
        NewAlert {
            alert: Alert {
                scenario: "crowdsecurity/ssh-bf".into(),
                scenario_hash: hash.into(),
                scenario_version: version.into(),
                simulated,
                source: Source {
                    scope: "Ip".into(),
                    value: "192.0.2.7".into(),
                    ..Source::default()
                },
                events: vec![model::AlertEvent {
                    meta: vec![model::MetaItem {
                        key: "log_line".into(),
                        value: "secret".into(),
                    }],
                    timestamp: String::new(),
                }],
                meta: vec![model::MetaItem {
                    key: "context".into(),
                    value: "secret".into(),
                }],
                ..Alert::default()
            },
            started_at: 0,
            decisions: Vec::new(),
        }
    }

    fn stored() -> store::StoredAlert {
        store::StoredAlert {
            id: 1,
            decisions: Vec::new(),
        }
    }

    #[test]
    fn sharing_follows_the_settings_and_never_carries_log_context() {
        let mut cfg = CapiConfig::new(OnlineCredentials::default());
        let s = to_signal(&cfg, &alert("h", "1.0", false), &stored()).unwrap();
        assert_eq!(s.scenario_trust, "certified");
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(to_signal(&cfg, &alert("h", "1.0", true), &stored()).is_none());
        assert_eq!(
            to_signal(&cfg, &alert("", "", false), &stored())
                .unwrap()
                .scenario_trust,
            "custom"
        );
        let mut manual = alert("", "", false);
        manual.decisions.push(NewDecision {
            origin: "cscli".into(),
            ..NewDecision::default()
        });
        assert!(to_signal(&cfg, &manual, &stored()).is_none());
        cfg.share_manual = true;
        assert_eq!(
            to_signal(&cfg, &manual, &stored()).unwrap().scenario_trust,
            "manual"
        );
        cfg.share_custom = false;
        assert!(to_signal(&cfg, &alert("", "", false), &stored()).is_none());
        cfg.sharing = false;
        assert!(to_signal(&cfg, &alert("h", "1.0", false), &stored()).is_none());
    }

    #[test]
    fn jitter_stays_around_the_interval() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100), Duration::from_secs(10));
            assert!((90..=110).contains(&d.as_secs()), "{d:?}");
        }
        assert_eq!(
            jittered(Duration::from_secs(5), Duration::ZERO),
            Duration::from_secs(5)
        );
    }
}
