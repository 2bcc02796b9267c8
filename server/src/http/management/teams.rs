//! `/team/new`, `/team/info`, `/team/update`, `/team/delete`, `/team/list`,
//! `/team/member_add`, `/team/member_delete`, `/team/block`, `/team/unblock`.

use super::*;
use crate::directory::records::{MemberRecord, TeamRecord, UserRecord};
use crate::directory::TeamEntry;
use crate::logs::now_ms;
use crate::store::directory::Change;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/team/new", post(new_team))
        .route("/team/info", get(info))
        .route("/team/update", post(update))
        .route("/team/delete", post(delete))
        .route("/team/list", get(list))
        .route("/v2/team/list", get(list_paged))
        .route("/team/member_add", post(member_add))
        .route("/team/member_delete", post(member_delete))
        .route("/team/block", post(block))
        .route("/team/unblock", post(unblock))
}

/// LiteLLM's `{role, user_id?, user_email?}` member.
#[derive(Deserialize)]
struct Member {
    #[serde(default = "default_role")]
    role: String,
    user_id: Option<String>,
    user_email: Option<String>,
}

fn default_role() -> String {
    "user".into()
}

/// Resolves members to user ids, creating `internal_user`s for unknown ones
/// (as LiteLLM does). Returns the memberships and the users to create.
fn resolve_members(
    snap: &Snapshot,
    team_id: &str,
    members: Vec<Member>,
) -> Result<(Vec<MemberRecord>, Vec<UserRecord>), ApiError> {
    let now = now_ms();
    let mut out = Vec::new();
    let mut new_users: Vec<UserRecord> = Vec::new();
    for m in members {
        if m.role != "admin" && m.role != "user" {
            return Err(ApiError::bad_request(format!(
                "member role must be 'admin' or 'user', got {:?}",
                m.role
            ))
            .param("member"));
        }
        let existing = match (&m.user_id, &m.user_email) {
            (Some(id), _) => snap.users.get(id).map(|u| u.record.user_id.clone()),
            (None, Some(e)) => snap.user_by_email(e).map(|u| u.record.user_id.clone()),
            (None, None) => {
                return Err(
                    ApiError::bad_request("each member needs a user_id or a user_email")
                        .param("member"),
                )
            }
        };
        let user_id = match existing {
            Some(id) => id,
            None => {
                let id = m
                    .user_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                if !new_users.iter().any(|u| u.user_id == id) {
                    new_users.push(UserRecord {
                        user_id: id.clone(),
                        user_email: m.user_email.clone(),
                        user_alias: None,
                        user_role: Role::InternalUser,
                        blocked: false,
                        spend: 0.0,
                        budget_reset_at: None,
                        settings: Settings::default(),
                        created_at: now,
                        updated_at: now,
                    });
                }
                id
            }
        };
        out.push(MemberRecord {
            team_id: team_id.to_string(),
            user_id,
            role: m.role,
        });
    }
    Ok((out, new_users))
}

async fn new_team(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "create teams")?;
    let mut m = body_map(&body)?;
    let snap = state.directory.snapshot();
    let team_id = take_str(&mut m, "team_id")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if snap.teams.contains_key(&team_id) {
        return Err(
            ApiError::bad_request(format!("team_id {team_id} already exists")).param("team_id"),
        );
    }
    let team_alias = take_str(&mut m, "team_alias")?;
    let blocked = take_bool(&mut m, "blocked")?.unwrap_or(false);
    let members: Vec<Member> = take(&mut m, "members_with_roles")?.unwrap_or_default();
    let (memberships, new_users) = resolve_members(&snap, &team_id, members)?;
    let now = now_ms();
    let settings = merge_settings(&Settings::default(), m)?;
    let team = TeamRecord {
        team_id: team_id.clone(),
        team_alias,
        blocked,
        spend: 0.0,
        budget_reset_at: first_reset(&settings, now),
        settings,
        created_at: now,
        updated_at: now,
    };
    let mut changes: Vec<Change> = new_users.iter().map(Change::PutUser).collect();
    changes.push(Change::PutTeam(&team));
    changes.extend(memberships.iter().map(Change::PutMember));
    let view = team.view(&memberships);
    state
        .directory
        .apply(
            &changes,
            &[audit(
                &auth,
                "team",
                "created",
                &team_id,
                None,
                Some(view.clone()),
            )],
        )
        .await
        .map_err(store_error)?;
    Ok(json(view))
}

