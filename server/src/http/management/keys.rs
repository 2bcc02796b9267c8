//! `/key/generate`, `/key/update`, `/key/info`, `/key/list`, `/key/delete`,
//! `/key/block`, `/key/unblock`, `/key/regenerate`.

use super::*;
use crate::auth::hash_key;
use crate::directory::records::KeyRecord;
use crate::logs::now_ms;
use crate::store::directory::{Audit, Change};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/key/generate", post(generate))
        .route("/key/update", post(update))
        .route("/key/info", get(info))
        .route("/key/list", get(list))
        .route("/key/delete", post(delete))
        .route("/key/block", post(block))
        .route("/key/unblock", post(unblock))
        .route("/key/regenerate", post(regenerate))
        .route("/key/{key}/regenerate", post(regenerate_path))
}

/// A new secret: 256 random bits, URL-safe base64, `sk-` prefix.
pub(super) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `sk-...abcd`: recognisable, useless to a thief.
pub(super) fn display_name(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// Applies `upperbound_key_generate_params` to a non-admin's key.
fn check_ceilings(
    state: &SharedState,
    auth: &AuthContext,
    s: &Settings,
    duration: Option<&str>,
) -> Result<(), ApiError> {
    if auth.is_admin() {
        return Ok(());
    }
    let up = &state.management.upperbound_key_generate_params;
    let num = |k: &str| up.get(k).and_then(Value::as_f64);
    let checks: [(&str, Option<f64>); 4] = [
        ("max_budget", s.max_budget),
        ("tpm_limit", s.tpm_limit.map(|v| v as f64)),
        ("rpm_limit", s.rpm_limit.map(|v| v as f64)),
        (
            "max_parallel_requests",
            s.max_parallel_requests.map(|v| v as f64),
        ),
    ];
    for (field, value) in checks {
        if let Some(limit) = num(field) {
            match value {
                Some(v) if v <= limit => {}
                Some(v) => {
                    return Err(ApiError::bad_request(format!(
                    "{field} {v} is above the upper bound {limit} (upperbound_key_generate_params)"
                ))
                    .param(field))
                }
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{field} must be set, at most {limit} (upperbound_key_generate_params)"
                    ))
                    .param(field))
                }
            }
        }
    }
    if let Some(limit) = up.get("duration").and_then(Value::as_str) {
        let to_secs = |d: &str| {
            crate::directory::duration::parse(d)
                .map(|p| crate::directory::duration::add(0, p))
                .unwrap_or(i64::MAX)
        };
        if duration.is_none_or(|d| to_secs(d) > to_secs(limit)) {
            return Err(ApiError::bad_request(format!(
                "duration must be at most {limit} (upperbound_key_generate_params)"
            ))
            .param("duration"));
        }
    }
    Ok(())
}

pub(super) fn expiry(duration: Option<&str>, now: i64) -> Result<Option<i64>, ApiError> {
    match duration {
        None => Ok(None),
        Some(d) => crate::directory::duration::parse(d)
            .map(|p| Some(crate::directory::duration::add(now, p)))
            .map_err(|e| ApiError::bad_request(e).param("duration")),
    }
}

/// The response of generate and regenerate: the key object plus the secret, once.
fn with_secret(rec: &KeyRecord, secret: &str) -> Value {
    let mut v = rec.view();
    if let Value::Object(m) = &mut v {
        m.insert("key".into(), Value::String(secret.to_string()));
        m.insert("token_id".into(), Value::String(rec.token.clone()));
    }
    v
}

