//! Working a customer: activities that open and close with an outcome (outcomes may move
//! the card through rules and enqueue actions), call results, and notes. Each is a
//! timeline event; contact-meaning ones update the customer's `last_contact_at`.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::crm::cards::{self, CardRow};
use crate::crm::customers::{self, parse_object, stale};
use crate::crm::outbox::{self, ActionContext, Queued};
use crate::crm::timeline::{self, NewEvent};
use crate::crm::transition::{self, Loaded, MoveCommand};
use crate::definitions::Definitions;
use crate::definitions::model::ActivityKind;
use crate::exec;
use crate::http::ApiError;
use crate::rules::{RuleContext, RuleRef};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, EventId, UserId};

/// Call outcomes that are attempts, not contact: they leave `last_contact_at` alone.
pub const NOT_CONTACT: &[&str] = &["no_answer", "busy", "wrong_number"];

/// Timeline kinds written here.
pub mod kinds {
    pub const ACTIVITY_OPENED: &str = "activity_opened";
    pub const ACTIVITY_CLOSED: &str = "activity_closed";
    pub const NOTE: &str = "note";
    pub const OUTCOME_MOVE_REFUSED: &str = "outcome_move_refused";
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Activity {
    pub id: String,
    pub customer_id: CustomerId,
    pub card_id: Option<CardId>,
    /// An activity kind id from YAML.
    pub kind: String,
    /// `open` or `closed`.
    pub status: String,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub due_at: Option<Timestamp>,
    pub opened_at: Timestamp,
    pub opened_by: Option<UserId>,
    pub closed_at: Option<Timestamp>,
    pub closed_by: Option<UserId>,
    pub version: i64,
}

const ACTIVITY_COLUMNS: &str = "id, customer_id, card_id, kind, status, outcome, note, due_at, opened_at, opened_by, closed_at, closed_by, version";

fn kind<'a>(definitions: &'a Definitions, id: &str) -> Result<&'a ActivityKind, ApiError> {
    definitions
        .activity_kinds
        .iter()
        .find(|k| k.id.as_str() == id)
        .ok_or_else(|| {
            let known: Vec<&str> = definitions
                .activity_kinds
                .iter()
                .map(|k| k.id.as_str())
                .collect();
            ApiError::unprocessable("unknown_activity_kind", format!("no activity kind `{id}`"))
                .with_field("kind", format!("one of: {}", known.join(", ")))
        })
}

fn check_note(note: &Option<String>) -> Result<Option<String>, ApiError> {
    let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 10_000) {
        return Err(
            ApiError::unprocessable("invalid_note", "a note has at most 10000 characters")
                .with_field("note", "too long"),
        );
    }
    Ok(note.map(str::to_string))
}

/// The card an activity of a customer belongs to: the given one (it must be theirs) or the
/// customer's first card.
async fn resolve_card(
    db: &Db,
    customer: CustomerId,
    card: Option<CardId>,
) -> Result<Option<CardRow>, ApiError> {
    let cards_of: Vec<cards::Card> = cards::for_customer(db, customer).await?;
    let chosen = match card {
        Some(id) => Some(
            cards_of
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.id)
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "unknown_card",
                        "this card does not belong to the customer",
                    )
                    .with_field("card_id", "not this customer's card")
                })?,
        ),
        None => cards_of.first().map(|c| c.id),
    };
    match chosen {
        Some(id) => Ok(cards::get_row(db, id).await?),
        None => Ok(None),
    }
}

pub(crate) async fn touch_contact(
    tx: &mut Tx,
    definitions: &Definitions,
    customer: CustomerId,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    exec!(tx, conn => sqlx::query(
        "UPDATE customers SET last_contact_at = $1 WHERE id = $2 AND (last_contact_at IS NULL OR last_contact_at < $1)")
        .bind(at).bind(customer).execute(conn).await.map(|r| r.rows_affected()))?;
    cards::refresh_sort_keys_for_customer(tx, definitions, customer).await?;
    // Contact ends the customer's `no_contact` reminders.
    crate::reminders::triggers::after_contact(tx, definitions, customer).await?;
    // Cards show the last contact: screens update them.
    crate::crm::live::customer_cards_updated(tx, definitions, customer, None).await
}

