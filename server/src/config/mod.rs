//! Configuration: LiteLLM's `config.yaml`, parsed, then validated, then turned into runtime types.

/// [`AwsParams`] from a raw section with LiteLLM's `aws_*` fields (a
/// deployment's `litellm_params`, a Bedrock guardrail's), each value passed
/// through `resolve(field, value)`; the endpoint falls back to
/// `AWS_BEDROCK_RUNTIME_ENDPOINT`.
macro_rules! aws_params {
    ($p:expr, $resolve:expr, $env:expr) => {{
        let p = $p;
        #[allow(unused_mut)]
        let mut resolve = $resolve;
        $crate::config::AwsParams {
            access_key_id: resolve("aws_access_key_id", p.aws_access_key_id.as_ref())
                .map($crate::secret::Secret::new),
            secret_access_key: resolve("aws_secret_access_key", p.aws_secret_access_key.as_ref())
                .map($crate::secret::Secret::new),
            session_token: resolve("aws_session_token", p.aws_session_token.as_ref())
                .map($crate::secret::Secret::new),
            region: resolve("aws_region_name", p.aws_region_name.as_ref()),
            profile: resolve("aws_profile_name", p.aws_profile_name.as_ref()),
            role_name: resolve("aws_role_name", p.aws_role_name.as_ref()),
            session_name: resolve("aws_session_name", p.aws_session_name.as_ref()),
            endpoint: resolve(
                "aws_bedrock_runtime_endpoint",
                p.aws_bedrock_runtime_endpoint.as_ref(),
            )
            .or_else(|| $env.get("AWS_BEDROCK_RUNTIME_ENDPOINT")),
        }
    }};
}

pub mod alerting;
pub mod callbacks;
pub mod demo;
pub mod env;
pub mod guardrails;
pub mod litellm;
pub mod providers;
pub mod secrets;

use crate::secret::Secret;
pub use alerting::{AlertingConfig, HealthCheckConfig};
pub use callbacks::{CallbacksConfig, Destination, DestinationKind, S3Params, StoredLogs};
use env::{Env, Resolved};
pub use guardrails::{GuardrailConfig, GuardrailKind, GuardrailMode, PatternSource};
use litellm::{
    OneOrMany, RawAlias, RawConfig, RawFallbacks, RawLitellmParams, RawModelEntry,
    RawRouterSettings,
};
use providers::Family;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

/// A config that cannot be used: names the file, the field and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {path}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub path: String,
    pub reason: String,
}

/// The runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub deployments: Vec<DeploymentConfig>,
    pub router: RouterConfig,
    pub drop_params: bool,
    pub master_key: Option<Secret>,
    pub database_url: Option<String>,
    /// Where limits, cooldowns, usage and the cache are shared, if anywhere:
    /// `REDIS_URL`, else `router_settings.redis_*` (or `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`).
    pub redis_url: Option<String>,
    pub global_max_parallel_requests: Option<u64>,
    /// The response cache (`litellm_settings.cache`), if on.
    pub cache: Option<CacheConfig>,
    /// `guardrails:`, in config order (types Tollgate does not run are left out, warned).
    pub guardrails: Vec<GuardrailConfig>,
    /// Where request logs go besides the store, and whether prompts are kept.
    pub callbacks: CallbacksConfig,
    /// `litellm_settings.json_logs`: Tollgate's own log lines as JSON.
    pub json_logs: bool,
    /// `general_settings.alerting`, when it names slack.
    pub alerting: Option<AlertingConfig>,
    /// `general_settings.background_health_checks`, when on.
    pub health_checks: Option<HealthCheckConfig>,
    pub management: ManagementConfig,
    /// Keys read but not acted on yet, and deployments that could not be used, each with its path.
    pub warnings: Vec<String>,
}

/// The response cache: `litellm_settings.cache: true` with `cache_params`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Where answers are kept: Redis at this URL, else this process's memory.
    pub redis: Option<String>,
    pub ttl: Duration,
    pub namespace: Option<String>,
    /// Which calls are cached (`supported_call_types`).
    pub chat: bool,
    pub embeddings: bool,
    /// `mode: default_off`: only requests that ask (`cache: {use-cache: true}`).
    pub default_on: bool,
    /// Answers larger than this are not kept.
    pub max_item_bytes: usize,
    /// The local cache's memory bound.
    pub max_memory_bytes: u64,
}

/// Budgets and key defaults for the management API (`litellm_settings`).
#[derive(Debug, Clone, Default)]
pub struct ManagementConfig {
    /// Proxy-wide budget and its period.
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// Defaults for `internal_user`s created without a budget.
    pub max_internal_user_budget: Option<f64>,
    pub internal_user_budget_duration: Option<String>,
    /// Fields `/key/generate` fills in when a request leaves them out.
    pub default_key_generate_params: Map<String, Value>,
    /// Ceilings `/key/generate` and `/key/update` enforce for non-admins.
    pub upperbound_key_generate_params: Map<String, Value>,
}

