//! Jobs: transactional enqueue, prompt wake-up, history, retries, dead jobs, deferred
//! work, the effect ledger, and the webhook / Conversions API / WhatsApp handlers against a
//! fake HTTP server. Every test runs on SQLite and PostgreSQL.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akis_engine::jobs::effects::{self, Claim, EffectKey, EffectState};
use akis_engine::jobs::store::{self, JobFilter, JobState};
use akis_engine::jobs::{
    ConversionEventJob, EnqueueOptions, Enqueued, Handler, JobContext, JobError, JobId, JobKind,
    JobSystem, RetryPolicy, RunnerOptions, SystemOptions, WebhookJob, WhatsappTemplateJob,
};
use akis_engine::storage::Db;
use akis_engine::transaction;
use akis_engine::types::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::helpers::{ChildGuard, eventually};
use crate::{both_backends, both_databases};

/// Upper bound for anything a test waits on.
const DEADLINE: Duration = Duration::from_secs(10);

/// A test job: fails transiently `fail_times` times, or permanently when asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    n: u32,
    #[serde(default)]
    fail_times: u32,
    #[serde(default)]
    permanent: bool,
}

impl JobKind for Probe {
    const QUEUE: &'static str = "test_probe";
    const MAX_ATTEMPTS: u32 = 3;
}

#[derive(Debug, Clone)]
struct Ran {
    id: JobId,
    n: u32,
    attempt: u32,
    started_at: Timestamp,
}

struct ProbeHandler {
    ran: mpsc::UnboundedSender<Ran>,
}

impl Handler for ProbeHandler {
    type Job = Probe;

    async fn run(&self, ctx: JobContext, job: Probe) -> Result<(), JobError> {
        let _ = self.ran.send(Ran {
            id: ctx.id,
            n: job.n,
            attempt: ctx.attempt,
            started_at: ctx.started_at,
        });
        if job.permanent {
            return Err(JobError::permanent("recipient does not exist"));
        }
        if ctx.attempt <= job.fail_times {
            return Err(JobError::transient(format!(
                "remote busy (attempt {})",
                ctx.attempt
            )));
        }
        Ok(())
    }
}

fn test_system_options() -> SystemOptions {
    SystemOptions {
        promote_interval: Duration::from_millis(50),
        maintenance_interval: Duration::from_secs(3600),
        ..SystemOptions::default()
    }
}

