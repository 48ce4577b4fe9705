//! Admin routes for the definitions at run time: the set in force, stored versions and
//! their diff, validate, reload, dry run. Viewing needs `definitions:view`; validating,
//! reloading and dry runs need `definitions:edit`.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::diff::{self, Diff};
use super::dry_run::{self, DryRun, Simulation};
use super::{Applied, DiagnosticInfo, Origin, Who};
use crate::app::AppState;
use crate::audit::ClientInfo;
use crate::definitions::{Definitions, SourceSet, source::ROOTS};
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission};
use crate::types::Timestamp;
use crate::types::ids::CardId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(get_diff))
        .routes(routes!(validate))
        .routes(routes!(reload))
        .routes(routes!(dry_run))
}

/// Largest number of files in a candidate set.
const MAX_FILES: usize = 2_000;

/// A definition set sent by a client. Neither field: the set in force (validate, dry run)
/// or the server's own folder (reload).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The whole set: relative path (`workflows/sales.yaml`) → text.
    files: Option<BTreeMap<String, String>>,
    /// Changes to the set in force: path → new text, or `null` to delete the file.
    changes: Option<BTreeMap<String, Option<String>>>,
}

impl Candidate {
    /// The candidate's files, or None when it names none.
    fn sources(&self, current: &Definitions) -> Result<Option<SourceSet>, ApiError> {
        let check = |path: &str| -> Result<(), ApiError> {
            let ok = !path.is_empty()
                && path.len() <= 256
                && ROOTS.iter().any(|r| path.starts_with(&format!("{r}/")))
                && path.split('/').all(|part| {
                    !part.is_empty() && part != "." && part != ".." && !part.starts_with('.')
                })
                && !path.contains('\\')
                && !path.chars().any(char::is_control);
            if ok {
                Ok(())
            } else {
                Err(ApiError::unprocessable(
                    "invalid_path",
                    format!(
                        "`{}` is not a definition file path: use a relative path under workflows/, rules/ or templates/",
                        path.chars().take(80).collect::<String>()
                    ),
                ))
            }
        };
        match (&self.files, &self.changes) {
            (Some(_), Some(_)) => Err(ApiError::unprocessable(
                "invalid_body",
                "send either `files` (the whole set) or `changes` (edits to the set in force), not both",
            )),
            (None, None) => Ok(None),
            (Some(files), None) => {
                if files.len() > MAX_FILES {
                    return Err(ApiError::unprocessable(
                        "too_many_files",
                        format!("at most {MAX_FILES} files"),
                    ));
                }
                let mut set = SourceSet::new();
                for (path, text) in files {
                    check(path)?;
                    set.insert(path.clone(), text.clone());
                }
                Ok(Some(set))
            }
            (None, Some(changes)) => {
                let mut files: BTreeMap<String, Vec<u8>> = current
                    .sources
                    .files()
                    .map(|(p, c)| (p.to_string(), c.to_vec()))
                    .collect();
                for (path, text) in changes {
                    check(path)?;
                    match text {
                        Some(t) => files.insert(path.clone(), t.clone().into_bytes()),
                        None => files.remove(path),
                    };
                }
                if files.len() > MAX_FILES {
                    return Err(ApiError::unprocessable(
                        "too_many_files",
                        format!("at most {MAX_FILES} files"),
                    ));
                }
                let mut set = SourceSet::new();
                for (path, content) in files {
                    set.insert(path, content);
                }
                Ok(Some(set))
            }
        }
    }
}

/// One file of a set.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileInfo {
    pub path: String,
    pub bytes: usize,
    /// The file's text.
    pub content: String,
}

/// The set in force on this node.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentDefinitions {
    pub version: String,
    /// The stored current version (equal to `version` once this node has caught up).
    pub stored_version: Option<String>,
    pub generation: Option<i64>,
    pub files: Vec<FileInfo>,
}

fn file_infos(sources: &SourceSet) -> Vec<FileInfo> {
    sources
        .files()
        .map(|(path, content)| FileInfo {
            path: path.to_string(),
            bytes: content.len(),
            content: String::from_utf8_lossy(content).into_owned(),
        })
        .collect()
}

/// The definitions in force: version and every file.
#[utoipa::path(get, path = "/api/admin/definitions", tag = "definitions",
    responses((status = 200, body = CurrentDefinitions), (status = 403)))]
async fn current(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<CurrentDefinitions>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::View)?;
    let stored = super::current_stored(&state.db).await?;
    Ok(Json(CurrentDefinitions {
        version: defs.version.clone(),
        stored_version: stored.as_ref().map(|(v, _)| v.clone()),
        generation: stored.map(|(_, g)| g),
        files: file_infos(&defs.sources),
    }))
}

/// One activation: a version put in force.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Activation {
    pub version: String,
    pub previous_version: Option<String>,
    pub activated_at: Timestamp,
    pub activated_by: Option<String>,
    /// The user's name, when a user did it.
    pub activated_by_name: Option<String>,
    /// `startup`, `bootstrap`, `api`, `cli` or `signal`.
    pub origin: String,
    pub moved_cards: i64,
    pub file_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub current: Option<String>,
    /// Newest first.
    pub activations: Vec<Activation>,
}

/// Every activation, newest first (the latest 200).
#[utoipa::path(get, path = "/api/admin/definitions/versions", tag = "definitions",
    responses((status = 200, body = VersionList), (status = 403)))]
