//! Reminder rules (YAML `reminder_sets`) reacting to what happens to a card, inside the
//! transaction of the change:
//! - `stage_entered`: the card entered the stage → a reminder; it left → cancelled.
//! - `field_set`: the field got (or changed) a value → a reminder at the due time computed
//!   from it (rescheduled when the value changes, cancelled when it is cleared).
//!   Appointments keep the card's `appointment_at` field (when declared) on the next
//!   upcoming appointment, so booking, moving or cancelling one drives these rules.
//! - `activity_outcome`: that outcome was entered → a reminder (again: rescheduled); an
//!   outcome of the same activity kind that counts as contact → cancelled (the call was
//!   answered after all).
//! - `no_contact`: found by the overdue sweep ([`super::schedules`]); contact with the
//!   customer, or the card leaving the stage, cancels it.
//!
//! A rule keeps at most one open reminder per card (`rule:<set>/<id>:card:<card>`).

use serde_json::{Map, Value};

use super::{NewReminder, cancel_key, create_in, due};
use crate::crm::customers::parse_object;
use crate::definitions::Definitions;
use crate::definitions::model::{Recipient, ReminderDef, ReminderSet, Trigger};
use crate::exec;
use crate::storage::Tx;
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

/// The key of a rule's open reminder on a card.
pub fn rule_key(set: &ReminderSet, rule: &ReminderDef, card: CardId) -> String {
    format!("rule:{}/{}:card:{card}", set.id.as_str(), rule.id.as_str())
}

fn rules(defs: &Definitions) -> impl Iterator<Item = (&ReminderSet, &ReminderDef)> {
    defs.reminder_sets
        .iter()
        .flat_map(|s| s.reminders.iter().map(move |r| (s, r)))
}

/// What a rule sees of a card: its stage and the customer's fields overlaid with the card's.
pub(crate) struct CardView {
    pub card: CardId,
    pub customer: CustomerId,
    pub pipeline: String,
    pub stage: String,
    pub fields: Map<String, Value>,
}

