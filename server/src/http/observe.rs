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
        .route("/health/services", get(test_service))
}

#[derive(serde::Deserialize)]
struct ServiceQuery {
    service: Option<String>,
}

/// `GET /health/services?service=slack|s3|langsmith|otel|webhook` (admins):
/// sends a test alert, or a test record to a log destination.
async fn test_service(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    axum::extract::Query(q): axum::extract::Query<ServiceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::forbidden("/health/services is for admins"));
    }
    let service = q.service.unwrap_or_default();
    let configured = || {
        let mut names: Vec<&str> = state.exporters.stats().iter().map(|d| d.name).collect();
        if crate::alerts::wants_any() {
            names.push("slack");
        }
        names.join(", ")
    };
    let sent = match service.as_str() {
        "slack" | "webhook_alerting" => crate::alerts::test(),
        "generic_api" => state.exporters.test("webhook"),
        name => state.exporters.test(name),
    };
    if !sent {
        return Err(ApiError::bad_request(format!(
            "service {service:?} is not configured here (configured: {})",
            match configured() {
                c if c.is_empty() => "none".to_string(),
                c => c,
            }
        ))
        .param("service"));
    }
    Ok(Json(json!({
        "status": "success",
        "message": format!("a test was sent to {service}; check that it arrived"),
    })))
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
