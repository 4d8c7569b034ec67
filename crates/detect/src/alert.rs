//! What an overflow produces, in CrowdSec's shape: the JSON the LAPI receives (`models.Alert`)
//! and the object model hub-test assertions and postoverflow parsers read
//! (`evt.Overflow.Alert.Source.IP`, `results[0].Overflow.GetSources()`...).

use std::collections::BTreeMap;

use expr::{EvalError, Map, Missing, Object, Value};
use serde::{Deserialize, Serialize};

/// Where an alert comes from (`models.Source`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `Ip`, `Range`, or a scenario-defined scope.
    pub scope: String,
    /// The value decisions will target.
    pub value: String,
    /// Source IP (Ip and Range scopes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// Source range, normalised CIDR.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub range: String,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub as_number: String,
    /// Autonomous system organisation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub as_name: String,
    /// Country ISO code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cn: String,
    /// Latitude.
    #[serde(default)]
    pub latitude: f32,
    /// Longitude.
    #[serde(default)]
    pub longitude: f32,
}

/// One `{key, value}` of an alert event's meta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaItem {
    /// Meta key.
    pub key: String,
    /// Meta value.
    pub value: String,
}

/// One event kept in an alert: its meta (sorted by key) and timestamp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// `evt.Meta`, sorted by key.
    pub meta: Vec<MetaItem>,
    /// RFC 3339 time of the event.
    pub timestamp: String,
}

/// An alert as the LAPI receives it (`POST /v1/alerts`), one per source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Scenario name.
    pub scenario: String,
    /// sha256 of the scenario file (empty for local files).
    pub scenario_hash: String,
    /// Installed hub version.
    pub scenario_version: String,
    /// Bucket capacity.
    pub capacity: i32,
    /// Go duration string (`10s`, `1m0s`).
    pub leakspeed: String,
    /// Events poured into the instance.
    pub events_count: i32,
    /// Human summary.
    pub message: String,
    /// First event time (RFC 3339).
    pub start_at: String,
    /// Overflow time (RFC 3339).
    pub stop_at: String,
    /// Scenario in simulation mode: no decision will be taken.
    pub simulated: bool,
    /// The scenario asks for a remediation (`labels.remediation: true`).
    pub remediation: bool,
    /// The source of this alert.
    pub source: Source,
    /// Events kept by the bucket.
    pub events: Vec<AlertEvent>,
    /// Scenario labels, for the console and profiles.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, serde_json::Value>,
}

/// A bucket overflow (CrowdSec's `RuntimeAlert`): sources, and one alert per source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Overflow {
    /// Scenario that overflowed.
    pub scenario: String,
    /// Partition key of the instance.
    pub mapkey: String,
    /// Sources by value.
    pub sources: Sources,
    /// One alert per source, in source order.
    pub alerts: Vec<Alert>,
    /// Re-inject into the scenarios.
    pub reprocess: bool,
    /// Set by postoverflow whitelists.
    pub whitelisted: bool,
    /// Overflow time (RFC 3339), the `MarshaledTime` of the overflow event.
    pub time: String,
}

impl Overflow {
    /// The first alert (CrowdSec's `RuntimeAlert.Alert`).
    pub fn alert(&self) -> Option<&Alert> {
        self.alerts.first()
    }

    /// Source values, in order.
    pub fn source_values(&self) -> Vec<&str> {
        self.sources.0.keys().map(String::as_str).collect()
    }
}

fn str_arg<'a>(args: &'a [Value<'_>], method: &str) -> Result<&'a str, EvalError> {
    args.first()
        .and_then(Value::as_str)
        .ok_or_else(|| EvalError::new(format!("{method}: expected one string argument")))
}

impl Object for Source {
    fn type_name(&self) -> &'static str {
        "Source"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(match key {
            "Scope" => Value::Str(&self.scope),
            "Value" => Value::Str(&self.value),
            "IP" => Value::Str(&self.ip),
            "Range" => Value::Str(&self.range),
            "AsNumber" => Value::Str(&self.as_number),
            "AsName" => Value::Str(&self.as_name),
            "Cn" => Value::Str(&self.cn),
            "Latitude" => Value::Float(f64::from(self.latitude)),
            "Longitude" => Value::Float(f64::from(self.longitude)),
            _ => return None,
        })
    }
    fn call<'s>(
        &'s self,
        method: &str,
        _args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        let field = method.strip_prefix("Get")?;
        let field = if field == "Ip" { "IP" } else { field };
        self.get(field).map(Ok)
    }
    fn to_value(&self) -> Value<'static> {
        expr::from_json(&serde_json::to_value(self).unwrap_or_default())
    }
}

