//! Routes for working a customer: activities and outcomes, notes, appointments, agenda.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::crm::activities::{self, Activity, Closed, parse_instant};
use crate::crm::appointments::{self, Appointment, AppointmentInput};
use crate::crm::customers;
use crate::http::extract::double_option;
use crate::http::{ApiError, Json, Path};
use crate::policy::{Actor, Module, Permission};
use crate::types::ids::{CardId, CustomerId, EventId};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_activities, create_activity))
        .routes(routes!(close_activity))
        .routes(routes!(add_note))
        .routes(routes!(list_appointments, create_appointment))
        .routes(routes!(update_appointment))
}

async fn check(
    state: &AppState,
    actor: &Actor,
    customer: CustomerId,
    permission: Permission,
) -> Result<(), ApiError> {
    let defs = state.defs();
    let exists: Option<i64> = crate::read!(&state.db, pool => {
        sqlx::query_scalar("SELECT version FROM customers WHERE id = $1").bind(customer).fetch_optional(pool).await
    })?;
    if exists.is_none() {
        return Err(ApiError::not_found("customer"));
    }
    let owners = customers::owner_ids(&state.db, customer).await?;
    actor.require_access(&defs, Module::Customers, permission, &owners, "customer")
}

/// A customer's activities, open ones first.
#[utoipa::path(get, path = "/api/customers/{id}/activities", tag = "customers", params(("id" = CustomerId, Path)),
    responses((status = 200, body = Vec<Activity>), (status = 404)))]