async fn generate(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let mut m = body_map(&body)?;
    let snap = state.directory.snapshot();
    let custom = take_str(&mut m, "key")?;
    let key_alias = take_str(&mut m, "key_alias")?;
    let duration = take_str(&mut m, "duration")?;
    let mut user_id = take_str(&mut m, "user_id")?;
    let team_id = take_str(&mut m, "team_id")?;
    let blocked = take_bool(&mut m, "blocked")?.unwrap_or(false);
    // Defaults first, then what the request says.
    let mut patch = state.management.default_key_generate_params.clone();
    patch.extend(m);
    let duration = duration.or_else(|| {
        patch
            .remove("duration")
            .and_then(|v| v.as_str().map(str::to_string))
    });
    let settings = merge_settings(&Settings::default(), patch)?;

    if !auth.is_admin() {
        let role = auth.role();
        let me = auth.user_id().map(str::to_string);
        match (&me, role) {
            (Some(me), Some(Role::InternalUser)) => {
                let for_other = user_id.as_deref().is_some_and(|u| u != me);
                let team_admin = team_id
                    .as_deref()
                    .is_some_and(|t| is_team_admin(&snap, t, me));
                if for_other && !team_admin {
                    return Err(ApiError::forbidden(format!(
                        "You ({me}) may only create keys for yourself, or for your team as its admin."
                    )));
                }
                if let Some(t) = &team_id {
                    if snap.team_role(t, me).is_none() {
                        return Err(ApiError::forbidden(format!(
                            "You ({me}) are not a member of team {t}."
                        )));
                    }
                }
                if user_id.is_none() {
                    user_id = Some(me.clone());
                }
            }
            _ => {
                return Err(ApiError::forbidden(format!(
                    "A key with role {} may not create keys.",
                    role_name(&auth)
                )))
            }
        }
        check_ceilings(&state, &auth, &settings, duration.as_deref())?;
    }
    if let Some(u) = &user_id {
        if !snap.users.contains_key(u) {
            return Err(ApiError::bad_request(format!(
                "user_id {u} does not exist; create it with /user/new first"
            ))
            .param("user_id"));
        }
    }
    if let Some(t) = &team_id {
        match snap.teams.get(t) {
            None => {
                return Err(ApiError::bad_request(format!(
                    "team_id {t} does not exist; create it with /team/new first"
                ))
                .param("team_id"))
            }
            Some(team) if team.record.blocked => {
                return Err(ApiError::forbidden(format!("team {t} is blocked")))
            }
            Some(_) => {}
        }
    }
    if let Some(a) = &key_alias {
        if snap.key_aliases.contains_key(a) {
            return Err(ApiError::bad_request(format!(
                "key_alias {a:?} is already used by another key"
            ))
            .param("key_alias"));
        }
    }
    let secret = match custom {
        Some(k) if !k.starts_with("sk-") || k.len() < 12 => {
            return Err(ApiError::bad_request(
                "a custom 'key' must start with sk- and be at least 12 characters",
            )
            .param("key"))
        }
        Some(k) => k,
        None => new_secret(),
    };
    let now = now_ms();
    let rec = KeyRecord {
        token: hash_key(&secret),
        key_name: display_name(&secret),
        key_alias,
        user_id,
        team_id,
        blocked,
        expires_at: expiry(duration.as_deref(), now)?,
        spend: 0.0,
        budget_reset_at: first_reset(&settings, now),
        settings,
        created_by: Some(auth.actor()),
        created_at: now,
        updated_at: now,
    };
    if snap.keys.contains_key(&rec.token) {
        return Err(ApiError::bad_request("this key already exists").param("key"));
    }
    state
        .directory
        .apply(
            &[Change::PutKey(&rec)],
            &[audit(
                &auth,
                "key",
                "created",
                &rec.token,
                None,
                Some(rec.view()),
            )],
        )
        .await
        .map_err(store_error)?;
    let mut out = with_secret(&rec, &secret);
    if let Value::Object(o) = &mut out {
        o.insert(
            "duration".into(),
            duration.map(Value::String).unwrap_or(Value::Null),
        );
    }
    Ok(json(out))
}

/// A key's view with its live spend, its spend on each model it has a
/// `model_max_budget` for, and whether it passed its soft budget.
fn live_view(dir: &crate::directory::Directory, k: &KeyEntry) -> Value {
    let mut v = with_spend(k.record.view(), k.spend.total());
    if let Value::Object(o) = &mut v {
        o.insert(
            "soft_budget_exceeded".into(),
            k.soft_budget_exceeded().into(),
        );
        let model_spend: Map<String, Value> = k
            .record
            .settings
            .model_max_budget
            .keys()
            .map(|m| (m.clone(), dir.key_model_spend(k, m).total().into()))
            .collect();
        o.insert("model_spend".into(), Value::Object(model_spend));
        // Whose key it is, readably (the console shows the owner's email).
        if let Some(email) = k.user.as_ref().and_then(|u| u.record.user_email.clone()) {
            o.insert("user_email".into(), email.into());
        }
    }
    v
}

/// The key a request names (`key`: the secret or its hash), checked for access.
fn find_key(
    auth: &AuthContext,
    snap: &Snapshot,
    key: &str,
    access: Access,
) -> Result<Arc<KeyEntry>, ApiError> {
    let not_found = || ApiError::not_found(format!("Key not found: {}", shown(key)));
    let k = snap.key(key).ok_or_else(not_found)?;
    if !may_touch_key(auth, snap, k, access) {
        // Another user's key: say no, without saying whether it exists.
        return Err(ApiError::forbidden(format!(
            "You are not allowed to {} key {}.",
            if access == Access::Read {
                "read"
            } else {
                "change"
            },
            shown(key)
        )));
    }
    Ok(Arc::clone(k))
}

/// A key as it may appear in a message: secrets shortened, hashes whole.
fn shown(key: &str) -> String {
    if key.starts_with("sk-") {
        display_name(key)
    } else {
        key.to_string()
    }
}

