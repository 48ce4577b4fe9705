//! The CRM's main road: lead intake with de-duplication, customers, cards moving through
//! pipeline stages (with a transactional outbox for their effects), the timeline and the
//! board.
//!
//! # Layout
//! - [`intake`]: the one lead-intake function every channel calls.
//! - [`customers`]: the de-duplicated people; reading, editing, search keys.
//! - [`cards`]: a customer's position in a pipeline; sort keys for the board.
//! - [`transition`]: the state machine (checks, guard, versioned write).
//! - [`outbox`]: a transition's actions as jobs on the same transaction.
//! - [`timeline`]: append-only history.
//! - [`board`]: the kanban query.
//! - [`merge`]: merging two customers by hand.
//! - [`bulk`]: bulk move / assign / tag with a result per item.
//! - [`fields`]: custom field values (validation, canonical JSON, rule view).
//! - [`sql`]: dynamic SQL that binds the same way on both backends.
//! - [`live`]: the realtime events of these changes, written in their transactions.
//! - [`activities`]: activities with outcomes (which may move the card), calls, notes.
//! - [`appointments`]: appointments, rescheduling history, the agenda.
//! - [`http`], [`work_http`]: the routes.

pub mod activities;
pub mod appointments;
pub mod board;
pub mod bulk;
pub mod cards;
pub mod customers;
pub mod fields;
pub mod http;
pub mod import;
pub mod intake;
pub mod live;
pub mod merge;
pub mod outbox;
pub mod sql;
pub mod timeline;
pub mod transition;
pub mod work_http;
