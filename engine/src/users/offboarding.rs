//! Offboarding ("Tasfiye et"): deactivate a user, end their sessions, revoke their tokens
//! and hand their records to another user (or round-robin over a team) — in ONE
//! transaction, with an audit record. A preview shows first what will happen.
//!
//! Each record kind that has an owner registers here as it arrives (customers and cards
//! with the pipeline, reminders, work-order steps): [`count_records`] says how many would
//! move, [`hand_over`] moves them inside the offboarding transaction.

use serde::{Deserialize, Serialize};

use super::{User, store};
use crate::audit::{self, AuditEntry, ClientInfo};
use crate::auth::{sessions, tokens};
use crate::http::ApiError;
use crate::policy::{Actor, TeamId};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CustomerId, UserId};

/// Who receives the records.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HandoverTarget {
    /// One user receives everything.
    User(UserId),
    /// The team's active members (other than the one leaving) share the records in turn.
    Team(TeamId),
}

/// How many records of one kind move.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordCount {
    /// `customers`, `reminders`, `work_order_steps`, …
    pub kind: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OffboardingPreview {
    pub user: User,
    /// Sessions that will end.
    pub sessions: i64,
    /// API tokens that will be revoked.
    pub tokens: i64,
    /// Who receives the records (in turn, when several).
    pub recipients: Vec<User>,
    pub records: Vec<RecordCount>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OffboardingReport {
    pub user: User,
    pub sessions_ended: u64,
    pub tokens_revoked: u64,
    pub recipients: Vec<User>,
    pub records: Vec<RecordCount>,
}

/// The active users who would receive the records, validated.
async fn recipients(
    db: &Db,
    leaving: &User,
    target: HandoverTarget,
) -> Result<Vec<User>, ApiError> {
    match target {
        HandoverTarget::User(id) => {
            if id == leaving.id {
                return Err(ApiError::unprocessable(
                    "invalid_handover",
                    "records cannot be handed to the user who is leaving",
                ));
            }
            let user = store::get(db, id).await?.ok_or_else(|| {
                ApiError::unprocessable("invalid_handover", "the receiving user does not exist")
            })?;
            if !user.active {
                return Err(ApiError::unprocessable(
                    "invalid_handover",
                    "the receiving user is deactivated",
                ));
            }
            Ok(vec![user])
        }
        HandoverTarget::Team(team) => {
            if store::get_team(db, team).await?.is_none() {
                return Err(ApiError::unprocessable(
                    "invalid_handover",
                    "the receiving team does not exist",
                ));
            }
            let filter = store::UserFilter {
                active: Some(true),
                team_id: Some(team),
                role: None,
            };
            let members: Vec<User> = store::list(db, &filter)
                .await?
                .into_iter()
                .filter(|u| u.id != leaving.id)
                .collect();
            if members.is_empty() {
                return Err(ApiError::unprocessable(
                    "invalid_handover",
                    "the receiving team has no other active member",
                ));
            }
            Ok(members)
        }
    }
}

/// Records the user owns, by kind. Kinds with no records are listed with 0 so the preview
/// shows what was checked.
pub async fn count_records(db: &Db, user: UserId) -> Result<Vec<RecordCount>, sqlx::Error> {
    // Record kinds register here as their tables arrive (reminders, work-order steps).
    let (customers, cards, reminders): (i64, i64, i64) = crate::read!(db, pool => {
        let customers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customer_owners WHERE user_id = $1")
            .bind(user).fetch_one(pool).await?;
        let cards: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cards c JOIN customer_owners o ON o.customer_id = c.customer_id WHERE o.user_id = $1")
            .bind(user).fetch_one(pool).await?;
        let reminders: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM reminder_assignees a JOIN reminders r ON r.id = a.reminder_id WHERE a.user_id = $1 AND r.status = 'open'")
            .bind(user).fetch_one(pool).await?;
        Ok::<_, sqlx::Error>((customers, cards, reminders))
    })?;
    let steps = crate::work_orders::open_steps_of(db, user).await?;
    Ok(vec![
        RecordCount {
            kind: "customers".into(),
            count: customers,
        },
        RecordCount {
            kind: "cards".into(),
            count: cards,
        },
        RecordCount {
            kind: "reminders".into(),
            count: reminders,
        },
        RecordCount {
            kind: "work_order_steps".into(),
            count: steps,
        },
    ])
}

/// Moves the user's records to `recipients` (in turn) inside the offboarding transaction;
/// every customer handed over gets a timeline entry.
pub async fn hand_over(
    tx: &mut Tx,
    from: &User,
    recipients: &[User],
    by: &Actor,
    definitions: &crate::definitions::Definitions,
) -> Result<Vec<RecordCount>, ApiError> {
    let definitions_version = definitions.version.as_str();
    use crate::exec;
    let customers: Vec<CustomerId> = exec!(tx, conn => sqlx::query_scalar(
        "SELECT customer_id FROM customer_owners WHERE user_id = $1 ORDER BY customer_id")
        .bind(from.id).fetch_all(conn).await)?;
    let mut cards = 0i64;
    let now = Timestamp::now();
    for (i, customer) in customers.iter().enumerate() {
        let Some(to) = recipients.get(i % recipients.len().max(1)) else {
            break;
        };
        let before = crate::crm::live::owners(tx, *customer).await?;
        exec!(tx, conn => sqlx::query("DELETE FROM customer_owners WHERE customer_id = $1 AND user_id = $2")
            .bind(customer).bind(from.id).execute(conn).await.map(|r| r.rows_affected()))?;
        exec!(tx, conn => sqlx::query(
            "INSERT INTO customer_owners (customer_id, user_id, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(customer).bind(to.id).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
        exec!(tx, conn => sqlx::query("UPDATE customers SET version = version + 1, updated_at = $1 WHERE id = $2")
            .bind(now).bind(customer).execute(conn).await.map(|r| r.rows_affected()))?;
        let n: i64 = exec!(tx, conn => sqlx::query_scalar("SELECT COUNT(*) FROM cards WHERE customer_id = $1")
            .bind(customer).fetch_one(conn).await)?;
        cards += n;
        crate::crm::timeline::append(
            tx,
            crate::crm::timeline::NewEvent {
                customer_id: *customer,
                card_id: None,
                kind: crate::crm::timeline::kinds::OWNERS_CHANGED,
                actor: Some(by.user_id),
                definitions_version,
                data: serde_json::json!({
                    "reason": "offboarding",
                    "from": [from.id],
                    "to": [to.id],
                    "handed_over_by": by.user_id,
                }),
            },
        )
        .await?;
        crate::crm::live::customer_cards_updated(tx, definitions, *customer, Some(before)).await?;
    }
    let reminders = match recipients.first() {
        Some(to) => crate::reminders::hand_over(tx, from.id, to.id).await?,
        None => 0,
    };
    let steps = match recipients.first() {
        Some(to) => crate::work_orders::hand_over(tx, from.id, to.id).await?,
        None => 0,
    };
    Ok(vec![
        RecordCount {
            kind: "customers".into(),
            count: customers.len() as i64,
        },
        RecordCount {
            kind: "cards".into(),
            count: cards,
        },
        RecordCount {
            kind: "reminders".into(),
            count: reminders,
        },
        RecordCount {
            kind: "work_order_steps".into(),
            count: steps,
        },
    ])
}

pub async fn preview(
    db: &Db,
    user_id: UserId,
    target: HandoverTarget,
) -> Result<OffboardingPreview, ApiError> {
    let user = store::get(db, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let recipients = recipients(db, &user, target).await?;
    Ok(OffboardingPreview {
        sessions: sessions::count_for_user(db, user.id).await?,
        tokens: tokens::count_live_for_user(db, user.id).await?,
        records: count_records(db, user.id).await?,
        recipients,
        user,
    })
}

/// Offboards `user_id` in one transaction.
pub async fn offboard(
    db: &Db,
    by: &Actor,
    user_id: UserId,
    target: HandoverTarget,
    client: &ClientInfo,
    definitions: &crate::definitions::Definitions,
) -> Result<OffboardingReport, ApiError> {
    if user_id == by.user_id {
        return Err(ApiError::unprocessable(
            "invalid_offboarding",
            "you cannot offboard yourself",
        ));
    }
    let user = store::get(db, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let recipients = recipients(db, &user, target).await?;
    let mut tx = db.begin().await?;
    store::set_active(&mut tx, user.id, false).await?;
    let sessions_ended = sessions::delete_for_user(&mut tx, user.id, None).await?;
    let tokens_revoked = tokens::revoke_all_for_user(&mut tx, user.id).await?;
    let records = hand_over(&mut tx, &user, &recipients, by, definitions).await?;
    let details = serde_json::json!({
        "email": user.email,
        "sessions_ended": sessions_ended,
        "tokens_revoked": tokens_revoked,
        "recipients": recipients.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
        "records": records.iter().map(|r| serde_json::json!({"kind": r.kind, "count": r.count})).collect::<Vec<_>>(),
    });
    audit::record(
        &mut tx,
        AuditEntry::new("user.offboarded", Some(by), client)
            .target("user", user.id)
            .details(details),
    )
    .await?;
    let user = store::get_in(&mut tx, user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(OffboardingReport {
        user,
        sessions_ended,
        tokens_revoked,
        recipients,
        records,
    })
}
