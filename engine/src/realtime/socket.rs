//! The Socket.IO endpoint (`/socket.io/`): who may connect and what a client may ask.
//!
//! A connection needs a browser Origin that is this server's own (or listed in
//! `AKIS_ALLOWED_ORIGINS`) — a client without an Origin is not a browser and is judged by
//! its credentials alone — and a valid session cookie or API token (`auth: {token}`).
//! Otherwise the client gets `connect_error` with a message saying why. A client may pass
//! `auth: {after: <position>}` to be replayed what it missed.

use serde::Deserialize;
use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

use super::hub::{Command, Credentials};
use crate::app::AppState;
use crate::crm::customers;
use crate::policy::{Actor, Module, Permission};
use crate::types::ids::CustomerId;

/// The handshake's `auth` object.
#[derive(Debug, Default, Deserialize)]
struct Handshake {
    token: Option<String>,
    after: Option<i64>,
}

/// Why a connection was refused (the message the client's `connect_error` carries).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who the socket is, set by the connect middleware.
#[derive(Clone)]
struct Authenticated {
    actor: Actor,
    credentials: Credentials,
}

/// Builds the Socket.IO layer and its handle for `state`.
pub fn layer(state: &AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        // A client that falls this far behind is disconnected and resumes by position.
        .max_buffer_size(1024)
        .with_state(state.clone())
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    (layer, io)
}

/// The scheme://host[:port] this request was addressed to, as a browser would write it.
fn own_origins(headers: &axum::http::HeaderMap, trust_proxy: bool) -> Vec<String> {
    let host = trust_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .or_else(|| headers.get(axum::http::header::HOST))
        .and_then(|h| h.to_str().ok());
    match host {
        Some(host) => vec![format!("http://{host}"), format!("https://{host}")],
        None => Vec::new(),
    }
}

async fn authenticate(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<Handshake>,
) -> Result<(), Refused> {
    let parts = s.req_parts();
    if let Some(origin) = parts
        .headers
        .get(axum::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        let origin = origin.trim_end_matches('/');
        let allowed = own_origins(&parts.headers, state.config.trust_proxy_headers)
            .iter()
            .chain(state.config.allowed_origins().iter())
            .any(|o| o.eq_ignore_ascii_case(origin));
        if !allowed {
            return Err(Refused(format!(
                "origin {origin} is not allowed; add it to AKIS_ALLOWED_ORIGINS"
            )));
        }
    }
    let token = auth.ok().and_then(|a| a.token).filter(|t| !t.is_empty());
    let cookie = parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == crate::auth::sessions::COOKIE_NAME)
        .map(|c| c.value().to_string());
    let credentials = match (&token, &cookie) {
        (Some(t), _) => Credentials::Token(t.clone()),
        (None, Some(c)) => Credentials::Session(c.clone()),
        (None, None) => return Err(Refused("not logged in".into())),
    };
    let actor = crate::auth::middleware::identify(&state, token, cookie)
        .await
        .map_err(|e| match e {
            crate::http::ApiError::Client { message, .. } => Refused(message),
            _ => Refused("the server cannot check your login right now".into()),
        })?
        .ok_or_else(|| Refused("not logged in (the session has ended)".into()))?;
    s.extensions.insert(Authenticated { actor, credentials });
    Ok(())
}

async fn on_connect(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<Handshake>,
) {
    let Some(who) = s.extensions.get::<Authenticated>() else {
        let _ = s.disconnect();
        return;
    };
    let after = auth.ok().and_then(|a| a.after);
    s.on("subscribe", subscribe);
    s.on("unsubscribe", unsubscribe);
    s.on_disconnect(|s: SocketRef, State(state): State<AppState>| async move {
        state.realtime.send(Command::Leave(s.id));
    });
    state.realtime.send(Command::Join {
        socket: s.clone(),
        actor: who.actor,
        credentials: who.credentials,
        after,
    });
}

#[derive(Debug, Deserialize)]
struct CustomerRef {
    customer_id: CustomerId,
}

/// `subscribe {customer_id}`: events about this customer (timeline, data) until
/// `unsubscribe`. Refused (ack `{ok: false}`) when the user may not see the customer.
async fn subscribe(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(request): TryData<CustomerRef>,
    ack: AckSender,
) {
    let Ok(request) = request else {
        let _ = ack.send(&json!({"ok": false, "message": "send {customer_id}"}));
        return;
    };
    let Some(who) = s.extensions.get::<Authenticated>() else {
        return;
    };
    let defs = state.defs();
    let owners = match customers::owner_ids(&state.db, request.customer_id).await {
        Ok(o) => o,
        Err(_) => {
            let _ = ack.send(&json!({"ok": false, "message": "try again"}));
            return;
        }
    };
    let exists: Option<i64> = crate::read!(&state.db, pool => {
        sqlx::query_scalar("SELECT version FROM customers WHERE id = $1")
            .bind(request.customer_id)
            .fetch_optional(pool)
            .await
    })
    .ok()
    .flatten();
    let exists = exists.is_some();
    if !exists
        || !who
            .actor
            .may_access(&defs, Module::Customers, Permission::View, &owners)
    {
        let _ = ack.send(&json!({"ok": false, "message": "customer not found"}));
        return;
    }
    state
        .realtime
        .send(Command::Subscribe(s.id, request.customer_id));
    let _ = ack.send(&json!({"ok": true}));
}

async fn unsubscribe(
    s: SocketRef,
    State(state): State<AppState>,
    Data(request): Data<CustomerRef>,
    ack: AckSender,
) {
    state
        .realtime
        .send(Command::Unsubscribe(s.id, request.customer_id));
    let _ = ack.send(&json!({"ok": true}));
}
