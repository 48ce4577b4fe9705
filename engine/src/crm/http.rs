//! Routes of the pipeline core: leads, customers, timeline, pipelines, board, cards, bulk.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::crm::board::{self, Board, Column, Filter, StageInfo};
use crate::crm::bulk::{self, BulkMoveItem, ItemResult, OwnerChange, TagChange};
use crate::crm::cards::{self, Card};
use crate::crm::customers::{self, Attribution, Customer, CustomerChanges, CustomerPage};
use crate::crm::intake::{self, IntakeOutcome, Lead};
use crate::crm::timeline::{self, EventPage};
use crate::crm::transition::{self, MoveCommand, Moved};
use crate::definitions::Definitions;
use crate::definitions::model::{Pipeline, Scope};
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission};
use crate::types::ids::{CardId, CustomerId, EventId, UserId};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_lead))
        .routes(routes!(list_customers))
        .routes(routes!(get_customer, update_customer))
        .routes(routes!(customer_timeline))
        .routes(routes!(merge_customers))
        .routes(routes!(list_pipelines))
        .routes(routes!(get_board))
        .routes(routes!(get_column))
        .routes(routes!(get_card, update_card))
        .routes(routes!(move_card))
        .routes(routes!(bulk_move))
        .routes(routes!(bulk_assign))
        .routes(routes!(bulk_tag))
}

pub(crate) fn split_list(value: &Option<String>) -> Vec<String> {
    value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .take(100)
        .collect()
}

/// Filters for the board and the customer list. Lists are comma-separated.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    /// Owner user ids; `none` for customers without an owner.
    pub(crate) owners: Option<String>,
    pub(crate) sources: Option<String>,
    /// utm_campaign values or Meta campaign ids.
    pub(crate) campaigns: Option<String>,
    pub(crate) tags: Option<String>,
    pub(crate) emotional_min: Option<i64>,
    pub(crate) emotional_max: Option<i64>,
    pub(crate) logical_min: Option<i64>,
    pub(crate) logical_max: Option<i64>,
    /// Search name, phone or email (Turkish-aware: `isik` finds `Işık`).
    pub(crate) q: Option<String>,
}

impl FilterQuery {
    pub(crate) fn to_filter(&self) -> Result<Filter, ApiError> {
        let mut owners = Vec::new();
        let mut unassigned = false;
        for owner in split_list(&self.owners) {
            if owner == "none" {
                unassigned = true;
            } else {
                owners.push(owner.parse::<UserId>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_filter",
                        "`owners` takes user ids (comma-separated) or `none`",
                    )
                })?);
            }
        }
        let q = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| q.chars().take(200).collect());
        Ok(Filter {
            owners,
            unassigned,
            sources: split_list(&self.sources),
            campaigns: split_list(&self.campaigns),
            tags: split_list(&self.tags),
            emotional_min: self.emotional_min,
            emotional_max: self.emotional_max,
            logical_min: self.logical_min,
            logical_max: self.logical_max,
            q,
        })
    }
}

// ---------------------------------------------------------------- leads

/// A lead from staff entry or an integration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadRequest {
    name: String,
    /// Any common Turkish or international form; stored as E.164.
    phone: Option<String>,
    email: Option<String>,
    /// `web_form`, `meta_lead_ad`, `whatsapp`, `phone`, `walk_in`, … (default `manual`).
    source: Option<String>,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    utm_content: Option<String>,
    utm_term: Option<String>,
    campaign_id: Option<String>,
    adset_id: Option<String>,
    ad_id: Option<String>,
    notes: Option<String>,
    /// Custom customer fields declared in YAML.
    #[serde(default)]
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
    /// The sender's own id for this lead: a repeated delivery changes nothing.
    external_id: Option<String>,
    /// Put the card in this pipeline instead of the intake route's.
    pipeline: Option<String>,
    marketing_consent: Option<bool>,
    whatsapp_consent: Option<bool>,
}

/// Receives a lead: de-duplicates it to a customer and puts a card in the pipeline.
#[utoipa::path(post, path = "/api/leads", tag = "customers", request_body = LeadRequest,
    responses((status = 201, body = IntakeOutcome, description = "new customer"),
              (status = 200, body = IntakeOutcome, description = "matched an existing customer, or a repeated delivery"),
              (status = 422)))]