/// Retries, timeouts and fallbacks (from `router_settings`, or `litellm_settings` as LiteLLM also accepts).
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {
    pub num_retries: u32,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    /// Lower bound for the wait before a retry.
    pub retry_after: Duration,
    pub fallbacks: HashMap<String, Vec<String>>,
    pub context_window_fallbacks: HashMap<String, Vec<String>>,
    pub default_fallbacks: Vec<String>,
    pub strategy: Strategy,
    /// latency-based-routing: deployments within this share of the fastest are equal.
    pub lowest_latency_buffer: f64,
    /// Skip deployments whose context window is too small for the prompt.
    pub pre_call_checks: bool,
    /// Failures per minute a deployment may have before it cools down, by kind
    /// of error (`allowed_fails_policy`), else `allowed_fails`.
    pub allowed_fails: u32,
    pub allowed_fails_policy: HashMap<ErrorClass, u32>,
    pub cooldown_time: Duration,
    pub disable_cooldowns: bool,
    /// Retries by kind of error (`retry_policy`), over `num_retries`.
    pub retry_policy: HashMap<ErrorClass, u32>,
    /// `model_group_alias`: name → (model group, hidden from `/v1/models`).
    pub aliases: HashMap<String, (String, bool)>,
}

/// `router_settings.routing_strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Weighted random by `weight`, else `rpm`, else `tpm`.
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Fewest tokens used this minute.
    UsageBased,
    /// Lowest latency this minute, exploring the others now and then.
    LatencyBased,
    /// Cheapest per token.
    CostBased,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "simple-shuffle" => Strategy::SimpleShuffle,
            "least-busy" => Strategy::LeastBusy,
            "usage-based-routing" | "usage-based-routing-v2" => Strategy::UsageBased,
            "latency-based-routing" => Strategy::LatencyBased,
            "cost-based-routing" => Strategy::CostBased,
            _ => return None,
        })
    }
}

/// The kinds of error LiteLLM's `retry_policy` and `allowed_fails_policy` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    BadRequest,
    Authentication,
    Timeout,
    RateLimit,
    ContentPolicyViolation,
    InternalServer,
}

impl ErrorClass {
    /// From a policy key: `TimeoutErrorRetries`, `RateLimitErrorAllowedFails`, …
    fn parse(key: &str, suffix: &str) -> Option<ErrorClass> {
        Some(match key.strip_suffix(suffix)? {
            "BadRequestError" => ErrorClass::BadRequest,
            "AuthenticationError" => ErrorClass::Authentication,
            "TimeoutError" => ErrorClass::Timeout,
            "RateLimitError" => ErrorClass::RateLimit,
            "ContentPolicyViolationError" => ErrorClass::ContentPolicyViolation,
            "InternalServerError" => ErrorClass::InternalServer,
            _ => return None,
        })
    }
}

/// One deployment: a model group member that a request can be sent to.
#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    pub id: String,
    pub model_name: String,
    /// The provider prefix as configured (`openai`, `groq`, `bedrock`, …).
    pub provider: &'static str,
    pub family: Family,
    /// The model id sent upstream.
    pub upstream_model: String,
    pub api_base: Option<String>,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub extra_headers: BTreeMap<String, String>,
    pub aws: AwsParams,
    pub weight: f64,
    pub timeout: Option<Duration>,
    pub stream_timeout: Option<Duration>,
    pub num_retries: Option<u32>,
    pub drop_params: Option<bool>,
    pub demo_chunk_delay: Duration,
    /// The deployment's capacity (`rpm`, `tpm`, `max_parallel_requests`): a full deployment is skipped.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    /// Request parameters set in `litellm_params`: defaults for every request.
    pub defaults: Map<String, Value>,
    pub model_info: ModelInfo,
    /// Set when the deployment cannot be called (e.g. its key names an unset variable); calls fail with it.
    pub unusable: Option<String>,
    /// Added through `/model/new` (kept in the database), not the config file.
    pub db_model: bool,
    /// A `servers:` entry: the caller's model name is sent upstream as given.
    pub pass_model: bool,
}

/// A deployment added through the management API, as stored: LiteLLM's
/// `{model_name, litellm_params, model_info}` under its own id.
#[derive(Debug, Clone, PartialEq)]
pub struct DbModel {
    pub model_id: String,
    pub model_name: String,
    pub litellm_params: Map<String, Value>,
    pub model_info: Map<String, Value>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct AwsParams {
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role_name: Option<String>,
    pub session_name: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub mode: Option<String>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub base_model: Option<String>,
    pub other: Map<String, Value>,
}

impl ModelInfo {
    pub fn is_embedding(&self) -> bool {
        self.mode.as_deref() == Some("embedding")
    }
}

impl fmt::Display for DeploymentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}/{})",
            self.model_name, self.provider, self.upstream_model
        )
    }
}