/// Runner options where only a wake-up can start an idle runner promptly.
fn wake_only_runner() -> RunnerOptions {
    RunnerOptions {
        concurrency: 4,
        batch_size: 4,
        idle_poll: Duration::from_secs(3600),
        retry: RetryPolicy {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
    }
}

async fn start_probe(db: &Db) -> (JobSystem, mpsc::UnboundedReceiver<Ran>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut system = JobSystem::start(db.clone(), test_system_options())
        .await
        .expect("job system starts");
    system
        .run(ProbeHandler { ran: tx }, wake_only_runner())
        .await
        .expect("runner starts");
    (system, rx)
}

async fn push(db: &Db, probe: Probe) -> JobId {
    transaction!(db, tx => {
        akis_engine::jobs::enqueue(&mut *tx, &probe).await
    })
    .expect("enqueue")
}

async fn next_run(rx: &mut mpsc::UnboundedReceiver<Ran>, within: Duration) -> Ran {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a job started before the deadline")
        .expect("runner alive")
}

async fn state_of(db: &Db, id: JobId) -> Option<JobState> {
    store::find_job(db, id)
        .await
        .expect("find job")
        .map(|j| j.state)
}

both_databases! {
    async fn a_job_pushed_to_an_idle_worker_starts_within_five_seconds(db) {
        let (system, mut ran) = start_probe(&db).await;
        // Twenty rounds: after each job the runner goes idle again, and only a wake-up
        // (idle poll is an hour) can start the next one.
        for n in 0..20 {
            let id = push(&db, Probe { n, fail_times: 0, permanent: false }).await;
            let run = next_run(&mut ran, Duration::from_secs(5)).await;
            assert_eq!((run.id, run.n), (id, n));
        }
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn finished_jobs_leave_the_live_table_and_appear_in_history(db) {
        let (system, mut ran) = start_probe(&db).await;
        let id = push(&db, Probe { n: 7, fail_times: 0, permanent: false }).await;
        next_run(&mut ran, DEADLINE).await;
        eventually("the job reaches history", || async { state_of(&db, id).await == Some(JobState::Done) }).await;
        let live: i64 = match &db {
            Db::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM Jobs").fetch_one(&s.reader).await,
            Db::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs").fetch_one(p).await,
        }.expect("count live");
        assert_eq!(live, 0, "the live table keeps no finished jobs");
        let done = store::list_jobs(&db, &JobFilter { queue: Some("test_probe".into()), state: Some(JobState::Done), limit: 10 })
            .await.expect("list");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, id);
        assert_eq!(done[0].attempts, 1);
        assert_eq!(done[0].job["n"], 7);
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_rolled_back_transaction_leaves_no_job(db) {
        let probe = Probe { n: 1, fail_times: 0, permanent: false };
        let mut pushed = None;
        let result: Result<(), sqlx::Error> = transaction!(&db, tx => {
            pushed = Some(akis_engine::jobs::enqueue(&mut *tx, &probe).await?);
            Err(sqlx::Error::Protocol("the card move was refused".into()))
        });
        assert!(result.is_err());
        let id = pushed.expect("the push itself succeeded");
        assert_eq!(state_of(&db, id).await, None, "rolled back with its transaction");
        let committed = push(&db, probe).await;
        assert_eq!(state_of(&db, committed).await, Some(JobState::Pending));
    }
}

both_databases! {
    async fn a_duplicate_idempotency_key_is_a_no_op_that_keeps_the_transaction(db) {
        let probe = Probe { n: 1, fail_times: 0, permanent: false };
        let key = EnqueueOptions { idempotency_key: Some("move-42".into()), run_at: None };
        let (first, second) = transaction!(&db, tx => {
            let first = akis_engine::jobs::enqueue_with(&mut *tx, &probe, key.clone()).await?;
            let second = akis_engine::jobs::enqueue_with(&mut *tx, &probe, key.clone()).await?;
            // On PostgreSQL a failed INSERT would abort the transaction: this proves it did not.
            sqlx::query("INSERT INTO app_meta (key, value, updated_at) VALUES ('after', 'x', $1)")
                .bind(Timestamp::now())
                .execute(&mut *tx)
                .await?;
            Ok::<_, sqlx::Error>((first, second))
        })
        .expect("the transaction commits");
        assert!(matches!(first, Enqueued::Queued(_)));
        assert_eq!(second, Enqueued::Duplicate);
        let pending = store::list_jobs(&db, &JobFilter { state: Some(JobState::Pending), ..JobFilter::default() })
            .await.expect("list");
        assert_eq!(pending.len(), 1);
    }
}

both_databases! {
    async fn a_transient_failure_is_retried_then_succeeds(db) {
        let (system, mut ran) = start_probe(&db).await;
        let id = push(&db, Probe { n: 3, fail_times: 1, permanent: false }).await;
        let first = next_run(&mut ran, DEADLINE).await;
        let second = next_run(&mut ran, DEADLINE).await;
        assert_eq!((first.id, first.attempt), (id, 1));
        assert_eq!((second.id, second.attempt), (id, 2));
        eventually("the retried job is done", || async { state_of(&db, id).await == Some(JobState::Done) }).await;
        let job = store::find_job(&db, id).await.expect("find").expect("exists");
        assert_eq!(job.attempts, 2);
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_retry_backoff_waits_in_the_deferred_table_not_the_live_queue(db) {
        let (tx, mut ran) = mpsc::unbounded_channel();
        let mut system = JobSystem::start(db.clone(), test_system_options()).await.expect("start");
        system.run(ProbeHandler { ran: tx }, RunnerOptions {
            retry: RetryPolicy { base: Duration::from_secs(3600), max: Duration::from_secs(3600) },
            ..wake_only_runner()
        }).await.expect("runner");
        let id = push(&db, Probe { n: 1, fail_times: 1, permanent: false }).await;
        next_run(&mut ran, DEADLINE).await;
        eventually("the job is scheduled for its retry", || async { state_of(&db, id).await == Some(JobState::Scheduled) }).await;
        let job = store::find_job(&db, id).await.expect("find").expect("exists");
        assert_eq!(job.attempts, 1);
        assert_eq!(job.last_error.as_deref(), Some("remote busy (attempt 1)"));
        let wait = job.at.as_datetime() - Timestamp::now().as_datetime();
        assert!(wait > chrono::Duration::minutes(29) && wait <= chrono::Duration::minutes(60), "back-off {wait}");
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_permanent_failure_goes_dead_with_its_reason_and_can_be_retried(db) {
        let (system, mut ran) = start_probe(&db).await;
        let id = push(&db, Probe { n: 5, fail_times: 0, permanent: true }).await;
        next_run(&mut ran, DEADLINE).await;
        eventually("the job is dead", || async { state_of(&db, id).await == Some(JobState::Dead) }).await;
        let dead = store::list_jobs(&db, &JobFilter { queue: Some("test_probe".into()), state: Some(JobState::Dead), limit: 10 })
            .await.expect("list");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("recipient does not exist"));
        assert_eq!(dead[0].attempts, 1, "a permanent error is not retried");

        assert!(store::retry_dead(&db, id).await.expect("retry"));
        let again = next_run(&mut ran, DEADLINE).await;
        assert_eq!((again.id, again.attempt), (id, 1), "a retried dead job starts afresh");
        assert!(!store::retry_dead(&db, JobId::new()).await.expect("retry unknown"));
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_job_is_dead_after_its_last_attempt(db) {
        let (system, mut ran) = start_probe(&db).await;
        let id = push(&db, Probe { n: 9, fail_times: 99, permanent: false }).await;
        for attempt in 1..=Probe::MAX_ATTEMPTS {
            let run = next_run(&mut ran, DEADLINE).await;
            assert_eq!(run.attempt, attempt);
        }
        eventually("the job is dead", || async { state_of(&db, id).await == Some(JobState::Dead) }).await;
        let job = store::find_job(&db, id).await.expect("find").expect("exists");
        assert_eq!(job.attempts, Probe::MAX_ATTEMPTS);
        let reason = job.last_error.unwrap_or_default();
        assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_future_job_waits_in_the_deferred_table_and_runs_when_due(db) {
        let (system, mut ran) = start_probe(&db).await;
        let due = Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::milliseconds(1500));
        let enqueued = transaction!(&db, tx => {
            akis_engine::jobs::enqueue_with(&mut *tx, &Probe { n: 11, fail_times: 0, permanent: false },
                EnqueueOptions { run_at: Some(due), idempotency_key: Some("reminder-1".into()) }).await
        }).expect("schedule");
        let Enqueued::Scheduled(id) = enqueued else { panic!("expected a scheduled job, got {enqueued:?}") };
        let again = transaction!(&db, tx => {
            akis_engine::jobs::enqueue_with(&mut *tx, &Probe { n: 11, fail_times: 0, permanent: false },
                EnqueueOptions { run_at: Some(due), idempotency_key: Some("reminder-1".into()) }).await
        }).expect("schedule again");
        assert_eq!(again, Enqueued::Duplicate);
        let run = next_run(&mut ran, DEADLINE).await;
        assert_eq!(run.id, id);
        assert!(run.started_at >= due, "started {} before due {}", run.started_at, due);
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn pending_and_scheduled_jobs_can_be_cancelled(db) {
        let pending = push(&db, Probe { n: 1, fail_times: 0, permanent: false }).await;
        let due = Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::days(30));
        let scheduled = transaction!(&db, tx => {
            akis_engine::jobs::enqueue_with(&mut *tx, &Probe { n: 2, fail_times: 0, permanent: false },
                EnqueueOptions { run_at: Some(due), idempotency_key: None }).await
        }).expect("schedule").id().expect("scheduled");
        assert_eq!(state_of(&db, scheduled).await, Some(JobState::Scheduled));
        assert!(store::cancel(&db, pending).await.expect("cancel"));
        assert!(store::cancel(&db, scheduled).await.expect("cancel"));
        assert_eq!(state_of(&db, pending).await, Some(JobState::Cancelled));
        assert_eq!(state_of(&db, scheduled).await, Some(JobState::Cancelled));
        assert!(!store::cancel(&db, pending).await.expect("cancel twice"));
        // A cancelled deferred job is never handed over.
        assert_eq!(store::promote_due(&db, 100).await.expect("promote"), 0);
    }
}

both_databases! {
    async fn a_dead_workers_running_job_returns_to_the_queue(db) {
        let id = push(&db, Probe { n: 1, fail_times: 0, permanent: false }).await;
        store::heartbeat(&db, "crashed-host:1:test_probe:x", "test_probe").await.expect("register");
        let claimed = store::fetch(&db, "test_probe", "crashed-host:1:test_probe:x", 10).await.expect("fetch");
        assert_eq!(claimed.len(), 1);
        assert_eq!(state_of(&db, id).await, Some(JobState::Running));
        // A live worker's job stays put…
        assert_eq!(store::recover_orphans(&db, Duration::from_secs(60)).await.expect("recover"), 0);
        // …and one whose worker stopped heartbeating an hour ago comes back.
        match &db {
            Db::Sqlite(s) => sqlx::query("UPDATE Workers SET last_seen = last_seen - 3600").execute(&s.writer).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query("UPDATE apalis.workers SET last_seen = now() - interval '1 hour'").execute(p).await.map(|_| ()),
        }.expect("age the heartbeat");
        assert_eq!(store::recover_orphans(&db, Duration::from_secs(60)).await.expect("recover"), 1);
        let (system, mut ran) = start_probe(&db).await;
        let run = next_run(&mut ran, DEADLINE).await;
        assert_eq!((run.id, run.attempt), (id, 2), "the interrupted run counts as an attempt");
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn the_effect_ledger_never_blindly_repeats_an_effect(db) {
        let job = JobId::new();
        let key = EffectKey::new("v1:card:event:0");
        assert_eq!(effects::claim(&db, &key, "whatsapp_template", job).await.expect("claim"), Claim::Fresh);
        // Died after claiming, before calling: the next run proceeds.
        assert_eq!(effects::claim(&db, &key, "whatsapp_template", job).await.expect("claim"), Claim::Claimed);
        assert!(effects::mark_sending(&db, &key).await.expect("sending"));
        // Died during the call: the next run learns it.
        assert_eq!(effects::claim(&db, &key, "whatsapp_template", job).await.expect("claim"), Claim::Sending { attempts: 1 });
        assert!(effects::mark_unknown(&db, &key, "died mid-call").await.expect("unknown"));
        assert_eq!(effects::claim(&db, &key, "whatsapp_template", job).await.expect("claim"), Claim::Unknown);
        let unknown = effects::list(&db, EffectState::Unknown, 10).await.expect("list");
        assert_eq!(unknown.len(), 1);
        assert!(effects::resolve(&db, &key, true, "customer confirmed receipt").await.expect("resolve"));
        assert!(matches!(effects::claim(&db, &key, "whatsapp_template", job).await.expect("claim"), Claim::Done { .. }));
        // A settled effect cannot go back to sending.
        assert!(!effects::mark_sending(&db, &key).await.expect("sending"));
        let effect = effects::get(&db, &key).await.expect("get").expect("exists");
        assert_eq!(effect.state, EffectState::Done);
        assert_eq!(effect.attempts, 1);
    }
}

// ---------------------------------------------------------------------------------------
// Handlers against a fake HTTP server.

#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
}

/// A local HTTP server that records every request and answers from a script (then 200
/// with `default_body`).
struct FakeServer {
    url: String,
    requests: mpsc::UnboundedReceiver<Recorded>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    async fn start(script: Vec<(u16, String)>, default_body: String) -> FakeServer {
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let tx = tx.clone();
            let script = script.clone();
            let default_body = default_body.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let _ = tx.send(Recorded {
                    path: parts.uri.path().to_string(),
                    headers: parts.headers,
                    body,
                });
                let (status, text) = script
                    .lock()
                    .map(|mut s| s.pop_front())
                    .ok()
                    .flatten()
                    .unwrap_or((200, default_body));
                (
                    axum::http::StatusCode::from_u16(status)
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    text,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServer {
            url,
            requests: rx,
            _task: task,
        }
    }

    async fn next(&mut self) -> Recorded {
        tokio::time::timeout(DEADLINE, self.requests.recv())
            .await
            .expect("a request arrived before the deadline")
            .expect("server alive")
    }

    fn assert_no_more(&mut self) {
        assert!(
            self.requests.try_recv().is_err(),
            "unexpected extra request"
        );
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/meta/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn worker_config(graph: &str) -> akis_engine::config::Config {
    let mut config = akis_engine::config::Config::default();
    config.jobs.graph_base_url = graph.to_string();
    config.jobs.meta_access_token = Some(akis_engine::config::Secret::new("test-token"));
    config.jobs.meta_pixel_id = Some("1234567890".into());
    config.jobs.whatsapp_phone_number_id = Some("106540352242922".into());
    config.jobs.webhook_secret = Some(akis_engine::config::Secret::new("whsec-test"));
    config
}

async fn effect_state(db: &Db, key: &EffectKey) -> Option<EffectState> {
    effects::get(db, key)
        .await
        .expect("get effect")
        .map(|e| e.state)
}

both_databases! {
    async fn a_webhook_is_posted_once_with_a_verifiable_signature(db) {
        let mut server = FakeServer::start(vec![], "{}".into()).await;
        let system = akis_worker::start(db.clone(), &worker_config(&server.url), crate::helpers::live_definitions()).await.expect("workers");
        let key = EffectKey::new("v1:card-1:event-1:0");
        let job = WebhookJob {
            effect_key: key.clone(),
            url: format!("{}/hooks/crm", server.url),
            event: "card.moved".into(),
            data: serde_json::json!({"card": "card-1", "to": "randevu"}),
        };
        let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job).await }).expect("enqueue");
        let request = server.next().await;
        assert_eq!(request.path, "/hooks/crm");
        let signature = request.headers.get("x-akis-signature-256").and_then(|v| v.to_str().ok()).expect("signed");
        assert!(akis_worker::webhook::verify(b"whsec-test", &request.body, signature));
        assert!(!akis_worker::webhook::verify(b"wrong-secret", &request.body, signature));
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["event"], "card.moved");
        assert_eq!(body["data"]["to"], "randevu");
        assert_eq!(body["id"], key.derived_id());
        eventually("the job is done", || async { state_of(&db, id).await == Some(JobState::Done) }).await;
        assert_eq!(effect_state(&db, &key).await, Some(EffectState::Done));
        server.assert_no_more();
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_conversion_event_has_the_documented_shape_and_resends_with_the_same_event_id(db) {
        // First answer: a bare 502 (did Meta record it? unknown) → resend with the same id.
        let mut server = FakeServer::start(vec![(502, "bad gateway".into())], r#"{"events_received":1,"fbtrace_id":"AbC"}"#.into()).await;
        let mut config = worker_config(&server.url);
        config.jobs.job_concurrency = 2;
        let mut system = JobSystem::start(db.clone(), test_system_options()).await.expect("start");
        system.run(akis_worker::conversion_event::ConversionEventHandler {
            db: db.clone(),
            graph: akis_worker::graph::Graph::from_config(akis_worker::graph::http_client().expect("client"), &config.jobs),
            pixel_id: config.jobs.meta_pixel_id.clone(),
        }, wake_only_runner()).await.expect("runner");
        let key = EffectKey::new("v1:card-2:event-9:1");
        let job = ConversionEventJob {
            effect_key: key.clone(),
            customer_id: None,
            event_name: "Purchase".into(),
            event_time: Timestamp::parse("2026-11-25T10:00:00Z").expect("time"),
            emails: vec!["  John_Smith@Gmail.com ".into()],
            phones: vec!["0532 123 45 67".into()],
            first_name: None,
            last_name: Some("  Eg  ".into()),
            external_id: None,
            value_minor: Some(10020),
            currency: Some("TRY".into()),
            lead_id: None,
        };
        let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job).await }).expect("enqueue");
        let first = server.next().await;
        let second = server.next().await;
        assert_eq!(first.path, "/v21.0/1234567890/events");
        assert_eq!(first.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer test-token"));
        let a: serde_json::Value = serde_json::from_slice(&first.body).expect("json");
        let b: serde_json::Value = serde_json::from_slice(&second.body).expect("json");
        assert_eq!(a, b, "the resend is the same event");
        let event = &a["data"][0];
        assert_eq!(event["event_id"], key.derived_id());
        assert_eq!(event["event_name"], "Purchase");
        assert_eq!(event["event_time"], 1_795_600_800);
        assert_eq!(event["user_data"]["em"][0], "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f");
        assert_eq!(event["user_data"]["ph"][0], "7e3308159fc7cca243cef8a01acc25f18cd62d0d1ad92a6d38c3107d9aa3d8cc");
        assert_eq!(event["user_data"]["ln"], "d8c59e8348e0c03f9d2105eed9791438f9aea9586381b79deadbc857eef89d78");
        assert_eq!(event["custom_data"]["value"], 100.2);
        assert_eq!(event["custom_data"]["currency"], "TRY");
        assert_eq!(event["opt_out"], false);
        eventually("the job is done", || async { state_of(&db, id).await == Some(JobState::Done) }).await;
        let effect = effects::get(&db, &key).await.expect("get").expect("exists");
        assert_eq!(effect.state, EffectState::Done);
        assert_eq!(effect.attempts, 2);
        server.assert_no_more();
        system.shutdown(Duration::from_secs(5)).await;
    }
}

fn whatsapp_job(key: &EffectKey) -> WhatsappTemplateJob {
    WhatsappTemplateJob {
        effect_key: key.clone(),
        customer_id: None,
        to: "+90 (532) 123-45-67".into(),
        template: "randevu_hatirlatma".into(),
        language: "tr".into(),
        body_parameters: vec!["Ayşe".into(), "26 Kasım 10:00".into()],
    }
}

both_databases! {
    async fn a_whatsapp_template_is_sent_once_and_its_message_id_recorded(db) {
        let mut server = FakeServer::start(vec![], fixture("whatsapp_send_success_response.json")).await;
        let system = akis_worker::start(db.clone(), &worker_config(&server.url), crate::helpers::live_definitions()).await.expect("workers");
        let key = EffectKey::new("v1:card-3:event-1:2");
        let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &whatsapp_job(&key)).await }).expect("enqueue");
        let request = server.next().await;
        assert_eq!(request.path, "/v21.0/106540352242922/messages");
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["messaging_product"], "whatsapp");
        assert_eq!(body["to"], "905321234567");
        assert_eq!(body["type"], "template");
        assert_eq!(body["template"]["language"]["code"], "tr");
        assert_eq!(body["template"]["components"][0]["parameters"][1]["text"], "26 Kasım 10:00");
        assert_eq!(body["biz_opaque_callback_data"], key.as_str());
        eventually("the job is done", || async { state_of(&db, id).await == Some(JobState::Done) }).await;
        let effect = effects::get(&db, &key).await.expect("get").expect("exists");
        assert_eq!(effect.state, EffectState::Done);
        assert_eq!(effect.external_id.as_deref(), Some("wamid.gBGGSFcCNEOPAgkO_KJ55r4w_ww"));
        server.assert_no_more();
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn an_expired_token_kills_a_whatsapp_job_at_once_with_its_reason(db) {
        let mut server = FakeServer::start(vec![(401, fixture("whatsapp_error_response_190_expired_token.json"))], "{}".into()).await;
        let system = akis_worker::start(db.clone(), &worker_config(&server.url), crate::helpers::live_definitions()).await.expect("workers");
        let key = EffectKey::new("v1:card-4:event-1:0");
        let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &whatsapp_job(&key)).await }).expect("enqueue");
        server.next().await;
        eventually("the job is dead", || async { state_of(&db, id).await == Some(JobState::Dead) }).await;
        let job = store::find_job(&db, id).await.expect("find").expect("exists");
        assert!(job.last_error.as_deref().unwrap_or_default().contains("Graph error 190"), "{:?}", job.last_error);
        assert_eq!(effect_state(&db, &key).await, Some(EffectState::Failed));
        server.assert_no_more();
        system.shutdown(Duration::from_secs(5)).await;
    }
}

