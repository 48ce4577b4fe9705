//! The transactional outbox: a transition's declared actions become typed job payloads
//! pushed on the same database transaction as the move, so a move and its effects commit
//! or roll back together. Payloads carry everything a handler needs (rendered template
//! parameters, recipients, values), so a later definitions reload cannot change them.

use serde_json::{Map, Value, json};

use crate::crm::customers::Customer;
use crate::crm::fields;
use crate::crm::timeline::{self, NewEvent, kinds};
use crate::definitions::Definitions;
use crate::definitions::model::{Action, Pipeline, Recipient};
use crate::exec;
use crate::jobs::JobsError;
use crate::jobs::effects::EffectKey;
use crate::jobs::kinds::{
    ConversionEventJob, CreateWorkOrderJob, FollowUpJob, NotifyJob, WebhookJob, WhatsappTemplateJob,
};
use crate::storage::Tx;
use crate::types::Timestamp;
use crate::types::ids::{CardId, EventId, UserId};

/// What the actions of one transition see.
pub struct ActionContext<'a> {
    pub definitions: &'a Definitions,
    pub pipeline: &'a Pipeline,
    pub customer: &'a Customer,
    pub card_id: CardId,
    pub card_fields: &'a Map<String, Value>,
    pub from: &'a str,
    pub to: &'a str,
    pub by: Option<UserId>,
    /// The mover's name, for message templates (`{{ actor.name }}`).
    pub actor_name: Option<String>,
    pub event: EventId,
    pub at: Timestamp,
}

/// One job the outbox pushed (or why it did not).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Queued {
    /// The job kind (queue).
    pub kind: String,
    /// Null when the action was skipped.
    pub job_id: Option<String>,
    /// Why it was skipped: `no_recipients`, `no_phone`, `no_whatsapp_consent`, …
    pub skipped: Option<String>,
    /// The job as queued (for dry runs; not part of API answers, it holds personal data).
    #[serde(skip)]
    pub payload: Option<Value>,
}

impl ActionContext<'_> {
    /// Template context: `customer.*` (name, phone, email, custom fields) and `card.*`.
    fn template_values(&self) -> Value {
        let mut customer = Map::new();
        customer.insert("name".into(), json!(self.customer.name));
        customer.insert(
            "phone".into(),
            json!(self.customer.phones.first().map(|p| &p.e164)),
        );
        customer.insert("email".into(), json!(self.customer.emails.first()));
        customer.insert("source".into(), json!(self.customer.source));
        for (k, v) in &self.customer.fields {
            customer
                .entry(k.clone())
                .or_insert_with(|| display_value(v));
        }
        let mut card = Map::new();
        for (k, v) in self.card_fields {
            card.insert(k.clone(), display_value(v));
        }
        card.insert("stage".into(), json!(self.to));
        card.insert("pipeline".into(), json!(self.pipeline.id.as_str()));
        json!({
            "customer": customer,
            "card": card,
            "transition": {"from": self.from, "to": self.to},
            "actor": {"id": self.by, "name": self.actor_name.as_deref().unwrap_or("Akış")},
        })
    }

    fn whatsapp_consent(&self) -> bool {
        self.customer
            .consent
            .whatsapp
            .as_ref()
            .is_some_and(|c| c.granted)
            || self.customer.fields.get("whatsapp_consent") == Some(&Value::Bool(true))
    }

    fn marketing_refused(&self) -> bool {
        self.customer
            .consent
            .marketing
            .as_ref()
            .is_some_and(|c| !c.granted)
    }
}

/// A stored value as people read it: money as its amount (`1250.50`; templates name the
/// currency), everything else as is.
fn display_value(v: &Value) -> Value {
    match fields::stored_money(v) {
        Some(m) => {
            let exp = m.currency.exponent();
            let major = m.minor as f64 / 10f64.powi(exp as i32);
            json!(format!("{major:.prec$}", prec = exp as usize))
        }
        None => v.clone(),
    }
}