async fn update(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let mut m = body_map(&body)?;
    let key = require_str(&mut m, "key")?;
    let snap = state.directory.snapshot();
    let entry = find_key(&auth, &snap, &key, Access::Write)?;
    let before = entry.record.clone();
    let mut rec = before.clone();
    let now = now_ms();
    if m.contains_key("key_alias") {
        rec.key_alias = take_str(&mut m, "key_alias")?;
        if let Some(a) = &rec.key_alias {
            if snap.key_aliases.get(a).is_some_and(|t| *t != rec.token) {
                return Err(ApiError::bad_request(format!(
                    "key_alias {a:?} is already used by another key"
                ))
                .param("key_alias"));
            }
        }
    }
    if m.contains_key("duration") {
        let d = take_str(&mut m, "duration")?;
        rec.expires_at = expiry(d.as_deref(), now)?;
    }
    if let Some(b) = take_bool(&mut m, "blocked")? {
        rec.blocked = b;
    }
    if m.contains_key("user_id") || m.contains_key("team_id") {
        if !auth.is_admin() {
            return Err(ApiError::forbidden(
                "Only a proxy_admin may move a key to another user or team.",
            ));
        }
        if m.contains_key("user_id") {
            rec.user_id = take_str(&mut m, "user_id")?;
        }
        if m.contains_key("team_id") {
            rec.team_id = take_str(&mut m, "team_id")?;
        }
    }
    let had_period = rec.settings.budget_duration.clone();
    rec.settings = merge_settings(&rec.settings, m)?;
    check_ceilings(&state, &auth, &rec.settings, None).or_else(|e| {
        // Ceilings on duration only apply to new keys; others do apply.
        if e.param.as_deref() == Some("duration") {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if rec.settings.budget_duration != had_period {
        rec.budget_reset_at = first_reset(&rec.settings, now);
    }
    rec.updated_at = now;
    state
        .directory
        .apply(
            &[Change::PutKey(&rec)],
            &[audit(
                &auth,
                "key",
                "updated",
                &rec.token,
                Some(before.view()),
                Some(rec.view()),
            )],
        )
        .await
        .map_err(store_error)?;
    let mut out = rec.view();
    if let Value::Object(o) = &mut out {
        o.insert("key".into(), Value::String(key));
    }
    Ok(json(out))
}

#[derive(Deserialize)]
struct InfoQuery {
    key: Option<String>,
}

async fn info(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<InfoQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let snap = state.directory.snapshot();
    let key = match (&q.key, auth.key_hash.as_deref()) {
        (Some(k), _) => k.clone(),
        (None, Some(own)) if auth.key().is_some() => own.to_string(),
        _ => return Err(ApiError::bad_request("pass ?key=<key or token>").param("key")),
    };
    let entry = find_key(&auth, &snap, &key, Access::Read)?;
    let info = live_view(&state.directory, &entry);
    Ok(json(serde_json::json!({"key": key, "info": info})))
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    size: Option<u64>,
    user_id: Option<String>,
    team_id: Option<String>,
    key_alias: Option<String>,
    /// Tollgate's own: a case-insensitive part of the alias, the key's
    /// shown name, its user or its team.
    search: Option<String>,
    #[serde(default)]
    return_full_object: bool,
}

async fn list(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let search = search_term(q.search.as_deref());
    let snap = state.directory.snapshot();
    let mut keys: Vec<&Arc<KeyEntry>> = snap
        .keys
        .values()
        .filter(|k| may_touch_key(&auth, &snap, k, Access::Read))
        .filter(|k| {
            q.user_id
                .as_ref()
                .is_none_or(|u| k.record.user_id.as_ref() == Some(u))
        })
        .filter(|k| {
            q.team_id
                .as_ref()
                .is_none_or(|t| k.record.team_id.as_ref() == Some(t))
        })
        .filter(|k| {
            q.key_alias
                .as_ref()
                .is_none_or(|a| k.record.key_alias.as_ref() == Some(a))
        })
        .filter(|k| {
            search.as_deref().is_none_or(|s| {
                let r = &k.record;
                [
                    r.key_alias.as_deref(),
                    Some(r.key_name.as_str()),
                    r.user_id.as_deref(),
                    k.user.as_ref().and_then(|u| u.record.user_email.as_deref()),
                    r.team_id.as_deref(),
                ]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(s))
            })
        })
        .collect();
    keys.sort_by(|a, b| {
        b.record
            .created_at
            .cmp(&a.record.created_at)
            .then_with(|| a.record.token.cmp(&b.record.token))
    });
    let (page, size) = page(q.page, q.size, 10);
    let total = keys.len() as u64;
    let items: Vec<Value> = keys
        .iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .map(|k| {
            if q.return_full_object {
                live_view(&state.directory, k)
            } else {
                Value::String(k.record.token.clone())
            }
        })
        .collect();
    Ok(json(serde_json::json!({
        "keys": items,
        "total_count": total,
        "current_page": page,
        "total_pages": total.div_ceil(size),
    })))
}

async fn delete(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let mut m = body_map(&body)?;
    let keys: Vec<String> = take(&mut m, "keys")?.unwrap_or_default();
    let aliases: Vec<String> = take(&mut m, "key_aliases")?.unwrap_or_default();
    if keys.is_empty() && aliases.is_empty() {
        return Err(ApiError::bad_request("pass 'keys' or 'key_aliases'").param("keys"));
    }
    let snap = state.directory.snapshot();
    let mut found = Vec::new();
    for k in &keys {
        found.push((k.clone(), find_key(&auth, &snap, k, Access::Write)?));
    }
    for a in &aliases {
        let token = snap
            .key_aliases
            .get(a)
            .ok_or_else(|| ApiError::not_found(format!("No key with key_alias {a:?}")))?;
        found.push((a.clone(), find_key(&auth, &snap, token, Access::Write)?));
    }
    let changes: Vec<Change> = found
        .iter()
        .map(|(_, k)| Change::DeleteKey(&k.record.token))
        .collect();
    let audits: Vec<Audit> = found
        .iter()
        .map(|(_, k)| {
            audit(
                &auth,
                "key",
                "deleted",
                &k.record.token,
                Some(k.record.view()),
                None,
            )
        })
        .collect();
    state
        .directory
        .apply(&changes, &audits)
        .await
        .map_err(store_error)?;
    Ok(json(serde_json::json!({
        "deleted_keys": found.iter().map(|(named, _)| named).collect::<Vec<_>>()
    })))
}

async fn set_blocked(
    state: SharedState,
    auth: AuthContext,
    body: Bytes,
    blocked: bool,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let mut m = body_map(&body)?;
    let key = require_str(&mut m, "key")?;
    let snap = state.directory.snapshot();
    let entry = find_key(&auth, &snap, &key, Access::Write)?;
    let mut rec = entry.record.clone();
    rec.blocked = blocked;
    rec.updated_at = now_ms();
    state
        .directory
        .apply(
            &[Change::PutKey(&rec)],
            &[audit(
                &auth,
                "key",
                if blocked { "blocked" } else { "unblocked" },
                &rec.token,
                Some(entry.record.view()),
                Some(rec.view()),
            )],
        )
        .await
        .map_err(store_error)?;
    Ok(json(rec.view()))
}

async fn block(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    set_blocked(state, auth, body, true).await
}

async fn unblock(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    set_blocked(state, auth, body, false).await
}

async fn regenerate(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut m = body_map(&body)?;
    let key = require_str(&mut m, "key")?;
    do_regenerate(state, auth, key, m).await
}

async fn regenerate_path(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut m = body_map(&body)?;
    m.remove("key");
    do_regenerate(state, auth, key, m).await
}

/// A new secret for the same key record (spend, budgets and limits kept); the
/// old secret stops working at once. Other fields in the body update the key.
async fn do_regenerate(
    state: SharedState,
    auth: AuthContext,
    key: String,
    mut m: Map<String, Value>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let snap = state.directory.snapshot();
    let entry = find_key(&auth, &snap, &key, Access::Write)?;
    let secret = match take_str(&mut m, "new_key")? {
        Some(k) if k.starts_with("sk-") && k.len() >= 12 => k,
        Some(_) => {
            return Err(ApiError::bad_request(
                "'new_key' must start with sk- and be at least 12 characters",
            )
            .param("new_key"))
        }
        None => new_secret(),
    };
    let now = now_ms();
    let mut rec = entry.record.clone();
    rec.token = hash_key(&secret);
    rec.key_name = display_name(&secret);
    if m.contains_key("duration") {
        let d = take_str(&mut m, "duration")?;
        rec.expires_at = expiry(d.as_deref(), now)?;
    }
    rec.settings = merge_settings(&rec.settings, m)?;
    rec.updated_at = now;
    let changes = [
        Change::RenameKey {
            old: &entry.record.token,
            new: &rec.token,
            key_name: &rec.key_name,
        },
        Change::PutKey(&rec),
    ];
    state
        .directory
        .apply(
            &changes,
            &[audit(
                &auth,
                "key",
                "regenerated",
                &rec.token,
                Some(entry.record.view()),
                Some(rec.view()),
            )],
        )
        .await
        .map_err(store_error)?;
    Ok(json(with_secret(&rec, &secret)))
}
