//! IP helpers (`IpInRange`, `IpToRange`, `IsIP*`), `LookupHost` and the haversine `Distance`.
//!
//! Go treats an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) as IPv4 (`net.IP.To4`), so these
//! helpers do too.

use std::net::{IpAddr, ToSocketAddrs};

use ipnet::IpNet;

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::Value;

use super::misc::parse_go_float;
use super::{arg, str_arg, string_list, type_error};

pub(super) fn register(f: &mut Functions) {
    f.register("IsIP", Arity::Exact(1), true, |a| {
        Ok(Value::Bool(parse_ip(str_arg("IsIP", a, 0)?).is_some()))
    });
    f.register("IsIPV4", Arity::Exact(1), true, |a| {
        let ip = parse_ip(str_arg("IsIPV4", a, 0)?);
        Ok(Value::Bool(matches!(ip, Some(IpAddr::V4(_)))))
    });
    f.register("IsIPV6", Arity::Exact(1), true, |a| {
        let ip = parse_ip(str_arg("IsIPV6", a, 0)?);
        Ok(Value::Bool(matches!(ip, Some(IpAddr::V6(_)))))
    });
    f.register("IpInRange", Arity::Exact(2), true, |a| {
        let ip = parse_ip(str_arg("IpInRange", a, 0)?);
        let net = str_arg("IpInRange", a, 1)?.parse::<IpNet>().ok();
        Ok(Value::Bool(match (ip, net) {
            (Some(ip), Some(net)) => net.contains(&ip),
            _ => false,
        }))
    });
    f.register("IpToRange", Arity::Exact(2), true, |a| {
        let ip = str_arg("IpToRange", a, 0)?;
        let cidr = str_arg("IpToRange", a, 1)?;
        Ok(ip_to_range(ip, cidr).map_or(Value::Str(""), Value::from))
    });
    f.register("LookupHost", Arity::Exact(1), false, |a| {
        let host = str_arg("LookupHost", a, 0)?;
        Ok(string_list(lookup_host(host)))
    });
    f.register("Distance", Arity::Exact(4), true, distance);
}

/// Go's `net.ParseIP`, with IPv4-mapped addresses folded to IPv4.
fn parse_ip(s: &str) -> Option<IpAddr> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// Go's `netip.Addr.Prefix`: the network of that length, as `1.2.3.0/24`. Unlike `parse_ip`,
/// `netip` keeps `::ffff:1.2.3.4` as IPv6 and accepts (then drops) a zone.
fn ip_to_range(ip: &str, cidr: &str) -> Option<String> {
    let bits: i64 = cidr.strip_prefix('/').unwrap_or(cidr).parse().ok()?;
    let ip = match ip.split_once('%') {
        Some((addr, zone)) if addr.contains(':') && !zone.is_empty() => addr,
        _ => ip,
    };
    let addr: IpAddr = ip.parse().ok()?;
    let bits = u8::try_from(bits).ok()?;
    Some(IpNet::new(addr, bits).ok()?.trunc().to_string())
}

