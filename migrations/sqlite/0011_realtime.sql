-- Real time: the event log every change writes in its own transaction, read by every node
-- to push patches to the Socket.IO clients it holds, and replayed to a client that
-- reconnects with the last position it saw (see docs/realtime.md).
--
-- On SQLite there is one writer, so the AUTOINCREMENT rowid is assigned in commit order:
-- `position` is final at insert. (PostgreSQL assigns positions after commit instead; see
-- migrations/postgres/0011_realtime.sql.)

CREATE TABLE events (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,                  -- 'card.moved', 'timeline.added', …
    audience   TEXT NOT NULL,                  -- JSON: who may receive it (realtime::log::Audience)
    actor_id   TEXT,                           -- who caused it; null for the system
    actor_name TEXT,
    op         TEXT,                           -- the request's X-Client-Op
    batch      TEXT,                           -- one bulk action's events share it
    data       TEXT NOT NULL                   -- JSON payload
) STRICT;
CREATE INDEX events_at ON events (at);

-- Who is online: one row per node and user with open sockets; nodes refresh `seen_at`, and
-- rows of a node that stopped refreshing are swept.
CREATE TABLE presence (
    node_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    sockets  INTEGER NOT NULL,
    seen_at  TEXT NOT NULL,
    PRIMARY KEY (node_id, user_id)
) STRICT;
CREATE INDEX presence_user ON presence (user_id);
