//! `/model/info` and `/v1/model/info`: each deployment as LiteLLM shows it,
//! with its prices and context window, and never its secrets.
//! `/model/new`, `/model/update` (and `PATCH /model/{id}/update`),
//! `/model/delete`: deployments kept in the database, served alongside the
//! config file's without a restart (see `crate::catalog`).

use super::*;
use crate::config::DbModel;
use crate::gateway::router::Deployment;
use crate::secret::Sealer;
use crate::store::directory::Change;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Extension;
use serde::Deserialize;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/model/info", get(info))
        .route("/v1/model/info", get(info))
        .route("/model/new", post(new_model))
        .route("/model/update", post(update_model))
        .route("/model/{model_id}/update", patch(patch_model))
        .route("/model/delete", post(delete_model))
}

/// A stored model as the API shows it: sealed secrets masked, references kept.
fn db_view(m: &DbModel) -> Value {
    let mut params = m.litellm_params.clone();
    let mask = |v: &mut Value| {
        if let Value::String(s) = v {
            if Sealer::is_sealed(s) {
                *s = "****".into();
            }
        }
    };
    for (k, v) in params.iter_mut() {
        match v {
            Value::Object(h) if k == "extra_headers" => h.values_mut().for_each(mask),
            _ => mask(v),
        }
    }
    let mut info = m.model_info.clone();
    info.insert("id".into(), Value::String(m.model_id.clone()));
    info.insert("db_model".into(), Value::Bool(true));
    serde_json::json!({
        "model_id": m.model_id,
        "model_name": m.model_name,
        "litellm_params": params,
        "model_info": info,
        "created_by": m.created_by,
        "created_at": crate::directory::records::iso(m.created_at),
        "updated_at": crate::directory::records::iso(m.updated_at),
    })
}

/// An object field of the request (`litellm_params`, `model_info`).
fn take_object(
    m: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<Map<String, Value>>, ApiError> {
    match m.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ApiError::bad_request(format!("'{field}' must be an object")).param(field)),
    }
}

/// Fields LiteLLM's request shape does not have are refused, not dropped.
fn no_other_fields(m: &Map<String, Value>) -> Result<(), ApiError> {
    match m.keys().next() {
        None => Ok(()),
        Some(k) => Err(ApiError::bad_request(format!(
            "Unknown field '{k}': a model is {{model_name, litellm_params, model_info}}"
        ))
        .param(k.clone())),
    }
}

/// The stored model with `id`, or why there is none to change.
fn stored<'a>(
    state: &crate::state::AppState,
    snap: &'a crate::directory::Snapshot,
    id: &str,
) -> Result<&'a DbModel, ApiError> {
    if let Some(m) = snap.models.iter().find(|m| m.model_id == id) {
        return Ok(m);
    }
    let router = state.router.load();
    if router
        .groups()
        .flat_map(|(_, ds)| ds.iter())
        .any(|d| d.config.id == id)
    {
        return Err(ApiError::bad_request(format!(
            "Model {id} is defined in the config file; change it there (only models added through /model/new can be changed here)"
        ))
        .param("id"));
    }
    Err(ApiError::not_found(format!("No model with id {id}")).param("id"))
}

/// Checks, stores and starts serving `model` (created when `before` is none).
async fn save(
    state: &SharedState,
    auth: &AuthContext,
    mut model: DbModel,
    before: Option<&DbModel>,
) -> Result<Response, ApiError> {
    state
        .catalog
        .seal_params(&mut model.litellm_params)
        .map_err(|e| {
            tracing::error!(error = e, "cannot seal a model's secrets");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "the model's secrets could not be encrypted; nothing was saved",
            )
        })?;
    let warnings = state.catalog.check(&model).await.map_err(|e| {
        ApiError::bad_request(format!("This model cannot be served: {e}")).param("litellm_params")
    })?;
    let (action, before_view) = match before {
        None => ("created", None),
        Some(b) => ("updated", Some(db_view(b))),
    };
    let after = db_view(&model);
    state
        .directory
        .apply(
            &[Change::PutModel(&model)],
            &[audit(
                auth,
                "model",
                action,
                &model.model_id,
                before_view,
                Some(after.clone()),
            )],
        )
        .await
        .map_err(store_error)?;
    state.catalog.sync(state).await;
    let mut out = after;
    if let Value::Object(o) = &mut out {
        o.insert("warnings".into(), serde_json::json!(warnings));
    }
    Ok(json(out))
}

