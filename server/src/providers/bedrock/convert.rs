//! Neutral (OpenAI-shaped) requests and responses to and from Bedrock's Converse types.

use crate::gateway::types::{
    ChatRequest, ChatResponse, Content, ContentPart, FunctionCall, Message as NMessage,
    PromptTokensDetails, ResponseFormat, Role, ToolCall, ToolChoice as NToolChoice, Usage,
};
use crate::providers::{
    check_unsupported, completion_id, foreign_params, now_secs, ErrorKind, ProviderError,
};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, AutoToolChoice, ContentBlock, ConversationRole, ConverseOutput as Output,
    ImageBlock, ImageFormat, ImageSource, InferenceConfiguration, Message, SpecificToolChoice,
    StopReason, SystemContentBlock, TokenUsage, Tool, ToolChoice, ToolConfiguration,
    ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The tool used to get structured output (`response_format`) from Converse.
pub const JSON_TOOL: &str = "json_tool_call";

/// Everything a Converse call needs.
pub struct ConverseInput {
    pub messages: Vec<Message>,
    pub system: Option<Vec<SystemContentBlock>>,
    pub inference: Option<InferenceConfiguration>,
    pub tools: Option<ToolConfiguration>,
    pub additional: Option<Document>,
    pub json_mode: bool,
}

/// Request fields passed to the model as `additionalModelRequestFields`.
const ADDITIONAL: &[&str] = &["top_k", "thinking", "reasoning_config"];

fn invalid(msg: String) -> ProviderError {
    ProviderError::new(ErrorKind::BadRequest, msg)
}

fn build_err(what: &str, e: impl std::fmt::Display) -> ProviderError {
    invalid(format!("{what}: {e}"))
}

