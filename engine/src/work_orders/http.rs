//! Routes: work orders — list and filter, kanban by status, calendar of step due dates,
//! open one, check steps off or reopen them, assign, block/cancel, comment, files.
//!
//! Needs the `work_orders` module permission. An order about a customer is visible to
//! whoever may see the customer, and to the users its steps are assigned to; internal work
//! (no customer) to everyone with `work_orders: view`.

use std::collections::BTreeMap;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ORDER_SELECT, OrderRow, WorkOrder, WorkOrderId, assemble, order_row, step_rows};
use crate::app::AppState;
use crate::audit::ClientInfo;
use crate::crm::activities::parse_instant;
use crate::crm::sql::Sql;
use crate::drive::http::{FileList, FolderQuery, Uploaded};
use crate::drive::{Owner, OwnerKind};
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission, RecordFilter};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

pub fn router() -> OpenApiRouter<AppState> {
    let files = OpenApiRouter::new()
        .routes(routes!(list_order_files, upload_order_file))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(files)
        .routes(routes!(list_orders, create_order))
        .routes(routes!(board))
        .routes(routes!(calendar))
        .routes(routes!(get_order, update_order))
        .routes(routes!(complete_step))
        .routes(routes!(reopen_step))
        .routes(routes!(assign_step))
        .routes(routes!(add_comment))
}

/// The SQL condition for orders `actor` may see (`w` is work_orders).
fn visible(sql: &mut Sql, actor: &Actor, filter: &RecordFilter) {
    let me = sql.text_arg(actor.user_id.to_string());
    let assigned = format!(
        "EXISTS (SELECT 1 FROM work_order_steps s WHERE s.work_order_id = w.id AND s.assignee_id = {me})"
    );
    let condition = match filter {
        RecordFilter::All => String::new(),
        RecordFilter::OwnedBy(_) => format!(
            " AND (w.customer_id IS NULL OR EXISTS (SELECT 1 FROM customer_owners o WHERE o.customer_id = w.customer_id AND o.user_id = {me}) OR {assigned})"
        ),
        RecordFilter::Nothing => format!(" AND (w.customer_id IS NULL OR {assigned})"),
    };
    sql.push(&condition);
}

fn require_module(state: &AppState, actor: &Actor, permission: Permission) -> Result<(), ApiError> {
    if actor.can(&state.defs(), Module::WorkOrders, permission) {
        Ok(())
    } else if permission == Permission::View {
        Err(ApiError::forbidden(
            "your role has no access to work orders",
        ))
    } else {
        Err(ApiError::forbidden("your role may not change work orders"))
    }
}

