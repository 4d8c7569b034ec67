//! GeoIP enrichment from MaxMind databases (`GeoLite2-City.mmdb`, `GeoLite2-ASN.mmdb` in the data
//! directory), with CrowdSec's output keys.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

/// City and ASN readers; either may be missing (the methods then add nothing).
#[derive(Default)]
pub struct GeoIp {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

fn open(path: &Path) -> Option<Reader<Vec<u8>>> {
    if !path.is_file() {
        return None;
    }
    match Reader::open_readfile(path) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open GeoIP database");
            None
        }
    }
}

impl GeoIp {
    /// Opens the databases found in `data_dir`.
    pub fn open(data_dir: Option<&Path>) -> Self {
        let Some(dir) = data_dir else {
            return GeoIp::default();
        };
        GeoIp {
            city: open(&dir.join("GeoLite2-City.mmdb")),
            asn: open(&dir.join("GeoLite2-ASN.mmdb")),
        }
    }

    /// `GeoIpCity`: IsoCode, IsInEU, Latitude, Longitude.
    pub fn city(&self, ip: &str) -> Vec<(&'static str, String)> {
        let (Some(r), Ok(ip)) = (&self.city, ip.parse::<IpAddr>()) else {
            return Vec::new();
        };
        let Ok(res) = r.lookup(ip) else {
            return Vec::new();
        };
        if !res.has_data() {
            return Vec::new();
        }
        let get_str = |path: &[PathElement<'_>]| res.decode_path::<String>(path).ok().flatten();
        let iso = get_str(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .or_else(|| {
                get_str(&[
                    PathElement::Key("registered_country"),
                    PathElement::Key("iso_code"),
                ])
            })
            .or_else(|| {
                get_str(&[
                    PathElement::Key("represented_country"),
                    PathElement::Key("iso_code"),
                ])
            })
            .unwrap_or_default();
        let eu = res
            .decode_path::<bool>(&[
                PathElement::Key("country"),
                PathElement::Key("is_in_european_union"),
            ])
            .ok()
            .flatten()
            .unwrap_or(false);
        let coord = |k: &str| {
            res.decode_path::<f64>(&[PathElement::Key("location"), PathElement::Key(k)])
                .ok()
                .flatten()
                .unwrap_or(0.0)
        };
        vec![
            ("IsoCode", iso),
            ("IsInEU", eu.to_string()),
            ("Latitude", format!("{:.6}", coord("latitude"))),
            ("Longitude", format!("{:.6}", coord("longitude"))),
        ]
    }

    /// `GeoIpASN`: ASNNumber, ASNumber, ASNOrg.
    pub fn asn(&self, ip: &str) -> Vec<(&'static str, String)> {
        let (Some(r), Ok(ip)) = (&self.asn, ip.parse::<IpAddr>()) else {
            return Vec::new();
        };
        let Ok(res) = r.lookup(ip) else {
            return Vec::new();
        };
        if !res.has_data() {
            return Vec::new();
        }
        let num = res
            .decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
            .unwrap_or(0);
        let org = res
            .decode_path::<String>(&[PathElement::Key("autonomous_system_organization")])
            .ok()
            .flatten()
            .unwrap_or_default();
        vec![
            ("ASNNumber", num.to_string()),
            ("ASNumber", num.to_string()),
            ("ASNOrg", org),
        ]
    }

    /// `IpToRange`: the ASN database's network containing the IP, as SourceRange.
    pub fn range(&self, ip: &str) -> Vec<(&'static str, String)> {
        let (Some(r), Ok(ip)) = (&self.asn, ip.parse::<IpAddr>()) else {
            return Vec::new();
        };
        match r.lookup(ip) {
            Ok(res) if res.has_data() => match res.network() {
                Ok(net) => vec![("SourceRange", net.to_string())],
                Err(_) => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmdb_writer::{Value, Writer};

    fn write_dbs(dir: &Path) {
        let mut city = Writer::new("GeoLite2-City");
        city.insert_value(
            "192.0.2.0/24".parse::<ipnet::IpNet>().unwrap(),
            Value::map([
                (
                    "country",
                    Value::map([
                        ("iso_code", Value::from("FR")),
                        ("is_in_european_union", Value::from(true)),
                    ]),
                ),
                (
                    "location",
                    Value::map([
                        ("latitude", Value::from(48.85)),
                        ("longitude", Value::from(2.35)),
                    ]),
                ),
            ]),
        )
        .unwrap();
        std::fs::write(dir.join("GeoLite2-City.mmdb"), city.to_bytes().unwrap()).unwrap();
        let mut asn = Writer::new("GeoLite2-ASN");
        asn.insert_value(
            "198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(),
            Value::map([
                ("autonomous_system_number", Value::from(64500u32)),
                ("autonomous_system_organization", Value::from("Example Net")),
            ]),
        )
        .unwrap();
        std::fs::write(dir.join("GeoLite2-ASN.mmdb"), asn.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn lookups_use_crowdsec_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_dbs(dir.path());
        let g = GeoIp::open(Some(dir.path()));
        assert_eq!(
            g.city("192.0.2.7"),
            vec![
                ("IsoCode", "FR".to_owned()),
                ("IsInEU", "true".to_owned()),
                ("Latitude", "48.850000".to_owned()),
                ("Longitude", "2.350000".to_owned())
            ]
        );
        assert!(g.city("203.0.113.1").is_empty());
        assert!(g.city("not an ip").is_empty());
        assert_eq!(g.asn("198.51.100.9")[0], ("ASNNumber", "64500".to_owned()));
        assert_eq!(
            g.asn("198.51.100.9")[2],
            ("ASNOrg", "Example Net".to_owned())
        );
        assert_eq!(
            g.range("198.51.100.9"),
            vec![("SourceRange", "198.51.100.0/24".to_owned())]
        );
        let none = GeoIp::open(None);
        assert!(none.city("192.0.2.7").is_empty());
    }
}