async fn list_versions(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<VersionList>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::View)?;
    let activations: Vec<Activation> = crate::read!(&state.db, pool => {
        sqlx::query_as(
            "SELECT a.version, a.previous_version, a.activated_at, a.activated_by, u.name AS activated_by_name,
                    a.origin, a.moved_cards, v.file_count
             FROM definition_activations a
             JOIN definition_versions v ON v.version = a.version
             LEFT JOIN users u ON u.id = a.activated_by
             ORDER BY a.activated_at DESC, a.id DESC LIMIT 200")
            .fetch_all(pool)
            .await
    })?;
    let current = super::current_stored(&state.db).await?.map(|(v, _)| v);
    Ok(Json(VersionList {
        current,
        activations,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoredVersion {
    pub version: String,
    pub files: Vec<FileInfo>,
}

/// The files of a stored version.
#[utoipa::path(get, path = "/api/admin/definitions/versions/{version}", tag = "definitions",
    params(("version" = String, Path)),
    responses((status = 200, body = StoredVersion), (status = 404)))]
async fn get_version(
    State(state): State<AppState>,
    actor: Actor,
    Path(version): Path<String>,
) -> Result<Json<StoredVersion>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::View)?;
    let sources = super::stored_sources(&state.db, &version)
        .await?
        .ok_or_else(|| ApiError::not_found("definitions version"))?;
    Ok(Json(StoredVersion {
        version,
        files: file_infos(&sources),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older version.
    from: String,
    /// The newer version (default: the one in force).
    to: Option<String>,
}

/// What changed between two stored versions: files, pipelines (stages, transitions,
/// actions), fields, activity kinds, work orders, reminders, roles, templates.
#[utoipa::path(get, path = "/api/admin/definitions/diff", tag = "definitions", params(DiffQuery),
    responses((status = 200, body = Diff), (status = 404)))]
async fn get_diff(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Diff>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::View)?;
    let cache = &state.versions;
    let from = cache
        .get(&state.db, &state.definitions, &q.from)
        .await?
        .ok_or_else(|| ApiError::not_found("definitions version `from`"))?;
    let to = match &q.to {
        Some(v) => cache
            .get(&state.db, &state.definitions, v)
            .await?
            .ok_or_else(|| ApiError::not_found("definitions version `to`"))?,
        None => defs,
    };
    Ok(Json(diff::diff(&from, &to)))
}

/// The verdict on a candidate set.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    /// The candidate's version id (present when it is valid).
    pub version: Option<String>,
    /// Errors first, then warnings.
    pub diagnostics: Vec<DiagnosticInfo>,
    /// What would change against the set in force (when valid).
    pub diff: Option<Diff>,
}

/// Validates a candidate set (the whole set, or changes to the one in force) without
/// applying it.
#[utoipa::path(post, path = "/api/admin/definitions/validate", tag = "definitions",
    request_body = Candidate,
    responses((status = 200, body = Validation), (status = 403), (status = 422)))]
async fn validate(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<Candidate>,
) -> Result<Json<Validation>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::Edit)?;
    let sources = body.sources(&defs)?.unwrap_or_else(|| defs.sources.clone());
    Ok(Json(match super::validate(sources).await {
        Ok((candidate, warnings)) => Validation {
            valid: true,
            version: Some(candidate.version.clone()),
            diagnostics: warnings.iter().map(DiagnosticInfo::from).collect(),
            diff: Some(diff::diff(&defs, &candidate)),
        },
        Err(super::ApplyError::Invalid(diagnostics)) => Validation {
            valid: false,
            version: None,
            diagnostics: diagnostics.iter().map(DiagnosticInfo::from).collect(),
            diff: None,
        },
        Err(super::ApplyError::Api(e)) => return Err(e),
    }))
}

/// Validates and applies a definition set on every node: the files sent (`files` or
/// `changes`), or else (`{}`) this server's own definitions folder. An invalid set changes
/// nothing and answers 422 `invalid_definitions` with every diagnostic; a set that
/// would strand cards in a removed stage is refused the same way.
#[utoipa::path(post, path = "/api/admin/definitions/reload", tag = "definitions",
    request_body = Candidate,
    responses((status = 200, body = Applied), (status = 403), (status = 422, body = crate::http::error::ErrorBody)))]
async fn reload(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Json(body): Json<Candidate>,
) -> Result<Json<Applied>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::Edit)?;
    let sources = match body.sources(&defs)? {
        Some(s) => s,
        None => super::local_sources(&state.config.definitions).map_err(|d| {
            ApiError::definitions(
                "the server's definitions folder cannot be read",
                vec![DiagnosticInfo::from(&d)],
            )
        })?,
    };
    let who = Who {
        actor: Some(&actor),
        origin: Origin::Api,
        client: &client,
    };
    Ok(Json(
        super::apply(&state.db, &state.definitions, sources, who).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    card_id: CardId,
    /// The target stage id.
    to: String,
    /// Card fields entered with the move.
    #[serde(default)]
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
    /// A candidate set to simulate instead of the one in force.
    #[serde(default)]
    definitions: Option<Candidate>,
}

/// What moving a card to a stage would do — the guard's verdict and reason, missing
/// fields, the timeline entries and the jobs with their parameters — without doing it.
#[utoipa::path(post, path = "/api/admin/definitions/dry-run", tag = "definitions",
    request_body = DryRunRequest,
    responses((status = 200, body = DryRun), (status = 404), (status = 422)))]
async fn dry_run(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<DryRunRequest>,
) -> Result<Json<DryRun>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Definitions, Permission::Edit)?;
    let candidate = match body
        .definitions
        .as_ref()
        .map(|c| c.sources(&defs))
        .transpose()?
    {
        Some(Some(sources)) => super::validate(sources).await?.0,
        _ => defs,
    };
    let simulation = Simulation {
        card: body.card_id,
        to: body.to,
        fields: body.fields,
        by: Some(actor.user_id),
        locale: actor.locale.clone(),
    };
    Ok(Json(
        dry_run::simulate(&state.db, &candidate, simulation).await?,
    ))
}
