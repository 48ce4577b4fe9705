//! The runner: fetches jobs from apalis's live table, runs their handlers, records the
//! outcome; plus the per-process services a queue needs (wake-up listener, deferred-work
//! promoter, orphan recovery, retention, health metrics).
//!
//! One [`JobSystem`] per process; one runner per queue in it ([`JobSystem::run`]). A runner
//! claims up to `batch_size` jobs at a time (never more than its free concurrency slots),
//! runs each in its own task, and hands the outcome to one finisher task per process, which
//! writes many outcomes per transaction. When a fetch comes back empty the runner sleeps
//! until a wake-up (see `wake`) or the safety-net poll.
//!
//! A handler is never run inside a database transaction.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::store::{self, Completion, FetchedJob, Outcome, Retention};
use super::wake::{WakeReceiver, Wakeups};
use super::{Envelope, JobError, JobId, JobKind, JobsError};
use crate::storage::Db;
use crate::types::Timestamp;

/// Orphan recovery never fires sooner than this outside tests: a live but slow worker must
/// not have its running jobs taken away and run twice.
pub const MIN_ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one kind of job.
pub trait Handler: Send + Sync + 'static {
    type Job: JobKind;
    fn run(
        &self,
        ctx: JobContext,
        job: Self::Job,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What a handler knows about the run it is in.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: JobId,
    /// 1 for the first run, 2 for the first retry, …
    pub attempt: u32,
    pub queue: &'static str,
    pub worker: Arc<str>,
    /// When the job became ready to run.
    pub ready_at: Timestamp,
    pub started_at: Timestamp,
}

/// Back-off for transient failures: exponential with "equal jitter" (half fixed, half
/// random), so a burst of failures spreads out instead of retrying in lock-step.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay after the first failed run (before jitter).
    pub base: Duration,
    /// Upper bound on one delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 1 min, 2, 4, … capped at 6 h: with the default ten runs a job keeps trying for
    /// about a day before it is dead.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after `runs` failed runs (1 = the first run failed).
    pub fn delay(&self, runs: u32) -> Duration {
        let exponent = runs.saturating_sub(1).min(30);
        let full = self
            .base
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.max);
        let half = full / 2;
        let jitter = if half.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::random_range(
                0..=half.as_nanos().min(u64::MAX as u128) as u64,
            ))
        };
        half + jitter
    }
}

/// Per-queue runner settings.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Jobs of this queue running at once in this process.
    pub concurrency: usize,
    /// Jobs claimed per fetch (bounded by free concurrency slots).
    pub batch_size: usize,
    /// Safety net: an idle runner fetches at least this often even without a wake-up
    /// (pushes from another process on the same SQLite file, a lost LISTEN connection).
    pub idle_poll: Duration,
    pub retry: RetryPolicy,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            batch_size: 8,
            idle_poll: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// Per-process settings.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// A running job whose worker has not heartbeated for this long is taken back.
    /// Raised to [`MIN_ORPHAN_TIMEOUT`] unless `allow_short_orphan_timeout` is set.
    pub orphan_timeout: Duration,
    /// Only for tests: accept an orphan timeout below one minute.
    pub allow_short_orphan_timeout: bool,
    pub heartbeat_interval: Duration,
    /// How often due deferred jobs are handed to apalis.
    pub promote_interval: Duration,
    /// How often orphans are recovered, retention applied and health metrics refreshed.
    pub maintenance_interval: Duration,
    pub retention: Retention,
    /// A log warning when a queue's oldest ready job has waited longer than this.
    pub pending_age_warning: Duration,
    /// Outcomes written per finishing transaction, at most.
    pub finish_batch: usize,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self {
            orphan_timeout: Duration::from_secs(120),
            allow_short_orphan_timeout: false,
            heartbeat_interval: Duration::from_secs(10),
            promote_interval: Duration::from_secs(1),
            maintenance_interval: Duration::from_secs(30),
            retention: Retention {
                finished: Duration::from_secs(7 * 24 * 3600),
                dead: Duration::from_secs(30 * 24 * 3600),
            },
            pending_age_warning: Duration::from_secs(300),
            finish_batch: 512,
        }
    }
}

