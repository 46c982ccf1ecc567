//! Date helpers (`now formatDate parseDate addDays addHours addMinutes`) and the date
//! reading shared with filters and coercion.
//!
//! # Reading dates
//!
//! A date is read from (in this order): RFC 3339 (`2024-05-01T09:30:00Z`,
//! `2024-05-01T09:30:00.250+02:00`, also with a space instead of `T`); an ISO date-time
//! with a `+0200` offset; RFC 2822 (`Wed, 01 May 2024 09:30:00 +0000`); a date-time
//! without offset, read as UTC (`2024-05-01T09:30[:00[.250]]`, `2024-05-01 09:30[:00]`,
//! `2024/05/01 09:30[:00]`); a date, read as midnight UTC (`2024-05-01`, `2024/05/01`);
//! unix time, as a JSON number or as text of 9 to 13 digits: seconds, or milliseconds
//! when the magnitude is 10^11 or more (10^11 seconds is the year 5138).
//!
//! Dates come out as RFC 3339 in UTC (`2024-05-01T09:30:00Z`), with a fraction only when
//! there is one. `now` is precise to the millisecond.
//!
//! # Formats
//!
//! `formatDate` and `parseDate` take Make's (moment.js) tokens:
//!
//! | token | meaning | example |
//! |---|---|---|
//! | `YYYY` `YY` | year | `2024` `24` |
//! | `MMMM` `MMM` `MM` `M` | month name, short name, 2-digit, number | `May` `May` `05` `5` |
//! | `DD` `D` | day of month | `01` `1` |
//! | `DDDD` `DDD` | day of year | `122` |
//! | `dddd` `ddd` `d` | weekday name, short name, number (Sunday = 0) | `Wednesday` `Wed` `3` |
//! | `HH` `H` | hour 0–23 | `09` `9` |
//! | `hh` `h` | hour 1–12 | `09` `9` |
//! | `A` `a` | `AM`/`PM`, `am`/`pm` | |
//! | `mm` `m` | minute | `05` `5` |
//! | `ss` `s` | second | `07` `7` |
//! | `SSS` | millisecond | `250` |
//! | `Z` `ZZ` | offset | `+02:00` `+0200` |
//! | `X` | unix seconds | `1714555800` |
//! | `WW` `W` | ISO week | `18` |
//! | `E` | ISO weekday (Monday = 1) | `3` |
//! | `[text]` | literal text | `[at]` |
//!
//! Other letters and characters are literal, as in moment (`T` in `YYYY-MM-DDTHH:mm`).
//!
//! # Time zones
//!
//! The optional time zone argument is `UTC` (also `Z`, `GMT`) or a fixed offset: `+02:00`,
//! `-0500`, `+2`, `UTC+02:00`. Named zones (`America/New_York`) are not supported yet;
//! without the argument dates are shown and read in UTC.

use chrono::format::{Parsed, StrftimeItems};
use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, SecondsFormat,
    TimeZone, Timelike, Utc,
};
use serde_json::Value;

use super::helpers::{helper, opt, req, Args, HelperSpec, Kind};

pub(crate) static HELPERS: &[HelperSpec] = &[
    helper(
        "addDays",
        &[req("date", Kind::Date), req("days", Kind::Number)],
        add_days,
    ),
    helper(
        "addHours",
        &[req("date", Kind::Date), req("hours", Kind::Number)],
        add_hours,
    ),
    helper(
        "addMinutes",
        &[req("date", Kind::Date), req("minutes", Kind::Number)],
        add_minutes,
    ),
    helper(
        "formatDate",
        &[
            req("date", Kind::Date),
            req("format", Kind::DateFormat),
            opt("timezone", Kind::TimeZone),
        ],
        format_date,
    ),
    helper("now", &[], now),
    helper(
        "parseDate",
        &[
            req("text", Kind::Text),
            opt("format", Kind::DateFormat),
            opt("timezone", Kind::TimeZone),
        ],
        parse_date,
    ),
];

