//! The queue's SQL: fetch, finish (live row → `job_history` in one transaction), retries,
//! hand-over of deferred work, orphan recovery, retention, and the admin queries.
//!
//! apalis's tables differ per backend (`Jobs` with integer-second instants on SQLite,
//! `apalis.jobs` with `timestamptz` on PostgreSQL), so their statements are written per
//! backend; our own tables use the canonical encodings and share their SQL.

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgConnection, SqliteConnection};

use super::{Envelope, JobConnection, JobId, JobsError};
use crate::storage::Db;
use crate::types::Timestamp;

/// apalis's job table on SQLite (the update hook watches it).
pub const SQLITE_JOBS_TABLE: &str = "Jobs";

/// apalis's `max_attempts` column for rows we push; our runner applies the kind's own
/// limit, so this only matters to apalis tools looking at the table.
const APALIS_MAX_ATTEMPTS: u32 = 25;

fn unix_secs(t: Timestamp) -> i64 {
    t.as_datetime().timestamp()
}

/// A row for `deferred_jobs`.
#[derive(Debug, Clone)]
pub struct DeferredInsert<'a> {
    pub id: JobId,
    pub queue: &'a str,
    pub due_at: Timestamp,
    pub payload: &'a str,
    pub attempt: u32,
    pub idempotency_key: Option<&'a str>,
    pub last_error: Option<&'a str>,
    pub now: Timestamp,
}

const INSERT_DEFERRED: &str = "INSERT INTO deferred_jobs \
    (id, queue, due_at, payload, attempt, idempotency_key, status, last_error, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, 'scheduled', $7, $8) ON CONFLICT DO NOTHING";

/// A retry re-uses the job's id: a row handed over earlier is scheduled again.
const RESCHEDULE_DEFERRED: &str = "INSERT INTO deferred_jobs \
    (id, queue, due_at, payload, attempt, idempotency_key, status, last_error, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, 'scheduled', $7, $8) \
    ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload, \
    attempt = excluded.attempt, status = 'scheduled', last_error = excluded.last_error, handed_at = NULL";

