//! Anthropic's native Messages API: conversions to and from the neutral
//! (OpenAI-shaped) types, and the streaming events mapped to chunks.

use super::upstream::{self, Endpoint, HttpClient};
use super::{
    add_extra_headers, check_unsupported, completion_id, foreign_params, now_secs, ChunkStream,
    ErrorKind, ProviderError,
};
use crate::config::DeploymentConfig;
use crate::gateway::types::{
    ChatChunk, ChatRequest, ChatResponse, Content, ContentPart, Delta, FunctionCall,
    FunctionCallDelta, Message, PromptTokensDetails, ResponseFormat, Role, ToolCall, ToolCallDelta,
    ToolChoice, Usage,
};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::Response;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const API_VERSION: &str = "2023-06-01";
/// The tool used to get structured output (`response_format`) from Claude.
const JSON_TOOL: &str = "json_tool_call";
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct Anthropic {
    http: HttpClient,
    messages: Endpoint,
    default_max_tokens: u32,
}

impl Anthropic {
    pub fn new(d: &DeploymentConfig, http: HttpClient) -> Self {
        let base = d
            .api_base
            .clone()
            .unwrap_or_else(|| "https://api.anthropic.com".into());
        let base = base.trim_end_matches("/v1");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        if let Some(key) = d
            .api_key
            .as_ref()
            .and_then(|k| upstream::secret_header(k.expose()))
        {
            headers.insert(HeaderName::from_static("x-api-key"), key);
        }
        add_extra_headers(&mut headers, &d.extra_headers);
        let default_max_tokens = d
            .model_info
            .max_output_tokens
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(DEFAULT_MAX_TOKENS);
        Anthropic {
            http,
            messages: Endpoint::new(&format!("{base}/v1/messages"), headers),
            default_max_tokens,
        }
    }

    async fn send(&self, body: &MessagesRequest) -> Result<Response<Incoming>, ProviderError> {
        self.messages.uri()?;
        let body = serde_json::to_vec(body).map_err(|e| {
            ProviderError::new(
                ErrorKind::BadRequest,
                format!("request could not be encoded: {e}"),
            )
        })?;
        let resp = self.http.post(&self.messages, body).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from_response(resp).await)
        }
    }

    pub async fn chat(
        &self,
        req: ChatRequest,
        drop_params: bool,
    ) -> Result<ChatResponse, ProviderError> {
        let body = to_messages_request(&req, drop_params, self.default_max_tokens, false)?;
        let resp = self.send(&body).await?;
        let bytes = upstream::read_body(resp).await?;
        let msg: MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::new(
                ErrorKind::BadResponse,
                format!("Anthropic sent an invalid message: {e}"),
            )
        })?;
        Ok(from_messages_response(msg, body.json_mode))
    }

    pub async fn chat_stream(
        &self,
        req: ChatRequest,
        drop_params: bool,
    ) -> Result<ChunkStream, ProviderError> {
        let body = to_messages_request(&req, drop_params, self.default_max_tokens, true)?;
        let resp = self.send(&body).await?;
        let mut state = StreamState::new(body.json_mode);
        let stream = upstream::body_stream(resp)
            .eventsource()
            .map(move |ev| match ev {
                Ok(ev) => state.on_event(&ev.event, ev.data.as_bytes()),
                Err(eventsource_stream::EventStreamError::Transport(_)) => {
                    vec![Err(upstream::body_broken())]
                }
                Err(e) => vec![Err(ProviderError::new(
                    ErrorKind::BadResponse,
                    format!("Anthropic sent a malformed event stream: {e}"),
                ))],
            })
            .flat_map(futures::stream::iter);
        Ok(stream.boxed())
    }
}

// ---- wire types ----

#[derive(Debug, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    pub messages: Vec<AMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Extra Anthropic fields passed through (e.g. `thinking`).
    #[serde(flatten)]
    pub passthrough: Map<String, Value>,
    #[serde(skip)]
    pub json_mode: bool,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct AMessage {
    pub role: &'static str,
    pub content: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    pub model: String,
    pub content: Vec<Value>,
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: AUsage,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AUsage {
    fn to_usage(&self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens + cached + self.cache_creation_input_tokens.unwrap_or(0);
        let mut u = Usage::new(prompt, self.output_tokens);
        u.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(cached),
            audio_tokens: None,
        });
        u
    }
}

// ---- request conversion ----

/// Anthropic request fields a caller may send through the OpenAI surface.
const PASSTHROUGH: &[&str] = &["top_k", "thinking", "metadata", "service_tier"];

