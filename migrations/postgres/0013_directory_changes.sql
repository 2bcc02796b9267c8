-- What each directory version changed (kind and id), so that other processes
-- read just those records instead of the whole directory. Kept for the last
-- thousand versions; a process further behind reads everything.
CREATE TABLE IF NOT EXISTS directory_changes (
    version BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    id      TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_changes_version ON directory_changes (version);
