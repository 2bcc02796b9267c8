//! The steps one model request passes through, in order: gateway parameters →
//! route (retries, fallbacks) → provider call → usage and cost → request log.
//! Surfaces parse into the neutral request before, and render the result after.

use super::cache::{self, CallKind, Directives, Plan, ResponseCache};
use super::guardrails::{self, Intervention, StreamGuard};
use super::history;
use super::limits::{Permit, RateHeaders, RateLimited};
use super::prompts;
use super::router::pick::Reserved;
use super::router::{CallOptions, Deployment, RouteError, Routed};
use super::tokens;
use super::types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage,
};
use crate::auth::AuthContext;
use crate::config::GuardrailMode;
use crate::directory::{self, KeyEntry};
use crate::logs::{now_ms, RequestLog};
use crate::providers::{ChunkStream, ErrorKind, ProviderError};
use crate::state::AppState;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum GatewayError {
    /// The request is not acceptable as sent.
    Invalid {
        message: String,
        param: Option<String>,
    },
    Route(RouteError),
    /// The caller may not use this model (403).
    Forbidden(String),
    /// A budget is spent (400, `budget_exceeded`).
    BudgetExceeded(String),
    /// Something the request names does not exist for this caller (404), e.g. a session.
    NotFound(String),
    /// A part the call needs is down (503), e.g. the chat history store.
    Unavailable(String),
    /// A rate limit is reached (429, with `retry-after`).
    RateLimited(Box<RateLimited>),
    /// A guardrail blocked the input or the answer (400, `guardrail_violation`).
    Guardrail(Intervention),
}

/// Where a routed call went, for response headers.
pub struct RouteInfo {
    pub deployment: Arc<Deployment>,
    pub retries: usize,
    pub fallbacks_used: usize,
    /// The chat-history session of the call and how many stored messages were sent.
    pub session: Option<(String, usize)>,
    /// The call's tightest rate limits, for `x-ratelimit-*`.
    pub rate: RateHeaders,
    /// Whether the answer came from the response cache, and under which key.
    pub cache: Option<CacheInfo>,
}

/// The response cache's part in a call.
pub struct CacheInfo {
    pub hit: bool,
    pub key: String,
}

/// Who called and how, for the log.
pub struct CallMeta<'a> {
    pub auth: &'a AuthContext,
    pub request_id: String,
    pub surface: &'static str,
    /// The `Cache-Control` header's directives for the response cache.
    pub cache: Directives,
}

/// Gateway-level fields a caller may put in the body (LiteLLM's names); they are never sent upstream.
struct GatewayParams {
    opts: CallOptions,
    drop_params: Option<bool>,
    metadata: Option<Value>,
    /// The model a named server (`/{server}/v1/…`) is asked for.
    server_model: Option<String>,
    /// Lower is served first when calls wait for a slot (`priority`).
    priority: Option<i64>,
    /// The response cache's directives: the header's, then the body's `cache`.
    cache: Directives,
    /// Guardrails the request names (`guardrails`, or `metadata.guardrails`).
    guardrails: Vec<String>,
    /// `no-log: true`: the call goes to no log destination, and its prompt
    /// and answer are kept nowhere (its spend is still counted and stored).
    no_log: bool,
}

fn take_gateway_params(
    extra: &mut Map<String, Value>,
    stream: bool,
    mut cache: Directives,
) -> Result<GatewayParams, GatewayError> {
    let invalid = |param: &str, what: &str| GatewayError::Invalid {
        message: format!("Invalid value for '{param}': expected {what}"),
        param: Some(param.to_string()),
    };
    let fallbacks = match extra.remove("fallbacks") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Object(o) => o
                        .get("model")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| invalid("fallbacks", "a list of model names")),
                    _ => Err(invalid("fallbacks", "a list of model names")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(invalid("fallbacks", "a list of model names")),
    };
    let num_retries = match extra.remove("num_retries") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("num_retries", "a non-negative integer"))?,
        ),
    };
    let timeout = match extra
        .remove("timeout")
        .or_else(|| extra.remove("request_timeout"))
    {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| invalid("timeout", "a positive number of seconds"))?,
        ),
    };
    let drop_params = match extra.remove("drop_params") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(invalid("drop_params", "a boolean")),
    };
    // LiteLLM's `metadata` is for the gateway's logs, not the upstream.
    let metadata = extra.remove("metadata");
    let names = |v: Option<&Value>| -> Result<Vec<String>, GatewayError> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid("guardrails", "a list of guardrail names"))
                })
                .collect(),
            // `{"name": {...settings}}`
            Some(Value::Object(m)) => Ok(m.keys().cloned().collect()),
            Some(_) => Err(invalid("guardrails", "a list of guardrail names")),
        }
    };
    let mut guardrails = names(extra.remove("guardrails").as_ref())?;
    if let Some(Value::Object(m)) = &metadata {
        guardrails.extend(names(m.get("guardrails"))?);
    }
    let priority =
        match extra.remove("priority") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|p| *p >= 0).ok_or_else(|| {
                invalid("priority", "a non-negative integer (0 is served first)")
            })?),
        };
    if let Some(v) = extra.remove("cache").filter(|v| !v.is_null()) {
        cache.merge_body(v).map_err(|e| GatewayError::Invalid {
            message: format!("Invalid value for 'cache': {e}"),
            param: Some("cache".into()),
        })?;
    }
    let no_log = match extra.remove("no-log") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(invalid("no-log", "a boolean")),
    };
    let server_model = match extra.remove(SERVER_MODEL) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    Ok(GatewayParams {
        opts: CallOptions {
            fallbacks,
            num_retries,
            timeout,
            stream,
            priority: priority.unwrap_or(super::queue::UNPRIORITISED),
            prompt_tokens: None,
            reserved: None,
        },
        drop_params,
        metadata,
        server_model,
        priority,
        cache,
        guardrails,
        no_log,
    })
}

