//! `GET /spend/activity`: what the console's dashboard draws. Requests,
//! tokens, spend, errors and latency percentiles over time (by hour, day or
//! month), the top spenders by model, key, team and user, and the budgets
//! closest to their limits. Read from the hourly rollup, never from the
//! request log itself, so it stays fast however many requests were logged.
//! Admins see everything; others see their own.

use super::*;
use crate::auth::hash_key;
use crate::store::directory::SpendFilter;
use crate::store::rollup::{Dimension, Grain, RollupFilter, Sums, DAY_MS};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/spend/activity", get(activity))
}

#[derive(Deserialize)]
struct ActivityQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    /// hour, day (default) or month.
    period: Option<String>,
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    model: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Period {
    Hour,
    Day,
    Month,
}

impl Period {
    /// The rollup a period reads: hours, or whole UTC days for days and months.
    fn grain(self) -> Grain {
        match self {
            Period::Hour => Grain::Hour,
            Period::Day | Period::Month => Grain::Day,
        }
    }
}

/// The start of the bucket `ms` falls in.
fn bucket_of(period: Period, ms: i64) -> i64 {
    match period {
        Period::Hour | Period::Day => period.grain().floor(ms),
        Period::Month => DateTime::<Utc>::from_timestamp_millis(ms)
            .and_then(|t| {
                Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
                    .single()
            })
            .map(|t| t.timestamp_millis())
            .unwrap_or(ms),
    }
}

/// The start of the bucket after the one starting at `ms`.
fn next_bucket(period: Period, ms: i64) -> i64 {
    match period {
        Period::Hour | Period::Day => ms + period.grain().ms(),
        Period::Month => DateTime::<Utc>::from_timestamp_millis(ms)
            .and_then(|t| t.checked_add_months(Months::new(1)))
            .map(|t| t.timestamp_millis())
            .unwrap_or(ms + 31 * DAY_MS),
    }
}

/// The most buckets one answer has (e.g. 31 days by hour).
const MAX_BUCKETS: usize = 800;

fn figures(s: &Sums) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("requests".into(), s.requests.into());
    m.insert("errors".into(), s.errors.into());
    m.insert(
        "error_rate".into(),
        if s.requests > 0 {
            (s.errors as f64 / s.requests as f64).into()
        } else {
            0.0.into()
        },
    );
    m.insert("prompt_tokens".into(), s.prompt_tokens.into());
    m.insert("completion_tokens".into(), s.completion_tokens.into());
    m.insert(
        "tokens".into(),
        (s.prompt_tokens + s.completion_tokens).into(),
    );
    m.insert("spend".into(), s.spend.into());
    m.insert("p50_ms".into(), serde_json::json!(s.latency_quantile(0.5)));
    m.insert("p95_ms".into(), serde_json::json!(s.latency_quantile(0.95)));
    m
}

