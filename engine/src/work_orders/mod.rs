//! Work orders: step-by-step work from the YAML `work_orders:` definitions.
//!
//! - An instance keeps the definitions version it was opened under; its steps, their
//!   requirements, guards and effects always come from that version, whatever reloads
//!   happen meanwhile (new instances take the new definition).
//! - A step is `waiting` until the steps it depends on are `done` (without `depends_on`
//!   it follows the previous step), then `ready` with its due time counted from that
//!   moment. Completing one checks its required fields (values kept on the order), its
//!   required files (a live file in the order's folder named after the slot) and its guard,
//!   all in one transaction guarded by the order's version (409 on a concurrent edit).
//! - Effects (a step's `on_complete`, and the order's when every step is done) are queued
//!   in the completing transaction, once: a step remembers it queued them, so reopening and
//!   completing again does not repeat a send.
//! - Each completion, reopen, status change and comment is on the customer's timeline
//!   (orders about a customer) and pushed live as `work_order.updated`.

pub mod http;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::definitions::Definitions;
use crate::definitions::model::{Action, Recipient, WorkOrderDef};
use crate::exec;
use crate::http::ApiError;
use crate::jobs::NotifyJob;
use crate::jobs::effects::EffectKey;
use crate::realtime::{self, Audience, NewEvent};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, EventId, UserId};

crate::id_type!(
    /// One work order instance.
    WorkOrderId
);

pub const STATUSES: [&str; 5] = ["open", "in_progress", "blocked", "done", "cancelled"];

/// One step of an instance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepState {
    pub step_id: String,
    pub name: String,
    pub position: i64,
    /// `waiting` (prerequisites not done), `ready`, `done`.
    pub status: String,
    pub role: Option<String>,
    pub assignee_id: Option<UserId>,
    pub assignee_name: Option<String>,
    pub depends_on: Vec<String>,
    pub required_fields: Vec<String>,
    pub required_files: Vec<String>,
    pub ready_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    pub overdue: bool,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<UserId>,
    pub done_by_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comment {
    pub id: String,
    pub author_id: Option<UserId>,
    pub author_name: Option<String>,
    pub body: String,
    pub created_at: Timestamp,
}

/// A work order as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkOrder {
    pub id: WorkOrderId,
    pub definition: String,
    pub name: String,
    pub title: Option<String>,
    /// The definitions version the order follows.
    pub definitions_version: String,
    pub customer_id: Option<CustomerId>,
    pub customer_name: Option<String>,
    pub card_id: Option<CardId>,
    pub status: String,
    /// Done steps / all steps, 0–100.
    pub progress: i64,
    /// The earliest due time of an open step.
    pub next_due_at: Option<Timestamp>,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub created_at: Timestamp,
    pub created_by: Option<UserId>,
    pub completed_at: Option<Timestamp>,
    pub version: i64,
    pub steps: Vec<StepState>,
    /// Present on the single-order answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<Comment>>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub id: WorkOrderId,
    pub definition: String,
    pub title: Option<String>,
    pub definitions_version: String,
    pub customer_id: Option<CustomerId>,
    pub customer_name: Option<String>,
    pub card_id: Option<CardId>,
    pub status: String,
    pub fields: String,
    pub created_at: Timestamp,
    pub created_by: Option<UserId>,
    pub completed_at: Option<Timestamp>,
    pub version: i64,
    pub effects_queued: bool,
}

#[derive(sqlx::FromRow, Clone)]
pub(crate) struct StepRow {
    pub work_order_id: WorkOrderId,
    pub step_id: String,
    pub position: i64,
    pub status: String,
    pub assignee_id: Option<UserId>,
    pub assignee_name: Option<String>,
    pub ready_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<UserId>,
    pub done_by_name: Option<String>,
    pub effects_queued: bool,
}

pub(crate) const ORDER_SELECT: &str = "SELECT w.id, w.definition, w.title, w.definitions_version, w.customer_id, \
    c.name AS customer_name, w.card_id, w.status, w.fields, w.created_at, w.created_by, w.completed_at, w.version, w.effects_queued \
    FROM work_orders w LEFT JOIN customers c ON c.id = w.customer_id";

const STEP_SELECT: &str = "SELECT s.work_order_id, s.step_id, s.position, s.status, s.assignee_id, a.name AS assignee_name, \
    s.ready_at, s.due_at, s.done_at, s.done_by, d.name AS done_by_name, s.effects_queued \
    FROM work_order_steps s LEFT JOIN users a ON a.id = s.assignee_id LEFT JOIN users d ON d.id = s.done_by";

fn lang(locale: &str) -> &'static str {
    if locale == "en" { "en" } else { "tr" }
}

fn localized(locale: &str, tr: &str, en: &str) -> String {
    if lang(locale) == "tr" {
        tr.to_string()
    } else {
        en.to_string()
    }
}

