//! Background jobs: typed job kinds, the transactional enqueue (outbox), the runner that
//! executes them, deferred (future-dated) work, retries, the admin queries and the effect
//! ledger.
//!
//! # How it fits together
//! - **Live queue** — apalis 1.0's own tables (`Jobs` on SQLite, `apalis.jobs` on
//!   PostgreSQL), filled with apalis's `push_tasks` on *our* transaction: a job pushed while
//!   moving a card commits or rolls back with the move ([`enqueue`]). The live table holds
//!   only pending and running jobs.
//! - **Runner** ([`runner`]) — our own fetch/finish loop over those tables instead of
//!   apalis's `WorkerBuilder`, because the measured problems of apalis 1.0 (see
//!   `DEPENDENCY-NOTES.md` and BENCHMARKS.md) all sit in its worker loop: lost wake-ups in
//!   `PollWith`, idle workers that wake only on a 30 s heartbeat, finished rows that stay in
//!   the table and slow every later query, a fetch capped by `batch_size`. The runner wakes
//!   on every insert (the SQLite writer's update hook, PostgreSQL LISTEN/NOTIFY on apalis's
//!   trigger) with a watch channel that cannot lose a signal, and moves each finished job to
//!   [`job_history`](store) in the same transaction that finishes it.
//! - **Deferred work** — `deferred_jobs`, indexed by due time; the promoter hands due rows to
//!   apalis. Retry back-offs (minutes to hours) wait there too, never in the live table.
//! - **Orphan recovery** — each runner heartbeats its apalis worker row; a job whose worker
//!   has been silent for [`runner::SystemOptions::orphan_timeout`] (never below 60 s outside
//!   tests) returns to pending. Wake-ups are independent of heartbeats, so prompt starts
//!   never shrink orphan recovery.
//! - **Effects** ([`effects`]) — the ledger that keeps an external call from being blindly
//!   repeated when a job runs twice (delivery is at-least-once).
//!
//! This module must never hold a database transaction across a handler call: handlers run
//! between the fetch transaction and the finish transaction.

pub mod effects;
pub mod http;
pub mod kinds;
pub mod runner;
pub mod store;
mod wake;

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::types::Timestamp;

pub use kinds::*;
pub use runner::{Handler, JobContext, JobSystem, RetryPolicy, RunnerOptions, SystemOptions};
pub use store::{JobFilter, JobState, JobSummary, QueueHealth};
pub use wake::Wakeups;

crate::id_type!(
    /// A job: the same id while live in apalis's table, deferred, and in history.
    JobId
);

/// A kind of job: a serde struct with its own queue. The HTTP side only pushes these;
/// `akis-worker` registers one [`Handler`] per kind.
pub trait JobKind: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The apalis queue (job_type) name. Explicit: apalis's default is the Rust type name.
    const QUEUE: &'static str;
    /// Upper bound on one run; a run that takes longer counts as a transient failure.
    const TIMEOUT: Duration = Duration::from_secs(30);
    /// Runs before the job is dead (the first run included).
    const MAX_ATTEMPTS: u32 = 10;
}

/// What is stored in apalis's `job` column: the typed job plus our bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Runs already made before this hand-over (retries carry it forward).
    pub attempt: u32,
    /// When the job became ready to run (enqueue time, or its due time): enqueue→start
    /// latency is measured from here.
    pub ready_at: Timestamp,
    /// The most recent failure, for a retried job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub job: T,
}

/// Why a run failed, as the handler classifies it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later (HTTP 5xx, timeouts, rate limits).
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        /// A delay the remote side asked for; otherwise the retry policy decides.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad recipient, missing template, expired token): dead at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl JobError {
    pub fn transient(reason: impl Into<String>) -> Self {
        JobError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        JobError::Permanent(reason.into())
    }
}

/// Failures of the queue layer itself.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("cannot encode job payload: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("job queue: {0}")]
    Queue(String),
}

impl From<apalis_sqlite::Error> for JobsError {
    fn from(e: apalis_sqlite::Error) -> Self {
        match e {
            apalis_sqlite::Error::Database(db) => JobsError::Database(db),
            other => JobsError::Queue(other.to_string()),
        }
    }
}

