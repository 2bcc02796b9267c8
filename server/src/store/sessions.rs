//! SQL for console sign-in sessions and users' password hashes.

use super::{Store, StoreError};

impl Store {
    /// A session's record (JSON) if it has not expired.
    pub async fn console_session(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        both!(self, p => {
            let r: Option<(String,)> = sqlx::query_as(
                "SELECT data FROM console_sessions WHERE id = $1 AND expires_at > $2",
            )
            .bind(id)
            .bind(now_ms)
            .fetch_optional(p)
            .await?;
            Ok(r.map(|(d,)| d))
        })
    }

    /// Writes a session. A new one (`replace` false) is not written when its
    /// id is taken: `false` then, and the caller picks another id.
    pub async fn put_console_session(
        &self,
        id: &str,
        principal: Option<&str>,
        data: &str,
        expires_at_ms: i64,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let sql = if replace {
            "INSERT INTO console_sessions (id, principal, data, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET principal = excluded.principal, data = excluded.data, \
             expires_at = excluded.expires_at"
        } else {
            "INSERT INTO console_sessions (id, principal, data, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING"
        };
        both!(self, p => {
            let r = sqlx::query(sql)
                .bind(id)
                .bind(principal)
                .bind(data)
                .bind(expires_at_ms)
                .execute(p)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn delete_console_session(&self, id: &str) -> Result<(), StoreError> {
        both!(self, p => {
            sqlx::query("DELETE FROM console_sessions WHERE id = $1")
                .bind(id)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Ends every session of a principal (`user:{id}`); how many there were.
    pub async fn end_console_sessions_of(&self, principal: &str) -> Result<u64, StoreError> {
        both!(self, p => {
            let r = sqlx::query("DELETE FROM console_sessions WHERE principal = $1")
                .bind(principal)
                .execute(p)
                .await?;
            Ok(r.rows_affected())
        })
    }

    pub async fn delete_expired_console_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        both!(self, p => {
            let r = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(p)
                .await?;
            Ok(r.rows_affected())
        })
    }

    /// The user id and password hash of the user with this email (any case).
    pub async fn password_of(
        &self,
        email: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        both!(self, p => {
            let r: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT user_id, password_hash FROM users WHERE lower(user_email) = lower($1)",
            )
            .bind(email)
            .fetch_optional(p)
            .await?;
            Ok(r)
        })
    }

    /// Sets (or with `None` removes) a user's password hash.
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        hash: Option<&str>,
    ) -> Result<bool, StoreError> {
        both!(self, p => {
            let r = sqlx::query("UPDATE users SET password_hash = $2 WHERE user_id = $1")
                .bind(user_id)
                .bind(hash)
                .execute(p)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
