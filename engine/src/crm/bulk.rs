//! Bulk operations: many cards or customers in one request, a result per item. Each item
//! is its own transaction, so one refusal never undoes the others.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::crm::customers;
use crate::crm::timeline::{self, NewEvent, kinds};
use crate::crm::transition::{self, MoveCommand};
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::policy::{Actor, Module, Permission};
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

/// Most items one bulk request may carry.
pub const MAX_ITEMS: usize = 500;

/// The result for one item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResult {
    pub id: String,
    /// `done` or `refused`.
    pub status: &'static str,
    /// The refusal's code (`stale_version`, `guard_refused`, `not_found`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why, in the user's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The card's or customer's new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

impl ItemResult {
    fn done(id: impl ToString, version: Option<i64>) -> Self {
        Self {
            id: id.to_string(),
            status: "done",
            code: None,
            reason: None,
            version,
        }
    }

    fn refused(id: impl ToString, e: &ApiError) -> Self {
        let (code, reason) = match e {
            ApiError::Client {
                code,
                message,
                fields,
                ..
            } => {
                let mut reason = message.clone();
                if !fields.is_empty() {
                    let list: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    reason = format!("{reason} ({})", list.join("; "));
                }
                ((*code).to_string(), reason)
            }
            ApiError::Definitions { message, .. } => {
                ("invalid_definitions".to_string(), message.clone())
            }
            ApiError::Internal(_) => (
                "internal".to_string(),
                "something went wrong with this item".to_string(),
            ),
        };
        if let ApiError::Internal(err) = e {
            tracing::error!(error = %err, "bulk item failed");
        }
        Self {
            id: id.to_string(),
            status: "refused",
            code: Some(code),
            reason: Some(reason),
            version: None,
        }
    }
}

