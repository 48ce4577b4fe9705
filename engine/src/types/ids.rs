//! Typed ids: UUIDv7 (time-ordered, so new rows append to the end of an index) stored as
//! hyphenated text on both backends. Each entity gets its own newtype through [`id_type!`]
//! so a `CustomerId` can never be passed where a `CardId` is expected.

/// Declares an id newtype backed by a UUIDv7, encoded as text on SQLite and PostgreSQL.
#[macro_export]
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}

        $crate::text_encoded!($name, |v: &$name| v.0.hyphenated().to_string(), |s: &str| {
            uuid::Uuid::parse_str(s).map($name)
        });
    };
}

/// Implements `sqlx::Type/Encode/Decode` for SQLite and PostgreSQL as TEXT through a pair of
/// conversion closures. Used by ids and other small value types with a canonical text form.
#[macro_export]
macro_rules! text_encoded {
    ($name:ty, $to:expr, $from:expr) => {
        impl sqlx::Type<sqlx::Sqlite> for $name {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <String as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: String = ($to)(self);
                <String as sqlx::Encode<'q, sqlx::Sqlite>>::encode(text, buf)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $name {
            fn decode(
                value: <sqlx::Sqlite as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(value)?;
                Ok(($from)(text)?)
            }
        }
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Postgres as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: String = ($to)(self);
                <String as sqlx::Encode<'q, sqlx::Postgres>>::encode(text, buf)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: <sqlx::Postgres as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Ok(($from)(text)?)
            }
        }
    };
}

crate::id_type!(
    /// A user of the system (staff or admin).
    UserId
);
crate::id_type!(
    /// A de-duplicated person.
    CustomerId
);
crate::id_type!(
    /// A customer's position in one pipeline.
    CardId
);
crate::id_type!(
    /// One immutable fact in a customer's history.
    EventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip_through_text() {
        let a = CustomerId::new();
        let b = CustomerId::new();
        assert!(a < b, "UUIDv7 ids sort by creation time");
        let parsed: CustomerId = a.to_string().parse().expect("parses its own text");
        assert_eq!(parsed, a);
        assert_eq!(a.to_string().len(), 36);
        assert!(format!("{a:?}").starts_with("CustomerId("));
    }

    #[test]
    fn a_malformed_id_is_an_error_not_a_panic() {
        assert!("not-a-uuid".parse::<CardId>().is_err());
        assert!("".parse::<CardId>().is_err());
    }
}