/// Set by the `/{server}/v1/…` routes: the model name the caller asked the server for.
pub const SERVER_MODEL: &str = "tollgate_server_model";

/// The request as this deployment should receive it: its model id, its defaults.
fn for_deployment(req: &ChatRequest, d: &Deployment, server_model: Option<&str>) -> ChatRequest {
    let mut out = if d.config.defaults.is_empty() {
        req.clone()
    } else {
        let mut v = serde_json::to_value(req).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            for (k, dv) in &d.config.defaults {
                if m.get(k).is_none_or(Value::is_null) {
                    m.insert(k.clone(), dv.clone());
                }
            }
        }
        serde_json::from_value(v).unwrap_or_else(|_| req.clone())
    };
    out.model = match server_model {
        Some(m) if d.config.pass_model => m.to_string(),
        _ => d.config.upstream_model.clone(),
    };
    out
}

/// USD for a call: the deployment's `model_info` prices when set, else the
/// bundled table, else 0 (warned about once, at start).
fn cost(d: &Deployment, usage: &Usage) -> f64 {
    let info = &d.config.model_info;
    let cached = usage
        .prompt_tokens_details
        .as_ref()
        .and_then(|p| p.cached_tokens)
        .unwrap_or(0);
    if info.input_cost_per_token.is_some() || info.output_cost_per_token.is_some() {
        let input = d.input_cost_per_token().unwrap_or(0.0);
        let output = d.output_cost_per_token().unwrap_or(0.0);
        return usage.prompt_tokens as f64 * input + usage.completion_tokens as f64 * output;
    }
    match d.price {
        Some(p) => crate::pricing::cost(p, usage.prompt_tokens, usage.completion_tokens, cached, 0),
        None => 0.0,
    }
}

/// One model call's bookkeeping: its log record and clock, from parsing to the end.
struct Call<'s> {
    state: &'s AppState,
    log: RequestLog,
    started: Instant,
    key: Option<Arc<KeyEntry>>,
    /// Room under the caller's rate limits, held until the call ends.
    permit: Permit,
    /// The call's guardrails and what they masked.
    guards: guardrails::Active,
}

impl<'s> Call<'s> {
    /// Starts the log, checks the caller's model access and budgets, and takes
    /// the gateway-level fields out of the body. `model` may be rewritten by
    /// the key's `aliases`.
    fn begin(
        state: &'s AppState,
        meta: &CallMeta<'_>,
        call_type: &'static str,
        model: &mut String,
        extra: &mut Map<String, Value>,
        stream: bool,
    ) -> Result<(Self, GatewayParams), GatewayError> {
        let key = meta.auth.key().cloned();
        let mut call = Call {
            state,
            log: RequestLog {
                request_id: meta.request_id.as_str().into(),
                started_at_ms: now_ms(),
                call_type,
                surface: meta.surface,
                api_key_hash: meta.auth.key_hash.clone(),
                key_alias: meta.auth.key_alias.clone(),
                user_id: meta.auth.user_id().map(Arc::from),
                team_id: meta.auth.team_id().map(Arc::from),
                virtual_key: key.is_some(),
                model_requested: model.as_str().into(),
                stream,
                ..Default::default()
            },
            started: Instant::now(),
            key,
            permit: Permit::none(),
            guards: guardrails::Active::default(),
        };
        if let Err(e) = call.admit(model) {
            return Err(call.fail(e));
        }
        match take_gateway_params(extra, stream, meta.cache.clone()) {
            Ok(gp) if call.cache_control_refused(&gp.cache).is_some() => {
                let e = call.cache_control_refused(&gp.cache).unwrap_or_default();
                Err(call.fail(GatewayError::Forbidden(e)))
            }
            Ok(gp) => {
                call.log.metadata = gp.metadata.clone();
                call.log.no_log = gp.no_log;
                if !state.guardrails.is_empty() || !gp.guardrails.is_empty() {
                    match state.guardrails.select(&gp.guardrails, call.key.as_deref()) {
                        Ok(g) => call.guards = g,
                        Err(m) => {
                            return Err(call.fail(GatewayError::Invalid {
                                message: m,
                                param: Some("guardrails".into()),
                            }))
                        }
                    }
                }
                Ok((call, gp))
            }
            Err(e) => Err(call.fail(e)),
        }
    }

    /// A cache control the key may not set (its `allowed_cache_controls`, when not empty).
    fn cache_control_refused(&self, d: &Directives) -> Option<String> {
        let key = self.key.as_deref()?;
        let allowed = key
            .record
            .settings
            .other
            .get("allowed_cache_controls")?
            .as_array()
            .filter(|a| !a.is_empty())?;
        d.body_fields
            .iter()
            .find(|f| !allowed.iter().any(|a| a.as_str() == Some(f.as_str())))
            .map(|f| {
                format!("Not allowed to set {f} as a cache control. Contact admin to change permissions.")
            })
    }

    /// Key type, model access (after the key's aliases) and budgets. No I/O.
    fn admit(&self, model: &mut String) -> Result<(), GatewayError> {
        if let Some(to) = self.state.router.load().alias(model) {
            *model = to.to_string();
        }
        let Some(key) = &self.key else {
            return match directory::budget_exceeded(&self.state.directory, None, model) {
                Some(m) => Err(GatewayError::BudgetExceeded(m)),
                None => Ok(()),
            };
        };
        if key.record.settings.key_type.as_deref() == Some("management")
            || key.record.settings.key_type.as_deref() == Some("read_only")
        {
            return Err(GatewayError::Forbidden(format!(
                "Key {} is a {} key: it cannot call models.",
                key.record.key_name,
                key.record.settings.key_type.as_deref().unwrap_or_default()
            )));
        }
        if let Some(Value::String(to)) = key.record.settings.aliases.get(model.as_str()) {
            *model = to.clone();
            if let Some(to) = self.state.router.load().alias(model) {
                *model = to.to_string();
            }
        }
        self.state
            .router
            .load()
            .check_access(key, model)
            .map_err(GatewayError::Forbidden)?;
        match directory::budget_exceeded(&self.state.directory, Some(key), model) {
            Some(m) => Err(GatewayError::BudgetExceeded(m)),
            None => Ok(()),
        }
    }

