//! The hub: one task per node that owns the node's sockets and pushes the event log to
//! them.
//!
//! It is an actor: joins, leaves, subscriptions and log reads are handled one at a time,
//! so a joining client's replay and the live stream never overlap or leave a gap — the
//! replay covers exactly the events up to the last one pushed live, and the client is
//! registered for the next. Every event goes to a socket only when the policy says its
//! user may see it (the same [`Actor::may_access`] the API's queries use), evaluated at
//! push time with the user's current role and the definitions in force.
//!
//! Events of one bulk action (a batch) are held back until the action's `batch.end`
//! marker (or a short quiet period) and pushed as one `cards.moved` per client.
//! A socket whose send buffer is full is disconnected: the client reconnects with its
//! last position and is replayed what it missed, so a slow client never silently loses
//! events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use tokio::sync::{mpsc, watch};

use super::log::{self, Audience, NewEvent, Sight, StoredEvent, kinds};
use crate::app::AppState;
use crate::definitions::Definitions;
use crate::policy::Actor;
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::{CustomerId, UserId};

/// How long the events of a bulk action wait for more of their batch when its end marker
/// has not arrived (a crashed bulk request still gets pushed).
const BATCH_QUIET: Duration = Duration::from_millis(400);
/// Most events a reconnecting client is replayed; beyond it, it is told to reload.
const MAX_REPLAY: usize = 10_000;
/// How often every open socket's credentials are checked again (idle sessions end).
const REVALIDATE_EVERY: Duration = Duration::from_secs(60);
/// Presence rows of a node that stopped refreshing them are swept after this.
const PRESENCE_STALE: Duration = Duration::from_secs(90);

/// How a socket proved who it is; kept to check again when access changes.
#[derive(Debug, Clone)]
pub enum Credentials {
    Session(String),
    Token(String),
}

/// What the socket layer tells the hub.
pub(crate) enum Command {
    Join {
        socket: SocketRef,
        actor: Actor,
        credentials: Credentials,
        after: Option<i64>,
    },
    Leave(Sid),
    Subscribe(Sid, CustomerId),
    Unsubscribe(Sid, CustomerId),
    Revalidated(Sid, Option<Actor>),
}

/// The node's handle on its hub (in [`AppState`]). Cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    tx: mpsc::UnboundedSender<Command>,
    /// This process's id in the presence table.
    pub node_id: Arc<str>,
}

/// The receiving end, taken by [`run`].
pub struct Inbox(mpsc::UnboundedReceiver<Command>);

impl Realtime {
    pub fn new() -> (Self, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                node_id: Arc::from(uuid::Uuid::now_v7().to_string()),
            },
            Inbox(rx),
        )
    }

    pub(crate) fn send(&self, command: Command) {
        // A stopped hub (shutdown) has nobody left to tell.
        let _ = self.tx.send(command);
    }
}

struct Entry {
    socket: SocketRef,
    actor: Actor,
    credentials: Credentials,
    customers: HashSet<CustomerId>,
}

struct PendingBatch {
    events: Vec<StoredEvent>,
    touched: Instant,
}

struct Hub {
    state: AppState,
    sockets: HashMap<Sid, Entry>,
    by_user: HashMap<UserId, HashSet<Sid>>,
    by_customer: HashMap<CustomerId, HashSet<Sid>>,
    /// The last position read from the log (pushed, or held in a batch).
    last: i64,
    batches: BTreeMap<String, PendingBatch>,
}

#[derive(Serialize)]
struct By<'a> {
    id: &'a str,
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    position: i64,
    #[serde(rename = "type")]
    kind: &'a str,
    at: Timestamp,
    by: Option<By<'a>>,
    op: Option<&'a str>,
    data: &'a RawValue,
}

