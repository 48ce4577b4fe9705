//! Recurring schedules (YAML `schedules`): every node ticks, each tick runs once.
//!
//! Each node computes every schedule's next occurrence with `croner` in the company time
//! zone (DST-correct: `30 8 * * *` is 08:30 local on both sides of a change) and sleeps
//! until it. At the tick it inserts `(schedule, tick instant)` into `schedule_ticks` and,
//! in the same transaction, queues the tick's [`ScheduledTaskJob`]: the first node's
//! insert wins, the others' conflict and do nothing, so N nodes produce exactly one run
//! per tick (apalis's idempotency keys live in its job table, which is purged, so they
//! could not carry this). A reload of the definitions re-plans the schedules.
//!
//! tokio-cron-scheduler was not used: it converts a time zone to a fixed UTC offset once,
//! when a job is created, so its ticks drift by an hour after a DST change; `croner` (which
//! it uses underneath) computes occurrences in a real time zone.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{NewReminder, create_in, due, triggers};
use crate::definitions::model::{ScheduleDef, ScheduledTask, Trigger};
use crate::definitions::{Definitions, LiveDefinitions};
use crate::exec;
use crate::http::ApiError;
use crate::jobs::ScheduledTaskJob;
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

/// The next tick of `schedule` after `after`, in the company time zone.
pub fn next_tick(schedule: &ScheduleDef, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = croner::Cron::from_str(&schedule.cron).ok()?;
    let tz = due::company_time_zone();
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Claims one tick; the node that inserts the row queues the job in the same transaction.
/// True when this node won it.
pub async fn claim(
    db: &Db,
    node: &str,
    schedule: &ScheduleDef,
    tick: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let tick_at = Timestamp::from_datetime(tick);
    let mut tx = db.begin().await?;
    let inserted = exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO schedule_ticks (schedule, tick_at, node, claimed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(schedule.id.as_str()).bind(tick_at).bind(node).bind(Timestamp::now())
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Ok(false);
    }
    let job = ScheduledTaskJob {
        schedule: schedule.id.as_str().to_string(),
        task: schedule.run,
        tick_at,
    };
    exec!(&mut tx, conn => crate::jobs::enqueue(conn, &job).await).map_err(sqlx::Error::from)?;
    tx.commit().await?;
    Ok(true)
}

/// Ticks every schedule of the running definitions until the task is dropped; re-plans
/// when the definitions are reloaded.
pub async fn run(db: Db, live: LiveDefinitions, node: String) {
    let mut changes = live.subscribe();
    loop {
        let defs = live.current();
        let now = Utc::now();
        let next = defs
            .schedules
            .iter()
            .filter_map(|s| next_tick(s, now))
            .min();
        let Some(tick) = next else {
            // Nothing scheduled: wait for a reload.
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        };
        let wait = (tick - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                // Every schedule due at this instant (several may share it).
                for s in defs.schedules.iter().filter(|s| next_tick(s, now) == Some(tick)) {
                    match claim(&db, &node, s, tick).await {
                        Ok(true) => tracing::debug!(schedule = s.id.as_str(), %tick, "tick claimed"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(schedule = s.id.as_str(), error = %e, "cannot claim a schedule tick"),
                    }
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs one claimed tick's task.
pub async fn run_task(db: &Db, defs: &Definitions, job: &ScheduledTaskJob) -> Result<(), ApiError> {
    match job.task {
        ScheduledTask::OverdueSweep => overdue_sweep(db, defs).await.map(|_| ()),
        ScheduledTask::DailyDigest => daily_digest(db, defs).await.map(|_| ()),
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub created: usize,
    pub fired: usize,
}

/// Most cards one sweep looks at per rule (the next sweep continues).
const SWEEP_LIMIT: i64 = 2_000;

/// `no_contact` rules: a reminder for every card in the rule's stage whose customer has
/// not been contacted for longer than allowed (since entering the stage, if never), once
/// per card while that holds. Then every open reminder past due that never fired (its job
/// was lost) fires now.
pub async fn overdue_sweep(db: &Db, defs: &Definitions) -> Result<Swept, ApiError> {
    let mut swept = Swept::default();
    let now = Timestamp::now();
    for set in &defs.reminder_sets {
        for rule in &set.reminders {
            let Trigger::NoContact {
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
                crate::definitions::due::Unit::Days
                | crate::definitions::due::Unit::BusinessDays => span.amount * 1440,
                crate::definitions::due::Unit::Weeks => span.amount * 7 * 1440,
            };
            let cutoff =
                Timestamp::from_datetime(now.as_datetime() - chrono::Duration::minutes(minutes));
            let candidates: Vec<(CardId, CustomerId)> = crate::read!(db, pool => {
                sqlx::query_as(
                    "SELECT c.id, c.customer_id FROM cards c JOIN customers cu ON cu.id = c.customer_id
                     WHERE c.closed_at IS NULL
                       AND ($1 IS NULL OR c.pipeline_id = $1) AND ($2 IS NULL OR c.stage_id = $2)
                       AND COALESCE(cu.last_contact_at, c.stage_entered_at) < $3
                       AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.card_id = c.id AND r.rule = $4 AND r.status = 'open')
                     ORDER BY c.id LIMIT $5")
                    .bind(pipeline.as_ref().map(|p| p.as_str()))
                    .bind(stage.as_ref().map(|s| s.as_str()))
                    .bind(cutoff)
                    .bind(format!("{}/{}", set.id.as_str(), rule.id.as_str()))
                    .bind(SWEEP_LIMIT)
                    .fetch_all(pool)
                    .await
            })?;
            for (card, customer) in candidates {
                let mut tx = db.begin().await?;
                let Some(view) = triggers::card_view(&mut tx, card).await? else {
                    continue;
                };
                let calendar = due::calendar_of(defs);
                let due_at = rule
                    .due
                    .expr()
                    .and_then(|e| due::evaluate(e, now.as_datetime(), &view.fields, &calendar).ok())
                    .map_or(now, Timestamp::from_datetime);
                let assignees =
                    triggers::recipients(&mut tx, &rule.assignee, Some(customer), None).await?;
                let created = create_in(
                    &mut tx,
                    defs,
                    NewReminder {
                        customer_id: Some(customer),
                        card_id: Some(card),
                        origin: "rule",
                        rule: Some(format!("{}/{}", set.id.as_str(), rule.id.as_str())),
                        trigger_key: Some(triggers::rule_key(set, rule, card)),
                        title_tr: rule.title.tr.clone(),
                        title_en: rule.title.en.clone(),
                        note: None,
                        message: rule.message.as_ref().map(|m| m.as_str().to_string()),
                        due_at,
                        assignees,
                        by: None,
                    },
                )
                .await?;
                tx.commit().await?;
                if matches!(created, super::Created::New(_)) {
                    swept.created += 1;
                }
            }
        }
    }
    // A reminder past due that never fired: its job was lost (or never ran). Fire it.
    let missed: Vec<(super::ReminderId, Timestamp)> = crate::read!(db, pool => {
        sqlx::query_as("SELECT id, due_at FROM reminders WHERE status = 'open' AND fired_at IS NULL AND due_at < $1 ORDER BY due_at LIMIT 500")
            .bind(Timestamp::from_datetime(now.as_datetime() - chrono::Duration::minutes(1)))
            .fetch_all(pool).await
    })?;
    for (id, due_at) in missed {
        let job = crate::jobs::ReminderDueJob {
            reminder_id: id,
            due_at,
        };
        if super::fire(db, defs, &job).await? {
            swept.fired += 1;
        }
    }
    Ok(swept)
}

/// A notification to every active user with something on their plate today: their
/// appointments today, reminders due today, and overdue reminders.
pub async fn daily_digest(db: &Db, defs: &Definitions) -> Result<usize, ApiError> {
    let calendar = due::calendar_of(defs);
    let now = Utc::now();
    let today = now.with_timezone(&calendar.tz).date_naive();
    // Still open and already past due counts as overdue, whatever the day; "today" is what
    // is still ahead before local midnight. Appointments count for the whole local day.
    let start = Timestamp::from_datetime(calendar.at_local(today, chrono::NaiveTime::MIN));
    let now_ts = Timestamp::from_datetime(now);
    let end = Timestamp::from_datetime(
        calendar.at_local(today + chrono::Duration::days(1), chrono::NaiveTime::MIN),
    );
    #[derive(sqlx::FromRow)]
    struct Row {
        id: UserId,
        locale: String,
        due_today: i64,
        overdue: i64,
        appointments: i64,
    }
    let rows: Vec<Row> = crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT u.id, u.locale,
                (SELECT COUNT(*) FROM reminder_assignees a JOIN reminders r ON r.id = a.reminder_id
                  WHERE a.user_id = u.id AND r.status = 'open' AND r.due_at >= $3 AND r.due_at < $2) AS due_today,
                (SELECT COUNT(*) FROM reminder_assignees a JOIN reminders r ON r.id = a.reminder_id
                  WHERE a.user_id = u.id AND r.status = 'open' AND r.due_at < $3) AS overdue,
                (SELECT COUNT(*) FROM appointments ap JOIN customer_owners o ON o.customer_id = ap.customer_id
                  WHERE o.user_id = u.id AND ap.status IN ('planned', 'confirmed') AND ap.starts_at >= $1 AND ap.starts_at < $2) AS appointments
             FROM users u WHERE u.active ORDER BY u.id")
            .bind(start).bind(end).bind(now_ts).fetch_all(pool).await
    })?;
    let mut sent = 0;
    let mut tx = db.begin().await?;
    for row in rows {
        if row.due_today + row.overdue + row.appointments == 0 {
            continue;
        }
        let lang = if row.locale == "en" { "en" } else { "tr" };
        let values = json!({"due_today": row.due_today, "overdue": row.overdue, "appointments": row.appointments});
        let body = defs
            .render_message(
                "gunluk_ozet",
                lang,
                minijinja::Value::from(minijinja::value::Serde(&values)),
            )
            .unwrap_or_else(|_| {
                format!("{} / {} / {}", row.appointments, row.due_today, row.overdue)
            });
        let key = format!("digest:{today}");
        if crate::notifications::insert(
            &mut tx,
            crate::notifications::NewNotification {
                user_id: row.id,
                kind: "gunluk_ozet",
                body: &body,
                customer_id: None,
                data: &values,
                effect_key: Some(&key),
            },
        )
        .await?
        {
            sent += 1;
        }
    }
    tx.commit().await?;
    Ok(sent)
}
