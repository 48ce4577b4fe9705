//! Routes: reminders (manual ones, complete, snooze, reassign, cancel), the agenda and the
//! overdue list.
//!
//! A reminder about a customer is visible to whoever may see the customer; a personal
//! reminder (no customer) to its assignees and its creator. Changing one needs
//! `customers:edit` on its customer, or being an assignee.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Assignee, Change, NewReminder, Reminder, ReminderId, ReminderRow, SELECT, due};
use crate::app::AppState;
use crate::crm::activities::parse_instant;
use crate::crm::appointments::{self, Appointment};
use crate::crm::customers;
use crate::crm::sql::{Arg, Sql};
use crate::definitions::Definitions;
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission, RecordFilter};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reminders, create_personal))
        .routes(routes!(create_for_customer))
        .routes(routes!(complete))
        .routes(routes!(snooze))
        .routes(routes!(reassign))
        .routes(routes!(cancel))
        .routes(routes!(agenda))
        .routes(routes!(overdue))
}

// ---------------------------------------------------------------- reading

/// The SQL condition limiting reminders to those `actor` may see, binding the actor's id.
fn visible(sql: &mut Sql, actor: &Actor, policy: &RecordFilter) {
    let me = sql.text_arg(actor.user_id.to_string());
    let personal = format!(
        "(r.customer_id IS NULL AND (r.created_by = {me} OR EXISTS (SELECT 1 FROM reminder_assignees a WHERE a.reminder_id = r.id AND a.user_id = {me})))"
    );
    let condition = match policy {
        RecordFilter::All => format!(" AND (r.customer_id IS NOT NULL OR {personal})"),
        RecordFilter::Nothing => format!(" AND {personal}"),
        RecordFilter::OwnedBy(_) => format!(
            " AND (EXISTS (SELECT 1 FROM customer_owners o WHERE o.customer_id = r.customer_id AND o.user_id = {me}) OR {personal})"
        ),
    };
    sql.push(&condition);
}

async fn with_assignees(
    state: &AppState,
    rows: Vec<ReminderRow>,
) -> Result<Vec<Reminder>, ApiError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        reminder_id: ReminderId,
        id: UserId,
        name: String,
    }
    let mut sql = Sql::default();
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let list = sql.in_list(&ids);
    sql.push(&format!(
        "SELECT a.reminder_id, u.id, u.name FROM reminder_assignees a JOIN users u ON u.id = a.user_id WHERE a.reminder_id IN {list} ORDER BY u.name"
    ));
    let mut by: BTreeMap<ReminderId, Vec<Assignee>> = BTreeMap::new();
    for r in crate::sql_fetch_all!(&state.db, Row, &sql)? {
        by.entry(r.reminder_id).or_default().push(Assignee {
            id: r.id,
            name: r.name,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let a = by.remove(&r.id).unwrap_or_default();
            r.into_reminder(a)
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReminderQuery {
    /// `open` (default), `done`, `cancelled` or `all`.
    status: Option<String>,
    /// Only this assignee (`me` for yourself).
    assignee: Option<String>,
    customer: Option<CustomerId>,
    card: Option<CardId>,
    /// Only open reminders past their due time.
    #[serde(default)]
    overdue: bool,
    /// Due at or after (RFC 3339).
    from: Option<String>,
    /// Due before (RFC 3339).
    to: Option<String>,
    /// 1–500 (default 200).
    limit: Option<u32>,
}

async fn query(
    state: &AppState,
    defs: &Definitions,
    actor: &Actor,
    q: &ReminderQuery,
) -> Result<Vec<Reminder>, ApiError> {
    let policy = actor.record_filter(defs, Module::Customers);
    let mut sql = Sql::new(format!("{SELECT} WHERE 1 = 1"));
    visible(&mut sql, actor, &policy);
    match q.status.as_deref().unwrap_or("open") {
        "all" => {}
        s @ ("open" | "done" | "cancelled") => {
            let a = sql.text_arg(s);
            sql.push(&format!(" AND r.status = {a}"));
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("status `{other}`: use open, done, cancelled or all"),
            ));
        }
    }
    if let Some(who) = &q.assignee {
        let id = if who == "me" {
            actor.user_id
        } else {
            who.parse().map_err(|_| {
                ApiError::bad_request("invalid_query", "assignee: a user id or `me`")
            })?
        };
        let a = sql.text_arg(id.to_string());
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM reminder_assignees x WHERE x.reminder_id = r.id AND x.user_id = {a})"
        ));
    }
    if let Some(c) = q.customer {
        let a = sql.text_arg(c.to_string());
        sql.push(&format!(" AND r.customer_id = {a}"));
    }
    if let Some(c) = q.card {
        let a = sql.text_arg(c.to_string());
        sql.push(&format!(" AND r.card_id = {a}"));
    }
    if q.overdue {
        let now = sql.arg(Arg::Time(Timestamp::now()));
        sql.push(&format!(" AND r.status = 'open' AND r.due_at < {now}"));
    }
    if let Some(from) = parse_instant(q.from.as_deref(), "from")? {
        let a = sql.arg(Arg::Time(from));
        sql.push(&format!(" AND r.due_at >= {a}"));
    }
    if let Some(to) = parse_instant(q.to.as_deref(), "to")? {
        let a = sql.arg(Arg::Time(to));
        sql.push(&format!(" AND r.due_at < {a}"));
    }
    sql.push(&format!(
        " ORDER BY r.due_at, r.id LIMIT {}",
        q.limit.unwrap_or(200).clamp(1, 500)
    ));
    let rows = crate::sql_fetch_all!(&state.db, ReminderRow, &sql)?;
    with_assignees(state, rows).await
}

