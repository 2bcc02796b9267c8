//! `/spend/logs`, `/global/spend`, `/global/spend/report`: spend read from the
//! request logs (aggregated in SQL), and the proxy's running total.

use super::*;
use crate::auth::hash_key;
use crate::store::directory::{LogStatus, SpendFilter, SpendGroup};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/spend/logs", get(logs))
        .route("/global/spend", get(global))
        .route("/global/spend/report", get(report))
        .route("/audit", get(audit_trail))
}

#[derive(Deserialize)]
struct AuditQuery {
    object_type: String,
    object_id: String,
}

/// The audit trail of one key, user or team (`object_type` key|user|team;
/// keys by token), newest first.
async fn audit_trail(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "read the audit log")?;
    let id = if q.object_type == "key" && q.object_id.starts_with("sk-") {
        hash_key(&q.object_id)
    } else {
        q.object_id
    };
    let rows = state
        .store
        .audit_for(&q.object_type, &id)
        .await
        .map_err(super::store_error)?;
    Ok(json(Value::Array(rows)))
}

use crate::store::rollup::DAY_MS;

/// One day of a summary: total, and spend by user, by model, by key.
type DaySummary = (
    f64,
    BTreeMap<String, f64>,
    BTreeMap<String, f64>,
    BTreeMap<String, f64>,
);

/// `YYYY-MM-DD` (a whole UTC day) or an RFC 3339 instant, in Unix ms. `end`
/// dates are inclusive: the day after, exclusive.
pub(super) fn parse_date(field: &str, s: &str, end: bool) -> Result<i64, ApiError> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        let ms = d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or_default();
        return Ok(if end { ms + DAY_MS } else { ms });
    }
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "'{field}' must be a date (YYYY-MM-DD) or an RFC 3339 time, got {s:?}"
            ))
            .param(field)
        })
}

fn day_string(day: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(day * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct LogsQuery {
    api_key: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    model: Option<String>,
    request_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    summarize: Option<bool>,
    limit: Option<i64>,
    /// Tollgate's own: `success`, `failure` (anything else), `error`,
    /// `client_disconnected`, or an HTTP status code.
    status: Option<String>,
    /// Tollgate's own: the rows after `{started_at_ms}:{request_id}` (the
    /// `next` cursor a page ends with), for paging through the newest first.
    after: Option<String>,
    /// Tollgate's own: the rows before (newer than) a cursor, nearest first
    /// in the answer's order, for paging back.
    before: Option<String>,
}

/// Reads a log cursor, `{started_at_ms}:{request_id}`.
fn cursor(name: &'static str, a: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    a.map(|a| {
        a.split_once(':')
            .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "'{name}' must be a cursor like 1732406400000:<request id>, got {a:?}"
                ))
                .param(name)
            })
    })
    .transpose()
}

/// Narrows a non-admin's query to their own spend, or refuses.
pub(super) fn own_scope(auth: &AuthContext, f: &mut SpendFilter) -> Result<(), ApiError> {
    if auth.reads_all() {
        return Ok(());
    }
    if let Some(me) = auth.user_id() {
        if f.user_id.as_deref().is_some_and(|u| u != me) {
            return Err(ApiError::forbidden("You may only read your own spend."));
        }
        f.user_id = Some(me.to_string());
        return Ok(());
    }
    let own = auth.key_hash.as_deref().unwrap_or_default();
    if f.api_key.as_deref().is_some_and(|k| k != own) || f.user_id.is_some() || f.team_id.is_some()
    {
        return Err(ApiError::forbidden("This key may only read its own spend."));
    }
    f.api_key = Some(own.to_string());
    Ok(())
}