both_databases! {
    async fn a_whatsapp_send_interrupted_mid_call_is_never_resent(db) {
        let mut server = FakeServer::start(vec![], fixture("whatsapp_send_success_response.json")).await;
        let key = EffectKey::new("v1:card-5:event-1:0");
        // A previous run committed `sending` and died during the call.
        effects::claim(&db, &key, "whatsapp_template", JobId::new()).await.expect("claim");
        assert!(effects::mark_sending(&db, &key).await.expect("sending"));
        let system = akis_worker::start(db.clone(), &worker_config(&server.url), crate::helpers::live_definitions()).await.expect("workers");
        let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &whatsapp_job(&key)).await }).expect("enqueue");
        eventually("the job ends", || async { state_of(&db, id).await == Some(JobState::Dead) }).await;
        assert_eq!(effect_state(&db, &key).await, Some(EffectState::Unknown));
        server.assert_no_more();
        system.shutdown(Duration::from_secs(5)).await;
    }
}

/// Three `akis worker` processes on one PostgreSQL queue, 1,000 webhook jobs: every
/// delivery reaches the receiver exactly once and every effect is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_on_postgres_deliver_every_effect_exactly_once() {
    let Some(guard) = crate::helpers::fresh_database(akis_engine::storage::Backend::Postgres).await
    else {
        return;
    };
    let db = crate::helpers::open(&guard).await;
    let mut server = FakeServer::start(vec![], "{}".into()).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(ChildGuard(
            std::process::Command::new(env!("CARGO_BIN_EXE_akis"))
                .arg("worker")
                .env("AKIS_DATABASE_URL", guard.url())
                .env("AKIS_WEBHOOK_SECRET", "whsec-test")
                .env("AKIS_LOG", "warn")
                .env("AKIS_JOB_CONCURRENCY", "8")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("akis worker starts"),
        ));
    }
    const JOBS: usize = 1000;
    for chunk in 0..(JOBS / 100) {
        transaction!(&db, tx => {
            for i in 0..100 {
                let n = chunk * 100 + i;
                akis_engine::jobs::enqueue(&mut *tx, &WebhookJob {
                    effect_key: EffectKey::new(format!("multi:{n}")),
                    url: format!("{}/hook", server.url),
                    event: "card.moved".into(),
                    data: serde_json::json!({ "n": n }),
                }).await?;
            }
            Ok::<_, sqlx::Error>(())
        })
        .expect("enqueue");
    }
    let mut deliveries = std::collections::HashMap::<String, usize>::new();
    for _ in 0..JOBS {
        let request = server.next().await;
        let id = request
            .headers
            .get("x-akis-delivery")
            .and_then(|v| v.to_str().ok())
            .expect("delivery id")
            .to_string();
        *deliveries.entry(id).or_default() += 1;
    }
    assert_eq!(deliveries.len(), JOBS, "every job delivered");
    let Db::Postgres(pool) = &db else {
        unreachable!("postgres test")
    };
    // Every delivery has been received; the workers' finishing transactions may still be
    // in flight (a loaded machine, or a run whose lease lapsed and is finished by another).
    let in_history = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_history WHERE state = 'done'")
            .fetch_one(pool)
            .await
            .expect("count");
        n as usize == JOBS
    };
    if tokio::time::timeout(Duration::from_secs(60), async {
        while !in_history().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_err()
    {
        let history: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM job_history GROUP BY state")
                .fetch_all(pool)
                .await
                .expect("history");
        let live: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM apalis.jobs GROUP BY status")
                .fetch_all(pool)
                .await
                .expect("live");
        panic!("not every job reached history in 60 s: history {history:?}, live {live:?}");
    }
    let (effects_done, max_attempts): (i64, Option<i32>) = sqlx::query_as(
        "SELECT COUNT(*), MAX(attempts) FROM job_effects WHERE state = 'done' AND effect_key LIKE 'multi:%'",
    )
    .fetch_one(pool)
    .await
    .expect("effects");
    assert_eq!(effects_done as usize, JOBS);
    assert_eq!(max_attempts, Some(1), "no effect was sent twice");
    let ran_by: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT worker) FROM job_history")
        .fetch_one(pool)
        .await
        .expect("workers");
    assert!(ran_by >= 2, "the work was shared ({ran_by} worker(s))");
    server.assert_no_more();
    drop(workers);
    db.close().await;
    drop(guard);
}