/// A date as RFC 3339 UTC text, with a fraction only when there is one.
pub(crate) fn to_rfc3339(dt: DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Unix time in seconds, or in milliseconds when the magnitude is 10^11 or more.
fn from_unix(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() {
        return None;
    }
    let millis = if n.abs() >= 1e11 { n } else { n * 1000.0 };
    if millis.abs() > 8.64e18 {
        return None;
    }
    // In range by the check above.
    #[allow(clippy::cast_possible_truncation)]
    DateTime::from_timestamp_millis(millis.round() as i64)
}

/// Reads a date from a JSON value (see the module docs); `None` when it is not one.
pub(crate) fn parse_value(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => parse_text(s, &Utc),
        Value::Number(n) => n.as_f64().and_then(from_unix),
        _ => None,
    }
}

/// Date-times without offset, tried in order.
const NAIVE_DATE_TIMES: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
];

/// Dates, read as midnight.
const NAIVE_DATES: &[&str] = &["%Y-%m-%d", "%Y/%m/%d"];

/// Reads date text (see the module docs); text without an offset is read in `tz`.
pub(crate) fn parse_text<Tz: TimeZone>(s: &str, tz: &Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.len() < 8 {
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    if s.as_bytes().get(10) == Some(&b' ') && s.is_char_boundary(10) && s.is_char_boundary(11) {
        let t = format!("{}T{}", &s[..10], &s[11..]);
        if let Ok(dt) = DateTime::parse_from_rfc3339(&t) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    if let Ok(dt) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_rfc2822(s) {
        return Some(dt.with_timezone(&Utc));
    }
    let local = |naive: NaiveDateTime| {
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|dt| dt.with_timezone(&Utc))
    };
    for f in NAIVE_DATE_TIMES {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, f) {
            return local(naive);
        }
    }
    for f in NAIVE_DATES {
        if let Ok(date) = NaiveDate::parse_from_str(s, f) {
            return local(date.and_time(NaiveTime::MIN));
        }
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if (9..=13).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<f64>().ok().and_then(from_unix);
    }
    None
}

/// Reads a time zone argument: `UTC`, `Z`, `GMT` or an offset (`+02:00`, `-0500`, `+2`,
/// `UTC+02:00`). The error says what was expected.
pub(crate) fn parse_time_zone(s: &str) -> Result<FixedOffset, String> {
    let expected = || {
        format!(
            "a time zone such as `UTC` or `+02:00` (named zones such as `{}` are not supported)",
            if s.contains('/') {
                s
            } else {
                "America/New_York"
            }
        )
    };
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    if ["UTC", "Z", "GMT", "ETC/UTC"].contains(&upper.as_str()) {
        return Ok(Utc.fix());
    }
    let rest = upper
        .strip_prefix("UTC")
        .or_else(|| upper.strip_prefix("GMT"))
        .unwrap_or(&upper);
    let (sign, rest) = match rest.as_bytes().first() {
        Some(b'+') => (1, &rest[1..]),
        Some(b'-') => (-1, &rest[1..]),
        _ => return Err(expected()),
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => (&rest[..2], &rest[2..]),
        None => (rest, "0"),
    };
    let ok_digits =
        |p: &str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !ok_digits(hours) || !ok_digits(minutes) {
        return Err(expected());
    }
    let h: i32 = hours.parse().map_err(|_| expected())?;
    let m: i32 = minutes.parse().map_err(|_| expected())?;
    if h > 18 || m > 59 {
        return Err(expected());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(expected)
}

/// A Make (moment.js) date format, translated to chrono's strftime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MomentFormat {
    /// For formatting.
    format: String,
    /// For parsing (offsets also accept `Z`).
    parse: String,
}

/// Moment tokens, longest first, with their strftime for formatting and for parsing.
const TOKENS: &[(&str, &str, &str)] = &[
    ("YYYY", "%Y", "%Y"),
    ("YY", "%y", "%y"),
    ("MMMM", "%B", "%B"),
    ("MMM", "%b", "%b"),
    ("MM", "%m", "%m"),
    ("M", "%-m", "%m"),
    ("DDDD", "%j", "%j"),
    ("DDD", "%-j", "%j"),
    ("DD", "%d", "%d"),
    ("D", "%-d", "%d"),
    ("dddd", "%A", "%A"),
    ("ddd", "%a", "%a"),
    ("d", "%w", "%w"),
    ("HH", "%H", "%H"),
    ("H", "%-H", "%H"),
    ("hh", "%I", "%I"),
    ("h", "%-I", "%I"),
    ("mm", "%M", "%M"),
    ("m", "%-M", "%M"),
    ("ss", "%S", "%S"),
    ("s", "%-S", "%S"),
    ("SSS", "%3f", "%3f"),
    ("A", "%p", "%p"),
    ("a", "%P", "%p"),
    ("ZZ", "%z", "%#z"),
    ("Z", "%:z", "%#z"),
    ("X", "%s", "%s"),
    ("WW", "%V", "%V"),
    ("W", "%-V", "%V"),
    ("E", "%u", "%u"),
];

