//! Dates given by users (`send_at`, date-typed customer properties): ISO 8601 and the
//! common formats, turned into ISO 8601 for Sonar.
//!
//! Accepted:
//! - ISO 8601 / RFC 3339 with an offset: `2026-12-01T09:00:00Z`, `2026-12-01T09:00:00.250-08:00`,
//!   `2026-12-01T09:00+01:00`, `2026-12-01 09:00:00+0100`;
//! - the same without an offset, read as UTC: `2026-12-01T09:00`, `2026-12-01 09:00`,
//!   `2026-12-01 09:00:30`, `2026-12-01` (midnight);
//! - US month-first forms, read as UTC: `12/01/2026 9:00 AM`, `12/1/2026 09:00`,
//!   `12/01/2026 9:00:30 pm`, `12/01/2026`;
//! - month names: `December 1, 2026 9:00 AM`, `1 Dec 2026 09:00`, `Dec 1, 2026`;
//! - unix seconds: `1796115600`.
//!
//! Day-first forms like `01/12/2026` are read month-first (as Make and the US do); anything
//! else (`tomorrow`, `next tuesday`) is refused.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Formats with an offset (after `Z` has been rewritten to `+00:00`).
const WITH_OFFSET: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%:z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M%:z",
    "%Y-%m-%d %H:%M%z",
];

/// Formats without an offset (read as UTC).
const NAIVE: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M%p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%B %d, %Y %I:%M %p",
    "%B %d, %Y %H:%M",
    "%b %d, %Y %I:%M %p",
    "%b %d, %Y %H:%M",
    "%d %B %Y %H:%M",
    "%d %b %Y %H:%M",
];

/// Date-only formats (midnight UTC).
const DATE_ONLY: &[&str] = &[
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
];

/// A parsed date: with a time, or a calendar day only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A point in time.
    At(DateTime<Utc>),
    /// A calendar day.
    Day(NaiveDate),
}

impl Parsed {
    /// The point in time (a day is its midnight UTC).
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            Parsed::At(t) => t,
            Parsed::Day(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
        }
    }

    /// ISO 8601 text: `2026-12-01T09:00:00Z`, or `2026-12-01` for a day.
    pub fn to_iso(self) -> String {
        match self {
            Parsed::At(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            Parsed::Day(d) => d.format("%Y-%m-%d").to_string(),
        }
    }
}

/// Parses a user-given date (see the module docs for the forms); years outside
/// 1900..=9999 are refused (a two-digit year is a typo, not the first century).
pub fn parse(text: &str) -> Option<Parsed> {
    use chrono::Datelike;
    let parsed = parse_any(text)?;
    (1900..=9999)
        .contains(&parsed.instant().year())
        .then_some(parsed)
}

fn parse_any(text: &str) -> Option<Parsed> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.len() <= 12 && text.chars().all(|c| c.is_ascii_digit()) {
        let secs: i64 = text.parse().ok()?;
        return DateTime::from_timestamp(secs, 0).map(Parsed::At);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(Parsed::At(t.with_timezone(&Utc)));
    }
    let zulu = match text.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => text.to_owned(),
    };
    for f in WITH_OFFSET {
        if let Ok(t) = DateTime::parse_from_str(&zulu, f) {
            return Some(Parsed::At(t.with_timezone(&Utc)));
        }
    }
    for f in NAIVE {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, f) {
            return Some(Parsed::At(t.and_utc()));
        }
    }
    for f in DATE_ONLY {
        if let Ok(d) = NaiveDate::parse_from_str(text, f) {
            return Some(Parsed::Day(d));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn iso(text: &str) -> String {
        parse(text)
            .unwrap_or_else(|| panic!("`{text}` should parse"))
            .instant()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    #[test]
    fn iso_8601_forms() {
        for (text, want) in [
            ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-01T09:00:00.250-08:00", "2026-12-01T17:00:00Z"),
            ("2026-12-01T09:00+01:00", "2026-12-01T08:00:00Z"),
            ("2026-12-01T09:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-01 09:00:00+0100", "2026-12-01T08:00:00Z"),
            ("2026-12-01T09:00", "2026-12-01T09:00:00Z"),
            ("2026-12-01T09:00:30", "2026-12-01T09:00:30Z"),
            ("2026-12-01 09:00", "2026-12-01T09:00:00Z"),
            (" 2026-12-01 09:00:30 ", "2026-12-01T09:00:30Z"),
            ("2026-12-01", "2026-12-01T00:00:00Z"),
            ("1796115600", "2026-12-01T09:00:00Z"),
        ] {
            assert_eq!(iso(text), want, "{text}");
        }
    }

    #[test]
    fn common_forms() {
        for (text, want) in [
            ("12/01/2026 9:00 AM", "2026-12-01T09:00:00Z"),
            ("12/01/2026 9:00 PM", "2026-12-01T21:00:00Z"),
            ("12/1/2026 9:00 pm", "2026-12-01T21:00:00Z"),
            ("12/01/2026 9:00AM", "2026-12-01T09:00:00Z"),
            ("12/01/2026 12:15 AM", "2026-12-01T00:15:00Z"),
            ("12/01/2026 9:00:30 AM", "2026-12-01T09:00:30Z"),
            ("12/01/2026 09:00", "2026-12-01T09:00:00Z"),
            ("12/01/2026 17:45:10", "2026-12-01T17:45:10Z"),
            ("12/01/2026", "2026-12-01T00:00:00Z"),
            ("December 1, 2026 9:00 AM", "2026-12-01T09:00:00Z"),
            ("Dec 1, 2026 09:00", "2026-12-01T09:00:00Z"),
            ("1 Dec 2026 09:00", "2026-12-01T09:00:00Z"),
            ("Dec 1, 2026", "2026-12-01T00:00:00Z"),
        ] {
            assert_eq!(iso(text), want, "{text}");
        }
    }

    #[test]
    fn refused_forms() {
        for text in [
            "",
            "tomorrow",
            "next tuesday",
            "2026-13-01",
            "2026-12-01 25:00",
            "13/01/2026 9:00",
            "12/01/26 9:00",
            "2026-12-01T09",
            "9:00 AM",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn iso_text_keeps_days_as_days() {
        assert_eq!(parse("2024-02-28").unwrap().to_iso(), "2024-02-28");
        assert_eq!(parse("02/28/2024").unwrap().to_iso(), "2024-02-28");
        assert_eq!(
            parse("2024-02-28 10:30").unwrap().to_iso(),
            "2024-02-28T10:30:00Z"
        );
    }
}
