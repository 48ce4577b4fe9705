-- Authentication and users: teams, users, server-side sessions, API tokens, login
-- throttling and the audit log.

CREATE TABLE teams (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX teams_name ON teams (name);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY NOT NULL,
    email               TEXT NOT NULL,             -- trimmed, lower-cased
    name                TEXT NOT NULL,
    role                TEXT NOT NULL,             -- a role id from workflows/roles.yaml
    team_id             TEXT REFERENCES teams (id),
    password_hash       TEXT NOT NULL,             -- argon2id PHC string
    active              BOOLEAN NOT NULL,
    locale              TEXT NOT NULL,             -- 'tr' or 'en'
    version             BIGINT NOT NULL,           -- bumped by every edit (409 on stale)
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    deactivated_at      TIMESTAMPTZ,
    last_login_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_team ON users (team_id);

-- The cookie holds a random secret; only its SHA-256 is stored, so a copy of the
-- database cannot be used to log in.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,        -- hex SHA-256 of the cookie value
    user_id      TEXT NOT NULL REFERENCES users (id),
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,                    -- hex SHA-256 of the secret
    scopes       TEXT NOT NULL,                    -- JSON array: ["customers:view", …] or ["*"]
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Failed logins per key ('account:<email>' or 'ip:<address>') in a sliding window.
CREATE TABLE login_throttle (
    key               TEXT PRIMARY KEY NOT NULL,
    failures          BIGINT NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL,
    locked_until      TIMESTAMPTZ
);

-- Admin and security actions: who, what, when, from where. Append-only.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor_id    TEXT,                               -- null when anonymous (failed login)
    actor_label TEXT,                               -- the actor's email at the time
    action      TEXT NOT NULL,                      -- 'auth.login', 'user.role_changed', …
    target_type TEXT,
    target_id   TEXT,
    details     TEXT NOT NULL,                      -- JSON object
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at);
CREATE INDEX audit_log_action ON audit_log (action, at);
