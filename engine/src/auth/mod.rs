//! Authentication: who is calling.
//!
//! - Browser sessions: `POST /api/auth/login` sets an HttpOnly, SameSite=Lax cookie holding
//!   a random secret; the server keeps only its SHA-256 in `sessions` (both backends).
//!   State-changing requests authenticated by the cookie must echo the session's CSRF token
//!   in `X-CSRF-Token`.
//! - API tokens: `Authorization: Bearer akis_…`, stored hashed, scoped, revocable.
//! - [`middleware::authenticate`] runs before routing and every extractor: an anonymous
//!   request to any `/api` path except the few in [`middleware::PUBLIC_API`] gets 401.
//!
//! Authorization (what the caller may do) lives in [`crate::policy`].

pub mod http;
pub mod middleware;
pub mod sessions;
pub mod throttle;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::audit::ClientInfo;
use crate::http::ApiError;
use crate::policy::Actor;

/// Shortest password accepted for a new or changed password.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest, so hashing cost stays bounded.
pub const MAX_PASSWORD_LEN: usize = 256;

/// 32 random bytes, hex-encoded: session secrets, CSRF tokens, API token secrets.
pub fn random_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("system RNG failed: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Hex SHA-256: how session and token secrets are stored.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Constant-time comparison for secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks a new password against the policy; the message is for the user.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(format!("use at least {MIN_PASSWORD_LEN} characters"));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(format!("use at most {MAX_PASSWORD_LEN} characters"));
    }
    Ok(())
}

/// argon2id with the crate's recommended parameters, off the async threads.
pub async fn hash_password(password: &str) -> Result<String, ApiError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing task failed: {e}")))?
}

pub fn hash_password_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}

/// A hash of nothing in particular: verified against when the email is unknown, so a
/// wrong email costs the same time as a wrong password (no account enumeration by timing).
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password_blocking("akis-dummy-password").unwrap_or_default());

/// Verifies `password` against a stored hash (or the dummy when there is none), off the
/// async threads. Malformed hashes verify as false.
pub async fn verify_password(password: &str, hash: Option<&str>) -> bool {
    let password = password.to_string();
    let hash = hash.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let stored = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), stored.as_str())
            .is_ok();
        // Without a stored hash the work is done only for its timing: never a match.
        ok && known
    })
    .await
    .unwrap_or(false)
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("log in first"))
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(client_info(parts, state.config.trust_proxy_headers))
    }
}

/// The caller's address (the first `X-Forwarded-For` hop when proxy headers are trusted)
/// and user agent.
pub fn client_info(parts: &Parts, trust_proxy_headers: bool) -> ClientInfo {
    let forwarded = trust_proxy_headers
        .then(|| {
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
        })
        .flatten();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(256).collect());
    ClientInfo {
        ip: forwarded.or(peer),
        user_agent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("doğru-parola").await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("doğru-parola", Some(&hash)).await);
        assert!(!verify_password("yanlış-parola", Some(&hash)).await);
        assert!(!verify_password("doğru-parola", Some("not a hash")).await);
        assert!(
            !verify_password("akis-dummy-password", None).await,
            "the dummy never authenticates"
        );
    }

    #[test]
    fn secrets_are_random_and_hashed_for_storage() {
        let a = random_secret().expect("rng");
        let b = random_secret().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, &b));
        assert!(!secrets_equal("short", "longer"));
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("1234567").is_err());
        assert!(check_password_policy("12345678").is_ok());
        assert!(check_password_policy(&"x".repeat(300)).is_err());
    }
}