impl DeferredInsert<'_> {
    /// Inserts on SQLite; false when the idempotency key (or id) already exists.
    pub async fn execute(self, conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(INSERT_DEFERRED)
            .bind(self.id)
            .bind(self.queue)
            .bind(self.due_at)
            .bind(self.payload)
            .bind(self.attempt as i64)
            .bind(self.idempotency_key)
            .bind(self.last_error)
            .bind(self.now)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Inserts on PostgreSQL; false when the idempotency key (or id) already exists.
    pub async fn execute_pg(self, conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(INSERT_DEFERRED)
            .bind(self.id)
            .bind(self.queue)
            .bind(self.due_at)
            .bind(self.payload)
            .bind(self.attempt as i32)
            .bind(self.idempotency_key)
            .bind(self.last_error)
            .bind(self.now)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A job claimed by a runner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FetchedJob {
    pub id: JobId,
    pub job: Vec<u8>,
    /// Runs apalis counted: orphan recovery adds one each time it takes a job back.
    pub attempts: i32,
}

/// Claims up to `limit` ready jobs of `queue` for `worker` (marked Running, locked by it).
pub async fn fetch(
    db: &Db,
    queue: &str,
    worker: &str,
    limit: usize,
) -> Result<Vec<FetchedJob>, sqlx::Error> {
    let limit = limit.max(1) as i64;
    match db {
        Db::Sqlite(s) => {
            let now = unix_secs(Timestamp::now());
            // Not a transaction: one UPDATE … RETURNING is atomic, and the single writer
            // serializes it with every push.
            sqlx::query_as::<_, FetchedJob>(
                "UPDATE Jobs SET status = 'Running', lock_by = $1, lock_at = $2 \
                 WHERE ROWID IN (SELECT ROWID FROM Jobs WHERE job_type = $3 AND status = 'Pending' \
                   AND lock_by IS NULL AND run_at <= $2 ORDER BY priority DESC, run_at, id LIMIT $4) \
                 RETURNING id, job, attempts",
            )
            .bind(worker)
            .bind(now)
            .bind(queue)
            .bind(limit)
            .fetch_all(&s.writer)
            .await
        }
        Db::Postgres(pool) => {
            // apalis.get_jobs() is a plpgsql function re-planned on every call; this is its
            // statement, prepared once per connection.
            sqlx::query_as::<_, FetchedJob>(
                "UPDATE apalis.jobs SET status = 'Running', lock_by = $1, lock_at = now() \
                 WHERE id IN (SELECT id FROM apalis.jobs WHERE job_type = $2 AND status = 'Pending' \
                   AND run_at <= now() ORDER BY priority DESC, run_at ASC LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, job, attempts",
            )
            .bind(worker)
            .bind(queue)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
}

/// How a run ended, as recorded by [`finish`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Done,
    /// Run again at `due_at` with a new envelope (attempt count carried forward).
    Retry {
        due_at: Timestamp,
        payload: String,
        attempt: u32,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: JobId,
    pub queue: String,
    pub worker: std::sync::Arc<str>,
    /// The envelope as stored (kept in history).
    pub payload: String,
    /// Runs made, this one included.
    pub attempts: u32,
    pub ready_at: Timestamp,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub outcome: Outcome,
}

const INSERT_HISTORY: &str = "INSERT INTO job_history \
    (id, queue, state, payload, attempts, last_error, enqueued_at, started_at, finished_at, worker) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (id) DO UPDATE SET state = excluded.state, payload = excluded.payload, \
    attempts = excluded.attempts, last_error = excluded.last_error, started_at = excluded.started_at, \
    finished_at = excluded.finished_at, worker = excluded.worker";

/// Records finished runs in one transaction: each live row is deleted (only if this worker
/// still owns it — orphan recovery or a cancel may have taken it) and moved to history, or
/// re-scheduled for a retry.
pub async fn finish(db: &Db, completions: &[Completion]) -> Result<(), JobsError> {
    if completions.is_empty() {
        return Ok(());
    }
    let mut died: Vec<&Completion> = Vec::new();
    match db {
        Db::Sqlite(s) => {
            let mut tx = s.begin_write().await?;
            for c in completions {
                let deleted = sqlx::query("DELETE FROM Jobs WHERE id = $1 AND lock_by = $2")
                    .bind(c.id)
                    .bind(&*c.worker)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    continue;
                }
                if matches!(c.outcome, Outcome::Dead { .. }) {
                    died.push(c);
                }
                match &c.outcome {
                    Outcome::Done | Outcome::Dead { .. } => {
                        let (state, error) = history_state(&c.outcome);
                        sqlx::query(INSERT_HISTORY)
                            .bind(c.id)
                            .bind(&c.queue)
                            .bind(state)
                            .bind(&c.payload)
                            .bind(c.attempts as i64)
                            .bind(error)
                            .bind(c.ready_at)
                            .bind(c.started_at)
                            .bind(c.finished_at)
                            .bind(&*c.worker)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Outcome::Retry {
                        due_at,
                        payload,
                        attempt,
                        error,
                    } => {
                        retry_sqlite(&mut tx, c, *due_at, payload, *attempt, error).await?;
                    }
                }
            }
            tx.commit().await?;
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let ids: Vec<JobId> = completions.iter().map(|c| c.id).collect();
            let workers: Vec<String> = completions.iter().map(|c| c.worker.to_string()).collect();
            let owned: Vec<JobId> = sqlx::query_scalar(
                "DELETE FROM apalis.jobs j USING unnest($1::text[], $2::text[]) AS d(id, worker) \
                 WHERE j.id = d.id AND j.lock_by = d.worker RETURNING j.id",
            )
            .bind(&ids)
            .bind(&workers)
            .fetch_all(&mut *tx)
            .await?;
            let owned: std::collections::HashSet<JobId> = owned.into_iter().collect();
            let mut history = HistoryColumns::default();
            for c in completions.iter().filter(|c| owned.contains(&c.id)) {
                if matches!(c.outcome, Outcome::Dead { .. }) {
                    died.push(c);
                }
                match &c.outcome {
                    Outcome::Done | Outcome::Dead { .. } => history.push(c),
                    Outcome::Retry {
                        due_at,
                        payload,
                        attempt,
                        error,
                    } => retry_pg(&mut tx, c, *due_at, payload, *attempt, error).await?,
                }
            }
            if !history.ids.is_empty() {
                sqlx::query(
                    "INSERT INTO job_history \
                     (id, queue, state, payload, attempts, last_error, enqueued_at, started_at, finished_at, worker) \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], \
                       $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[]) \
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state, payload = excluded.payload, \
                     attempts = excluded.attempts, last_error = excluded.last_error, \
                     started_at = excluded.started_at, finished_at = excluded.finished_at, worker = excluded.worker",
                )
                .bind(&history.ids)
                .bind(&history.queues)
                .bind(&history.states)
                .bind(&history.payloads)
                .bind(&history.attempts)
                .bind(&history.errors)
                .bind(&history.ready)
                .bind(&history.started)
                .bind(&history.finished)
                .bind(&history.workers)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
    }
    if !died.is_empty() {
        announce_dead(db, &died).await;
    }
    Ok(())
}

/// `job.failed` to admins' screens for jobs that just died. Written after the finish
/// committed (a lost announcement leaves the dead job in the admin's queue list).
async fn announce_dead(db: &Db, died: &[&Completion]) {
    let result = async {
        let mut tx = db.begin().await?;
        for c in died {
            let error = match &c.outcome {
                Outcome::Dead { error } => error.as_str(),
                _ => "",
            };
            crate::realtime::record(
                &mut tx,
                crate::realtime::NewEvent::new(
                    crate::realtime::kinds::JOB_FAILED,
                    crate::realtime::Audience::admins(),
                    serde_json::json!({"job_id": c.id, "queue": c.queue, "error": error, "attempts": c.attempts}),
                ),
            )
            .await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot announce dead jobs");
    }
}

fn history_state(outcome: &Outcome) -> (&'static str, Option<&str>) {
    match outcome {
        Outcome::Done => ("done", None),
        Outcome::Dead { error } => ("dead", Some(error.as_str())),
        Outcome::Retry { error, .. } => ("dead", Some(error.as_str())),
    }
}

#[derive(Default)]
struct HistoryColumns {
    ids: Vec<JobId>,
    queues: Vec<String>,
    states: Vec<&'static str>,
    payloads: Vec<String>,
    attempts: Vec<i32>,
    errors: Vec<Option<String>>,
    ready: Vec<Timestamp>,
    started: Vec<Timestamp>,
    finished: Vec<Timestamp>,
    workers: Vec<String>,
}

impl HistoryColumns {
    fn push(&mut self, c: &Completion) {
        let (state, error) = history_state(&c.outcome);
        self.ids.push(c.id);
        self.queues.push(c.queue.clone());
        self.states.push(state);
        self.payloads.push(c.payload.clone());
        self.attempts.push(c.attempts.min(i32::MAX as u32) as i32);
        self.errors.push(error.map(str::to_string));
        self.ready.push(c.ready_at);
        self.started.push(c.started_at);
        self.finished.push(c.finished_at);
        self.workers.push(c.worker.to_string());
    }
}

async fn retry_sqlite(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    c: &Completion,
    due_at: Timestamp,
    payload: &str,
    attempt: u32,
    error: &str,
) -> Result<(), JobsError> {
    if due_at <= c.finished_at {
        tx.push_live(
            &c.queue,
            c.id,
            payload.as_bytes().to_vec(),
            APALIS_MAX_ATTEMPTS,
            None,
        )
        .await?;
    } else {
        sqlx::query(RESCHEDULE_DEFERRED)
            .bind(c.id)
            .bind(&c.queue)
            .bind(due_at)
            .bind(payload)
            .bind(attempt as i64)
            .bind(None::<String>)
            .bind(error)
            .bind(c.finished_at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn retry_pg(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    c: &Completion,
    due_at: Timestamp,
    payload: &str,
    attempt: u32,
    error: &str,
) -> Result<(), JobsError> {
    if due_at <= c.finished_at {
        tx.push_live(
            &c.queue,
            c.id,
            payload.as_bytes().to_vec(),
            APALIS_MAX_ATTEMPTS,
            None,
        )
        .await?;
    } else {
        sqlx::query(RESCHEDULE_DEFERRED)
            .bind(c.id)
            .bind(&c.queue)
            .bind(due_at)
            .bind(payload)
            .bind(attempt as i32)
            .bind(None::<String>)
            .bind(error)
            .bind(c.finished_at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: JobId,
    queue: String,
    payload: String,
}

/// Hands due deferred jobs to apalis (at most `limit`); returns how many.
pub async fn promote_due(db: &Db, limit: usize) -> Result<usize, JobsError> {
    let now = Timestamp::now();
    let limit = limit.max(1) as i64;
    match db {
        Db::Sqlite(s) => {
            let mut tx = s.begin_write().await?;
            let rows: Vec<DueRow> = sqlx::query_as(
                "UPDATE deferred_jobs SET status = 'handed', handed_at = $1 \
                 WHERE id IN (SELECT id FROM deferred_jobs WHERE status = 'scheduled' AND due_at <= $1 \
                   ORDER BY due_at LIMIT $2) RETURNING id, queue, payload",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                tx.push_live(
                    &row.queue,
                    row.id,
                    row.payload.as_bytes().to_vec(),
                    APALIS_MAX_ATTEMPTS,
                    None,
                )
                .await?;
            }
            tx.commit().await?;
            Ok(rows.len())
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let rows: Vec<DueRow> = sqlx::query_as(
                "UPDATE deferred_jobs SET status = 'handed', handed_at = $1 \
                 WHERE id IN (SELECT id FROM deferred_jobs WHERE status = 'scheduled' AND due_at <= $1 \
                   ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, queue, payload",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut by_queue: std::collections::BTreeMap<&str, Vec<super::TaskOf>> =
                Default::default();
            for row in &rows {
                by_queue
                    .entry(row.queue.as_str())
                    .or_default()
                    .push(super::apalis_task(
                        row.id,
                        row.payload.as_bytes().to_vec(),
                        APALIS_MAX_ATTEMPTS,
                        None,
                    ));
            }
            for (queue, tasks) in by_queue {
                apalis_postgres::queries::push_tasks(&mut *tx, queue, tasks).await?;
            }
            tx.commit().await?;
            Ok(rows.len())
        }
    }
}

/// Registers a runner's apalis worker row, or refreshes its heartbeat.
pub async fn heartbeat(db: &Db, worker: &str, queue: &str) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite(s) => {
            let now = unix_secs(Timestamp::now());
            sqlx::query(
                "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen, started_at) \
                 VALUES ($1, $2, 'akis', '', $3, $3) ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
            )
            .bind(worker)
            .bind(queue)
            .bind(now)
            .execute(&s.writer)
            .await?;
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
                 VALUES ($1, $2, 'akis', '', now()) ON CONFLICT (id) DO UPDATE SET last_seen = now()",
            )
            .bind(worker)
            .bind(queue)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Returns to pending every running job whose worker has been silent for `timeout`
/// (a crashed process). Returns how many.
pub async fn recover_orphans(db: &Db, timeout: Duration) -> Result<u64, sqlx::Error> {
    let secs = timeout.as_secs().max(1) as i64;
    let done = match db {
        Db::Sqlite(s) => {
            // SQLite's heartbeats are whole seconds, hence the strict comparison below a
            // whole-second cutoff.
            let cutoff = unix_secs(Timestamp::now()) - secs;
            sqlx::query(
                "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, attempts = attempts + 1 \
                 WHERE status IN ('Running', 'Queued') \
                   AND lock_by IN (SELECT id FROM Workers WHERE last_seen < $1)",
            )
            .bind(cutoff)
            .execute(&s.writer)
            .await?
            .rows_affected()
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, attempts = attempts + 1 \
                 WHERE status IN ('Running', 'Queued') \
                   AND lock_by IN (SELECT id FROM apalis.workers WHERE last_seen < now() - make_interval(secs => $1))",
            )
            .bind(secs as f64)
            .execute(pool)
            .await?
            .rows_affected()
        }
    };
    Ok(done)
}

/// Gives back the jobs a stopping runner claimed but did not finish.
pub async fn release(db: &Db, worker: &str) -> Result<u64, sqlx::Error> {
    let done = match db {
        Db::Sqlite(s) => {
            sqlx::query(
                "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL WHERE lock_by = $1",
            )
            .bind(worker)
            .execute(&s.writer)
            .await?
            .rows_affected()
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL WHERE lock_by = $1",
            )
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
        }
    };
    Ok(done)
}

/// How long finished work is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Done and cancelled jobs, and handed-over deferred rows.
    pub finished: Duration,
    /// Dead jobs (kept longer: someone has to look at them).
    pub dead: Duration,
}

/// Deletes history and deferred rows past their retention. Returns rows deleted.
pub async fn purge(db: &Db, retention: Retention) -> Result<u64, sqlx::Error> {
    let now = Timestamp::now().as_datetime();
    let finished_cutoff = Timestamp::from_datetime(
        now - chrono::Duration::from_std(retention.finished).unwrap_or(chrono::Duration::MAX),
    );
    let dead_cutoff = Timestamp::from_datetime(
        now - chrono::Duration::from_std(retention.dead).unwrap_or(chrono::Duration::MAX),
    );
    let mut total = 0;
    let statements: [(&'static str, Timestamp); 3] = [
        (
            "DELETE FROM job_history WHERE id IN (SELECT id FROM job_history \
             WHERE state IN ('done', 'cancelled') AND finished_at < $1 LIMIT 5000)",
            finished_cutoff,
        ),
        (
            "DELETE FROM job_history WHERE id IN (SELECT id FROM job_history \
             WHERE state = 'dead' AND finished_at < $1 LIMIT 5000)",
            dead_cutoff,
        ),
        (
            "DELETE FROM deferred_jobs WHERE id IN (SELECT id FROM deferred_jobs \
             WHERE status IN ('handed', 'cancelled') AND COALESCE(handed_at, created_at) < $1 LIMIT 5000)",
            finished_cutoff,
        ),
    ];
    for (sql, cutoff) in statements {
        // Bounded batches: a long purge never holds the SQLite writer for long.
        loop {
            let n = crate::transaction!(db, tx => {
                sqlx::query(sql).bind(cutoff).execute(&mut *tx).await.map(|r| r.rows_affected())
            })?;
            total += n;
            if n < 5000 {
                break;
            }
        }
    }
    Ok(total)
}

/// A job's state as the admin screen shows it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// In the live queue, waiting for a worker.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Waiting in `deferred_jobs` (future-dated, or a retry back-off).
    Scheduled,
    Done,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Running,
        JobState::Scheduled,
        JobState::Done,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Scheduled => "scheduled",
            JobState::Done => "done",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// Which jobs [`list_jobs`] returns.
#[derive(Debug, Clone)]
pub struct JobFilter {
    pub queue: Option<String>,
    pub state: Option<JobState>,
    pub limit: u32,
}

impl Default for JobFilter {
    fn default() -> Self {
        Self {
            queue: None,
            state: None,
            limit: 100,
        }
    }
}

/// One job as the admin screen shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: JobId,
    pub queue: String,
    pub state: JobState,
    /// Runs made so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Ready time (live), due time (scheduled) or finish time (history).
    pub at: Timestamp,
    /// The typed job as JSON.
    #[schema(value_type = Object)]
    pub job: Value,
}

#[derive(sqlx::FromRow)]
struct LiveRow {
    id: JobId,
    job_type: String,
    status: String,
    job: Vec<u8>,
    attempts: i32,
}

#[derive(sqlx::FromRow)]
struct DeferredRow {
    id: JobId,
    queue: String,
    due_at: Timestamp,
    payload: String,
    attempt: i32,
    last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    id: JobId,
    queue: String,
    state: String,
    payload: String,
    attempts: i32,
    last_error: Option<String>,
    finished_at: Timestamp,
}

fn parse_envelope(bytes: &[u8]) -> Envelope<Value> {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Envelope {
        attempt: 0,
        ready_at: Timestamp::now(),
        last_error: Some("unreadable payload".into()),
        job: Value::String(String::from_utf8_lossy(bytes).into_owned()),
    })
}

/// Lists jobs by queue and state, newest first within each state.
pub async fn list_jobs(db: &Db, filter: &JobFilter) -> Result<Vec<JobSummary>, sqlx::Error> {
    let limit = filter.limit.clamp(1, 1000) as i64;
    let states: Vec<JobState> = match filter.state {
        Some(s) => vec![s],
        None => JobState::ALL.to_vec(),
    };
    let queue = filter.queue.as_deref();
    let mut out = Vec::new();
    for state in states {
        match state {
            JobState::Pending | JobState::Running => {
                let status = if state == JobState::Pending {
                    "Pending"
                } else {
                    "Running"
                };
                let rows: Vec<LiveRow> = match db {
                    Db::Sqlite(s) => {
                        sqlx::query_as(
                            "SELECT id, job_type, status, job, attempts FROM Jobs \
                         WHERE status = $1 AND ($2 IS NULL OR job_type = $2) ORDER BY run_at DESC, id DESC LIMIT $3",
                        )
                        .bind(status)
                        .bind(queue)
                        .bind(limit)
                        .fetch_all(&s.reader)
                        .await?
                    }
                    Db::Postgres(pool) => {
                        sqlx::query_as(
                            "SELECT id, job_type, status, job, attempts FROM apalis.jobs \
                         WHERE status = $1 AND ($2::text IS NULL OR job_type = $2) ORDER BY run_at DESC, id DESC LIMIT $3",
                        )
                        .bind(status)
                        .bind(queue)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                    }
                };
                out.extend(rows.into_iter().map(|r| {
                    let envelope = parse_envelope(&r.job);
                    JobSummary {
                        id: r.id,
                        queue: r.job_type,
                        state: if r.status == "Running" {
                            JobState::Running
                        } else {
                            JobState::Pending
                        },
                        attempts: envelope.attempt + r.attempts.max(0) as u32,
                        last_error: envelope.last_error,
                        at: envelope.ready_at,
                        job: envelope.job,
                    }
                }));
            }
            JobState::Scheduled => {
                let rows: Vec<DeferredRow> = crate::read!(db, pool => {
                    sqlx::query_as(
                        "SELECT id, queue, due_at, payload, attempt, last_error FROM deferred_jobs \
                         WHERE status = 'scheduled' AND (CAST($1 AS TEXT) IS NULL OR queue = $1) ORDER BY due_at LIMIT $2",
                    )
                    .bind(queue)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                });
                out.extend(rows.into_iter().map(|r| JobSummary {
                    id: r.id,
                    queue: r.queue,
                    state: JobState::Scheduled,
                    attempts: r.attempt.max(0) as u32,
                    last_error: r.last_error,
                    at: r.due_at,
                    job: parse_envelope(r.payload.as_bytes()).job,
                }));
            }
            JobState::Done | JobState::Dead | JobState::Cancelled => {
                let rows: Vec<HistoryRow> = crate::read!(db, pool => {
                    sqlx::query_as(
                        "SELECT id, queue, state, payload, attempts, last_error, finished_at FROM job_history \
                         WHERE state = $1 AND (CAST($2 AS TEXT) IS NULL OR queue = $2) ORDER BY finished_at DESC LIMIT $3",
                    )
                    .bind(state.as_str())
                    .bind(queue)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                });
                out.extend(rows.into_iter().map(|r| JobSummary {
                    id: r.id,
                    queue: r.queue,
                    state: match r.state.as_str() {
                        "dead" => JobState::Dead,
                        "cancelled" => JobState::Cancelled,
                        _ => JobState::Done,
                    },
                    attempts: r.attempts.max(0) as u32,
                    last_error: r.last_error,
                    at: r.finished_at,
                    job: parse_envelope(r.payload.as_bytes()).job,
                }));
            }
        }
    }
    Ok(out)
}

/// Finds one job wherever it is.
pub async fn find_job(db: &Db, id: JobId) -> Result<Option<JobSummary>, sqlx::Error> {
    // Few rows carry one id; the listing queries are reused with a post-filter only for the
    // live table, which is small by design.
    let history: Option<HistoryRow> = crate::read!(db, pool => {
        sqlx::query_as("SELECT id, queue, state, payload, attempts, last_error, finished_at FROM job_history WHERE id = $1")
            .bind(id).fetch_optional(pool).await?
    });
    if let Some(r) = history {
        return Ok(Some(JobSummary {
            id: r.id,
            queue: r.queue,
            state: match r.state.as_str() {
                "dead" => JobState::Dead,
                "cancelled" => JobState::Cancelled,
                _ => JobState::Done,
            },
            attempts: r.attempts.max(0) as u32,
            last_error: r.last_error,
            at: r.finished_at,
            job: parse_envelope(r.payload.as_bytes()).job,
        }));
    }
    let live: Option<LiveRow> = match db {
        Db::Sqlite(s) => {
            sqlx::query_as("SELECT id, job_type, status, job, attempts FROM Jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&s.reader)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT id, job_type, status, job, attempts FROM apalis.jobs WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }
    };
    if let Some(r) = live {
        let envelope = parse_envelope(&r.job);
        return Ok(Some(JobSummary {
            id: r.id,
            queue: r.job_type,
            state: if r.status == "Running" {
                JobState::Running
            } else {
                JobState::Pending
            },
            attempts: envelope.attempt + r.attempts.max(0) as u32,
            last_error: envelope.last_error,
            at: envelope.ready_at,
            job: envelope.job,
        }));
    }
    let deferred: Option<DeferredRow> = crate::read!(db, pool => {
        sqlx::query_as("SELECT id, queue, due_at, payload, attempt, last_error FROM deferred_jobs WHERE id = $1 AND status = 'scheduled'")
            .bind(id).fetch_optional(pool).await?
    });
    Ok(deferred.map(|r| JobSummary {
        id: r.id,
        queue: r.queue,
        state: JobState::Scheduled,
        attempts: r.attempt.max(0) as u32,
        last_error: r.last_error,
        at: r.due_at,
        job: parse_envelope(r.payload.as_bytes()).job,
    }))
}

/// Puts a dead job back in the live queue with a fresh attempt count. False when `id` is
/// not a dead job.
pub async fn retry_dead(db: &Db, id: JobId) -> Result<bool, JobsError> {
    let now = Timestamp::now();
    crate::transaction!(db, tx => {
        let row: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM job_history WHERE id = $1 AND state = 'dead' RETURNING queue, payload",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((queue, payload)) = row else {
            return Ok(false);
        };
        let mut envelope = parse_envelope(payload.as_bytes());
        envelope.attempt = 0;
        envelope.ready_at = now;
        envelope.last_error = None;
        let bytes = serde_json::to_vec(&envelope)?;
        tx.push_live(&queue, id, bytes, APALIS_MAX_ATTEMPTS, None).await?;
        Ok::<_, JobsError>(true)
    })
}

/// Cancels a job that has not started (live pending, or scheduled). False otherwise.
pub async fn cancel(db: &Db, id: JobId) -> Result<bool, JobsError> {
    let now = Timestamp::now();
    let live_sql = match db {
        Db::Sqlite(_) => {
            "DELETE FROM Jobs WHERE id = $1 AND status = 'Pending' RETURNING job_type, CAST(job AS TEXT)"
        }
        Db::Postgres(_) => {
            "DELETE FROM apalis.jobs WHERE id = $1 AND status = 'Pending' RETURNING job_type, convert_from(job, 'UTF8')"
        }
    };
    crate::transaction!(db, tx => {
        let mut found: Option<(String, String)> = sqlx::query_as(live_sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            found = sqlx::query_as(
                "UPDATE deferred_jobs SET status = 'cancelled' WHERE id = $1 AND status = 'scheduled' \
                 RETURNING queue, payload",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        }
        let Some((queue, payload)) = found else {
            return Ok(false);
        };
        let envelope = parse_envelope(payload.as_bytes());
        sqlx::query(INSERT_HISTORY)
            .bind(id)
            .bind(&queue)
            .bind("cancelled")
            .bind(&payload)
            .bind(envelope.attempt as i32)
            .bind(None::<String>)
            .bind(envelope.ready_at)
            .bind(None::<Timestamp>)
            .bind(now)
            .bind(None::<String>)
            .execute(&mut *tx)
            .await?;
        Ok::<_, JobsError>(true)
    })
}

/// One queue's health, for metrics and the admin screen.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct QueueHealth {
    pub queue: String,
    pub pending: i64,
    pub running: i64,
    pub scheduled: i64,
    /// Age of the oldest job ready to run but not started, in seconds.
    pub oldest_pending_secs: Option<f64>,
}

/// Depth and oldest pending age per queue (queues with no live or scheduled work are
/// omitted).
pub async fn queue_health(db: &Db) -> Result<Vec<QueueHealth>, sqlx::Error> {
    let live: Vec<(String, i64, i64, Option<f64>)> = match db {
        Db::Sqlite(s) => {
            let now = unix_secs(Timestamp::now());
            sqlx::query_as(
                "SELECT job_type, SUM(status = 'Pending'), SUM(status = 'Running'), \
                   CAST($1 - MIN(CASE WHEN status = 'Pending' AND run_at <= $1 THEN run_at END) AS REAL) \
                 FROM Jobs GROUP BY job_type",
            )
            .bind(now)
            .fetch_all(&s.reader)
            .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT job_type, COUNT(*) FILTER (WHERE status = 'Pending'), COUNT(*) FILTER (WHERE status = 'Running'), \
                   EXTRACT(EPOCH FROM now() - MIN(run_at) FILTER (WHERE status = 'Pending' AND run_at <= now()))::float8 \
                 FROM apalis.jobs GROUP BY job_type",
            )
            .fetch_all(pool)
            .await?
        }
    };
    let scheduled: Vec<(String, i64)> = crate::read!(db, pool => {
        sqlx::query_as("SELECT queue, COUNT(*) FROM deferred_jobs WHERE status = 'scheduled' GROUP BY queue")
            .fetch_all(pool)
            .await?
    });
    let mut out: std::collections::BTreeMap<String, QueueHealth> = Default::default();
    for (queue, pending, running, oldest) in live {
        let entry = out.entry(queue.clone()).or_default();
        entry.queue = queue;
        entry.pending = pending;
        entry.running = running;
        entry.oldest_pending_secs = oldest.map(|s| s.max(0.0));
    }
    for (queue, n) in scheduled {
        let entry = out.entry(queue.clone()).or_default();
        entry.queue = queue;
        entry.scheduled = n;
    }
    Ok(out.into_values().collect())
}
