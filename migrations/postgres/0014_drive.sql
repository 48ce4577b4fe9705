-- Same tables and meanings as migrations/sqlite/0014_drive.sql (timestamps as timestamptz).
-- Drive: files linked to records. The bytes live in the object store under their SHA-256
-- (`storage_key`); a row is one record's link to them. Deletes are soft: `deleted_at` set,
-- the row and the bytes kept (the audit log says who). One live row per record and
-- content: a repeated upload of the same bytes finds the existing file.

CREATE TABLE files (
    id           TEXT PRIMARY KEY NOT NULL,
    owner_kind   TEXT NOT NULL CHECK (owner_kind IN ('customer', 'work_order')),
    owner_id     TEXT NOT NULL,
    customer_id  TEXT REFERENCES customers (id),   -- whose timeline records it
    folder       TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL CHECK (size > 0),
    sha256       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    uploaded_by  TEXT REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ,
    deleted_by   TEXT REFERENCES users (id)
);
CREATE UNIQUE INDEX files_live_content ON files (owner_kind, owner_id, sha256) WHERE deleted_at IS NULL;
CREATE INDEX files_owner ON files (owner_kind, owner_id, folder, name) WHERE deleted_at IS NULL;
CREATE INDEX files_customer ON files (customer_id);
