//! Decisions as the stream delivers them, read straight off the response body.
//!
//! A startup answer can hold a million decisions (about 200 MB of JSON); it is parsed as it
//! arrives, one decision at a time, so neither the body nor a `Vec<Decision>` is ever held whole.
//! Parsing is lenient where CrowdSec's LAPIs differ or misbehave: `null` lists, missing or
//! non-string fields and non-object entries skip that entry (counted), and only broken JSON fails
//! the whole answer.

use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::target::Target;

/// One entry of `new` or `deleted`, with only the fields a firewall needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WireDecision {
    pub(crate) duration: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) scenario: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) value: Option<String>,
}

/// Which list an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    New,
    Deleted,
}

/// Why an entry is not enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Skip {
    /// Not an object, or without a value.
    Malformed,
    /// A type outside `supported_decisions_types`.
    Type,
    /// A scope other than `Ip` and `Range`.
    Scope,
    /// The value is not an address or network.
    Value,
    /// The family is disabled.
    Family,
    /// No time left.
    Expired,
}

impl Skip {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Skip::Malformed => "malformed",
            Skip::Type => "type",
            Skip::Scope => "scope",
            Skip::Value => "value",
            Skip::Family => "family",
            Skip::Expired => "expired",
        }
    }
}

/// Which decisions this bouncer enforces.
#[derive(Debug, Clone)]
pub(crate) struct Accept {
    pub(crate) types: Vec<String>,
    pub(crate) ipv4: bool,
    pub(crate) ipv6: bool,
}

/// A decision reduced to what the kernel needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ban {
    pub(crate) origin: String,
    pub(crate) target: Target,
    /// Milliseconds left (for deletions: 0).
    pub(crate) left_ms: u64,
}

/// What CrowdSec's bouncer assumes when a duration cannot be read.
const FALLBACK_MS: u64 = 4 * 3600 * 1000;

impl Accept {
    /// Reduces an entry of `list`. Deletions need no time left.
    pub(crate) fn ban(&self, d: WireDecision, list: List) -> Result<Ban, Skip> {
        let value = d.value.ok_or(Skip::Malformed)?;
        let kind = d.kind.unwrap_or_default();
        if !self.types.iter().any(|t| t.eq_ignore_ascii_case(&kind)) {
            return Err(Skip::Type);
        }
        let scope = d.scope.unwrap_or_default();
        if !(scope.eq_ignore_ascii_case("ip") || scope.eq_ignore_ascii_case("range")) {
            return Err(Skip::Scope);
        }
        let target = Target::parse(&value).ok_or(Skip::Value)?;
        let enabled = match target {
            Target::V4(_) => self.ipv4,
            Target::V6(_) => self.ipv6,
        };
        if !enabled {
            return Err(Skip::Family);
        }
        let mut origin = d.origin.unwrap_or_default();
        if origin == "lists" {
            // Each blocklist is its own origin (own set, own counters), as in CrowdSec's bouncer.
            origin = format!("lists:{}", d.scenario.unwrap_or_default());
        }
        let left_ms = match list {
            List::Deleted => 0,
            List::New => {
                let ns = d.duration.as_deref().and_then(model::parse_duration_days);
                match ns {
                    Some(ns) if ns <= 0 => return Err(Skip::Expired),
                    Some(ns) => (ns.unsigned_abs() / 1_000_000).max(1),
                    None => FALLBACK_MS,
                }
            }
        };
        Ok(Ban {
            origin,
            target,
            left_ms,
        })
    }
}

/// Parses a stream answer from `reader`, handing every entry to `sink` in body order.
pub(crate) fn read_stream<R: Read>(
    reader: R,
    sink: &mut dyn FnMut(List, Option<WireDecision>),
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    Body { sink }.deserialize(&mut de)?;
    de.end()
}

/// Same, from a complete body.
#[cfg(test)]
pub(crate) fn read_stream_slice(
    body: &[u8],
    sink: &mut dyn FnMut(List, Option<WireDecision>),
) -> Result<(), serde_json::Error> {
    read_stream(body, sink)
}

struct Body<'s> {
    sink: &'s mut dyn FnMut(List, Option<WireDecision>),
}

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"{"new": [...], "deleted": [...]}"#)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let list = match key.as_str() {
                "new" => List::New,
                "deleted" => List::Deleted,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            map.next_value_seed(Entries {
                list,
                sink: &mut *self.sink,
            })?;
        }
        Ok(())
    }
}

struct Entries<'s> {
    list: List,
    sink: &'s mut dyn FnMut(List, Option<WireDecision>),
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of decisions or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some(Entry(d)) = seq.next_element::<Entry>()? {
            (self.sink)(self.list, d);
        }
        Ok(())
    }
}

/// An entry: a decision object, or anything else (`None`).
struct Entry(Option<WireDecision>);

