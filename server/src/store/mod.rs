//! The store: SQLite (the embedded default) or Postgres, chosen by `DATABASE_URL`.
//! Each backend owns its migrations. No SQL lives outside this module.

use crate::logs::RequestLog;
use crate::secret::redact_dsn;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::QueryBuilder;
use std::str::FromStr;
use std::time::Duration;

/// The default store: a SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tollgate.db";

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrations failed on {url}: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error("cannot create the directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("DATABASE_URL must start with sqlite: or postgres:, got {0}")]
    Scheme(String),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

impl Store {
    /// Opens the store and runs its migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let shown = redact_dsn(url);
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|source| StoreError::Connect { url: shown.clone(), source })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            if let Some(dir) = opts.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| StoreError::Dir { dir: dir.display().to_string(), source })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect { url: shown.clone(), source })?;
            sqlx::migrate!("../migrations/sqlite")
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate { url: shown, source })?;
            Ok(Store::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|source| StoreError::Connect { url: shown.clone(), source })?;
            sqlx::migrate!("../migrations/postgres")
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate { url: shown, source })?;
            Ok(Store::Postgres(pool))
        } else {
            Err(StoreError::Scheme(shown))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
            Store::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Writes a batch of request logs in one statement (ignoring ids already written).
    pub async fn insert_request_logs(&self, rows: &[RequestLog]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(p) => {
                let mut qb = QueryBuilder::new(INSERT_LOGS);
                push_log_rows(&mut qb, rows);
                qb.push(" ON CONFLICT (request_id) DO NOTHING");
                qb.build().execute(p).await?;
            }
            Store::Postgres(p) => {
                let mut qb = QueryBuilder::new(INSERT_LOGS);
                push_log_rows(&mut qb, rows);
                qb.push(" ON CONFLICT (request_id) DO NOTHING");
                qb.build().execute(p).await?;
            }
        }
        Ok(())
    }
}

const INSERT_LOGS: &str = "INSERT INTO request_logs (request_id, started_at_ms, ended_at_ms, call_type, surface, \
     api_key_hash, key_alias, user_id, team_id, model_requested, model_group, deployment_id, provider, \
     upstream_model, stream, status_code, outcome, error, attempts, fallbacks_used, prompt_tokens, \
     completion_tokens, total_tokens, spend, latency_ms, ttft_ms, metadata) ";

fn push_log_rows<DB>(qb: &mut QueryBuilder<DB>, rows: &[RequestLog])
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i32: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> bool: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> f64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<Json<serde_json::Value>>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push_values(rows, |mut b, r| {
        b.push_bind(r.request_id.clone())
            .push_bind(r.started_at_ms)
            .push_bind(r.ended_at_ms)
            .push_bind(r.call_type.to_string())
            .push_bind(r.surface.to_string())
            .push_bind(r.api_key_hash.clone())
            .push_bind(r.key_alias.clone())
            .push_bind(r.user_id.clone())
            .push_bind(r.team_id.clone())
            .push_bind(r.model_requested.clone())
            .push_bind(r.model_group.clone())
            .push_bind(r.deployment_id.clone())
            .push_bind(r.provider.clone())
            .push_bind(r.upstream_model.clone())
            .push_bind(r.stream)
            .push_bind(i32::from(r.status_code))
            .push_bind(r.outcome.to_string())
            .push_bind(r.error.clone())
            .push_bind(r.attempts as i32)
            .push_bind(r.fallbacks_used as i32)
            .push_bind(r.prompt_tokens as i64)
            .push_bind(r.completion_tokens as i64)
            .push_bind((r.prompt_tokens + r.completion_tokens) as i64)
            .push_bind(r.spend)
            .push_bind(r.latency_ms as i64)
            .push_bind(r.ttft_ms.map(|t| t as i64))
            .push_bind(r.metadata.clone().map(Json));
    });
}
