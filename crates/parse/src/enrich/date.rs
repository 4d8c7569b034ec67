//! `ParseDate`: the timestamp layouts the hub's dateparse-enrich relies on, in CrowdSec's order.

use chrono::{DateTime, Datelike, FixedOffset, Utc};

/// Go layouts tried in order after the event's own `StrTimeFormat`.
const LAYOUTS: &[&str] = &[
    "2006-01-02T15:04:05Z07:00",
    "02/Jan/2006:15:04:05 -0700",
    "Mon Jan 2 15:04:05 2006",
    "02-Jan-2006 15:04:05 europe/paris",
    "01/02/2006 15:04:05",
    "2006-01-02 15:04:05.999999999 -0700 MST",
    "Jan  2 15:04:05",
    "Jan _2 15:04:05",
    "Mon Jan 02 15:04:05.000000 2006",
    "2006-01-02T15:04:05.999999999Z07:00",
    "2006/01/02",
    "2006/01/02 15:04",
    "2006-01-02",
    "2006-01-02 15:04",
    "2006/01/02 15:04:05",
    "2006-01-02 15:04:05",
    "2006-01-02T15:04:05",
    "2006-01-02T15:04:05.999999999",
];

/// Parses a log timestamp. Year-less dates (syslog) get the year of `now`, dates without a zone
/// are UTC. Unix epoch seconds are accepted. `None` when nothing matches.
pub fn parse_date(
    value: &str,
    layout: Option<&str>,
    now: DateTime<Utc>,
) -> Option<DateTime<FixedOffset>> {
    let utc = FixedOffset::east_opt(0)?;
    let value = value.trim();
    let parsed = layout
        .filter(|l| !l.is_empty())
        .and_then(|l| expr::time::parse_with_layout(l, value, utc))
        .or_else(|| {
            LAYOUTS
                .iter()
                .find_map(|l| expr::time::parse_with_layout(l, value, utc))
        });
    if let Some(t) = parsed {
        if t.year() == 0 {
            return t.with_year(now.year());
        }
        return Some(t);
    }
    // Unix seconds, the fractional part ignored.
    let secs = value.split('.').next()?;
    if !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = secs.parse().ok()?;
        return DateTime::from_timestamp(n, 0).map(|t| t.fixed_offset());
    }
    None
}

/// RFC 3339 as CrowdSec's MarshaledTime (Go's `time.RFC3339Nano`): the fraction keeps only its
/// significant digits, and UTC is written `Z`.
pub fn marshal_time(t: &DateTime<FixedOffset>) -> String {
    use std::fmt::Write;
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    let off = t.offset().local_minus_utc();
    if off == 0 {
        out.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn hub_layouts() {
        let cases = [
            ("Jan 24 15:32:31", "2024-01-24T15:32:31Z"),
            ("Jan  4 05:06:07", "2024-01-04T05:06:07Z"),
            ("10/Oct/2000:13:55:36 -0700", "2000-10-10T13:55:36-07:00"),
            ("2021-03-04T05:06:07+02:00", "2021-03-04T05:06:07+02:00"),
            ("2021-03-04T05:06:07.123Z", "2021-03-04T05:06:07.123Z"),
            ("2021-03-04 05:06:07", "2021-03-04T05:06:07Z"),
            ("2021/03/04 05:06:07", "2021-03-04T05:06:07Z"),
            ("1600000000", "2020-09-13T12:26:40Z"),
            ("1600000000.25", "2020-09-13T12:26:40Z"),
        ];
        for (input, want) in cases {
            let got = parse_date(input, None, now()).map(|t| marshal_time(&t));
            assert_eq!(got.as_deref(), Some(want), "{input}");
        }
        assert!(parse_date("not a date", None, now()).is_none());
        let t = parse_date("04/03/2021", Some("02/01/2006"), now()).unwrap();
        assert_eq!(marshal_time(&t), "2021-03-04T00:00:00Z");
    }
}