async fn list_activities(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    check(&state, &actor, id, Permission::View).await?;
    Ok(Json(activities::for_customer(&state.db, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    /// An activity kind id from YAML (`arama`, `ilk_gorusme`, `randevu`, …).
    kind: String,
    /// The card it concerns (default: the customer's first card).
    card_id: Option<CardId>,
    note: Option<String>,
    due_at: Option<String>,
    /// Give an outcome to record a finished activity in one step (a call result).
    outcome: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ActivityResult {
    Open(Activity),
    Closed(Closed),
}

/// Opens an activity, or records a finished one (with `outcome`, e.g. a call result).
#[utoipa::path(post, path = "/api/customers/{id}/activities", tag = "customers", params(("id" = CustomerId, Path)),
    request_body = CreateActivity,
    responses((status = 201, body = ActivityResult), (status = 404), (status = 422)))]
async fn create_activity(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Json(body): Json<CreateActivity>,
) -> Result<(StatusCode, Json<ActivityResult>), ApiError> {
    check(&state, &actor, id, Permission::Edit).await?;
    let due_at = parse_instant(body.due_at.as_deref(), "due_at")?;
    if let Some(outcome) = &body.outcome {
        // Validate the outcome before anything is written.
        let defs = state.defs();
        let kind = defs
            .activity_kinds
            .iter()
            .find(|k| k.id.as_str() == body.kind);
        if let Some(kind) = kind
            && !kind.outcomes.iter().any(|o| o.id.as_str() == outcome)
        {
            let known: Vec<&str> = kind.outcomes.iter().map(|o| o.id.as_str()).collect();
            return Err(ApiError::unprocessable(
                "unknown_outcome",
                format!("`{outcome}` is not an outcome of `{}`", body.kind),
            )
            .with_field("outcome", format!("one of: {}", known.join(", "))));
        }
    }
    let activity = activities::open(
        &state.db,
        &state.defs(),
        id,
        body.card_id,
        &body.kind,
        &body.note,
        due_at,
        Some(actor.user_id),
    )
    .await?;
    match body.outcome {
        None => Ok((StatusCode::CREATED, Json(ActivityResult::Open(activity)))),
        Some(outcome) => {
            let closed = activities::close(
                &state.db,
                &state.defs(),
                &activity.id,
                None,
                &outcome,
                &None,
                Some(actor.user_id),
                &actor.locale,
            )
            .await?;
            Ok((StatusCode::CREATED, Json(ActivityResult::Closed(closed))))
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseActivity {
    /// An outcome id of the activity's kind.
    outcome: String,
    note: Option<String>,
    expected_version: Option<i64>,
}

/// Closes an activity with an outcome; the outcome's rule may move the card.
#[utoipa::path(post, path = "/api/activities/{id}/close", tag = "customers", params(("id" = String, Path)),
    request_body = CloseActivity,
    responses((status = 200, body = Closed), (status = 404), (status = 409), (status = 422)))]
async fn close_activity(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(body): Json<CloseActivity>,
) -> Result<Json<Closed>, ApiError> {
    let defs = state.defs();
    let activity = activities::get(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    check(&state, &actor, activity.customer_id, Permission::Edit)
        .await
        .map_err(|e| match e {
            ApiError::Client {
                code: "not_found", ..
            } => ApiError::not_found("activity"),
            other => other,
        })?;
    let closed = activities::close(
        &state.db,
        &defs,
        &id,
        body.expected_version,
        &body.outcome,
        &body.note,
        Some(actor.user_id),
        &actor.locale,
    )
    .await?;
    Ok(Json(closed))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    body: String,
    card_id: Option<CardId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteAdded {
    event_id: EventId,
}

/// Adds a note to the customer's timeline.
#[utoipa::path(post, path = "/api/customers/{id}/notes", tag = "customers", params(("id" = CustomerId, Path)),
    request_body = NewNote, responses((status = 201, body = NoteAdded), (status = 404), (status = 422)))]
async fn add_note(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Json(body): Json<NewNote>,
) -> Result<(StatusCode, Json<NoteAdded>), ApiError> {
    let defs = state.defs();
    check(&state, &actor, id, Permission::Edit).await?;
    let event_id = activities::add_note(
        &state.db,
        &defs,
        id,
        body.card_id,
        &body.body,
        Some(actor.user_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(NoteAdded { event_id })))
}

/// A customer's appointments, latest first.
#[utoipa::path(get, path = "/api/customers/{id}/appointments", tag = "customers", params(("id" = CustomerId, Path)),
    responses((status = 200, body = Vec<Appointment>), (status = 404)))]
async fn list_appointments(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
) -> Result<Json<Vec<Appointment>>, ApiError> {
    check(&state, &actor, id, Permission::View).await?;
    Ok(Json(appointments::for_customer(&state.db, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentBody {
    /// Required when booking; on edit, changing it reschedules (kept on the timeline).
    starts_at: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    ends_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    place: Option<Option<String>>,
    online: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    meeting_url: Option<Option<String>>,
    /// planned (default), confirmed, done, no_show, cancelled
    status: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    note: Option<Option<String>>,
    card_id: Option<CardId>,
    /// Required on edit.
    expected_version: Option<i64>,
}

impl AppointmentBody {
    fn input(&self) -> Result<AppointmentInput, ApiError> {
        let ends_at = match &self.ends_at {
            None => None,
            Some(None) => Some(None),
            Some(Some(v)) => Some(parse_instant(Some(v), "ends_at")?),
        };
        Ok(AppointmentInput {
            card_id: self.card_id,
            starts_at: parse_instant(self.starts_at.as_deref(), "starts_at")?,
            ends_at,
            place: self.place.clone(),
            online: self.online,
            meeting_url: self.meeting_url.clone(),
            status: self.status.clone(),
            note: self.note.clone(),
        })
    }
}

/// Books an appointment.
#[utoipa::path(post, path = "/api/customers/{id}/appointments", tag = "customers", params(("id" = CustomerId, Path)),
    request_body = AppointmentBody, responses((status = 201, body = Appointment), (status = 404), (status = 422)))]
async fn create_appointment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Json(body): Json<AppointmentBody>,
) -> Result<(StatusCode, Json<Appointment>), ApiError> {
    let defs = state.defs();
    check(&state, &actor, id, Permission::Edit).await?;
    let appointment =
        appointments::create(&state.db, &defs, id, &body.input()?, Some(actor.user_id)).await?;
    Ok((StatusCode::CREATED, Json(appointment)))
}

/// Reschedules an appointment or changes its status or details.
#[utoipa::path(patch, path = "/api/appointments/{id}", tag = "customers", params(("id" = String, Path)),
    request_body = AppointmentBody,
    responses((status = 200, body = Appointment), (status = 404), (status = 409), (status = 422)))]
async fn update_appointment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(body): Json<AppointmentBody>,
) -> Result<Json<Appointment>, ApiError> {
    let defs = state.defs();
    let current = appointments::get(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    check(&state, &actor, current.customer_id, Permission::Edit)
        .await
        .map_err(|e| match e {
            ApiError::Client {
                code: "not_found", ..
            } => ApiError::not_found("appointment"),
            other => other,
        })?;
    let version = body.expected_version.ok_or_else(|| {
        ApiError::unprocessable("validation_failed", "send the version you last saw")
            .with_field("expected_version", "required")
    })?;
    let updated = appointments::update(
        &state.db,
        &defs,
        &id,
        version,
        &body.input()?,
        Some(actor.user_id),
    )
    .await?;
    Ok(Json(updated))
}
