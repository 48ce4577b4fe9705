//! Reminder jobs:
//! - `follow_up`: a transition's `follow_up:` action becomes a reminder on the card, due
//!   at its expression evaluated from the transition's instant (one per effect key, so a
//!   re-run creates nothing twice).
//! - `reminder_due`: fires a reminder if it is still open with the job's due time.
//! - `scheduled_task`: one claimed tick of a recurring schedule.

use akis_engine::definitions::LiveDefinitions;
use akis_engine::http::ApiError;
use akis_engine::jobs::{
    FollowUpJob, Handler, JobContext, JobError, ReminderDueJob, ScheduledTaskJob,
};
use akis_engine::reminders::{self, NewReminder, due};
use akis_engine::storage::Db;
use akis_engine::types::Timestamp;

fn failed(e: ApiError) -> JobError {
    match e {
        ApiError::Internal(e) => JobError::transient(format!("{e:#}")),
        other => JobError::permanent(other.to_string()),
    }
}

/// The `follow_up` handler.
#[derive(Clone)]
pub struct FollowUpHandler {
    pub db: Db,
    pub definitions: LiveDefinitions,
}

impl Handler for FollowUpHandler {
    type Job = FollowUpJob;

    async fn run(&self, _ctx: JobContext, job: FollowUpJob) -> Result<(), JobError> {
        let defs = self.definitions.current();
        let expr = akis_engine::definitions::due::parse(&job.due)
            .map_err(|e| JobError::permanent(format!("due `{}`: {e}", job.due)))?;
        let calendar = due::calendar_of(&defs);
        let due_at = due::evaluate(&expr, job.base.as_datetime(), &job.card_fields, &calendar)
            .map_err(|e| JobError::permanent(format!("due `{}`: {e}", job.due)))?;
        let mut tx = self
            .db
            .begin()
            .await
            .map_err(|e| JobError::transient(e.to_string()))?;
        reminders::create_in(
            &mut tx,
            &defs,
            NewReminder {
                customer_id: Some(job.customer_id),
                card_id: Some(job.card_id),
                origin: "follow_up",
                rule: None,
                // The effect key: a re-run of this job finds its reminder instead of adding one.
                trigger_key: Some(format!("follow_up:{}", job.effect_key.as_str())),
                title_tr: job.title_tr.clone(),
                title_en: job.title_en.clone(),
                note: None,
                message: None,
                due_at: Timestamp::from_datetime(due_at),
                assignees: job.assignees.clone(),
                by: None,
            },
        )
        .await
        .map_err(|e| JobError::transient(e.to_string()))?;
        tx.commit()
            .await
            .map_err(|e| JobError::transient(e.to_string()))
    }
}

/// The `reminder_due` handler.
#[derive(Clone)]
pub struct ReminderDueHandler {
    pub db: Db,
    pub definitions: LiveDefinitions,
}

impl Handler for ReminderDueHandler {
    type Job = ReminderDueJob;

    async fn run(&self, _ctx: JobContext, job: ReminderDueJob) -> Result<(), JobError> {
        let defs = self.definitions.current();
        reminders::fire(&self.db, &defs, &job)
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

/// The `scheduled_task` handler.
#[derive(Clone)]
pub struct ScheduledTaskHandler {
    pub db: Db,
    pub definitions: LiveDefinitions,
}

impl Handler for ScheduledTaskHandler {
    type Job = ScheduledTaskJob;

    async fn run(&self, _ctx: JobContext, job: ScheduledTaskJob) -> Result<(), JobError> {
        let defs = self.definitions.current();
        reminders::schedules::run_task(&self.db, &defs, &job)
            .await
            .map_err(failed)
    }
}
