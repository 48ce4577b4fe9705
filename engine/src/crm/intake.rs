//! Lead intake: the one function every channel (staff entry, web forms, Meta lead ads,
//! inbound messages, CSV import) calls.
//!
//! A lead is matched to a customer by any normalized phone (E.164) or email; otherwise a
//! new customer is created. The unique keys on `customer_phones.e164` and
//! `customer_emails.email` make two concurrent intakes of the same new contact create one
//! customer: on PostgreSQL the loser's transaction hits the unique key, rolls back and
//! retries, and then matches. On SQLite writers are serialized by `BEGIN IMMEDIATE`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::crm::cards;
use crate::crm::customers::{self, Attribution, CustomerRow, parse_object};
use crate::crm::timeline::{self, NewEvent, kinds};
use crate::definitions::Definitions;
use crate::definitions::model::{Pipeline, ReturnPolicy};
use crate::exec;
use crate::http::ApiError;
use crate::http::error::is_unique_violation;
use crate::jobs::effects::EffectKey;
use crate::jobs::kinds::NotifyJob;
use crate::rules::{RuleContext, RuleRef};
use crate::storage::{Db, Tx};
use crate::types::ids::{CardId, CustomerId, EventId, UserId};
use crate::types::{Email, Phone, Timestamp};

/// Sources written by the engine's own channels; YAML may route any source.
pub const DEFAULT_SOURCE: &str = "manual";

/// A lead as a channel hands it to intake (raw, not yet validated).
#[derive(Debug, Clone, Default)]
pub struct Lead {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Option<String>,
    pub attribution: Attribution,
    pub notes: Option<String>,
    /// Custom customer fields (`customer_fields` ids).
    pub fields: Map<String, Value>,
    /// A channel's own id for this lead (Meta leadgen id, form submission id): a second
    /// delivery with the same key returns the first result and changes nothing.
    pub external_key: Option<String>,
    /// A messaging identity: (`whatsapp`, wa_id), (`messenger`, psid), …
    pub identity: Option<(String, String)>,
    /// Put the card in this pipeline instead of the one the intake routes choose.
    pub pipeline: Option<String>,
    pub marketing_consent: Option<bool>,
    pub whatsapp_consent: Option<bool>,
    /// The staff member entering the lead, if any.
    pub entered_by: Option<UserId>,
    /// Whether the staff member sees only their own customers (they then co-own it).
    pub entered_by_owns: bool,
}

/// What intake did.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IntakeOutcome {
    pub customer_id: CustomerId,
    pub card_id: CardId,
    /// True when the lead attached to an existing customer.
    pub matched: bool,
    /// `phone`, `email`, `identity`, or null for a new customer.
    pub matched_by: Option<String>,
    /// True when this was a repeated delivery of a lead already received.
    pub duplicate: bool,
}

/// A validated lead.
struct Valid {
    name: String,
    phone: Option<(Phone, String)>,
    email: Option<Email>,
    source: String,
    attribution: Attribution,
    notes: Option<String>,
    fields: Map<String, Value>,
}

