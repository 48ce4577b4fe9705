//! # Akış worker
//!
//! Runs the job handlers against the queues in the shared database: one module per job
//! kind, wired to its queue by [`start`]. `akis worker` runs only this; `akis serve` runs it
//! in-process unless `--no-workers`.
//!
//! # Layout
//! - [`webhook`]: signed JSON POSTs to URLs declared in YAML (`X-Akis-Signature-256`).
//! - [`conversion_event`]: Meta Conversions API events with hashed user data.
//! - [`whatsapp_template`]: WhatsApp Cloud API template messages.
//! - [`graph`]: the Graph API client settings and error classification.
//! - [`effect`]: one external call under the effect ledger's re-run rules.
//!
//! - [`notify`]: in-app notifications rendered in each recipient's language.
//!
//! - [`lead_fetch`]: fetches a Meta lead ad lead and hands it to the shared intake.
//!
//! - [`reminders`]: follow-ups become reminders, reminders fire when due, schedule ticks run.

pub mod conversion_event;
pub mod effect;
pub mod graph;
pub mod lead_fetch;
pub mod notify;
pub mod reminders;
pub mod webhook;
pub mod whatsapp_template;
pub mod work_orders;

use std::future::Future;
use std::time::Duration;

use akis_engine::config::{Config, JobsConfig};
use akis_engine::definitions::LiveDefinitions;
use akis_engine::jobs::store::Retention;
use akis_engine::jobs::{JobSystem, RunnerOptions, SystemOptions};
use akis_engine::storage::Db;

/// How long in-flight jobs may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Process-wide job settings from the configuration.
pub fn system_options(config: &JobsConfig) -> SystemOptions {
    let day = 24 * 3600;
    test_overrides(SystemOptions {
        orphan_timeout: Duration::from_secs(config.job_orphan_timeout_secs),
        retention: Retention {
            finished: Duration::from_secs(config.job_history_days.max(1) * day),
            dead: Duration::from_secs(config.job_dead_days.max(1) * day),
        },
        ..SystemOptions::default()
    })
}

/// Crash-window tests restart a worker and need a dead worker's jobs back within seconds:
/// with the `failpoints` feature (tests only), `AKIS_TEST_ORPHAN_MS` shortens the orphan
/// timeout, heartbeat and maintenance tick. Production keeps the 60-second floor.
#[cfg(feature = "failpoints")]
fn test_overrides(mut options: SystemOptions) -> SystemOptions {
    if let Some(ms) = std::env::var("AKIS_TEST_ORPHAN_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options.allow_short_orphan_timeout = true;
        options.orphan_timeout = Duration::from_millis(ms);
        options.heartbeat_interval = Duration::from_millis((ms / 4).max(10));
        options.maintenance_interval = Duration::from_millis((ms / 2).max(10));
    }
    options
}

#[cfg(not(feature = "failpoints"))]
fn test_overrides(options: SystemOptions) -> SystemOptions {
    options
}

/// Per-queue settings: concurrency from the configuration, batches as large as the free
/// slots.
pub fn runner_options(config: &JobsConfig) -> RunnerOptions {
    let concurrency = config.job_concurrency.clamp(1, 256);
    RunnerOptions {
        concurrency,
        batch_size: concurrency,
        ..RunnerOptions::default()
    }
}

/// Starts the job system with every handler registered.
///
/// `definitions` is the process's running set: `akis serve` shares its own, `akis worker`
/// gets one from [`run`] that follows reloads made anywhere.
pub async fn start(
    db: Db,
    config: &Config,
    definitions: LiveDefinitions,
) -> anyhow::Result<JobSystem> {
    let jobs = &config.jobs;
    let client = graph::http_client()?;
    let graph = graph::Graph::from_config(client.clone(), jobs);
    let mut system = JobSystem::start(db.clone(), system_options(jobs)).await?;
    let options = runner_options(jobs);
    system
        .run(
            notify::NotifyHandler {
                db: db.clone(),
                definitions: definitions.clone(),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            lead_fetch::LeadFetchHandler {
                db: db.clone(),
                graph: graph.clone(),
                definitions: definitions.clone(),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            reminders::FollowUpHandler {
                db: db.clone(),
                definitions: definitions.clone(),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            reminders::ReminderDueHandler {
                db: db.clone(),
                definitions: definitions.clone(),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            reminders::ScheduledTaskHandler {
                db: db.clone(),
                definitions: definitions.clone(),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            work_orders::CreateWorkOrderHandler {
                db: db.clone(),
                definitions: definitions.clone(),
            },
            options.clone(),
        )
        .await?;
    // Recurring schedules tick here; each tick runs once whatever the number of nodes.
    system.spawn_service(akis_engine::reminders::schedules::run(
        db.clone(),
        definitions,
        uuid::Uuid::now_v7().to_string(),
    ));
    system
        .run(
            webhook::WebhookHandler {
                db: db.clone(),
                client,
                secret: jobs
                    .webhook_secret
                    .as_ref()
                    .map(|s| s.expose().as_bytes().to_vec()),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            conversion_event::ConversionEventHandler {
                db: db.clone(),
                graph: graph.clone(),
                pixel_id: jobs.meta_pixel_id.clone(),
            },
            options.clone(),
        )
        .await?;
    system
        .run(
            whatsapp_template::WhatsappTemplateHandler {
                db: db.clone(),
                graph,
                phone_number_id: jobs.whatsapp_phone_number_id.clone(),
            },
            options,
        )
        .await?;
    Ok(system)
}

/// Runs the workers until `shutdown` completes, then lets in-flight jobs finish.
pub async fn run(
    db: Db,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // A worker serves the stored version (an empty database is bootstrapped from the
    // local files) and follows every reload.
    let definitions = akis_engine::runtime::startup(
        &db,
        &config.definitions,
        akis_engine::runtime::StartupMode::Stored,
    )
    .await?;
    let watcher = tokio::spawn(akis_engine::runtime::watch(
        db.clone(),
        definitions.clone(),
        akis_engine::runtime::POLL_INTERVAL,
    ));
    let system = start(db.clone(), config, definitions).await?;
    tracing::info!(backend = %db.backend(), "worker started");
    shutdown.await;
    system.shutdown(SHUTDOWN_GRACE).await;
    watcher.abort();
    db.close().await;
    Ok(())
}
