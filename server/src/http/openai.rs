//! The OpenAI-compatible surface: `/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models`. Thin handlers: parse, call the pipeline, render.

use super::errors::ApiError;
use super::formats::{self, Format};
use crate::auth::AuthContext;
use crate::gateway::pipeline::{self, CallMeta, LoggedStream, RouteInfo};
use crate::gateway::types::{ChatRequest, EmbeddingRequest};
use crate::providers::ErrorKind;
use crate::state::SharedState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::json;
use tower_http::request_id::RequestId;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/models/{*id}", get(get_model))
        .route("/{server}/v1/chat/completions", post(server_chat))
        .route("/{server}/v1/embeddings", post(server_embeddings))
}

/// The model group of a named server, if there is one.
fn server_group(state: &SharedState, server: &str) -> Result<String, ApiError> {
    let group = crate::config::server_group(server);
    if state.router.load().has_model(&group) {
        Ok(group)
    } else {
        Err(ApiError::not_found(format!(
            "No server named {server:?}: servers are configured in the config file's `servers:`"
        )))
    }
}

/// `/{server}/v1/chat/completions`: the caller's key is checked and counted as
/// for any model; the server gets its own token and the model name as asked.
async fn server_chat(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Path(server): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let group = server_group(&state, &server)?;
    let mut req: ChatRequest = parse_json(&body)?;
    let asked = std::mem::replace(&mut req.model, group);
    req.extra.insert(
        pipeline::SERVER_MODEL.into(),
        serde_json::Value::String(asked),
    );
    if req.messages.is_empty() {
        return Err(
            ApiError::bad_request("'messages' must contain at least one message").param("messages"),
        );
    }
    let meta = CallMeta {
        auth: &auth,
        request_id: request_id(rid.as_deref()),
        surface: "server",
        cache: crate::gateway::cache::Directives::from_headers(&headers),
    };
    answer(&state, meta, req, Format::OpenAi).await
}

async fn server_embeddings(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Path(server): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let group = server_group(&state, &server)?;
    let mut req: EmbeddingRequest = parse_json(&body)?;
    let asked = std::mem::replace(&mut req.model, group);
    req.extra.insert(
        pipeline::SERVER_MODEL.into(),
        serde_json::Value::String(asked),
    );
    let meta = CallMeta {
        auth: &auth,
        request_id: request_id(rid.as_deref()),
        surface: "server",
        cache: crate::gateway::cache::Directives::from_headers(&headers),
    };
    let (answer, info) = pipeline::embeddings(&state, meta, req).await?;
    routed_json(&answer, &info)
}

/// Parses a JSON body, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(
            ApiError::bad_request("The request body is empty; send a JSON object.")
                .code("invalid_json"),
        );
    }
    // The plain parse is the fast path; only a failure pays for tracking the
    // path, to name the offending field.
    serde_json::from_slice(body).or_else(|_| {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(ApiError::from_json_error)
    })
}

