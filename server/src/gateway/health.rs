//! Deployment health checks: one small real call per deployment, on demand
//! (`GET /health`) or on a schedule (`background_health_checks`). Scheduled
//! results feed routing (a failing deployment of a group is taken out until
//! it passes again), `/health`, and outage alerts.

use crate::gateway::router::{Deployment, Router};
use crate::gateway::types::{ChatRequest, EmbeddingInput, EmbeddingRequest, Message, Role};
use crate::providers::{ErrorKind, ProviderError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// A deployment's outage (or recovery) is alerted once per this, across
/// processes sharing Redis: a flapping deployment does not flood the channel.
const ALERT_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// One small real call: a 1-token chat, or a one-word embedding for embedding models.
pub async fn check(d: Arc<Deployment>) -> Result<(), ProviderError> {
    if let Some(why) = &d.config.unusable {
        return Err(ProviderError::new(ErrorKind::Config, why.clone()));
    }
    let call = async {
        if d.config.model_info.is_embedding() {
            let req = EmbeddingRequest {
                model: d.config.upstream_model.clone(),
                input: EmbeddingInput::One("ping".into()),
                encoding_format: None,
                dimensions: None,
                user: None,
                extra: Default::default(),
            };
            d.provider.embed(req).await.map(|_| ())
        } else {
            let req = ChatRequest {
                model: d.config.upstream_model.clone(),
                messages: vec![Message::text(Role::User, "ping")],
                max_tokens: Some(1),
                ..Default::default()
            };
            d.provider.chat(req, true).await.map(|_| ())
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, call).await {
        Ok(r) => r,
        Err(_) => Err(ProviderError::new(
            ErrorKind::Timeout,
            "health check timed out",
        )),
    }
}

/// One check of every deployment of `router`, as `/health` shows it.
pub struct Report {
    pub body: Value,
    /// (deployment, group size, passed, error)
    pub results: Vec<(Arc<Deployment>, usize, Result<(), ProviderError>)>,
}

pub async fn check_all(router: &Router) -> Report {
    check_some(router, |_| true).await
}

/// One check of the deployments `pick` chooses, each timed.
pub async fn check_some(router: &Router, pick: impl Fn(&Deployment) -> bool) -> Report {
    let deployments: Vec<(Arc<Deployment>, usize)> = router
        .groups()
        .flat_map(|(_, ds)| ds.iter().map(move |d| (Arc::clone(d), ds.len())))
        .filter(|(d, _)| pick(d))
        .collect();
    let outcomes = futures::future::join_all(deployments.iter().map(|(d, _)| async {
        let started = std::time::Instant::now();
        let result = check(Arc::clone(d)).await;
        (result, started.elapsed())
    }))
    .await;
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    let mut results = Vec::new();
    for ((d, size), (result, took)) in deployments.into_iter().zip(outcomes) {
        let mut entry = json!({
            "model_name": d.config.model_name,
            "model": format!("{}/{}", d.config.provider, d.config.upstream_model),
            "model_id": d.config.id,
            "api_base": d.config.api_base,
            "latency_ms": (took.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        });
        match &result {
            Ok(()) => {
                d.health.record_ok();
                healthy.push(entry);
            }
            Err(e) => {
                d.health.record_err(e);
                entry["error"] = Value::String(e.to_string());
                unhealthy.push(entry);
            }
        }
        results.push((d, size, result));
    }
    Report {
        body: json!({
            "healthy_count": healthy.len(),
            "unhealthy_count": unhealthy.len(),
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
        }),
        results,
    }
}

/// The last scheduled check, for `/health`.
#[derive(Default)]
pub struct Board {
    last: Mutex<Option<Arc<Value>>>,
}

impl Board {
    pub fn last(&self) -> Option<Arc<Value>> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// Checks every deployment every `every` until `stop`.
pub fn spawn(
    state: Arc<crate::state::AppState>,
    board: Arc<Board>,
    every: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Deployment id -> failing at the last check.
        let mut failing: HashMap<String, bool> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let router = state.router.load_full();
            let report = tokio::select! {
                r = check_all(&router) => r,
                _ = stop.cancelled() => return,
            };
            let checked_at = crate::logs::now_ms();
            for (d, size, result) in &report.results {
                let was_failing = failing.get(&d.config.id).copied().unwrap_or(false);
                router
                    .health_checked(d, *size, result.is_ok(), was_failing, every)
                    .await;
                match result {
                    Err(e) if !was_failing => {
                        tracing::warn!(deployment = %d.config, error = %e, "deployment failed its health check");
                        crate::alerts::raise(
                            "outage_alerts",
                            format!("outage:{}", d.config.id),
                            every.max(ALERT_AT_MOST_EVERY),
                            format!(
                                "🔴 Deployment {} of {} ({}/{}) failed its health check: {e}",
                                d.config.id,
                                d.config.model_name,
                                d.config.provider,
                                d.config.upstream_model
                            ),
                        );
                    }
                    Ok(()) if was_failing => {
                        tracing::info!(deployment = %d.config, "deployment passes its health check again");
                        crate::alerts::raise(
                            "outage_alerts",
                            format!("recovered:{}", d.config.id),
                            every.max(ALERT_AT_MOST_EVERY),
                            format!(
                                "🟢 Deployment {} of {} ({}/{}) passes its health check again.",
                                d.config.id,
                                d.config.model_name,
                                d.config.provider,
                                d.config.upstream_model
                            ),
                        );
                    }
                    _ => {}
                }
                failing.insert(d.config.id.clone(), result.is_err());
            }
            let mut body = report.body;
            body["last_checked_at"] = json!(crate::directory::records::iso(checked_at));
            body["health_check_interval"] = json!(every.as_secs_f64());
            if let Ok(mut last) = board.last.lock() {
                *last = Some(Arc::new(body));
            }
        }
    })
}
