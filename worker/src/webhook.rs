//! `webhook`: POST a JSON event to a URL declared in YAML, signed with HMAC-SHA256.
//!
//! Body: `{"id": <delivery id>, "event": <name>, "data": <data>}`. Headers:
//! `X-Akis-Signature-256: sha256=<hex HMAC-SHA256 of the exact body bytes>`,
//! `X-Akis-Event`, `X-Akis-Delivery` (the delivery id, stable across retries so receivers
//! can deduplicate). A receiver verifies with [`verify`]. 2xx is success; 408, 429 and 5xx
//! are retried; any other status is permanent.

use akis_engine::jobs::effects::{EffectKey, Resend};
use akis_engine::jobs::{Handler, JobContext, JobError, JobKind, WebhookJob};
use akis_engine::storage::Db;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::effect::{Sent, run_effect};
use crate::graph::Failure;

pub const SIGNATURE_HEADER: &str = "X-Akis-Signature-256";
pub const EVENT_HEADER: &str = "X-Akis-Event";
pub const DELIVERY_HEADER: &str = "X-Akis-Delivery";

/// `sha256=<hex>` for `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

// HMAC accepts keys of any length; this is never reached.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(b"k").expect("HMAC takes any key length")
}

/// Checks a `sha256=<hex>` header in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_part) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `webhook` handler.
#[derive(Clone)]
pub struct WebhookHandler {
    pub db: Db,
    pub client: reqwest::Client,
    pub secret: Option<Vec<u8>>,
}

impl WebhookHandler {
    async fn post(&self, job: &WebhookJob, secret: &[u8]) -> Result<Sent, Failure> {
        let delivery = job.effect_key.derived_id();
        let body = serde_json::to_vec(&serde_json::json!({
            "id": delivery,
            "event": job.event,
            "data": job.data,
        }))
        .map_err(|e| Failure::Permanent(format!("cannot encode the body: {e}")))?;
        let signature = sign(secret, &body);
        let response = self
            .client
            .post(&job.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, &job.event)
            .header(DELIVERY_HEADER, &delivery)
            .body(body)
            .send()
            .await
            .map_err(|e| crate::graph::classify_send_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent::default());
        }
        let reason = format!("the receiver answered HTTP {status}");
        Err(match status.as_u16() {
            408 | 429 => Failure::Transient(reason),
            s if s >= 500 => Failure::Ambiguous(reason),
            _ => Failure::Permanent(reason),
        })
    }
}

impl Handler for WebhookHandler {
    type Job = WebhookJob;

    async fn run(&self, ctx: JobContext, job: WebhookJob) -> Result<(), JobError> {
        let Some(secret) = self.secret.clone() else {
            return Err(JobError::permanent(
                "AKIS_WEBHOOK_SECRET is not configured: outgoing webhooks cannot be signed",
            ));
        };
        if !(job.url.starts_with("https://") || job.url.starts_with("http://")) {
            return Err(JobError::permanent(format!(
                "webhook URL must be http(s): {}",
                job.url.chars().take(100).collect::<String>()
            )));
        }
        let key: EffectKey = job.effect_key.clone();
        // Receivers deduplicate by the delivery id, so an interrupted call is resent.
        run_effect(
            &self.db,
            &key,
            WebhookJob::QUEUE,
            ctx.id,
            Resend::SameId,
            |_| self.post(&job, &secret),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_tampered_body_does_not() {
        let body = br#"{"event":"card.moved"}"#;
        let header = sign(b"s3cret", body);
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), "sha256=".len() + 64);
        assert!(verify(b"s3cret", body, &header));
        assert!(!verify(b"s3cret", br#"{"event":"card.moved2"}"#, &header));
        assert!(!verify(b"other", body, &header));
        assert!(!verify(b"s3cret", body, "sha256=zz"));
        assert!(!verify(b"s3cret", body, "md5=00"));
    }

    #[test]
    fn the_signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
