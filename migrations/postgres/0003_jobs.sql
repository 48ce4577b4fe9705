-- Jobs: the tables around apalis's queue (apalis's own `apalis.jobs`/`apalis.workers` are
-- created by apalis's migrations, run by `Db::migrate` and tracked in `_apalis_migrations`).
--
-- apalis's jobs table holds only LIVE work (pending, running). Everything else lives here:
--   job_history    finished jobs (done, dead, cancelled), moved out in the same transaction
--                  that finishes them, so the live table stays small however many jobs have
--                  run. Kept for the admin screen and metrics for a configurable period.
--   deferred_jobs  future-dated work (next month's reminders, retry back-offs), indexed by
--                  due time and handed to apalis when due: pending future work never slows
--                  the fetch.
--   job_effects    the effect ledger: one row per external effect, claimed before it
--                  happens, so a re-run never blindly repeats it.
-- Same columns and meanings as migrations/sqlite/0003_jobs.sql.

CREATE TABLE job_history (
    id            TEXT PRIMARY KEY NOT NULL,
    queue         TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('done', 'dead', 'cancelled')),
    payload       TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    last_error    TEXT,
    enqueued_at   TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ NOT NULL,
    worker        TEXT
);
CREATE INDEX job_history_queue_state ON job_history (queue, state, finished_at);
CREATE INDEX job_history_finished ON job_history (finished_at);

CREATE TABLE deferred_jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    queue           TEXT NOT NULL,
    due_at          TIMESTAMPTZ NOT NULL,
    payload         TEXT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('scheduled', 'handed', 'cancelled')),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    handed_at       TIMESTAMPTZ
);
CREATE INDEX deferred_jobs_due ON deferred_jobs (due_at) WHERE status = 'scheduled';
CREATE INDEX deferred_jobs_queue ON deferred_jobs (queue, status, due_at);

CREATE TABLE job_effects (
    effect_key  TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'sending', 'done', 'failed', 'unknown')),
    job_id      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    external_id TEXT,
    detail      TEXT,
    claimed_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX job_effects_state ON job_effects (state, updated_at);
