//! Custom field values declared in YAML (`customer_fields`, `card_fields`): one canonical
//! JSON form per type, validated at the edge.
//!
//! | type | stored as | in rules |
//! |---|---|---|
//! | text, long_text, choice | string | string |
//! | phone | E.164 string | string |
//! | email | lower-cased string | string |
//! | number | JSON number | number |
//! | money | `{"minor": 125050, "currency": "TRY"}` | number in major units (1250.5) |
//! | date | `"2026-11-25"` | string |
//! | datetime | canonical instant `"2026-11-25T09:00:00.000000Z"` | string |
//! | boolean | true/false | bool |
//! | file | a file id string | string |
//!
//! Money input accepts a number (major units), a string written by a person
//! (`"1.250,50"`) or the stored object; the currency defaults to TRY.

use serde_json::{Map, Value, json};

use crate::definitions::model::{FieldDef, FieldType};
use crate::types::{Currency, Email, Money, Phone, Timestamp};

/// The default currency for money fields entered without one.
pub const DEFAULT_CURRENCY: &str = "TRY";

/// Validates and normalizes one value. `Value::Null` clears the field.
pub fn normalize(def: &FieldDef, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if let Value::String(s) = value
        && s.trim().is_empty()
        && def.kind != FieldType::Boolean
    {
        return Ok(Value::Null);
    }
    match def.kind {
        FieldType::Text | FieldType::LongText | FieldType::File => {
            let s = value.as_str().ok_or("must be text")?;
            let limit = if def.kind == FieldType::LongText {
                20_000
            } else {
                1_000
            };
            if s.chars().count() > limit {
                return Err(format!("at most {limit} characters"));
            }
            Ok(Value::String(s.trim().to_string()))
        }
        FieldType::Choice => {
            let s = value.as_str().ok_or("must be one of the options")?;
            if def.options.iter().any(|o| o.id.as_str() == s) {
                Ok(Value::String(s.to_string()))
            } else {
                let ids: Vec<&str> = def.options.iter().map(|o| o.id.as_str()).collect();
                Err(format!("must be one of: {}", ids.join(", ")))
            }
        }
        FieldType::Phone => {
            let s = value.as_str().ok_or("must be a phone number")?;
            Phone::parse(s)
                .map(|p| Value::String(p.as_str().to_string()))
                .map_err(|_| "not a valid phone number".to_string())
        }
        FieldType::Email => {
            let s = value.as_str().ok_or("must be an email address")?;
            Email::parse(s)
                .map(|e| Value::String(e.as_str().to_string()))
                .map_err(|_| "not a valid email address".to_string())
        }
        FieldType::Number => match value {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .replace(',', ".")
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| "must be a number".to_string()),
            _ => Err("must be a number".into()),
        },
        FieldType::Money => parse_money(value).map(|m| money_json(&m)),
        FieldType::Date => {
            let s = value.as_str().ok_or("must be a date (YYYY-MM-DD)")?;
            chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| "must be a date (YYYY-MM-DD)".to_string())
        }
        FieldType::Datetime => {
            let s = value
                .as_str()
                .ok_or("must be a date and time (RFC 3339, e.g. 2026-11-25T10:00:00+03:00)")?;
            Timestamp::parse(s.trim())
                .map(|t| Value::String(t.to_canonical_string()))
                .map_err(|_| {
                    "must be a date and time (RFC 3339, e.g. 2026-11-25T10:00:00+03:00)".into()
                })
        }
        FieldType::Boolean => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "must be true or false".into()),
    }
}

