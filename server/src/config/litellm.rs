//! LiteLLM's `config.yaml`, as written: the fields Tollgate reads.
//!
//! Only what Tollgate acts on is declared here. Every other key is reported by
//! the loader as "not supported yet", with its path, instead of being dropped.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub model_list: Vec<RawModelEntry>,
    #[serde(default)]
    pub router_settings: Option<RawRouterSettings>,
    #[serde(default)]
    pub litellm_settings: Option<RawLitellmSettings>,
    #[serde(default)]
    pub general_settings: Option<RawGeneralSettings>,
    /// Values here are visible to `os.environ/NAME` references (they win over the process environment).
    #[serde(default)]
    pub environment_variables: Option<BTreeMap<String, ScalarString>>,
    /// Tollgate's named upstream servers, reached as `/{name}/v1/…`.
    #[serde(default)]
    pub servers: Option<Vec<RawServer>>,
    #[serde(default)]
    pub guardrails: Option<Vec<super::guardrails::RawGuardrail>>,
}

/// One named OpenAI-compatible server (`servers:`).
#[derive(Debug, Deserialize)]
pub struct RawServer {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub default_model: Option<String>,
    #[serde(default)]
    pub timeout: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct RawModelEntry {
    pub model_name: String,
    pub litellm_params: RawLitellmParams,
    #[serde(default)]
    pub model_info: Option<RawModelInfo>,
    /// LiteLLM also takes the deployment's capacity beside `litellm_params`.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// `litellm_params` of one deployment. Request parameters (temperature, top_p, …)
/// set here are defaults for every request to this deployment.
#[derive(Debug, Default, Deserialize)]
pub struct RawLitellmParams {
    pub model: String,
    pub api_base: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub custom_llm_provider: Option<String>,
    pub weight: Option<f64>,
    pub timeout: Option<f64>,
    pub stream_timeout: Option<f64>,
    pub max_retries: Option<u32>,
    pub num_retries: Option<u32>,
    pub drop_params: Option<bool>,
    pub extra_headers: Option<BTreeMap<String, String>>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub aws_region_name: Option<String>,
    pub aws_profile_name: Option<String>,
    pub aws_role_name: Option<String>,
    pub aws_session_name: Option<String>,
    pub aws_bedrock_runtime_endpoint: Option<String>,
    /// Canned-answer pacing for the built-in `demo/` provider.
    pub demo_chunk_delay_ms: Option<u64>,
    /// The deployment's own capacity: requests and tokens per minute, requests in flight.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    // Request defaults (OpenAI chat parameters).
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub stop: Option<Value>,
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub response_format: Option<Value>,
    pub reasoning_effort: Option<String>,
    pub top_k: Option<u32>,
}

impl RawLitellmParams {
    /// The request defaults set on this deployment, as JSON fields.
    pub fn request_defaults(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("temperature", self.temperature.map(Value::from));
        put("top_p", self.top_p.map(Value::from));
        put("max_tokens", self.max_tokens.map(Value::from));
        put(
            "max_completion_tokens",
            self.max_completion_tokens.map(Value::from),
        );
        put("stop", self.stop.clone());
        put("n", self.n.map(Value::from));
        put("presence_penalty", self.presence_penalty.map(Value::from));
        put("frequency_penalty", self.frequency_penalty.map(Value::from));
        put("seed", self.seed.map(Value::from));
        put("response_format", self.response_format.clone());
        put(
            "reasoning_effort",
            self.reasoning_effort.clone().map(Value::from),
        );
        put("top_k", self.top_k.map(Value::from));
        m
    }
}

/// `model_info`: a few fields Tollgate uses; the rest is kept and shown by `/model/info`.
#[derive(Debug, Default, Deserialize)]
pub struct RawModelInfo {
    pub id: Option<ScalarString>,
    pub mode: Option<String>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub base_model: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A fallback rule: `{"gpt-4o": ["claude-3-5-sonnet"]}`.
pub type RawFallbacks = Vec<BTreeMap<String, OneOrMany>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouterSettings {
    pub routing_strategy: Option<String>,
    pub num_retries: Option<u32>,
    pub timeout: Option<f64>,
    pub stream_timeout: Option<f64>,
    pub retry_after: Option<f64>,
    pub fallbacks: Option<RawFallbacks>,
    pub context_window_fallbacks: Option<RawFallbacks>,
    pub default_fallbacks: Option<OneOrMany>,
    pub enable_pre_call_checks: Option<bool>,
    pub allowed_fails: Option<u32>,
    pub cooldown_time: Option<f64>,
    pub disable_cooldowns: Option<bool>,
    pub retry_policy: Option<BTreeMap<String, u32>>,
    pub allowed_fails_policy: Option<BTreeMap<String, u32>>,
    pub model_group_alias: Option<BTreeMap<String, RawAlias>>,
    pub routing_strategy_args: Option<RawStrategyArgs>,
    pub redis_host: Option<ScalarString>,
    pub redis_port: Option<ScalarString>,
    pub redis_password: Option<ScalarString>,
    pub redis_url: Option<String>,
}

/// `model_group_alias` entry: `"gpt-4": "gpt-4o"` or `{model: gpt-4o, hidden: true}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawAlias {
    To(String),
    Full {
        model: String,
        #[serde(default)]
        hidden: bool,
    },
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStrategyArgs {
    /// latency-based-routing: pick among deployments within this share of the fastest.
    pub lowest_latency_buffer: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLitellmSettings {
    pub drop_params: Option<bool>,
    pub num_retries: Option<u32>,
    pub request_timeout: Option<f64>,
    pub timeout: Option<f64>,
    pub fallbacks: Option<RawFallbacks>,
    pub context_window_fallbacks: Option<RawFallbacks>,
    pub default_fallbacks: Option<OneOrMany>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    pub max_internal_user_budget: Option<f64>,
    pub internal_user_budget_duration: Option<String>,
    pub default_key_generate_params: Option<serde_json::Map<String, serde_json::Value>>,
    pub upperbound_key_generate_params: Option<serde_json::Map<String, serde_json::Value>>,
    /// The response cache: on with `cache: true`, set up by `cache_params`.
    pub cache: Option<bool>,
    pub cache_params: Option<RawCacheParams>,
    /// Log destinations (see `config::callbacks`).
    pub success_callback: Option<OneOrMany>,
    pub failure_callback: Option<OneOrMany>,
    pub service_callback: Option<OneOrMany>,
    pub callbacks: Option<OneOrMany>,
    pub s3_callback_params: Option<super::callbacks::RawS3Params>,
    pub turn_off_message_logging: Option<bool>,
    /// One JSON line per log event (as `JSON_LOGS=True`).
    pub json_logs: Option<bool>,
}

/// `litellm_settings.cache_params`.
#[derive(Debug, Default, Deserialize)]
pub struct RawCacheParams {
    /// `local` (in this process) or `redis`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub host: Option<ScalarString>,
    pub port: Option<ScalarString>,
    pub password: Option<ScalarString>,
    pub url: Option<String>,
    pub namespace: Option<String>,
    /// Seconds an answer is kept, unless the request says otherwise.
    pub ttl: Option<f64>,
    pub default_in_memory_ttl: Option<f64>,
    pub default_in_redis_ttl: Option<f64>,
    pub supported_call_types: Option<Vec<String>>,
    /// `default_on`, or `default_off` (only requests with `cache: {use-cache: true}`).
    pub mode: Option<String>,
    /// KB: larger answers are not cached.
    pub max_size_per_item: Option<u64>,
    /// MB: the bound on the local cache's memory (Tollgate's own setting).
    pub max_size_in_memory_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeneralSettings {
    pub master_key: Option<String>,
    pub database_url: Option<String>,
    pub global_max_parallel_requests: Option<u64>,
    pub store_prompts_in_spend_logs: Option<bool>,
    /// The store keeps no request log of calls that succeeded (spend is
    /// still counted, and the log destinations still get them).
    pub disable_spend_logs: Option<bool>,
    /// The store keeps no request log of calls that failed.
    pub disable_error_logs: Option<bool>,
    /// `["slack"]`: alerts go to `SLACK_WEBHOOK_URL`.
    pub alerting: Option<OneOrMany>,
    /// Seconds after which a call is reported as slow (`llm_too_slow`).
    pub alerting_threshold: Option<f64>,
    pub alert_types: Option<Vec<String>>,
    /// Call every deployment on a schedule; results feed routing and `/health`.
    pub background_health_checks: Option<bool>,
    /// Seconds between background health checks.
    pub health_check_interval: Option<f64>,
}

/// A YAML scalar read as text: `id: 42` and `id: "42"` both give "42".
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarString(pub String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(ScalarString(match Scalar::deserialize(d)? {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }))
    }
}
