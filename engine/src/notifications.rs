//! In-app notifications: created by jobs (new lead assigned, a transition's `notify`
//! action, reminders due) and read by their user only.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::exec;
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::Actor;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CustomerId, UserId};

/// One notification.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Notification {
    pub id: String,
    /// The message template it was rendered from (`yeni_lead`, `kapora_alindi`, …).
    pub kind: String,
    /// Rendered in the user's language.
    pub body: String,
    pub customer_id: Option<CustomerId>,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

/// A notification to store.
pub struct NewNotification<'a> {
    pub user_id: UserId,
    pub kind: &'a str,
    pub body: &'a str,
    pub customer_id: Option<CustomerId>,
    pub data: &'a Value,
    /// With a key, storing the same notification twice for a user is a no-op.
    pub effect_key: Option<&'a str>,
}

/// Stores a notification; returns false when it already existed (same user and key).
pub async fn insert(tx: &mut Tx, n: NewNotification<'_>) -> Result<bool, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = Timestamp::now();
    let rows = exec!(&mut *tx, conn => sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, body, customer_id, data, effect_key, created_at, read_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)
         ON CONFLICT (user_id, effect_key) WHERE effect_key IS NOT NULL DO NOTHING")
        .bind(&id)
        .bind(n.user_id)
        .bind(n.kind)
        .bind(n.body)
        .bind(n.customer_id)
        .bind(n.data.to_string())
        .bind(n.effect_key)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    if rows > 0 {
        // The bell of the user's open screens, on every node.
        let unread: i64 = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(n.user_id).fetch_one(conn).await)?;
        let shown = Notification {
            id,
            kind: n.kind.to_string(),
            body: n.body.to_string(),
            customer_id: n.customer_id,
            created_at: now,
            read_at: None,
        };
        let mut data = serde_json::to_value(&shown).unwrap_or(Value::Null);
        data["unread"] = serde_json::json!(unread);
        crate::realtime::record(
            tx,
            crate::realtime::NewEvent::new(
                crate::realtime::kinds::NOTIFICATION,
                crate::realtime::Audience::User(n.user_id),
                data,
            )
            .by(None),
        )
        .await?;
    }
    Ok(rows > 0)
}

/// A user's notifications: unread first, then newest first.
pub async fn list(
    db: &Db,
    user: UserId,
    unread_only: bool,
    limit: u32,
) -> Result<Vec<Notification>, sqlx::Error> {
    let limit = i64::from(limit.clamp(1, 200));
    crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT id, kind, body, customer_id, created_at, read_at FROM notifications
             WHERE user_id = $1 AND ($2 = FALSE OR read_at IS NULL)
             ORDER BY (read_at IS NULL) DESC, id DESC LIMIT $3")
            .bind(user).bind(unread_only).bind(limit)
            .fetch_all(pool).await
    })
}

pub async fn unread_count(db: &Db, user: UserId) -> Result<i64, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(user).fetch_one(pool).await
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(count_unread))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only unread ones.
    #[serde(default)]
    unread: bool,
    /// 1..=200 (default 50).
    limit: Option<u32>,
}

/// Your notifications, unread first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = Vec<Notification>)))]
async fn list_notifications(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<NotificationQuery>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    Ok(Json(
        list(&state.db, actor.user_id, q.unread, q.limit.unwrap_or(50)).await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

/// How many unread notifications you have (the UI badge).
#[utoipa::path(get, path = "/api/notifications/unread-count", tag = "notifications",
    responses((status = 200, body = UnreadCount)))]
async fn count_unread(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<UnreadCount>, ApiError> {
    Ok(Json(UnreadCount {
        unread: unread_count(&state.db, actor.user_id).await?,
    }))
}

/// Marks one of your notifications read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = UnreadCount), (status = 404)))]
async fn mark_read(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<UnreadCount>, ApiError> {
    let mut tx = state.db.begin().await?;
    let found: Option<String> = exec!(&mut tx, conn => sqlx::query_scalar(
        "SELECT id FROM notifications WHERE id = $1 AND user_id = $2")
        .bind(&id).bind(actor.user_id).fetch_optional(conn).await)?;
    if found.is_none() {
        return Err(ApiError::not_found("notification"));
    }
    exec!(&mut tx, conn => sqlx::query("UPDATE notifications SET read_at = $1 WHERE id = $2 AND read_at IS NULL")
        .bind(Timestamp::now()).bind(&id).execute(conn).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(Json(UnreadCount {
        unread: unread_count(&state.db, actor.user_id).await?,
    }))
}

/// Marks all your notifications read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications",
    responses((status = 200, body = UnreadCount)))]
async fn mark_all_read(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<UnreadCount>, ApiError> {
    let mut tx = state.db.begin().await?;
    exec!(&mut tx, conn => sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
        .bind(Timestamp::now()).bind(actor.user_id).execute(conn).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(Json(UnreadCount { unread: 0 }))
}