impl SystemOptions {
    /// The orphan timeout actually used.
    pub fn effective_orphan_timeout(&self) -> Duration {
        if self.allow_short_orphan_timeout {
            self.orphan_timeout
        } else {
            self.orphan_timeout.max(MIN_ORPHAN_TIMEOUT)
        }
    }
}

/// The job machinery of one process. Dropping it without [`JobSystem::shutdown`] aborts
/// nothing in flight, but leaves claimed jobs to orphan recovery.
pub struct JobSystem {
    db: Db,
    wakeups: Wakeups,
    options: SystemOptions,
    stop: watch::Sender<bool>,
    completions: Option<mpsc::UnboundedSender<Completion>>,
    finisher: Option<JoinHandle<()>>,
    services: Vec<JoinHandle<()>>,
    runners: Vec<JoinHandle<()>>,
    host: String,
}

impl JobSystem {
    /// Starts the per-process services. On PostgreSQL the LISTEN connection is open when
    /// this returns, so no push after it can go unnoticed.
    pub async fn start(db: Db, options: SystemOptions) -> Result<JobSystem, JobsError> {
        let (stop, _) = watch::channel(false);
        let wakeups = match &db {
            Db::Sqlite(s) => s.job_wakeups.clone(),
            Db::Postgres(_) => Wakeups::new(),
        };
        let mut services = Vec::new();
        if let Db::Postgres(pool) = &db {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(PG_CHANNEL).await?;
            services.push(tokio::spawn(listen_pg(
                listener,
                wakeups.clone(),
                stop.subscribe(),
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let finisher = tokio::spawn(finish_loop(db.clone(), rx, options.finish_batch.max(1)));
        services.push(tokio::spawn(promote_loop(
            db.clone(),
            options.promote_interval,
            stop.subscribe(),
        )));
        services.push(tokio::spawn(maintenance_loop(
            db.clone(),
            options.clone(),
            stop.subscribe(),
        )));
        Ok(JobSystem {
            db,
            wakeups,
            options,
            stop,
            completions: Some(tx),
            finisher: Some(finisher),
            services,
            runners: Vec::new(),
            host: hostname(),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// Starts a runner for `H::Job::QUEUE`; returns its worker name (host, pid, queue and a
    /// random tag, unique across processes).
    pub async fn run<H: Handler>(
        &mut self,
        handler: H,
        options: RunnerOptions,
    ) -> Result<Arc<str>, JobsError> {
        let queue = <H::Job as JobKind>::QUEUE;
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let worker: Arc<str> = Arc::from(format!(
            "{}:{}:{}:{}",
            self.host,
            std::process::id(),
            queue,
            &tag[tag.len() - 6..]
        ));
        // The worker row must exist before the first fetch (jobs reference it).
        store::heartbeat(&self.db, &worker, queue).await?;
        let Some(completions) = self.completions.clone() else {
            return Err(JobsError::Queue("the job system is shutting down".into()));
        };
        let runner = Runner {
            db: self.db.clone(),
            handler: Arc::new(handler),
            worker: worker.clone(),
            options,
            heartbeat: self.options.heartbeat_interval,
            completions,
            wake: self.wakeups.subscribe(queue),
            stop: self.stop.subscribe(),
        };
        self.runners.push(tokio::spawn(runner.run()));
        tracing::info!(%worker, queue, "job runner started");
        Ok(worker)
    }

    /// Stops fetching, lets running jobs finish (up to `grace`), records their outcomes and
    /// gives unfinished claims back to the queue.
    /// Runs `service` (a loop of the process, e.g. the schedule ticker) for as long as the
    /// system runs; it is stopped at shutdown.
    pub fn spawn_service(&mut self, service: impl Future<Output = ()> + Send + 'static) {
        self.services.push(tokio::spawn(service));
    }

    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for runner in self.runners.drain(..) {
            let abort = runner.abort_handle();
            if tokio::time::timeout_at(deadline, runner).await.is_err() {
                abort.abort();
            }
        }
        self.completions = None;
        if let Some(finisher) = self.finisher.take() {
            // The finisher retries while the database is away; do not wait for ever.
            let abort = finisher.abort_handle();
            if tokio::time::timeout_at(deadline + Duration::from_secs(5), finisher)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        for service in self.services.drain(..) {
            service.abort();
            let _ = service.await;
        }
    }
}

const PG_CHANNEL: &str = "apalis::job::insert";

#[derive(serde::Deserialize)]
struct InsertNotice {
    job_type: String,
}

async fn listen_pg(
    mut listener: sqlx::postgres::PgListener,
    wakeups: Wakeups,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = listener.try_recv() => match received {
                Ok(Some(notice)) => match serde_json::from_str::<InsertNotice>(notice.payload()) {
                    Ok(n) => wakeups.wake(&n.job_type),
                    Err(_) => wakeups.wake_all(),
                },
                // The connection dropped; the next call reconnects. Anything pushed
                // meanwhile was not announced: wake everyone to look.
                Ok(None) => wakeups.wake_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "job wake-up listener failed; retrying");
                    wakeups.wake_all();
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

async fn finish_loop(db: Db, mut rx: mpsc::UnboundedReceiver<Completion>, max: usize) {
    let mut batch = Vec::with_capacity(max);
    while rx.recv_many(&mut batch, max).await > 0 {
        let mut delay = Duration::from_millis(100);
        loop {
            match store::finish(&db, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    // Losing outcomes would re-run the jobs after orphan recovery; keep
                    // trying while the database is away.
                    tracing::error!(error = %e, jobs = batch.len(), "cannot record job outcomes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        for c in &batch {
            let outcome = match c.outcome {
                Outcome::Done => "done",
                Outcome::Retry { .. } => "retry",
                Outcome::Dead { .. } => "dead",
            };
            metrics::counter!("akis_jobs_finished_total", "queue" => c.queue.clone(), "outcome" => outcome)
                .increment(1);
        }
        batch.clear();
    }
}

async fn promote_loop(db: Db, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        // Drain everything due, in bounded transactions.
        loop {
            match store::promote_due(&db, 500).await {
                Ok(500) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand deferred jobs to the queue");
                    break;
                }
            }
        }
    }
}

async fn maintenance_loop(db: Db, options: SystemOptions, mut stop: watch::Receiver<bool>) {
    let mut tick =
        tokio::time::interval(options.maintenance_interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let orphan_timeout = options.effective_orphan_timeout();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match store::recover_orphans(&db, orphan_timeout).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                jobs = n,
                "re-queued jobs of workers that stopped heartbeating"
            ),
            Err(e) => tracing::warn!(error = %e, "orphan recovery failed"),
        }
        if let Err(e) = store::purge(&db, options.retention).await {
            tracing::warn!(error = %e, "job history retention failed");
        }
        if let Err(e) = db.optimize().await {
            tracing::warn!(error = %e, "refreshing planner statistics failed");
        }
        match store::queue_health(&db).await {
            Ok(queues) => {
                for q in queues {
                    metrics::gauge!("akis_job_queue_depth", "queue" => q.queue.clone(), "state" => "pending")
                        .set(q.pending as f64);
                    metrics::gauge!("akis_job_queue_depth", "queue" => q.queue.clone(), "state" => "running")
                        .set(q.running as f64);
                    metrics::gauge!("akis_job_queue_depth", "queue" => q.queue.clone(), "state" => "scheduled")
                        .set(q.scheduled as f64);
                    let age = q.oldest_pending_secs.unwrap_or(0.0);
                    metrics::gauge!("akis_job_oldest_pending_age_seconds", "queue" => q.queue.clone())
                        .set(age);
                    if age > options.pending_age_warning.as_secs_f64() {
                        tracing::warn!(queue = %q.queue, oldest_pending_secs = age, pending = q.pending,
                            "jobs are waiting longer than expected: are workers running?");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue health query failed"),
        }
    }
}

struct Runner<H: Handler> {
    db: Db,
    handler: Arc<H>,
    worker: Arc<str>,
    options: RunnerOptions,
    heartbeat: Duration,
    completions: mpsc::UnboundedSender<Completion>,
    wake: WakeReceiver,
    stop: watch::Receiver<bool>,
}

impl<H: Handler> Runner<H> {
    async fn run(mut self) {
        let queue = <H::Job as JobKind>::QUEUE;
        let concurrency = self.options.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let heartbeat = tokio::spawn(heartbeat_loop(
            self.db.clone(),
            self.worker.clone(),
            queue,
            self.heartbeat,
            self.stop.clone(),
        ));
        let mut fetch_error_delay = Duration::from_millis(50);
        loop {
            if *self.stop.borrow() {
                break;
            }
            // Wait for at least one free slot, then take as many as are free.
            let first = tokio::select! {
                _ = self.stop.changed() => break,
                permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            };
            let mut permits = vec![first];
            while permits.len() < self.options.batch_size.max(1) {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            // Seen-marking happens before the fetch: a push after this point wakes us.
            self.wake.mark_seen();
            let fetched = match store::fetch(&self.db, queue, &self.worker, permits.len()).await {
                Ok(jobs) => {
                    fetch_error_delay = Duration::from_millis(50);
                    jobs
                }
                Err(e) => {
                    tracing::warn!(error = %e, queue, "job fetch failed");
                    drop(permits);
                    tokio::select! {
                        _ = self.stop.changed() => break,
                        _ = tokio::time::sleep(fetch_error_delay) => {}
                    }
                    fetch_error_delay = (fetch_error_delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if fetched.is_empty() {
                drop(permits);
                tokio::select! {
                    _ = self.stop.changed() => break,
                    _ = self.wake.changed() => {}
                    _ = tokio::time::sleep(self.options.idle_poll) => {}
                }
                continue;
            }
            for (job, permit) in fetched.into_iter().zip(permits) {
                let handler = self.handler.clone();
                let worker = self.worker.clone();
                let retry = self.options.retry;
                let completions = self.completions.clone();
                tokio::spawn(async move {
                    let completion = run_one(handler, job, worker, retry).await;
                    let _ = completions.send(completion);
                    drop(permit);
                });
            }
        }
        // Let running jobs finish: every slot free again means all outcomes were sent.
        let _ = slots.acquire_many(concurrency as u32).await;
        heartbeat.abort();
        if let Err(e) = store::release(&self.db, &self.worker).await {
            tracing::warn!(error = %e, worker = %self.worker, "cannot release claimed jobs");
        }
        tracing::info!(worker = %self.worker, "job runner stopped");
    }
}

async fn heartbeat_loop(
    db: Db,
    worker: Arc<str>,
    queue: &'static str,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store::heartbeat(&db, &worker, queue).await {
            tracing::warn!(error = %e, %worker, "worker heartbeat failed");
        }
    }
}

async fn run_one<H: Handler>(
    handler: Arc<H>,
    fetched: FetchedJob,
    worker: Arc<str>,
    retry: RetryPolicy,
) -> Completion {
    let queue = <H::Job as JobKind>::QUEUE;
    let started_at = Timestamp::now();
    let payload_text = String::from_utf8_lossy(&fetched.job).into_owned();
    let orphan_runs = fetched.attempts.max(0) as u32;
    let envelope: Envelope<H::Job> = match serde_json::from_slice(&fetched.job) {
        Ok(e) => e,
        Err(e) => {
            let ready_at = started_at;
            return Completion {
                id: fetched.id,
                queue: queue.to_string(),
                worker,
                payload: payload_text,
                attempts: orphan_runs + 1,
                ready_at,
                started_at,
                finished_at: Timestamp::now(),
                outcome: Outcome::Dead {
                    error: format!("the job payload does not match its kind `{queue}`: {e}"),
                },
            };
        }
    };
    let previous_runs = envelope.attempt + orphan_runs;
    let ready_at = envelope.ready_at;
    if previous_runs == 0 {
        let latency = started_at.as_datetime() - ready_at.as_datetime();
        let secs = latency.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        metrics::histogram!("akis_job_start_latency_seconds", "queue" => queue).record(secs);
    }
    let run = previous_runs + 1;
    let ctx = JobContext {
        id: fetched.id,
        attempt: run,
        queue,
        worker: worker.clone(),
        ready_at,
        started_at,
    };
    let clock = Instant::now();
    let task = tokio::spawn({
        let handler = handler.clone();
        async move { handler.run(ctx, envelope.job).await }
    });
    let abort = task.abort_handle();
    let result = match tokio::time::timeout(<H::Job as JobKind>::TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(JobError::transient(if join.is_panic() {
            "the handler panicked".to_string()
        } else {
            "the handler was cancelled".to_string()
        })),
        Err(_) => {
            abort.abort();
            Err(JobError::transient(format!(
                "timed out after {:?}",
                <H::Job as JobKind>::TIMEOUT
            )))
        }
    };
    metrics::histogram!("akis_job_run_seconds", "queue" => queue)
        .record(clock.elapsed().as_secs_f64());
    let finished_at = Timestamp::now();
    let outcome = match result {
        Ok(()) => Outcome::Done,
        Err(JobError::Permanent(reason)) => {
            tracing::warn!(job = %fetched.id, queue, %reason, "job failed permanently");
            Outcome::Dead { error: reason }
        }
        Err(JobError::Transient {
            reason,
            retry_after,
        }) => {
            if run >= <H::Job as JobKind>::MAX_ATTEMPTS {
                tracing::warn!(job = %fetched.id, queue, %reason, runs = run, "job is dead after its last attempt");
                Outcome::Dead {
                    error: format!("gave up after {run} attempts: {reason}"),
                }
            } else {
                let delay = retry_after.unwrap_or_else(|| retry.delay(run));
                let due_at = Timestamp::from_datetime(
                    finished_at.as_datetime()
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                );
                tracing::info!(job = %fetched.id, queue, %reason, runs = run, retry_in = ?delay, "job will be retried");
                let mut rewritten: Envelope<serde_json::Value> =
                    match serde_json::from_slice(&fetched.job) {
                        Ok(e) => e,
                        Err(e) => {
                            return Completion {
                                id: fetched.id,
                                queue: queue.to_string(),
                                worker,
                                payload: payload_text,
                                attempts: run,
                                ready_at,
                                started_at,
                                finished_at,
                                outcome: Outcome::Dead {
                                    error: format!("cannot re-encode for retry: {e}"),
                                },
                            };
                        }
                    };
                // Orphan re-runs are folded into the carried count: the new live row starts
                // with apalis attempts = 0.
                rewritten.attempt = run;
                rewritten.ready_at = due_at;
                rewritten.last_error = Some(reason.clone());
                let payload =
                    serde_json::to_string(&rewritten).unwrap_or_else(|_| payload_text.clone());
                Outcome::Retry {
                    due_at,
                    payload,
                    attempt: run,
                    error: reason,
                }
            }
        }
    };
    Completion {
        id: fetched.id,
        queue: queue.to_string(),
        worker,
        payload: payload_text,
        attempts: run,
        ready_at,
        started_at,
        finished_at,
        outcome,
    }
}

fn hostname() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(name) = std::fs::read_to_string(path) {
            let name = name.trim();
            if !name.is_empty() {
                return name
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .take(64)
                    .collect();
            }
        }
    }
    "localhost".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let policy = RetryPolicy::default();
        for run in 1..=12 {
            let full = Duration::from_secs(60)
                .saturating_mul(1 << (run - 1))
                .min(Duration::from_secs(6 * 3600));
            let d = policy.delay(run);
            assert!(
                d >= full / 2 && d <= full,
                "run {run}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(policy.delay(1) >= Duration::from_secs(30));
        assert!(policy.delay(40) <= Duration::from_secs(6 * 3600));
    }

    #[test]
    fn orphan_recovery_never_drops_below_a_minute_in_production() {
        let options = SystemOptions {
            orphan_timeout: Duration::from_secs(2),
            ..SystemOptions::default()
        };
        assert_eq!(options.effective_orphan_timeout(), MIN_ORPHAN_TIMEOUT);
        let tests = SystemOptions {
            allow_short_orphan_timeout: true,
            ..options
        };
        assert_eq!(tests.effective_orphan_timeout(), Duration::from_secs(2));
    }
}
