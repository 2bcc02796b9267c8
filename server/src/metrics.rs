//! `GET /metrics`: Prometheus counters and histograms. Per-request figures
//! are taken from the request logs by the log writer, off the request path;
//! gauges (queue depth, destination backlogs) are read when scraped.

use crate::logs::RequestLog;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    tokens: IntCounterVec,
    spend: prometheus::CounterVec,
    latency: HistogramVec,
    ttft: HistogramVec,
    cache_hits: IntCounterVec,
    rate_limited: IntCounterVec,
    guardrail_actions: IntCounterVec,
    guardrail_latency: HistogramVec,
    store_errors: IntCounter,
    redis_errors: IntCounter,
    directory_updates: HistogramVec,
    /// Read when scraped.
    queue_depth: IntGauge,
    redis_up: IntGauge,
    request_log_dropped: IntGauge,
    callback_queued: IntGaugeVec,
    callback_delivered: IntGaugeVec,
    callback_failed: IntGaugeVec,
    callback_dropped: IntGaugeVec,
    alerts_sent: IntGauge,
    alerts_failed: IntGauge,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    macro_rules! reg {
        ($m:expr) => {{
            let m = $m;
            registry.register(Box::new(m.clone()))?;
            m
        }};
    }
    let by = &["model_group", "deployment"];
    Ok(Metrics {
        requests: reg!(IntCounterVec::new(
            Opts::new(
                "tollgate_requests_total",
                "Model calls, by where they went and how they ended"
            ),
            &["model_group", "deployment", "surface", "outcome", "status"],
        )?),
        errors: reg!(IntCounterVec::new(
            Opts::new("tollgate_errors_total", "Failed model calls, by kind"),
            &["model_group", "kind"],
        )?),
        tokens: reg!(IntCounterVec::new(
            Opts::new(
                "tollgate_tokens_total",
                "Tokens used, prompt and completion"
            ),
            &["model_group", "deployment", "type"],
        )?),
        spend: reg!(prometheus::CounterVec::new(
            Opts::new("tollgate_spend_usd_total", "Spend in USD"),
            by,
        )?),
        latency: reg!(HistogramVec::new(
            HistogramOpts::new("tollgate_request_latency_seconds", "Whole-call latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            by,
        )?),
        ttft: reg!(HistogramVec::new(
            HistogramOpts::new(
                "tollgate_time_to_first_token_seconds",
                "Time to the first streamed token"
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            by,
        )?),
        cache_hits: reg!(IntCounterVec::new(
            Opts::new(
                "tollgate_cache_hits_total",
                "Calls answered from the response cache"
            ),
            &["model_group"],
        )?),
        rate_limited: reg!(IntCounterVec::new(
            Opts::new(
                "tollgate_rate_limited_total",
                "Calls refused by Tollgate's own rate limits (429 before any upstream call)"
            ),
            &["model"],
        )?),
        guardrail_actions: reg!(IntCounterVec::new(
            Opts::new(
                "tollgate_guardrail_actions_total",
                "Guardrail checks, by what they did"
            ),
            &["guardrail", "mode", "outcome"],
        )?),
        guardrail_latency: reg!(HistogramVec::new(
            HistogramOpts::new(
                "tollgate_guardrail_latency_seconds",
                "Time a guardrail check took"
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["guardrail"],
        )?),
        store_errors: reg!(IntCounter::new(
            "tollgate_store_errors_total",
            "Request log batches the store could not take"
        )?),
        redis_errors: reg!(IntCounter::new(
            "tollgate_redis_errors_total",
            "Redis commands that failed"
        )?),
        queue_depth: reg!(IntGauge::new(
            "tollgate_queue_depth",
            "Calls waiting for capacity (priority queue)"
        )?),
        redis_up: reg!(IntGauge::new(
            "tollgate_redis_up",
            "1 when Redis answers (or none is configured), else 0"
        )?),
        request_log_dropped: reg!(IntGauge::new(
            "tollgate_request_logs_dropped",
            "Request logs dropped because the writer's queue was full"
        )?),
        callback_queued: reg!(IntGaugeVec::new(
            Opts::new(
                "tollgate_callback_backlog",
                "Records waiting to be sent to a log destination"
            ),
            &["destination"],
        )?),
        callback_delivered: reg!(IntGaugeVec::new(
            Opts::new(
                "tollgate_callback_delivered",
                "Records delivered to a log destination"
            ),
            &["destination"],
        )?),
        callback_failed: reg!(IntGaugeVec::new(
            Opts::new(
                "tollgate_callback_failed",
                "Records a log destination did not take after every retry"
            ),
            &["destination"],
        )?),
        callback_dropped: reg!(IntGaugeVec::new(
            Opts::new(
                "tollgate_callback_dropped",
                "Records dropped because a log destination's queue was full"
            ),
            &["destination"],
        )?),
        directory_updates: reg!(HistogramVec::new(
            prometheus::HistogramOpts::new(
                "tollgate_directory_update_seconds",
                "Time to bring the in-memory directory up to date after a change, by how: \
                 patched (this process's change), log (records the change log names), full (everything read)"
            )
            .buckets(vec![0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0]),
            &["how"],
        )?),
        alerts_sent: reg!(IntGauge::new(
            "tollgate_alerts_sent",
            "Alerts the alert webhook took"
        )?),
        alerts_failed: reg!(IntGauge::new(
            "tollgate_alerts_failed",
            "Alerts that could not be sent (webhook failing, or the alert queue full)"
        )?),
        registry,
    })
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().unwrap_or_else(|e| panic!("metric definitions are invalid: {e}")));

fn error_kind(r: &RequestLog) -> &'static str {
    if r.outcome == "client_disconnected" {
        return "client_disconnected";
    }
    let guardrail = r
        .guardrails
        .as_ref()
        .and_then(|g| g.as_array())
        .is_some_and(|a| {
            a.iter()
                .any(|e| e.get("outcome").and_then(|o| o.as_str()) == Some("blocked"))
        });
    match r.status_code {
        _ if guardrail => "guardrail",
        429 if r.attempts == 0 => "rate_limited",
        429 => "upstream_rate_limited",
        400 | 422 => "bad_request",
        401 | 403 => "auth",
        404 => "not_found",
        408 | 504 => "timeout",
        503 if r.attempts == 0 => "unavailable",
        s if s >= 500 => "upstream",
        _ => "other",
    }
}

/// Counts one finished call.
pub fn observe(r: &RequestLog) {
    let m = &*METRICS;
    let group = r.model_group.as_deref().unwrap_or("");
    let dep = r.deployment_id.as_deref().unwrap_or("");
    let status = r.status_code.to_string();
    m.requests
        .with_label_values(&[group, dep, r.surface, r.outcome, status.as_str()])
        .inc();
    if !r.succeeded() {
        let kind = error_kind(r);
        m.errors.with_label_values(&[group, kind]).inc();
        if kind == "rate_limited" {
            m.rate_limited
                .with_label_values(&[&*r.model_requested])
                .inc();
        }
    }
    if r.prompt_tokens > 0 {
        m.tokens
            .with_label_values(&[group, dep, "prompt"])
            .inc_by(r.prompt_tokens);
    }
    if r.completion_tokens > 0 {
        m.tokens
            .with_label_values(&[group, dep, "completion"])
            .inc_by(r.completion_tokens);
    }
    if r.spend > 0.0 && r.spend.is_finite() {
        m.spend.with_label_values(&[group, dep]).inc_by(r.spend);
    }
    if !dep.is_empty() {
        m.latency
            .with_label_values(&[group, dep])
            .observe(r.latency_ms as f64 / 1000.0);
        if let Some(t) = r.ttft_ms {
            m.ttft
                .with_label_values(&[group, dep])
                .observe(t as f64 / 1000.0);
        }
    }
    if r.cache_hit {
        m.cache_hits.with_label_values(&[group]).inc();
    }
    for g in r
        .guardrails
        .as_ref()
        .and_then(|g| g.as_array())
        .into_iter()
        .flatten()
    {
        let s = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("");
        m.guardrail_actions
            .with_label_values(&[s("guardrail"), s("mode"), s("outcome")])
            .inc();
        if let Some(ms) = g.get("duration_ms").and_then(|v| v.as_f64()) {
            m.guardrail_latency
                .with_label_values(&[s("guardrail")])
                .observe(ms / 1000.0);
        }
    }
}

pub fn store_error() {
    METRICS.store_errors.inc();
}

pub fn redis_error() {
    METRICS.redis_errors.inc();
}

/// One directory update: `how` it was done and how long it took.
pub fn directory_updated(how: &'static str, took: std::time::Duration) {
    METRICS
        .directory_updates
        .with_label_values(&[how])
        .observe(took.as_secs_f64());
}

/// What is read when scraped.
pub struct Gauges<'a> {
    pub queue_depth: usize,
    pub redis_up: bool,
    pub request_logs_dropped: u64,
    pub destinations: &'a [crate::logs::export::DestinationStats],
}

/// The text exposition format.
pub fn render(g: Gauges<'_>) -> String {
    let m = &*METRICS;
    m.queue_depth.set(g.queue_depth as i64);
    m.redis_up.set(i64::from(g.redis_up));
    m.request_log_dropped.set(g.request_logs_dropped as i64);
    let (sent, failed) = crate::alerts::counts();
    m.alerts_sent.set(sent as i64);
    m.alerts_failed.set(failed as i64);
    for d in g.destinations {
        let l = [d.name];
        m.callback_queued.with_label_values(&l).set(d.queued as i64);
        m.callback_delivered
            .with_label_values(&l)
            .set(d.delivered as i64);
        m.callback_failed.with_label_values(&l).set(d.failed as i64);
        m.callback_dropped
            .with_label_values(&l)
            .set(d.dropped as i64);
    }
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}