/// Loads an order the actor may see, or 404.
async fn visible_order(
    state: &AppState,
    actor: &Actor,
    id: WorkOrderId,
) -> Result<OrderRow, ApiError> {
    require_module(state, actor, Permission::View)?;
    let row = order_row(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    if let Some(customer) = row.customer_id {
        let defs = state.defs();
        let owners = crate::crm::customers::owner_ids(&state.db, customer).await?;
        if !actor.may_access(&defs, Module::Customers, Permission::View, &owners) {
            let assigned: i64 = crate::read!(&state.db, pool => {
                sqlx::query_scalar("SELECT COUNT(*) FROM work_order_steps WHERE work_order_id = $1 AND assignee_id = $2")
                    .bind(id).bind(actor.user_id).fetch_one(pool).await
            })?;
            if assigned == 0 {
                return Err(ApiError::not_found("work order"));
            }
        }
    }
    Ok(row)
}

/// Drive's check for files on a work order.
pub async fn file_access(
    state: &AppState,
    actor: &Actor,
    order: &str,
    permission: Permission,
) -> Result<Option<CustomerId>, ApiError> {
    let id: WorkOrderId = order
        .parse()
        .map_err(|_| ApiError::not_found("work order"))?;
    let row = visible_order(state, actor, id).await?;
    if permission != Permission::View {
        require_module(state, actor, Permission::Edit)?;
    }
    Ok(row.customer_id)
}

async fn full(
    state: &AppState,
    actor: &Actor,
    row: OrderRow,
    with_comments: bool,
) -> Result<WorkOrder, ApiError> {
    let defs = super::definitions_of(state, &row.definitions_version)
        .await
        .ok();
    let steps = step_rows(&state.db, &[row.id]).await?;
    let id = row.id;
    let mut order = assemble(row, steps, defs.as_deref(), &actor.locale);
    if with_comments {
        order.comments = Some(super::comments(&state.db, id).await?);
    }
    Ok(order)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Comma-separated statuses (`open,in_progress`).
    status: Option<String>,
    /// `me` or a user id: orders with a step assigned to them.
    assignee: Option<String>,
    /// A work-order definition id.
    definition: Option<String>,
    customer: Option<CustomerId>,
    /// Orders with an open step due before this instant (RFC 3339).
    due_before: Option<String>,
    /// At most this many (default 200, at most 1000).
    limit: Option<u32>,
}

async fn query_orders(
    state: &AppState,
    actor: &Actor,
    q: &OrderQuery,
) -> Result<Vec<WorkOrder>, ApiError> {
    require_module(state, actor, Permission::View)?;
    let defs = state.defs();
    let mut sql = Sql::default();
    sql.push(ORDER_SELECT);
    sql.push(" WHERE 1 = 1");
    visible(
        &mut sql,
        actor,
        &actor.record_filter(&defs, Module::Customers),
    );
    if let Some(statuses) = &q.status {
        let list: Vec<String> = statuses
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = list.iter().find(|s| !super::STATUSES.contains(&s.as_str())) {
            return Err(ApiError::bad_request(
                "invalid_status",
                format!("unknown status `{bad}` (open, in_progress, blocked, done, cancelled)"),
            ));
        }
        if !list.is_empty() {
            let l = sql.in_list(&list);
            sql.push(&format!(" AND w.status IN {l}"));
        }
    }
    if let Some(assignee) = &q.assignee {
        let user = if assignee == "me" {
            actor.user_id
        } else {
            assignee.parse::<UserId>().map_err(|_| {
                ApiError::bad_request("invalid_assignee", "assignee is `me` or a user id")
            })?
        };
        let a = sql.text_arg(user.to_string());
        sql.push(&format!(" AND EXISTS (SELECT 1 FROM work_order_steps s WHERE s.work_order_id = w.id AND s.assignee_id = {a} AND s.status <> 'done')"));
    }
    if let Some(definition) = &q.definition {
        let d = sql.text_arg(definition.clone());
        sql.push(&format!(" AND w.definition = {d}"));
    }
    if let Some(customer) = q.customer {
        let c = sql.text_arg(customer.to_string());
        sql.push(&format!(" AND w.customer_id = {c}"));
    }
    if let Some(before) = &q.due_before {
        let at = parse_instant(Some(before), "due_before")?.unwrap_or_else(Timestamp::now);
        let b = sql.arg(crate::crm::sql::Arg::Time(at));
        sql.push(&format!(" AND EXISTS (SELECT 1 FROM work_order_steps s WHERE s.work_order_id = w.id AND s.status = 'ready' AND s.due_at < {b})"));
    }
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    sql.push(&format!(
        " ORDER BY w.created_at DESC, w.id DESC LIMIT {limit}"
    ));
    let rows: Vec<OrderRow> = crate::sql_fetch_all!(&state.db, OrderRow, &sql)?;
    let ids: Vec<WorkOrderId> = rows.iter().map(|r| r.id).collect();
    let mut steps: BTreeMap<WorkOrderId, Vec<super::StepRow>> = BTreeMap::new();
    for s in step_rows(&state.db, &ids).await? {
        steps.entry(s.work_order_id).or_default().push(s);
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let defs = super::definitions_of(state, &row.definitions_version)
            .await
            .ok();
        let s = steps.remove(&row.id).unwrap_or_default();
        out.push(assemble(row, s, defs.as_deref(), &actor.locale));
    }
    Ok(out)
}

/// Work orders the user may see, newest first.
#[utoipa::path(get, path = "/api/work-orders", tag = "work_orders", params(OrderQuery),
    responses((status = 200, body = Vec<WorkOrder>)))]
