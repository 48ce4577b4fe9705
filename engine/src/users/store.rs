//! Queries for users and teams.

use crate::exec;
use crate::http::ApiError;
use crate::http::error::is_unique_violation;
use crate::policy::TeamId;
use crate::storage::{Db, Tx};
use crate::types::ids::UserId;
use crate::types::{Email, Timestamp};

use super::{Team, User};

const USER_COLUMNS: &str = "id, email, name, role, team_id, active, locale, version, created_at, updated_at, deactivated_at, last_login_at";

/// What is needed to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub name: String,
    pub role: String,
    pub team_id: Option<TeamId>,
    pub password_hash: String,
    pub locale: String,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub name: Option<String>,
    pub role: Option<String>,
    /// `Some(None)` removes the user from their team.
    pub team_id: Option<Option<TeamId>>,
    pub locale: Option<String>,
}

pub async fn insert(tx: &mut Tx, new: NewUser) -> Result<User, ApiError> {
    let now = Timestamp::now();
    let user = User {
        id: UserId::new(),
        email: new.email.as_str().to_string(),
        name: new.name,
        role: new.role,
        team_id: new.team_id,
        active: true,
        locale: new.locale,
        version: 1,
        created_at: now,
        updated_at: now,
        deactivated_at: None,
        last_login_at: None,
    };
    let result = exec!(tx, conn => sqlx::query(
        "INSERT INTO users (id, email, name, role, team_id, password_hash, active, locale, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(&user.role)
    .bind(user.team_id)
    .bind(&new.password_hash)
    .bind(user.active)
    .bind(&user.locale)
    .bind(user.version)
    .bind(now)
    .execute(conn)
    .await.map(|r| r.rows_affected()));
    match result {
        Ok(_) => Ok(user),
        Err(e) if is_unique_violation(&e, "email") => Err(email_taken()),
        Err(e) => Err(e.into()),
    }
}

fn email_taken() -> ApiError {
    ApiError::conflict("email_taken", "another user already has this email address")
        .with_field("email", "already in use")
}

pub async fn get(db: &Db, id: UserId) -> Result<Option<User>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await
    })
}

pub async fn get_in(tx: &mut Tx, id: UserId) -> Result<Option<User>, sqlx::Error> {
    exec!(tx, conn => sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await)
}

/// The user and password hash for a login attempt.
pub async fn find_for_login(db: &Db, email: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let row: Option<Row> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1")))
            .bind(email)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

pub async fn password_hash(db: &Db, id: UserId) -> Result<Option<String>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1").bind(id).fetch_optional(pool).await
    })
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub active: Option<bool>,
    pub team_id: Option<TeamId>,
    pub role: Option<String>,
}

pub async fn list(db: &Db, filter: &UserFilter) -> Result<Vec<User>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE ($1 IS NULL OR active = $1) AND ($2 IS NULL OR team_id = $2) AND ($3 IS NULL OR role = $3)
             ORDER BY name, id"
        )))
        .bind(filter.active)
        .bind(filter.team_id)
        .bind(&filter.role)
        .fetch_all(pool)
        .await
    })
}

