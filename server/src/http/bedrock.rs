//! The Bedrock runtime surface under `/bedrock`: `converse` and
//! `converse-stream` (and `invoke` / `invoke-with-response-stream` for
//! Anthropic and Titan bodies) for any model Tollgate serves, as boto3's
//! `bedrock-runtime` client calls them (`endpoint_url=…/bedrock`, a bearer
//! key). Errors use AWS's JSON shape and `x-amzn-errortype`, so boto3 raises
//! the matching exception class; ConverseStream answers in AWS event-stream
//! framing, and a failure after the stream began is an `exception` frame.

pub mod converse;

use super::formats::Format;
use crate::auth::AuthContext;
use crate::gateway::pipeline::{self, CallMeta, GatewayError};
use crate::gateway::router::{Attempt, RouteError};
use crate::gateway::types::ChatRequest;
use crate::providers::ErrorKind;
use crate::state::SharedState;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as EsValue, Message};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Instant;
use tower_http::request_id::RequestId;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/bedrock/model/{model_id}/converse", post(converse))
        .route(
            "/bedrock/model/{model_id}/converse-stream",
            post(converse_stream),
        )
        .route("/bedrock/model/{model_id}/invoke", post(invoke))
        .route(
            "/bedrock/model/{model_id}/invoke-with-response-stream",
            post(invoke_stream),
        )
}

/// An error in AWS's shape: `{"message": …}` with `x-amzn-errortype`.
#[derive(Debug)]
pub struct AwsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// A refusal by a rate limit: `retry-after` and `x-ratelimit-*`.
    pub limited: Option<Box<crate::gateway::limits::RateLimited>>,
}

impl AwsError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            kind,
            message: message.into(),
            limited: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// The key was missing or refused.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
    }

    /// The event-stream exception name of this error (camelCase, as Bedrock sends it).
    fn stream_kind(&self) -> &'static str {
        match self.kind {
            "ThrottlingException" => "throttlingException",
            "ValidationException" => "validationException",
            "ServiceUnavailableException" => "serviceUnavailableException",
            "ModelTimeoutException" => "modelTimeoutException",
            "InternalServerException" => "internalServerException",
            _ => "modelStreamErrorException",
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({"message": self.message}).to_string();
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            self.kind
        )) {
            resp.headers_mut()
                .insert(HeaderName::from_static("x-amzn-errortype"), v);
        }
        if let Some(l) = &self.limited {
            l.write_headers(resp.headers_mut());
        }
        resp
    }
}

impl From<GatewayError> for AwsError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Invalid { message, .. } => AwsError::validation(message),
            GatewayError::Route(RouteError::UnknownModel(m)) => AwsError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Model {m} is not served by this gateway. Call GET /v1/models to list the models you can use."),
            ),
            GatewayError::Forbidden(m) => AwsError::access_denied(m),
            GatewayError::NotFound(m) => {
                AwsError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", m)
            }
            GatewayError::Unavailable(m) => {
                AwsError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", m)
            }
            // A spent budget is a quota: not retried by the SDK, unlike throttling.
            GatewayError::BudgetExceeded(m) => {
                AwsError::new(StatusCode::BAD_REQUEST, "ServiceQuotaExceededException", m)
            }
            GatewayError::Guardrail(iv) => AwsError::validation(iv.message),
            GatewayError::RateLimited(r) => {
                let mut e = AwsError::new(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", r.message.clone());
                e.limited = Some(r);
                e
            }
            GatewayError::Route(RouteError::Failed { model, attempts }) => from_attempts(&model, &attempts),
        }
    }
}