crate::both_backends! {
    async fn admins_see_queue_health_and_prometheus_metrics(app) {
        let rep = app.login_as("sales").await;
        assert_eq!(rep.get("/api/admin/metrics").await.status(), reqwest::StatusCode::FORBIDDEN);
        assert_eq!(rep.get("/api/admin/jobs/health").await.status(), reqwest::StatusCode::FORBIDDEN);
        let admin = app.login_as("admin").await;
        let health = admin.get("/api/admin/jobs/health").await;
        assert_eq!(health.status(), reqwest::StatusCode::OK);
        let health: serde_json::Value = health.json().await.expect("json");
        assert!(health.is_array());
        metrics::counter!("akis_test_probe_total").increment(1);
        let metrics = admin.get("/api/admin/metrics").await;
        assert_eq!(metrics.status(), reqwest::StatusCode::OK);
        assert!(metrics.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
        let text = metrics.text().await.expect("text");
        assert!(text.contains("akis_test_probe_total"), "{text}");
    }
}

crate::both_backends! {
    async fn admins_list_retry_and_cancel_jobs_and_resolve_unknown_effects(app) {
        let admin = app.login_as("admin").await;
        let rep = app.login_as("sales").await;
        assert_eq!(rep.get("/api/admin/jobs").await.status(), reqwest::StatusCode::FORBIDDEN);
        // A pending job (no workers run in the test server) can be cancelled once.
        let job = WebhookJob {
            effect_key: EffectKey::new("admin-test:1"),
            url: "http://127.0.0.1:9/hook".into(),
            event: "card.moved".into(),
            data: serde_json::json!({}),
        };
        let id = transaction!(&app.db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job).await }).expect("enqueue");
        let pending: serde_json::Value = admin.get("/api/admin/jobs?queue=webhook&state=pending").await.json().await.unwrap();
        assert_eq!(pending[0]["id"], serde_json::json!(id.to_string()));
        let r = admin.post(&format!("/api/admin/jobs/{id}/cancel"), serde_json::json!({})).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["state"], "cancelled");
        let again = admin.post(&format!("/api/admin/jobs/{id}/cancel"), serde_json::json!({})).await;
        assert_eq!(again.status(), reqwest::StatusCode::CONFLICT);
        assert_eq!(admin.post(&format!("/api/admin/jobs/{id}/retry"), serde_json::json!({})).await.status(), reqwest::StatusCode::CONFLICT);
        // A job that dies (no webhook secret configured) can be retried.
        let job2 = WebhookJob { effect_key: EffectKey::new("admin-test:2"), ..job.clone() };
        let id2 = transaction!(&app.db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job2).await }).expect("enqueue");
        let system = akis_worker::start(app.db.clone(), &app.config, app.definitions.clone()).await.expect("workers");
        eventually("the job dies", || async { state_of(&app.db, id2).await == Some(JobState::Dead) }).await;
        system.shutdown(Duration::from_secs(5)).await;
        let dead: serde_json::Value = admin.get(&format!("/api/admin/jobs/{id2}")).await.json().await.unwrap();
        assert!(dead["last_error"].as_str().unwrap().contains("AKIS_WEBHOOK_SECRET"), "{dead}");
        let r = admin.post(&format!("/api/admin/jobs/{id2}/retry"), serde_json::json!({})).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(state_of(&app.db, id2).await, Some(JobState::Pending));
        // An effect interrupted mid-call is resolved by a person, with a reason.
        let key = EffectKey::new("admin-test:wa");
        assert_eq!(effects::claim(&app.db, &key, "whatsapp_template", id2).await.unwrap(), Claim::Fresh);
        effects::mark_sending(&app.db, &key).await.unwrap();
        effects::mark_unknown(&app.db, &key, "connection reset mid-call").await.unwrap();
        let unknown: serde_json::Value = admin.get("/api/admin/effects").await.json().await.unwrap();
        assert_eq!(unknown[0]["effect_key"], "admin-test:wa");
        let r = admin.post("/api/admin/effects/resolve", serde_json::json!({"effect_key": "admin-test:wa", "happened": true, "note": ""})).await;
        assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
        let r = admin.post("/api/admin/effects/resolve", serde_json::json!({"effect_key": "admin-test:wa", "happened": true, "note": "Müşteri mesajı aldığını söyledi"})).await;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(effect_state(&app.db, &key).await, Some(EffectState::Done));
        let r = admin.post("/api/admin/effects/resolve", serde_json::json!({"effect_key": "admin-test:wa", "happened": false, "note": "x"})).await;
        assert_eq!(r.status(), reqwest::StatusCode::CONFLICT);
        let audit: serde_json::Value = admin.get("/api/admin/audit?action=effect.resolved").await.json().await.unwrap();
        assert!(!audit.as_array().map(|a| a.is_empty()).unwrap_or(true) || !audit["entries"].as_array().map(|a| a.is_empty()).unwrap_or(true), "{audit}");
    }
}

