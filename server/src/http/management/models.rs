//! `/model/info` and `/v1/model/info`: each deployment as LiteLLM shows it,
//! with its prices and context window, and never its secrets.

use super::*;
use crate::gateway::router::Deployment;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use serde::Deserialize;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/model/info", get(info))
        .route("/v1/model/info", get(info))
}

#[derive(Deserialize)]
struct InfoQuery {
    litellm_model_id: Option<String>,
}

/// One deployment: `litellm_params` without credentials, `model_info` with
/// the prices and limits in effect (the deployment's own, else the bundled table).
fn view(d: &Deployment) -> Value {
    let c = &d.config;
    let mut params = Map::new();
    params.insert(
        "model".into(),
        Value::String(format!("{}/{}", c.provider, c.upstream_model)),
    );
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            params.insert(k.into(), v);
        }
    };
    put("api_base", c.api_base.clone().map(Value::String));
    put("api_version", c.api_version.clone().map(Value::String));
    put("organization", c.organization.clone().map(Value::String));
    put("aws_region_name", c.aws.region.clone().map(Value::String));
    put(
        "aws_bedrock_runtime_endpoint",
        c.aws.endpoint.clone().map(Value::String),
    );
    put("timeout", c.timeout.map(|t| t.as_secs_f64().into()));
    put(
        "stream_timeout",
        c.stream_timeout.map(|t| t.as_secs_f64().into()),
    );
    put("num_retries", c.num_retries.map(Into::into));
    put("weight", Some(c.weight.into()));
    for (k, v) in &c.defaults {
        params.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let i = &c.model_info;
    let table = d.price;
    let mut info = Map::new();
    info.insert("id".into(), Value::String(c.id.clone()));
    info.insert("db_model".into(), Value::Bool(false));
    info.insert(
        "mode".into(),
        serde_json::json!(i
            .mode
            .clone()
            .or_else(|| table.and_then(|p| p.mode.clone()))
            .unwrap_or_else(|| "chat".into())),
    );
    info.insert(
        "input_cost_per_token".into(),
        serde_json::json!(i
            .input_cost_per_token
            .or(table.map(|p| p.input_cost_per_token))),
    );
    info.insert(
        "output_cost_per_token".into(),
        serde_json::json!(i
            .output_cost_per_token
            .or(table.map(|p| p.output_cost_per_token))),
    );
    info.insert(
        "max_input_tokens".into(),
        serde_json::json!(i
            .max_input_tokens
            .or(table.and_then(|p| p.max_input_tokens))),
    );
    info.insert(
        "max_output_tokens".into(),
        serde_json::json!(i
            .max_output_tokens
            .or(table.and_then(|p| p.max_output_tokens))),
    );
    info.insert("base_model".into(), serde_json::json!(i.base_model));
    info.insert(
        "litellm_provider".into(),
        Value::String(c.provider.to_string()),
    );
    for (k, v) in &i.other {
        info.entry(k.clone()).or_insert_with(|| v.clone());
    }
    serde_json::json!({
        "model_name": c.model_name,
        "litellm_params": params,
        "model_info": info,
    })
}

async fn info(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<InfoQuery>,
) -> Result<Response, ApiError> {
    gate(&auth, Access::Read)?;
    let router = state.router.load();
    let data: Vec<Value> = router
        .groups()
        .filter(|(name, _)| router.may_use(&auth, name))
        .flat_map(|(_, ds)| ds.iter())
        .filter(|d| {
            q.litellm_model_id
                .as_ref()
                .is_none_or(|id| *id == d.config.id)
        })
        .map(|d| view(d))
        .collect();
    if let Some(id) = &q.litellm_model_id {
        if data.is_empty() {
            return Err(
                ApiError::not_found(format!("No model with id {id}")).param("litellm_model_id")
            );
        }
    }
    Ok(json(serde_json::json!({"data": data})))
}
