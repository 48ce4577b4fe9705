//! The audit log: who did what, when, from where — for admin and security actions
//! (logins and failed logins, user and role changes, offboarding, token changes, definition
//! reloads, exports). Entries are written in the same transaction as the action they
//! describe and are never edited or deleted.

pub mod http;

use serde::Serialize;

use crate::exec;
use crate::policy::Actor;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;

crate::id_type!(
    /// One audit log entry.
    AuditId
);

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An action to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub actor: Option<&'a Actor>,
    /// Used when there is no actor (a failed login names the email tried).
    pub actor_label: Option<&'a str>,
    pub target_type: Option<&'a str>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub client: &'a ClientInfo,
}

impl<'a> AuditEntry<'a> {
    pub fn new(action: &'a str, actor: Option<&'a Actor>, client: &'a ClientInfo) -> Self {
        Self {
            action,
            actor,
            actor_label: None,
            target_type: None,
            target_id: None,
            details: serde_json::Value::Object(Default::default()),
            client,
        }
    }

    pub fn target(mut self, kind: &'a str, id: impl ToString) -> Self {
        self.target_type = Some(kind);
        self.target_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn label(mut self, label: &'a str) -> Self {
        self.actor_label = Some(label);
        self
    }
}

/// Appends an entry inside `tx`.
pub async fn record(tx: &mut Tx, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    let id = AuditId::new();
    let actor_id = entry.actor.map(|a| a.user_id.to_string());
    let label = entry
        .actor
        .map(|a| a.email.clone())
        .or_else(|| entry.actor_label.map(str::to_string));
    let details = entry.details.to_string();
    let now = Timestamp::now();
    exec!(tx, conn => sqlx::query(
        "INSERT INTO audit_log (id, at, actor_id, actor_label, action, target_type, target_id, details, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(now)
    .bind(&actor_id)
    .bind(&label)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(&entry.target_id)
    .bind(&details)
    .bind(&entry.client.ip)
    .bind(&entry.client.user_agent)
    .execute(conn)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Appends an entry in its own transaction.
pub async fn record_now(db: &Db, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    record(&mut tx, entry).await?;
    tx.commit().await
}

/// One entry as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: AuditId,
    pub at: Timestamp,
    pub actor_id: Option<String>,
    pub actor_label: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    #[sqlx(try_from = "String")]
    #[schema(value_type = Object)]
    pub details: JsonText,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A JSON object stored as text (the same on both backends).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct JsonText(pub serde_json::Value);

impl TryFrom<String> for JsonText {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&s).map(JsonText)
    }
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub target_id: Option<String>,
    /// Entries strictly older than this id (UUIDv7 ids sort by time): the next page.
    pub before: Option<AuditId>,
    pub limit: i64,
}

/// Newest first.
pub async fn list(db: &Db, filter: &AuditFilter) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let sql = "SELECT id, at, actor_id, actor_label, action, target_type, target_id, details, ip, user_agent
         FROM audit_log
         WHERE ($1 IS NULL OR actor_id = $1)
           AND ($2 IS NULL OR action = $2)
           AND ($3 IS NULL OR target_id = $3)
           AND ($4 IS NULL OR id < $4)
         ORDER BY id DESC
         LIMIT $5";
    crate::read!(db, pool => {
        sqlx::query_as::<_, AuditRecord>(sql)
            .bind(&filter.actor_id)
            .bind(&filter.action)
            .bind(&filter.target_id)
            .bind(filter.before)
            .bind(filter.limit.clamp(1, 500))
            .fetch_all(pool)
            .await
    })
}
