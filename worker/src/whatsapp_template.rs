//! `whatsapp_template`: a WhatsApp Cloud API template message.
//!
//! `POST {graph}/{version}/{phone_number_id}/messages` shaped like
//! `tests/fixtures/meta/whatsapp_template_send_request.json`, plus
//! `biz_opaque_callback_data` carrying the effect key so status webhooks can be matched
//! back to the effect. A WhatsApp send is not idempotent: a run that died mid-call is never
//! resent — the effect is marked `unknown` for an admin (see the effect ledger).

use akis_engine::jobs::effects::Resend;
use akis_engine::jobs::{Handler, JobContext, JobError, JobKind, WhatsappTemplateJob};
use akis_engine::storage::Db;
use akis_engine::types::Phone;
use serde_json::{Value, json};

use crate::effect::{Sent, run_effect};
use crate::graph::{Failure, Graph, classify, classify_send_error};

/// The request body.
pub fn request_body(job: &WhatsappTemplateJob) -> Result<Value, String> {
    let phone = Phone::parse(&job.to).map_err(|e| e.to_string())?;
    let to: String = phone
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if job.template.trim().is_empty() || job.language.trim().is_empty() {
        return Err("a template message needs a template name and a language".into());
    }
    let mut template = json!({
        "name": job.template,
        "language": { "policy": "deterministic", "code": job.language },
    });
    if !job.body_parameters.is_empty() {
        let parameters: Vec<Value> = job
            .body_parameters
            .iter()
            .map(|p| json!({ "type": "text", "text": p }))
            .collect();
        template["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    Ok(json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": template,
        "biz_opaque_callback_data": job.effect_key.as_str(),
    }))
}

/// The `whatsapp_template` handler.
#[derive(Clone)]
pub struct WhatsappTemplateHandler {
    pub db: Db,
    pub graph: Graph,
    pub phone_number_id: Option<String>,
}

impl WhatsappTemplateHandler {
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
            let id = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
                v.pointer("/messages/0/id")
                    .and_then(|id| id.as_str())
                    .map(str::to_string)
            });
            return Ok(Sent { external_id: id });
        }
        Err(classify(status, &bytes))
    }
}

impl Handler for WhatsappTemplateHandler {
    type Job = WhatsappTemplateJob;

    async fn run(&self, ctx: JobContext, job: WhatsappTemplateJob) -> Result<(), JobError> {
        let Some(number) = self.phone_number_id.clone() else {
            return Err(JobError::permanent(
                "AKIS_WHATSAPP_PHONE_NUMBER_ID is not configured",
            ));
        };
        let Some(token) = self.graph.access_token.clone() else {
            return Err(JobError::permanent(
                "AKIS_META_ACCESS_TOKEN is not configured",
            ));
        };
        let body = request_body(&job).map_err(JobError::permanent)?;
        let url = self.graph.url(&format!("{number}/messages"));
        run_effect(
            &self.db,
            &job.effect_key,
            WhatsappTemplateJob::QUEUE,
            ctx.id,
            Resend::Never,
            |_| self.send(&url, token.expose(), &body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akis_engine::jobs::effects::EffectKey;

    #[test]
    fn the_body_has_the_documented_shape() {
        let path = format!(
            "{}/../tests/fixtures/meta/whatsapp_template_send_request.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
        let job = WhatsappTemplateJob {
            effect_key: EffectKey::new("k1"),
            customer_id: None,
            to: "+1 234 567 8901".into(),
            template: "Subscribe".into(),
            language: "en_US".into(),
            body_parameters: vec!["newsletter".into()],
        };
        let mut body = request_body(&job).expect("valid");
        assert_eq!(body["biz_opaque_callback_data"], "k1");
        body.as_object_mut()
            .expect("object")
            .remove("biz_opaque_callback_data");
        assert_eq!(body, fixture);
    }

    #[test]
    fn a_turkish_national_number_gets_its_country_code() {
        let job = WhatsappTemplateJob {
            effect_key: EffectKey::new("k"),
            customer_id: None,
            to: "0532 123 45 67".into(),
            template: "t".into(),
            language: "tr".into(),
            body_parameters: vec![],
        };
        let body = request_body(&job).expect("valid");
        assert_eq!(body["to"], "905321234567");
        assert!(body["template"].get("components").is_none());
    }
}
