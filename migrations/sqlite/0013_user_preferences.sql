-- Per-user preferences of the web UI (GET/PUT /api/me/preferences). The language is not
-- kept here: it is `users.locale`, which also decides the language of the user's
-- notifications and guard messages. `theme` 'system' follows the OS (prefers-color-scheme).

CREATE TABLE user_preferences (
    user_id             TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    theme               TEXT NOT NULL CHECK (theme IN ('system', 'light', 'dark')),
    list_columns        TEXT NOT NULL,             -- JSON array of field ids
    default_pipeline    TEXT,                      -- a pipeline id; null: the first one
    updated_at          TEXT NOT NULL
) STRICT;
