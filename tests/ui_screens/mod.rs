//! The web UI's screens beyond the board, each in a real browser (`tests/ui/<screen>.mjs`,
//! run by [`crate::ui::run_browser_script`]) with its server-side checks.

mod admin;
mod agenda;
mod customer;
mod work_orders;