/// The JSON a client receives for `event` sent as `kind` with `data`.
fn envelope(event: &StoredEvent, kind: &str, data: &RawValue) -> Box<RawValue> {
    let body = Envelope {
        position: event.position,
        kind,
        at: event.at,
        by: event.actor_id.as_deref().map(|id| By {
            id,
            name: event.actor_name.as_deref(),
        }),
        op: event.op.as_deref(),
        data,
    };
    serde_json::value::to_raw_value(&body).unwrap_or_else(|_| null_raw())
}

fn null_raw() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| null_raw())
}

fn data_of(event: &StoredEvent) -> Box<RawValue> {
    RawValue::from_string(event.data.clone()).unwrap_or_else(|_| null_raw())
}

/// The `card.added` / `card.removed` a user gets instead of a card event when the card
/// entered or left their view.
fn entered_or_left(event: &StoredEvent, sight: Sight) -> Option<(&'static str, Box<RawValue>)> {
    let data: Value = serde_json::from_str(&event.data).ok()?;
    match sight {
        Sight::Entered => Some((
            kinds::CARD_ADDED,
            raw(&json!({"card": data["card"], "pipeline_id": data["pipeline_id"]})),
        )),
        Sight::Left => Some((
            kinds::CARD_REMOVED,
            raw(&json!({
                "card_id": data["card"]["id"],
                "pipeline_id": data["pipeline_id"],
                "reason": "reassigned",
            })),
        )),
        _ => None,
    }
}

/// Sends; a socket that cannot take more is disconnected (it will resume).
fn emit(entry: &Entry, kind: &str, payload: &RawValue) {
    if let Err(e) = entry.socket.emit(kind, payload) {
        tracing::debug!(sid = %entry.socket.id, error = %e, "socket cannot take more events; disconnecting it so it resumes");
        let _ = entry.socket.clone().disconnect();
    }
}

impl Hub {
    fn defs(&self) -> Arc<Definitions> {
        self.state.defs()
    }

    fn db(&self) -> &Db {
        &self.state.db
    }

    /// The sockets an event may concern.
    fn candidates(&self, audience: &Audience) -> Vec<Sid> {
        match audience {
            Audience::Customer { customer_id, .. } => self
                .by_customer
                .get(customer_id)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
            Audience::User(user) => self
                .by_user
                .get(user)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
            Audience::Internal => Vec::new(),
            _ => self.sockets.keys().copied().collect(),
        }
    }

    /// Pushes one (non-batched) event to every socket that may see it.
    fn deliver(&self, event: &StoredEvent) {
        let audience = event.audience();
        let defs = self.defs();
        let data = data_of(event);
        let full = envelope(event, &event.kind, &data);
        let mut variants: HashMap<&'static str, Box<RawValue>> = HashMap::new();
        for sid in self.candidates(&audience) {
            let Some(entry) = self.sockets.get(&sid) else {
                continue;
            };
            let subscribed = audience
                .customer()
                .is_some_and(|c| entry.customers.contains(&c));
            match audience.sight(&entry.actor, &defs, subscribed) {
                Sight::None => {}
                Sight::Full => emit(entry, &event.kind, &full),
                sight => {
                    if let Some((kind, data)) = entered_or_left(event, sight) {
                        let payload = variants
                            .entry(kind)
                            .or_insert_with(|| envelope(event, kind, &data));
                        emit(entry, kind, payload);
                    }
                }
            }
        }
    }

    /// The `cards.moved` events one socket gets for a batch: one per pipeline, with the
    /// moves it may see.
    fn batch_payloads(
        defs: &Definitions,
        entry: &Entry,
        events: &[StoredEvent],
    ) -> Vec<Box<RawValue>> {
        let mut by_pipeline: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut last: Option<&StoredEvent> = None;
        for event in events {
            if event.audience().sight(&entry.actor, defs, false) == Sight::None {
                continue;
            }
            let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let pipeline = data["pipeline_id"].as_str().unwrap_or_default().to_string();
            by_pipeline.entry(pipeline).or_default().push(json!({
                "card": data["card"],
                "from": data["from"],
                "to": data["to"],
            }));
            last = Some(event);
        }
        let Some(last) = last else {
            return Vec::new();
        };
        by_pipeline
            .into_iter()
            .map(|(pipeline, moves)| {
                let data = raw(&json!({"pipeline_id": pipeline, "moves": moves}));
                envelope(last, kinds::CARDS_MOVED, &data)
            })
            .collect()
    }