async fn list_orders(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<OrderQuery>,
) -> Result<Json<Vec<WorkOrder>>, ApiError> {
    Ok(Json(query_orders(&state, &actor, &q).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// A work-order definition id from YAML.
    definition: String,
    title: Option<String>,
    /// The customer it is for; none for internal work.
    customer_id: Option<CustomerId>,
    /// The card it follows (its customer's).
    card_id: Option<CardId>,
}

/// Opens a work order by hand.
#[utoipa::path(post, path = "/api/work-orders", tag = "work_orders", request_body = CreateOrder,
    responses((status = 201, body = WorkOrder), (status = 404), (status = 422)))]
async fn create_order(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<CreateOrder>,
) -> Result<(StatusCode, Json<WorkOrder>), ApiError> {
    require_module(&state, &actor, Permission::Edit)?;
    let defs = state.defs();
    let mut customer = body.customer_id;
    if let Some(card) = body.card_id {
        let found = crate::crm::cards::get(&state.db, card)
            .await?
            .ok_or_else(|| ApiError::not_found("card"))?;
        if customer.is_some_and(|c| c != found.customer_id) {
            return Err(ApiError::unprocessable(
                "card_mismatch",
                "the card belongs to another customer",
            )
            .with_field("card_id", "not this customer's"));
        }
        customer = Some(found.customer_id);
    }
    if let Some(c) = customer {
        let owners = crate::crm::customers::owner_ids(&state.db, c).await?;
        let exists: Option<i64> = crate::read!(&state.db, pool => {
            sqlx::query_scalar("SELECT version FROM customers WHERE id = $1").bind(c).fetch_optional(pool).await
        })?;
        if exists.is_none() {
            return Err(ApiError::not_found("customer"));
        }
        actor.require_access(
            &defs,
            Module::Customers,
            Permission::View,
            &owners,
            "customer",
        )?;
    }
    let title = body
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if title.is_some_and(|t| t.chars().count() > 200) {
        return Err(
            ApiError::unprocessable("invalid_title", "a title has at most 200 characters")
                .with_field("title", "too long"),
        );
    }
    let mut tx = state.db.begin().await?;
    let (id, _) = super::create_in(
        &mut tx,
        &defs,
        super::NewWorkOrder {
            definition: &body.definition,
            title,
            customer_id: customer,
            card_id: body.card_id,
            by: Some(actor.user_id),
            effect_key: None,
        },
    )
    .await?;
    tx.commit().await?;
    let row = order_row(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    Ok((
        StatusCode::CREATED,
        Json(full(&state, &actor, row, true).await?),
    ))
}

/// One column of the work-order kanban.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusColumn {
    pub status: String,
    pub count: usize,
    pub orders: Vec<WorkOrder>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    definition: Option<String>,
    /// `me` or a user id.
    assignee: Option<String>,
}

/// The work orders by status (open, in progress, blocked, done, cancelled).
#[utoipa::path(get, path = "/api/work-orders/board", tag = "work_orders", params(BoardQuery),
    responses((status = 200, body = Vec<StatusColumn>)))]
async fn board(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<BoardQuery>,
) -> Result<Json<Vec<StatusColumn>>, ApiError> {
    let orders = query_orders(
        &state,
        &actor,
        &OrderQuery {
            status: None,
            assignee: q.assignee,
            definition: q.definition,
            customer: None,
            due_before: None,
            limit: Some(1000),
        },
    )
    .await?;
    let mut columns: Vec<StatusColumn> = super::STATUSES
        .iter()
        .map(|s| StatusColumn {
            status: s.to_string(),
            count: 0,
            orders: Vec::new(),
        })
        .collect();
    for o in orders {
        if let Some(col) = columns.iter_mut().find(|c| c.status == o.status) {
            col.count += 1;
            col.orders.push(o);
        }
    }
    Ok(Json(columns))
}

