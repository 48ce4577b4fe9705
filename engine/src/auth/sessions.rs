//! Server-side browser sessions, stored in our own database on both backends.
//!
//! The cookie carries a random secret; the table keys the session by the secret's SHA-256,
//! so reading the database does not let anyone log in. A session ends after
//! `session_idle_hours` without activity or `session_max_days` in any case, on logout,
//! on a password change (the other sessions), and at once when the user is deactivated or
//! offboarded (every row deleted: the next request is anonymous).

use chrono::Duration;

use super::{random_secret, sha256_hex};
use crate::audit::ClientInfo;
use crate::config::Config;
use crate::exec;
use crate::http::ApiError;
use crate::policy::{Actor, AuthVia, TeamId};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::UserId;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "akis_session";

/// `last_seen_at` is written at most this often per session, so reading pages does not
/// turn into a write per request.
const TOUCH_EVERY_SECS: i64 = 60;

/// A session just created: the cookie value (shown once) and its CSRF token.
pub struct NewSession {
    pub secret: String,
    pub csrf_token: String,
}

pub async fn create(
    tx: &mut Tx,
    user_id: UserId,
    client: &ClientInfo,
    config: &Config,
) -> Result<NewSession, ApiError> {
    let secret = random_secret()?;
    let csrf_token = random_secret()?;
    let now = Timestamp::now();
    let expires = Timestamp::from(
        now.as_datetime() + Duration::days(config.session_max_days.clamp(1, 3650) as i64),
    );
    let id = sha256_hex(&secret);
    exec!(tx, conn => sqlx::query(
        "INSERT INTO sessions (id, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(&csrf_token)
    .bind(now)
    .bind(expires)
    .bind(&client.ip)
    .bind(&client.user_agent)
    .execute(conn)
    .await.map(|r| r.rows_affected()))?;
    // Expired sessions of this user are cleaned up as a new one starts.
    exec!(tx, conn => sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at < $2")
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await.map(|r| r.rows_affected()))?;
    Ok(NewSession { secret, csrf_token })
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: String,
    csrf_token: String,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
    user_id: UserId,
    email: String,
    name: String,
    role: String,
    team_id: Option<TeamId>,
    locale: String,
    active: bool,
}

/// The actor behind a session cookie, or None when the cookie names no live session.
pub async fn resolve(db: &Db, config: &Config, secret: &str) -> Result<Option<Actor>, ApiError> {
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let id = sha256_hex(secret);
    let row: Option<SessionRow> = crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT s.id AS session_id, s.csrf_token, s.last_seen_at, s.expires_at,
                    u.id AS user_id, u.email, u.name, u.role, u.team_id, u.locale, u.active
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1",
        )
        .bind(&id)
        .fetch_optional(pool)
        .await
    })?;
    let Some(row) = row else { return Ok(None) };
    let now = Timestamp::now();
    let idle_limit = Duration::hours(config.session_idle_hours.clamp(1, 24 * 365) as i64);
    let expired =
        row.expires_at <= now || row.last_seen_at.as_datetime() + idle_limit <= now.as_datetime();
    if expired || !row.active {
        let mut tx = db.begin().await?;
        exec!(&mut tx, conn => sqlx::query("DELETE FROM sessions WHERE id = $1").bind(&row.session_id).execute(conn).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        return Ok(None);
    }
    if (now.as_datetime() - row.last_seen_at.as_datetime()).num_seconds() >= TOUCH_EVERY_SECS {
        let mut tx = db.begin().await?;
        exec!(&mut tx, conn => sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&row.session_id)
            .execute(conn)
            .await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
    }
    Ok(Some(Actor {
        user_id: row.user_id,
        email: row.email,
        name: row.name,
        role: row.role,
        team_id: row.team_id,
        locale: row.locale,
        via: AuthVia::Session {
            session_id: row.session_id,
            csrf_token: row.csrf_token,
        },
    }))
}

pub async fn delete(tx: &mut Tx, session_id: &str) -> Result<(), sqlx::Error> {
    let user: Option<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar("DELETE FROM sessions WHERE id = $1 RETURNING user_id")
        .bind(session_id).fetch_optional(conn).await)?;
    // Its open sockets close at once, on every node.
    if let Some(user) = user {
        crate::realtime::log::access_changed(tx, user, Some(session_id)).await?;
    }
    Ok(())
}

/// Ends every session of a user (except `keep`), returning how many ended.
pub async fn delete_for_user(
    tx: &mut Tx,
    user_id: UserId,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let done = exec!(tx, conn => sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
        .bind(user_id)
        .bind(keep)
        .execute(conn)
        .await.map(|r| r.rows_affected()))?;
    if done > 0 {
        crate::realtime::log::access_changed(tx, user_id, None).await?;
    }
    Ok(done)
}

pub async fn count_for_user(db: &Db, user_id: UserId) -> Result<i64, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $2")
            .bind(user_id)
            .bind(Timestamp::now())
            .fetch_one(pool)
            .await
    })
}
