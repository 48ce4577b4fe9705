//! Merging two customers by hand: the survivor takes the other's phones, emails, channel
//! identities, owners, tags, timeline events, activities, appointments, leads and
//! notifications. Events are never rewritten — they change owner — and a `merged` event on
//! the survivor records what came from where. When both have an open card in the same
//! pipeline the survivor's stays and the other's is closed (kept, with its history, and a
//! timeline note); other cards move over. The absorbed customer remains as a tombstone
//! (`merged_into`), hidden from lists and search, so old links still resolve.

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::crm::cards;
use crate::crm::customers::{self, parse_object, stale};
use crate::crm::timeline::{self, NewEvent};
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

pub mod kinds {
    pub const MERGED: &str = "merged";
    pub const CARD_CLOSED: &str = "card_closed";
}

/// What a merge moved.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct MergeReport {
    pub survivor: CustomerId,
    pub absorbed: CustomerId,
    pub phones: u64,
    pub emails: u64,
    pub identities: u64,
    pub events: u64,
    pub activities: u64,
    pub appointments: u64,
    pub leads: u64,
    /// Files moved from the merged customer (ones whose bytes the survivor had are retired).
    pub files: u64,
    pub cards_moved: Vec<CardId>,
    pub cards_closed: Vec<CardId>,
}

async fn count_update(
    tx: &mut Tx,
    sql: &'static str,
    survivor: CustomerId,
    other: CustomerId,
) -> Result<u64, sqlx::Error> {
    exec!(tx, conn => sqlx::query(sql).bind(survivor).bind(other).execute(conn).await.map(|r| r.rows_affected()))
}