    fn flush_batch(&mut self, batch: &str) {
        let Some(pending) = self.batches.remove(batch) else {
            return;
        };
        let defs = self.defs();
        for entry in self.sockets.values() {
            for payload in Self::batch_payloads(&defs, entry, &pending.events) {
                emit(entry, kinds::CARDS_MOVED, &payload);
            }
        }
    }

    fn flush_quiet_batches(&mut self) {
        let quiet: Vec<String> = self
            .batches
            .iter()
            .filter(|(_, b)| b.touched.elapsed() >= BATCH_QUIET)
            .map(|(k, _)| k.clone())
            .collect();
        for batch in quiet {
            self.flush_batch(&batch);
        }
    }

    /// Handles one event read from the log.
    async fn dispatch(&mut self, event: StoredEvent) {
        match event.kind.as_str() {
            kinds::ACCESS_CHANGED => self.access_changed(&event).await,
            kinds::BATCH_END => {
                if let Some(batch) = &event.batch {
                    self.flush_batch(&batch.clone());
                }
            }
            kinds::CARD_MOVED if event.batch.is_some() => {
                let batch = event.batch.clone().unwrap_or_default();
                let pending = self.batches.entry(batch).or_insert_with(|| PendingBatch {
                    events: Vec::new(),
                    touched: Instant::now(),
                });
                pending.events.push(event);
                pending.touched = Instant::now();
            }
            _ => self.deliver(&event),
        }
    }

