//! Liveness and readiness probes. Both are public.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Json;
use crate::app::AppState;
use crate::storage::Backend;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the process is up and start-up work is done.
    status: &'static str,
    version: &'static str,
}

/// The process is up. Answers only once start-up (migrations, seeding) has finished.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    database: DatabaseHealth,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseHealth {
    backend: Backend,
    reachable: bool,
    /// Round-trip time of a trivial query, in milliseconds.
    latency_ms: Option<f64>,
}

/// The database answers. 503 when it does not, so a load balancer stops sending traffic.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Readiness, description = "database reachable"),
    (status = 503, body = Readiness, description = "database unreachable"),
))]
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    let started = std::time::Instant::now();
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await;
    let reachable = matches!(ping, Ok(Ok(())));
    if !reachable {
        tracing::warn!(?ping, "readiness check failed");
    }
    let body = Readiness {
        status: if reachable { "ready" } else { "unavailable" },
        database: DatabaseHealth {
            backend: state.db.backend(),
            reachable,
            latency_ms: reachable.then(|| started.elapsed().as_secs_f64() * 1000.0),
        },
    };
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // A plain Json response: a 503 here is a report, not an error to normalise.
    let mut response = (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response();
    response.extensions_mut().insert(super::error::KeepBody);
    response
}
