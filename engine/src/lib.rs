//! # Akış engine
//!
//! The library behind the `akis` binary: it reads the declarative definitions (YAML
//! pipelines, work orders, reminders and roles; Rhai rules; minijinja templates), keeps the
//! CRM's state in SQLite or PostgreSQL, and serves the HTTP API.
//!
//! # Layout
//! - [`config`]: the one typed configuration (defaults → `akis.toml` → `AKIS_*` env → CLI).
//! - [`types`]: canonical encodings shared by every table: ids, timestamps, money, phone, email.
//! - [`storage`]: the two database backends behind one interface, migrations, transactions.
//! - [`definitions`]: the YAML model, loader and compiler-style validator.
//! - [`rules`]: the Rhai sandbox that runs guards, scoring and assignment rules.
//! - [`policy`]: the one answer to "may this user do this to this record?" (and list filters).
//! - [`auth`]: sessions, API tokens, login throttling, the authentication middleware.
//! - [`users`]: users, teams, offboarding.
//! - [`audit`]: the audit log of admin and security actions.
//! - [`jobs`]: job kinds, transactional enqueue, the runner, deferred work, effect ledger.
//! - [`http`]: the router, middleware, error type, extractors and OpenAPI document.
//! - [`realtime`]: the event log, the per-node hub and the Socket.IO endpoint (live patches).
//! - [`reminders`]: reminders, due-time evaluation, triggers, schedules and the agenda.
//! - [`runtime`]: definitions at run time: stored versions, reloads on every node, stage
//!   migration, dry runs, diffs.
//! - [`demo`]: sample data for `akis demo`.
//! - [`app`]: start-up ([`app::App::build`]), shared state and graceful shutdown.
//! - [`telemetry`]: logging set-up.
//! - [`ui`]: the web UI: server-rendered screens, embedded scripts and styles, preferences API.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod crm;
pub mod definitions;
pub mod demo;
pub mod drive;
pub mod http;
pub mod jobs;
pub mod notifications;
pub mod policy;
pub mod realtime;
pub mod reminders;
pub mod rules;
pub mod runtime;
pub mod storage;
pub mod telemetry;
pub mod types;
pub mod ui;
pub mod users;
pub mod work_orders;

pub use app::{App, AppState};
pub use config::Config;