pub fn to_messages_request(
    req: &ChatRequest,
    drop_params: bool,
    default_max_tokens: u32,
    stream: bool,
) -> Result<MessagesRequest, ProviderError> {
    check_unsupported("Anthropic", &foreign_params(req, PASSTHROUGH), drop_params)?;
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<AMessage> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => system.extend(text_blocks(m)),
            Role::User => push(&mut messages, "user", user_blocks(m, i)?),
            Role::Assistant => push(&mut messages, "assistant", assistant_blocks(m, i)?),
            Role::Tool | Role::Function => {
                let id = m
                    .tool_call_id
                    .clone()
                    .or_else(|| m.name.clone())
                    .unwrap_or_default();
                push(
                    &mut messages,
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": id, "content": m.text_content()}),
                    ],
                )
            }
        }
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .flatten()
        .map(|t| {
            let mut tool = json!({
                "name": t.function.name,
                "input_schema": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = &t.function.description {
                tool["description"] = json!(d);
            }
            tool
        })
        .collect();
    let mut tool_choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => {
                return Err(ProviderError::new(
                    ErrorKind::BadRequest,
                    format!("tool_choice {other:?} is not one of none, auto, required"),
                ))
            }
        },
        Some(ToolChoice::Named(n)) => Some(json!({"type": "tool", "name": n.function.name})),
    };
    if req.parallel_tool_calls == Some(false) {
        let tc = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if tc["type"] != "none" {
            tc["disable_parallel_tool_use"] = json!(true);
        }
    }
    let json_mode = match &req.response_format {
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(
            json_schema
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object"})),
        ),
        _ => None,
    };
    if let Some(schema) = json_mode.clone() {
        tools.push(json!({"name": JSON_TOOL, "description": "Respond with a JSON object.", "input_schema": schema}));
        tool_choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
    }
    let mut passthrough = Map::new();
    for k in PASSTHROUGH {
        if let Some(v) = req.extra.get(*k) {
            passthrough.insert((*k).to_string(), v.clone());
        }
    }
    let top_k = passthrough.remove("top_k");
    let metadata = match (passthrough.remove("metadata"), &req.user) {
        (_, Some(user)) => Some(json!({"user_id": user})),
        (Some(Value::Object(m)), None) if m.contains_key("user_id") => {
            Some(json!({"user_id": m["user_id"]}))
        }
        _ => None,
    };
    Ok(MessagesRequest {
        model: req.model.clone(),
        max_tokens: req.max_output_tokens().unwrap_or(default_max_tokens),
        messages,
        system: (!system.is_empty()).then_some(system),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k,
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        tools,
        tool_choice,
        metadata,
        stream,
        passthrough,
        json_mode: json_mode.is_some(),
    })
}

/// Appends blocks, merging consecutive messages of one role (Anthropic wants alternation).
fn push(messages: &mut Vec<AMessage>, role: &'static str, blocks: Vec<Value>) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(AMessage {
            role,
            content: blocks,
        }),
    }
}

fn text_blocks(m: &Message) -> Vec<Value> {
    let text = m.text_content();
    if text.is_empty() {
        vec![]
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

fn user_blocks(m: &Message, i: usize) -> Result<Vec<Value>, ProviderError> {
    match &m.content {
        None => Ok(vec![]),
        Some(Content::Text(t)) => Ok(vec![json!({"type": "text", "text": t})]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                ContentPart::Text { text } => Ok(json!({"type": "text", "text": text})),
                ContentPart::ImageUrl { image_url } => Ok(image_block(&image_url.url)),
                _ => Err(ProviderError::new(
                    ErrorKind::BadRequest,
                    format!("messages[{i}].content[{j}]: Anthropic accepts text and image_url parts only"),
                )),
            })
            .collect(),
    }
}

/// A data: URL becomes a base64 image source, any other URL a url source.
pub fn image_block(url: &str) -> Value {
    if let Some((media_type, data)) = parse_data_url(url) {
        json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    } else {
        json!({"type": "image", "source": {"type": "url", "url": url}})
    }
}

/// Splits `data:image/png;base64,AAAA` into its media type and base64 payload.
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, ProviderError> {
    let mut blocks = text_blocks(m);
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                ProviderError::new(
                    ErrorKind::BadRequest,
                    format!(
                        "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON: {e}"
                    ),
                )
            })?
        };
        blocks.push(
            json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}),
        );
    }
    Ok(blocks)
}

// ---- response conversion ----

pub fn finish_reason(stop_reason: Option<&str>) -> Option<String> {
    stop_reason.map(|r| {
        match r {
            "end_turn" | "stop_sequence" | "pause_turn" => "stop",
            "max_tokens" => "length",
            "tool_use" => "tool_calls",
            "refusal" => "content_filter",
            _ => "stop",
        }
        .to_string()
    })
}

pub fn from_messages_response(msg: MessagesResponse, json_mode: bool) -> ChatResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in &msg.content {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") if json_mode && block["name"] == JSON_TOOL => {
                text.push_str(&block["input"].to_string());
            }
            Some("tool_use") => calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or("").to_string(),
                kind: "function".into(),
                function: FunctionCall {
                    name: block["name"].as_str().unwrap_or("").to_string(),
                    arguments: block["input"].to_string(),
                },
            }),
            _ => {}
        }
    }
    let mut finish = finish_reason(msg.stop_reason.as_deref());
    if json_mode && calls.is_empty() && finish.as_deref() == Some("tool_calls") {
        finish = Some("stop".into());
    }
    ChatResponse::single(
        msg.id,
        now_secs(),
        msg.model,
        text,
        calls,
        finish,
        Some(msg.usage.to_usage()),
    )
}

