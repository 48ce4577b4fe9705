//! Canonical encodings shared by every table and every API payload.
//!
//! Decided once, identical on SQLite and PostgreSQL:
//! - ids are UUIDv7, stored as hyphenated lower-case text ([`ids`]);
//! - instants are UTC with microsecond precision; on SQLite fixed-width RFC 3339 text ending
//!   in `Z`, so text order is time order ([`Timestamp`]);
//! - money is an integer in minor units plus an ISO 4217 code ([`Money`]);
//! - personal data (phone, email) masks itself in `Debug` output ([`Phone`], [`Email`]).

pub mod contact;
pub mod fold;
pub mod ids;
pub mod money;
pub mod time;

pub use contact::{Email, Phone};
pub use money::{Currency, Money};
pub use time::Timestamp;
