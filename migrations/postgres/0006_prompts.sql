-- Managed prompts: each version a row. `template` is a JSON list of messages
-- ({role, content} with {{variable}} placeholders); `inference` the settings
-- the prompt is called with (temperature, max_tokens, top_p, stop).
CREATE TABLE IF NOT EXISTS prompts (
    prompt_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    template     TEXT NOT NULL,
    model        TEXT NOT NULL,
    inference    TEXT NOT NULL DEFAULT '{}',
    arn          TEXT NOT NULL,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (prompt_id, version)
);
