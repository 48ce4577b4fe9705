//! Storage: one interface over two backends, chosen at start-up from the URL scheme.
//!
//! - **SQLite** (the embedded default): WAL journal, `synchronous=NORMAL`, a busy timeout,
//!   foreign keys on. Every write goes through ONE writer connection and every write
//!   transaction starts with `BEGIN IMMEDIATE`: a deferred transaction that reads and then
//!   writes fails with `SQLITE_BUSY` under concurrency whatever the busy timeout, and
//!   several immediate writers would sleep in SQLite's busy handler instead of queueing
//!   fairly in the pool. Reads use a separate pool of read-only connections.
//! - **PostgreSQL**: one pool for everything.
//!
//! Domain code writes each query once (`$1..$N` placeholders work on both) and runs it
//! through [`transaction!`](crate::transaction) or [`read!`](crate::read), which expand the
//! body once per backend so each copy is type-checked against its own driver. There is no
//! `sqlx::Any` (no uuid/json/chrono, and apalis cannot share an `AnyPool`).
//!
//! Migrations are embedded, one folder per backend, and tracked in `_akis_migrations`.
//! [`Db::migrate`] then runs apalis's own migrations (its job tables), tracked in
//! `_apalis_migrations`: two migrators sharing a table each fail with "previously applied
//! but is missing", and apalis's default `_sqlx_migrations` is left to apalis's tools.
//!
//! This module must never hold a transaction across an `.await` on anything but the
//! database (no HTTP calls inside a transaction).

pub mod postgres;
pub mod sqlite;

use std::time::Duration;

use crate::config::DatabaseUrl;

pub use self::sqlite::SqliteDb;

