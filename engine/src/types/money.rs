//! Money: an integer amount in minor units (kuruş, cents) plus an ISO 4217 currency code.
//! Never a float. Columns come in pairs: `<name>_minor BIGINT` and `<name>_currency TEXT`.

use serde::{Deserialize, Serialize};

/// An ISO 4217 currency, stored and serialized as its three-letter code (`TRY`, `EUR`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub const TRY: Currency = Currency(iso_currency::Currency::TRY);

    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        iso_currency::Currency::from_code(code.trim())
            .map(Self)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(16).collect()))
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point (2 for TRY, 0 for JPY).
    pub fn exponent(&self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl std::fmt::Debug for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

crate::text_encoded!(Currency, |c: &Currency| c.code().to_string(), |s: &str| {
    Currency::parse(s)
});

/// An amount of money. `minor` counts the currency's smallest unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Parses a decimal amount written by a person (`1250`, `1250,50`, `1.250,50`,
    /// `1250.50`) into minor units, refusing more fraction digits than the currency has.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let cleaned: String = text.trim().chars().filter(|c| !c.is_whitespace()).collect();
        let bad = || MoneyError::BadAmount(text.chars().take(32).collect());
        // The last separator is the decimal one when it is followed by 1..=exponent digits.
        let exp = currency.exponent() as usize;
        let last_sep = cleaned.rfind([',', '.']);
        let (int_part, frac_part) = match last_sep {
            Some(i) if cleaned.len() - i - 1 <= exp && cleaned.len() - i - 1 > 0 => {
                (&cleaned[..i], &cleaned[i + 1..])
            }
            _ => (cleaned.as_str(), ""),
        };
        let (negative, int_part) = match int_part.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, int_part),
        };
        let int_digits: String = int_part
            .chars()
            .filter(|c| *c != '.' && *c != ',')
            .collect();
        if int_digits.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        if !int_digits.chars().all(|c| c.is_ascii_digit())
            || !frac_part.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let units: i64 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| bad())?
        };
        let mut frac = frac_part.to_string();
        while frac.len() < exp {
            frac.push('0');
        }
        let frac: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        let scale = 10i64.checked_pow(exp as u32).ok_or_else(bad)?;
        let minor = units
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac))
            .ok_or_else(bad)?;
        Ok(Self::new(if negative { -minor } else { minor }, currency))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an ISO 4217 currency code")]
    UnknownCurrency(String),
    #[error("`{0}` is not an amount of money")]
    BadAmount(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_parse_by_code() {
        assert_eq!(Currency::parse("TRY").expect("known").code(), "TRY");
        assert_eq!(Currency::parse("EUR").expect("known").exponent(), 2);
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn human_amounts_become_minor_units() {
        let t = Currency::TRY;
        assert_eq!(Money::parse_decimal("1250", t).expect("ok").minor, 125_000);
        assert_eq!(
            Money::parse_decimal("1.250,50", t).expect("ok").minor,
            125_050
        );
        assert_eq!(
            Money::parse_decimal("1250.5", t).expect("ok").minor,
            125_050
        );
        assert_eq!(
            Money::parse_decimal("1 250,00", t).expect("ok").minor,
            125_000
        );
        assert_eq!(Money::parse_decimal("-3,25", t).expect("ok").minor, -325);
        assert!(Money::parse_decimal("12a", t).is_err());
        assert!(Money::parse_decimal("", t).is_err());
        assert!(Money::parse_decimal("99999999999999999999", t).is_err());
    }

    #[test]
    fn money_serializes_with_its_code() {
        let m = Money::new(125_050, Currency::TRY);
        assert_eq!(
            serde_json::to_string(&m).expect("serializes"),
            r#"{"minor":125050,"currency":"TRY"}"#
        );
    }
}