fn lookup_host(host: &str) -> Vec<String> {
    let Ok(addrs) = (host, 0).to_socket_addrs() else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for a in addrs {
        let ip = a.ip().to_string();
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Great-circle distance in km between two points given as strings, 0 when either is (0,0)
/// (an unknown location), as CrowdSec's impossible-travel scenario expects.
fn distance<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    const NAMES: [&str; 4] = ["lat1", "long1", "lat2", "long2"];
    let mut c = [0f64; 4];
    for (i, slot) in c.iter_mut().enumerate() {
        let v = arg(args, i);
        *slot = match v {
            Value::Str(_) | Value::String(_) => {
                let s = v.as_str().unwrap_or_default();
                parse_go_float(s).ok_or_else(|| {
                    EvalError::new(format!("Distance: {} is not a float: {s:?}", NAMES[i]))
                })?
            }
            Value::Int(_) | Value::Float(_) => v.as_f64().unwrap_or_default(),
            other => return Err(type_error("Distance", i, "a string", other)),
        };
    }
    let [lat1, lon1, lat2, lon2] = c;
    if (lat1 == 0.0 && lon1 == 0.0) || (lat2 == 0.0 && lon2 == 0.0) {
        return Ok(Value::Float(0.0));
    }
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dlat = p2 - p1;
    let dlon = (lon2 - lon1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dlon / 2.0).sin().powi(2);
    let c = 2.0 * h.sqrt().atan2((1.0 - h).sqrt());
    Ok(Value::Float(c * EARTH_RADIUS_KM))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::value::Value;

    fn b(f: &crate::func::Functions, name: &str, args: &[Value<'_>]) -> bool {
        ok(f, name, args).as_bool().unwrap()
    }

    #[test]
    fn ip_predicates() {
        let f = funcs();
        assert!(b(&f, "IsIP", &[s("1.2.3.4")]));
        assert!(b(&f, "IsIP", &[s("::1")]));
        assert!(!b(&f, "IsIP", &[s("1.2.3")]));
        assert!(!b(&f, "IsIP", &[s("")]));
        assert!(!b(&f, "IsIP", &[s("01.2.3.4")]));
        assert!(!b(&f, "IsIP", &[s("1.2.3.4/24")]));
        assert!(b(&f, "IsIPV4", &[s("1.2.3.4")]));
        assert!(b(&f, "IsIPV4", &[s("::ffff:1.2.3.4")]));
        assert!(!b(&f, "IsIPV4", &[s("2001:db8::1")]));
        assert!(b(&f, "IsIPV6", &[s("2001:db8::1")]));
        assert!(!b(&f, "IsIPV6", &[s("::ffff:1.2.3.4")]));
        assert!(!b(&f, "IsIPV6", &[s("garbage")]));
        assert!(call(&f, "IsIP", &[Value::Int(1)]).is_err());
    }

    #[test]
    fn ip_in_range() {
        let f = funcs();
        assert!(b(&f, "IpInRange", &[s("192.168.1.7"), s("192.168.1.0/24")]));
        assert!(b(&f, "IpInRange", &[s("192.168.1.7"), s("192.168.1.1/24")]));
        assert!(!b(
            &f,
            "IpInRange",
            &[s("192.168.2.7"), s("192.168.1.0/24")]
        ));
        assert!(b(&f, "IpInRange", &[s("::ffff:10.0.0.1"), s("10.0.0.0/8")]));
        assert!(b(&f, "IpInRange", &[s("2001:db8::5"), s("2001:db8::/32")]));
        assert!(!b(&f, "IpInRange", &[s("1.2.3.4"), s("2001:db8::/32")]));
        assert!(!b(&f, "IpInRange", &[s("bad"), s("10.0.0.0/8")]));
        assert!(!b(&f, "IpInRange", &[s("10.0.0.1"), s("10.0.0.1")]));
        assert!(!b(&f, "IpInRange", &[s("10.0.0.1"), s("10.0.0.0/33")]));
    }

    #[test]
    fn ip_to_range() {
        let f = funcs();
        let r = |ip, c| ok(&f, "IpToRange", &[s(ip), s(c)]);
        assert_eq!(r("1.2.3.4", "/24"), s("1.2.3.0/24"));
        assert_eq!(r("1.2.3.4", "16"), s("1.2.0.0/16"));
        assert_eq!(r("1.2.3.4", "32"), s("1.2.3.4/32"));
        assert_eq!(r("2001:db8:1:2::5", "/48"), s("2001:db8:1::/48"));
        assert_eq!(r("fe80::1%eth0", "64"), s("fe80::/64"));
        assert_eq!(r("1.2.3.4", "33"), s(""));
        assert_eq!(r("1.2.3.4", "-1"), s(""));
        assert_eq!(r("1.2.3.4", "x"), s(""));
        assert_eq!(r("nope", "24"), s(""));
    }

    #[test]
    fn lookup_host_literal_and_failure() {
        let f = funcs();
        assert_eq!(
            ok(&f, "LookupHost", &[s("127.0.0.1")]),
            Value::list(vec![Value::string("127.0.0.1")])
        );
        assert_eq!(ok(&f, "LookupHost", &[s("invalid..host..name")]), strs(&[]));
    }

    #[test]
    fn distance() {
        let f = funcs();
        // Paris to London, about 344 km.
        let d = ok(
            &f,
            "Distance",
            &[s("48.8566"), s("2.3522"), s("51.5074"), s("-0.1278")],
        );
        let km = d.as_f64().unwrap();
        assert!((km - 343.5).abs() < 1.0, "{km}");
        assert_eq!(
            ok(&f, "Distance", &[s("0"), s("0"), s("51.5"), s("0.1")]),
            Value::Float(0.0)
        );
        assert_eq!(
            ok(&f, "Distance", &[s("1"), s("1"), s("1"), s("1")]),
            Value::Float(0.0)
        );
        let err = call(&f, "Distance", &[s("x"), s("0"), s("1"), s("1")]).unwrap_err();
        assert!(err.message.contains("lat1"), "{}", err.message);
        assert!(call(&f, "Distance", &[Value::Nil, s("0"), s("1"), s("1")]).is_err());
    }
}