/// Opens an activity.
#[allow(clippy::too_many_arguments)]
pub async fn open(
    db: &Db,
    definitions: &Definitions,
    customer: CustomerId,
    card: Option<CardId>,
    kind_id: &str,
    note: &Option<String>,
    due_at: Option<Timestamp>,
    by: Option<UserId>,
) -> Result<Activity, ApiError> {
    kind(definitions, kind_id)?;
    let note = check_note(note)?;
    let card = resolve_card(db, customer, card).await?;
    let now = Timestamp::now();
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO activities (id, customer_id, card_id, kind, status, outcome, note, due_at, opened_at, opened_by, closed_at, closed_by, version, definitions_version)
         VALUES ($1, $2, $3, $4, 'open', NULL, $5, $6, $7, $8, NULL, NULL, 1, $9)")
        .bind(&id).bind(customer).bind(card.as_ref().map(|c| c.id)).bind(kind_id).bind(&note).bind(due_at).bind(now).bind(by)
        .bind(&definitions.version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    timeline::append(
        &mut tx,
        NewEvent {
            customer_id: customer,
            card_id: card.as_ref().map(|c| c.id),
            kind: kinds::ACTIVITY_OPENED,
            actor: by,
            definitions_version: &definitions.version,
            data: json!({"activity_id": id, "kind": kind_id, "note": note, "due_at": due_at}),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Activity>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id = $1")))
            .bind(id).fetch_optional(pool).await
    })
}

pub async fn for_customer(db: &Db, customer: CustomerId) -> Result<Vec<Activity>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACTIVITY_COLUMNS} FROM activities WHERE customer_id = $1 ORDER BY (status = 'open') DESC, opened_at DESC")))
            .bind(customer).fetch_all(pool).await
    })
}

/// What closing an activity did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Closed {
    pub activity: Activity,
    /// The stage the outcome rule moved the card to, if it did.
    pub moved_to: Option<String>,
    /// Why the rule's move did not happen (guard, missing fields, undeclared transition).
    pub move_refused: Option<String>,
    /// Jobs the outcome's actions queued.
    pub jobs: Vec<Queued>,
}