async fn recipients(
    tx: &mut Tx,
    ctx: &ActionContext<'_>,
    to: &[Recipient],
) -> Result<Vec<UserId>, sqlx::Error> {
    let mut users: Vec<UserId> = Vec::new();
    for r in to {
        match r {
            Recipient::Owners => users.extend(ctx.customer.owners.iter().map(|o| o.id)),
            Recipient::Actor => users.extend(ctx.by),
            Recipient::Role(role) => {
                let ids: Vec<UserId> = exec!(tx, conn => sqlx::query_scalar("SELECT id FROM users WHERE role = $1 AND active ORDER BY id")
                    .bind(role.as_str()).fetch_all(conn).await)?;
                users.extend(ids);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(*u));
    Ok(users)
}

fn queued<T: serde::Serialize>(id: crate::jobs::JobId, job: &T) -> Result<(String, Value), String> {
    Ok((
        id.to_string(),
        serde_json::to_value(job).unwrap_or(Value::Null),
    ))
}

/// Pushes the jobs of `actions` on `tx`. Skipped actions are recorded on the timeline.
pub async fn enqueue_actions(
    tx: &mut Tx,
    ctx: &ActionContext<'_>,
    actions: &[Action],
) -> Result<Vec<Queued>, JobsError> {
    let mut out = Vec::with_capacity(actions.len());
    let version = ctx.definitions.version.as_str();
    for (index, action) in actions.iter().enumerate() {
        let key = EffectKey::for_action(version, ctx.card_id, ctx.event, index);
        let kind = action.job_kind().to_string();
        let pushed: Result<(String, Value), String> = match action {
            Action::Notify(n) => {
                let users = recipients(tx, ctx, &n.to).await?;
                if users.is_empty() {
                    Err("no_recipients".into())
                } else {
                    let job = NotifyJob {
                        effect_key: key,
                        user_ids: users,
                        customer_id: Some(ctx.customer.id),
                        template: n.message.as_str().to_string(),
                        values: ctx
                            .template_values()
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    };
                    queued(
                        exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?,
                        &job,
                    )
                }
            }
            Action::FollowUp(f) => {
                let mut assignees = recipients(tx, ctx, &f.assignee).await?;
                if f.assignee.is_empty() {
                    assignees = ctx.customer.owners.iter().map(|o| o.id).collect();
                    if assignees.is_empty() {
                        assignees.extend(ctx.by);
                    }
                }
                let job = FollowUpJob {
                    effect_key: key,
                    card_id: ctx.card_id,
                    customer_id: ctx.customer.id,
                    title_tr: f.title.tr.clone(),
                    title_en: f.title.en.clone(),
                    due: f.due.text.clone(),
                    base: ctx.at,
                    card_fields: ctx.card_fields.clone(),
                    assignees,
                };
                queued(
                    exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?,
                    &job,
                )
            }
            Action::WhatsappTemplate(w) => {
                let phone = ctx.customer.phones.first().map(|p| p.e164.clone());
                let template = ctx
                    .definitions
                    .whatsapp_templates
                    .iter()
                    .find(|t| t.name.as_str() == w.template.as_str());
                match (phone, template) {
                    (None, _) => Err("no_phone".into()),
                    (_, None) => Err("unknown_template".into()),
                    (Some(_), Some(_)) if !ctx.whatsapp_consent() => {
                        Err("no_whatsapp_consent".into())
                    }
                    (Some(to), Some(template)) => {
                        let values = ctx.template_values();
                        let mut params = Vec::new();
                        let mut failed = None;
                        for name in &template.parameters {
                            let source = w
                                .parameters
                                .iter()
                                .find(|p| p.name.as_str() == name.as_str());
                            let text = source.map(|p| {
                                ctx.definitions.templates.render_str(
                                    p.value.as_str(),
                                    minijinja::Value::from(minijinja::value::Serde(&values)),
                                )
                            });
                            match text {
                                Some(Ok(t)) => params.push(t),
                                Some(Err(e)) => failed = Some(format!("template_error: {e}")),
                                None => {
                                    failed = Some(format!("missing_parameter: {}", name.as_str()))
                                }
                            }
                        }
                        match failed {
                            Some(reason) => Err(reason),
                            None => {
                                let job = WhatsappTemplateJob {
                                    effect_key: key,
                                    customer_id: Some(ctx.customer.id),
                                    to,
                                    template: template.name.as_str().to_string(),
                                    language: template.language.clone(),
                                    body_parameters: params,
                                };
                                queued(
                                    exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?,
                                    &job,
                                )
                            }
                        }
                    }
                }
            }
            Action::ConversionEvent(c) => {
                if ctx.marketing_refused() {
                    Err("no_marketing_consent".into())
                } else {
                    let money = c.value_field.as_ref().and_then(|f| {
                        ctx.card_fields
                            .get(f.as_str())
                            .or_else(|| ctx.customer.fields.get(f.as_str()))
                            .and_then(fields::stored_money)
                    });
                    let lead_id: Option<String> = exec!(tx, conn => sqlx::query_scalar(
                        "SELECT external_key FROM leads WHERE customer_id = $1 AND source = 'meta_lead_ad' AND external_key IS NOT NULL ORDER BY received_at LIMIT 1")
                        .bind(ctx.customer.id).fetch_optional(conn).await)?;
                    let mut names = ctx.customer.name.split_whitespace();
                    let first = names.next().map(str::to_string);
                    let rest: Vec<&str> = names.collect();
                    let job = ConversionEventJob {
                        effect_key: key,
                        customer_id: Some(ctx.customer.id),
                        event_name: format!("{:?}", c.event),
                        event_time: ctx.at,
                        emails: ctx.customer.emails.clone(),
                        phones: ctx.customer.phones.iter().map(|p| p.e164.clone()).collect(),
                        first_name: first,
                        last_name: (!rest.is_empty()).then(|| rest.join(" ")),
                        external_id: Some(ctx.customer.id.to_string()),
                        value_minor: money.map(|m| m.minor),
                        currency: c
                            .currency
                            .as_ref()
                            .map(|c| c.as_str().to_string())
                            .or_else(|| money.map(|m| m.currency.code().to_string())),
                        lead_id: lead_id.map(|k| k.strip_prefix("meta:").unwrap_or(&k).to_string()),
                    };
                    queued(
                        exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?,
                        &job,
                    )
                }
            }
            Action::Webhook(w) => {
                let job = WebhookJob {
                    effect_key: key,
                    url: w.url.as_str().to_string(),
                    event: "card.moved".into(),
                    data: json!({
                        "card_id": ctx.card_id,
                        "customer_id": ctx.customer.id,
                        "pipeline": ctx.pipeline.id.as_str(),
                        "from": ctx.from,
                        "to": ctx.to,
                        "at": ctx.at,
                        "by": ctx.by,
                        "fields": ctx.card_fields,
                    }),
                };
                queued(
                    exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?,
                    &job,
                )
            }
            Action::CreateWorkOrder(w) => {
                let job = CreateWorkOrderJob {
                    effect_key: key,
                    definition: w.definition.as_str().to_string(),
                    card_id: ctx.card_id,
                    customer_id: ctx.customer.id,
                    requested_by: ctx.by,
                };
                queued(
                    exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?,
                    &job,
                )
            }
        };
        match pushed {
            Ok((job_id, payload)) => out.push(Queued {
                kind,
                job_id: Some(job_id),
                skipped: None,
                payload: Some(payload),
            }),
            Err(reason) => {
                timeline::append(tx, NewEvent {
                    customer_id: ctx.customer.id,
                    card_id: Some(ctx.card_id),
                    kind: kinds::ACTION_SKIPPED,
                    actor: None,
                    definitions_version: version,
                    data: json!({"action": kind, "index": index, "reason": reason, "transition_event": ctx.event}),
                })
                .await?;
                out.push(Queued {
                    kind,
                    job_id: None,
                    skipped: Some(reason),
                    payload: None,
                });
            }
        }
    }
    Ok(out)
}
