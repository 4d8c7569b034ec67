//! Enrichment methods (`method:` statics): results go to `evt.Enriched`.

pub mod date;
pub mod geoip;
pub mod rdns;

use std::path::Path;

use chrono::Utc;
use expr::Value;

use crate::event::{Event, ExpectMode};

/// The methods available to statics.
#[derive(Debug, Default)]
pub struct Enrichers {
    geoip: geoip::GeoIp,
    rdns: rdns::ReverseDns,
}

const METHODS: &[&str] = &[
    "ParseDate",
    "UnmarshalJSON",
    "GeoIpCity",
    "GeoIpASN",
    "IpToRange",
    "reverse_dns",
];

impl Enrichers {
    /// Enrichers reading their databases from `data_dir`.
    pub fn new(data_dir: Option<&Path>) -> Self {
        Enrichers {
            geoip: geoip::GeoIp::open(data_dir),
            rdns: rdns::ReverseDns::default(),
        }
    }

    /// The GeoIP readers, for the helpers that expose them to expressions.
    pub fn geoip(&self) -> &geoip::GeoIp {
        &self.geoip
    }

    /// Whether `method` exists.
    pub fn has(&self, method: &str) -> bool {
        METHODS.contains(&method)
    }

    /// Runs `method` on `value`.
    pub fn run(&self, method: &str, value: &str, evt: &mut Event) {
        match method {
            "ParseDate" => parse_date(value, evt),
            "GeoIpCity" | "GeoIpASN" | "IpToRange" => {
                let out = match method {
                    "GeoIpCity" => self.geoip.city(value),
                    "GeoIpASN" => self.geoip.asn(value),
                    _ => self.geoip.range(value),
                };
                for (k, v) in out {
                    evt.enriched.insert(k.to_owned(), v);
                }
            }
            "reverse_dns" => {
                if let Some(name) = self.rdns.lookup(value) {
                    evt.enriched.insert("reverse_dns".into(), name);
                }
            }
            "UnmarshalJSON" => {
                if let Ok(j) = serde_json::from_str::<serde_json::Value>(&evt.line.raw)
                    && let Value::Map(m) = expr::from_json(&j)
                {
                    evt.unmarshaled
                        .lock()
                        .extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            _ => {}
        }
    }
}

fn parse_date(value: &str, evt: &mut Event) {
    let now = Utc::now();
    let layout = (!evt.str_time_format.is_empty()).then_some(evt.str_time_format.as_str());
    let t = date::parse_date(value, layout, now).unwrap_or_else(|| now.fixed_offset());
    evt.enriched
        .insert("MarshaledTime".into(), date::marshal_time(&t));
    if evt.expect_mode == ExpectMode::TimeMachine {
        evt.time = Some(t);
    }
}
