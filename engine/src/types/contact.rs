//! Contact data parsed at the edge: [`Phone`] (E.164, through the `phonenumber` library,
//! default region Turkey) and [`Email`] (trimmed, lower-cased, syntax-checked).
//!
//! Both are personal data: their `Debug` output is masked so a stray `{:?}` in a log line
//! never prints a full number or address. `Display`/`as_str` give the real value for
//! storage and API payloads.

use serde::{Deserialize, Serialize};

/// A phone number in E.164 form (`+905321234567`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("`{0}` is not a valid phone number")]
    InvalidPhone(String),
    #[error("`{0}` is not a valid email address")]
    InvalidEmail(String),
}

impl Phone {
    /// Parses what a person or a form typed. National Turkish forms (`0532 123 45 67`,
    /// `532 123 4567`), international ones (`+90 (532) 123-45-67`, `0090 532 123 45 67`)
    /// and bare country-code digits (`905321234567`) all give `+905321234567`.
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        Self::parse_with_region(raw, phonenumber::country::Id::TR)
    }

    pub fn parse_with_region(
        raw: &str,
        region: phonenumber::country::Id,
    ) -> Result<Self, ContactError> {
        let invalid = || ContactError::InvalidPhone(mask(raw.trim()));
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(invalid());
        }
        let try_parse = |text: &str| {
            phonenumber::parse(Some(region), text)
                .ok()
                .filter(phonenumber::is_valid)
                .map(|n| n.format().mode(phonenumber::Mode::E164).to_string())
        };
        if let Some(e164) = try_parse(trimmed) {
            return Ok(Self(e164));
        }
        // Bare digits that already carry a country code (`905321234567`, as WhatsApp's
        // wa_id and many exports write them) read as a too-long national number.
        let digits: String = trimmed.chars().filter(|c| c.is_ascii_digit()).collect();
        let only_digits_and_separators = trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
        if only_digits_and_separators
            && !digits.starts_with('0')
            && digits.len() >= 8
            && let Some(e164) = try_parse(&format!("+{digits}"))
        {
            return Ok(Self(e164));
        }
        Err(invalid())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+90532*****67`: enough to recognise, not enough to call.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl TryFrom<String> for Phone {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Phone::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

crate::text_encoded!(Phone, |p: &Phone| p.0.clone(), |s: &str| -> Result<
    Phone,
    ContactError,
> {
    Ok(Phone(s.to_string()))
});

/// An email address, trimmed and lower-cased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        let normalized = raw.trim().to_lowercase();
        if normalized.len() > 254 || !email_address::EmailAddress::is_valid(&normalized) {
            return Err(ContactError::InvalidEmail(mask(raw.trim())));
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `ay***@example.com`.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let keep: String = local.chars().take(2).collect();
                format!("{keep}***@{domain}")
            }
            None => mask(&self.0),
        }
    }
}

impl TryFrom<String> for Email {
    type Error = ContactError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

crate::text_encoded!(Email, |e: &Email| e.0.clone(), |s: &str| -> Result<
    Email,
    ContactError,
> {
    Ok(Email(s.to_string()))
});

/// Keeps the first five and last two characters of a value and stars the rest.
fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turkish_phone_variants_are_one_number() {
        for raw in [
            "0532 123 45 67",
            "532 123 4567",
            "+90 (532) 123-45-67",
            "0090 532 123 45 67",
            "905321234567",
            "+905321234567",
            "  0 (532) 123 45 67 ",
        ] {
            assert_eq!(
                Phone::parse(raw).map(|p| p.as_str().to_string()),
                Ok("+905321234567".to_string()),
                "input {raw:?}"
            );
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country() {
        assert_eq!(
            Phone::parse("+49 30 901820").expect("valid").as_str(),
            "+4930901820"
        );
    }

    #[test]
    fn junk_is_not_a_phone() {
        for raw in ["", "abc", "123", "0532", "+90 532 123", &"9".repeat(200)] {
            assert!(Phone::parse(raw).is_err(), "input {raw:?}");
        }
    }

    #[test]
    fn debug_output_masks_phones_and_emails() {
        let p = Phone::parse("0532 123 45 67").expect("valid");
        assert_eq!(format!("{p:?}"), "Phone(+9053******67)");
        let e = Email::parse(" Ayse.Yilmaz@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "ayse.yilmaz@example.com");
        assert_eq!(format!("{e:?}"), "Email(ay***@example.com)");
    }

    #[test]
    fn bad_emails_are_refused() {
        for raw in ["", "a", "a@", "@b.com", "a b@c.com"] {
            assert!(Email::parse(raw).is_err(), "input {raw:?}");
        }
    }
}
