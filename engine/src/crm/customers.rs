//! Customers: the de-duplicated people every card, activity and message gathers around.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::crm::sql::Sql;
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::fold;
use crate::types::ids::{CustomerId, UserId};

/// Campaign attribution of one lead (first touch is kept, last touch updated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attribution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
    /// Meta campaign / ad set / ad ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adset_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

impl Attribution {
    /// The campaign key the board and lists filter on.
    pub fn campaign(&self) -> Option<String> {
        self.utm_campaign
            .clone()
            .or_else(|| self.campaign_id.clone())
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PhoneEntry {
    /// E.164.
    pub e164: String,
    /// As the lead wrote it.
    pub raw: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Identity {
    /// `whatsapp`, `messenger`, `instagram`.
    pub channel: String,
    pub external_id: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct OwnerRef {
    pub id: UserId,
    pub name: String,
}

/// One consent (marketing, WhatsApp): given or withdrawn, where and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Consent {
    pub granted: bool,
    /// Where it was given: `web_form`, `meta_lead_ad`, `staff`, …
    pub source: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Consents {
    pub marketing: Option<Consent>,
    pub whatsapp: Option<Consent>,
}

/// A customer as the API returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub phones: Vec<PhoneEntry>,
    pub emails: Vec<String>,
    pub identities: Vec<Identity>,
    pub source: String,
    pub first_touch: Attribution,
    pub last_touch: Attribution,
    pub owners: Vec<OwnerRef>,
    pub tags: Vec<String>,
    pub emotional_score: Option<i64>,
    pub logical_score: Option<i64>,
    pub consent: Consents,
    /// Custom fields declared in `customer_fields`.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub last_contact_at: Option<Timestamp>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set when this customer was merged into another: read that one instead.
    pub merged_into: Option<CustomerId>,
}

pub(crate) const CUSTOMER_COLUMNS: &str = "id, name, source, first_touch, last_touch, emotional_score, logical_score, \
    marketing_consent, marketing_consent_source, marketing_consent_at, whatsapp_consent, whatsapp_consent_source, \
    whatsapp_consent_at, fields, last_contact_at, version, created_at, updated_at, merged_into";

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CustomerRow {
    pub id: CustomerId,
    pub name: String,
    pub source: String,
    pub first_touch: String,
    pub last_touch: String,
    pub emotional_score: Option<i64>,
    pub logical_score: Option<i64>,
    pub marketing_consent: Option<bool>,
    pub marketing_consent_source: Option<String>,
    pub marketing_consent_at: Option<Timestamp>,
    pub whatsapp_consent: Option<bool>,
    pub whatsapp_consent_source: Option<String>,
    pub whatsapp_consent_at: Option<Timestamp>,
    pub fields: String,
    pub last_contact_at: Option<Timestamp>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub merged_into: Option<CustomerId>,
}

fn consent(
    granted: Option<bool>,
    source: Option<String>,
    at: Option<Timestamp>,
) -> Option<Consent> {
    Some(Consent {
        granted: granted?,
        source: source.unwrap_or_default(),
        at: at?,
    })
}

pub(crate) fn parse_object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Related rows of some customers, loaded in one query per table.
#[derive(Debug, Default)]
pub(crate) struct Related {
    pub phones: HashMap<CustomerId, Vec<PhoneEntry>>,
    pub emails: HashMap<CustomerId, Vec<String>>,
    pub identities: HashMap<CustomerId, Vec<Identity>>,
    pub owners: HashMap<CustomerId, Vec<OwnerRef>>,
    pub tags: HashMap<CustomerId, Vec<String>>,
}

impl CustomerRow {
    pub fn into_customer(self, related: &mut Related) -> Customer {
        let id = self.id;
        Customer {
            id,
            name: self.name,
            phones: related.phones.remove(&id).unwrap_or_default(),
            emails: related.emails.remove(&id).unwrap_or_default(),
            identities: related.identities.remove(&id).unwrap_or_default(),
            source: self.source,
            first_touch: serde_json::from_str(&self.first_touch).unwrap_or_default(),
            last_touch: serde_json::from_str(&self.last_touch).unwrap_or_default(),
            owners: related.owners.remove(&id).unwrap_or_default(),
            tags: related.tags.remove(&id).unwrap_or_default(),
            emotional_score: self.emotional_score,
            logical_score: self.logical_score,
            consent: Consents {
                marketing: consent(
                    self.marketing_consent,
                    self.marketing_consent_source,
                    self.marketing_consent_at,
                ),
                whatsapp: consent(
                    self.whatsapp_consent,
                    self.whatsapp_consent_source,
                    self.whatsapp_consent_at,
                ),
            },
            fields: parse_object(&self.fields),
            last_contact_at: self.last_contact_at,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            merged_into: self.merged_into,
        }
    }
}

#[derive(sqlx::FromRow)]
struct KeyedText {
    customer_id: CustomerId,
    a: String,
    b: String,
}

/// Loads phones, emails, identities, owners and tags of `ids` from the read pool.
pub(crate) async fn load_related(db: &Db, ids: &[CustomerId]) -> Result<Related, sqlx::Error> {
    load_related_by(ids, Source::Db(db)).await
}

/// Where [`load_related_by`] reads.
enum Source<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl Source<'_> {
    async fn fetch(&mut self, sql: &Sql) -> Result<Vec<KeyedText>, sqlx::Error> {
        match self {
            Source::Db(db) => crate::sql_fetch_all!(*db, KeyedText, sql),
            Source::Tx(tx) => exec!(&mut **tx, conn => crate::bind_args!(
                sqlx::query_as::<_, KeyedText>(sqlx::AssertSqlSafe(sql.text.clone())),
                sql.args
            )
            .fetch_all(conn)
            .await),
        }
    }
}

/// [`load_related`] in a transaction (a move reads what it writes under one lock).
pub(crate) async fn load_related_tx(
    tx: &mut Tx,
    ids: &[CustomerId],
) -> Result<Related, sqlx::Error> {
    load_related_by(ids, Source::Tx(tx)).await
}

async fn load_related_by(
    ids: &[CustomerId],
    mut source: Source<'_>,
) -> Result<Related, sqlx::Error> {
    let mut related = Related::default();
    if ids.is_empty() {
        return Ok(related);
    }
    let texts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let query = |template: &str| {
        let mut sql = Sql::default();
        let list = sql.in_list(&texts);
        sql.push(&template.replace("{ids}", &list));
        sql
    };
    let phones = query(
        "SELECT customer_id, e164 AS a, raw AS b FROM customer_phones WHERE customer_id IN {ids} ORDER BY customer_id, position",
    );
    for row in source.fetch(&phones).await? {
        related
            .phones
            .entry(row.customer_id)
            .or_default()
            .push(PhoneEntry {
                e164: row.a,
                raw: row.b,
            });
    }
    let emails = query(
        "SELECT customer_id, email AS a, '' AS b FROM customer_emails WHERE customer_id IN {ids} ORDER BY customer_id, position",
    );
    for row in source.fetch(&emails).await? {
        related
            .emails
            .entry(row.customer_id)
            .or_default()
            .push(row.a);
    }
    let identities = query(
        "SELECT customer_id, channel AS a, external_id AS b FROM customer_identities WHERE customer_id IN {ids} ORDER BY customer_id, added_at",
    );
    for row in source.fetch(&identities).await? {
        related
            .identities
            .entry(row.customer_id)
            .or_default()
            .push(Identity {
                channel: row.a,
                external_id: row.b,
            });
    }
    let owners = query(
        "SELECT o.customer_id, u.id AS a, u.name AS b FROM customer_owners o JOIN users u ON u.id = o.user_id
         WHERE o.customer_id IN {ids} ORDER BY o.customer_id, o.since, u.id",
    );
    for row in source.fetch(&owners).await? {
        if let Ok(id) = row.a.parse() {
            related
                .owners
                .entry(row.customer_id)
                .or_default()
                .push(OwnerRef { id, name: row.b });
        }
    }
    let tags = query(
        "SELECT customer_id, tag AS a, '' AS b FROM customer_tags WHERE customer_id IN {ids} ORDER BY customer_id, tag",
    );
    for row in source.fetch(&tags).await? {
        related.tags.entry(row.customer_id).or_default().push(row.a);
    }
    Ok(related)
}

/// One customer with everything the API shows, or None.
pub async fn get(db: &Db, id: CustomerId) -> Result<Option<Customer>, sqlx::Error> {
    let row: Option<CustomerRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await
    })?;
    let Some(row) = row else { return Ok(None) };
    let mut related = load_related(db, &[id]).await?;
    Ok(Some(row.into_customer(&mut related)))
}

