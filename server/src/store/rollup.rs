//! `request_rollup_hourly` and `request_rollup_daily`: requests summed by
//! hour (or UTC day), model, key, user and team, with a latency histogram. The log writer adds each batch to it in the
//! transaction that inserts the batch; the dashboard reads only this table,
//! so its queries stay small however many requests were logged.

use super::{Store, StoreError};
use crate::logs::RequestLog;
use sqlx::Row;
use std::collections::HashMap;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// The two grains the rollup is kept at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grain {
    #[default]
    Hour,
    Day,
}

impl Grain {
    pub fn ms(self) -> i64 {
        match self {
            Grain::Hour => HOUR_MS,
            Grain::Day => DAY_MS,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Grain::Hour => "request_rollup_hourly",
            Grain::Day => "request_rollup_daily",
        }
    }

    /// The start of the bucket `ms` falls in.
    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.ms()) * self.ms()
    }
}

/// Upper bounds (ms, exclusive) of the latency bins `l0..l10`; `l11` is the rest.
pub const LATENCY_BOUNDS: [i64; 11] = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600];
pub const BINS: usize = LATENCY_BOUNDS.len() + 1;

/// One row of the rollup (or of a sum of rows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub spend: f64,
    pub latency: [i64; BINS],
}

impl Sums {
    fn add_log(&mut self, r: &RequestLog) {
        self.requests += 1;
        if !r.succeeded() {
            self.errors += 1;
        }
        self.prompt_tokens += r.prompt_tokens as i64;
        self.completion_tokens += r.completion_tokens as i64;
        if r.spend.is_finite() {
            self.spend += r.spend;
        }
        self.latency[bin_of(r.latency_ms as i64)] += 1;
    }

    pub fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.spend += o.spend;
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a += b;
        }
    }

    /// The latency below which a share `q` (0..1) of the requests fell,
    /// interpolated inside its bin (the last bin counts as up to twice its
    /// lower bound). None without requests.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total: i64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let target = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0i64;
        for (i, &n) in self.latency.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= target {
                let lo = if i == 0 { 0 } else { LATENCY_BOUNDS[i - 1] } as f64;
                let hi = LATENCY_BOUNDS.get(i).map(|h| *h as f64).unwrap_or(lo * 2.0);
                let within = ((target - seen as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lo + (hi - lo) * within);
            }
            seen += n;
        }
        None
    }
}

fn bin_of(latency_ms: i64) -> usize {
    LATENCY_BOUNDS
        .iter()
        .position(|b| latency_ms < *b)
        .unwrap_or(BINS - 1)
}

/// The rollup's key: bucket, model, key, user, team ('' for none).
type RollupKey = (i64, String, String, String, String);

/// A batch of logs summed into rollup rows of one grain.
pub fn rollup(rows: &[RequestLog], grain: Grain) -> Vec<(RollupKey, Sums)> {
    let mut out: HashMap<RollupKey, Sums> = HashMap::new();
    for r in rows {
        let key = (
            grain.floor(r.started_at_ms),
            r.model_group
                .as_deref()
                .unwrap_or(&r.model_requested)
                .to_string(),
            r.api_key_hash.as_deref().unwrap_or_default().to_string(),
            r.user_id.as_deref().unwrap_or_default().to_string(),
            r.team_id.as_deref().unwrap_or_default().to_string(),
        );
        out.entry(key).or_default().add_log(r);
    }
    let mut v: Vec<_> = out.into_iter().collect();
    // One order everywhere, so two processes' batches lock rows alike.
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The upsert of one rollup row into `$table`.
macro_rules! upsert_sql {
    ($table:literal) => {
        concat!(
            "INSERT INTO ", $table, " (bucket_ms, model, api_key_hash, user_id, team_id, \
            requests, errors, prompt_tokens, completion_tokens, spend, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
            ON CONFLICT (bucket_ms, model, api_key_hash, user_id, team_id) DO UPDATE SET \
            requests = ", $table, ".requests + excluded.requests, \
            errors = ", $table, ".errors + excluded.errors, \
            prompt_tokens = ", $table, ".prompt_tokens + excluded.prompt_tokens, \
            completion_tokens = ", $table, ".completion_tokens + excluded.completion_tokens, \
            spend = ", $table, ".spend + excluded.spend, \
            l0 = ", $table, ".l0 + excluded.l0, l1 = ", $table, ".l1 + excluded.l1, \
            l2 = ", $table, ".l2 + excluded.l2, l3 = ", $table, ".l3 + excluded.l3, \
            l4 = ", $table, ".l4 + excluded.l4, l5 = ", $table, ".l5 + excluded.l5, \
            l6 = ", $table, ".l6 + excluded.l6, l7 = ", $table, ".l7 + excluded.l7, \
            l8 = ", $table, ".l8 + excluded.l8, l9 = ", $table, ".l9 + excluded.l9, \
            l10 = ", $table, ".l10 + excluded.l10, l11 = ", $table, ".l11 + excluded.l11"
        )
    };
}

/// Each grain and its upsert.
pub const UPSERTS: [(Grain, &str); 2] = [
    (Grain::Hour, upsert_sql!("request_rollup_hourly")),
    (Grain::Day, upsert_sql!("request_rollup_daily")),
];

/// Adds a batch's rollup rows inside the log writer's transaction.
macro_rules! add_rollup {
    ($tx:ident, $rows:expr) => {{
        for (grain, upsert) in $crate::store::rollup::UPSERTS {
            for ((bucket, model, key, user, team), s) in $crate::store::rollup::rollup($rows, grain)
            {
                let mut q = sqlx::query(upsert)
                    .bind(bucket)
                    .bind(model)
                    .bind(key)
                    .bind(user)
                    .bind(team)
                    .bind(s.requests)
                    .bind(s.errors)
                    .bind(s.prompt_tokens)
                    .bind(s.completion_tokens)
                    .bind(s.spend);
                for n in s.latency {
                    q = q.bind(n);
                }
                q.execute(&mut *$tx).await?;
            }
        }
    }};
}
pub(crate) use add_rollup;

/// Which part of the rollup a question covers.
#[derive(Debug, Default, Clone)]
pub struct RollupFilter {
    /// Which table: hours, or whole UTC days.
    pub grain: Grain,
    pub start_ms: i64,
    /// Exclusive.
    pub end_ms: i64,
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub model: Option<String>,
}

/// What the rollup can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Model,
    Key,
    User,
    Team,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Dimension::Model => "model",
            Dimension::Key => "api_key_hash",
            Dimension::User => "user_id",
            Dimension::Team => "team_id",
        }
    }
}