async fn create_lead(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<LeadRequest>,
) -> Result<(StatusCode, Json<IntakeOutcome>), ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Customers, Permission::Edit)?;
    let lead = Lead {
        name: body.name,
        phone: body.phone,
        email: body.email,
        source: body.source,
        attribution: Attribution {
            utm_source: body.utm_source,
            utm_medium: body.utm_medium,
            utm_campaign: body.utm_campaign,
            utm_content: body.utm_content,
            utm_term: body.utm_term,
            campaign_id: body.campaign_id,
            adset_id: body.adset_id,
            ad_id: body.ad_id,
            ..Attribution::default()
        },
        notes: body.notes,
        fields: body.fields,
        external_key: body.external_id.map(|k| format!("api:{k}")),
        identity: None,
        pipeline: body.pipeline,
        marketing_consent: body.marketing_consent,
        whatsapp_consent: body.whatsapp_consent,
        entered_by: Some(actor.user_id),
        entered_by_owns: actor.scope(&defs) == Scope::Own,
    };
    let db = &state.db;
    let outcome = crate::runtime::retry_on_reload(db, &state.definitions, |defs| {
        let lead = lead.clone();
        async move { intake::intake(db, &defs, lead).await }
    })
    .await?;
    let status = if outcome.matched || outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

// ---------------------------------------------------------------- customers

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerListQuery {
    /// Only customers with a card in this pipeline…
    pipeline: Option<String>,
    /// …in this stage.
    stage: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<CustomerId>,
    /// 1..=200 (default 50).
    limit: Option<u32>,
}

/// Customers the user may see, newest first, filtered and searched.
#[utoipa::path(get, path = "/api/customers", tag = "customers", params(CustomerListQuery, FilterQuery),
    responses((status = 200, body = CustomerPage), (status = 403)))]
async fn list_customers(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<CustomerListQuery>,
    Query(f): Query<FilterQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Customers, Permission::View)?;
    let policy = actor.record_filter(&defs, Module::Customers);
    let filter = f.to_filter()?;
    let page = customers::list(
        &state.db,
        &filter,
        &policy,
        q.pipeline.as_deref(),
        q.stage.as_deref(),
        q.cursor,
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(page))
}

/// A customer with its cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    customer: Customer,
    cards: Vec<Card>,
}

async fn visible_customer(
    state: &AppState,
    actor: &Actor,
    id: CustomerId,
    permission: Permission,
) -> Result<Customer, ApiError> {
    let defs = state.defs();
    let customer = customers::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let owners: Vec<UserId> = customer.owners.iter().map(|o| o.id).collect();
    actor.require_access(&defs, Module::Customers, permission, &owners, "customer")?;
    Ok(customer)
}

/// One customer with its cards.
#[utoipa::path(get, path = "/api/customers/{id}", tag = "customers", params(("id" = CustomerId, Path)),
    responses((status = 200, body = CustomerDetail), (status = 404)))]
async fn get_customer(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
) -> Result<Json<CustomerDetail>, ApiError> {
    let customer = visible_customer(&state, &actor, id, Permission::View).await?;
    let cards = cards::for_customer(&state.db, id).await?;
    Ok(Json(CustomerDetail { customer, cards }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    /// The `version` you last saw; 409 (`stale_version`) when someone changed it since.
    expected_version: i64,
    name: Option<String>,
    /// Custom fields to set (`null` clears one).
    #[schema(value_type = Option<Object>)]
    fields: Option<Map<String, Value>>,
    /// Replaces the tags.
    tags: Option<Vec<String>>,
    marketing_consent: Option<bool>,
    whatsapp_consent: Option<bool>,
}

/// Edits a customer.
#[utoipa::path(patch, path = "/api/customers/{id}", tag = "customers", params(("id" = CustomerId, Path)),
    request_body = UpdateCustomer,
    responses((status = 200, body = CustomerDetail), (status = 404), (status = 409), (status = 422)))]
