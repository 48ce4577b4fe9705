//! Evaluating due-time expressions (parsed by `definitions::due`) against the company
//! calendar, in the company's time zone.
//!
//! - `m`/`h` offsets are elapsed time; `d`/`w` move the local calendar date and keep the
//!   local time of day (so `+1d` across a DST change is still "same time tomorrow");
//!   `bd` moves by business days (the calendar's working weekdays minus public holidays).
//! - `at HH:MM` sets the local time of day; `next business day` is the first working day
//!   after today (at `HH:MM`, or at opening time).
//! - A local time that does not exist (the spring-forward gap) moves to the first valid
//!   minute after it; an ambiguous one (fall-back) takes the earlier instant.
//! - [`BusinessCalendar::next_open`] moves an instant outside business hours to the next
//!   opening (for reminders declared `within_business_hours`).

use std::collections::HashMap;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::definitions::due::{DueBase, DueExpr, Unit};
use crate::definitions::model::{Calendar, Weekday};

/// The company's time zone (`AKIS_TIMEZONE`), set once at start-up from the
/// configuration. It is a process-wide constant like the log set-up: due times are
/// evaluated deep inside domain transactions (a move's reminder triggers), and threading
/// the configuration through every domain call for one value would be worse.
static COMPANY_TZ: std::sync::OnceLock<Tz> = std::sync::OnceLock::new();

/// Sets the company time zone (the first call wins; later calls are ignored).
pub fn set_company_time_zone(tz: Tz) {
    let _ = COMPANY_TZ.set(tz);
}

/// The company time zone (Europe/Istanbul until set).
pub fn company_time_zone() -> Tz {
    COMPANY_TZ
        .get()
        .copied()
        .unwrap_or(chrono_tz::Europe::Istanbul)
}

/// The calendar of a definition set in the company time zone.
pub fn calendar_of(defs: &crate::definitions::Definitions) -> BusinessCalendar {
    BusinessCalendar::from_definitions(defs.calendar.as_ref(), company_time_zone())
}

/// Working days, hours and holidays in one time zone.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    pub tz: Tz,
    days: [bool; 7],
    opens: NaiveTime,
    closes: NaiveTime,
    /// Holiday → half day (an arife: closes at 13:00).
    holidays: HashMap<NaiveDate, bool>,
}

fn weekday_index(w: Weekday) -> usize {
    match w {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

impl BusinessCalendar {
    /// Monday to Friday, 09:00–18:00, no holidays, in `tz`.
    pub fn standard(tz: Tz) -> Self {
        Self {
            tz,
            days: [true, true, true, true, true, false, false],
            opens: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            closes: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
            holidays: HashMap::new(),
        }
    }

    /// From the definitions' `calendar:`; its `time_zone` when written there, otherwise
    /// `default_tz` (`AKIS_TIMEZONE`). A set that loaded has valid values throughout.
    pub fn from_definitions(calendar: Option<&Calendar>, default_tz: Tz) -> Self {
        let Some(c) = calendar else {
            return Self::standard(default_tz);
        };
        let tz = if c.time_zone.pos == crate::definitions::Pos::FILE {
            default_tz
        } else {
            c.time_zone.parse().unwrap_or(default_tz)
        };
        let time = |s: &str, fallback: (u32, u32)| {
            NaiveTime::parse_from_str(s, "%H:%M").unwrap_or_else(|_| {
                NaiveTime::from_hms_opt(fallback.0, fallback.1, 0).unwrap_or_default()
            })
        };
        let mut days = [false; 7];
        for d in &c.business_hours.days {
            days[weekday_index(*d)] = true;
        }
        Self {
            tz,
            days,
            opens: time(&c.business_hours.opens, (9, 0)),
            closes: time(&c.business_hours.closes, (18, 0)),
            holidays: c
                .holidays
                .iter()
                .filter_map(|h| {
                    NaiveDate::parse_from_str(&h.date, "%Y-%m-%d")
                        .ok()
                        .map(|d| (d, h.half_day))
                })
                .collect(),
        }
    }

    /// A working day: a working weekday that is not a (full-day) public holiday.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
            && !matches!(self.holidays.get(&date), Some(false))
    }

    fn closes_on(&self, date: NaiveDate) -> NaiveTime {
        match self.holidays.get(&date) {
            Some(true) => NaiveTime::from_hms_opt(13, 0, 0)
                .unwrap_or(self.closes)
                .min(self.closes),
            _ => self.closes,
        }
    }

    /// The instant of a local date and time, resolving DST gaps and overlaps.
    pub fn at_local(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let mut local = NaiveDateTime::new(date, time);
        for _ in 0..180 {
            match self.tz.from_local_datetime(&local) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(earlier, _) => return earlier.with_timezone(&Utc),
                // In a spring-forward gap: the first minute that exists.
                LocalResult::None => local += Duration::minutes(1),
            }
        }
        Utc.from_utc_datetime(&NaiveDateTime::new(date, time))
    }

    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    fn add_business_days(&self, mut date: NaiveDate, n: i64) -> NaiveDate {
        let step = if n >= 0 { 1 } else { -1 };
        let mut left = n.abs();
        // Bounded: a calendar with no working day at all would loop forever.
        let mut guard = 0;
        while left > 0 && guard < 3_660 {
            date += Duration::days(step);
            if self.is_business_day(date) {
                left -= 1;
            }
            guard += 1;
        }
        date
    }

    /// `t` when it falls within business hours, else the next opening.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let local = self.local(t);
        let (date, time) = (local.date(), local.time());
        if self.is_business_day(date) && time >= self.opens && time < self.closes_on(date) {
            return t;
        }
        let mut day = if self.is_business_day(date) && time < self.opens {
            date
        } else {
            self.add_business_days(date, 1)
        };
        if !self.is_business_day(day) {
            day = self.add_business_days(day, 1);
        }
        self.at_local(day, self.opens)
    }
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DueError {
    #[error("the field `{0}` has no date")]
    MissingField(String),
    #[error("the field `{0}` is not a date or time")]
    BadField(String),
}

