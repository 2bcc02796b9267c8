//! Managed prompts, versioned: `POST /prompts` (create: version 1),
//! `GET /prompts`, `GET /prompts/{id}` (`?version=N`, else the latest),
//! `POST /prompts/{id}/versions` (a new version from the latest, with the
//! fields given), `DELETE /prompts/{id}` (every version),
//! `POST /prompts/{id}/render` (the messages a call would send, for a preview). Admins write;
//! admins and admin viewers read. A prompt is called by its ARN as the model.

use super::*;
use crate::directory::records::PromptRecord;
use crate::store::directory::Change;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use rand::Rng;
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/prompts", post(create).get(list))
        .route("/prompts/{id}", get(read).delete(remove))
        .route("/prompts/{id}/versions", post(new_version))
        .route("/prompts/{id}/render", post(render))
}

/// Bedrock-style prompt ids: ten upper-case letters and digits.
fn new_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// The template as messages: a string is one user message.
fn template(v: Value) -> Result<Vec<Value>, ApiError> {
    let messages = match v {
        Value::String(s) => vec![serde_json::json!({"role": "user", "content": s})],
        Value::Array(a) => a,
        _ => {
            return Err(ApiError::bad_request(
                "'template' must be a string or a list of {role, content} messages",
            )
            .param("template"))
        }
    };
    if messages.is_empty() {
        return Err(ApiError::bad_request("'template' must not be empty").param("template"));
    }
    for (i, m) in messages.iter().enumerate() {
        serde_json::from_value::<crate::gateway::types::Message>(m.clone()).map_err(|e| {
            ApiError::bad_request(format!("template[{i}] is not a message: {e}"))
                .param(format!("template[{i}]"))
        })?;
    }
    Ok(messages)
}

fn inference(v: Option<Value>) -> Result<Map<String, Value>, ApiError> {
    let m = match v {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(
                ApiError::bad_request("'inference_config' must be an object")
                    .param("inference_config"),
            )
        }
    };
    for (k, v) in &m {
        let ok = match k.as_str() {
            "temperature" | "top_p" | "max_tokens" => v.is_number(),
            "stop" => v.is_string() || v.is_array(),
            _ => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "inference_config.{k}: expected temperature, top_p, max_tokens (numbers) or stop"
            ))
            .param("inference_config"));
        }
    }
    Ok(m)
}

fn check_model(state: &SharedState, model: &str) -> Result<(), ApiError> {
    if state.router.load().has_model(model) {
        Ok(())
    } else {
        Err(
            ApiError::bad_request(format!("model {model:?} is not a configured model group"))
                .param("model"),
        )
    }
}

async fn save(
    state: &SharedState,
    auth: &AuthContext,
    p: PromptRecord,
    action: &'static str,
) -> Result<Response, ApiError> {
    let view = p.view();
    state
        .directory
        .apply(
            &[Change::PutPrompt(&p)],
            &[audit(
                auth,
                "prompt",
                action,
                &p.prompt_id,
                None,
                Some(view.clone()),
            )],
        )
        .await
        .map_err(store_error)?;
    Ok(json(view))
}

async fn create(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "create prompts")?;
    let mut m = body_map(&body)?;
    let name = require_str(&mut m, "name")?;
    let model = require_str(&mut m, "model")?;
    check_model(&state, &model)?;
    let template = template(
        m.remove("template")
            .ok_or_else(|| ApiError::bad_request("'template' is required").param("template"))?,
    )?;
    let inference = inference(m.remove("inference_config"))?;
    let description = take_str(&mut m, "description")?;
    if let Some(k) = m.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unknown field '{k}': a prompt is {{name, template, model, inference_config, description}}"
        ))
        .param(k.clone()));
    }
    let id = new_id();
    let p = PromptRecord {
        arn: crate::gateway::prompts::local_arn(&id),
        prompt_id: id,
        version: 1,
        name,
        description,
        template,
        model,
        inference,
        created_by: Some(auth.actor()),
        created_at: crate::logs::now_ms(),
    };
    save(&state, &auth, p, "created").await
}

#[derive(Deserialize)]
struct ListQuery {
    /// A case-insensitive part of the name, id or model.
    search: Option<String>,
    page: Option<u64>,
    page_size: Option<u64>,
}