impl MomentFormat {
    /// Translates a format; the error says what was expected.
    pub(crate) fn parse(src: &str) -> Result<MomentFormat, String> {
        let mut format = String::with_capacity(src.len() * 2);
        let mut parse = String::with_capacity(src.len() * 2);
        let literal = |c: char, format: &mut String, parse: &mut String| {
            if c == '%' {
                format.push_str("%%");
                parse.push_str("%%");
            } else {
                format.push(c);
                parse.push(c);
            }
        };
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            if c == '[' {
                let Some(end) = rest.find(']') else {
                    return Err(format!(
                        "a date format whose `[` literal text is closed with `]`, such as `YYYY-MM-DD [at] HH:mm`, not `{src}`"
                    ));
                };
                for l in rest[1..end].chars() {
                    literal(l, &mut format, &mut parse);
                }
                rest = &rest[end + 1..];
                continue;
            }
            if let Some((token, f, p)) = TOKENS.iter().find(|(t, _, _)| rest.starts_with(t)) {
                format.push_str(f);
                parse.push_str(p);
                rest = &rest[token.len()..];
                continue;
            }
            literal(c, &mut format, &mut parse);
            rest = &rest[c.len_utf8()..];
        }
        Ok(MomentFormat { format, parse })
    }

    /// Formats a date in the given offset.
    pub(crate) fn format(&self, dt: DateTime<FixedOffset>) -> Option<String> {
        use std::fmt::Write as _;
        let mut out = String::new();
        // Our translation only emits valid specifiers; an error would surface here, not panic.
        write!(out, "{}", dt.format(&self.format)).ok()?;
        Some(out)
    }

    /// Reads text in this format; without an offset in the text it is read in `tz`.
    pub(crate) fn read(&self, text: &str, tz: FixedOffset) -> Option<DateTime<Utc>> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text.trim(), StrftimeItems::new(&self.parse)).ok()?;
        if let Some(ts) = parsed.timestamp() {
            let nanos = parsed.nanosecond().unwrap_or(0);
            return DateTime::from_timestamp(ts, nanos);
        }
        if parsed.to_naive_time().is_err() {
            // A date without a time is midnight.
            parsed.set_hour(0).ok()?;
            parsed.set_minute(0).ok()?;
        }
        if parsed.offset().is_some() {
            return parsed.to_datetime().ok().map(|dt| dt.with_timezone(&Utc));
        }
        let naive = parsed
            .to_naive_date()
            .ok()?
            .and_time(parsed.to_naive_time().ok()?);
        tz.from_local_datetime(&naive)
            .single()
            .map(|dt| dt.with_timezone(&Utc))
    }
}

fn opt_zone(a: &Args<'_, '_>, i: usize) -> Result<FixedOffset, String> {
    match a.opt_text(i)? {
        None => Ok(Utc.fix()),
        Some(s) => parse_time_zone(&s).map_err(|e| a.bad(i, &e)),
    }
}

fn now(a: &Args<'_, '_>) -> Result<Value, String> {
    let now = (a.env.clock)();
    let millis = now.with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000);
    Ok(Value::String(to_rfc3339(millis.unwrap_or(now))))
}

fn format_date(a: &Args<'_, '_>) -> Result<Value, String> {
    let dt = a.date(0)?;
    let format = MomentFormat::parse(&a.text(1)?).map_err(|e| a.bad(1, &e))?;
    let tz = opt_zone(a, 2)?;
    format
        .format(dt.with_timezone(&tz))
        .map(Value::String)
        .ok_or_else(|| a.fail("cannot format this date"))
}

