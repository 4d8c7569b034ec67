//! IP addresses and CIDR ranges as closed integer intervals, the form every lookup uses (an IP is
//! a range of one address), plus CrowdSec's signed-integer database encoding of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why a string is not an IP or CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid IP address or CIDR range")]
pub struct IpRangeError(pub String);

/// A closed interval of addresses of one family. IPv4 and IPv6 never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpRange {
    /// IPv4 `start..=end`.
    V4(u32, u32),
    /// IPv6 `start..=end`.
    V6(u128, u128),
}

impl IpRange {
    /// Parses `192.0.2.7`, `2001:db8::1`, `192.0.2.0/24` or `2001:db8::/32` (host bits are
    /// cleared, as CrowdSec does). IPv4-mapped IPv6 addresses are kept as IPv6.
    pub fn parse(s: &str) -> Result<Self, IpRangeError> {
        let s = s.trim();
        if s.contains('/') {
            let net: IpNet = s.parse().map_err(|_| IpRangeError(s.to_owned()))?;
            Ok(Self::from_net(net))
        } else {
            let ip: IpAddr = s.parse().map_err(|_| IpRangeError(s.to_owned()))?;
            Ok(Self::from_ip(ip))
        }
    }

    /// A single address.
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v) => Self::V4(u32::from(v), u32::from(v)),
            IpAddr::V6(v) => Self::V6(u128::from(v), u128::from(v)),
        }
    }

    /// A network.
    pub fn from_net(net: IpNet) -> Self {
        match net {
            IpNet::V4(n) => Self::V4(u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(n) => Self::V6(u128::from(n.network()), u128::from(n.broadcast())),
        }
    }

    /// Whether `other` lies entirely inside `self` (same family).
    pub fn contains(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::V4(a, b), Self::V4(c, d)) => a <= c && d <= b,
            (Self::V6(a, b), Self::V6(c, d)) => a <= c && d <= b,
            _ => false,
        }
    }

    /// Whether this is a single address.
    pub fn is_single(&self) -> bool {
        match self {
            Self::V4(a, b) => a == b,
            Self::V6(a, b) => a == b,
        }
    }

    /// First address.
    pub fn start_addr(&self) -> IpAddr {
        match self {
            Self::V4(a, _) => IpAddr::V4(Ipv4Addr::from(*a)),
            Self::V6(a, _) => IpAddr::V6(Ipv6Addr::from(*a)),
        }
    }

    /// CrowdSec's database columns: `(ip_size, start_ip, start_suffix, end_ip, end_suffix)`.
    pub fn to_columns(&self) -> (i64, i64, i64, i64, i64) {
        match self {
            Self::V4(a, b) => (4, v4_col(*a), v4_col(0), v4_col(*b), v4_col(0)),
            Self::V6(a, b) => (
                16,
                u64_col((a >> 64) as u64),
                u64_col(*a as u64),
                u64_col((b >> 64) as u64),
                u64_col(*b as u64),
            ),
        }
    }

    /// The inverse of [`IpRange::to_columns`]; `None` for non-IP rows (`ip_size` 0).
    pub fn from_columns(
        size: i64,
        start: i64,
        start_sfx: i64,
        end: i64,
        end_sfx: i64,
    ) -> Option<Self> {
        match size {
            4 => Some(Self::V4(col_v4(start), col_v4(end))),
            16 => Some(Self::V6(
                (u128::from(col_u64(start)) << 64) | u128::from(col_u64(start_sfx)),
                (u128::from(col_u64(end)) << 64) | u128::from(col_u64(end_sfx)),
            )),
            _ => None,
        }
    }
}

const SHIFT: i128 = i64::MAX as i128;

fn v4_col(v: u32) -> i64 {
    // CrowdSec maps the value into the signed range by subtracting 2^63-1.
    (i128::from(v) - SHIFT) as i64
}

fn col_v4(c: i64) -> u32 {
    (i128::from(c) + SHIFT) as u32
}

fn u64_col(u: u64) -> i64 {
    // CrowdSec's uint2int: the special cases keep the mapping monotonic and inside i64.
    if u == u64::MAX {
        i64::MAX
    } else if u == i64::MAX as u64 {
        0
    } else {
        (i128::from(u) - SHIFT) as i64
    }
}

fn col_u64(c: i64) -> u64 {
    if c == i64::MAX {
        u64::MAX
    } else if c == 0 {
        i64::MAX as u64
    } else {
        (i128::from(c) + SHIFT) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ips_and_ranges() {
        assert_eq!(
            IpRange::parse("1.2.3.4"),
            Ok(IpRange::V4(0x01020304, 0x01020304))
        );
        assert_eq!(
            IpRange::parse("1.2.3.77/24"),
            Ok(IpRange::V4(0x01020300, 0x010203ff))
        );
        assert!(IpRange::parse("1.2.3").is_err());
        assert!(IpRange::parse("1.2.3.4/33").is_err());
        let r = IpRange::parse("2001:db8::/32").unwrap_or(IpRange::V4(0, 0));
        assert!(r.contains(&IpRange::parse("2001:db8::1").unwrap_or(IpRange::V4(0, 0))));
        assert!(!r.contains(&IpRange::parse("1.2.3.4").unwrap_or(IpRange::V6(0, 0))));
    }

    #[test]
    fn column_encoding_round_trips_and_keeps_order() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.0/8",
            "::",
            "::1",
            "2001:db8::/32",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let r = IpRange::parse(s).unwrap_or(IpRange::V4(1, 0));
            let (size, a, b, c, d) = r.to_columns();
            assert_eq!(IpRange::from_columns(size, a, b, c, d), Some(r), "{s}");
        }
        let (_, lo, _, _, _) = IpRange::parse("1.0.0.0")
            .unwrap_or(IpRange::V4(0, 0))
            .to_columns();
        let (_, hi, _, _, _) = IpRange::parse("200.0.0.0")
            .unwrap_or(IpRange::V4(0, 0))
            .to_columns();
        assert!(lo < hi);
    }
}
