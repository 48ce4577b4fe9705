//! The timeline: append-only facts about a customer ("who did what, when").
//!
//! Events are never updated or deleted (a database trigger refuses deletes); ids are
//! UUIDv7 so id order is time order, and paging newest-first is a keyset on the id.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::crm::sql::Sql;
use crate::exec;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, EventId, UserId};

/// Event kinds the pipeline core writes. Later modules add their own (`note`, `call`, …).
pub mod kinds {
    /// A lead arrived (new or returning customer).
    pub const LEAD: &str = "lead";
    /// A card was created in a pipeline.
    pub const CARD_CREATED: &str = "card_created";
    /// A card changed stage.
    pub const STAGE_CHANGED: &str = "stage_changed";
    /// Card fields were edited.
    pub const CARD_UPDATED: &str = "card_updated";
    /// Customer data was edited.
    pub const CUSTOMER_UPDATED: &str = "customer_updated";
    /// Owners changed (assignment, bulk assign, offboarding hand-over).
    pub const OWNERS_CHANGED: &str = "owners_changed";
    /// Tags changed in bulk.
    pub const TAGS_CHANGED: &str = "tags_changed";
    /// An action of a transition was skipped (no phone, no consent, …).
    pub const ACTION_SKIPPED: &str = "action_skipped";
    /// A returning lead re-opened a closed card.
    pub const REAPPLIED: &str = "reapplied";
    /// A file was uploaded to the customer (or to one of its work orders).
    pub const FILE_UPLOADED: &str = "file_uploaded";
    /// A file was deleted.
    pub const FILE_DELETED: &str = "file_deleted";
}

pub struct NewEvent<'a> {
    pub customer_id: CustomerId,
    pub card_id: Option<CardId>,
    pub kind: &'a str,
    pub actor: Option<UserId>,
    pub definitions_version: &'a str,
    pub data: Value,
}

/// Appends one event inside the caller's transaction; returns its id.
pub async fn append(tx: &mut Tx, event: NewEvent<'_>) -> Result<EventId, sqlx::Error> {
    let id = EventId::new();
    append_with_id(tx, id, Timestamp::now(), event).await?;
    Ok(id)
}

pub(crate) async fn append_with_id(
    tx: &mut Tx,
    id: EventId,
    at: Timestamp,
    event: NewEvent<'_>,
) -> Result<(), sqlx::Error> {
    let data = event.data.to_string();
    exec!(tx, conn => sqlx::query(
        "INSERT INTO timeline_events (id, customer_id, card_id, kind, at, actor_id, definitions_version, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(id)
        .bind(event.customer_id)
        .bind(event.card_id)
        .bind(event.kind)
        .bind(at)
        .bind(event.actor)
        .bind(event.definitions_version)
        .bind(&data)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    // Screens showing this customer append it at once.
    let actor_name: Option<String> = match event.actor {
        Some(actor) => {
            exec!(&mut *tx, conn => sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
            .bind(actor).fetch_optional(conn).await)?
        }
        None => None,
    };
    let shown = Event {
        id,
        customer_id: event.customer_id,
        card_id: event.card_id,
        kind: event.kind.to_string(),
        at,
        actor_id: event.actor,
        actor_name,
        definitions_version: event.definitions_version.to_string(),
        data: event.data,
    };
    crate::crm::live::timeline_added(
        tx,
        shown.customer_id,
        serde_json::to_value(&shown).unwrap_or(Value::Null),
    )
    .await
}

/// One event as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    pub id: EventId,
    pub customer_id: CustomerId,
    pub card_id: Option<CardId>,
    pub kind: String,
    pub at: Timestamp,
    pub actor_id: Option<UserId>,
    /// The actor's name at read time (null for the system).
    pub actor_name: Option<String>,
    /// The definitions version the event was recorded under.
    pub definitions_version: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: EventId,
    customer_id: CustomerId,
    card_id: Option<CardId>,
    kind: String,
    at: Timestamp,
    actor_id: Option<UserId>,
    actor_name: Option<String>,
    definitions_version: String,
    data: String,
}

/// A page of events, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<EventId>,
}

/// Events of a customer, newest first, optionally of some kinds only.
pub async fn list(
    db: &Db,
    customer: CustomerId,
    kinds: &[String],
    before: Option<EventId>,
    limit: u32,
) -> Result<EventPage, sqlx::Error> {
    let limit = limit.clamp(1, 200);
    let mut sql = Sql::new(
        "SELECT e.id, e.customer_id, e.card_id, e.kind, e.at, e.actor_id, u.name AS actor_name, e.definitions_version, e.data
         FROM timeline_events e LEFT JOIN users u ON u.id = e.actor_id WHERE e.customer_id = ",
    );
    let p = sql.text_arg(customer.to_string());
    sql.push(&p);
    if !kinds.is_empty() {
        let list = sql.in_list(kinds);
        sql.push(&format!(" AND e.kind IN {list}"));
    }
    if let Some(before) = before {
        let p = sql.text_arg(before.to_string());
        sql.push(&format!(" AND e.id < {p}"));
    }
    sql.push(&format!(" ORDER BY e.id DESC LIMIT {}", limit + 1));
    let mut rows = crate::sql_fetch_all!(db, EventRow, &sql)?;
    let next_before = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(EventPage {
        events: rows
            .into_iter()
            .map(|r| Event {
                id: r.id,
                customer_id: r.customer_id,
                card_id: r.card_id,
                kind: r.kind,
                at: r.at,
                actor_id: r.actor_id,
                actor_name: r.actor_name,
                definitions_version: r.definitions_version,
                data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
            })
            .collect(),
        next_before,
    })
}