both_databases! {
    async fn a_meta_lead_is_fetched_once_and_taken_in_through_intake(db) {
        let lead = fixture("graph_lead_response.json")
            .replace("<LEAD_ID>", "123123123123")
            .replace("<AD_ID>", "998877")
            .replace("<FORM_ID>", "445566")
            .replace("\"name\": \"email\"", "\"name\": \"phone_number\",\n    \"values\": [\"+90 532 610 00 01\"]\n  },\n  {\n    \"name\": \"email\"");
        let mut server = FakeServer::start(vec![], lead).await;
        let system = akis_worker::start(db.clone(), &worker_config(&server.url), crate::helpers::live_definitions()).await.expect("workers");
        let job = akis_engine::jobs::LeadFetchJob {
            leadgen_id: "123123123123".into(),
            page_id: Some("153125381133".into()),
            form_id: Some("445566".into()),
            ad_id: Some("998877".into()),
            created_time: None,
        };
        let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job).await }).expect("enqueue");
        let first = server.next().await;
        assert!(first.path.ends_with("/123123123123"), "{}", first.path);
        assert_eq!(first.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer test-token"));
        eventually("the lead is taken in", || async { state_of(&db, id).await == Some(JobState::Done) }).await;
        // The same lead delivered again is absorbed.
        let id2 = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &job).await }).expect("enqueue");
        server.next().await;
        eventually("the repeat is done", || async { state_of(&db, id2).await == Some(JobState::Done) }).await;
        system.shutdown(Duration::from_secs(5)).await;
        let customers: Vec<(String, String)> = akis_engine::read!(&db, pool => {
            sqlx::query_as("SELECT name, source FROM customers").fetch_all(pool).await
        }).expect("customers");
        assert_eq!(customers, vec![("Joe Example".to_string(), "meta_lead_ad".to_string())]);
        let leads: Vec<String> = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT external_key FROM leads").fetch_all(pool).await
        }).expect("leads");
        assert_eq!(leads, vec!["meta:123123123123".to_string()]);
        let phone: String = akis_engine::read!(&db, pool => {
            sqlx::query_scalar("SELECT e164 FROM customer_phones").fetch_one(pool).await
        }).expect("phone");
        assert_eq!(phone, "+905326100001");
    }
}