/// Maps Anthropic's stream events to neutral chunks.
pub struct StreamState {
    id: String,
    model: String,
    created: i64,
    usage: AUsage,
    json_mode: bool,
    /// Content block index → tool call index (for tool_use blocks).
    tool_index: Vec<Option<u32>>,
    json_block: Option<usize>,
    tools_seen: u32,
    finish: Option<String>,
}

impl StreamState {
    pub fn new(json_mode: bool) -> Self {
        StreamState {
            id: completion_id(),
            model: String::new(),
            created: now_secs(),
            usage: AUsage::default(),
            json_mode,
            tool_index: Vec::new(),
            json_block: None,
            tools_seen: 0,
            finish: None,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<String>) -> ChatChunk {
        ChatChunk::delta(&self.id, self.created, &self.model, delta, finish)
    }

    pub fn on_event(&mut self, event: &str, data: &[u8]) -> Vec<Result<ChatChunk, ProviderError>> {
        let v: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => {
                return vec![Err(ProviderError::new(
                    ErrorKind::BadResponse,
                    format!("Anthropic sent an invalid event: {e}"),
                ))]
            }
        };
        let kind = if event.is_empty() || event == "message" {
            v["type"].as_str().unwrap_or("")
        } else {
            event
        };
        match kind {
            "message_start" => {
                let m = &v["message"];
                if let Some(id) = m["id"].as_str() {
                    self.id = id.to_string();
                }
                self.model = m["model"].as_str().unwrap_or("").to_string();
                self.usage = serde_json::from_value(m["usage"].clone()).unwrap_or_default();
                vec![Ok(self.chunk(
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                ))]
            }
            "content_block_start" => {
                let idx = v["index"].as_u64().unwrap_or(0) as usize;
                let block = &v["content_block"];
                if self.tool_index.len() <= idx {
                    self.tool_index.resize(idx + 1, None);
                }
                if block["type"] == "tool_use" {
                    if self.json_mode && block["name"] == JSON_TOOL {
                        self.json_block = Some(idx);
                        return vec![];
                    }
                    let ti = self.tools_seen;
                    self.tools_seen += 1;
                    self.tool_index[idx] = Some(ti);
                    return vec![Ok(self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: ti,
                                id: block["id"].as_str().map(str::to_string),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: block["name"].as_str().map(str::to_string),
                                    arguments: Some(String::new()),
                                }),
                            }]),
                            ..Default::default()
                        },
                        None,
                    ))];
                }
                vec![]
            }
            "content_block_delta" => {
                let idx = v["index"].as_u64().unwrap_or(0) as usize;
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => vec![Ok(self.chunk(
                        Delta {
                            content: d["text"].as_str().map(str::to_string),
                            ..Default::default()
                        },
                        None,
                    ))],
                    Some("input_json_delta") => {
                        let part = d["partial_json"].as_str().unwrap_or("").to_string();
                        if self.json_block == Some(idx) {
                            return vec![Ok(self.chunk(
                                Delta {
                                    content: Some(part),
                                    ..Default::default()
                                },
                                None,
                            ))];
                        }
                        let Some(ti) = self.tool_index.get(idx).copied().flatten() else {
                            return vec![];
                        };
                        vec![Ok(self.chunk(
                            Delta {
                                tool_calls: Some(vec![ToolCallDelta {
                                    index: ti,
                                    id: None,
                                    kind: None,
                                    function: Some(FunctionCallDelta {
                                        name: None,
                                        arguments: Some(part),
                                    }),
                                }]),
                                ..Default::default()
                            },
                            None,
                        ))]
                    }
                    _ => vec![],
                }
            }
            "message_delta" => {
                if let Some(out) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = out;
                }
                let mut finish = finish_reason(v["delta"]["stop_reason"].as_str());
                if self.json_block.is_some() && self.tools_seen == 0 {
                    finish = Some("stop".into());
                }
                self.finish = finish;
                vec![]
            }
            "message_stop" => {
                let finish = self.finish.take().or_else(|| Some("stop".into()));
                vec![
                    Ok(self.chunk(Delta::default(), finish)),
                    Ok(ChatChunk::usage_only(
                        &self.id,
                        self.created,
                        &self.model,
                        self.usage.to_usage(),
                    )),
                ]
            }
            "error" => {
                let t = v["error"]["type"].as_str().unwrap_or("api_error");
                let msg = v["error"]["message"]
                    .as_str()
                    .unwrap_or("Anthropic stream failed")
                    .to_string();
                vec![Err(ProviderError::from_status(
                    status_of_error_type(t),
                    msg,
                    None,
                ))]
            }
            _ => vec![],
        }
    }
}

/// The HTTP status Anthropic uses for each error type.
pub fn status_of_error_type(t: &str) -> u16 {
    match t {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

async fn error_from_response(resp: Response<Incoming>) -> ProviderError {
    let (status, retry_after, body) = upstream::error_parts(resp).await;
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("Anthropic answered {status}"));
    ProviderError::from_status(status, message, retry_after)
}

#[cfg(test)]
mod tests;
