-- Users, teams, keys and their spend; the audit log; the change counter that
-- tells every Tollgate process sharing this database to reload its cache.
-- Settings an admin sets (models, budgets, limits, metadata, …) live in the
-- JSON column `settings`; what queries filter or update on has a column.

CREATE TABLE IF NOT EXISTS users (
    user_id          TEXT PRIMARY KEY,
    user_email       TEXT,
    user_alias       TEXT,
    user_role        TEXT    NOT NULL,
    blocked          INTEGER NOT NULL DEFAULT 0,
    spend            REAL NOT NULL DEFAULT 0,
    budget_reset_at  INTEGER,
    settings         TEXT    NOT NULL DEFAULT '{}',
    password_hash    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (lower(user_email));

CREATE TABLE IF NOT EXISTS teams (
    team_id          TEXT PRIMARY KEY,
    team_alias       TEXT,
    blocked          INTEGER NOT NULL DEFAULT 0,
    spend            REAL NOT NULL DEFAULT 0,
    budget_reset_at  INTEGER,
    settings         TEXT    NOT NULL DEFAULT '{}',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS team_members (
    team_id          TEXT NOT NULL REFERENCES teams (team_id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role             TEXT NOT NULL,
    spend            REAL NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX IF NOT EXISTS team_members_user ON team_members (user_id);

-- Keys are stored only as the SHA-256 (hex) of the secret, with a display name.
CREATE TABLE IF NOT EXISTS api_keys (
    token            TEXT PRIMARY KEY,
    key_name         TEXT NOT NULL,
    key_alias        TEXT,
    user_id          TEXT REFERENCES users (user_id) ON DELETE CASCADE,
    team_id          TEXT REFERENCES teams (team_id) ON DELETE CASCADE,
    blocked          INTEGER NOT NULL DEFAULT 0,
    expires_at       INTEGER,
    spend            REAL NOT NULL DEFAULT 0,
    budget_reset_at  INTEGER,
    settings         TEXT    NOT NULL DEFAULT '{}',
    created_by       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_alias ON api_keys (key_alias);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id);
CREATE INDEX IF NOT EXISTS api_keys_team ON api_keys (team_id);

-- Spend of the whole proxy (litellm_settings.max_budget).
CREATE TABLE IF NOT EXISTS proxy_spend (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    spend            REAL NOT NULL DEFAULT 0,
    budget_reset_at  INTEGER
);
INSERT INTO proxy_spend (id, spend) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- Bumped by every admin change; each process polls it and reloads on change.
CREATE TABLE IF NOT EXISTS directory_version (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    version          INTEGER NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_log (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms            INTEGER NOT NULL,
    actor            TEXT NOT NULL,
    actor_role       TEXT NOT NULL,
    action           TEXT NOT NULL,
    object_type      TEXT NOT NULL,
    object_id        TEXT NOT NULL,
    before_value     TEXT,
    after_value      TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_object ON audit_log (object_type, object_id);

CREATE INDEX IF NOT EXISTS request_logs_key ON request_logs (api_key_hash, started_at_ms);
CREATE INDEX IF NOT EXISTS request_logs_user ON request_logs (user_id, started_at_ms);
CREATE INDEX IF NOT EXISTS request_logs_team ON request_logs (team_id, started_at_ms);
