//! The frame around every signed-in screen ([`Shell`]: top bar, side menu, the page's JSON
//! for the scripts) and the screens other than the board. Those are rendered in the browser
//! from the same API the scripts call (`ui/src/<screen>.js`); the server sends the frame,
//! a skeleton and what the scripts need to start (who the user is, what they may do, the
//! field definitions, the other users for pickers).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Value as Jinja;
use serde_json::{Value, json};

use super::{
    assets, catalogue, initials, name_in, page_actor, percent_encode, preferences, render,
    script_json, to_login, visible_pipelines,
};
use crate::app::AppState;
use crate::definitions::Definitions;
use crate::definitions::model::{Pipeline, Scope};
use crate::http::ApiError;
use crate::policy::{Actor, AuthVia, Module, Permission};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(customers))
        .route("/customers/{id}", get(customer))
        .route("/agenda", get(agenda))
        .route("/work-orders", get(work_orders))
        .route("/work-orders/{id}", get(work_order))
        .route("/admin", get(admin))
        .route("/admin/{section}", get(admin_section))
}

/// Everything a signed-in page shares, ready to render.
pub struct Shell {
    pub actor: Actor,
    pub lang: String,
    pub catalogue: BTreeMap<String, String>,
    /// What the page's scripts read from `#page-data` (screens add their own keys).
    pub page: serde_json::Map<String, Value>,
    /// The template's context (pages add their own keys).
    pub ctx: BTreeMap<String, Jinja>,
}

/// What the user may do, for the scripts to offer only allowed actions (the API decides).
fn abilities(defs: &Definitions, actor: &Actor) -> Value {
    let can = |m, p| actor.can(defs, m, p);
    let scope_all = actor.scope(defs) == Scope::All;
    let bulk = can(Module::Bulk, Permission::Bulk);
    json!({
        "edit": can(Module::Pipeline, Permission::Edit),
        "bulk": bulk,
        "assign": bulk && scope_all && can(Module::Customers, Permission::Edit),
        "scope_all": scope_all,
        "pipeline_view": can(Module::Pipeline, Permission::View),
        "customers_view": can(Module::Customers, Permission::View),
        "customers_edit": can(Module::Customers, Permission::Edit),
        "customers_export": can(Module::Customers, Permission::Export),
        "work_orders_view": can(Module::WorkOrders, Permission::View),
        "work_orders_edit": can(Module::WorkOrders, Permission::Edit),
        "admin_view": can(Module::Admin, Permission::View),
        "admin_edit": can(Module::Admin, Permission::Edit),
        "definitions_view": can(Module::Definitions, Permission::View),
        "definitions_edit": can(Module::Definitions, Permission::Edit),
    })
}

/// The side menu: the screens this user may open, `current` highlighted.
fn nav(defs: &Definitions, actor: &Actor, current: &str, board_href: Option<String>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut push = |key: &str, href: &str| {
        items.push(json!({"href": href, "label": format!("nav.{key}"), "current": key == current, "key": key}));
    };
    if let Some(href) = &board_href {
        push("board", href);
    }
    for (spec, href) in [
        (&CUSTOMERS, "/customers"),
        (&AGENDA, "/agenda"),
        (&WORK_ORDERS, "/work-orders"),
        (&ADMIN, "/admin"),
    ] {
        if (spec.allowed)(defs, actor) {
            push(spec.nav, href);
        }
    }
    if actor.can(defs, Module::Admin, Permission::View) {
        push("api", "/docs");
    }
    items
}

