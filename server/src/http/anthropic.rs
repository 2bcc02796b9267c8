//! Anthropic's Messages API for every model group: `POST /v1/messages` (and
//! `/anthropic/v1/messages`), streamed with its named SSE events, and
//! `/v1/messages/count_tokens`. For the Anthropic SDK and Claude Code
//! (`x-api-key` or bearer auth). Messages become the neutral (OpenAI-shaped)
//! request; answers and chunks become Anthropic's message and events.

use crate::auth::AuthContext;
use crate::gateway::pipeline::{self, CallMeta, GatewayError};
use crate::gateway::router::RouteError;
use crate::gateway::types::{ChatChunk, ChatRequest, ChatResponse, Usage};
use crate::providers::ErrorKind;
use crate::state::SharedState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tower_http::request_id::RequestId;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/anthropic/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/anthropic/v1/messages/count_tokens", post(count_tokens))
}

/// An error in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
#[derive(Debug)]
pub struct AnthropicError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// A refusal by a rate limit: `retry-after` and `x-ratelimit-*`.
    pub limited: Option<Box<crate::gateway::limits::RateLimited>>,
}

impl AnthropicError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AnthropicError {
            status,
            kind,
            message: message.into(),
            limited: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    fn body(&self) -> Value {
        json!({"type": "error", "error": {"type": self.kind, "message": self.message}})
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response();
        if let Some(l) = &self.limited {
            l.write_headers(resp.headers_mut());
        }
        resp
    }
}

impl From<GatewayError> for AnthropicError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Invalid { message, .. } => AnthropicError::invalid(message),
            GatewayError::Route(RouteError::UnknownModel(m)) => AnthropicError::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                format!("model: {m} is not served by this gateway. Call GET /v1/models to list the models you can use."),
            ),
            GatewayError::Forbidden(m) => AnthropicError::new(StatusCode::FORBIDDEN, "permission_error", m),
            GatewayError::NotFound(m) => AnthropicError::new(StatusCode::NOT_FOUND, "not_found_error", m),
            GatewayError::Unavailable(m) => AnthropicError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded_error", m),
            GatewayError::BudgetExceeded(m) => AnthropicError::new(StatusCode::BAD_REQUEST, "invalid_request_error", m),
            GatewayError::Guardrail(iv) => AnthropicError::new(StatusCode::BAD_REQUEST, "guardrail_violation", iv.message),
            GatewayError::RateLimited(r) => {
                let mut e = AnthropicError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", r.message.clone());
                e.limited = Some(r);
                e
            }
            GatewayError::Route(RouteError::Failed { model, attempts }) => {
                let list: Vec<String> = attempts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("[{}] {}: {}", i + 1, a.model_group, a.error))
                    .collect();
                let message = format!("Model {model} failed: {}", list.join("; "));
                let (status, kind) = match attempts.last().map(|a| a.error.kind) {
                    Some(ErrorKind::BadRequest | ErrorKind::UnsupportedParams | ErrorKind::ContextWindowExceeded) => {
                        (StatusCode::BAD_REQUEST, "invalid_request_error")
                    }
                    Some(ErrorKind::RateLimited) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
                    Some(ErrorKind::Unavailable) => (StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "overloaded_error"),
                    Some(ErrorKind::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "api_error"),
                    _ => (StatusCode::BAD_GATEWAY, "api_error"),
                };
                AnthropicError::new(status, kind, message)
            }
        }
    }
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AnthropicError> {
    v.as_object()
        .ok_or_else(|| AnthropicError::invalid(format!("{path}: Input should be an object")))
}

fn str_at<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, AnthropicError> {
    m.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| AnthropicError::invalid(format!("{path}.{key}: Field required (a string)")))
}