impl From<apalis_postgres::Error> for JobsError {
    fn from(e: apalis_postgres::Error) -> Self {
        match e {
            apalis_postgres::Error::Database(db) => JobsError::Database(db),
            other => JobsError::Queue(other.to_string()),
        }
    }
}

/// Lets `?` on an enqueue work inside a `transaction!` block whose error type converts
/// from `sqlx::Error`.
impl From<JobsError> for sqlx::Error {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::Database(db) => db,
            other => sqlx::Error::Protocol(other.to_string()),
        }
    }
}

/// Options for [`enqueue_with`].
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Run no earlier than this instant. A future instant puts the job in `deferred_jobs`.
    pub run_at: Option<Timestamp>,
    /// A second enqueue with the same key is a no-op. For immediate jobs the key lives in
    /// apalis's table and so only dedupes while the job is live; for deferred jobs it is
    /// unique for as long as the deferred row is kept.
    pub idempotency_key: Option<String>,
}

/// What [`enqueue_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// In the live queue; a worker starts it now.
    Queued(JobId),
    /// In `deferred_jobs` until it is due.
    Scheduled(JobId),
    /// A job with the same idempotency key already exists; nothing was added.
    Duplicate,
}

impl Enqueued {
    pub fn id(&self) -> Option<JobId> {
        match self {
            Enqueued::Queued(id) | Enqueued::Scheduled(id) => Some(*id),
            Enqueued::Duplicate => None,
        }
    }
}

/// A connection (usually `&mut *tx` inside [`transaction!`](crate::transaction)) that jobs
/// can be pushed on. Implemented for both backends' connections.
pub trait JobConnection: Send {
    /// Pushes one job envelope into apalis's live table. Returns false for a duplicate key.
    fn push_live(
        &mut self,
        queue: &str,
        id: JobId,
        payload: Vec<u8>,
        max_attempts: u32,
        idempotency_key: Option<&str>,
    ) -> impl Future<Output = Result<bool, JobsError>> + Send;

    /// Inserts a row into `deferred_jobs`. Returns false for a duplicate key.
    fn push_deferred(
        &mut self,
        row: store::DeferredInsert<'_>,
    ) -> impl Future<Output = Result<bool, JobsError>> + Send;
}

fn apalis_task(id: JobId, payload: Vec<u8>, max_attempts: u32, key: Option<&str>) -> TaskOf {
    let mut builder = apalis_core::task::builder::TaskBuilder::new(payload)
        .task_id(apalis_core::task::task_id::TaskId::from_string(
            id.to_string(),
        ))
        .max_attempts(max_attempts as usize);
    if let Some(key) = key {
        builder = builder.idempotency_key(key);
    }
    builder.build()
}

type TaskOf = apalis_core::task::Task<Vec<u8>>;

