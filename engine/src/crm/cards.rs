//! Cards: a customer's position in one pipeline (one card per customer per pipeline).

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::crm::customers::{CustomerRow, parse_object};
use crate::crm::fields;
use crate::definitions::Definitions;
use crate::definitions::model::Pipeline;
use crate::exec;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::fold;
use crate::types::ids::{CardId, CustomerId, EventId, UserId};

/// A card as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Card {
    pub id: CardId,
    pub customer_id: CustomerId,
    pub pipeline_id: String,
    pub stage_id: String,
    /// Card fields declared in `card_fields`.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// Bumped by every user-visible change; send it back as `expected_version`.
    pub version: i64,
    pub stage_entered_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set when the card was closed (a merge closes the absorbed customer's duplicate).
    pub closed_at: Option<Timestamp>,
    pub closed_reason: Option<String>,
}

pub(crate) const CARD_COLUMNS: &str = "id, customer_id, pipeline_id, stage_id, fields, version, stage_entered_at, created_at, updated_at, closed_at, closed_reason";

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CardRow {
    pub id: CardId,
    pub customer_id: CustomerId,
    pub pipeline_id: String,
    pub stage_id: String,
    pub fields: String,
    pub version: i64,
    pub stage_entered_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub closed_reason: Option<String>,
}

impl CardRow {
    pub fn into_card(self) -> Card {
        Card {
            id: self.id,
            customer_id: self.customer_id,
            pipeline_id: self.pipeline_id,
            stage_id: self.stage_id,
            fields: parse_object(&self.fields),
            version: self.version,
            stage_entered_at: self.stage_entered_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            closed_at: self.closed_at,
            closed_reason: self.closed_reason,
        }
    }
}

pub async fn get(db: &Db, id: CardId) -> Result<Option<Card>, sqlx::Error> {
    let row: Option<CardRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(CardRow::into_card))
}

pub(crate) async fn get_tx(
    tx: &mut crate::storage::Tx,
    id: CardId,
) -> Result<Option<Card>, sqlx::Error> {
    let row: Option<CardRow> = crate::exec!(tx, conn => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = $1")))
            .bind(id)
            .fetch_optional(conn)
            .await
    })?;
    Ok(row.map(CardRow::into_card))
}

pub(crate) async fn get_row(db: &Db, id: CardId) -> Result<Option<CardRow>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await
    })
}

/// The cards of one customer, in pipeline order of the definitions.
pub async fn for_customer(db: &Db, customer: CustomerId) -> Result<Vec<Card>, sqlx::Error> {
    let rows: Vec<CardRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CARD_COLUMNS} FROM cards WHERE customer_id = $1 ORDER BY created_at")))
            .bind(customer)
            .fetch_all(pool)
            .await
    })?;
    Ok(rows.into_iter().map(CardRow::into_card).collect())
}

pub(crate) async fn for_customer_tx(
    tx: &mut Tx,
    customer: CustomerId,
) -> Result<Vec<CardRow>, sqlx::Error> {
    exec!(tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CARD_COLUMNS} FROM cards WHERE customer_id = $1 ORDER BY created_at")))
        .bind(customer)
        .fetch_all(conn)
        .await)
}

/// The value of the pipeline's declared card order for one card, as sortable text.
/// A missing value is the empty string: first in ascending order, last in descending.
pub(crate) fn sort_key(
    definitions: &Definitions,
    pipeline: &Pipeline,
    customer: &CustomerRow,
    card_fields: &Map<String, Value>,
    card_created_at: Timestamp,
    card_updated_at: Timestamp,
    stage_entered_at: Timestamp,
) -> String {
    let field = pipeline.card.order.by.as_str();
    let time = |t: Option<Timestamp>| t.map(|t| t.to_canonical_string()).unwrap_or_default();
    let score = |s: Option<i64>| s.map(fields::sortable_i64).unwrap_or_default();
    match field {
        "name" => fold::fold(&customer.name).chars().take(64).collect(),
        "source" => fold::fold(&customer.source),
        "created_at" => time(Some(card_created_at)),
        "updated_at" => time(Some(card_updated_at)),
        "stage_entered_at" => time(Some(stage_entered_at)),
        "last_contact_at" => time(customer.last_contact_at),
        "emotional_score" => score(customer.emotional_score),
        "logical_score" => score(customer.logical_score),
        _ => {
            if let Some(def) = definitions
                .card_fields
                .iter()
                .find(|d| d.id.as_str() == field)
            {
                return fields::sort_text(def.kind, card_fields.get(field));
            }
            if let Some(def) = definitions
                .customer_fields
                .iter()
                .find(|d| d.id.as_str() == field)
            {
                let values = parse_object(&customer.fields);
                return fields::sort_text(def.kind, values.get(field));
            }
            String::new()
        }
    }
}