fn from_attempts(model: &str, attempts: &[Attempt]) -> AwsError {
    let message = match attempts.len() {
        0 => format!("No deployment could serve model {model}"),
        _ => {
            let list: Vec<String> = attempts
                .iter()
                .enumerate()
                .map(|(i, a)| format!("[{}] {}: {}", i + 1, a.model_group, a.error))
                .collect();
            format!("Model {model} failed: {}", list.join("; "))
        }
    };
    let (status, kind) = match attempts.last().map(|a| a.error.kind) {
        Some(
            ErrorKind::BadRequest | ErrorKind::UnsupportedParams | ErrorKind::ContextWindowExceeded,
        ) => (StatusCode::BAD_REQUEST, "ValidationException"),
        Some(ErrorKind::RateLimited) => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        Some(ErrorKind::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
        ),
        Some(ErrorKind::Timeout) => (StatusCode::REQUEST_TIMEOUT, "ModelTimeoutException"),
        _ => (StatusCode::FAILED_DEPENDENCY, "ModelErrorException"),
    };
    AwsError::new(status, kind, message)
}

/// The model group a `modelId` names: a group itself, or the upstream model id
/// (Bedrock model id, inference profile id or ARN) of one of its deployments.
fn resolve_model(state: &SharedState, model_id: &str) -> String {
    state
        .router
        .load()
        .group_for(model_id)
        .unwrap_or_else(|| model_id.to_string())
}

fn parse_body(body: &[u8]) -> Result<Value, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AwsError::validation(
            "The request body is empty; send a Converse request (JSON).",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| AwsError::validation(format!("The request body is not valid JSON: {e}")))
}

/// The neutral request for a Converse body, with the gateway fields it carried,
/// and whether it named a guardrail in Bedrock's own `guardrailConfig`.
fn request(
    state: &SharedState,
    model_id: &str,
    body: &[u8],
    stream: bool,
) -> Result<(ChatRequest, bool), AwsError> {
    let body = parse_body(body)?;
    let guardrail_config = body.get("guardrailConfig").is_some_and(|g| !g.is_null());
    let model = resolve_model(state, model_id);
    let (mut req, gateway) = converse::to_openai(&body, &model, stream)?;
    // Chat history and managed prompts: the pipeline reads these from the request.
    for (k, v) in gateway {
        req[k.as_str()] = v;
    }
    let req: ChatRequest = serde_json::from_value(req)
        .map_err(|e| AwsError::validation(format!("Invalid Converse request: {e}")))?;
    if req.messages.is_empty() && crate::gateway::prompts::parse_arn(&req.model).is_none() {
        return Err(AwsError::validation(
            "messages must contain at least one message",
        ));
    }
    Ok((req, guardrail_config))
}

fn call_meta<'a>(
    auth: &'a AuthContext,
    request_id: &str,
    headers: &axum::http::HeaderMap,
) -> CallMeta<'a> {
    CallMeta {
        auth,
        request_id: request_id.to_string(),
        surface: "bedrock",
        cache: crate::gateway::cache::Directives::from_headers(headers),
    }
}

fn with_ids(resp: &mut Response, request_id: &str, info: &pipeline::RouteInfo) {
    super::openai::route_headers(resp, info);
    with_request_id(resp, request_id);
}

/// `x-amzn-requestid`, as Bedrock answers carry it.
fn with_request_id(resp: &mut Response, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
}

/// A 200 with a JSON body.
fn json_ok(out: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out.to_string(),
    )
        .into_response()
}

