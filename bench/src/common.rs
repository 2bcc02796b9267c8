//! Request intake, fault/trigger handling, provider error shapes and the
//! streaming body shared by the three providers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use crate::fault::FaultKind;
use crate::state::{RecordedRequest, Shared};
use crate::text::Outcome;

/// Largest request body the mock reads.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A received request, body read and (when possible) parsed.
pub(crate) struct Req {
    pub path: String,
    pub headers: HeaderMap,
    /// The body parsed as JSON (`None` when empty or not JSON).
    pub json: Option<Value>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Marker on a response: the server drops the connection instead of answering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResetConnection;

pub(crate) fn reset_response() -> Response {
    let mut r = Response::new(Body::empty());
    r.extensions_mut().insert(ResetConnection);
    r
}

/// Reads the body, counts and (if configured) records the request.
pub(crate) async fn intake(st: &Shared, req: Request) -> Result<Req, Response> {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return Err(reset_response()),
    };
    let json = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<Value>(&body).ok()
    };
    st.count_request();
    if st.config.record {
        let mut headers = BTreeMap::new();
        for (k, v) in &parts.headers {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|e: &mut String| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let body_v = match &json {
            Some(v) => v.clone(),
            None if body.is_empty() => Value::Null,
            None => Value::String(String::from_utf8_lossy(&body).into_owned()),
        };
        st.record(RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body: body_v,
        });
    }
    Ok(Req {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        json,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    OpenAi,
    Anthropic,
    Bedrock,
}

/// Timing and abort plan for one request, after faults and model triggers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub first_token_delay: Duration,
    pub inter_chunk_delay: Duration,
    /// Abort the connection after this many stream events.
    pub abort_after: Option<usize>,
}

