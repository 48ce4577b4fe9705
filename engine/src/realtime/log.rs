//! The event log: every change that someone's screen should show writes one event here,
//! in the SAME transaction as the change, so an event exists exactly when its change
//! committed. Every node reads the log in position order and pushes what each of its
//! clients may see (see [`super::hub`]); a reconnecting client is replayed what it missed.
//!
//! Positions are global and commit-ordered: on SQLite the single writer assigns them at
//! insert; on PostgreSQL [`sequence`] assigns them after commit (see the migration).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context;
use crate::definitions::Definitions;
use crate::exec;
use crate::policy::{Actor, Module, Permission};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CustomerId, UserId};

/// Event types (the Socket.IO event names), documented in `docs/realtime.md`.
pub mod kinds {
    pub const CARD_MOVED: &str = "card.moved";
    pub const CARDS_MOVED: &str = "cards.moved";
    pub const CARD_ADDED: &str = "card.added";
    pub const CARD_UPDATED: &str = "card.updated";
    pub const CARD_REMOVED: &str = "card.removed";
    pub const CUSTOMER_UPDATED: &str = "customer.updated";
    pub const TIMELINE_ADDED: &str = "timeline.added";
    pub const NOTIFICATION: &str = "notification";
    pub const REMINDER_DUE: &str = "reminder.due";
    pub const WORK_ORDER_UPDATED: &str = "work_order.updated";
    pub const DEFINITIONS_CHANGED: &str = "definitions.changed";
    pub const JOB_FAILED: &str = "job.failed";
    pub const PRESENCE: &str = "presence";
    /// Internal: a user's access changed (sessions ended, role changed, deactivated);
    /// every node re-checks that user's open sockets. Never sent to clients.
    pub const ACCESS_CHANGED: &str = "access.changed";
    /// Internal: the last event of a bulk action was written.
    pub const BATCH_END: &str = "batch.end";
}

/// Who may receive an event. Decided with the same policy as the API's queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Users who may view the pipeline module and this customer (by its owners). With
    /// `previous_owners`, a user who could see it before but not now gets `card.removed`
    /// and one who can see it now but not before gets `card.added`.
    Card {
        customer_id: CustomerId,
        pipeline_id: String,
        owners: Vec<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_owners: Option<Vec<UserId>>,
    },
    /// Users who may view this customer and have it on screen (subscribed).
    Customer {
        customer_id: CustomerId,
        owners: Vec<UserId>,
    },
    /// One user.
    User(UserId),
    /// Holders of a module permission (`job.failed` → admins).
    Permission { module: String, permission: String },
    /// Every connected user.
    Everyone,
    /// Nobody: a message to the nodes themselves.
    Internal,
}

/// What a user may see of an event with this audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    /// Not at all.
    None,
    /// As it is.
    Full,
    /// A card that entered the user's view (send `card.added`).
    Entered,
    /// A card that left the user's view (send `card.removed`).
    Left,
}

impl Audience {
    /// The policy's verdict for `actor`. `subscribed` says whether the actor has the
    /// event's customer on screen (only customer-scoped events care).
    pub fn sight(&self, actor: &Actor, defs: &Definitions, subscribed: bool) -> Sight {
        match self {
            Audience::Card {
                owners,
                previous_owners,
                ..
            } => {
                let now = actor.may_access(defs, Module::Pipeline, Permission::View, owners);
                let before = previous_owners.as_ref().map_or(now, |p| {
                    actor.may_access(defs, Module::Pipeline, Permission::View, p)
                });
                match (before, now) {
                    (_, true) if !before => Sight::Entered,
                    (true, true) => Sight::Full,
                    (true, false) => Sight::Left,
                    _ => Sight::None,
                }
            }
            Audience::Customer { owners, .. } => {
                if subscribed && actor.may_access(defs, Module::Customers, Permission::View, owners)
                {
                    Sight::Full
                } else {
                    Sight::None
                }
            }
            Audience::User(user) => {
                if *user == actor.user_id {
                    Sight::Full
                } else {
                    Sight::None
                }
            }
            Audience::Permission { module, permission } => {
                let allowed = crate::policy::MODULES
                    .into_iter()
                    .find(|m| crate::policy::module_name(*m) == module)
                    .zip(
                        crate::policy::PERMISSIONS
                            .into_iter()
                            .find(|p| crate::policy::permission_name(*p) == permission),
                    )
                    .is_some_and(|(m, p)| actor.can(defs, m, p));
                if allowed { Sight::Full } else { Sight::None }
            }
            Audience::Everyone => Sight::Full,
            Audience::Internal => Sight::None,
        }
    }

    /// The customer an event is about, for subscriptions.
    pub fn customer(&self) -> Option<CustomerId> {
        match self {
            Audience::Card { customer_id, .. } | Audience::Customer { customer_id, .. } => {
                Some(*customer_id)
            }
            _ => None,
        }
    }

    pub fn admins() -> Self {
        Audience::Permission {
            module: "admin".into(),
            permission: "view".into(),
        }
    }
}