/// Name of the table that records which of OUR migrations ran.
pub const MIGRATIONS_TABLE: &str = "_akis_migrations";

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// The application's database. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(sqlx::PgPool),
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// PostgreSQL pool size, or the number of SQLite read connections.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Start-up failures, each phrased for the person who typed the configuration.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported database URL scheme `{scheme}` in {url}: use `sqlite:` (e.g. sqlite:akis.db) or `postgres://`"
    )]
    UnsupportedScheme { scheme: String, url: String },
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot open SQLite database {path}: {reason}")]
    SqliteOpen { path: String, reason: String },
    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    PostgresConnect { url: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl Db {
    /// Opens the database a URL names: SQLite files are created when missing (with their
    /// folder), PostgreSQL databases are created when the server has none by that name.
    pub async fn connect(url: &DatabaseUrl, options: &StorageOptions) -> Result<Db, StorageError> {
        match url.scheme() {
            "sqlite" => Ok(Db::Sqlite(SqliteDb::connect(url, options).await?)),
            "postgres" | "postgresql" => Ok(Db::Postgres(postgres::connect(url, options).await?)),
            other => Err(StorageError::UnsupportedScheme {
                scheme: other.chars().take(32).collect(),
                url: url.redacted(),
            }),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every embedded migration not yet applied. Safe to run from several
    /// processes at once (PostgreSQL takes an advisory lock; SQLite has one writer).
    pub async fn migrate(&self) -> Result<(), StorageError> {
        let result = match self {
            Db::Sqlite(db) => {
                let mut migrator = sqlx::migrate!("../migrations/sqlite");
                migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
                match migrator.run(&db.writer).await {
                    Ok(()) => {
                        crate::jobs::apalis_migrations_sqlite()
                            .run(&db.writer)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Db::Postgres(pool) => {
                let mut migrator = sqlx::migrate!("../migrations/postgres");
                migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
                match migrator.run(pool).await {
                    Ok(()) => crate::jobs::apalis_migrations_postgres().run(pool).await,
                    Err(e) => Err(e),
                }
            }
        };
        result.map_err(|e| StorageError::Migrate(e.to_string()))?;
        self.optimize()
            .await
            .map_err(|e| StorageError::Migrate(e.to_string()))
    }

    /// Keeps the query planner's statistics current. SQLite never gathers statistics by
    /// itself (without them it cannot tell a selective index from a useless one);
    /// `PRAGMA optimize` analyzes only the tables that need it, with a bounded effort, so
    /// it is cheap to run at start-up and periodically. PostgreSQL's autovacuum does this.
    pub async fn optimize(&self) -> Result<(), sqlx::Error> {
        if let Db::Sqlite(db) = self {
            sqlx::query("PRAGMA optimize=0x10002")
                .execute(&db.writer)
                .await?;
        }
        Ok(())
    }

    /// Embedded migrations as (version, description), for `akis migrate` output.
    pub fn known_migrations(&self) -> Vec<(i64, String)> {
        let migrator = match self {
            Db::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            Db::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
        };
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    /// A fingerprint of this backend's embedded migrations (tests key template databases
    /// on it so a changed migration never reuses a stale template).
    pub fn migrations_fingerprint(backend: Backend) -> String {
        use sha2::{Digest, Sha256};
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        let mut hasher = Sha256::new();
        for m in migrator.iter() {
            hasher.update(m.version.to_le_bytes());
            hasher.update(&*m.checksum);
        }
        let digest = hasher.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Versions of our migrations recorded as applied.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, sqlx::Error> {
        crate::read!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT version FROM _akis_migrations WHERE success ORDER BY version")
                .fetch_all(pool)
                .await
        })
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        crate::read!(self, pool => {
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.map(|_| ())
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(db) => db.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// A write transaction on either backend. Domain store functions take `&mut Tx` and run
/// their statements through [`exec!`](crate::exec); dropping a `Tx` without
/// [`Tx::commit`] rolls it back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Db {
    /// Begins a write transaction (`BEGIN IMMEDIATE` on the SQLite writer).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(db) => Tx::Sqlite(db.begin_write().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Runs a statement inside a [`Tx`] on whichever backend it belongs to; the expression is
/// expanded once per backend with `$conn` bound to that backend's connection.
///
/// ```ignore
/// exec!(tx, conn => sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
///     .bind(name).bind(id).execute(conn).await)?;
/// ```
#[macro_export]
macro_rules! exec {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::storage::Tx::Sqlite(__akis_tx) => {
                let $conn = &mut **__akis_tx;
                $body
            }
            $crate::storage::Tx::Postgres(__akis_tx) => {
                let $conn = &mut **__akis_tx;
                $body
            }
        }
    };
}

/// Commits `tx` when `result` is Ok; otherwise drops it, which rolls back.
pub async fn finish<DB, T, E>(result: Result<T, E>, tx: sqlx::Transaction<'_, DB>) -> Result<T, E>
where
    DB: sqlx::Database,
    E: From<sqlx::Error>,
{
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            drop(tx);
            Err(e)
        }
    }
}

/// Runs a block in a write transaction on either backend, committing when it returns `Ok`
/// and rolling back otherwise. The block is expanded once per backend; inside it `$tx` is a
/// `sqlx::Transaction` of that backend (use `&mut *$tx` as the executor). The block must
/// evaluate to `Result<T, E>` with `E: From<sqlx::Error>`.
///
/// ```ignore
/// let id = transaction!(&state.db, tx => {
///     sqlx::query("INSERT INTO notes (id, body) VALUES ($1, $2)")
///         .bind(id).bind(body).execute(&mut *tx).await?;
///     Ok::<_, ApiError>(id)
/// })?;
/// ```
#[macro_export]
macro_rules! transaction {
    ($db:expr, $tx:ident => $body:block) => {
        match $db {
            $crate::storage::Db::Sqlite(__akis_db) => match __akis_db.begin_write().await {
                #[allow(unused_mut)]
                Ok(mut $tx) => {
                    let __akis_result = async { $body }.await;
                    $crate::storage::finish(__akis_result, $tx).await
                }
                Err(e) => Err(e.into()),
            },
            $crate::storage::Db::Postgres(__akis_pool) => match __akis_pool.begin().await {
                #[allow(unused_mut)]
                Ok(mut $tx) => {
                    let __akis_result = async { $body }.await;
                    $crate::storage::finish(__akis_result, $tx).await
                }
                Err(e) => Err(e.into()),
            },
        }
    };
}

/// Runs a block against the read pool of either backend; inside it `$pool` is `&SqlitePool`
/// (the read-only pool) or `&PgPool`. The block is expanded once per backend.
#[macro_export]
macro_rules! read {
    ($db:expr, $pool:ident => $body:block) => {
        match $db {
            $crate::storage::Db::Sqlite(__akis_db) => {
                let $pool = &__akis_db.reader;
                $body
            }
            $crate::storage::Db::Postgres(__akis_pool) => {
                let $pool = __akis_pool;
                $body
            }
        }
    };
}
