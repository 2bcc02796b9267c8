//! `GET /metrics` (Prometheus text format, open like LiteLLM's) and
//! `GET /active/callbacks` (admins: where request logs go, and how delivery fares).

use super::errors::ApiError;
use crate::auth::AuthContext;
use crate::state::SharedState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/", get(metrics))
        .route("/active/callbacks", get(callbacks))
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let destinations = state.exporters.stats();
    let text = crate::metrics::render(crate::metrics::Gauges {
        queue_depth: state.limiter.queue.depth(),
        redis_up: state.limiter.counters.redis_status().unwrap_or(true),
        request_logs_dropped: state.logs.dropped(),
        destinations: &destinations,
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn callbacks(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::forbidden("/active/callbacks is for admins"));
    }
    let [success, failure, service] = state.exporters.lists();
    Ok(Json(json!({
        "success_callback": success,
        "failure_callback": failure,
        "service_callback": service,
        "turn_off_message_logging": !state.exporters.content && !state.exporters.is_empty(),
        "destinations": state.exporters.stats(),
    })))
}