/// One step on the calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct DueStep {
    pub work_order_id: WorkOrderId,
    pub work_order_name: String,
    pub customer_name: Option<String>,
    pub step_id: String,
    pub step_name: String,
    pub status: String,
    pub due_at: Timestamp,
    pub overdue: bool,
    pub assignee_id: Option<UserId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalendarQuery {
    /// RFC 3339; default now.
    from: Option<String>,
    /// RFC 3339; default 31 days after `from`.
    to: Option<String>,
    /// `me` or a user id.
    assignee: Option<String>,
}

/// Open steps by due date, between `from` and `to`, of the orders the user may see.
#[utoipa::path(get, path = "/api/work-orders/calendar", tag = "work_orders", params(CalendarQuery),
    responses((status = 200, body = Vec<DueStep>)))]
async fn calendar(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<CalendarQuery>,
) -> Result<Json<Vec<DueStep>>, ApiError> {
    let from = parse_instant(q.from.as_deref(), "from")?.unwrap_or_else(Timestamp::now);
    let to = parse_instant(q.to.as_deref(), "to")?.unwrap_or_else(|| {
        Timestamp::from_datetime(from.as_datetime() + chrono::Duration::days(31))
    });
    let orders = query_orders(
        &state,
        &actor,
        &OrderQuery {
            status: Some("open,in_progress,blocked".into()),
            assignee: q.assignee,
            definition: None,
            customer: None,
            due_before: None,
            limit: Some(1000),
        },
    )
    .await?;
    let mut out = Vec::new();
    for o in orders {
        for s in &o.steps {
            if s.status == "done" {
                continue;
            }
            if let Some(due) = s.due_at
                && due >= from
                && due < to
            {
                out.push(DueStep {
                    work_order_id: o.id,
                    work_order_name: o.title.clone().unwrap_or_else(|| o.name.clone()),
                    customer_name: o.customer_name.clone(),
                    step_id: s.step_id.clone(),
                    step_name: s.name.clone(),
                    status: s.status.clone(),
                    due_at: due,
                    overdue: s.overdue,
                    assignee_id: s.assignee_id,
                });
            }
        }
    }
    out.sort_by_key(|d| d.due_at);
    Ok(Json(out))
}

/// One work order with its steps and comments.
#[utoipa::path(get, path = "/api/work-orders/{id}", tag = "work_orders", params(("id" = WorkOrderId, Path)),
    responses((status = 200, body = WorkOrder), (status = 404)))]