impl JobConnection for sqlx::SqliteConnection {
    async fn push_live(
        &mut self,
        queue: &str,
        id: JobId,
        payload: Vec<u8>,
        max_attempts: u32,
        idempotency_key: Option<&str>,
    ) -> Result<bool, JobsError> {
        let task = apalis_task(id, payload, max_attempts, idempotency_key);
        // apalis's SQLite insert is `ON CONFLICT(job_type, idempotency_key) DO NOTHING`.
        apalis_sqlite::queries::push_tasks(self, queue, &[task]).await?;
        if idempotency_key.is_some() {
            let inserted: Option<i64> = sqlx::query_scalar("SELECT 1 FROM Jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self)
                .await?;
            return Ok(inserted.is_some());
        }
        Ok(true)
    }

    async fn push_deferred(&mut self, row: store::DeferredInsert<'_>) -> Result<bool, JobsError> {
        Ok(row.execute(self).await?)
    }
}

impl JobConnection for sqlx::PgConnection {
    async fn push_live(
        &mut self,
        queue: &str,
        id: JobId,
        payload: Vec<u8>,
        max_attempts: u32,
        idempotency_key: Option<&str>,
    ) -> Result<bool, JobsError> {
        use sqlx::Connection;
        let task = apalis_task(id, payload, max_attempts, idempotency_key);
        if idempotency_key.is_none() {
            apalis_postgres::queries::push_tasks(self, queue, vec![task]).await?;
            return Ok(true);
        }
        // apalis's bulk insert has no ON CONFLICT: a duplicate key would abort the caller's
        // whole transaction. Inside a transaction `begin()` is a SAVEPOINT, so a duplicate
        // only rolls back this push.
        let mut savepoint = self.begin().await?;
        match apalis_postgres::queries::push_tasks(&mut *savepoint, queue, vec![task]).await {
            Ok(()) => {
                savepoint.commit().await?;
                Ok(true)
            }
            Err(apalis_postgres::Error::Database(sqlx::Error::Database(db)))
                if db.code().as_deref() == Some("23505") =>
            {
                savepoint.rollback().await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn push_deferred(&mut self, row: store::DeferredInsert<'_>) -> Result<bool, JobsError> {
        Ok(row.execute_pg(self).await?)
    }
}

/// Enqueues a job to run now. Use inside [`transaction!`](crate::transaction) so the job
/// commits or rolls back with the change that caused it:
///
/// ```ignore
/// transaction!(&db, tx => {
///     /* … move the card … */
///     jobs::enqueue(&mut *tx, &WebhookJob { … }).await?;
///     Ok::<_, sqlx::Error>(())
/// })?;
/// ```
pub async fn enqueue<C, K>(conn: &mut C, job: &K) -> Result<JobId, JobsError>
where
    C: JobConnection + ?Sized,
    K: JobKind,
{
    match enqueue_with(conn, job, EnqueueOptions::default()).await? {
        Enqueued::Queued(id) | Enqueued::Scheduled(id) => Ok(id),
        Enqueued::Duplicate => Err(JobsError::Queue(
            "duplicate without an idempotency key".into(),
        )),
    }
}

/// Enqueues a job with options: a future `run_at` goes to `deferred_jobs`.
pub async fn enqueue_with<C, K>(
    conn: &mut C,
    job: &K,
    options: EnqueueOptions,
) -> Result<Enqueued, JobsError>
where
    C: JobConnection + ?Sized,
    K: JobKind,
{
    let now = Timestamp::now();
    let id = JobId::new();
    match options.run_at {
        Some(at) if at > now => {
            let envelope = Envelope {
                attempt: 0,
                ready_at: at,
                last_error: None,
                job,
            };
            let payload = serde_json::to_string(&envelope)?;
            let inserted = conn
                .push_deferred(store::DeferredInsert {
                    id,
                    queue: K::QUEUE,
                    due_at: at,
                    payload: &payload,
                    attempt: 0,
                    idempotency_key: options.idempotency_key.as_deref(),
                    last_error: None,
                    now,
                })
                .await?;
            Ok(if inserted {
                Enqueued::Scheduled(id)
            } else {
                Enqueued::Duplicate
            })
        }
        _ => {
            let envelope = Envelope {
                attempt: 0,
                ready_at: now,
                last_error: None,
                job,
            };
            let payload = serde_json::to_vec(&envelope)?;
            let inserted = conn
                .push_live(
                    K::QUEUE,
                    id,
                    payload,
                    K::MAX_ATTEMPTS,
                    options.idempotency_key.as_deref(),
                )
                .await?;
            Ok(if inserted {
                Enqueued::Queued(id)
            } else {
                Enqueued::Duplicate
            })
        }
    }
}

/// apalis's SQLite migrations, tracked in their own table (`_apalis_migrations`) so they
/// never collide with ours or with a stray `_sqlx_migrations`.
pub fn apalis_migrations_sqlite() -> sqlx::migrate::Migrator {
    let mut migrator = apalis_sqlite::SqliteStorage::migrations();
    migrator.dangerous_set_table_name(APALIS_MIGRATIONS_TABLE);
    migrator
}

/// apalis's PostgreSQL migrations (schema `apalis`; they create the hstore and pgcrypto
/// extensions), tracked in `_apalis_migrations`.
pub fn apalis_migrations_postgres() -> sqlx::migrate::Migrator {
    let mut migrator = apalis_postgres::PostgresStorage::migrations();
    migrator.dangerous_set_table_name(APALIS_MIGRATIONS_TABLE);
    migrator
}

/// Where apalis's migrations are recorded.
pub const APALIS_MIGRATIONS_TABLE: &str = "_apalis_migrations";
