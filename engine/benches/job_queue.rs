//! Job queue benchmarks (results in BENCHMARKS.md, "Job queue").
//!
//! ```text
//! AKIS_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p akis-engine --bench job_queue -- [latency] [throughput] [multiproc] [defaults] \
//!   [--backend sqlite|postgres] [--runs 3] [--sustained 200000] [--sustained-runs N] [--drain 5000]
//! ```
//!
//! - `latency`: enqueue→start at a steady 200 jobs/s into idle workers with 100,000
//!   future-dated jobs pending: our layer (future jobs in `deferred_jobs`) and raw apalis
//!   (future jobs as `run_at` rows in its table) with the same wake-up, batch, concurrency
//!   and orphan-timeout settings.
//! - `throughput`: no-op jobs. Drain `--drain` (5,000) jobs with our layer and with raw apalis (same
//!   configuration); then our layer's sustained rate after `--sustained` jobs vs its first
//!   2,000.
//! - `multiproc` (PostgreSQL): two worker processes (this binary re-executed) drain 40,000.
//! - `defaults` (only when named): raw apalis out of the box (no wake-up, 30 s heartbeat),
//!   20 jobs pushed one per second into an idle worker, for contrast.
//!
//! Each scenario runs `--runs` times on a fresh database; the summary gives median and max.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use akis_engine::config::DatabaseUrl;
use akis_engine::jobs::{
    self, EnqueueOptions, Handler, JobContext, JobError, JobKind, JobSystem, RunnerOptions,
    SystemOptions,
};
use akis_engine::storage::{Db, StorageOptions};
use akis_engine::types::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

const QUEUE: &str = "bench_noop";
const CONCURRENCY: usize = 16;
const BATCH: usize = 16;
/// Orphan timeout for both sides: 10 s heartbeat × 12 missed = 120 s.
const HEARTBEAT: Duration = Duration::from_secs(10);
const MISSED: usize = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    /// Enqueue time in µs since the epoch (raw apalis has no envelope to carry it).
    sent_us: i64,
}

impl JobKind for Noop {
    const QUEUE: &'static str = QUEUE;
}

fn now_us() -> i64 {
    Timestamp::now().as_datetime().timestamp_micros()
}

#[derive(Default)]
struct Recorder {
    processed: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
    record_latency: bool,
    marks: Mutex<Vec<(u64, Instant)>>,
    mark_every: u64,
}

impl Recorder {
    async fn hit(&self, sent_us: i64) {
        let n = self.processed.fetch_add(1, Ordering::Relaxed) + 1;
        if self.record_latency {
            let ms = (now_us() - sent_us) as f64 / 1000.0;
            self.latencies_ms.lock().await.push(ms);
        }
        if self.mark_every > 0 && n.is_multiple_of(self.mark_every) {
            self.marks.lock().await.push((n, Instant::now()));
        }
    }
}

struct NoopHandler(Arc<Recorder>);

impl Handler for NoopHandler {
    type Job = Noop;
    async fn run(&self, ctx: JobContext, job: Noop) -> Result<(), JobError> {
        // Ours measures from ready_at (the same instant as sent_us for immediate jobs).
        let _ = ctx;
        self.0.hit(job.sent_us).await;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct BenchDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<(String, String)>,
}

impl BenchDb {
    async fn fresh(backend: Backend, pg_admin: &str) -> BenchDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite:{}", dir.path().join("bench.db").display());
                BenchDb {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let name = format!("akis_bench_{}", uuid::Uuid::now_v7().simple());
                let (base, _) = pg_admin.rsplit_once('/').expect("a PostgreSQL URL");
                BenchDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg_name: Some((pg_admin.to_string(), name)),
                }
            }
        }
    }

    async fn open(&self) -> Db {
        let db = Db::connect(
            &DatabaseUrl::new(self.url.clone()),
            &StorageOptions {
                max_connections: 20,
                ..StorageOptions::default()
            },
        )
        .await
        .expect("open");
        db.migrate().await.expect("migrate");
        db
    }

    async fn drop_pg(&self) {
        if let Some((admin, name)) = &self.pg_name
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
        }
    }
}

fn system_options() -> SystemOptions {
    SystemOptions {
        heartbeat_interval: HEARTBEAT,
        orphan_timeout: HEARTBEAT * MISSED as u32,
        ..SystemOptions::default()
    }
}

