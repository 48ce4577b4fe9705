//! The due-time expression grammar used by reminders, follow-ups and work-order steps.
//!
//! ```text
//! expr     := base? offset* at?
//!           | "next business day" ("at"? TIME)?
//! base     := "now" | FIELD                   (a date/datetime field id; default: now)
//! offset   := ("+" | "-") INT unit
//! unit     := "m" | "h" | "d" | "w" | "bd"    (minutes, hours, days, weeks, business days)
//! at       := "at" TIME
//! TIME     := HH ":" MM                        (24-hour clock, company time zone)
//! ```
//! Examples: `appointment_at - 1d at 10:00`, `+2d`, `+2d at 10:00`, `now + 4h`,
//! `next business day 09:30`, `+3bd at 17:00`. Whitespace between tokens is optional.
//! This module only parses into [`DueExpr`]; the reminders module evaluates it.

use std::fmt;

/// A parsed due-time expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueExpr {
    pub base: DueBase,
    pub offsets: Vec<Offset>,
    /// Time of day the result is moved to, after the offsets.
    pub at: Option<TimeOfDay>,
}

/// What the offsets are added to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueBase {
    Now,
    /// A date or datetime field of the card or customer.
    Field(String),
    /// The next business day (per the calendar) after now.
    NextBusinessDay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// Signed amount.
    pub amount: i64,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minutes,
    Hours,
    Days,
    Weeks,
    BusinessDays,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

/// A parse error with the 0-based character offset inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A due-time expression as written, with its parse result. Loading refuses a set in
/// which any of them failed, so after a successful load [`Due::expr`] is always `Some`.
#[derive(Debug, Clone)]
pub struct Due {
    pub text: String,
    pub parsed: Result<DueExpr, DueError>,
}

impl Due {
    pub fn expr(&self) -> Option<&DueExpr> {
        self.parsed.as_ref().ok()
    }
}

impl<'de> serde::Deserialize<'de> for Due {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = parse(&text);
        Ok(Due { text, parsed })
    }
}

impl serde::Serialize for Due {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl schemars::JsonSchema for Due {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("DueExpression")
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Due-time expression: `+2d`, `+2d at 10:00`, `appointment_at - 1d at 10:00`, `next business day 09:30`"
        })
    }
}

/// A duration like `3d`, `12h`, `30m`, `1w` (used by `no_contact: {for: 3d}`).
pub fn parse_duration(s: &str) -> Result<Offset, DueError> {
    let mut p = Parser::new(s);
    p.skip_ws();
    let start = p.pos;
    let amount = p
        .int()
        .ok_or_else(|| p.err(start, "expected a duration such as `3d`, `12h` or `30m`"))?;
    let unit = p.unit()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.err(p.pos, "unexpected text after the duration"));
    }
    if amount <= 0 {
        return Err(p.err(start, "a duration must be positive"));
    }
    Ok(Offset { amount, unit })
}

impl std::str::FromStr for DueExpr {
    type Err = DueError;
    fn from_str(s: &str) -> Result<Self, DueError> {
        parse(s)
    }
}

