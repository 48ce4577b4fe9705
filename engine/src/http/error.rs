//! The one API error type. Every handler returns `Result<_, ApiError>`.
//!
//! - 4xx carry a stable machine `code`, a human `message` and, for validation problems,
//!   `fields` (field name → message).
//! - 5xx are opaque: the cause is logged with the request id and the body says only that
//!   something went wrong and which request id to quote. Internals never leak.
//!
//! [`json_errors`] is a middleware that gives every error response the same JSON shape,
//! including those produced outside our handlers (unknown route, wrong method, body too
//! large, timeout, panic), and adds the request id.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `not_found`, `stale_version`, `validation_failed`, …
    pub code: String,
    /// For people; safe to show.
    pub message: String,
    /// Per-field problems, when the request had any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Quote this when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `invalid_definitions`: every problem found in the definition files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<crate::definitions::diagnostic::DiagnosticInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A problem the client can fix (or must wait out).
    #[error("{status} {code}: {message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
        fields: BTreeMap<String, String>,
        retry_after_secs: Option<u64>,
    },
    /// 422 `invalid_definitions`: a definition set was refused; every diagnostic.
    #[error("invalid definitions: {message}")]
    Definitions {
        message: String,
        diagnostics: Vec<crate::definitions::diagnostic::DiagnosticInfo>,
    },
    /// Our fault. Logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
            retry_after_secs: None,
        }
    }

    /// 422 `invalid_definitions` with the diagnostics of the refused set.
    pub fn definitions(
        message: impl Into<String>,
        diagnostics: Vec<crate::definitions::diagnostic::DiagnosticInfo>,
    ) -> Self {
        ApiError::Definitions {
            message: message.into(),
            diagnostics,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 naming what was not found (`"customer"`). Also used for records the caller may
    /// not see, so their existence is not revealed.
    pub fn not_found(what: &str) -> Self {
        Self::client(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 422 with per-field messages.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let message = match fields.len() {
            1 => "one field is invalid".to_string(),
            n => format!("{n} fields are invalid"),
        };
        ApiError::Client {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message,
            fields,
            retry_after_secs: None,
        }
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError::Client {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_requests",
            message: message.into(),
            fields: BTreeMap::new(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::client(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// Attaches one field error (for `Client` errors; ignored on `Internal`).
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        if let ApiError::Client { fields, .. } = &mut self {
            fields.insert(field.into(), message.into());
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Client { status, .. } => *status,
            ApiError::Definitions { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("database pool timed out");
                ApiError::unavailable("the database is busy; try again in a moment")
            }
            other => ApiError::Internal(anyhow::Error::new(other).context("database error")),
        }
    }
}

/// Maps a unique-constraint violation to a client error; anything else stays internal.
pub trait OnConstraint<T> {
    fn on_constraint(
        self,
        constraint_fragment: &str,
        to: impl FnOnce() -> ApiError,
    ) -> Result<T, ApiError>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint(
        self,
        constraint_fragment: &str,
        to: impl FnOnce() -> ApiError,
    ) -> Result<T, ApiError> {
        self.map_err(|e| {
            if is_unique_violation(&e, constraint_fragment) {
                to()
            } else {
                e.into()
            }
        })
    }
}

/// True for a unique violation whose constraint (PostgreSQL) or message (SQLite, which
/// names the columns) contains `fragment`.
pub fn is_unique_violation(e: &sqlx::Error, fragment: &str) -> bool {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.constraint().is_some_and(|c| c.contains(fragment)) || db.message().contains(fragment)
        }
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body, retry_after) = match self {
            ApiError::Client {
                status,
                code,
                message,
                fields,
                retry_after_secs,
            } => (
                status,
                ErrorBody {
                    code: code.to_string(),
                    message,
                    fields,
                    request_id: None,
                    diagnostics: Vec::new(),
                },
                retry_after_secs,
            ),
            ApiError::Definitions {
                message,
                diagnostics,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody {
                    code: "invalid_definitions".into(),
                    message,
                    fields: BTreeMap::new(),
                    request_id: None,
                    diagnostics,
                },
                None,
            ),
            ApiError::Internal(e) => {
                // The span carries the request id (see http::mod).
                tracing::error!(error = ?e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, internal_body(), None)
            }
        };
        let mut response = (status, axum::Json(body.clone())).into_response();
        if let Some(v) = retry_after.and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.extensions_mut().insert(body);
        response
    }
}

fn internal_body() -> ErrorBody {
    ErrorBody {
        code: "internal".into(),
        message: "something went wrong on our side; it has been logged".into(),
        fields: BTreeMap::new(),
        request_id: None,
        diagnostics: Vec::new(),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the field and the problem, never our internals.
                ApiError::unprocessable("invalid_body", describe_json_error(&e.body_text()))
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("malformed_json", describe_json_error(&e.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::client(
                    e.status(),
                    "payload_too_large",
                    "the request body is too large",
                )
            }
            JsonRejection::BytesRejection(e) => ApiError::client(
                e.status(),
                "unreadable_body",
                "the request body could not be read",
            ),
            other => ApiError::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

/// axum prefixes serde's message with its own wording; keep the useful part.
fn describe_json_error(text: &str) -> String {
    let text = text
        .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .trim_start_matches("Failed to parse the request body as JSON: ");
    text.chars().take(300).collect()
}

/// Response extension: this error-status response is a deliberate report (e.g. `/readyz`
/// answering 503) and its body must be left as it is.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

/// Middleware: every 4xx/5xx leaves as an [`ErrorBody`] with the request id.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<KeepBody>().is_some()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut error = match parts.extensions.remove::<ErrorBody>() {
        Some(error) => error,
        None => {
            // Not ours: a rejection from the framework or a middleware. Keep its status,
            // replace the body so clients see one shape (and no internals).
            drop(body);
            generic_body(status)
        }
    };
    error.request_id = request_id;
    let bytes = serde_json::to_vec(&error).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn generic_body(status: StatusCode) -> ErrorBody {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long and was stopped"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        StatusCode::UNAUTHORIZED => ("unauthorized", "log in first"),
        StatusCode::FORBIDDEN => ("forbidden", "you may not do this"),
        StatusCode::TOO_MANY_REQUESTS => ("too_many_requests", "too many requests; slow down"),
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the service is unavailable; try again shortly",
        ),
        s if s.is_server_error() => return internal_body(),
        _ => ("bad_request", "the request is invalid"),
    };
    ErrorBody {
        code: code.into(),
        message: message.into(),
        fields: BTreeMap::new(),
        request_id: None,
        diagnostics: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_opaque() {
        let response =
            ApiError::Internal(anyhow::anyhow!("password=hunter2 in a query")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response
            .extensions()
            .get::<ErrorBody>()
            .expect("body attached");
        assert_eq!(body.code, "internal");
        assert!(!body.message.contains("hunter2"));
    }

    #[test]
    fn validation_errors_list_fields() {
        let mut fields = BTreeMap::new();
        fields.insert("phone".to_string(), "not a phone number".to_string());
        let response = ApiError::validation(fields).into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = response
            .extensions()
            .get::<ErrorBody>()
            .expect("body attached");
        assert_eq!(body.code, "validation_failed");
        assert_eq!(
            body.fields.get("phone").map(String::as_str),
            Some("not a phone number")
        );
    }

    #[test]
    fn throttling_says_when_to_retry() {
        let response = ApiError::too_many_requests("slow down", 30).into_response();
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"30"[..])
        );
    }
}
