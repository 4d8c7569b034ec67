//! Go's time conventions: duration strings (`1h30m`), `Time.String()`, and reference-time layouts
//! (`2006-01-02T15:04:05Z07:00`), which hub content and `date()` use.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

const NS: i64 = 1;
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;

/// Parses a Go duration (`300ms`, `-1.5h`, `2h45m`); `None` when malformed.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => NS,
            "us" | "µs" | "μs" => US,
            "ms" => MS,
            "s" => S,
            "m" => M,
            "h" => H,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * unit as f64;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

/// Formats nanoseconds as Go's `Duration.String()` does.
pub fn format_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < S as u64 {
        let (unit, div) = if u < US as u64 {
            ("ns", 1u64)
        } else if u < MS as u64 {
            ("µs", US as u64)
        } else {
            ("ms", MS as u64)
        };
        out.push_str(&frac(u, div));
        out.push_str(unit);
        return out;
    }
    let h = u / H as u64;
    let m = (u % H as u64) / M as u64;
    let s = u % M as u64;
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(s, S as u64));
    out.push('s');
    out
}

fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let digits = div.to_string().len() - 1;
    let f = format!("{rem:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Formats a time as Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub fn format_go_time(t: &DateTime<FixedOffset>) -> String {
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    let zone = if t.offset().local_minus_utc() == 0 {
        "UTC".to_owned()
    } else {
        t.format("%z").to_string()
    };
    format!("{base}{frac} {} {zone}", t.format("%z"))
}

/// One element of a Go layout.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(String),
    Year4,
    Year2,
    MonthLong,
    MonthShort,
    MonthNum,
    MonthNum2,
    DayNum,
    DayNum2,
    DaySpace,
    WeekdayLong,
    WeekdayShort,
    YearDay,
    Hour24,
    Hour12,
    Hour12Pad,
    Minute,
    Minute2,
    Second,
    Second2,
    /// Fractional seconds; `true` when written with 9s (optional digits).
    Frac(usize, bool),
    PmUpper,
    PmLower,
    /// `Z07:00` and friends: `Z` allowed when `true`; the string is the numeric form.
    Zone(bool, &'static str),
    ZoneName,
}

fn tokenize_layout(layout: &str) -> Vec<Tok> {
    const TABLE: &[(&str, Tok)] = &[
        ("January", Tok::MonthLong),
        ("Monday", Tok::WeekdayLong),
        ("Z07:00:00", Tok::Zone(true, "-07:00:00")),
        ("-07:00:00", Tok::Zone(false, "-07:00:00")),
        ("Z07:00", Tok::Zone(true, "-07:00")),
        ("-07:00", Tok::Zone(false, "-07:00")),
        ("Z0700", Tok::Zone(true, "-0700")),
        ("-0700", Tok::Zone(false, "-0700")),
        ("Z07", Tok::Zone(true, "-07")),
        ("-07", Tok::Zone(false, "-07")),
        ("2006", Tok::Year4),
        ("__2", Tok::YearDay),
        ("002", Tok::YearDay),
        ("Jan", Tok::MonthShort),
        ("Mon", Tok::WeekdayShort),
        ("MST", Tok::ZoneName),
        ("01", Tok::MonthNum2),
        ("02", Tok::DayNum2),
        ("_2", Tok::DaySpace),
        ("03", Tok::Hour12Pad),
        ("04", Tok::Minute2),
        ("05", Tok::Second2),
        ("06", Tok::Year2),
        ("15", Tok::Hour24),
        ("PM", Tok::PmUpper),
        ("pm", Tok::PmLower),
        ("1", Tok::MonthNum),
        ("2", Tok::DayNum),
        ("3", Tok::Hour12),
        ("4", Tok::Minute),
        ("5", Tok::Second),
    ];
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let b = layout.as_bytes();
    'outer: while i < layout.len() {
        // Fractional seconds: a '.' or ',' followed by 0s or 9s, not followed by a digit.
        if (b[i] == b'.' || b[i] == b',')
            && i + 1 < b.len()
            && (b[i + 1] == b'0' || b[i + 1] == b'9')
        {
            let d = b[i + 1];
            let mut j = i + 1;
            while j < b.len() && b[j] == d {
                j += 1;
            }
            if j >= b.len() || !b[j].is_ascii_digit() {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(Tok::Frac(j - i - 1, d == b'9'));
                i = j;
                continue;
            }
        }
        for (pat, tok) in TABLE {
            if layout[i..].starts_with(pat) {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(tok.clone());
                i += pat.len();
                continue 'outer;
            }
        }
        let c = layout[i..].chars().next().unwrap_or(' ');
        lit.push(c);
        i += c.len_utf8();
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn take_digits(s: &str, min: usize, max: usize) -> Option<(i64, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if n < min {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn take_name<'s>(s: &'s str, names: &[&str], short: bool) -> Option<(usize, &'s str)> {
    for (i, n) in names.iter().enumerate() {
        let n = if short { &n[..3] } else { n };
        // `get`: the value may hold a multi-byte character where the name would end.
        if s.get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n)) {
            return Some((i, &s[n.len()..]));
        }
    }
    None
}

