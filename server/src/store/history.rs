//! SQL for chat sessions and their messages (OpenAI message format, JSON).

use super::{Store, StoreError};
use serde_json::Value;

/// A session's owner and model.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session_id: String,
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub model: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The start of the first question, or what the owner named it.
    pub title: Option<String>,
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
);

fn row(r: Row) -> SessionRow {
    SessionRow {
        session_id: r.0,
        token: r.1,
        user_id: r.2,
        model: r.3,
        created_at: r.4,
        updated_at: r.5,
        title: r.6,
    }
}

const COLS: &str = "session_id, token, user_id, model, created_at, updated_at, title";

/// The longest title kept, in characters.
pub const TITLE_MAX: usize = 80;

/// A title from a conversation's first user message: its text, on one line,
/// cut at [`TITLE_MAX`] characters.
pub fn title_of(messages: &[Value]) -> Option<String> {
    let m = messages.iter().find(|m| m["role"] == "user")?;
    let text = match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => return None,
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return None;
    }
    let mut t: String = one_line.chars().take(TITLE_MAX).collect();
    if one_line.chars().count() > TITLE_MAX {
        t.pop();
        t.push('…');
    }
    Some(t)
}

impl Store {
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        both!(self, p => {
            let r: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM chat_sessions WHERE session_id = $1"
            )))
            .bind(id)
            .fetch_optional(p)
            .await?;
            Ok(r.map(row))
        })
    }

    /// The session's messages, oldest first.
    pub async fn session_messages(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        both!(self, p => {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT message FROM chat_messages WHERE session_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(p)
            .await?;
            Ok(rows
                .into_iter()
                .filter_map(|(m,)| serde_json::from_str(&m).ok())
                .collect())
        })
    }

    /// Appends messages to a session, creating it if `create` names its owner.
    pub async fn append_messages(
        &self,
        session: &SessionRow,
        create: bool,
        messages: &[Value],
    ) -> Result<(), StoreError> {
        let now = crate::logs::now_ms();
        both!(self, p => {
            let mut tx = p.begin().await?;
            if create {
                sqlx::query(
                    "INSERT INTO chat_sessions (session_id, token, user_id, model, created_at, updated_at, title) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (session_id) DO NOTHING",
                )
                .bind(&session.session_id)
                .bind(&session.token)
                .bind(&session.user_id)
                .bind(&session.model)
                .bind(now)
                .bind(title_of(messages))
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query("UPDATE chat_sessions SET updated_at = $1 WHERE session_id = $2")
                    .bind(now)
                    .bind(&session.session_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let next: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM chat_messages WHERE session_id = $1",
            )
            .bind(&session.session_id)
            .fetch_one(&mut *tx)
            .await?;
            for (i, m) in messages.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO chat_messages (session_id, seq, message, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&session.session_id)
                .bind(next + 1 + i as i64)
                .bind(m.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Sessions of a key or of a user (or all, for `None, None`), newest first.
    pub async fn sessions_for(
        &self,
        token: Option<&str>,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        both!(self, p => {
            let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM chat_sessions \
                 WHERE ($1 IS NULL AND $2 IS NULL) OR token = $1 OR user_id = $2 \
                 ORDER BY updated_at DESC, session_id LIMIT $3"
            )))
            .bind(token)
            .bind(user_id)
            .bind(limit)
            .fetch_all(p)
            .await?;
            Ok(rows.into_iter().map(row).collect())
        })
    }

    /// Names a session.
    pub async fn rename_session(&self, id: &str, title: &str) -> Result<(), StoreError> {
        both!(self, p => {
            sqlx::query("UPDATE chat_sessions SET title = $1 WHERE session_id = $2")
                .bind(title)
                .bind(id)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    pub async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        both!(self, p => {
            sqlx::query("DELETE FROM chat_messages WHERE session_id = $1")
                .bind(id)
                .execute(p)
                .await?;
            let done = sqlx::query("DELETE FROM chat_sessions WHERE session_id = $1")
                .bind(id)
                .execute(p)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}