fn runner_options() -> RunnerOptions {
    RunnerOptions {
        concurrency: CONCURRENCY,
        batch_size: BATCH,
        ..RunnerOptions::default()
    }
}

async fn push_ours(db: &Db, n: usize, run_at: Option<Timestamp>) {
    let mut left = n;
    while left > 0 {
        let chunk = left.min(1000);
        akis_engine::transaction!(db, tx => {
            for _ in 0..chunk {
                jobs::enqueue_with(&mut *tx, &Noop { sent_us: now_us() },
                    EnqueueOptions { run_at, idempotency_key: None }).await?;
            }
            Ok::<_, jobs::JobsError>(())
        })
        .expect("push");
        left -= chunk;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Steady 200 jobs/s for `count` jobs; returns (p50, p99, max) in ms.
async fn steady_latency_ours(db: &Db, count: usize) -> (f64, f64, f64) {
    let recorder = Arc::new(Recorder {
        record_latency: true,
        ..Recorder::default()
    });
    let mut system = JobSystem::start(db.clone(), system_options())
        .await
        .expect("start");
    system
        .run(NoopHandler(recorder.clone()), runner_options())
        .await
        .expect("runner");
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..count {
        tick.tick().await;
        akis_engine::transaction!(db, tx => {
            jobs::enqueue(&mut *tx, &Noop { sent_us: now_us() }).await
        })
        .expect("push");
    }
    wait_processed(&recorder, count as u64).await;
    system.shutdown(Duration::from_secs(5)).await;
    summarize(&recorder).await
}

async fn wait_processed(recorder: &Recorder, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while recorder.processed.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "benchmark stalled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn summarize(recorder: &Recorder) -> (f64, f64, f64) {
    let mut l = recorder.latencies_ms.lock().await.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(f64::NAN),
    )
}

/// Drains `n` pre-pushed jobs; returns jobs/s.
async fn drain_ours(db: &Db, n: usize) -> f64 {
    push_ours(db, n, None).await;
    let recorder = Arc::new(Recorder::default());
    let start = Instant::now();
    let mut system = JobSystem::start(db.clone(), system_options())
        .await
        .expect("start");
    system
        .run(NoopHandler(recorder.clone()), runner_options())
        .await
        .expect("runner");
    wait_processed(&recorder, n as u64).await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    system.shutdown(Duration::from_secs(5)).await;
    rate
}

/// Keeps a backlog of ~4,000 jobs while processing `total + 2000`; returns (first 2,000
/// rate, rate of the 2,000 after `total`).
async fn sustained_ours(db: &Db, total: u64) -> (f64, f64) {
    let recorder = Arc::new(Recorder {
        mark_every: 2000,
        ..Recorder::default()
    });
    let target = total + 2000;
    push_ours(db, 4000, None).await;
    let mut pushed: u64 = 4000;
    let mut system = JobSystem::start(db.clone(), system_options())
        .await
        .expect("start");
    let start = Instant::now();
    system
        .run(NoopHandler(recorder.clone()), runner_options())
        .await
        .expect("runner");
    while recorder.processed.load(Ordering::Relaxed) < target {
        let processed = recorder.processed.load(Ordering::Relaxed);
        if pushed < target && pushed - processed < 4000 {
            let chunk = 1000.min(target - pushed);
            push_ours(db, chunk as usize, None).await;
            pushed += chunk;
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    system.shutdown(Duration::from_secs(5)).await;
    let marks = recorder.marks.lock().await.clone();
    let at = |n: u64| marks.iter().find(|(m, _)| *m == n).map(|(_, t)| *t);
    let first = 2000.0 / (at(2000).expect("mark") - start).as_secs_f64();
    let last = 2000.0 / (at(target).expect("mark") - at(total).expect("mark")).as_secs_f64();
    (first, last)
}

mod raw {
    //! Raw apalis 1.0 with the same settings: wake on insert (SQLite update hook on its
    //! pool / PostgreSQL pubsub), the same batch size and concurrency, heartbeat 10 s ×
    //! 12 missed = 120 s orphan timeout.
    use super::*;
    use apalis::prelude::*;
    use apalis_core::task::Task;

    async fn handler(job: Noop, recorder: Data<Arc<Recorder>>) -> Result<(), BoxDynError> {
        recorder.hit(job.sent_us).await;
        Ok(())
    }

    /// A pool with the same connection settings as ours (WAL, synchronous=NORMAL, busy
    /// timeout) and an update hook that wakes the worker on every insert into `Jobs`, the
    /// equivalent of apalis's `connect_with_callback` (which cannot take these settings).
    pub async fn sqlite_pool(url: &str) -> (sqlx::SqlitePool, Wake) {
        use std::str::FromStr;
        let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .expect("url")
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .after_connect(move |conn, _| {
                let tx = tx.clone();
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    handle.set_update_hook(move |event| {
                        if event.table == "Jobs"
                            && matches!(event.operation, sqlx::sqlite::SqliteOperation::Insert)
                        {
                            let _ = tx.unbounded_send(());
                        }
                    });
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .expect("pool");
        apalis_sqlite::SqliteStorage::migrations()
            .run(&pool)
            .await
            .expect("apalis migrations");
        (pool, rx)
    }

    pub type Wake = futures::channel::mpsc::UnboundedReceiver<()>;

    pub fn task(run_at_secs: Option<u64>) -> Task<Vec<u8>> {
        let payload = serde_json::to_vec(&Noop { sent_us: now_us() }).expect("json");
        let mut b = apalis_core::task::builder::TaskBuilder::new(payload);
        if let Some(at) = run_at_secs {
            b = b.run_at_timestamp(at);
        }
        b.build()
    }

    pub async fn push_sqlite(pool: &sqlx::SqlitePool, n: usize, run_at: Option<u64>) {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1000);
            let tasks: Vec<_> = (0..chunk).map(|_| task(run_at)).collect();
            // apalis's pool has several writers: SQLITE_BUSY happens under load; retry.
            let mut tries = 0;
            loop {
                let attempt = async {
                    let mut tx = pool.begin().await?;
                    apalis_sqlite::queries::push_tasks(&mut *tx, QUEUE, &tasks).await?;
                    tx.commit().await?;
                    Ok::<_, apalis_sqlite::Error>(())
                };
                match attempt.await {
                    Ok(()) => break,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        eprintln!("raw apalis push retry after: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("raw apalis push: {e}"),
                }
            }
            left -= chunk;
        }
    }

    pub async fn push_pg(pool: &sqlx::PgPool, n: usize, run_at: Option<u64>) {
        let mut left = n;
        while left > 0 {
            let chunk = left.min(1000);
            let tasks: Vec<_> = (0..chunk).map(|_| task(run_at)).collect();
            let mut tx = pool.begin().await.expect("begin");
            apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, tasks)
                .await
                .expect("push");
            tx.commit().await.expect("commit");
            left -= chunk;
        }
    }

    pub fn sqlite_config(defaults: bool) -> apalis_sqlite::Config {
        let c = apalis_sqlite::Config::default().queue(QUEUE);
        if defaults {
            c
        } else {
            c.batch_size(BATCH)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED)
        }
    }

    pub fn pg_config(defaults: bool) -> apalis_postgres::Config {
        let c = apalis_postgres::Config::default().queue(QUEUE);
        if defaults {
            c
        } else {
            c.batch_size(BATCH)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED)
        }
    }

    /// Starts a raw apalis worker; abort the handle to stop it.
    pub fn start_sqlite(
        pool: &sqlx::SqlitePool,
        listener: Wake,
        recorder: Arc<Recorder>,
        defaults: bool,
    ) -> tokio::task::JoinHandle<()> {
        let name = format!("raw-sqlite-{}", uuid::Uuid::now_v7().simple());
        if defaults {
            // Out of the box: no wake-up stream, polling on the heartbeat.
            drop(listener);
            let backend = apalis_sqlite::SqliteStorage::<Noop>::new(pool)
                .with_config(sqlite_config(defaults));
            let worker = WorkerBuilder::new(name)
                .backend(backend)
                .concurrency(CONCURRENCY)
                .data(recorder)
                .build(handler);
            return tokio::spawn(async move {
                let _ = worker.run().await;
            });
        }
        let backend = apalis_sqlite::SqliteStorage::<Noop>::new(pool)
            .with_config(sqlite_config(defaults))
            .poll_with_stream(listener);
        let worker = WorkerBuilder::new(name)
            .backend(backend)
            .concurrency(CONCURRENCY)
            .data(recorder)
            .build(handler);
        tokio::spawn(async move {
            let _ = worker.run().await;
        })
    }

    pub fn start_pg(
        pool: &sqlx::PgPool,
        recorder: Arc<Recorder>,
        defaults: bool,
    ) -> tokio::task::JoinHandle<()> {
        let name = format!("raw-pg-{}", uuid::Uuid::now_v7().simple());
        if defaults {
            // Out of the box: no LISTEN/NOTIFY, polling on the heartbeat.
            let backend = apalis_postgres::PostgresStorage::<Noop>::new(pool)
                .with_config(pg_config(defaults));
            let worker = WorkerBuilder::new(name)
                .backend(backend)
                .concurrency(CONCURRENCY)
                .data(recorder)
                .build(handler);
            return tokio::spawn(async move {
                let _ = worker.run().await;
            });
        }
        let backend = apalis_postgres::PostgresStorage::<Noop>::new(pool)
            .with_config(pg_config(defaults))
            .with_pubsub();
        let worker = WorkerBuilder::new(name)
            .backend(backend)
            .concurrency(CONCURRENCY)
            .data(recorder)
            .build(handler);
        tokio::spawn(async move {
            let _ = worker.run().await;
        })
    }
}

enum RawDb {
    Sqlite(sqlx::SqlitePool, Option<raw::Wake>),
    Postgres(sqlx::PgPool),
}

async fn raw_open(backend: Backend, bench: &BenchDb) -> RawDb {
    match backend {
        Backend::Sqlite => {
            let (pool, listener) = raw::sqlite_pool(&bench.url).await;
            RawDb::Sqlite(pool, Some(listener))
        }
        Backend::Postgres => {
            // Creates the database and runs apalis's migrations (via ours).
            let db = bench.open().await;
            db.close().await;
            RawDb::Postgres(sqlx::PgPool::connect(&bench.url).await.expect("pg"))
        }
    }
}

async fn raw_push(raw: &RawDb, n: usize, run_at: Option<u64>) {
    match raw {
        RawDb::Sqlite(pool, _) => raw::push_sqlite(pool, n, run_at).await,
        RawDb::Postgres(pool) => raw::push_pg(pool, n, run_at).await,
    }
}

fn raw_start(
    raw: &mut RawDb,
    recorder: Arc<Recorder>,
    defaults: bool,
) -> tokio::task::JoinHandle<()> {
    match raw {
        RawDb::Sqlite(pool, listener) => raw::start_sqlite(
            pool,
            listener.take().expect("one worker per pool"),
            recorder,
            defaults,
        ),
        RawDb::Postgres(pool) => raw::start_pg(pool, recorder, defaults),
    }
}

async fn raw_latency(backend: Backend, bench: &BenchDb, count: usize) -> (f64, f64, f64) {
    let mut raw = raw_open(backend, bench).await;
    let future = (now_us() / 1_000_000 + 30 * 24 * 3600) as u64;
    raw_push(&raw, 100_000, Some(future)).await;
    let recorder = Arc::new(Recorder {
        record_latency: true,
        ..Recorder::default()
    });
    let worker = raw_start(&mut raw, recorder.clone(), false);
    // Let the worker register and go idle before the steady phase.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..count {
        tick.tick().await;
        raw_push(&raw, 1, None).await;
    }
    wait_processed(&recorder, count as u64).await;
    worker.abort();
    summarize(&recorder).await
}

