//! A decision (`models.Decision`): a remediation of some type against a scoped value.

use expr::{EvalError, Object, Value};
use serde::{Deserialize, Serialize};

/// Fields are declared in alphabetical order because CrowdSec's encoder emits them so and some
/// bouncers' tests compare raw bodies. In responses `duration` is the time *left*.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Go duration string: requested duration on input, time left in responses.
    pub duration: String,
    /// Database id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub id: i64,
    /// `crowdsec`, `cscli`, `CAPI`, `lists`...
    pub origin: String,
    /// Scenario (or reason) that produced it.
    pub scenario: String,
    /// `Ip`, `Range` or a custom scope.
    pub scope: String,
    /// Simulation mode: stored, never sent to bouncers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// `ban`, `captcha`, `throttle` or any string.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 expiry (alert searches only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub until: String,
    /// Stable identifier across LAPIs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    /// The IP, range, AS number, country code... it applies to.
    pub value: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Object for Decision {
    fn type_name(&self) -> &'static str {
        "Decision"
    }
    fn get(&self, key: &str) -> Option<Value<'_>> {
        Some(match key {
            "Duration" => Value::Str(&self.duration),
            "ID" => Value::Int(self.id),
            "Origin" => Value::Str(&self.origin),
            "Scenario" => Value::Str(&self.scenario),
            "Scope" => Value::Str(&self.scope),
            "Simulated" => Value::Bool(self.simulated),
            "Type" => Value::Str(&self.kind),
            "Until" => Value::Str(&self.until),
            "UUID" => Value::Str(&self.uuid),
            "Value" => Value::Str(&self.value),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_like_crowdsec() {
        let d = Decision {
            duration: "3h59m57s".into(),
            id: 7,
            origin: "crowdsec".into(),
            scenario: "crowdsecurity/ssh-bf".into(),
            scope: "Ip".into(),
            kind: "ban".into(),
            value: "192.0.2.7".into(),
            ..Decision::default()
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap_or_default(),
            r#"{"duration":"3h59m57s","id":7,"origin":"crowdsec","scenario":"crowdsecurity/ssh-bf","scope":"Ip","type":"ban","value":"192.0.2.7"}"#
        );
    }
}
