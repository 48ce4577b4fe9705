-- Pipeline core: customers (with phones, emails, channel identities, owners, tags),
-- leads, cards, stage history, the timeline and round-robin counters.

CREATE TABLE customers (
    id                       TEXT PRIMARY KEY NOT NULL,
    name                     TEXT NOT NULL,
    name_key                 TEXT NOT NULL,         -- Turkish-folded name, for sorting
    search_key               TEXT NOT NULL,         -- folded name, emails and phone digits
    source                   TEXT NOT NULL,         -- the first lead's source
    first_touch              TEXT NOT NULL,         -- JSON attribution of the first lead
    last_touch               TEXT NOT NULL,         -- JSON attribution of the latest lead
    campaign                 TEXT,                  -- last touch's utm_campaign or Meta campaign id
    emotional_score          BIGINT,               -- 0..100, from the scoring rule
    logical_score            BIGINT,               -- 0..100
    marketing_consent        BOOLEAN,               -- boolean; null = never asked
    marketing_consent_source TEXT,
    marketing_consent_at     TIMESTAMPTZ,
    whatsapp_consent         BOOLEAN,
    whatsapp_consent_source  TEXT,
    whatsapp_consent_at      TIMESTAMPTZ,
    fields                   TEXT NOT NULL,         -- JSON object: custom fields from YAML
    last_contact_at          TIMESTAMPTZ,
    version                  BIGINT NOT NULL,      -- bumped by user-visible edits only
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL,
    merged_into              TEXT                   -- set when merged into another customer
);
CREATE INDEX customers_name ON customers (name_key, id);
CREATE INDEX customers_source ON customers (source);
CREATE INDEX customers_campaign ON customers (campaign);

-- A phone or email belongs to exactly one customer: the unique keys make concurrent
-- intake of the same new contact create one customer, whatever the timing.
CREATE TABLE customer_phones (
    e164        TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    raw         TEXT NOT NULL,                      -- as the lead wrote it
    position    BIGINT NOT NULL,                   -- 0 = primary
    added_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX customer_phones_customer ON customer_phones (customer_id, position);

CREATE TABLE customer_emails (
    email       TEXT PRIMARY KEY NOT NULL,          -- trimmed, lower-cased
    customer_id TEXT NOT NULL REFERENCES customers (id),
    position    BIGINT NOT NULL,
    added_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX customer_emails_customer ON customer_emails (customer_id, position);

-- Messaging identities: WhatsApp wa_id, Messenger/Instagram page-scoped ids.
CREATE TABLE customer_identities (
    channel     TEXT NOT NULL,                      -- 'whatsapp', 'messenger', 'instagram'
    external_id TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    added_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, external_id)
);
CREATE INDEX customer_identities_customer ON customer_identities (customer_id);

CREATE TABLE customer_owners (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    since       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, user_id)
);
CREATE INDEX customer_owners_user ON customer_owners (user_id, customer_id);

CREATE TABLE customer_tags (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    tag         TEXT NOT NULL,
    PRIMARY KEY (customer_id, tag)
);
CREATE INDEX customer_tags_tag ON customer_tags (tag, customer_id);

-- Every lead received, whatever the channel. `external_key` (a Meta leadgen id, a
-- form submission id) absorbs duplicate deliveries.
CREATE TABLE leads (
    id           TEXT PRIMARY KEY NOT NULL,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    card_id      TEXT,
    source       TEXT NOT NULL,
    external_key TEXT,
    matched_by   TEXT,                              -- 'phone', 'email' or null (new customer)
    payload      TEXT NOT NULL,                     -- JSON: the lead as received (normalized)
    received_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX leads_external_key ON leads (external_key) WHERE external_key IS NOT NULL;
CREATE INDEX leads_customer ON leads (customer_id, received_at);
CREATE INDEX leads_source ON leads (source, received_at);

CREATE TABLE cards (
    id               TEXT PRIMARY KEY NOT NULL,
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    pipeline_id      TEXT NOT NULL,
    stage_id         TEXT NOT NULL,
    fields           TEXT NOT NULL,                 -- JSON object: card fields from YAML
    sort_key         TEXT COLLATE "C" NOT NULL,                 -- the declared card order's value, encoded
    version          BIGINT NOT NULL,              -- bumped by user-visible changes only
    stage_entered_at TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    closed_at        TIMESTAMPTZ,
    closed_reason    TEXT                           -- 'merged' when a merge closed a duplicate card
);
-- One open card per customer per pipeline; closed ones (merges) stay for history.
CREATE UNIQUE INDEX cards_customer_pipeline ON cards (customer_id, pipeline_id) WHERE closed_at IS NULL;
CREATE INDEX cards_customer ON cards (customer_id);
-- customer_id is carried so owner and policy checks need no table lookup per card.
CREATE INDEX cards_board ON cards (pipeline_id, stage_id, sort_key, id, customer_id) WHERE closed_at IS NULL;

-- One row per stay of a card in a stage: time-in-stage reports read it directly.
CREATE TABLE card_stage_history (
    id          TEXT PRIMARY KEY NOT NULL,
    card_id     TEXT NOT NULL REFERENCES cards (id),
    pipeline_id TEXT NOT NULL,
    stage_id    TEXT NOT NULL,
    entered_at  TIMESTAMPTZ NOT NULL,
    left_at     TIMESTAMPTZ,
    entered_by  TEXT,                               -- user id; null for the system
    event_id    TEXT                                -- the timeline event of the change
);
CREATE INDEX card_stage_history_card ON card_stage_history (card_id, entered_at);
CREATE INDEX card_stage_history_open ON card_stage_history (card_id) WHERE left_at IS NULL;
CREATE INDEX card_stage_history_stage ON card_stage_history (pipeline_id, stage_id, entered_at);

-- The customer's history: append-only. Ids are UUIDv7, so id order is time order.
CREATE TABLE timeline_events (
    id                  TEXT PRIMARY KEY NOT NULL,
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    card_id             TEXT,
    kind                TEXT NOT NULL,              -- 'lead', 'stage_changed', 'note', …
    at                  TIMESTAMPTZ NOT NULL,
    actor_id            TEXT,                       -- null for the system
    definitions_version TEXT NOT NULL,
    data                TEXT NOT NULL               -- JSON object
);
CREATE INDEX timeline_customer ON timeline_events (customer_id, id);
CREATE INDEX timeline_customer_kind ON timeline_events (customer_id, kind, id);

CREATE FUNCTION timeline_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'timeline events are append-only';
END;
$$;
CREATE TRIGGER timeline_events_append_only BEFORE DELETE ON timeline_events
FOR EACH ROW EXECUTE FUNCTION timeline_events_append_only();

-- Named counters (round-robin assignment per source).
CREATE TABLE counters (
    key   TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