/// A field value as an instant: RFC 3339 date-times, or a `YYYY-MM-DD` date (its local
/// midnight).
pub fn field_instant(
    calendar: &BusinessCalendar,
    name: &str,
    value: Option<&Value>,
) -> Result<DateTime<Utc>, DueError> {
    let text = match value {
        None | Some(Value::Null) => return Err(DueError::MissingField(name.into())),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(DueError::BadField(name.into())),
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(calendar.at_local(d, NaiveTime::MIN));
    }
    Err(DueError::BadField(name.into()))
}

/// Evaluates `expr` at `now`, with `fields` for a field base.
pub fn evaluate(
    expr: &DueExpr,
    now: DateTime<Utc>,
    fields: &Map<String, Value>,
    calendar: &BusinessCalendar,
) -> Result<DateTime<Utc>, DueError> {
    let mut t = match &expr.base {
        DueBase::Now => now,
        DueBase::Field(f) => field_instant(calendar, f, fields.get(f))?,
        DueBase::NextBusinessDay => {
            let today = calendar.local(now).date();
            let day = calendar.add_business_days(today, 1);
            let time = expr
                .at
                .map(|a| {
                    NaiveTime::from_hms_opt(a.hour.into(), a.minute.into(), 0)
                        .unwrap_or(calendar.opens)
                })
                .unwrap_or(calendar.opens);
            return Ok(calendar.at_local(day, time));
        }
    };
    for offset in &expr.offsets {
        t = match offset.unit {
            Unit::Minutes => t + Duration::minutes(offset.amount),
            Unit::Hours => t + Duration::hours(offset.amount),
            Unit::Days | Unit::Weeks => {
                let days = if offset.unit == Unit::Weeks {
                    offset.amount * 7
                } else {
                    offset.amount
                };
                let local = calendar.local(t);
                calendar.at_local(local.date() + Duration::days(days), local.time())
            }
            Unit::BusinessDays => {
                let local = calendar.local(t);
                calendar.at_local(
                    calendar.add_business_days(local.date(), offset.amount),
                    local.time(),
                )
            }
        };
    }
    if let Some(at) = expr.at {
        let local = calendar.local(t);
        let time =
            NaiveTime::from_hms_opt(at.hour.into(), at.minute.into(), 0).unwrap_or(local.time());
        t = calendar.at_local(local.date(), time);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::due::parse;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn istanbul() -> BusinessCalendar {
        let defs = crate::definitions::Definitions::load(crate::definitions::SourceSet::embedded())
            .definitions
            .expect("shipped set");
        BusinessCalendar::from_definitions(defs.calendar.as_ref(), chrono_tz::Europe::Istanbul)
    }

    fn eval(cal: &BusinessCalendar, expr: &str, now: &str, fields: Value) -> String {
        let fields = fields.as_object().cloned().unwrap_or_default();
        evaluate(&parse(expr).unwrap(), utc(now), &fields, cal)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn expressions_evaluate_to_the_expected_instants_in_istanbul() {
        let cal = istanbul();
        // (expression, now, fields, expected) — Istanbul is UTC+3 all year.
        let table: &[(&str, &str, Value, &str)] = &[
            (
                "+2d",
                "2026-12-02T09:15:00Z",
                json!({}),
                "2026-12-04T09:15:00+00:00",
            ),
            (
                "+2d at 10:00",
                "2026-12-02T09:15:00Z",
                json!({}),
                "2026-12-04T07:00:00+00:00",
            ),
            (
                "now + 4h",
                "2026-12-02T22:00:00Z",
                json!({}),
                "2026-12-03T02:00:00+00:00",
            ),
            (
                "+30m",
                "2026-12-02T10:00:00Z",
                json!({}),
                "2026-12-02T10:30:00+00:00",
            ),
            (
                "+1w",
                "2026-12-02T10:00:00Z",
                json!({}),
                "2026-12-09T10:00:00+00:00",
            ),
            (
                "appointment_at - 1d at 10:00",
                "2026-12-02T10:00:00Z",
                json!({"appointment_at": "2026-12-10T14:30:00+03:00"}),
                "2026-12-09T07:00:00+00:00",
            ),
            // Friday 2026-12-04 → next business day is Monday the 7th.
            (
                "next business day 09:30",
                "2026-12-04T12:00:00Z",
                json!({}),
                "2026-12-07T06:30:00+00:00",
            ),
            (
                "next business day",
                "2026-12-04T12:00:00Z",
                json!({}),
                "2026-12-07T06:00:00+00:00",
            ),
            // Holiday: Thursday 2026-10-29 (Republic Day) is skipped; the 28th is a half day
            // but still a working day.
            (
                "next business day 10:00",
                "2026-10-27T12:00:00Z",
                json!({}),
                "2026-10-28T07:00:00+00:00",
            ),
            (
                "next business day 10:00",
                "2026-10-28T12:00:00Z",
                json!({}),
                "2026-10-30T07:00:00+00:00",
            ),
            (
                "+3bd at 17:00",
                "2026-10-27T12:00:00Z",
                json!({}),
                "2026-11-02T14:00:00+00:00",
            ),
            (
                "-1bd",
                "2026-12-07T08:00:00Z",
                json!({}),
                "2026-12-04T08:00:00+00:00",
            ),
            // A date field counts from its local midnight.
            (
                "teslim_tarihi + 0d at 09:00",
                "2026-12-01T00:00:00Z",
                json!({"teslim_tarihi": "2026-12-15"}),
                "2026-12-15T06:00:00+00:00",
            ),
            (
                "appointment_at - 1d",
                "2026-12-01T00:00:00Z",
                json!({}),
                "error: the field `appointment_at` has no date",
            ),
            (
                "appointment_at - 1d",
                "2026-12-01T00:00:00Z",
                json!({"appointment_at": 5}),
                "error: the field `appointment_at` is not a date or time",
            ),
        ];
        for (expr, now, fields, expected) in table {
            assert_eq!(
                &eval(&cal, expr, now, fields.clone()),
                expected,
                "{expr} at {now}"
            );
        }
    }

    #[test]
    fn days_keep_the_local_time_across_dst_and_hours_do_not() {
        let cal = BusinessCalendar::standard(chrono_tz::America::New_York);
        // DST starts 2026-03-08 02:00 in New York (EST -5 → EDT -4).
        let table: &[(&str, &str, &str)] = &[
            ("+1d", "2026-03-07T15:00:00Z", "2026-03-08T14:00:00+00:00"), // 10:00 EST → 10:00 EDT
            ("+24h", "2026-03-07T15:00:00Z", "2026-03-08T15:00:00+00:00"), // 24 elapsed hours: 11:00 EDT
            (
                "+1d at 02:30",
                "2026-03-07T15:00:00Z",
                "2026-03-08T07:00:00+00:00",
            ), // 02:30 does not exist → 03:00 EDT
            // DST ends 2026-11-01 02:00 (EDT → EST): 01:30 happens twice; the earlier wins.
            (
                "+1d at 01:30",
                "2026-10-31T15:00:00Z",
                "2026-11-01T05:30:00+00:00",
            ),
            ("+1d", "2026-10-31T14:00:00Z", "2026-11-01T15:00:00+00:00"), // 10:00 EDT → 10:00 EST
            (
                "next business day 09:00",
                "2026-03-06T20:00:00Z",
                "2026-03-09T13:00:00+00:00",
            ), // Monday, EDT
        ];
        for (expr, now, expected) in table {
            assert_eq!(
                &eval(&cal, expr, now, json!({})),
                expected,
                "{expr} at {now}"
            );
        }
    }

    #[test]
    fn outside_business_hours_moves_to_the_next_opening() {
        let cal = istanbul();
        // Saturday evening → Monday 09:00.
        assert_eq!(
            cal.next_open(utc("2026-12-05T17:00:00Z")).to_rfc3339(),
            "2026-12-07T06:00:00+00:00"
        );
        // Within hours: unchanged.
        assert_eq!(
            cal.next_open(utc("2026-12-07T08:00:00Z")).to_rfc3339(),
            "2026-12-07T08:00:00+00:00"
        );
        // Early morning of a working day → its opening.
        assert_eq!(
            cal.next_open(utc("2026-12-07T03:00:00Z")).to_rfc3339(),
            "2026-12-07T06:00:00+00:00"
        );
        // An arife afternoon (closes 13:00) → the next working day (the holiday is skipped).
        assert_eq!(
            cal.next_open(utc("2026-10-28T11:00:00Z")).to_rfc3339(),
            "2026-10-30T06:00:00+00:00"
        );
    }

    use serde_json::json;
}