/// Raw apalis with its DEFAULT configuration (no wake-up on insert, 30 s heartbeat), for
/// contrast: `count` jobs pushed one per second into an idle worker.
async fn raw_defaults_latency(backend: Backend, bench: &BenchDb, count: usize) -> (f64, f64, f64) {
    let mut raw = raw_open(backend, bench).await;
    let recorder = Arc::new(Recorder {
        record_latency: true,
        ..Recorder::default()
    });
    let worker = raw_start(&mut raw, recorder.clone(), true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..count {
        tick.tick().await;
        raw_push(&raw, 1, None).await;
    }
    wait_processed(&recorder, count as u64).await;
    worker.abort();
    summarize(&recorder).await
}

async fn raw_drain(backend: Backend, bench: &BenchDb, n: usize) -> f64 {
    let mut raw = raw_open(backend, bench).await;
    raw_push(&raw, n, None).await;
    let recorder = Arc::new(Recorder::default());
    let start = Instant::now();
    let worker = raw_start(&mut raw, recorder.clone(), false);
    wait_processed(&recorder, n as u64).await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    worker.abort();
    rate
}

fn median_max(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    };
    (median, v.last().copied().unwrap_or(f64::NAN))
}

fn min_of(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

async fn multiproc(pg_admin: &str, jobs_total: usize) -> f64 {
    let bench = BenchDb::fresh(Backend::Postgres, pg_admin).await;
    let db = bench.open().await;
    push_ours(&db, jobs_total, None).await;
    let exe = std::env::current_exe().expect("exe");
    let mut children = Vec::new();
    let start = Instant::now();
    for _ in 0..2 {
        children.push(ChildGuard(
            std::process::Command::new(&exe)
                .arg("--worker-role")
                .arg(&bench.url)
                .spawn()
                .expect("spawn worker process"),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM job_history").fetch_one(pool).await
        })
        .expect("count");
        if done as usize >= jobs_total {
            break;
        }
        assert!(Instant::now() < deadline, "multi-process drain stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = jobs_total as f64 / start.elapsed().as_secs_f64();
    drop(children);
    db.close().await;
    bench.drop_pg().await;
    rate
}

/// Child process: runs a no-op runner until killed.
async fn worker_role(url: &str) {
    let db = Db::connect(
        &DatabaseUrl::new(url.to_string()),
        &StorageOptions {
            max_connections: 20,
            ..StorageOptions::default()
        },
    )
    .await
    .expect("open");
    let recorder = Arc::new(Recorder::default());
    let mut system = JobSystem::start(db.clone(), system_options())
        .await
        .expect("start");
    system
        .run(
            NoopHandler(recorder),
            RunnerOptions {
                concurrency: 64,
                batch_size: 64,
                ..RunnerOptions::default()
            },
        )
        .await
        .expect("runner");
    std::future::pending::<()>().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker-role") {
        worker_role(args.get(i + 1).expect("url")).await;
        return;
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs: usize = value("--runs").and_then(|v| v.parse().ok()).unwrap_or(3);
    let sustained: u64 = value("--sustained")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // Raw apalis on SQLite slows as rows accumulate (~1/n); 5,000 keeps a run short.
    let drain: usize = value("--drain")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let sustained_runs: usize = value("--sustained-runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(runs);
    let pg_admin = std::env::var("AKIS_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("AKIS_TEST_POSTGRES_URL"))
        .ok();
    let backends: Vec<Backend> = match value("--backend").as_deref() {
        Some("sqlite") => vec![Backend::Sqlite],
        Some("postgres") => vec![Backend::Postgres],
        _ => {
            let mut b = vec![Backend::Sqlite];
            if pg_admin.is_some() {
                b.push(Backend::Postgres);
            }
            b
        }
    };
    // `defaults` (raw apalis out of the box, ≈30 s per sample) only when asked for.
    let scenarios: Vec<&str> = ["latency", "throughput", "multiproc", "defaults"]
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let scenarios = if scenarios.is_empty() {
        vec!["latency", "throughput", "multiproc"]
    } else {
        scenarios
    };
    let pg = pg_admin.clone().unwrap_or_default();
    for backend in &backends {
        let backend = *backend;
        if scenarios.contains(&"latency") {
            let (mut ours, mut raw_r) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let bench = BenchDb::fresh(backend, &pg).await;
                let db = bench.open().await;
                let future = Timestamp::from_datetime(
                    Timestamp::now().as_datetime() + chrono::Duration::days(30),
                );
                push_ours(&db, 100_000, Some(future)).await;
                let r = steady_latency_ours(&db, 2000).await;
                println!(
                    "{backend:?} latency ours run {run}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                    r.0, r.1, r.2
                );
                ours.push(r);
                db.close().await;
                bench.drop_pg().await;
                let bench = BenchDb::fresh(backend, &pg).await;
                let r = raw_latency(backend, &bench, 2000).await;
                println!(
                    "{backend:?} latency raw apalis run {run}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                    r.0, r.1, r.2
                );
                raw_r.push(r);
                bench.drop_pg().await;
            }
            for (name, rs) in [("ours", &ours), ("raw apalis", &raw_r)] {
                let p50: Vec<f64> = rs.iter().map(|r| r.0).collect();
                let p99: Vec<f64> = rs.iter().map(|r| r.1).collect();
                let (m50, x50) = median_max(&p50);
                let (m99, x99) = median_max(&p99);
                println!(
                    "SUMMARY {backend:?} latency {name}: p50 median {m50:.2} ms (max {x50:.2}); p99 median {m99:.2} ms (max {x99:.2})"
                );
            }
        }
        if scenarios.contains(&"throughput") {
            let (mut ours, mut raw_r, mut first, mut after) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for run in 0..runs {
                let bench = BenchDb::fresh(backend, &pg).await;
                let db = bench.open().await;
                let r = drain_ours(&db, drain).await;
                println!("{backend:?} drain {drain} ours run {run}: {r:.0} jobs/s");
                ours.push(r);
                db.close().await;
                bench.drop_pg().await;
                let bench = BenchDb::fresh(backend, &pg).await;
                let r = raw_drain(backend, &bench, drain).await;
                println!("{backend:?} drain {drain} raw apalis run {run}: {r:.0} jobs/s");
                raw_r.push(r);
                bench.drop_pg().await;
                if run >= sustained_runs {
                    continue;
                }
                let bench = BenchDb::fresh(backend, &pg).await;
                let db = bench.open().await;
                let (f, a) = sustained_ours(&db, sustained).await;
                println!(
                    "{backend:?} sustained ours run {run}: first 2k {f:.0} jobs/s, after {sustained}: {a:.0} jobs/s ({:.0}%)",
                    a / f * 100.0
                );
                first.push(f);
                after.push(a);
                db.close().await;
                bench.drop_pg().await;
            }
            let (mo, xo) = median_max(&ours);
            let (mr, xr) = median_max(&raw_r);
            let (mf, _) = median_max(&first);
            let (ma, xa) = median_max(&after);
            println!(
                "SUMMARY {backend:?} drain {drain}: ours median {mo:.0} (max {xo:.0}, min {:.0}) jobs/s; raw apalis median {mr:.0} (max {xr:.0}, min {:.0}); ours/raw {:.0}%",
                min_of(&ours),
                min_of(&raw_r),
                mo / mr * 100.0
            );
            let ratios: Vec<f64> = first
                .iter()
                .zip(&after)
                .map(|(f, a)| a / f * 100.0)
                .collect();
            let (mratio, _) = median_max(&ratios);
            println!(
                "SUMMARY {backend:?} sustained: first 2k median {mf:.0} jobs/s; after {sustained} median {ma:.0} (max {xa:.0}); per-run ratio median {mratio:.0}% (min {:.0}%)",
                min_of(&ratios)
            );
        }
        if scenarios.contains(&"defaults") {
            let mut rs = Vec::new();
            for run in 0..runs {
                let bench = BenchDb::fresh(backend, &pg).await;
                let r = raw_defaults_latency(backend, &bench, 20).await;
                println!(
                    "{backend:?} latency raw apalis DEFAULTS run {run}: p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
                    r.0, r.1, r.2
                );
                rs.push(r);
                bench.drop_pg().await;
            }
            let p50: Vec<f64> = rs.iter().map(|r| r.0).collect();
            let max: Vec<f64> = rs.iter().map(|r| r.2).collect();
            let (m50, x50) = median_max(&p50);
            let (mmax, xmax) = median_max(&max);
            println!(
                "SUMMARY {backend:?} latency raw apalis defaults: p50 median {m50:.0} ms (max {x50:.0}); max median {mmax:.0} ms (max {xmax:.0})"
            );
        }
        if backend == Backend::Postgres && scenarios.contains(&"multiproc") {
            let mut rates = Vec::new();
            for run in 0..runs {
                let r = multiproc(&pg, 40_000).await;
                println!("Postgres two processes run {run}: {r:.0} jobs/s");
                rates.push(r);
            }
            let (m, x) = median_max(&rates);
            println!(
                "SUMMARY Postgres two worker processes: median {m:.0} jobs/s (max {x:.0}, min {:.0})",
                min_of(&rates)
            );
        }
    }
}

/// Kills a child process when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
