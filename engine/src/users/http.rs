//! User and team management (admin), and offboarding.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::offboarding::{self, HandoverTarget, OffboardingPreview, OffboardingReport};
use super::store::{self, NewUser, UserChanges, UserFilter};
use super::{LOCALES, Team, User};
use crate::app::AppState;
use crate::audit::{self, AuditEntry, ClientInfo};
use crate::auth::{self, sessions, tokens};
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission, TeamId};
use crate::types::Email;
use crate::types::ids::UserId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(reset_password))
        .routes(routes!(preview_offboarding))
        .routes(routes!(offboard_user))
        .routes(routes!(list_teams, create_team))
}

fn require_admin(state: &AppState, actor: &Actor, permission: Permission) -> Result<(), ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Admin, permission)
}

fn check_role(state: &AppState, role: &str) -> Result<(), ApiError> {
    let defs = state.defs();
    if defs.role(role).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = defs.roles.iter().map(|r| r.id.as_str()).collect();
    Err(
        ApiError::unprocessable("unknown_role", format!("unknown role `{role}`"))
            .with_field("role", format!("must be one of: {}", known.join(", "))),
    )
}

fn check_locale(locale: &str) -> Result<(), ApiError> {
    if LOCALES.contains(&locale) {
        Ok(())
    } else {
        Err(
            ApiError::unprocessable("invalid_locale", "unsupported language")
                .with_field("locale", "must be `tr` or `en`"),
        )
    }
}

async fn check_team(state: &AppState, team: Option<TeamId>) -> Result<(), ApiError> {
    match team {
        Some(id) if store::get_team(&state.db, id).await?.is_none() => {
            Err(ApiError::unprocessable("unknown_team", "no such team")
                .with_field("team_id", "no such team"))
        }
        _ => Ok(()),
    }
}

fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|e| {
        ApiError::unprocessable("invalid_email", e.to_string())
            .with_field("email", "not a valid email address")
    })
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "a name is required (at most 200 characters)",
        )
        .with_field("name", "required"));
    }
    Ok(name.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UserListQuery {
    /// Only active (true) or deactivated (false) users.
    active: Option<bool>,
    team_id: Option<TeamId>,
    role: Option<String>,
}

/// All users (admin).
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(UserListQuery),
    responses((status = 200, body = Vec<User>), (status = 401), (status = 403)))]
async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<UserListQuery>,
) -> Result<Json<Vec<User>>, ApiError> {
    require_admin(&state, &actor, Permission::View)?;
    let filter = UserFilter {
        active: q.active,
        team_id: q.team_id,
        role: q.role,
    };
    Ok(Json(store::list(&state.db, &filter).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    name: String,
    role: String,
    #[serde(default)]
    team_id: Option<TeamId>,
    /// At least 8 characters.
    password: String,
    /// `tr` (default) or `en`.
    #[serde(default)]
    locale: Option<String>,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, description = "email in use"), (status = 422)))]
async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Json(body): Json<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    let email = parse_email(&body.email)?;
    let name = check_name(&body.name)?;
    check_role(&state, &body.role)?;
    let locale = body.locale.unwrap_or_else(|| "tr".into());
    check_locale(&locale)?;
    check_team(&state, body.team_id).await?;
    auth::check_password_policy(&body.password).map_err(|m| {
        ApiError::unprocessable("weak_password", m.clone()).with_field("password", m)
    })?;
    let password_hash = auth::hash_password(&body.password).await?;
    let mut tx = state.db.begin().await?;
    let user = store::insert(
        &mut tx,
        NewUser {
            email,
            name,
            role: body.role,
            team_id: body.team_id,
            password_hash,
            locale,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::new("user.created", Some(&actor), &client)
            .target("user", user.id)
            .details(serde_json::json!({"email": user.email, "role": user.role})),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user (admin).
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = 404)))]
async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<UserId>,
) -> Result<Json<User>, ApiError> {
    require_admin(&state, &actor, Permission::View)?;
    store::get(&state.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// The `version` you last saw; 409 when someone changed the user since.
    expected_version: i64,
    email: Option<String>,
    name: Option<String>,
    role: Option<String>,
    /// `null` removes the user from their team.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<TeamId>)]
    team_id: Option<Option<TeamId>>,
    locale: Option<String>,
}

/// Edits a user (admin). A role change takes effect on the user's next request.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", params(("id" = UserId, Path)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 404), (status = 409, description = "stale version or email in use"), (status = 422)))]
async fn update_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<UserId>,
    Json(body): Json<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    let changes = UserChanges {
        email: body.email.as_deref().map(parse_email).transpose()?,
        name: body.name.as_deref().map(check_name).transpose()?,
        role: match body.role {
            Some(role) => {
                check_role(&state, &role)?;
                Some(role)
            }
            None => None,
        },
        team_id: match body.team_id {
            Some(team) => {
                check_team(&state, team).await?;
                Some(team)
            }
            None => None,
        },
        locale: match body.locale {
            Some(locale) => {
                check_locale(&locale)?;
                Some(locale)
            }
            None => None,
        },
    };
    let mut tx = state.db.begin().await?;
    let before = store::get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let user = store::update(&mut tx, id, body.expected_version, &changes).await?;
    if before.role != user.role {
        audit::record(
            &mut tx,
            AuditEntry::new("user.role_changed", Some(&actor), &client)
                .target("user", user.id)
                .details(serde_json::json!({"from": before.role, "to": user.role})),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        AuditEntry::new("user.updated", Some(&actor), &client).target("user", user.id),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(user))
}

/// Deactivates a user at once: their sessions end and their tokens are revoked. Their
/// records stay with them (use offboarding to hand them over).
#[utoipa::path(post, path = "/api/admin/users/{id}/deactivate", tag = "admin", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = 404), (status = 422)))]
async fn deactivate_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<UserId>,
) -> Result<Json<User>, ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    if id == actor.user_id {
        return Err(ApiError::unprocessable(
            "invalid_deactivation",
            "you cannot deactivate yourself",
        ));
    }
    let mut tx = state.db.begin().await?;
    if !store::set_active(&mut tx, id, false).await? {
        return Err(ApiError::not_found("user"));
    }
    let ended = sessions::delete_for_user(&mut tx, id, None).await?;
    let revoked = tokens::revoke_all_for_user(&mut tx, id).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("user.deactivated", Some(&actor), &client)
            .target("user", id)
            .details(serde_json::json!({"sessions_ended": ended, "tokens_revoked": revoked})),
    )
    .await?;
    let user = store::get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(Json(user))
}