/// Applies `changes` if the user is still at `expected_version`; 409 otherwise.
pub async fn update(
    tx: &mut Tx,
    id: UserId,
    expected_version: i64,
    changes: &UserChanges,
) -> Result<User, ApiError> {
    let Some(current) = get_in(tx, id).await? else {
        return Err(ApiError::not_found("user"));
    };
    if current.version != expected_version {
        return Err(stale(current.version));
    }
    let email = changes
        .email
        .as_ref()
        .map_or(current.email.clone(), |e| e.as_str().to_string());
    let name = changes.name.clone().unwrap_or(current.name.clone());
    let role = changes.role.clone().unwrap_or(current.role.clone());
    let team_id = changes.team_id.unwrap_or(current.team_id);
    let locale = changes.locale.clone().unwrap_or(current.locale.clone());
    let now = Timestamp::now();
    let result = exec!(tx, conn => sqlx::query(
        "UPDATE users SET email = $1, name = $2, role = $3, team_id = $4, locale = $5, version = version + 1, updated_at = $6
         WHERE id = $7 AND version = $8",
    )
    .bind(&email)
    .bind(&name)
    .bind(&role)
    .bind(team_id)
    .bind(&locale)
    .bind(now)
    .bind(id)
    .bind(expected_version)
    .execute(conn)
    .await.map(|r| r.rows_affected()));
    match result {
        Ok(1) if role != current.role => {
            // A new role applies to the user's open sockets at once.
            crate::realtime::log::access_changed(tx, id, None).await?;
        }
        Ok(1) => {}
        Ok(_) => return Err(stale(current.version)),
        Err(e) if is_unique_violation(&e, "email") => return Err(email_taken()),
        Err(e) => return Err(e.into()),
    }
    get_in(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

fn stale(current: i64) -> ApiError {
    ApiError::conflict(
        "stale_version",
        format!(
            "this user was changed by someone else (now at version {current}); reload and try again"
        ),
    )
}

pub async fn set_password(tx: &mut Tx, id: UserId, hash: &str) -> Result<(), sqlx::Error> {
    exec!(tx, conn => sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(Timestamp::now())
        .bind(id)
        .execute(conn)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Activates or deactivates; returns false when the user does not exist.
pub async fn set_active(tx: &mut Tx, id: UserId, active: bool) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    let deactivated_at = (!active).then_some(now);
    let done = exec!(tx, conn => sqlx::query(
        "UPDATE users SET active = $1, deactivated_at = $2, version = version + 1, updated_at = $3 WHERE id = $4",
    )
    .bind(active)
    .bind(deactivated_at)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await.map(|r| r.rows_affected()))?;
    if done == 1 {
        crate::realtime::log::access_changed(tx, id, None).await?;
    }
    Ok(done == 1)
}

pub async fn record_login(tx: &mut Tx, id: UserId) -> Result<(), sqlx::Error> {
    exec!(tx, conn => sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(Timestamp::now())
        .bind(id)
        .execute(conn)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    crate::read!(db, pool => { sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await })
}

// ------------------------------------------------------------------ teams

pub async fn insert_team(tx: &mut Tx, name: &str) -> Result<Team, ApiError> {
    let team = Team {
        id: TeamId::new(),
        name: name.to_string(),
        created_at: Timestamp::now(),
    };
    let result = exec!(tx, conn => sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(team.id)
        .bind(&team.name)
        .bind(team.created_at)
        .execute(conn)
        .await.map(|r| r.rows_affected()));
    match result {
        Ok(_) => Ok(team),
        Err(e) if is_unique_violation(&e, "name") => Err(ApiError::conflict(
            "team_exists",
            "a team with this name already exists",
        )
        .with_field("name", "already in use")),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_team(db: &Db, id: TeamId) -> Result<Option<Team>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as("SELECT id, name, created_at FROM teams WHERE id = $1").bind(id).fetch_optional(pool).await
    })
}

pub async fn list_teams(db: &Db) -> Result<Vec<Team>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as("SELECT id, name, created_at FROM teams ORDER BY name").fetch_all(pool).await
    })
}

/// Creates a user from the command line (`akis user create`), validating like the API.
pub async fn create_from_cli(
    db: &Db,
    definitions: &crate::definitions::Definitions,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> anyhow::Result<User> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "a name is required");
    if definitions.role(role).is_none() {
        let known: Vec<&str> = definitions.roles.iter().map(|r| r.id.as_str()).collect();
        anyhow::bail!(
            "unknown role `{role}`; the definitions have: {}",
            known.join(", ")
        );
    }
    crate::auth::check_password_policy(password).map_err(|m| anyhow::anyhow!("password: {m}"))?;
    let password_hash = crate::auth::hash_password(password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = db.begin().await?;
    let user = insert(
        &mut tx,
        NewUser {
            email,
            name: name.to_string(),
            role: role.to_string(),
            team_id: None,
            password_hash,
            locale: "tr".into(),
        },
    )
    .await
    .map_err(|e| match e {
        ApiError::Client { message, .. } | ApiError::Definitions { message, .. } => {
            anyhow::anyhow!(message)
        }
        ApiError::Internal(e) => e,
    })?;
    let client = crate::audit::ClientInfo::default();
    crate::audit::record(
        &mut tx,
        crate::audit::AuditEntry::new("user.created", None, &client)
            .label("akis user create")
            .target("user", user.id)
            .details(serde_json::json!({"email": user.email, "role": user.role})),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}