/// An event to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: &'static str,
    pub audience: Audience,
    pub data: Value,
    /// Who caused it; when None, the current request's actor (if any).
    pub by: Option<UserId>,
    /// Events of one bulk action share a batch id and are pushed as one.
    pub batch: Option<String>,
}

impl NewEvent {
    pub fn new(kind: &'static str, audience: Audience, data: Value) -> Self {
        Self {
            kind,
            audience,
            data,
            by: None,
            batch: None,
        }
    }

    #[must_use]
    pub fn by(mut self, by: Option<UserId>) -> Self {
        self.by = by;
        self
    }
}

/// Writes `event` in `tx`. The request context supplies the operation id and, when the
/// actor is the request's user, their name.
pub async fn record(tx: &mut Tx, event: NewEvent) -> Result<(), sqlx::Error> {
    let ctx = context::current();
    let by = event.by.or(ctx.actor.as_ref().map(|(id, _)| *id));
    let name = match (&ctx.actor, by) {
        (Some((id, name)), Some(by)) if *id == by => Some(name.clone()),
        (_, Some(by)) => {
            exec!(&mut *tx, conn => sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = $1")
                .bind(by).fetch_optional(conn).await)?
        }
        _ => None,
    };
    let batch = event.batch.or_else(context::current_batch);
    let audience =
        serde_json::to_string(&event.audience).map_err(|e| sqlx::Error::Encode(e.into()))?;
    exec!(tx, conn => sqlx::query(
        "INSERT INTO events (at, kind, audience, actor_id, actor_name, op, batch, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(Timestamp::now()).bind(event.kind).bind(audience).bind(by).bind(name)
        .bind(ctx.op).bind(batch).bind(event.data.to_string())
        .execute(conn).await.map(|_| ()))
}

/// Tells every node that `user`'s access changed (or, with `session`, that one session
/// ended): their open sockets are checked again at once.
pub async fn access_changed(
    tx: &mut Tx,
    user: UserId,
    session: Option<&str>,
) -> Result<(), sqlx::Error> {
    record(
        tx,
        NewEvent::new(
            kinds::ACCESS_CHANGED,
            Audience::Internal,
            serde_json::json!({"user_id": user, "session_id": session}),
        )
        .by(Some(user)),
    )
    .await
}

/// One event as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub position: i64,
    pub at: Timestamp,
    pub kind: String,
    pub audience: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub op: Option<String>,
    pub batch: Option<String>,
    pub data: String,
}

impl StoredEvent {
    pub fn audience(&self) -> Audience {
        serde_json::from_str(&self.audience).unwrap_or(Audience::Internal)
    }
}

/// Events after `position`, in order, at most `limit`.
pub async fn after(db: &Db, position: i64, limit: i64) -> Result<Vec<StoredEvent>, sqlx::Error> {
    const COLUMNS: &str =
        "SELECT position, at, kind, audience, actor_id, actor_name, op, batch, data FROM events";
    match db {
        // Through the writer: an event whose insert woke us is visible once the writer is
        // free again, i.e. once its transaction ended.
        Db::Sqlite(s) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE position > $1 ORDER BY position LIMIT $2"
            )))
            .bind(position)
            .bind(limit)
            .fetch_all(&s.writer)
            .await
        }
        Db::Postgres(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE position > $1 ORDER BY position LIMIT $2"
            )))
            .bind(position)
            .bind(limit)
            .fetch_all(p)
            .await
        }
    }
}

/// The newest position (0 for an empty log).
pub async fn latest(db: &Db) -> Result<i64, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(position) FROM events")
            .fetch_one(pool)
            .await
            .map(|p| p.unwrap_or(0))
    })
}

/// The oldest position still kept (None for an empty log).
pub async fn oldest(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MIN(position) FROM events")
            .fetch_one(pool)
            .await
    })
}

/// PostgreSQL only: gives every committed event without a position the next positions,
/// oldest first, and notifies `akis_events`. One node at a time (an advisory lock; a
/// node that does not get it leaves the work to the one that has it). Returns how many
/// events got a position.
pub async fn sequence(db: &Db) -> Result<u64, sqlx::Error> {
    let Db::Postgres(pool) = db else {
        return Ok(0);
    };
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(727200)")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let done = sqlx::query(
        "WITH base AS (SELECT COALESCE(MAX(position), 0) AS p FROM events),
              pending AS (
                  SELECT id, row_number() OVER (ORDER BY id) AS n
                  FROM events WHERE position IS NULL ORDER BY id LIMIT 5000)
         UPDATE events e SET position = base.p + pending.n
         FROM pending, base WHERE e.id = pending.id",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done > 0 {
        sqlx::query("SELECT pg_notify('akis_events', '')")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// Deletes events older than `keep` (a client that resumes from before gets a `resync`).
pub async fn trim(db: &Db, keep: std::time::Duration) -> Result<u64, sqlx::Error> {
    let cutoff = Timestamp::from_datetime(
        Timestamp::now().as_datetime()
            - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(3)),
    );
    crate::transaction!(db, tx => {
        sqlx::query("DELETE FROM events WHERE at < $1 AND position IS NOT NULL")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected())
    })
}
