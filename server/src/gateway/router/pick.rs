//! Choosing a deployment within a model group: skip those cooling down after
//! failures, those whose context window is too small (`enable_pre_call_checks`)
//! and those at capacity (`rpm`, `tpm`, `max_parallel_requests`); among the
//! rest, follow `routing_strategy`; then reserve the chosen one's capacity.
//! When every deployment is full the call waits its turn (by priority).
//!
//! Usage, requests in flight, latency, failures and cooldowns are counters
//! (`crate::counters`), so with Redis every process routes on the same numbers.

use super::{CallOptions, Deployment, Router};
use crate::config::{ErrorClass, Strategy};
use crate::counters::{Check, Level, Probe};
use crate::gateway::limits::{Permit, RateHeaders};
use crate::gateway::queue::Turn;
use crate::providers::{ErrorKind, ProviderError};
use rand::Rng;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Share of calls latency-based routing sends to a random deployment, to keep
/// measuring the others.
const EXPLORE: f64 = 0.1;

/// How long past the next scheduled check a failed one keeps a deployment out.
const CHECK_GRACE: Duration = Duration::from_secs(35);

fn name(d: &Deployment, what: &str) -> String {
    format!("d:{}:{what}", d.config.id)
}

/// The counters a call on one deployment reserves.
pub struct SlotPlan {
    pub checks: Vec<Check>,
    tokens: u64,
}

/// A deployment's room reserved before routing, for the router's first try.
pub struct Reserved {
    pub group: String,
    pub deployment: String,
    pub slot: std::sync::Mutex<Option<Permit>>,
}

impl std::fmt::Debug for Reserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reserved({}/{})", self.group, self.deployment)
    }
}

/// What one look at a group's deployments found.
enum Look {
    Chosen(Arc<Deployment>, Permit),
    /// Every candidate is at capacity: worth waiting for.
    Full(ProviderError),
    /// Every candidate is cooling down.
    Cooling(ProviderError),
}

impl Router {
    /// A deployment of `group` for the next try, with its capacity reserved.
    pub(super) async fn take(
        &self,
        group: &str,
        deployments: &[Arc<Deployment>],
        tried: &HashSet<String>,
        opts: &CallOptions,
    ) -> Result<(Arc<Deployment>, Permit), ProviderError> {
        // Room reserved together with the caller's limits (one round trip).
        if tried.is_empty() {
            if let Some(r) = opts.reserved.as_ref().filter(|r| r.group == group) {
                let taken = r.slot.lock().ok().and_then(|mut s| s.take());
                if let Some(mut p) = taken {
                    if let Some(d) = deployments.iter().find(|d| d.config.id == r.deployment) {
                        p.mark_used();
                        return Ok((Arc::clone(d), p));
                    }
                }
            }
        }
        let fresh: Vec<&Arc<Deployment>> = deployments
            .iter()
            .filter(|d| !tried.contains(&d.config.id))
            .collect();
        let mut pool: Vec<&Arc<Deployment>> = if fresh.is_empty() {
            deployments.iter().collect()
        } else {
            fresh
        };
        let tokens = opts.prompt_tokens.unwrap_or(0);
        if self.settings.pre_call_checks && tokens > 0 {
            let fits = |d: &&Arc<Deployment>| d.context_window().is_none_or(|w| tokens <= w);
            if !pool.iter().any(fits) {
                return Err(ProviderError::new(
                    ErrorKind::ContextWindowExceeded,
                    format!(
                        "the prompt (about {tokens} tokens) is larger than the context window of every deployment of {group}"
                    ),
                ));
            }
            pool.retain(fits);
        }
        if !self.needs_counts(&pool, deployments.len()) {
            let d = weighted(&pool);
            return Ok((d, Permit::none()));
        }
        let cooldowns = self.cooldowns_apply(deployments.len());
        match self.look(group, &pool, tokens, cooldowns).await {
            Look::Chosen(d, p) => Ok((d, p)),
            Look::Cooling(e) => Err(e),
            Look::Full(e) => {
                let wait = opts.timeout.unwrap_or_else(|| self.request_timeout());
                let pool = &pool;
                self.queue
                    .wait_turn(
                        format!("group:{group}"),
                        opts.priority,
                        tokio::time::Instant::now() + wait,
                        e,
                        || async move {
                            match self.look(group, pool, tokens, cooldowns).await {
                                Look::Chosen(d, p) => Turn::Got((d, p)),
                                Look::Full(e) => Turn::Full(e),
                                Look::Cooling(e) => Turn::Fail(e),
                            }
                        },
                        |mut e| {
                            e.message = format!(
                                "{} Waited {:.1}s for one to have room.",
                                e.message,
                                wait.as_secs_f64()
                            );
                            e
                        },
                    )
                    .await
            }
        }
    }