/// Reminders you may see, soonest first.
#[utoipa::path(get, path = "/api/reminders", tag = "reminders", params(ReminderQuery),
    responses((status = 200, body = Vec<Reminder>)))]
async fn list_reminders(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<ReminderQuery>,
) -> Result<Json<Vec<Reminder>>, ApiError> {
    let defs = state.defs();
    Ok(Json(query(&state, &defs, &actor, &q).await?))
}

// ---------------------------------------------------------------- creating

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReminderRequest {
    /// The title, shown in both languages unless `title_en` is given.
    title: String,
    title_en: Option<String>,
    /// When (RFC 3339) — or `due`.
    due_at: Option<String>,
    /// A due-time expression instead (`+2d at 10:00`, `next business day 09:30`).
    due: Option<String>,
    /// Default: you.
    #[serde(default)]
    assignees: Vec<UserId>,
    card_id: Option<CardId>,
    note: Option<String>,
}

fn due_of(
    defs: &Definitions,
    body: &NewReminderRequest,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<Timestamp, ApiError> {
    match (&body.due_at, &body.due) {
        (Some(_), Some(_)) => Err(ApiError::unprocessable(
            "invalid_reminder",
            "give either `due_at` or `due`",
        )),
        (None, None) => Err(ApiError::unprocessable(
            "invalid_reminder",
            "a reminder needs `due_at` or `due`",
        )
        .with_field("due_at", "required")),
        (Some(at), None) => parse_instant(Some(at), "due_at")?
            .ok_or_else(|| ApiError::unprocessable("invalid_reminder", "due_at")),
        (None, Some(expr)) => {
            let parsed = crate::definitions::due::parse(expr).map_err(|e| {
                ApiError::unprocessable("invalid_due", format!("`{expr}`: {e}"))
                    .with_field("due", e.message)
            })?;
            let t = due::evaluate(
                &parsed,
                Timestamp::now().as_datetime(),
                fields,
                &due::calendar_of(defs),
            )
            .map_err(|e| {
                ApiError::unprocessable("invalid_due", e.to_string())
                    .with_field("due", e.to_string())
            })?;
            Ok(Timestamp::from_datetime(t))
        }
    }
}

fn check_title(body: &NewReminderRequest) -> Result<(String, String), ApiError> {
    let tr = body.title.trim();
    if tr.is_empty() || tr.chars().count() > 300 {
        return Err(
            ApiError::unprocessable("invalid_reminder", "a title has 1 to 300 characters")
                .with_field("title", "1 to 300 characters"),
        );
    }
    let en = body
        .title_en
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(tr);
    Ok((tr.to_string(), en.chars().take(300).collect()))
}

async fn create(
    state: &AppState,
    defs: &Definitions,
    actor: &Actor,
    customer: Option<CustomerId>,
    body: NewReminderRequest,
) -> Result<Reminder, ApiError> {
    let (title_tr, title_en) = check_title(&body)?;
    if body
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > 5_000)
    {
        return Err(ApiError::unprocessable(
            "invalid_reminder",
            "a note has at most 5,000 characters",
        )
        .with_field("note", "too long"));
    }
    let mut tx = state.db.begin().await?;
    let fields = match body.card_id {
        Some(card) => match super::triggers::card_view(&mut tx, card).await? {
            Some(view) if Some(view.customer) == customer => view.fields,
            _ => {
                return Err(ApiError::unprocessable(
                    "unknown_card",
                    "this card does not belong to the customer",
                )
                .with_field("card_id", "not this customer's card"));
            }
        },
        None => serde_json::Map::new(),
    };
    let due_at = due_of(defs, &body, &fields)?;
    let assignees = if body.assignees.is_empty() {
        vec![actor.user_id]
    } else {
        body.assignees.clone()
    };
    for user in &assignees {
        let active: Option<bool> = crate::exec!(&mut tx, conn => sqlx::query_scalar("SELECT active FROM users WHERE id = $1")
            .bind(user).fetch_optional(conn).await)?;
        if active != Some(true) {
            return Err(ApiError::unprocessable(
                "unknown_user",
                "every assignee must be an active user",
            )
            .with_field("assignees", format!("{user} is not an active user")));
        }
    }
    let created = super::create_in(
        &mut tx,
        defs,
        NewReminder {
            customer_id: customer,
            card_id: body.card_id,
            origin: "manual",
            rule: None,
            trigger_key: None,
            title_tr,
            title_en,
            note: body.note.clone(),
            message: None,
            due_at,
            assignees,
            by: Some(actor.user_id),
        },
    )
    .await?;
    let reminder = super::get_in(&mut tx, created.id())
        .await?
        .ok_or_else(|| ApiError::not_found("reminder"))?;
    tx.commit().await?;
    Ok(reminder)
}