impl Shell {
    /// The frame for `actor`; `current` is the side-menu entry of the page, `pipeline` the
    /// board shown (the pipeline switcher selects it).
    pub async fn new(
        state: &AppState,
        actor: Actor,
        current: &str,
        pipeline: Option<&Pipeline>,
    ) -> Result<Shell, ApiError> {
        let defs = state.defs();
        let prefs = preferences::load(&state.db, actor.user_id, &actor.locale).await?;
        let lang = prefs.language.clone();
        let catalogue = catalogue(&lang);
        let unread = crate::notifications::unread_count(&state.db, actor.user_id).await?;
        let scope_all = actor.scope(&defs) == Scope::All;
        let users: Vec<Value> = if scope_all {
            crate::users::store::list(
                &state.db,
                &crate::users::store::UserFilter {
                    active: Some(true),
                    ..Default::default()
                },
            )
            .await?
            .into_iter()
            .map(|u| json!({"id": u.id, "name": u.name}))
            .collect()
        } else {
            vec![json!({"id": actor.user_id, "name": actor.name})]
        };
        let pipelines_visible = visible_pipelines(&defs, &actor);
        let pipelines: Vec<Value> = pipelines_visible
            .iter()
            .map(|p| {
                json!({
                    "id": p.id.as_str(),
                    "name": name_in(&lang, &p.name.tr, &p.name.en),
                    "stages": p.stages.iter().map(|s| json!({
                        "id": s.id.as_str(),
                        "name": name_in(&lang, &s.name.tr, &s.name.en),
                        "terminal": s.terminal,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let board_target = pipeline
            .or_else(|| {
                prefs.default_pipeline.as_deref().and_then(|id| {
                    pipelines_visible
                        .iter()
                        .copied()
                        .find(|p| p.id.as_str() == id)
                })
            })
            .or(pipelines_visible.first().copied());
        let board_href = board_target.map(|p| format!("/board/{}", percent_encode(p.id.as_str())));
        let describe =
            |fields: &[crate::definitions::model::FieldDef]| -> serde_json::Map<String, Value> {
                fields
                    .iter()
                    .map(|f| {
                        (
                            f.id.as_str().to_string(),
                            json!({
                                "type": f.kind,
                                "label": name_in(&lang, &f.label.tr, &f.label.en),
                                "options": f.options.iter().map(|o| json!({
                                    "id": o.id.as_str(),
                                    "label": name_in(&lang, &o.label.tr, &o.label.en),
                                })).collect::<Vec<_>>(),
                            }),
                        )
                    })
                    .collect()
            };
        let field_defs = describe(&defs.card_fields);
        let customer_fields = describe(&defs.customer_fields);
        let activity_kinds: Vec<Value> = defs
            .activity_kinds
            .iter()
            .map(|k| {
                json!({
                    "id": k.id.as_str(),
                    "label": name_in(&lang, &k.name.tr, &k.name.en),
                    "outcomes": k.outcomes.iter().map(|o| json!({
                        "id": o.id.as_str(),
                        "label": name_in(&lang, &o.name.tr, &o.name.en),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let csrf = match &actor.via {
            AuthVia::Session { csrf_token, .. } => csrf_token.clone(),
            AuthVia::Token { .. } => String::new(),
        };
        let can = abilities(&defs, &actor);
        let nav = nav(&defs, &actor, current, board_href);
        let mut page = serde_json::Map::new();
        page.insert("lang".into(), json!(lang));
        page.insert("csrf".into(), json!(csrf));
        page.insert(
            "user".into(),
            json!({"id": actor.user_id, "name": actor.name, "role": actor.role}),
        );
        page.insert("can".into(), can.clone());
        page.insert("users".into(), json!(users));
        page.insert("timezone".into(), json!(state.config.timezone.name()));
        page.insert("field_defs".into(), Value::Object(field_defs));
        page.insert("customer_fields".into(), Value::Object(customer_fields));
        page.insert("activity_kinds".into(), json!(activity_kinds));
        page.insert("pipelines".into(), json!(pipelines));
        page.insert("list_columns".into(), json!(prefs.list_columns));
        if actor.can(&defs, Module::WorkOrders, Permission::View) {
            let orders: Vec<Value> = defs
                .work_orders
                .iter()
                .map(|w| json!({"id": w.id.as_str(), "name": name_in(&lang, &w.name.tr, &w.name.en)}))
                .collect();
            page.insert("work_order_defs".into(), json!(orders));
        }

        let mut ctx = BTreeMap::new();
        let serde = |v: &Value| Jinja::from(minijinja::value::Serde(v.clone()));
        ctx.insert("lang".into(), Jinja::from(lang.clone()));
        ctx.insert("theme".into(), Jinja::from(prefs.theme.as_str()));
        ctx.insert(
            "assets_built".into(),
            Jinja::from(assets::BUILT || assets::dev_root().is_some()),
        );
        ctx.insert("asset_version".into(), Jinja::from(assets::version()));
        ctx.insert(
            "definitions_version".into(),
            Jinja::from(state.definitions.version()),
        );
        ctx.insert(
            "catalogue".into(),
            Jinja::from(minijinja::value::Serde(catalogue.clone())),
        );
        ctx.insert("pipelines".into(), serde(&json!(pipelines)));
        ctx.insert(
            "pipeline".into(),
            match pipeline {
                Some(p) => serde(
                    &json!({"id": p.id.as_str(), "name": name_in(&lang, &p.name.tr, &p.name.en)}),
                ),
                None => Jinja::from(()),
            },
        );
        ctx.insert("unread".into(), Jinja::from(unread));
        ctx.insert(
            "user".into(),
            serde(&json!({"name": actor.name, "initials": initials(&actor.name)})),
        );
        ctx.insert("nav".into(), serde(&json!(nav)));
        ctx.insert("can".into(), serde(&can));
        ctx.insert("users".into(), serde(&json!(users)));
        Ok(Shell {
            actor,
            lang,
            catalogue,
            page,
            ctx,
        })
    }

    pub fn label(&self, key: &str) -> String {
        self.catalogue
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// Renders `template` with the shell's context and the page JSON.
    pub fn render(mut self, template: &str) -> Response {
        // The scripts get the strings of their screen only: the admin and agenda screens'
        // own catalogues are the largest and no other screen uses them.
        let screen = self
            .page
            .get("screen")
            .and_then(Value::as_str)
            .unwrap_or("");
        let scripts_catalogue: BTreeMap<&String, &String> = self
            .catalogue
            .iter()
            .filter(|(key, _)| {
                !(key.starts_with("admin.") && screen != "admin"
                    || key.starts_with("agenda.") && screen != "agenda")
            })
            .collect();
        self.ctx
            .insert("catalogue_json".into(), script_json(&scripts_catalogue));
        self.ctx
            .insert("page_json".into(), script_json(&Value::Object(self.page)));
        render(template, Jinja::from(self.ctx))
    }
}

/// A screen rendered in the browser: `screen` names the script (`ui/src/app.js` routes on
/// it); the page's `params` say what it shows.
struct Spec {
    /// The script's name (`page.screen`).
    screen: &'static str,
    /// The side-menu entry highlighted.
    nav: &'static str,
    /// The catalogue key of the page title.
    title: &'static str,
    /// Whether a user may open it (the API still decides every call).
    allowed: fn(&Definitions, &Actor) -> bool,
}

fn everyone(_: &Definitions, _: &Actor) -> bool {
    true
}

fn customers_allowed(defs: &Definitions, actor: &Actor) -> bool {
    actor.can(defs, Module::Customers, Permission::View)
}

fn work_orders_allowed(defs: &Definitions, actor: &Actor) -> bool {
    actor.can(defs, Module::WorkOrders, Permission::View)
}

fn admin_allowed(defs: &Definitions, actor: &Actor) -> bool {
    actor.can(defs, Module::Admin, Permission::View)
        || actor.can(defs, Module::Definitions, Permission::View)
}

const CUSTOMERS: Spec = Spec {
    screen: "customers",
    nav: "customers",
    title: "nav.customers",
    allowed: customers_allowed,
};
const CUSTOMER: Spec = Spec {
    screen: "customer",
    nav: "customers",
    title: "customer.title",
    allowed: customers_allowed,
};
const AGENDA: Spec = Spec {
    screen: "agenda",
    nav: "agenda",
    title: "nav.agenda",
    allowed: everyone,
};
const WORK_ORDERS: Spec = Spec {
    screen: "work_orders",
    nav: "work_orders",
    title: "nav.work_orders",
    allowed: work_orders_allowed,
};
const WORK_ORDER: Spec = Spec {
    screen: "work_order",
    nav: "work_orders",
    title: "work_order.title",
    allowed: work_orders_allowed,
};
const ADMIN: Spec = Spec {
    screen: "admin",
    nav: "admin",
    title: "nav.admin",
    allowed: admin_allowed,
};

/// The page of `spec` with `params`: the login page without a session, a JSON 403 (in the
/// user's language) when the role may not open it.
async fn screen(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    spec: &Spec,
    params: Value,
) -> Response {
    let page = async {
        let Some(actor) = page_actor(state, headers).await? else {
            return Ok(to_login(uri));
        };
        if !(spec.allowed)(&state.defs(), &actor) {
            return Err(ApiError::forbidden(
                catalogue(&actor.locale)
                    .get("screen.forbidden")
                    .cloned()
                    .unwrap_or_default(),
            ));
        }
        let mut shell = Shell::new(state, actor, spec.nav, None).await?;
        let title = shell.label(spec.title);
        shell.page.insert("screen".into(), json!(spec.screen));
        shell.page.insert("params".into(), params);
        shell.ctx.insert("screen".into(), Jinja::from(spec.screen));
        shell.ctx.insert("title".into(), Jinja::from(title));
        Ok::<_, ApiError>(shell.render("screen.html"))
    };
    page.await.unwrap_or_else(IntoResponse::into_response)
}

/// The URL's query as a JSON object of strings, for the screen's script.
fn query_json(uri: &Uri) -> Value {
    uri.query()
        .and_then(super::serde_urlencoded_lite::<Value>)
        .unwrap_or_else(|| json!({}))
}

async fn customers(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let params = json!({"query": query_json(&uri)});
    screen(&state, &headers, &uri, &CUSTOMERS, params).await
}

async fn customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    screen(&state, &headers, &uri, &CUSTOMER, json!({"id": id})).await
}

async fn agenda(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let params = json!({"query": query_json(&uri)});
    screen(&state, &headers, &uri, &AGENDA, params).await
}

async fn work_orders(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let params = json!({"query": query_json(&uri)});
    screen(&state, &headers, &uri, &WORK_ORDERS, params).await
}

async fn work_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    screen(&state, &headers, &uri, &WORK_ORDER, json!({"id": id})).await
}

/// The admin screen's sections.
pub const ADMIN_SECTIONS: [&str; 4] = ["users", "definitions", "jobs", "audit"];

async fn admin(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    admin_page(&state, "users", &headers, &uri).await
}

async fn admin_section(
    State(state): State<AppState>,
    Path(section): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !ADMIN_SECTIONS.contains(&section.as_str()) {
        return ApiError::not_found("admin section").into_response();
    }
    admin_page(&state, &section, &headers, &uri).await
}

async fn admin_page(state: &AppState, section: &str, headers: &HeaderMap, uri: &Uri) -> Response {
    let params = json!({"section": section, "query": query_json(uri)});
    screen(state, headers, uri, &ADMIN, params).await
}
