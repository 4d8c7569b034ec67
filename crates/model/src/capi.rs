//! The Central API (CAPI) bodies a LAPI and a central server exchange: signals, the v3
//! community-blocklist stream with its blocklist links, and the legacy metrics push.
//! The v2 protocol (CrowdSec 1.4.x) uses the same signal and login bodies; its stream answers the
//! LAPI's own [`crate::StreamResponse`] shape.

use serde::{Deserialize, Serialize};

use crate::alert::{MetaItem, Source, null_as_default};
use crate::decision::Decision;

/// One item of `POST /v{2,3}/signals`: an alert as a LAPI shares it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Human summary.
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
    /// Scenario name.
    pub scenario: String,
    /// sha256 of the scenario file (empty for local scenarios).
    #[serde(default, deserialize_with = "null_as_default")]
    pub scenario_hash: String,
    /// Hub version of the scenario.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scenario_version: String,
    /// `certified`, `tainted`, `custom` or `manual`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scenario_trust: String,
    /// The attacker.
    pub source: Source,
    /// First event (RFC 3339).
    pub start_at: String,
    /// Overflow (RFC 3339).
    pub stop_at: String,
    /// When the LAPI stored the alert (RFC 3339).
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    /// The local machine (agent) that raised it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub machine_id: String,
    /// The alert's UUID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uuid: String,
    /// Decisions the LAPI took.
    #[serde(default, deserialize_with = "null_as_default")]
    pub decisions: Vec<Decision>,
    /// Alert context; only sent when the LAPI's `share_context` is on (Rampart never sends it).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub context: Vec<MetaItem>,
}

/// One value and how long it stays blocked (`duration` is a Go duration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDecision {
    /// IP or range.
    pub value: String,
    /// Go duration.
    pub duration: String,
}

/// `new` of the v3 stream: decisions grouped by scenario and scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionGroup {
    /// Scenario the values were listed for.
    pub scenario: String,
    /// `ip` or `range` (lower case, as CAPI sends it).
    pub scope: String,
    /// The values.
    #[serde(default, deserialize_with = "null_as_default")]
    pub decisions: Vec<GroupDecision>,
}

/// `deleted` of the v3 stream: values no longer listed, per scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedGroup {
    /// `ip` or `range`.
    pub scope: String,
    /// The values.
    #[serde(default, deserialize_with = "null_as_default")]
    pub decisions: Vec<String>,
}

/// A blocklist the LAPI downloads on its own: one IP or CIDR per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlocklistLink {
    /// List name (decisions get it as scenario, origin `lists`).
    pub name: String,
    /// Where to download it (plain HTTP, no CAPI token).
    pub url: String,
    /// Decision type (`ban`).
    pub remediation: String,
    /// `ip` or `range`.
    pub scope: String,
    /// Go duration of each decision.
    pub duration: String,
}

/// `links` of the v3 stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamLinks {
    /// Blocklists to download.
    #[serde(default, deserialize_with = "null_as_default")]
    pub blocklists: Vec<BlocklistLink>,
    /// Allowlists (Rampart's central publishes none: its allowlists act before listing).
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowlists: Vec<serde_json::Value>,
}

/// `GET /v3/decisions/stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamV3 {
    /// Values listed since the previous pull (everything on `startup=true`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub new: Vec<DecisionGroup>,
    /// Values delisted since the previous pull.
    #[serde(default, deserialize_with = "null_as_default")]
    pub deleted: Vec<DeletedGroup>,
    /// Blocklist links (absent with `additional_pull=false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<StreamLinks>,
}

/// One machine of a legacy `POST /v{2,3}/metrics/` push.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsMachine {
    /// Machine id.
    #[serde(default)]
    pub name: String,
    /// Agent version.
    #[serde(default)]
    pub version: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_update: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_push: String,
}

/// One bouncer of a legacy metrics push.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsBouncer {
    /// Bouncer name.
    #[serde(default)]
    pub custom_name: String,
    /// Bouncer type.
    #[serde(default)]
    pub name: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_pull: String,
}

/// `POST /v{2,3}/metrics/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsPush {
    /// LAPI version.
    #[serde(default)]
    pub apil_version: String,
    /// Machines.
    #[serde(default, deserialize_with = "null_as_default")]
    pub machines: Vec<MetricsMachine>,
    /// Bouncers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub bouncers: Vec<MetricsBouncer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowdsec_signal_reads() {
        // Shape of what CrowdSec 1.4.6 sends (nulls where Go has nil slices).
        let text = r#"{"message":"Ip 192.0.2.7 performed 'crowdsecurity/ssh-bf' (6 events over 2s)",
            "scenario":"crowdsecurity/ssh-bf","scenario_hash":"abc","scenario_version":"0.1",
            "scenario_trust":"certified","source":{"scope":"Ip","value":"192.0.2.7","ip":"192.0.2.7",
            "latitude":0,"longitude":0},"start_at":"2024-01-01T00:00:00Z","stop_at":"2024-01-01T00:00:02Z",
            "created_at":"2024-01-01T00:00:03Z","machine_id":"agent","decisions":null,"context":null}"#;
        let s: Signal = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(s.source.value, "192.0.2.7");
        assert!(s.decisions.is_empty() && s.context.is_empty());
    }

    #[test]
    fn a_v3_stream_round_trips() {
        let s = StreamV3 {
            new: vec![DecisionGroup {
                scenario: "crowdsecurity/ssh-bf".into(),
                scope: "ip".into(),
                decisions: vec![GroupDecision {
                    value: "192.0.2.7".into(),
                    duration: "47h59m0s".into(),
                }],
            }],
            deleted: vec![DeletedGroup {
                scope: "ip".into(),
                decisions: vec!["192.0.2.8".into()],
            }],
            links: Some(StreamLinks::default()),
        };
        let text = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(serde_json::from_str::<StreamV3>(&text).ok(), Some(s));
    }
}
