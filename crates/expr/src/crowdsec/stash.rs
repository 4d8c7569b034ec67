//! Stash caches (`GetFromStash`, `SetInStash`): named LRU maps with a size bound and per-key
//! expiry, which parsers fill from their `stash:` blocks to correlate lines (CrowdSec's
//! `pkg/cache`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::Value;

use super::{HelperContext, arg, str_arg, type_error};

/// All named caches.
#[derive(Debug, Default)]
pub(super) struct Stashes {
    caches: RwLock<HashMap<String, Arc<Mutex<Lru>>>>,
}

impl Stashes {
    pub(super) fn create(&self, name: &str, size: usize, ttl: Option<Duration>) {
        let lru = Lru {
            size: size.max(1),
            ttl,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        };
        self.caches
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::new(Mutex::new(lru)));
    }

    fn cache(&self, name: &str) -> Option<Arc<Mutex<Lru>>> {
        self.caches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(super) fn set(&self, cache: &str, key: &str, value: &str, ttl: Option<Duration>) {
        let Some(c) = self.cache(cache) else {
            tracing::warn!("stash cache '{cache}' not found");
            return;
        };
        c.lock().unwrap_or_else(PoisonError::into_inner).set(
            key,
            value.into(),
            ttl,
            Instant::now(),
        );
    }

    pub(super) fn get(&self, cache: &str, key: &str) -> Option<Arc<str>> {
        let c = self.cache(cache)?;
        c.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key, Instant::now())
    }
}

/// A size-bounded map evicting the least recently used key; `order` maps use ticks to keys.
#[derive(Debug)]
struct Lru {
    size: usize,
    ttl: Option<Duration>,
    tick: u64,
    entries: HashMap<String, Entry>,
    order: BTreeMap<u64, String>,
}

#[derive(Debug)]
struct Entry {
    value: Arc<str>,
    expires: Option<Instant>,
    tick: u64,
}

impl Lru {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.order.remove(&e.tick);
            e.tick = self.tick;
            self.order.insert(self.tick, key.to_owned());
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.tick);
        }
    }

    fn get(&mut self, key: &str, now: Instant) -> Option<Arc<str>> {
        let e = self.entries.get(key)?;
        if e.expires.is_some_and(|t| t <= now) {
            self.remove(key);
            return None;
        }
        let value = Arc::clone(&e.value);
        self.touch(key);
        Some(value)
    }

    fn set(&mut self, key: &str, value: Arc<str>, ttl: Option<Duration>, now: Instant) {
        let expires = ttl.or(self.ttl).and_then(|d| now.checked_add(d));
        self.remove(key);
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires,
                tick: 0,
            },
        );
        self.touch(key);
        // gcache evicts the least recently used key, expired or not.
        while self.entries.len() > self.size {
            let Some(victim) = self.order.values().next().cloned() else {
                break;
            };
            self.remove(&victim);
        }
    }
}

pub(super) fn register(f: &mut Functions, ctx: &Arc<HelperContext>) {
    let c = Arc::clone(ctx);
    f.register("GetFromStash", Arity::Exact(2), false, move |a| {
        let cache = str_arg("GetFromStash", a, 0)?;
        let key = str_arg("GetFromStash", a, 1)?;
        Ok(c.stashes
            .get(cache, key)
            .map_or(Value::Str(""), Value::String))
    });
    let c = Arc::clone(ctx);
    f.register("SetInStash", Arity::Range(3, 4), false, move |a| {
        let cache = str_arg("SetInStash", a, 0)?;
        let key = str_arg("SetInStash", a, 1)?;
        let value = str_arg("SetInStash", a, 2)?;
        let ttl = expiration(a)?;
        c.stashes.set(cache, key, value, ttl);
        Ok(Value::Nil)
    });
}

