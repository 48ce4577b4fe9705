-- Jobs: the tables around apalis's queue (apalis's own `Jobs`/`Workers` tables are created by
-- apalis's migrations, run by `Db::migrate` and tracked in `_apalis_migrations`).
--
-- apalis's `Jobs` table holds only LIVE work (pending, running). Everything else lives here:
--   job_history    finished jobs (done, dead, cancelled), moved out in the same transaction
--                  that finishes them, so the live table — which every fetch scans — stays
--                  small however many jobs have run. Kept for the admin screen and metrics
--                  for a configurable period.
--   deferred_jobs  future-dated work (next month's reminders, retry back-offs), indexed by
--                  due time and handed to apalis when due: pending future work never slows
--                  the fetch.
--   job_effects    the effect ledger: one row per external effect, claimed before it
--                  happens, so a re-run never blindly repeats it.
-- Instants are fixed-width RFC 3339 text (see 0001); the application writes every one.

CREATE TABLE job_history (
    id            TEXT PRIMARY KEY NOT NULL,  -- the job id (also apalis's Jobs.id while live)
    queue         TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('done', 'dead', 'cancelled')),
    payload       TEXT NOT NULL,              -- the job envelope (JSON)
    attempts      INTEGER NOT NULL,           -- runs made, the last one included
    last_error    TEXT,                       -- the reason a dead job died
    enqueued_at   TEXT NOT NULL,              -- when it became ready to run
    started_at    TEXT,                       -- when its last run started
    finished_at   TEXT NOT NULL,
    worker        TEXT                        -- the worker that ran it last
) STRICT;
-- Admin listing (queue + state, newest first) and retention purges (oldest first).
CREATE INDEX job_history_queue_state ON job_history (queue, state, finished_at);
CREATE INDEX job_history_finished ON job_history (finished_at);

CREATE TABLE deferred_jobs (
    id              TEXT PRIMARY KEY NOT NULL, -- becomes the job id when handed to apalis
    queue           TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    payload         TEXT NOT NULL,             -- the job envelope (JSON)
    attempt         INTEGER NOT NULL DEFAULT 0, -- runs already made (retries carry it)
    idempotency_key TEXT UNIQUE,               -- NULLs never collide
    status          TEXT NOT NULL CHECK (status IN ('scheduled', 'handed', 'cancelled')),
    last_error      TEXT,                      -- for a retry: why the previous run failed
    created_at      TEXT NOT NULL,
    handed_at       TEXT
) STRICT;
-- The hand-over scan reads only scheduled rows in due order; handed rows cost nothing.
CREATE INDEX deferred_jobs_due ON deferred_jobs (due_at) WHERE status = 'scheduled';
CREATE INDEX deferred_jobs_queue ON deferred_jobs (queue, status, due_at);

CREATE TABLE job_effects (
    effect_key  TEXT PRIMARY KEY NOT NULL,    -- deterministic: definition version + card + event + action index
    kind        TEXT NOT NULL,                -- webhook, whatsapp_template, conversion_event, notify
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'sending', 'done', 'failed', 'unknown')),
    job_id      TEXT,                         -- the job that last touched it
    attempts    INTEGER NOT NULL DEFAULT 0,   -- how many times `sending` was entered
    external_id TEXT,                         -- e.g. the WhatsApp message id
    detail      TEXT,                         -- failure reason or resolution note
    claimed_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX job_effects_state ON job_effects (state, updated_at);
