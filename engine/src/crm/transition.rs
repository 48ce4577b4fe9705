//! Moving a card between stages: the state machine.
//!
//! Checks run before the write transaction (the transition is declared, the fields are
//! valid and complete, the guard allows it); the guard runs off the async threads with
//! its deadline. The write then happens in one transaction guarded by the card's version:
//! the card's new stage, the stage-history rows, the timeline event and the declared
//! actions' jobs (the outbox) commit together or not at all. Two users moving one card:
//! both pass the checks at version v, exactly one `UPDATE … WHERE version = v` matches.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::crm::cards::{self, Card, CardRow};
use crate::crm::customers::{self, CustomerRow, parse_object, stale};
use crate::crm::fields;
use crate::crm::outbox::{self, ActionContext, Queued};
use crate::crm::timeline::{self, NewEvent, kinds};
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::rules::{DenyReason, GuardDecision, RuleContext, RuleRef};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, EventId, UserId};

/// A request to move a card.
#[derive(Debug, Clone)]
pub struct MoveCommand {
    pub card: CardId,
    pub to: String,
    pub expected_version: i64,
    /// Card field values entered with the move (the dialog's `asks`).
    pub fields: Map<String, Value>,
    /// The user moving it (None: the system).
    pub by: Option<UserId>,
    /// `tr` or `en`: the language of refusal messages.
    pub locale: String,
}

/// A completed move.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Moved {
    pub card: Card,
    /// The `stage_changed` timeline event.
    pub event_id: EventId,
    /// The jobs the transition's actions queued.
    pub jobs: Vec<Queued>,
}

fn localized(locale: &str, tr: &str, en: &str) -> String {
    if locale == "tr" {
        tr.to_string()
    } else {
        en.to_string()
    }
}

/// Loaded state a move starts from.
pub(crate) struct Loaded {
    pub card: CardRow,
    pub customer: CustomerRow,
    pub owners: Vec<UserId>,
}

pub(crate) async fn load(db: &Db, card: CardId) -> Result<Option<Loaded>, ApiError> {
    let Some(card) = cards::get_row(db, card).await? else {
        return Ok(None);
    };
    let customer: Option<CustomerRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {} FROM customers WHERE id = $1", customers::CUSTOMER_COLUMNS)))
            .bind(card.customer_id)
            .fetch_optional(pool)
            .await
    })?;
    let Some(customer) = customer else {
        return Ok(None);
    };
    let owners = customers::owner_ids(db, customer.id).await?;
    Ok(Some(Loaded {
        card,
        customer,
        owners,
    }))
}

/// [`load`] in a transaction.
pub(crate) async fn load_in(tx: &mut Tx, card: CardId) -> Result<Option<Loaded>, ApiError> {
    let card: Option<CardRow> = exec!(&mut *tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {} FROM cards WHERE id = $1", cards::CARD_COLUMNS)))
        .bind(card).fetch_optional(conn).await)?;
    let Some(card) = card else {
        return Ok(None);
    };
    let Some(customer) = customers::get_row_tx(tx, card.customer_id).await? else {
        return Ok(None);
    };
    let owners: Vec<UserId> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT user_id FROM customer_owners WHERE customer_id = $1")
        .bind(customer.id).fetch_all(conn).await)?;
    Ok(Some(Loaded {
        card,
        customer,
        owners,
    }))
}

/// Moves a card. `access` sees the customer's owners and refuses (404/403) before
/// anything else is revealed.
///
/// Everything — the loads, the checks, the guard, the writes — happens in one write
/// transaction: on SQLite the loads then come from the writer's warm page cache instead
/// of reader connections whose caches every commit invalidates (≈10 reads per move), and
/// the version check is exact; on PostgreSQL the row is read as committed and the
/// versioned `UPDATE` settles a race.
/// The guard runs under that lock too: a rule call is bounded by its ≈50 ms deadline
/// (`rules`), so even a looping guard holds it briefly.
pub async fn move_card(
    db: &Db,
    definitions: &Definitions,
    command: MoveCommand,
    access: impl FnOnce(&[UserId]) -> Result<(), ApiError>,
) -> Result<Moved, ApiError> {
    let mut tx = db.begin().await?;
    crate::runtime::ensure_current(&mut tx, definitions).await?;
    let Some(loaded) = load_in(&mut tx, command.card).await? else {
        return Err(ApiError::not_found("card"));
    };
    access(&loaded.owners)?;
    let moved = move_in(&mut tx, definitions, command, loaded).await?;
    tx.commit().await?;
    Ok(moved)
}