/// The prerequisites of each step: `depends_on`, or the previous step.
pub fn prerequisites(def: &WorkOrderDef) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (i, step) in def.steps.iter().enumerate() {
        let deps = match &step.depends_on {
            Some(list) => list.iter().map(|d| d.as_str().to_string()).collect(),
            None if i > 0 => vec![def.steps[i - 1].id.as_str().to_string()],
            None => Vec::new(),
        };
        out.insert(step.id.as_str().to_string(), deps);
    }
    out
}

pub(crate) fn assemble(
    row: OrderRow,
    steps: Vec<StepRow>,
    defs: Option<&Definitions>,
    locale: &str,
) -> WorkOrder {
    let def = defs.and_then(|d| d.work_order(&row.definition));
    let deps = def.map(prerequisites).unwrap_or_default();
    let now = Timestamp::now();
    let total = steps.len().max(1) as i64;
    let done = steps.iter().filter(|s| s.status == "done").count() as i64;
    let next_due_at = steps
        .iter()
        .filter(|s| s.status != "done")
        .filter_map(|s| s.due_at)
        .min();
    let steps = steps
        .into_iter()
        .map(|s| {
            let step_def = def.and_then(|d| d.steps.iter().find(|x| x.id.as_str() == s.step_id));
            StepState {
                name: step_def
                    .map(|d| d.name.get(lang(locale)).to_string())
                    .unwrap_or_else(|| s.step_id.clone()),
                role: step_def.and_then(|d| d.role.as_ref().map(|r| r.as_str().to_string())),
                depends_on: deps.get(&s.step_id).cloned().unwrap_or_default(),
                required_fields: step_def
                    .map(|d| {
                        d.required_fields
                            .iter()
                            .map(|f| f.as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                required_files: step_def
                    .map(|d| {
                        d.required_files
                            .iter()
                            .map(|f| f.as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                overdue: s.status != "done" && s.due_at.is_some_and(|d| d < now),
                step_id: s.step_id,
                position: s.position,
                status: s.status,
                assignee_id: s.assignee_id,
                assignee_name: s.assignee_name,
                ready_at: s.ready_at,
                due_at: s.due_at,
                done_at: s.done_at,
                done_by: s.done_by,
                done_by_name: s.done_by_name,
            }
        })
        .collect();
    WorkOrder {
        id: row.id,
        name: def
            .map(|d| d.name.get(lang(locale)).to_string())
            .unwrap_or_else(|| row.definition.clone()),
        definition: row.definition,
        title: row.title,
        definitions_version: row.definitions_version,
        customer_id: row.customer_id,
        customer_name: row.customer_name,
        card_id: row.card_id,
        status: row.status,
        progress: done * 100 / total,
        next_due_at,
        fields: serde_json::from_str(&row.fields).unwrap_or_default(),
        created_at: row.created_at,
        created_by: row.created_by,
        completed_at: row.completed_at,
        version: row.version,
        steps,
        comments: None,
    }
}

pub(crate) async fn order_row(db: &Db, id: WorkOrderId) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = format!("{ORDER_SELECT} WHERE w.id = $1");
    crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
    })
}

async fn order_row_tx(tx: &mut Tx, id: WorkOrderId) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = format!("{ORDER_SELECT} WHERE w.id = $1");
    exec!(tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await)
}

pub(crate) async fn step_rows(db: &Db, ids: &[WorkOrderId]) -> Result<Vec<StepRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = crate::crm::sql::Sql::default();
    let texts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let list = sql.in_list(&texts);
    sql.push(&format!(
        "{STEP_SELECT} WHERE s.work_order_id IN {list} ORDER BY s.work_order_id, s.position"
    ));
    crate::sql_fetch_all!(db, StepRow, &sql)
}

async fn step_rows_tx(tx: &mut Tx, id: WorkOrderId) -> Result<Vec<StepRow>, sqlx::Error> {
    let sql = format!("{STEP_SELECT} WHERE s.work_order_id = $1 ORDER BY s.position");
    exec!(tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(conn).await)
}

/// What opening an order needs.
pub struct NewWorkOrder<'a> {
    pub definition: &'a str,
    pub title: Option<&'a str>,
    pub customer_id: Option<CustomerId>,
    pub card_id: Option<CardId>,
    pub by: Option<UserId>,
    /// A job's effect key: a second run of the same job finds the first one's order.
    pub effect_key: Option<&'a str>,
}

