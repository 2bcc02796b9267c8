//! LiteLLM's cache routes: `GET /cache/ping` (is the response cache on and
//! reachable), `POST /cache/delete` (`{"keys": [...]}`, the keys answers
//! carry in `x-litellm-cache-key`) and `POST /cache/flushall`. Admins only.

use super::*;
use crate::gateway::cache::ResponseCache;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde_json::json;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/cache/ping", get(ping))
        .route("/cache/delete", post(delete))
        .route("/cache/flushall", post(flush_all))
}

fn cache(state: &SharedState) -> Result<&Arc<ResponseCache>, ApiError> {
    state.cache.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The response cache is off: set litellm_settings.cache: true in the config.",
        )
    })
}

fn unavailable(e: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        format!("The response cache is not reachable: {e}"),
    )
}

async fn ping(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "check the cache")?;
    let c = cache(&state)?;
    let details = c.ping().await.map_err(unavailable)?;
    let cfg = c.config();
    let call_types: Vec<&str> = [
        cfg.chat.then_some("acompletion"),
        cfg.embeddings.then_some("aembedding"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(Json(json!({
        "status": "healthy",
        "cache_type": c.kind(),
        "ping_response": true,
        "details": details,
        "cache_params": {
            "ttl": cfg.ttl.as_secs_f64(),
            "namespace": cfg.namespace,
            "mode": if cfg.default_on { "default_on" } else { "default_off" },
            "supported_call_types": call_types,
        },
    }))
    .into_response())
}

async fn delete(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "delete cached answers")?;
    let c = cache(&state)?;
    let mut m = body_map(&body)?;
    let keys: Vec<String> = match m.remove("keys") {
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Err(ApiError::bad_request("'keys' must be a list of cache keys").param("keys")),
    };
    let deleted = c.delete(&keys).await.map_err(unavailable)?;
    Ok(Json(json!({"status": "success", "deleted": deleted})).into_response())
}

async fn flush_all(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Response, ApiError> {
    admin_only(&auth, "flush the cache")?;
    let deleted = cache(&state)?.clear().await.map_err(unavailable)?;
    Ok(Json(json!({"status": "success", "deleted": deleted})).into_response())
}