async fn new_model(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "add models")?;
    let mut m = body_map(&body)?;
    let model_name = require_str(&mut m, "model_name")?;
    if model_name.trim().is_empty() {
        return Err(ApiError::bad_request("'model_name' must not be empty").param("model_name"));
    }
    let litellm_params = take_object(&mut m, "litellm_params")?.ok_or_else(|| {
        ApiError::bad_request("'litellm_params' is required").param("litellm_params")
    })?;
    let mut model_info = take_object(&mut m, "model_info")?.unwrap_or_default();
    no_other_fields(&m)?;
    let model_id = match model_info.remove("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(_) => {
            return Err(
                ApiError::bad_request("'model_info.id' must be a non-empty string")
                    .param("model_info.id"),
            )
        }
    };
    model_info.remove("db_model");
    let snap = state.directory.snapshot();
    if snap.models.iter().any(|x| x.model_id == model_id)
        || state
            .router
            .load()
            .groups()
            .flat_map(|(_, ds)| ds.iter())
            .any(|d| d.config.id == model_id)
    {
        return Err(
            ApiError::bad_request(format!("A model with id {model_id} already exists"))
                .param("model_info.id")
                .code("conflict"),
        );
    }
    let now = crate::logs::now_ms();
    let model = DbModel {
        model_id,
        model_name,
        litellm_params,
        model_info,
        created_by: Some(auth.actor()),
        created_at: now,
        updated_at: now,
    };
    save(&state, &auth, model, None).await
}

/// `model` with the request's fields laid over it (a field set to null is removed).
fn updated(model: &DbModel, mut m: Map<String, Value>) -> Result<DbModel, ApiError> {
    let mut out = model.clone();
    if let Some(name) = take_str(&mut m, "model_name")? {
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("'model_name' must not be empty").param("model_name"));
        }
        out.model_name = name;
    }
    for (field, target) in [
        ("litellm_params", &mut out.litellm_params),
        ("model_info", &mut out.model_info),
    ] {
        for (k, v) in take_object(&mut m, field)?.unwrap_or_default() {
            if matches!(k.as_str(), "id" | "db_model") && field == "model_info" {
                continue;
            }
            if v.is_null() {
                target.remove(&k);
            } else {
                target.insert(k, v);
            }
        }
    }
    no_other_fields(&m)?;
    if !out.litellm_params.contains_key("model") {
        return Err(
            ApiError::bad_request("'litellm_params.model' cannot be removed")
                .param("litellm_params.model"),
        );
    }
    out.updated_at = crate::logs::now_ms();
    Ok(out)
}

async fn update_model(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "change models")?;
    let m = body_map(&body)?;
    let id = m
        .get("model_info")
        .and_then(|i| i.get("id"))
        .or_else(|| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request("'model_info.id' is required: the id of the model to change")
                .param("model_info.id")
        })?;
    let mut m = m;
    m.remove("id");
    let snap = state.directory.snapshot();
    let before = stored(&state, &snap, &id)?;
    let model = updated(before, m)?;
    save(&state, &auth, model, Some(before)).await
}

async fn patch_model(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "change models")?;
    let snap = state.directory.snapshot();
    let before = stored(&state, &snap, &id)?;
    let model = updated(before, body_map(&body)?)?;
    save(&state, &auth, model, Some(before)).await
}

async fn delete_model(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "delete models")?;
    let mut m = body_map(&body)?;
    let id = require_str(&mut m, "id")?;
    let snap = state.directory.snapshot();
    let before = stored(&state, &snap, &id)?;
    state
        .directory
        .apply(
            &[Change::DeleteModel(&id)],
            &[audit(
                &auth,
                "model",
                "deleted",
                &id,
                Some(db_view(before)),
                None,
            )],
        )
        .await
        .map_err(store_error)?;
    state.catalog.sync(&state).await;
    Ok(json(
        serde_json::json!({"message": format!("Model: {id} deleted successfully")}),
    ))
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
    info.insert("db_model".into(), Value::Bool(c.db_model));
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
        serde_json::json!(d.input_cost_per_token()),
    );
    info.insert(
        "output_cost_per_token".into(),
        serde_json::json!(d.output_cost_per_token()),
    );
    info.insert(
        "max_input_tokens".into(),
        serde_json::json!(d.context_window()),
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
