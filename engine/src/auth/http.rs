//! Login, logout, the current session, password change, and the caller's API tokens.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tokens::{TokenId, TokenInfo};
use super::{sessions, throttle, tokens};
use crate::app::AppState;
use crate::audit::{self, AuditEntry, ClientInfo};
use crate::config::SecureCookies;
use crate::http::{ApiError, Json, Path};
use crate::policy::{Actor, AuthVia, TokenScopes};
use crate::types::Timestamp;
use crate::users::{Me, store as users};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(session))
        .routes(routes!(change_password))
        .routes(routes!(me))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    user: Me,
    /// Send back in `X-CSRF-Token` on every state-changing request made with the cookie.
    csrf_token: String,
}

fn bad_credentials() -> ApiError {
    ApiError::unauthorized("wrong email or password")
}

fn session_cookie(
    state: &AppState,
    headers: &HeaderMap,
    value: &str,
    max_age_days: Option<i64>,
) -> Option<HeaderValue> {
    let over_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = match state.config.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => over_https,
    };
    let mut cookie = cookie::Cookie::build((sessions::COOKIE_NAME, value.to_string()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .secure(secure);
    cookie = match max_age_days {
        Some(days) => cookie.max_age(cookie::time::Duration::days(days)),
        None => cookie.max_age(cookie::time::Duration::ZERO),
    };
    HeaderValue::from_str(&cookie.build().to_string()).ok()
}

/// Logs in with email and password (public). Sets the session cookie and returns the CSRF
/// token. Throttled per account and per address (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, description = "wrong email or password"),
              (status = 429, description = "too many failed attempts")))]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let defs = state.defs();
    let email = body.email.trim().to_lowercase();
    if email.is_empty()
        || body.password.is_empty()
        || body.password.len() > 4 * super::MAX_PASSWORD_LEN
    {
        return Err(bad_credentials());
    }
    let account_key = throttle::account_key(&email);
    let address_key = client.ip.as_deref().map(throttle::address_key);
    throttle::check(&state.db, &account_key, address_key.as_deref()).await?;

    let found = users::find_for_login(&state.db, &email).await?;
    let verified =
        super::verify_password(&body.password, found.as_ref().map(|(_, h)| h.as_str())).await;
    let user = match found {
        Some((user, _)) if verified && user.active => user,
        found => {
            let mut tx = state.db.begin().await?;
            let locked_account =
                throttle::record_failure(&mut tx, &account_key, throttle::ACCOUNT).await?;
            if let Some(key) = &address_key {
                throttle::record_failure(&mut tx, key, throttle::ADDRESS).await?;
            }
            let reason = match &found {
                None => "unknown_email",
                Some((u, _)) if verified && !u.active => "deactivated",
                Some(_) => "wrong_password",
            };
            audit::record(
                &mut tx,
                AuditEntry::new("auth.login_failed", None, &client)
                    .label(&email)
                    .details(serde_json::json!({"reason": reason, "locked": locked_account})),
            )
            .await?;
            tx.commit().await?;
            if reason == "deactivated" {
                return Err(ApiError::client(
                    StatusCode::UNAUTHORIZED,
                    "account_deactivated",
                    "this account is deactivated",
                ));
            }
            return Err(bad_credentials());
        }
    };

    let mut tx = state.db.begin().await?;
    let session = sessions::create(&mut tx, user.id, &client, &state.config).await?;
    throttle::clear(&mut tx, &account_key).await?;
    users::record_login(&mut tx, user.id).await?;
    let actor = Actor {
        user_id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        role: user.role.clone(),
        team_id: user.team_id,
        locale: user.locale.clone(),
        via: AuthVia::Session {
            session_id: String::new(),
            csrf_token: session.csrf_token.clone(),
        },
    };
    audit::record(
        &mut tx,
        AuditEntry::new("auth.login", Some(&actor), &client),
    )
    .await?;
    tx.commit().await?;

    let body = LoginResponse {
        user: Me::new(user, &actor, &defs),
        csrf_token: session.csrf_token,
    };
    let mut response = Json(body).into_response();
    let max_age = state.config.session_max_days.clamp(1, 3650) as i64;
    if let Some(cookie) = session_cookie(&state, &headers, &session.secret, Some(max_age)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Ends the current session (public: with no live session it only clears the cookie).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(()), responses((status = 204)))]
