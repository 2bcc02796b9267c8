//! SQL for users, teams, members and keys: loading them whole (the in-memory
//! directory), admin changes in one transaction with their audit rows and a
//! version bump, and spend counters updated with each batch of request logs.
//! The statements are the same text on SQLite and Postgres (`$n` parameters).

use super::{Store, StoreError};
use crate::config::DbModel;
use crate::directory::records::{
    KeyRecord, MemberRecord, PromptRecord, Role, Settings, TeamRecord, UserRecord,
};
use serde_json::{Map, Value};

/// Everything the directory holds, as read at one moment.
#[derive(Debug, Default)]
pub struct Loaded {
    pub version: i64,
    pub users: Vec<UserRecord>,
    pub teams: Vec<TeamRecord>,
    pub members: Vec<MemberRecord>,
    pub keys: Vec<KeyRecord>,
    /// Deployments added through the API, secrets still encrypted.
    pub models: Vec<DbModel>,
    /// Keys' spend per model ([`key_model_id`], spend).
    pub key_model_spend: Vec<(String, f64)>,
    /// Every version of every managed prompt.
    pub prompts: Vec<PromptRecord>,
    pub proxy_spend: f64,
}

/// One admin change.
#[derive(Debug)]
pub enum Change<'a> {
    PutUser(&'a UserRecord),
    DeleteUser(&'a str),
    PutTeam(&'a TeamRecord),
    DeleteTeam(&'a str),
    PutMember(&'a MemberRecord),
    DeleteMember {
        team_id: &'a str,
        user_id: &'a str,
    },
    PutKey(&'a KeyRecord),
    DeleteKey(&'a str),
    /// Regeneration: the same key record under a new secret.
    RenameKey {
        old: &'a str,
        new: &'a str,
        key_name: &'a str,
    },
    PutModel(&'a DbModel),
    DeleteModel(&'a str),
    PutPrompt(&'a PromptRecord),
    /// Every version of a prompt.
    DeletePrompt(&'a str),
}

/// Versions whose changes `directory_changes` keeps.
const CHANGES_KEPT: i64 = 1000;

/// What kind of record a logged change touched. `Other` (memberships,
/// deleted users and teams, regenerated keys) is read back in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    User,
    Team,
    Key,
    Model,
    Prompt,
    Other,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::User => "user",
            ChangeKind::Team => "team",
            ChangeKind::Key => "key",
            ChangeKind::Model => "model",
            ChangeKind::Prompt => "prompt",
            ChangeKind::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => ChangeKind::User,
            "team" => ChangeKind::Team,
            "key" => ChangeKind::Key,
            "model" => ChangeKind::Model,
            "prompt" => ChangeKind::Prompt,
            "other" => ChangeKind::Other,
            _ => return None,
        })
    }
}

/// A changed record as the store holds it now.
#[derive(Debug)]
pub enum Changed {
    User(UserRecord),
    Team(TeamRecord),
    Key(KeyRecord),
    Model(DbModel),
    /// Every version of one prompt.
    Prompt(Vec<PromptRecord>),
}

impl Change<'_> {
    /// The kind and id this change is logged under.
    fn logged(&self) -> (ChangeKind, &str) {
        match self {
            Change::PutUser(u) => (ChangeKind::User, &u.user_id),
            Change::PutTeam(t) => (ChangeKind::Team, &t.team_id),
            Change::PutKey(k) => (ChangeKind::Key, &k.token),
            Change::DeleteKey(t) => (ChangeKind::Key, t),
            Change::PutModel(m) => (ChangeKind::Model, &m.model_id),
            Change::DeleteModel(id) => (ChangeKind::Model, id),
            Change::PutPrompt(p) => (ChangeKind::Prompt, &p.prompt_id),
            Change::DeletePrompt(id) => (ChangeKind::Prompt, id),
            Change::DeleteUser(id) | Change::DeleteTeam(id) => (ChangeKind::Other, id),
            Change::PutMember(m) => (ChangeKind::Other, &m.team_id),
            Change::DeleteMember { team_id, .. } => (ChangeKind::Other, team_id),
            Change::RenameKey { new, .. } => (ChangeKind::Other, new),
        }
    }
}

/// Who changed what, kept in `audit_log`.
#[derive(Debug, Clone)]
pub struct Audit {
    pub actor: String,
    pub actor_role: String,
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

type ModelRow = (String, String, String, String, Option<String>, i64, i64);

fn model_of(r: ModelRow) -> DbModel {
    let map = |s: &str| match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    DbModel {
        model_id: r.0,
        model_name: r.1,
        litellm_params: map(&r.2),
        model_info: map(&r.3),
        created_by: r.4,
        created_at: r.5,
        updated_at: r.6,
    }
}

type PromptRow = (
    String,
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
);

fn prompt_of(r: PromptRow) -> PromptRecord {
    PromptRecord {
        prompt_id: r.0,
        version: r.1,
        name: r.2,
        description: r.3,
        template: serde_json::from_str(&r.4).unwrap_or_default(),
        model: r.5,
        inference: serde_json::from_str(&r.6).unwrap_or_default(),
        arn: r.7,
        created_by: r.8,
        created_at: r.9,
    }
}

type AuditRow = (i64, String, String, String, Option<String>, Option<String>);

/// Which spend counter a delta goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpendKind {
    Key,
    User,
    Team,
    Proxy,
    /// A key's spend on one model (`model_max_budget`); id from [`key_model_id`].
    KeyModel,
}

/// The counter id of a key's spend on one model.
pub fn key_model_id(token: &str, model: &str) -> String {
    format!("{token}\n{model}")
}

/// (token, model) of a [`key_model_id`].
pub fn split_key_model_id(id: &str) -> (&str, &str) {
    id.split_once('\n').unwrap_or((id, ""))
}

const USER_COLS: &str = "user_id, user_email, user_alias, user_role, blocked, spend, budget_reset_at, settings, created_at, updated_at";
const TEAM_COLS: &str =
    "team_id, team_alias, blocked, spend, budget_reset_at, settings, created_at, updated_at";
const KEY_COLS: &str = "token, key_name, key_alias, user_id, team_id, blocked, expires_at, spend, budget_reset_at, settings, created_by, created_at, updated_at";

type UserRow = (
    String,
    Option<String>,
    Option<String>,
    String,
    bool,
    f64,
    Option<i64>,
    String,
    i64,
    i64,
);
type TeamRow = (
    String,
    Option<String>,
    bool,
    f64,
    Option<i64>,
    String,
    i64,
    i64,
);
type KeyRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    Option<i64>,
    f64,
    Option<i64>,
    String,
    Option<String>,
    i64,
    i64,
);

fn user_of(r: UserRow) -> UserRecord {
    UserRecord {
        user_role: Role::parse(&r.3).unwrap_or(Role::InternalUser),
        user_id: r.0,
        user_email: r.1,
        user_alias: r.2,
        blocked: r.4,
        spend: r.5,
        budget_reset_at: r.6,
        settings: Settings::from_json(&r.7),
        created_at: r.8,
        updated_at: r.9,
    }
}

fn team_of(r: TeamRow) -> TeamRecord {
    TeamRecord {
        team_id: r.0,
        team_alias: r.1,
        blocked: r.2,
        spend: r.3,
        budget_reset_at: r.4,
        settings: Settings::from_json(&r.5),
        created_at: r.6,
        updated_at: r.7,
    }
}

fn key_of(r: KeyRow) -> KeyRecord {
    KeyRecord {
        token: r.0,
        key_name: r.1,
        key_alias: r.2,
        user_id: r.3,
        team_id: r.4,
        blocked: r.5,
        expires_at: r.6,
        spend: r.7,
        budget_reset_at: r.8,
        settings: Settings::from_json(&r.9),
        created_by: r.10,
        created_at: r.11,
        updated_at: r.12,
    }
}

/// A unique index said no: which value was taken, in words.
fn conflict(e: sqlx::Error) -> StoreError {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => {
            let m = d.message().to_ascii_lowercase();
            let what = if m.contains("alias") {
                "key_alias is already used by another key"
            } else if m.contains("email") {
                "user_email is already used by another user"
            } else {
                "an object with this id already exists"
            };
            StoreError::Conflict(what.into())
        }
        Some(d) if d.is_foreign_key_violation() => {
            StoreError::Conflict("it refers to a user or team that does not exist".into())
        }
        _ => StoreError::Query(e),
    }
}

impl Store {
    /// Reads users, teams, members and keys whole, with the version they belong to.
    pub async fn load_directory(&self) -> Result<Loaded, StoreError> {
        both!(self, p => {
            let mut tx = p.begin().await?;
            let version: i64 = sqlx::query_scalar("SELECT version FROM directory_version WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            let users: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users")))
                .fetch_all(&mut *tx)
                .await?;
            let teams: Vec<TeamRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TEAM_COLS} FROM teams")))
                .fetch_all(&mut *tx)
                .await?;
            let members: Vec<(String, String, String)> =
                sqlx::query_as("SELECT team_id, user_id, role FROM team_members")
                    .fetch_all(&mut *tx)
                    .await?;
            let keys: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {KEY_COLS} FROM api_keys")))
                .fetch_all(&mut *tx)
                .await?;
            let models: Vec<ModelRow> = sqlx::query_as(
                "SELECT model_id, model_name, litellm_params, model_info, created_by, created_at, updated_at \
                 FROM proxy_models ORDER BY created_at, model_id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let prompts: Vec<PromptRow> = sqlx::query_as(
                "SELECT prompt_id, version, name, description, template, model, inference, arn, created_by, created_at \
                 FROM prompts ORDER BY prompt_id, version",
            )
            .fetch_all(&mut *tx)
            .await?;
            let key_model_spend: Vec<(String, String, f64)> =
                sqlx::query_as("SELECT token, model, spend FROM key_model_spend")
                    .fetch_all(&mut *tx)
                    .await?;
            let proxy_spend: f64 = sqlx::query_scalar("SELECT spend FROM proxy_spend WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Loaded {
                version,
                users: users.into_iter().map(user_of).collect(),
                teams: teams.into_iter().map(team_of).collect(),
                members: members
                    .into_iter()
                    .map(|(team_id, user_id, role)| MemberRecord { team_id, user_id, role })
                    .collect(),
                keys: keys.into_iter().map(key_of).collect(),
                models: models.into_iter().map(model_of).collect(),
                prompts: prompts.into_iter().map(prompt_of).collect(),
                key_model_spend: key_model_spend
                    .into_iter()
                    .map(|(t, m, s)| (key_model_id(&t, &m), s))
                    .collect(),
                proxy_spend,
            })
        })
    }

    /// The directory's version (bumped by every admin change, by any process).
    pub async fn directory_version(&self) -> Result<i64, StoreError> {
        both!(self, p => Ok(sqlx::query_scalar("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(p)
            .await?))
    }

    /// Current spend of every key, user and team (for processes sharing a database).
    pub async fn spend_counters(&self) -> Result<Vec<(SpendKind, String, f64)>, StoreError> {
        both!(self, p => {
            let mut out = Vec::new();
            for (kind, sql) in [
                (SpendKind::Key, "SELECT token, spend FROM api_keys"),
                (SpendKind::User, "SELECT user_id, spend FROM users"),
                (SpendKind::Team, "SELECT team_id, spend FROM teams"),
                (SpendKind::Proxy, "SELECT 'proxy', spend FROM proxy_spend"),
            ] {
                let rows: Vec<(String, f64)> = sqlx::query_as(sql).fetch_all(p).await?;
                out.extend(rows.into_iter().map(|(id, s)| (kind, id, s)));
            }
            let rows: Vec<(String, String, f64)> =
                sqlx::query_as("SELECT token, model, spend FROM key_model_spend")
                    .fetch_all(p)
                    .await?;
            out.extend(
                rows.into_iter()
                    .map(|(t, m, s)| (SpendKind::KeyModel, key_model_id(&t, &m), s)),
            );
            Ok(out)
        })
    }

    /// Applies admin changes and their audit rows in one transaction; returns the new version.
    pub async fn apply_changes(
        &self,
        changes: &[Change<'_>],
        audit: &[Audit],
    ) -> Result<i64, StoreError> {
        let now = crate::logs::now_ms();
        both!(self, p => {
            let mut tx = p.begin().await?;
            for c in changes {
                match c {
                    Change::PutUser(u) => {
                        sqlx::query(
                            "INSERT INTO users (user_id, user_email, user_alias, user_role, blocked, spend, \
                             budget_reset_at, settings, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                             ON CONFLICT (user_id) DO UPDATE SET user_email = excluded.user_email, \
                             user_alias = excluded.user_alias, user_role = excluded.user_role, \
                             blocked = excluded.blocked, budget_reset_at = excluded.budget_reset_at, \
                             settings = excluded.settings, updated_at = excluded.updated_at",
                        )
                        .bind(&u.user_id)
                        .bind(&u.user_email)
                        .bind(&u.user_alias)
                        .bind(u.user_role.as_str())
                        .bind(u.blocked)
                        .bind(u.spend)
                        .bind(u.budget_reset_at)
                        .bind(u.settings.to_json())
                        .bind(u.created_at)
                        .bind(u.updated_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::DeleteUser(id) => {
                        sqlx::query("DELETE FROM users WHERE user_id = $1")
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::PutTeam(t) => {
                        sqlx::query(
                            "INSERT INTO teams (team_id, team_alias, blocked, spend, budget_reset_at, settings, \
                             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (team_id) DO UPDATE SET team_alias = excluded.team_alias, \
                             blocked = excluded.blocked, budget_reset_at = excluded.budget_reset_at, \
                             settings = excluded.settings, updated_at = excluded.updated_at",
                        )
                        .bind(&t.team_id)
                        .bind(&t.team_alias)
                        .bind(t.blocked)
                        .bind(t.spend)
                        .bind(t.budget_reset_at)
                        .bind(t.settings.to_json())
                        .bind(t.created_at)
                        .bind(t.updated_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::DeleteTeam(id) => {
                        sqlx::query("DELETE FROM teams WHERE team_id = $1")
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::PutMember(m) => {
                        sqlx::query(
                            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
                        )
                        .bind(&m.team_id)
                        .bind(&m.user_id)
                        .bind(&m.role)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::DeleteMember { team_id, user_id } => {
                        sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                            .bind(*team_id)
                            .bind(*user_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::PutKey(k) => {
                        sqlx::query(
                            "INSERT INTO api_keys (token, key_name, key_alias, user_id, team_id, blocked, expires_at, \
                             spend, budget_reset_at, settings, created_by, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                             ON CONFLICT (token) DO UPDATE SET key_alias = excluded.key_alias, \
                             user_id = excluded.user_id, team_id = excluded.team_id, blocked = excluded.blocked, \
                             expires_at = excluded.expires_at, budget_reset_at = excluded.budget_reset_at, \
                             settings = excluded.settings, updated_at = excluded.updated_at",
                        )
                        .bind(&k.token)
                        .bind(&k.key_name)
                        .bind(&k.key_alias)
                        .bind(&k.user_id)
                        .bind(&k.team_id)
                        .bind(k.blocked)
                        .bind(k.expires_at)
                        .bind(k.spend)
                        .bind(k.budget_reset_at)
                        .bind(k.settings.to_json())
                        .bind(&k.created_by)
                        .bind(k.created_at)
                        .bind(k.updated_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::DeleteKey(token) => {
                        sqlx::query("DELETE FROM api_keys WHERE token = $1")
                            .bind(*token)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::RenameKey { old, new, key_name } => {
                        sqlx::query(
                            "UPDATE api_keys SET token = $1, key_name = $2, updated_at = $3 WHERE token = $4",
                        )
                        .bind(*new)
                        .bind(*key_name)
                        .bind(now)
                        .bind(*old)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::PutModel(m) => {
                        sqlx::query(
                            "INSERT INTO proxy_models (model_id, model_name, litellm_params, model_info, \
                             created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                             ON CONFLICT (model_id) DO UPDATE SET model_name = excluded.model_name, \
                             litellm_params = excluded.litellm_params, model_info = excluded.model_info, \
                             updated_at = excluded.updated_at",
                        )
                        .bind(&m.model_id)
                        .bind(&m.model_name)
                        .bind(Value::Object(m.litellm_params.clone()).to_string())
                        .bind(Value::Object(m.model_info.clone()).to_string())
                        .bind(&m.created_by)
                        .bind(m.created_at)
                        .bind(m.updated_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::PutPrompt(pr) => {
                        sqlx::query(
                            "INSERT INTO prompts (prompt_id, version, name, description, template, model, inference, \
                             arn, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(&pr.prompt_id)
                        .bind(pr.version)
                        .bind(&pr.name)
                        .bind(&pr.description)
                        .bind(Value::Array(pr.template.clone()).to_string())
                        .bind(&pr.model)
                        .bind(Value::Object(pr.inference.clone()).to_string())
                        .bind(&pr.arn)
                        .bind(&pr.created_by)
                        .bind(pr.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict)?;
                    }
                    Change::DeletePrompt(id) => {
                        sqlx::query("DELETE FROM prompts WHERE prompt_id = $1")
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::DeleteModel(id) => {
                        sqlx::query("DELETE FROM proxy_models WHERE model_id = $1")
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            for a in audit {
                sqlx::query(
                    "INSERT INTO audit_log (at_ms, actor, actor_role, action, object_type, object_id, \
                     before_value, after_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(now)
                .bind(&a.actor)
                .bind(&a.actor_role)
                .bind(a.action)
                .bind(a.object_type)
                .bind(&a.object_id)
                .bind(a.before.as_ref().map(Value::to_string))
                .bind(a.after.as_ref().map(Value::to_string))
                .execute(&mut *tx)
                .await?;
            }
            let version: i64 = sqlx::query_scalar(
                "UPDATE directory_version SET version = version + 1 WHERE id = 1 RETURNING version",
            )
            .fetch_one(&mut *tx)
            .await?;
            // What changed, for the other processes (see `changes_since`).
            for c in changes {
                let (kind, id) = c.logged();
                sqlx::query("INSERT INTO directory_changes (version, kind, id) VALUES ($1, $2, $3)")
                    .bind(version)
                    .bind(kind.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM directory_changes WHERE version <= $1")
                .bind(version - CHANGES_KEPT)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(version)
        })
    }

    /// What the versions after `version` changed, oldest first, if the log
    /// still holds every one of them (a version with no entry, such as a
    /// budget reset's, or one pruned away, gives `None`: read everything).
    pub async fn changes_since(
        &self,
        version: i64,
        upto: i64,
    ) -> Result<Option<Vec<(i64, ChangeKind, String)>>, StoreError> {
        if upto <= version || upto - version > CHANGES_KEPT {
            return Ok(None);
        }
        let rows: Vec<(i64, String, String)> = both!(self, p => sqlx::query_as(
            "SELECT version, kind, id FROM directory_changes WHERE version > $1 AND version <= $2 \
             ORDER BY version",
        )
        .bind(version)
        .bind(upto)
        .fetch_all(p)
        .await?);
        let mut seen: Vec<i64> = rows.iter().map(|r| r.0).collect();
        seen.dedup();
        if seen.len() as i64 != upto - version {
            return Ok(None);
        }
        Ok(rows
            .into_iter()
            .map(|(v, kind, id)| Some((v, ChangeKind::parse(&kind)?, id)))
            .collect())
    }

    /// One record as the store holds it now, `None` when it is gone.
    pub async fn changed_record(
        &self,
        kind: ChangeKind,
        id: &str,
    ) -> Result<Option<Changed>, StoreError> {
        both!(self, p => Ok(match kind {
            ChangeKind::User => sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLS} FROM users WHERE user_id = $1"
            )))
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| Changed::User(user_of(r))),
            ChangeKind::Team => sqlx::query_as::<_, TeamRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {TEAM_COLS} FROM teams WHERE team_id = $1"
            )))
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| Changed::Team(team_of(r))),
            ChangeKind::Key => sqlx::query_as::<_, KeyRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {KEY_COLS} FROM api_keys WHERE token = $1"
            )))
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| Changed::Key(key_of(r))),
            ChangeKind::Model => sqlx::query_as::<_, ModelRow>(
                "SELECT model_id, model_name, litellm_params, model_info, created_by, created_at, updated_at \
                 FROM proxy_models WHERE model_id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| Changed::Model(model_of(r))),
            ChangeKind::Prompt => {
                let rows: Vec<PromptRow> = sqlx::query_as(
                    "SELECT prompt_id, version, name, description, template, model, inference, arn, created_by, created_at \
                     FROM prompts WHERE prompt_id = $1 ORDER BY version",
                )
                .bind(id)
                .fetch_all(p)
                .await?;
                (!rows.is_empty()).then(|| Changed::Prompt(rows.into_iter().map(prompt_of).collect()))
            }
            ChangeKind::Other => None,
        }))
    }

    /// Audit rows for one object, newest first.
    pub async fn audit_for(
        &self,
        object_type: &str,
        object_id: &str,
    ) -> Result<Vec<Value>, StoreError> {
        both!(self, p => {
            let rows: Vec<AuditRow> = sqlx::query_as(
                "SELECT at_ms, actor, actor_role, action, before_value, after_value FROM audit_log \
                 WHERE object_type = $1 AND object_id = $2 ORDER BY id DESC LIMIT 100",
            )
            .bind(object_type)
            .bind(object_id)
            .fetch_all(p)
            .await?;
            let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str::<Value>(&s).ok());
            Ok(rows
                .into_iter()
                .map(|(at, actor, role, action, before, after)| {
                    serde_json::json!({
                        "updated_at": crate::directory::records::iso(at),
                        "changed_by": actor,
                        "changed_by_role": role,
                        "action": action,
                        "before_value": parse(before),
                        "updated_values": parse(after),
                    })
                })
                .collect())
        })
    }
}

/// Which calls a log query asks for, by how they ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStatus {
    /// One outcome: `success`, `error` or `client_disconnected`.
    Outcome(&'static str),
    /// Every outcome but `success`.
    Failure,
    /// One HTTP status code.
    Code(i64),
}

impl LogStatus {
    /// `success`, `failure`, `error`, `client_disconnected` or a status code.
    pub fn parse(s: &str) -> Option<LogStatus> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "success" => Some(LogStatus::Outcome("success")),
            "error" => Some(LogStatus::Outcome("error")),
            "client_disconnected" => Some(LogStatus::Outcome("client_disconnected")),
            "failure" => Some(LogStatus::Failure),
            _ => s.parse::<u16>().ok().map(|c| LogStatus::Code(i64::from(c))),
        }
    }
}

/// Which request logs a spend query covers.
#[derive(Debug, Default, Clone)]
pub struct SpendFilter {
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub model: Option<String>,
    pub request_id: Option<String>,
    pub start_ms: Option<i64>,
    /// Exclusive.
    pub end_ms: Option<i64>,
    pub status: Option<LogStatus>,
    /// Rows after this one in the listing's order (newest first): a page's
    /// last (started_at_ms, request_id).
    pub after: Option<(i64, String)>,
    /// Rows before this one in the listing's order (newer): a page's first
    /// (started_at_ms, request_id), for paging back towards the newest.
    pub before: Option<(i64, String)>,
}

impl SpendFilter {
    /// ` WHERE …` with `$n` placeholders, and the values to bind in order.
    fn clause(&self) -> (String, Vec<Bind>) {
        let mut conds = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        // `cond` names its own values `?1`, `?2`, …, numbered here in the
        // statement's order.
        let mut add = |cond: &str, values: Vec<Bind>| {
            let mut cond = cond.to_string();
            for i in (1..=values.len()).rev() {
                cond = cond.replace(&format!("?{i}"), &format!("${}", binds.len() + i));
            }
            binds.extend(values);
            conds.push(cond);
        };
        let text = |v: &String| vec![Bind::Text(v.clone())];
        if let Some(v) = &self.api_key {
            add("api_key_hash = ?1", text(v));
        }
        if let Some(v) = &self.user_id {
            add("user_id = ?1", text(v));
        }
        if let Some(v) = &self.team_id {
            add("team_id = ?1", text(v));
        }
        if let Some(v) = &self.model {
            add("(model_group = ?1 OR model_requested = ?1)", text(v));
        }
        if let Some(v) = &self.request_id {
            add("request_id = ?1", text(v));
        }
        if let Some(v) = self.start_ms {
            add("started_at_ms >= ?1", vec![Bind::Int(v)]);
        }
        if let Some(v) = self.end_ms {
            add("started_at_ms < ?1", vec![Bind::Int(v)]);
        }
        match self.status {
            Some(LogStatus::Code(code)) => add("status_code = ?1", vec![Bind::Int(code)]),
            Some(LogStatus::Failure) => add("outcome <> ?1", vec![Bind::Text("success".into())]),
            Some(LogStatus::Outcome(o)) => add("outcome = ?1", vec![Bind::Text(o.into())]),
            None => {}
        }
        // The listing's order is started_at_ms DESC, request_id ASC.
        if let Some((ms, id)) = &self.after {
            add(
                "started_at_ms <= ?1 AND (started_at_ms < ?1 OR request_id > ?2)",
                vec![Bind::Int(*ms), Bind::Text(id.clone())],
            );
        }
        if let Some((ms, id)) = &self.before {
            add(
                "started_at_ms >= ?1 AND (started_at_ms > ?1 OR request_id < ?2)",
                vec![Bind::Int(*ms), Bind::Text(id.clone())],
            );
        }
        if conds.is_empty() {
            (String::new(), binds)
        } else {
            (format!(" WHERE {}", conds.join(" AND ")), binds)
        }
    }
}

#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// One group of a spend summary: a UTC day and who/what spent.
#[derive(Debug, Clone)]
pub struct SpendGroup {
    pub day: i64,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    pub spend: f64,
    pub total_tokens: i64,
    pub requests: i64,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    request_id: String,
    call_type: String,
    api_key_hash: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    model_requested: String,
    model_group: Option<String>,
    deployment_id: Option<String>,
    provider: Option<String>,
    status_code: i32,
    outcome: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    started_at_ms: i64,
    spend: f64,
    ended_at_ms: i64,
    cache_hit: bool,
    guardrails: Option<String>,
    messages: Option<String>,
    response: Option<String>,
    latency_ms: i64,
    attempts: i32,
    fallbacks_used: i32,
    error: Option<String>,
    key_alias: Option<String>,
}

/// A JSON column read back (null when empty or unreadable).
fn json_text(v: Option<&str>) -> Value {
    v.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

impl Store {
    /// Request logs matching `f`, newest first, at most `limit`.
    pub async fn spend_logs(&self, f: &SpendFilter, limit: i64) -> Result<Vec<Value>, StoreError> {
        let (clause, binds) = f.clause();
        // Newest first; paging back (`before`) reads the nearest newer rows
        // upwards and turns them round below.
        let back = f.before.is_some() && f.after.is_none();
        let order = if back {
            "started_at_ms ASC, request_id DESC"
        } else {
            "started_at_ms DESC, request_id"
        };
        let (guardrails, messages, response) = match self {
            Store::Postgres(_) => ("guardrails::text", "messages::text", "response::text"),
            _ => ("guardrails", "messages", "response"),
        };
        let sql = format!(
            "SELECT request_id, call_type, api_key_hash, user_id, team_id, model_requested, model_group, \
             deployment_id, provider, status_code, outcome, prompt_tokens, completion_tokens, started_at_ms, \
             spend, ended_at_ms, cache_hit, {guardrails} AS guardrails, {messages} AS messages, {response} AS response, \
             latency_ms, attempts, fallbacks_used, error, key_alias \
             FROM request_logs{clause} ORDER BY {order} LIMIT {limit}"
        );
        let mut rows: Vec<LogRow> = both!(self, p => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s),
                    Bind::Int(i) => q.bind(i),
                };
            }
            q.fetch_all(p).await?
        });
        if back {
            rows.reverse();
        }
        use crate::directory::records::iso;
        Ok(rows
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "request_id": r.request_id,
                    "call_type": r.call_type,
                    "api_key": r.api_key_hash,
                    "user": r.user_id,
                    "team_id": r.team_id,
                    "model": r.model_requested,
                    "model_group": r.model_group,
                    "model_id": r.deployment_id,
                    "custom_llm_provider": r.provider,
                    "status_code": r.status_code,
                    "status": r.outcome,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "total_tokens": r.prompt_tokens + r.completion_tokens,
                    "startTime": iso(r.started_at_ms),
                    "spend": r.spend,
                    "endTime": iso(r.ended_at_ms),
                    "request_duration_ms": r.latency_ms,
                    "attempts": r.attempts,
                    "fallbacks_used": r.fallbacks_used,
                    "error": r.error,
                    "key_alias": r.key_alias,
                    // The cursor that lists the rows after this one (`after=`),
                    // or before it (`before=`).
                    "cursor": format!("{}:{}", r.started_at_ms, r.request_id),
                    // LiteLLM's spend logs spell this as text.
                    "cache_hit": if r.cache_hit { "True" } else { "False" },
                    "guardrails": r
                        .guardrails
                        .as_deref()
                        .and_then(|g| serde_json::from_str::<Value>(g).ok())
                        .unwrap_or(Value::Array(Vec::new())),
                    // Kept only with store_prompts_in_spend_logs.
                    "messages": json_text(r.messages.as_deref()),
                    "response": json_text(r.response.as_deref()),
                })
            })
            .collect())
    }

    /// Spend grouped by UTC day, user, team, key and model.
    pub async fn spend_groups(&self, f: &SpendFilter) -> Result<Vec<SpendGroup>, StoreError> {
        let (clause, binds) = f.clause();
        let sql = format!(
            "SELECT started_at_ms / 86400000 AS day, user_id, team_id, api_key_hash, model_group, \
             SUM(spend), CAST(SUM(total_tokens) AS BIGINT), COUNT(*) FROM request_logs{clause} \
             GROUP BY started_at_ms / 86400000, user_id, team_id, api_key_hash, model_group ORDER BY day"
        );
        type Row = (
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            f64,
            i64,
            i64,
        );
        let rows: Vec<Row> = both!(self, p => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s),
                    Bind::Int(i) => q.bind(i),
                };
            }
            q.fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| SpendGroup {
                day: r.0,
                user_id: r.1,
                team_id: r.2,
                api_key: r.3,
                model: r.4,
                spend: r.5,
                total_tokens: r.6,
                requests: r.7,
            })
            .collect())
    }
}

