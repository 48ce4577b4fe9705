//! [`Timestamp`]: a UTC instant with microsecond precision and one canonical storage form.
//!
//! PostgreSQL stores it as `timestamptz` (microseconds). SQLite has no time type, and sqlx's
//! own `DateTime<Utc>` encoding there is variable-width text (`…+00:00`, fractional digits
//! vary) whose text order is not time order. We store fixed-width RFC 3339 text,
//! `2026-11-25T09:50:45.123456Z` (27 characters), so `ORDER BY` and range filters on the
//! text column are correct. Values are truncated to microseconds on construction so a value
//! read back from either backend equals the one written.

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Fixed-width canonical text form used on SQLite.
const SQLITE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// Truncates to microseconds, the precision both backends keep.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Self(dt.trunc_subsecs(6))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The SQLite text form; also handy in logs.
    pub fn to_canonical_string(&self) -> String {
        self.0.format(SQLITE_FORMAT).to_string()
    }

    /// Parses the canonical text form (and, leniently, any RFC 3339 instant).
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, SQLITE_FORMAT) {
            return Ok(Self::from_datetime(Utc.from_utc_datetime(&naive)));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|dt| Self::from_datetime(dt.with_timezone(&Utc)))
            .map_err(|_| TimestampError::Unparseable(text.chars().take(64).collect()))
    }

    fn checked_canonical(&self) -> Result<String, TimestampError> {
        use chrono::Datelike;
        let year = self.0.year();
        if !(0..=9999).contains(&year) {
            return Err(TimestampError::OutOfRange(year));
        }
        Ok(self.to_canonical_string())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(dt: DateTime<Utc>) -> Self {
        Self::from_datetime(dt)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_canonical_string())
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timestamp({})", self.to_canonical_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    #[error("`{0}` is not an RFC 3339 UTC timestamp")]
    Unparseable(String),
    #[error("year {0} is outside 0000..=9999 and cannot be stored")]
    OutOfRange(i32),
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}
impl utoipa::ToSchema for Timestamp {}

impl sqlx::Type<sqlx::Sqlite> for Timestamp {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(self.checked_canonical()?, buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for Timestamp {
    fn decode(
        value: <sqlx::Sqlite as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?;
        Ok(Self::parse(text)?)
    }
}

impl sqlx::Type<sqlx::Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::postgres::PgHasArrayType for Timestamp {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <DateTime<Utc> as sqlx::postgres::PgHasArrayType>::array_type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <DateTime<Utc> as sqlx::Encode<'q, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Timestamp {
    fn decode(
        value: <sqlx::Postgres as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Self(
            <DateTime<Utc> as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_is_fixed_width_and_ends_in_z() {
        let t = Timestamp::parse("2026-11-25T09:50:45Z").expect("valid");
        assert_eq!(t.to_canonical_string(), "2026-11-25T09:50:45.000000Z");
        let t = Timestamp::parse("2026-11-25T12:50:45.5+03:00").expect("valid");
        assert_eq!(t.to_canonical_string(), "2026-11-25T09:50:45.500000Z");
    }

    #[test]
    fn text_order_is_time_order() {
        let a = Timestamp::parse("2026-01-01T00:00:00.999999Z").expect("valid");
        let b = Timestamp::parse("2026-01-01T00:00:01Z").expect("valid");
        assert!(a < b);
        assert!(a.to_canonical_string() < b.to_canonical_string());
    }

    #[test]
    fn now_is_truncated_to_microseconds_and_round_trips() {
        let t = Timestamp::now();
        assert_eq!(
            Timestamp::parse(&t.to_canonical_string()).expect("round trip"),
            t
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("").is_err());
    }
}