/// Parses `value` with a Go reference layout. Times without a zone are read in `default_tz`;
/// a layout without a year gives year 0, as Go does (callers fill it in).
pub fn parse_with_layout(
    layout: &str,
    value: &str,
    default_tz: FixedOffset,
) -> Option<DateTime<FixedOffset>> {
    let toks = tokenize_layout(layout);
    let mut s = value;
    let (mut year, mut month, mut day) = (0i64, 1i64, 1i64);
    let (mut hour, mut min, mut sec, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut yday: Option<i64> = None;
    for (idx, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Lit(l) => {
                // Go treats runs of spaces loosely only in a few spots; be lenient on whitespace.
                if l.trim().is_empty() {
                    let trimmed = s.trim_start_matches(' ');
                    if trimmed.len() == s.len() {
                        return None;
                    }
                    s = trimmed;
                } else {
                    s = s.strip_prefix(l.as_str())?;
                }
            }
            Tok::Year4 => (year, s) = take_digits(s, 4, 4)?,
            Tok::Year2 => {
                let (y, r) = take_digits(s, 2, 2)?;
                year = if y >= 69 { 1900 + y } else { 2000 + y };
                s = r;
            }
            Tok::MonthLong | Tok::MonthShort => {
                let (m, r) = take_name(s, &MONTHS, matches!(tok, Tok::MonthShort))?;
                month = m as i64 + 1;
                s = r;
            }
            Tok::MonthNum => (month, s) = take_digits(s, 1, 2)?,
            Tok::MonthNum2 => (month, s) = take_digits(s, 2, 2)?,
            Tok::DayNum => (day, s) = take_digits(s, 1, 2)?,
            Tok::DayNum2 => (day, s) = take_digits(s, 2, 2)?,
            Tok::DaySpace => (day, s) = take_digits(s.trim_start_matches(' '), 1, 2)?,
            Tok::WeekdayLong | Tok::WeekdayShort => {
                s = take_name(s, &DAYS, matches!(tok, Tok::WeekdayShort))?.1;
            }
            Tok::YearDay => {
                let (d, r) = take_digits(s.trim_start_matches(' '), 1, 3)?;
                yday = Some(d);
                s = r;
            }
            Tok::Hour24 => (hour, s) = take_digits(s, 1, 2)?,
            Tok::Hour12 | Tok::Hour12Pad => (hour, s) = take_digits(s, 1, 2)?,
            Tok::Minute | Tok::Minute2 => (min, s) = take_digits(s, 1, 2)?,
            Tok::Second | Tok::Second2 => {
                (sec, s) = take_digits(s, 1, 2)?;
                // Go accepts fractional seconds after a seconds field even if the layout has none.
                let next_is_frac = matches!(toks.get(idx + 1), Some(Tok::Frac(..)));
                if !next_is_frac && (s.starts_with('.') || s.starts_with(',')) {
                    let n = s[1..].bytes().take_while(u8::is_ascii_digit).count();
                    if n > 0 {
                        nanos = frac_nanos(&s[1..1 + n]);
                        s = &s[1 + n..];
                    }
                }
            }
            Tok::Frac(n, optional) => {
                if let Some(r) = s.strip_prefix('.').or_else(|| s.strip_prefix(',')) {
                    let k = r.bytes().take_while(u8::is_ascii_digit).count();
                    if !optional && k != *n {
                        return None;
                    }
                    nanos = frac_nanos(&r[..k]);
                    s = &r[k..];
                } else if !optional {
                    return None;
                }
            }
            Tok::PmUpper | Tok::PmLower => {
                match s.get(..2)? {
                    "PM" | "pm" => pm = Some(true),
                    "AM" | "am" => pm = Some(false),
                    _ => return None,
                }
                s = &s[2..];
            }
            Tok::Zone(allow_z, form) => {
                if *allow_z && (s.starts_with('Z')) {
                    offset = Some(0);
                    s = &s[1..];
                    continue;
                }
                let sign = match s.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return None,
                };
                s = &s[1..];
                let (h, r) = take_digits(s, 2, 2)?;
                s = r;
                let mut mm = 0;
                let mut ss = 0;
                if form.len() > 3 {
                    if form.contains(':') {
                        s = s.strip_prefix(':')?;
                    }
                    (mm, s) = take_digits(s, 2, 2)?;
                    if form.len() > 6 {
                        s = s.strip_prefix(':')?;
                        (ss, s) = take_digits(s, 2, 2)?;
                    }
                }
                offset = Some(sign * (h * 3600 + mm * 60 + ss) as i32);
            }
            Tok::ZoneName => {
                let n = s.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
                if n < 3 {
                    return None;
                }
                let name = &s[..n];
                if matches!(name, "UTC" | "GMT" | "Z") {
                    offset = Some(0);
                }
                s = &s[n..];
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let date = if let Some(yd) = yday {
        NaiveDate::from_yo_opt(year as i32, yd as u32)?
    } else {
        NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)?
    };
    let time = NaiveTime::from_hms_nano_opt(hour as u32, min as u32, sec as u32, nanos as u32)?;
    let naive = NaiveDateTime::new(date, time);
    let tz = match offset {
        Some(o) => FixedOffset::east_opt(o)?,
        None => default_tz,
    };
    tz.from_local_datetime(&naive).single()
}

fn frac_nanos(digits: &str) -> i64 {
    let mut n: i64 = 0;
    for (i, c) in digits.bytes().take(9).enumerate() {
        n += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    n
}

/// Formats a time with a Go reference layout.
pub fn format_with_layout(layout: &str, t: &DateTime<FixedOffset>) -> String {
    use chrono::{Datelike, Timelike};
    let mut out = String::new();
    for tok in tokenize_layout(layout) {
        match tok {
            Tok::Lit(l) => out.push_str(&l),
            Tok::Year4 => out.push_str(&format!("{:04}", t.year())),
            Tok::Year2 => out.push_str(&format!("{:02}", t.year() % 100)),
            Tok::MonthLong => out.push_str(MONTHS[t.month0() as usize]),
            Tok::MonthShort => out.push_str(&MONTHS[t.month0() as usize][..3]),
            Tok::MonthNum => out.push_str(&t.month().to_string()),
            Tok::MonthNum2 => out.push_str(&format!("{:02}", t.month())),
            Tok::DayNum => out.push_str(&t.day().to_string()),
            Tok::DayNum2 => out.push_str(&format!("{:02}", t.day())),
            Tok::DaySpace => out.push_str(&format!("{:>2}", t.day())),
            Tok::WeekdayLong => {
                out.push_str(DAYS[t.weekday().num_days_from_sunday() as usize]);
            }
            Tok::WeekdayShort => {
                out.push_str(&DAYS[t.weekday().num_days_from_sunday() as usize][..3]);
            }
            Tok::YearDay => out.push_str(&format!("{:03}", t.ordinal())),
            Tok::Hour24 => out.push_str(&format!("{:02}", t.hour())),
            Tok::Hour12 => out.push_str(&t.hour12().1.to_string()),
            Tok::Hour12Pad => out.push_str(&format!("{:02}", t.hour12().1)),
            Tok::Minute => out.push_str(&t.minute().to_string()),
            Tok::Minute2 => out.push_str(&format!("{:02}", t.minute())),
            Tok::Second => out.push_str(&t.second().to_string()),
            Tok::Second2 => out.push_str(&format!("{:02}", t.second())),
            Tok::Frac(n, optional) => {
                let f = format!("{:09}", t.nanosecond());
                let mut digits = f[..n.min(9)].to_owned();
                if optional {
                    digits = digits.trim_end_matches('0').to_owned();
                }
                if !digits.is_empty() {
                    out.push('.');
                    out.push_str(&digits);
                }
            }
            Tok::PmUpper => out.push_str(if t.hour12().0 { "PM" } else { "AM" }),
            Tok::PmLower => out.push_str(if t.hour12().0 { "pm" } else { "am" }),
            Tok::Zone(allow_z, form) => {
                let off = t.offset().local_minus_utc();
                if allow_z && off == 0 {
                    out.push('Z');
                    continue;
                }
                let sign = if off < 0 { '-' } else { '+' };
                let a = off.abs();
                let (h, m, s) = (a / 3600, (a % 3600) / 60, a % 60);
                out.push_str(&match form {
                    "-07" => format!("{sign}{h:02}"),
                    "-0700" => format!("{sign}{h:02}{m:02}"),
                    "-07:00" => format!("{sign}{h:02}:{m:02}"),
                    _ => format!("{sign}{h:02}:{m:02}:{s:02}"),
                });
            }
            Tok::ZoneName => {
                if t.offset().local_minus_utc() == 0 {
                    out.push_str("UTC");
                } else {
                    out.push_str(&t.format("%z").to_string());
                }
            }
        }
    }
    out
}

/// The current time in UTC, as a fixed-offset time.
pub fn now() -> DateTime<FixedOffset> {
    Utc::now().fixed_offset()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_go_forms() {
        assert_eq!(parse_duration("1h30m"), Some(90 * M));
        assert_eq!(parse_duration("300ms"), Some(300 * MS));
        assert_eq!(parse_duration("-1.5h"), Some(-(3 * H) / 2));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(format_duration(90 * M), "1h30m0s");
        assert_eq!(format_duration(1500 * MS), "1.5s");
        assert_eq!(format_duration(300 * MS), "300ms");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(-20 * S), "-20s");
    }

    #[test]
    fn layouts_parse_and_format() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let t = parse_with_layout(
            "2006-01-02T15:04:05Z07:00",
            "2021-03-04T05:06:07+02:00",
            utc,
        )
        .unwrap();
        assert_eq!(t.to_rfc3339(), "2021-03-04T05:06:07+02:00");
        let t = parse_with_layout(
            "02/Jan/2006:15:04:05 -0700",
            "10/Oct/2000:13:55:36 -0700",
            utc,
        )
        .unwrap();
        assert_eq!(
            format_with_layout("2006-01-02T15:04:05Z07:00", &t),
            "2000-10-10T13:55:36-07:00"
        );
        let t = parse_with_layout("Jan _2 15:04:05", "Jan  2 01:02:03", utc).unwrap();
        assert_eq!(format_with_layout("01-02 15:04:05", &t), "01-02 01:02:03");
        let t = parse_with_layout(
            "2006-01-02 15:04:05.999999999",
            "2021-01-01 00:00:00.25",
            utc,
        )
        .unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 250);
        assert!(parse_with_layout("2006-01-02", "2021-13-01", utc).is_none());
        assert!(parse_with_layout("2006-01-02", "2021-01-01 trailing", utc).is_none());
    }
}