    /// For a group of one deployment with counters to reserve: that
    /// deployment and what to reserve on it, so that the caller can reserve it
    /// in the same step as its own limits. `None` when the router should
    /// choose as usual (several deployments, nothing to count, or a prompt
    /// too large for it, which the router reports).
    pub fn preset_plan(&self, group: &str, tokens: u64) -> Option<(Arc<Deployment>, SlotPlan)> {
        let [d] = self.groups.get(group)?.as_slice() else {
            return None;
        };
        if d.config.unusable.is_some() || !self.needs_counts(&[d], 1) {
            return None;
        }
        if self.settings.pre_call_checks && d.context_window().is_some_and(|w| tokens > w) {
            return None;
        }
        let plan = self.slot_plan(d, tokens);
        (!plan.checks.is_empty()).then(|| (Arc::clone(d), plan))
    }

    /// Whether picking needs counters at all (a single plain deployment with
    /// the default strategy does not, and costs nothing).
    fn needs_counts(&self, pool: &[&Arc<Deployment>], group_size: usize) -> bool {
        self.settings.strategy != Strategy::SimpleShuffle
            || self.cooldowns_apply(group_size)
            || pool.iter().any(|d| {
                d.config.rpm.is_some()
                    || d.config.tpm.is_some()
                    || d.config.max_parallel_requests.is_some()
            })
    }

    /// A lone deployment is never cooled down: there is nothing to send its calls to instead.
    fn cooldowns_apply(&self, group_size: usize) -> bool {
        !self.settings.disable_cooldowns && group_size > 1
    }