/// Parses, validates and builds a config from YAML text; `file` names it in errors.
#[cfg(test)]
pub fn load_str(text: &str, file: &str, env_override: Option<Env>) -> Result<Config, ConfigError> {
    load_str_with_secrets(text, file, env_override, BTreeMap::new(), &[])
}

/// [`load_str`] with the values of the file's `aws_secretsmanager/…` references,
/// and the deployments kept in the database (secrets decrypted). A database
/// deployment that cannot be built is skipped with a warning, never fatal.
pub fn load_str_with_secrets(
    text: &str,
    file: &str,
    env_override: Option<Env>,
    secrets: BTreeMap<String, String>,
    db_models: &[DbModel],
) -> Result<Config, ConfigError> {
    let err = |path: String, reason: String| ConfigError {
        file: file.to_string(),
        path,
        reason,
    };
    let mut ignored: Vec<String> = Vec::new();
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        let de = serde_yaml::Deserializer::from_str(text);
        let mut on_ignored = |p: serde_ignored::Path<'_>| ignored.push(field_path(&p));
        let de = serde_ignored::Deserializer::new(de, &mut on_ignored);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde_yaml appends its own location; keep the reason readable.
            err(
                if path == "." {
                    "(document)".into()
                } else {
                    path
                },
                inner,
            )
        })?
    };
    let mut warnings: Vec<String> = ignored
        .into_iter()
        .map(|p| format!("{p}: not supported yet by Tollgate; ignored"))
        .collect();

    let env = env_override
        .unwrap_or_else(|| {
            Env::with_overlay(
                raw.environment_variables
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            )
        })
        .with_secrets(secrets);

    let mut deployments = Vec::new();
    for (i, entry) in raw.model_list.iter().enumerate() {
        let path = format!("model_list[{i}]");
        match build_deployment(entry, &path, &env, &mut warnings) {
            Ok(Some(d)) => deployments.push(d),
            Ok(None) => {}
            Err((p, reason)) => return Err(err(p, reason)),
        }
    }
    for (i, s) in raw.servers.iter().flatten().enumerate() {
        let path = format!("servers[{i}]");
        deployments
            .push(server_deployment(s, &path, &env, &mut warnings).map_err(|(p, r)| err(p, r))?);
    }
    let config_ids: std::collections::HashSet<String> =
        deployments.iter().map(|d| d.id.clone()).collect();
    for m in db_models {
        if config_ids.contains(&m.model_id) {
            warnings.push(format!(
                "database model {}: its id is also a config file deployment's; skipped",
                m.model_id
            ));
            continue;
        }
        match db_deployment(m, &env) {
            Ok((Some(d), mut w)) => {
                warnings.append(&mut w);
                deployments.push(d);
            }
            Ok((None, mut w)) => warnings.append(&mut w),
            Err(e) => warnings.push(format!("database model {}: {e}; skipped", m.model_id)),
        }
    }
    let mut seen = HashMap::new();
    for (i, d) in deployments.iter().enumerate() {
        if let Some(prev) = seen.insert(d.id.clone(), i) {
            return Err(err(
                format!("model_list (deployment {})", d.model_name),
                format!(
                    "model_info.id {:?} is used by two deployments (#{prev} and #{i})",
                    d.id
                ),
            ));
        }
    }

    let rs = raw.router_settings.unwrap_or_default();
    let redis_url = match redis_url(&rs, &env) {
        Ok(u) => u,
        // A reference to an unset variable (the GenAI Gateway's default config
        // names REDIS_HOST) means no Redis here; a malformed value is an error.
        Err((path, reason)) if reason.ends_with("which is not set") => {
            warnings.push(format!(
                "{path}: {reason}; limits, cooldowns and usage are counted per process"
            ));
            None
        }
        Err((p, r)) => return Err(err(p, r)),
    };
    let guardrails = guardrails::guardrails(
        raw.guardrails.as_deref().unwrap_or_default(),
        &env,
        &mut warnings,
    )
    .map_err(|(p, r)| err(p, r))?;
    let mut ls = raw.litellm_settings.unwrap_or_default();
    let callbacks =
        callbacks::callbacks(&mut ls, raw.general_settings.as_ref(), &env, &mut warnings)
            .map_err(|(p, r)| err(p, r))?;
    let cache =
        cache_config(&ls, &env, redis_url.as_deref(), &mut warnings).map_err(|(p, r)| err(p, r))?;
    let cache_params_set = ls.cache_params.is_some();
    let secs = |v: Option<f64>, path: &str| -> Result<Option<Duration>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(err(
                path.into(),
                format!("must be a positive number of seconds, got {s}"),
            )),
        }
    };
    let fallbacks = |a: Option<RawFallbacks>, b: Option<RawFallbacks>| {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for rule in a.into_iter().flatten().chain(b.into_iter().flatten()) {
            for (k, v) in rule {
                m.entry(k).or_default().extend(v.into_vec());
            }
        }
        m
    };
    let router = RouterConfig {
        num_retries: rs.num_retries.or(ls.num_retries).unwrap_or(0),
        timeout: match secs(rs.timeout, "router_settings.timeout")? {
            Some(t) => Some(t),
            None => match secs(ls.request_timeout, "litellm_settings.request_timeout")? {
                Some(t) => Some(t),
                None => secs(ls.timeout, "litellm_settings.timeout")?,
            },
        },
        stream_timeout: secs(rs.stream_timeout, "router_settings.stream_timeout")?,
        retry_after: secs(rs.retry_after, "router_settings.retry_after")?.unwrap_or_default(),
        fallbacks: fallbacks(rs.fallbacks, ls.fallbacks),
        context_window_fallbacks: fallbacks(
            rs.context_window_fallbacks,
            ls.context_window_fallbacks,
        ),
        default_fallbacks: rs
            .default_fallbacks
            .clone()
            .or(ls.default_fallbacks)
            .map(OneOrMany::into_vec)
            .unwrap_or_default(),
        strategy: match rs.routing_strategy.as_deref() {
            None => Strategy::SimpleShuffle,
            Some(s) => Strategy::parse(s).ok_or_else(|| {
                err(
                    "router_settings.routing_strategy".into(),
                    format!("unknown strategy {s:?}: use simple-shuffle, least-busy, usage-based-routing-v2, latency-based-routing or cost-based-routing"),
                )
            })?,
        },
        lowest_latency_buffer: rs
            .routing_strategy_args
            .as_ref()
            .and_then(|a| a.lowest_latency_buffer)
            .filter(|b| b.is_finite() && *b >= 0.0)
            .unwrap_or(0.0),
        pre_call_checks: rs.enable_pre_call_checks.unwrap_or(false),
        allowed_fails: rs.allowed_fails.unwrap_or(3),
        allowed_fails_policy: policy(&rs.allowed_fails_policy, "allowed_fails_policy", "AllowedFails")
            .map_err(|(p, r)| err(p, r))?,
        cooldown_time: match rs.cooldown_time {
            None => Duration::from_secs(5),
            Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(err(
                    "router_settings.cooldown_time".into(),
                    format!("must be a number of seconds ≥ 0, got {s}"),
                ))
            }
        },
        disable_cooldowns: rs.disable_cooldowns.unwrap_or(false),
        retry_policy: policy(&rs.retry_policy, "retry_policy", "Retries").map_err(|(p, r)| err(p, r))?,
        aliases: rs
            .model_group_alias
            .iter()
            .flatten()
            .map(|(k, v)| {
                let (to, hidden) = match v {
                    RawAlias::To(m) => (m.clone(), false),
                    RawAlias::Full { model, hidden } => (model.clone(), *hidden),
                };
                (k.clone(), (to, hidden))
            })
            .collect(),
    };
    for (alias, (to, _)) in &router.aliases {
        if !deployments.iter().any(|d| &d.model_name == to) {
            warnings.push(format!(
                "router_settings.model_group_alias.{alias}: model group {to:?} is not configured"
            ));
        }
    }
    let groups: std::collections::HashSet<&str> =
        deployments.iter().map(|d| d.model_name.as_str()).collect();
    let mut check_targets = |what: &str, map: &HashMap<String, Vec<String>>| {
        for (from, to) in map {
            for t in to.iter().chain(std::iter::once(from)) {
                if !groups.contains(t.as_str()) {
                    warnings.push(format!(
                        "router_settings.{what}: model group {t:?} is not configured"
                    ));
                }
            }
        }
    };
    check_targets("fallbacks", &router.fallbacks);
    check_targets("context_window_fallbacks", &router.context_window_fallbacks);
    for t in &router.default_fallbacks {
        if !groups.contains(t.as_str()) {
            warnings.push(format!(
                "router_settings.default_fallbacks: model group {t:?} is not configured"
            ));
        }
    }

    let mut gs = raw.general_settings.unwrap_or_default();
    let alerting = alerting::alerting(&mut gs, &env, &mut warnings).map_err(|(p, r)| err(p, r))?;
    let health_checks = alerting::health_checks(&mut gs).map_err(|(p, r)| err(p, r))?;
    let master_key = match gs.master_key.as_deref().map(|k| env.resolve(k)) {
        None => None,
        Some(Resolved::Value(v)) => Some(Secret::new(v)),
        Some(Resolved::MissingVar(name)) => {
            return Err(err(
                "general_settings.master_key".into(),
                format!("names environment variable {name}, which is not set"),
            ))
        }
        Some(Resolved::MissingSecret(name)) => {
            return Err(err(
                "general_settings.master_key".into(),
                format!("names secret {name}, which was not read"),
            ))
        }
    };
    if let Some(k) = &master_key {
        if !k.expose().starts_with("sk-") {
            return Err(err(
                "general_settings.master_key".into(),
                "must start with \"sk-\" (as LiteLLM requires)".into(),
            ));
        }
    }
    let database_url = match gs.database_url.as_deref().map(|k| env.resolve(k)) {
        None => None,
        Some(Resolved::Value(v)) => Some(v),
        Some(Resolved::MissingVar(name) | Resolved::MissingSecret(name)) => {
            warnings.push(format!(
                "general_settings.database_url: {name} is not set; using the default store"
            ));
            None
        }
    };

    for (path, d) in [
        ("litellm_settings.budget_duration", &ls.budget_duration),
        (
            "litellm_settings.internal_user_budget_duration",
            &ls.internal_user_budget_duration,
        ),
    ] {
        if let Some(d) = d {
            crate::directory::duration::parse(d).map_err(|e| err(path.into(), e))?;
        }
    }
    let management = ManagementConfig {
        max_budget: ls.max_budget,
        budget_duration: ls.budget_duration.clone(),
        max_internal_user_budget: ls.max_internal_user_budget,
        internal_user_budget_duration: ls.internal_user_budget_duration.clone(),
        default_key_generate_params: ls.default_key_generate_params.clone().unwrap_or_default(),
        upperbound_key_generate_params: ls
            .upperbound_key_generate_params
            .clone()
            .unwrap_or_default(),
    };

    if cache.is_none() && cache_params_set {
        warnings.push(
            "litellm_settings.cache_params: set, but litellm_settings.cache is not true; answers are not cached"
                .into(),
        );
    }
    Ok(Config {
        cache,
        guardrails,
        callbacks,
        json_logs: ls.json_logs.unwrap_or(false),
        alerting,
        health_checks,
        redis_url,
        global_max_parallel_requests: gs.global_max_parallel_requests.filter(|n| *n > 0),
        management,
        source: file.to_string(),
        deployments,
        router,
        drop_params: ls.drop_params.unwrap_or(false),
        master_key,
        database_url,
        warnings,
    })
}