/// A reminder about a customer ("call on Friday").
#[utoipa::path(post, path = "/api/customers/{id}/reminders", tag = "reminders", params(("id" = CustomerId, Path)),
    request_body = NewReminderRequest,
    responses((status = 201, body = Reminder), (status = 404), (status = 422)))]
async fn create_for_customer(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Json(body): Json<NewReminderRequest>,
) -> Result<(StatusCode, Json<Reminder>), ApiError> {
    let defs = state.defs();
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
        Permission::Edit,
        &owners,
        "customer",
    )?;
    Ok((
        StatusCode::CREATED,
        Json(create(&state, &defs, &actor, Some(id), body).await?),
    ))
}

/// A personal reminder (about no customer).
#[utoipa::path(post, path = "/api/reminders", tag = "reminders", request_body = NewReminderRequest,
    responses((status = 201, body = Reminder), (status = 422)))]
async fn create_personal(
    State(state): State<AppState>,
    actor: Actor,
    Json(body): Json<NewReminderRequest>,
) -> Result<(StatusCode, Json<Reminder>), ApiError> {
    let defs = state.defs();
    if body.card_id.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_reminder",
            "a reminder about a card goes to /api/customers/{id}/reminders",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(create(&state, &defs, &actor, None, body).await?),
    ))
}

// ---------------------------------------------------------------- changing

/// Who may change `reminder`: an assignee, or a user who may edit its customer.
async fn may_change(
    state: &AppState,
    defs: &Definitions,
    actor: &Actor,
    reminder: &Reminder,
) -> Result<(), ApiError> {
    let assignee = reminder.assignees.iter().any(|a| a.id == actor.user_id);
    match reminder.customer_id {
        Some(customer) => {
            let owners = customers::owner_ids(&state.db, customer).await?;
            if assignee {
                return Ok(());
            }
            actor.require_access(
                defs,
                Module::Customers,
                Permission::Edit,
                &owners,
                "reminder",
            )
        }
        None if assignee || reminder.created_by == Some(actor.user_id) => Ok(()),
        None => Err(ApiError::not_found("reminder")),
    }
}

