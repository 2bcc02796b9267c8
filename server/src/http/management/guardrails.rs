//! `GET /guardrails/list` (LiteLLM's): the configured guardrails with their
//! type, modes and default, their `guardrail_info`, and what they did so far
//! in this process (checks, interventions, mean time per check). Any caller
//! may list them: a request names guardrails it wants by these names.

use super::*;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;
use std::sync::atomic::Ordering;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/guardrails/list", get(list))
}

async fn list(State(state): State<SharedState>) -> Response {
    let guardrails: Vec<serde_json::Value> = state
        .guardrails
        .list()
        .iter()
        .map(|g| {
            let checks = g.checks.load(Ordering::Relaxed);
            let micros = g.micros.load(Ordering::Relaxed);
            json!({
                "guardrail_name": g.name,
                "litellm_params": {
                    "guardrail": g.provider,
                    "mode": g.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                    "default_on": g.default_on,
                },
                "guardrail_info": g.info,
                "stats": {
                    "checks": checks,
                    "interventions": g.interventions.load(Ordering::Relaxed),
                    "mean_latency_ms": if checks == 0 { 0.0 } else { micros as f64 / checks as f64 / 1000.0 },
                },
            })
        })
        .collect();
    Json(json!({ "guardrails": guardrails })).into_response()
}