impl Object for AlertEvent {
    fn type_name(&self) -> &'static str {
        "Event"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(match key {
            "Timestamp" => Value::Str(&self.timestamp),
            "Meta" => Value::list(
                self.meta
                    .iter()
                    .map(|m| {
                        let mut e = Map::new();
                        e.insert("Key".into(), Value::Str(&m.key));
                        e.insert("Value".into(), Value::Str(&m.value));
                        Value::map(e)
                    })
                    .collect(),
            ),
            _ => return None,
        })
    }
    fn call<'s>(
        &'s self,
        method: &str,
        args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        match method {
            "GetMeta" => Some(str_arg(args, method).map(|k| {
                let found = self.meta.iter().find(|m| m.key == k);
                Value::Str(found.map_or("", |m| m.value.as_str()))
            })),
            "GetTimestamp" => Some(Ok(Value::Str(&self.timestamp))),
            _ => None,
        }
    }
}

impl Object for Alert {
    fn type_name(&self) -> &'static str {
        "Alert"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(match key {
            "Scenario" => Value::Str(&self.scenario),
            "ScenarioHash" => Value::Str(&self.scenario_hash),
            "ScenarioVersion" => Value::Str(&self.scenario_version),
            "Capacity" => Value::Int(i64::from(self.capacity)),
            "Leakspeed" => Value::Str(&self.leakspeed),
            "EventsCount" => Value::Int(i64::from(self.events_count)),
            "Message" => Value::Str(&self.message),
            "StartAt" => Value::Str(&self.start_at),
            "StopAt" => Value::Str(&self.stop_at),
            "Simulated" => Value::Bool(self.simulated),
            "Remediation" => Value::Bool(self.remediation),
            "Source" => Value::Obj(&self.source),
            "Events" => Value::list(
                self.events
                    .iter()
                    .map(|e| Value::Obj(e as &dyn Object))
                    .collect(),
            ),
            "Decisions" => Value::list(Vec::new()),
            "Labels" => expr::from_json(&serde_json::to_value(&self.labels).unwrap_or_default()),
            _ => return None,
        })
    }
    fn call<'s>(
        &'s self,
        method: &str,
        _args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        let field = method.strip_prefix("Get")?;
        self.get(field).map(Ok)
    }
}

impl Object for Overflow {
    fn type_name(&self) -> &'static str {
        "RuntimeAlert"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(match key {
            "Mapkey" => Value::Str(&self.mapkey),
            "Sources" => Value::Obj(&self.sources),
            "Alert" => self.alerts.first().map_or(Value::Nil, |a| Value::Obj(a)),
            "APIAlerts" => Value::list(
                self.alerts
                    .iter()
                    .map(|a| Value::Obj(a as &dyn Object))
                    .collect(),
            ),
            "Reprocess" => Value::Bool(self.reprocess),
            "Whitelisted" => Value::Bool(self.whitelisted),
            _ => return None,
        })
    }
    fn call<'s>(
        &'s self,
        method: &str,
        _args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        match method {
            "GetSources" => Some(Ok(Value::list(
                self.sources
                    .0
                    .keys()
                    .map(|k| Value::Str(k.as_str()))
                    .collect(),
            ))),
            _ => None,
        }
    }
}

/// `Overflow.Sources`: a Go map, so a missing key reads as an empty source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sources(pub BTreeMap<String, Source>);

static EMPTY_SOURCE: std::sync::LazyLock<Source> = std::sync::LazyLock::new(Source::default);

impl Object for Sources {
    fn type_name(&self) -> &'static str {
        "map[string]Source"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(Value::Obj(self.0.get(key).unwrap_or(&EMPTY_SOURCE)))
    }
    fn missing(&self) -> Missing {
        Missing::Nil
    }
    fn len(&self) -> Option<usize> {
        Some(self.0.len())
    }
    fn keys(&self) -> Vec<Value<'_>> {
        self.0.keys().map(|k| Value::Str(k.as_str())).collect()
    }
}