    async fn look(
        &self,
        group: &str,
        pool: &[&Arc<Deployment>],
        tokens: u64,
        cooldowns: bool,
    ) -> Look {
        let strategy = self.settings.strategy;
        let mut last_race = None;
        // Nothing to read when no deployment can be cooling down and the
        // choice does not depend on the counters: the reservation itself says
        // whether there is room (one round trip instead of two with Redis).
        // Only when it is refused are the counters read, to choose another
        // deployment or to say why every one is full.
        if !cooldowns && (pool.len() == 1 || strategy == Strategy::SimpleShuffle) {
            let d = weighted(pool);
            if let Ok(p) = self.reserve(&d, tokens).await {
                return Look::Chosen(d, p);
            }
        }
        // A reservation lost to a concurrent call is looked at again at once.
        for _ in 0..3 {
            let mut probes = Vec::new();
            for d in pool {
                probes.push(Probe::Flag(name(d, "cool")));
                probes.push(Probe::Window(name(d, "rpm")));
                probes.push(Probe::Window(name(d, "tpm")));
                probes.push(Probe::Open(name(d, "par")));
                probes.push(Probe::Window(name(d, "lat")));
                probes.push(Probe::Window(name(d, "latn")));
            }
            // Only what this call needs is read (the rest stay zero).
            let wanted = |i: usize| match i % 6 {
                0 => cooldowns,
                1 => pool[i / 6].config.rpm.is_some(),
                2 => pool[i / 6].config.tpm.is_some() || strategy == Strategy::UsageBased,
                3 => {
                    pool[i / 6].config.max_parallel_requests.is_some()
                        || strategy == Strategy::LeastBusy
                }
                _ => strategy == Strategy::LatencyBased,
            };
            let (idx, asked): (Vec<usize>, Vec<Probe>) = probes
                .into_iter()
                .enumerate()
                .filter(|(i, _)| wanted(*i))
                .unzip();
            let got = self.counters.observe(&asked).await;
            let mut v = vec![0u64; pool.len() * 6];
            for (i, x) in idx.into_iter().zip(got) {
                v[i] = x;
            }
            let stat = |d: usize, k: usize| v[d * 6 + k];
            let mut available = Vec::new();
            let (mut full, mut cooling_ms) = (Vec::new(), u64::MAX);
            for (i, d) in pool.iter().enumerate() {
                let c = &d.config;
                if stat(i, 0) > 0 {
                    cooling_ms = cooling_ms.min(stat(i, 0));
                    continue;
                }
                if let Some(why) = full_because(c, stat(i, 1), stat(i, 2), stat(i, 3), tokens) {
                    full.push(why);
                    continue;
                }
                available.push(i);
            }
            if available.is_empty() {
                if !full.is_empty() {
                    let mut e = ProviderError::new(
                        ErrorKind::RateLimited,
                        format!(
                            "every deployment of {group} is at capacity ({})",
                            full.join("; ")
                        ),
                    );
                    e.retry_after = Some(Duration::from_secs(1));
                    return Look::Full(e);
                }
                let mut e = ProviderError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "every deployment of {group} is cooling down after failures; the first is back in {:.1}s",
                        cooling_ms as f64 / 1000.0
                    ),
                );
                e.retry_after = Some(Duration::from_millis(cooling_ms.max(1)));
                return Look::Cooling(e);
            }
            let chosen = match strategy {
                Strategy::SimpleShuffle => {
                    let ds: Vec<&Arc<Deployment>> = available.iter().map(|&i| pool[i]).collect();
                    let choice = weighted(&ds);
                    pool.iter()
                        .position(|d| Arc::ptr_eq(d, &choice))
                        .unwrap_or(available[0])
                }
                Strategy::LeastBusy => lowest(&available, |i| stat(i, 3) as f64),
                Strategy::UsageBased => lowest(&available, |i| stat(i, 2) as f64),
                Strategy::CostBased => lowest(&available, |i| price_per_token(pool[i])),
                Strategy::LatencyBased => self.fastest(&available, |i| (stat(i, 4), stat(i, 5))),
            };
            let d = pool[chosen];
            match self.reserve(d, tokens).await {
                Ok(p) => return Look::Chosen(Arc::clone(d), p),
                Err(e) => last_race = Some(e),
            }
        }
        Look::Full(last_race.unwrap_or_else(|| {
            ProviderError::new(
                ErrorKind::RateLimited,
                format!("every deployment of {group} is at capacity"),
            )
        }))
    }

    /// Lowest average latency this minute; a deployment without a sample this
    /// minute is tried first, and now and then a random one, so the numbers stay fresh.
    fn fastest(&self, available: &[usize], sample: impl Fn(usize) -> (u64, u64)) -> usize {
        let mut rng = rand::rng();
        if let Some(&i) = available.iter().find(|&&i| sample(i).1 == 0) {
            return i;
        }
        if available.len() > 1 && rng.random_bool(EXPLORE) {
            return available[rng.random_range(0..available.len())];
        }
        let avg = |i: usize| {
            let (sum, n) = sample(i);
            sum as f64 / n.max(1) as f64
        };
        let best = available
            .iter()
            .map(|&i| avg(i))
            .fold(f64::INFINITY, f64::min);
        let near: Vec<usize> = available
            .iter()
            .copied()
            .filter(|&i| avg(i) <= best * (1.0 + self.settings.lowest_latency_buffer))
            .collect();
        near[rng.random_range(0..near.len())]
    }

    /// Reserves one request (and the prompt's tokens) on a deployment; refused
    /// if another call took its last room meanwhile.
    async fn reserve(&self, d: &Deployment, tokens: u64) -> Result<Permit, ProviderError> {
        let plan = self.slot_plan(d, tokens);
        if plan.checks.is_empty() {
            return Ok(Permit::none());
        }
        match self.counters.reserve(&plan.checks).await {
            Ok(levels) => Ok(self.slot_permit(d, plan, &levels, false)),
            Err(_) => Err(ProviderError::new(
                ErrorKind::RateLimited,
                format!("deployment {} is at capacity", d.config.id),
            )),
        }
    }

    /// The counters a call on `d` reserves: its rpm, its tpm (also counted for
    /// usage-based routing), its requests in flight (also for least-busy).
    fn slot_plan(&self, d: &Deployment, tokens: u64) -> SlotPlan {
        let c = &d.config;
        let strategy = self.settings.strategy;
        let mut checks = Vec::new();
        if c.rpm.is_some() {
            checks.push(Check {
                name: name(d, "rpm"),
                limit: c.rpm,
                amount: 1,
                windowed: true,
            });
        }
        let count_tokens = c.tpm.is_some() || strategy == Strategy::UsageBased;
        if count_tokens {
            checks.push(Check {
                name: name(d, "tpm"),
                limit: c.tpm,
                amount: tokens.max(1),
                windowed: true,
            });
        }
        if c.max_parallel_requests.is_some() || strategy == Strategy::LeastBusy {
            checks.push(Check {
                name: name(d, "par"),
                limit: c.max_parallel_requests,
                amount: 1,
                windowed: false,
            });
        }
        SlotPlan {
            checks,
            tokens: tokens.max(1),
        }
    }

    /// The permit for a reservation of `plan` that got `levels`. A `preset`
    /// one (reserved with the caller's limits, before it is known whether the
    /// call reaches the deployment) gives its request back if it is never used.
    pub fn slot_permit(
        &self,
        d: &Deployment,
        plan: SlotPlan,
        levels: &[Level],
        preset: bool,
    ) -> Permit {
        let mut headers = RateHeaders::default();
        let mut in_flight = Vec::new();
        let mut token_counters = Vec::new();
        let mut requests = Vec::new();
        for (chk, l) in plan.checks.iter().zip(levels) {
            if !chk.windowed {
                in_flight.push(chk.name.clone());
                continue;
            }
            let v = chk
                .limit
                .map(|limit| (limit, limit.saturating_sub(l.used), l.reset_in));
            if chk.name.ends_with(":rpm") {
                headers.requests = v;
                requests.push((chk.name.clone(), l.window));
            } else {
                if v.is_some() {
                    headers.tokens = v;
                }
                token_counters.push((chk.name.clone(), l.window));
            }
        }
        let _ = d;
        let mut p = Permit::new(
            &self.counters,
            &self.queue,
            headers,
            in_flight,
            token_counters,
            plan.tokens,
        );
        if preset {
            p.refund_unless_used(requests);
        }
        p
    }

    /// After a successful call: its latency, for latency-based routing.
    pub(super) fn record_latency(&self, d: &Deployment, took: Duration) {
        if self.settings.strategy != Strategy::LatencyBased {
            return;
        }
        let counters = Arc::clone(&self.counters);
        let checks = vec![
            Check {
                name: name(d, "lat"),
                limit: None,
                amount: took.as_millis().max(1) as u64,
                windowed: true,
            },
            Check {
                name: name(d, "latn"),
                limit: None,
                amount: 1,
                windowed: true,
            },
        ];
        tokio::spawn(async move {
            let _ = counters.reserve(&checks).await;
        });
    }

    /// After a scheduled health check: a failing deployment of a group of
    /// several is taken out until the next check; one that passes again is
    /// put back at once.
    pub async fn health_checked(
        &self,
        d: &Deployment,
        group_size: usize,
        passed: bool,
        was_failing: bool,
        every: Duration,
    ) {
        if !self.cooldowns_apply(group_size) {
            return;
        }
        if !passed {
            // Until a little after the next check has answered.
            self.counters
                .flag(&name(d, "cool"), every + CHECK_GRACE)
                .await;
        } else if was_failing {
            self.counters
                .flag(&name(d, "cool"), Duration::from_millis(1))
                .await;
        }
    }

    /// After a failed call: counts it, and cools the deployment down once it
    /// failed more than its allowance this minute (at once on a 429 that says
    /// when to come back).
    pub(super) async fn record_failure(
        &self,
        d: &Deployment,
        e: &ProviderError,
        group_size: usize,
    ) {
        if !self.cooldowns_apply(group_size) || class(e.kind) == ErrorClass::BadRequest {
            return;
        }
        let allowed = self
            .settings
            .allowed_fails_policy
            .get(&class(e.kind))
            .copied()
            .unwrap_or(self.settings.allowed_fails);
        let counted = self
            .counters
            .reserve(&[Check {
                name: name(d, "fail"),
                limit: None,
                amount: 1,
                windowed: true,
            }])
            .await
            .ok()
            .and_then(|l| l.first().map(|l| l.used))
            .unwrap_or(0);
        let told_when = e.kind == ErrorKind::RateLimited && e.retry_after.is_some();
        if counted > u64::from(allowed) || told_when {
            let cool = self
                .settings
                .cooldown_time
                .max(e.retry_after.filter(|_| told_when).unwrap_or_default());
            if cool.is_zero() {
                return;
            }
            tracing::warn!(deployment = %d.config, failures = counted, cooldown_s = cool.as_secs_f64(), "deployment cooling down");
            crate::alerts::raise(
                "cooldown_deployment",
                format!("cool:{}", d.config.id),
                cool,
                format!(
                    "🧊 Deployment {} of {} ({}/{}) is cooling down for {:.0}s after {counted} failures this minute: {e}",
                    d.config.id,
                    d.config.model_name,
                    d.config.provider,
                    d.config.upstream_model,
                    cool.as_secs_f64()
                ),
            );
            self.counters.flag(&name(d, "cool"), cool).await;
        }
    }

    /// Retries allowed for an error of this kind (`retry_policy`), or `default`.
    pub(super) fn retries_for(&self, kind: ErrorKind, default: u32) -> Option<u32> {
        self.settings.retry_policy.get(&class(kind)).copied().or(
            // Without a policy, only errors another try may fix are retried.
            (kind.is_retryable() || kind == ErrorKind::Config).then_some(default),
        )
    }
}

