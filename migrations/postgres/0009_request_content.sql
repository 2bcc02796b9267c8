-- The prompt and the answer of a call, kept when general_settings.store_prompts_in_spend_logs is on.
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS messages JSONB;
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS response JSONB;
