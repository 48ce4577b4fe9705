//! Reminders, the agenda and recurring schedules (SPEC §2, §3).
//!
//! # How it fits together
//! - A reminder is a row in `reminders` with its assignees. Every open reminder has a
//!   deferred `reminder_due` job at its due time (kept in our own `deferred_jobs` table,
//!   not in apalis's live table). The job fires — notifies the assignees in their
//!   language, pushes `reminder.due`, writes the timeline — only if the reminder is still
//!   open with the SAME due time and has not fired yet, in one statement, so a rescheduled
//!   or cancelled reminder's old job does nothing and a re-run never notifies twice.
//! - Reminder rules (YAML `reminder_sets`) create reminders when their trigger happens
//!   ([`triggers`]): a card entering a stage, a field getting a value, an activity outcome,
//!   and — found by the overdue sweep — no contact for too long. A rule keeps at most one
//!   open reminder per card (`trigger_key`): a new trigger reschedules it, and a trigger
//!   that no longer holds (the appointment moved or was cancelled, the card left the
//!   stage, the customer was contacted) reschedules or cancels it.
//! - Due times come from due-time expressions evaluated in the company time zone with
//!   business days and public holidays ([`due`]).
//! - Recurring schedules (YAML `schedules`) tick on every node ([`schedules`]); each tick
//!   is claimed in `schedule_ticks` in the same transaction that queues its job, so N
//!   nodes run each tick once.
//! - [`http`]: reminders, the agenda and the overdue list.
//!
//! Overdue: an open reminder past its due time; a card without contact for longer than a
//! `no_contact` rule allows in its stage.

pub mod due;
pub mod http;
pub mod schedules;
pub mod triggers;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::crm::customers::stale;
use crate::crm::timeline::{self, NewEvent};
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::jobs::{EnqueueOptions, ReminderDueJob};
use crate::realtime::{self, Audience, kinds as events};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

crate::id_type!(
    /// A reminder.
    ReminderId
);

/// Timeline kinds written by reminders.
pub mod kinds {
    pub const CREATED: &str = "reminder_created";
    pub const RESCHEDULED: &str = "reminder_rescheduled";
    pub const DUE: &str = "reminder_due";
    pub const COMPLETED: &str = "reminder_completed";
    pub const SNOOZED: &str = "reminder_snoozed";
    pub const REASSIGNED: &str = "reminder_reassigned";
    pub const CANCELLED: &str = "reminder_cancelled";
}

/// The template a due notification is rendered from when the rule names none.
pub const DEFAULT_MESSAGE: &str = "hatirlatma";

