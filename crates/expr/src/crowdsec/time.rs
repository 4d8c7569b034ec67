//! Time helpers: `TimeNow`, `ParseUnix`, and the interval statistics scenarios use
//! (`AverageInterval`, `MedianInterval` over `map(queue.Queue, {#.Time})`).

use chrono::{DateTime, FixedOffset, Utc};

use crate::error::EvalError;
use crate::func::{Arity, Functions};
use crate::value::Value;

use super::{arg, str_arg, type_error};

pub(super) fn register(f: &mut Functions) {
    f.register("TimeNow", Arity::Exact(0), false, |_| {
        Ok(Value::from(
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ))
    });
    f.register("ParseUnix", Arity::Exact(1), true, |a| {
        let s = str_arg("ParseUnix", a, 0)?;
        Ok(parse_unix(s).map_or(Value::Str(""), Value::from))
    });
    f.register("AverageInterval", Arity::Exact(1), true, |a| {
        let gaps = gaps("AverageInterval", a)?;
        let total: i128 = gaps.iter().map(|g| i128::from(*g)).sum();
        let n = i128::try_from(gaps.len()).unwrap_or(i128::MAX);
        Ok(Value::Duration(
            i64::try_from(total / n).unwrap_or(i64::MAX),
        ))
    });
    f.register("MedianInterval", Arity::Exact(1), true, |a| {
        let mut gaps = gaps("MedianInterval", a)?;
        gaps.sort_unstable();
        let n = gaps.len();
        let median = if n % 2 == 1 {
            gaps[n / 2]
        } else {
            let (x, y) = (i128::from(gaps[n / 2 - 1]), i128::from(gaps[n / 2]));
            i64::try_from((x + y) / 2).unwrap_or(i64::MAX)
        };
        Ok(Value::Duration(median))
    });
}

/// Unix seconds (any fraction ignored) as RFC 3339; `None` for non-positive or malformed input.
fn parse_unix(s: &str) -> Option<String> {
    let secs: i64 = s.split('.').next()?.parse().ok()?;
    if secs <= 0 {
        return None;
    }
    let t = DateTime::from_timestamp(secs, 0)?;
    Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Gaps in nanoseconds between consecutive times once sorted; at least two times are needed.
fn gaps(func: &str, args: &[Value<'_>]) -> Result<Vec<i64>, EvalError> {
    let list = arg(args, 0);
    let items = list
        .iter_list()
        .ok_or_else(|| type_error(func, 0, "a list of times", list))?;
    let mut times: Vec<DateTime<FixedOffset>> = Vec::new();
    for (i, item) in items.enumerate() {
        match item {
            Value::Time(t) => times.push(t),
            other => {
                return Err(EvalError::new(format!(
                    "{func}: element at index {i} is not a time, got {}",
                    other.type_name()
                )));
            }
        }
    }
    if times.len() < 2 {
        return Err(EvalError::new(format!(
            "{func}: need at least two times to compute an interval"
        )));
    }
    times.sort();
    Ok(times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_nanoseconds().unwrap_or(i64::MAX))
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::testutil::*;
    use crate::value::Value;

    fn t(s: &str) -> Value<'static> {
        Value::Time(DateTime::parse_from_rfc3339(s).unwrap())
    }

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn time_now_is_rfc3339_utc() {
        let f = funcs();
        let now = ok(&f, "TimeNow", &[]);
        let s = now.as_str().unwrap();
        assert!(s.ends_with('Z') && s.len() == 20, "{s}");
        assert!(DateTime::parse_from_rfc3339(s).is_ok());
    }

    #[test]
    fn parse_unix() {
        let f = funcs();
        assert_eq!(
            ok(&f, "ParseUnix", &[s("1700000000")]),
            s("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            ok(&f, "ParseUnix", &[s("1700000000.987")]),
            s("2023-11-14T22:13:20Z")
        );
        assert_eq!(ok(&f, "ParseUnix", &[s("0")]), s(""));
        assert_eq!(ok(&f, "ParseUnix", &[s("-5")]), s(""));
        assert_eq!(ok(&f, "ParseUnix", &[s("abc")]), s(""));
        assert_eq!(ok(&f, "ParseUnix", &[s("")]), s(""));
    }

    #[test]
    fn intervals() {
        let f = funcs();
        // Unsorted on purpose; gaps are 10s, 20s, 60s.
        let times = Value::list(vec![
            t("2024-01-01T00:00:30Z"),
            t("2024-01-01T00:00:00Z"),
            t("2024-01-01T00:01:30Z"),
            t("2024-01-01T00:00:10Z"),
        ]);
        assert_eq!(
            ok(&f, "AverageInterval", std::slice::from_ref(&times)),
            Value::Duration(30 * SEC)
        );
        assert_eq!(
            ok(&f, "MedianInterval", &[times]),
            Value::Duration(20 * SEC)
        );
        let even = Value::list(vec![
            t("2024-01-01T00:00:00Z"),
            t("2024-01-01T00:00:10Z"),
            t("2024-01-01T00:00:40Z"),
        ]);
        assert_eq!(ok(&f, "MedianInterval", &[even]), Value::Duration(20 * SEC));
        // Offsets do not matter, instants do.
        let tz = Value::list(vec![
            t("2024-01-01T01:00:00+01:00"),
            t("2024-01-01T00:00:05Z"),
        ]);
        assert_eq!(ok(&f, "AverageInterval", &[tz]), Value::Duration(5 * SEC));
    }

    #[test]
    fn interval_errors() {
        let f = funcs();
        let one = Value::list(vec![t("2024-01-01T00:00:00Z")]);
        assert!(call(&f, "AverageInterval", std::slice::from_ref(&one)).is_err());
        assert!(call(&f, "MedianInterval", &[one]).is_err());
        assert!(call(&f, "MedianInterval", &[Value::list(vec![])]).is_err());
        let mixed = Value::list(vec![t("2024-01-01T00:00:00Z"), s("x")]);
        let err = call(&f, "AverageInterval", &[mixed]).unwrap_err();
        assert!(err.message.contains("index 1"), "{}", err.message);
        assert!(call(&f, "AverageInterval", &[s("x")]).is_err());
    }
}
