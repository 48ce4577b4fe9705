//! The web UI: server-rendered HTML screens (minijinja templates in `templates/ui/`,
//! auto-escaped) enhanced by our own ES modules (`ui/src/`, bundled with the npm
//! libraries by `engine/build.rs`), plus the per-user preferences API.
//!
//! Pages live outside `/api`: `/login`, `/` (to the user's default board) and
//! `/board/{pipeline}`. They read the session cookie themselves and send a browser to
//! `/login` without one. Every page carries a strict Content-Security-Policy
//! (`default-src 'self'`): no inline script or style anywhere; data for the scripts travels
//! in `<script type="application/json">` blocks, which are never executed.
//!
//! The screens belong to the binary, not to a definition set (see
//! [`crate::definitions::source::UI_TEMPLATES`]): what a pipeline looks like comes from its
//! YAML at request time, but the templates themselves must match the embedded scripts.
//!
//! This module must never decide access on its own: it asks [`Actor::can`] and reads data
//! through the same queries (and policy filters) as the API.

pub mod assets;
pub mod preferences;
pub mod screens;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};
use minijinja::{Environment, Value as Jinja};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::crm::board::{self, Board};
use crate::crm::http::FilterQuery;
use crate::definitions::Definitions;
use crate::definitions::model::{Pipeline, Scope};
use crate::http::ApiError;
use crate::policy::{Actor, Module, Permission};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../templates/ui");

/// Cards per column in the first render (more load as a column scrolls).
pub const FIRST_PAGE: u32 = 30;

/// The policy every UI page is served with.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page))
        .route("/board/{pipeline}", get(board_page))
        .merge(screens::router())
        .merge(assets::router())
}

struct Ui {
    env: Environment<'static>,
    catalogues: BTreeMap<String, BTreeMap<String, String>>,
}

/// The language a catalogue file is for: `tr.json`, or `customer.tr.json` for one screen's
/// strings (all files of a language are merged).
fn catalogue_language(path: &str) -> Option<&str> {
    let name = path.strip_prefix("i18n/")?.strip_suffix(".json")?;
    Some(name.rsplit('.').next().unwrap_or(name))
}

fn load_ui(files: Vec<(String, String)>) -> Ui {
    let mut env = Environment::new();
    let mut catalogues: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (path, text) in files {
        if let Some(lang) = catalogue_language(&path) {
            match serde_json::from_str::<BTreeMap<String, String>>(&text) {
                Ok(map) => catalogues.entry(lang.to_string()).or_default().extend(map),
                Err(e) => tracing::error!(file = %path, error = %e, "bad UI catalogue"),
            }
        } else if path.ends_with(".html")
            && let Err(e) = env.add_template_owned(path.clone(), text)
        {
            tracing::error!(template = %path, error = %e, "bad UI template");
        }
    }
    env.add_function("t", |state: &minijinja::State, key: &str| -> String {
        state
            .lookup("catalogue")
            .and_then(|c| c.get_attr(key).ok())
            .filter(|v| !v.is_undefined() && !v.is_none())
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| key.to_string())
    });
    Ui { env, catalogues }
}

fn embedded_files() -> Vec<(String, String)> {
    let mut files: Vec<&include_dir::File<'_>> = TEMPLATES.files().collect();
    for dir in TEMPLATES.dirs() {
        files.extend(dir.files());
    }
    files
        .into_iter()
        .filter_map(|f| {
            let path = f.path().to_string_lossy().replace('\\', "/");
            f.contents_utf8().map(|t| (path, t.to_string()))
        })
        .collect()
}

