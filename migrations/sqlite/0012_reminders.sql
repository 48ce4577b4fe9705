-- Reminders: dated follow-ups created by hand, by transition `follow_up` actions or by the
-- reminder rules in YAML. Each open reminder has a deferred `reminder_due` job at its due
-- time; the job fires only if the reminder is still open with that same due time, so a
-- rescheduled or cancelled reminder's old job does nothing. `trigger_key` keeps one open
-- reminder per rule and card (a new trigger reschedules it instead of stacking another).

CREATE TABLE reminders (
    id                  TEXT PRIMARY KEY NOT NULL,
    customer_id         TEXT REFERENCES customers (id),   -- null: a personal reminder
    card_id             TEXT,
    origin              TEXT NOT NULL CHECK (origin IN ('manual', 'rule', 'follow_up')),
    rule                TEXT,                             -- '<set>/<reminder>' for rule reminders
    trigger_key         TEXT,
    title_tr            TEXT NOT NULL,
    title_en            TEXT NOT NULL,
    note                TEXT,
    message             TEXT,                             -- notification template when due
    due_at              TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    fired_at            TEXT,                             -- its due notification went out
    done_at             TEXT,
    done_by             TEXT,
    cancelled_at        TEXT,
    cancel_reason       TEXT,
    snoozes             INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    created_by          TEXT,
    updated_at          TEXT NOT NULL,
    version             INTEGER NOT NULL,
    definitions_version TEXT
) STRICT;
CREATE UNIQUE INDEX reminders_open_trigger ON reminders (trigger_key) WHERE status = 'open' AND trigger_key IS NOT NULL;
CREATE INDEX reminders_open_due ON reminders (due_at) WHERE status = 'open';
CREATE INDEX reminders_customer ON reminders (customer_id, due_at);
CREATE INDEX reminders_card_open ON reminders (card_id, due_at) WHERE status = 'open';

CREATE TABLE reminder_assignees (
    reminder_id TEXT NOT NULL REFERENCES reminders (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (reminder_id, user_id)
) STRICT;
CREATE INDEX reminder_assignees_user ON reminder_assignees (user_id, reminder_id);

-- One row per run of a recurring schedule: the first node to insert (schedule, tick)
-- runs it, in the same transaction that queues the tick's job.
CREATE TABLE schedule_ticks (
    schedule   TEXT NOT NULL,
    tick_at    TEXT NOT NULL,
    node       TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (schedule, tick_at)
) STRICT;

-- The card's earliest open reminder (the board shows it, with an overdue marker).
ALTER TABLE cards ADD COLUMN next_reminder_at TEXT;
