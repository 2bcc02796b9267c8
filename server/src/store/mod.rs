//! The store: SQLite (the embedded default) or Postgres, chosen by `DATABASE_URL`.
//! Each backend owns its migrations. No SQL lives outside this module.

/// Runs the same code on whichever pool the store has.
macro_rules! both {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

pub mod directory;
pub mod history;
#[macro_use]
pub mod rollup;
pub mod sessions;

use crate::config::StoredLogs;
use crate::logs::RequestLog;
use crate::secret::redact_dsn;
use directory::SpendKind;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
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
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("cannot create the directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("DATABASE_URL must start with sqlite: or postgres:, got {0}")]
    Scheme(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// Adds each spend delta to its counter inside `$tx`; yields (kind, id, delta, new value).
macro_rules! add_spend {
    ($tx:ident, $spend:expr) => {{
        let mut out = Vec::with_capacity($spend.len());
        for (kind, id, delta) in $spend {
            let (id_a, id_b) = $crate::store::directory::split_key_model_id(id);
            let sql = match kind {
                SpendKind::Key => "UPDATE api_keys SET spend = spend + $1 WHERE token = $2 RETURNING spend",
                SpendKind::User => "UPDATE users SET spend = spend + $1 WHERE user_id = $2 RETURNING spend",
                SpendKind::Team => "UPDATE teams SET spend = spend + $1 WHERE team_id = $2 RETURNING spend",
                SpendKind::Proxy => "UPDATE proxy_spend SET spend = spend + $1 WHERE id = 1 AND $2 = 'proxy' RETURNING spend",
                // The key may be gone; the row is made only for a key that exists.
                SpendKind::KeyModel => "INSERT INTO key_model_spend (token, model, spend) \
                    SELECT token, $3, $1 FROM api_keys WHERE token = $2 \
                    ON CONFLICT (token, model) DO UPDATE SET spend = key_model_spend.spend + excluded.spend \
                    RETURNING spend",
            };
            let q = sqlx::query_scalar(sql).bind(*delta);
            let q = if *kind == SpendKind::KeyModel {
                q.bind(id_a).bind(id_b)
            } else {
                q.bind(id.as_str())
            };
            let new: Option<f64> = q.fetch_optional(&mut *$tx).await?;
            if let Some(new) = new {
                out.push((*kind, id.clone(), *delta, new));
            }
        }
        out
    }};
}

impl Store {
    /// Opens the store and runs its migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let shown = redact_dsn(url);
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|source| StoreError::Connect {
                    url: shown.clone(),
                    source,
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            if let Some(dir) = opts
                .get_filename()
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                    dir: dir.display().to_string(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    url: shown.clone(),
                    source,
                })?;
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
                .map_err(|source| StoreError::Connect {
                    url: shown.clone(),
                    source,
                })?;
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

    /// The SQLite half of [`Store::insert_request_logs`], on one connection:
    /// `kept` goes to the log table, every row of `rows` to the roll-up.
    /// The log's names are shared (`Arc<str>`): binding them copies nothing
    /// before SQLite does.
    async fn insert_sqlite_logs(
        conn: &mut sqlx::SqliteConnection,
        rows: &[RequestLog],
        kept: &[&RequestLog],
        spend: &[(SpendKind, String, f64)],
        keep_content: bool,
    ) -> Result<Vec<(SpendKind, String, f64, f64)>, StoreError> {
        let mut tx = sqlx::Connection::begin(conn).await?;
        let mut rest = kept;
        while !rest.is_empty() {
            let (size, sql) = sqlite_insert_for(rest.len());
            let (chunk, tail) = rest.split_at(size);
            let mut q = sqlx::query(sql);
            for r in chunk {
                q = q
                    .bind(std::sync::Arc::clone(&r.request_id))
                    .bind(r.started_at_ms)
                    .bind(r.ended_at_ms)
                    .bind(r.call_type)
                    .bind(r.surface)
                    .bind(r.api_key_hash.clone())
                    .bind(r.key_alias.clone())
                    .bind(r.user_id.clone())
                    .bind(r.team_id.clone())
                    .bind(std::sync::Arc::clone(&r.model_requested))
                    .bind(r.model_group.clone())
                    .bind(r.deployment_id.clone())
                    .bind(r.provider.clone())
                    .bind(r.upstream_model.clone())
                    .bind(r.stream)
                    .bind(i32::from(r.status_code))
                    .bind(r.outcome)
                    .bind(r.error.as_deref())
                    .bind(r.attempts as i32)
                    .bind(r.fallbacks_used as i32)
                    .bind(r.prompt_tokens as i64)
                    .bind(r.completion_tokens as i64)
                    .bind((r.prompt_tokens + r.completion_tokens) as i64)
                    .bind(r.spend)
                    .bind(r.latency_ms as i64)
                    .bind(r.ttft_ms.map(|t| t as i64))
                    .bind(r.metadata.as_ref().map(|m| m.to_string()))
                    .bind(r.cache_hit)
                    .bind(r.guardrails.as_ref().map(|g| g.to_string()))
                    .bind(content(r, keep_content, |c| Some(&c.messages)))
                    .bind(content(r, keep_content, |c| c.response.as_ref()));
            }
            q.execute(&mut *tx).await?;
            rest = tail;
        }
        let updated = add_spend!(tx, spend);
        rollup::add_rollup!(tx, rows);
        tx.commit().await?;
        Ok(updated)
    }

    /// Writes a batch of request logs in one transaction: the rows `stored`
    /// keeps (ids already written are skipped). SQLite runs cached multi-row
    /// statements (64, 32, … 1 rows) until they are written; Postgres inserts
    /// them all as arrays through `UNNEST` (one statement whatever the size).
    ///
    /// In the same transaction, adds `spend` (deltas per key, user, team and the
    /// proxy) to the counters and every row of the batch to the roll-up, so a
    /// counter always equals the spend of its calls (the sum of its logged rows
    /// when every log is stored); returns each counter's new value.
    pub async fn insert_request_logs(
        &self,
        rows: &[RequestLog],
        spend: &[(SpendKind, String, f64)],
        stored: StoredLogs,
    ) -> Result<Vec<(SpendKind, String, f64, f64)>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let keep_content = stored.content;
        // The rows the store keeps (`disable_spend_logs`, `disable_error_logs`);
        // spend and the roll-up count them all.
        let kept: Vec<&RequestLog> = rows
            .iter()
            .filter(|r| stored.keeps(r.succeeded()))
            .collect();
        let updated = match self {
            Store::Sqlite(p) => {
                // Multi-row statements in power-of-two sizes: a batch takes a few
                // round trips to SQLite's worker thread, each statement cached.
                //
                // Each statement after the first may have to undo pages the
                // earlier ones changed, so SQLite keeps a statement journal; on
                // disk (the default temp store) that was most of the writes a
                // batch made, one page write and one 4-byte write per page.
                // The batch's transaction keeps it in memory: the temp store is
                // chosen when a write transaction starts.
                let mut conn = p.acquire().await?;
                sqlx::query("PRAGMA temp_store = MEMORY")
                    .execute(&mut *conn)
                    .await?;
                let written =
                    Self::insert_sqlite_logs(&mut conn, rows, &kept, spend, keep_content).await;
                let restored = sqlx::query("PRAGMA temp_store = DEFAULT")
                    .execute(&mut *conn)
                    .await;
                let updated = written?;
                restored?;
                updated
            }
            Store::Postgres(p) => {
                let mut tx = p.begin().await?;
                let text = |f: fn(&RequestLog) -> Option<&str>| -> Vec<Option<String>> {
                    kept.iter().map(|r| f(r).map(str::to_string)).collect()
                };
                let int =
                    |f: fn(&RequestLog) -> i64| -> Vec<i64> { kept.iter().map(|r| f(r)).collect() };
                let small =
                    |f: fn(&RequestLog) -> i32| -> Vec<i32> { kept.iter().map(|r| f(r)).collect() };
                if !kept.is_empty() {
                    sqlx::query(INSERT_LOGS_POSTGRES)
                        .bind(text(|r| Some(&r.request_id)))
                        .bind(int(|r| r.started_at_ms))
                        .bind(int(|r| r.ended_at_ms))
                        .bind(text(|r| Some(r.call_type)))
                        .bind(text(|r| Some(r.surface)))
                        .bind(text(|r| r.api_key_hash.as_deref()))
                        .bind(text(|r| r.key_alias.as_deref()))
                        .bind(text(|r| r.user_id.as_deref()))
                        .bind(text(|r| r.team_id.as_deref()))
                        .bind(text(|r| Some(&r.model_requested)))
                        .bind(text(|r| r.model_group.as_deref()))
                        .bind(text(|r| r.deployment_id.as_deref()))
                        .bind(text(|r| r.provider.as_deref()))
                        .bind(text(|r| r.upstream_model.as_deref()))
                        .bind(kept.iter().map(|r| r.stream).collect::<Vec<bool>>())
                        .bind(small(|r| i32::from(r.status_code)))
                        .bind(text(|r| Some(r.outcome)))
                        .bind(text(|r| r.error.as_deref()))
                        .bind(small(|r| r.attempts as i32))
                        .bind(small(|r| r.fallbacks_used as i32))
                        .bind(int(|r| r.prompt_tokens as i64))
                        .bind(int(|r| r.completion_tokens as i64))
                        .bind(int(|r| (r.prompt_tokens + r.completion_tokens) as i64))
                        .bind(kept.iter().map(|r| r.spend).collect::<Vec<f64>>())
                        .bind(int(|r| r.latency_ms as i64))
                        .bind(
                            kept.iter()
                                .map(|r| r.ttft_ms.map(|t| t as i64))
                                .collect::<Vec<Option<i64>>>(),
                        )
                        .bind(
                            kept.iter()
                                .map(|r| r.metadata.as_ref().map(|m| m.to_string()))
                                .collect::<Vec<Option<String>>>(),
                        )
                        .bind(kept.iter().map(|r| r.cache_hit).collect::<Vec<bool>>())
                        .bind(
                            kept.iter()
                                .map(|r| r.guardrails.as_ref().map(|g| g.to_string()))
                                .collect::<Vec<Option<String>>>(),
                        )
                        .bind(
                            kept.iter()
                                .map(|r| content(r, keep_content, |c| Some(&c.messages)))
                                .collect::<Vec<Option<String>>>(),
                        )
                        .bind(
                            kept.iter()
                                .map(|r| content(r, keep_content, |c| c.response.as_ref()))
                                .collect::<Vec<Option<String>>>(),
                        )
                        .execute(&mut *tx)
                        .await?;
                }
                let updated = add_spend!(tx, spend);
                rollup::add_rollup!(tx, rows);
                tx.commit().await?;
                updated
            }
        };
        Ok(updated)
    }
}

/// A part of the call's prompt or answer, as JSON text, when it is kept.
fn content(
    r: &RequestLog,
    keep: bool,
    part: fn(&crate::logs::LoggedContent) -> Option<&serde_json::Value>,
) -> Option<String> {
    r.content
        .as_deref()
        .filter(|_| keep)
        .and_then(part)
        .map(|v| v.to_string())
}

const LOG_COLUMN_COUNT: usize = 31;
const SQLITE_CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// The largest cached multi-row insert that fits `remaining` rows, and its SQL.
fn sqlite_insert_for(remaining: usize) -> (usize, &'static str) {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        SQLITE_CHUNKS
            .iter()
            .map(|&n| {
                let row = format!("({})", vec!["?"; LOG_COLUMN_COUNT].join(", "));
                format!(
                    "INSERT INTO request_logs (request_id, started_at_ms, ended_at_ms, call_type, surface, \
                     api_key_hash, key_alias, user_id, team_id, model_requested, model_group, deployment_id, \
                     provider, upstream_model, stream, status_code, outcome, error, attempts, fallbacks_used, \
                     prompt_tokens, completion_tokens, total_tokens, spend, latency_ms, ttft_ms, metadata, \
                     cache_hit, guardrails, messages, response) VALUES {} ON CONFLICT (request_id) DO NOTHING",
                    vec![row; n].join(", ")
                )
            })
            .collect()
    });
    let i = SQLITE_CHUNKS
        .iter()
        .position(|&n| n <= remaining)
        .unwrap_or(SQLITE_CHUNKS.len() - 1);
    (SQLITE_CHUNKS[i], sql[i].as_str())
}

