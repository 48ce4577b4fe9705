//! The request a change belongs to, for the events it writes: the client's operation id
//! (`X-Client-Op`, echoed so a client can skip its own optimistic update) and who is
//! acting. A middleware sets it for the duration of each request; domain code never has
//! to pass it along, and code outside a request (jobs, the CLI) simply has none.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::policy::Actor;
use crate::types::ids::UserId;

/// The header a client sends with a mutating request.
pub const CLIENT_OP_HEADER: &str = "x-client-op";

/// What the current request tells its events.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub op: Option<String>,
    pub actor: Option<(UserId, String)>,
    /// Set by a bulk action: its events are pushed to clients as one.
    pub batch: Option<String>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The context of the request being handled, if any.
pub fn current() -> RequestContext {
    CONTEXT.try_with(Clone::clone).unwrap_or_default()
}

/// The current bulk action's batch id, if any.
pub fn current_batch() -> Option<String> {
    CONTEXT.try_with(|c| c.batch.clone()).ok().flatten()
}

/// Runs `f` as one bulk action: its events carry a fresh batch id (returned with the
/// output) and are pushed to each client as one event.
pub async fn batch<F: std::future::Future>(f: F) -> (String, F::Output) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut context = current();
    context.batch = Some(id.clone());
    (id, scope(context, f).await)
}

/// Runs `f` with `context` (tests, and work a request hands to a task of its own).
pub async fn scope<F: std::future::Future>(context: RequestContext, f: F) -> F::Output {
    CONTEXT.scope(context, f).await
}

/// An op id is the client's own random token: short and plain, or it is ignored.
fn valid_op(op: &str) -> bool {
    !op.is_empty()
        && op.len() <= 64
        && op
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Middleware (after authentication): sets the [`RequestContext`] for the handler.
pub async fn middleware(request: Request, next: Next) -> Response {
    let op = request
        .headers()
        .get(CLIENT_OP_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_op(v))
        .map(str::to_string);
    let actor = request
        .extensions()
        .get::<Actor>()
        .map(|a| (a.user_id, a.name.clone()));
    scope(
        RequestContext {
            op,
            actor,
            batch: None,
        },
        next.run(request),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_context_is_seen_inside_its_scope_only() {
        assert!(current().op.is_none());
        let inside = scope(
            RequestContext {
                op: Some("op-1".into()),
                ..RequestContext::default()
            },
            async { current().op },
        )
        .await;
        assert_eq!(inside.as_deref(), Some("op-1"));
        assert!(current().op.is_none());
    }

    #[test]
    fn only_plain_short_op_ids_are_kept() {
        assert!(valid_op("7f0c-1_a"));
        assert!(!valid_op(""));
        assert!(!valid_op("a b"));
        assert!(!valid_op(&"x".repeat(65)));
    }
}
