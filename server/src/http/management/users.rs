//! `/user/new`, `/user/info`, `/user/update`, `/user/delete`, `/user/list`.

use super::*;
use crate::auth::hash_key;
use crate::directory::records::{KeyRecord, MemberRecord, UserRecord};
use crate::logs::now_ms;
use crate::store::directory::Change;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use serde::Deserialize;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/user/new", post(new_user))
        .route("/user/info", get(info))
        .route("/user/update", post(update))
        .route("/user/delete", post(delete))
        .route("/user/list", get(list))
}

async fn new_user(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut m = body_map(&body)?;
    // An Okta JWT whose subject has no user yet may create that user, as an
    // internal_user, and nothing else.
    let own = auth.jwt_subject.clone().filter(|_| auth.role().is_none());
    if let Some(sub) = &own {
        own_user_only(&mut m, sub)?;
    } else {
        admin_only(&auth, "create users")?;
    }
    let snap = state.directory.snapshot();
    let user_id = take_str(&mut m, "user_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let user_email = take_str(&mut m, "user_email")?;
    let user_alias = take_str(&mut m, "user_alias")?;
    let role = match take_str(&mut m, "user_role")? {
        Some(r) => Role::parse(&r).map_err(|e| ApiError::bad_request(e).param("user_role"))?,
        None => Role::InternalUser,
    };
    let blocked = take_bool(&mut m, "blocked")?.unwrap_or(false);
    let teams: Vec<String> = take(&mut m, "teams")?.unwrap_or_default();
    let auto_create_key = take_bool(&mut m, "auto_create_key")?.unwrap_or(true);
    let key_alias = take_str(&mut m, "key_alias")?;
    let duration = take_str(&mut m, "duration")?;
    m.remove("send_invite_email");
    let password = new_password(&mut m).await?;
    if snap.users.contains_key(&user_id) {
        return Err(
            ApiError::bad_request(format!("user_id {user_id} already exists")).param("user_id"),
        );
    }
    if let Some(e) = &user_email {
        if snap.user_by_email(e).is_some() {
            return Err(ApiError::bad_request(format!(
                "user_email {e} is already used by another user"
            ))
            .param("user_email"));
        }
    }
    for t in &teams {
        if !snap.teams.contains_key(t) {
            return Err(ApiError::bad_request(format!("team {t} does not exist")).param("teams"));
        }
    }
    let mut settings = merge_settings(&Settings::default(), m)?;
    if role == Role::InternalUser {
        if settings.max_budget.is_none() {
            settings.max_budget = state.management.max_internal_user_budget;
        }
        if settings.budget_duration.is_none() {
            settings.budget_duration = state.management.internal_user_budget_duration.clone();
        }
    }
    let now = now_ms();
    let user = UserRecord {
        user_id: user_id.clone(),
        user_email,
        user_alias,
        user_role: role,
        blocked,
        spend: 0.0,
        budget_reset_at: first_reset(&settings, now),
        settings,
        created_at: now,
        updated_at: now,
    };
    let members: Vec<MemberRecord> = teams
        .iter()
        .map(|t| MemberRecord {
            team_id: t.clone(),
            user_id: user_id.clone(),
            role: "user".into(),
        })
        .collect();
    let key = if auto_create_key {
        let secret = super::keys::new_secret();
        Some((
            KeyRecord {
                token: hash_key(&secret),
                key_name: super::keys::display_name(&secret),
                key_alias,
                user_id: Some(user_id.clone()),
                team_id: None,
                blocked: false,
                expires_at: super::keys::expiry(duration.as_deref(), now)?,
                spend: 0.0,
                budget_reset_at: None,
                settings: Settings::default(),
                created_by: Some(auth.actor()),
                created_at: now,
                updated_at: now,
            },
            secret,
        ))
    } else {
        None
    };
    let mut changes = vec![Change::PutUser(&user)];
    changes.extend(members.iter().map(Change::PutMember));
    if let Some((k, _)) = &key {
        changes.push(Change::PutKey(k));
    }
    state
        .directory
        .apply(
            &changes,
            &[audit(
                &auth,
                "user",
                "created",
                &user.user_id,
                None,
                Some(user.view()),
            )],
        )
        .await
        .map_err(store_error)?;
    if let Some(hash) = &password {
        state
            .store
            .set_password_hash(&user.user_id, Some(hash))
            .await
            .map_err(store_error)?;
    }
    let mut out = user.view();
    if let Value::Object(o) = &mut out {
        o.insert("teams".into(), serde_json::json!(teams));
        o.insert("duration".into(), serde_json::json!(duration));
        match &key {
            Some((k, secret)) => {
                o.insert("key".into(), Value::String(secret.clone()));
                o.insert("key_name".into(), Value::String(k.key_name.clone()));
                o.insert("token_id".into(), Value::String(k.token.clone()));
                o.insert("key_alias".into(), serde_json::json!(k.key_alias));
                o.insert(
                    "expires".into(),
                    k.expires_at
                        .map(crate::directory::records::iso)
                        .unwrap_or(Value::Null),
                );
            }
            None => {
                o.insert("key".into(), Value::Null);
            }
        }
    }
    Ok(json(out))
}

#[derive(Deserialize)]
struct InfoQuery {
    user_id: Option<String>,
    user_email: Option<String>,
}

async fn info(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<InfoQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let snap = state.directory.snapshot();
    let user = match (&q.user_id, &q.user_email, auth.user_id()) {
        (Some(id), _, _) => snap.users.get(id),
        (None, Some(e), _) => snap.user_by_email(e),
        (None, None, Some(me)) => snap.users.get(me),
        (None, None, None) => return Err(ApiError::bad_request("pass ?user_id=…").param("user_id")),
    };
    let asked = q
        .user_id
        .as_deref()
        .or(q.user_email.as_deref())
        .unwrap_or_default();
    let Some(user) = user else {
        return if auth.reads_all() {
            Err(ApiError::not_found(format!("User not found: {asked}")))
        } else {
            Err(ApiError::forbidden("You may only read your own user."))
        };
    };
    let id = &user.record.user_id;
    if !auth.reads_all() && auth.user_id() != Some(id.as_str()) {
        return Err(ApiError::forbidden("You may only read your own user."));
    }
    let view = with_spend(user.record.view(), user.spend.total());
    let keys: Vec<Value> = snap
        .keys
        .values()
        .filter(|k| k.record.user_id.as_deref() == Some(id))
        .map(|k| k.record.view())
        .collect();
    let members = &snap.members;
    let teams: Vec<Value> = user
        .teams
        .iter()
        .filter_map(|(t, _)| snap.teams.get(t))
        .map(|t| t.record.view(members))
        .collect();
    Ok(json(serde_json::json!({
        "user_id": id,
        "user_info": view,
        "keys": keys,
        "teams": teams,
    })))
}

async fn update(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "update users")?;
    let mut m = body_map(&body)?;
    let snap = state.directory.snapshot();
    let id = take_str(&mut m, "user_id")?;
    let email = take_str(&mut m, "user_email")?;
    let user = match (&id, &email) {
        (Some(id), _) => snap.users.get(id),
        (None, Some(e)) => snap.user_by_email(e),
        _ => return Err(ApiError::bad_request("pass 'user_id' or 'user_email'").param("user_id")),
    }
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "User not found: {}",
            id.clone().or(email.clone()).unwrap_or_default()
        ))
    })?;
    let before = user.record.clone();
    let mut rec = before.clone();
    if id.is_some() && email.is_some() {
        rec.user_email = email;
    }
    if m.contains_key("user_alias") {
        rec.user_alias = take_str(&mut m, "user_alias")?;
    }
    if let Some(r) = take_str(&mut m, "user_role")? {
        rec.user_role = Role::parse(&r).map_err(|e| ApiError::bad_request(e).param("user_role"))?;
    }
    if let Some(b) = take_bool(&mut m, "blocked")? {
        rec.blocked = b;
    }
    let password = new_password(&mut m).await?;
    let now = now_ms();
    let period = rec.settings.budget_duration.clone();
    rec.settings = merge_settings(&rec.settings, m)?;
    if rec.settings.budget_duration != period {
        rec.budget_reset_at = first_reset(&rec.settings, now);
    }
    rec.updated_at = now;
    state
        .directory
        .apply(
            &[Change::PutUser(&rec)],
            &[audit(
                &auth,
                "user",
                "updated",
                &rec.user_id,
                Some(before.view()),
                Some(rec.view()),
            )],
        )
        .await
        .map_err(store_error)?;
    if let Some(hash) = &password {
        state
            .store
            .set_password_hash(&rec.user_id, Some(hash))
            .await
            .map_err(store_error)?;
    }
    // A new password, or a block, ends the user's console sessions everywhere.
    if password.is_some() || (rec.blocked && !before.blocked) {
        state
            .store
            .end_console_sessions_of(&format!("user:{}", rec.user_id))
            .await
            .map_err(store_error)?;
    }
    Ok(json(
        serde_json::json!({"user_id": rec.user_id, "data": rec.view()}),
    ))
}

