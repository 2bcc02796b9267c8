//! The rate limits a call must fit before it is routed: requests and tokens
//! per minute and requests in flight, of its key, user and team (also per
//! model, and per team member), and the proxy's `global_max_parallel_requests`.
//!
//! Every limit is reserved at once (one Redis script, or one lock). Tokens are
//! reserved from the prompt's count and settled with the real usage when the
//! call ends; requests in flight are released when the answer (or its stream)
//! ends. A call over a per-minute limit is refused with the limit's name and
//! the time it resets; a call over a limit of requests in flight waits its
//! turn by priority (see `queue`), up to its timeout.

use super::queue::{Queue, Turn};
use crate::counters::{Check, Counters, Level, Refused};
use crate::directory::KeyEntry;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Requests,
    Tokens,
    InFlight,
}

/// One limit that applies to a call.
struct Rule {
    kind: Kind,
    name: String,
    limit: u64,
    /// Whose limit, in words: `key sk-...abcd`, `team t1 on model gpt-4o`.
    whose: String,
    field: &'static str,
}

/// Limits of the whole proxy.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyLimits {
    pub global_max_parallel_requests: Option<u64>,
}

/// A call over a limit.
#[derive(Debug, Clone)]
pub struct RateLimited {
    pub message: String,
    /// The counter that was full.
    resource: String,
    pub retry_after: Duration,
    pub headers: RateHeaders,
    /// A limit of requests in flight (worth waiting for) rather than a per-minute one.
    pub in_flight: bool,
}

impl RateLimited {
    /// `retry-after` and the `x-ratelimit-*` headers of a refusal.
    pub fn write_headers(&self, h: &mut HeaderMap) {
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(self.retry_after.as_secs().max(1)),
        );
        self.headers.write(h);
    }
}

/// `x-ratelimit-*` values: the tightest requests and tokens limits of the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// (limit, remaining, seconds until reset)
    pub requests: Option<(u64, u64, u64)>,
    pub tokens: Option<(u64, u64, u64)>,
}

impl RateHeaders {
    /// The tighter of two (a deployment's and a key's).
    pub fn merge(self, other: RateHeaders) -> RateHeaders {
        let tighter = |a: Option<(u64, u64, u64)>, b: Option<(u64, u64, u64)>| match (a, b) {
            (Some(x), Some(y)) => Some(if y.1 < x.1 { y } else { x }),
            (x, y) => x.or(y),
        };
        RateHeaders {
            requests: tighter(self.requests, other.requests),
            tokens: tighter(self.tokens, other.tokens),
        }
    }

    pub fn write(&self, h: &mut HeaderMap) {
        let mut put = |name: &'static str, v: u64| {
            h.insert(HeaderName::from_static(name), HeaderValue::from(v));
        };
        if let Some((limit, remaining, _)) = self.requests {
            put("x-ratelimit-limit-requests", limit);
            put("x-ratelimit-remaining-requests", remaining);
        }
        if let Some((limit, remaining, _)) = self.tokens {
            put("x-ratelimit-limit-tokens", limit);
            put("x-ratelimit-remaining-tokens", remaining);
        }
        let mut reset = |name: &'static str, secs: u64| {
            if let Ok(v) = HeaderValue::from_str(&format!("{secs}s")) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        if let Some((_, _, r)) = self.requests {
            reset("x-ratelimit-reset-requests", r);
        }
        if let Some((_, _, r)) = self.tokens {
            reset("x-ratelimit-reset-tokens", r);
        }
    }
}

/// What a call holds while it runs: its slots in flight and its reserved tokens.
/// Dropping it releases the slots; `settle` corrects the tokens.
pub struct Permit {
    counters: Option<Arc<Counters>>,
    waiting: Option<Arc<Queue>>,
    in_flight: Vec<String>,
    /// Token counters with the window they were reserved in.
    tokens: Vec<(String, u64)>,
    reserved: u64,
    /// Tokens the call used, once settled (0 until then).
    used: u64,
    /// Request counters (with their window) given back if the permit is
    /// dropped unused: a deployment's room reserved before routing.
    refund: Vec<(String, u64)>,
    settled: bool,
    pub headers: RateHeaders,
}

