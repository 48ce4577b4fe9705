//! `conversion_event`: a Meta Conversions API event for a pipeline transition.
//!
//! `POST {graph}/{version}/{pixel_id}/events` with `{"data": [event]}` shaped like Meta's
//! example (`tests/fixtures/meta/capi_event_request.json`). User data is normalized and
//! SHA-256 hashed as Meta's SDKs do (email: trimmed, lower case; phone: digits with the
//! country code — Turkish national numbers get +90 first; names: trimmed, lower case). The
//! `event_id` derives from the effect key, so a resend after an interrupted call is
//! deduplicated by Meta and never counted twice.

use akis_engine::jobs::effects::Resend;
use akis_engine::jobs::{ConversionEventJob, Handler, JobContext, JobError, JobKind};
use akis_engine::storage::Db;
use akis_engine::types::{Currency, Email, Phone};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::effect::{Sent, run_effect};
use crate::graph::{Failure, Graph, classify, classify_send_error};

/// Lower-case hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Email as Meta hashes it: trimmed and lower-cased.
pub fn normalize_email(raw: &str) -> Option<String> {
    match Email::parse(raw) {
        Ok(email) => Some(email.as_str().to_string()),
        Err(_) => {
            let trimmed = raw.trim().to_lowercase();
            (!trimmed.is_empty() && trimmed.contains('@')).then_some(trimmed)
        }
    }
}

/// Phone as Meta hashes it: digits only, country code included (E.164 without `+`).
pub fn normalize_phone(raw: &str) -> Option<String> {
    let phone = Phone::parse(raw).ok()?;
    let digits: String = phone
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// Names as Meta hashes them: trimmed and lower-cased.
pub fn normalize_name(raw: &str) -> Option<String> {
    let n = raw.trim().to_lowercase();
    (!n.is_empty()).then_some(n)
}

/// The event object for `data`.
pub fn event_body(job: &ConversionEventJob) -> Result<Value, String> {
    let mut user = Map::new();
    let em: Vec<Value> = job
        .emails
        .iter()
        .filter_map(|e| normalize_email(e))
        .map(|e| Value::String(sha256_hex(&e)))
        .collect();
    if !em.is_empty() {
        user.insert("em".into(), Value::Array(em));
    }
    let ph: Vec<Value> = job
        .phones
        .iter()
        .filter_map(|p| normalize_phone(p))
        .map(|p| Value::String(sha256_hex(&p)))
        .collect();
    if !ph.is_empty() {
        user.insert("ph".into(), Value::Array(ph));
    }
    if let Some(n) = job.first_name.as_deref().and_then(normalize_name) {
        user.insert("fn".into(), Value::String(sha256_hex(&n)));
    }
    if let Some(n) = job.last_name.as_deref().and_then(normalize_name) {
        user.insert("ln".into(), Value::String(sha256_hex(&n)));
    }
    if let Some(id) = job
        .external_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        user.insert("external_id".into(), json!([sha256_hex(id)]));
    }
    if let Some(lead) = job.lead_id.as_deref() {
        // Meta wants the lead id as a number; it is not hashed.
        if let Ok(n) = lead.trim().parse::<i64>() {
            user.insert("lead_id".into(), json!(n));
        }
    }
    if user.is_empty() {
        return Err("no usable customer data to match the event (email, phone, name, id)".into());
    }
    let mut event = Map::new();
    event.insert("event_name".into(), json!(job.event_name));
    event.insert(
        "event_time".into(),
        json!(job.event_time.as_datetime().timestamp()),
    );
    event.insert("event_id".into(), json!(job.effect_key.derived_id()));
    event.insert("action_source".into(), json!("system_generated"));
    event.insert("user_data".into(), Value::Object(user));
    let mut custom = Map::new();
    custom.insert("event_source".into(), json!("crm"));
    custom.insert("lead_event_source".into(), json!("Akis"));
    match (job.value_minor, job.currency.as_deref()) {
        (Some(minor), Some(code)) => {
            let currency = Currency::parse(code).map_err(|e| e.to_string())?;
            let value = minor as f64 / 10f64.powi(currency.exponent() as i32);
            custom.insert("value".into(), json!(value));
            custom.insert("currency".into(), json!(currency.code()));
        }
        (Some(_), None) => return Err("a conversion value needs a currency".into()),
        _ => {}
    }
    event.insert("custom_data".into(), Value::Object(custom));
    event.insert("opt_out".into(), json!(false));
    Ok(Value::Object(event))
}

/// The `conversion_event` handler.
#[derive(Clone)]
pub struct ConversionEventHandler {
    pub db: Db,
    pub graph: Graph,
    pub pixel_id: Option<String>,
}

impl ConversionEventHandler {
    async fn send(&self, url: &str, token: &str, body: &Value) -> Result<Sent, Failure> {
        let response = self
            .graph
            .client
            .post(url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| classify_send_error(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Ambiguous(format!("reading the response: {e}")))?;
        if status.is_success() {
            let fbtrace = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
                v.get("fbtrace_id")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            });
            return Ok(Sent {
                external_id: fbtrace,
            });
        }
        Err(classify(status, &bytes))
    }
}

impl Handler for ConversionEventHandler {
    type Job = ConversionEventJob;

    async fn run(&self, ctx: JobContext, job: ConversionEventJob) -> Result<(), JobError> {
        let Some(pixel) = self.pixel_id.clone() else {
            return Err(JobError::permanent("AKIS_META_PIXEL_ID is not configured"));
        };
        let Some(token) = self.graph.access_token.clone() else {
            return Err(JobError::permanent(
                "AKIS_META_ACCESS_TOKEN is not configured",
            ));
        };
        let event = event_body(&job).map_err(JobError::permanent)?;
        let body = json!({ "data": [event] });
        let url = self.graph.url(&format!("{pixel}/events"));
        // Meta deduplicates by event_id: an interrupted call is resent with the same id.
        run_effect(
            &self.db,
            &job.effect_key,
            ConversionEventJob::QUEUE,
            ctx.id,
            Resend::SameId,
            |_| self.send(&url, token.expose(), &body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }
    #[derive(serde::Deserialize)]
    #[allow(non_snake_case)]
    struct Vector {
        field: String,
        input: Option<String>,
        normalized: Option<String>,
        sha256: Option<String>,
        expected_after_CRM_adds_TR_country_code: Option<String>,
    }

    fn vectors() -> Vec<Vector> {
        let path = format!(
            "{}/../tests/fixtures/meta/capi_hash_vectors.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str::<Vectors>(&text)
            .expect("vectors parse")
            .vectors
    }

    #[test]
    fn normalization_and_hashes_match_metas_vectors() {
        let mut checked = 0;
        for v in vectors() {
            if let (Some(normalized), Some(hash)) = (&v.normalized, &v.sha256) {
                assert_eq!(&sha256_hex(normalized), hash, "hash of {normalized}");
                checked += 1;
            }
            let Some(input) = &v.input else { continue };
            let expected = v
                .normalized
                .clone()
                .or(v.expected_after_CRM_adds_TR_country_code.clone());
            let Some(expected) = expected else { continue };
            let got = match v.field.as_str() {
                "ph" => normalize_phone(input),
                "em" => normalize_email(input),
                "ln" | "fn" => normalize_name(input),
                other => panic!("unexpected field {other}"),
            };
            assert_eq!(
                got.as_deref(),
                Some(expected.as_str()),
                "{} {input}",
                v.field
            );
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} checks ran");
    }
}