pub fn to_converse(req: &ChatRequest, drop_params: bool) -> Result<ConverseInput, ProviderError> {
    check_unsupported("Bedrock", &foreign_params(req, ADDITIONAL), drop_params)?;

    let mut system = Vec::new();
    let mut messages: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    let push = |messages: &mut Vec<(ConversationRole, Vec<ContentBlock>)>,
                role: ConversationRole,
                blocks: Vec<ContentBlock>| {
        if blocks.is_empty() {
            return;
        }
        match messages.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    };
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let t = m.text_content();
                if !t.is_empty() {
                    system.push(SystemContentBlock::Text(t));
                }
            }
            Role::User => push(&mut messages, ConversationRole::User, user_blocks(m, i)?),
            Role::Assistant => push(
                &mut messages,
                ConversationRole::Assistant,
                assistant_blocks(m, i)?,
            ),
            Role::Tool | Role::Function => {
                let id = m
                    .tool_call_id
                    .clone()
                    .or_else(|| m.name.clone())
                    .unwrap_or_default();
                let block = ToolResultBlock::builder()
                    .tool_use_id(id)
                    .content(ToolResultContentBlock::Text(m.text_content()))
                    .build()
                    .map_err(|e| build_err(&format!("messages[{i}]"), e))?;
                push(
                    &mut messages,
                    ConversationRole::User,
                    vec![ContentBlock::ToolResult(block)],
                );
            }
        }
    }
    let messages = messages
        .into_iter()
        .map(|(role, content)| {
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_err("messages", e))?;

    let inference = {
        let mut b = InferenceConfiguration::builder();
        let mut any = false;
        if let Some(m) = req.max_output_tokens() {
            b = b.max_tokens(i32::try_from(m).unwrap_or(i32::MAX));
            any = true;
        }
        if let Some(t) = req.temperature {
            b = b.temperature(t as f32);
            any = true;
        }
        if let Some(p) = req.top_p {
            b = b.top_p(p as f32);
            any = true;
        }
        if let Some(s) = &req.stop {
            b = b.set_stop_sequences(Some(s.to_vec()));
            any = true;
        }
        any.then(|| b.build())
    };

    let json_schema = match &req.response_format {
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(
            json_schema
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object"})),
        ),
        _ => None,
    };
    let tools_off = matches!(&req.tool_choice, Some(NToolChoice::Mode(m)) if m == "none");
    let mut tools: Vec<Tool> = Vec::new();
    if !tools_off {
        for (j, t) in req.tools.iter().flatten().enumerate() {
            let schema = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let spec = ToolSpecification::builder()
                .name(&t.function.name)
                .set_description(t.function.description.clone())
                .input_schema(ToolInputSchema::Json(json_to_document(&schema)))
                .build()
                .map_err(|e| build_err(&format!("tools[{j}]"), e))?;
            tools.push(Tool::ToolSpec(spec));
        }
    }
    let mut choice = if tools_off {
        None
    } else {
        match &req.tool_choice {
            None => None,
            Some(NToolChoice::Mode(m)) if m == "auto" => {
                Some(ToolChoice::Auto(AutoToolChoice::builder().build()))
            }
            Some(NToolChoice::Mode(m)) if m == "required" => {
                Some(ToolChoice::Any(AnyToolChoice::builder().build()))
            }
            Some(NToolChoice::Mode(m)) => {
                return Err(invalid(format!(
                    "tool_choice {m:?} is not one of none, auto, required"
                )))
            }
            Some(NToolChoice::Named(n)) => Some(ToolChoice::Tool(
                SpecificToolChoice::builder()
                    .name(&n.function.name)
                    .build()
                    .map_err(|e| build_err("tool_choice", e))?,
            )),
        }
    };
    if let Some(schema) = &json_schema {
        let spec = ToolSpecification::builder()
            .name(JSON_TOOL)
            .description("Respond with a JSON object.")
            .input_schema(ToolInputSchema::Json(json_to_document(schema)))
            .build()
            .map_err(|e| build_err("response_format", e))?;
        tools.push(Tool::ToolSpec(spec));
        choice = Some(ToolChoice::Tool(
            SpecificToolChoice::builder()
                .name(JSON_TOOL)
                .build()
                .map_err(|e| build_err("response_format", e))?,
        ));
    }
    let tool_config = if tools.is_empty() {
        None
    } else {
        Some(
            ToolConfiguration::builder()
                .set_tools(Some(tools))
                .set_tool_choice(choice)
                .build()
                .map_err(|e| build_err("tools", e))?,
        )
    };
    let additional: Map<String, Value> = ADDITIONAL
        .iter()
        .filter_map(|k| req.extra.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    Ok(ConverseInput {
        messages,
        system: (!system.is_empty()).then_some(system),
        inference,
        tools: tool_config,
        additional: (!additional.is_empty()).then(|| json_to_document(&Value::Object(additional))),
        json_mode: json_schema.is_some(),
    })
}

fn user_blocks(m: &NMessage, i: usize) -> Result<Vec<ContentBlock>, ProviderError> {
    match &m.content {
        None => Ok(vec![]),
        Some(Content::Text(t)) => Ok(vec![ContentBlock::Text(t.clone())]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                ContentPart::Text { text } => Ok(ContentBlock::Text(text.clone())),
                ContentPart::ImageUrl { image_url } => image_block(&image_url.url)
                    .map_err(|e| invalid(format!("messages[{i}].content[{j}].image_url: {e}"))),
                _ => Err(invalid(format!(
                    "messages[{i}].content[{j}]: Bedrock accepts text and image_url parts only"
                ))),
            })
            .collect(),
    }
}

fn image_block(url: &str) -> Result<ContentBlock, String> {
    use base64::Engine;
    let (media, data) = crate::providers::anthropic::parse_data_url(url).ok_or_else(|| {
        "Bedrock takes images as data: URLs (data:image/png;base64,…)".to_string()
    })?;
    let format = match media {
        "image/png" => ImageFormat::Png,
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        other => {
            return Err(format!(
                "image type {other} is not supported (png, jpeg, gif, webp)"
            ))
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("image data is not valid base64: {e}"))?;
    ImageBlock::builder()
        .format(format)
        .source(ImageSource::Bytes(Blob::new(bytes)))
        .build()
        .map(ContentBlock::Image)
        .map_err(|e| e.to_string())
}

fn assistant_blocks(m: &NMessage, i: usize) -> Result<Vec<ContentBlock>, ProviderError> {
    let mut blocks = Vec::new();
    let t = m.text_content();
    if !t.is_empty() {
        blocks.push(ContentBlock::Text(t));
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                invalid(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not valid JSON: {e}"
                ))
            })?
        };
        let block = ToolUseBlock::builder()
            .tool_use_id(&call.id)
            .name(&call.function.name)
            .input(json_to_document(&input))
            .build()
            .map_err(|e| build_err(&format!("messages[{i}].tool_calls[{j}]"), e))?;
        blocks.push(ContentBlock::ToolUse(block));
    }
    Ok(blocks)
}