/// Closes an activity with an outcome: records it, runs the outcome's rule (which may move
/// the card, as a normal move with its guard and actions) and queues the outcome's actions.
#[allow(clippy::too_many_arguments)]
pub async fn close(
    db: &Db,
    definitions: &Definitions,
    id: &str,
    expected_version: Option<i64>,
    outcome_id: &str,
    note: &Option<String>,
    by: Option<UserId>,
    locale: &str,
) -> Result<Closed, ApiError> {
    let activity = get(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    if activity.status != "open" {
        return Err(ApiError::conflict(
            "activity_closed",
            "this activity is already closed",
        ));
    }
    if let Some(v) = expected_version
        && v != activity.version
    {
        return Err(stale("activity", activity.version));
    }
    let kind = kind(definitions, &activity.kind)?;
    let outcome = kind
        .outcomes
        .iter()
        .find(|o| o.id.as_str() == outcome_id)
        .ok_or_else(|| {
            let known: Vec<&str> = kind.outcomes.iter().map(|o| o.id.as_str()).collect();
            ApiError::unprocessable(
                "unknown_outcome",
                format!("`{outcome_id}` is not an outcome of `{}`", activity.kind),
            )
            .with_field("outcome", format!("one of: {}", known.join(", ")))
        })?;
    let note = check_note(note)?.or(activity.note.clone());
    let now = Timestamp::now();
    let event = EventId::new();
    let mut tx = db.begin().await?;
    let updated = exec!(&mut tx, conn => sqlx::query(
        "UPDATE activities SET status = 'closed', outcome = $1, note = $2, closed_at = $3, closed_by = $4, version = version + 1,
             definitions_version = $7
         WHERE id = $5 AND version = $6")
        .bind(outcome_id).bind(&note).bind(now).bind(by).bind(id).bind(activity.version)
        .bind(&definitions.version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if updated == 0 {
        return Err(stale("activity", activity.version + 1));
    }
    timeline::append_with_id(&mut tx, event, now, NewEvent {
        customer_id: activity.customer_id,
        card_id: activity.card_id,
        kind: kinds::ACTIVITY_CLOSED,
        actor: by,
        definitions_version: &definitions.version,
        data: json!({"activity_id": id, "kind": activity.kind, "outcome": outcome_id, "note": note}),
    })
    .await?;
    if !NOT_CONTACT.contains(&outcome_id) {
        touch_contact(&mut tx, definitions, activity.customer_id, now).await?;
    }
    crate::reminders::triggers::after_outcome(
        &mut tx,
        definitions,
        activity.card_id,
        &activity.kind,
        outcome_id,
        by,
    )
    .await?;
    tx.commit().await?;

    // The outcome's rule may move the card: a regular move, so guards and actions apply.
    let mut moved_to = None;
    let mut move_refused = None;
    if let (Some(rule), Some(card_id)) = (&outcome.rule, activity.card_id)
        && let Some(loaded) = transition::load(db, card_id).await?
    {
        let rule = RuleRef::parse(rule.as_str()).map_err(|e| anyhow::anyhow!(e))?;
        let customer_fields = parse_object(&loaded.customer.fields);
        let ctx = RuleContext::new()
            .with_json(
                "card",
                &cards::rule_view(
                    definitions,
                    &loaded.card,
                    &parse_object(&loaded.card.fields),
                    loaded.customer.last_contact_at,
                ),
            )
            .with_json(
                "customer",
                &customers::rule_view(
                    definitions,
                    &loaded.customer.name,
                    &loaded.customer.source,
                    None,
                    None,
                    &customer_fields,
                    &[],
                ),
            )
            .with_json(
                "activity",
                &json!({"kind": activity.kind, "outcome": outcome_id, "note": note}),
            );
        match definitions.rules.outcome_async(rule.clone(), ctx).await {
            Ok(decision) => {
                if let Some(to) = decision.move_to.filter(|to| *to != loaded.card.stage_id) {
                    let command = MoveCommand {
                        card: card_id,
                        to: to.clone(),
                        expected_version: loaded.card.version,
                        fields: Default::default(),
                        by,
                        locale: locale.to_string(),
                    };
                    match transition::move_loaded(db, definitions, command, loaded).await {
                        Ok(_) => moved_to = Some(to),
                        Err(e) => {
                            let reason = match &e {
                                ApiError::Client { message, .. }
                                | ApiError::Definitions { message, .. } => message.clone(),
                                ApiError::Internal(_) => return Err(e),
                            };
                            record_refusal(db, definitions, &activity, &to, &reason, by).await?;
                            move_refused = Some(reason);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(rule = %rule, error = %e, "outcome rule failed; the card stays");
                let reason = format!("the outcome rule failed ({rule})");
                record_refusal(db, definitions, &activity, "", &reason, by).await?;
                move_refused = Some(reason);
            }
        }
    }

    // The outcome's own actions (notify, follow-up, …) on the card as it is now.
    let mut jobs = Vec::new();
    if !outcome.actions.is_empty()
        && let Some(card_id) = activity.card_id
        && let Some(Loaded { card, .. }) = transition::load(db, card_id).await?
        && let Some(customer) = customers::get(db, activity.customer_id).await?
        && let Some(pipeline) = definitions.pipeline(&card.pipeline_id)
    {
        let actor_name: Option<String> = match by {
            Some(user) => crate::read!(db, pool => {
                sqlx::query_scalar("SELECT name FROM users WHERE id = $1").bind(user).fetch_optional(pool).await
            })?,
            None => None,
        };
        let card_fields = parse_object(&card.fields);
        let ctx = ActionContext {
            definitions,
            pipeline,
            customer: &customer,
            card_id,
            card_fields: &card_fields,
            from: &card.stage_id,
            to: &card.stage_id,
            by,
            actor_name,
            event,
            at: now,
        };
        let mut tx = db.begin().await?;
        jobs = outbox::enqueue_actions(&mut tx, &ctx, &outcome.actions)
            .await
            .map_err(sqlx::Error::from)?;
        tx.commit().await?;
    }
    let activity = get(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("activity"))?;
    Ok(Closed {
        activity,
        moved_to,
        move_refused,
        jobs,
    })
}

async fn record_refusal(
    db: &Db,
    definitions: &Definitions,
    activity: &Activity,
    to: &str,
    reason: &str,
    by: Option<UserId>,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    timeline::append(
        &mut tx,
        NewEvent {
            customer_id: activity.customer_id,
            card_id: activity.card_id,
            kind: kinds::OUTCOME_MOVE_REFUSED,
            actor: by,
            definitions_version: &definitions.version,
            data: json!({"activity_id": activity.id, "to": to, "reason": reason}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Adds a note to the customer's timeline.
pub async fn add_note(
    db: &Db,
    definitions: &Definitions,
    customer: CustomerId,
    card: Option<CardId>,
    body: &str,
    by: Option<UserId>,
) -> Result<EventId, ApiError> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > 10_000 {
        return Err(
            ApiError::unprocessable("invalid_note", "a note has 1 to 10000 characters")
                .with_field("body", "required"),
        );
    }
    let card = match card {
        Some(id) => resolve_card(db, customer, Some(id)).await?.map(|c| c.id),
        None => None,
    };
    let mentioned = mentioned_users(db, definitions, customer, body, by).await?;
    let mut tx = db.begin().await?;
    let id = timeline::append(
        &mut tx,
        NewEvent {
            customer_id: customer,
            card_id: card,
            kind: kinds::NOTE,
            actor: by,
            definitions_version: &definitions.version,
            data: json!({"body": body, "mentions": mentioned.iter().map(|m| m.id).collect::<Vec<_>>()}),
        },
    )
    .await?;
    if !mentioned.is_empty() {
        let name: Option<String> = exec!(&mut tx, conn => sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
            .bind(customer).fetch_optional(conn).await)?;
        let author: Option<String> = match by {
            Some(user) => {
                exec!(&mut tx, conn => sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                .bind(user).fetch_optional(conn).await)?
            }
            None => None,
        };
        let excerpt: String = body.chars().take(200).collect();
        let values = json!({
            "actor": {"name": author.as_deref().unwrap_or("Akış")},
            "customer": {"name": name.unwrap_or_default()},
            "note": excerpt,
        });
        let key = format!("note:{id}:mention");
        for user in &mentioned {
            let lang = if user.locale == "en" { "en" } else { "tr" };
            let text = definitions
                .render_message(
                    "bahsedildi",
                    lang,
                    minijinja::Value::from(minijinja::value::Serde(&values)),
                )
                .map_err(|e| anyhow::anyhow!("mention template: {e}"))?;
            crate::notifications::insert(
                &mut tx,
                crate::notifications::NewNotification {
                    user_id: user.id,
                    kind: "bahsedildi",
                    body: text.trim(),
                    customer_id: Some(customer),
                    data: &values,
                    effect_key: Some(&key),
                },
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(id)
}

struct Mentioned {
    id: UserId,
    locale: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: UserId,
    email: String,
    role: String,
    locale: String,
}

/// Users named in a note as `@email` or `@local-part` (the part of their email before `@`,
/// when exactly one user has it) who may see the customer; never the author.
async fn mentioned_users(
    db: &Db,
    definitions: &Definitions,
    customer: CustomerId,
    body: &str,
    by: Option<UserId>,
) -> Result<Vec<Mentioned>, ApiError> {
    let tokens: Vec<String> = body
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | ')' | '!' | '?'))
        .filter_map(|w| w.strip_prefix('@'))
        .map(|w| w.trim_end_matches(['.', '\'']).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<UserRow> = crate::read!(db, pool => {
        sqlx::query_as("SELECT id, email, role, locale FROM users WHERE active").fetch_all(pool).await
    })?;
    let owners = customers::owner_ids(db, customer).await?;
    let mut out: Vec<Mentioned> = Vec::new();
    for token in tokens {
        let matches: Vec<&UserRow> = users
            .iter()
            .filter(|u| u.email == token || u.email.split('@').next() == Some(token.as_str()))
            .collect();
        let [user] = matches.as_slice() else { continue };
        let sees = definitions.role(&user.role).is_some_and(|r| {
            r.permissions.allows(
                crate::policy::Module::Customers,
                crate::policy::Permission::View,
            ) && (r.scope == crate::policy::Scope::All || owners.contains(&user.id))
        });
        if sees && Some(user.id) != by && !out.iter().any(|o| o.id == user.id) {
            out.push(Mentioned {
                id: user.id,
                locale: user.locale.clone(),
            });
        }
    }
    Ok(out)
}

/// The value of a JSON field as an optional instant (for query parameters and bodies).
pub fn parse_instant(value: Option<&str>, field: &str) -> Result<Option<Timestamp>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => Timestamp::parse(v).map(Some).map_err(|_| {
            ApiError::unprocessable(
                "invalid_time",
                format!("`{field}` must be an RFC 3339 instant"),
            )
            .with_field(field, "e.g. 2026-11-25T10:00:00+03:00")
        }),
    }
}
