//! The token bucket behind leaky scenarios, with the arithmetic of the Go rate limiter CrowdSec
//! forks (float tokens, refill capped at the burst, a request allowed when the wait it would
//! need truncates to zero nanoseconds), so a replay overflows on exactly the same event.

use serde::{Deserialize, Serialize};

/// Token bucket state. Times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Limiter {
    /// Capacity; `None` for unbounded buckets (everything is allowed).
    burst: Option<u32>,
    /// Nanoseconds per token.
    leak_ns: i64,
    tokens: f64,
    /// `None` until the first request: the bucket then starts full.
    last_ns: Option<i64>,
}

impl Limiter {
    pub(crate) fn new(capacity: i64, leak_ns: i64) -> Self {
        Limiter {
            burst: u32::try_from(capacity).ok(),
            leak_ns: leak_ns.max(1),
            tokens: 0.0,
            last_ns: None,
        }
    }

    fn rate(&self) -> f64 {
        1e9 / self.leak_ns as f64
    }

    fn duration_from_tokens(&self, tokens: f64) -> i64 {
        // Go converts with a float multiply then truncates to whole nanoseconds.
        (1e9 * (tokens / self.rate())) as i64
    }

    /// Tokens and reference time after refilling up to `now`, without consuming.
    fn advance(&self, now: i64) -> (i64, f64) {
        let Some(burst) = self.burst else {
            return (now, f64::INFINITY);
        };
        let burst = f64::from(burst);
        let Some(last) = self.last_ns else {
            return (now, burst);
        };
        let last = last.min(now);
        let max_elapsed = self.duration_from_tokens(burst - self.tokens);
        let elapsed = (now - last).min(max_elapsed);
        let delta = elapsed as f64 / 1e9 * self.rate();
        (last, (self.tokens + delta).min(burst))
    }

    /// Takes one token at `now`; false means the bucket is full (overflow).
    pub(crate) fn allow(&mut self, now: i64) -> bool {
        let Some(burst) = self.burst else {
            return true;
        };
        let (last, tokens) = self.advance(now);
        let tokens = tokens - 1.0;
        let wait = if tokens < 0.0 {
            self.duration_from_tokens(-tokens)
        } else {
            0
        };
        let ok = burst >= 1 && wait <= 0;
        if ok {
            self.last_ns = Some(now);
            self.tokens = tokens;
        } else {
            self.last_ns = Some(last);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn capacity_one_overflows_on_second_event_inside_leak() {
        let mut l = Limiter::new(1, 10 * S);
        assert!(l.allow(0));
        assert!(!l.allow(5 * S));
    }

    #[test]
    fn refills_one_token_per_leakspeed() {
        let mut l = Limiter::new(5, 10 * S);
        for i in 0..5 {
            assert!(l.allow(i), "event {i}");
        }
        assert!(!l.allow(5));
        // 10 s later exactly one token is back.
        assert!(l.allow(10 * S));
        assert!(!l.allow(10 * S + 1));
    }

    #[test]
    fn refill_is_capped_and_time_going_backwards_is_harmless() {
        let mut l = Limiter::new(2, S);
        assert!(l.allow(100 * S));
        assert!(l.allow(50 * S));
        assert!(!l.allow(50 * S));
    }

    #[test]
    fn unbounded_always_allows() {
        let mut l = Limiter::new(-1, S);
        for i in 0..1000 {
            assert!(l.allow(i));
        }
    }
}
