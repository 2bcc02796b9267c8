-- One row per request that reached the gateway's model routes.
CREATE TABLE IF NOT EXISTS request_logs (
    request_id        TEXT PRIMARY KEY,
    started_at_ms     INTEGER NOT NULL,
    ended_at_ms       INTEGER NOT NULL,
    call_type         TEXT    NOT NULL,
    surface           TEXT    NOT NULL,
    api_key_hash      TEXT,
    key_alias         TEXT,
    user_id           TEXT,
    team_id           TEXT,
    model_requested   TEXT    NOT NULL,
    model_group       TEXT,
    deployment_id     TEXT,
    provider          TEXT,
    upstream_model    TEXT,
    stream            INTEGER NOT NULL,
    status_code       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL,
    error             TEXT,
    attempts          INTEGER NOT NULL,
    fallbacks_used    INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    spend             REAL    NOT NULL DEFAULT 0,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    metadata          TEXT
);
CREATE INDEX IF NOT EXISTS request_logs_started ON request_logs (started_at_ms);
CREATE INDEX IF NOT EXISTS request_logs_model_group ON request_logs (model_group, started_at_ms);
