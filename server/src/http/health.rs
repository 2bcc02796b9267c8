//! Health: liveness and readiness (open), and `/health` (admin), which calls
//! every deployment and reports which answer.

use super::errors::ApiError;
use crate::auth::AuthContext;
use crate::state::SharedState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

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

#[derive(serde::Deserialize)]
pub(crate) struct HealthQuery {
    /// Check only this model group (LiteLLM's `?model=`).
    model: Option<String>,
    /// Check only this deployment.
    model_id: Option<String>,
}

pub(crate) async fn health(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<HealthQuery>,
) -> Result<Response, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::forbidden("/health is for admins"));
    }
    // One group or one deployment: always checked now, each call timed.
    if q.model.is_some() || q.model_id.is_some() {
        let router = state.router.load_full();
        let report = crate::gateway::health::check_some(&router, |d| {
            q.model.as_ref().is_none_or(|m| *m == d.config.model_name)
                && q.model_id.as_ref().is_none_or(|id| *id == d.config.id)
        })
        .await;
        if report.results.is_empty() {
            let (field, what) = match &q.model_id {
                Some(id) => ("model_id", format!("No deployment has the id {id:?}")),
                None => (
                    "model",
                    format!(
                        "No model group is named {:?}",
                        q.model.as_deref().unwrap_or_default()
                    ),
                ),
            };
            return Err(ApiError::bad_request(what).param(field));
        }
        return Ok(Json(report.body).into_response());
    }
    // With background checks on, the last scheduled results (as LiteLLM does).
    if let Some(last) = state.health_board.as_ref().and_then(|b| b.last()) {
        return Ok(Json((*last).clone()).into_response());
    }
    let router = state.router.load_full();
    Ok(Json(crate::gateway::health::check_all(&router).await.body).into_response())
}