impl Plan {
    /// How long a non-stream answer waits: the time the stream would have taken.
    pub fn non_stream_delay(&self, outcome: &Outcome) -> Duration {
        if self.inter_chunk_delay.is_zero() {
            return self.first_token_delay;
        }
        let extra = u32::try_from(outcome.token_events().saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_token_delay + self.inter_chunk_delay.saturating_mul(extra)
    }
}

/// `fail-NNN` in a model id → that status.
fn trigger_status(model: &str) -> Option<u16> {
    let mut rest = model;
    while let Some(i) = rest.find("fail-") {
        let after = &rest[i + 5..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if digits.len() == 3 {
            if let Ok(s) = digits.parse::<u16>() {
                if (400..600).contains(&s) {
                    return Some(s);
                }
            }
        }
        rest = after;
    }
    None
}

/// `slow-<N>ms` in a model id → N milliseconds.
fn trigger_slow(model: &str) -> Option<u64> {
    let mut rest = model;
    while let Some(i) = rest.find("slow-") {
        let after = &rest[i + 5..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with("ms") {
            if let Ok(ms) = digits.parse::<u64>() {
                return Some(ms);
            }
        }
        rest = after;
    }
    None
}

/// Consumes the next matching fault and applies model-name triggers.
pub(crate) async fn preflight(
    st: &Shared,
    provider: Provider,
    path: &str,
    model: &str,
) -> Result<Plan, Response> {
    let mut plan = Plan {
        first_token_delay: st.config.first_token_delay,
        inter_chunk_delay: st.config.inter_chunk_delay,
        abort_after: None,
    };
    if let Some(f) = st.faults.take(path, model) {
        if let Some(ms) = f.delay_ms.filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match f.effective_kind() {
            FaultKind::Status => {
                return Err(provider.error(
                    f.status.unwrap_or(500),
                    f.message.as_deref(),
                    f.retry_after,
                ))
            }
            FaultKind::Reset => return Err(reset_response()),
            FaultKind::StreamErrorAfter => plan.abort_after = Some(f.chunks.unwrap_or(0)),
            FaultKind::Delay => {}
        }
    }
    if let Some(status) = trigger_status(model) {
        return Err(provider.error(status, None, None));
    }
    if let Some(ms) = trigger_slow(model) {
        plan.first_token_delay = Duration::from_millis(ms);
    }
    Ok(plan)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn json_bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => json_bytes_response(status, b),
        Err(_) => json_bytes_response(StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec()),
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn with_retry_after(mut r: Response, retry_after: Option<u64>) -> Response {
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// OpenAI's error shape.
pub(crate) fn openai_error(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    json_response(
        status_code(status),
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

/// Anthropic's error shape.
pub(crate) fn anthropic_error(status: u16, kind: &str, message: &str) -> Response {
    let mut r = json_response(
        status_code(status),
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    );
    r.headers_mut()
        .insert("request-id", HeaderValue::from_static("req_mock"));
    r
}

/// Bedrock (AWS JSON protocol) error: `{"message"}` plus `x-amzn-errortype`.
pub(crate) fn bedrock_error(status: u16, name: &str, message: &str) -> Response {
    let mut r = json_response(status_code(status), &json!({ "message": message }));
    let t = format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(v) = HeaderValue::from_str(&t) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("mock-request-id"),
    );
    r
}

impl Provider {
    /// The provider's error for `status`, with its default message unless one is given.
    pub fn error(self, status: u16, message: Option<&str>, retry_after: Option<u64>) -> Response {
        let r = match self {
            Provider::OpenAi => {
                let (msg, kind, code) = match status {
                    400 => ("Invalid request (mock error).", "invalid_request_error", None),
                    401 => (
                        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                        "invalid_request_error",
                        Some("invalid_api_key"),
                    ),
                    403 => ("You are not allowed to access this resource.", "permission_error", None),
                    404 => (
                        "The model does not exist or you do not have access to it.",
                        "invalid_request_error",
                        Some("model_not_found"),
                    ),
                    408 => ("Request timed out.", "timeout", None),
                    429 => (
                        "Rate limit reached for requests. Please try again later.",
                        "requests",
                        Some("rate_limit_exceeded"),
                    ),
                    500 => (
                        "The server had an error while processing your request. Sorry about that!",
                        "server_error",
                        None,
                    ),
                    502 => ("Bad gateway.", "server_error", None),
                    503 => ("The server is overloaded or not ready yet.", "server_error", None),
                    s if s < 500 => ("Mock client error.", "invalid_request_error", None),
                    _ => ("Mock server error.", "server_error", None),
                };
                openai_error(status, message.unwrap_or(msg), kind, None, code)
            }
            Provider::Anthropic => {
                let (kind, msg) = match status {
                    400 => ("invalid_request_error", "Invalid request (mock error)."),
                    401 => ("authentication_error", "invalid x-api-key"),
                    403 => (
                        "permission_error",
                        "Your API key does not have permission to use the specified resource.",
                    ),
                    404 => (
                        "not_found_error",
                        "The requested resource could not be found.",
                    ),
                    413 => (
                        "request_too_large",
                        "Request exceeds the maximum allowed number of bytes.",
                    ),
                    429 => (
                        "rate_limit_error",
                        "Number of request tokens has exceeded your per-minute rate limit.",
                    ),
                    529 => ("overloaded_error", "Overloaded"),
                    s if s < 500 => ("invalid_request_error", "Mock client error."),
                    _ => ("api_error", "Internal server error"),
                };
                anthropic_error(status, kind, message.unwrap_or(msg))
            }
            Provider::Bedrock => {
                let (name, msg) = match status {
                    400 => ("ValidationException", "Malformed input request, please reformat your input and try again."),
                    401 => ("UnrecognizedClientException", "The security token included in the request is invalid."),
                    403 => ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
                    404 => ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
                    408 => ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
                    424 => ("ModelErrorException", "The model returned an error."),
                    429 => ("ThrottlingException", "Too many requests, please wait before trying again."),
                    503 => ("ServiceUnavailableException", "Bedrock is unable to process your request."),
                    s if s < 500 => ("ValidationException", "Mock client error."),
                    _ => ("InternalServerException", "The server encountered an internal error while processing the request."),
                };
                bedrock_error(status, name, message.unwrap_or(msg))
            }
        };
        with_retry_after(r, retry_after)
    }
}

/// One event of a streamed body.
pub(crate) struct Ev {
    pub bytes: Bytes,
    /// Token events are paced by `first_token_delay` / `inter_chunk_delay`;
    /// the others go out right after the previous event.
    pub token: bool,
}

impl Ev {
    pub fn token(bytes: impl Into<Bytes>) -> Ev {
        Ev {
            bytes: bytes.into(),
            token: true,
        }
    }

    pub fn meta(bytes: impl Into<Bytes>) -> Ev {
        Ev {
            bytes: bytes.into(),
            token: false,
        }
    }
}

/// Counts an active stream for as long as it lives.
struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(st: Arc<Shared>) -> Self {
        st.stream_started();
        ActiveGuard(st)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.stream_ended();
    }
}

struct StreamState {
    events: std::vec::IntoIter<Ev>,
    sent: usize,
    first_done: bool,
    plan: Plan,
    done: bool,
    _guard: Option<ActiveGuard>,
}

/// A paced body over `events`; counted in `active_streams` when `st` is given.
pub(crate) fn paced_body(events: Vec<Ev>, plan: Plan, st: Option<Arc<Shared>>) -> Body {
    let state = StreamState {
        events: events.into_iter(),
        sent: 0,
        first_done: false,
        plan,
        done: false,
        _guard: st.map(ActiveGuard::new),
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        if let Some(n) = s.plan.abort_after {
            if s.sent >= n || s.events.len() == 0 {
                s.done = true;
                // Let hyper flush the headers and the events sent so far
                // before the abort tears the connection down.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Some((
                    Err(std::io::Error::other(
                        "mock upstream: injected stream abort",
                    )),
                    s,
                ));
            }
        }
        let ev = s.events.next()?;
        if ev.token {
            let d = if s.first_done {
                s.plan.inter_chunk_delay
            } else {
                s.first_done = true;
                s.plan.first_token_delay
            };
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
        }
        s.sent += 1;
        Some((Ok(ev.bytes), s))
    });
    Body::from_stream(stream)
}

/// A streaming response with the given content type.
pub(crate) fn stream_response(
    st: &Arc<Shared>,
    content_type: &'static str,
    events: Vec<Ev>,
    plan: Plan,
) -> Response {
    let mut r = Response::new(paced_body(events, plan, Some(st.clone())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A non-stream JSON answer honoring the plan: waits, and for a
/// `stream_error_after` fault sends half the body and aborts.
pub(crate) async fn finish_json(
    status: StatusCode,
    bytes: Vec<u8>,
    plan: Plan,
    outcome: Option<&Outcome>,
) -> Response {
    let delay = match outcome {
        Some(o) => plan.non_stream_delay(o),
        None => plan.first_token_delay,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if plan.abort_after.is_some() {
        let half = Bytes::from(bytes);
        let cut = half.len() / 2;
        let plan = Plan {
            first_token_delay: Duration::ZERO,
            inter_chunk_delay: Duration::ZERO,
            abort_after: Some(1),
        };
        let mut r = Response::new(paced_body(vec![Ev::meta(half.slice(..cut))], plan, None));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    }
    json_bytes_response(status, bytes)
}

/// SSE `data: <json>\n\n`.
pub(crate) fn sse_data<T: Serialize + ?Sized>(v: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut out, v).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// SSE `event: <name>\ndata: <json>\n\n`.
pub(crate) fn sse_event<T: Serialize + ?Sized>(name: &str, v: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut out, v).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Percent-decodes a path segment (invalid escapes are kept as they are).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers() {
        assert_eq!(trigger_status("gpt-4o-fail-429"), Some(429));
        assert_eq!(trigger_status("fail-5000"), None);
        assert_eq!(trigger_status("gpt-4o"), None);
        assert_eq!(trigger_slow("m-slow-250ms"), Some(250));
        assert_eq!(trigger_slow("m-slow-250"), None);
    }

    #[test]
    fn decode() {
        assert_eq!(
            percent_decode("us.anthropic.claude-3-5-sonnet-20240620-v1%3A0"),
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
        );
        assert_eq!(percent_decode("arn%3Aaws%2Fx%"), "arn:aws/x%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