/// `templates/ui` read from disk (development mode, see [`assets`]).
fn disk_files(root: &std::path::Path) -> Vec<(String, String)> {
    let base = root.join("templates/ui");
    let mut out = Vec::new();
    for dir in [base.clone(), base.join("i18n")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            if let (Ok(rel), Ok(text)) = (path.strip_prefix(&base), std::fs::read_to_string(&path))
            {
                out.push((rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    out
}

fn ui() -> std::sync::Arc<Ui> {
    if let Some(root) = assets::dev_root() {
        return std::sync::Arc::new(load_ui(disk_files(&root)));
    }
    static UI: OnceLock<std::sync::Arc<Ui>> = OnceLock::new();
    UI.get_or_init(|| std::sync::Arc::new(load_ui(embedded_files())))
        .clone()
}

/// The catalogue of `lang` (Turkish when unknown), English filling any gap.
pub fn catalogue(lang: &str) -> BTreeMap<String, String> {
    let ui = ui();
    let mut out = ui.catalogues.get("en").cloned().unwrap_or_default();
    let lang = if preferences::LANGUAGES.contains(&lang) {
        lang
    } else {
        "tr"
    };
    if let Some(own) = ui.catalogues.get(lang) {
        out.extend(own.clone());
    }
    out
}

/// JSON that may sit inside `<script type="application/json">`: no `<`, `>` or `&` can
/// end the element or open a comment.
fn script_json(value: &impl Serialize) -> Jinja {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let text = text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    Jinja::from_safe_string(text)
}

fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn render(name: &str, ctx: Jinja) -> Response {
    let result = ui()
        .env
        .get_template(name)
        .and_then(|template| template.render(ctx));
    match result {
        Ok(html) => page_headers(
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        ),
        Err(e) => {
            tracing::error!(template = name, error = %e, "UI template failed");
            ApiError::Internal(anyhow::anyhow!("the page could not be rendered")).into_response()
        }
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    page_headers(response)
}

/// A local path to return to after logging in (never another site).
fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.starts_with("/login")
        && next.len() <= 2000
        && next.chars().all(|c| !c.is_control());
    ok.then(|| next.to_string())
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The logged-in browser behind the request's session cookie, if any. API tokens are not
/// accepted here: pages are for browsers.
async fn page_actor(state: &AppState, headers: &HeaderMap) -> Result<Option<Actor>, ApiError> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == crate::auth::sessions::COOKIE_NAME)
        .map(|c| c.value().to_string());
    crate::auth::middleware::identify(state, None, cookie).await
}

fn to_login(uri: &Uri) -> Response {
    let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    redirect(&format!("/login?next={}", percent_encode(here)))
}

fn name_in(lang: &str, tr: &str, en: &str) -> String {
    if lang == "en" { en } else { tr }.to_string()
}

/// The pipelines a user may open, in definition order.
fn visible_pipelines<'a>(defs: &'a Definitions, actor: &Actor) -> Vec<&'a Pipeline> {
    if actor.can(defs, Module::Pipeline, Permission::View) {
        defs.pipelines.iter().collect()
    } else {
        Vec::new()
    }
}

async fn home(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let actor = match page_actor(&state, &headers).await {
        Ok(Some(actor)) => actor,
        Ok(None) => return to_login(&uri),
        Err(e) => return e.into_response(),
    };
    let defs = state.defs();
    let prefs = match preferences::load(&state.db, actor.user_id, &actor.locale).await {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let pipelines = visible_pipelines(&defs, &actor);
    let target = prefs
        .default_pipeline
        .as_deref()
        .and_then(|id| pipelines.iter().find(|p| p.id.as_str() == id))
        .or(pipelines.first());
    match target {
        Some(p) => redirect(&format!("/board/{}", percent_encode(p.id.as_str()))),
        // No board to show (a role without pipeline access): the agenda is everyone's.
        None => redirect("/agenda"),
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let query: LoginQuery = uri
        .query()
        .and_then(serde_urlencoded_lite)
        .unwrap_or(LoginQuery {
            next: None,
            lang: None,
        });
    let next = safe_next(query.next.as_deref());
    match page_actor(&state, &headers).await {
        Ok(Some(_)) => return redirect(next.as_deref().unwrap_or("/")),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let lang = query
        .lang
        .filter(|l| preferences::LANGUAGES.contains(&l.as_str()))
        .unwrap_or_else(|| "tr".into());
    let catalogue = catalogue(&lang);
    render(
        "login.html",
        minijinja::context! {
            lang => lang.clone(),
            theme => "system",
            assets_built => assets::BUILT,
            asset_version => assets::version(),
            definitions_version => state.definitions.version(),
            catalogue_json => script_json(&catalogue),
            catalogue => Jinja::from(minijinja::value::Serde(&catalogue)),
            next_encoded => percent_encode(next.as_deref().unwrap_or_default()),
            next => next.unwrap_or_default(),
        },
    )
}

/// `application/x-www-form-urlencoded` query into `T` through serde_json (the values are
/// strings).
fn serde_urlencoded_lite<T: for<'de> Deserialize<'de>>(query: &str) -> Option<T> {
    let pairs: serde_json::Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(Value::Object(pairs)).ok()
}

#[derive(Debug, Serialize)]
struct Choice {
    value: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct FilterDef {
    key: &'static str,
    label: &'static str,
    options: Vec<Choice>,
    selected: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct Distinct {
    v: String,
}

/// Distinct values of a customer column (or the tags) among the customers the viewer may
/// see, for a filter's options.
async fn distinct_values(
    state: &AppState,
    actor: &Actor,
    defs: &Definitions,
    what: &str,
) -> Result<Vec<String>, ApiError> {
    let policy = actor.record_filter(defs, Module::Pipeline);
    let mut sql = match what {
        "tags" => crate::crm::sql::Sql::new(
            "SELECT DISTINCT t.tag AS v FROM customer_tags t JOIN customers cu ON cu.id = t.customer_id WHERE 1 = 1",
        ),
        "campaign" => crate::crm::sql::Sql::new(
            "SELECT DISTINCT cu.campaign AS v FROM customers cu WHERE cu.campaign IS NOT NULL",
        ),
        _ => crate::crm::sql::Sql::new(
            "SELECT DISTINCT cu.source AS v FROM customers cu WHERE 1 = 1",
        ),
    };
    board::push_policy(&mut sql, &policy, "cu.id");
    sql.push(" ORDER BY v LIMIT 200");
    let rows = crate::sql_fetch_all!(&state.db, Distinct, &sql)?;
    Ok(rows.into_iter().map(|r| r.v).collect())
}

fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(|c| c.to_uppercase())
        .collect()
}

async fn board_page(
    State(state): State<AppState>,
    axum::extract::Path(pipeline_id): axum::extract::Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    match board_page_inner(&state, &pipeline_id, &headers, &uri).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn board_page_inner(
    state: &AppState,
    pipeline_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let Some(actor) = page_actor(state, headers).await? else {
        return Ok(to_login(uri));
    };
    let defs = state.defs();
    actor.require(&defs, Module::Pipeline, Permission::View)?;
    let pipeline = defs
        .pipeline(pipeline_id)
        .ok_or_else(|| ApiError::not_found("pipeline"))?;
    let query: FilterQuery = match uri.query() {
        Some(q) => serde_urlencoded_lite::<FilterQueryText>(q)
            .unwrap_or_default()
            .into_query()?,
        None => FilterQuery::default(),
    };
    let filter = query.to_filter()?;
    let policy = actor.record_filter(&defs, Module::Pipeline);
    let board: Board =
        board::board(&state.db, &defs, pipeline, &filter, &policy, FIRST_PAGE).await?;
    let scope_all = actor.scope(&defs) == Scope::All;
    let mut shell = screens::Shell::new(state, actor, "board", Some(pipeline)).await?;
    let lang = shell.lang.clone();
    let users = shell.page["users"].as_array().cloned().unwrap_or_default();

    let mut filter_defs = Vec::new();
    if scope_all {
        let mut options: Vec<Choice> = users
            .iter()
            .map(|u| Choice {
                value: u["id"].as_str().unwrap_or_default().to_string(),
                label: u["name"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        options.push(Choice {
            value: "none".into(),
            label: shell.label("filters.none_option"),
        });
        filter_defs.push(FilterDef {
            key: "owners",
            label: "filters.owners",
            options,
            selected: crate::crm::http::split_list(&query.owners),
        });
    }
    for (key, column, label_key, selected) in [
        ("sources", "source", "filters.sources", &query.sources),
        (
            "campaigns",
            "campaign",
            "filters.campaigns",
            &query.campaigns,
        ),
        ("tags", "tags", "filters.tags", &query.tags),
    ] {
        let values = distinct_values(state, &shell.actor, &defs, column).await?;
        filter_defs.push(FilterDef {
            key,
            label: label_key,
            options: values
                .into_iter()
                .map(|v| Choice {
                    value: v.clone(),
                    label: v,
                })
                .collect(),
            selected: crate::crm::http::split_list(selected),
        });
    }

    let columns: Vec<Value> = board
        .columns
        .iter()
        .map(|c| {
            json!({
                "id": c.stage.id,
                "name": name_in(&lang, &c.stage.name_tr, &c.stage.name_en),
                "count": c.count,
                "wip_limit": c.stage.wip_limit,
                "skeletons": c.cards.len().min(3),
            })
        })
        .collect();
    shell.page.insert("screen".into(), json!("board"));
    shell.page.insert("page_size".into(), json!(FIRST_PAGE));
    shell.page.insert(
        "pipeline".into(),
        json!({
            "id": pipeline.id.as_str(),
            "direction": match pipeline.card.order.direction {
                crate::definitions::model::Direction::Asc => "asc",
                crate::definitions::model::Direction::Desc => "desc",
            },
            "stages": pipeline.stages.iter().map(|s| json!({
                "id": s.id.as_str(),
                "name": name_in(&lang, &s.name.tr, &s.name.en),
                "terminal": s.terminal,
                "wip_limit": s.wip_limit,
                "required": defs.required_on_entry(pipeline.id.as_str(), s.id.as_str()),
            })).collect::<Vec<_>>(),
            "transitions": pipeline.transitions.iter().map(|t| json!({
                "from": t.from.as_str(),
                "to": t.to.as_str(),
                "asks": t.asks.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    );
    shell.page.insert("board".into(), json!(board));
    let serde = |v: Value| Jinja::from(minijinja::value::Serde(v));
    shell.ctx.insert("columns".into(), serde(json!(columns)));
    shell.ctx.insert(
        "filters".into(),
        serde(json!({"q": query.q.clone().unwrap_or_default(), "quality": query.emotional_min.map(|n| n.to_string()).unwrap_or_default()})),
    );
    shell
        .ctx
        .insert("filter_defs".into(), serde(json!(filter_defs)));
    Ok(shell.render("board.html"))
}

/// The board page's query string as text (a malformed number is a 400, as in the API).
#[derive(Debug, Default, Deserialize)]
struct FilterQueryText {
    owners: Option<String>,
    sources: Option<String>,
    campaigns: Option<String>,
    tags: Option<String>,
    emotional_min: Option<String>,
    q: Option<String>,
}

impl FilterQueryText {
    fn into_query(self) -> Result<FilterQuery, ApiError> {
        let emotional_min = match self.emotional_min.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) => Some(n.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_filter", "`emotional_min` takes a whole number")
            })?),
        };
        Ok(FilterQuery {
            owners: self.owners,
            sources: self.sources,
            campaigns: self.campaigns,
            tags: self.tags,
            emotional_min,
            q: self.q,
            ..FilterQuery::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/board/sales?q=a")).as_deref(),
            Some("/board/sales?q=a")
        );
        assert_eq!(safe_next(Some("//evil.example")), None);
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/\\evil.example")), None);
        assert_eq!(safe_next(Some("/login")), None);
        assert_eq!(safe_next(None), None);
    }

    #[test]
    fn json_in_a_script_block_cannot_close_it() {
        let v = script_json(&json!({"name": "</script><script>alert(1)</script>&"}));
        let text = v.to_string();
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script>&");
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let ui = ui();
        let tr: Vec<_> = ui.catalogues["tr"].keys().collect();
        let en: Vec<_> = ui.catalogues["en"].keys().collect();
        assert_eq!(tr, en);
        assert!(!tr.is_empty());
    }
}