async fn update_customer(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Json(body): Json<UpdateCustomer>,
) -> Result<Json<CustomerDetail>, ApiError> {
    let defs = state.defs();
    visible_customer(&state, &actor, id, Permission::Edit).await?;
    let changes = CustomerChanges {
        name: body.name,
        fields: body.fields,
        tags: body.tags,
        marketing_consent: body.marketing_consent,
        whatsapp_consent: body.whatsapp_consent,
    };
    customers::update(
        &state.db,
        &defs,
        Some(actor.user_id),
        id,
        body.expected_version,
        changes,
    )
    .await?;
    get_customer(State(state), actor, Path(id)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Only these kinds (comma-separated): `lead`, `stage_changed`, `note`, …
    kinds: Option<String>,
    /// From the previous page's `next_before`.
    before: Option<EventId>,
    /// 1..=200 (default 50).
    limit: Option<u32>,
}

/// A customer's timeline, newest first.
#[utoipa::path(get, path = "/api/customers/{id}/timeline", tag = "customers",
    params(("id" = CustomerId, Path), TimelineQuery),
    responses((status = 200, body = EventPage), (status = 404)))]
async fn customer_timeline(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let defs = state.defs();
    // Existence and owners only: the whole customer is not needed to page its timeline.
    let exists: Option<i64> = crate::read!(&state.db, pool => {
        sqlx::query_scalar("SELECT version FROM customers WHERE id = $1").bind(id).fetch_optional(pool).await
    })?;
    if exists.is_none() {
        return Err(ApiError::not_found("customer"));
    }
    let owners = customers::owner_ids(&state.db, id).await?;
    actor.require_access(
        &defs,
        Module::Customers,
        Permission::View,
        &owners,
        "customer",
    )?;
    let page = timeline::list(
        &state.db,
        id,
        &split_list(&q.kinds),
        q.before,
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(page))
}

// ---------------------------------------------------------------- pipelines and board

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionInfo {
    from: String,
    to: String,
    /// Fields the move dialog asks for.
    asks: Vec<String>,
    /// Whether a rule may refuse it.
    guarded: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineInfo {
    id: String,
    name_tr: String,
    name_en: String,
    stages: Vec<StageInfo>,
    transitions: Vec<TransitionInfo>,
    /// The card layout's field ids.
    card_fields: Vec<String>,
    /// Required fields per stage id.
    #[schema(value_type = Object)]
    required_on_entry: Map<String, Value>,
}

/// The pipelines the user may see, with stages, transitions and card layout.
#[utoipa::path(get, path = "/api/pipelines", tag = "pipelines",
    responses((status = 200, body = Vec<PipelineInfo>), (status = 403)))]
async fn list_pipelines(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<PipelineInfo>>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Pipeline, Permission::View)?;
    Ok(Json(
        defs.pipelines
            .iter()
            .map(|p| PipelineInfo {
                id: p.id.as_str().to_string(),
                name_tr: p.name.tr.clone(),
                name_en: p.name.en.clone(),
                stages: p
                    .stages
                    .iter()
                    .map(|s| StageInfo {
                        id: s.id.as_str().to_string(),
                        name_tr: s.name.tr.clone(),
                        name_en: s.name.en.clone(),
                        color: s.color.as_ref().map(|c| c.value.clone()),
                        initial: s.initial,
                        terminal: s.terminal,
                        wip_limit: s.wip_limit,
                    })
                    .collect(),
                transitions: p
                    .transitions
                    .iter()
                    .map(|t| TransitionInfo {
                        from: t.from.as_str().to_string(),
                        to: t.to.as_str().to_string(),
                        asks: t.asks.iter().map(|a| a.as_str().to_string()).collect(),
                        guarded: t.guard.is_some(),
                    })
                    .collect(),
                card_fields: p
                    .card
                    .fields
                    .iter()
                    .map(|f| f.as_str().to_string())
                    .collect(),
                required_on_entry: p
                    .stages
                    .iter()
                    .map(|s| {
                        let fields = defs.required_on_entry(p.id.as_str(), s.id.as_str());
                        (s.id.as_str().to_string(), serde_json::json!(fields))
                    })
                    .collect(),
            })
            .collect(),
    ))
}

