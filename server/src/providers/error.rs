//! What can go wrong when calling a provider, in provider-neutral terms.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The upstream rejected the request as malformed.
    BadRequest,
    /// The prompt does not fit the model's context window.
    ContextWindowExceeded,
    /// The request used parameters this provider cannot honour.
    UnsupportedParams,
    /// The upstream rejected our credentials.
    Authentication,
    PermissionDenied,
    NotFound,
    RateLimited,
    Timeout,
    /// Could not connect, or the connection broke.
    Connection,
    /// The upstream answered 5xx.
    ServerError,
    /// The upstream said it is overloaded or unavailable (503/529).
    Unavailable,
    /// The deployment is not usable as configured.
    Config,
    /// The upstream answered something we could not understand.
    BadResponse,
    /// A guardrail refused the answer as it streamed.
    Guardrail,
}

impl ErrorKind {
    /// Whether another try (same or other deployment) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::ServerError
                | ErrorKind::Unavailable
        )
    }

    /// Whether a fallback to another model group may help.
    pub fn allows_fallback(self) -> bool {
        !matches!(self, ErrorKind::UnsupportedParams | ErrorKind::Guardrail)
    }
}

/// A failed provider call. `message` is safe to show a client: it never holds
/// credentials or a raw upstream body, only the upstream's own error message.
#[derive(Debug, Clone)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The upstream HTTP status, when there was one.
    pub status: Option<u16>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classifies an upstream HTTP error by status and message.
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        let kind = match status {
            400 | 413 | 422 if is_context_window_message(&message) => {
                ErrorKind::ContextWindowExceeded
            }
            400 | 413 | 422 => ErrorKind::BadRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Unavailable,
            500..=599 => ErrorKind::ServerError,
            _ => ErrorKind::BadRequest,
        };
        ProviderError {
            kind,
            status: Some(status),
            message: truncate(message),
            retry_after,
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} (upstream status {s})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Recognises each provider's context-length error text.
pub fn is_context_window_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "context length",
        "context window",
        "prompt is too long",
        "input is too long",
        "too many tokens",
        "reduce the length of the messages",
        "exceeds the maximum number of tokens",
        "input too long",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(headers: &http::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    delta.to_std().ok()
}

fn truncate(mut s: String) -> String {
    const MAX: usize = 600;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages_classify() {
        let cases: &[(u16, &str, ErrorKind)] = &[
            (
                400,
                "This model's maximum context length is 8192 tokens",
                ErrorKind::ContextWindowExceeded,
            ),
            (
                400,
                "prompt is too long: 210000 tokens > 200000 maximum",
                ErrorKind::ContextWindowExceeded,
            ),
            (
                400,
                "Input is too long for requested model.",
                ErrorKind::ContextWindowExceeded,
            ),
            (
                400,
                "Invalid value for 'temperature'",
                ErrorKind::BadRequest,
            ),
            (401, "bad key", ErrorKind::Authentication),
            (429, "slow down", ErrorKind::RateLimited),
            (500, "oops", ErrorKind::ServerError),
            (503, "busy", ErrorKind::Unavailable),
            (529, "overloaded", ErrorKind::Unavailable),
        ];
        for (status, msg, kind) in cases {
            assert_eq!(
                ProviderError::from_status(*status, msg.to_string(), None).kind,
                *kind,
                "{status} {msg}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_ms() {
        let mut h = http::header::HeaderMap::new();
        h.insert("retry-after", http::header::HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            "retry-after-ms",
            http::header::HeaderValue::from_static("150"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(150)));
    }
}
