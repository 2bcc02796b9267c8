//! OpenAI (and Azure OpenAI) chat completions, embeddings and model list.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use crate::common::{
    finish_json, json_response, openai_error, preflight, sse_data, stream_response, unix_now, Ev,
    Provider, Req,
};
use crate::state::Shared;
use crate::text::{
    base64_f32, count_words, embedding_vector, generate, push_joined, split_pieces, word_chunks,
    Conversation, Finish, ToolChoice,
};

fn auth_ok(st: &Shared, req: &Req) -> bool {
    let Some(key) = st.config.required_key.as_deref() else {
        return true;
    };
    let bearer = req.header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim)
    });
    bearer == Some(key) || req.header("api-key") == Some(key)
}

fn unparsable() -> Response {
    openai_error(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        "invalid_request_error",
        None,
        None,
    )
}

/// Text of an OpenAI `content` (string or parts) and its number of image parts.
fn content_text(content: &Value) -> (String, usize) {
    match content {
        Value::String(s) => (s.clone(), 0),
        Value::Array(parts) => {
            let mut text = String::new();
            let mut images = 0;
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("input_text") => {
                        push_joined(
                            &mut text,
                            p.get("text").and_then(Value::as_str).unwrap_or(""),
                        );
                    }
                    Some("image_url") | Some("input_image") => images += 1,
                    _ => {}
                }
            }
            (text, images)
        }
        _ => (String::new(), 0),
    }
}

fn conversation(body: &Value) -> Result<Conversation, Response> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(openai_error(
            400,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("messages"),
            Some("missing_required_parameter"),
        ));
    };
    let mut conv = Conversation::default();
    for m in messages {
        let (text, images) = content_text(m.get("content").unwrap_or(&Value::Null));
        conv.prompt_words += count_words(&text);
        if m.get("role").and_then(Value::as_str) == Some("user") {
            conv.last_user_text = text;
            conv.last_user_images = images;
        }
    }
    if let Some(last) = messages.last() {
        if last.get("role").and_then(Value::as_str) == Some("tool") {
            conv.tool_result = Some(content_text(last.get("content").unwrap_or(&Value::Null)).0);
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        conv.tools = tools
            .iter()
            .filter_map(|t| {
                t.pointer("/function/name")
                    .or_else(|| t.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
    }
    conv.tool_choice = match body.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => ToolChoice::None,
        Some(v @ Value::Object(_)) => match v
            .pointer("/function/name")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
        {
            Some(n) => ToolChoice::Named(n.to_owned()),
            None => ToolChoice::Auto,
        },
        _ => ToolChoice::Auto,
    };
    conv.parallel = body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false);
    conv.max_tokens = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64));
    conv.stop = match body.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    conv.json_mode = matches!(
        body.pointer("/response_format/type")
            .and_then(Value::as_str),
        Some("json_object") | Some("json_schema")
    );
    Ok(conv)
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: usize,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a [ToolCall]>,
}

#[derive(Serialize)]
struct ToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Serialize)]
struct FunctionCall {
    name: String,
    arguments: String,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: usize,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: usize,
}

impl Usage {
    fn new(prompt: usize, completion: usize) -> Self {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptDetails { cached_tokens: 0 },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: 0,
            },
        }
    }
}

fn finish_reason(f: &Finish) -> &'static str {
    match f {
        Finish::EndTurn | Finish::StopSequence(_) => "stop",
        Finish::MaxTokens => "length",
        Finish::ToolUse => "tool_calls",
    }
}

