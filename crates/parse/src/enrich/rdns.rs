//! `reverse_dns`: PTR lookups through the system resolver, cached so a busy source costs one
//! lookup, and bounded so a scan from millions of addresses cannot grow memory without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before the cache is cleared.
const CAPACITY: usize = 10_000;
/// How long an answer (or a failure) is reused.
const TTL: Duration = Duration::from_secs(600);

/// Cached reverse lookups.
#[derive(Debug, Default)]
pub struct ReverseDns {
    cache: Mutex<HashMap<IpAddr, (Option<String>, Instant)>>,
}

impl ReverseDns {
    /// The host name of `ip`, if it has one.
    pub fn lookup(&self, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.trim().parse().ok()?;
        let now = Instant::now();
        {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((name, at)) = cache.get(&ip)
                && now.duration_since(*at) < TTL
            {
                return name.clone();
            }
        }
        // The lookup runs without the lock held: a slow resolver must not stall other threads.
        let name = dns_lookup::lookup_addr(&ip)
            .ok()
            .filter(|n| *n != ip.to_string());
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(ip, (name.clone(), now));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_and_garbage_does_not() {
        let r = ReverseDns::default();
        // /etc/hosts maps 127.0.0.1 on every Debian machine.
        assert!(r.lookup("127.0.0.1").is_some());
        assert_eq!(r.lookup("not an ip"), None);
        // Second call is answered from the cache.
        assert_eq!(r.lookup("127.0.0.1"), r.lookup("127.0.0.1"));
    }
}
