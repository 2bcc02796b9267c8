//! Model groups and deployments: picking a deployment (by weight), retries with
//! backoff, per-attempt timeouts, and fallbacks to other model groups. Fallback
//! is a loop over an ordered list, collecting each failure.

use crate::config::{Config, DeploymentConfig, RouterConfig};
use crate::providers::{ErrorKind, Provider, ProviderError};
use http::HeaderValue;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// LiteLLM's default request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A deployment with its client and what we last saw of its health.
pub struct Deployment {
    pub config: DeploymentConfig,
    pub provider: Provider,
    pub health: Health,
    pub labels: Labels,
    pub names: LogNames,
    /// The bundled price of its model (`model_info.base_model` if set), looked up once.
    pub price: Option<&'static crate::pricing::Price>,
}

impl Deployment {
    /// USD per input token: `model_info`'s when set, else the bundled table's.
    pub fn input_cost_per_token(&self) -> Option<f64> {
        let own = self.config.model_info.input_cost_per_token;
        own.or(self.price.map(|p| p.input_cost_per_token))
    }

    /// USD per output token: `model_info`'s when set, else the bundled table's.
    pub fn output_cost_per_token(&self) -> Option<f64> {
        let own = self.config.model_info.output_cost_per_token;
        own.or(self.price.map(|p| p.output_cost_per_token))
    }

    /// The context window: `model_info.max_input_tokens`, else the bundled table's.
    pub fn context_window(&self) -> Option<u64> {
        let own = self.config.model_info.max_input_tokens;
        own.or(self.price.and_then(|p| p.max_input_tokens))
    }
}

/// A deployment's names as the request log keeps them: shared, not copied
/// into each call's log.
pub struct LogNames {
    pub model_group: Arc<str>,
    pub id: Arc<str>,
    pub provider: Arc<str>,
    pub upstream_model: Arc<str>,
}

impl LogNames {
    fn new(d: &DeploymentConfig) -> Self {
        LogNames {
            model_group: d.model_name.as_str().into(),
            id: d.id.as_str().into(),
            provider: d.provider.to_string().into(),
            upstream_model: d.upstream_model.as_str().into(),
        }
    }
}

/// A deployment's identity as header values, built once and cloned (a reference
/// count) into every response it answers.
pub struct Labels {
    pub model_group: HeaderValue,
    pub id: HeaderValue,
    pub provider: HeaderValue,
    pub upstream_model: HeaderValue,
    pub api_base: Option<HeaderValue>,
}

impl Labels {
    fn new(d: &DeploymentConfig) -> Self {
        let value = |s: &str| {
            HeaderValue::from_bytes(s.as_bytes())
                .unwrap_or_else(|_| HeaderValue::from_static("(not representable)"))
        };
        Labels {
            model_group: value(&d.model_name),
            id: value(&d.id),
            provider: value(d.provider),
            upstream_model: value(&d.upstream_model),
            api_base: d.api_base.as_deref().map(value),
        }
    }
}

/// Passive health: the outcome of the last call (or health check).
#[derive(Default)]
pub struct Health {
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn state(&self) -> HealthState {
        match self.state.load(Ordering::Relaxed) {
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            _ => HealthState::Unknown,
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    pub fn record_ok(&self) {
        if self.state.swap(1, Ordering::Relaxed) != 1 {
            if let Ok(mut e) = self.last_error.lock() {
                *e = None;
            }
        }
    }

    pub fn record_err(&self, err: &ProviderError) {
        // A caller's bad request says nothing about the deployment's health.
        if matches!(
            err.kind,
            ErrorKind::BadRequest | ErrorKind::ContextWindowExceeded | ErrorKind::UnsupportedParams
        ) {
            return;
        }
        self.state.store(2, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(err.to_string());
        }
    }
}

/// One failed try, named in the final error.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub model_group: String,
    pub deployment_id: Option<String>,
    pub deployment: Option<String>,
    pub error: ProviderError,
}

/// A successful routed call and where it went.
pub struct Routed<T> {
    pub value: T,
    pub deployment: Arc<Deployment>,
    pub model_group: String,
    /// Failed tries before this one.
    pub attempts: Vec<Attempt>,
    pub fallbacks_used: usize,
    /// The capacity reserved on the deployment, held until the call ends.
    pub slot: crate::gateway::limits::Permit,
}

#[derive(Debug)]
pub enum RouteError {
    /// No model group by this name.
    UnknownModel(String),
    /// Every try failed.
    Failed {
        model: String,
        attempts: Vec<Attempt>,
    },
}

/// Per-request overrides, taken from the request body as LiteLLM allows.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub fallbacks: Option<Vec<String>>,
    pub num_retries: Option<u32>,
    pub timeout: Option<Duration>,
    pub stream: bool,
    /// Lower is served first when every deployment is full.
    pub priority: i64,
    /// The prompt's tokens, when limits or pre-call checks need them.
    pub prompt_tokens: Option<u64>,
    /// A deployment's room reserved with the caller's limits, for the first try.
    pub reserved: Option<Arc<pick::Reserved>>,
}