/// The optional fourth argument of `SetInStash`: a duration, a Go duration string, or nil for the
/// cache's default. A zero or negative duration expires the key at once, as in gcache.
fn expiration(args: &[Value<'_>]) -> Result<Option<Duration>, EvalError> {
    let v = arg(args, 3);
    let ns = match v {
        Value::Nil => return Ok(None),
        Value::Duration(ns) => *ns,
        Value::Str(_) | Value::String(_) => {
            let s = v.as_str().unwrap_or_default();
            crate::time::parse_duration(s)
                .ok_or_else(|| EvalError::new(format!("SetInStash: invalid duration {s:?}")))?
        }
        other => return Err(type_error("SetInStash", 3, "a duration", other)),
    };
    Ok(Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(0))))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::HelperContext;
    use super::super::testutil::*;
    use crate::value::Value;

    #[test]
    fn set_then_get() {
        let ctx = Arc::new(HelperContext::new());
        ctx.create_stash("ipsec", 10, Some(Duration::from_secs(60)));
        let f = funcs_with(Arc::clone(&ctx));
        assert_eq!(ok(&f, "GetFromStash", &[s("ipsec"), s("k")]), s(""));
        assert!(ok(&f, "SetInStash", &[s("ipsec"), s("k"), s("v")]).is_nil());
        assert_eq!(ok(&f, "GetFromStash", &[s("ipsec"), s("k")]), s("v"));
        ok(&f, "SetInStash", &[s("ipsec"), s("k"), s("v2"), Value::Nil]);
        assert_eq!(ok(&f, "GetFromStash", &[s("ipsec"), s("k")]), s("v2"));
        assert_eq!(ctx.stash_get("ipsec", "k").as_deref(), Some("v2"));
        ctx.stash_set("ipsec", "direct", "x", None);
        assert_eq!(ok(&f, "GetFromStash", &[s("ipsec"), s("direct")]), s("x"));
    }

    #[test]
    fn unknown_caches_are_harmless() {
        let f = funcs();
        assert!(ok(&f, "SetInStash", &[s("nope"), s("k"), s("v")]).is_nil());
        assert_eq!(ok(&f, "GetFromStash", &[s("nope"), s("k")]), s(""));
        assert!(call(&f, "SetInStash", &[s("nope"), s("k"), Value::Int(1)]).is_err());
        assert!(
            call(
                &f,
                "SetInStash",
                &[s("nope"), s("k"), s("v"), Value::Bool(true)]
            )
            .is_err()
        );
        assert!(call(&f, "SetInStash", &[s("nope"), s("k"), s("v"), s("5x")]).is_err());
    }

    #[test]
    fn lru_eviction() {
        let ctx = Arc::new(HelperContext::new());
        ctx.create_stash("c", 2, None);
        let f = funcs_with(ctx);
        ok(&f, "SetInStash", &[s("c"), s("a"), s("1")]);
        ok(&f, "SetInStash", &[s("c"), s("b"), s("2")]);
        // Reading "a" makes "b" the least recently used.
        assert_eq!(ok(&f, "GetFromStash", &[s("c"), s("a")]), s("1"));
        ok(&f, "SetInStash", &[s("c"), s("c"), s("3")]);
        assert_eq!(ok(&f, "GetFromStash", &[s("c"), s("b")]), s(""));
        assert_eq!(ok(&f, "GetFromStash", &[s("c"), s("a")]), s("1"));
        assert_eq!(ok(&f, "GetFromStash", &[s("c"), s("c")]), s("3"));
    }

    #[test]
    fn expiry() {
        let ctx = Arc::new(HelperContext::new());
        ctx.create_stash("t", 10, Some(Duration::from_millis(20)));
        let f = funcs_with(ctx);
        ok(&f, "SetInStash", &[s("t"), s("short"), s("1")]);
        ok(
            &f,
            "SetInStash",
            &[s("t"), s("long"), s("2"), Value::Duration(60_000_000_000)],
        );
        ok(&f, "SetInStash", &[s("t"), s("str"), s("3"), s("1h")]);
        ok(
            &f,
            "SetInStash",
            &[s("t"), s("now"), s("4"), Value::Duration(0)],
        );
        assert_eq!(ok(&f, "GetFromStash", &[s("t"), s("now")]), s(""));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(ok(&f, "GetFromStash", &[s("t"), s("short")]), s(""));
        assert_eq!(ok(&f, "GetFromStash", &[s("t"), s("long")]), s("2"));
        assert_eq!(ok(&f, "GetFromStash", &[s("t"), s("str")]), s("3"));
    }
}
