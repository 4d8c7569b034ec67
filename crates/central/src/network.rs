//! A machine's network: the unit of diversity in the consensus. The autonomous system of the
//! address the server sees (with a MaxMind ASN database), else its /24 (IPv4) or /48 (IPv6):
//! what one operator typically holds, so many machines run by one party count as one network.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

/// Resolves addresses to network names.
#[derive(Default)]
pub struct Networks {
    asn: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Networks")
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl Networks {
    /// With an ASN database when a path is given.
    pub fn open(asn_db: Option<&Path>) -> Result<Self, maxminddb::MaxMindDbError> {
        Ok(Self {
            asn: asn_db.map(Reader::open_readfile).transpose()?,
        })
    }

    /// `AS64500`, or the /24 or /48 that holds `ip`.
    pub fn of(&self, ip: IpAddr) -> String {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some(r) = &self.asn
            && let Ok(res) = r.lookup(ip)
            && res.has_data()
            && let Ok(Some(n)) =
                res.decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
            && n != 0
        {
            return format!("AS{n}");
        }
        prefix(ip)
    }
}

/// The /24 or /48 holding `ip`.
pub fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// A stable numeric key for a network name (the engine compares keys, not strings).
pub fn key(network: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    network.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_fall_back_to_prefixes() {
        let n = Networks::default();
        assert_eq!(n.of("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            n.of("2001:db8:aa:bb::1".parse().unwrap()),
            "2001:db8:aa::/48"
        );
        assert_eq!(n.of("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(key("192.0.2.0/24"), key("192.0.2.0/24"));
        assert_ne!(key("192.0.2.0/24"), key("192.0.3.0/24"));
    }
}
