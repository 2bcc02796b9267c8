-- Deployments added through /model/new, served alongside the config file's.
-- `litellm_params` is JSON; literal secrets in it are stored encrypted.
CREATE TABLE IF NOT EXISTS proxy_models (
    model_id         TEXT PRIMARY KEY,
    model_name       TEXT NOT NULL,
    litellm_params   TEXT NOT NULL,
    model_info       TEXT NOT NULL DEFAULT '{}',
    created_by       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