type FieldError = (String, String);

/// `retry_policy` / `allowed_fails_policy`: `{TimeoutErrorRetries: 2, …}`.
fn policy(
    raw: &Option<BTreeMap<String, u32>>,
    field: &str,
    suffix: &str,
) -> Result<HashMap<ErrorClass, u32>, FieldError> {
    let mut out = HashMap::new();
    for (k, v) in raw.iter().flatten() {
        let class = ErrorClass::parse(k, suffix).ok_or_else(|| {
            (
                format!("router_settings.{field}.{k}"),
                format!("unknown key: use BadRequestError{suffix}, AuthenticationError{suffix}, TimeoutError{suffix}, RateLimitError{suffix}, ContentPolicyViolationError{suffix} or InternalServerError{suffix}"),
            )
        })?;
        out.insert(class, *v);
    }
    Ok(out)
}

/// Redis, as LiteLLM finds it: `REDIS_URL`, else host, port and password from
/// `router_settings` (each may be `os.environ/NAME`), else `REDIS_HOST`,
/// `REDIS_PORT`, `REDIS_PASSWORD`.
fn redis_url(rs: &RawRouterSettings, env: &Env) -> Result<Option<String>, FieldError> {
    let field = |v: Option<&str>, path: &str, var: &str| -> Result<Option<String>, FieldError> {
        match v.map(|v| env.resolve(v)) {
            None => Ok(env.get(var)),
            Some(Resolved::Value(v)) => Ok(Some(v).filter(|v| !v.is_empty())),
            Some(Resolved::MissingVar(n) | Resolved::MissingSecret(n)) => Err((
                format!("router_settings.{path}"),
                format!("names {n}, which is not set"),
            )),
        }
    };
    let url = field(rs.redis_url.as_deref(), "redis_url", "REDIS_URL")?;
    if let Some(u) = url {
        if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix://")) {
            return Err((
                "router_settings.redis_url".into(),
                "must start with redis://, rediss:// or unix://".into(),
            ));
        }
        return Ok(Some(u));
    }
    let Some(host) = field(
        rs.redis_host.as_ref().map(|s| s.0.as_str()),
        "redis_host",
        "REDIS_HOST",
    )?
    else {
        return Ok(None);
    };
    let port = field(
        rs.redis_port.as_ref().map(|s| s.0.as_str()),
        "redis_port",
        "REDIS_PORT",
    )?
    .unwrap_or_else(|| "6379".into());
    if port.parse::<u16>().is_err() {
        return Err((
            "router_settings.redis_port".into(),
            format!("{port:?} is not a port number"),
        ));
    }
    let password = field(
        rs.redis_password.as_ref().map(|s| s.0.as_str()),
        "redis_password",
        "REDIS_PASSWORD",
    )?;
    let auth = password
        .map(|p| {
            format!(
                ":{}@",
                percent_encoding::utf8_percent_encode(&p, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .unwrap_or_default();
    Ok(Some(format!("redis://{auth}{host}:{port}")))
}

/// The response cache's settings, when `cache: true`.
fn cache_config(
    ls: &litellm::RawLitellmSettings,
    env: &Env,
    shared_redis: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Option<CacheConfig>, FieldError> {
    if ls.cache != Some(true) {
        return Ok(None);
    }
    let default = litellm::RawCacheParams::default();
    let p = ls.cache_params.as_ref().unwrap_or(&default);
    let path = |f: &str| format!("litellm_settings.cache_params.{f}");
    let secs = |v: Option<f64>, f: &str| -> Result<Option<Duration>, FieldError> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err((
                path(f),
                format!("must be a positive number of seconds, got {s}"),
            )),
        }
    };
    let resolve = |v: Option<&str>, f: &str| -> Result<Option<String>, FieldError> {
        match v.map(|v| env.resolve(v)) {
            None => Ok(None),
            Some(Resolved::Value(v)) => Ok(Some(v).filter(|v| !v.is_empty())),
            Some(Resolved::MissingVar(n) | Resolved::MissingSecret(n)) => {
                Err((path(f), format!("names {n}, which is not set")))
            }
        }
    };
    let kind = p.kind.as_deref().unwrap_or("local");
    let redis = match kind {
        "local" => None,
        "redis" => {
            let own = || -> Result<Option<String>, FieldError> {
                Ok(match resolve(p.url.as_deref(), "url")? {
                    Some(u) => Some(u),
                    None => match resolve(p.host.as_ref().map(|s| s.0.as_str()), "host")? {
                        None => None,
                        Some(host) => {
                            let port = resolve(p.port.as_ref().map(|s| s.0.as_str()), "port")?
                                .unwrap_or_else(|| "6379".into());
                            if port.parse::<u16>().is_err() {
                                return Err((
                                    path("port"),
                                    format!("{port:?} is not a port number"),
                                ));
                            }
                            let auth =
                                resolve(p.password.as_ref().map(|s| s.0.as_str()), "password")?
                                    .map(|pw| {
                                        format!(
                                            ":{}@",
                                            percent_encoding::utf8_percent_encode(
                                                &pw,
                                                percent_encoding::NON_ALPHANUMERIC
                                            )
                                        )
                                    })
                                    .unwrap_or_default();
                            Some(format!("redis://{auth}{host}:{port}"))
                        }
                    },
                })
            };
            // A reference to an unset variable (the GenAI Gateway's default
            // config names REDIS_HOST) means the shared Redis if there is one,
            // else this process's memory, said at start.
            let mut unset = false;
            let own = match own() {
                Ok(u) => u,
                Err((field, reason)) if reason.ends_with("which is not set") => {
                    unset = true;
                    warnings.push(format!(
                        "{field}: {reason}; answers are cached {}",
                        if shared_redis.is_some() {
                            "in the Redis the limits use"
                        } else {
                            "in this process's memory only"
                        }
                    ));
                    None
                }
                Err(e) => return Err(e),
            };
            match own.or_else(|| shared_redis.map(str::to_string)) {
                Some(url) => {
                    if !(url.starts_with("redis://")
                        || url.starts_with("rediss://")
                        || url.starts_with("unix://"))
                    {
                        return Err((path("url"), "must start with redis://, rediss:// or unix://".into()));
                    }
                    Some(url)
                }
                None if unset => None,
                None => return Err((
                    path("type"),
                    "is redis, but no Redis is configured: set cache_params.host (or url), REDIS_URL, or router_settings.redis_host".to_string(),
                )),
            }
        }
        other => {
            return Err((
                path("type"),
                format!("{other:?} is not supported by Tollgate: use local or redis"),
            ))
        }
    };
    let own_ttl = if redis.is_some() {
        secs(p.default_in_redis_ttl, "default_in_redis_ttl")?
    } else {
        secs(p.default_in_memory_ttl, "default_in_memory_ttl")?
    };
    let ttl = secs(p.ttl, "ttl")?
        .or(own_ttl)
        .unwrap_or(Duration::from_secs(600));
    let (mut chat, mut embeddings) = (true, true);
    if let Some(types) = &p.supported_call_types {
        (chat, embeddings) = (false, false);
        for t in types {
            match t.as_str() {
                "completion" | "acompletion" | "text_completion" | "atext_completion" => chat = true,
                "embedding" | "aembedding" => embeddings = true,
                "transcription" | "atranscription" | "rerank" | "arerank" | "speech" | "aspeech" => {}
                other => {
                    return Err((
                        path("supported_call_types"),
                        format!("unknown call type {other:?}: use completion, acompletion, embedding or aembedding"),
                    ))
                }
            }
        }
    }
    let default_on = match p.mode.as_deref() {
        None | Some("default_on") => true,
        Some("default_off") => false,
        Some(m) => {
            return Err((
                path("mode"),
                format!("{m:?} is not a mode: use default_on or default_off"),
            ))
        }
    };
    let namespace = p.namespace.clone().filter(|n| !n.is_empty());
    Ok(Some(CacheConfig {
        redis,
        ttl,
        namespace,
        chat,
        embeddings,
        default_on,
        max_item_bytes: p.max_size_per_item.unwrap_or(1024).saturating_mul(1024) as usize,
        max_memory_bytes: p.max_size_in_memory_mb.unwrap_or(64).max(1) * 1024 * 1024,
    }))
}

/// The model group of a named server: `server:{name}`.
pub fn server_group(name: &str) -> String {
    format!("server:{name}")
}

/// Paths a server name would shadow.
const RESERVED_SERVER_NAMES: &[&str] = &[
    "v1",
    "bedrock",
    "anthropic",
    "ui",
    "key",
    "user",
    "team",
    "model",
    "spend",
    "global",
    "health",
    "prompts",
    "chat",
    "pkg",
    "audit",
    "models",
    "embeddings",
    "session-ids",
    "chat-history",
];

/// A `servers:` entry as a deployment of its own group, called with the
/// caller's model name (else `default_model`) and the server's token.
fn server_deployment(
    s: &litellm::RawServer,
    path: &str,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<DeploymentConfig, FieldError> {
    let ok_name = !s.name.is_empty()
        && s.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !RESERVED_SERVER_NAMES.contains(&s.name.as_str());
    if !ok_name {
        return Err((
            format!("{path}.name"),
            format!(
                "{:?} cannot name a server: use letters, digits, - and _, and not one of {}",
                s.name,
                RESERVED_SERVER_NAMES.join(", ")
            ),
        ));
    }
    let base = s.url.trim_end_matches('/');
    let api_base = if base.ends_with("/v1") {
        base.to_string()
    } else {
        format!("{base}/v1")
    };
    let mut params = serde_json::json!({
        "model": format!("openai/{}", s.default_model.as_deref().unwrap_or("default")),
        "api_base": api_base,
    });
    if let Some(t) = &s.token {
        params["api_key"] = Value::String(t.clone());
    }
    if let Some(t) = s.timeout {
        params["timeout"] = t.into();
    }
    let entry: RawModelEntry = serde_json::from_value(serde_json::json!({
        "model_name": server_group(&s.name),
        "litellm_params": params,
    }))
    .map_err(|e| (path.to_string(), e.to_string()))?;
    let mut d = build_deployment(&entry, path, env, warnings)?.ok_or_else(|| {
        (
            path.to_string(),
            "the server could not be built".to_string(),
        )
    })?;
    d.pass_model = true;
    Ok(d)
}

/// Builds a database deployment as the config file's would be; returns the
/// deployment (none if its provider is not supported) and the warnings about
/// it, or the field that makes it invalid.
pub fn db_deployment(
    m: &DbModel,
    env: &Env,
) -> Result<(Option<DeploymentConfig>, Vec<String>), String> {
    let path = format!("model {}", m.model_id);
    let raw = serde_json::json!({
        "model_name": m.model_name,
        "litellm_params": m.litellm_params,
        "model_info": m.model_info,
    });
    let mut warnings = Vec::new();
    let mut ignored = Vec::new();
    let entry: RawModelEntry = serde_ignored::deserialize(raw, |p| ignored.push(field_path(&p)))
        .map_err(|e| format!("{path}: {e}"))?;
    for p in ignored {
        warnings.push(format!(
            "{path}: {p}: not supported yet by Tollgate; ignored"
        ));
    }
    match build_deployment(&entry, &path, env, &mut warnings) {
        Ok(Some(mut d)) => {
            d.id = m.model_id.clone();
            d.db_model = true;
            Ok((Some(d), warnings))
        }
        Ok(None) => Ok((None, warnings)),
        Err((p, reason)) => Err(format!("{p}: {reason}")),
    }
}

/// A field path as users read it: `model_list[3].litellm_params.rpm`.
fn field_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let head = field_path(parent);
            if head.is_empty() {
                key.to_string()
            } else {
                format!("{head}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

fn build_deployment(
    entry: &RawModelEntry,
    path: &str,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Option<DeploymentConfig>, FieldError> {
    let p: &RawLitellmParams = &entry.litellm_params;
    if entry.model_name.trim().is_empty() {
        return Err((format!("{path}.model_name"), "must not be empty".into()));
    }
    if p.model.trim().is_empty() {
        return Err((
            format!("{path}.litellm_params.model"),
            "must not be empty".into(),
        ));
    }
    let (spec, upstream_model) = match providers::split_model(
        &p.model,
        p.custom_llm_provider.as_deref(),
    ) {
        Ok(v) => v,
        Err(unknown) => {
            warnings.push(format!(
                "{path}.litellm_params.model: provider of {:?} ({unknown}) is not supported yet; deployment {:?} skipped",
                p.model, entry.model_name
            ));
            return Ok(None);
        }
    };
    let mut unusable: Option<String> = None;
    let mut resolve = |field: &str, raw: Option<&String>| -> Option<String> {
        match env.resolve(raw?) {
            Resolved::Value(v) => Some(v),
            Resolved::MissingVar(name) | Resolved::MissingSecret(name) => {
                let msg = format!("litellm_params.{field} names {name}, which is not set");
                warnings.push(format!("{path}.litellm_params.{field}: environment variable {name} is not set; deployment {:?} will fail until it is", entry.model_name));
                unusable.get_or_insert(msg);
                None
            }
        }
    };
    let api_base = resolve("api_base", p.api_base.as_ref().or(p.base_url.as_ref()))
        .or_else(|| spec.base_env.and_then(|v| env.get(v)))
        .or_else(|| spec.default_api_base.map(str::to_string))
        .map(|b| b.trim_end_matches('/').to_string());
    let api_key = resolve("api_key", p.api_key.as_ref())
        .or_else(|| spec.key_env.iter().find_map(|v| env.get(v)))
        .map(Secret::new);
    let api_version =
        resolve("api_version", p.api_version.as_ref()).or_else(|| env.get("AZURE_API_VERSION"));
    let aws = aws_params!(p, &mut resolve, env);
    let organization = resolve("organization", p.organization.as_ref());
    let extra_headers = p
        .extra_headers
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            resolve(&format!("extra_headers.{k}"), Some(v)).map(|v| (k.clone(), v))
        })
        .collect();

    match spec.family {
        Family::Azure if api_base.is_none() => {
            return Err((
                format!("{path}.litellm_params.api_base"),
                "azure/ deployments need api_base (or AZURE_API_BASE)".into(),
            ))
        }
        Family::Azure if api_version.is_none() => {
            return Err((
                format!("{path}.litellm_params.api_version"),
                "azure/ deployments need api_version (or AZURE_API_VERSION)".into(),
            ))
        }
        Family::OpenAiCompatible if api_base.is_none() => {
            return Err((
                format!("{path}.litellm_params.api_base"),
                format!("{}/ deployments need api_base", spec.prefix),
            ))
        }
        _ => {}
    }
    if let Some(base) = &api_base {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err((
                format!("{path}.litellm_params.api_base"),
                format!("must be an http:// or https:// URL, got {base:?}"),
            ));
        }
    }
    // LiteLLM's simple-shuffle weighs by `weight`, else `rpm`, else `tpm`.
    let weight = p
        .weight
        .or(p.rpm.or(entry.rpm).map(|r| r as f64))
        .or(p.tpm.or(entry.tpm).map(|t| t as f64))
        .unwrap_or(1.0);
    if !(weight.is_finite() && weight >= 0.0) {
        return Err((
            format!("{path}.litellm_params.weight"),
            format!("must be a number ≥ 0, got {weight}"),
        ));
    }
    let secs = |v: Option<f64>, field: &str| -> Result<Option<Duration>, FieldError> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err((
                format!("{path}.litellm_params.{field}"),
                format!("must be a positive number of seconds, got {s}"),
            )),
        }
    };
    let info = entry.model_info.as_ref();
    let id = match info.and_then(|i| i.id.as_ref()) {
        Some(id) if !id.0.trim().is_empty() => id.0.clone(),
        _ => stable_id(
            &entry.model_name,
            &p.model,
            api_base.as_deref(),
            p.aws_region_name.as_deref(),
        ),
    };
    let model_info = info
        .map(|i| ModelInfo {
            mode: i.mode.clone(),
            input_cost_per_token: i.input_cost_per_token,
            output_cost_per_token: i.output_cost_per_token,
            max_input_tokens: i.max_input_tokens.or(i.max_tokens),
            max_output_tokens: i.max_output_tokens,
            base_model: i.base_model.clone(),
            other: i.other.clone(),
        })
        .unwrap_or_default();
    if let Some(mode) = model_info.mode.as_deref() {
        if !matches!(mode, "chat" | "completion" | "embedding") {
            warnings.push(format!(
                "{path}.model_info.mode: {mode:?} is not supported yet; the deployment is served as chat"
            ));
        }
    }
    Ok(Some(DeploymentConfig {
        id,
        model_name: entry.model_name.clone(),
        provider: spec.prefix,
        family: spec.family,
        upstream_model,
        api_base,
        api_key,
        api_version,
        organization,
        extra_headers,
        aws,
        weight,
        timeout: secs(p.timeout, "timeout")?,
        stream_timeout: secs(p.stream_timeout, "stream_timeout")?,
        num_retries: p.num_retries.or(p.max_retries),
        drop_params: p.drop_params,
        demo_chunk_delay: Duration::from_millis(p.demo_chunk_delay_ms.unwrap_or(12)),
        rpm: p.rpm.or(entry.rpm),
        tpm: p.tpm.or(entry.tpm),
        max_parallel_requests: p.max_parallel_requests.filter(|n| *n > 0),
        defaults: p.request_defaults(),
        model_info,
        unusable,
        db_model: false,
        pass_model: false,
    }))
}

/// A deployment id that every Tollgate process computes alike for the same config entry.
fn stable_id(
    model_name: &str,
    model: &str,
    api_base: Option<&str>,
    region: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        model_name,
        model,
        api_base.unwrap_or(""),
        region.unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests;
