//! Alerts in CrowdSec's shape (`models.Alert`): the JSON agents push and the LAPI returns, and the
//! object model expressions read (`Alert.GetScope()` in profiles, `evt.Overflow.Alert.Source.IP`
//! in postoverflows and hub tests).

use std::collections::BTreeMap;

use expr::{EvalError, Map, Object, Value};
use serde::{Deserialize, Serialize};

use crate::decision::Decision;

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

/// An alert (`models.Alert`): what agents push to `POST /v1/alerts`, what the LAPI stores and
/// returns from searches. Fields the LAPI fills (`id`, `uuid`, `machine_id`, `created_at`) are
/// omitted from the JSON while empty, so an agent's push looks exactly like CrowdSec's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Database id (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Set by the LAPI when it stores the alert.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    /// The machine that pushed it (responses only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub machine_id: String,
    /// When the LAPI stored it (responses only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_at: String,
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
    #[serde(default)]
    pub remediation: bool,
    /// The source of this alert.
    pub source: Source,
    /// Events kept by the bucket (`null` reads as none).
    #[serde(deserialize_with = "null_as_default")]
    pub events: Vec<AlertEvent>,
    /// Decisions: empty from agents, set by `cscli`-like clients and by the LAPI's profiles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub decisions: Vec<Decision>,
    /// Console context (`{key, value}` with JSON-array values).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub meta: Vec<MetaItem>,
    /// Unused by CrowdSec (always `null`); kept for round trips.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// `crowdsec`, `capi`, `cscli`...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The scenario's labels, for expressions and local outputs; never sent on the wire (CrowdSec's
    /// `labels` field is a list of strings).
    #[serde(skip)]
    pub scenario_labels: BTreeMap<String, serde_json::Value>,
}

/// Reads JSON `null` as the type's default (Go serialises empty slices as `null`).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
            "Decisions" => Value::list(
                self.decisions
                    .iter()
                    .map(|d| Value::Obj(d as &dyn Object))
                    .collect(),
            ),
            "Labels" => {
                expr::from_json(&serde_json::to_value(&self.scenario_labels).unwrap_or_default())
            }
            "Kind" => Value::Str(&self.kind),
            "UUID" => Value::Str(&self.uuid),
            "MachineID" => Value::Str(&self.machine_id),
            "CreatedAt" => Value::Str(&self.created_at),
            "ID" => Value::Int(self.id.unwrap_or_default()),
            _ => return None,
        })
    }
    fn call<'s>(
        &'s self,
        method: &str,
        _args: &[Value<'s>],
    ) -> Option<Result<Value<'s>, EvalError>> {
        let field = method.strip_prefix("Get")?;
        // CrowdSec's Alert helpers read the source for scope and value.
        match field {
            "Scope" => return Some(Ok(Value::Str(&self.source.scope))),
            "Value" => return Some(Ok(Value::Str(&self.source.value))),
            "Sources" => return Some(Ok(Value::list(vec![Value::Str(&self.source.value)]))),
            _ => {}
        }
        self.get(field).map(Ok)
    }
}