impl Permit {
    /// Holds what was reserved: slots in flight to release, token counters
    /// (with their window) to settle, `tokens` reserved in each.
    pub fn new(
        counters: &Arc<Counters>,
        queue: &Arc<Queue>,
        headers: RateHeaders,
        in_flight: Vec<String>,
        token_counters: Vec<(String, u64)>,
        tokens: u64,
    ) -> Permit {
        Permit {
            counters: Some(Arc::clone(counters)),
            waiting: Some(Arc::clone(queue)),
            in_flight,
            settled: token_counters.is_empty(),
            tokens: token_counters,
            reserved: tokens,
            used: 0,
            refund: Vec::new(),
            headers,
        }
    }

    /// No limits apply.
    pub fn none() -> Permit {
        Permit {
            counters: None,
            waiting: None,
            in_flight: Vec::new(),
            tokens: Vec::new(),
            reserved: 0,
            used: 0,
            refund: Vec::new(),
            settled: true,
            headers: RateHeaders::default(),
        }
    }

    /// Gives `requests` back when dropped before [`Permit::mark_used`].
    pub fn refund_unless_used(&mut self, requests: Vec<(String, u64)>) {
        self.refund = requests;
    }

    /// The call went ahead: nothing is given back but what it did not use.
    pub fn mark_used(&mut self) {
        self.refund.clear();
    }

    /// The call used `tokens` (prompt and completion) in the end. The
    /// correction is written when the permit is dropped, together with the
    /// release of its slots (one write instead of two with Redis).
    pub fn settle(&mut self, tokens: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        self.used = tokens;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (Some(c), Ok(rt)) = (self.counters.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        // A call that ended without usage (it failed) used no tokens.
        let delta = self.used as i64 - self.reserved as i64;
        let mut entries: Vec<(String, u64, i64)> = if delta == 0 {
            Vec::new()
        } else {
            self.tokens.drain(..).map(|(n, w)| (n, w, delta)).collect()
        };
        entries.extend(self.refund.drain(..).map(|(n, w)| (n, w, -1)));
        let slots = !self.in_flight.is_empty();
        entries.extend(self.in_flight.drain(..).map(|n| (n, 0, -1)));
        if entries.is_empty() {
            return;
        }
        // Calls waiting for a slot look again once it is free.
        let waiting = self.waiting.take().filter(|_| slots);
        rt.spawn(async move {
            c.add(&entries).await;
            if let Some(w) = waiting {
                w.wake();
            }
        });
    }
}

/// Rate limits and the calls waiting for a slot in flight, in this process.
pub struct Limiter {
    pub counters: Arc<Counters>,
    pub proxy: ProxyLimits,
    /// Calls waiting for capacity: for a slot under these limits, or for a deployment.
    pub queue: Arc<Queue>,
}

impl Limiter {
    pub fn new(counters: Arc<Counters>, proxy: ProxyLimits) -> Limiter {
        Limiter {
            counters,
            proxy,
            queue: Arc::default(),
        }
    }

    /// Reserves a call's room under every limit that applies. Over a per-minute
    /// limit it is refused at once; over a limit of requests in flight it
    /// waits, behind calls of better priority (lower number) and earlier
    /// arrival, for at most `wait`.
    pub async fn admit(
        &self,
        key: Option<&KeyEntry>,
        model: &str,
        prompt_tokens: impl FnOnce() -> u64,
        priority: i64,
        wait: Duration,
    ) -> Result<Permit, RateLimited> {
        let rules = rules(self.proxy, key, model);
        if rules.is_empty() {
            return Ok(Permit::none());
        }
        let tokens = if rules.iter().any(|r| r.kind == Kind::Tokens) {
            prompt_tokens().max(1)
        } else {
            0
        };
        let refused = match self.reserve(&rules, tokens).await {
            Ok(p) => return Ok(p),
            Err(e) if !e.in_flight => return Err(e),
            Err(e) => e,
        };
        let rules = &rules;
        self.queue
            .wait_turn(
                refused.resource.clone(),
                priority,
                tokio::time::Instant::now() + wait,
                refused,
                || async move {
                    match self.reserve(rules, tokens).await {
                        Ok(p) => Turn::Got(p),
                        Err(e) if e.in_flight => Turn::Full(e),
                        Err(e) => Turn::Fail(e),
                    }
                },
                |mut e| {
                    e.message = format!(
                        "{} Waited {:.1}s for a slot.",
                        e.message,
                        wait.as_secs_f64()
                    );
                    e
                },
            )
            .await
    }