async fn converse(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Path(model_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, AwsError> {
    let started = Instant::now();
    let (req, guardrail_config) = request(&state, &model_id, &body, false)?;
    let request_id = super::openai::request_id(rid.as_deref());
    let meta = call_meta(&auth, &request_id, &headers);
    let (answer, info) = match pipeline::chat(&state, meta, req).await {
        Ok(done) => done,
        // As Bedrock does: a guardrail named in `guardrailConfig` that intervenes
        // is an answer, not an error, with the guardrail's message as its text.
        Err(GatewayError::Guardrail(iv)) if guardrail_config && !iv.unavailable => {
            let out = converse::intervened(&iv.message, started.elapsed().as_millis() as u64);
            let mut resp = json_ok(&out);
            with_request_id(&mut resp, &request_id);
            return Ok(resp);
        }
        Err(e) => return Err(e.into()),
    };
    let out = converse::from_response(&answer, started.elapsed().as_millis() as u64);
    let mut resp = json_ok(&out);
    with_ids(&mut resp, &request_id, &info);
    Ok(resp)
}

/// One event-stream message.
fn frame(headers: Vec<Header>, payload: Vec<u8>) -> Bytes {
    let msg = Message::new_from_parts(headers, Bytes::from(payload));
    let mut buf = Vec::with_capacity(128);
    // Writing to a Vec fails only for messages over 16 MB, which chunks never are.
    if write_message_to(&msg, &mut buf).is_err() {
        buf.clear();
    }
    Bytes::from(buf)
}

fn event(kind: &'static str, payload: &Value) -> Bytes {
    frame(
        vec![
            Header::new(":event-type", EsValue::String(kind.into())),
            Header::new(":content-type", EsValue::String("application/json".into())),
            Header::new(":message-type", EsValue::String("event".into())),
        ],
        payload.to_string().into_bytes(),
    )
}

fn exception(e: &AwsError) -> Bytes {
    frame(
        vec![
            Header::new(":exception-type", EsValue::String(e.stream_kind().into())),
            Header::new(":content-type", EsValue::String("application/json".into())),
            Header::new(":message-type", EsValue::String("exception".into())),
        ],
        json!({"message": e.message}).to_string().into_bytes(),
    )
}

async fn converse_stream(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Path(model_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, AwsError> {
    let started = Instant::now();
    let (req, guardrail_config) = request(&state, &model_id, &body, true)?;
    let request_id = super::openai::request_id(rid.as_deref());
    let meta = call_meta(&auth, &request_id, &headers);
    let (stream, info) = match pipeline::chat_stream(&state, meta, req).await {
        Ok(started) => started,
        Err(GatewayError::Guardrail(iv)) if guardrail_config && !iv.unavailable => {
            // Refused before the model was called: a whole, short stream that
            // says so, as Bedrock answers a blocked input.
            let mut out = Vec::new();
            converse::StreamEvents::default().intervene(
                &iv.message,
                Some(started.elapsed().as_millis() as u64),
                &mut out,
            );
            let buf: Vec<u8> = out.iter().flat_map(|(k, p)| event(k, p)).collect();
            let body = futures::stream::once(async move {
                Ok::<_, std::convert::Infallible>(Bytes::from(buf))
            });
            let mut resp = super::openai::streamed("application/vnd.amazon.eventstream", body);
            with_request_id(&mut resp, &request_id);
            return Ok(resp);
        }
        Err(e) => return Err(e.into()),
    };
    let mut events = converse::StreamEvents::default();
    let body = stream.map(move |item| {
        let mut out = Vec::new();
        let bytes = match item {
            Ok(chunk) => {
                events.push(&chunk, started.elapsed().as_millis() as u64, &mut out);
                let mut buf = Vec::new();
                for (kind, payload) in &out {
                    buf.extend_from_slice(&event(kind, payload));
                }
                Bytes::from(buf)
            }
            // A guardrail named in `guardrailConfig` cutting the answer ends the
            // message with Bedrock's stop reason; the text already sent passed it.
            Err(e) if guardrail_config && e.kind == ErrorKind::Guardrail => {
                events.intervene(&e.message, None, &mut out);
                out.iter()
                    .flat_map(|(k, p)| event(k, p))
                    .collect::<Vec<u8>>()
                    .into()
            }
            Err(e) => {
                let kind = match e.kind {
                    ErrorKind::RateLimited => "ThrottlingException",
                    ErrorKind::Unavailable => "ServiceUnavailableException",
                    ErrorKind::Timeout => "ModelTimeoutException",
                    ErrorKind::BadRequest
                    | ErrorKind::ContextWindowExceeded
                    | ErrorKind::Guardrail => "ValidationException",
                    _ => "ModelStreamErrorException",
                };
                exception(&AwsError::new(StatusCode::OK, kind, e.message))
            }
        };
        Ok::<_, std::convert::Infallible>(bytes)
    });
    let mut resp = super::openai::streamed("application/vnd.amazon.eventstream", body);
    with_ids(&mut resp, &request_id, &info);
    Ok(resp)
}

/// An InvokeModel body (Anthropic's Bedrock format, or Titan text) as the
/// neutral request, with its format.
fn invoke_request(
    state: &SharedState,
    model_id: &str,
    body: &[u8],
    stream: bool,
) -> Result<(ChatRequest, Format), AwsError> {
    let value = parse_body(body)?;
    let model = resolve_model(state, model_id);
    let format = Format::detect(&value);
    let mut req = match format {
        Format::BedrockClaude => {
            let mut v = value;
            if let Some(o) = v.as_object_mut() {
                o.remove("anthropic_version");
                o.insert("model".into(), Value::String(model));
                o.remove("stream");
            }
            super::anthropic::to_openai(&v).map_err(|e| AwsError::validation(e.message))?
        }
        Format::BedrockTitan => {
            super::formats::titan_to_openai(&value, &model).map_err(AwsError::validation)?
        }
        Format::OpenAi => {
            return Err(AwsError::validation(
                "InvokeModel here takes Anthropic Messages bodies (with anthropic_version) or Titan text bodies (inputText); use converse for anything else",
            ))
        }
    };
    if stream {
        req["stream"] = json!(true);
        req["stream_options"] = json!({"include_usage": true});
    }
    let req: ChatRequest = serde_json::from_value(req)
        .map_err(|e| AwsError::validation(format!("Invalid request: {e}")))?;
    Ok((req, format))
}

async fn invoke(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Path(model_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, AwsError> {
    let (req, format) = invoke_request(&state, &model_id, &body, false)?;
    let request_id = super::openai::request_id(rid.as_deref());
    let meta = call_meta(&auth, &request_id, &headers);
    let (answer, info) = pipeline::chat(&state, meta, req).await?;
    let out = match format {
        Format::BedrockTitan => super::formats::titan_response(&answer),
        _ => super::anthropic::from_response(&answer, &model_id),
    };
    let mut resp = json_ok(&out);
    with_ids(&mut resp, &request_id, &info);
    Ok(resp)
}

/// One `chunk` event of InvokeModelWithResponseStream: the model's own event, base64.
fn chunk_event(payload: &Value) -> Bytes {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.encode(payload.to_string());
    event("chunk", &json!({ "bytes": bytes }))
}

async fn invoke_stream(
    State(state): State<SharedState>,
    Extension(auth): Extension<AuthContext>,
    rid: Option<Extension<RequestId>>,
    Path(model_id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, AwsError> {
    let (req, format) = invoke_request(&state, &model_id, &body, true)?;
    let request_id = super::openai::request_id(rid.as_deref());
    let meta = call_meta(&auth, &request_id, &headers);
    let (stream, info) = pipeline::chat_stream(&state, meta, req).await?;
    let mut claude = super::anthropic::StreamEvents::new(&model_id);
    let mut titan = super::formats::TitanStream::default();
    let body = stream.map(move |item| {
        let bytes = match item {
            Ok(chunk) => {
                let mut buf = Vec::new();
                if format == Format::BedrockTitan {
                    let mut out = Vec::new();
                    titan.push(&chunk, &mut out);
                    for v in &out {
                        buf.extend_from_slice(&chunk_event(v));
                    }
                } else {
                    let mut out = Vec::new();
                    claude.push(&chunk, &mut out);
                    for (_, v) in &out {
                        buf.extend_from_slice(&chunk_event(v));
                    }
                }
                Bytes::from(buf)
            }
            Err(e) => exception(&AwsError::new(
                StatusCode::OK,
                if e.kind == ErrorKind::Guardrail {
                    "ValidationException"
                } else {
                    "ModelStreamErrorException"
                },
                e.message,
            )),
        };
        Ok::<_, std::convert::Infallible>(bytes)
    });
    let mut resp = super::openai::streamed("application/vnd.amazon.eventstream", body);
    with_ids(&mut resp, &request_id, &info);
    Ok(resp)
}