/// LiteLLM's error classes, for `retry_policy` and `allowed_fails_policy`.
pub fn class(kind: ErrorKind) -> ErrorClass {
    match kind {
        ErrorKind::BadRequest
        | ErrorKind::ContextWindowExceeded
        | ErrorKind::UnsupportedParams
        | ErrorKind::NotFound
        | ErrorKind::Guardrail => ErrorClass::BadRequest,
        ErrorKind::Authentication | ErrorKind::PermissionDenied => ErrorClass::Authentication,
        ErrorKind::Timeout => ErrorClass::Timeout,
        ErrorKind::RateLimited => ErrorClass::RateLimit,
        ErrorKind::Connection
        | ErrorKind::ServerError
        | ErrorKind::Unavailable
        | ErrorKind::Config
        | ErrorKind::BadResponse => ErrorClass::InternalServer,
    }
}

/// Why a deployment has no room for this call, if it has none.
fn full_because(
    c: &crate::config::DeploymentConfig,
    rpm_used: u64,
    tpm_used: u64,
    in_flight: u64,
    tokens: u64,
) -> Option<String> {
    if let Some(rpm) = c.rpm.filter(|r| rpm_used >= *r) {
        return Some(format!("{}: rpm {rpm} reached", c.id));
    }
    if let Some(tpm) = c.tpm.filter(|t| tpm_used + tokens.max(1) > *t) {
        return Some(format!("{}: tpm {tpm}, {tpm_used} used this minute", c.id));
    }
    if let Some(max) = c.max_parallel_requests.filter(|m| in_flight >= *m) {
        return Some(format!("{}: max_parallel_requests {max} in flight", c.id));
    }
    None
}

