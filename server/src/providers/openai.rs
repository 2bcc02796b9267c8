//! OpenAI's Chat Completions and Embeddings wire format: OpenAI itself, Azure
//! OpenAI, and every compatible server (Groq, Mistral, vLLM, Ollama, Gemini's
//! compatible endpoint, …). The neutral types are OpenAI's, so requests pass
//! through with only the model id replaced, and unknown fields kept.

use super::upstream::{self, Endpoint, HttpClient};
use super::{ChunkStream, ErrorKind, ProviderError};
use crate::config::providers::Family;
use crate::config::DeploymentConfig;
use crate::gateway::types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse,
};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::Response;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;

pub struct OpenAi {
    http: HttpClient,
    chat: Endpoint,
    embeddings: Endpoint,
}

impl OpenAi {
    pub fn new(d: &DeploymentConfig, http: HttpClient) -> Self {
        let base = d.api_base.clone().unwrap_or_default();
        let (chat_url, embeddings_url) = if d.family == Family::Azure {
            let v = d.api_version.clone().unwrap_or_default();
            let dep = format!("{base}/openai/deployments/{}", d.upstream_model);
            (
                format!("{dep}/chat/completions?api-version={v}"),
                format!("{dep}/embeddings?api-version={v}"),
            )
        } else {
            (
                format!("{base}/chat/completions"),
                format!("{base}/embeddings"),
            )
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &d.api_key {
            let (name, value) = if d.family == Family::Azure {
                (HeaderName::from_static("api-key"), key.expose().to_string())
            } else {
                (AUTHORIZATION, format!("Bearer {}", key.expose()))
            };
            if let Some(v) = upstream::secret_header(&value) {
                headers.insert(name, v);
            }
        }
        if let Some(org) = d
            .organization
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            headers.insert(HeaderName::from_static("openai-organization"), org);
        }
        super::add_extra_headers(&mut headers, &d.extra_headers);
        OpenAi {
            http,
            chat: Endpoint::new(&chat_url, headers.clone()),
            embeddings: Endpoint::new(&embeddings_url, headers),
        }
    }

    async fn post<T: Serialize>(
        &self,
        ep: &Endpoint,
        body: &T,
    ) -> Result<Response<Incoming>, ProviderError> {
        ep.uri()?;
        let body = serde_json::to_vec(body).map_err(|e| {
            ProviderError::new(
                ErrorKind::BadRequest,
                format!("request could not be encoded: {e}"),
            )
        })?;
        let resp = self.http.post(ep, body).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from_response(resp).await)
        }
    }

    pub async fn chat(&self, mut req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        req.stream = None;
        req.stream_options = None;
        let resp = self.post(&self.chat, &req).await?;
        let bytes = upstream::read_body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| bad_response("chat completion", &e))
    }

    pub async fn chat_stream(&self, mut req: ChatRequest) -> Result<ChunkStream, ProviderError> {
        req.stream = Some(true);
        // Usage is always asked for, so that spend is known; the gateway drops
        // the usage chunk when the caller did not ask for it.
        let mut opts = req.stream_options.take().unwrap_or_default();
        opts.include_usage = Some(true);
        req.stream_options = Some(opts);
        let resp = self.post(&self.chat, &req).await?;
        let events = upstream::body_stream(resp).eventsource();
        let stream = events
            .take_while(|ev| {
                let done = matches!(ev, Ok(e) if e.data.trim() == "[DONE]");
                futures::future::ready(!done)
            })
            .filter_map(|ev| async move {
                match ev {
                    Ok(ev) if ev.data.trim().is_empty() => None,
                    Ok(ev) => Some(parse_chunk(ev.data.as_bytes())),
                    Err(eventsource_stream::EventStreamError::Transport(_)) => {
                        Some(Err(upstream::body_broken()))
                    }
                    Err(e) => Some(Err(ProviderError::new(
                        ErrorKind::BadResponse,
                        format!("upstream sent a malformed event stream: {e}"),
                    ))),
                }
            });
        Ok(stream.boxed())
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let resp = self.post(&self.embeddings, &req).await?;
        let bytes = upstream::read_body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| bad_response("embedding", &e))
    }
}

/// One `data:` payload: a chunk, or an error object sent mid-stream.
pub fn parse_chunk(data: &[u8]) -> Result<ChatChunk, ProviderError> {
    match serde_json::from_slice::<ChatChunk>(data) {
        Ok(c) => Ok(c),
        Err(e) => match serde_json::from_slice::<Value>(data) {
            Ok(v) if v.get("error").is_some() => {
                let msg = error_message(&v).unwrap_or_else(|| "upstream stream failed".into());
                let status = v["error"]["code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or(500);
                Err(ProviderError::from_status(status, msg, None))
            }
            _ => Err(bad_response("stream chunk", &e)),
        },
    }
}

fn bad_response(what: &str, e: &serde_json::Error) -> ProviderError {
    ProviderError::new(
        ErrorKind::BadResponse,
        format!("upstream sent an invalid {what}: {e}"),
    )
}

/// Turns an upstream error response into a classified error with its message.
pub async fn error_from_response(resp: Response<Incoming>) -> ProviderError {
    let (status, retry_after, body) = upstream::error_parts(resp).await;
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let message = parsed
        .as_ref()
        .and_then(error_message)
        .unwrap_or_else(|| upstream::status_text("upstream", status));
    let mut err = ProviderError::from_status(status, message, retry_after);
    if parsed.is_some_and(|v| v["error"]["code"] == "context_length_exceeded") {
        err.kind = ErrorKind::ContextWindowExceeded;
    }
    err
}

/// The message of an OpenAI-style (or similar) error body.
fn error_message(v: &Value) -> Option<String> {
    match &v["error"] {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
        _ => v.get("message").and_then(Value::as_str).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_compatible_servers_are_read() {
        let cases = [
            (r#"{"error":{"message":"m1","type":"x","code":"c"}}"#, "m1"),
            (r#"{"error":"m2"}"#, "m2"),
            (r#"{"message":"m3"}"#, "m3"),
        ];
        for (body, msg) in cases {
            let v: Value = serde_json::from_str(body).unwrap_or_default();
            assert_eq!(error_message(&v).as_deref(), Some(msg));
        }
    }

    #[test]
    fn mid_stream_error_objects_become_errors() {
        let e = parse_chunk(br#"{"error":{"message":"boom","code":500}}"#).err();
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::ServerError));
        let ok = parse_chunk(br#"{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#);
        assert!(ok.is_ok());
    }
}