fn parse_date(a: &Args<'_, '_>) -> Result<Value, String> {
    let text = a.text(0)?;
    let tz = opt_zone(a, 2)?;
    let parsed = match a.opt_text(1)? {
        Some(f) => {
            let format = MomentFormat::parse(&f).map_err(|e| a.bad(1, &e))?;
            format.read(&text, tz).ok_or_else(|| {
                a.fail(format!(
                    "cannot read `{text}` as a date in the format `{f}`"
                ))
            })?
        }
        None => parse_text(&text, &tz).ok_or_else(|| {
            a.fail(format!(
                "cannot read `{text}` as a date; give a format, such as `DD/MM/YYYY`"
            ))
        })?,
    };
    Ok(Value::String(to_rfc3339(parsed)))
}

fn shift(a: &Args<'_, '_>, unit_millis: f64) -> Result<Value, String> {
    let dt = a.date(0)?;
    let millis = a.number(1)? * unit_millis;
    if !millis.is_finite() || millis.abs() > 1e17 {
        return Err(a.bad(1, "a number of a reasonable size"));
    }
    // In range by the check above.
    #[allow(clippy::cast_possible_truncation)]
    let delta = Duration::milliseconds(millis.round() as i64);
    dt.checked_add_signed(delta)
        .map(|d| Value::String(to_rfc3339(d)))
        .ok_or_else(|| a.fail("the date is out of range"))
}

fn add_days(a: &Args<'_, '_>) -> Result<Value, String> {
    shift(a, 86_400_000.0)
}

fn add_hours(a: &Args<'_, '_>) -> Result<Value, String> {
    shift(a, 3_600_000.0)
}

