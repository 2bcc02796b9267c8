//! One module per provider family: its wire types, conversions and client calls.
//! A provider never knows which surface (OpenAI, Anthropic, Bedrock) called it.

pub mod anthropic;
pub mod bedrock;
pub mod demo;
pub mod error;
pub mod openai;
pub mod upstream;

use crate::config::providers::Family;
use crate::config::DeploymentConfig;
use crate::gateway::types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse,
};
pub use error::{ErrorKind, ProviderError};
use futures::stream::BoxStream;

/// A stream of neutral chunks from a provider.
pub type ChunkStream = BoxStream<'static, Result<ChatChunk, ProviderError>>;

/// A configured provider client for one deployment (closed set of families).
pub enum Provider {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Bedrock(bedrock::Bedrock),
    Demo(demo::Demo),
}

impl Provider {
    /// Builds the client for a deployment. Bedrock clients resolve credentials lazily.
    pub async fn new(d: &DeploymentConfig, http: &upstream::HttpClient) -> Self {
        match d.family {
            Family::OpenAiCompatible | Family::Azure => {
                Provider::OpenAi(openai::OpenAi::new(d, http.clone()))
            }
            Family::Anthropic => Provider::Anthropic(anthropic::Anthropic::new(d, http.clone())),
            Family::Bedrock => Provider::Bedrock(bedrock::Bedrock::new(d).await),
            Family::Demo => Provider::Demo(demo::Demo::new(d)),
        }
    }

    /// `req.model` is already the upstream model id; `drop_params` says whether
    /// parameters this provider cannot honour are dropped (else a 400).
    pub async fn chat(
        &self,
        req: ChatRequest,
        drop_params: bool,
    ) -> Result<ChatResponse, ProviderError> {
        // The AWS SDK's call futures are large (they made this one 8.6 KB,
        // 2.6 KB without them): boxed, so that every other provider's call,
        // and each future that holds this one and is moved with it, stays
        // small. Measured: 4% less CPU per proxied request.
        match self {
            Provider::OpenAi(p) => p.chat(req).await,
            Provider::Anthropic(p) => p.chat(req, drop_params).await,
            Provider::Bedrock(p) => Box::pin(p.chat(req, drop_params)).await,
            Provider::Demo(p) => p.chat(req).await,
        }
    }

    pub async fn chat_stream(
        &self,
        req: ChatRequest,
        drop_params: bool,
    ) -> Result<ChunkStream, ProviderError> {
        match self {
            Provider::OpenAi(p) => p.chat_stream(req).await,
            Provider::Anthropic(p) => p.chat_stream(req, drop_params).await,
            Provider::Bedrock(p) => Box::pin(p.chat_stream(req, drop_params)).await,
            Provider::Demo(p) => p.chat_stream(req).await,
        }
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        match self {
            Provider::OpenAi(p) => p.embed(req).await,
            Provider::Bedrock(p) => Box::pin(p.embed(req)).await,
            Provider::Anthropic(_) => Err(ProviderError::new(
                ErrorKind::BadRequest,
                "Anthropic does not serve embeddings; configure an embedding model",
            )),
            Provider::Demo(p) => p.embed(req).await,
        }
    }
}

/// The OpenAI parameters set on `req` that a non-OpenAI provider has no equivalent for,
/// and every unknown field except those the provider takes as its own (`own`).
pub(crate) fn foreign_params(req: &ChatRequest, own: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    if req.n.is_some_and(|n| n > 1) {
        names.push("n".to_string());
    }
    for (set, name) in [
        (req.logprobs == Some(true), "logprobs"),
        (req.top_logprobs.is_some(), "top_logprobs"),
        (req.seed.is_some(), "seed"),
        (req.presence_penalty.is_some(), "presence_penalty"),
        (req.frequency_penalty.is_some(), "frequency_penalty"),
    ] {
        if set {
            names.push(name.to_string());
        }
    }
    names.extend(
        req.extra
            .keys()
            .filter(|k| !own.contains(&k.as_str()))
            .cloned(),
    );
    names
}

/// Adds a deployment's `extra_headers` (invalid names or values are skipped).
pub(crate) fn add_extra_headers(
    headers: &mut http::HeaderMap,
    extra: &std::collections::BTreeMap<String, String>,
) {
    use http::{HeaderName, HeaderValue};
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
}

/// Rejects parameters a provider cannot honour, unless they are to be dropped.
pub(crate) fn check_unsupported(
    provider: &str,
    names: &[String],
    drop_params: bool,
) -> Result<(), ProviderError> {
    if names.is_empty() || drop_params {
        return Ok(());
    }
    Err(ProviderError::new(
        ErrorKind::UnsupportedParams,
        format!(
            "{provider} does not support parameters: {}. Remove them, or set `drop_params: true` (in litellm_settings, litellm_params, or the request) to drop them.",
            names.join(", ")
        ),
    ))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh OpenAI-style completion id.
pub(crate) fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// Token-array embedding input only makes sense to OpenAI-compatible upstreams.
pub(crate) fn token_input_unsupported(provider: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::BadRequest,
        format!("{provider} takes text input for embeddings, not token arrays"),
    )
}

#[cfg(test)]
mod future_size_tests {
    use super::*;

    /// What a call's future weighs (printed with --nocapture): each future
    /// that holds it is moved with it, so an OpenAI-compatible call's stays
    /// small whatever the other providers need.
    #[tokio::test]
    async fn provider_futures_stay_small() -> Result<(), Box<dyn std::error::Error>> {
        let yaml = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/gpt-4o, api_base: 'http://127.0.0.1:9/v1'}\n";
        let config = crate::config::load_str(yaml, "test.yaml", None)?;
        let d = config.deployments.first().ok_or("no deployment")?;
        let p = Provider::new(d, &upstream::HttpClient::new()).await;
        let chat = p.chat(ChatRequest::default(), false);
        let stream = p.chat_stream(ChatRequest::default(), false);
        let (chat, stream) = (std::mem::size_of_val(&chat), std::mem::size_of_val(&stream));
        println!("Provider::chat {chat} bytes, Provider::chat_stream {stream} bytes");
        assert!(chat < 4096 && stream < 4096, "{chat} / {stream} bytes");
        Ok(())
    }
}
