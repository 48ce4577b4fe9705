//! The realtime events of the CRM's changes (`docs/realtime.md`), each written in the
//! transaction of the change it describes, with the customer's owners as its audience so
//! every node can tell who may see it.

use serde_json::{Value, json};

use crate::crm::board;
use crate::definitions::Definitions;
use crate::exec;
use crate::realtime::{self, Audience, NewEvent, kinds};
use crate::storage::Tx;
use crate::types::ids::{CardId, CustomerId, UserId};

/// The customer's owners as the transaction sees them.
pub(crate) async fn owners(tx: &mut Tx, customer: CustomerId) -> Result<Vec<UserId>, sqlx::Error> {
    exec!(&mut *tx, conn => sqlx::query_scalar("SELECT user_id FROM customer_owners WHERE customer_id = $1 ORDER BY user_id")
        .bind(customer).fetch_all(conn).await)
}

/// `card.moved`: the card as the board now shows it, from and to.
pub(crate) async fn card_moved(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
    from: &str,
    to: &str,
) -> Result<(), sqlx::Error> {
    card_event(tx, defs, card, kinds::CARD_MOVED, None, |data| {
        data["from"] = json!(from);
        data["to"] = json!(to);
    })
    .await
}

/// `card.added`: a new card.
pub(crate) async fn card_added(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
) -> Result<(), sqlx::Error> {
    card_event(tx, defs, card, kinds::CARD_ADDED, None, |_| {}).await
}

/// `card.updated`: what the card shows changed. With `previous_owners`, users who lose
/// sight of it get `card.removed` and users who gain it get `card.added`.
pub(crate) async fn card_updated(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
    previous_owners: Option<Vec<UserId>>,
) -> Result<(), sqlx::Error> {
    card_event(tx, defs, card, kinds::CARD_UPDATED, previous_owners, |_| {}).await
}

/// `card.updated` for every open card of a customer (their data, owners, tags or
/// contact times changed).
pub(crate) async fn customer_cards_updated(
    tx: &mut Tx,
    defs: &Definitions,
    customer: CustomerId,
    previous_owners: Option<Vec<UserId>>,
) -> Result<(), sqlx::Error> {
    let cards: Vec<CardId> = exec!(&mut *tx, conn => sqlx::query_scalar(
        "SELECT id FROM cards WHERE customer_id = $1 AND closed_at IS NULL ORDER BY id")
        .bind(customer).fetch_all(conn).await)?;
    for card in cards {
        card_updated(tx, defs, card, previous_owners.clone()).await?;
    }
    Ok(())
}

async fn card_event(
    tx: &mut Tx,
    defs: &Definitions,
    card: CardId,
    kind: &'static str,
    previous_owners: Option<Vec<UserId>>,
    extra: impl FnOnce(&mut Value),
) -> Result<(), sqlx::Error> {
    let Some(shown) = board::card_in(tx, defs, card).await? else {
        return Ok(());
    };
    let pipeline: String = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT pipeline_id FROM cards WHERE id = $1")
        .bind(card).fetch_one(conn).await)?;
    let owners = owners(tx, shown.customer_id).await?;
    let mut data = json!({"card": shown, "pipeline_id": pipeline});
    extra(&mut data);
    realtime::record(
        tx,
        NewEvent::new(
            kind,
            Audience::Card {
                customer_id: shown.customer_id,
                pipeline_id: pipeline,
                owners,
                previous_owners,
            },
            data,
        ),
    )
    .await
}

/// `card.removed`: the card is gone from the board (closed by a merge, …).
pub(crate) async fn card_removed(
    tx: &mut Tx,
    card: CardId,
    pipeline: &str,
    customer: CustomerId,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let owners = owners(tx, customer).await?;
    realtime::record(
        tx,
        NewEvent::new(
            kinds::CARD_REMOVED,
            Audience::Card {
                customer_id: customer,
                pipeline_id: pipeline.to_string(),
                owners,
                previous_owners: None,
            },
            json!({"card_id": card, "pipeline_id": pipeline, "reason": reason}),
        ),
    )
    .await
}

/// `customer.updated`: the fields that changed, with the customer's new version.
pub(crate) async fn customer_updated(
    tx: &mut Tx,
    customer: CustomerId,
    version: i64,
    changes: Value,
) -> Result<(), sqlx::Error> {
    let owners = owners(tx, customer).await?;
    realtime::record(
        tx,
        NewEvent::new(
            kinds::CUSTOMER_UPDATED,
            Audience::Customer {
                customer_id: customer,
                owners,
            },
            json!({"customer_id": customer, "version": version, "changes": changes}),
        ),
    )
    .await
}

/// `timeline.added`: one new timeline entry, as the timeline API shows it.
pub(crate) async fn timeline_added(
    tx: &mut Tx,
    customer: CustomerId,
    event: Value,
) -> Result<(), sqlx::Error> {
    let owners = owners(tx, customer).await?;
    realtime::record(
        tx,
        NewEvent::new(
            kinds::TIMELINE_ADDED,
            Audience::Customer {
                customer_id: customer,
                owners,
            },
            json!({"customer_id": customer, "event": event}),
        ),
    )
    .await
}
