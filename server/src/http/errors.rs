//! Errors rendered once per surface. `/v1` (and the LiteLLM-style routes) speak
//! OpenAI's `{"error":{"message","type","param","code"}}`.

use crate::gateway::limits::RateLimited;
use crate::gateway::pipeline::GatewayError;
use crate::gateway::router::{Attempt, RouteError};
use crate::providers::ErrorKind;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
    pub retry_after_secs: Option<u32>,
    /// A refusal by a rate limit: `retry-after` and `x-ratelimit-*`.
    pub limited: Option<Box<RateLimited>>,
    /// The guardrail that refused the call.
    /// Boxed: errors travel in `Result`s, and stay small that way.
    #[allow(clippy::box_collection)]
    pub guardrail: Option<Box<String>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardrail: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
            limited: None,
            guardrail: None,
        }
    }

    pub fn param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }

    pub fn code(mut self, c: impl Into<String>) -> Self {
        self.code = Some(c.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message).code("invalid_api_key")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::bad_request(format!(
            "Invalid model name passed in model={model}. Call `/v1/models` to view the models you can use."
        ))
        .param("model")
        .code("model_not_found")
    }

    /// A body that is not JSON, or not the shape of the request.
    pub fn from_json_error(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return Self::bad_request(format!("The request body is not valid JSON: {inner}"))
                .code("invalid_json");
        }
        let msg = strip_position(&inner.to_string());
        if path == "." {
            return Self::bad_request(format!("Invalid request body: {msg}"));
        }
        Self::bad_request(format!("Invalid value for '{path}': {msg}")).param(path)
    }
}

/// serde_json's "at line 1 column 42" means nothing to a client that sent one line.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code.as_deref(),
                guardrail: self.guardrail.as_deref().map(String::as_str),
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response();
        if let Some(l) = &self.limited {
            l.write_headers(resp.headers_mut());
        }
        if let Some(s) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

fn describe(a: &Attempt) -> String {
    let where_ = match (&a.deployment, &a.deployment_id) {
        (Some(d), Some(id)) => format!("{} via {d} [deployment {id}]", a.model_group),
        _ => a.model_group.clone(),
    };
    format!("{where_}: {}", a.error)
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Invalid { message, param } => {
                let err = ApiError::bad_request(message);
                match param {
                    Some(p) => err.param(p),
                    None => err,
                }
            }
            GatewayError::Route(RouteError::UnknownModel(m)) => ApiError::model_not_found(&m),
            GatewayError::Forbidden(m) => ApiError::forbidden(m).code("model_not_allowed"),
            GatewayError::NotFound(m) => ApiError::not_found(m),
            GatewayError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", m)
            }
            GatewayError::BudgetExceeded(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "budget_exceeded", m).code("budget_exceeded")
            }
            GatewayError::Guardrail(iv) => {
                let mut e =
                    ApiError::new(StatusCode::BAD_REQUEST, "guardrail_violation", iv.message)
                        .code("guardrail_violation");
                e.guardrail = Some(Box::new(iv.guardrail));
                e
            }
            GatewayError::RateLimited(r) => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    r.message.clone(),
                )
                .code("rate_limit_exceeded");
                e.limited = Some(r);
                e
            }
            GatewayError::Route(RouteError::Failed { model, attempts }) => {
                from_attempts(&model, &attempts)
            }
        }
    }
}

/// The final error of a routed call: the status follows the last failure, the message names every attempt.
fn from_attempts(model: &str, attempts: &[Attempt]) -> ApiError {
    let Some(last) = attempts.last() else {
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            "api_error",
            format!("No deployment could serve model {model}"),
        );
    };
    let list: Vec<String> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("[{}] {}", i + 1, describe(a)))
        .collect();
    let summary = if attempts.len() == 1 {
        format!("Model {model} failed: {}", describe(last))
    } else {
        format!(
            "Model {model} failed after {} attempts: {}",
            attempts.len(),
            list.join("; ")
        )
    };
    let (status, kind, code) = match last.error.kind {
        ErrorKind::BadRequest => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
        ErrorKind::UnsupportedParams => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("unsupported_params"),
        ),
        ErrorKind::ContextWindowExceeded => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        ErrorKind::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
        ),
        ErrorKind::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            Some("upstream_unavailable"),
        ),
        ErrorKind::Timeout => (
            StatusCode::BAD_GATEWAY,
            "timeout_error",
            Some("upstream_timeout"),
        ),
        _ => (StatusCode::BAD_GATEWAY, "api_error", Some("upstream_error")),
    };
    let mut err = ApiError::new(status, kind, summary);
    if let Some(c) = code {
        err = err.code(c);
    }
    if last.error.kind == ErrorKind::RateLimited {
        err.retry_after_secs = last
            .error
            .retry_after
            .map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderError;

    fn attempt(group: &str, kind: ErrorKind, status: u16) -> Attempt {
        Attempt {
            model_group: group.into(),
            deployment_id: Some("d1".into()),
            deployment: Some("openai/x".into()),
            error: ProviderError {
                kind,
                status: Some(status),
                message: "boom".into(),
                retry_after: None,
            },
        }
    }

    #[test]
    fn final_status_follows_the_last_failure_and_names_every_attempt() {
        let cases = [
            (
                ErrorKind::RateLimited,
                429u16,
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (ErrorKind::ServerError, 500, StatusCode::BAD_GATEWAY),
            (ErrorKind::Unavailable, 503, StatusCode::SERVICE_UNAVAILABLE),
            (
                ErrorKind::ContextWindowExceeded,
                400,
                StatusCode::BAD_REQUEST,
            ),
            (ErrorKind::Connection, 0, StatusCode::BAD_GATEWAY),
        ];
        for (kind, upstream, want) in cases {
            let e = from_attempts(
                "m",
                &[
                    attempt("m", ErrorKind::ServerError, 500),
                    attempt("fb", kind, upstream),
                ],
            );
            assert_eq!(e.status, want, "{kind:?}");
            assert!(
                e.message.contains("[1] m via openai/x") && e.message.contains("[2] fb via"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let body = br#"{"model": "m", "messages": [{"role": "user", "content": 5}]}"#;
        let de = &mut serde_json::Deserializer::from_slice(body);
        let r: Result<crate::gateway::types::ChatRequest, _> = serde_path_to_error::deserialize(de);
        let e = ApiError::from_json_error(r.err().unwrap_or_else(|| panic!("accepted")));
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let de = &mut serde_json::Deserializer::from_slice(b"{not json");
        let r: Result<crate::gateway::types::ChatRequest, _> = serde_path_to_error::deserialize(de);
        let e = ApiError::from_json_error(r.err().unwrap_or_else(|| panic!("accepted")));
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
    }
}
