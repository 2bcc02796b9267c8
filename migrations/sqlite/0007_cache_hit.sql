-- Answers served from the response cache: logged, at no cost.
ALTER TABLE request_logs ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