/// What a JWT caller may ask of `/user/new`: its own user (id = the token's
/// subject), as an internal_user, in no team; `user_id` is filled in.
fn own_user_only(m: &mut serde_json::Map<String, Value>, sub: &str) -> Result<(), ApiError> {
    match m.get("user_id").and_then(Value::as_str) {
        None => {
            m.insert("user_id".into(), Value::String(sub.to_string()));
        }
        Some(id) if id == sub => {}
        Some(id) => {
            return Err(ApiError::forbidden(format!(
                "This token may only create its own user ({sub}), not {id}."
            )))
        }
    }
    if let Some(r) = m.get("user_role").and_then(Value::as_str) {
        if r != "internal_user" {
            return Err(ApiError::forbidden(format!(
                "A user created with an Okta token is an internal_user, not {r}."
            ))
            .param("user_role"));
        }
    }
    for field in [
        "teams",
        "max_budget",
        "tpm_limit",
        "rpm_limit",
        "models",
        "blocked",
    ] {
        if m.contains_key(field) {
            return Err(ApiError::forbidden(format!(
                "'{field}' is set by an admin; a user created with an Okta token cannot set it."
            ))
            .param(field));
        }
    }
    Ok(())
}

/// `password` in a user's body: checked, and hashed (Argon2id) for the store.
/// It is never kept in the user's settings nor echoed back.
async fn new_password(m: &mut serde_json::Map<String, Value>) -> Result<Option<String>, ApiError> {
    let Some(p) = take_str(m, "password")? else {
        return Ok(None);
    };
    crate::auth::password::check_new(&p).map_err(|e| ApiError::bad_request(e).param("password"))?;
    crate::auth::password::hash(p).await.map(Some).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            format!("the password could not be hashed: {e}"),
        )
    })
}

