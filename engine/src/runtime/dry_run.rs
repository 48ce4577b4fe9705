//! "If this card moved to that stage, what would happen?" — answered by running the real
//! move (the same checks, guard, timeline writes and outbox) inside a transaction that is
//! then rolled back, so the prediction is exactly what a real move does and nothing is
//! left behind. The candidate definitions may be the ones in force or a set that has not
//! been applied yet.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::crm::cards::Card;
use crate::crm::transition::{self, MoveCommand};
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::{CardId, UserId};

/// A move to simulate.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub card: CardId,
    pub to: String,
    /// Card fields entered with the move.
    pub fields: Map<String, Value>,
    /// Who would move it (names in messages; `{{ actor.name }}`).
    pub by: Option<UserId>,
    /// `tr` or `en`: the language of refusal messages.
    pub locale: String,
}

/// Why the move would be refused.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refusal {
    /// `guard_refused`, `missing_fields`, `transition_not_allowed`, `validation_failed`, …
    pub code: String,
    pub message: String,
    /// Missing or invalid fields.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// A timeline entry the move would write.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlannedEvent {
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A job the move would queue (or an action it would skip, and why).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlannedJob {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The job's parameters as they would be queued.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// What would happen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DryRun {
    /// The definitions version simulated.
    pub definitions_version: String,
    pub card_id: CardId,
    pub from: String,
    pub to: String,
    /// True when the move would go through.
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// The card as it would be after the move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
    pub timeline: Vec<PlannedEvent>,
    pub jobs: Vec<PlannedJob>,
}

/// Runs the move under `definitions` and rolls everything back.
pub async fn simulate(
    db: &Db,
    definitions: &Definitions,
    simulation: Simulation,
) -> Result<DryRun, ApiError> {
    let mut tx = db.begin().await?;
    let Some(loaded) = transition::load_in(&mut tx, simulation.card).await? else {
        return Err(ApiError::not_found("card"));
    };
    let from = loaded.card.stage_id.clone();
    let customer = loaded.card.customer_id;
    let command = MoveCommand {
        card: simulation.card,
        to: simulation.to.clone(),
        expected_version: loaded.card.version,
        fields: simulation.fields,
        by: simulation.by,
        locale: simulation.locale,
    };
    let started = Timestamp::now();
    let result = transition::move_in(&mut tx, definitions, command, loaded).await;
    let out = match result {
        Ok(moved) => {
            let events: Vec<(String, String)> = exec!(&mut tx, conn => sqlx::query_as(
                "SELECT kind, data FROM timeline_events WHERE customer_id = $1 AND card_id = $2 AND at >= $3 ORDER BY id")
                .bind(customer).bind(simulation.card).bind(started)
                .fetch_all(conn).await)?;
            DryRun {
                definitions_version: definitions.version.clone(),
                card_id: simulation.card,
                from,
                to: simulation.to,
                allowed: true,
                refusal: None,
                timeline: events
                    .into_iter()
                    .map(|(kind, data)| PlannedEvent {
                        kind,
                        data: serde_json::from_str(&data).unwrap_or(Value::Null),
                    })
                    .collect(),
                jobs: moved
                    .jobs
                    .iter()
                    .map(|q| PlannedJob {
                        kind: q.kind.clone(),
                        skipped: q.skipped.clone(),
                        payload: q.payload.clone(),
                    })
                    .collect(),
                card: Some(moved.card),
            }
        }
        Err(ApiError::Client {
            code,
            message,
            fields,
            ..
        }) if code != "not_found" => DryRun {
            definitions_version: definitions.version.clone(),
            card_id: simulation.card,
            from,
            to: simulation.to,
            allowed: false,
            refusal: Some(Refusal {
                code: code.to_string(),
                message,
                fields,
            }),
            card: None,
            timeline: Vec::new(),
            jobs: Vec::new(),
        },
        Err(e) => return Err(e),
    };
    // Nothing of it stays.
    drop(tx);
    Ok(out)
}
