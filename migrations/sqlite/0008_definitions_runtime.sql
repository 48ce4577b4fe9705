-- Definitions at run time: every definition set that was ever put in force is kept with
-- its whole content, so an old version can always be read back (running work orders keep
-- theirs); one row says which version is current. Nodes poll `generation` (and, on
-- PostgreSQL, listen on `akis_definitions`) to pick a reload up.

CREATE TABLE definition_versions (
    version    TEXT PRIMARY KEY NOT NULL,          -- hex SHA-256 of the set (Definitions::version)
    files      TEXT NOT NULL,                      -- JSON object: relative path -> file text
    file_count INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT                                -- user id; null for the CLI or start-up
) STRICT;

-- Exactly one row (id = 1) once a set has been stored.
CREATE TABLE definitions_current (
    id           INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version      TEXT NOT NULL REFERENCES definition_versions (version),
    generation   INTEGER NOT NULL,                 -- +1 on every activation
    activated_at TEXT NOT NULL
) STRICT;

-- Every activation, newest last: which version was in force from when, put there by whom.
CREATE TABLE definition_activations (
    id               TEXT PRIMARY KEY NOT NULL,
    version          TEXT NOT NULL REFERENCES definition_versions (version),
    previous_version TEXT,
    activated_at     TEXT NOT NULL,
    activated_by     TEXT,                         -- user id; null for the CLI or start-up
    origin           TEXT NOT NULL,                -- 'startup', 'bootstrap', 'api', 'cli', 'signal'
    moved_cards      INTEGER NOT NULL              -- cards moved by stage mappings
) STRICT;
CREATE INDEX definition_activations_at ON definition_activations (activated_at);

-- The version under which a record last changed.
ALTER TABLE cards ADD COLUMN definitions_version TEXT;
ALTER TABLE activities ADD COLUMN definitions_version TEXT;