/// The id set (or kept from the caller) by the request-id layer.
pub fn request_id(ext: Option<&RequestId>) -> String {
    ext.and_then(|r| r.header_value().to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Headers naming who answered (values prepared once per deployment).
pub fn route_headers(resp: &mut Response, info: &RouteInfo) {
    let l = &info.deployment.labels;
    let h = resp.headers_mut();
    let attempts = HeaderValue::from((info.retries + 1) as u64);
    let retries = HeaderValue::from(info.retries as u64);
    let fallbacks = HeaderValue::from(info.fallbacks_used as u64);
    h.insert(
        HeaderName::from_static("x-tollgate-model"),
        l.model_group.clone(),
    );
    h.insert(
        HeaderName::from_static("x-tollgate-deployment-id"),
        l.id.clone(),
    );
    h.insert(
        HeaderName::from_static("x-tollgate-provider"),
        l.provider.clone(),
    );
    h.insert(
        HeaderName::from_static("x-tollgate-upstream-model"),
        l.upstream_model.clone(),
    );
    h.insert(HeaderName::from_static("x-tollgate-attempts"), attempts);
    // LiteLLM's names, for clients that read them.
    h.insert(HeaderName::from_static("x-litellm-model-id"), l.id.clone());
    h.insert(
        HeaderName::from_static("x-litellm-model-group"),
        l.model_group.clone(),
    );
    h.insert(
        HeaderName::from_static("x-litellm-attempted-retries"),
        retries,
    );
    h.insert(
        HeaderName::from_static("x-litellm-attempted-fallbacks"),
        fallbacks,
    );
    if let Some(base) = &l.api_base {
        h.insert(
            HeaderName::from_static("x-litellm-model-api-base"),
            base.clone(),
        );
    }
    info.rate.write(h);
    if let Some(c) = &info.cache {
        h.insert(
            HeaderName::from_static("x-tollgate-cache-hit"),
            HeaderValue::from_static(if c.hit { "true" } else { "false" }),
        );
        if let Ok(v) = HeaderValue::from_str(&c.key) {
            h.insert(HeaderName::from_static("x-tollgate-cache-key"), v.clone());
            h.insert(HeaderName::from_static("x-litellm-cache-key"), v);
        }
    }
    if let Some((id, turns)) = &info.session {
        if let Ok(v) = HeaderValue::from_str(id) {
            h.insert(HeaderName::from_static("x-session-id"), v);
        }
        h.insert(
            HeaderName::from_static("x-history-turns"),
            HeaderValue::from(*turns as u64),
        );
    }
}

/// A 200 JSON answer from a routed call, with the headers naming who answered.
fn routed_json<T: serde::Serialize>(value: &T, info: &RouteInfo) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            format!("encoding failed: {e}"),
        )
    })?;
    let mut resp = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response();
    route_headers(&mut resp, info);
    Ok(resp)
}

fn validate_chat(req: &ChatRequest) -> Result<(), ApiError> {
    if req.model.trim().is_empty() {
        return Err(ApiError::bad_request("'model' must not be empty").param("model"));
    }
    if req.messages.is_empty() && crate::gateway::prompts::parse_arn(&req.model).is_none() {
        return Err(
            ApiError::bad_request("'messages' must contain at least one message").param("messages"),
        );
    }
    if req.n == Some(0) {
        return Err(ApiError::bad_request("'n' must be at least 1").param("n"));
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::bad_request(format!(
                "'temperature' must be between 0 and 2, got {t}"
            ))
            .param("temperature"));
        }
    }
    if let Some(p) = req.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(
                ApiError::bad_request(format!("'top_p' must be between 0 and 1, got {p}"))
                    .param("top_p"),
            );
        }
    }
    if req.stream_options.is_some() && !req.is_stream() {
        return Err(ApiError::bad_request(
            "'stream_options' is only allowed when 'stream' is true",
        )
        .param("stream_options"));
    }
    Ok(())
}

#[derive(serde::Deserialize, Default)]
pub(super) struct ChatQuery {
    target_format: Option<String>,
    model: Option<String>,
}

/// The neutral request for a body in any accepted shape (OpenAI, Bedrock-Claude,
/// Titan), and the shape it came in. OpenAI bodies take the fast path.
fn chat_request(body: &[u8], query_model: Option<&str>) -> Result<(ChatRequest, Format), ApiError> {
    if let Ok(req) = serde_json::from_slice::<ChatRequest>(body) {
        if !req.extra.contains_key("anthropic_version") {
            return Ok((req, Format::OpenAi));
        }
    }
    let value: serde_json::Value = parse_json(body)?;
    let format = Format::detect(&value);
    let model = || {
        value
            .get("model")
            .and_then(serde_json::Value::as_str)
            .or(query_model)
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::bad_request("'model' is required (in the body or as ?model=)")
                    .param("model")
            })
    };
    let converted = match format {
        Format::OpenAi => return Ok((parse_json(body)?, Format::OpenAi)),
        Format::BedrockClaude => {
            let mut v = value.clone();
            v["model"] = serde_json::Value::String(model()?);
            if let Some(o) = v.as_object_mut() {
                o.remove("anthropic_version");
            }
            super::anthropic::to_openai(&v).map_err(|e| ApiError::bad_request(e.message))?
        }
        Format::BedrockTitan => formats::titan_to_openai(&value, &model()?)
            .map_err(|e| ApiError::bad_request(e).param("inputText"))?,
    };
    let req = serde_json::from_value(converted)
        .map_err(|e| ApiError::bad_request(format!("Invalid request: {e}")))?;
    Ok((req, format))
}