/// Parses a due-time expression.
pub fn parse(s: &str) -> Result<DueExpr, DueError> {
    let mut p = Parser::new(s);
    p.skip_ws();
    if p.at_end() {
        return Err(p.err(0, "empty due-time expression; write e.g. `+2d at 10:00`"));
    }
    let base = if p.keyword_seq(&["next", "business", "day"]) {
        p.skip_ws();
        let _ = p.keyword("at");
        p.skip_ws();
        let at = if p.at_end() { None } else { Some(p.time()?) };
        p.skip_ws();
        if !p.at_end() {
            return Err(p.err(p.pos, "unexpected text after `next business day`"));
        }
        return Ok(DueExpr {
            base: DueBase::NextBusinessDay,
            offsets: Vec::new(),
            at,
        });
    } else if p.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
        let start = p.pos;
        let word = p.word();
        match word.as_str() {
            "now" => DueBase::Now,
            "at" => {
                p.pos = start;
                DueBase::Now
            }
            "next" => {
                return Err(p.err(start, "expected `next business day`"));
            }
            _ => {
                if super::model::check_slug(&word).is_err() {
                    return Err(p.err(start, format!("`{word}` is not a field id")));
                }
                DueBase::Field(word)
            }
        }
    } else {
        DueBase::Now
    };
    let mut offsets = Vec::new();
    let mut at = None;
    loop {
        p.skip_ws();
        let Some(c) = p.peek() else { break };
        match c {
            '+' | '-' => {
                p.bump();
                p.skip_ws();
                let start = p.pos;
                let n = p
                    .int()
                    .ok_or_else(|| p.err(start, "expected a number after the sign, e.g. `+2d`"))?;
                let unit = p.unit()?;
                offsets.push(Offset {
                    amount: if c == '-' { -n } else { n },
                    unit,
                });
            }
            _ if p.keyword("at") => {
                p.skip_ws();
                at = Some(p.time()?);
                p.skip_ws();
                if !p.at_end() {
                    return Err(p.err(p.pos, "unexpected text after the time of day"));
                }
                break;
            }
            _ => {
                return Err(p.err(
                    p.pos,
                    format!("unexpected `{c}`; expected `+N<unit>`, `-N<unit>` or `at HH:MM`"),
                ));
            }
        }
    }
    if base == DueBase::Now && offsets.is_empty() && at.is_none() && !s.trim().starts_with("now") {
        return Err(p.err(0, "expected a due-time expression such as `+2d at 10:00`"));
    }
    Ok(DueExpr { base, offsets, at })
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            chars: src.chars().collect(),
            pos: 0,
            _src: src,
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn bump(&mut self) {
        self.pos += 1;
    }
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn err(&self, offset: usize, message: impl Into<String>) -> DueError {
        DueError {
            offset,
            message: message.into(),
        }
    }
    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                w.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        w
    }
    /// Consumes `kw` if it is the next whole word.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        if self.word() == kw {
            true
        } else {
            self.pos = save;
            false
        }
    }
    fn keyword_seq(&mut self, kws: &[&str]) -> bool {
        let save = self.pos;
        for (i, kw) in kws.iter().enumerate() {
            if i > 0 {
                self.skip_ws();
            }
            if !self.keyword(kw) {
                self.pos = save;
                return false;
            }
        }
        true
    }
    fn int(&mut self) -> Option<i64> {
        let start = self.pos;
        let mut n: i64 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            n = n.checked_mul(10)?.checked_add(i64::from(d))?;
            self.pos += 1;
            if self.pos - start > 6 {
                return None;
            }
        }
        (self.pos > start).then_some(n)
    }
    fn unit(&mut self) -> Result<Unit, DueError> {
        let start = self.pos;
        let w = self.word();
        match w.as_str() {
            "m" => Ok(Unit::Minutes),
            "h" => Ok(Unit::Hours),
            "d" => Ok(Unit::Days),
            "w" => Ok(Unit::Weeks),
            "bd" => Ok(Unit::BusinessDays),
            "" => Err(self.err(start, "missing unit; use m, h, d, w or bd")),
            other => Err(self.err(
                start,
                format!("unknown unit `{other}`; use m (minutes), h (hours), d (days), w (weeks) or bd (business days)"),
            )),
        }
    }
    fn time(&mut self) -> Result<TimeOfDay, DueError> {
        let start = self.pos;
        let bad = |p: &Self| p.err(start, "expected a time of day `HH:MM` (24-hour clock)");
        let h = self.int().ok_or_else(|| bad(self))?;
        if self.peek() != Some(':') {
            return Err(bad(self));
        }
        self.bump();
        let mstart = self.pos;
        let m = self.int().ok_or_else(|| bad(self))?;
        if self.pos - mstart != 2 || !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(self.err(start, format!("`{h}:{m:02}` is not a valid time of day")));
        }
        Ok(TimeOfDay {
            hour: h as u8,
            minute: m as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u8, m: u8) -> Option<TimeOfDay> {
        Some(TimeOfDay { hour: h, minute: m })
    }

    #[test]
    fn a_field_minus_a_day_at_a_time_parses() {
        assert_eq!(
            parse("appointment_at - 1d at 10:00").unwrap(),
            DueExpr {
                base: DueBase::Field("appointment_at".into()),
                offsets: vec![Offset {
                    amount: -1,
                    unit: Unit::Days
                }],
                at: t(10, 0),
            }
        );
    }

    #[test]
    fn relative_offsets_parse_with_and_without_time() {
        assert_eq!(
            parse("+2d").unwrap(),
            DueExpr {
                base: DueBase::Now,
                offsets: vec![Offset {
                    amount: 2,
                    unit: Unit::Days
                }],
                at: None
            }
        );
        assert_eq!(parse("+2d at 10:00").unwrap().at, t(10, 0));
        assert_eq!(
            parse("now + 4h").unwrap().offsets,
            vec![Offset {
                amount: 4,
                unit: Unit::Hours
            }]
        );
        assert_eq!(
            parse("+3bd at 17:30").unwrap().offsets[0].unit,
            Unit::BusinessDays
        );
        assert_eq!(
            parse("now").unwrap(),
            DueExpr {
                base: DueBase::Now,
                offsets: vec![],
                at: None
            }
        );
    }

    #[test]
    fn next_business_day_parses_with_optional_at() {
        for s in ["next business day 09:30", "next business day at 09:30"] {
            let e = parse(s).unwrap();
            assert_eq!(e.base, DueBase::NextBusinessDay);
            assert_eq!(e.at, t(9, 30));
        }
        assert_eq!(parse("next business day").unwrap().at, None);
    }

    #[test]
    fn errors_point_at_the_offending_character() {
        let e = parse("+2x").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("unknown unit `x`"), "{}", e.message);
        assert_eq!(parse("+2d at 25:00").unwrap_err().offset, 7);
        assert_eq!(parse("+2d at 10").unwrap_err().offset, 7);
        assert_eq!(parse("appointment_at ? 1d").unwrap_err().offset, 15);
        assert_eq!(parse("").unwrap_err().offset, 0);
        assert!(parse("next week").is_err());
        assert!(parse("+99999999999999999999d").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("3d").unwrap(),
            Offset {
                amount: 3,
                unit: Unit::Days
            }
        );
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3 days").is_err());
    }
}