/// Input plus output price per token (unknown prices sort last).
fn price_per_token(d: &Deployment) -> f64 {
    match (d.input_cost_per_token(), d.output_cost_per_token()) {
        (None, None) => f64::INFINITY,
        (i, o) => i.unwrap_or(0.0) + o.unwrap_or(0.0),
    }
}

/// The lowest by `key`, ties broken at random.
fn lowest(available: &[usize], key: impl Fn(usize) -> f64) -> usize {
    let best = available
        .iter()
        .map(|&i| key(i))
        .fold(f64::INFINITY, f64::min);
    let ties: Vec<usize> = available
        .iter()
        .copied()
        .filter(|&i| key(i) <= best)
        .collect();
    if ties.is_empty() {
        return available[0];
    }
    ties[rand::rng().random_range(0..ties.len())]
}

/// Weighted random choice (equal chances when no weight is positive).
fn weighted(pool: &[&Arc<Deployment>]) -> Arc<Deployment> {
    if pool.len() == 1 {
        return Arc::clone(pool[0]);
    }
    let total: f64 = pool.iter().map(|d| d.config.weight).sum();
    let mut rng = rand::rng();
    if total <= 0.0 {
        return Arc::clone(pool[rng.random_range(0..pool.len())]);
    }
    let mut x = rng.random_range(0.0..total);
    for d in pool {
        if x < d.config.weight {
            return Arc::clone(d);
        }
        x -= d.config.weight;
    }
    Arc::clone(pool[pool.len() - 1])
}
