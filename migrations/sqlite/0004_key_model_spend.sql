-- Spend of a key on one model, for keys with a `model_max_budget` on it;
-- reset every `time_period` of that budget.
CREATE TABLE IF NOT EXISTS key_model_spend (
    token            TEXT NOT NULL REFERENCES api_keys (token) ON DELETE CASCADE ON UPDATE CASCADE,
    model            TEXT NOT NULL,
    spend            REAL NOT NULL DEFAULT 0,
    budget_reset_at  INTEGER,
    PRIMARY KEY (token, model)
);
