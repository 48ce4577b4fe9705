//! `create_work_order`: a transition's `create_work_order:` action opens the work order for
//! the card's customer, once per effect key (a re-run finds the order it made).

use akis_engine::definitions::LiveDefinitions;
use akis_engine::http::ApiError;
use akis_engine::jobs::{CreateWorkOrderJob, Handler, JobContext, JobError};
use akis_engine::storage::Db;
use akis_engine::work_orders::{self, NewWorkOrder};

#[derive(Clone)]
pub struct CreateWorkOrderHandler {
    pub db: Db,
    pub definitions: LiveDefinitions,
}

impl Handler for CreateWorkOrderHandler {
    type Job = CreateWorkOrderJob;

    async fn run(&self, _ctx: JobContext, job: CreateWorkOrderJob) -> Result<(), JobError> {
        let defs = self.definitions.current();
        let mut tx = self
            .db
            .begin()
            .await
            .map_err(|e| JobError::transient(e.to_string()))?;
        work_orders::create_in(
            &mut tx,
            &defs,
            NewWorkOrder {
                definition: &job.definition,
                title: None,
                customer_id: Some(job.customer_id),
                card_id: Some(job.card_id),
                by: job.requested_by,
                effect_key: Some(job.effect_key.as_str()),
            },
        )
        .await
        .map_err(|e| match e {
            ApiError::Internal(e) => JobError::transient(format!("{e:#}")),
            other => JobError::permanent(other.to_string()),
        })?;
        tx.commit()
            .await
            .map_err(|e| JobError::transient(e.to_string()))
    }
}
