//! Reading and deleting chat-history sessions: `POST /chat-history` (OpenAI
//! message format), `POST /bedrock/chat-history` (Converse format),
//! `POST /session-ids` (the caller's sessions, newest first), and
//! `POST /chat-history/delete` / `DELETE /chat-history/{session_id}`.
//! A session is visible to the key that created it and that key's user;
//! proxy admins and admin viewers read all, and admins may delete any.

use super::errors::ApiError;
use crate::auth::AuthContext;
use crate::gateway::history::owns;
use crate::state::SharedState;
use crate::store::history::SessionRow;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/chat-history", post(openai_history))
        .route("/bedrock/chat-history", post(bedrock_history))
        .route("/session-ids", post(session_ids))
        .route("/chat-history/delete", post(delete_by_body))
        .route("/chat-history/rename", post(rename))
        .route("/chat-history/{session_id}", delete(delete_by_path))
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "chat history store failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        "chat history is unavailable right now; try again",
    )
}

fn session_id_of(body: &[u8]) -> Result<String, ApiError> {
    let v: Value = super::openai::parse_json(body)?;
    v.get("session_id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("'session_id' is required").param("session_id"))
}

/// The session if the caller may see it; otherwise it does not exist for them.
async fn visible(
    state: &SharedState,
    auth: &AuthContext,
    id: &str,
    write: bool,
) -> Result<SessionRow, ApiError> {
    let may = |s: &SessionRow| {
        owns(auth, s)
            || if write {
                auth.is_admin()
            } else {
                auth.reads_all()
            }
    };
    state
        .store
        .session(id)
        .await
        .map_err(store_error)?
        .filter(may)
        .ok_or_else(|| {
            ApiError::not_found(format!("session_id {id} was not found")).param("session_id")
        })
}

fn view(s: &SessionRow, messages: Vec<Value>) -> Value {
    json!({
        "session_id": s.session_id,
        "model": s.model,
        "created_at": crate::directory::records::iso(s.created_at),
        "updated_at": crate::directory::records::iso(s.updated_at),
        "title": s.title,
        "messages": messages,
    })
}

async fn openai_history(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    history(&state, &auth, &body, false).await
}

async fn bedrock_history(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    history(&state, &auth, &body, true).await
}

/// A session's messages, in OpenAI's format or (`converse`) Bedrock's.
async fn history(
    state: &SharedState,
    auth: &AuthContext,
    body: &[u8],
    converse: bool,
) -> Result<Response, ApiError> {
    let id = session_id_of(body)?;
    let s = visible(state, auth, &id, false).await?;
    let messages = state
        .store
        .session_messages(&id)
        .await
        .map_err(store_error)?;
    let messages = if converse {
        to_converse(&messages)
    } else {
        messages
    };
    Ok(Json(view(&s, messages)).into_response())
}

async fn session_ids(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Response, ApiError> {
    // The master key has no key or user of its own: it sees every session.
    let rows = state
        .store
        .sessions_for(auth.key_hash.as_deref(), auth.user_id(), 1000)
        .await
        .map_err(store_error)?;
    let ids: Vec<&str> = rows.iter().map(|s| s.session_id.as_str()).collect();
    let sessions: Vec<Value> = rows
        .iter()
        .map(|s| {
            json!({
                "session_id": s.session_id,
                "model": s.model,
                "created_at": crate::directory::records::iso(s.created_at),
                "updated_at": crate::directory::records::iso(s.updated_at),
                "title": s.title,
            })
        })
        .collect();
    Ok(Json(json!({"session_ids": ids, "sessions": sessions})).into_response())
}

/// `POST /chat-history/rename` `{"session_id", "title"}`: the owner (or an
/// admin) names a session.
async fn rename(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = session_id_of(&body)?;
    let v: Value = super::openai::parse_json(&body)?;
    let title = v
        .get("title")
        .and_then(Value::as_str)
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("'title' must be a non-empty string").param("title")
        })?;
    if title.chars().count() > crate::store::history::TITLE_MAX {
        return Err(ApiError::bad_request(format!(
            "'title' may have at most {} characters",
            crate::store::history::TITLE_MAX
        ))
        .param("title"));
    }
    visible(&state, &auth, &id, true).await?;
    state
        .store
        .rename_session(&id, &title)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({"session_id": id, "title": title})).into_response())
}

async fn remove(state: &SharedState, auth: &AuthContext, id: &str) -> Result<Response, ApiError> {
    visible(state, auth, id, true).await?;
    state.store.delete_session(id).await.map_err(store_error)?;
    Ok(Json(json!({"deleted": id})).into_response())
}

async fn delete_by_body(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = session_id_of(&body)?;
    remove(&state, &auth, &id).await
}

async fn delete_by_path(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    remove(&state, &auth, &id).await
}

/// Stored messages (OpenAI format) in Bedrock Converse's message format.
pub fn to_converse(messages: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let text = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        };
        let (role, blocks) = match role {
            "assistant" => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
                for c in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let args = c
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}");
                    blocks.push(json!({"toolUse": {
                        "toolUseId": c.get("id").cloned().unwrap_or(Value::Null),
                        "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "input": super::bedrock::converse::tool_input(args),
                    }}));
                }
                ("assistant", blocks)
            }
            "tool" => (
                "user",
                vec![json!({"toolResult": {
                    "toolUseId": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                    "content": [{"text": text}],
                }})],
            ),
            _ => ("user", vec![json!({"text": text})]),
        };
        // Converse alternates roles: consecutive blocks of one role share a message.
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(c) = last["content"].as_array_mut() {
                    c.extend(blocks);
                }
            }
            _ => out.push(json!({"role": role, "content": blocks})),
        }
    }
    out
}