    /// Reserves the caller's limits and `extra` counters (a deployment's) in
    /// one step, all or nothing. `None` when no limit applies (the caller
    /// reserves `extra` alone) or when anything is full: nothing was taken,
    /// and the caller goes the usual way, waiting or refused as that says.
    pub async fn admit_with(
        &self,
        key: Option<&KeyEntry>,
        model: &str,
        prompt_tokens: impl FnOnce() -> u64,
        extra: &[Check],
    ) -> Option<(Permit, Vec<crate::counters::Level>)> {
        let rules = rules(self.proxy, key, model);
        if rules.is_empty() {
            return None;
        }
        let tokens = if rules.iter().any(|r| r.kind == Kind::Tokens) {
            prompt_tokens().max(1)
        } else {
            0
        };
        let mut checks = checks(&rules, tokens);
        checks.extend(extra.iter().cloned());
        let mut levels = self.counters.reserve(&checks).await.ok()?;
        let rest = levels.split_off(rules.len());
        Some((self.permit(&rules, &levels, tokens), rest))
    }

    fn permit(&self, rules: &[Rule], levels: &[crate::counters::Level], tokens: u64) -> Permit {
        Permit::new(
            &self.counters,
            &self.queue,
            headers(rules, |i| levels.get(i).copied()),
            rules
                .iter()
                .filter(|r| r.kind == Kind::InFlight)
                .map(|r| r.name.clone())
                .collect(),
            rules
                .iter()
                .zip(levels)
                .filter(|(r, _)| r.kind == Kind::Tokens)
                .map(|(r, l)| (r.name.clone(), l.window))
                .collect(),
            tokens,
        )
    }