pub struct Router {
    groups: HashMap<String, Vec<Arc<Deployment>>>,
    /// Group names in config order.
    order: Vec<String>,
    settings: RouterConfig,
    pub drop_params: bool,
    counters: Arc<crate::counters::Counters>,
    queue: Arc<crate::gateway::queue::Queue>,
}

impl Router {
    /// Builds the deployments; usage, cooldowns and the queue live in
    /// `limiter`'s counters, so they outlive a rebuild.
    pub async fn new(
        config: &Config,
        http: &crate::providers::upstream::HttpClient,
        limiter: &crate::gateway::limits::Limiter,
    ) -> Self {
        let mut groups: HashMap<String, Vec<Arc<Deployment>>> = HashMap::new();
        let mut order = Vec::new();
        for d in &config.deployments {
            let priced_as = d
                .model_info
                .base_model
                .as_deref()
                .unwrap_or(&d.upstream_model);
            let price = crate::pricing::lookup(d.provider, priced_as);
            let overridden = d.model_info.input_cost_per_token.is_some()
                || d.model_info.output_cost_per_token.is_some();
            if price.is_none() && !overridden && d.family != crate::config::providers::Family::Demo
            {
                tracing::warn!(
                    deployment = %d,
                    "no bundled price for this model: its spend counts as 0; set model_info.input_cost_per_token and output_cost_per_token"
                );
            }
            let dep = Arc::new(Deployment {
                price,
                provider: Provider::new(d, http).await,
                labels: Labels::new(d),
                names: LogNames::new(d),
                config: d.clone(),
                health: Health::default(),
            });
            if !groups.contains_key(&d.model_name) {
                order.push(d.model_name.clone());
            }
            groups.entry(d.model_name.clone()).or_default().push(dep);
        }
        Router {
            groups,
            order,
            settings: config.router.clone(),
            drop_params: config.drop_params,
            counters: Arc::clone(&limiter.counters),
            queue: Arc::clone(&limiter.queue),
        }
    }

