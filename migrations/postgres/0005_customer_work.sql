-- Working a customer: activities with outcomes, appointments, in-app notifications.

CREATE TABLE activities (
    id          TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    card_id     TEXT REFERENCES cards (id),
    kind        TEXT NOT NULL,                      -- an activity kind id from YAML
    status      TEXT NOT NULL,                      -- 'open' or 'closed'
    outcome     TEXT,                               -- an outcome id of the kind, once closed
    note        TEXT,
    due_at      TIMESTAMPTZ,
    opened_at   TIMESTAMPTZ NOT NULL,
    opened_by   TEXT,
    closed_at   TIMESTAMPTZ,
    closed_by   TEXT,
    version     BIGINT NOT NULL
);
CREATE INDEX activities_customer ON activities (customer_id, opened_at);
CREATE INDEX activities_open ON activities (status, due_at);

CREATE TABLE appointments (
    id          TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    card_id     TEXT REFERENCES cards (id),
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ,
    place       TEXT,
    online      BOOLEAN NOT NULL,                   -- boolean
    meeting_url TEXT,
    status      TEXT NOT NULL,                      -- planned, confirmed, done, no_show, cancelled
    note        TEXT,
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL
);
CREATE INDEX appointments_customer ON appointments (customer_id, starts_at);
CREATE INDEX appointments_agenda ON appointments (starts_at);

-- In-app notifications. A job re-run never duplicates one: (user, effect key) is unique.
CREATE TABLE notifications (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL,                      -- the message template name
    body        TEXT NOT NULL,                      -- rendered in the user's language
    customer_id TEXT,
    data        TEXT NOT NULL,                      -- JSON object
    effect_key  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    read_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX notifications_effect ON notifications (user_id, effect_key) WHERE effect_key IS NOT NULL;
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;
