//! Authentication before routing: every request under `/api` is resolved to an [`Actor`]
//! (session cookie or bearer token) or refused with 401 — before path, query or body are
//! even looked at — except the public endpoints in [`PUBLIC_API`].
//!
//! Cookie-authenticated requests that change state must carry the session's CSRF token in
//! `X-CSRF-Token` (bearer requests need none: a browser never attaches them by itself).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{secrets_equal, sessions, tokens};
use crate::app::AppState;
use crate::http::ApiError;
use crate::policy::{Actor, AuthVia};

/// The `/api` endpoints that answer without authentication. A test checks that every other
/// `/api` operation in the OpenAPI document refuses anonymous requests, and that the
/// document marks exactly these as public.
pub const PUBLIC_API: &[(Method, &str)] = &[
    (Method::POST, "/api/auth/login"),
    (Method::POST, "/api/auth/logout"),
    (Method::GET, "/api/auth/session"),
];

pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn is_public(method: &Method, path: &str) -> bool {
    PUBLIC_API.iter().any(|(m, p)| m == method && *p == path)
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if !is_api(&path) {
        return next.run(request).await;
    }
    let public = is_public(request.method(), &path);
    let bearer = request.headers().get(header::AUTHORIZATION).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    });
    let cookie = session_cookie(&request);
    let actor = match identify(&state, bearer, cookie).await {
        Ok(actor) => actor,
        Err(e) => return e.into_response(),
    };
    match actor {
        Some(actor) => {
            if let AuthVia::Session { csrf_token, .. } = &actor.via
                && changes_state(request.method())
                && !public
            {
                let sent = request
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !secrets_equal(sent, csrf_token) {
                    return ApiError::client(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "missing or wrong X-CSRF-Token header; fetch the token from GET /api/auth/session",
                    )
                    .into_response();
                }
            }
            request.extensions_mut().insert(actor);
        }
        None if public => {}
        None => return ApiError::unauthorized("log in first").into_response(),
    }
    next.run(request).await
}

/// Resolves the caller: a bearer token wins over a cookie. A bearer token that does not
/// resolve is an error (the caller clearly meant to authenticate); a stale cookie is just
/// anonymous.
pub(crate) async fn identify(
    state: &AppState,
    bearer: Option<String>,
    cookie: Option<String>,
) -> Result<Option<Actor>, ApiError> {
    if let Some(token) = bearer {
        return match tokens::resolve(&state.db, &token).await? {
            Some(actor) => Ok(Some(actor)),
            None => Err(ApiError::client(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the API token is invalid, expired or revoked",
            )),
        };
    }
    match cookie {
        Some(secret) => sessions::resolve(&state.db, &state.config, &secret).await,
        None => Ok(None),
    }
}

/// The session secret from the `Cookie` header, if any.
pub fn session_cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == sessions::COOKIE_NAME)
        .map(|c| c.value().to_string())
}
