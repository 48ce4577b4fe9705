//! The HTTP layer: one router assembled from each domain module's `router()`, one
//! middleware stack, the OpenAPI document and its reference page.
//!
//! Handlers parse, authorize, call the domain and map errors; business rules live in the
//! domain modules, never here.

pub mod error;
pub mod extract;
mod health;
mod reference;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub use error::ApiError;
pub use extract::{Json, Path, Query};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Akış API",
        description = "Akış CRM: pipelines, customers, cards, jobs and definitions. Every `/api` route requires a session cookie or an API token unless marked public. Errors are JSON: `{code, message, fields?, request_id?}`.",
        license(name = "AGPL-3.0-or-later"),
    ),
    tags(
        (name = "health", description = "Liveness and readiness probes (public)"),
        (name = "auth", description = "Login, sessions, password, API tokens"),
        (name = "admin", description = "Users, teams, offboarding, audit log (admin role)"),
        (name = "reminders", description = "Reminders (manual and from rules), the agenda and overdue work"),
        (name = "realtime", description = "Event replay over HTTP and presence (live events come over Socket.IO at /socket.io/, see docs/realtime.md)"),
        (name = "definitions", description = "The definitions at run time: versions, diff, validate, reload on every node, dry run"),
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&SecuritySchemes),
    security(("session" = []), ("bearer" = []))
)]
struct ApiDoc;

/// Declares the two ways to authenticate: the session cookie (plus `X-CSRF-Token` on
/// state-changing requests) and API tokens.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::sessions::COOKIE_NAME,
                "Set by POST /api/auth/login. State-changing requests also need the X-CSRF-Token header.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from POST /api/me/tokens (`akis_…`)."))
                    .build(),
            ),
        );
    }
}

/// Every route with its OpenAPI description; the single place domain routers are merged.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(crate::auth::http::router())
        .merge(crate::users::http::router())
        .merge(crate::audit::http::router())
        .merge(crate::jobs::http::router())
        .merge(crate::crm::http::router())
        .merge(crate::crm::work_http::router())
        .merge(crate::crm::import::router())
        .merge(crate::notifications::router())
        .merge(crate::runtime::http::router())
        .merge(crate::drive::http::router())
        .merge(crate::work_orders::http::router())
        .merge(crate::realtime::http::router())
        .merge(crate::reminders::http::router())
        .merge(crate::ui::preferences::router())
}

/// The OpenAPI document of the whole API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_router().split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    api
}

/// The complete application: routes, documentation and middleware.
pub fn router(state: AppState) -> Router {
    let (routes, mut api) = api_router().split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    let reference_page = Arc::new(reference::render(&api));
    let api_json = Arc::new(api);

    let config = state.config.clone();
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path only: query strings may carry personal data (search terms).
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs.max(1)),
        ))
        .layer(DefaultBodyLimit::max(config.request_body_limit));

    routes
        // The web UI's pages and assets (outside /api; pages check the session themselves).
        .merge(crate::ui::router())
        .route(
            "/openapi.json",
            get(move || {
                let api = api_json.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = reference_page.clone();
                async move { Html(page.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            ApiError::client(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
        })
        // The request's X-Client-Op and actor, for the events its changes write.
        .layer(axum::middleware::from_fn(
            crate::realtime::context::middleware,
        ))
        // Authentication wraps routing, so it runs before any extractor or fallback.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::middleware::authenticate,
        ))
        .with_state(state.clone())
        // Socket.IO (`/socket.io/`) authenticates its own connections (cookie or token).
        .layer(crate::realtime::socket::layer(&state).0)
        .layer(middleware)
}