async fn delete(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "delete users")?;
    let mut m = body_map(&body)?;
    let ids: Vec<String> = take(&mut m, "user_ids")?.unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiError::bad_request("pass 'user_ids'").param("user_ids"));
    }
    let snap = state.directory.snapshot();
    let mut audits = Vec::new();
    for id in &ids {
        let u = snap
            .users
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("User not found: {id}")))?;
        audits.push(audit(
            &auth,
            "user",
            "deleted",
            id,
            Some(u.record.view()),
            None,
        ));
    }
    let changes: Vec<Change> = ids.iter().map(|id| Change::DeleteUser(id)).collect();
    state
        .directory
        .apply(&changes, &audits)
        .await
        .map_err(store_error)?;
    Ok(json(serde_json::json!({"deleted_users": ids})))
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    role: Option<String>,
    user_ids: Option<String>,
    user_email: Option<String>,
}

async fn list(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "list users")?;
    let snap = state.directory.snapshot();
    let wanted: Option<Vec<&str>> = q
        .user_ids
        .as_deref()
        .map(|s| s.split(',').map(str::trim).collect());
    let mut users: Vec<_> = snap
        .users
        .values()
        .filter(|u| {
            q.role
                .as_deref()
                .is_none_or(|r| u.record.user_role.as_str() == r)
        })
        .filter(|u| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&u.record.user_id.as_str()))
        })
        .filter(|u| {
            q.user_email.as_deref().is_none_or(|e| {
                u.record
                    .user_email
                    .as_deref()
                    .is_some_and(|x| x.to_ascii_lowercase().contains(&e.to_ascii_lowercase()))
            })
        })
        .collect();
    users.sort_by(|a, b| {
        b.record
            .created_at
            .cmp(&a.record.created_at)
            .then_with(|| a.record.user_id.cmp(&b.record.user_id))
    });
    Ok(paged("users", &users, page(q.page, q.page_size, 25), |u| {
        with_spend(u.record.view(), u.spend.total())
    }))
}