#[derive(Deserialize)]
struct InfoQuery {
    team_id: Option<String>,
}

fn find_team<'s>(snap: &'s Snapshot, team_id: &str) -> Result<&'s Arc<TeamEntry>, ApiError> {
    snap.teams
        .get(team_id)
        .ok_or_else(|| ApiError::not_found(format!("Team not found: {team_id}")))
}

/// The caller may read the team: admins and viewers, and its members.
fn may_read_team(auth: &AuthContext, snap: &Snapshot, team_id: &str) -> bool {
    auth.reads_all()
        || auth.team_id() == Some(team_id)
        || auth
            .user_id()
            .is_some_and(|u| snap.team_role(team_id, u).is_some())
}

/// The caller may manage the team's members and keys: admins and team admins.
fn may_manage_team(auth: &AuthContext, snap: &Snapshot, team_id: &str) -> bool {
    auth.is_admin()
        || auth
            .user_id()
            .is_some_and(|u| is_team_admin(snap, team_id, u))
}

async fn info(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<InfoQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let snap = state.directory.snapshot();
    let team_id = q
        .team_id
        .or_else(|| auth.team_id().map(str::to_string))
        .ok_or_else(|| ApiError::bad_request("pass ?team_id=…").param("team_id"))?;
    if !may_read_team(&auth, &snap, &team_id) {
        return Err(ApiError::forbidden(format!(
            "You are not a member of team {team_id}."
        )));
    }
    let team = find_team(&snap, &team_id)?;
    let view = with_member_emails(
        with_spend(team.record.view(&snap.members), team.spend.total()),
        &snap,
    );
    let keys: Vec<Value> = snap
        .keys
        .values()
        .filter(|k| k.record.team_id.as_deref() == Some(team_id.as_str()))
        .map(|k| k.record.view())
        .collect();
    let memberships: Vec<Value> = snap
        .members
        .iter()
        .filter(|m| m.team_id == team_id)
        .map(|m| serde_json::json!({"team_id": m.team_id, "user_id": m.user_id, "role": m.role}))
        .collect();
    Ok(json(serde_json::json!({
        "team_id": team_id,
        "team_info": view,
        "keys": keys,
        "team_memberships": memberships,
    })))
}

async fn update(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "update teams")?;
    let mut m = body_map(&body)?;
    let team_id = require_str(&mut m, "team_id")?;
    let snap = state.directory.snapshot();
    let team = find_team(&snap, &team_id)?;
    let before = team.record.clone();
    let mut rec = before.clone();
    if m.contains_key("team_alias") {
        rec.team_alias = take_str(&mut m, "team_alias")?;
    }
    if let Some(b) = take_bool(&mut m, "blocked")? {
        rec.blocked = b;
    }
    m.remove("members_with_roles");
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
            &[Change::PutTeam(&rec)],
            &[audit(
                &auth,
                "team",
                "updated",
                &team_id,
                Some(before.view(&snap.members)),
                Some(rec.view(&snap.members)),
            )],
        )
        .await
        .map_err(store_error)?;
    Ok(json(
        serde_json::json!({"team_id": team_id, "data": rec.view(&snap.members)}),
    ))
}