/// Merges `other` into `survivor`. Both versions must be the ones the user saw.
pub async fn merge(
    db: &Db,
    definitions: &Definitions,
    survivor: CustomerId,
    survivor_version: i64,
    other: CustomerId,
    other_version: i64,
    by: Option<UserId>,
) -> Result<MergeReport, ApiError> {
    if survivor == other {
        return Err(ApiError::unprocessable(
            "invalid_merge",
            "a customer cannot be merged into itself",
        ));
    }
    let mut tx = db.begin().await?;
    let a = customers::get_row_tx(&mut tx, survivor)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let b = customers::get_row_tx(&mut tx, other)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    if a.merged_into.is_some() || b.merged_into.is_some() {
        return Err(ApiError::conflict(
            "already_merged",
            "one of these customers was already merged into another",
        ));
    }
    if a.version != survivor_version {
        return Err(stale("customer", a.version));
    }
    if b.version != other_version {
        return Err(stale("customer", b.version));
    }
    let now = Timestamp::now();
    let mut report = MergeReport {
        survivor,
        absorbed: other,
        ..MergeReport::default()
    };

    // Contact details: appended after the survivor's own.
    report.phones = count_update(&mut tx,
        "UPDATE customer_phones SET customer_id = $1, position = position + 1000 WHERE customer_id = $2", survivor, other).await?;
    report.emails = count_update(&mut tx,
        "UPDATE customer_emails SET customer_id = $1, position = position + 1000 WHERE customer_id = $2", survivor, other).await?;
    report.identities = count_update(
        &mut tx,
        "UPDATE customer_identities SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    count_update(&mut tx,
        "INSERT INTO customer_owners (customer_id, user_id, since) SELECT $1, user_id, since FROM customer_owners WHERE customer_id = $2 ON CONFLICT DO NOTHING",
        survivor, other).await?;
    exec!(&mut tx, conn => sqlx::query("DELETE FROM customer_owners WHERE customer_id = $1").bind(other).execute(conn).await.map(|r| r.rows_affected()))?;
    count_update(&mut tx,
        "INSERT INTO customer_tags (customer_id, tag) SELECT $1, tag FROM customer_tags WHERE customer_id = $2 ON CONFLICT DO NOTHING",
        survivor, other).await?;
    exec!(&mut tx, conn => sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1").bind(other).execute(conn).await.map(|r| r.rows_affected()))?;

    // Cards: one open card per pipeline survives.
    let survivor_cards = cards::for_customer_tx(&mut tx, survivor).await?;
    for card in cards::for_customer_tx(&mut tx, other).await? {
        let duplicate = card.closed_at.is_none()
            && survivor_cards
                .iter()
                .any(|c| c.closed_at.is_none() && c.pipeline_id == card.pipeline_id);
        if duplicate {
            exec!(&mut tx, conn => sqlx::query(
                "UPDATE cards SET customer_id = $1, closed_at = $2, closed_reason = 'merged', updated_at = $2 WHERE id = $3")
                .bind(survivor).bind(now).bind(card.id).execute(conn).await.map(|r| r.rows_affected()))?;
            exec!(&mut tx, conn => sqlx::query("UPDATE card_stage_history SET left_at = $1 WHERE card_id = $2 AND left_at IS NULL")
                .bind(now).bind(card.id).execute(conn).await.map(|r| r.rows_affected()))?;
            timeline::append(&mut tx, NewEvent {
                customer_id: survivor,
                card_id: Some(card.id),
                kind: kinds::CARD_CLOSED,
                actor: by,
                definitions_version: &definitions.version,
                data: json!({"reason": "merged", "pipeline": card.pipeline_id, "stage": card.stage_id, "from_customer": other}),
            })
            .await?;
            crate::crm::live::card_removed(&mut tx, card.id, &card.pipeline_id, survivor, "merged")
                .await?;
            report.cards_closed.push(card.id);
        } else {
            exec!(&mut tx, conn => sqlx::query("UPDATE cards SET customer_id = $1 WHERE id = $2")
                .bind(survivor).bind(card.id).execute(conn).await.map(|r| r.rows_affected()))?;
            report.cards_moved.push(card.id);
        }
    }

    // History and work re-attach (events change owner; their content is never rewritten).
    report.events = count_update(
        &mut tx,
        "UPDATE timeline_events SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    report.activities = count_update(
        &mut tx,
        "UPDATE activities SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    report.appointments = count_update(
        &mut tx,
        "UPDATE appointments SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    report.leads = count_update(
        &mut tx,
        "UPDATE leads SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    count_update(
        &mut tx,
        "UPDATE notifications SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    count_update(
        &mut tx,
        "UPDATE reminders SET customer_id = $1 WHERE customer_id = $2",
        survivor,
        other,
    )
    .await?;
    report.files = crate::drive::merge_customer(&mut tx, survivor, other).await?;

    // Data: the survivor's values win; the other's fill gaps; the older first touch wins.
    let mut fields = parse_object(&a.fields);
    for (k, v) in parse_object(&b.fields) {
        fields.entry(k).or_insert(v);
    }
    let (first_touch, source) = if b.created_at < a.created_at {
        (b.first_touch.clone(), b.source.clone())
    } else {
        (a.first_touch.clone(), a.source.clone())
    };
    let last_contact = match (a.last_contact_at, b.last_contact_at) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    exec!(&mut tx, conn => sqlx::query(
        "UPDATE customers SET fields = $1, first_touch = $2, source = $3, last_contact_at = $4,
            emotional_score = COALESCE(emotional_score, $5), logical_score = COALESCE(logical_score, $6),
            marketing_consent = COALESCE(marketing_consent, $7), marketing_consent_source = COALESCE(marketing_consent_source, $8),
            marketing_consent_at = COALESCE(marketing_consent_at, $9),
            whatsapp_consent = COALESCE(whatsapp_consent, $10), whatsapp_consent_source = COALESCE(whatsapp_consent_source, $11),
            whatsapp_consent_at = COALESCE(whatsapp_consent_at, $12),
            version = version + 1, updated_at = $13
         WHERE id = $14")
        .bind(Value::Object(fields).to_string()).bind(&first_touch).bind(&source).bind(last_contact)
        .bind(b.emotional_score).bind(b.logical_score)
        .bind(b.marketing_consent).bind(&b.marketing_consent_source).bind(b.marketing_consent_at)
        .bind(b.whatsapp_consent).bind(&b.whatsapp_consent_source).bind(b.whatsapp_consent_at)
        .bind(now).bind(survivor)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    exec!(&mut tx, conn => sqlx::query(
        "UPDATE customers SET merged_into = $1, version = version + 1, updated_at = $2, search_key = '' WHERE id = $3")
        .bind(survivor).bind(now).bind(other).execute(conn).await.map(|r| r.rows_affected()))?;
    customers::refresh_search_key(&mut tx, survivor).await?;
    cards::refresh_sort_keys_for_customer(&mut tx, definitions, survivor).await?;
    let mut moved = Map::new();
    moved.insert(
        "report".into(),
        serde_json::to_value(&report).unwrap_or(Value::Null),
    );
    moved.insert("absorbed_name".into(), json!(b.name));
    timeline::append(
        &mut tx,
        NewEvent {
            customer_id: survivor,
            card_id: None,
            kind: kinds::MERGED,
            actor: by,
            definitions_version: &definitions.version,
            data: Value::Object(moved),
        },
    )
    .await?;
    let survivor_version: i64 = exec!(&mut tx, conn => sqlx::query_scalar("SELECT version FROM customers WHERE id = $1")
        .bind(survivor).fetch_one(conn).await)?;
    crate::crm::live::customer_updated(
        &mut tx,
        survivor,
        survivor_version,
        json!({"merged": other}),
    )
    .await?;
    crate::crm::live::customer_updated(
        &mut tx,
        other,
        survivor_version,
        json!({"merged_into": survivor}),
    )
    .await?;
    crate::crm::live::customer_cards_updated(&mut tx, definitions, survivor, None).await?;
    tx.commit().await?;
    Ok(report)
}