/// The user an OIDC sign-in is for: the user whose id is the token's subject;
/// else the user with its email when the issuer says the email is verified;
/// else a new `internal_user` (id = subject) with the usual budget defaults.
/// Members of the admin group become proxy admins (never the reverse: a role
/// an admin set by hand is kept). Returns the user id.
pub(crate) async fn provision_sso_user(
    state: &SharedState,
    who: &crate::auth::oidc::Identity,
) -> Result<String, String> {
    let snap = state.directory.snapshot();
    let existing = snap.users.get(&who.subject).or_else(|| {
        who.email
            .as_deref()
            .filter(|_| who.email_verified)
            .and_then(|e| snap.user_by_email(e))
    });
    let actor = Audit {
        actor: format!("sso:{}", who.subject),
        actor_role: "sso".into(),
        action: "",
        object_type: "user",
        object_id: String::new(),
        before: None,
        after: None,
    };
    if let Some(u) = existing {
        if who.admin && u.record.user_role != Role::ProxyAdmin {
            let mut rec = u.record.clone();
            rec.user_role = Role::ProxyAdmin;
            rec.updated_at = now_ms();
            let a = Audit {
                action: "updated",
                object_id: rec.user_id.clone(),
                before: Some(u.record.view()),
                after: Some(rec.view()),
                ..actor
            };
            state
                .directory
                .apply(&[Change::PutUser(&rec)], &[a])
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(u.record.user_id.clone());
    }
    let role = if who.admin {
        Role::ProxyAdmin
    } else {
        Role::InternalUser
    };
    let mut settings = Settings::default();
    if role == Role::InternalUser {
        settings.max_budget = state.management.max_internal_user_budget;
        settings.budget_duration = state.management.internal_user_budget_duration.clone();
    }
    let now = now_ms();
    // An email another user already has (and the issuer did not verify) is not taken over.
    let email = who
        .email
        .clone()
        .filter(|e| snap.user_by_email(e).is_none());
    let user = UserRecord {
        user_id: who.subject.clone(),
        user_email: email,
        user_alias: who.name.clone(),
        user_role: role,
        blocked: false,
        spend: 0.0,
        budget_reset_at: first_reset(&settings, now),
        settings,
        created_at: now,
        updated_at: now,
    };
    let a = Audit {
        action: "created",
        object_id: user.user_id.clone(),
        after: Some(user.view()),
        ..actor
    };
    state
        .directory
        .apply(&[Change::PutUser(&user)], &[a])
        .await
        .map_err(|e| e.to_string())?;
    Ok(user.user_id)
}