    /// Keeps what was sent, for the logs that want it.
    fn keep_prompt(&mut self, messages: impl FnOnce() -> serde_json::Result<Value>) {
        if self.state.keep_content && !self.log.no_log {
            self.log.content = Some(Box::new(crate::logs::LoggedContent {
                messages: messages().unwrap_or(Value::Null),
                response: None,
            }));
        }
    }

    /// Keeps the answer (as the upstream gave it: masked values stay masked).
    fn keep_answer(&mut self, answer: &impl serde::Serialize) {
        if let Some(c) = self.log.content.as_mut() {
            c.response = serde_json::to_value(answer).ok();
        }
    }

    /// Runs the pre-call guardrails (they may mask the request).
    async fn guard_input(&mut self, req: &mut ChatRequest) -> Result<(), GatewayError> {
        if !self.guards.has(GuardrailMode::PreCall) {
            return Ok(());
        }
        self.guards
            .check_input(GuardrailMode::PreCall, req)
            .await
            .map_err(guardrail_error)
    }

    /// A call whose answer a guardrail refused: its usage is counted and
    /// paid for (the model did answer), and the caller gets the refusal.
    fn blocked_after_call(
        mut self,
        deployment: &Deployment,
        usage: &Usage,
        iv: Intervention,
    ) -> GatewayError {
        self.permit
            .settle(usage.prompt_tokens + usage.completion_tokens);
        self.log.prompt_tokens = usage.prompt_tokens;
        self.log.completion_tokens = usage.completion_tokens;
        if !self.log.cache_hit {
            self.log.spend = cost(deployment, usage);
            self.state.directory.record_spend(
                self.key.as_deref(),
                self.log.model_group.as_deref(),
                self.log.spend,
            );
        }
        self.fail(GatewayError::Guardrail(iv))
    }

    /// Reserves room under the caller's rate limits, waiting by priority for a
    /// slot in flight if one is full.
    async fn limit(
        &mut self,
        model: &str,
        gp: &mut GatewayParams,
        prompt_tokens: impl Fn() -> u64,
    ) -> Result<(), GatewayError> {
        let key = self.key.as_deref();
        let priority = gp
            .priority
            .or_else(|| key.and_then(default_priority))
            .unwrap_or(super::queue::UNPRIORITISED);
        gp.opts.priority = priority;
        if self.state.router.load().needs_prompt_tokens() {
            gp.opts.prompt_tokens = Some(prompt_tokens());
        }
        // A group of one deployment with counted capacity: its room is
        // reserved in the same step as the caller's limits.
        let router = self.state.router.load_full();
        if let Some((dep, plan)) = router.preset_plan(model, gp.opts.prompt_tokens.unwrap_or(0)) {
            if let Some((permit, levels)) = self
                .state
                .limiter
                .admit_with(
                    key,
                    model,
                    || gp.opts.prompt_tokens.unwrap_or_else(&prompt_tokens),
                    &plan.checks,
                )
                .await
            {
                self.permit = permit;
                gp.opts.reserved = Some(Arc::new(Reserved {
                    group: model.to_string(),
                    deployment: dep.config.id.clone(),
                    slot: std::sync::Mutex::new(Some(
                        router.slot_permit(&dep, plan, &levels, true),
                    )),
                }));
                return Ok(());
            }
        }
        let wait = gp.opts.timeout.unwrap_or_else(|| router.request_timeout());
        self.permit = self
            .state
            .limiter
            .admit(
                key,
                model,
                || gp.opts.prompt_tokens.unwrap_or_else(&prompt_tokens),
                priority,
                wait,
            )
            .await
            .map_err(|e| GatewayError::RateLimited(Box::new(e)))?;
        Ok(())
    }

    /// Records where a routed call went.
    fn routed<T>(&mut self, r: &Routed<T>) -> RouteInfo {
        let names = &r.deployment.names;
        self.log.model_group = Some(if *names.model_group == *r.model_group {
            Arc::clone(&names.model_group)
        } else {
            r.model_group.as_str().into()
        });
        self.log.deployment_id = Some(Arc::clone(&names.id));
        self.log.provider = Some(Arc::clone(&names.provider));
        self.log.upstream_model = Some(Arc::clone(&names.upstream_model));
        self.log.attempts = r.attempts.len() as u32 + 1;
        self.log.fallbacks_used = r.fallbacks_used as u32;
        RouteInfo {
            deployment: Arc::clone(&r.deployment),
            retries: r.attempts.len(),
            fallbacks_used: r.fallbacks_used,
            session: None,
            rate: self.permit.headers.merge(r.slot.headers),
            cache: None,
        }
    }

    /// Records that the cache answered, as `d` once did.
    fn served_from_cache(&mut self, d: &Arc<Deployment>, key: &str) -> RouteInfo {
        self.log.model_group = Some(Arc::clone(&d.names.model_group));
        self.log.deployment_id = Some(Arc::clone(&d.names.id));
        self.log.provider = Some(Arc::clone(&d.names.provider));
        self.log.upstream_model = Some(Arc::clone(&d.names.upstream_model));
        self.log.attempts = 0;
        self.log.cache_hit = true;
        RouteInfo {
            deployment: Arc::clone(d),
            retries: 0,
            fallbacks_used: 0,
            session: None,
            rate: self.permit.headers,
            cache: Some(CacheInfo {
                hit: true,
                key: key.to_string(),
            }),
        }
    }

