//! `lead_fetch`: fetches a Meta lead ad lead by its leadgen id
//! (`GET {graph}/{version}/{leadgen_id}`) and hands it to the shared intake, so it is
//! de-duplicated like every other lead. A read has no external effect: a re-run fetches
//! again, and intake absorbs the repeat through the lead's key (`meta:<leadgen id>`).
//!
//! Field mapping (`field_data[].name`): `full_name` (or `first_name` + `last_name`),
//! `phone_number`, `email`; a field whose name is a `customer_fields` id fills it; the rest
//! go into the notes as `question: answer` lines.

use akis_engine::crm::customers::Attribution;
use akis_engine::crm::intake::{self, Lead};
use akis_engine::definitions::{Definitions, LiveDefinitions};
use akis_engine::http::ApiError;
use akis_engine::jobs::{Handler, JobContext, JobError, LeadFetchJob};
use akis_engine::storage::Db;
use serde::Deserialize;
use serde_json::Value;

use crate::graph::{Failure, Graph, classify, classify_send_error};

/// The `lead_fetch` handler.
#[derive(Clone)]
pub struct LeadFetchHandler {
    pub db: Db,
    pub graph: Graph,
    pub definitions: LiveDefinitions,
}

/// The Graph API's lead object (`tests/fixtures/meta/graph_lead_response.json`).
#[derive(Debug, Deserialize)]
pub struct GraphLead {
    pub id: String,
    #[serde(default)]
    pub ad_id: Option<String>,
    #[serde(default)]
    pub adset_id: Option<String>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub form_id: Option<String>,
    #[serde(default)]
    pub field_data: Vec<FieldDatum>,
}

#[derive(Debug, Deserialize)]
pub struct FieldDatum {
    pub name: String,
    #[serde(default)]
    pub values: Vec<Value>,
}

fn text(values: &[Value]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Turns a Graph lead into an intake lead.
pub fn to_lead(definitions: &Definitions, lead: &GraphLead) -> Lead {
    let mut out = Lead {
        source: Some("meta_lead_ad".into()),
        external_key: Some(format!("meta:{}", lead.id)),
        attribution: Attribution {
            utm_source: Some("facebook".into()),
            campaign_id: lead.campaign_id.clone(),
            adset_id: lead.adset_id.clone(),
            ad_id: lead.ad_id.clone(),
            ..Attribution::default()
        },
        ..Lead::default()
    };
    let (mut first, mut last, mut notes) = (None, None, Vec::new());
    for datum in &lead.field_data {
        let Some(value) = text(&datum.values) else {
            continue;
        };
        match datum.name.as_str() {
            "full_name" | "name" => out.name = value,
            "first_name" => first = Some(value),
            "last_name" => last = Some(value),
            "phone_number" | "phone" => out.phone = Some(value),
            "email" => out.email = Some(value),
            other
                if definitions
                    .customer_fields
                    .iter()
                    .any(|f| f.id.as_str() == other) =>
            {
                out.fields.insert(other.to_string(), Value::String(value));
            }
            other => notes.push(format!("{}: {value}", other.replace('_', " "))),
        }
    }
    if out.name.trim().is_empty() {
        out.name = [first, last]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
    }
    if out.name.trim().is_empty() {
        out.name = out
            .phone
            .clone()
            .or_else(|| out.email.clone())
            .unwrap_or_default();
    }
    if let Some(form) = &lead.form_id {
        notes.push(format!("form: {form}"));
    }
    out.notes = (!notes.is_empty()).then(|| notes.join("\n"));
    out
}

impl LeadFetchHandler {
    async fn fetch(&self, leadgen_id: &str, token: &str) -> Result<GraphLead, Failure> {
        if !leadgen_id.chars().all(|c| c.is_ascii_digit()) || leadgen_id.is_empty() {
            return Err(Failure::Permanent(format!(
                "`{leadgen_id}` is not a leadgen id"
            )));
        }
        let url = format!(
            "{}?fields=id,created_time,ad_id,adset_id,campaign_id,form_id,field_data",
            self.graph.url(leadgen_id)
        );
        let response = self
            .graph
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| classify_send_error(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient(format!("reading the response: {e}")))?;
        if !status.is_success() {
            return Err(classify(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Permanent(format!("the lead is not in the documented shape: {e}"))
        })
    }
}

impl Handler for LeadFetchHandler {
    type Job = LeadFetchJob;

    async fn run(&self, _ctx: JobContext, job: LeadFetchJob) -> Result<(), JobError> {
        let Some(token) = self.graph.access_token.clone() else {
            return Err(JobError::permanent(
                "AKIS_META_ACCESS_TOKEN is not configured",
            ));
        };
        let mut lead = match self.fetch(&job.leadgen_id, token.expose()).await {
            Ok(lead) => lead,
            // A read never acted on anything: an ambiguous failure is simply retried.
            Err(Failure::Transient(reason) | Failure::Ambiguous(reason)) => {
                return Err(JobError::transient(reason));
            }
            Err(Failure::Permanent(reason)) => return Err(JobError::permanent(reason)),
        };
        if lead.ad_id.is_none() {
            lead.ad_id = job.ad_id.clone();
        }
        if lead.form_id.is_none() {
            lead.form_id = job.form_id.clone();
        }
        let mut intake_lead = to_lead(&self.definitions.current(), &lead);
        intake_lead.attribution.at = job.created_time;
        let taken = akis_engine::runtime::retry_on_reload(&self.db, &self.definitions, |defs| {
            let lead = intake_lead.clone();
            async move { intake::intake(&self.db, &defs, lead).await }
        })
        .await;
        match taken {
            Ok(outcome) => {
                tracing::info!(customer = %outcome.customer_id, matched = outcome.matched, duplicate = outcome.duplicate, "Meta lead received");
                Ok(())
            }
            // A reload raced this job twice in a row: try again later, never drop the lead.
            Err(e) if akis_engine::runtime::is_definitions_changed(&e) => {
                Err(JobError::transient("the definitions changed during intake"))
            }
            Err(ApiError::Definitions { message, .. }) => Err(JobError::transient(message)),
            Err(ApiError::Client {
                message, fields, ..
            }) => Err(JobError::permanent(format!(
                "the lead cannot be taken in: {message} {fields:?}"
            ))),
            Err(ApiError::Internal(e)) => Err(JobError::transient(format!("intake failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_lead_maps_to_an_intake_lead() {
        let body = std::fs::read(format!(
            "{}/../tests/fixtures/meta/graph_lead_response.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let lead: GraphLead = serde_json::from_slice(&body).expect("documented shape");
        let definitions = akis_engine::definitions::Definitions::load(
            akis_engine::definitions::SourceSet::from_dir(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.."
            )))
            .expect("sources"),
        )
        .definitions
        .expect("valid definitions");
        let out = to_lead(&definitions, &lead);
        assert_eq!(out.name, "Joe Example");
        assert_eq!(out.email.as_deref(), Some("joe@example.com"));
        assert_eq!(out.external_key.as_deref(), Some("meta:<LEAD_ID>"));
        assert_eq!(out.source.as_deref(), Some("meta_lead_ad"));
        assert_eq!(out.attribution.ad_id.as_deref(), Some("<AD_ID>"));
        let notes = out.notes.expect("other answers kept");
        assert!(
            notes.contains("car make: Honda") && notes.contains("selected dealer: 99213450"),
            "{notes}"
        );
    }
}
