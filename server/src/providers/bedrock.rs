//! Amazon Bedrock through aws-sdk-bedrockruntime: Converse and ConverseStream
//! for chat, InvokeModel for Titan and Cohere embeddings.

mod convert;
pub mod prompts;

use super::{completion_id, now_secs, ChunkStream, ErrorKind, ProviderError};
use crate::config::{AwsParams, DeploymentConfig};
use crate::gateway::types::{
    ChatChunk, ChatRequest, ChatResponse, Delta, Embedding, EmbeddingData, EmbeddingRequest,
    EmbeddingResponse, EmbeddingUsage, EncodingFormat, FunctionCallDelta, ToolCallDelta,
};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlockDelta, ContentBlockStart, ConverseStreamOutput as Event,
};
use aws_sdk_bedrockruntime::Client;
use serde_json::{json, Value};

/// The AWS settings shared by every AWS client Tollgate makes (credentials,
/// profile or assumed role, region), with the SDK's retries off: callers own
/// them (the router, or a log destination's backoff).
pub async fn sdk_config(aws: &AwsParams) -> aws_config::SdkConfig {
    // The region is always explicit, so the SDK never asks instance metadata for it.
    let region = aws
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let (Some(ak), Some(sk)) = (&aws.access_key_id, &aws.secret_access_key) {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            ak.expose(),
            sk.expose(),
            aws.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "tollgate-config",
        ));
    } else if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    let sdk = loader.load().await;
    match &aws.role_name {
        None => sdk,
        Some(role) => {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name(
                    aws.session_name
                        .clone()
                        .unwrap_or_else(|| "tollgate".into()),
                )
                .configure(&sdk)
                .build()
                .await;
            sdk.to_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build()
        }
    }
}

/// A Bedrock runtime client for these AWS settings (see [`sdk_config`]) and endpoint.
pub async fn client(aws: &AwsParams) -> Client {
    let sdk = sdk_config(aws).await;
    let mut conf = aws_sdk_bedrockruntime::config::Builder::from(&sdk);
    if let Some(endpoint) = &aws.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    Client::from_conf(conf.build())
}

/// Converse and ConverseStream take the same input through two builder types.
macro_rules! converse_input {
    ($builder:expr, $model:expr, $input:expr) => {
        $builder
            .model_id($model)
            .set_messages(Some($input.messages))
            .set_system($input.system)
            .set_inference_config($input.inference)
            .set_tool_config($input.tools)
            .set_additional_model_request_fields($input.additional)
    };
}

pub struct Bedrock {
    client: Client,
    model: String,
}

impl Bedrock {
    pub async fn new(d: &DeploymentConfig) -> Self {
        Bedrock {
            client: client(&d.aws).await,
            model: d.upstream_model.clone(),
        }
    }

    pub async fn chat(
        &self,
        req: ChatRequest,
        drop_params: bool,
    ) -> Result<ChatResponse, ProviderError> {
        let input = convert::to_converse(&req, drop_params)?;
        let json_mode = input.json_mode;
        let out = converse_input!(self.client.converse(), &req.model, input)
            .send()
            .await
            .map_err(sdk_error)?;
        convert::from_converse(out, &req.model, json_mode)
    }