/// The user a step goes to: its `user:` (by email), else the customer's first owner who
/// has the step's role, else nobody (the role's members pick it up).
async fn default_assignee(
    tx: &mut Tx,
    step: &crate::definitions::model::Step,
    customer: Option<CustomerId>,
) -> Result<Option<UserId>, sqlx::Error> {
    if let Some(email) = &step.user {
        let id: Option<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = lower($1) AND active")
            .bind(email.as_str()).fetch_optional(conn).await)?;
        return Ok(id);
    }
    if let (Some(role), Some(customer)) = (&step.role, customer) {
        let id: Option<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar(
            "SELECT u.id FROM customer_owners o JOIN users u ON u.id = o.user_id WHERE o.customer_id = $1 AND u.role = $2 AND u.active ORDER BY o.since, u.id LIMIT 1")
            .bind(customer).bind(role.as_str()).fetch_optional(conn).await)?;
        return Ok(id);
    }
    Ok(None)
}

fn due_from(
    defs: &Definitions,
    step: &crate::definitions::model::Step,
    base: Timestamp,
    fields: &Map<String, Value>,
) -> Option<Timestamp> {
    let expr = step.due.as_ref()?.expr()?.clone();
    let calendar = crate::reminders::due::calendar_of(defs);
    crate::reminders::due::evaluate(&expr, base.as_datetime(), fields, &calendar)
        .ok()
        .map(Timestamp::from_datetime)
}

/// Opens an order in `tx` from the definition of `defs`.
pub async fn create_in(
    tx: &mut Tx,
    defs: &Definitions,
    new: NewWorkOrder<'_>,
) -> Result<(WorkOrderId, bool), ApiError> {
    let Some(def) = defs.work_order(new.definition) else {
        return Err(ApiError::unprocessable(
            "unknown_work_order",
            format!("there is no work order definition `{}`", new.definition),
        )
        .with_field("definition", "unknown"));
    };
    if let Some(key) = new.effect_key {
        let found: Option<WorkOrderId> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT id FROM work_orders WHERE effect_key = $1")
            .bind(key).fetch_optional(conn).await)?;
        if let Some(id) = found {
            return Ok((id, false));
        }
    }
    let id = WorkOrderId::new();
    let now = Timestamp::now();
    exec!(&mut *tx, conn => sqlx::query(
        "INSERT INTO work_orders (id, definition, title, definitions_version, customer_id, card_id, status, fields, created_at, created_by, updated_at, version, effects_queued, effect_key)
         VALUES ($1, $2, $3, $4, $5, $6, 'open', '{}', $7, $8, $7, 1, FALSE, $9)")
        .bind(id).bind(def.id.as_str()).bind(new.title).bind(&defs.version).bind(new.customer_id).bind(new.card_id)
        .bind(now).bind(new.by).bind(new.effect_key)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    let deps = prerequisites(def);
    let empty = Map::new();
    for (position, step) in def.steps.iter().enumerate() {
        let ready = deps.get(step.id.as_str()).is_none_or(|d| d.is_empty());
        let assignee = default_assignee(tx, step, new.customer_id).await?;
        let (status, ready_at, due_at) = if ready {
            ("ready", Some(now), due_from(defs, step, now, &empty))
        } else {
            ("waiting", None, None)
        };
        exec!(&mut *tx, conn => sqlx::query(
            "INSERT INTO work_order_steps (work_order_id, step_id, position, status, assignee_id, ready_at, due_at, effects_queued)
             VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE)")
            .bind(id).bind(step.id.as_str()).bind(position as i64).bind(status).bind(assignee).bind(ready_at).bind(due_at)
            .execute(conn).await.map(|r| r.rows_affected()))?;
    }
    if let Some(customer) = new.customer_id {
        crate::crm::timeline::append(
            tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: new.card_id,
                kind: kinds::CREATED,
                actor: new.by,
                definitions_version: &defs.version,
                data: json!({"work_order_id": id, "definition": def.id.as_str(), "name_tr": def.name.get("tr"), "name_en": def.name.get("en")}),
            },
        )
        .await?;
    }
    announce(tx, id, new.customer_id, "created").await?;
    Ok((id, true))
}

pub mod kinds {
    pub const CREATED: &str = "work_order_created";
    pub const STEP_DONE: &str = "work_order_step_done";
    pub const STEP_REOPENED: &str = "work_order_step_reopened";
    pub const STATUS_CHANGED: &str = "work_order_status_changed";
    pub const COMPLETED: &str = "work_order_completed";
    pub const COMMENT: &str = "work_order_comment";
}

/// `work_order.updated` to whoever may see the order (its customer's viewers, or the
/// work-order module's for internal work). Also used by the drive for the order's files
/// (`change`: `file_added`, `file_deleted`).
pub(crate) async fn announce(
    tx: &mut Tx,
    id: WorkOrderId,
    customer: Option<CustomerId>,
    change: &str,
) -> Result<(), sqlx::Error> {
    let audience = match customer {
        Some(customer_id) => {
            let owners: Vec<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT user_id FROM customer_owners WHERE customer_id = $1")
                .bind(customer_id).fetch_all(conn).await)?;
            Audience::Customer {
                customer_id,
                owners,
            }
        }
        None => Audience::Permission {
            module: "work_orders".into(),
            permission: "view".into(),
        },
    };
    realtime::record(
        tx,
        NewEvent::new(
            realtime::kinds::WORK_ORDER_UPDATED,
            audience,
            json!({"work_order_id": id, "customer_id": customer, "change": change}),
        ),
    )
    .await
}