async fn logs(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let mut f = SpendFilter {
        api_key: q.api_key.map(|k| {
            if k.starts_with("sk-") {
                hash_key(&k)
            } else {
                k
            }
        }),
        user_id: q.user_id,
        team_id: q.team_id,
        model: q.model,
        request_id: q.request_id,
        start_ms: q
            .start_date
            .as_deref()
            .map(|s| parse_date("start_date", s, false))
            .transpose()?,
        end_ms: q
            .end_date
            .as_deref()
            .map(|s| parse_date("end_date", s, true))
            .transpose()?,
        status: q
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                LogStatus::parse(s).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "'status' must be success, failure, error, client_disconnected or an HTTP status code, got {s:?}"
                    ))
                    .param("status")
                })
            })
            .transpose()?,
        after: cursor("after", q.after.as_deref())?,
        before: cursor("before", q.before.as_deref())?,
    };
    if f.after.is_some() && f.before.is_some() {
        return Err(ApiError::bad_request("give 'after' or 'before', not both").param("before"));
    }
    own_scope(&auth, &mut f)?;
    let dated = f.start_ms.is_some() && f.end_ms.is_some();
    if dated && q.summarize.unwrap_or(true) {
        let groups = state
            .store
            .spend_groups(&f)
            .await
            .map_err(super::store_error)?;
        let mut days: BTreeMap<i64, DaySummary> = BTreeMap::new();
        for g in groups {
            let d = days.entry(g.day).or_default();
            d.0 += g.spend;
            *d.1.entry(g.user_id.unwrap_or_default()).or_default() += g.spend;
            *d.2.entry(g.model.unwrap_or_default()).or_default() += g.spend;
            *d.3.entry(g.api_key.unwrap_or_default()).or_default() += g.spend;
        }
        let out: Vec<Value> = days
            .into_iter()
            .map(|(day, (spend, users, models, keys))| {
                serde_json::json!({
                    "startTime": day_string(day),
                    "spend": spend,
                    "users": users,
                    "models": models,
                    "api_keys": keys,
                })
            })
            .collect();
        return Ok(json(Value::Array(out)));
    }
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut rows = state
        .store
        .spend_logs(&f, limit)
        .await
        .map_err(super::store_error)?;
    // Whose call it was, readably: the user's email from the directory.
    let snap = state.directory.snapshot();
    for r in &mut rows {
        let email = r["user"]
            .as_str()
            .and_then(|u| snap.users.get(u))
            .and_then(|u| u.record.user_email.clone());
        if let (Some(email), Value::Object(o)) = (email, r) {
            o.insert("user_email".into(), email.into());
        }
    }
    Ok(json(Value::Array(rows)))
}

async fn global(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "read the proxy's spend")?;
    Ok(json(serde_json::json!({
        "spend": state.directory.proxy_spend.total(),
        "max_budget": state.directory.proxy_budget.max_budget,
    })))
}

#[derive(Deserialize)]
struct ReportQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    group_by: Option<String>,
    api_key: Option<String>,
    internal_user_id: Option<String>,
    team_id: Option<String>,
}

async fn report(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "read spend reports")?;
    let now = crate::logs::now_ms();
    let end = match &q.end_date {
        Some(s) => parse_date("end_date", s, true)?,
        None => (now / DAY_MS + 1) * DAY_MS,
    };
    let start = match &q.start_date {
        Some(s) => parse_date("start_date", s, false)?,
        None => end - 30 * DAY_MS,
    };
    let by = q.group_by.as_deref().unwrap_or("team");
    let (list_name, item_name): (&str, &str) = match by {
        "team" => ("teams", "team_name"),
        "api_key" => ("api_keys", "api_key"),
        "user" | "customer" | "internal_user" => ("users", "user_id"),
        "model" => ("models", "model"),
        other => {
            return Err(ApiError::bad_request(format!(
                "group_by must be team, api_key, user or model, got {other:?}"
            ))
            .param("group_by"))
        }
    };
    let f = SpendFilter {
        api_key: q.api_key.map(|k| {
            if k.starts_with("sk-") {
                hash_key(&k)
            } else {
                k
            }
        }),
        user_id: q.internal_user_id,
        team_id: q.team_id,
        start_ms: Some(start),
        end_ms: Some(end),
        ..Default::default()
    };
    let groups = state
        .store
        .spend_groups(&f)
        .await
        .map_err(super::store_error)?;
    let snap = state.directory.snapshot();
    let name_of = |g: &SpendGroup| -> String {
        match by {
            "team" => g
                .team_id
                .as_ref()
                .map(|t| {
                    snap.teams
                        .get(t)
                        .and_then(|t| t.record.team_alias.clone())
                        .unwrap_or_else(|| t.clone())
                })
                .unwrap_or_else(|| "no team".into()),
            "api_key" => g.api_key.clone().unwrap_or_default(),
            "model" => g.model.clone().unwrap_or_default(),
            _ => g.user_id.clone().unwrap_or_default(),
        }
    };
    // day → group name → (total, model → (spend, tokens, requests))
    type Models = BTreeMap<String, (f64, i64, i64)>;
    let mut days: BTreeMap<i64, BTreeMap<String, (f64, Models)>> = BTreeMap::new();
    for g in &groups {
        let entry = days
            .entry(g.day)
            .or_default()
            .entry(name_of(g))
            .or_default();
        entry.0 += g.spend;
        let m = entry
            .1
            .entry(g.model.clone().unwrap_or_default())
            .or_default();
        m.0 += g.spend;
        m.1 += g.total_tokens;
        m.2 += g.requests;
    }
    let out: Vec<Value> = days
        .into_iter()
        .map(|(day, items)| {
            let list: Vec<Value> = items
                .into_iter()
                .map(|(name, (total, models))| {
                    serde_json::json!({
                        item_name: name,
                        "total_spend": total,
                        "metadata": models.into_iter().map(|(model, (spend, tokens, requests))| serde_json::json!({
                            "model": model, "spend": spend, "total_tokens": tokens, "requests": requests,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::json!({"group_by_day": day_string(day), list_name: list})
        })
        .collect();
    Ok(json(Value::Array(out)))
}