fn validate(definitions: &Definitions, lead: &Lead) -> Result<Valid, ApiError> {
    let mut errors = BTreeMap::new();
    let name = lead.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.insert(
            "name".into(),
            "a name is required (at most 200 characters)".into(),
        );
    }
    let phone = match lead
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => match Phone::parse(raw) {
            Ok(p) => Some((p, raw.chars().take(64).collect())),
            Err(_) => {
                errors.insert("phone".into(), "not a valid phone number".into());
                None
            }
        },
        None => None,
    };
    let email = match lead
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(raw) => match Email::parse(raw) {
            Ok(e) => Some(e),
            Err(_) => {
                errors.insert("email".into(), "not a valid email address".into());
                None
            }
        },
        None => None,
    };
    if lead.phone.as_deref().is_none_or(|p| p.trim().is_empty())
        && lead.email.as_deref().is_none_or(|e| e.trim().is_empty())
        && lead.identity.is_none()
    {
        errors.insert(
            "phone".into(),
            "a phone number or an email address is required".into(),
        );
    }
    let source = lead
        .source
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SOURCE)
        .to_string();
    if source.chars().count() > 50
        || !source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        errors.insert(
            "source".into(),
            "letters, digits, `_` or `-` (at most 50)".into(),
        );
    }
    let mut attribution = lead.attribution.clone();
    for (key, value) in [
        ("utm_source", &mut attribution.utm_source),
        ("utm_medium", &mut attribution.utm_medium),
        ("utm_campaign", &mut attribution.utm_campaign),
        ("utm_content", &mut attribution.utm_content),
        ("utm_term", &mut attribution.utm_term),
        ("campaign_id", &mut attribution.campaign_id),
        ("adset_id", &mut attribution.adset_id),
        ("ad_id", &mut attribution.ad_id),
    ] {
        if let Some(v) = value.as_deref() {
            let v = v.trim();
            if v.chars().count() > 200 {
                errors.insert(key.into(), "at most 200 characters".into());
            }
            *value = (!v.is_empty()).then(|| v.to_string());
        }
    }
    attribution.source = Some(source.clone());
    attribution.at.get_or_insert_with(Timestamp::now);
    let notes = lead
        .notes
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if notes.as_deref().is_some_and(|n| n.chars().count() > 5_000) {
        errors.insert("notes".into(), "at most 5000 characters".into());
    }
    let fields = crate::crm::fields::merge(
        &definitions.customer_fields,
        &Map::new(),
        &lead.fields,
        &mut errors,
    );
    if let Some(p) = &lead.pipeline
        && definitions.pipeline(p).is_none()
    {
        errors.insert("pipeline".into(), "no such pipeline".into());
    }
    if let Some(key) = &lead.external_key
        && (key.is_empty() || key.len() > 200)
    {
        errors.insert("external_id".into(), "1 to 200 characters".into());
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(Valid {
        name,
        phone,
        email,
        source,
        attribution,
        notes,
        fields,
    })
}

/// Receives one lead. Never loses it: a failing scoring or assignment rule is logged and
/// the lead is stored unscored or unassigned.
pub async fn intake(
    db: &Db,
    definitions: &Definitions,
    lead: Lead,
) -> Result<IntakeOutcome, ApiError> {
    let valid = validate(definitions, &lead)?;
    let pipeline = match &lead.pipeline {
        Some(p) => definitions.pipeline(p),
        None => definitions.pipeline_for_source(&valid.source),
    }
    .ok_or_else(|| anyhow::anyhow!("intake routes to no pipeline"))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = db.begin().await?;
        match intake_in(&mut tx, definitions, pipeline, &lead, &valid).await {
            Ok(outcome) => {
                tx.commit().await?;
                return Ok(outcome);
            }
            Err(IntakeError::Race) if attempt < 4 => {
                drop(tx);
                continue;
            }
            Err(IntakeError::Race) => {
                return Err(ApiError::conflict(
                    "intake_conflict",
                    "this lead collided with another one; send it again",
                ));
            }
            Err(IntakeError::Api(e)) => return Err(e),
        }
    }
}

/// Checks a lead the way [`intake`] would, without writing anything: the per-row check
/// of an import.
pub fn check(definitions: &Definitions, lead: &Lead) -> Result<(), ApiError> {
    validate(definitions, lead).map(|_| ())
}

/// Receives several leads in ONE transaction (imports): every lead is validated first
/// (the first invalid one is the error, nothing written), then all are taken in order —
/// a later lead matches a customer an earlier one created — and committed together, or
/// rolled back when `commit` is false (a dry run that reports exactly what would happen).
/// Keep batches small enough to hold the write lock for about a second.
pub async fn intake_all(
    db: &Db,
    definitions: &Definitions,
    leads: &[Lead],
    commit: bool,
) -> Result<Vec<IntakeOutcome>, ApiError> {
    intake_all_then(db, definitions, leads, commit, |_, _| {
        Box::pin(async { Ok(()) })
    })
    .await
}

