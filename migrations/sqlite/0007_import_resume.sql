-- Imports that stop midway (a crash, the database going away) are carried to their end:
-- the file is kept with its record until the import is over, so any node can resume it
-- without the user sending it again; `attempts` bounds the automatic retries.

ALTER TABLE imports ADD COLUMN file BLOB;
ALTER TABLE imports ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX imports_unfinished ON imports (state, updated_at) WHERE state IN ('running', 'failed');