fn add_minutes(a: &Args<'_, '_>) -> Result<Value, String> {
    shift(a, 60_000.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::template::tests::{load_err, render, render_err, render_text};
    use crate::template::{Scope, Templates};
    use serde_json::json;
    use std::sync::Arc;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reads_common_formats() {
        let t = utc("2024-05-01T09:30:00Z");
        for s in [
            "2024-05-01T09:30:00Z",
            "2024-05-01T11:30:00+02:00",
            "2024-05-01 09:30:00Z",
            "2024-05-01T11:30:00+0200",
            "Wed, 01 May 2024 09:30:00 +0000",
            "2024-05-01T09:30:00",
            "2024-05-01T09:30",
            "2024-05-01 09:30:00",
            "2024-05-01 09:30",
            "2024/05/01 09:30",
            " 1714555800 ",
            "1714555800000",
        ] {
            assert_eq!(parse_text(s, &Utc), Some(t), "{s}");
        }
        assert_eq!(
            parse_text("2024-05-01", &Utc),
            Some(utc("2024-05-01T00:00:00Z"))
        );
        assert_eq!(parse_value(&json!(1_714_555_800)), Some(t));
        assert_eq!(parse_value(&json!(1_714_555_800_000_i64)), Some(t));
        assert_eq!(parse_text("yesterday", &Utc), None);
        assert_eq!(parse_text("2024-13-01", &Utc), None);
        assert_eq!(parse_value(&json!(true)), None);
        assert_eq!(to_rfc3339(t), "2024-05-01T09:30:00Z");
        assert_eq!(
            to_rfc3339(utc("2024-05-01T09:30:00.250Z")),
            "2024-05-01T09:30:00.250Z"
        );
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_time_zone("UTC").unwrap().local_minus_utc(), 0);
        assert_eq!(parse_time_zone("+02:00").unwrap().local_minus_utc(), 7200);
        assert_eq!(parse_time_zone("-0530").unwrap().local_minus_utc(), -19800);
        assert_eq!(parse_time_zone("+2").unwrap().local_minus_utc(), 7200);
        assert_eq!(
            parse_time_zone("UTC-05:00").unwrap().local_minus_utc(),
            -18000
        );
        let err = parse_time_zone("Europe/Paris").unwrap_err();
        assert!(err.contains("`Europe/Paris` are not supported"), "{err}");
        assert!(parse_time_zone("+25:00").is_err());
    }

    #[test]
    fn moment_tokens() {
        let f = MomentFormat::parse("dddd, MMMM D YYYY [at] h:mm A (Z) 100%").unwrap();
        let dt = utc("2024-05-01T21:05:09Z").with_timezone(&FixedOffset::east_opt(10800).unwrap());
        assert_eq!(
            f.format(dt).unwrap(),
            "Thursday, May 2 2024 at 12:05 AM (+03:00) 100%"
        );
        let f = MomentFormat::parse("YY-M-DD HH:m:s.SSS ddd DDD E W X").unwrap();
        assert_eq!(
            f.format(utc("2024-05-01T09:05:07.250Z").fixed_offset())
                .unwrap(),
            "24-5-01 09:5:7.250 Wed 122 3 18 1714554307"
        );
        assert!(MomentFormat::parse("YYYY [at").is_err());
    }

    #[test]
    fn format_and_parse_helpers() {
        let d =
            json!({"1": {"d": "2024-05-01T09:30:00Z", "eu": "01/05/2024 14:00", "bad": "soon"}});
        assert_eq!(
            render_text("{{formatDate 1.d \"YYYY-MM-DD HH:mm\"}}", &d),
            "2024-05-01 09:30"
        );
        assert_eq!(
            render_text("{{formatDate 1.d \"HH:mm Z\" \"-05:00\"}}", &d),
            "04:30 -05:00"
        );
        assert_eq!(
            render("{{parseDate 1.eu \"DD/MM/YYYY HH:mm\"}}", &d),
            json!("2024-05-01T14:00:00Z")
        );
        assert_eq!(
            render("{{parseDate 1.eu \"DD/MM/YYYY HH:mm\" \"+02:00\"}}", &d),
            json!("2024-05-01T12:00:00Z")
        );
        assert_eq!(
            render("{{parseDate \"2024-05-01\"}}", &d),
            json!("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            render("{{parseDate \"05/01/2024\" \"MM/DD/YYYY\"}}", &d),
            json!("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            render(
                "{{parseDate \"2024-05-01T10:00:00+01:00\" \"YYYY-MM-DDTHH:mm:ssZ\"}}",
                &d
            ),
            json!("2024-05-01T09:00:00Z")
        );
        assert!(render_err("{{parseDate 1.bad}}", &d).contains("cannot read `soon` as a date"));
        assert!(render_err("{{formatDate 1.bad \"YYYY\"}}", &d).contains("expects a date"));
        assert!(load_err("{{formatDate 1.d \"YYYY\" \"Mars/Olympus\"}}").contains("time zone"));
        assert!(load_err("{{formatDate 1.d \"[YYYY\"}}").contains("closed with `]`"));
        assert!(load_err("{{formatDate \"not a date\" \"YYYY\"}}").contains("expects a date"));
        assert!(load_err("{{formatDate 1.d}}").contains("takes 2 to 3 arguments"));
    }

    #[test]
    fn shifting_dates() {
        let d = json!({"1": {"d": "2024-05-01T09:30:00Z"}});
        assert_eq!(
            render("{{addDays 1.d 1}}", &d),
            json!("2024-05-02T09:30:00Z")
        );
        assert_eq!(
            render("{{addDays 1.d -31}}", &d),
            json!("2024-03-31T09:30:00Z")
        );
        assert_eq!(
            render("{{addHours 1.d 1.5}}", &d),
            json!("2024-05-01T11:00:00Z")
        );
        assert_eq!(
            render("{{addMinutes 1.d \"-30\"}}", &d),
            json!("2024-05-01T09:00:00Z")
        );
        assert!(load_err("{{addDays 1.d \"x\"}}").contains("expects a number"));
    }

    #[test]
    fn now_uses_the_clock() {
        let mut t = Templates::new();
        t.set_clock(Arc::new(|| utc("2024-05-01T09:30:00.123456Z")));
        let scope = Scope::new();
        let tpl = t.compile("{{now}}").unwrap();
        assert_eq!(
            t.render(&tpl, &scope).unwrap(),
            json!("2024-05-01T09:30:00.123Z")
        );
        let tpl = t.compile("{{formatDate now \"YYYY\"}}").unwrap();
        assert_eq!(t.render(&tpl, &scope).unwrap(), json!("2024"));
        let tpl = t.compile("{{formatDate (now) \"MM\"}}").unwrap();
        assert_eq!(t.render(&tpl, &scope).unwrap(), json!("05"));
        let tpl = t.compile("{{#if 1}}{{now}}{{/if}}").unwrap();
        assert!(tpl.references().is_empty());
        // Real clock: RFC 3339 UTC.
        let real = Templates::new();
        let mut real = real;
        let tpl = real.compile("{{now}}").unwrap();
        let v = real.render(&tpl, &scope).unwrap();
        assert!(v.as_str().unwrap().ends_with('Z'));
        assert!(parse_value(&v).is_some());
    }
}