async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    request: Request,
) -> Result<Response, ApiError> {
    if let Some(actor) = request.extensions().get::<Actor>().cloned()
        && let AuthVia::Session { session_id, .. } = &actor.via
    {
        let mut tx = state.db.begin().await?;
        sessions::delete(&mut tx, session_id).await?;
        audit::record(
            &mut tx,
            AuditEntry::new("auth.logout", Some(&actor), &client),
        )
        .await?;
        tx.commit().await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cookie) = session_cookie(&state, request.headers(), "", None) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionState {
    authenticated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Me>,
    /// Present for cookie sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// Whether the caller is logged in, who they are, and the CSRF token (public).
#[utoipa::path(get, path = "/api/auth/session", tag = "auth", security(()), responses((status = 200, body = SessionState)))]
async fn session(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<SessionState>, ApiError> {
    let defs = state.defs();
    let Some(actor) = request.extensions().get::<Actor>().cloned() else {
        return Ok(Json(SessionState {
            authenticated: false,
            user: None,
            csrf_token: None,
        }));
    };
    let user = users::get(&state.db, actor.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("log in first"))?;
    let csrf_token = match &actor.via {
        AuthVia::Session { csrf_token, .. } => Some(csrf_token.clone()),
        AuthVia::Token { .. } => None,
    };
    Ok(Json(SessionState {
        authenticated: true,
        user: Some(Me::new(user, &actor, &defs)),
        csrf_token,
    }))
}

/// The current user with their permissions.
#[utoipa::path(get, path = "/api/me", tag = "auth", responses((status = 200, body = Me), (status = 401)))]
async fn me(State(state): State<AppState>, actor: Actor) -> Result<Json<Me>, ApiError> {
    let defs = state.defs();
    let user = users::get(&state.db, actor.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("log in first"))?;
    Ok(Json(Me::new(user, &actor, &defs)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Changes your password. Your other sessions end; this one stays.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), (status = 401), (status = 422)))]
async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Json(body): Json<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    super::check_password_policy(&body.new_password).map_err(|m| {
        ApiError::unprocessable("weak_password", m.clone()).with_field("new_password", m)
    })?;
    let stored = users::password_hash(&state.db, actor.user_id).await?;
    if !super::verify_password(&body.current_password, stored.as_deref()).await {
        return Err(
            ApiError::unprocessable("wrong_password", "the current password is wrong")
                .with_field("current_password", "wrong password"),
        );
    }
    let hash = super::hash_password(&body.new_password).await?;
    let keep = match &actor.via {
        AuthVia::Session { session_id, .. } => Some(session_id.as_str()),
        AuthVia::Token { .. } => None,
    };
    let mut tx = state.db.begin().await?;
    users::set_password(&mut tx, actor.user_id, &hash).await?;
    let ended = sessions::delete_for_user(&mut tx, actor.user_id, keep).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("auth.password_changed", Some(&actor), &client)
            .target("user", actor.user_id)
            .details(serde_json::json!({"other_sessions_ended": ended})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your API tokens (never their secrets).
#[utoipa::path(get, path = "/api/me/tokens", tag = "auth", responses((status = 200, body = Vec<TokenInfo>)))]
async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(tokens::list_for_user(&state.db, actor.user_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (`Meta lead sync`).
    name: String,
    /// `["*"]` for everything your role allows, or `["customers:view", "pipeline:edit", …]`.
    scopes: Vec<String>,
    /// Days until it expires (none: until revoked).
    expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// Shown only now: store it safely. Send as `Authorization: Bearer <token>`.
    token: String,
}

/// Creates an API token acting as you, limited to its scopes.
#[utoipa::path(post, path = "/api/me/tokens", tag = "auth", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 422)))]
async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if matches!(actor.via, AuthVia::Token { .. }) {
        return Err(ApiError::forbidden(
            "API tokens cannot create other tokens; log in",
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "a token needs a name (at most 100 characters)",
        )
        .with_field("name", "required"));
    }
    let scopes = TokenScopes::parse(&body.scopes).map_err(|m| {
        ApiError::unprocessable("invalid_scopes", m.clone()).with_field("scopes", m)
    })?;
    let expires_at = match body.expires_in_days {
        Some(0) => {
            return Err(ApiError::unprocessable(
                "invalid_expiry",
                "expires_in_days must be at least 1",
            )
            .with_field("expires_in_days", "at least 1"));
        }
        Some(days) => Some(Timestamp::from(
            Timestamp::now().as_datetime() + chrono::Duration::days(i64::from(days.min(3650))),
        )),
        None => None,
    };
    let mut tx = state.db.begin().await?;
    let (info, token) = tokens::create(&mut tx, actor.user_id, name, &scopes, expires_at).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("token.created", Some(&actor), &client)
            .target("api_token", info.id)
            .details(serde_json::json!({"name": info.name, "scopes": info.scopes})),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { info, token })))
}

/// Revokes one of your API tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/me/tokens/{id}", tag = "auth", params(("id" = TokenId, Path)),
    responses((status = 204), (status = 404)))]
async fn revoke_token(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<TokenId>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    if !tokens::revoke(&mut tx, actor.user_id, id).await? {
        return Err(ApiError::not_found("token"));
    }
    audit::record(
        &mut tx,
        AuditEntry::new("token.revoked", Some(&actor), &client).target("api_token", id),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
