//! `schedule`: a trigger fired by the clock, `every: 15m` or `cron: "0 9 * * MON"` (five
//! fields: minute hour day-of-month month day-of-week, in UTC; names `JAN`..`DEC`,
//! `SUN`..`SAT`; `*`, lists, ranges and steps).

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{json, Map, Value};

use crate::module::{Bundle, Input, Module, ModuleError, RunContext, Trigger, TriggerKind};
use crate::scenario::duration::parse_duration;
use crate::spec::{field, out, FieldType, Kind, ModuleSpec};

/// `schedule`.
pub struct Schedule;

static SPEC: ModuleSpec = ModuleSpec {
    id: "schedule",
    kind: Kind::Trigger,
    label: "Schedule",
    help: "Starts an execution on a timetable: `every` (a duration such as `30s`, `15m`, `1h`) or `cron` (five fields, UTC). A run that is still going when the next is due is not overlapped. The bundle is `{ fired_at }`.",
    app: None,
    fields: &[
        field("every", FieldType::Text).param().help("Interval between runs: `1s`..`1d`.").example("15m"),
        field("cron", FieldType::Text).param().help("Cron line, five fields, in UTC.").example("\"0 9 * * MON\""),
    ],
    output: &[out("fired_at", FieldType::Date, "When the schedule fired (RFC 3339, UTC).")],
};

/// A parsed timetable.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleSpec {
    /// Fixed interval.
    Every(Duration),
    /// Cron line.
    Cron(Cron),
}

impl ScheduleSpec {
    /// Reads `every` or `cron` from a schedule trigger's params.
    pub fn from_params(params: &Map<String, Value>) -> Result<Self, (String, String)> {
        match (
            params.get("every").and_then(Value::as_str),
            params.get("cron").and_then(Value::as_str),
        ) {
            (Some(_), Some(_)) => Err(("cron".into(), "give `every` or `cron`, not both".into())),
            (Some(e), None) => match parse_duration(e) {
                Some(d) if d >= Duration::from_secs(1) => Ok(ScheduleSpec::Every(d)),
                Some(_) => Err((
                    "every".into(),
                    format!("`every: {e}` is shorter than one second"),
                )),
                None => Err((
                    "every".into(),
                    format!("invalid duration `{e}`; write `30s`, `15m`, `1h` or `1d`"),
                )),
            },
            (None, Some(c)) => Cron::parse(c)
                .map(ScheduleSpec::Cron)
                .map_err(|m| ("cron".into(), m)),
            (None, None) => Err((
                "every".into(),
                "a schedule needs `every` or `cron` under `params:`".into(),
            )),
        }
    }
}

/// The next time a timetable fires strictly after `after`.
pub fn next_fire(spec: &ScheduleSpec, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match spec {
        ScheduleSpec::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| after + d),
        ScheduleSpec::Cron(c) => c.next_after(after),
    }
}

/// A five-field cron line.
#[derive(Clone, Debug, PartialEq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month and day-of-week both restricted: either matches (as in Vixie cron).
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn parse_value(s: &str, names: &[&str], base: u32) -> Option<u32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    names.iter().position(|n| *n == up).map(|i| i as u32 + base)
}

fn parse_field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    base: u32,
    what: &str,
) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("invalid step `{s}` in the {what} field"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(a, names, base)
                .ok_or_else(|| format!("invalid value `{a}` in the {what} field"))?;
            let b = parse_value(b, names, base)
                .ok_or_else(|| format!("invalid value `{b}` in the {what} field"))?;
            (a, b)
        } else {
            let v = parse_value(range, names, base)
                .ok_or_else(|| format!("invalid value `{range}` in the {what} field"))?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!(
                "`{part}` is outside {min}-{max} in the {what} field"
            ));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`.
    pub fn parse(line: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "cron `{line}` has {} fields; write five: minute hour day-of-month month day-of-week, e.g. `0 9 * * MON`",
                fields.len()
            ));
        }
        let mut weekdays = parse_field(fields[4], 0, 7, &DAYS, 0, "day-of-week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            minutes: parse_field(fields[0], 0, 59, &[], 0, "minute")?,
            hours: parse_field(fields[1], 0, 23, &[], 0, "hour")?,
            days: parse_field(fields[2], 1, 31, &[], 0, "day-of-month")?,
            months: parse_field(fields[3], 1, 12, &MONTHS, 1, "month")?,
            weekdays,
            either_day: fields[2] != "*" && fields[4] != "*",
        })
    }

    fn day_matches(&self, t: &DateTime<Utc>) -> bool {
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first matching minute strictly after `after` (searching up to five years).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        let limit = after + chrono::Duration::days(366 * 5);
        while t < limit {
            if self.months & (1 << t.month()) == 0 || !self.day_matches(&t) {
                t = (t + chrono::Duration::days(1))
                    .with_hour(0)?
                    .with_minute(0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = (t + chrono::Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += chrono::Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[async_trait::async_trait]
impl Module for Schedule {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), (String, String)> {
        ScheduleSpec::from_params(params).map(|_| ())
    }

    async fn run(&self, _cx: &RunContext<'_>, _input: Input) -> Result<Vec<Bundle>, ModuleError> {
        Err(ModuleError::runtime("triggers are not run as actions"))
    }

    fn as_trigger(&self) -> Option<&dyn Trigger> {
        Some(self)
    }
}

impl Trigger for Schedule {
    fn trigger_kind(&self) -> TriggerKind {
        TriggerKind::Schedule
    }

    fn parse(&self, _params: &Map<String, Value>, body: Value) -> Result<Vec<Bundle>, ModuleError> {
        Ok(vec![match body {
            Value::Object(_) => body,
            _ => {
                json!({ "fired_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) })
            }
        }])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn cron_monday_nine() {
        let c = Cron::parse("0 9 * * MON").unwrap();
        // 2026-11-25 is a Wednesday.
        assert_eq!(
            c.next_after(at(2026, 11, 25, 10, 0)),
            Some(at(2026, 11, 30, 9, 0))
        );
    }

    #[test]
    fn cron_steps_ranges_lists() {
        let c = Cron::parse("*/15 8-17 * * 1-5").unwrap();
        assert_eq!(
            c.next_after(at(2026, 11, 25, 8, 7)),
            Some(at(2026, 11, 25, 8, 15))
        );
        assert_eq!(
            c.next_after(at(2026, 11, 25, 17, 45)),
            Some(at(2026, 11, 26, 8, 0))
        );
        let c = Cron::parse("0 0 1,15 JAN *").unwrap();
        assert_eq!(
            c.next_after(at(2026, 11, 25, 0, 0)),
            Some(at(2027, 1, 1, 0, 0))
        );
    }

    #[test]
    fn cron_errors_say_what_is_wrong() {
        assert!(Cron::parse("0 9 * *").unwrap_err().contains("has 4 fields"));
        assert!(Cron::parse("61 * * * *")
            .unwrap_err()
            .contains("outside 0-59"));
        assert!(Cron::parse("* * * * FUNDAY")
            .unwrap_err()
            .contains("invalid value `FUNDAY`"));
    }

    #[test]
    fn every_and_params() {
        let mut p = Map::new();
        p.insert("every".into(), json!("15m"));
        assert_eq!(
            ScheduleSpec::from_params(&p),
            Ok(ScheduleSpec::Every(Duration::from_secs(900)))
        );
        p.insert("cron".into(), json!("* * * * *"));
        assert!(ScheduleSpec::from_params(&p).is_err());
        assert!(ScheduleSpec::from_params(&Map::new()).is_err());
    }
}