    pub async fn chat_stream(
        &self,
        req: ChatRequest,
        drop_params: bool,
    ) -> Result<ChunkStream, ProviderError> {
        let input = convert::to_converse(&req, drop_params)?;
        let json_mode = input.json_mode;
        let out = converse_input!(self.client.converse_stream(), &req.model, input)
            .send()
            .await
            .map_err(sdk_error)?;
        let state = StreamState::new(&req.model, json_mode);
        let stream = futures::stream::unfold(
            (out.stream, state, false),
            |(mut rx, mut st, done)| async move {
                if done {
                    return None;
                }
                loop {
                    match rx.recv().await {
                        Ok(Some(ev)) => {
                            let chunks = st.on_event(ev);
                            if !chunks.is_empty() {
                                return Some((chunks, (rx, st, false)));
                            }
                        }
                        Ok(None) => {
                            let tail = st.finish();
                            return if tail.is_empty() {
                                None
                            } else {
                                Some((tail, (rx, st, true)))
                            };
                        }
                        Err(e) => return Some((vec![Err(sdk_error(e))], (rx, st, true))),
                    }
                }
            },
        );
        use futures::StreamExt;
        Ok(stream.flat_map(futures::stream::iter).boxed())
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let texts = req
            .input
            .texts()
            .ok_or_else(|| super::token_input_unsupported("Bedrock"))?;
        let model = self.model.as_str();
        let base = model.rsplit('.').next().unwrap_or(model);
        let is_cohere = model.contains("cohere.embed");
        let is_titan = model.contains("amazon.titan-embed");
        if !is_cohere && !is_titan {
            return Err(ProviderError::new(
                ErrorKind::BadRequest,
                format!("Bedrock model {base} is not an embedding model Tollgate serves (amazon.titan-embed-*, cohere.embed-*)"),
            ));
        }
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        let mut tokens = 0u64;
        if is_cohere {
            let input_type = req
                .extra
                .get("input_type")
                .and_then(Value::as_str)
                .unwrap_or("search_document");
            let body = json!({"texts": texts, "input_type": input_type});
            let v = self.invoke(&req.model, &body).await?;
            for e in v["embeddings"].as_array().into_iter().flatten() {
                vectors.push(floats(e));
            }
            tokens = texts
                .iter()
                .map(|t| t.split_whitespace().count() as u64)
                .sum();
        } else {
            for t in &texts {
                let mut body = json!({"inputText": t});
                if let Some(d) = req.dimensions {
                    body["dimensions"] = json!(d);
                }
                let v = self.invoke(&req.model, &body).await?;
                vectors.push(floats(&v["embedding"]));
                tokens += v["inputTextTokenCount"].as_u64().unwrap_or(0);
            }
        }
        let data = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| EmbeddingData {
                object: "embedding".into(),
                index: i as u32,
                embedding: match req.encoding_format {
                    Some(EncodingFormat::Base64) => Embedding::base64_of(&v),
                    _ => Embedding::Float(v),
                },
            })
            .collect();
        Ok(EmbeddingResponse {
            object: "list".into(),
            data,
            model: req.model,
            usage: EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        })
    }

    async fn invoke(&self, model: &str, body: &Value) -> Result<Value, ProviderError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let out = self
            .client
            .invoke_model()
            .model_id(model)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(bytes))
            .send()
            .await
            .map_err(sdk_error)?;
        serde_json::from_slice(out.body().as_ref()).map_err(|e| {
            ProviderError::new(
                ErrorKind::BadResponse,
                format!("Bedrock sent an invalid body: {e}"),
            )
        })
    }
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(|f| f as f32)
        .collect()
}

/// Classifies an SDK error by its AWS error code, or by what failed.
pub fn sdk_error<E, R>(e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::TimeoutError(_) => ProviderError::new(ErrorKind::Timeout, "Bedrock call timed out"),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Connection };
            ProviderError::new(what, "could not reach Bedrock")
        }
        SdkError::ConstructionFailure(_) => ProviderError::new(
            ErrorKind::Config,
            "Bedrock request could not be built (check the deployment's AWS credentials and region)",
        ),
        SdkError::ResponseError(_) => {
            ProviderError::new(ErrorKind::BadResponse, "Bedrock sent a response that could not be read")
        }
        _ => {
            let code = e.code().unwrap_or("UnknownError");
            let message = e.message().unwrap_or("Bedrock call failed").to_string();
            let (status, kind) = match code {
                "ThrottlingException" | "TooManyRequestsException" => (429, ErrorKind::RateLimited),
                "ValidationException" if super::error::is_context_window_message(&message) => {
                    (400, ErrorKind::ContextWindowExceeded)
                }
                "ValidationException" => (400, ErrorKind::BadRequest),
                "AccessDeniedException" => (403, ErrorKind::PermissionDenied),
                "UnrecognizedClientException" | "ExpiredTokenException" => (401, ErrorKind::Authentication),
                "ResourceNotFoundException" => (404, ErrorKind::NotFound),
                "ModelTimeoutException" => (408, ErrorKind::Timeout),
                "ServiceUnavailableException" | "ModelNotReadyException" => (503, ErrorKind::Unavailable),
                "ModelErrorException" | "InternalServerException" | "ModelStreamErrorException" => {
                    (500, ErrorKind::ServerError)
                }
                _ => (500, ErrorKind::ServerError),
            };
            ProviderError { kind, status: Some(status), message: format!("{code}: {message}"), retry_after: None }
        }
    }
}