    /// Model groups in config order, with their deployments.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &[Arc<Deployment>])> {
        self.order
            .iter()
            .filter_map(|n| self.groups.get(n).map(|d| (n.as_str(), d.as_slice())))
    }

    /// The deployment `id` of `group`, or (if it is gone) the group's first.
    pub fn deployment(&self, group: &str, id: &str) -> Option<Arc<Deployment>> {
        let ds = self.groups.get(group)?;
        ds.iter()
            .find(|d| d.config.id == id)
            .or_else(|| ds.first())
            .cloned()
    }

    pub fn has_model(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The model group an alias (`model_group_alias`) stands for.
    pub fn alias(&self, name: &str) -> Option<&str> {
        self.settings.aliases.get(name).map(|(to, _)| to.as_str())
    }

    /// Aliases shown in `/v1/models` (not hidden), with their groups.
    pub fn visible_aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings
            .aliases
            .iter()
            .filter(|(_, (_, hidden))| !hidden)
            .map(|(a, (to, _))| (a.as_str(), to.as_str()))
    }

    /// Whether calls need the prompt's token count before routing.
    pub fn needs_prompt_tokens(&self) -> bool {
        self.settings.pre_call_checks
            || self.settings.strategy == crate::config::Strategy::UsageBased
            || self
                .groups
                .values()
                .flatten()
                .any(|d| d.config.tpm.is_some())
    }

    /// The model group a name stands for: a group of that name, or the group
    /// of a deployment calling that upstream model id (a Bedrock model id,
    /// inference profile id or ARN).
    pub fn group_for(&self, model_id: &str) -> Option<String> {
        if self.has_model(model_id) {
            return Some(model_id.to_string());
        }
        self.groups()
            .find(|(_, ds)| ds.iter().any(|d| d.config.upstream_model == model_id))
            .map(|(name, _)| name.to_string())
    }

    /// Whether a key may call a model group: its `models`, its team's (or its
    /// user's), with this group's access groups.
    pub fn check_access(
        &self,
        key: &crate::directory::KeyEntry,
        model: &str,
    ) -> Result<(), String> {
        crate::directory::model_allowed(key, model, &self.access_groups(model))
    }

    /// Whether the caller may use a model group (the master key may use all).
    pub fn may_use(&self, auth: &crate::auth::AuthContext, model: &str) -> bool {
        auth.key()
            .is_none_or(|k| self.check_access(k, model).is_ok())
    }

    /// The access groups (`model_info.access_groups`) a model group is in.
    pub fn access_groups(&self, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for d in self.groups.get(name).map(Vec::as_slice).unwrap_or_default() {
            if let Some(serde_json::Value::Array(a)) =
                d.config.model_info.other.get("access_groups")
            {
                out.extend(a.iter().filter_map(serde_json::Value::as_str));
            }
        }
        out
    }

    /// Runs `call` against the model group `model`, with retries, then its fallbacks.
    pub async fn route<T, F, Fut>(
        &self,
        model: &str,
        opts: &CallOptions,
        call: F,
    ) -> Result<Routed<T>, RouteError>
    where
        F: Fn(Arc<Deployment>, Duration) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        if !self.groups.contains_key(model) {
            return Err(RouteError::UnknownModel(model.to_string()));
        }
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut chain: Vec<String> = vec![model.to_string()];
        let mut fallbacks_added = false;
        let mut i = 0;
        while i < chain.len() {
            let group = chain[i].clone();
            let last_error = match self.try_group(&group, opts, &call, &mut attempts).await {
                Ok((value, deployment, slot)) => {
                    return Ok(Routed {
                        value,
                        deployment,
                        model_group: group,
                        attempts,
                        fallbacks_used: i,
                        slot,
                    })
                }
                Err(e) => e,
            };
            if !fallbacks_added {
                fallbacks_added = true;
                if last_error.kind.allows_fallback() {
                    chain.extend(self.fallbacks_for(model, last_error.kind, opts));
                }
            } else if !last_error.kind.allows_fallback() {
                break;
            }
            i += 1;
        }
        Err(RouteError::Failed {
            model: model.to_string(),
            attempts,
        })
    }

    /// The fallback groups for a failed model, in order.
    fn fallbacks_for(&self, model: &str, kind: ErrorKind, opts: &CallOptions) -> Vec<String> {
        if let Some(f) = &opts.fallbacks {
            return f.clone();
        }
        let s = &self.settings;
        if kind == ErrorKind::ContextWindowExceeded {
            if let Some(f) = s.context_window_fallbacks.get(model) {
                return f.clone();
            }
        } else if kind == ErrorKind::BadRequest {
            // The caller's request is at fault: another model would refuse it too.
            return vec![];
        }
        if let Some(f) = s.fallbacks.get(model) {
            return f.clone();
        }
        s.default_fallbacks
            .iter()
            .filter(|f| f.as_str() != model)
            .cloned()
            .collect()
    }

    /// Tries one group: up to `1 + num_retries` calls, preferring deployments not tried yet.
    async fn try_group<T, F, Fut>(
        &self,
        group: &str,
        opts: &CallOptions,
        call: &F,
        attempts: &mut Vec<Attempt>,
    ) -> Result<(T, Arc<Deployment>, crate::gateway::limits::Permit), ProviderError>
    where
        F: Fn(Arc<Deployment>, Duration) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let Some(deployments) = self.groups.get(group) else {
            let err = ProviderError::new(
                ErrorKind::Config,
                format!("fallback model group {group:?} is not configured"),
            );
            attempts.push(Attempt {
                model_group: group.to_string(),
                deployment_id: None,
                deployment: None,
                error: err.clone(),
            });
            return Err(err);
        };
        let retries = opts
            .num_retries
            .or_else(|| deployments.iter().find_map(|d| d.config.num_retries))
            .unwrap_or(self.settings.num_retries);
        let mut tried: HashSet<String> = HashSet::new();
        let mut last: ProviderError;
        let mut attempt = 0u32;
        loop {
            let (dep, slot) = match self.take(group, deployments, &tried, opts).await {
                Ok(x) => x,
                Err(e) => {
                    attempts.push(Attempt {
                        model_group: group.to_string(),
                        deployment_id: None,
                        deployment: None,
                        error: e.clone(),
                    });
                    return Err(e);
                }
            };
            tried.insert(dep.config.id.clone());
            let started = std::time::Instant::now();
            let result = match &dep.config.unusable {
                Some(why) => Err(ProviderError::new(ErrorKind::Config, why.clone())),
                None => {
                    let timeout = self.timeout_for(&dep.config, opts);
                    match tokio::time::timeout(timeout, call(dep.clone(), timeout)).await {
                        Ok(r) => r,
                        Err(_) => Err(ProviderError::new(
                            ErrorKind::Timeout,
                            format!("no answer within {:.1}s", timeout.as_secs_f64()),
                        )),
                    }
                }
            };
            match result {
                Ok(v) => {
                    dep.health.record_ok();
                    self.record_latency(&dep, started.elapsed());
                    return Ok((v, dep, slot));
                }
                Err(e) => {
                    drop(slot);
                    dep.health.record_err(&e);
                    self.record_failure(&dep, &e, deployments.len()).await;
                    tracing::warn!(model_group = group, deployment = %dep.config, error = %e, attempt, "upstream call failed");
                    attempts.push(Attempt {
                        model_group: group.to_string(),
                        deployment_id: Some(dep.config.id.clone()),
                        deployment: Some(format!(
                            "{}/{}",
                            dep.config.provider, dep.config.upstream_model
                        )),
                        error: e.clone(),
                    });
                    let allowed = self.retries_for(e.kind, retries);
                    let backoff = e.kind.is_retryable();
                    let retry_after = e.retry_after;
                    last = e;
                    if allowed.is_none_or(|n| attempt >= n) {
                        break;
                    }
                    attempt += 1;
                    if backoff {
                        tokio::time::sleep(self.backoff(attempt - 1, retry_after)).await;
                    }
                }
            }
        }
        Err(last)
    }

    /// How long a call may take in all (`timeout` / `request_timeout`), and so
    /// how long it may wait for a slot.
    pub fn request_timeout(&self) -> Duration {
        self.settings.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    fn timeout_for(&self, d: &DeploymentConfig, opts: &CallOptions) -> Duration {
        let stream = if opts.stream {
            d.stream_timeout.or(self.settings.stream_timeout)
        } else {
            None
        };
        opts.timeout
            .or(stream)
            .or(d.timeout)
            .or(self.settings.timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Honours the upstream's `retry-after`; otherwise exponential from 100 ms, with jitter.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let floor = self.settings.retry_after;
        let wait = match retry_after {
            Some(ra) => ra,
            None => {
                let base = Duration::from_millis(100).saturating_mul(1u32 << attempt.min(8));
                let jitter = rand::rng().random_range(0.8..1.2);
                base.mul_f64(jitter)
            }
        };
        wait.max(floor).min(MAX_BACKOFF)
    }
}

pub mod pick;
#[cfg(test)]
mod tests;
