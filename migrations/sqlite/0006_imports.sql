-- CSV lead imports: one record per run (or dry run) of a file. The leads themselves carry
-- `external_key = 'import:<file sha256>:<row>'`, so re-running a file is absorbed as
-- duplicates; this record says how far a run got and what it found.

CREATE TABLE imports (
    id           TEXT PRIMARY KEY NOT NULL,
    file_name    TEXT NOT NULL,
    file_sha256  TEXT NOT NULL,                     -- hex, of the file's bytes as uploaded
    total_rows   INTEGER NOT NULL,                  -- data rows (blank lines not counted)
    last_row     INTEGER NOT NULL,                  -- the file's last row number (header = 1)
    mode         TEXT NOT NULL,                     -- 'all_or_nothing' or 'partial'
    dry_run      INTEGER NOT NULL,                  -- boolean
    state        TEXT NOT NULL,                     -- running, done, failed, rejected, dry_run
    rows_done    INTEGER NOT NULL,                  -- every row up to this one is settled (1 = none)
    created      INTEGER NOT NULL,                  -- rows that created a customer
    matched      INTEGER NOT NULL,                  -- rows that matched one (phone/email/identity)
    duplicate    INTEGER NOT NULL,                  -- rows already imported (same file, same row)
    failed       INTEGER NOT NULL,                  -- bad rows
    report       TEXT NOT NULL,                     -- JSON: bad rows, column mapping, error
    created_by   TEXT REFERENCES users (id),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,                     -- a running import touches it every batch
    finished_at  TEXT
) STRICT;
CREATE INDEX imports_file ON imports (file_sha256, created_at);
