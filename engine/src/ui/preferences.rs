//! Per-user preferences of the web UI: theme, language, list columns, default pipeline
//! (`GET/PUT /api/me/preferences`). The language is the user's `locale`, so changing it
//! here also changes the language of their notifications and guard messages.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::definitions::Definitions;
use crate::exec;
use crate::http::{ApiError, Json};
use crate::policy::Actor;
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::UserId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_preferences, put_preferences))
}

/// The UI's colour theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the operating system (`prefers-color-scheme`).
    System,
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    fn parse(text: &str) -> Theme {
        match text {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::System,
        }
    }
}

/// The UI's languages.
pub const LANGUAGES: [&str; 2] = ["tr", "en"];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preferences {
    pub theme: Theme,
    /// `tr` or `en` (the user's locale).
    pub language: String,
    /// Field ids shown as columns of list views, in order (empty: the pipeline's card layout).
    pub list_columns: Vec<String>,
    /// The pipeline `/` opens; null: the first one the user may see.
    pub default_pipeline: Option<String>,
}

/// Changes to the preferences; omitted keys keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesChange {
    theme: Option<Theme>,
    language: Option<String>,
    list_columns: Option<Vec<String>>,
    /// A pipeline id, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    default_pipeline: Option<Option<String>>,
}

fn double_option<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

#[derive(sqlx::FromRow)]
struct Row {
    theme: String,
    list_columns: String,
    default_pipeline: Option<String>,
}

/// The user's preferences (defaults when they never saved any).
pub async fn load(db: &Db, user: UserId, locale: &str) -> Result<Preferences, sqlx::Error> {
    let row: Option<Row> = crate::read!(db, pool => {
        sqlx::query_as("SELECT theme, list_columns, default_pipeline FROM user_preferences WHERE user_id = $1")
            .bind(user)
            .fetch_optional(pool)
            .await?
    });
    let language = if LANGUAGES.contains(&locale) {
        locale
    } else {
        "tr"
    };
    Ok(match row {
        Some(row) => Preferences {
            theme: Theme::parse(&row.theme),
            language: language.to_string(),
            list_columns: serde_json::from_str(&row.list_columns).unwrap_or_default(),
            default_pipeline: row.default_pipeline,
        },
        None => Preferences {
            theme: Theme::System,
            language: language.to_string(),
            list_columns: Vec::new(),
            default_pipeline: None,
        },
    })
}

fn validate(defs: &Definitions, change: &PreferencesChange) -> Result<(), ApiError> {
    if let Some(language) = &change.language
        && !LANGUAGES.contains(&language.as_str())
    {
        return Err(
            ApiError::unprocessable("invalid_language", "`language` must be `tr` or `en`")
                .with_field("language", "tr or en"),
        );
    }
    if let Some(Some(pipeline)) = &change.default_pipeline
        && defs.pipeline(pipeline).is_none()
    {
        return Err(ApiError::unprocessable(
            "unknown_pipeline",
            format!(
                "there is no pipeline `{}`",
                pipeline.chars().take(64).collect::<String>()
            ),
        )
        .with_field("default_pipeline", "not a pipeline id"));
    }
    if let Some(columns) = &change.list_columns
        && (columns.len() > 50 || columns.iter().any(|c| c.is_empty() || c.len() > 64))
    {
        return Err(ApiError::unprocessable(
            "invalid_list_columns",
            "`list_columns` takes at most 50 field ids of 1 to 64 characters",
        )
        .with_field("list_columns", "at most 50 field ids"));
    }
    Ok(())
}

/// Your UI preferences.
#[utoipa::path(get, path = "/api/me/preferences", tag = "auth",
    responses((status = 200, body = Preferences)))]
async fn get_preferences(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Preferences>, ApiError> {
    Ok(Json(load(&state.db, actor.user_id, &actor.locale).await?))
}

/// Changes your UI preferences (omitted keys keep their value); `language` also sets the
/// language of your notifications and messages.
#[utoipa::path(put, path = "/api/me/preferences", tag = "auth", request_body = PreferencesChange,
    responses((status = 200, body = Preferences), (status = 422)))]
async fn put_preferences(
    State(state): State<AppState>,
    actor: Actor,
    Json(change): Json<PreferencesChange>,
) -> Result<Json<Preferences>, ApiError> {
    validate(&state.defs(), &change)?;
    let current = load(&state.db, actor.user_id, &actor.locale).await?;
    let next = Preferences {
        theme: change.theme.unwrap_or(current.theme),
        language: change.language.clone().unwrap_or(current.language.clone()),
        list_columns: change
            .list_columns
            .clone()
            .unwrap_or(current.list_columns.clone()),
        default_pipeline: change
            .default_pipeline
            .clone()
            .unwrap_or(current.default_pipeline.clone()),
    };
    let columns = serde_json::to_string(&next.list_columns).unwrap_or_else(|_| "[]".into());
    let now = Timestamp::now();
    let mut tx = state.db.begin().await?;
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO user_preferences (user_id, theme, list_columns, default_pipeline, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET theme = excluded.theme, list_columns = excluded.list_columns,
             default_pipeline = excluded.default_pipeline, updated_at = excluded.updated_at")
        .bind(actor.user_id).bind(next.theme.as_str()).bind(&columns)
        .bind(&next.default_pipeline).bind(now)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if next.language != current.language {
        exec!(&mut tx, conn => sqlx::query(
            "UPDATE users SET locale = $1, version = version + 1, updated_at = $2 WHERE id = $3")
            .bind(&next.language).bind(now).bind(actor.user_id)
            .execute(conn).await.map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(Json(next))
}
