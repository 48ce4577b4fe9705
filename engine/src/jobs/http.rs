//! The job queue for admins and monitoring: `GET /api/admin/jobs/health` (JSON),
//! `GET /api/admin/metrics` (Prometheus text format; scrape it with an API token whose
//! scopes include `admin:view`), the job list with retry and cancel, and the effects whose
//! outcome is unknown (a send interrupted mid-call) with their resolve action.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::JobId;
use super::effects::{self, Effect, EffectKey, EffectState};
use super::store::{self, JobFilter, JobState, JobSummary, QueueHealth};
use crate::app::AppState;
use crate::audit::{self, AuditEntry, ClientInfo};
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue_health))
        .routes(routes!(prometheus_metrics))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(cancel_job))
        .routes(routes!(list_effects))
        .routes(routes!(resolve_effect))
}

/// Depth, running count and oldest pending age per queue (admin).
#[utoipa::path(get, path = "/api/admin/jobs/health", tag = "admin",
    responses((status = 200, body = Vec<QueueHealth>), (status = 401), (status = 403)))]
async fn queue_health(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<QueueHealth>>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::View)?;
    Ok(Json(store::queue_health(&state.db).await?))
}

/// Prometheus metrics of this process: queue depth, oldest pending age, enqueue→start
/// latency and run-time histograms, finished jobs by outcome (admin).
#[utoipa::path(get, path = "/api/admin/metrics", tag = "admin",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401), (status = 403)))]
async fn prometheus_metrics(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<impl IntoResponse, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::View)?;
    let body = crate::telemetry::prometheus()
        .map(|handle| handle.render())
        .unwrap_or_default();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// One queue: `notify`, `whatsapp_template`, `conversion_event`, `webhook`, …
    queue: Option<String>,
    /// pending, running, scheduled, done, dead, cancelled
    state: Option<JobState>,
    /// 1..=1000 (default 100).
    limit: Option<u32>,
}

/// Jobs by queue and state, newest first (admin).
#[utoipa::path(get, path = "/api/admin/jobs", tag = "admin", params(JobListQuery),
    responses((status = 200, body = Vec<JobSummary>), (status = 403)))]
async fn list_jobs(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<JobListQuery>,
) -> Result<Json<Vec<JobSummary>>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::View)?;
    let filter = JobFilter {
        queue: q.queue,
        state: q.state,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(store::list_jobs(&state.db, &filter).await?))
}

/// One job (admin).
#[utoipa::path(get, path = "/api/admin/jobs/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = JobSummary), (status = 404)))]
async fn get_job(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<JobId>,
) -> Result<Json<JobSummary>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::View)?;
    store::find_job(&state.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("job"))
}

async fn audited(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    action: &str,
    target: &str,
) -> Result<(), ApiError> {
    audit::record_now(
        &state.db,
        AuditEntry::new(action, Some(actor), client).target("job", target),
    )
    .await?;
    Ok(())
}

/// Puts a dead job back in its queue with fresh attempts (admin).
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = JobSummary), (status = 404), (status = 409, description = "the job is not dead")))]
async fn retry_job(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<JobId>,
) -> Result<Json<JobSummary>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::Edit)?;
    let job = store::find_job(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if !store::retry_dead(&state.db, id)
        .await
        .map_err(sqlx::Error::from)?
    {
        return Err(ApiError::conflict(
            "not_dead",
            format!(
                "only dead jobs can be retried; this one is {}",
                job.state.as_str()
            ),
        ));
    }
    audited(&state, &actor, &client, "job.retried", &id.to_string()).await?;
    store::find_job(&state.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("job"))
}

/// Cancels a job that has not started (admin).
#[utoipa::path(post, path = "/api/admin/jobs/{id}/cancel", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = JobSummary), (status = 404), (status = 409, description = "the job already started or finished")))]
async fn cancel_job(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<JobId>,
) -> Result<Json<JobSummary>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::Edit)?;
    let job = store::find_job(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if !store::cancel(&state.db, id)
        .await
        .map_err(sqlx::Error::from)?
    {
        return Err(ApiError::conflict(
            "not_pending",
            format!(
                "only waiting jobs can be cancelled; this one is {}",
                job.state.as_str()
            ),
        ));
    }
    audited(&state, &actor, &client, "job.cancelled", &id.to_string()).await?;
    store::find_job(&state.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("job"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EffectQuery {
    /// Default `unknown`: sends interrupted mid-call that need a person to decide.
    state: Option<EffectState>,
    limit: Option<u32>,
}

/// External effects in one state, latest first (admin).
#[utoipa::path(get, path = "/api/admin/effects", tag = "admin", params(EffectQuery),
    responses((status = 200, body = Vec<Effect>), (status = 403)))]
async fn list_effects(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<EffectQuery>,
) -> Result<Json<Vec<Effect>>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::View)?;
    let which = q.state.unwrap_or(EffectState::Unknown);
    Ok(Json(
        effects::list(&state.db, which, q.limit.unwrap_or(100)).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveEffect {
    effect_key: String,
    /// True: it did happen (e.g. the customer got the WhatsApp message). False: it did not.
    happened: bool,
    /// Why you decided so (kept in the ledger and the audit log).
    note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resolved {
    effect: Effect,
}

/// Resolves an effect whose outcome is unknown (admin).
#[utoipa::path(post, path = "/api/admin/effects/resolve", tag = "admin", request_body = ResolveEffect,
    responses((status = 200, body = Resolved), (status = 404), (status = 409, description = "the effect is not unknown"), (status = 422)))]
async fn resolve_effect(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Json(body): Json<ResolveEffect>,
) -> Result<Json<Resolved>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::Edit)?;
    let note = body.note.trim();
    if note.is_empty() || note.chars().count() > 1000 {
        return Err(
            ApiError::unprocessable("invalid_note", "say why (1 to 1000 characters)")
                .with_field("note", "required"),
        );
    }
    let key = EffectKey::new(body.effect_key.clone());
    let effect = effects::get(&state.db, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("effect"))?;
    if !effects::resolve(&state.db, &key, body.happened, note).await? {
        return Err(ApiError::conflict(
            "not_unknown",
            format!(
                "only effects in state unknown can be resolved; this one is {}",
                effect.state.as_str()
            ),
        ));
    }
    audit::record_now(
        &state.db,
        AuditEntry::new("effect.resolved", Some(&actor), &client)
            .target("effect", &body.effect_key)
            .details(serde_json::json!({"happened": body.happened, "note": note})),
    )
    .await?;
    let effect = effects::get(&state.db, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("effect"))?;
    Ok(Json(Resolved { effect }))
}