async fn apply(
    state: &AppState,
    actor: &Actor,
    id: ReminderId,
    expected_version: i64,
    change: Change,
) -> Result<Reminder, ApiError> {
    let defs = state.defs();
    // Access first, outside the write transaction (owners are read from the pool).
    let current = {
        let mut sql = Sql::new(format!("{SELECT} WHERE r.id = "));
        let a = sql.text_arg(id.to_string());
        sql.push(&a);
        let rows = crate::sql_fetch_all!(&state.db, ReminderRow, &sql)?;
        with_assignees(state, rows)
            .await?
            .pop()
            .ok_or_else(|| ApiError::not_found("reminder"))?
    };
    may_change(state, &defs, actor, &current).await?;
    super::change(
        &state.db,
        &defs,
        id,
        expected_version,
        change,
        actor.user_id,
        |_| Ok(()),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    expected_version: i64,
    note: Option<String>,
}

/// Marks a reminder done.
#[utoipa::path(post, path = "/api/reminders/{id}/complete", tag = "reminders", params(("id" = String, Path)),
    request_body = CompleteRequest,
    responses((status = 200, body = Reminder), (status = 404), (status = 409)))]
async fn complete(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<ReminderId>,
    Json(body): Json<CompleteRequest>,
) -> Result<Json<Reminder>, ApiError> {
    Ok(Json(
        apply(
            &state,
            &actor,
            id,
            body.expected_version,
            Change::Complete { note: body.note },
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeRequest {
    expected_version: i64,
    /// Until when (RFC 3339) — or `by`.
    until: Option<String>,
    /// A due-time expression from now (`+1h`, `next business day 09:30`).
    by: Option<String>,
}

/// Moves a reminder's due time later; it fires again then.
#[utoipa::path(post, path = "/api/reminders/{id}/snooze", tag = "reminders", params(("id" = String, Path)),
    request_body = SnoozeRequest,
    responses((status = 200, body = Reminder), (status = 404), (status = 409), (status = 422)))]
async fn snooze(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<ReminderId>,
    Json(body): Json<SnoozeRequest>,
) -> Result<Json<Reminder>, ApiError> {
    let defs = state.defs();
    let until = match (&body.until, &body.by) {
        (Some(u), None) => parse_instant(Some(u), "until")?
            .ok_or_else(|| ApiError::unprocessable("invalid_snooze", "until"))?,
        (None, Some(expr)) => {
            let parsed = crate::definitions::due::parse(expr).map_err(|e| {
                ApiError::unprocessable("invalid_due", format!("`{expr}`: {e}"))
                    .with_field("by", e.message)
            })?;
            let t = due::evaluate(
                &parsed,
                Timestamp::now().as_datetime(),
                &serde_json::Map::new(),
                &due::calendar_of(&defs),
            )
            .map_err(|e| ApiError::unprocessable("invalid_due", e.to_string()))?;
            Timestamp::from_datetime(t)
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_snooze",
                "give either `until` or `by`",
            ));
        }
    };
    Ok(Json(
        apply(
            &state,
            &actor,
            id,
            body.expected_version,
            Change::Snooze { until },
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignRequest {
    expected_version: i64,
    assignees: Vec<UserId>,
}

/// Gives a reminder to other users.
#[utoipa::path(post, path = "/api/reminders/{id}/reassign", tag = "reminders", params(("id" = String, Path)),
    request_body = ReassignRequest,
    responses((status = 200, body = Reminder), (status = 404), (status = 409), (status = 422)))]
async fn reassign(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<ReminderId>,
    Json(body): Json<ReassignRequest>,
) -> Result<Json<Reminder>, ApiError> {
    Ok(Json(
        apply(
            &state,
            &actor,
            id,
            body.expected_version,
            Change::Reassign {
                assignees: body.assignees,
            },
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancelQuery {
    expected_version: i64,
}

/// Cancels a reminder.
#[utoipa::path(delete, path = "/api/reminders/{id}", tag = "reminders", params(("id" = String, Path), CancelQuery),
    responses((status = 200, body = Reminder), (status = 404), (status = 409)))]
async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<ReminderId>,
    Query(q): Query<CancelQuery>,
) -> Result<Json<Reminder>, ApiError> {
    Ok(Json(
        apply(&state, &actor, id, q.expected_version, Change::Cancel).await?,
    ))
}

// ---------------------------------------------------------------- agenda

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgendaQuery {
    /// Start (RFC 3339); default now.
    from: Option<String>,
    /// End (RFC 3339); default a week after `from`. At most 62 days.
    to: Option<String>,
    /// Only this user's: their reminders, and appointments of their customers (`me` for
    /// yourself).
    user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Agenda {
    pub appointments: Vec<Appointment>,
    pub reminders: Vec<Reminder>,
}

/// Appointments and reminders in a time range, of customers you may see.
#[utoipa::path(get, path = "/api/agenda", tag = "reminders", params(AgendaQuery),
    responses((status = 200, body = Agenda), (status = 422)))]
async fn agenda(
    State(state): State<AppState>,
    actor: Actor,
    Query(q): Query<AgendaQuery>,
) -> Result<Json<Agenda>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Customers, Permission::View)?;
    let from = parse_instant(q.from.as_deref(), "from")?.unwrap_or_else(Timestamp::now);
    let to = parse_instant(q.to.as_deref(), "to")?.unwrap_or_else(|| {
        Timestamp::from_datetime(from.as_datetime() + chrono::Duration::days(7))
    });
    if to <= from || to.as_datetime() - from.as_datetime() > chrono::Duration::days(62) {
        return Err(ApiError::unprocessable(
            "invalid_range",
            "`to` must be after `from`, at most 62 days later",
        ));
    }
    let user = match q.user.as_deref() {
        None => None,
        Some("me") => Some(actor.user_id),
        Some(u) => Some(
            u.parse::<UserId>()
                .map_err(|_| ApiError::bad_request("invalid_query", "user: a user id or `me`"))?,
        ),
    };
    let policy = actor.record_filter(&defs, Module::Customers);
    let mut appointments = appointments::agenda(&state.db, &policy, from, to).await?;
    if let Some(user) = user {
        let owned: std::collections::HashSet<CustomerId> = crate::read!(&state.db, pool => {
            sqlx::query_scalar::<_, CustomerId>("SELECT customer_id FROM customer_owners WHERE user_id = $1").bind(user).fetch_all(pool).await
        })?
        .into_iter()
        .collect();
        appointments.retain(|a| owned.contains(&a.customer_id));
    }
    let reminders = query(
        &state,
        &defs,
        &actor,
        &ReminderQuery {
            status: Some("open".into()),
            assignee: user.map(|u| u.to_string()),
            customer: None,
            card: None,
            overdue: false,
            from: Some(from.to_canonical_string()),
            to: Some(to.to_canonical_string()),
            limit: Some(500),
        },
    )
    .await?;
    Ok(Json(Agenda {
        appointments,
        reminders,
    }))
}