const INSERT_LOGS_POSTGRES: &str = "INSERT INTO request_logs (request_id, started_at_ms, ended_at_ms, call_type, \
     surface, api_key_hash, key_alias, user_id, team_id, model_requested, model_group, deployment_id, provider, \
     upstream_model, stream, status_code, outcome, error, attempts, fallbacks_used, prompt_tokens, \
     completion_tokens, total_tokens, spend, latency_ms, ttft_ms, metadata, cache_hit, guardrails, messages, \
     response) SELECT t.request_id, t.started_at_ms, t.ended_at_ms, t.call_type, t.surface, t.api_key_hash, t.key_alias, \
     t.user_id, t.team_id, t.model_requested, t.model_group, t.deployment_id, t.provider, t.upstream_model, \
     t.stream, t.status_code, t.outcome, t.error, t.attempts, t.fallbacks_used, t.prompt_tokens, \
     t.completion_tokens, t.total_tokens, t.spend, t.latency_ms, t.ttft_ms, t.metadata::jsonb, t.cache_hit, \
     t.guardrails::jsonb, t.messages::jsonb, t.response::jsonb FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bool[], \
     $16::int[], $17::text[], $18::text[], $19::int[], $20::int[], $21::bigint[], $22::bigint[], $23::bigint[], \
     $24::float8[], $25::bigint[], $26::bigint[], $27::text[], $28::bool[], $29::text[], \
     $30::text[], $31::text[]) \
     AS t(request_id, started_at_ms, ended_at_ms, call_type, surface, api_key_hash, key_alias, user_id, team_id, \
     model_requested, model_group, deployment_id, provider, upstream_model, stream, status_code, outcome, error, \
     attempts, fallbacks_used, prompt_tokens, completion_tokens, total_tokens, spend, latency_ms, ttft_ms, \
     metadata, cache_hit, guardrails, messages, response) ON CONFLICT (request_id) DO NOTHING";
