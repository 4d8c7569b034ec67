//! What a decision points at, in the form the kernel sets hold: an IPv4 or IPv6 network
//! (a single address is a network with a full-length prefix).

use std::fmt::{Debug, Write as _};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An address of one family as an integer, so ranges are integer intervals.
pub(crate) trait Addr: Copy + Ord + Eq + Hash + Debug + Send + Sync + 'static {
    /// Prefix length of a single address.
    const BITS: u8;
    /// `ipv4` or `ipv6` (the `ip_type` metric label).
    const LABEL: &'static str;
    /// Appends the address in its usual text form.
    fn write_to(self, out: &mut String);
    /// The last address of the network `self/len`.
    fn last_of(self, len: u8) -> Self;
    /// The address after `self` (`None` at the top of the family).
    fn succ(self) -> Option<Self>;
    /// The address before `self` (`None` at zero).
    fn pred(self) -> Option<Self>;
    /// Parses the text form.
    fn parse(s: &str) -> Option<Self>;
}

impl Addr for u32 {
    const BITS: u8 = 32;
    const LABEL: &'static str = "ipv4";
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{}", Ipv4Addr::from(self));
    }
    fn last_of(self, len: u8) -> Self {
        if len >= 32 {
            self
        } else {
            self | (u32::MAX >> len)
        }
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn parse(s: &str) -> Option<Self> {
        s.parse::<Ipv4Addr>().ok().map(u32::from)
    }
}

impl Addr for u128 {
    const BITS: u8 = 128;
    const LABEL: &'static str = "ipv6";
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{}", Ipv6Addr::from(self));
    }
    fn last_of(self, len: u8) -> Self {
        if len >= 128 {
            self
        } else {
            self | (u128::MAX >> len)
        }
    }
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn parse(s: &str) -> Option<Self> {
        s.parse::<Ipv6Addr>().ok().map(u128::from)
    }
}

/// A network `start/len` with the host bits of `start` cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Cidr<A> {
    pub(crate) start: A,
    pub(crate) len: u8,
}

impl<A: Addr> Cidr<A> {
    pub(crate) fn end(&self) -> A {
        self.start.last_of(self.len)
    }

    /// `a.b.c.d/len` (what ipset takes; `hash:net` has no `/0`).
    pub(crate) fn write_to(&self, out: &mut String) {
        self.start.write_to(out);
        if self.len < A::BITS {
            let _ = write!(out, "/{}", self.len);
        }
    }
}

/// A decision's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    V4(Cidr<u32>),
    V6(Cidr<u128>),
}

impl Target {
    /// Reads an `Ip` or `Range` value. IPv4-mapped IPv6 (`::ffff:192.0.2.1`, which dual-stack
    /// services log) becomes IPv4: that is the source address the packets carry.
    pub(crate) fn parse(value: &str) -> Option<Target> {
        let value = value.trim();
        let net: IpNet = match value.parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => IpNet::from(value.parse::<IpAddr>().ok()?),
        };
        Some(match net.trunc() {
            IpNet::V4(n) => Target::V4(Cidr {
                start: u32::from(n.network()),
                len: n.prefix_len(),
            }),
            IpNet::V6(n) => match n.network().to_ipv4_mapped() {
                Some(v4) if n.prefix_len() >= 96 => Target::V4(Cidr {
                    start: u32::from(v4),
                    len: n.prefix_len() - 96,
                }),
                _ => Target::V6(Cidr {
                    start: u128::from(n.network()),
                    len: n.prefix_len(),
                }),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_ranges_and_mapped_v4() {
        assert_eq!(
            Target::parse("192.0.2.7"),
            Some(Target::V4(Cidr {
                start: 0xc000_0207,
                len: 32
            }))
        );
        assert_eq!(
            Target::parse(" 192.0.2.77/24"),
            Some(Target::V4(Cidr {
                start: 0xc000_0200,
                len: 24
            }))
        );
        assert_eq!(
            Target::parse("::ffff:192.0.2.7"),
            Target::parse("192.0.2.7"),
        );
        assert_eq!(
            Target::parse("::ffff:192.0.2.0/120"),
            Target::parse("192.0.2.0/24"),
        );
        assert!(matches!(
            Target::parse("2001:db8::1/64"),
            Some(Target::V6(Cidr { len: 64, .. }))
        ));
        assert_eq!(Target::parse("not-an-ip"), None);
        assert_eq!(Target::parse("1.2.3.4/33"), None);
        assert_eq!(Target::parse(""), None);
    }

    #[test]
    fn text_forms() {
        let mut s = String::new();
        Cidr {
            start: 0x0a00_0000u32,
            len: 8,
        }
        .write_to(&mut s);
        s.push(' ');
        Cidr {
            start: 1u128,
            len: 128,
        }
        .write_to(&mut s);
        assert_eq!(s, "10.0.0.0/8 ::1");
        assert_eq!(0x0a00_0000u32.last_of(8), 0x0aff_ffff);
        assert_eq!(0x0a00_0000u32.last_of(0), u32::MAX);
    }
}
