//! Durations as CrowdSec writes them: Go's `time.ParseDuration` plus a leading `<n>d` for days
//! (profiles, `since`/`until` filters, flush ages), and the "time left" strings in decision
//! responses, which bouncers parse back with Go's parser.

const SECOND: i64 = 1_000_000_000;
const DAY: i64 = 24 * 3600 * SECOND;

/// Parses `4h`, `1h30m`, `0.5s`, `-5s`, `7d`, `1d12h` into nanoseconds.
pub fn parse_duration_days(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (days, rest) = match body.find('d') {
        Some(i) => {
            let n: i64 = body[..i].parse().ok()?;
            (n, &body[i + 1..])
        }
        None => (0, body),
    };
    let rest_ns = if rest.is_empty() {
        if days == 0 && body.is_empty() {
            return None;
        }
        0
    } else {
        let v = expr::time::parse_duration(rest)?;
        if v < 0 {
            return None;
        }
        v
    };
    let total = days.checked_mul(DAY)?.checked_add(rest_ns)?;
    Some(if neg { -total } else { total })
}

/// Formats nanoseconds left as Go's `Duration.Round(time.Second).String()`: `3h59m12s`,
/// `59m59s`, `0s`, `-1m3s`.
pub fn format_remaining(ns: i64) -> String {
    // Round half away from zero, as Go's Duration.Round does.
    let half = SECOND / 2;
    let rounded = if ns >= 0 {
        (ns.saturating_add(half) / SECOND) * SECOND
    } else {
        -((ns.saturating_neg().saturating_add(half) / SECOND) * SECOND)
    };
    expr::time::format_duration(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_go_units() {
        assert_eq!(parse_duration_days("4h"), Some(4 * 3600 * SECOND));
        assert_eq!(parse_duration_days("7d"), Some(7 * DAY));
        assert_eq!(parse_duration_days("1d12h"), Some(DAY + 12 * 3600 * SECOND));
        assert_eq!(parse_duration_days("-5s"), Some(-5 * SECOND));
        assert_eq!(parse_duration_days("0.5s"), Some(SECOND / 2));
        assert_eq!(parse_duration_days(""), None);
        assert_eq!(parse_duration_days("4x"), None);
        assert_eq!(parse_duration_days("d"), None);
    }

    #[test]
    fn remaining_is_rounded_to_the_second() {
        assert_eq!(format_remaining(4 * 3600 * SECOND - 1), "4h0m0s");
        assert_eq!(format_remaining(3599 * SECOND + SECOND / 3), "59m59s");
        assert_eq!(format_remaining(0), "0s");
        assert_eq!(format_remaining(-63 * SECOND - SECOND / 4), "-1m3s");
        assert_eq!(format_remaining(SECOND / 2), "1s");
    }
}
