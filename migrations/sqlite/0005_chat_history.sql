-- Conversations kept by session id (`enable_history` / `session_id`). A session
-- belongs to the key that created it (`token`, the key's hash) and its user.
CREATE TABLE IF NOT EXISTS chat_sessions (
    session_id   TEXT PRIMARY KEY,
    token        TEXT,
    user_id      TEXT,
    model        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_sessions_token ON chat_sessions (token, updated_at);
CREATE INDEX IF NOT EXISTS chat_sessions_user ON chat_sessions (user_id, updated_at);

-- One row per message, in OpenAI's message format (JSON).
CREATE TABLE IF NOT EXISTS chat_messages (
    session_id   TEXT NOT NULL REFERENCES chat_sessions (session_id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    message      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);