fn check_size(n: usize) -> Result<(), ApiError> {
    if n == 0 || n > MAX_ITEMS {
        return Err(ApiError::unprocessable(
            "invalid_bulk",
            format!("send 1 to {MAX_ITEMS} items"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkMoveItem {
    pub card_id: CardId,
    /// When given, the item is refused if the card changed since (409 semantics).
    pub expected_version: Option<i64>,
}

/// Moves each card to `to`, with the same field values.
pub async fn bulk_move(
    db: &Db,
    definitions: &Definitions,
    actor: &Actor,
    items: &[BulkMoveItem],
    to: &str,
    fields: &Map<String, Value>,
) -> Result<Vec<ItemResult>, ApiError> {
    actor.require(definitions, Module::Bulk, Permission::Bulk)?;
    check_size(items.len())?;
    // The moves' events share a batch: each client gets one `cards.moved`, not one event
    // per card.
    let (batch, out) = crate::realtime::context::batch(async {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let result = async {
                let Some(loaded) = transition::load(db, item.card_id).await? else {
                    return Err(ApiError::not_found("card"));
                };
                actor.require_access(
                    definitions,
                    Module::Pipeline,
                    Permission::Edit,
                    &loaded.owners,
                    "card",
                )?;
                let command = MoveCommand {
                    card: item.card_id,
                    to: to.to_string(),
                    expected_version: item.expected_version.unwrap_or(loaded.card.version),
                    fields: fields.clone(),
                    by: Some(actor.user_id),
                    locale: actor.locale.clone(),
                };
                transition::move_loaded(db, definitions, command, loaded).await
            }
            .await;
            out.push(match result {
                Ok(moved) => ItemResult::done(item.card_id, Some(moved.card.version)),
                Err(e) => ItemResult::refused(item.card_id, &e),
            });
        }
        out
    })
    .await;
    if let Err(e) = crate::realtime::hub::end_batch(db, &batch).await {
        tracing::warn!(error = %e, "cannot mark the end of a bulk move; clients get it after a short pause");
    }
    Ok(out)
}

/// Owner changes for [`bulk_assign`].
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerChange {
    /// Owners to add.
    #[serde(default)]
    pub add: Vec<UserId>,
    /// Owners to remove.
    #[serde(default)]
    pub remove: Vec<UserId>,
    /// Replace all owners with `add`.
    #[serde(default)]
    pub replace: bool,
}

/// Changes the owners of customers (permission-gated; each user must be active).
pub async fn bulk_assign(
    db: &Db,
    definitions: &Definitions,
    actor: &Actor,
    customers: &[CustomerId],
    change: &OwnerChange,
) -> Result<Vec<ItemResult>, ApiError> {
    actor.require(definitions, Module::Bulk, Permission::Bulk)?;
    check_size(customers.len())?;
    for user in &change.add {
        let active: Option<bool> = crate::read!(db, pool => {
            sqlx::query_scalar("SELECT active FROM users WHERE id = $1").bind(user).fetch_optional(pool).await
        })?;
        if active != Some(true) {
            return Err(ApiError::unprocessable(
                "unknown_user",
                "every new owner must be an active user",
            )
            .with_field("add", format!("{user} is not an active user")));
        }
    }
    let mut out = Vec::with_capacity(customers.len());
    for id in customers {
        let result = set_owners(db, definitions, Some(actor), *id, change).await;
        out.push(match result {
            Ok(version) => ItemResult::done(id, Some(version)),
            Err(e) => ItemResult::refused(id, &e),
        });
    }
    Ok(out)
}

/// Applies an owner change to one customer; records it on the timeline. Returns the new
/// version.
pub async fn set_owners(
    db: &Db,
    definitions: &Definitions,
    actor: Option<&Actor>,
    id: CustomerId,
    change: &OwnerChange,
) -> Result<i64, ApiError> {
    let owners = customers::owner_ids(db, id).await?;
    let exists: Option<i64> = crate::read!(db, pool => {
        sqlx::query_scalar("SELECT version FROM customers WHERE id = $1").bind(id).fetch_optional(pool).await
    })?;
    if exists.is_none() {
        return Err(ApiError::not_found("customer"));
    }
    if let Some(actor) = actor {
        actor.require_access(
            definitions,
            Module::Customers,
            Permission::Edit,
            &owners,
            "customer",
        )?;
    }
    let mut next: Vec<UserId> = if change.replace {
        Vec::new()
    } else {
        owners.clone()
    };
    next.retain(|u| !change.remove.contains(u));
    for u in &change.add {
        if !next.contains(u) {
            next.push(*u);
        }
    }
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    for gone in owners.iter().filter(|u| !next.contains(u)) {
        exec!(&mut tx, conn => sqlx::query("DELETE FROM customer_owners WHERE customer_id = $1 AND user_id = $2")
            .bind(id).bind(gone).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    for new in next.iter().filter(|u| !owners.contains(u)) {
        exec!(&mut tx, conn => sqlx::query("INSERT INTO customer_owners (customer_id, user_id, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(id).bind(new).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    let version: i64 = exec!(&mut tx, conn => sqlx::query_scalar(
        "UPDATE customers SET version = version + 1, updated_at = $1 WHERE id = $2 RETURNING version")
        .bind(now).bind(id).fetch_one(conn).await)?;
    timeline::append(
        &mut tx,
        NewEvent {
            customer_id: id,
            card_id: None,
            kind: kinds::OWNERS_CHANGED,
            actor: actor.map(|a| a.user_id),
            definitions_version: &definitions.version,
            data: json!({"from": owners, "to": next}),
        },
    )
    .await?;
    crate::crm::live::customer_updated(&mut tx, id, version, json!({"owners": next})).await?;
    crate::crm::live::customer_cards_updated(&mut tx, definitions, id, Some(owners.clone()))
        .await?;
    tx.commit().await?;
    Ok(version)
}

/// Tag changes for [`bulk_tag`].
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Adds and removes tags on customers.
pub async fn bulk_tag(
    db: &Db,
    definitions: &Definitions,
    actor: &Actor,
    customers: &[CustomerId],
    change: &TagChange,
) -> Result<Vec<ItemResult>, ApiError> {
    actor.require(definitions, Module::Bulk, Permission::Bulk)?;
    check_size(customers.len())?;
    let mut add = Vec::new();
    for tag in &change.add {
        add.push(customers::normalize_tag(tag).map_err(|e| {
            ApiError::unprocessable("invalid_tag", e).with_field("add", "invalid tag")
        })?);
    }
    if add.is_empty() && change.remove.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_bulk",
            "add or remove at least one tag",
        ));
    }
    let mut out = Vec::with_capacity(customers.len());
    for id in customers {
        let result = async {
            let owners = customers::owner_ids(db, *id).await?;
            let version: Option<i64> = crate::read!(db, pool => {
                sqlx::query_scalar("SELECT version FROM customers WHERE id = $1").bind(id).fetch_optional(pool).await
            })?;
            if version.is_none() {
                return Err(ApiError::not_found("customer"));
            }
            actor.require_access(definitions, Module::Customers, Permission::Edit, &owners, "customer")?;
            let now = Timestamp::now();
            let mut tx = db.begin().await?;
            for tag in &add {
                exec!(&mut tx, conn => sqlx::query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id).bind(tag).execute(conn).await.map(|r| r.rows_affected()))?;
            }
            for tag in &change.remove {
                exec!(&mut tx, conn => sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1 AND tag = $2")
                    .bind(id).bind(tag.trim()).execute(conn).await.map(|r| r.rows_affected()))?;
            }
            let version: i64 = exec!(&mut tx, conn => sqlx::query_scalar(
                "UPDATE customers SET version = version + 1, updated_at = $1 WHERE id = $2 RETURNING version")
                .bind(now).bind(id).fetch_one(conn).await)?;
            timeline::append(&mut tx, NewEvent {
                customer_id: *id,
                card_id: None,
                kind: kinds::TAGS_CHANGED,
                actor: Some(actor.user_id),
                definitions_version: &definitions.version,
                data: json!({"added": add, "removed": change.remove}),
            })
            .await?;
            crate::crm::live::customer_updated(&mut tx, *id, version, json!({"tags_added": add, "tags_removed": change.remove})).await?;
            crate::crm::live::customer_cards_updated(&mut tx, definitions, *id, None).await?;
            tx.commit().await?;
            Ok::<_, ApiError>(version)
        }
        .await;
        out.push(match result {
            Ok(version) => ItemResult::done(id, Some(version)),
            Err(e) => ItemResult::refused(id, &e),
        });
    }
    Ok(out)
}
