-- Work orders: instances of the YAML `work_orders:` definitions. An instance keeps the
-- definitions version it was opened under (`definitions_version`); its steps' rules come
-- from that version for its whole life. `effect_key` makes the `create_work_order` job
-- idempotent; `effects_queued` (order and step) makes completion effects run once even
-- when a step is reopened and completed again. Required-field values live in `fields`.

CREATE TABLE work_orders (
    id                  TEXT PRIMARY KEY NOT NULL,
    definition          TEXT NOT NULL,
    title               TEXT,
    definitions_version TEXT NOT NULL,
    customer_id         TEXT REFERENCES customers (id),   -- null: internal work
    card_id             TEXT REFERENCES cards (id),
    status              TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'blocked', 'done', 'cancelled')),
    fields              TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    created_by          TEXT REFERENCES users (id),
    updated_at          TEXT NOT NULL,
    completed_at        TEXT,
    version             INTEGER NOT NULL,
    effects_queued      INTEGER NOT NULL DEFAULT 0,
    effect_key          TEXT UNIQUE
) STRICT;
CREATE INDEX work_orders_status ON work_orders (status, created_at);
CREATE INDEX work_orders_customer ON work_orders (customer_id);

CREATE TABLE work_order_steps (
    work_order_id  TEXT NOT NULL REFERENCES work_orders (id),
    step_id        TEXT NOT NULL,
    position       INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('waiting', 'ready', 'done')),
    assignee_id    TEXT REFERENCES users (id),
    ready_at       TEXT,
    due_at         TEXT,
    done_at        TEXT,
    done_by        TEXT REFERENCES users (id),
    effects_queued INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (work_order_id, step_id)
) STRICT;
CREATE INDEX work_order_steps_assignee ON work_order_steps (assignee_id) WHERE status <> 'done';
CREATE INDEX work_order_steps_due ON work_order_steps (due_at) WHERE status = 'ready';

CREATE TABLE work_order_comments (
    id            TEXT PRIMARY KEY NOT NULL,
    work_order_id TEXT NOT NULL REFERENCES work_orders (id),
    author_id     TEXT REFERENCES users (id),
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX work_order_comments_order ON work_order_comments (work_order_id, created_at);