pub fn finish_reason(r: &StopReason) -> String {
    match r {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFiltered | StopReason::GuardrailIntervened => "content_filter",
        _ => "stop",
    }
    .to_string()
}

pub fn usage(u: &TokenUsage) -> Usage {
    let cached = u.cache_read_input_tokens().unwrap_or(0).max(0) as u64;
    let written = u.cache_write_input_tokens().unwrap_or(0).max(0) as u64;
    let mut usage = Usage::new(
        u.input_tokens().max(0) as u64 + cached + written,
        u.output_tokens().max(0) as u64,
    );
    usage.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(cached),
        audio_tokens: None,
    });
    usage
}

pub fn from_converse(
    out: ConverseOutput,
    model: &str,
    json_mode: bool,
) -> Result<ChatResponse, ProviderError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    if let Some(Output::Message(m)) = out.output() {
        for block in m.content() {
            match block {
                ContentBlock::Text(t) => text.push_str(t),
                ContentBlock::ToolUse(t) if json_mode && t.name() == JSON_TOOL => {
                    text.push_str(&document_to_json(t.input()).to_string())
                }
                ContentBlock::ToolUse(t) => calls.push(ToolCall {
                    id: t.tool_use_id().to_string(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: t.name().to_string(),
                        arguments: document_to_json(t.input()).to_string(),
                    },
                }),
                _ => {}
            }
        }
    }
    let mut finish = finish_reason(out.stop_reason());
    if json_mode && calls.is_empty() {
        finish = "stop".into();
    }
    Ok(ChatResponse::single(
        completion_id(),
        now_secs(),
        model.to_string(),
        text,
        calls,
        Some(finish),
        out.usage().map(usage),
    ))
}

/// serde_json → Smithy document (tool schemas, tool inputs, additional fields).
pub fn json_to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Document::Number(Number::PosInt(u))
            } else if let Some(i) = n.as_i64() {
                Document::Number(Number::NegInt(i))
            } else {
                Document::Number(Number::Float(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(json_to_document).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// Smithy document → serde_json.
pub fn document_to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => json!(u),
        Document::Number(Number::NegInt(i)) => json!(i),
        Document::Number(Number::Float(f)) => json!(f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(document_to_json).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn documents_round_trip() {
        let v = json!({"a": [1, -2, 2.5, "s", true, null, {"b": {}}]});
        assert_eq!(document_to_json(&json_to_document(&v)), v);
    }

    #[test]
    fn messages_map_to_converse() {
        let r = req(json!({
            "model": "anthropic.claude-3-haiku",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
                {"role": "tool", "tool_call_id": "c2", "content": "43"}
            ],
            "max_tokens": 10, "temperature": 0.5, "stop": "END",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        }));
        let c = to_converse(&r, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.system.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.messages.len(), 3, "tool results merge into one user turn");
        assert!(matches!(c.messages[0].content()[1], ContentBlock::Image(_)));
        assert!(matches!(
            c.messages[1].content()[0],
            ContentBlock::ToolUse(_)
        ));
        assert_eq!(c.messages[2].content().len(), 2);
        assert_eq!(c.inference.as_ref().and_then(|i| i.max_tokens()), Some(10));
        assert!(matches!(
            c.tools.as_ref().and_then(|t| t.tool_choice()),
            Some(ToolChoice::Any(_))
        ));
    }

    #[test]
    fn unsupported_params_fail_unless_dropped() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 1, "frobnicate": true}),
        );
        let e = to_converse(&r, false)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(
            e.contains("seed") && e.contains("frobnicate") && e.contains("drop_params"),
            "{e}"
        );
        assert!(to_converse(&r, true).is_ok());
    }

    #[test]
    fn http_image_urls_are_refused_clearly() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
        );
        let e = to_converse(&r, false)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(
            e.contains("messages[0].content[0].image_url") && e.contains("data:"),
            "{e}"
        );
    }
}
