-- Real time: the event log every change writes in its own transaction, read by every node
-- to push patches to the Socket.IO clients it holds, and replayed to a client that
-- reconnects with the last position it saw (see docs/realtime.md).
--
-- PostgreSQL sequences are not commit-ordered (a transaction that took id 10 may commit
-- after one that took 11), so a reader that resumed "after 10" could miss 11's neighbour.
-- Rows are therefore inserted WITHOUT a position; one node at a time (under an advisory
-- lock) gives every committed, unpositioned row the next positions, in one statement, and
-- then notifies `akis_events`. Positions are thus assigned in visibility order: once a
-- reader has seen position N, every event that will ever get a position <= N is visible.
-- Inserts notify `akis_events_pending` (delivered at commit) to wake the sequencer.

CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    position   BIGINT UNIQUE,
    at         TIMESTAMPTZ NOT NULL,
    kind       TEXT NOT NULL,
    audience   TEXT NOT NULL,
    actor_id   TEXT,
    actor_name TEXT,
    op         TEXT,
    batch      TEXT,
    data       TEXT NOT NULL
);
CREATE INDEX events_unsequenced ON events (id) WHERE position IS NULL;
CREATE INDEX events_at ON events (at);

CREATE FUNCTION events_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('akis_events_pending', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify_pending AFTER INSERT ON events
FOR EACH STATEMENT EXECUTE FUNCTION events_notify_pending();

CREATE TABLE presence (
    node_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    sockets  INTEGER NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node_id, user_id)
);
CREATE INDEX presence_user ON presence (user_id);
