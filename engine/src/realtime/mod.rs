//! Real time: every change reaches the screens of the users who may see it, as a patch,
//! over Socket.IO — on every node, without gaps across reconnects (SPEC §6,
//! `docs/realtime.md`).
//!
//! # How it fits together
//! - **Event log** ([`log`]): domain code writes an event in the same transaction as the
//!   change it describes, with its audience (whose records it concerns). Positions are
//!   global and commit-ordered on both backends.
//! - **Hub** ([`hub`]): one per node. It reads the log in order (woken by the SQLite
//!   writer's update hook, PostgreSQL LISTEN/NOTIFY, or a short poll) and pushes each event
//!   to the sockets it holds whose users the policy lets see it — so an event made on any
//!   node or in a worker process reaches clients on every node, and each node decides with
//!   its clients' current permissions. A reconnecting client names its last position and
//!   is replayed what it missed, through the same filter.
//! - **Socket endpoint** ([`socket`]): authentication (cookie or token), Origin check,
//!   subscriptions to customers on screen.
//! - **Request context** ([`context`]): the `X-Client-Op` of the request that caused an
//!   event, so the client that made a change can skip its own echo.
//! - [`http`]: `GET /api/events?after=` (the HTTP fallback of a replay) and
//!   `GET /api/presence`.
//!
//! socketioxide's own multi-node adapters (Redis, PostgreSQL) broadcast a payload to rooms
//! on other nodes; here every node reads the durable log instead, which also gives replay
//! and per-recipient policy filtering, and needs no extra service.
//!
//! This module must never send an event about a record to a user the policy does not let
//! see it, and must never send an event whose change did not commit.

pub mod context;
pub mod http;
pub mod hub;
pub mod log;
pub mod socket;

pub use hub::{Inbox, Realtime};
pub use log::{Audience, NewEvent, kinds, record};