/// The latest version of each prompt, newest first. Paged when `page` or
/// `page_size` is given (else every prompt, as before); `total` counts all.
async fn list(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "list prompts")?;
    let search = search_term(q.search.as_deref());
    let snap = state.directory.snapshot();
    let mut prompts: Vec<&Arc<PromptRecord>> = snap
        .prompts
        .values()
        .filter_map(|v| v.last())
        .filter(|p| {
            search.as_deref().is_none_or(|s| {
                [&p.name, &p.prompt_id, &p.model]
                    .iter()
                    .any(|f| f.to_lowercase().contains(s))
            })
        })
        .collect();
    prompts.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(a.prompt_id.cmp(&b.prompt_id))
    });
    let pages = if q.page.is_some() || q.page_size.is_some() {
        page(q.page, q.page_size, 50)
    } else {
        (1, (prompts.len() as u64).max(1))
    };
    Ok(paged("prompts", &prompts, pages, |p| {
        let mut v = p.view();
        v["versions"] = serde_json::json!(snap.prompts.get(&p.prompt_id).map_or(0, Vec::len));
        v
    }))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

fn versions<'s>(
    snap: &'s crate::directory::Snapshot,
    id: &str,
) -> Result<&'s Vec<Arc<PromptRecord>>, ApiError> {
    snap.prompts
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No prompt with id {id}")))
}

/// The version `version` of a prompt (the latest when none is asked for).
fn version_of<'s>(
    all: &'s [Arc<PromptRecord>],
    id: &str,
    version: Option<i64>,
) -> Result<&'s Arc<PromptRecord>, ApiError> {
    match version {
        None => all.last(),
        Some(v) => all.iter().find(|p| p.version == v),
    }
    .ok_or_else(|| {
        let what = match version {
            Some(v) => format!("Prompt {id} has no version {v}"),
            None => format!("Prompt {id} has no versions"),
        };
        ApiError::not_found(what).param("version")
    })
}

async fn read(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "read prompts")?;
    let snap = state.directory.snapshot();
    let all = versions(&snap, &id)?;
    let p = version_of(all, &id, q.version)?;
    let mut v = p.view();
    v["versions"] = serde_json::json!(all.iter().map(|p| p.version).collect::<Vec<_>>());
    Ok(json(v))
}

async fn new_version(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&auth, "change prompts")?;
    let snap = state.directory.snapshot();
    let latest = versions(&snap, &id)?
        .last()
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No prompt with id {id}")))?;
    let mut m = body_map(&body)?;
    let mut p = (*latest).clone();
    if let Some(name) = take_str(&mut m, "name")? {
        p.name = name;
    }
    if let Some(model) = take_str(&mut m, "model")? {
        check_model(&state, &model)?;
        p.model = model;
    }
    if let Some(t) = m.remove("template") {
        p.template = template(t)?;
    }
    if m.contains_key("inference_config") {
        p.inference = inference(m.remove("inference_config"))?;
    }
    if m.contains_key("description") {
        p.description = take_str(&mut m, "description")?;
    }
    if let Some(k) = m.keys().next() {
        return Err(ApiError::bad_request(format!("Unknown field '{k}'")).param(k.clone()));
    }
    p.version = latest.version + 1;
    p.created_by = Some(auth.actor());
    p.created_at = crate::logs::now_ms();
    save(&state, &auth, p, "versioned").await
}

async fn remove(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&auth, "delete prompts")?;
    let snap = state.directory.snapshot();
    let latest = versions(&snap, &id)?.last().map(|p| p.view());
    state
        .directory
        .apply(
            &[Change::DeletePrompt(&id)],
            &[audit(&auth, "prompt", "deleted", &id, latest, None)],
        )
        .await
        .map_err(store_error)?;
    Ok(json(serde_json::json!({"deleted": id})))
}

/// The messages a call to the prompt would send, with `promptVariables`
/// (`variables` also accepted) filled in the same way; variables not given
/// are left as `{{name}}` and listed under `missing`.
async fn render(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    reader_of_all(&auth, "render prompts")?;
    let mut m = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        body_map(&body)?
    };
    let version = match m.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().filter(|v| *v >= 1).ok_or_else(|| {
            ApiError::bad_request("'version' must be a version number").param("version")
        })?),
    };
    let field = if m.contains_key("promptVariables") {
        "promptVariables"
    } else {
        "variables"
    };
    let vars = match m.remove(field) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "'{field}' must be an object: {{\"name\": {{\"text\": \"value\"}}}}"
            ))
            .param(field))
        }
    };
    if let Some(k) = m.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unknown field '{k}': a render is {{version, promptVariables}}"
        ))
        .param(k.clone()));
    }
    let snap = state.directory.snapshot();
    let all = versions(&snap, &id)?;
    let p = version_of(all, &id, version)?;
    let (messages, missing) = crate::gateway::prompts::preview(&p.template, &vars);
    Ok(json(serde_json::json!({
        "id": p.prompt_id,
        "version": p.version,
        "model": p.model,
        "inference_config": p.inference,
        "messages": messages,
        "variables": crate::gateway::prompts::variables(&p.template),
        "missing": missing,
    })))
}
