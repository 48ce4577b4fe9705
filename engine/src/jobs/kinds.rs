//! The job kinds the engine enqueues. Each is a serde struct with its own queue; the
//! handlers live in `akis-worker`. Payloads carry everything a handler needs, so a handler
//! never reads definitions that may have changed since the job was enqueued.
//!
//! Every kind that causes an external effect carries an [`EffectKey`]: the effect ledger
//! (see [`super::effects`]) keys on it so a re-run never blindly repeats the effect.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JobKind;
use super::effects::EffectKey;
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

/// An in-app notification to some users (Socket.IO push once realtime exists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyJob {
    pub effect_key: EffectKey,
    pub user_ids: Vec<UserId>,
    pub customer_id: Option<CustomerId>,
    /// Template name under `templates/messages/`.
    pub template: String,
    /// Values for the template.
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl JobKind for NotifyJob {
    const QUEUE: &'static str = "notify";
    const TIMEOUT: Duration = Duration::from_secs(10);
}

/// A WhatsApp Cloud API template message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappTemplateJob {
    pub effect_key: EffectKey,
    pub customer_id: Option<CustomerId>,
    /// Recipient in E.164 (`+905321234567`).
    pub to: String,
    /// The approved template's name.
    pub template: String,
    /// Its language code (`tr`, `en_US`).
    pub language: String,
    /// Body parameters, in order ({{1}}, {{2}}, …).
    #[serde(default)]
    pub body_parameters: Vec<String>,
}

impl JobKind for WhatsappTemplateJob {
    const QUEUE: &'static str = "whatsapp_template";
    const TIMEOUT: Duration = Duration::from_secs(30);
    const MAX_ATTEMPTS: u32 = 8;
}

/// A Meta Conversions API event for a pipeline transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionEventJob {
    pub effect_key: EffectKey,
    pub customer_id: Option<CustomerId>,
    /// A standard event name: Lead, Schedule, Purchase, …
    pub event_name: String,
    /// When the business event happened (the transition).
    pub event_time: Timestamp,
    /// Raw (unhashed) user data; the handler normalizes and hashes it.
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub phones: Vec<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Our customer id, hashed by the handler as `external_id`.
    pub external_id: Option<String>,
    /// Money value in minor units, with its ISO 4217 currency.
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
    /// Meta lead ad ids, when the customer came from one.
    pub lead_id: Option<String>,
}

impl JobKind for ConversionEventJob {
    const QUEUE: &'static str = "conversion_event";
    const TIMEOUT: Duration = Duration::from_secs(30);
}

/// Fetch a Meta lead ad lead by its leadgen id (from the leadgen webhook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadFetchJob {
    pub leadgen_id: String,
    pub page_id: Option<String>,
    pub form_id: Option<String>,
    pub ad_id: Option<String>,
    pub created_time: Option<Timestamp>,
}

impl JobKind for LeadFetchJob {
    const QUEUE: &'static str = "lead_fetch";
    const TIMEOUT: Duration = Duration::from_secs(30);
}

/// A signed POST of a JSON event to a URL declared in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookJob {
    pub effect_key: EffectKey,
    pub url: String,
    /// Event name (`card.moved`, …), sent in the body and the `X-Akis-Event` header.
    pub event: String,
    /// The event's data: shaped by the definition that declared the webhook.
    pub data: serde_json::Value,
}

impl JobKind for WebhookJob {
    const QUEUE: &'static str = "webhook";
    const TIMEOUT: Duration = Duration::from_secs(20);
}

/// A follow-up reminder declared on a transition (`follow_up:`). The due expression is
/// evaluated by the handler against the company calendar from `base` (the transition's
/// instant), so a definitions reload cannot change a queued follow-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpJob {
    pub effect_key: EffectKey,
    pub card_id: CardId,
    pub customer_id: CustomerId,
    pub title_tr: String,
    pub title_en: String,
    /// A due-time expression (`+2d at 10:00`, `next business day 10:00`).
    pub due: String,
    /// The instant the expression counts from.
    pub base: Timestamp,
    /// Card field values the expression may name (`appointment_at`).
    #[serde(default)]
    pub card_fields: serde_json::Map<String, serde_json::Value>,
    pub assignees: Vec<UserId>,
}

impl JobKind for FollowUpJob {
    const QUEUE: &'static str = "follow_up";
    const TIMEOUT: Duration = Duration::from_secs(10);
}

/// Opens a work order from a definition for a card (`create_work_order:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkOrderJob {
    pub effect_key: EffectKey,
    pub definition: String,
    pub card_id: CardId,
    pub customer_id: CustomerId,
    pub requested_by: Option<UserId>,
}

impl JobKind for CreateWorkOrderJob {
    const QUEUE: &'static str = "create_work_order";
    const TIMEOUT: Duration = Duration::from_secs(10);
}

/// A reminder's due time came: fire it if it is still open with this due time (see
/// `reminders::fire`). Rescheduling queues a new job; the old one then does nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderDueJob {
    pub reminder_id: crate::reminders::ReminderId,
    pub due_at: Timestamp,
}

impl JobKind for ReminderDueJob {
    const QUEUE: &'static str = "reminder_due";
    const TIMEOUT: Duration = Duration::from_secs(20);
}

/// One tick of a recurring schedule, claimed by exactly one node (`schedule_ticks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledTaskJob {
    pub schedule: String,
    pub task: crate::definitions::model::ScheduledTask,
    pub tick_at: Timestamp,
}

impl JobKind for ScheduledTaskJob {
    const QUEUE: &'static str = "scheduled_task";
    const TIMEOUT: Duration = Duration::from_secs(120);
    const MAX_ATTEMPTS: u32 = 3;
}

/// Every queue the engine defines.
pub const QUEUES: [&str; 9] = [
    NotifyJob::QUEUE,
    WhatsappTemplateJob::QUEUE,
    ConversionEventJob::QUEUE,
    LeadFetchJob::QUEUE,
    WebhookJob::QUEUE,
    FollowUpJob::QUEUE,
    CreateWorkOrderJob::QUEUE,
    ReminderDueJob::QUEUE,
    ScheduledTaskJob::QUEUE,
];
