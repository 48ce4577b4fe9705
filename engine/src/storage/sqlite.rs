//! The SQLite backend: a single writer connection and a read-only pool over one WAL file.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{StorageError, StorageOptions};
use crate::config::DatabaseUrl;

/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct SqliteDb {
    /// Exactly one connection: all writes queue here in FIFO order.
    pub writer: SqlitePool,
    /// Read-only connections; in WAL mode they never block the writer.
    pub reader: SqlitePool,
    /// Signalled by the writer's update hook whenever a job row is inserted (see
    /// `jobs::wake`): idle job runners in this process start at once.
    pub job_wakeups: crate::jobs::Wakeups,
    /// Signalled by the same hook for every row inserted into the event log: the realtime
    /// hub reads it (through the writer, so after the inserting transaction ended).
    pub event_wakeups: tokio::sync::watch::Sender<u64>,
}

impl SqliteDb {
    pub async fn connect(
        url: &DatabaseUrl,
        options: &StorageOptions,
    ) -> Result<Self, StorageError> {
        let raw = url.expose();
        if raw.contains(":memory:") || raw.contains("mode=memory") {
            return Err(StorageError::InvalidUrl {
                url: url.redacted(),
                reason: "in-memory SQLite is not supported (the writer and the readers need one shared file); name a file, e.g. sqlite:akis.db".into(),
            });
        }
        let base = SqliteConnectOptions::from_str(raw)
            .map_err(|e| StorageError::InvalidUrl {
                url: url.redacted(),
                reason: e.to_string(),
            })?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Read through the OS page cache instead of copying pages (the pager's own
            // cache is emptied after every write by another connection), and keep a
            // bigger cache for what is copied: board and list queries touch many pages.
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
        let path = base.get_filename().to_path_buf();
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StorageError::SqliteOpen {
                path: shown.clone(),
                reason: format!("cannot create folder {}: {e}", parent.display()),
            })?;
        }
        let open_error = |e: sqlx::Error| StorageError::SqliteOpen {
            path: shown.clone(),
            reason: match &e {
                sqlx::Error::Database(db) => {
                    format!("{} (is the file and its folder writable?)", db.message())
                }
                other => other.to_string(),
            },
        };
        let job_wakeups = crate::jobs::Wakeups::new();
        let hook_wakeups = job_wakeups.clone();
        let event_wakeups = tokio::sync::watch::Sender::new(0u64);
        let hook_events = event_wakeups.clone();
        let writer = SqlitePoolOptions::new()
            .after_connect(move |conn, _| {
                let wakeups = hook_wakeups.clone();
                let events = hook_events.clone();
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    handle.set_update_hook(move |event| {
                        if !matches!(event.operation, sqlx::sqlite::SqliteOperation::Insert) {
                            return;
                        }
                        if event.table == crate::jobs::store::SQLITE_JOBS_TABLE {
                            wakeups.wake_all();
                        } else if event.table == "events" {
                            events.send_modify(|n| *n = n.wrapping_add(1));
                        }
                    });
                    Ok(())
                })
            })
            .max_connections(1)
            .min_connections(1)
            // Writes queue for the single connection; a long queue is load, not failure.
            .acquire_timeout(options.acquire_timeout.max(Duration::from_secs(30)))
            .connect_with(base.clone().create_if_missing(true))
            .await
            .map_err(open_error)?;
        // Prove the file is writable now, not at the first user's first write.
        sqlx::query("CREATE TABLE IF NOT EXISTS _akis_write_probe (x INTEGER); DROP TABLE _akis_write_probe;")
            .execute(&writer)
            .await
            .map_err(open_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await
            .map_err(open_error)?;
        Ok(Self {
            writer,
            reader,
            job_wakeups,
            event_wakeups,
        })
    }

    /// Starts a write transaction with `BEGIN IMMEDIATE` on the writer connection.
    pub async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