const SUMS: &str = "CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
    CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
    CAST(SUM(spend) AS DOUBLE PRECISION), \
    CAST(SUM(l0) AS BIGINT), CAST(SUM(l1) AS BIGINT), CAST(SUM(l2) AS BIGINT), \
    CAST(SUM(l3) AS BIGINT), CAST(SUM(l4) AS BIGINT), CAST(SUM(l5) AS BIGINT), \
    CAST(SUM(l6) AS BIGINT), CAST(SUM(l7) AS BIGINT), CAST(SUM(l8) AS BIGINT), \
    CAST(SUM(l9) AS BIGINT), CAST(SUM(l10) AS BIGINT), CAST(SUM(l11) AS BIGINT)";

impl RollupFilter {
    fn clause(&self) -> (String, Vec<Bind>) {
        let mut binds = vec![Bind::Int(self.start_ms), Bind::Int(self.end_ms)];
        let mut sql = " WHERE bucket_ms >= $1 AND bucket_ms < $2".to_string();
        for (col, v) in [
            ("api_key_hash", &self.api_key),
            ("user_id", &self.user_id),
            ("team_id", &self.team_id),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                binds.push(Bind::Text(v.clone()));
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        (sql, binds)
    }
}

enum Bind {
    Int(i64),
    Text(String),
}

/// Reads `Sums` from columns `from..from + 17` of a row.
fn sums_at<R: Row>(r: &R, from: usize) -> Result<Sums, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    f64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let int = |i: usize| -> Result<i64, sqlx::Error> {
        Ok(r.try_get::<Option<i64>, _>(from + i)?.unwrap_or_default())
    };
    let mut latency = [0i64; BINS];
    for (i, l) in latency.iter_mut().enumerate() {
        *l = int(5 + i)?;
    }
    Ok(Sums {
        requests: int(0)?,
        errors: int(1)?,
        prompt_tokens: int(2)?,
        completion_tokens: int(3)?,
        spend: r.try_get::<Option<f64>, _>(from + 4)?.unwrap_or_default(),
        latency,
    })
}

impl Store {
    /// The sums of each bucket (hour or day) in the filter's range that had requests.
    pub async fn rollup_by_bucket(&self, f: &RollupFilter) -> Result<Vec<(i64, Sums)>, StoreError> {
        let sql = "SELECT CAST(bucket_ms AS TEXT), {SUMS} FROM {TABLE}{WHERE} \
                   GROUP BY bucket_ms ORDER BY bucket_ms";
        Ok(self
            .rollup_groups(f, sql)
            .await?
            .into_iter()
            .filter_map(|(h, s)| Some((h.parse().ok()?, s)))
            .collect())
    }

    /// The `limit` biggest spenders of the range by one dimension ('' is none).
    pub async fn rollup_top(
        &self,
        f: &RollupFilter,
        by: Dimension,
        limit: i64,
    ) -> Result<Vec<(String, Sums)>, StoreError> {
        let col = by.column();
        let sql = format!(
            "SELECT {col}, {{SUMS}} FROM {{TABLE}}{{WHERE}} GROUP BY {col} \
             ORDER BY SUM(spend) DESC, SUM(requests) DESC, {col} LIMIT {}",
            limit.clamp(1, 100)
        );
        self.rollup_groups(f, &sql).await
    }

    /// Runs a grouped query over the rollup: `{TABLE}` becomes the filter's
    /// table, `{WHERE}` its conditions, `{SUMS}` the summed columns; the
    /// group's key comes first, as text.
    async fn rollup_groups(
        &self,
        f: &RollupFilter,
        sql: &str,
    ) -> Result<Vec<(String, Sums)>, StoreError> {
        let (clause, binds) = f.clause();
        let sql = sql
            .replace("{TABLE}", f.grain.table())
            .replace("{WHERE}", &clause)
            .replace("{SUMS}", SUMS);
        Ok(both!(self, p => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = match b {
                    Bind::Int(i) => q.bind(i),
                    Bind::Text(s) => q.bind(s),
                };
            }
            let rows = q.fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((r.try_get::<String, _>(0)?, sums_at(r, 1)?));
            }
            out
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram() {
        let mut s = Sums::default();
        assert_eq!(s.latency_quantile(0.5), None);
        // 10 requests under 25 ms, 10 between 100 and 200 ms.
        s.latency[0] = 10;
        s.latency[3] = 10;
        let p50 = s.latency_quantile(0.5).unwrap_or_default();
        assert!((0.0..=25.0).contains(&p50), "{p50}");
        let p95 = s.latency_quantile(0.95).unwrap_or_default();
        assert!((100.0..=200.0).contains(&p95), "{p95}");
        assert_eq!(bin_of(0), 0);
        assert_eq!(bin_of(25), 1);
        assert_eq!(bin_of(99_999), BINS - 1);
    }
}