async fn activity(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ActivityQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let period = match q.period.as_deref().unwrap_or("day") {
        "hour" => Period::Hour,
        "day" => Period::Day,
        "month" => Period::Month,
        other => {
            return Err(ApiError::bad_request(format!(
                "'period' must be hour, day or month, got {other:?}"
            ))
            .param("period"))
        }
    };
    let now = crate::logs::now_ms();
    let end = match &q.end_date {
        Some(s) => super::spend::parse_date("end_date", s, true)?,
        None => next_bucket(period, bucket_of(period, now)),
    };
    let start = match &q.start_date {
        Some(s) => super::spend::parse_date("start_date", s, false)?,
        None => match period {
            Period::Hour => end - DAY_MS,
            Period::Day => end - 30 * DAY_MS,
            Period::Month => end - 365 * DAY_MS,
        },
    };
    if start >= end {
        return Err(
            ApiError::bad_request("'start_date' must come before 'end_date'").param("start_date"),
        );
    }
    let first = bucket_of(period, start);
    let mut buckets = vec![first];
    while let Some(&last) = buckets.last() {
        let next = next_bucket(period, last);
        if next >= end {
            break;
        }
        if buckets.len() >= MAX_BUCKETS {
            return Err(ApiError::bad_request(format!(
                "that range has more than {MAX_BUCKETS} buckets: choose a longer period or a shorter range"
            ))
            .param("period"));
        }
        buckets.push(next);
    }
    // Who may see what: the same scoping as /spend/logs.
    let mut scope = SpendFilter {
        api_key: q.api_key.map(|k| {
            if k.starts_with("sk-") {
                hash_key(&k)
            } else {
                k
            }
        }),
        user_id: q.user_id,
        team_id: q.team_id,
        ..Default::default()
    };
    super::spend::own_scope(&auth, &mut scope)?;
    let grain = period.grain();
    let f = RollupFilter {
        grain,
        start_ms: grain.floor(start),
        end_ms: end,
        api_key: scope.api_key,
        user_id: scope.user_id,
        team_id: scope.team_id,
        model: q.model,
    };
    let hours = state
        .store
        .rollup_by_bucket(&f)
        .await
        .map_err(super::store_error)?;
    let mut by_bucket: BTreeMap<i64, Sums> =
        buckets.iter().map(|b| (*b, Sums::default())).collect();
    let mut totals = Sums::default();
    for (hour, s) in &hours {
        totals.add(s);
        by_bucket
            .entry(bucket_of(period, *hour))
            .or_default()
            .add(s);
    }
    let iso = crate::directory::records::iso;
    let series: Vec<Value> = by_bucket
        .iter()
        .map(|(t, s)| {
            let mut m = figures(s);
            m.insert("start".into(), iso(*t).into());
            Value::Object(m)
        })
        .collect();

    let snap = state.directory.snapshot();
    let mut breakdowns = serde_json::Map::new();
    for (name, dim) in [
        ("model", Dimension::Model),
        ("api_key", Dimension::Key),
        ("team", Dimension::Team),
        ("user", Dimension::User),
    ] {
        let top = state
            .store
            .rollup_top(&f, dim, 10)
            .await
            .map_err(super::store_error)?;
        let rows: Vec<Value> = top
            .iter()
            .map(|(id, s)| {
                let label = match dim {
                    _ if id.is_empty() => match dim {
                        Dimension::Key => "master key".to_string(),
                        _ => "(none)".to_string(),
                    },
                    Dimension::Model => id.clone(),
                    Dimension::Key => snap
                        .keys
                        .get(id)
                        .map(|k| {
                            k.record
                                .key_alias
                                .clone()
                                .unwrap_or_else(|| k.record.key_name.clone())
                        })
                        .unwrap_or_else(|| format!("deleted key {}", &id[..id.len().min(8)])),
                    Dimension::User => snap
                        .users
                        .get(id)
                        .and_then(|u| u.record.user_email.clone())
                        .unwrap_or_else(|| id.clone()),
                    Dimension::Team => snap
                        .teams
                        .get(id)
                        .and_then(|t| t.record.team_alias.clone())
                        .unwrap_or_else(|| id.clone()),
                };
                let mut m = figures(s);
                m.insert("id".into(), id.clone().into());
                m.insert("name".into(), label.into());
                Value::Object(m)
            })
            .collect();
        breakdowns.insert(name.into(), Value::Array(rows));
    }

    // Budgets nearest their limits, among what the caller may see.
    let budgets: Vec<Value> = super::budgets::budgets(&state, &auth, &snap)
        .iter()
        .filter(|b| b.max_budget.is_some_and(|m| m > 0.0))
        .take(10)
        .map(super::budgets::Budget::view)
        .collect();

    let mut out = serde_json::Map::new();
    out.insert(
        "period".into(),
        match period {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
        .into(),
    );
    out.insert("start".into(), iso(start).into());
    out.insert("end".into(), iso(end).into());
    out.insert("totals".into(), Value::Object(figures(&totals)));
    out.insert("series".into(), Value::Array(series));
    out.insert("breakdowns".into(), Value::Object(breakdowns));
    out.insert("budgets".into(), Value::Array(budgets));
    Ok(json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .unwrap_or_default()
        };
        assert_eq!(
            bucket_of(Period::Month, t("2026-02-17T05:00:00Z")),
            t("2026-02-01T00:00:00Z")
        );
        assert_eq!(
            next_bucket(Period::Month, t("2026-12-01T00:00:00Z")),
            t("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            bucket_of(Period::Day, t("2026-02-17T05:00:00Z")),
            t("2026-02-17T00:00:00Z")
        );
        assert_eq!(
            next_bucket(Period::Hour, t("2026-02-17T05:00:00Z")),
            t("2026-02-17T06:00:00Z")
        );
    }
}