/// Text of `content` that is a string or a list of text blocks.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A source (`base64` or `url`) as a URL the neutral request carries.
fn source_url(block: &Map<String, Value>, path: &str) -> Result<String, AnthropicError> {
    let src = block
        .get("source")
        .map(|s| obj(s, &format!("{path}.source")))
        .transpose()?
        .ok_or_else(|| AnthropicError::invalid(format!("{path}.source: Field required")))?;
    match src.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(format!(
            "data:{};base64,{}",
            str_at(src, "media_type", &format!("{path}.source"))?,
            str_at(src, "data", &format!("{path}.source"))?
        )),
        Some("url") => Ok(str_at(src, "url", &format!("{path}.source"))?.to_string()),
        other => Err(AnthropicError::invalid(format!(
            "{path}.source.type: must be base64 or url, got {other:?}"
        ))),
    }
}

/// The Messages request as an OpenAI chat request.
pub fn to_openai(body: &Value) -> Result<Value, AnthropicError> {
    let body = obj(body, "body")?;
    let model = str_at(body, "model", "body")?;
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            AnthropicError::invalid("max_tokens: Field required (a positive integer)")
        })?;
    let mut messages: Vec<Value> = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(s @ (Value::String(_) | Value::Array(_))) => {
            let text = text_of(s);
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => {
            return Err(AnthropicError::invalid(
                "system: Input should be a string or a list of text blocks",
            ))
        }
    }
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| AnthropicError::invalid("messages: Field required (a list)"))?;
    if list.is_empty() {
        return Err(AnthropicError::invalid(
            "messages: at least one message is required",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        let path = format!("messages.{i}");
        let m = obj(m, &path)?;
        let role = str_at(m, "role", &path)?;
        if role != "user" && role != "assistant" {
            return Err(AnthropicError::invalid(format!(
                "{path}.role: Input should be 'user' or 'assistant'"
            )));
        }
        let blocks: Vec<Value> = match m.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(b)) => b.clone(),
            _ => {
                return Err(AnthropicError::invalid(format!(
                    "{path}.content: Field required"
                )))
            }
        };
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        let mut tool_results = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bp = format!("{path}.content.{j}");
            let b = obj(b, &bp)?;
            match b.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(json!({"type": "text", "text": str_at(b, "text", &bp)?})),
                Some("image") => parts.push(json!({"type": "image_url", "image_url": {"url": source_url(b, &bp)?}})),
                Some("document") => {
                    let src = b.get("source").and_then(Value::as_object);
                    if src.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("text") {
                        let data = src.and_then(|s| s.get("data")).and_then(Value::as_str).unwrap_or_default();
                        parts.push(json!({"type": "text", "text": data}));
                    } else {
                        parts.push(json!({"type": "file", "file": {"file_data": source_url(b, &bp)?}}));
                    }
                }
                Some("tool_use") => tool_calls.push(json!({
                    "id": str_at(b, "id", &bp)?,
                    "type": "function",
                    "function": {"name": str_at(b, "name", &bp)?, "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string()},
                })),
                Some("tool_result") => {
                    let mut text = b.get("content").map(text_of).unwrap_or_default();
                    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                        text = format!("Error: {text}");
                    }
                    tool_results.push(json!({"role": "tool", "tool_call_id": str_at(b, "tool_use_id", &bp)?, "content": text}));
                }
                // Earlier reasoning is not replayed to other providers.
                Some("thinking" | "redacted_thinking") => {}
                other => {
                    return Err(AnthropicError::invalid(format!("{bp}.type: content block type {other:?} is not supported")))
                }
            }
        }
        super::formats::push_turn(&mut messages, role, parts, tool_calls, tool_results);
    }
    let mut req = json!({"model": model, "messages": messages, "max_tokens": max_tokens});
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        req["stream"] = json!(true);
        req["stream_options"] = json!({"include_usage": true});
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            req[to] = v.clone();
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut out = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            let t = obj(t, &format!("tools.{i}"))?;
            let mut f = json!({"name": str_at(t, "name", &format!("tools.{i}"))?});
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            if let Some(s) = t.get("input_schema") {
                f["parameters"] = s.clone();
            }
            out.push(json!({"type": "function", "function": f}));
        }
        if !out.is_empty() {
            req["tools"] = Value::Array(out);
        }
    }
    if let Some(tc) = body.get("tool_choice").and_then(Value::as_object) {
        req["tool_choice"] = match tc.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": str_at(tc, "name", "tool_choice")?}})
            }
            other => {
                return Err(AnthropicError::invalid(format!(
                    "tool_choice.type: unknown {other:?}"
                )))
            }
        };
        if tc.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
            req["parallel_tool_calls"] = json!(false);
        }
    }
    if let Some(u) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        req["user"] = json!(u);
    }
    // Provider-specific knobs go to the model as given (top_k, thinking, …).
    for (k, v) in body {
        if !matches!(
            k.as_str(),
            "model"
                | "max_tokens"
                | "system"
                | "messages"
                | "stream"
                | "temperature"
                | "top_p"
                | "stop_sequences"
                | "tools"
                | "tool_choice"
                | "metadata"
        ) {
            req[k.as_str()] = v.clone();
        }
    }
    Ok(req)
}

pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn usage(u: &Usage) -> Value {
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0);
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(cached),
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

fn message_id(id: &str) -> String {
    format!(
        "msg_{}",
        id.trim_start_matches("chatcmpl-").replace('-', "")
    )
}

/// A neutral answer as an Anthropic message; `model` is the name the caller used.
pub fn from_response(resp: &ChatResponse, model: &str) -> Value {
    let choice = resp.choices.first();
    let mut content = Vec::new();
    if let Some(c) = choice {
        if let Some(t) = c.message.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": t}));
        }
        for tc in c.message.tool_calls.iter().flatten() {
            content.push(json!({"type": "tool_use", "id": tc.id, "name": tc.function.name, "input": super::bedrock::converse::tool_input(&tc.function.arguments)}));
        }
    }
    json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.and_then(|c| c.finish_reason.as_deref())),
        "stop_sequence": null,
        "usage": usage(&resp.usage.clone().unwrap_or_default()),
    })
}

/// Turns neutral chunks into Anthropic's stream events.
pub struct StreamEvents {
    model: String,
    started: bool,
    /// The open block: its index, and the OpenAI tool-call index if it is a tool call.
    open: Option<(u32, Option<u32>)>,
    next_index: u32,
    stop: Option<&'static str>,
    done: bool,
}

impl StreamEvents {
    pub fn new(model: &str) -> Self {
        StreamEvents {
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            stop: None,
            done: false,
        }
    }

