-- Requests summed by hour (request_rollup_hourly) and by UTC day
-- (request_rollup_daily), and by model, key, user and team: what the
-- dashboard reads (a million logged requests are a few thousand rows here).
-- Kept by the log writer in the transaction that inserts the logs.
-- l0..l11 count requests by latency: < 25, 50, 100, 200, 400, 800, 1600,
-- 3200, 6400, 12800, 25600 ms, and above.
CREATE TABLE IF NOT EXISTS request_rollup_hourly (
    bucket_ms         BIGINT NOT NULL,
    model             TEXT   NOT NULL,
    api_key_hash      TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    team_id           TEXT   NOT NULL,
    requests          BIGINT NOT NULL DEFAULT 0,
    errors            BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    spend             DOUBLE PRECISION NOT NULL DEFAULT 0,
    l0 BIGINT NOT NULL DEFAULT 0,
    l1 BIGINT NOT NULL DEFAULT 0,
    l2 BIGINT NOT NULL DEFAULT 0,
    l3 BIGINT NOT NULL DEFAULT 0,
    l4 BIGINT NOT NULL DEFAULT 0,
    l5 BIGINT NOT NULL DEFAULT 0,
    l6 BIGINT NOT NULL DEFAULT 0,
    l7 BIGINT NOT NULL DEFAULT 0,
    l8 BIGINT NOT NULL DEFAULT 0,
    l9 BIGINT NOT NULL DEFAULT 0,
    l10 BIGINT NOT NULL DEFAULT 0,
    l11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_ms, model, api_key_hash, user_id, team_id)
);

CREATE TABLE IF NOT EXISTS request_rollup_daily (
    bucket_ms         BIGINT NOT NULL,
    model             TEXT   NOT NULL,
    api_key_hash      TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    team_id           TEXT   NOT NULL,
    requests          BIGINT NOT NULL DEFAULT 0,
    errors            BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    spend             DOUBLE PRECISION NOT NULL DEFAULT 0,
    l0 BIGINT NOT NULL DEFAULT 0,
    l1 BIGINT NOT NULL DEFAULT 0,
    l2 BIGINT NOT NULL DEFAULT 0,
    l3 BIGINT NOT NULL DEFAULT 0,
    l4 BIGINT NOT NULL DEFAULT 0,
    l5 BIGINT NOT NULL DEFAULT 0,
    l6 BIGINT NOT NULL DEFAULT 0,
    l7 BIGINT NOT NULL DEFAULT 0,
    l8 BIGINT NOT NULL DEFAULT 0,
    l9 BIGINT NOT NULL DEFAULT 0,
    l10 BIGINT NOT NULL DEFAULT 0,
    l11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_ms, model, api_key_hash, user_id, team_id)
);

-- What was logged before these tables existed.
INSERT INTO request_rollup_hourly (bucket_ms, model, api_key_hash, user_id, team_id, requests, errors,
    prompt_tokens, completion_tokens, spend, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11)
SELECT (started_at_ms / 3600000) * 3600000,
       COALESCE(model_group, model_requested), COALESCE(api_key_hash, ''),
       COALESCE(user_id, ''), COALESCE(team_id, ''),
       COUNT(*), SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(spend),
       SUM(CASE WHEN latency_ms < 25 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 25 AND latency_ms < 50 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 50 AND latency_ms < 100 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 100 AND latency_ms < 200 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 200 AND latency_ms < 400 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 400 AND latency_ms < 800 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 800 AND latency_ms < 1600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 1600 AND latency_ms < 3200 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 3200 AND latency_ms < 6400 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 6400 AND latency_ms < 12800 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 12800 AND latency_ms < 25600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 25600 AND TRUE THEN 1 ELSE 0 END)
FROM request_logs
GROUP BY (started_at_ms / 3600000) * 3600000, COALESCE(model_group, model_requested),
         COALESCE(api_key_hash, ''), COALESCE(user_id, ''), COALESCE(team_id, '')
ON CONFLICT DO NOTHING;

INSERT INTO request_rollup_daily (bucket_ms, model, api_key_hash, user_id, team_id, requests, errors,
    prompt_tokens, completion_tokens, spend, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11)
SELECT (started_at_ms / 86400000) * 86400000,
       COALESCE(model_group, model_requested), COALESCE(api_key_hash, ''),
       COALESCE(user_id, ''), COALESCE(team_id, ''),
       COUNT(*), SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(spend),
       SUM(CASE WHEN latency_ms < 25 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 25 AND latency_ms < 50 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 50 AND latency_ms < 100 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 100 AND latency_ms < 200 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 200 AND latency_ms < 400 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 400 AND latency_ms < 800 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 800 AND latency_ms < 1600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 1600 AND latency_ms < 3200 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 3200 AND latency_ms < 6400 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 6400 AND latency_ms < 12800 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 12800 AND latency_ms < 25600 THEN 1 ELSE 0 END),
       SUM(CASE WHEN latency_ms >= 25600 AND TRUE THEN 1 ELSE 0 END)
FROM request_logs
GROUP BY (started_at_ms / 86400000) * 86400000, COALESCE(model_group, model_requested),
         COALESCE(api_key_hash, ''), COALESCE(user_id, ''), COALESCE(team_id, '')
ON CONFLICT DO NOTHING;