    /// Logs a completed call with its usage and cost (none for a cache hit,
    /// which used no upstream tokens either).
    fn succeed(mut self, deployment: &Deployment, usage: &Usage) {
        let hit = self.log.cache_hit;
        self.permit.settle(if hit {
            0
        } else {
            usage.prompt_tokens + usage.completion_tokens
        });
        self.log.prompt_tokens = usage.prompt_tokens;
        self.log.completion_tokens = usage.completion_tokens;
        self.log.spend = if hit { 0.0 } else { cost(deployment, usage) };
        self.log.status_code = 200;
        self.log.outcome = "success";
        self.log.guardrails = self.guards.trail();
        self.log.ended_at_ms = now_ms();
        self.log.latency_ms = self.started.elapsed().as_millis() as u64;
        self.state.directory.record_spend(
            self.key.as_deref(),
            self.log.model_group.as_deref(),
            self.log.spend,
        );
        self.state.logs.send(self.log);
    }

    /// Logs a failed call and hands the error back.
    fn fail(mut self, err: GatewayError) -> GatewayError {
        let log = &mut self.log;
        log.ended_at_ms = now_ms();
        log.latency_ms = self.started.elapsed().as_millis() as u64;
        log.outcome = "error";
        log.guardrails = self.guards.trail();
        match &err {
            GatewayError::Guardrail(iv) => {
                log.status_code = 400;
                log.error = Some(iv.message.clone());
            }
            GatewayError::Invalid { message, .. } => {
                log.status_code = 400;
                log.error = Some(message.clone());
            }
            GatewayError::Route(RouteError::UnknownModel(m)) => {
                log.status_code = 400;
                log.error = Some(format!("unknown model {m}"));
            }
            GatewayError::Forbidden(m) => {
                log.status_code = 403;
                log.error = Some(m.clone());
            }
            GatewayError::BudgetExceeded(m) => {
                log.status_code = 400;
                log.error = Some(m.clone());
            }
            GatewayError::NotFound(m) => {
                log.status_code = 404;
                log.error = Some(m.clone());
            }
            GatewayError::Unavailable(m) => {
                log.status_code = 503;
                log.error = Some(m.clone());
            }
            GatewayError::RateLimited(r) => {
                log.status_code = 429;
                log.error = Some(r.message.clone());
            }
            GatewayError::Route(RouteError::Failed { attempts, .. }) => {
                log.attempts = attempts.len() as u32;
                // Where the last try went.
                if let Some(last) = attempts.last() {
                    log.model_group
                        .get_or_insert_with(|| last.model_group.as_str().into());
                    if log.deployment_id.is_none() {
                        log.deployment_id = last.deployment_id.as_deref().map(Arc::from);
                    }
                }
                log.status_code = attempts.last().and_then(|a| a.error.status).unwrap_or(502);
                log.error = Some(
                    attempts
                        .iter()
                        .map(|a| format!("{}: {}", a.model_group, a.error))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
        }
        self.state.logs.send(self.log);
        err
    }
}

/// A guardrail's refusal, or (when it could not be asked) a 503.
fn guardrail_error(iv: Intervention) -> GatewayError {
    if iv.unavailable {
        GatewayError::Unavailable(iv.message)
    } else {
        GatewayError::Guardrail(iv)
    }
}

/// Runs `call` and, beside it, the `during_call` guardrails on the request.
fn with_during<'a, T: Send + 'a>(
    guards: &'a mut guardrails::Active,
    req: &ChatRequest,
    call: impl std::future::Future<Output = T> + Send + 'a,
) -> impl std::future::Future<Output = (T, Result<(), Intervention>)> + Send + 'a {
    use futures::future::{Either, FutureExt};
    // Without a during-call guardrail the call is awaited as it is: the future
    // holds it once, not a second time for the branch that joins it.
    match guards.during_check(req) {
        None => Either::Left(call.map(|out| (out, Ok(())))),
        Some(check) => Either::Right(Box::pin(async move {
            let (out, (trail, verdict)) = tokio::join!(call, check);
            guards.absorb(trail);
            (out, verdict)
        })),
    }
}

/// A non-streamed chat answer.
pub async fn chat(
    state: &AppState,
    meta: CallMeta<'_>,
    mut req: ChatRequest,
) -> Result<(ChatResponse, RouteInfo), GatewayError> {
    prompts::apply(state, &mut req).await?;
    let mut model = req.model.clone();
    let (mut call, mut gp) = Call::begin(state, &meta, "chat", &mut model, &mut req.extra, false)?;
    if let Err(e) = call.guard_input(&mut req).await {
        return Err(call.fail(e));
    }
    let history = match history::begin(state, meta.auth, &model, &mut req).await {
        Ok(h) => h,
        Err(e) => return Err(call.fail(e)),
    };
    call.keep_prompt(|| serde_json::to_value(&req.messages));
    if let Err(e) = call.limit(&model, &mut gp, || tokens::prompt(&req)).await {
        return Err(call.fail(e));
    }
    let cached = cache_plan(state, CallKind::Chat, &model, &gp, || {
        cache::chat_material(&req, gp.server_model.as_deref())
    });
    if let Some((c, plan)) = &cached {
        if let Some((mut answer, dep)) = lookup::<ChatResponse>(state, c, plan, &model).await {
            let mut info = call.served_from_cache(&dep, &plan.key);
            let usage = answer
                .usage
                .clone()
                .unwrap_or_else(|| tokens::estimate(&req, tokens::completion(&answer)));
            if let Err(iv) = call.guards.check_output(&mut answer).await {
                return Err(call.blocked_after_call(&dep, &usage, iv));
            }
            let mut caller = answer.clone();
            call.guards.unmask(&mut caller);
            call.keep_answer(&answer);
            call.succeed(&dep, &usage);
            if let Some(h) = history {
                info.session = Some((h.session.session_id.clone(), h.turns_sent));
                history::record(state.store.clone(), h, history::answer_message(&answer)).await;
            }
            return Ok((caller, info));
        }
    }
    let router = state.router.load_full();
    let drop_default = router.drop_params;
    let req = Arc::new(req);
    let routing = router.route(&model, &gp.opts, |dep, _| {
        let req = Arc::clone(&req);
        let drop_params = gp
            .drop_params
            .or(dep.config.drop_params)
            .unwrap_or(drop_default);
        let server_model = gp.server_model.clone();
        async move {
            dep.provider
                .chat(
                    for_deployment(&req, &dep, server_model.as_deref()),
                    drop_params,
                )
                .await
        }
    });
    let (result, during) = with_during(&mut call.guards, &req, routing).await;
    match (result, during) {
        (Ok(mut routed), Err(iv)) => {
            call.routed(&routed);
            let usage = routed
                .value
                .usage
                .take()
                .unwrap_or_else(|| tokens::estimate(&req, tokens::completion(&routed.value)));
            routed
                .slot
                .settle(usage.prompt_tokens + usage.completion_tokens);
            Err(match guardrail_error(iv) {
                GatewayError::Guardrail(iv) => {
                    call.blocked_after_call(&routed.deployment, &usage, iv)
                }
                e => call.fail(e),
            })
        }
        (Err(_), Err(iv)) => Err(call.fail(guardrail_error(iv))),
        (Ok(mut routed), Ok(())) => {
            let info = call.routed(&routed);
            // An upstream that reports no usage is counted here, and the caller sees the count.
            let usage = match &routed.value.usage {
                Some(u) => u.clone(),
                None => {
                    let u = tokens::estimate(&req, tokens::completion(&routed.value));
                    routed.value.usage = Some(u.clone());
                    u
                }
            };
            routed
                .slot
                .settle(usage.prompt_tokens + usage.completion_tokens);
            if let Err(iv) = call.guards.check_output(&mut routed.value).await {
                return Err(match guardrail_error(iv) {
                    GatewayError::Guardrail(iv) => {
                        call.blocked_after_call(&routed.deployment, &usage, iv)
                    }
                    e => call.fail(e),
                });
            }
            let unmask = call.guards.unmasks().then(|| call.guards.masks.clone());
            call.keep_answer(&routed.value);
            call.succeed(&routed.deployment, &usage);
            let mut info = info;
            if let Some((c, plan)) = &cached {
                c.put(plan, &routed.deployment.config.id, &routed.value);
                info.cache = Some(CacheInfo {
                    hit: false,
                    key: plan.key.clone(),
                });
            }
            if let Some(h) = history {
                info.session = Some((h.session.session_id.clone(), h.turns_sent));
                history::record(
                    state.store.clone(),
                    h,
                    history::answer_message(&routed.value),
                )
                .await;
            }
            // Logs, history and the cache keep the placeholders; the caller
            // gets its own values back.
            let mut answer = routed.value;
            if let Some(m) = unmask {
                for c in &mut answer.choices {
                    if let Some(t) = c.message.content.as_mut() {
                        *t = m.unmask(t);
                    }
                }
            }
            Ok((answer, info))
        }
        (Err(e), Ok(())) => Err(call.fail(GatewayError::Route(e))),
    }
}

/// A streamed chat answer. Nothing is committed until the first upstream chunk
/// has arrived, so a failure before it can still retry or fall back.
pub async fn chat_stream(
    state: &AppState,
    meta: CallMeta<'_>,
    mut req: ChatRequest,
) -> Result<(LoggedStream, RouteInfo), GatewayError> {
    prompts::apply(state, &mut req).await?;
    let include_usage = req.include_usage();
    let mut model = req.model.clone();
    let (mut call, mut gp) = Call::begin(state, &meta, "chat", &mut model, &mut req.extra, true)?;
    if let Err(e) = call.guard_input(&mut req).await {
        return Err(call.fail(e));
    }
    let history = match history::begin(state, meta.auth, &model, &mut req).await {
        Ok(h) => h,
        Err(e) => return Err(call.fail(e)),
    };
    call.keep_prompt(|| serde_json::to_value(&req.messages));
    if let Err(e) = call.limit(&model, &mut gp, || tokens::prompt(&req)).await {
        return Err(call.fail(e));
    }
    let cached = cache_plan(state, CallKind::Chat, &model, &gp, || {
        cache::chat_material(&req, gp.server_model.as_deref())
    });
    if let Some((c, plan)) = &cached {
        if let Some((answer, dep)) = lookup::<ChatResponse>(state, c, plan, &model).await {
            let mut chunks = cache::to_chunks(&answer).into_iter();
            if let Some(first) = chunks.next() {
                let mut info = call.served_from_cache(&dep, &plan.key);
                info.session = history
                    .as_ref()
                    .map(|h| (h.session.session_id.clone(), h.turns_sent));
                call.log.ttft_ms = Some(call.started.elapsed().as_millis() as u64);
                let rest: ChunkStream = futures::stream::iter(chunks.map(Ok)).boxed();
                let guard = call.guards.stream_guard();
                call.log.guardrails = call.guards.trail();
                let stream = LoggedStream::new(
                    state,
                    call,
                    first,
                    rest,
                    include_usage,
                    Arc::new(req),
                    history,
                    dep,
                    Permit::none(),
                    None,
                    guard,
                );
                return Ok((stream, info));
            }
        }
    }
    let router = state.router.load_full();
    let drop_default = router.drop_params;
    let req = Arc::new(req);
    let routing = router.route(&model, &gp.opts, |dep, _| {
        let req = Arc::clone(&req);
        let drop_params = gp
            .drop_params
            .or(dep.config.drop_params)
            .unwrap_or(drop_default);
        let server_model = gp.server_model.clone();
        async move {
            let mut s = dep
                .provider
                .chat_stream(
                    for_deployment(&req, &dep, server_model.as_deref()),
                    drop_params,
                )
                .await?;
            match s.next().await {
                Some(Ok(first)) => Ok((first, s)),
                Some(Err(e)) => Err(e),
                None => Err(ProviderError::new(
                    ErrorKind::BadResponse,
                    "the upstream closed the stream before sending anything",
                )),
            }
        }
    });
    let (result, during) = with_during(&mut call.guards, &req, routing).await;
    match (result, during) {
        // The answer waits for the during-call check; refused, it never starts.
        (Ok(routed), Err(iv)) => {
            call.routed(&routed);
            Err(call.fail(guardrail_error(iv)))
        }
        (Err(_), Err(iv)) => Err(call.fail(guardrail_error(iv))),
        (Ok(routed), Ok(())) => {
            let mut info = call.routed(&routed);
            info.session = history
                .as_ref()
                .map(|h| (h.session.session_id.clone(), h.turns_sent));
            call.log.ttft_ms = Some(call.started.elapsed().as_millis() as u64);
            let Routed {
                value: (first, rest),
                deployment,
                slot,
                ..
            } = routed;
            // Bedrock guardrails on the answer: held and checked window by window.
            let bedrock = call.guards.bedrock_post_call();
            let windows = (!bedrock.is_empty()).then(guardrails::WindowTrail::default);
            let (first, rest) = if bedrock.is_empty() {
                (first, rest)
            } else {
                let mut checked = guardrails::bedrock_windows(
                    futures::stream::once(async { Ok(first) })
                        .chain(rest)
                        .boxed(),
                    bedrock.clone(),
                    windows.clone().unwrap_or_default(),
                );
                match checked.next().await {
                    Some(Ok(first)) => (first, checked),
                    Some(Err(e)) if e.kind == ErrorKind::Guardrail => {
                        if let Some(w) = &windows {
                            call.guards.absorb(w.entries());
                        }
                        let name = bedrock
                            .iter()
                            .find(|g| e.message.contains(&format!("guardrail {}:", g.name)))
                            .map(|g| g.name.clone())
                            .unwrap_or_default();
                        return Err(call.fail(GatewayError::Guardrail(Intervention {
                            guardrail: name,
                            message: e.message,
                            unavailable: false,
                        })));
                    }
                    Some(Err(e)) => return Err(call.fail(GatewayError::Unavailable(e.message))),
                    None => {
                        return Err(call.fail(GatewayError::Unavailable(
                            "the upstream closed the stream before sending anything".into(),
                        )))
                    }
                }
            };
            let guard = call.guards.stream_guard();
            call.log.guardrails = call.guards.trail();
            if let Some((_, plan)) = &cached {
                info.cache = Some(CacheInfo {
                    hit: false,
                    key: plan.key.clone(),
                });
            }
            let keep = cached.map(|(c, plan)| (c, plan, cache::Assembler::default()));
            let stream = LoggedStream::new(
                state,
                call,
                first,
                rest,
                include_usage,
                req,
                history,
                deployment,
                slot,
                keep,
                guard,
            );
            let mut stream = stream;
            stream.windows = windows;
            Ok((stream, info))
        }
        (Err(e), Ok(())) => Err(call.fail(GatewayError::Route(e))),
    }
}

/// The response cache's plan for a call, when the cache is on and applies.
fn cache_plan(
    state: &AppState,
    kind: CallKind,
    model: &str,
    gp: &GatewayParams,
    material: impl FnOnce() -> Vec<u8>,
) -> Option<(Arc<ResponseCache>, Plan)> {
    let c = state.cache.as_ref()?;
    let plan = c.plan(kind, model, &gp.cache, material)?;
    Some((Arc::clone(c), plan))
}

/// A kept answer for `plan`, with the deployment of `group` that gave it
/// (or, if that one is gone, the group's first).
async fn lookup<T: serde::de::DeserializeOwned>(
    state: &AppState,
    c: &ResponseCache,
    plan: &Plan,
    group: &str,
) -> Option<(T, Arc<Deployment>)> {
    let hit = c.get::<T>(plan).await?;
    let dep = state.router.load().deployment(group, &hit.deployment)?;
    Some((hit.body, dep))
}

/// A key's default priority: its `metadata.priority`, else its team's.
fn default_priority(key: &KeyEntry) -> Option<i64> {
    let of = |m: &Map<String, Value>| m.get("priority").and_then(Value::as_i64);
    of(&key.record.settings.metadata).or_else(|| {
        key.team
            .as_ref()
            .and_then(|t| of(&t.record.settings.metadata))
    })
}

/// A committed stream of chunks that writes its request log when it ends, fails,
/// or is dropped because the client went away (which also ends the upstream call).
pub struct LoggedStream {
    pending_first: Option<ChatChunk>,
    inner: ChunkStream,
    include_usage: bool,
    usage: Option<Usage>,
    /// The request and the text streamed so far, to count tokens if the upstream reports none.
    req: Arc<ChatRequest>,
    streamed: String,
    /// id, created and model of the stream's chunks, for a usage chunk of our own.
    last: Option<(String, i64, String)>,
    /// The upstream stream has ended.
    ended: bool,
    /// The session id, put on the first chunk.
    announce: Option<String>,
    /// The session this answer goes to, the answer so far, and the store.
    history: Option<(
        history::HistoryCall,
        history::StreamedAnswer,
        crate::store::Store,
    )>,
    /// Storing the completed turn: the stream ends when it is done.
    pending_write: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    deployment: Arc<Deployment>,
    log: Option<RequestLog>,
    started: Instant,
    sink: crate::logs::LogSink,
    /// Where the spend is counted at once: the directory and the caller's key.
    spend_to: (Arc<directory::Directory>, Option<Arc<KeyEntry>>),
    failed: Option<String>,
    /// Room under the caller's rate limits, released when the stream ends.
    permit: Permit,
    /// The capacity reserved on the deployment, released when the stream ends.
    slot: Permit,
    /// Where a completed answer is kept (the response cache), and the answer so far.
    keep: Option<(Arc<ResponseCache>, Plan, cache::Assembler)>,
    /// Post-call guardrails and `unmask` on the answer as it streams.
    guard: Option<StreamGuard>,
    /// A guardrail cut the stream.
    blocked: bool,
    /// id, created and model of the chunks, for text a guardrail releases at the end.
    template: Option<(String, i64, String)>,
    /// What Bedrock guardrails did with the stream's windows.
    windows: Option<guardrails::WindowTrail>,
    /// The answer so far, for logs that keep it.
    content: Option<cache::Assembler>,
}

impl LoggedStream {
    /// The stream of a call whose first chunk has arrived (or was read from the cache).
    #[allow(clippy::too_many_arguments)]
    fn new(
        state: &AppState,
        mut call: Call<'_>,
        first: ChatChunk,
        rest: ChunkStream,
        include_usage: bool,
        req: Arc<ChatRequest>,
        history: Option<history::HistoryCall>,
        deployment: Arc<Deployment>,
        slot: Permit,
        keep: Option<(Arc<ResponseCache>, Plan, cache::Assembler)>,
        guard: Option<StreamGuard>,
    ) -> Self {
        LoggedStream {
            pending_first: Some(first),
            inner: rest,
            include_usage,
            usage: None,
            req,
            streamed: String::new(),
            last: None,
            ended: false,
            announce: history.as_ref().map(|h| h.session.session_id.clone()),
            history: history.map(|h| (h, history::StreamedAnswer::default(), state.store.clone())),
            pending_write: None,
            deployment,
            spend_to: (Arc::clone(&state.directory), call.key.take()),
            permit: std::mem::replace(&mut call.permit, Permit::none()),
            log: Some(call.log),
            started: call.started,
            sink: state.logs.clone(),
            failed: None,
            slot,
            keep,
            guard,
            blocked: false,
            template: None,
            windows: None,
            content: None,
        }
        .keeping_content()
    }

