-- Console sign-in sessions (tower-sessions records as JSON), shared by every
-- Tollgate process using this database; `principal` lets a user's sessions be
-- ended together (blocked, deleted, password changed).
CREATE TABLE IF NOT EXISTS console_sessions (
    id          TEXT PRIMARY KEY,
    principal   TEXT,
    data        TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions (expires_at);
CREATE INDEX IF NOT EXISTS console_sessions_principal ON console_sessions (principal);