/// `POST /v1/chat/completions` (and `/chat/completions`, Azure deployments).
pub(crate) async fn chat(st: Arc<Shared>, req: Req, deployment: Option<String>) -> Response {
    if !auth_ok(&st, &req) {
        return Provider::OpenAi.error(401, None, None);
    }
    let model: String = req
        .json
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| deployment.clone())
        .unwrap_or_default();
    let plan = match preflight(&st, Provider::OpenAi, &req.path, &model).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(body) = req.json.as_ref() else {
        return unparsable();
    };
    if model.is_empty() {
        return openai_error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
            None,
        );
    }
    let conv = match conversation(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if conv.prompt_words > st.config.context_window {
        return openai_error(
            400,
            &format!(
                "This model's maximum context length is {} tokens. However, your messages resulted in {} tokens. Please reduce the length of the messages.",
                st.config.context_window, conv.prompt_words
            ),
            "invalid_request_error",
            Some("messages"),
            Some("context_length_exceeded"),
        );
    }
    let n = usize::try_from(body.get("n").and_then(Value::as_u64).unwrap_or(1))
        .unwrap_or(1)
        .clamp(1, 128);
    let outcome = generate(&conv);
    let id = format!("chatcmpl-mock{}", st.next_id());
    let created = unix_now();
    let tool_calls: Vec<ToolCall> = outcome
        .tool_calls
        .iter()
        .map(|c| ToolCall {
            id: format!("call_{}", st.next_id()),
            kind: "function",
            function: FunctionCall {
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            },
        })
        .collect();
    let finish = finish_reason(&outcome.finish);
    let usage = Usage::new(conv.prompt_words, outcome.completion_tokens * n);
    // `no-usage` in the model id: an upstream that reports no usage at all.
    let no_usage = model.contains("no-usage");

    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = !no_usage
            && body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true);
        let chunk = |index: usize, delta: Value, finish: Option<&str>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            sse_data(&c)
        };
        let mut events = Vec::new();
        for index in 0..n {
            match &outcome.text {
                Some(text) => {
                    events.push(Ev::meta(chunk(
                        index,
                        json!({"role": "assistant", "content": "", "refusal": null}),
                        None,
                    )));
                    for w in word_chunks(text) {
                        events.push(Ev::token(chunk(index, json!({ "content": w }), None)));
                    }
                }
                None => {
                    events.push(Ev::meta(chunk(
                        index,
                        json!({"role": "assistant", "content": null, "refusal": null}),
                        None,
                    )));
                    for (ci, call) in tool_calls.iter().enumerate() {
                        events.push(Ev::token(chunk(
                            index,
                            json!({"tool_calls": [{"index": ci, "id": call.id, "type": "function",
                                "function": {"name": call.function.name, "arguments": ""}}]}),
                            None,
                        )));
                        for piece in split_pieces(&call.function.arguments, 3) {
                            events.push(Ev::token(chunk(
                                index,
                                json!({"tool_calls": [{"index": ci, "function": {"arguments": piece}}]}),
                                None,
                            )));
                        }
                    }
                }
            }
            events.push(Ev::meta(chunk(index, json!({}), Some(finish))));
        }
        if include_usage {
            events.push(Ev::meta(sse_data(&json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_mock", "choices": [], "usage": usage,
            }))));
        }
        events.push(Ev::meta(Bytes::from_static(b"data: [DONE]\n\n")));
        return stream_response(&st, "text/event-stream", events, plan);
    }

    let content = outcome.text.as_deref();
    let calls = if tool_calls.is_empty() {
        None
    } else {
        Some(tool_calls.as_slice())
    };
    let resp = Completion {
        id: &id,
        object: "chat.completion",
        created,
        model: &model,
        system_fingerprint: "fp_mock",
        choices: (0..n)
            .map(|index| Choice {
                index,
                message: Message {
                    role: "assistant",
                    content,
                    refusal: None,
                    tool_calls: calls,
                },
                logprobs: None,
                finish_reason: finish,
            })
            .collect(),
        usage: (!no_usage).then_some(usage),
    };
    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
    finish_json(StatusCode::OK, bytes, plan, Some(&outcome)).await
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

fn invalid_input() -> Response {
    openai_error(
        400,
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        "invalid_request_error",
        Some("input"),
        None,
    )
}

/// (text to embed, tokens) for each input.
fn embedding_inputs(input: &Value) -> Option<Vec<(String, usize)>> {
    let tokens_text = |a: &[Value]| -> Option<(String, usize)> {
        let mut s = String::new();
        for v in a {
            let n = v.as_u64()?;
            push_joined(&mut s, &n.to_string());
        }
        Some((s, a.len()))
    };
    match input {
        Value::String(s) => Some(vec![(s.clone(), count_words(s))]),
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) if a.iter().all(Value::is_number) => Some(vec![tokens_text(a)?]),
        Value::Array(a) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Some((s.clone(), count_words(s))),
                Value::Array(t) if !t.is_empty() => tokens_text(t),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// `POST /v1/embeddings` (and `/embeddings`, Azure deployments).
pub(crate) async fn embeddings(st: Arc<Shared>, req: Req, deployment: Option<String>) -> Response {
    if !auth_ok(&st, &req) {
        return Provider::OpenAi.error(401, None, None);
    }
    let model: String = req
        .json
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(deployment)
        .unwrap_or_default();
    let plan = match preflight(&st, Provider::OpenAi, &req.path, &model).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(body) = req.json.as_ref() else {
        return unparsable();
    };
    let Some(inputs) = body.get("input").and_then(embedding_inputs) else {
        return invalid_input();
    };
    let dims = match body.get("dimensions") {
        None | Some(Value::Null) => 8,
        Some(v) => match v.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=65_536).contains(&d) => d,
            _ => {
                return openai_error(
                    400,
                    "Invalid value for 'dimensions': must be a positive integer.",
                    "invalid_request_error",
                    Some("dimensions"),
                    None,
                )
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return openai_error(
                400,
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                "invalid_request_error",
                Some("encoding_format"),
                None,
            )
        }
    };
    let mut tokens = 0;
    let data: Vec<EmbeddingItem> = inputs
        .iter()
        .enumerate()
        .map(|(index, (text, t))| {
            tokens += t;
            let v = embedding_vector(text, dims);
            EmbeddingItem {
                object: "embedding",
                index,
                embedding: if base64 {
                    Embedding::Base64(base64_f32(&v))
                } else {
                    Embedding::Float(v)
                },
            }
        })
        .collect();
    let resp = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
    finish_json(StatusCode::OK, bytes, plan, None).await
}

/// `GET /v1/models`.
pub(crate) fn models() -> Response {
    let created = 1_700_000_000u64;
    let data: Vec<Value> = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "mock"}))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}