/// A reminder as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reminder {
    pub id: ReminderId,
    pub customer_id: Option<CustomerId>,
    /// The customer's name, for lists.
    pub customer_name: Option<String>,
    pub card_id: Option<CardId>,
    /// `manual`, `rule` or `follow_up`.
    pub origin: String,
    /// `<set>/<reminder>` for rule reminders.
    pub rule: Option<String>,
    pub title_tr: String,
    pub title_en: String,
    pub note: Option<String>,
    pub due_at: Timestamp,
    /// `open`, `done` or `cancelled`.
    pub status: String,
    /// Open and past its due time.
    pub overdue: bool,
    pub fired_at: Option<Timestamp>,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<UserId>,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    pub snoozes: i64,
    pub assignees: Vec<Assignee>,
    pub created_at: Timestamp,
    pub created_by: Option<UserId>,
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Assignee {
    pub id: UserId,
    pub name: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReminderRow {
    pub id: ReminderId,
    pub customer_id: Option<CustomerId>,
    pub customer_name: Option<String>,
    pub card_id: Option<CardId>,
    pub origin: String,
    pub rule: Option<String>,
    pub title_tr: String,
    pub title_en: String,
    pub note: Option<String>,
    pub due_at: Timestamp,
    pub status: String,
    pub fired_at: Option<Timestamp>,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<UserId>,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    pub snoozes: i64,
    pub created_at: Timestamp,
    pub created_by: Option<UserId>,
    pub version: i64,
}

pub(crate) const SELECT: &str = "SELECT r.id, r.customer_id, c.name AS customer_name, r.card_id, r.origin, r.rule, r.title_tr, r.title_en,
        r.note, r.due_at, r.status, r.fired_at, r.done_at, r.done_by, r.cancelled_at, r.cancel_reason,
        r.snoozes, r.created_at, r.created_by, r.version
 FROM reminders r LEFT JOIN customers c ON c.id = r.customer_id";

impl ReminderRow {
    pub(crate) fn into_reminder(self, assignees: Vec<Assignee>) -> Reminder {
        let overdue = self.status == "open" && self.due_at < Timestamp::now();
        Reminder {
            id: self.id,
            customer_id: self.customer_id,
            customer_name: self.customer_name,
            card_id: self.card_id,
            origin: self.origin,
            rule: self.rule,
            title_tr: self.title_tr,
            title_en: self.title_en,
            note: self.note,
            due_at: self.due_at,
            status: self.status,
            overdue,
            fired_at: self.fired_at,
            done_at: self.done_at,
            done_by: self.done_by,
            cancelled_at: self.cancelled_at,
            cancel_reason: self.cancel_reason,
            snoozes: self.snoozes,
            assignees,
            created_at: self.created_at,
            created_by: self.created_by,
            version: self.version,
        }
    }
}

/// A reminder to create.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub customer_id: Option<CustomerId>,
    pub card_id: Option<CardId>,
    /// `manual`, `rule` or `follow_up`.
    pub origin: &'static str,
    pub rule: Option<String>,
    /// One open reminder per key: creating with an open key reschedules that one.
    pub trigger_key: Option<String>,
    pub title_tr: String,
    pub title_en: String,
    pub note: Option<String>,
    pub message: Option<String>,
    pub due_at: Timestamp,
    pub assignees: Vec<UserId>,
    pub by: Option<UserId>,
}

/// What [`create_in`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New(ReminderId),
    /// The key's open reminder got the new due time.
    Rescheduled(ReminderId),
    /// The key's open reminder already had it.
    Unchanged(ReminderId),
}

impl Created {
    pub fn id(self) -> ReminderId {
        match self {
            Created::New(id) | Created::Rescheduled(id) | Created::Unchanged(id) => id,
        }
    }
}

async fn schedule_due(tx: &mut Tx, id: ReminderId, due_at: Timestamp) -> Result<(), sqlx::Error> {
    let job = ReminderDueJob {
        reminder_id: id,
        due_at,
    };
    exec!(&mut *tx, conn => crate::jobs::enqueue_with(conn, &job, EnqueueOptions { run_at: Some(due_at), idempotency_key: None }).await)
        .map_err(sqlx::Error::from)?;
    Ok(())
}