/// Recomputes the sort keys of a customer's cards after a change to customer data.
pub(crate) async fn refresh_sort_keys_for_customer(
    tx: &mut Tx,
    definitions: &Definitions,
    customer_id: CustomerId,
) -> Result<(), sqlx::Error> {
    let Some(customer) = crate::crm::customers::get_row_tx(tx, customer_id).await? else {
        return Ok(());
    };
    for card in for_customer_tx(tx, customer_id).await? {
        let Some(pipeline) = definitions.pipeline(&card.pipeline_id) else {
            continue;
        };
        let key = sort_key(
            definitions,
            pipeline,
            &customer,
            &parse_object(&card.fields),
            card.created_at,
            card.updated_at,
            card.stage_entered_at,
        );
        exec!(tx, conn => sqlx::query("UPDATE cards SET sort_key = $1 WHERE id = $2 AND sort_key <> $1")
            .bind(&key).bind(card.id).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Inserts a card and its first stage-history row.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert(
    tx: &mut Tx,
    definitions: &Definitions,
    pipeline: &Pipeline,
    customer: &CustomerRow,
    stage: &str,
    by: Option<UserId>,
    event: EventId,
    now: Timestamp,
) -> Result<CardId, sqlx::Error> {
    let id = CardId::new();
    let fields = Map::new();
    let key = sort_key(definitions, pipeline, customer, &fields, now, now, now);
    exec!(tx, conn => sqlx::query(
        "INSERT INTO cards (id, customer_id, pipeline_id, stage_id, fields, sort_key, version, stage_entered_at, created_at, updated_at, definitions_version)
         VALUES ($1, $2, $3, $4, '{}', $5, 1, $6, $6, $6, $7)")
        .bind(id).bind(customer.id).bind(pipeline.id.as_str()).bind(stage).bind(&key).bind(now).bind(&definitions.version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    open_stage(tx, id, pipeline.id.as_str(), stage, by, event, now).await?;
    Ok(id)
}

/// Closes the card's open stage-history row and opens one for `stage`.
pub(crate) async fn open_stage(
    tx: &mut Tx,
    card: CardId,
    pipeline: &str,
    stage: &str,
    by: Option<UserId>,
    event: EventId,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    exec!(tx, conn => sqlx::query("UPDATE card_stage_history SET left_at = $1 WHERE card_id = $2 AND left_at IS NULL")
        .bind(now).bind(card).execute(conn).await.map(|r| r.rows_affected()))?;
    exec!(tx, conn => sqlx::query(
        "INSERT INTO card_stage_history (id, card_id, pipeline_id, stage_id, entered_at, left_at, entered_by, event_id)
         VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)")
        .bind(uuid::Uuid::now_v7().to_string()).bind(card).bind(pipeline).bind(stage).bind(now).bind(by).bind(event)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The rule-facing view of a card (`ctx.card`): its fields (money in major units), stage,
/// and computed values.
pub(crate) fn rule_view(
    definitions: &Definitions,
    card: &CardRow,
    fields_map: &Map<String, Value>,
    last_contact_at: Option<Timestamp>,
) -> Value {
    let mut view = Map::new();
    for def in &definitions.card_fields {
        let value = fields_map
            .get(def.id.as_str())
            .map_or(Value::Null, |v| fields::rule_value(def.kind, v));
        view.insert(def.id.as_str().to_string(), value);
    }
    view.insert("id".into(), Value::String(card.id.to_string()));
    view.insert("pipeline".into(), Value::String(card.pipeline_id.clone()));
    view.insert("stage".into(), Value::String(card.stage_id.clone()));
    let days =
        last_contact_at.map(|t| (Timestamp::now().as_datetime() - t.as_datetime()).num_days());
    view.insert(
        "days_since_contact".into(),
        days.map_or(Value::Null, Value::from),
    );
    view.insert(
        "days_in_stage".into(),
        Value::from(
            (Timestamp::now().as_datetime() - card.stage_entered_at.as_datetime()).num_days(),
        ),
    );
    Value::Object(view)
}