both_backends! {
    /// The whole road: staff move a card over HTTP, the move's transaction holds the
    /// actions' jobs (the outbox), a worker sends each effect to the (fake) Graph API exactly
    /// once in the documented shape, and the ledger records every effect done.
    async fn a_card_move_reaches_meta_through_the_worker_exactly_once(app) {
        // One fake Graph for both APIs: a Conversions API answer and a WhatsApp answer.
        let answer = r#"{"events_received":1,"fbtrace_id":"AbC","messaging_product":"whatsapp","contacts":[{"input":"905327776655","wa_id":"905327776655"}],"messages":[{"id":"wamid.e2e"}]}"#;
        let mut server = FakeServer::start(vec![], answer.into()).await;
        let admin = app.login_as("admin").await;
        app.login_as("manager").await;
        let r = admin.post("/api/leads", serde_json::json!({
            "name": "Deniz Kaya", "phone": "0532 777 66 55", "email": "Deniz.Kaya@Example.com",
            "source": "meta_lead_ad", "whatsapp_consent": true, "marketing_consent": true,
        })).await;
        assert!(r.status().is_success(), "lead");
        let lead: serde_json::Value = r.json().await.expect("json");
        let card = lead["card_id"].as_str().expect("card").to_string();
        let mut queued = Vec::new();
        for (to, version, fields) in [
            ("gorusuluyor", 1, serde_json::json!({})),
            ("randevu", 2, serde_json::json!({"appointment_at": "2026-12-01T10:00:00Z"})),
            ("kapora", 3, serde_json::json!({"deposit_amount": 1000})),
        ] {
            let r = admin.post(&format!("/api/cards/{card}/move"), serde_json::json!({"to": to, "expected_version": version, "fields": fields})).await;
            assert_eq!(r.status(), reqwest::StatusCode::OK, "to {to}");
            let moved: serde_json::Value = r.json().await.expect("json");
            queued.extend(moved["jobs"].as_array().expect("jobs").iter().map(|j| j["kind"].as_str().expect("kind").to_string()));
        }
        queued.sort();
        assert_eq!(queued, ["conversion_event", "conversion_event", "notify", "whatsapp_template"], "the outbox of the three moves");

        let mut config = worker_config(&server.url);
        config.definitions = app.config.definitions.clone();
        let system = akis_worker::start(app.db.clone(), &config, app.definitions.clone()).await.expect("workers");
        let mut events = Vec::new();
        let mut sends = Vec::new();
        for _ in 0..3 {
            let request = server.next().await;
            let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
            match request.path.as_str() {
                "/v21.0/1234567890/events" => events.push(body),
                "/v21.0/106540352242922/messages" => sends.push(body),
                other => panic!("unexpected request to {other}"),
            }
        }
        events.sort_by_key(|e| e["data"][0]["event_name"].as_str().unwrap_or_default().to_string());
        let names: Vec<&str> = events.iter().map(|e| e["data"][0]["event_name"].as_str().expect("name")).collect();
        assert_eq!(names, ["InitiateCheckout", "Schedule"]);
        let deposit = &events[0]["data"][0];
        assert_eq!(deposit["custom_data"]["value"], 1000.0);
        assert_eq!(deposit["custom_data"]["currency"], "TRY");
        // Hashed as Meta documents: trimmed, lower-cased, SHA-256; the phone as digits.
        let sha = |s: &str| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(s.as_bytes()))
        };
        assert_eq!(deposit["user_data"]["em"][0], sha("deniz.kaya@example.com"));
        assert_eq!(deposit["user_data"]["ph"][0], sha("905327776655"));
        assert_ne!(events[0]["data"][0]["event_id"], events[1]["data"][0]["event_id"]);
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0]["to"], "905327776655");
        assert_eq!(sends[0]["template"]["name"], "randevu_onayi");
        assert_eq!(sends[0]["template"]["components"][0]["parameters"][0]["text"], "Deniz Kaya");

        // Every effect is recorded done exactly once, and nothing more is sent.
        eventually("every effect is done", || async {
            let states: Vec<String> = akis_engine::read!(&app.db, pool => {
                sqlx::query_scalar("SELECT state FROM job_effects WHERE kind IN ('conversion_event', 'whatsapp_template')").fetch_all(pool).await
            }).expect("effects");
            states.len() == 3 && states.iter().all(|s| s == "done")
        }).await;
        eventually("the owner and the manager are notified", || async {
            let n: i64 = akis_engine::read!(&app.db, pool => {
                sqlx::query_scalar("SELECT COUNT(*) FROM notifications").fetch_one(pool).await
            }).expect("notifications");
            n >= 1
        }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.assert_no_more();
        system.shutdown(Duration::from_secs(5)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Crash windows: a real `akis worker` process aborted at a fail point, then restarted.

/// An `akis worker` process on `url`, sending to the fake Graph at `graph`. Its orphan
/// timeout is one second (test-only), so a restarted worker takes back what a crashed one
/// was running within seconds.
fn worker_process(url: &str, graph: &str, fail_point: Option<&str>) -> ChildGuard {
    let mut cmd = crate::helpers::akis_command();
    cmd.arg("worker")
        .env("AKIS_DATABASE_URL", url)
        .env("AKIS_DEFINITIONS", crate::helpers::repo_root())
        .env("AKIS_GRAPH_BASE_URL", graph)
        .env("AKIS_META_ACCESS_TOKEN", "test-token")
        .env("AKIS_META_PIXEL_ID", "1234567890")
        .env("AKIS_WHATSAPP_PHONE_NUMBER_ID", "106540352242922")
        .env("AKIS_LOG", "warn")
        .env("AKIS_TEST_ORPHAN_MS", "1000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(point) = fail_point {
        cmd.env("AKIS_TEST_FAILPOINT", point);
    }
    ChildGuard(cmd.spawn().expect("akis worker starts"))
}

/// Waits for a worker that should abort at its fail point.
async fn crashes(mut worker: ChildGuard) {
    for _ in 0..200 {
        if let Some(status) = worker.0.try_wait().expect("wait") {
            assert!(!status.success(), "the worker aborted at its fail point");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker never reached its fail point");
}

fn conversion_job(key: &EffectKey) -> ConversionEventJob {
    ConversionEventJob {
        effect_key: key.clone(),
        customer_id: None,
        event_name: "Purchase".into(),
        event_time: Timestamp::parse("2026-11-25T10:00:00Z").expect("time"),
        emails: vec!["musteri@example.com".into()],
        phones: vec!["0532 123 45 67".into()],
        first_name: None,
        last_name: None,
        external_id: None,
        value_minor: Some(250_000),
        currency: Some("TRY".into()),
        lead_id: None,
    }
}

/// (a) Died after `claimed`, before `sending`: the restarted worker sends exactly once.
async fn crash_after_claim(backend: akis_engine::storage::Backend) {
    let Some(guard) = crate::helpers::fresh_database(backend).await else {
        return;
    };
    let db = crate::helpers::open(&guard).await;
    let mut server =
        FakeServer::start(vec![], fixture("whatsapp_send_success_response.json")).await;
    let key = EffectKey::new("crash:claimed");
    let id = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &whatsapp_job(&key)).await })
        .expect("enqueue");
    crashes(worker_process(
        &guard.url(),
        &server.url,
        Some("effect_claimed"),
    ))
    .await;
    assert_eq!(effect_state(&db, &key).await, Some(EffectState::Claimed));
    server.assert_no_more();

    let _worker = worker_process(&guard.url(), &server.url, None);
    let request = server.next().await;
    assert_eq!(request.path, "/v21.0/106540352242922/messages");
    eventually("the job is done", || async {
        state_of(&db, id).await == Some(JobState::Done)
    })
    .await;
    let effect = effects::get(&db, &key).await.expect("get").expect("exists");
    assert_eq!(effect.state, EffectState::Done);
    assert_eq!(effect.attempts, 1, "sent exactly once");
    server.assert_no_more();
    db.close().await;
}

/// (b) Died after the call, before recording its result: WhatsApp is never sent again (the
/// effect is `unknown`); the Conversions API event is resent with the same `event_id`.
async fn crash_after_call(backend: akis_engine::storage::Backend) {
    let Some(guard) = crate::helpers::fresh_database(backend).await else {
        return;
    };
    let db = crate::helpers::open(&guard).await;
    let answer = r#"{"events_received":1,"fbtrace_id":"AbC","messaging_product":"whatsapp","contacts":[{"input":"905321234567","wa_id":"905321234567"}],"messages":[{"id":"wamid.crash"}]}"#;
    let mut server = FakeServer::start(vec![], answer.into()).await;

    let send = EffectKey::new("crash:called:whatsapp");
    let send_job = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &whatsapp_job(&send)).await })
        .expect("enqueue");
    crashes(worker_process(
        &guard.url(),
        &server.url,
        Some("effect_called"),
    ))
    .await;
    assert_eq!(server.next().await.path, "/v21.0/106540352242922/messages");
    assert_eq!(effect_state(&db, &send).await, Some(EffectState::Sending));

    let event = EffectKey::new("crash:called:conversion");
    let event_job = transaction!(&db, tx => { akis_engine::jobs::enqueue(&mut *tx, &conversion_job(&event)).await })
        .expect("enqueue");
    crashes(worker_process(
        &guard.url(),
        &server.url,
        Some("effect_called"),
    ))
    .await;
    let first = server.next().await;
    assert_eq!(first.path, "/v21.0/1234567890/events");
    assert_eq!(effect_state(&db, &event).await, Some(EffectState::Sending));

    let _worker = worker_process(&guard.url(), &server.url, None);
    let again = server.next().await;
    assert_eq!(
        again.path, "/v21.0/1234567890/events",
        "only the conversion event is sent again"
    );
    let a: serde_json::Value = serde_json::from_slice(&first.body).expect("json");
    let b: serde_json::Value = serde_json::from_slice(&again.body).expect("json");
    assert_eq!(a["data"][0]["event_id"], event.derived_id());
    assert_eq!(
        a, b,
        "the resend is the same event, which Meta de-duplicates"
    );
    eventually("both jobs end", || async {
        state_of(&db, send_job).await == Some(JobState::Dead)
            && state_of(&db, event_job).await == Some(JobState::Done)
    })
    .await;
    assert_eq!(
        effect_state(&db, &send).await,
        Some(EffectState::Unknown),
        "for an admin to resolve"
    );
    assert_eq!(effect_state(&db, &event).await, Some(EffectState::Done));
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.assert_no_more();
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_claiming_sends_once_after_restart_sqlite() {
    crash_after_claim(akis_engine::storage::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_claiming_sends_once_after_restart_postgres() {
    crash_after_claim(akis_engine::storage::Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_the_call_never_resends_blindly_sqlite() {
    crash_after_call(akis_engine::storage::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_the_call_never_resends_blindly_postgres() {
    crash_after_call(akis_engine::storage::Backend::Postgres).await;
}