async fn delete(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "delete teams")?;
    let mut m = body_map(&body)?;
    let ids: Vec<String> = take(&mut m, "team_ids")?.unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiError::bad_request("pass 'team_ids'").param("team_ids"));
    }
    let snap = state.directory.snapshot();
    let mut audits = Vec::new();
    for id in &ids {
        let t = find_team(&snap, id)?;
        audits.push(audit(
            &auth,
            "team",
            "deleted",
            id,
            Some(t.record.view(&snap.members)),
            None,
        ));
    }
    let changes: Vec<Change> = ids.iter().map(|id| Change::DeleteTeam(id)).collect();
    state
        .directory
        .apply(&changes, &audits)
        .await
        .map_err(store_error)?;
    Ok(json(serde_json::json!({"deleted_teams": ids})))
}

#[derive(Deserialize)]
struct ListQuery {
    user_id: Option<String>,
}

/// The teams `auth` may read, of `user_id` when given (only one's own for
/// those who do not read everything).
fn listed_teams<'s>(
    auth: &'s AuthContext,
    snap: &'s Snapshot,
    user_id: Option<&'s str>,
) -> Result<impl Iterator<Item = &'s Arc<TeamEntry>>, ApiError> {
    if !auth.reads_all() && user_id.is_some() && user_id != auth.user_id() {
        return Err(ApiError::forbidden("You may only list your own teams."));
    }
    Ok(snap
        .teams
        .values()
        .filter(move |t| may_read_team(auth, snap, &t.record.team_id))
        .filter(move |t| user_id.is_none_or(|u| snap.team_role(&t.record.team_id, u).is_some())))
}

/// A team as the lists show it: with its spend and its members' emails.
fn listed_view(t: &TeamEntry, snap: &Snapshot) -> Value {
    with_member_emails(
        with_spend(t.record.view(&snap.members), t.spend.total()),
        snap,
    )
}

async fn list(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let snap = state.directory.snapshot();
    let mut teams: Vec<Value> = listed_teams(&auth, &snap, q.user_id.as_deref())?
        .map(|t| listed_view(t, &snap))
        .collect();
    teams.sort_by(|a, b| a["team_id"].as_str().cmp(&b["team_id"].as_str()));
    Ok(json(Value::Array(teams)))
}

#[derive(Deserialize)]
struct PagedQuery {
    user_id: Option<String>,
    /// A case-insensitive part of the alias or id.
    team_alias: Option<String>,
    page: Option<u64>,
    page_size: Option<u64>,
}

/// LiteLLM's `/v2/team/list`: the teams the caller may read, by alias, one
/// page at a time (`{teams, total, page, page_size, total_pages}`). Only the
/// page's teams are rendered with their members.
async fn list_paged(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<PagedQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let snap = state.directory.snapshot();
    let search = search_term(q.team_alias.as_deref());
    let name = |t: &TeamEntry| {
        t.record
            .team_alias
            .as_deref()
            .unwrap_or(&t.record.team_id)
            .to_lowercase()
    };
    let mut teams: Vec<(String, &Arc<TeamEntry>)> =
        listed_teams(&auth, &snap, q.user_id.as_deref())?
            .map(|t| (name(t), t))
            .filter(|(n, t)| {
                search
                    .as_deref()
                    .is_none_or(|s| n.contains(s) || t.record.team_id.to_lowercase().contains(s))
            })
            .collect();
    teams.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.record.team_id.cmp(&b.1.record.team_id))
    });
    Ok(paged(
        "teams",
        &teams,
        page(q.page, q.page_size, 25),
        |(_, t)| listed_view(t, &snap),
    ))
}

