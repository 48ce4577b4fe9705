-- Foundation: instance-wide key/value settings (instance id, demo seeding marker, …).
-- Conventions for every table after this one (see engine/src/types):
--   ids        TEXT (UUIDv7, hyphenated lower case) — the same encoding as on SQLite
--   instants   TIMESTAMPTZ (microseconds), written by the application
--   money      <name>_minor BIGINT + <name>_currency TEXT (ISO 4217)
-- Migrations are append-only: never edit one that has been released.
CREATE TABLE app_meta (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