/// [`intake_all`], then `then` in the same transaction before it commits (an import
/// records how far it got atomically with the rows themselves). `then` may run more than
/// once: the batch is retried from scratch when it races another intake.
pub async fn intake_all_then(
    db: &Db,
    definitions: &Definitions,
    leads: &[Lead],
    commit: bool,
    then: impl for<'t> Fn(
        &'t mut Tx,
        &'t [IntakeOutcome],
    ) -> futures::future::BoxFuture<'t, Result<(), ApiError>>
    + Send
    + Sync,
) -> Result<Vec<IntakeOutcome>, ApiError> {
    let mut prepared = Vec::with_capacity(leads.len());
    for lead in leads {
        let valid = validate(definitions, lead)?;
        let pipeline = match &lead.pipeline {
            Some(p) => definitions.pipeline(p),
            None => definitions.pipeline_for_source(&valid.source),
        }
        .ok_or_else(|| anyhow::anyhow!("intake routes to no pipeline"))?;
        prepared.push((lead, valid, pipeline));
    }
    let mut attempt = 0;
    'retry: loop {
        attempt += 1;
        let mut tx = db.begin().await?;
        let mut outcomes = Vec::with_capacity(prepared.len());
        for (lead, valid, pipeline) in &prepared {
            match intake_in(&mut tx, definitions, pipeline, lead, valid).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(IntakeError::Race) if attempt < 4 => {
                    drop(tx);
                    continue 'retry;
                }
                Err(IntakeError::Race) => {
                    return Err(ApiError::conflict(
                        "intake_conflict",
                        "these leads collided with others arriving at the same time; send them again",
                    ));
                }
                Err(IntakeError::Api(e)) => return Err(e),
            }
        }
        then(&mut tx, &outcomes).await?;
        if commit {
            tx.commit().await?;
        }
        return Ok(outcomes);
    }
}

enum IntakeError {
    /// Another transaction created the same contact first: retry and match it.
    Race,
    Api(ApiError),
}

impl From<sqlx::Error> for IntakeError {
    fn from(e: sqlx::Error) -> Self {
        if is_unique_violation(&e, "customer_phones")
            || is_unique_violation(&e, "customer_emails")
            || is_unique_violation(&e, "customer_identities")
            || is_unique_violation(&e, "leads")
            || is_unique_violation(&e, "cards")
            || is_unique_violation(&e, "e164")
            || is_unique_violation(&e, "email")
            || is_unique_violation(&e, "external")
        {
            IntakeError::Race
        } else {
            IntakeError::Api(e.into())
        }
    }
}

impl From<ApiError> for IntakeError {
    fn from(e: ApiError) -> Self {
        IntakeError::Api(e)
    }
}

impl From<crate::jobs::JobsError> for IntakeError {
    fn from(e: crate::jobs::JobsError) -> Self {
        IntakeError::from(sqlx::Error::from(e))
    }
}

#[derive(sqlx::FromRow)]
struct PriorLead {
    customer_id: CustomerId,
    card_id: Option<CardId>,
    matched_by: Option<String>,
}