fn parse_money(value: &Value) -> Result<Money, String> {
    let default = Currency::parse(DEFAULT_CURRENCY).map_err(|e| e.to_string())?;
    let bad = || "must be an amount of money (e.g. 1250,50)".to_string();
    match value {
        Value::Number(n) => {
            let text = n.to_string();
            Money::parse_decimal(&text, default).map_err(|_| bad())
        }
        Value::String(s) => Money::parse_decimal(s, default).map_err(|_| bad()),
        Value::Object(o) => {
            let currency = match o.get("currency").and_then(Value::as_str) {
                Some(code) => Currency::parse(code).map_err(|e| e.to_string())?,
                None => default,
            };
            if let Some(minor) = o.get("minor").and_then(Value::as_i64) {
                return Ok(Money::new(minor, currency));
            }
            match o.get("amount") {
                Some(Value::Number(n)) => {
                    Money::parse_decimal(&n.to_string(), currency).map_err(|_| bad())
                }
                Some(Value::String(s)) => Money::parse_decimal(s, currency).map_err(|_| bad()),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

fn money_json(m: &Money) -> Value {
    json!({"minor": m.minor, "currency": m.currency.code()})
}

/// A stored money value, if `value` is one.
pub fn stored_money(value: &Value) -> Option<Money> {
    let o = value.as_object()?;
    let currency = Currency::parse(o.get("currency")?.as_str()?).ok()?;
    Some(Money::new(o.get("minor")?.as_i64()?, currency))
}

/// The value as rules see it (money in major units).
pub fn rule_value(kind: FieldType, stored: &Value) -> Value {
    match kind {
        FieldType::Money => match stored_money(stored) {
            Some(m) => {
                let major = m.minor as f64 / 10f64.powi(m.currency.exponent() as i32);
                json!(major)
            }
            None => Value::Null,
        },
        _ => stored.clone(),
    }
}

/// Whether a stored value counts as filled for `required` checks.
pub fn is_filled(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// Validates `changes` against `defs` and merges them into `current`. Unknown keys and
/// invalid values are reported per field (all of them, not just the first).
pub fn merge(
    defs: &[FieldDef],
    current: &Map<String, Value>,
    changes: &Map<String, Value>,
    errors: &mut std::collections::BTreeMap<String, String>,
) -> Map<String, Value> {
    let mut merged = current.clone();
    for (key, value) in changes {
        let Some(def) = defs.iter().find(|d| d.id.as_str() == key) else {
            errors.insert(key.clone(), "no such field".into());
            continue;
        };
        match normalize(def, value) {
            Ok(Value::Null) => {
                merged.remove(key);
            }
            Ok(v) => {
                merged.insert(key.clone(), v);
            }
            Err(message) => {
                errors.insert(key.clone(), message);
            }
        }
    }
    merged
}

/// Sortable text for a stored value (for the board's declared card order): fixed-width
/// numbers, canonical instants; empty for a missing value.
pub fn sort_text(kind: FieldType, value: Option<&Value>) -> String {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return String::new();
    };
    match kind {
        FieldType::Number => value.as_f64().map(sortable_f64).unwrap_or_default(),
        FieldType::Money => stored_money(value)
            .map(|m| sortable_i64(m.minor))
            .unwrap_or_default(),
        FieldType::Boolean => if value.as_bool() == Some(true) {
            "1"
        } else {
            "0"
        }
        .into(),
        _ => value
            .as_str()
            .map(|s| crate::types::fold::fold(s).chars().take(64).collect())
            .unwrap_or_default(),
    }
}

/// An integer as 20 digits whose text order is numeric order.
pub fn sortable_i64(v: i64) -> String {
    format!("{:020}", (v as i128 - i64::MIN as i128) as u128)
}

/// A float as 16 hex digits whose text order is numeric order.
pub fn sortable_f64(v: f64) -> String {
    let bits = v.to_bits();
    let key = if v.is_sign_negative() {
        !bits
    } else {
        bits | (1 << 63)
    };
    format!("{key:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: FieldType) -> FieldDef {
        let yaml = format!(
            "id: f\ntype: {}\nlabel: {{tr: F, en: F}}\n",
            kind_name(kind)
        );
        serde_saphyr::from_str(&yaml).expect("field def")
    }

    fn kind_name(kind: FieldType) -> &'static str {
        match kind {
            FieldType::Money => "money",
            FieldType::Number => "number",
            FieldType::Datetime => "datetime",
            FieldType::Phone => "phone",
            _ => "text",
        }
    }

    #[test]
    fn money_accepts_what_people_type() {
        let d = def(FieldType::Money);
        assert_eq!(
            normalize(&d, &json!("1.250,50")).unwrap(),
            json!({"minor": 125050, "currency": "TRY"})
        );
        assert_eq!(
            normalize(&d, &json!(1250)).unwrap(),
            json!({"minor": 125000, "currency": "TRY"})
        );
        assert_eq!(
            normalize(&d, &json!({"amount": "10.5", "currency": "EUR"})).unwrap(),
            json!({"minor": 1050, "currency": "EUR"})
        );
        assert!(normalize(&d, &json!("abc")).is_err());
        assert_eq!(
            rule_value(
                FieldType::Money,
                &json!({"minor": 125050, "currency": "TRY"})
            ),
            json!(1250.5)
        );
    }

    #[test]
    fn datetimes_and_phones_are_canonical() {
        let d = def(FieldType::Datetime);
        assert_eq!(
            normalize(&d, &json!("2026-11-25T10:00:00+03:00")).unwrap(),
            json!("2026-11-25T07:00:00.000000Z")
        );
        assert!(normalize(&d, &json!("tomorrow")).is_err());
        let p = def(FieldType::Phone);
        assert_eq!(
            normalize(&p, &json!("0532 123 45 67")).unwrap(),
            json!("+905321234567")
        );
        assert_eq!(normalize(&p, &json!("  ")).unwrap(), Value::Null);
    }

    #[test]
    fn sortable_numbers_sort_as_text() {
        let mut ints = [-5i64, 0, 7, i64::MIN, i64::MAX, -1];
        let mut texts: Vec<String> = ints.iter().map(|v| sortable_i64(*v)).collect();
        ints.sort();
        texts.sort();
        assert_eq!(
            texts,
            ints.iter().map(|v| sortable_i64(*v)).collect::<Vec<_>>()
        );
        let floats = [-2.5f64, -0.1, 0.0, 0.1, 3.0, 1e10];
        let texts: Vec<String> = floats.iter().map(|v| sortable_f64(*v)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }
}
