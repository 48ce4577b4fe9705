//! `notify`: in-app notifications. Renders the message template in each recipient's
//! language and stores one notification per active recipient, all in one transaction.
//! A re-run stores nothing twice: (user, effect key) is unique.

use akis_engine::definitions::LiveDefinitions;
use akis_engine::jobs::{Handler, JobContext, JobError, NotifyJob};
use akis_engine::notifications::{self, NewNotification};
use akis_engine::storage::Db;
use akis_engine::types::ids::UserId;

/// The `notify` handler.
#[derive(Clone)]
pub struct NotifyHandler {
    pub db: Db,
    /// The running set: a reload reaches queued notifications too.
    pub definitions: LiveDefinitions,
}

#[derive(sqlx::FromRow)]
struct Recipient {
    id: UserId,
    locale: String,
}

impl Handler for NotifyHandler {
    type Job = NotifyJob;

    async fn run(&self, _ctx: JobContext, job: NotifyJob) -> Result<(), JobError> {
        let transient = |e: sqlx::Error| JobError::transient(format!("database: {e}"));
        let ids: Vec<String> = job.user_ids.iter().map(|u| u.to_string()).collect();
        let mut recipients: Vec<Recipient> = Vec::new();
        for id in &ids {
            let found: Option<Recipient> = akis_engine::read!(&self.db, pool => {
                sqlx::query_as("SELECT id, locale FROM users WHERE id = $1 AND active")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
            })
            .map_err(transient)?;
            recipients.extend(found);
        }
        let values = minijinja::Value::from(minijinja::value::Serde(&job.values));
        let definitions = self.definitions.current();
        let mut rendered = Vec::with_capacity(recipients.len());
        for r in &recipients {
            let lang = if r.locale == "en" { "en" } else { "tr" };
            let body = definitions
                .render_message(&job.template, lang, values.clone())
                .map_err(|e| {
                    JobError::permanent(format!("message template `{}`: {e}", job.template))
                })?;
            rendered.push((r.id, body));
        }
        let data = serde_json::Value::Object(job.values.clone());
        let mut tx = self.db.begin().await.map_err(transient)?;
        for (user, body) in &rendered {
            notifications::insert(
                &mut tx,
                NewNotification {
                    user_id: *user,
                    kind: &job.template,
                    body: body.trim(),
                    customer_id: job.customer_id,
                    data: &data,
                    effect_key: Some(job.effect_key.as_str()),
                },
            )
            .await
            .map_err(transient)?;
        }
        tx.commit().await.map_err(transient)?;
        Ok(())
    }
}