/// [`get`] in a transaction.
pub(crate) async fn get_tx(tx: &mut Tx, id: CustomerId) -> Result<Option<Customer>, sqlx::Error> {
    let Some(row) = get_row_tx(tx, id).await? else {
        return Ok(None);
    };
    let mut related = load_related_tx(tx, &[id]).await?;
    Ok(Some(row.into_customer(&mut related)))
}

/// The owners of a customer (for access checks).
pub async fn owner_ids(db: &Db, id: CustomerId) -> Result<Vec<UserId>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT user_id FROM customer_owners WHERE customer_id = $1")
            .bind(id)
            .fetch_all(pool)
            .await
    })
}

pub(crate) async fn get_row_tx(
    tx: &mut Tx,
    id: CustomerId,
) -> Result<Option<CustomerRow>, sqlx::Error> {
    exec!(tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await)
}

/// Recomputes the stored search key from the customer's name, emails and phones.
pub(crate) async fn refresh_search_key(tx: &mut Tx, id: CustomerId) -> Result<(), sqlx::Error> {
    let name: Option<String> = exec!(tx, conn => sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(id).fetch_optional(conn).await)?;
    let Some(name) = name else { return Ok(()) };
    let phones: Vec<String> = exec!(tx, conn => sqlx::query_scalar("SELECT e164 FROM customer_phones WHERE customer_id = $1 ORDER BY position")
        .bind(id).fetch_all(conn).await)?;
    let emails: Vec<String> = exec!(tx, conn => sqlx::query_scalar("SELECT email FROM customer_emails WHERE customer_id = $1 ORDER BY position")
        .bind(id).fetch_all(conn).await)?;
    let key = search_key(&name, &phones, &emails);
    exec!(tx, conn => sqlx::query("UPDATE customers SET search_key = $1, name_key = $2 WHERE id = $3")
        .bind(key).bind(fold::fold(&name)).bind(id).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The folded text searched by name, phone and email: `name|e164 digits|national digits|email`.
pub fn search_key(name: &str, phones: &[String], emails: &[String]) -> String {
    let mut key = fold::fold(name);
    for phone in phones {
        let digits = fold::digits(phone);
        key.push('|');
        key.push_str(&digits);
        if let Some(national) = national_digits(phone) {
            key.push('|');
            key.push_str(&national);
        }
    }
    for email in emails {
        key.push('|');
        key.push_str(&fold::fold(email));
    }
    key
}

/// `+905321234567` → `05321234567` (what Turkish staff type).
fn national_digits(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    let national = parsed
        .format()
        .mode(phonenumber::Mode::National)
        .to_string();
    Some(fold::digits(&national))
}

/// What scoring and assignment rules see as `ctx.customer`.
pub(crate) fn rule_view(
    definitions: &Definitions,
    name: &str,
    source: &str,
    phone: Option<&str>,
    email: Option<&str>,
    fields: &Map<String, Value>,
    extra: &[(&str, Value)],
) -> Value {
    let mut view = Map::new();
    for def in &definitions.customer_fields {
        let value = fields
            .get(def.id.as_str())
            .map_or(Value::Null, |v| crate::crm::fields::rule_value(def.kind, v));
        view.insert(def.id.as_str().to_string(), value);
    }
    view.insert("name".into(), json!(name));
    view.insert("source".into(), json!(source));
    view.insert("phone".into(), json!(phone));
    view.insert("email".into(), json!(email));
    for (key, value) in extra {
        view.insert((*key).to_string(), value.clone());
    }
    Value::Object(view)
}

/// Changes to a customer from `PATCH /api/customers/{id}`.
#[derive(Debug, Clone, Default)]
pub struct CustomerChanges {
    pub name: Option<String>,
    pub fields: Option<Map<String, Value>>,
    pub tags: Option<Vec<String>>,
    pub marketing_consent: Option<bool>,
    pub whatsapp_consent: Option<bool>,
}

pub(crate) fn stale(what: &str, current: i64) -> ApiError {
    ApiError::conflict(
        "stale_version",
        format!(
            "this {what} was changed by someone else (now at version {current}); reload and try again"
        ),
    )
}

/// Validates a tag: trimmed, 1..=50 characters.
pub fn normalize_tag(tag: &str) -> Result<String, String> {
    let tag = tag.trim();
    if tag.is_empty() || tag.chars().count() > 50 {
        return Err("a tag has 1 to 50 characters".into());
    }
    Ok(tag.to_string())
}

/// Applies `changes` if the customer is at `expected_version`. Bumps the version.
pub async fn update(
    db: &Db,
    definitions: &Definitions,
    actor: Option<UserId>,
    id: CustomerId,
    expected_version: i64,
    changes: CustomerChanges,
) -> Result<(), ApiError> {
    let mut errors = BTreeMap::new();
    if let Some(name) = &changes.name
        && (name.trim().is_empty() || name.chars().count() > 200)
    {
        errors.insert(
            "name".into(),
            "a name is required (at most 200 characters)".into(),
        );
    }
    let mut tags = Vec::new();
    for tag in changes.tags.iter().flatten() {
        match normalize_tag(tag) {
            Ok(t) if !tags.contains(&t) => tags.push(t),
            Ok(_) => {}
            Err(e) => {
                errors.insert("tags".into(), e);
            }
        }
    }
    let mut tx = db.begin().await?;
    let Some(row) = get_row_tx(&mut tx, id).await? else {
        return Err(ApiError::not_found("customer"));
    };
    if row.version != expected_version {
        return Err(stale("customer", row.version));
    }
    let current = parse_object(&row.fields);
    let fields = match &changes.fields {
        Some(f) => {
            crate::crm::fields::merge(&definitions.customer_fields, &current, f, &mut errors)
        }
        None => current.clone(),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = Timestamp::now();
    let name = changes
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or(&row.name)
        .to_string();
    let fields_text = Value::Object(fields.clone()).to_string();
    let updated = exec!(&mut tx, conn => sqlx::query(
        "UPDATE customers SET name = $1, fields = $2, version = version + 1, updated_at = $3 WHERE id = $4 AND version = $5")
        .bind(&name).bind(&fields_text).bind(now).bind(id).bind(expected_version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if updated == 0 {
        return Err(stale("customer", row.version));
    }
    if changes.name.is_some() {
        refresh_search_key(&mut tx, id).await?;
    }
    if let Some(granted) = changes.marketing_consent {
        exec!(&mut tx, conn => sqlx::query("UPDATE customers SET marketing_consent = $1, marketing_consent_source = 'staff', marketing_consent_at = $2 WHERE id = $3")
            .bind(granted).bind(now).bind(id).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    if let Some(granted) = changes.whatsapp_consent {
        exec!(&mut tx, conn => sqlx::query("UPDATE customers SET whatsapp_consent = $1, whatsapp_consent_source = 'staff', whatsapp_consent_at = $2 WHERE id = $3")
            .bind(granted).bind(now).bind(id).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    if changes.tags.is_some() {
        exec!(&mut tx, conn => sqlx::query("DELETE FROM customer_tags WHERE customer_id = $1")
            .bind(id).execute(conn).await.map(|r| r.rows_affected()))?;
        for tag in &tags {
            exec!(&mut tx, conn => sqlx::query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)")
                .bind(id).bind(tag).execute(conn).await.map(|r| r.rows_affected()))?;
        }
    }
    let mut changed = Map::new();
    if changes.name.is_some() && name != row.name {
        changed.insert("name".into(), json!({"from": row.name, "to": name}));
    }
    for (key, value) in &fields {
        if current.get(key) != Some(value) {
            changed.insert(key.clone(), json!({"from": current.get(key), "to": value}));
        }
    }
    for key in current.keys().filter(|k| !fields.contains_key(*k)) {
        changed.insert(key.clone(), json!({"from": current.get(key), "to": null}));
    }
    if changes.tags.is_some() {
        changed.insert("tags".into(), json!(tags));
    }
    if let Some(granted) = changes.marketing_consent {
        changed.insert("marketing_consent".into(), json!(granted));
    }
    if let Some(granted) = changes.whatsapp_consent {
        changed.insert("whatsapp_consent".into(), json!(granted));
    }
    crate::crm::cards::refresh_sort_keys_for_customer(&mut tx, definitions, id).await?;
    crate::crm::timeline::append(
        &mut tx,
        crate::crm::timeline::NewEvent {
            customer_id: id,
            card_id: None,
            kind: "customer_updated",
            actor,
            definitions_version: &definitions.version,
            data: json!({"changes": changed}),
        },
    )
    .await?;
    crate::crm::live::customer_updated(&mut tx, id, row.version + 1, Value::Object(changed))
        .await?;
    crate::crm::live::customer_cards_updated(&mut tx, definitions, id, None).await?;
    tx.commit().await?;
    Ok(())
}

/// A page of customers, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerPage {
    pub customers: Vec<Customer>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<CustomerId>,
}

/// Customers matching `filter` that `policy` lets the viewer see, newest first. With
/// `pipeline` (and optionally `stage`) only customers with a card there.
pub async fn list(
    db: &Db,
    filter: &crate::crm::board::Filter,
    policy: &crate::policy::RecordFilter,
    pipeline: Option<&str>,
    stage: Option<&str>,
    cursor: Option<CustomerId>,
    limit: u32,
) -> Result<CustomerPage, sqlx::Error> {
    let limit = limit.clamp(1, 200);
    let mut sql = Sql::new(format!(
        "SELECT {} FROM customers cu WHERE cu.merged_into IS NULL",
        prefixed_columns("cu")
    ));
    crate::crm::board::push_policy(&mut sql, policy, "cu.id");
    filter.push_conditions(&mut sql, "cu.id");
    if let Some(pipeline) = pipeline {
        let p = sql.text_arg(pipeline);
        sql.push(&format!(" AND EXISTS (SELECT 1 FROM cards fc WHERE fc.customer_id = cu.id AND fc.pipeline_id = {p}"));
        if let Some(stage) = stage {
            let s = sql.text_arg(stage);
            sql.push(&format!(" AND fc.stage_id = {s}"));
        }
        sql.push(")");
    }
    if let Some(cursor) = cursor {
        let c = sql.text_arg(cursor.to_string());
        sql.push(&format!(" AND cu.id < {c}"));
    }
    sql.push(&format!(" ORDER BY cu.id DESC LIMIT {}", limit + 1));
    let mut rows = crate::sql_fetch_all!(db, CustomerRow, &sql)?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    let ids: Vec<CustomerId> = rows.iter().map(|r| r.id).collect();
    let mut related = load_related(db, &ids).await?;
    Ok(CustomerPage {
        customers: rows
            .into_iter()
            .map(|r| r.into_customer(&mut related))
            .collect(),
        next_cursor,
    })
}

fn prefixed_columns(alias: &str) -> String {
    CUSTOMER_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