/// Reactivates a user.
#[utoipa::path(post, path = "/api/admin/users/{id}/reactivate", tag = "admin", params(("id" = UserId, Path)),
    responses((status = 200, body = User), (status = 404)))]
async fn reactivate_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<UserId>,
) -> Result<Json<User>, ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    let mut tx = state.db.begin().await?;
    if !store::set_active(&mut tx, id, true).await? {
        return Err(ApiError::not_found("user"));
    }
    audit::record(
        &mut tx,
        AuditEntry::new("user.reactivated", Some(&actor), &client).target("user", id),
    )
    .await?;
    let user = store::get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(Json(user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    new_password: String,
}

/// Sets a new password for a user (admin); all their sessions end.
#[utoipa::path(post, path = "/api/admin/users/{id}/password", tag = "admin", params(("id" = UserId, Path)), request_body = ResetPassword,
    responses((status = 204), (status = 404), (status = 422)))]
async fn reset_password(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<UserId>,
    Json(body): Json<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    auth::check_password_policy(&body.new_password).map_err(|m| {
        ApiError::unprocessable("weak_password", m.clone()).with_field("new_password", m)
    })?;
    if store::get(&state.db, id).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let hash = auth::hash_password(&body.new_password).await?;
    let mut tx = state.db.begin().await?;
    store::set_password(&mut tx, id, &hash).await?;
    sessions::delete_for_user(&mut tx, id, None).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("user.password_reset", Some(&actor), &client).target("user", id),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HandoverQuery {
    /// Hand everything to this user…
    to_user: Option<UserId>,
    /// …or round-robin over this team's other active members.
    to_team: Option<TeamId>,
}

fn target(to_user: Option<UserId>, to_team: Option<TeamId>) -> Result<HandoverTarget, ApiError> {
    match (to_user, to_team) {
        (Some(u), None) => Ok(HandoverTarget::User(u)),
        (None, Some(t)) => Ok(HandoverTarget::Team(t)),
        _ => Err(ApiError::unprocessable(
            "invalid_handover",
            "name exactly one receiver: a user or a team",
        )),
    }
}

/// What offboarding this user would do (admin). Changes nothing.
#[utoipa::path(get, path = "/api/admin/users/{id}/offboarding", tag = "admin", params(("id" = UserId, Path), HandoverQuery),
    responses((status = 200, body = OffboardingPreview), (status = 404), (status = 422)))]
async fn preview_offboarding(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<UserId>,
    Query(q): Query<HandoverQuery>,
) -> Result<Json<OffboardingPreview>, ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    let target = target(q.to_user, q.to_team)?;
    Ok(Json(offboarding::preview(&state.db, id, target).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardRequest {
    to_user: Option<UserId>,
    to_team: Option<TeamId>,
}

/// Offboards a user in one step (admin): deactivates them, ends their sessions, revokes
/// their tokens and hands their records over.
#[utoipa::path(post, path = "/api/admin/users/{id}/offboard", tag = "admin", params(("id" = UserId, Path)), request_body = OffboardRequest,
    responses((status = 200, body = OffboardingReport), (status = 404), (status = 422)))]
async fn offboard_user(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<UserId>,
    Json(body): Json<OffboardRequest>,
) -> Result<Json<OffboardingReport>, ApiError> {
    let defs = state.defs();
    require_admin(&state, &actor, Permission::Edit)?;
    let target = target(body.to_user, body.to_team)?;
    Ok(Json(
        offboarding::offboard(&state.db, &actor, id, target, &client, &defs).await?,
    ))
}

/// All teams (admin).
#[utoipa::path(get, path = "/api/admin/teams", tag = "admin", responses((status = 200, body = Vec<Team>)))]
async fn list_teams(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<Team>>, ApiError> {
    require_admin(&state, &actor, Permission::View)?;
    Ok(Json(store::list_teams(&state.db).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
}

/// Creates a team (admin).
#[utoipa::path(post, path = "/api/admin/teams", tag = "admin", request_body = CreateTeam,
    responses((status = 201, body = Team), (status = 409), (status = 422)))]
async fn create_team(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Json(body): Json<CreateTeam>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    require_admin(&state, &actor, Permission::Edit)?;
    let name = check_name(&body.name)
        .map_err(|_| ApiError::unprocessable("invalid_name", "a team name is required"))?;
    let mut tx = state.db.begin().await?;
    let team = store::insert_team(&mut tx, &name).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("team.created", Some(&actor), &client).target("team", team.id),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(team)))
}
