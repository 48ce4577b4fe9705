//! Akış integration tests: one binary, one module per area. Each storage or HTTP test runs
//! on SQLite and on PostgreSQL (see `helpers`).

mod helpers;

mod auth;
mod cli;
mod definitions_runtime;
mod drive;
mod foundation;
mod import;
mod jobs;
mod pipeline;
mod realtime;
mod reminders;
mod storage;
mod ui;
mod ui_screens;
mod work_orders;
