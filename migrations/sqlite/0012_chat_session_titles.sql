-- A session's title: the start of its first question, or what its owner named it.
ALTER TABLE chat_sessions ADD COLUMN title TEXT;