impl<'de> de::Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decision")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entry, M::Error> {
        let mut d = WireDecision::default();
        while let Some(key) = map.next_key::<Field>()? {
            let slot = match key {
                Field::Duration => &mut d.duration,
                Field::Origin => &mut d.origin,
                Field::Scenario => &mut d.scenario,
                Field::Scope => &mut d.scope,
                Field::Type => &mut d.kind,
                Field::Value => &mut d.value,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Lenient>()?.0;
        }
        Ok(Entry(Some(d)))
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Entry, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
        Ok(Entry(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry, E> {
        Ok(Entry(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry, E> {
        Ok(Entry(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry, E> {
        Ok(Entry(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Entry, E> {
        Ok(Entry(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
        Ok(Entry(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Entry, E> {
        Ok(Entry(None))
    }
}

/// The keys of a decision that matter; matched on the parser's buffer, without allocating
/// (a million-decision answer has eight million keys).
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Duration,
    Origin,
    Scenario,
    Scope,
    Type,
    Value,
    #[serde(other)]
    Other,
}

/// A string field; any other JSON value reads as absent.
struct Lenient(Option<String>);

impl<'de> de::Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
        Ok(Lenient(Some(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient, E> {
        Ok(Lenient(Some(v)))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Lenient, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Lenient, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient, E> {
        Ok(Lenient(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient, E> {
        Ok(Lenient(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient, E> {
        Ok(Lenient(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient, E> {
        Ok(Lenient(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
        Ok(Lenient(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Lenient, E> {
        Ok(Lenient(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Cidr;

    fn collect(body: &str) -> Result<Vec<(List, Option<WireDecision>)>, serde_json::Error> {
        let mut out = Vec::new();
        read_stream_slice(body.as_bytes(), &mut |l, d| out.push((l, d)))?;
        Ok(out)
    }

    fn accept() -> Accept {
        Accept {
            types: vec!["ban".into()],
            ipv4: true,
            ipv6: true,
        }
    }

    #[test]
    fn reads_both_lists_in_body_order_and_tolerates_nulls() {
        let body = r#"{"new":[{"duration":"3h59m57s","id":1,"origin":"crowdsec","scenario":"s",
            "scope":"Ip","type":"ban","value":"192.0.2.1","uuid":"x"}],
            "deleted":null,"extra":{"a":[1,2]}}"#;
        let got = collect(body).unwrap_or_default();
        assert_eq!(got.len(), 1);
        let (list, d) = got.into_iter().next().unwrap_or((List::Deleted, None));
        assert_eq!(list, List::New);
        let ban = accept().ban(d.unwrap_or_default(), List::New);
        assert_eq!(
            ban,
            Ok(Ban {
                origin: "crowdsec".into(),
                target: Target::V4(Cidr {
                    start: 0xc000_0201,
                    len: 32
                }),
                left_ms: (3 * 3600 + 59 * 60 + 57) * 1000,
            })
        );
        assert_eq!(
            collect(r#"{"deleted":null,"new":null}"#)
                .map(|v| v.len())
                .ok(),
            Some(0)
        );
    }

    #[test]
    fn odd_entries_are_skipped_not_fatal() {
        let body = r#"{"new":[1,"x",null,[1],{"value":5,"scope":{"a":1},"type":true},
            {"duration":"1h","origin":"cscli","scope":"range","type":"BAN","value":"10.0.0.0/8"}]}"#;
        let got = collect(body).unwrap_or_default();
        assert_eq!(got.len(), 6);
        let bans: Vec<_> = got
            .into_iter()
            .map(|(l, d)| d.ok_or(Skip::Malformed).and_then(|d| accept().ban(d, l)))
            .collect();
        assert!(bans[..5].iter().all(|b| *b == Err(Skip::Malformed)));
        assert!(bans[5].is_ok(), "{:?}", bans[5]);
        assert!(collect(r#"{"new":[{"#).is_err());
    }

    #[test]
    fn filters_and_durations() {
        let d = |kind: &str, scope: &str, value: &str, duration: &str| WireDecision {
            duration: Some(duration.into()),
            origin: Some("lists".into()),
            scenario: Some("firehol".into()),
            scope: Some(scope.into()),
            kind: Some(kind.into()),
            value: Some(value.into()),
        };
        let a = Accept {
            ipv6: false,
            ..accept()
        };
        assert_eq!(
            a.ban(d("captcha", "Ip", "1.2.3.4", "1h"), List::New),
            Err(Skip::Type)
        );
        assert_eq!(
            a.ban(d("ban", "Country", "FR", "1h"), List::New),
            Err(Skip::Scope)
        );
        assert_eq!(
            a.ban(d("ban", "Ip", "1.2.3.x", "1h"), List::New),
            Err(Skip::Value)
        );
        assert_eq!(
            a.ban(d("ban", "Ip", "::1", "1h"), List::New),
            Err(Skip::Family)
        );
        assert_eq!(
            a.ban(d("ban", "Ip", "1.2.3.4", "-2s"), List::New),
            Err(Skip::Expired)
        );
        let b = a.ban(d("ban", "Ip", "1.2.3.4", "later"), List::New);
        assert_eq!(b.as_ref().map(|b| b.left_ms), Ok(FALLBACK_MS));
        assert_eq!(b.map(|b| b.origin), Ok("lists:firehol".to_owned()));
        let del = a.ban(d("ban", "Ip", "1.2.3.4", "-2s"), List::Deleted);
        assert_eq!(del.map(|b| b.left_ms), Ok(0));
    }
}