/// Maps ConverseStream events to neutral chunks.
struct StreamState {
    id: String,
    model: String,
    created: i64,
    json_mode: bool,
    /// Content block index → tool call index.
    tool_index: std::collections::HashMap<i32, u32>,
    tools_seen: u32,
    finish: Option<String>,
    usage: Option<crate::gateway::types::Usage>,
    finished: bool,
}

impl StreamState {
    fn new(model: &str, json_mode: bool) -> Self {
        StreamState {
            id: completion_id(),
            model: model.to_string(),
            created: now_secs(),
            json_mode,
            tool_index: Default::default(),
            tools_seen: 0,
            finish: None,
            usage: None,
            finished: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<String>) -> Result<ChatChunk, ProviderError> {
        Ok(ChatChunk::delta(
            &self.id,
            self.created,
            &self.model,
            delta,
            finish,
        ))
    }

    fn on_event(&mut self, ev: Event) -> Vec<Result<ChatChunk, ProviderError>> {
        match ev {
            Event::MessageStart(_) => vec![self.chunk(
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
            )],
            Event::ContentBlockStart(s) => match s.start() {
                Some(ContentBlockStart::ToolUse(t))
                    if !(self.json_mode && t.name() == convert::JSON_TOOL) =>
                {
                    let ti = self.tools_seen;
                    self.tools_seen += 1;
                    self.tool_index.insert(s.content_block_index(), ti);
                    vec![self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: ti,
                                id: Some(t.tool_use_id().to_string()),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(t.name().to_string()),
                                    arguments: Some(String::new()),
                                }),
                            }]),
                            ..Default::default()
                        },
                        None,
                    )]
                }
                _ => vec![],
            },
            Event::ContentBlockDelta(d) => match d.delta() {
                Some(ContentBlockDelta::Text(t)) => {
                    vec![self.chunk(
                        Delta {
                            content: Some(t.clone()),
                            ..Default::default()
                        },
                        None,
                    )]
                }
                Some(ContentBlockDelta::ToolUse(t)) => {
                    match self.tool_index.get(&d.content_block_index()) {
                        Some(ti) => vec![self.chunk(
                            Delta {
                                tool_calls: Some(vec![ToolCallDelta {
                                    index: *ti,
                                    id: None,
                                    kind: None,
                                    function: Some(FunctionCallDelta {
                                        name: None,
                                        arguments: Some(t.input().to_string()),
                                    }),
                                }]),
                                ..Default::default()
                            },
                            None,
                        )],
                        // Structured output arrives as the JSON tool's input: it is the content.
                        None if self.json_mode => {
                            vec![self.chunk(
                                Delta {
                                    content: Some(t.input().to_string()),
                                    ..Default::default()
                                },
                                None,
                            )]
                        }
                        None => vec![],
                    }
                }
                _ => vec![],
            },
            Event::MessageStop(m) => {
                let mut finish = convert::finish_reason(m.stop_reason());
                if self.json_mode && self.tools_seen == 0 {
                    finish = "stop".into();
                }
                self.finish = Some(finish);
                vec![]
            }
            Event::Metadata(m) => {
                if let Some(u) = m.usage() {
                    self.usage = Some(convert::usage(u));
                }
                self.finish()
            }
            _ => vec![],
        }
    }

    /// The closing chunks: finish reason, then usage.
    fn finish(&mut self) -> Vec<Result<ChatChunk, ProviderError>> {
        if self.finished {
            return vec![];
        }
        self.finished = true;
        let finish = self.finish.take().unwrap_or_else(|| "stop".into());
        let mut out = vec![self.chunk(Delta::default(), Some(finish))];
        if let Some(u) = self.usage.take() {
            out.push(Ok(ChatChunk::usage_only(
                &self.id,
                self.created,
                &self.model,
                u,
            )));
        }
        out
    }
}