async fn set_assignees(tx: &mut Tx, id: ReminderId, users: &[UserId]) -> Result<(), sqlx::Error> {
    exec!(&mut *tx, conn => sqlx::query("DELETE FROM reminder_assignees WHERE reminder_id = $1").bind(id).execute(conn).await.map(|_| ()))?;
    for user in users {
        exec!(&mut *tx, conn => sqlx::query("INSERT INTO reminder_assignees (reminder_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id).bind(user).execute(conn).await.map(|_| ()))?;
    }
    Ok(())
}

pub(crate) async fn assignees_in(
    tx: &mut Tx,
    id: ReminderId,
) -> Result<Vec<Assignee>, sqlx::Error> {
    exec!(&mut *tx, conn => sqlx::query_as("SELECT u.id, u.name FROM reminder_assignees a JOIN users u ON u.id = a.user_id WHERE a.reminder_id = $1 ORDER BY u.name")
        .bind(id).fetch_all(conn).await)
}

/// Keeps `cards.next_reminder_at` (the board's reminder field) current and tells the
/// card's viewers.
pub(crate) async fn refresh_card(
    tx: &mut Tx,
    defs: &Definitions,
    card: Option<CardId>,
) -> Result<(), sqlx::Error> {
    let Some(card) = card else {
        return Ok(());
    };
    let changed = exec!(&mut *tx, conn => sqlx::query(
        "UPDATE cards SET next_reminder_at = (SELECT MIN(due_at) FROM reminders WHERE card_id = $1 AND status = 'open')
         WHERE id = $1 AND next_reminder_at IS DISTINCT FROM (SELECT MIN(due_at) FROM reminders WHERE card_id = $1 AND status = 'open')")
        .bind(card).execute(conn).await.map(|r| r.rows_affected()))?;
    if changed > 0 {
        crate::crm::live::card_updated(tx, defs, card, None).await?;
    }
    Ok(())
}

async fn timeline_event(
    tx: &mut Tx,
    defs: &Definitions,
    customer: Option<CustomerId>,
    card: Option<CardId>,
    kind: &'static str,
    by: Option<UserId>,
    data: Value,
) -> Result<(), sqlx::Error> {
    if let Some(customer) = customer {
        timeline::append(
            tx,
            NewEvent {
                customer_id: customer,
                card_id: card,
                kind,
                actor: by,
                definitions_version: &defs.version,
                data,
            },
        )
        .await?;
    }
    Ok(())
}

/// Creates a reminder in `tx` (or reschedules the open one with the same key) and queues
/// its due job.
pub async fn create_in(
    tx: &mut Tx,
    defs: &Definitions,
    r: NewReminder,
) -> Result<Created, sqlx::Error> {
    let now = Timestamp::now();
    if let Some(key) = &r.trigger_key {
        let open: Option<(ReminderId, Timestamp)> = exec!(&mut *tx, conn => sqlx::query_as(
            "SELECT id, due_at FROM reminders WHERE trigger_key = $1 AND status = 'open'")
            .bind(key).fetch_optional(conn).await)?;
        if let Some((id, due)) = open {
            if due == r.due_at {
                return Ok(Created::Unchanged(id));
            }
            exec!(&mut *tx, conn => sqlx::query(
                "UPDATE reminders SET due_at = $1, fired_at = NULL, title_tr = $2, title_en = $3, updated_at = $4, version = version + 1,
                     definitions_version = $5 WHERE id = $6")
                .bind(r.due_at).bind(&r.title_tr).bind(&r.title_en).bind(now).bind(&defs.version).bind(id)
                .execute(conn).await.map(|_| ()))?;
            set_assignees(tx, id, &r.assignees).await?;
            schedule_due(tx, id, r.due_at).await?;
            timeline_event(tx, defs, r.customer_id, r.card_id, kinds::RESCHEDULED, r.by,
                json!({"reminder_id": id, "from": due, "to": r.due_at, "title": {"tr": r.title_tr, "en": r.title_en}})).await?;
            refresh_card(tx, defs, r.card_id).await?;
            return Ok(Created::Rescheduled(id));
        }
    }
    let id = ReminderId::new();
    exec!(&mut *tx, conn => sqlx::query(
        "INSERT INTO reminders (id, customer_id, card_id, origin, rule, trigger_key, title_tr, title_en, note, message, due_at,
            status, snoozes, created_at, created_by, updated_at, version, definitions_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', 0, $12, $13, $12, 1, $14)")
        .bind(id).bind(r.customer_id).bind(r.card_id).bind(r.origin).bind(&r.rule).bind(&r.trigger_key)
        .bind(&r.title_tr).bind(&r.title_en).bind(&r.note).bind(&r.message).bind(r.due_at)
        .bind(now).bind(r.by).bind(&defs.version)
        .execute(conn).await.map(|_| ()))?;
    set_assignees(tx, id, &r.assignees).await?;
    schedule_due(tx, id, r.due_at).await?;
    timeline_event(tx, defs, r.customer_id, r.card_id, kinds::CREATED, r.by,
        json!({"reminder_id": id, "due_at": r.due_at, "origin": r.origin, "rule": r.rule, "title": {"tr": r.title_tr, "en": r.title_en}, "assignees": r.assignees})).await?;
    refresh_card(tx, defs, r.card_id).await?;
    Ok(Created::New(id))
}

/// Cancels the open reminder with `key`, if any.
pub async fn cancel_key(
    tx: &mut Tx,
    defs: &Definitions,
    key: &str,
    reason: &str,
    by: Option<UserId>,
) -> Result<bool, sqlx::Error> {
    let open: Option<(ReminderId, Option<CustomerId>, Option<CardId>)> = exec!(&mut *tx, conn => sqlx::query_as(
        "SELECT id, customer_id, card_id FROM reminders WHERE trigger_key = $1 AND status = 'open'")
        .bind(key).fetch_optional(conn).await)?;
    let Some((id, customer, card)) = open else {
        return Ok(false);
    };
    cancel_row(tx, defs, id, customer, card, reason, by).await?;
    Ok(true)
}

async fn cancel_row(
    tx: &mut Tx,
    defs: &Definitions,
    id: ReminderId,
    customer: Option<CustomerId>,
    card: Option<CardId>,
    reason: &str,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    let now = Timestamp::now();
    exec!(&mut *tx, conn => sqlx::query(
        "UPDATE reminders SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2, updated_at = $1, version = version + 1 WHERE id = $3")
        .bind(now).bind(reason).bind(id).execute(conn).await.map(|_| ()))?;
    timeline_event(
        tx,
        defs,
        customer,
        card,
        kinds::CANCELLED,
        by,
        json!({"reminder_id": id, "reason": reason}),
    )
    .await?;
    refresh_card(tx, defs, card).await
}

/// One reminder (with assignees), read in `tx`.
pub(crate) async fn get_in(tx: &mut Tx, id: ReminderId) -> Result<Option<Reminder>, sqlx::Error> {
    let row: Option<ReminderRow> = exec!(&mut *tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
        .bind(id).fetch_optional(conn).await)?;
    match row {
        Some(row) => {
            let assignees = assignees_in(tx, id).await?;
            Ok(Some(row.into_reminder(assignees)))
        }
        None => Ok(None),
    }
}

/// What a person does to a reminder.
#[derive(Debug, Clone)]
pub enum Change {
    Complete { note: Option<String> },
    Snooze { until: Timestamp },
    Reassign { assignees: Vec<UserId> },
    Cancel,
}

/// Applies a person's change to an open reminder at `expected_version`; each is a
/// timeline event. `allowed` sees the reminder first (404/403 before anything changes).
pub async fn change(
    db: &Db,
    defs: &Definitions,
    id: ReminderId,
    expected_version: i64,
    change: Change,
    by: UserId,
    allowed: impl FnOnce(&Reminder) -> Result<(), ApiError>,
) -> Result<Reminder, ApiError> {
    let mut tx = db.begin().await?;
    let current = get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("reminder"))?;
    allowed(&current)?;
    if current.version != expected_version {
        return Err(stale("reminder", current.version));
    }
    if current.status != "open" {
        return Err(ApiError::conflict(
            "reminder_closed",
            format!("this reminder is already {}", current.status),
        ));
    }
    let now = Timestamp::now();
    let (kind, data) = match &change {
        Change::Complete { note } => {
            exec!(&mut tx, conn => sqlx::query(
                "UPDATE reminders SET status = 'done', done_at = $1, done_by = $2, note = COALESCE($3, note), updated_at = $1, version = version + 1 WHERE id = $4")
                .bind(now).bind(by).bind(note).bind(id).execute(conn).await.map(|_| ()))?;
            (
                kinds::COMPLETED,
                json!({"reminder_id": id, "note": note, "was_overdue": current.overdue}),
            )
        }
        Change::Snooze { until } => {
            if *until <= now {
                return Err(ApiError::unprocessable(
                    "invalid_snooze",
                    "snooze to a time in the future",
                )
                .with_field("until", "in the past"));
            }
            exec!(&mut tx, conn => sqlx::query(
                "UPDATE reminders SET due_at = $1, fired_at = NULL, snoozes = snoozes + 1, updated_at = $2, version = version + 1 WHERE id = $3")
                .bind(until).bind(now).bind(id).execute(conn).await.map(|_| ()))?;
            schedule_due(&mut tx, id, *until).await?;
            (
                kinds::SNOOZED,
                json!({"reminder_id": id, "from": current.due_at, "to": until}),
            )
        }
        Change::Reassign { assignees } => {
            if assignees.is_empty() {
                return Err(ApiError::unprocessable(
                    "invalid_assignees",
                    "a reminder needs at least one assignee",
                )
                .with_field("assignees", "empty"));
            }
            for user in assignees {
                let active: Option<bool> = exec!(&mut tx, conn => sqlx::query_scalar("SELECT active FROM users WHERE id = $1")
                    .bind(user).fetch_optional(conn).await)?;
                if active != Some(true) {
                    return Err(ApiError::unprocessable(
                        "unknown_user",
                        "every assignee must be an active user",
                    )
                    .with_field("assignees", format!("{user} is not an active user")));
                }
            }
            set_assignees(&mut tx, id, assignees).await?;
            exec!(&mut tx, conn => sqlx::query("UPDATE reminders SET updated_at = $1, version = version + 1 WHERE id = $2")
                .bind(now).bind(id).execute(conn).await.map(|_| ()))?;
            (
                kinds::REASSIGNED,
                json!({"reminder_id": id, "from": current.assignees.iter().map(|a| a.id).collect::<Vec<_>>(), "to": assignees}),
            )
        }
        Change::Cancel => {
            exec!(&mut tx, conn => sqlx::query(
                "UPDATE reminders SET status = 'cancelled', cancelled_at = $1, cancel_reason = 'by_user', updated_at = $1, version = version + 1 WHERE id = $2")
                .bind(now).bind(id).execute(conn).await.map(|_| ()))?;
            (
                kinds::CANCELLED,
                json!({"reminder_id": id, "reason": "by_user"}),
            )
        }
    };
    timeline_event(
        &mut tx,
        defs,
        current.customer_id,
        current.card_id,
        kind,
        Some(by),
        data,
    )
    .await?;
    refresh_card(&mut tx, defs, current.card_id).await?;
    let updated = get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("reminder"))?;
    tx.commit().await?;
    Ok(updated)
}

/// Fires a reminder whose due job ran: when it is still open with exactly that due time
/// and has not fired, marks it fired and — in the same transaction — notifies each
/// assignee in their language, pushes `reminder.due` and writes the timeline. Returns
/// whether it fired (a rescheduled, cancelled or already-fired reminder does not).
pub async fn fire(db: &Db, defs: &Definitions, job: &ReminderDueJob) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let now = Timestamp::now();
    let fired = exec!(&mut tx, conn => sqlx::query(
        "UPDATE reminders SET fired_at = $1 WHERE id = $2 AND status = 'open' AND due_at = $3 AND fired_at IS NULL")
        .bind(now).bind(job.reminder_id).bind(job.due_at).execute(conn).await.map(|r| r.rows_affected()))?;
    if fired == 0 {
        return Ok(false);
    }
    announce(&mut tx, defs, job.reminder_id).await?;
    tx.commit().await?;
    Ok(true)
}

/// The due notification, event and timeline entry of a reminder that just fired.
pub(crate) async fn announce(
    tx: &mut Tx,
    defs: &Definitions,
    id: ReminderId,
) -> Result<(), ApiError> {
    let Some(reminder) = get_in(tx, id).await? else {
        return Ok(());
    };
    let message: Option<String> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT message FROM reminders WHERE id = $1")
        .bind(id).fetch_one(conn).await)?;
    let template = message.unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    let phone: Option<String> = match reminder.customer_id {
        Some(c) => {
            exec!(&mut *tx, conn => sqlx::query_scalar("SELECT e164 FROM customer_phones WHERE customer_id = $1 ORDER BY position LIMIT 1")
            .bind(c).fetch_optional(conn).await)?
        }
        None => None,
    };
    for assignee in &reminder.assignees {
        let locale: String = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT locale FROM users WHERE id = $1")
            .bind(assignee.id).fetch_one(conn).await)?;
        let lang = if locale == "en" { "en" } else { "tr" };
        let title = if lang == "en" {
            &reminder.title_en
        } else {
            &reminder.title_tr
        };
        let values = json!({
            "reminder": {"title": title, "due_at": reminder.due_at},
            "customer": {"name": reminder.customer_name.clone().unwrap_or_default(), "phone": phone},
        });
        let body = defs
            .render_message(
                &template,
                lang,
                minijinja::Value::from(minijinja::value::Serde(&values)),
            )
            .or_else(|_| {
                defs.render_message(
                    DEFAULT_MESSAGE,
                    lang,
                    minijinja::Value::from(minijinja::value::Serde(&values)),
                )
            })
            .unwrap_or_else(|_| title.clone());
        let key = format!("reminder:{id}:{}", reminder.due_at);
        crate::notifications::insert(
            tx,
            crate::notifications::NewNotification {
                user_id: assignee.id,
                kind: &template,
                body: &body,
                customer_id: reminder.customer_id,
                data: &json!({"reminder_id": id, "card_id": reminder.card_id}),
                effect_key: Some(&key),
            },
        )
        .await?;
        realtime::record(
            tx,
            realtime::NewEvent::new(
                events::REMINDER_DUE,
                Audience::User(assignee.id),
                json!({
                    "reminder_id": id,
                    "customer_id": reminder.customer_id,
                    "card_id": reminder.card_id,
                    "title": {"tr": reminder.title_tr, "en": reminder.title_en},
                    "due_at": reminder.due_at,
                }),
            ),
        )
        .await?;
    }
    timeline_event(tx, defs, reminder.customer_id, reminder.card_id, kinds::DUE, None,
        json!({"reminder_id": id, "due_at": reminder.due_at, "assignees": reminder.assignees.iter().map(|a| a.id).collect::<Vec<_>>()})).await?;
    Ok(())
}

/// Offboarding: the user's open reminders go to `to` (who keeps any they already had).
pub(crate) async fn hand_over(tx: &mut Tx, from: UserId, to: UserId) -> Result<i64, sqlx::Error> {
    let ids: Vec<ReminderId> = exec!(&mut *tx, conn => sqlx::query_scalar(
        "SELECT a.reminder_id FROM reminder_assignees a JOIN reminders r ON r.id = a.reminder_id WHERE a.user_id = $1 AND r.status = 'open'")
        .bind(from).fetch_all(conn).await)?;
    for id in &ids {
        exec!(&mut *tx, conn => sqlx::query("DELETE FROM reminder_assignees WHERE reminder_id = $1 AND user_id = $2")
            .bind(id).bind(from).execute(conn).await.map(|_| ()))?;
        exec!(&mut *tx, conn => sqlx::query("INSERT INTO reminder_assignees (reminder_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id).bind(to).execute(conn).await.map(|_| ()))?;
        exec!(&mut *tx, conn => sqlx::query("UPDATE reminders SET version = version + 1, updated_at = $1 WHERE id = $2")
            .bind(Timestamp::now()).bind(id).execute(conn).await.map(|_| ()))?;
    }
    Ok(ids.len() as i64)
}
