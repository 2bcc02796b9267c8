//! Users, teams, members and keys as stored, with LiteLLM's field names.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// LiteLLM's user roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ProxyAdmin,
    ProxyAdminViewer,
    InternalUser,
    InternalUserViewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProxyAdmin => "proxy_admin",
            Role::ProxyAdminViewer => "proxy_admin_viewer",
            Role::InternalUser => "internal_user",
            Role::InternalUserViewer => "internal_user_viewer",
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "proxy_admin" => Ok(Role::ProxyAdmin),
            "proxy_admin_viewer" => Ok(Role::ProxyAdminViewer),
            "internal_user" => Ok(Role::InternalUser),
            "internal_user_viewer" => Ok(Role::InternalUserViewer),
            other => Err(format!(
                "unknown user_role {other:?}: use proxy_admin, proxy_admin_viewer, internal_user or internal_user_viewer"
            )),
        }
    }
}

/// What an admin sets on a key, user or team: access, budgets, limits, metadata.
/// Stored as JSON; absent fields are not written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_budget: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub model_max_budget: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub model_rpm_limit: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub model_tpm_limit: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Keys: model name aliases (`{"gpt-4": "gpt-4o"}`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub aliases: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Keys: `default`, `llm_api`, `management`, `read_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<String>>,
    /// Other LiteLLM fields accepted and returned as given (`permissions`,
    /// `config`, `allowed_cache_controls`, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Settings {
    pub fn from_json(s: &str) -> Settings {
        serde_json::from_str(s).unwrap_or_else(|e| {
            tracing::error!(error = %e, "stored settings are not valid JSON; using none");
            Settings::default()
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The key's budget for one model (`model_max_budget`), if it has one.
    pub fn model_budget(&self, model: &str) -> Option<ModelBudget> {
        self.model_max_budget
            .get(model)
            .and_then(|v| ModelBudget::parse(v).ok())
    }
}

/// One entry of `model_max_budget`: LiteLLM's `{"budget_limit": 0.5,
/// "time_period": "1d"}`, or a bare number (no period).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBudget {
    pub limit: f64,
    pub period: Option<String>,
}

impl ModelBudget {
    pub fn parse(v: &Value) -> Result<ModelBudget, String> {
        let number = |v: &Value| {
            match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite() && *n >= 0.0)
        };
        let (limit, period) = match v {
            Value::Object(o) => (
                o.get("budget_limit")
                    .and_then(number)
                    .ok_or("budget_limit must be a number ≥ 0")?,
                match o.get("time_period") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(p)) => {
                        super::duration::parse(p)?;
                        Some(p.clone())
                    }
                    Some(_) => return Err("time_period must be a duration such as \"1d\"".into()),
                },
            ),
            other => (
                number(other).ok_or("must be a number ≥ 0 or {budget_limit, time_period}")?,
                None,
            ),
        };
        Ok(ModelBudget { limit, period })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: Role,
    pub blocked: bool,
    pub spend: f64,
    pub budget_reset_at: Option<i64>,
    pub settings: Settings,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamRecord {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub blocked: bool,
    pub spend: f64,
    pub budget_reset_at: Option<i64>,
    pub settings: Settings,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub team_id: String,
    pub user_id: String,
    /// `admin` or `user`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// SHA-256 (hex) of the secret.
    pub token: String,
    /// `sk-...abcd`: enough to recognise a key, not to use it.
    pub key_name: String,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub blocked: bool,
    pub expires_at: Option<i64>,
    pub spend: f64,
    pub budget_reset_at: Option<i64>,
    pub settings: Settings,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Unix milliseconds as LiteLLM's ISO-8601 timestamps.
pub fn iso(ms: i64) -> Value {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

pub fn iso_opt(ms: Option<i64>) -> Value {
    ms.map(iso).unwrap_or(Value::Null)
}

/// The settings as LiteLLM's flat fields (every field present, null when unset).
fn settings_fields(s: &Settings, out: &mut Map<String, Value>) {
    use serde_json::json;
    let obj = |m: &Map<String, Value>| Value::Object(m.clone());
    out.insert("models".into(), json!(s.models));
    out.insert("max_budget".into(), json!(s.max_budget));
    out.insert("soft_budget".into(), json!(s.soft_budget));
    out.insert("budget_duration".into(), json!(s.budget_duration));
    out.insert("tpm_limit".into(), json!(s.tpm_limit));
    out.insert("rpm_limit".into(), json!(s.rpm_limit));
    out.insert(
        "max_parallel_requests".into(),
        json!(s.max_parallel_requests),
    );
    out.insert("model_max_budget".into(), obj(&s.model_max_budget));
    out.insert("model_rpm_limit".into(), obj(&s.model_rpm_limit));
    out.insert("model_tpm_limit".into(), obj(&s.model_tpm_limit));
    out.insert("metadata".into(), obj(&s.metadata));
    for (k, v) in &s.other {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

impl KeyRecord {
    /// LiteLLM's key object (never the secret).
    pub fn view(&self) -> Value {
        let mut m = Map::new();
        m.insert("token".into(), Value::String(self.token.clone()));
        m.insert("key_name".into(), Value::String(self.key_name.clone()));
        m.insert("key_alias".into(), opt_str(&self.key_alias));
        m.insert("user_id".into(), opt_str(&self.user_id));
        m.insert("team_id".into(), opt_str(&self.team_id));
        m.insert("blocked".into(), Value::Bool(self.blocked));
        m.insert("expires".into(), iso_opt(self.expires_at));
        m.insert("spend".into(), self.spend.into());
        m.insert("budget_reset_at".into(), iso_opt(self.budget_reset_at));
        settings_fields(&self.settings, &mut m);
        let s = &self.settings;
        m.insert("aliases".into(), Value::Object(s.aliases.clone()));
        m.insert("tags".into(), serde_json::json!(s.tags));
        m.insert(
            "key_type".into(),
            Value::String(s.key_type.clone().unwrap_or_else(|| "default".into())),
        );
        m.insert("guardrails".into(), serde_json::json!(s.guardrails));
        m.insert("created_by".into(), opt_str(&self.created_by));
        m.insert("created_at".into(), iso(self.created_at));
        m.insert("updated_at".into(), iso(self.updated_at));
        Value::Object(m)
    }
}

impl UserRecord {
    pub fn view(&self) -> Value {
        let mut m = Map::new();
        m.insert("user_id".into(), Value::String(self.user_id.clone()));
        m.insert("user_email".into(), opt_str(&self.user_email));
        m.insert("user_alias".into(), opt_str(&self.user_alias));
        m.insert(
            "user_role".into(),
            Value::String(self.user_role.as_str().into()),
        );
        m.insert("blocked".into(), Value::Bool(self.blocked));
        m.insert("spend".into(), self.spend.into());
        m.insert("budget_reset_at".into(), iso_opt(self.budget_reset_at));
        settings_fields(&self.settings, &mut m);
        m.insert("created_at".into(), iso(self.created_at));
        m.insert("updated_at".into(), iso(self.updated_at));
        Value::Object(m)
    }
}

impl TeamRecord {
    pub fn view(&self, members: &[MemberRecord]) -> Value {
        let mut m = Map::new();
        m.insert("team_id".into(), Value::String(self.team_id.clone()));
        m.insert("team_alias".into(), opt_str(&self.team_alias));
        m.insert("blocked".into(), Value::Bool(self.blocked));
        m.insert("spend".into(), self.spend.into());
        m.insert("budget_reset_at".into(), iso_opt(self.budget_reset_at));
        settings_fields(&self.settings, &mut m);
        let mine: Vec<&MemberRecord> = members
            .iter()
            .filter(|x| x.team_id == self.team_id)
            .collect();
        m.insert(
            "members_with_roles".into(),
            Value::Array(
                mine.iter()
                    .map(|x| serde_json::json!({"user_id": x.user_id, "role": x.role}))
                    .collect(),
            ),
        );
        m.insert(
            "admins".into(),
            serde_json::json!(mine
                .iter()
                .filter(|x| x.role == "admin")
                .map(|x| &x.user_id)
                .collect::<Vec<_>>()),
        );
        m.insert(
            "members".into(),
            serde_json::json!(mine.iter().map(|x| &x.user_id).collect::<Vec<_>>()),
        );
        m.insert("created_at".into(), iso(self.created_at));
        m.insert("updated_at".into(), iso(self.updated_at));
        Value::Object(m)
    }
}

fn opt_str(s: &Option<String>) -> Value {
    s.clone().map(Value::String).unwrap_or(Value::Null)
}

/// One version of a managed prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRecord {
    pub prompt_id: String,
    pub version: i64,
    pub name: String,
    pub description: Option<String>,
    /// Messages (`{role, content}`) with `{{variable}}` placeholders.
    pub template: Vec<Value>,
    /// The model group it is called with.
    pub model: String,
    /// `temperature`, `max_tokens`, `top_p`, `stop`.
    pub inference: Map<String, Value>,
    pub arn: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

impl PromptRecord {
    pub fn view(&self) -> Value {
        serde_json::json!({
            "id": self.prompt_id,
            "arn": self.arn,
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "template": self.template,
            "variables": crate::gateway::prompts::variables(&self.template),
            "model": self.model,
            "inference_config": self.inference,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
        })
    }
}