/// Moves a card loaded (and access-checked) earlier: the versioned write refuses it if it
/// changed meanwhile.
pub(crate) async fn move_loaded(
    db: &Db,
    definitions: &Definitions,
    command: MoveCommand,
    loaded: Loaded,
) -> Result<Moved, ApiError> {
    let mut tx = db.begin().await?;
    crate::runtime::ensure_current(&mut tx, definitions).await?;
    let moved = move_in(&mut tx, definitions, command, loaded).await?;
    tx.commit().await?;
    Ok(moved)
}

/// The checks and writes of a move, in `tx` (not committed). The dry run calls it on a
/// transaction it then rolls back.
pub(crate) async fn move_in(
    tx: &mut Tx,
    definitions: &Definitions,
    command: MoveCommand,
    loaded: Loaded,
) -> Result<Moved, ApiError> {
    let Loaded { card, customer, .. } = loaded;
    let locale = command.locale.as_str();
    if card.closed_at.is_some() {
        return Err(ApiError::unprocessable(
            "card_closed",
            localized(locale, "Bu kart kapatıldı.", "This card is closed."),
        ));
    }
    if card.version != command.expected_version {
        return Err(stale("card", card.version));
    }
    let pipeline = definitions.pipeline(&card.pipeline_id).ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_pipeline",
            "this card's pipeline is no longer defined",
        )
    })?;
    let Some(target) = pipeline.stage(&command.to) else {
        return Err(ApiError::unprocessable(
            "unknown_stage",
            format!("`{}` is not a stage of this pipeline", command.to),
        )
        .with_field("to", "no such stage"));
    };
    if command.to == card.stage_id {
        return Err(ApiError::unprocessable(
            "same_stage",
            localized(
                locale,
                "Kart zaten bu aşamada.",
                "The card is already in this stage.",
            ),
        ));
    }
    let Some(transition) = pipeline.transition(&card.stage_id, &command.to) else {
        let allowed: Vec<&str> = pipeline
            .transitions
            .iter()
            .filter(|t| t.from.as_str() == card.stage_id)
            .map(|t| t.to.as_str())
            .collect();
        let target_name = localized(locale, &target.name.tr, &target.name.en);
        return Err(ApiError::unprocessable(
            "transition_not_allowed",
            localized(
                locale,
                &format!(
                    "Bu aşamadan doğrudan {target_name} aşamasına geçilemez (izin verilenler: {}).",
                    allowed.join(", ")
                ),
                &format!(
                    "A card cannot move from this stage straight to {target_name} (allowed: {}).",
                    allowed.join(", ")
                ),
            ),
        ));
    };

    // Fields entered with the move, then the completeness check.
    let mut errors = BTreeMap::new();
    let current = parse_object(&card.fields);
    let merged = fields::merge(
        &definitions.card_fields,
        &current,
        &command.fields,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let customer_fields = parse_object(&customer.fields);
    let target_name = localized(locale, &target.name.tr, &target.name.en);
    let mut missing = BTreeMap::new();
    for field in definitions.required_on_entry(pipeline.id.as_str(), target.id.as_str()) {
        if !fields::is_filled(merged.get(field)) && !fields::is_filled(customer_fields.get(field)) {
            missing.insert(
                field.to_string(),
                localized(
                    locale,
                    &format!("{target_name} aşaması için gerekli"),
                    &format!("required to enter {target_name}"),
                ),
            );
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Client {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "missing_fields",
            message: localized(
                locale,
                &format!("{target_name} aşamasına geçmek için eksik alanları doldurun."),
                &format!("Fill in the missing fields to enter {target_name}."),
            ),
            fields: missing,
            retry_after_secs: None,
        });
    }

    // The guard sees the card as it would be after the move's field changes.
    if let Some(guard) = &transition.guard {
        let rule = RuleRef::parse(guard.as_str()).map_err(|e| anyhow::anyhow!(e))?;
        let customer_view = customers::rule_view(
            definitions,
            &customer.name,
            &customer.source,
            None,
            None,
            &customer_fields,
            &[
                ("emotional_score", json!(customer.emotional_score)),
                ("logical_score", json!(customer.logical_score)),
            ],
        );
        let ctx = RuleContext::new()
            .with_json(
                "card",
                &cards::rule_view(definitions, &card, &merged, customer.last_contact_at),
            )
            .with_json("customer", &customer_view)
            .with_json(
                "transition",
                &json!({"from": card.stage_id, "to": command.to, "pipeline": pipeline.id.as_str()}),
            )
            .with_json("user", &json!({"id": command.by.map(|u| u.to_string())}));
        match definitions.rules.guard_async(rule.clone(), ctx).await {
            Ok(GuardDecision::Allow) => {}
            Ok(GuardDecision::Deny(DenyReason::Text { tr, en })) => {
                return Err(ApiError::unprocessable(
                    "guard_refused",
                    localized(locale, &tr, &en),
                ));
            }
            Ok(GuardDecision::Deny(DenyReason::Key(key))) => {
                return Err(ApiError::unprocessable("guard_refused", key));
            }
            Err(e) => {
                tracing::warn!(rule = %rule, error = %e, "guard failed; the move is refused");
                return Err(ApiError::unprocessable(
                    "guard_failed",
                    localized(
                        locale,
                        &format!("Geçiş kuralı çalışmadı ({rule}); yöneticinize bildirin."),
                        &format!("The transition rule failed ({rule}); tell your administrator."),
                    ),
                ));
            }
        }
    }

    // Actions need the full customer (phones, emails, owners, consent).
    let (full_customer, actor_name) = if transition.actions.is_empty() {
        (None, None)
    } else {
        let name: Option<String> = match command.by {
            Some(user) => {
                exec!(&mut *tx, conn => sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                .bind(user).fetch_optional(conn).await)?
            }
            None => None,
        };
        (customers::get_tx(tx, customer.id).await?, name)
    };

    let now = Timestamp::now();
    let event = EventId::new();
    let key = cards::sort_key(
        definitions,
        pipeline,
        &customer,
        &merged,
        card.created_at,
        now,
        now,
    );
    let fields_text = Value::Object(merged.clone()).to_string();
    let updated = exec!(&mut *tx, conn => sqlx::query(
        "UPDATE cards SET stage_id = $1, fields = $2, sort_key = $3, version = version + 1, stage_entered_at = $4, updated_at = $4,
             definitions_version = $7
         WHERE id = $5 AND version = $6")
        .bind(&command.to).bind(&fields_text).bind(&key).bind(now).bind(card.id).bind(command.expected_version)
        .bind(&definitions.version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if updated == 0 {
        let version: Option<i64> = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT version FROM cards WHERE id = $1")
            .bind(card.id).fetch_optional(conn).await)?;
        return Err(stale("card", version.unwrap_or(card.version)));
    }
    let mut changed = Map::new();
    for (k, v) in &merged {
        if current.get(k) != Some(v) {
            changed.insert(k.clone(), v.clone());
        }
    }
    timeline::append_with_id(tx, event, now, NewEvent {
        customer_id: customer.id,
        card_id: Some(card.id),
        kind: kinds::STAGE_CHANGED,
        actor: command.by,
        definitions_version: &definitions.version,
        data: json!({"pipeline": pipeline.id.as_str(), "from": card.stage_id, "to": command.to, "fields": changed}),
    })
    .await?;
    cards::open_stage(
        tx,
        card.id,
        pipeline.id.as_str(),
        &command.to,
        command.by,
        event,
        now,
    )
    .await?;
    crate::crm::live::card_moved(tx, definitions, card.id, &card.stage_id, &command.to).await?;
    crate::reminders::triggers::after_move(
        tx,
        definitions,
        card.id,
        &card.stage_id,
        &command.to,
        &changed,
        command.by,
    )
    .await?;
    let jobs = match &full_customer {
        Some(full) => {
            let ctx = ActionContext {
                definitions,
                pipeline,
                customer: full,
                card_id: card.id,
                card_fields: &merged,
                from: &card.stage_id,
                to: &command.to,
                by: command.by,
                actor_name,
                event,
                at: now,
            };
            outbox::enqueue_actions(tx, &ctx, &transition.actions)
                .await
                .map_err(sqlx::Error::from)?
        }
        None => Vec::new(),
    };
    Ok(Moved {
        card: Card {
            id: card.id,
            customer_id: card.customer_id,
            pipeline_id: card.pipeline_id,
            stage_id: command.to,
            fields: merged,
            version: card.version + 1,
            stage_entered_at: now,
            created_at: card.created_at,
            updated_at: now,
            closed_at: None,
            closed_reason: None,
        },
        event_id: event,
        jobs,
    })
}

/// Edits card fields without moving it (`PATCH /api/cards/{id}`).
pub async fn update_fields(
    db: &Db,
    definitions: &Definitions,
    card_id: CardId,
    expected_version: i64,
    changes: &Map<String, Value>,
    by: Option<UserId>,
    access: impl FnOnce(&[UserId]) -> Result<(), ApiError>,
) -> Result<Card, ApiError> {
    let Some(Loaded {
        card,
        customer,
        owners,
    }) = load(db, card_id).await?
    else {
        return Err(ApiError::not_found("card"));
    };
    access(&owners)?;
    if card.version != expected_version {
        return Err(stale("card", card.version));
    }
    let pipeline = definitions.pipeline(&card.pipeline_id).ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_pipeline",
            "this card's pipeline is no longer defined",
        )
    })?;
    let mut errors = BTreeMap::new();
    let current = parse_object(&card.fields);
    let merged = fields::merge(&definitions.card_fields, &current, changes, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = Timestamp::now();
    let key = cards::sort_key(
        definitions,
        pipeline,
        &customer,
        &merged,
        card.created_at,
        now,
        card.stage_entered_at,
    );
    let mut tx = db.begin().await?;
    let updated = exec!(&mut tx, conn => sqlx::query(
        "UPDATE cards SET fields = $1, sort_key = $2, version = version + 1, updated_at = $3, definitions_version = $6
         WHERE id = $4 AND version = $5")
        .bind(Value::Object(merged.clone()).to_string()).bind(&key).bind(now).bind(card.id).bind(expected_version)
        .bind(&definitions.version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if updated == 0 {
        return Err(stale("card", card.version + 1));
    }
    let mut changed = Map::new();
    for (k, v) in &merged {
        if current.get(k) != Some(v) {
            changed.insert(k.clone(), json!({"from": current.get(k), "to": v}));
        }
    }
    for k in current.keys().filter(|k| !merged.contains_key(*k)) {
        changed.insert(k.clone(), json!({"from": current.get(k), "to": null}));
    }
    timeline::append(
        &mut tx,
        NewEvent {
            customer_id: customer.id,
            card_id: Some(card.id),
            kind: kinds::CARD_UPDATED,
            actor: by,
            definitions_version: &definitions.version,
            data: json!({"changes": changed}),
        },
    )
    .await?;
    crate::crm::live::card_updated(&mut tx, definitions, card.id, None).await?;
    let values: Map<String, Value> = changed
        .keys()
        .map(|k| (k.clone(), merged.get(k).cloned().unwrap_or(Value::Null)))
        .collect();
    crate::reminders::triggers::after_fields(&mut tx, definitions, card.id, &values, by).await?;
    tx.commit().await?;
    Ok(Card {
        id: card.id,
        customer_id: card.customer_id,
        pipeline_id: card.pipeline_id,
        stage_id: card.stage_id,
        fields: merged,
        version: card.version + 1,
        stage_entered_at: card.stage_entered_at,
        created_at: card.created_at,
        updated_at: now,
        closed_at: None,
        closed_reason: None,
    })
}
