//! LiteLLM's management API: `/key/*`, `/user/*`, `/team/*`, `/spend/*`,
//! `/global/spend*`, `/cache/*`. Request and response shapes follow LiteLLM's, so existing
//! scripts keep working. Every route checks the caller's role first:
//!
//! | caller | may |
//! |---|---|
//! | master key, `proxy_admin` | everything |
//! | `proxy_admin_viewer` | read everything |
//! | `internal_user` | manage their own keys, read their own user, teams and spend |
//! | `internal_user_viewer` | read their own keys, user, teams and spend |
//! | team admin (member role `admin`) | also manage their team's keys and members |
//! | key without a user | read its own key |
//!
//! `llm_api` keys cannot call these routes; `read_only` keys only read.

mod activity;
mod budgets;
mod cache;
mod guardrails;
mod keys;
mod models;
mod prompts;
mod spend;
mod teams;
mod users;

pub(crate) use users::provision_sso_user;

use super::errors::ApiError;
use crate::auth::AuthContext;
use crate::directory::records::{Role, Settings};
use crate::directory::{KeyEntry, Snapshot};
use crate::state::SharedState;
use crate::store::directory::Audit;
use crate::store::StoreError;
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .merge(keys::routes())
        .merge(users::routes())
        .merge(teams::routes())
        .merge(spend::routes())
        .merge(activity::routes())
        .merge(budgets::routes())
        .merge(models::routes())
        .merge(prompts::routes())
        .merge(cache::routes())
        .merge(guardrails::routes())
}

/// Whether a route reads or writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Rejects key types that may not manage (`llm_api`), and writes by `read_only` keys.
fn gate(auth: &AuthContext, access: Access) -> Result<(), ApiError> {
    match (auth.key_type(), access) {
        ("llm_api", _) => Err(ApiError::forbidden(
            "This key is an llm_api key: it can call models, not the management API.",
        )),
        ("read_only", Access::Write) => Err(ApiError::forbidden(
            "This key is read_only: it cannot change anything.",
        )),
        _ => Ok(()),
    }
}

/// Only proxy admins (the master key included).
fn admin_only(auth: &AuthContext, what: &str) -> Result<(), ApiError> {
    gate(auth, Access::Write)?;
    if auth.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Only a proxy_admin may {what}; this key's role is {}.",
            role_name(auth)
        )))
    }
}

/// Proxy admins and admin viewers.
fn reader_of_all(auth: &AuthContext, what: &str) -> Result<(), ApiError> {
    gate(auth, Access::Read)?;
    if auth.reads_all() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Only a proxy_admin or proxy_admin_viewer may {what}; this key's role is {}.",
            role_name(auth)
        )))
    }
}

fn role_name(auth: &AuthContext) -> &'static str {
    auth.role()
        .map(Role::as_str)
        .unwrap_or("none (a key without a user)")
}

/// Whether the caller may see (`Read`) or change (`Write`) a key.
fn may_touch_key(auth: &AuthContext, snap: &Snapshot, k: &KeyEntry, access: Access) -> bool {
    if auth.is_admin() || (access == Access::Read && auth.reads_all()) {
        return true;
    }
    if access == Access::Read && auth.key_hash.as_deref() == Some(k.record.token.as_str()) {
        return true;
    }
    let Some(me) = auth.user_id() else {
        return false;
    };
    if k.record.user_id.as_deref() == Some(me) {
        return access == Access::Read || auth.role() == Some(Role::InternalUser);
    }
    k.record
        .team_id
        .as_deref()
        .is_some_and(|t| is_team_admin(snap, t, me))
}

fn is_team_admin(snap: &Snapshot, team_id: &str, user_id: &str) -> bool {
    snap.team_role(team_id, user_id) == Some("admin")
}

/// Parses a JSON body into a map, with OpenAI-shaped errors.
fn body_map(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    super::openai::parse_json(body)
}

fn take_str(m: &mut Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("'{field}' must be a string")).param(field)),
    }
}

/// A string field the request must have.
fn require_str(m: &mut Map<String, Value>, field: &str) -> Result<String, ApiError> {
    take_str(m, field)?
        .ok_or_else(|| ApiError::bad_request(format!("'{field}' is required")).param(field))
}