pub(super) async fn chat_completions(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Query(q): Query<ChatQuery>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (req, input) = chat_request(&body, q.model.as_deref())?;
    // Answers come back in the shape asked for, else OpenAI's.
    let target = match q.target_format.as_deref() {
        None => Format::OpenAi,
        Some(t) => Format::parse(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "target_format must be openai, bedrock_claude or bedrock_titan; got {t:?}"
            ))
            .param("target_format")
        })?,
    };
    if input == Format::OpenAi {
        validate_chat(&req)?;
    }
    let meta = CallMeta {
        auth: &auth,
        request_id: request_id(rid.as_deref()),
        surface: "openai",
        cache: crate::gateway::cache::Directives::from_headers(&headers),
    };
    answer(&state, meta, req, target).await
}

/// Calls the model and renders the answer in `target`'s shape, streamed or not.
async fn answer(
    state: &SharedState,
    meta: CallMeta<'_>,
    req: ChatRequest,
    target: Format,
) -> Result<Response, ApiError> {
    let model = req.model.clone();
    if req.is_stream() {
        let (stream, info) = pipeline::chat_stream(state, meta, req).await?;
        let mut resp = match target {
            Format::OpenAi => sse_response(stream),
            Format::BedrockClaude => super::anthropic::sse(stream, &model),
            Format::BedrockTitan => titan_sse(stream),
        };
        route_headers(&mut resp, &info);
        Ok(resp)
    } else {
        let (answer, info) = pipeline::chat(state, meta, req).await?;
        match (target, &info.session) {
            (Format::BedrockClaude, _) => {
                routed_json(&super::anthropic::from_response(&answer, &model), &info)
            }
            (Format::BedrockTitan, _) => routed_json(&formats::titan_response(&answer), &info),
            // The session id goes in the body too, where the OpenAI SDK shows it (`model_extra`).
            (Format::OpenAi, Some((id, turns))) => {
                let mut v = serde_json::to_value(&answer).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("session_id".into(), json!(id));
                    o.insert("history_turns".into(), json!(turns));
                }
                routed_json(&v, &info)
            }
            (Format::OpenAi, None) => routed_json(&answer, &info),
        }
    }
}

/// Titan's streamed chunks as SSE `data:` events.
fn titan_sse(stream: LoggedStream) -> Response {
    let mut titan = formats::TitanStream::default();
    let body = stream.map(move |item| {
        let mut out = Vec::new();
        match item {
            Ok(chunk) => titan.push(&chunk, &mut out),
            Err(e) => out.push(json!({"error": {"message": e.message, "type": "api_error"}})),
        }
        let mut buf = Vec::new();
        for v in out {
            buf.extend_from_slice(b"data: ");
            buf.extend_from_slice(v.to_string().as_bytes());
            buf.extend_from_slice(b"\n\n");
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(buf))
    });
    streamed("text/event-stream", body)
}