impl Store {
    /// Zeroes the spend of every key, user and team whose budget period ended,
    /// and of the proxy (`period` from the config), moving each to its next
    /// reset. Each row is reset with a compare-and-set on its reset time, so
    /// with several processes each period resets exactly once. Returns how many
    /// counters were reset (and bumps the directory version if any).
    pub async fn reset_due_budgets(
        &self,
        now: i64,
        proxy_period: Option<crate::directory::duration::Period>,
    ) -> Result<usize, StoreError> {
        use crate::directory::duration::{next_after, parse};
        let mut reset = 0usize;
        both!(self, p => {
            for (table, id_col) in [("api_keys", "token"), ("users", "user_id"), ("teams", "team_id")] {
                let due: Vec<(String, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {id_col}, budget_reset_at, settings FROM {table} \
                     WHERE budget_reset_at IS NOT NULL AND budget_reset_at <= $1"
                )))
                .bind(now)
                .fetch_all(p)
                .await?;
                for (id, at, settings) in due {
                    let next = Settings::from_json(&settings)
                        .budget_duration
                        .as_deref()
                        .and_then(|d| parse(d).ok())
                        .map(|period| next_after(at, period, now));
                    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET spend = 0, budget_reset_at = $1 \
                         WHERE {id_col} = $2 AND budget_reset_at = $3"
                    )))
                    .bind(next)
                    .bind(&id)
                    .bind(at)
                    .execute(p)
                    .await?;
                    reset += done.rows_affected() as usize;
                }
            }
            // A key's per-model spend: its period starts with its first spend.
            let rows: Vec<(String, String, Option<i64>, String)> = sqlx::query_as(
                "SELECT s.token, s.model, s.budget_reset_at, k.settings FROM key_model_spend s \
                 JOIN api_keys k ON k.token = s.token \
                 WHERE s.budget_reset_at IS NULL OR s.budget_reset_at <= $1",
            )
            .bind(now)
            .fetch_all(p)
            .await?;
            for (token, model, at, settings) in rows {
                let Some(period) = Settings::from_json(&settings)
                    .model_budget(&model)
                    .and_then(|b| b.period)
                    .and_then(|d| parse(&d).ok())
                else {
                    continue;
                };
                match at {
                    None => {
                        sqlx::query(
                            "UPDATE key_model_spend SET budget_reset_at = $1 \
                             WHERE token = $2 AND model = $3 AND budget_reset_at IS NULL",
                        )
                        .bind(crate::directory::duration::add(now, period))
                        .bind(&token)
                        .bind(&model)
                        .execute(p)
                        .await?;
                    }
                    Some(at) => {
                        let done = sqlx::query(
                            "UPDATE key_model_spend SET spend = 0, budget_reset_at = $1 \
                             WHERE token = $2 AND model = $3 AND budget_reset_at = $4",
                        )
                        .bind(next_after(at, period, now))
                        .bind(&token)
                        .bind(&model)
                        .bind(at)
                        .execute(p)
                        .await?;
                        reset += done.rows_affected() as usize;
                    }
                }
            }
            if let Some(period) = proxy_period {
                    let (at,): (Option<i64>,) =
                        sqlx::query_as("SELECT budget_reset_at FROM proxy_spend WHERE id = 1")
                            .fetch_one(p)
                            .await?;
                    match at {
                        None => {
                            sqlx::query("UPDATE proxy_spend SET budget_reset_at = $1 WHERE id = 1 AND budget_reset_at IS NULL")
                                .bind(crate::directory::duration::add(now, period))
                                .execute(p)
                                .await?;
                        }
                        Some(at) if at <= now => {
                            let done = sqlx::query(
                                "UPDATE proxy_spend SET spend = 0, budget_reset_at = $1 WHERE id = 1 AND budget_reset_at = $2",
                            )
                            .bind(next_after(at, period, now))
                            .bind(at)
                            .execute(p)
                            .await?;
                            reset += done.rows_affected() as usize;
                        }
                        Some(_) => {}
                    }
            }
            if reset > 0 {
                sqlx::query("UPDATE directory_version SET version = version + 1 WHERE id = 1")
                    .execute(p)
                    .await?;
            }
            Ok(reset)
        })
    }
}