fn take_bool(m: &mut Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => {
            Err(ApiError::bad_request(format!("'{field}' must be true or false")).param(field))
        }
    }
}

fn take<T: DeserializeOwned>(
    m: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<T>, ApiError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
            ApiError::bad_request(format!("Invalid value for '{field}': {e}")).param(field)
        }),
    }
}

/// `base` with the fields of `patch` laid over it (a field set to null is cleared).
fn merge_settings(base: &Settings, patch: Map<String, Value>) -> Result<Settings, ApiError> {
    let mut v = match serde_json::to_value(base) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, val) in patch {
        if val.is_null() {
            v.remove(&k);
        } else {
            v.insert(k, val);
        }
    }
    let de = Value::Object(v);
    let settings: Settings = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("Invalid value for '{path}': {}", e.inner())).param(path)
    })?;
    check_settings(&settings)?;
    Ok(settings)
}

fn check_settings(s: &Settings) -> Result<(), ApiError> {
    if let Some(d) = &s.budget_duration {
        crate::directory::duration::parse(d)
            .map_err(|e| ApiError::bad_request(e).param("budget_duration"))?;
    }
    for (name, v) in [("max_budget", s.max_budget), ("soft_budget", s.soft_budget)] {
        if v.is_some_and(|b| !b.is_finite() || b < 0.0) {
            return Err(
                ApiError::bad_request(format!("'{name}' must be a number ≥ 0")).param(name),
            );
        }
    }
    for (model, v) in &s.model_max_budget {
        crate::directory::records::ModelBudget::parse(v).map_err(|e| {
            ApiError::bad_request(format!("model_max_budget.{model}: {e}"))
                .param("model_max_budget")
        })?;
    }
    if let Some(t) = &s.key_type {
        if !["default", "llm_api", "management", "read_only"].contains(&t.as_str()) {
            return Err(ApiError::bad_request(
                "'key_type' must be one of default, llm_api, management, read_only",
            )
            .param("key_type"));
        }
    }
    Ok(())
}

/// When the budget of something with `settings` resets next, if it has a period.
fn first_reset(settings: &Settings, now: i64) -> Option<i64> {
    let d = settings.budget_duration.as_deref()?;
    crate::directory::duration::parse(d)
        .ok()
        .map(|p| crate::directory::duration::add(now, p))
}

/// The audit row of one admin change by the caller.
fn audit(
    auth: &AuthContext,
    object_type: &'static str,
    action: &'static str,
    id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Audit {
    Audit {
        actor: auth.actor(),
        actor_role: role_name(auth).to_string(),
        action,
        object_type,
        object_id: id.to_string(),
        before,
        after,
    }
}

/// A stored object's view with its live spend (what the database has plus
/// what this process counted since).
fn with_spend(mut view: Value, spend: f64) -> Value {
    if let Value::Object(o) = &mut view {
        o.insert("spend".into(), spend.into());
    }
    view
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::bad_request(m).code("conflict"),
        other => {
            tracing::error!(error = %other, "management change failed");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "the change could not be saved; nothing was changed",
            )
        }
    }
}

fn json(v: Value) -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::Json(v))
}

/// A query-string page number and size, 1-based, bounded.
fn page(page: Option<u64>, size: Option<u64>, default: u64) -> (u64, u64) {
    (
        page.unwrap_or(1).max(1),
        size.unwrap_or(default).clamp(1, 1000),
    )
}

/// Page `page` (of `size`) of `items`, as the paged lists answer:
/// `{<name>: [...], total, page, page_size, total_pages}`. Only the page's
/// items are viewed.
fn paged<T>(
    name: &str,
    items: &[T],
    (page, size): (u64, u64),
    view: impl Fn(&T) -> Value,
) -> axum::response::Response {
    let total = items.len() as u64;
    let rows: Vec<Value> = items
        .iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .map(view)
        .collect();
    let mut out = Map::new();
    out.insert(name.into(), Value::Array(rows));
    out.insert("total".into(), total.into());
    out.insert("page".into(), page.into());
    out.insert("page_size".into(), size.into());
    out.insert("total_pages".into(), total.div_ceil(size).into());
    json(Value::Object(out))
}

/// A `search` parameter, trimmed and lower-cased; none when blank.
fn search_term(s: Option<&str>) -> Option<String> {
    s.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty())
}