/// One user's overdue work.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct OverdueCount {
    pub user_id: UserId,
    pub name: String,
    pub overdue_reminders: i64,
    pub stale_cards: i64,
}

/// A card without contact for longer than a `no_contact` rule allows.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct StaleCard {
    pub card_id: CardId,
    pub customer_id: CustomerId,
    pub customer_name: String,
    pub pipeline_id: String,
    pub stage_id: String,
    pub last_contact_at: Option<Timestamp>,
    /// The rule that says so (`<set>/<reminder>`).
    pub rule: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overdue {
    pub reminders: Vec<Reminder>,
    pub stale_cards: Vec<StaleCard>,
    /// Per user (assignees for reminders, owners for cards).
    pub counts: Vec<OverdueCount>,
}

/// Everything overdue that you may see: open reminders past due, cards without contact
/// for too long, and the count per user.
#[utoipa::path(get, path = "/api/agenda/overdue", tag = "reminders",
    responses((status = 200, body = Overdue)))]
async fn overdue(State(state): State<AppState>, actor: Actor) -> Result<Json<Overdue>, ApiError> {
    let defs = state.defs();
    actor.require(&defs, Module::Customers, Permission::View)?;
    let reminders = query(
        &state,
        &defs,
        &actor,
        &ReminderQuery {
            status: Some("open".into()),
            assignee: None,
            customer: None,
            card: None,
            overdue: true,
            from: None,
            to: None,
            limit: Some(500),
        },
    )
    .await?;
    let policy = actor.record_filter(&defs, Module::Customers);
    let now = Timestamp::now();
    let mut stale_cards = Vec::new();
    for set in &defs.reminder_sets {
        for rule in &set.reminders {
            let crate::definitions::model::Trigger::NoContact {
                for_,
                pipeline,
                stage,
            } = &rule.trigger
            else {
                continue;
            };
            let Ok(span) = crate::definitions::due::parse_duration(for_) else {
                continue;
            };
            let minutes = match span.unit {
                crate::definitions::due::Unit::Minutes => span.amount,
                crate::definitions::due::Unit::Hours => span.amount * 60,
                crate::definitions::due::Unit::Weeks => span.amount * 7 * 1440,
                _ => span.amount * 1440,
            };
            let cutoff =
                Timestamp::from_datetime(now.as_datetime() - chrono::Duration::minutes(minutes));
            let mut sql = Sql::new(
                "SELECT c.id AS card_id, c.customer_id, cu.name AS customer_name, c.pipeline_id, c.stage_id, cu.last_contact_at, ",
            );
            let r = sql.text_arg(format!("{}/{}", set.id.as_str(), rule.id.as_str()));
            sql.push(&format!("{r} AS rule FROM cards c JOIN customers cu ON cu.id = c.customer_id WHERE c.closed_at IS NULL"));
            if let Some(p) = pipeline {
                let a = sql.text_arg(p.as_str());
                sql.push(&format!(" AND c.pipeline_id = {a}"));
            }
            if let Some(s) = stage {
                let a = sql.text_arg(s.as_str());
                sql.push(&format!(" AND c.stage_id = {a}"));
            }
            let a = sql.arg(Arg::Time(cutoff));
            sql.push(&format!(
                " AND COALESCE(cu.last_contact_at, c.stage_entered_at) < {a}"
            ));
            crate::crm::board::push_policy(&mut sql, &policy, "c.customer_id");
            sql.push(" ORDER BY cu.last_contact_at, c.id LIMIT 500");
            stale_cards.extend(crate::sql_fetch_all!(&state.db, StaleCard, &sql)?);
        }
    }
    let mut counts: BTreeMap<UserId, OverdueCount> = BTreeMap::new();
    for r in &reminders {
        for a in &r.assignees {
            counts
                .entry(a.id)
                .or_insert_with(|| OverdueCount {
                    user_id: a.id,
                    name: a.name.clone(),
                    overdue_reminders: 0,
                    stale_cards: 0,
                })
                .overdue_reminders += 1;
        }
    }
    if !stale_cards.is_empty() {
        #[derive(sqlx::FromRow)]
        struct Owner {
            customer_id: CustomerId,
            user_id: UserId,
            name: String,
        }
        let mut sql = Sql::default();
        let ids: Vec<String> = stale_cards
            .iter()
            .map(|c| c.customer_id.to_string())
            .collect();
        let list = sql.in_list(&ids);
        sql.push(&format!("SELECT o.customer_id, o.user_id, u.name FROM customer_owners o JOIN users u ON u.id = o.user_id WHERE o.customer_id IN {list}"));
        let owners = crate::sql_fetch_all!(&state.db, Owner, &sql)?;
        for card in &stale_cards {
            for o in owners.iter().filter(|o| o.customer_id == card.customer_id) {
                counts
                    .entry(o.user_id)
                    .or_insert_with(|| OverdueCount {
                        user_id: o.user_id,
                        name: o.name.clone(),
                        overdue_reminders: 0,
                        stale_cards: 0,
                    })
                    .stale_cards += 1;
            }
        }
    }
    Ok(Json(Overdue {
        reminders,
        stale_cards,
        counts: counts.into_values().collect(),
    }))
}
