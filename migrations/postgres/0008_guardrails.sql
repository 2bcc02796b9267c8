-- The guardrails a call passed through: name, mode, outcome and time of each.
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS guardrails JSONB;