    /// Assembles the answer as it streams when the call's log keeps it.
    fn keeping_content(mut self) -> Self {
        if self.log.as_ref().is_some_and(|l| l.content.is_some()) {
            self.content = Some(cache::Assembler::default());
        }
        self
    }

    /// Ends the stream because a guardrail refused its text: nothing of it
    /// is stored, and the log says which guardrail and why.
    fn cut(&mut self, iv: Intervention) -> ProviderError {
        self.blocked = true;
        self.history = None;
        self.failed = Some(iv.message.clone());
        self.finish("error");
        ProviderError::new(ErrorKind::Guardrail, iv.message)
    }

    fn finish(&mut self, outcome: &'static str) {
        let Some(mut log) = self.log.take() else {
            return;
        };
        let usage = self
            .usage
            .take()
            .unwrap_or_else(|| tokens::estimate(&self.req, tokens::count(&self.streamed)));
        log.prompt_tokens = usage.prompt_tokens;
        log.completion_tokens = usage.completion_tokens;
        // A cache hit used no upstream tokens and costs nothing.
        let used = if log.cache_hit {
            0
        } else {
            usage.prompt_tokens + usage.completion_tokens
        };
        self.permit.settle(used);
        self.slot.settle(used);
        self.permit = Permit::none();
        self.slot = Permit::none();
        if let Some((c, plan, answer)) = self.keep.take() {
            if outcome == "success" {
                if let Some(whole) = answer.finish(Some(&usage)) {
                    c.put(&plan, &self.deployment.config.id, &whole);
                }
            }
        }
        log.spend = if log.cache_hit {
            0.0
        } else {
            cost(&self.deployment, &usage)
        };
        log.outcome = outcome;
        log.status_code = if self.blocked { 400 } else { 200 };
        if let (Some(c), Some(answer)) = (log.content.as_mut(), self.content.take()) {
            c.response = answer
                .finish(Some(&usage))
                .and_then(|a| serde_json::to_value(a).ok());
        }
        if self.guard.is_some() || self.windows.is_some() {
            let mut all = match log.guardrails.take() {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            all.extend(self.guard.iter().flat_map(StreamGuard::trail));
            all.extend(
                self.windows
                    .iter()
                    .flat_map(guardrails::WindowTrail::entries),
            );
            log.guardrails = (!all.is_empty()).then_some(Value::Array(all));
        }
        log.error = self.failed.take();
        log.ended_at_ms = now_ms();
        log.latency_ms = self.started.elapsed().as_millis() as u64;
        self.spend_to.0.record_spend(
            self.spend_to.1.as_deref(),
            log.model_group.as_deref(),
            log.spend,
        );
        self.sink.send(log);
    }
}

impl Stream for LoggedStream {
    type Item = Result<ChatChunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(write) = this.pending_write.as_mut() {
                if write.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pending_write = None;
                this.finish("success");
                return Poll::Ready(None);
            }
            let next = match this.pending_first.take() {
                Some(first) => Poll::Ready(Some(Ok(first))),
                None if this.log.is_none() => return Poll::Ready(None),
                None if this.ended => Poll::Ready(None),
                None => this.inner.poll_next_unpin(cx),
            };
            match next {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    // Text a guardrail still held (an upstream that never said it finished).
                    if !this.ended {
                        if let Some(g) = this.guard.as_mut() {
                            match g.flush() {
                                Ok(rest) if !rest.is_empty() => {
                                    this.ended = true;
                                    let (id, created, model) =
                                        this.template.clone().unwrap_or_default();
                                    let mut chunk =
                                        ChatChunk::text(&id, created, &model, String::new());
                                    chunk.choices = rest
                                        .into_iter()
                                        .map(|(index, text)| {
                                            let mut c = chunk.choices[0].clone();
                                            c.index = index;
                                            c.delta.content = Some(text);
                                            c
                                        })
                                        .collect();
                                    if let Some((_, answer, _)) = this.history.as_mut() {
                                        answer.push(&chunk);
                                    }
                                    if let Some((_, _, answer)) = this.keep.as_mut() {
                                        answer.push(&chunk);
                                    }
                                    if let Some(answer) = this.content.as_mut() {
                                        answer.push(&chunk);
                                    }
                                    g.unmask(&mut chunk);
                                    return Poll::Ready(Some(Ok(chunk)));
                                }
                                Ok(_) => {}
                                Err(iv) => return Poll::Ready(Some(Err(this.cut(iv)))),
                            }
                        }
                    }
                    this.ended = true;
                    // The caller asked for usage and the upstream sent none: send the count.
                    if this.include_usage && this.usage.is_none() {
                        if let Some((id, created, model)) = this.last.take() {
                            let usage = tokens::estimate(&this.req, tokens::count(&this.streamed));
                            this.usage = Some(usage.clone());
                            return Poll::Ready(Some(Ok(ChatChunk::usage_only(
                                &id, created, &model, usage,
                            ))));
                        }
                    }
                    // A completed answer goes to its session before the stream ends.
                    if let Some((call, answer, store)) = this.history.take() {
                        this.pending_write =
                            Some(Box::pin(history::record(store, call, answer.message())));
                        continue;
                    }
                    this.finish("success");
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.deployment.health.record_err(&e);
                    this.failed = Some(e.to_string());
                    this.finish("error");
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(mut chunk))) => {
                    if let Some(g) = this.guard.as_mut() {
                        if this.template.is_none() {
                            this.template =
                                Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
                        }
                        if let Err(iv) = g.push(&mut chunk) {
                            return Poll::Ready(Some(Err(this.cut(iv))));
                        }
                    }
                    if let Some((_, _, answer)) = this.keep.as_mut() {
                        answer.push(&chunk);
                    }
                    if let Some(answer) = this.content.as_mut() {
                        answer.push(&chunk);
                    }
                    if let Some(u) = &chunk.usage {
                        this.usage = Some(u.clone());
                    } else if this.usage.is_none() {
                        if this.include_usage && this.last.is_none() {
                            this.last =
                                Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
                        }
                        for c in &chunk.choices {
                            let d = &c.delta;
                            let texts = d.content.iter().chain(d.refusal.iter()).chain(
                                d.tool_calls
                                    .iter()
                                    .flatten()
                                    .filter_map(|t| t.function.as_ref())
                                    .flat_map(|f| f.name.iter().chain(f.arguments.iter())),
                            );
                            for t in texts {
                                this.streamed.push_str(t);
                            }
                        }
                    }
                    // The usage-only chunk goes out only if the caller asked for it.
                    if chunk.choices.is_empty() && chunk.usage.is_some() && !this.include_usage {
                        continue;
                    }
                    if !this.include_usage {
                        chunk.usage = None;
                    }
                    if let Some((_, answer, _)) = this.history.as_mut() {
                        answer.push(&chunk);
                    }
                    if let Some(id) = this.announce.take() {
                        chunk.extra.insert("session_id".into(), Value::String(id));
                    }
                    if let Some(g) = &this.guard {
                        g.unmask(&mut chunk);
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
            }
        }
    }
}