pub(crate) async fn card_view(tx: &mut Tx, card: CardId) -> Result<Option<CardView>, sqlx::Error> {
    let row: Option<(CustomerId, String, String, String, String)> = exec!(&mut *tx, conn => sqlx::query_as(
        "SELECT c.customer_id, c.pipeline_id, c.stage_id, c.fields, cu.fields FROM cards c JOIN customers cu ON cu.id = c.customer_id
         WHERE c.id = $1 AND c.closed_at IS NULL")
        .bind(card).fetch_optional(conn).await)?;
    Ok(row.map(
        |(customer, pipeline, stage, card_fields, customer_fields)| {
            let mut fields = parse_object(&customer_fields);
            fields.extend(parse_object(&card_fields));
            CardView {
                card,
                customer,
                pipeline,
                stage,
                fields,
            }
        },
    ))
}

/// The users a rule's `assignee` list names.
pub(crate) async fn recipients(
    tx: &mut Tx,
    to: &[Recipient],
    customer: Option<CustomerId>,
    by: Option<UserId>,
) -> Result<Vec<UserId>, sqlx::Error> {
    let mut users: Vec<UserId> = Vec::new();
    for r in to {
        match r {
            Recipient::Owners => {
                if let Some(c) = customer {
                    users.extend(crate::crm::live::owners(tx, c).await?);
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
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(*u));
    Ok(users)
}

/// The due time of `rule` for this card now, or None when it cannot be computed (a field
/// base without a value).
fn due_for(
    defs: &Definitions,
    rule: &ReminderDef,
    fields: &Map<String, Value>,
) -> Option<Timestamp> {
    let expr = rule.due.expr()?;
    let calendar = due::calendar_of(defs);
    let t = due::evaluate(expr, Timestamp::now().as_datetime(), fields, &calendar).ok()?;
    let t = if rule.within_business_hours {
        calendar.next_open(t)
    } else {
        t
    };
    Some(Timestamp::from_datetime(t))
}

/// Creates (or reschedules) `rule`'s reminder on the card; cancels it when its due time
/// cannot be computed any more.
async fn arm(
    tx: &mut Tx,
    defs: &Definitions,
    set: &ReminderSet,
    rule: &ReminderDef,
    view: &CardView,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    let key = rule_key(set, rule, view.card);
    let Some(due_at) = due_for(defs, rule, &view.fields) else {
        cancel_key(tx, defs, &key, "no_due_time", by).await?;
        return Ok(());
    };
    let assignees = recipients(tx, &rule.assignee, Some(view.customer), by).await?;
    create_in(
        tx,
        defs,
        NewReminder {
            customer_id: Some(view.customer),
            card_id: Some(view.card),
            origin: "rule",
            rule: Some(format!("{}/{}", set.id.as_str(), rule.id.as_str())),
            trigger_key: Some(key),
            title_tr: rule.title.tr.clone(),
            title_en: rule.title.en.clone(),
            note: None,
            message: rule.message.as_ref().map(|m| m.as_str().to_string()),
            due_at,
            assignees,
            by,
        },
    )
    .await?;
    Ok(())
}

/// A card moved from `from` to `to`, with `changed` card fields.
pub(crate) async fn after_move(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
    from: &str,
    to: &str,
    changed: &Map<String, Value>,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    let Some(view) = card_view(tx, card).await? else {
        return Ok(());
    };
    for (set, rule) in rules(defs) {
        match &rule.trigger {
            Trigger::StageEntered(s) if s.pipeline.as_str() == view.pipeline => {
                if s.stage.as_str() == to {
                    arm(tx, defs, set, rule, &view, by).await?;
                } else if s.stage.as_str() == from {
                    cancel_key(tx, defs, &rule_key(set, rule, card), "left_stage", by).await?;
                }
            }
            Trigger::NoContact {
                pipeline: Some(p),
                stage: Some(s),
                ..
            } if p.as_str() == view.pipeline && s.as_str() == from => {
                cancel_key(tx, defs, &rule_key(set, rule, card), "left_stage", by).await?;
            }
            _ => {}
        }
    }
    after_fields_in(tx, defs, &view, changed, by).await
}

/// A new card (a new lead) in its first stage.
pub(crate) async fn after_card_created(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    let Some(view) = card_view(tx, card).await? else {
        return Ok(());
    };
    for (set, rule) in rules(defs) {
        if let Trigger::StageEntered(s) = &rule.trigger
            && s.pipeline.as_str() == view.pipeline
            && s.stage.as_str() == view.stage
        {
            arm(tx, defs, set, rule, &view, by).await?;
        }
    }
    let fields = view.fields.clone();
    after_fields_in(tx, defs, &view, &fields, by).await
}

/// Card (or customer) fields changed to `changed` (null = cleared).
pub(crate) async fn after_fields(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
    changed: &Map<String, Value>,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    let Some(view) = card_view(tx, card).await? else {
        return Ok(());
    };
    after_fields_in(tx, defs, &view, changed, by).await
}

async fn after_fields_in(
    tx: &mut Tx,
    defs: &Definitions,
    view: &CardView,
    changed: &Map<String, Value>,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    for (set, rule) in rules(defs) {
        if let Trigger::FieldSet(field) = &rule.trigger
            && let Some(value) = changed.get(field.as_str())
        {
            if value.is_null() {
                cancel_key(
                    tx,
                    defs,
                    &rule_key(set, rule, view.card),
                    "field_cleared",
                    by,
                )
                .await?;
            } else {
                arm(tx, defs, set, rule, view, by).await?;
            }
        }
    }
    Ok(())
}

/// An activity of `kind` got `outcome` on `card`.
pub(crate) async fn after_outcome(
    tx: &mut Tx,
    defs: &Definitions,
    card: Option<CardId>,
    kind: &str,
    outcome: &str,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    let Some(card) = card else {
        return Ok(());
    };
    let Some(view) = card_view(tx, card).await? else {
        return Ok(());
    };
    for (set, rule) in rules(defs) {
        if let Trigger::ActivityOutcome {
            activity,
            outcome: wanted,
        } = &rule.trigger
            && activity.as_str() == kind
        {
            if wanted.as_str() == outcome {
                arm(tx, defs, set, rule, &view, by).await?;
            } else if !crate::crm::activities::NOT_CONTACT.contains(&outcome) {
                // Reached after all: the call-back is moot. (Busy again: it stands.)
                cancel_key(tx, defs, &rule_key(set, rule, card), "other_outcome", by).await?;
            }
        }
    }
    Ok(())
}

/// The customer was contacted: their cards' open `no_contact` reminders no longer hold.
pub(crate) async fn after_contact(
    tx: &mut Tx,
    defs: &Definitions,
    customer: CustomerId,
) -> Result<(), sqlx::Error> {
    let cards: Vec<CardId> = exec!(&mut *tx, conn => sqlx::query_scalar(
        "SELECT id FROM cards WHERE customer_id = $1 AND closed_at IS NULL")
        .bind(customer).fetch_all(conn).await)?;
    for (set, rule) in rules(defs) {
        if matches!(rule.trigger, Trigger::NoContact { .. }) {
            for card in &cards {
                cancel_key(tx, defs, &rule_key(set, rule, *card), "contacted", None).await?;
            }
        }
    }
    Ok(())
}

/// Keeps the card's `appointment_at` field (when the definitions declare it) on its next
/// upcoming appointment that is not cancelled, and runs the field's reminder rules when it
/// changed. Called after an appointment is booked, moved or cancelled.
pub(crate) async fn sync_appointment_field(
    tx: &mut Tx,
    defs: &Definitions,
    card: Option<CardId>,
    by: Option<UserId>,
) -> Result<(), sqlx::Error> {
    const FIELD: &str = "appointment_at";
    let Some(card) = card else {
        return Ok(());
    };
    if !defs.card_fields.iter().any(|f| f.id.as_str() == FIELD) {
        return Ok(());
    }
    let next: Option<Timestamp> = exec!(&mut *tx, conn => sqlx::query_scalar(
        "SELECT MIN(starts_at) FROM appointments WHERE card_id = $1 AND status IN ('planned', 'confirmed') AND starts_at > $2")
        .bind(card).bind(Timestamp::now()).fetch_one(conn).await)?;
    let fields: Option<String> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT fields FROM cards WHERE id = $1")
        .bind(card).fetch_optional(conn).await)?;
    let Some(fields) = fields else {
        return Ok(());
    };
    let mut fields = parse_object(&fields);
    let value = next.map_or(Value::Null, |t| Value::String(t.to_canonical_string()));
    if fields.get(FIELD).unwrap_or(&Value::Null) == &value {
        return Ok(());
    }
    if value.is_null() {
        fields.remove(FIELD);
    } else {
        fields.insert(FIELD.into(), value.clone());
    }
    exec!(&mut *tx, conn => sqlx::query(
        "UPDATE cards SET fields = $1, version = version + 1, updated_at = $2, definitions_version = $3 WHERE id = $4")
        .bind(Value::Object(fields).to_string()).bind(Timestamp::now()).bind(&defs.version).bind(card)
        .execute(conn).await.map(|_| ()))?;
    let mut changed = Map::new();
    changed.insert(FIELD.into(), value);
    after_fields(tx, defs, card, &changed, by).await?;
    crate::crm::live::card_updated(tx, defs, card, None).await
}
