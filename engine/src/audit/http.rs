//! `GET /api/admin/audit`.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AuditFilter, AuditId, AuditRecord};
use crate::app::AppState;
use crate::http::{ApiError, Json, Query};
use crate::policy::{Actor, Module, Permission};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only entries by this user id.
    actor: Option<String>,
    /// Only this action (`auth.login_failed`, `user.offboarded`, …).
    action: Option<String>,
    /// Only entries about this record id.
    target: Option<String>,
    /// The `id` of the last entry of the previous page.
    before: Option<AuditId>,
    /// Page size, 1–500 (default 100).
    limit: Option<i64>,
}

/// The audit log, newest first (admin).
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Vec<AuditRecord>), (status = 401), (status = 403)))]
async fn list_audit(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, Permission::View)?;
    let filter = AuditFilter {
        actor_id: q.actor,
        action: q.action,
        target_id: q.target,
        before: q.before,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(super::list(&state.db, &filter).await?))
}
