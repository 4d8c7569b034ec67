//! Scenario YAML as CrowdSec writes it (one or more documents per file).

use std::collections::BTreeMap;

use parse::config::DataConfig;
use serde::Deserialize;

/// One scenario document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    /// `leaky`, `trigger`, `counter`, `conditional` or `bayesian`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Scenario name (`crowdsecurity/ssh-bf`).
    #[serde(default)]
    pub name: String,
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// Links.
    #[serde(default)]
    pub references: Option<Vec<String>>,
    /// Format version (`1.0`...), accepted as number or string.
    #[serde(default)]
    pub format: Option<serde_json::Value>,
    /// Which events go in (bool expression over `evt`).
    #[serde(default)]
    pub filter: String,
    /// Partition key (string expression).
    #[serde(default)]
    pub groupby: Option<String>,
    /// Only events with a new value of this expression count.
    #[serde(default)]
    pub distinct: Option<String>,
    /// Burst size; -1 for unbounded (counter, conditional, bayesian).
    #[serde(default)]
    pub capacity: Option<i64>,
    /// One token comes back every `leakspeed` (Go duration).
    #[serde(default)]
    pub leakspeed: Option<String>,
    /// Counter: overflow after this long.
    #[serde(default)]
    pub duration: Option<String>,
    /// After an overflow, the same partition cannot overflow again for this long.
    #[serde(default)]
    pub blackhole: Option<String>,
    /// Cap on events kept for the alert.
    #[serde(default)]
    pub cache_size: Option<i64>,
    /// Re-inject overflows into the scenarios.
    #[serde(default)]
    pub reprocess: bool,
    /// Bool expression over `queue`, `signal`, `leaky`; false discards the overflow.
    #[serde(default)]
    pub overflow_filter: Option<String>,
    /// Bool expression over `evt`; true destroys the bucket instance.
    #[serde(default)]
    pub cancel_on: Option<String>,
    /// Conditional buckets: bool expression over `evt`, `queue`, `leaky`.
    #[serde(default)]
    pub condition: Option<String>,
    /// Bayesian prior probability of evil.
    #[serde(default)]
    pub bayesian_prior: Option<f64>,
    /// Bayesian posterior threshold.
    #[serde(default)]
    pub bayesian_threshold: Option<f64>,
    /// Bayesian evidence.
    #[serde(default)]
    pub bayesian_conditions: Option<Vec<BayesianCondition>>,
    /// Decision scope.
    #[serde(default)]
    pub scope: Option<ScopeConfig>,
    /// Free-form labels (`remediation`, `service`, `classification`...).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, serde_json::Value>>,
    /// Data files used by the expressions.
    #[serde(default)]
    pub data: Vec<DataConfig>,
    /// Per-scenario debug logging.
    #[serde(default)]
    pub debug: bool,
    /// Hub version (overwritten at install).
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    /// Accepted for 1.4.6 compatibility.
    #[serde(default)]
    pub author: Option<String>,
    /// Accepted for 1.4.6 compatibility.
    #[serde(default)]
    pub profiling: Option<bool>,
    /// Accepted for 1.4.6 compatibility (simulation.yaml is the real switch).
    #[serde(default)]
    pub simulated: Option<bool>,
}

/// `scope:` of a scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// `Ip` (default), `Range`, or any other scope name.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Expression giving the scope value.
    #[serde(default)]
    pub expression: Option<String>,
}

/// One `bayesian_conditions` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BayesianCondition {
    /// Bool expression over `evt`, `queue`, `leaky`.
    pub condition: String,
    /// P(condition | evil).
    pub prob_given_evil: f64,
    /// P(condition | benign).
    pub prob_given_benign: f64,
    /// Once true, stays true for the instance (and is not evaluated again).
    #[serde(default)]
    pub guillotine: bool,
}
