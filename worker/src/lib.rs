//! # Akış worker
//!
//! Runs job handlers against the queues in the shared database. One module per job kind
//! arrives with the jobs issue; until then a worker process connects, keeps the schema
//! current and waits for shutdown, so deployments can already be wired.

use std::future::Future;

use akis_engine::storage::Db;

/// Runs the workers until `shutdown` completes.
pub async fn run(db: Db, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tracing::info!(backend = %db.backend(), "worker started; no job kinds are registered yet");
    shutdown.await;
    db.close().await;
    Ok(())
}
