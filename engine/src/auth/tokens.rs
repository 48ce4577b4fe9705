//! API tokens for integrations: `Authorization: Bearer akis_<secret>`.
//!
//! Only the SHA-256 of a token is stored; the token itself is shown once, at creation.
//! A token acts as its user, narrowed to its scopes; it stops working at once when revoked,
//! when it expires, or when its user is deactivated.

use serde::Serialize;

use super::{random_secret, sha256_hex};
use crate::exec;
use crate::http::ApiError;
use crate::policy::{Actor, AuthVia, TeamId, TokenScopes};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::UserId;

crate::id_type!(
    /// An API token.
    TokenId
);

/// Every token starts with this, so leaked tokens are easy to recognise (secret scanners).
pub const PREFIX: &str = "akis_";

const TOUCH_EVERY_SECS: i64 = 60;

/// A token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub scopes: ScopeList,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Scopes as stored (a JSON array of strings).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct ScopeList(pub Vec<String>);

impl TryFrom<String> for ScopeList {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&s).map(ScopeList)
    }
}

pub async fn create(
    tx: &mut Tx,
    user_id: UserId,
    name: &str,
    scopes: &TokenScopes,
    expires_at: Option<Timestamp>,
) -> Result<(TokenInfo, String), ApiError> {
    let secret = format!("{PREFIX}{}", random_secret()?);
    let info = TokenInfo {
        id: TokenId::new(),
        name: name.to_string(),
        scopes: ScopeList(scopes.to_strings()),
        created_at: Timestamp::now(),
        last_used_at: None,
        expires_at,
        revoked_at: None,
    };
    let scopes_json =
        serde_json::to_string(&info.scopes.0).map_err(|e| ApiError::Internal(e.into()))?;
    exec!(tx, conn => sqlx::query(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, scopes, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(info.id)
    .bind(user_id)
    .bind(&info.name)
    .bind(sha256_hex(&secret))
    .bind(&scopes_json)
    .bind(info.created_at)
    .bind(info.expires_at)
    .execute(conn)
    .await.map(|r| r.rows_affected()))?;
    Ok((info, secret))
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_id: TokenId,
    scopes: String,
    last_used_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    user_id: UserId,
    email: String,
    name: String,
    role: String,
    team_id: Option<TeamId>,
    locale: String,
    active: bool,
}

/// The actor behind a bearer token, or None when it is unknown, revoked or expired.
pub async fn resolve(db: &Db, token: &str) -> Result<Option<Actor>, ApiError> {
    if !token.starts_with(PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    let row: Option<TokenRow> = crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT t.id AS token_id, t.scopes, t.last_used_at, t.expires_at, t.revoked_at,
                    u.id AS user_id, u.email, u.name, u.role, u.team_id, u.locale, u.active
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1",
        )
        .bind(sha256_hex(token))
        .fetch_optional(pool)
        .await
    })?;
    let Some(row) = row else { return Ok(None) };
    let now = Timestamp::now();
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= now) || !row.active {
        return Ok(None);
    }
    let scopes: Vec<String> = serde_json::from_str(&row.scopes).unwrap_or_default();
    // A token whose stored scopes no longer parse grants nothing rather than everything.
    let scopes = TokenScopes::parse(&scopes).unwrap_or(TokenScopes::Only(Vec::new()));
    let stale = row
        .last_used_at
        .is_none_or(|t| (now.as_datetime() - t.as_datetime()).num_seconds() >= TOUCH_EVERY_SECS);
    if stale {
        let mut tx = db.begin().await?;
        exec!(&mut tx, conn => sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(row.token_id)
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
        via: AuthVia::Token {
            token_id: row.token_id.to_string(),
            scopes,
        },
    }))
}

pub async fn list_for_user(db: &Db, user_id: UserId) -> Result<Vec<TokenInfo>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT id, name, scopes, created_at, last_used_at, expires_at, revoked_at
             FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await
    })
}

/// Revokes one of a user's tokens; false when the user has no such live token.
pub async fn revoke(tx: &mut Tx, user_id: UserId, id: TokenId) -> Result<bool, sqlx::Error> {
    let done = exec!(tx, conn => sqlx::query(
        "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(user_id)
    .bind(Timestamp::now())
    .execute(conn)
    .await.map(|r| r.rows_affected()))?;
    if done == 1 {
        crate::realtime::log::access_changed(tx, user_id, None).await?;
    }
    Ok(done == 1)
}

/// Revokes every live token of a user, returning how many.
pub async fn revoke_all_for_user(tx: &mut Tx, user_id: UserId) -> Result<u64, sqlx::Error> {
    let done = exec!(tx, conn => sqlx::query(
        "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(Timestamp::now())
    .execute(conn)
    .await.map(|r| r.rows_affected()))?;
    if done > 0 {
        crate::realtime::log::access_changed(tx, user_id, None).await?;
    }
    Ok(done)
}

pub async fn count_live_for_user(db: &Db, user_id: UserId) -> Result<i64, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .fetch_one(pool)
            .await
    })
}
