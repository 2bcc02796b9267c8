//! Console sessions kept in the store, so every Tollgate process sharing the
//! database knows them, and signing out (or an admin blocking a user) ends them
//! everywhere at once.
//!
//! Written here rather than taken from `tower-sessions-sqlx-store`: that crate
//! is built on sqlx 0.8, and a second sqlx would bring a second
//! `libsqlite3-sys`, which Cargo refuses (both link `sqlite3`).

use super::SESSION_PRINCIPAL;
use crate::store::Store;
use async_trait::async_trait;
use std::time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

#[derive(Clone)]
pub struct DbSessionStore {
    store: Store,
}

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessionStore")
    }
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        DbSessionStore { store }
    }

    /// Deletes expired sessions every `period` until `stop`.
    pub fn spawn_cleaner(&self, period: Duration, stop: tokio_util::sync::CancellationToken) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                if let Err(e) = store
                    .delete_expired_console_sessions(crate::logs::now_ms())
                    .await
                {
                    tracing::warn!(error = %e, "expired console sessions could not be deleted");
                }
            }
        });
    }
}

fn expires_ms(r: &Record) -> i64 {
    (r.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The principal a record names (`master`, `user:{id}`), kept in its own column.
fn principal(r: &Record) -> Option<String> {
    r.data
        .get(SESSION_PRINCIPAL)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn encode(r: &Record) -> Result<String> {
    serde_json::to_string(r).map_err(|e| Error::Encode(e.to_string()))
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

impl DbSessionStore {
    /// Writes `record`; see [`Store::put_console_session`].
    async fn put(&self, record: &Record, replace: bool) -> Result<bool> {
        self.store
            .put_console_session(
                &record.id.to_string(),
                principal(record).as_deref(),
                &encode(record)?,
                expires_ms(record),
                replace,
            )
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A new id on the (astronomically rare) collision.
        for _ in 0..8 {
            if self.put(record, false).await? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id".into()))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.put(record, true).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let Some(data) = self
            .store
            .console_session(&id.to_string(), crate::logs::now_ms())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        serde_json::from_str(&data)
            .map(Some)
            .map_err(|e| Error::Decode(e.to_string()))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.store
            .delete_console_session(&id.to_string())
            .await
            .map_err(backend)
    }
}
