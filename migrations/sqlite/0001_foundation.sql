-- Foundation: instance-wide key/value settings (instance id, demo seeding marker, …).
-- Conventions for every table after this one (see engine/src/types):
--   ids        TEXT (UUIDv7, hyphenated lower case)
--   instants   TEXT, fixed-width RFC 3339 UTC with microseconds: 2026-11-25T09:50:45.123456Z
--              (never CURRENT_TIMESTAMP defaults: the application writes every instant)
--   money      <name>_minor INTEGER + <name>_currency TEXT (ISO 4217)
-- Migrations are append-only: never edit one that has been released.
CREATE TABLE app_meta (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