async fn get_order(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<WorkOrderId>,
) -> Result<Json<WorkOrder>, ApiError> {
    let row = visible_order(&state, &actor, id).await?;
    Ok(Json(full(&state, &actor, row, true).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrder {
    /// `open`, `in_progress`, `blocked` or `cancelled`.
    status: String,
    expected_version: i64,
}

/// Blocks, unblocks or cancels an order.
#[utoipa::path(patch, path = "/api/work-orders/{id}", tag = "work_orders", params(("id" = WorkOrderId, Path)), request_body = UpdateOrder,
    responses((status = 200, body = WorkOrder), (status = 404), (status = 409), (status = 422)))]
async fn update_order(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<WorkOrderId>,
    Json(body): Json<UpdateOrder>,
) -> Result<Json<WorkOrder>, ApiError> {
    visible_order(&state, &actor, id).await?;
    require_module(&state, &actor, Permission::Edit)?;
    super::set_status(&state, id, &body.status, body.expected_version, &actor).await?;
    get_order(State(state), actor, Path(id)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteStep {
    expected_version: i64,
    /// Values for the step's required fields (kept on the order).
    #[serde(default)]
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// Checks a step off (409 when the order changed since `expected_version`).
#[utoipa::path(post, path = "/api/work-orders/{id}/steps/{step}/complete", tag = "work_orders",
    params(("id" = WorkOrderId, Path), ("step" = String, Path)), request_body = CompleteStep,
    responses((status = 200, body = WorkOrder), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn complete_step(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, step)): Path<(WorkOrderId, String)>,
    Json(body): Json<CompleteStep>,
) -> Result<Json<WorkOrder>, ApiError> {
    visible_order(&state, &actor, id).await?;
    require_module(&state, &actor, Permission::Edit)?;
    super::complete_step(
        &state,
        super::Completion {
            order: id,
            step: &step,
            expected_version: body.expected_version,
            fields: body.fields,
            by: &actor,
        },
    )
    .await?;
    get_order(State(state), actor, Path(id)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Versioned {
    expected_version: i64,
}

/// Reopens a done step.
#[utoipa::path(post, path = "/api/work-orders/{id}/steps/{step}/reopen", tag = "work_orders",
    params(("id" = WorkOrderId, Path), ("step" = String, Path)), request_body = Versioned,
    responses((status = 200, body = WorkOrder), (status = 404), (status = 409), (status = 422)))]
async fn reopen_step(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, step)): Path<(WorkOrderId, String)>,
    Json(body): Json<Versioned>,
) -> Result<Json<WorkOrder>, ApiError> {
    visible_order(&state, &actor, id).await?;
    require_module(&state, &actor, Permission::Edit)?;
    super::reopen_step(&state, id, &step, body.expected_version, &actor).await?;
    get_order(State(state), actor, Path(id)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignStep {
    /// Null gives the step back to its role.
    user_id: Option<UserId>,
    expected_version: i64,
}

/// Gives an open step to a user.
#[utoipa::path(post, path = "/api/work-orders/{id}/steps/{step}/assign", tag = "work_orders",
    params(("id" = WorkOrderId, Path), ("step" = String, Path)), request_body = AssignStep,
    responses((status = 200, body = WorkOrder), (status = 404), (status = 409), (status = 422)))]
async fn assign_step(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, step)): Path<(WorkOrderId, String)>,
    Json(body): Json<AssignStep>,
) -> Result<Json<WorkOrder>, ApiError> {
    visible_order(&state, &actor, id).await?;
    require_module(&state, &actor, Permission::Edit)?;
    super::assign_step(&state, id, &step, body.user_id, body.expected_version).await?;
    get_order(State(state), actor, Path(id)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    body: String,
}

/// Comments on an order (on the customer's timeline too).
#[utoipa::path(post, path = "/api/work-orders/{id}/comments", tag = "work_orders", params(("id" = WorkOrderId, Path)), request_body = NewComment,
    responses((status = 201, body = WorkOrder), (status = 404), (status = 422)))]
async fn add_comment(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<WorkOrderId>,
    Json(body): Json<NewComment>,
) -> Result<(StatusCode, Json<WorkOrder>), ApiError> {
    visible_order(&state, &actor, id).await?;
    require_module(&state, &actor, Permission::Edit)?;
    super::add_comment(&state, id, &body.body, actor.user_id).await?;
    let Json(order) = get_order(State(state), actor, Path(id)).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// An order's files (a required-file slot is the folder of that name).
#[utoipa::path(get, path = "/api/work-orders/{id}/files", tag = "files", params(("id" = WorkOrderId, Path), FolderQuery),
    responses((status = 200, body = FileList), (status = 404)))]
async fn list_order_files(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<WorkOrderId>,
    Query(query): Query<FolderQuery>,
) -> Result<Json<FileList>, ApiError> {
    let owner = Owner {
        kind: OwnerKind::WorkOrder,
        id: id.to_string(),
    };
    Ok(Json(
        crate::drive::http::list_files(&state, &actor, owner, query.folder).await?,
    ))
}

/// Uploads a file to an order (multipart `folder`, then `file`; give a required-file slot's
/// id as the folder to fill that slot).
#[utoipa::path(post, path = "/api/work-orders/{id}/files", tag = "files", params(("id" = WorkOrderId, Path)),
    request_body(content_type = "multipart/form-data", description = "`folder` (text, optional) then `file`"),
    responses((status = 201, body = Uploaded), (status = 200, body = Uploaded), (status = 404), (status = 413), (status = 415), (status = 422)))]
async fn upload_order_file(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<WorkOrderId>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let owner = Owner {
        kind: OwnerKind::WorkOrder,
        id: id.to_string(),
    };
    crate::drive::http::upload(&state, &actor, &client, owner, multipart).await
}
