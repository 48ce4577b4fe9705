//! Queue health for admins and monitoring: `GET /api/admin/jobs/health` (JSON) and
//! `GET /api/admin/metrics` (Prometheus text format; scrape it with an API token whose
//! scopes include `admin:view`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, QueueHealth};
use crate::app::AppState;
use crate::http::{ApiError, Json};
use crate::policy::{Actor, Module, Permission};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue_health))
        .routes(routes!(prometheus_metrics))
}

/// Depth, running count and oldest pending age per queue (admin).
#[utoipa::path(get, path = "/api/admin/jobs/health", tag = "admin",
    responses((status = 200, body = Vec<QueueHealth>), (status = 401), (status = 403)))]
async fn queue_health(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<QueueHealth>>, ApiError> {
    actor.require(&state.definitions, Module::Admin, Permission::View)?;
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
    actor.require(&state.definitions, Module::Admin, Permission::View)?;
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