fn pipeline<'a>(defs: &'a Definitions, id: &str) -> Result<&'a Pipeline, ApiError> {
    defs.pipeline(id)
        .ok_or_else(|| ApiError::not_found("pipeline"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    /// Cards per column, 1..=100 (default 20).
    limit: Option<u32>,
}

/// The board: columns in stage order with counts and their first cards.
#[utoipa::path(get, path = "/api/pipelines/{id}/board", tag = "pipelines",
    params(("id" = String, Path), BoardQuery, FilterQuery),
    responses((status = 200, body = Board), (status = 404)))]
async fn get_board(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Query(q): Query<BoardQuery>,
    Query(f): Query<FilterQuery>,
) -> Result<Json<Board>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Pipeline, Permission::View)?;
    let pipeline = pipeline(&defs, &id)?;
    let policy = actor.record_filter(&defs, Module::Pipeline);
    let board = board::board(
        &state.db,
        &defs,
        pipeline,
        &f.to_filter()?,
        &policy,
        q.limit.unwrap_or(20),
    )
    .await?;
    Ok(Json(board))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ColumnQuery {
    /// From the column's `next_cursor`.
    cursor: Option<String>,
    /// 1..=100 (default 20).
    limit: Option<u32>,
}

/// More cards of one column.
#[utoipa::path(get, path = "/api/pipelines/{id}/board/{stage}", tag = "pipelines",
    params(("id" = String, Path), ("stage" = String, Path), ColumnQuery, FilterQuery),
    responses((status = 200, body = Column), (status = 404)))]
async fn get_column(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, stage)): Path<(String, String)>,
    Query(q): Query<ColumnQuery>,
    Query(f): Query<FilterQuery>,
) -> Result<Json<Column>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Pipeline, Permission::View)?;
    let pipeline = pipeline(&defs, &id)?;
    let policy = actor.record_filter(&defs, Module::Pipeline);
    let column = board::column(
        &state.db,
        &defs,
        pipeline,
        &stage,
        &f.to_filter()?,
        &policy,
        q.cursor.as_deref(),
        q.limit.unwrap_or(20),
    )
    .await?;
    Ok(Json(column))
}

// ---------------------------------------------------------------- cards

/// One card.
#[utoipa::path(get, path = "/api/cards/{id}", tag = "pipelines", params(("id" = CardId, Path)),
    responses((status = 200, body = Card), (status = 404)))]
async fn get_card(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CardId>,
) -> Result<Json<Card>, ApiError> {
    let defs = state.defs();
    let card = cards::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("card"))?;
    let owners = customers::owner_ids(&state.db, card.customer_id).await?;
    actor.require_access(&defs, Module::Pipeline, Permission::View, &owners, "card")?;
    Ok(Json(card))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCard {
    expected_version: i64,
    /// Card fields to set (`null` clears one).
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// Edits card fields without moving the card.
#[utoipa::path(patch, path = "/api/cards/{id}", tag = "pipelines", params(("id" = CardId, Path)),
    request_body = UpdateCard,
    responses((status = 200, body = Card), (status = 404), (status = 409), (status = 422)))]
async fn update_card(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CardId>,
    Json(body): Json<UpdateCard>,
) -> Result<Json<Card>, ApiError> {
    let defs = state.defs();
    let card = transition::update_fields(
        &state.db,
        &defs,
        id,
        body.expected_version,
        &body.fields,
        Some(actor.user_id),
        |owners| actor.require_access(&defs, Module::Pipeline, Permission::Edit, owners, "card"),
    )
    .await?;
    Ok(Json(card))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Target stage id.
    to: String,
    /// The card's `version` you last saw.
    expected_version: i64,
    /// Card fields entered with the move.
    #[serde(default)]
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// Moves a card to another stage.
#[utoipa::path(post, path = "/api/cards/{id}/move", tag = "pipelines", params(("id" = CardId, Path)),
    request_body = MoveRequest,
    responses((status = 200, body = Moved), (status = 404),
              (status = 409, description = "`stale_version`: someone moved or edited the card since"),
              (status = 422, description = "`transition_not_allowed`, `missing_fields` (with `fields`), `guard_refused` (reason in the user's language)")))]