    async fn reserve(&self, rules: &[Rule], tokens: u64) -> Result<Permit, RateLimited> {
        let checks = checks(rules, tokens);
        match self.counters.reserve(&checks).await {
            Ok(levels) => Ok(self.permit(rules, &levels, tokens)),
            Err(refused) => Err(refusal(rules, &refused, tokens)),
        }
    }
}

fn checks(rules: &[Rule], tokens: u64) -> Vec<Check> {
    rules
        .iter()
        .map(|r| Check {
            name: r.name.clone(),
            limit: Some(r.limit),
            amount: if r.kind == Kind::Tokens { tokens } else { 1 },
            windowed: r.kind != Kind::InFlight,
        })
        .collect()
}

fn refusal(rules: &[Rule], refused: &Refused, tokens: u64) -> RateLimited {
    let r = &rules[refused.index];
    let (message, retry_after) = match r.kind {
        Kind::Requests => (
            format!(
                "Rate limit exceeded for {}: {} is {} requests per minute and {} were made this minute. It resets in {}s.",
                r.whose, r.field, r.limit, refused.used, refused.reset_in
            ),
            refused.reset_in,
        ),
        Kind::Tokens => (
            format!(
                "Rate limit exceeded for {}: {} is {} tokens per minute; {} were used this minute and this request needs about {tokens}. It resets in {}s.",
                r.whose, r.field, r.limit, refused.used, refused.reset_in
            ),
            refused.reset_in,
        ),
        Kind::InFlight => (
            format!(
                "Too many requests in flight for {}: {} is {} and {} are running.",
                r.whose, r.field, r.limit, refused.used
            ),
            1,
        ),
    };
    let mut headers = headers(rules, |_| None);
    // The full limit shows no room left.
    let full = Some((r.limit, 0, refused.reset_in));
    match r.kind {
        Kind::Requests => headers.requests = full,
        Kind::Tokens => headers.tokens = full,
        Kind::InFlight => {}
    }
    RateLimited {
        message,
        resource: r.name.clone(),
        retry_after: Duration::from_secs(retry_after.max(1)),
        headers,
        in_flight: r.kind == Kind::InFlight,
    }
}

/// The tightest per-minute limits, with their levels when known.
fn headers(rules: &[Rule], level: impl Fn(usize) -> Option<Level>) -> RateHeaders {
    let mut out = RateHeaders::default();
    for (i, r) in rules.iter().enumerate() {
        let (used, reset) = level(i).map(|l| (l.used, l.reset_in)).unwrap_or((0, 60));
        let v = (r.limit, r.limit.saturating_sub(used), reset);
        let slot = match r.kind {
            Kind::Requests => &mut out.requests,
            Kind::Tokens => &mut out.tokens,
            Kind::InFlight => continue,
        };
        if slot.is_none_or(|s| v.1 < s.1) {
            *slot = Some(v);
        }
    }
    out
}

/// A per-model limit (`model_rpm_limit: {"gpt-4o": 10}`).
fn per_model(m: &Map<String, Value>, model: &str) -> Option<u64> {
    m.get(model).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}

fn other_u64(m: &Map<String, Value>, field: &str) -> Option<u64> {
    m.get(field).and_then(Value::as_u64)
}

fn rules(proxy: ProxyLimits, key: Option<&KeyEntry>, model: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut add =
        |kind: Kind, name: String, limit: Option<u64>, whose: &dyn Fn() -> String, field| {
            if let Some(limit) = limit {
                out.push(Rule {
                    kind,
                    name,
                    limit,
                    whose: whose(),
                    field,
                });
            }
        };
    if let Some(k) = key {
        let s = &k.record.settings;
        let t = &k.record.token;
        let whose = || format!("key {}", k.record.key_name);
        add(
            Kind::Requests,
            format!("rpm:k:{t}"),
            s.rpm_limit,
            &whose,
            "rpm_limit",
        );
        add(
            Kind::Tokens,
            format!("tpm:k:{t}"),
            s.tpm_limit,
            &whose,
            "tpm_limit",
        );
        add(
            Kind::InFlight,
            format!("par:k:{t}"),
            s.max_parallel_requests,
            &whose,
            "max_parallel_requests",
        );
        let on_model = || format!("key {} on model {model}", k.record.key_name);
        add(
            Kind::Requests,
            format!("rpm:km:{t}:{model}"),
            per_model(&s.model_rpm_limit, model),
            &on_model,
            "model_rpm_limit",
        );
        add(
            Kind::Tokens,
            format!("tpm:km:{t}:{model}"),
            per_model(&s.model_tpm_limit, model),
            &on_model,
            "model_tpm_limit",
        );
        if let Some(u) = &k.user {
            let s = &u.record.settings;
            let id = &u.record.user_id;
            let whose = || format!("user {id}");
            add(
                Kind::Requests,
                format!("rpm:u:{id}"),
                s.rpm_limit,
                &whose,
                "rpm_limit",
            );
            add(
                Kind::Tokens,
                format!("tpm:u:{id}"),
                s.tpm_limit,
                &whose,
                "tpm_limit",
            );
            add(
                Kind::InFlight,
                format!("par:u:{id}"),
                s.max_parallel_requests,
                &whose,
                "max_parallel_requests",
            );
            let on_model = || format!("user {id} on model {model}");
            add(
                Kind::Requests,
                format!("rpm:um:{id}:{model}"),
                per_model(&s.model_rpm_limit, model),
                &on_model,
                "model_rpm_limit",
            );
            add(
                Kind::Tokens,
                format!("tpm:um:{id}:{model}"),
                per_model(&s.model_tpm_limit, model),
                &on_model,
                "model_tpm_limit",
            );
        }
        if let Some(team) = &k.team {
            let s = &team.record.settings;
            let id = &team.record.team_id;
            let whose = || format!("team {id}");
            add(
                Kind::Requests,
                format!("rpm:t:{id}"),
                s.rpm_limit,
                &whose,
                "rpm_limit",
            );
            add(
                Kind::Tokens,
                format!("tpm:t:{id}"),
                s.tpm_limit,
                &whose,
                "tpm_limit",
            );
            add(
                Kind::InFlight,
                format!("par:t:{id}"),
                s.max_parallel_requests,
                &whose,
                "max_parallel_requests",
            );
            if let Some(user) = k.record.user_id.as_deref() {
                let member = || format!("member {user} of team {id}");
                add(
                    Kind::Requests,
                    format!("rpm:tm:{id}:{user}"),
                    other_u64(&s.other, "team_member_rpm_limit"),
                    &member,
                    "team_member_rpm_limit",
                );
                add(
                    Kind::Tokens,
                    format!("tpm:tm:{id}:{user}"),
                    other_u64(&s.other, "team_member_tpm_limit"),
                    &member,
                    "team_member_tpm_limit",
                );
            }
        }
    }
    add(
        Kind::InFlight,
        "par:global".into(),
        proxy.global_max_parallel_requests,
        &|| "the proxy".to_string(),
        "global_max_parallel_requests",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::records::{KeyRecord, Settings};

    fn key(settings: Settings) -> KeyEntry {
        KeyEntry {
            record: KeyRecord {
                token: "tok".into(),
                key_name: "sk-...abcd".into(),
                key_alias: None,
                user_id: None,
                team_id: None,
                blocked: false,
                expires_at: None,
                spend: 0.0,
                budget_reset_at: None,
                settings,
                created_by: None,
                created_at: 0,
                updated_at: 0,
            },
            spend: Default::default(),
            user: None,
            team: None,
        }
    }

    #[tokio::test]
    async fn requests_per_minute_are_exact_and_named() {
        let lim = Limiter::new(Arc::new(Counters::local()), ProxyLimits::default());
        let k = key(Settings {
            rpm_limit: Some(2),
            ..Default::default()
        });
        let mut ok = 0;
        let mut last = None;
        for _ in 0..5 {
            match lim.admit(Some(&k), "m", || 1, 0, Duration::ZERO).await {
                Ok(p) => {
                    ok += 1;
                    assert_eq!(p.headers.requests.map(|r| (r.0, r.1)), Some((2, 2 - ok)));
                }
                Err(e) => last = Some(e),
            }
        }
        assert_eq!(ok, 2);
        let Some(e) = last else {
            panic!("the third call was not refused");
        };
        assert!(e.message.contains("rpm_limit is 2"), "{}", e.message);
        assert!(!e.in_flight);
        assert_eq!(e.headers.requests.map(|r| r.1), Some(0));
    }

    #[tokio::test]
    async fn in_flight_slots_come_back_when_the_permit_goes() {
        let lim = Limiter::new(Arc::new(Counters::local()), ProxyLimits::default());
        let k = key(Settings {
            max_parallel_requests: Some(1),
            ..Default::default()
        });
        let first = lim.admit(Some(&k), "m", || 1, 0, Duration::ZERO).await;
        assert!(first.is_ok());
        let second = lim.admit(Some(&k), "m", || 1, 0, Duration::ZERO).await;
        assert!(second.as_ref().is_err_and(|e| e.in_flight));
        drop(first);
        tokio::task::yield_now().await;
        let third = lim.admit(Some(&k), "m", || 1, 0, Duration::ZERO).await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn tokens_are_reserved_then_settled() {
        let lim = Limiter::new(Arc::new(Counters::local()), ProxyLimits::default());
        let mut model = Map::new();
        model.insert("m".into(), Value::from(100));
        let k = key(Settings {
            model_tpm_limit: model,
            ..Default::default()
        });
        let mut p = lim
            .admit(Some(&k), "m", || 40, 0, Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(p.headers.tokens.map(|t| t.1), Some(60));
        p.settle(90);
        drop(p);
        tokio::task::yield_now().await;
        let e = lim.admit(Some(&k), "m", || 20, 0, Duration::ZERO).await;
        assert!(e.is_err_and(|e| e.message.contains("model_tpm_limit")));
        // Other models are not limited.
        let other = lim.admit(Some(&k), "n", || 500, 0, Duration::ZERO).await;
        assert!(other.is_ok());
    }
}
