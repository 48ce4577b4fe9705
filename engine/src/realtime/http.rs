//! `GET /api/events?after=` — a replay over HTTP for clients that cannot keep a socket —
//! and `GET /api/presence`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::log::{self, Sight, kinds};
use crate::app::AppState;
use crate::http::{ApiError, Json, Query};
use crate::policy::Actor;
use crate::types::Timestamp;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(presence))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last position you processed (0: from the oldest kept).
    after: i64,
    /// At most this many events, 1–1000 (default 500).
    limit: Option<i64>,
}

/// One event as a client receives it (see docs/realtime.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub position: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: Timestamp,
    #[schema(value_type = Option<Object>)]
    pub by: Option<Value>,
    pub op: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventOut>,
    /// Pass as `after` for the next page (the last position examined).
    pub position: i64,
    /// True when `after` is older than the oldest event kept: reload your data.
    pub resync: bool,
}

/// The events after `after` that you may see, in order. Customer-scoped events (timeline,
/// customer data) are included for every customer you may see.
#[utoipa::path(get, path = "/api/events", tag = "realtime", params(EventsQuery),
    responses((status = 200, body = EventPage)))]
async fn events(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let defs = state.defs();
    let limit = q.limit.unwrap_or(500).clamp(1, 1000);
    let resync = match log::oldest(&state.db).await? {
        Some(oldest) => q.after + 1 < oldest && q.after > 0,
        None => false,
    };
    let rows = crate::read!(&state.db, pool => {
        sqlx::query_as::<_, log::StoredEvent>(
            "SELECT position, at, kind, audience, actor_id, actor_name, op, batch, data FROM events
             WHERE position > $1 ORDER BY position LIMIT $2")
            .bind(q.after)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?;
    let mut position = q.after;
    let mut out = Vec::new();
    for e in rows {
        position = e.position;
        if e.kind == kinds::BATCH_END || e.kind == kinds::ACCESS_CHANGED {
            continue;
        }
        let audience = e.audience();
        let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        let (kind, data) = match audience.sight(&actor, &defs, true) {
            Sight::None => continue,
            Sight::Full => (e.kind.clone(), data),
            Sight::Entered => (
                kinds::CARD_ADDED.to_string(),
                serde_json::json!({"card": data["card"], "pipeline_id": data["pipeline_id"]}),
            ),
            Sight::Left => (
                kinds::CARD_REMOVED.to_string(),
                serde_json::json!({"card_id": data["card"]["id"], "pipeline_id": data["pipeline_id"], "reason": "reassigned"}),
            ),
        };
        out.push(EventOut {
            position: e.position,
            kind,
            at: e.at,
            by: e
                .actor_id
                .map(|id| serde_json::json!({"id": id, "name": e.actor_name})),
            op: e.op,
            data,
        });
    }
    Ok(Json(EventPage {
        events: out,
        position,
        resync,
    }))
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct OnlineUser {
    pub user_id: String,
    pub name: String,
}

/// Users online now (with a socket open on any node).
#[utoipa::path(get, path = "/api/presence", tag = "realtime",
    responses((status = 200, body = Vec<OnlineUser>)))]
async fn presence(
    State(state): State<AppState>,
    _actor: Actor,
) -> Result<Json<Vec<OnlineUser>>, ApiError> {
    let users: Vec<OnlineUser> = crate::read!(&state.db, pool => {
        sqlx::query_as(
            "SELECT DISTINCT p.user_id, u.name FROM presence p JOIN users u ON u.id = p.user_id
             WHERE u.active ORDER BY u.name")
            .fetch_all(pool)
            .await
    })?;
    Ok(Json(users))
}