/// The definitions an order follows (its own stored version).
pub async fn definitions_of(
    state: &crate::app::AppState,
    version: &str,
) -> Result<Arc<Definitions>, ApiError> {
    state
        .versions
        .get(&state.db, &state.definitions, version)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "definitions version {version} is not stored"
            ))
        })
}

/// A step completion as asked.
pub struct Completion<'a> {
    pub order: WorkOrderId,
    pub step: &'a str,
    pub expected_version: i64,
    pub fields: Map<String, Value>,
    pub by: &'a crate::policy::Actor,
}

fn stale(current: i64) -> ApiError {
    ApiError::conflict(
        "stale_version",
        format!(
            "the work order changed meanwhile (now version {current}); reload it and try again"
        ),
    )
}

fn may_do_step(
    actor: &crate::policy::Actor,
    defs: &Definitions,
    role: Option<&str>,
    assignee: Option<UserId>,
) -> bool {
    use crate::policy::{Module, Permission};
    actor.is_admin(defs)
        || actor.can(defs, Module::WorkOrders, Permission::Bulk)
        || assignee == Some(actor.user_id)
        || (assignee.is_none() && role.is_none_or(|r| r == actor.role))
}

fn blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Checks a step off: dependencies, rights, required fields and files, the guard, then the
/// write and its effects, in one transaction.
pub async fn complete_step(
    state: &crate::app::AppState,
    c: Completion<'_>,
) -> Result<(), ApiError> {
    let row = order_row(&state.db, c.order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    let defs = definitions_of(state, &row.definitions_version).await?;
    let def = defs.work_order(&row.definition).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "work order definition {} missing from its version",
            row.definition
        ))
    })?;
    let step_def = def
        .steps
        .iter()
        .find(|s| s.id.as_str() == c.step)
        .ok_or_else(|| ApiError::not_found("step"))?;
    let locale = c.by.locale.as_str();
    let mut fields: Map<String, Value> = serde_json::from_str(&row.fields).unwrap_or_default();
    for (k, v) in &c.fields {
        if k.is_empty() || k.len() > 64 {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "field names have 1 to 64 characters",
            )
            .with_field(k.clone(), "invalid name"));
        }
        fields.insert(k.clone(), v.clone());
    }
    let mut missing = BTreeMap::new();
    for f in &step_def.required_fields {
        if blank(fields.get(f.as_str())) {
            missing.insert(
                f.as_str().to_string(),
                localized(
                    locale,
                    "bu adımı tamamlamak için gerekli",
                    "required to complete this step",
                ),
            );
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Client {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "required_fields",
            message: localized(
                locale,
                &format!(
                    "Adımı tamamlamak için eksik alanlar: {}",
                    missing.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                &format!(
                    "Fields required to complete the step: {}",
                    missing.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            fields: missing,
            retry_after_secs: None,
        });
    }
    if let Some(guard) = &step_def.guard {
        let rule = crate::rules::RuleRef::parse(guard.as_str()).map_err(|e| anyhow::anyhow!(e))?;
        let ctx = crate::rules::RuleContext::new()
            .with_json("work_order", &json!({"id": row.id, "definition": row.definition, "fields": fields, "customer_id": row.customer_id}))
            .with_json("step", &json!({"id": c.step}))
            .with_json("user", &json!({"id": c.by.user_id.to_string(), "role": c.by.role}));
        match defs.rules.guard_async(rule.clone(), ctx).await {
            Ok(crate::rules::GuardDecision::Allow) => {}
            Ok(crate::rules::GuardDecision::Deny(crate::rules::DenyReason::Text { tr, en })) => {
                return Err(ApiError::unprocessable(
                    "guard_refused",
                    localized(locale, &tr, &en),
                ));
            }
            Ok(crate::rules::GuardDecision::Deny(crate::rules::DenyReason::Key(key))) => {
                return Err(ApiError::unprocessable("guard_refused", key));
            }
            Err(e) => {
                tracing::warn!(rule = %rule, error = %e, "work-order guard failed; the step stays open");
                return Err(ApiError::unprocessable(
                    "guard_failed",
                    localized(
                        locale,
                        &format!("Adım kuralı çalışmadı ({rule}); yöneticinize bildirin."),
                        &format!("The step rule failed ({rule}); tell your administrator."),
                    ),
                ));
            }
        }
    }

    let mut tx = state.db.begin().await?;
    let row = order_row_tx(&mut tx, c.order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    if row.version != c.expected_version {
        return Err(stale(row.version));
    }
    if matches!(row.status.as_str(), "done" | "cancelled") {
        return Err(ApiError::conflict(
            "work_order_closed",
            localized(locale, "İş emri kapalı.", "The work order is closed."),
        ));
    }
    let steps = step_rows_tx(&mut tx, c.order).await?;
    let step = steps
        .iter()
        .find(|s| s.step_id == c.step)
        .ok_or_else(|| ApiError::not_found("step"))?;
    if !may_do_step(
        c.by,
        &defs,
        step_def.role.as_ref().map(|r| r.as_str()),
        step.assignee_id,
    ) {
        return Err(ApiError::forbidden(localized(
            locale,
            "Bu adım size ya da rolünüze ait değil.",
            "This step belongs to another user or role.",
        )));
    }
    match step.status.as_str() {
        "done" => {
            return Err(ApiError::conflict(
                "step_done",
                localized(
                    locale,
                    "Adım zaten tamamlandı.",
                    "The step is already done.",
                ),
            ));
        }
        "waiting" => {
            let deps = prerequisites(def);
            let pending: Vec<String> = deps
                .get(c.step)
                .into_iter()
                .flatten()
                .filter(|d| steps.iter().any(|s| &s.step_id == *d && s.status != "done"))
                .map(|d| {
                    def.steps
                        .iter()
                        .find(|s| s.id.as_str() == d)
                        .map_or(d.clone(), |s| s.name.get(lang(locale)).to_string())
                })
                .collect();
            return Err(ApiError::unprocessable(
                "step_not_ready",
                localized(
                    locale,
                    &format!("Önce tamamlanması gerekenler: {}", pending.join(", ")),
                    &format!("To be done first: {}", pending.join(", ")),
                ),
            ));
        }
        _ => {}
    }
    // Required files: a live file in the order's folder named after the slot.
    let mut missing_files = Vec::new();
    for slot in &step_def.required_files {
        let n: i64 = exec!(&mut tx, conn => sqlx::query_scalar(
            "SELECT COUNT(*) FROM files WHERE owner_kind = 'work_order' AND owner_id = $1 AND folder = $2 AND deleted_at IS NULL")
            .bind(c.order.to_string()).bind(slot.as_str()).fetch_one(conn).await)?;
        if n == 0 {
            missing_files.push(slot.as_str().to_string());
        }
    }
    if !missing_files.is_empty() {
        let mut fields_err = BTreeMap::new();
        for f in &missing_files {
            fields_err.insert(
                f.clone(),
                localized(locale, "dosya yüklenmeli", "a file must be uploaded"),
            );
        }
        return Err(ApiError::Client {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "required_files",
            message: localized(
                locale,
                &format!(
                    "Adımı tamamlamak için yüklenmesi gereken dosyalar: {}",
                    missing_files.join(", ")
                ),
                &format!(
                    "Files required to complete the step: {}",
                    missing_files.join(", ")
                ),
            ),
            fields: fields_err,
            retry_after_secs: None,
        });
    }

    let now = Timestamp::now();
    exec!(&mut tx, conn => sqlx::query(
        "UPDATE work_order_steps SET status = 'done', done_at = $1, done_by = $2 WHERE work_order_id = $3 AND step_id = $4")
        .bind(now).bind(c.by.user_id).bind(c.order).bind(c.step).execute(conn).await.map(|r| r.rows_affected()))?;
    // Steps whose prerequisites are now all done become ready, their due time from now.
    let mut done: HashSet<String> = steps
        .iter()
        .filter(|s| s.status == "done")
        .map(|s| s.step_id.clone())
        .collect();
    done.insert(c.step.to_string());
    let deps = prerequisites(def);
    for s in steps.iter().filter(|s| s.status == "waiting") {
        if deps
            .get(&s.step_id)
            .is_some_and(|d| d.iter().all(|x| done.contains(x)))
        {
            let sd = def.steps.iter().find(|x| x.id.as_str() == s.step_id);
            let due = sd.and_then(|sd| due_from(&defs, sd, now, &fields));
            exec!(&mut tx, conn => sqlx::query(
                "UPDATE work_order_steps SET status = 'ready', ready_at = $1, due_at = $2 WHERE work_order_id = $3 AND step_id = $4")
                .bind(now).bind(due).bind(c.order).bind(&s.step_id).execute(conn).await.map(|r| r.rows_affected()))?;
        }
    }
    let all_done = done.len() == steps.len();
    let status = if all_done {
        "done"
    } else if row.status == "blocked" {
        "blocked"
    } else {
        "in_progress"
    };
    let changed = exec!(&mut tx, conn => sqlx::query(
        "UPDATE work_orders SET status = $1, fields = $2, completed_at = $3, updated_at = $4, version = version + 1 WHERE id = $5 AND version = $6")
        .bind(status).bind(Value::Object(fields.clone()).to_string()).bind(if all_done { Some(now) } else { None }).bind(now)
        .bind(c.order).bind(c.expected_version).execute(conn).await.map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Err(stale(row.version));
    }
    let event = EventId::new();
    if let Some(customer) = row.customer_id {
        crate::crm::timeline::append(
            &mut tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: row.card_id,
                kind: kinds::STEP_DONE,
                actor: Some(c.by.user_id),
                definitions_version: &row.definitions_version,
                data: json!({"work_order_id": row.id, "step": c.step, "step_name_tr": step_def.name.get("tr"), "step_name_en": step_def.name.get("en"), "work_order_done": all_done}),
            },
        )
        .await?;
    }
    // Effects, once per step and once per order.
    if !step.effects_queued && !step_def.on_complete.is_empty() {
        queue_effects(
            &mut tx,
            &defs,
            &row,
            &format!("{}:{}", row.id, c.step),
            event,
            &step_def.on_complete,
            Some(c.by.user_id),
        )
        .await?;
    }
    exec!(&mut tx, conn => sqlx::query("UPDATE work_order_steps SET effects_queued = TRUE WHERE work_order_id = $1 AND step_id = $2")
        .bind(c.order).bind(c.step).execute(conn).await.map(|r| r.rows_affected()))?;
    if all_done && !row.effects_queued {
        queue_effects(
            &mut tx,
            &defs,
            &row,
            &format!("{}:done", row.id),
            event,
            &def.on_complete,
            Some(c.by.user_id),
        )
        .await?;
        exec!(&mut tx, conn => sqlx::query("UPDATE work_orders SET effects_queued = TRUE WHERE id = $1")
            .bind(c.order).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    announce(
        &mut tx,
        c.order,
        row.customer_id,
        if all_done { "completed" } else { "step_done" },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues `actions` for an order. An order about a card runs them like the card's
/// transition actions (every kind); internal work supports `notify` (roles and the actor;
/// `owners` means the order's creator).
async fn queue_effects(
    tx: &mut Tx,
    defs: &Definitions,
    row: &OrderRow,
    scope: &str,
    event: EventId,
    actions: &[Action],
    by: Option<UserId>,
) -> Result<(), ApiError> {
    if actions.is_empty() {
        return Ok(());
    }
    if let (Some(card_id), Some(customer_id)) = (row.card_id, row.customer_id) {
        let card = crate::crm::cards::get_tx(tx, card_id).await?;
        let customer = crate::crm::customers::get_tx(tx, customer_id).await?;
        if let (Some(card), Some(customer)) = (card, customer)
            && let Some(pipeline) = defs.pipeline(&card.pipeline_id)
        {
            let ctx = crate::crm::outbox::ActionContext {
                definitions: defs,
                pipeline,
                customer: &customer,
                card_id,
                card_fields: &card.fields,
                from: &card.stage_id,
                to: &card.stage_id,
                by,
                actor_name: None,
                event,
                at: Timestamp::now(),
            };
            crate::crm::outbox::enqueue_actions(tx, &ctx, actions)
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
            return Ok(());
        }
    }
    for (index, action) in actions.iter().enumerate() {
        let Action::Notify(n) = action else {
            tracing::warn!(work_order = %row.id, kind = action.job_kind(), "only notify actions run for work orders without a card; skipped");
            continue;
        };
        let mut users: Vec<UserId> = Vec::new();
        for r in &n.to {
            match r {
                Recipient::Owners => {
                    if let Some(customer) = row.customer_id {
                        let owners: Vec<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT user_id FROM customer_owners WHERE customer_id = $1")
                            .bind(customer).fetch_all(conn).await)?;
                        users.extend(owners);
                    } else {
                        users.extend(row.created_by);
                    }
                }
                Recipient::Actor => users.extend(by),
                Recipient::Role(role) => {
                    let ids: Vec<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT id FROM users WHERE role = $1 AND active ORDER BY id")
                        .bind(role.as_str()).fetch_all(conn).await)?;
                    users.extend(ids);
                }
            }
        }
        let mut seen = HashSet::new();
        users.retain(|u| seen.insert(*u));
        if users.is_empty() {
            tracing::info!(work_order = %row.id, "a notify effect found no recipients; skipped");
            continue;
        }
        let job = NotifyJob {
            effect_key: EffectKey::new(format!("wo:{scope}:{index}")),
            user_ids: users,
            customer_id: row.customer_id,
            template: n.message.as_str().to_string(),
            values: json!({"work_order": {"id": row.id, "definition": row.definition, "title": row.title}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        exec!(&mut *tx, conn => crate::jobs::enqueue(conn, &job).await)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    }
    Ok(())
}

/// Reopens a done step (none of the steps after it may be done).
pub async fn reopen_step(
    state: &crate::app::AppState,
    order: WorkOrderId,
    step_id: &str,
    expected_version: i64,
    by: &crate::policy::Actor,
) -> Result<(), ApiError> {
    let row = order_row(&state.db, order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    let defs = definitions_of(state, &row.definitions_version).await?;
    let def = defs
        .work_order(&row.definition)
        .ok_or_else(|| ApiError::not_found("work order definition"))?;
    let step_def = def
        .steps
        .iter()
        .find(|s| s.id.as_str() == step_id)
        .ok_or_else(|| ApiError::not_found("step"))?;
    let locale = by.locale.as_str();
    let mut tx = state.db.begin().await?;
    let row = order_row_tx(&mut tx, order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    if row.version != expected_version {
        return Err(stale(row.version));
    }
    if row.status == "cancelled" {
        return Err(ApiError::conflict(
            "work_order_closed",
            localized(
                locale,
                "İş emri iptal edildi.",
                "The work order is cancelled.",
            ),
        ));
    }
    let steps = step_rows_tx(&mut tx, order).await?;
    let step = steps
        .iter()
        .find(|s| s.step_id == step_id)
        .ok_or_else(|| ApiError::not_found("step"))?;
    if !may_do_step(
        by,
        &defs,
        step_def.role.as_ref().map(|r| r.as_str()),
        step.assignee_id,
    ) {
        return Err(ApiError::forbidden(localized(
            locale,
            "Bu adım size ya da rolünüze ait değil.",
            "This step belongs to another user or role.",
        )));
    }
    if step.status != "done" {
        return Err(ApiError::conflict(
            "step_not_done",
            localized(locale, "Adım tamamlanmamış.", "The step is not done."),
        ));
    }
    let deps = prerequisites(def);
    let later_done: Vec<&str> = steps
        .iter()
        .filter(|s| {
            s.status == "done"
                && deps
                    .get(&s.step_id)
                    .is_some_and(|d| d.iter().any(|x| x == step_id))
        })
        .map(|s| s.step_id.as_str())
        .collect();
    if !later_done.is_empty() {
        return Err(ApiError::unprocessable(
            "dependents_done",
            localized(
                locale,
                &format!(
                    "Önce bu adıma bağlı adımlar geri açılmalı: {}",
                    later_done.join(", ")
                ),
                &format!(
                    "Reopen the steps that depend on it first: {}",
                    later_done.join(", ")
                ),
            ),
        ));
    }
    let now = Timestamp::now();
    exec!(&mut tx, conn => sqlx::query(
        "UPDATE work_order_steps SET status = 'ready', done_at = NULL, done_by = NULL WHERE work_order_id = $1 AND step_id = $2")
        .bind(order).bind(step_id).execute(conn).await.map(|r| r.rows_affected()))?;
    // Its dependents wait again.
    for s in steps.iter().filter(|s| {
        s.status == "ready"
            && deps
                .get(&s.step_id)
                .is_some_and(|d| d.iter().any(|x| x == step_id))
    }) {
        exec!(&mut tx, conn => sqlx::query(
            "UPDATE work_order_steps SET status = 'waiting', ready_at = NULL, due_at = NULL WHERE work_order_id = $1 AND step_id = $2")
            .bind(order).bind(&s.step_id).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    let status = if row.status == "blocked" {
        "blocked"
    } else {
        "in_progress"
    };
    exec!(&mut tx, conn => sqlx::query(
        "UPDATE work_orders SET status = $1, completed_at = NULL, updated_at = $2, version = version + 1 WHERE id = $3")
        .bind(status).bind(now).bind(order).execute(conn).await.map(|r| r.rows_affected()))?;
    if let Some(customer) = row.customer_id {
        crate::crm::timeline::append(
            &mut tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: row.card_id,
                kind: kinds::STEP_REOPENED,
                actor: Some(by.user_id),
                definitions_version: &row.definitions_version,
                data: json!({"work_order_id": row.id, "step": step_id}),
            },
        )
        .await?;
    }
    announce(&mut tx, order, row.customer_id, "step_reopened").await?;
    tx.commit().await?;
    Ok(())
}

/// Sets the order's status by hand: `blocked`, back to `open`/`in_progress`, `cancelled`.
pub async fn set_status(
    state: &crate::app::AppState,
    order: WorkOrderId,
    status: &str,
    expected_version: i64,
    by: &crate::policy::Actor,
) -> Result<(), ApiError> {
    if !matches!(status, "open" | "in_progress" | "blocked" | "cancelled") {
        return Err(ApiError::unprocessable(
            "invalid_status",
            "status is one of open, in_progress, blocked, cancelled (done comes from the steps)",
        )
        .with_field("status", "invalid"));
    }
    let mut tx = state.db.begin().await?;
    let row = order_row_tx(&mut tx, order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    if row.version != expected_version {
        return Err(stale(row.version));
    }
    if matches!(row.status.as_str(), "done" | "cancelled") {
        return Err(ApiError::conflict(
            "work_order_closed",
            localized(&by.locale, "İş emri kapalı.", "The work order is closed."),
        ));
    }
    exec!(&mut tx, conn => sqlx::query("UPDATE work_orders SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3")
        .bind(status).bind(Timestamp::now()).bind(order).execute(conn).await.map(|r| r.rows_affected()))?;
    if let Some(customer) = row.customer_id {
        crate::crm::timeline::append(
            &mut tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: row.card_id,
                kind: kinds::STATUS_CHANGED,
                actor: Some(by.user_id),
                definitions_version: &row.definitions_version,
                data: json!({"work_order_id": row.id, "from": row.status, "to": status}),
            },
        )
        .await?;
    }
    announce(&mut tx, order, row.customer_id, "status").await?;
    tx.commit().await?;
    Ok(())
}

/// Gives a step to a user (or back to its role with None).
pub async fn assign_step(
    state: &crate::app::AppState,
    order: WorkOrderId,
    step_id: &str,
    user: Option<UserId>,
    expected_version: i64,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    let row = order_row_tx(&mut tx, order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    if row.version != expected_version {
        return Err(stale(row.version));
    }
    if let Some(user) = user {
        let active: Option<bool> = exec!(&mut tx, conn => sqlx::query_scalar("SELECT active FROM users WHERE id = $1")
            .bind(user).fetch_optional(conn).await)?;
        if active != Some(true) {
            return Err(
                ApiError::unprocessable("unknown_user", "no active user with that id")
                    .with_field("user_id", "unknown"),
            );
        }
    }
    let changed = exec!(&mut tx, conn => sqlx::query("UPDATE work_order_steps SET assignee_id = $1 WHERE work_order_id = $2 AND step_id = $3 AND status <> 'done'")
        .bind(user).bind(order).bind(step_id).execute(conn).await.map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Err(ApiError::not_found("open step"));
    }
    exec!(&mut tx, conn => sqlx::query("UPDATE work_orders SET updated_at = $1, version = version + 1 WHERE id = $2")
        .bind(Timestamp::now()).bind(order).execute(conn).await.map(|r| r.rows_affected()))?;
    announce(&mut tx, order, row.customer_id, "assigned").await?;
    tx.commit().await?;
    Ok(())
}

pub async fn add_comment(
    state: &crate::app::AppState,
    order: WorkOrderId,
    body: &str,
    by: UserId,
) -> Result<String, ApiError> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > 10_000 {
        return Err(ApiError::unprocessable(
            "invalid_comment",
            "a comment has 1 to 10000 characters",
        )
        .with_field("body", "required"));
    }
    let row = order_row(&state.db, order)
        .await?
        .ok_or_else(|| ApiError::not_found("work order"))?;
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = state.db.begin().await?;
    exec!(&mut tx, conn => sqlx::query("INSERT INTO work_order_comments (id, work_order_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id).bind(order).bind(by).bind(body).bind(Timestamp::now()).execute(conn).await.map(|r| r.rows_affected()))?;
    if let Some(customer) = row.customer_id {
        crate::crm::timeline::append(
            &mut tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: row.card_id,
                kind: kinds::COMMENT,
                actor: Some(by),
                definitions_version: &row.definitions_version,
                data: json!({"work_order_id": row.id, "body": body}),
            },
        )
        .await?;
    }
    announce(&mut tx, order, row.customer_id, "comment").await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn comments(db: &Db, order: WorkOrderId) -> Result<Vec<Comment>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        author_id: Option<UserId>,
        author_name: Option<String>,
        body: String,
        created_at: Timestamp,
    }
    let rows: Vec<Row> = crate::read!(db, pool => {
        sqlx::query_as("SELECT c.id, c.author_id, u.name AS author_name, c.body, c.created_at FROM work_order_comments c LEFT JOIN users u ON u.id = c.author_id WHERE c.work_order_id = $1 ORDER BY c.created_at, c.id")
            .bind(order).fetch_all(pool).await
    })?;
    Ok(rows
        .into_iter()
        .map(|r| Comment {
            id: r.id,
            author_id: r.author_id,
            author_name: r.author_name,
            body: r.body,
            created_at: r.created_at,
        })
        .collect())
}

/// Offboarding: the user's open steps go to `to`.
pub async fn hand_over(tx: &mut Tx, from: UserId, to: UserId) -> Result<i64, sqlx::Error> {
    let n = exec!(tx, conn => sqlx::query("UPDATE work_order_steps SET assignee_id = $1 WHERE assignee_id = $2 AND status <> 'done'")
        .bind(to).bind(from).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(n as i64)
}

/// Offboarding preview: the user's open steps.
pub async fn open_steps_of(db: &Db, user: UserId) -> Result<i64, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM work_order_steps s JOIN work_orders w ON w.id = s.work_order_id WHERE s.assignee_id = $1 AND s.status <> 'done' AND w.status NOT IN ('done', 'cancelled')")
            .bind(user).fetch_one(pool).await
    })
}
