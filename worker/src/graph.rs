//! The Meta Graph API as the handlers see it: one HTTP client with timeouts, the base URL
//! and token from the configuration, and the classification of Graph errors into
//! transient (retry later) and permanent (dead at once).

use std::time::Duration;

use akis_engine::config::{JobsConfig, Secret};
use serde::Deserialize;

/// Graph error codes worth retrying: throttling (4, 17, 32, 613, 80007, 130429, 131056),
/// temporary service errors (1, 2, 131000, 131016, 133004) and 341 (phone number limit).
const TRANSIENT_CODES: [i64; 13] = [
    1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131000, 131016, 131056, 133004,
];

/// The Graph API settings and the shared client.
#[derive(Clone, Debug)]
pub struct Graph {
    pub client: reqwest::Client,
    pub base_url: String,
    pub version: String,
    /// Debug-redacted.
    pub access_token: Option<Secret>,
}

impl Graph {
    pub fn from_config(client: reqwest::Client, config: &JobsConfig) -> Self {
        Self {
            client,
            base_url: config.graph_base_url.trim_end_matches('/').to_string(),
            version: config.graph_api_version.trim_matches('/').to_string(),
            access_token: config.meta_access_token.clone(),
        }
    }

    /// `{base}/{version}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base_url,
            self.version,
            path.trim_start_matches('/')
        )
    }
}

/// The one HTTP client of a worker process.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("akis/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A Graph API error body: `{"error": {"message", "type", "code", "error_subcode", …}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorBody {
    pub error: GraphError,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    pub code: i64,
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
    #[serde(default)]
    pub error_data: Option<serde_json::Value>,
}

/// What a failed call means for the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retry later; the remote side did not act.
    Transient(String),
    /// Retrying cannot help.
    Permanent(String),
    /// The remote side answered with something we cannot interpret: it may or may not
    /// have acted.
    Ambiguous(String),
}

/// Classifies a non-2xx Graph response.
pub fn classify(status: reqwest::StatusCode, body: &[u8]) -> Failure {
    match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(GraphErrorBody { error }) => {
            let mut reason = format!("Graph error {}", error.code);
            if let Some(sub) = error.error_subcode {
                reason.push_str(&format!(" (subcode {sub})"));
            }
            if !error.message.is_empty() {
                reason.push_str(": ");
                reason.push_str(&error.message.chars().take(300).collect::<String>());
            }
            if TRANSIENT_CODES.contains(&error.code) {
                Failure::Transient(reason)
            } else {
                Failure::Permanent(reason)
            }
        }
        Err(_) if status.is_server_error() => {
            Failure::Ambiguous(format!("HTTP {status} without a Graph error body"))
        }
        Err(_) if status == reqwest::StatusCode::TOO_MANY_REQUESTS => {
            Failure::Transient(format!("HTTP {status}"))
        }
        Err(_) => Failure::Permanent(format!("HTTP {status} without a Graph error body")),
    }
}

/// Classifies a request that got no response.
pub fn classify_send_error(e: &reqwest::Error) -> Failure {
    if e.is_connect() || e.is_builder() {
        // The request never reached the server.
        Failure::Transient(format!("cannot connect: {e}"))
    } else {
        Failure::Ambiguous(format!("no response: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/meta/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    #[test]
    fn an_expired_token_is_permanent() {
        let f = classify(
            reqwest::StatusCode::UNAUTHORIZED,
            &fixture("whatsapp_error_response_190_expired_token.json"),
        );
        assert!(
            matches!(&f, Failure::Permanent(r) if r.contains("190")),
            "{f:?}"
        );
    }

    #[test]
    fn an_invalid_parameter_is_permanent() {
        let f = classify(
            reqwest::StatusCode::BAD_REQUEST,
            &fixture("whatsapp_error_response.json"),
        );
        assert!(
            matches!(&f, Failure::Permanent(r) if r.contains("131009")),
            "{f:?}"
        );
    }

    #[test]
    fn rate_limits_are_transient() {
        for code in [130429, 131056, 4, 80007] {
            let body = format!(
                r#"{{"error":{{"message":"slow down","type":"OAuthException","code":{code}}}}}"#
            );
            let f = classify(reqwest::StatusCode::BAD_REQUEST, body.as_bytes());
            assert!(matches!(f, Failure::Transient(_)), "{code}: {f:?}");
        }
    }

    #[test]
    fn not_on_whatsapp_and_missing_template_are_permanent() {
        for code in [131026, 132001] {
            let body = format!(r#"{{"error":{{"message":"no","code":{code}}}}}"#);
            let f = classify(reqwest::StatusCode::BAD_REQUEST, body.as_bytes());
            assert!(matches!(f, Failure::Permanent(_)), "{code}: {f:?}");
        }
    }

    #[test]
    fn a_bare_server_error_is_ambiguous() {
        let f = classify(
            reqwest::StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        assert!(matches!(f, Failure::Ambiguous(_)), "{f:?}");
    }
}