async fn move_card(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CardId>,
    Json(body): Json<MoveRequest>,
) -> Result<Json<Moved>, ApiError> {
    let command = MoveCommand {
        card: id,
        to: body.to,
        expected_version: body.expected_version,
        fields: body.fields,
        by: Some(actor.user_id),
        locale: actor.locale.clone(),
    };
    let actor = &actor;
    let db = &state.db;
    let moved = crate::runtime::retry_on_reload(db, &state.definitions, |defs| {
        let command = command.clone();
        async move {
            transition::move_card(db, &defs, command, |owners| {
                actor.require_access(&defs, Module::Pipeline, Permission::Edit, owners, "card")
            })
            .await
        }
    })
    .await?;
    Ok(Json(moved))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkMoveRequest {
    cards: Vec<BulkMoveItem>,
    to: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    results: Vec<ItemResult>,
    done: usize,
    refused: usize,
}

fn bulk_response(results: Vec<ItemResult>) -> Json<BulkResponse> {
    let done = results.iter().filter(|r| r.status == "done").count();
    let refused = results.len() - done;
    Json(BulkResponse {
        results,
        done,
        refused,
    })
}

/// Moves many cards; a result per card.
#[utoipa::path(post, path = "/api/cards/bulk-move", tag = "pipelines", request_body = BulkMoveRequest,
    responses((status = 200, body = BulkResponse), (status = 403), (status = 422)))]
async fn bulk_move(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<BulkMoveRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    let defs = state.defs();
    let results = bulk::bulk_move(
        &state.db,
        &defs,
        &actor,
        &body.cards,
        &body.to,
        &body.fields,
    )
    .await?;
    Ok(bulk_response(results))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkAssignRequest {
    customer_ids: Vec<CustomerId>,
    #[serde(flatten)]
    change: OwnerChange,
}

/// Changes the owners of many customers; a result per customer.
#[utoipa::path(post, path = "/api/customers/bulk-assign", tag = "customers", request_body = BulkAssignRequest,
    responses((status = 200, body = BulkResponse), (status = 403), (status = 422)))]
async fn bulk_assign(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<BulkAssignRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    let defs = state.defs();
    let results =
        bulk::bulk_assign(&state.db, &defs, &actor, &body.customer_ids, &body.change).await?;
    Ok(bulk_response(results))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkTagRequest {
    customer_ids: Vec<CustomerId>,
    #[serde(flatten)]
    change: TagChange,
}

/// Adds or removes tags on many customers; a result per customer.
#[utoipa::path(post, path = "/api/customers/bulk-tag", tag = "customers", request_body = BulkTagRequest,
    responses((status = 200, body = BulkResponse), (status = 403), (status = 422)))]
async fn bulk_tag(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<BulkTagRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    let defs = state.defs();
    let results =
        bulk::bulk_tag(&state.db, &defs, &actor, &body.customer_ids, &body.change).await?;
    Ok(bulk_response(results))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The customer to absorb into this one (the survivor is the one in the path).
    other_id: CustomerId,
    /// The survivor's version you last saw.
    expected_version: i64,
    /// The other customer's version you last saw.
    other_expected_version: i64,
}

/// Merges another customer into this one.
#[utoipa::path(post, path = "/api/customers/{id}/merge", tag = "customers", params(("id" = CustomerId, Path)),
    request_body = MergeRequest,
    responses((status = 200, body = crate::crm::merge::MergeReport), (status = 404), (status = 409), (status = 422)))]
async fn merge_customers(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Json(body): Json<MergeRequest>,
) -> Result<Json<crate::crm::merge::MergeReport>, ApiError> {
    let defs = state.defs();
    visible_customer(&state, &actor, id, Permission::Edit).await?;
    visible_customer(&state, &actor, body.other_id, Permission::Edit).await?;
    let report = crate::crm::merge::merge(
        &state.db,
        &defs,
        id,
        body.expected_version,
        body.other_id,
        body.other_expected_version,
        Some(actor.user_id),
    )
    .await?;
    Ok(Json(report))
}