async fn intake_in(
    tx: &mut Tx,
    definitions: &Definitions,
    pipeline: &Pipeline,
    lead: &Lead,
    valid: &Valid,
) -> Result<IntakeOutcome, IntakeError> {
    // A new card goes into a stage of `definitions`: they must be the ones in force.
    crate::runtime::ensure_current(tx, definitions).await?;
    let now = Timestamp::now();
    if let Some(key) = &lead.external_key {
        let prior: Option<PriorLead> = exec!(tx, conn => sqlx::query_as(
            "SELECT customer_id, card_id, matched_by FROM leads WHERE external_key = $1")
            .bind(key).fetch_optional(conn).await)?;
        if let Some(prior) = prior
            && let Some(card_id) = prior.card_id
        {
            return Ok(IntakeOutcome {
                customer_id: prior.customer_id,
                card_id,
                matched: prior.matched_by.is_some(),
                matched_by: prior.matched_by,
                duplicate: true,
            });
        }
    }

    // Match: phone first, then email, then a messaging identity.
    let mut matched: Option<(CustomerId, &'static str)> = None;
    if let Some((phone, _)) = &valid.phone {
        let id: Option<CustomerId> = exec!(tx, conn => sqlx::query_scalar("SELECT customer_id FROM customer_phones WHERE e164 = $1")
            .bind(phone.as_str()).fetch_optional(conn).await)?;
        matched = id.map(|id| (id, "phone"));
    }
    if matched.is_none()
        && let Some(email) = &valid.email
    {
        let id: Option<CustomerId> = exec!(tx, conn => sqlx::query_scalar("SELECT customer_id FROM customer_emails WHERE email = $1")
            .bind(email.as_str()).fetch_optional(conn).await)?;
        matched = id.map(|id| (id, "email"));
    }
    if matched.is_none()
        && let Some((channel, external)) = &lead.identity
    {
        let id: Option<CustomerId> = exec!(tx, conn => sqlx::query_scalar("SELECT customer_id FROM customer_identities WHERE channel = $1 AND external_id = $2")
            .bind(channel).bind(external).fetch_optional(conn).await)?;
        matched = id.map(|id| (id, "identity"));
    }

    let lead_id = uuid::Uuid::now_v7().to_string();
    let lead_event = EventId::new();
    let (customer_id, card_id) = match matched {
        None => new_customer(tx, definitions, pipeline, lead, valid, lead_event, now).await?,
        Some((id, _)) => {
            returning_customer(tx, definitions, pipeline, lead, valid, id, lead_event, now).await?
        }
    };
    let matched_by = matched.map(|(_, by)| by.to_string());
    let payload = json!({
        "name": valid.name,
        "phone": valid.phone.as_ref().map(|(p, _)| p.as_str()),
        "phone_raw": valid.phone.as_ref().map(|(_, raw)| raw),
        "email": valid.email.as_ref().map(|e| e.as_str()),
        "notes": valid.notes,
        "attribution": valid.attribution,
        "fields": valid.fields,
    })
    .to_string();
    exec!(tx, conn => sqlx::query(
        "INSERT INTO leads (id, customer_id, card_id, source, external_key, matched_by, payload, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&lead_id).bind(customer_id).bind(card_id).bind(&valid.source).bind(&lead.external_key)
        .bind(&matched_by).bind(&payload).bind(now)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(IntakeOutcome {
        customer_id,
        card_id,
        matched: matched.is_some(),
        matched_by,
        duplicate: false,
    })
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: UserId,
    role: String,
    team: Option<String>,
}

/// Runs the pipeline's assignment rule; None when there is none, it fails or it picks
/// nobody. Advances the per-source round-robin counter.
async fn assign(
    tx: &mut Tx,
    definitions: &Definitions,
    pipeline: &Pipeline,
    source: &str,
    customer_view: &Value,
) -> Result<Option<UserId>, sqlx::Error> {
    let Some(rule) = pipeline.on_new_lead.assignment.as_ref() else {
        return Ok(None);
    };
    let Ok(rule) = RuleRef::parse(rule.as_str()) else {
        return Ok(None);
    };
    let candidates: Vec<Candidate> = exec!(tx, conn => sqlx::query_as(
        "SELECT u.id, u.role, t.name AS team FROM users u LEFT JOIN teams t ON t.id = u.team_id WHERE u.active ORDER BY u.created_at, u.id")
        .fetch_all(conn).await)?;
    let key = format!("assign:{}:{source}", pipeline.id.as_str());
    let counter: i64 =
        exec!(tx, conn => sqlx::query_scalar("SELECT value FROM counters WHERE key = $1")
        .bind(&key).fetch_optional(conn).await)?
        .unwrap_or(0);
    let users: Vec<Value> = candidates
        .iter()
        .map(|c| json!({"id": c.id.to_string(), "roles": [c.role], "teams": c.team.iter().collect::<Vec<_>>()}))
        .collect();
    let ctx = RuleContext::new()
        .with_json("source", &json!(source))
        .with_json("users", &Value::Array(users))
        .with_json("counter", &json!(counter))
        .with_json("customer", customer_view);
    let picked = match definitions.rules.assign(&rule, &ctx) {
        Ok(picked) => picked,
        Err(e) => {
            tracing::warn!(rule = %rule, error = %e, "assignment rule failed; the lead stays unassigned");
            None
        }
    };
    exec!(tx, conn => sqlx::query(
        "INSERT INTO counters (key, value) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET value = counters.value + 1")
        .bind(&key).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(picked.and_then(|id| {
        candidates
            .iter()
            .find(|c| c.id.to_string() == id)
            .map(|c| c.id)
    }))
}

/// Runs the pipeline's scoring rule; None when there is none or it fails.
fn score(
    definitions: &Definitions,
    pipeline: &Pipeline,
    customer_view: &Value,
) -> Option<(i64, i64)> {
    let rule = RuleRef::parse(pipeline.on_new_lead.scoring.as_ref()?.as_str()).ok()?;
    let ctx = RuleContext::new().with_json("customer", customer_view);
    match definitions.rules.score(&rule, &ctx) {
        Ok(s) => Some((i64::from(s.emotional), i64::from(s.logical))),
        Err(e) => {
            tracing::warn!(rule = %rule, error = %e, "scoring rule failed; the lead stays unscored");
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn new_customer(
    tx: &mut Tx,
    definitions: &Definitions,
    pipeline: &Pipeline,
    lead: &Lead,
    valid: &Valid,
    lead_event: EventId,
    now: Timestamp,
) -> Result<(CustomerId, CardId), IntakeError> {
    let id = CustomerId::new();
    let phone = valid.phone.as_ref().map(|(p, _)| p.as_str());
    let email = valid.email.as_ref().map(|e| e.as_str());
    let view = customers::rule_view(
        definitions,
        &valid.name,
        &valid.source,
        phone,
        email,
        &valid.fields,
        &[("message", json!(valid.notes)), ("returning", json!(false))],
    );
    let scores = score(definitions, pipeline, &view);
    let assigned = assign(tx, definitions, pipeline, &valid.source, &view).await?;
    let touch = serde_json::to_string(&valid.attribution).unwrap_or_else(|_| "{}".into());
    let phones: Vec<String> = phone.iter().map(|p| p.to_string()).collect();
    let emails: Vec<String> = email.iter().map(|e| e.to_string()).collect();
    let search_key = customers::search_key(&valid.name, &phones, &emails);
    let consent_at = |c: Option<bool>| c.map(|_| now);
    exec!(tx, conn => sqlx::query(
        "INSERT INTO customers (id, name, name_key, search_key, source, first_touch, last_touch, campaign,
            emotional_score, logical_score, marketing_consent, marketing_consent_source, marketing_consent_at,
            whatsapp_consent, whatsapp_consent_source, whatsapp_consent_at, fields, last_contact_at, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, 1, $17, $17)")
        .bind(id).bind(&valid.name).bind(crate::types::fold::fold(&valid.name)).bind(&search_key)
        .bind(&valid.source).bind(&touch).bind(valid.attribution.campaign())
        .bind(scores.map(|s| s.0)).bind(scores.map(|s| s.1))
        .bind(lead.marketing_consent).bind(lead.marketing_consent.map(|_| valid.source.clone())).bind(consent_at(lead.marketing_consent))
        .bind(lead.whatsapp_consent).bind(lead.whatsapp_consent.map(|_| valid.source.clone())).bind(consent_at(lead.whatsapp_consent))
        .bind(Value::Object(valid.fields.clone()).to_string()).bind(now)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if let Some((phone, raw)) = &valid.phone {
        exec!(tx, conn => sqlx::query("INSERT INTO customer_phones (e164, customer_id, raw, position, added_at) VALUES ($1, $2, $3, 0, $4)")
            .bind(phone.as_str()).bind(id).bind(raw).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    if let Some(email) = &valid.email {
        exec!(tx, conn => sqlx::query("INSERT INTO customer_emails (email, customer_id, position, added_at) VALUES ($1, $2, 0, $3)")
            .bind(email.as_str()).bind(id).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    if let Some((channel, external)) = &lead.identity {
        exec!(tx, conn => sqlx::query("INSERT INTO customer_identities (channel, external_id, customer_id, added_at) VALUES ($1, $2, $3, $4)")
            .bind(channel).bind(external).bind(id).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    let mut owners: Vec<UserId> = assigned.into_iter().collect();
    if lead.entered_by_owns
        && let Some(staff) = lead.entered_by
        && !owners.contains(&staff)
    {
        owners.push(staff);
    }
    for owner in &owners {
        exec!(tx, conn => sqlx::query("INSERT INTO customer_owners (customer_id, user_id, since) VALUES ($1, $2, $3)")
            .bind(id).bind(owner).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    let row = customers::get_row_tx(tx, id).await?.ok_or_else(|| {
        ApiError::from(anyhow::anyhow!("customer vanished inside its transaction"))
    })?;
    let stage = pipeline
        .initial_stage()
        .ok_or_else(|| ApiError::from(anyhow::anyhow!("pipeline without an initial stage")))?;
    let card = cards::insert(
        tx,
        definitions,
        pipeline,
        &row,
        stage.id.as_str(),
        lead.entered_by,
        lead_event,
        now,
    )
    .await?;
    timeline::append_with_id(
        tx,
        lead_event,
        now,
        NewEvent {
            customer_id: id,
            card_id: Some(card),
            kind: kinds::LEAD,
            actor: lead.entered_by,
            definitions_version: &definitions.version,
            data: json!({
                "source": valid.source,
                "attribution": valid.attribution,
                "notes": valid.notes,
                "returning": false,
                "pipeline": pipeline.id.as_str(),
                "stage": stage.id.as_str(),
                "owners": owners,
                "scores": scores.map(|(e, l)| json!({"emotional": e, "logical": l})),
            }),
        },
    )
    .await?;
    if let Some(owner) = assigned {
        notify_assigned(tx, &row, owner, lead_event).await?;
    }
    crate::crm::live::card_added(tx, definitions, card).await?;
    crate::reminders::triggers::after_card_created(tx, definitions, card, lead.entered_by).await?;
    Ok((id, card))
}

/// The "new lead assigned to you" notification, in the same transaction.
async fn notify_assigned(
    tx: &mut Tx,
    customer: &CustomerRow,
    owner: UserId,
    event: EventId,
) -> Result<(), IntakeError> {
    let job = NotifyJob {
        effect_key: EffectKey::new(format!("lead:{event}:assigned:{owner}")),
        user_ids: vec![owner],
        customer_id: Some(customer.id),
        template: "yeni_lead".into(),
        values: json!({"customer": {"name": customer.name, "source": customer.source}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    exec!(tx, conn => crate::jobs::enqueue(conn, &job).await)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn returning_customer(
    tx: &mut Tx,
    definitions: &Definitions,
    pipeline: &Pipeline,
    lead: &Lead,
    valid: &Valid,
    id: CustomerId,
    lead_event: EventId,
    now: Timestamp,
) -> Result<(CustomerId, CardId), IntakeError> {
    let row = customers::get_row_tx(tx, id)
        .await?
        .ok_or_else(|| ApiError::from(anyhow::anyhow!("matched customer vanished")))?;
    // New contact details join the customer unless they belong to someone else.
    let mut added = Vec::new();
    if let Some((phone, raw)) = &valid.phone {
        let owner: Option<CustomerId> = exec!(tx, conn => sqlx::query_scalar("SELECT customer_id FROM customer_phones WHERE e164 = $1")
            .bind(phone.as_str()).fetch_optional(conn).await)?;
        if owner.is_none() {
            let position: i64 = exec!(tx, conn => sqlx::query_scalar("SELECT COUNT(*) FROM customer_phones WHERE customer_id = $1")
                .bind(id).fetch_one(conn).await)?;
            exec!(tx, conn => sqlx::query("INSERT INTO customer_phones (e164, customer_id, raw, position, added_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(phone.as_str()).bind(id).bind(raw).bind(position).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
            added.push(json!({"phone": phone.as_str()}));
        }
    }
    if let Some(email) = &valid.email {
        let owner: Option<CustomerId> = exec!(tx, conn => sqlx::query_scalar("SELECT customer_id FROM customer_emails WHERE email = $1")
            .bind(email.as_str()).fetch_optional(conn).await)?;
        if owner.is_none() {
            let position: i64 = exec!(tx, conn => sqlx::query_scalar("SELECT COUNT(*) FROM customer_emails WHERE customer_id = $1")
                .bind(id).fetch_one(conn).await)?;
            exec!(tx, conn => sqlx::query("INSERT INTO customer_emails (email, customer_id, position, added_at) VALUES ($1, $2, $3, $4)")
                .bind(email.as_str()).bind(id).bind(position).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
            added.push(json!({"email": email.as_str()}));
        }
    }
    if let Some((channel, external)) = &lead.identity {
        exec!(tx, conn => sqlx::query("INSERT INTO customer_identities (channel, external_id, customer_id, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(channel).bind(external).bind(id).bind(now).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    // Custom fields the lead brings fill gaps; they never overwrite what staff entered.
    let mut fields = parse_object(&row.fields);
    for (key, value) in &valid.fields {
        fields.entry(key.clone()).or_insert_with(|| value.clone());
    }
    let view = customers::rule_view(
        definitions,
        &row.name,
        &row.source,
        valid.phone.as_ref().map(|(p, _)| p.as_str()),
        valid.email.as_ref().map(|e| e.as_str()),
        &fields,
        &[("message", json!(valid.notes)), ("returning", json!(true))],
    );
    let scores = score(definitions, pipeline, &view);
    let touch = serde_json::to_string(&valid.attribution).unwrap_or_else(|_| "{}".into());
    exec!(tx, conn => sqlx::query(
        "UPDATE customers SET last_touch = $1, campaign = $2, fields = $3,
            emotional_score = COALESCE($4, emotional_score), logical_score = COALESCE($5, logical_score),
            marketing_consent = COALESCE($6, marketing_consent),
            marketing_consent_source = CASE WHEN $6 IS NULL THEN marketing_consent_source ELSE $7 END,
            marketing_consent_at = CASE WHEN $6 IS NULL THEN marketing_consent_at ELSE $8 END,
            whatsapp_consent = COALESCE($9, whatsapp_consent),
            whatsapp_consent_source = CASE WHEN $9 IS NULL THEN whatsapp_consent_source ELSE $7 END,
            whatsapp_consent_at = CASE WHEN $9 IS NULL THEN whatsapp_consent_at ELSE $8 END,
            version = version + 1, updated_at = $8
         WHERE id = $10")
        .bind(&touch).bind(valid.attribution.campaign()).bind(Value::Object(fields).to_string())
        .bind(scores.map(|s| s.0)).bind(scores.map(|s| s.1))
        .bind(lead.marketing_consent).bind(&valid.source).bind(now)
        .bind(lead.whatsapp_consent).bind(id)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if !added.is_empty() {
        customers::refresh_search_key(tx, id).await?;
    }

    // The card: create it, leave it, or follow the pipeline's re-application rule.
    let existing: Option<cards::CardRow> = exec!(tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM cards WHERE customer_id = $1 AND pipeline_id = $2 AND closed_at IS NULL", cards::CARD_COLUMNS)))
        .bind(id).bind(pipeline.id.as_str()).fetch_optional(conn).await)?;
    let mut reopened = None;
    let mut live_change: Option<(String, String)> = None;
    let is_new_card = existing.is_none();
    let card_id = match existing {
        None => {
            let stage = pipeline.initial_stage().ok_or_else(|| {
                ApiError::from(anyhow::anyhow!("pipeline without an initial stage"))
            })?;
            cards::insert(
                tx,
                definitions,
                pipeline,
                &row,
                stage.id.as_str(),
                lead.entered_by,
                lead_event,
                now,
            )
            .await?
        }
        Some(card) => {
            let terminal = pipeline.stage(&card.stage_id).is_some_and(|s| s.terminal);
            if terminal && let Some(policy) = &pipeline.on_return {
                match &policy.value {
                    ReturnPolicy::Reopen { stage, activity } => {
                        exec!(tx, conn => sqlx::query(
                            "UPDATE cards SET stage_id = $1, version = version + 1, stage_entered_at = $2, updated_at = $2, definitions_version = $4 WHERE id = $3")
                            .bind(stage.as_str()).bind(now).bind(card.id).bind(&definitions.version).execute(conn).await.map(|r| r.rows_affected()))?;
                        let event = timeline::append(tx, NewEvent {
                            customer_id: id,
                            card_id: Some(card.id),
                            kind: kinds::STAGE_CHANGED,
                            actor: None,
                            definitions_version: &definitions.version,
                            data: json!({"from": card.stage_id, "to": stage.as_str(), "pipeline": pipeline.id.as_str(), "reason": "reapplied"}),
                        }).await?;
                        cards::open_stage(
                            tx,
                            card.id,
                            pipeline.id.as_str(),
                            stage.as_str(),
                            None,
                            event,
                            now,
                        )
                        .await?;
                        reopened = Some(
                            json!({"from": card.stage_id, "to": stage.as_str(), "activity": activity.as_str()}),
                        );
                        live_change = Some((card.stage_id.clone(), stage.as_str().to_string()));
                    }
                    ReturnPolicy::RecordOnly { activity } => {
                        reopened =
                            Some(json!({"stage": card.stage_id, "activity": activity.as_str()}));
                    }
                }
            }
            card.id
        }
    };
    if let Some(data) = reopened {
        timeline::append(
            tx,
            NewEvent {
                customer_id: id,
                card_id: Some(card_id),
                kind: kinds::REAPPLIED,
                actor: lead.entered_by,
                definitions_version: &definitions.version,
                data,
            },
        )
        .await?;
    }
    cards::refresh_sort_keys_for_customer(tx, definitions, id).await?;
    timeline::append_with_id(
        tx,
        lead_event,
        now,
        NewEvent {
            customer_id: id,
            card_id: Some(card_id),
            kind: kinds::LEAD,
            actor: lead.entered_by,
            definitions_version: &definitions.version,
            data: json!({
                "source": valid.source,
                "attribution": valid.attribution,
                "notes": valid.notes,
                "returning": true,
                "added": added,
                "pipeline": pipeline.id.as_str(),
                "scores": scores.map(|(e, l)| json!({"emotional": e, "logical": l})),
            }),
        },
    )
    .await?;
    match (is_new_card, live_change) {
        (true, _) => {
            crate::crm::live::card_added(tx, definitions, card_id).await?;
            crate::reminders::triggers::after_card_created(
                tx,
                definitions,
                card_id,
                lead.entered_by,
            )
            .await?;
        }
        (false, Some((from, to))) => {
            crate::crm::live::card_moved(tx, definitions, card_id, &from, &to).await?;
            crate::reminders::triggers::after_move(
                tx,
                definitions,
                card_id,
                &from,
                &to,
                &Map::new(),
                None,
            )
            .await?;
        }
        (false, None) => {
            crate::crm::live::customer_cards_updated(tx, definitions, id, None).await?
        }
    }
    Ok((id, card_id))
}