async fn member_add(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let mut m = body_map(&body)?;
    let team_id = require_str(&mut m, "team_id")?;
    let snap = state.directory.snapshot();
    if !may_manage_team(&auth, &snap, &team_id) {
        return Err(ApiError::forbidden(format!(
            "Only a proxy_admin or an admin of team {team_id} may add members."
        )));
    }
    find_team(&snap, &team_id)?;
    let members: Vec<Member> = match m.remove("member") {
        Some(Value::Array(a)) => serde_json::from_value(Value::Array(a)),
        Some(v @ Value::Object(_)) => serde_json::from_value(v).map(|one| vec![one]),
        _ => {
            return Err(
                ApiError::bad_request("'member' must be a member object or a list of them")
                    .param("member"),
            )
        }
    }
    .map_err(|e| {
        ApiError::bad_request(format!("Invalid value for 'member': {e}")).param("member")
    })?;
    let (memberships, new_users) = resolve_members(&snap, &team_id, members)?;
    let mut changes: Vec<Change> = new_users.iter().map(Change::PutUser).collect();
    changes.extend(memberships.iter().map(Change::PutMember));
    let added = serde_json::json!(memberships
        .iter()
        .map(|m| serde_json::json!({"user_id": m.user_id, "role": m.role}))
        .collect::<Vec<_>>());
    state
        .directory
        .apply(
            &changes,
            &[audit(
                &auth,
                "team",
                "member_added",
                &team_id,
                None,
                Some(added),
            )],
        )
        .await
        .map_err(store_error)?;
    team_view(&state, &team_id)
}

fn team_view(state: &SharedState, team_id: &str) -> Result<Response, ApiError> {
    let snap = state.directory.snapshot();
    let team = find_team(&snap, team_id)?;
    Ok(json(team.record.view(&snap.members)))
}

async fn member_delete(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Write)?;
    let mut m = body_map(&body)?;
    let team_id = require_str(&mut m, "team_id")?;
    let snap = state.directory.snapshot();
    if !may_manage_team(&auth, &snap, &team_id) {
        return Err(ApiError::forbidden(format!(
            "Only a proxy_admin or an admin of team {team_id} may remove members."
        )));
    }
    let user_id = match (
        take_str(&mut m, "user_id")?,
        take_str(&mut m, "user_email")?,
    ) {
        (Some(id), _) => id,
        (None, Some(e)) => snap
            .user_by_email(&e)
            .map(|u| u.record.user_id.clone())
            .ok_or_else(|| ApiError::not_found(format!("User not found: {e}")))?,
        _ => return Err(ApiError::bad_request("pass 'user_id' or 'user_email'").param("user_id")),
    };
    if snap.team_role(&team_id, &user_id).is_none() {
        return Err(ApiError::not_found(format!(
            "{user_id} is not a member of team {team_id}"
        )));
    }
    state
        .directory
        .apply(
            &[Change::DeleteMember {
                team_id: &team_id,
                user_id: &user_id,
            }],
            &[audit(
                &auth,
                "team",
                "member_deleted",
                &team_id,
                Some(serde_json::json!({"user_id": user_id})),
                None,
            )],
        )
        .await
        .map_err(store_error)?;
    team_view(&state, &team_id)
}

async fn set_blocked(
    state: SharedState,
    auth: AuthContext,
    body: Bytes,
    blocked: bool,
) -> Result<Response, ApiError> {
    admin_only(
        &auth,
        if blocked {
            "block teams"
        } else {
            "unblock teams"
        },
    )?;
    let mut m = body_map(&body)?;
    let team_id = require_str(&mut m, "team_id")?;
    let snap = state.directory.snapshot();
    let team = find_team(&snap, &team_id)?;
    let mut rec = team.record.clone();
    rec.blocked = blocked;
    rec.updated_at = now_ms();
    state
        .directory
        .apply(
            &[Change::PutTeam(&rec)],
            &[audit(
                &auth,
                "team",
                if blocked { "blocked" } else { "unblocked" },
                &team_id,
                Some(team.record.view(&snap.members)),
                Some(rec.view(&snap.members)),
            )],
        )
        .await
        .map_err(store_error)?;
    Ok(json(rec.view(&snap.members)))
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

/// Each member of a team view with its user's email, as LiteLLM shows them.
fn with_member_emails(mut view: Value, snap: &crate::directory::Snapshot) -> Value {
    if let Some(members) = view
        .get_mut("members_with_roles")
        .and_then(Value::as_array_mut)
    {
        for m in members {
            let email = m["user_id"]
                .as_str()
                .and_then(|u| snap.users.get(u))
                .and_then(|u| u.record.user_email.clone());
            m["user_email"] = serde_json::json!(email);
        }
    }
    view
}
