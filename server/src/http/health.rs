//! Health: liveness and readiness (open), and `/health` (admin), which calls
//! every deployment and reports which answer.

use super::errors::ApiError;
use crate::auth::AuthContext;
use crate::gateway::router::Deployment;
use crate::gateway::types::{ChatRequest, EmbeddingInput, EmbeddingRequest, Message, Role};
use crate::state::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/health/liveliness", get(live))
        .route("/health/liveness", get(live))
        .route("/health/readiness", get(ready))
        .route("/health", get(health))
}

async fn live() -> Json<&'static str> {
    Json("I'm alive!")
}

/// Ready while the store answers. Redis going away does not make Tollgate
/// unready (it keeps serving, counting per process) but is reported.
async fn ready(State(state): State<SharedState>) -> Response {
    let redis = match state.limiter.counters.redis_status() {
        None => "not configured",
        Some(true) => "connected",
        Some(false) => "unreachable: limits, cooldowns and usage are counted per process",
    };
    match state.store.ping().await {
        Ok(()) => Json(json!({
            "status": "healthy",
            "db": "connected",
            "store": state.store.backend(),
            "redis": redis,
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unhealthy", "db": "disconnected", "store": state.store.backend()})),
            )
                .into_response()
        }
    }
}

async fn health(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Response, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::forbidden("/health is for admins"));
    }
    let deployments: Vec<Arc<Deployment>> = state
        .router
        .load()
        .groups()
        .flat_map(|(_, ds)| ds.iter().cloned())
        .collect();
    let results = futures::future::join_all(deployments.iter().map(|d| check(d.clone()))).await;
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for (d, result) in deployments.iter().zip(results) {
        let mut entry = json!({
            "model_name": d.config.model_name,
            "model": format!("{}/{}", d.config.provider, d.config.upstream_model),
            "model_id": d.config.id,
            "api_base": d.config.api_base,
        });
        match result {
            Ok(()) => {
                d.health.record_ok();
                healthy.push(entry);
            }
            Err(e) => {
                d.health.record_err(&e);
                entry["error"] = Value::String(e.to_string());
                unhealthy.push(entry);
            }
        }
    }
    Ok(Json(json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    }))
    .into_response())
}

/// One small real call: a 1-token chat, or a one-word embedding for embedding models.
async fn check(d: Arc<Deployment>) -> Result<(), crate::providers::ProviderError> {
    use crate::providers::{ErrorKind, ProviderError};
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