impl Drop for LoggedStream {
    fn drop(&mut self) {
        if self.log.is_some() {
            self.failed = Some("client disconnected before the stream ended".into());
            self.finish("client_disconnected");
        }
    }
}

/// Embeddings.
pub async fn embeddings(
    state: &AppState,
    meta: CallMeta<'_>,
    mut req: EmbeddingRequest,
) -> Result<(EmbeddingResponse, RouteInfo), GatewayError> {
    let mut model = req.model.clone();
    let (mut call, mut gp) = Call::begin(
        state,
        &meta,
        "embeddings",
        &mut model,
        &mut req.extra,
        false,
    )?;
    if let Err(e) = call
        .limit(&model, &mut gp, || tokens::embedding_input(&req))
        .await
    {
        return Err(call.fail(e));
    }
    call.keep_prompt(|| serde_json::to_value(&req.input));
    let cached = cache_plan(state, CallKind::Embeddings, &model, &gp, || {
        cache::embeddings_material(&req, gp.server_model.as_deref())
    });
    if let Some((c, plan)) = &cached {
        if let Some((answer, dep)) = lookup::<EmbeddingResponse>(state, c, plan, &model).await {
            let info = call.served_from_cache(&dep, &plan.key);
            call.succeed(&dep, &Usage::new(answer.usage.prompt_tokens, 0));
            return Ok((answer, info));
        }
    }
    let req = Arc::new(req);
    let router = state.router.load_full();
    let result = router
        .route(&model, &gp.opts, |dep, _| {
            let mut r = (*req).clone();
            r.model = match gp.server_model.as_deref() {
                Some(m) if dep.config.pass_model => m.to_string(),
                _ => dep.config.upstream_model.clone(),
            };
            async move { dep.provider.embed(r).await }
        })
        .await;
    match result {
        Ok(mut routed) => {
            let mut info = call.routed(&routed);
            routed.slot.settle(routed.value.usage.prompt_tokens);
            if let Some((c, plan)) = &cached {
                c.put(plan, &routed.deployment.config.id, &routed.value);
                info.cache = Some(CacheInfo {
                    hit: false,
                    key: plan.key.clone(),
                });
            }
            call.succeed(
                &routed.deployment,
                &Usage::new(routed.value.usage.prompt_tokens, 0),
            );
            Ok((routed.value, info))
        }
        Err(e) => Err(call.fail(GatewayError::Route(e))),
    }
}