    fn close(&mut self, out: &mut Vec<(&'static str, Value)>) {
        if let Some((i, _)) = self.open.take() {
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    pub fn push(&mut self, chunk: &ChatChunk, out: &mut Vec<(&'static str, Value)>) {
        if !self.started {
            self.started = true;
            out.push((
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": message_id(&chunk.id), "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            ));
            out.push(("ping", json!({"type": "ping"})));
        }
        if let Some(c) = chunk.choices.iter().find(|c| c.index == 0) {
            let d = &c.delta;
            if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                let i = match self.open {
                    Some((i, None)) => i,
                    _ => {
                        self.close(out);
                        let i = self.next_index;
                        self.next_index += 1;
                        self.open = Some((i, None));
                        out.push(("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
                        i
                    }
                };
                out.push(("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}})));
            }
            for tc in d.tool_calls.iter().flatten() {
                if !matches!(self.open, Some((_, Some(k))) if k == tc.index) {
                    self.close(out);
                    let i = self.next_index;
                    self.next_index += 1;
                    self.open = Some((i, Some(tc.index)));
                    let name = tc
                        .function
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default();
                    let id = tc.id.clone().unwrap_or_else(|| format!("toolu_{i}"));
                    out.push(("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
                }
                if let Some(args) = tc
                    .function
                    .as_ref()
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    let i = self.open.map(|(i, _)| i).unwrap_or_default();
                    out.push(("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": args}})));
                }
            }
            if let Some(f) = c.finish_reason.as_deref() {
                self.close(out);
                self.stop.get_or_insert(stop_reason(Some(f)));
            }
        }
        if let Some(u) = &chunk.usage {
            if !self.done {
                self.done = true;
                self.close(out);
                out.push((
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null}, "usage": usage(u)}),
                ));
                out.push(("message_stop", json!({"type": "message_stop"})));
            }
        }
    }
}

/// A stream of neutral chunks as Anthropic's SSE events.
pub fn sse(stream: pipeline::LoggedStream, model: &str) -> Response {
    let mut events = StreamEvents::new(model);
    let body = stream.map(move |item| {
        let mut out = Vec::new();
        match item {
            Ok(chunk) => events.push(&chunk, &mut out),
            Err(e) => out.push((
                "error",
                AnthropicError::new(
                    StatusCode::OK,
                    if e.kind == ErrorKind::Guardrail {
                        "guardrail_violation"
                    } else {
                        "api_error"
                    },
                    e.message,
                )
                .body(),
            )),
        }
        let mut buf = Vec::with_capacity(256);
        for (name, data) in out {
            buf.extend_from_slice(b"event: ");
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"\ndata: ");
            buf.extend_from_slice(data.to_string().as_bytes());
            buf.extend_from_slice(b"\n\n");
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(buf))
    });
    super::openai::streamed("text/event-stream", body)
}

fn request(body: &[u8]) -> Result<(ChatRequest, String), AnthropicError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AnthropicError::invalid(format!("The request body is not valid JSON: {e}")))?;
    let req = to_openai(&value)?;
    let model = req["model"].as_str().unwrap_or_default().to_string();
    let req: ChatRequest = serde_json::from_value(req)
        .map_err(|e| AnthropicError::invalid(format!("Invalid request: {e}")))?;
    Ok((req, model))
}

async fn messages(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, AnthropicError> {
    let (req, model) = request(&body)?;
    let meta = CallMeta {
        auth: &auth,
        request_id: super::openai::request_id(rid.as_deref()),
        surface: "anthropic",
        cache: crate::gateway::cache::Directives::from_headers(&headers),
    };
    if req.is_stream() {
        let (stream, info) = pipeline::chat_stream(&state, meta, req).await?;
        let mut resp = sse(stream, &model);
        super::openai::route_headers(&mut resp, &info);
        Ok(resp)
    } else {
        let (answer, info) = pipeline::chat(&state, meta, req).await?;
        let out = from_response(&answer, &model);
        let mut resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            out.to_string(),
        )
            .into_response();
        super::openai::route_headers(&mut resp, &info);
        Ok(resp)
    }
}

/// `{"input_tokens": N}` for a Messages request, counted as the gateway counts
/// prompts it must price itself (`crate::gateway::tokens`).
async fn count_tokens(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    body: Bytes,
) -> Result<Response, AnthropicError> {
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| AnthropicError::invalid(format!("The request body is not valid JSON: {e}")))?;
    if let Some(o) = value.as_object_mut() {
        // count_tokens takes no max_tokens.
        o.entry("max_tokens").or_insert(json!(1));
    }
    let (req, model) = request(value.to_string().as_bytes())?;
    let router = state.router.load();
    if !router.has_model(&model) {
        return Err(GatewayError::Route(RouteError::UnknownModel(model)).into());
    }
    if !router.may_use(&auth, &model) {
        return Err(AnthropicError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!("This key is not allowed to call model={model}"),
        ));
    }
    let n = tokio::task::spawn_blocking(move || crate::gateway::tokens::prompt(&req))
        .await
        .map_err(|e| {
            AnthropicError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                e.to_string(),
            )
        })?;
    Ok(axum::Json(json!({"input_tokens": n})).into_response())
}