    /// Reads and dispatches everything after `last`.
    async fn drain(&mut self) {
        loop {
            let events = match log::after(self.db(), self.last, 500).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event log");
                    return;
                }
            };
            let n = events.len();
            for event in events {
                self.last = self.last.max(event.position);
                self.dispatch(event).await;
            }
            if n < 500 {
                return;
            }
        }
    }

    /// A user's access changed somewhere: check that user's sockets again, before any
    /// later event is pushed (a demoted user must not see the next one).
    async fn access_changed(&mut self, event: &StoredEvent) {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return;
        };
        let Some(user) = data["user_id"]
            .as_str()
            .and_then(|u| u.parse::<UserId>().ok())
        else {
            return;
        };
        let sids: Vec<Sid> = self
            .by_user
            .get(&user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for sid in sids {
            let Some(entry) = self.sockets.get(&sid) else {
                continue;
            };
            let actor = Self::resolve(&self.state, entry.credentials.clone()).await;
            self.revalidated(sid, actor);
        }
    }

    async fn resolve(state: &AppState, credentials: Credentials) -> Option<Actor> {
        let (bearer, cookie) = match credentials {
            Credentials::Token(t) => (Some(t), None),
            Credentials::Session(s) => (None, Some(s)),
        };
        crate::auth::middleware::identify(state, bearer, cookie)
            .await
            .ok()
            .flatten()
    }

    /// Checks a socket's credentials again off the hub's task; the answer comes back as
    /// [`Command::Revalidated`].
    fn revalidate(&self, sid: Sid) {
        let Some(entry) = self.sockets.get(&sid) else {
            return;
        };
        let credentials = entry.credentials.clone();
        let state = self.state.clone();
        tokio::spawn(async move {
            let actor = Self::resolve(&state, credentials).await;
            state.realtime.send(Command::Revalidated(sid, actor));
        });
    }

    fn revalidated(&mut self, sid: Sid, actor: Option<Actor>) {
        match actor {
            Some(actor) => {
                if let Some(entry) = self.sockets.get_mut(&sid) {
                    entry.actor = actor;
                }
            }
            None => {
                if let Some(entry) = self.sockets.get(&sid) {
                    let _ = entry.socket.emit(
                        "session.ended",
                        &json!({"message": "your session has ended; log in again"}),
                    );
                    let _ = entry.socket.clone().disconnect();
                }
            }
        }
    }

    /// Replays to a joining socket what it missed: every event after `after` up to the
    /// last one pushed live. False when the gap is too old or too large (told to reload).
    async fn replay(&self, entry: &Entry, after: i64) -> bool {
        let resync = |reason: &str| {
            let _ = entry
                .socket
                .emit("resync", &json!({"reason": reason, "position": self.last}));
        };
        match log::oldest(self.db()).await {
            Ok(Some(oldest)) if after + 1 < oldest => {
                resync("too_old");
                return false;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event log for a replay");
                resync("unavailable");
                return false;
            }
        }
        let held: HashSet<&str> = self.batches.keys().map(String::as_str).collect();
        let defs = self.defs();
        let mut position = after;
        let mut sent = 0usize;
        let mut batches: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
        while position < self.last {
            let events = match log::after(self.db(), position, 500).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event log for a replay");
                    resync("unavailable");
                    return false;
                }
            };
            if events.is_empty() {
                break;
            }
            for event in events {
                if event.position > self.last {
                    break;
                }
                position = event.position;
                sent += 1;
                if sent > MAX_REPLAY {
                    resync("too_many");
                    return false;
                }
                match (&event.batch, event.kind.as_str()) {
                    (Some(b), _) if held.contains(b.as_str()) => {}
                    (Some(b), kinds::CARD_MOVED) => {
                        batches.entry(b.clone()).or_default().push(event);
                    }
                    (Some(b), kinds::BATCH_END) => {
                        if let Some(events) = batches.remove(b) {
                            for payload in Self::batch_payloads(&defs, entry, &events) {
                                emit(entry, kinds::CARDS_MOVED, &payload);
                            }
                        }
                    }
                    _ => self.replay_one(entry, &defs, &event),
                }
            }
        }
        for events in batches.values() {
            for payload in Self::batch_payloads(&defs, entry, events) {
                emit(entry, kinds::CARDS_MOVED, &payload);
            }
        }
        true
    }

    fn replay_one(&self, entry: &Entry, defs: &Definitions, event: &StoredEvent) {
        let audience = event.audience();
        let subscribed = audience
            .customer()
            .is_some_and(|c| entry.customers.contains(&c));
        match audience.sight(&entry.actor, defs, subscribed) {
            Sight::None => {}
            Sight::Full => emit(
                entry,
                &event.kind,
                &envelope(event, &event.kind, &data_of(event)),
            ),
            sight => {
                if let Some((kind, data)) = entered_or_left(event, sight) {
                    emit(entry, kind, &envelope(event, kind, &data));
                }
            }
        }
    }

    async fn join(
        &mut self,
        socket: SocketRef,
        actor: Actor,
        credentials: Credentials,
        after: Option<i64>,
    ) {
        if !socket.connected() {
            return;
        }
        // Read what is already in the log first: the replay then ends exactly where the
        // live stream continues.
        self.drain().await;
        let sid = socket.id;
        let user = actor.user_id;
        let entry = Entry {
            socket,
            actor,
            credentials,
            customers: HashSet::new(),
        };
        if let Some(after) = after {
            self.replay(&entry, after).await;
        }
        let _ = entry.socket.emit("ready", &json!({"position": self.last}));
        self.sockets.insert(sid, entry);
        let first = {
            let set = self.by_user.entry(user).or_default();
            set.insert(sid);
            set.len() == 1
        };
        if first {
            self.presence(user, true).await;
        }
    }

    async fn leave(&mut self, sid: Sid) {
        let Some(entry) = self.sockets.remove(&sid) else {
            return;
        };
        for customer in &entry.customers {
            if let Some(set) = self.by_customer.get_mut(customer) {
                set.remove(&sid);
                if set.is_empty() {
                    self.by_customer.remove(customer);
                }
            }
        }
        let user = entry.actor.user_id;
        let last = match self.by_user.get_mut(&user) {
            Some(set) => {
                set.remove(&sid);
                set.is_empty()
            }
            None => false,
        };
        if last {
            self.by_user.remove(&user);
            self.presence(user, false).await;
        }
    }

    fn subscribe(&mut self, sid: Sid, customer: CustomerId) {
        if let Some(entry) = self.sockets.get_mut(&sid) {
            entry.customers.insert(customer);
            self.by_customer.entry(customer).or_default().insert(sid);
        }
    }

    fn unsubscribe(&mut self, sid: Sid, customer: CustomerId) {
        if let Some(entry) = self.sockets.get_mut(&sid) {
            entry.customers.remove(&customer);
        }
        if let Some(set) = self.by_customer.get_mut(&customer) {
            set.remove(&sid);
            if set.is_empty() {
                self.by_customer.remove(&customer);
            }
        }
    }

    /// Records this node's part of `user`'s presence; the first node to see them online
    /// (or the last to see them go) writes the `presence` event.
    async fn presence(&self, user: UserId, online: bool) {
        let node = self.state.realtime.node_id.to_string();
        let result = crate::transaction!(self.db(), tx => {
            let now = Timestamp::now();
            if online {
                sqlx::query("INSERT INTO presence (node_id, user_id, sockets, seen_at) VALUES ($1, $2, 1, $3)
                             ON CONFLICT (node_id, user_id) DO UPDATE SET seen_at = excluded.seen_at")
                    .bind(&node).bind(user).bind(now).execute(&mut *tx).await?;
            } else {
                sqlx::query("DELETE FROM presence WHERE node_id = $1 AND user_id = $2")
                    .bind(&node).bind(user).execute(&mut *tx).await?;
            }
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM presence WHERE user_id = $1")
                .bind(user).fetch_one(&mut *tx).await?;
            Ok::<_, sqlx::Error>(rows)
        });
        match result {
            Ok(rows) if (online && rows == 1) || (!online && rows == 0) => {
                self.presence_event(user, online).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot record presence"),
        }
    }

    async fn presence_event(&self, user: UserId, online: bool) {
        let result = async {
            let mut tx = self.db().begin().await?;
            let event = NewEvent::new(
                kinds::PRESENCE,
                Audience::Everyone,
                json!({"user_id": user, "state": if online { "online" } else { "offline" }}),
            )
            .by(Some(user));
            log::record(&mut tx, event).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot write a presence event");
        }
    }

    /// Refreshes this node's presence rows and sweeps those of nodes that stopped.
    async fn presence_heartbeat(&self) {
        let node = self.state.realtime.node_id.to_string();
        let cutoff = Timestamp::from_datetime(
            Timestamp::now().as_datetime()
                - chrono::Duration::from_std(PRESENCE_STALE)
                    .unwrap_or(chrono::Duration::seconds(90)),
        );
        let gone = crate::transaction!(self.db(), tx => {
            sqlx::query("UPDATE presence SET seen_at = $1 WHERE node_id = $2")
                .bind(Timestamp::now()).bind(&node).execute(&mut *tx).await?;
            let stale: Vec<UserId> = sqlx::query_scalar("SELECT user_id FROM presence WHERE seen_at < $1")
                .bind(cutoff).fetch_all(&mut *tx).await?;
            sqlx::query("DELETE FROM presence WHERE seen_at < $1").bind(cutoff).execute(&mut *tx).await?;
            let mut gone = Vec::new();
            for user in stale {
                let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM presence WHERE user_id = $1")
                    .bind(user).fetch_one(&mut *tx).await?;
                if left == 0 {
                    gone.push(user);
                }
            }
            Ok::<_, sqlx::Error>(gone)
        });
        match gone {
            Ok(users) => {
                for user in users {
                    self.presence_event(user, false).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
        }
    }
}

/// Wake-ups for the hub: a change in the log may be readable.
async fn wakeups(db: &Db) -> watch::Receiver<u64> {
    match db {
        Db::Sqlite(s) => s.event_wakeups.subscribe(),
        Db::Postgres(pool) => {
            let (tx, rx) = watch::channel(0u64);
            let pool = pool.clone();
            let db = db.clone();
            tokio::spawn(async move {
                loop {
                    match listen(&pool).await {
                        Ok(mut listener) => loop {
                            match listener.recv().await {
                                Ok(n) => {
                                    if n.channel() == "akis_events_pending" {
                                        sequence_all(&db).await;
                                    }
                                    tx.send_modify(|v| *v = v.wrapping_add(1));
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "event log listener failed; reconnecting");
                                    break;
                                }
                            }
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot LISTEN for events; polling only")
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            rx
        }
    }
}

async fn listen(pool: &sqlx::PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener
        .listen_all(["akis_events_pending", "akis_events"])
        .await?;
    Ok(listener)
}

/// Gives positions to everything pending (PostgreSQL), retrying briefly when another node
/// holds the sequencer lock.
async fn sequence_all(db: &Db) {
    for _ in 0..20 {
        match log::sequence(db).await {
            Ok(5000..) => continue,
            Ok(_) => {
                let pending: Result<Option<i64>, _> = crate::read!(db, pool => {
                    sqlx::query_scalar("SELECT id FROM events WHERE position IS NULL LIMIT 1").fetch_optional(pool).await
                });
                if !matches!(pending, Ok(Some(_))) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot sequence events");
                return;
            }
        }
    }
}

/// Runs the node's hub until the process stops.
pub async fn run(state: AppState, Inbox(mut inbox): Inbox) {
    let last = match log::latest(&state.db).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the event log; starting from its end");
            0
        }
    };
    let mut wake = wakeups(&state.db).await;
    let mut hub = Hub {
        state,
        sockets: HashMap::new(),
        by_user: HashMap::new(),
        by_customer: HashMap::new(),
        last,
        batches: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slow = tokio::time::interval(Duration::from_secs(30));
    slow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut revalidate = tokio::time::interval(REVALIDATE_EVERY);
    revalidate.tick().await;
    loop {
        tokio::select! {
            command = inbox.recv() => {
                let Some(command) = command else { return };
                match command {
                    Command::Join { socket, actor, credentials, after } => hub.join(socket, actor, credentials, after).await,
                    Command::Leave(sid) => hub.leave(sid).await,
                    Command::Subscribe(sid, customer) => hub.subscribe(sid, customer),
                    Command::Unsubscribe(sid, customer) => hub.unsubscribe(sid, customer),
                    Command::Revalidated(sid, actor) => hub.revalidated(sid, actor),
                }
            }
            changed = wake.changed() => {
                if changed.is_err() {
                    // The wake-up source is gone; the tick still polls.
                    wake = watch::channel(0u64).1;
                }
                hub.drain().await;
            }
            _ = tick.tick() => {
                if matches!(hub.state.db, Db::Postgres(_)) {
                    sequence_all(&hub.state.db).await;
                }
                // Another process on the same SQLite file, or a lost notification.
                if log::latest(hub.db()).await.is_ok_and(|p| p > hub.last) {
                    hub.drain().await;
                }
                hub.flush_quiet_batches();
            }
            _ = slow.tick() => {
                hub.presence_heartbeat().await;
                if let Err(e) = log::trim(hub.db(), hub.state.config.event_retention()).await {
                    tracing::warn!(error = %e, "cannot trim the event log");
                }
            }
            _ = revalidate.tick() => {
                let sids: Vec<Sid> = hub.sockets.keys().copied().collect();
                for sid in sids {
                    hub.revalidate(sid);
                }
            }
        }
    }
}

/// Marks the end of a bulk action's events (a separate, tiny transaction).
pub async fn end_batch(db: &Db, batch: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut event = NewEvent::new(kinds::BATCH_END, Audience::Internal, json!({}));
    event.batch = Some(batch.to_string());
    log::record(&mut tx, event).await?;
    tx.commit().await
}