/// A 200 streamed answer of `content_type` from a stream of encoded pieces.
pub fn streamed(
    content_type: &'static str,
    body: impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Renders neutral chunks as OpenAI's SSE: `data: {chunk}\n\n` … `data: [DONE]\n\n`.
/// A failure after the stream was committed is sent as an error event.
fn sse_response(stream: LoggedStream) -> Response {
    let body = stream
        .map(|item| {
            let mut buf = Vec::with_capacity(256);
            buf.extend_from_slice(b"data: ");
            match item {
                Ok(chunk) => {
                    if serde_json::to_writer(&mut buf, &chunk).is_err() {
                        return Ok::<_, std::convert::Infallible>(Bytes::new());
                    }
                }
                Err(e) => {
                    let kind = if e.kind == ErrorKind::Guardrail { "guardrail_violation" } else { "api_error" };
                    let err = json!({"error": {"message": e.message, "type": kind, "param": null, "code": e.status}});
                    buf.extend_from_slice(err.to_string().as_bytes());
                }
            }
            buf.extend_from_slice(b"\n\n");
            Ok(Bytes::from(buf))
        })
        .chain(futures::stream::once(async { Ok(Bytes::from_static(b"data: [DONE]\n\n")) }));
    streamed("text/event-stream", body)
}

async fn embeddings(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: EmbeddingRequest = parse_json(&body)?;
    if req.model.trim().is_empty() {
        return Err(ApiError::bad_request("'model' must not be empty").param("model"));
    }
    let empty = match &req.input {
        crate::gateway::types::EmbeddingInput::One(s) => s.is_empty(),
        crate::gateway::types::EmbeddingInput::Many(v) => v.is_empty(),
        crate::gateway::types::EmbeddingInput::Tokens(v) => v.is_empty(),
        crate::gateway::types::EmbeddingInput::ManyTokens(v) => v.is_empty(),
    };
    if empty {
        return Err(ApiError::bad_request("'input' must not be empty").param("input"));
    }
    let meta = CallMeta {
        auth: &auth,
        request_id: request_id(rid.as_deref()),
        surface: "openai",
        cache: crate::gateway::cache::Directives::from_headers(&headers),
    };
    let (answer, info) = pipeline::embeddings(&state, meta, req).await?;
    routed_json(&answer, &info)
}

fn model_object(id: &str, created: i64) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "tollgate"})
}

pub(super) async fn list_models(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
) -> Response {
    let router = state.router.load();
    let mut data: Vec<_> = router
        .groups()
        .filter(|(name, _)| router.may_use(&auth, name))
        .map(|(name, _)| model_object(name, state.started_at))
        .collect();
    // `model_group_alias` names answer too (unless hidden).
    data.extend(
        router
            .visible_aliases()
            .filter(|(_, to)| router.may_use(&auth, to))
            .map(|(alias, _)| model_object(alias, state.started_at)),
    );
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn get_model(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let router = state.router.load();
    let group = router.alias(&id).unwrap_or(&id);
    if router.has_model(group) && router.may_use(&auth, group) {
        Ok(axum::Json(model_object(&id, state.started_at)).into_response())
    } else {
        Err(
            ApiError::not_found(format!("The model '{id}' does not exist"))
                .param("model")
                .code("model_not_found"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AppState;

    /// The size of the future a function returns, without calling it.
    fn returned<A, B, C, Fut>(_: impl FnOnce(A, B, C) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every future is moved (copied whole) a few times on its way into the
    /// task that polls it: the chat path's once reached 42 KB, most of it for
    /// branches a plain call never takes (a managed prompt read from Bedrock,
    /// Bedrock guardrails, the chat history's store transaction).
    #[test]
    fn chat_call_futures_stay_small() {
        let chat = returned(
            |s: &'static AppState, m: CallMeta<'static>, r: ChatRequest| {
                crate::gateway::pipeline::chat(s, m, r)
            },
        );
        let stream = returned(
            |s: &'static AppState, m: CallMeta<'static>, r: ChatRequest| {
                crate::gateway::pipeline::chat_stream(s, m, r)
            },
        );
        let answered = returned(
            |s: &'static SharedState, m: CallMeta<'static>, r: ChatRequest| {
                answer(s, m, r, Format::OpenAi)
            },
        );
        println!("pipeline::chat {chat} B, pipeline::chat_stream {stream} B, answer {answered} B");
        assert!(chat <= 10240 && stream <= 10240, "{chat} / {stream} bytes");
        assert!(answered <= 12288, "{answered} bytes");
    }
}
