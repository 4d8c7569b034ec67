//! A bucket overflow (CrowdSec's `RuntimeAlert`) as postoverflows and hub-test assertions see it.

use std::collections::BTreeMap;

use expr::{EvalError, Missing, Object, Value};
use model::{Alert, Source};
use serde::{Deserialize, Serialize};

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
