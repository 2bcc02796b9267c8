//! The request shapes `/v1/chat/completions` (and Bedrock's `invoke`) accept
//! besides OpenAI's, detected by their fields: a Bedrock-Claude body
//! (`anthropic_version`, `messages`, `system`, `max_tokens`) and an Amazon
//! Titan text body (`inputText`, `textGenerationConfig`); and the Titan
//! answer shapes (`?target_format=bedrock_titan`). Bedrock-Claude answers are
//! Anthropic messages (see `anthropic.rs`).

use crate::gateway::types::{ChatChunk, ChatResponse};
use serde_json::{json, Value};

/// A request body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    BedrockClaude,
    BedrockTitan,
}

impl Format {
    /// By priority: `anthropic_version`, then `inputText`, else OpenAI.
    pub fn detect(body: &Value) -> Format {
        if body.get("anthropic_version").is_some() {
            Format::BedrockClaude
        } else if body.get("inputText").is_some() {
            Format::BedrockTitan
        } else {
            Format::OpenAi
        }
    }

    /// `?target_format=`: `openai`, `bedrock_claude` or `bedrock_titan`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "openai" => Some(Format::OpenAi),
            "bedrock_claude" | "anthropic" => Some(Format::BedrockClaude),
            "bedrock_titan" | "titan" => Some(Format::BedrockTitan),
            _ => None,
        }
    }
}

/// Appends one turn of a block-based API (Anthropic Messages, Converse) to
/// OpenAI messages: its tool results first (they answer the previous
/// assistant turn), then the assistant's text and tool calls, or the user's
/// parts (a lone text part as a plain string).
pub fn push_turn(
    messages: &mut Vec<Value>,
    role: &str,
    parts: Vec<Value>,
    tool_calls: Vec<Value>,
    tool_results: Vec<Value>,
) {
    messages.extend(tool_results);
    if role == "assistant" {
        let text: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let content = if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.join(""))
        };
        let mut msg = json!({"role": "assistant", "content": content});
        if !tool_calls.is_empty() {
            msg["tool_calls"] = Value::Array(tool_calls);
        }
        messages.push(msg);
    } else if !parts.is_empty() {
        let only_text = parts.len() == 1 && parts[0]["type"] == "text";
        let content = if only_text {
            parts[0]["text"].clone()
        } else {
            Value::Array(parts)
        };
        messages.push(json!({"role": "user", "content": content}));
    }
}

/// A Titan text request as an OpenAI chat request for `model`.
pub fn titan_to_openai(body: &Value, model: &str) -> Result<Value, String> {
    let text = body
        .get("inputText")
        .and_then(Value::as_str)
        .ok_or("inputText must be a string")?;
    let mut req = json!({"model": model, "messages": [{"role": "user", "content": text}]});
    if let Some(c) = body.get("textGenerationConfig") {
        let c = c
            .as_object()
            .ok_or("textGenerationConfig must be an object")?;
        for (from, to) in [
            ("maxTokenCount", "max_tokens"),
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("stopSequences", "stop"),
        ] {
            if let Some(v) = c.get(from).filter(|v| !v.is_null()) {
                req[to] = v.clone();
            }
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        req["stream"] = json!(true);
        req["stream_options"] = json!({"include_usage": true});
    }
    Ok(req)
}

fn titan_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "LENGTH",
        Some("content_filter") => "CONTENT_FILTERED",
        _ => "FINISH",
    }
}

/// A neutral answer in Titan's response shape.
pub fn titan_response(resp: &ChatResponse) -> Value {
    let usage = resp.usage.clone().unwrap_or_default();
    let c = resp.choices.first();
    json!({
        "inputTextTokenCount": usage.prompt_tokens,
        "results": [{
            "tokenCount": usage.completion_tokens,
            "outputText": c.and_then(|c| c.message.content.clone()).unwrap_or_default(),
            "completionReason": titan_reason(c.and_then(|c| c.finish_reason.as_deref())),
        }],
    })
}

/// Titan's streamed chunks for a neutral chunk (text pieces, then the final counts).
#[derive(Default)]
pub struct TitanStream {
    finish: Option<&'static str>,
}

impl TitanStream {
    pub fn push(&mut self, chunk: &ChatChunk, out: &mut Vec<Value>) {
        for c in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(t) = c.delta.content.as_deref().filter(|t| !t.is_empty()) {
                out.push(json!({"outputText": t, "index": 0, "totalOutputTextTokenCount": null, "completionReason": null, "inputTextTokenCount": null}));
            }
            if let Some(f) = c.finish_reason.as_deref() {
                self.finish = Some(titan_reason(Some(f)));
            }
        }
        if let Some(u) = &chunk.usage {
            out.push(json!({
                "outputText": "", "index": 0,
                "totalOutputTextTokenCount": u.completion_tokens,
                "completionReason": self.finish.unwrap_or("FINISH"),
                "inputTextTokenCount": u.prompt_tokens,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_by_their_fields() {
        assert_eq!(
            Format::detect(&json!({"anthropic_version": "bedrock-2023-05-31", "messages": []})),
            Format::BedrockClaude
        );
        assert_eq!(
            Format::detect(&json!({"inputText": "hi"})),
            Format::BedrockTitan
        );
        assert_eq!(
            Format::detect(&json!({"model": "m", "messages": []})),
            Format::OpenAi
        );
    }

    #[test]
    fn titan_requests_map_to_openai() {
        let r = titan_to_openai(&json!({"inputText": "hello", "textGenerationConfig": {"maxTokenCount": 9, "topP": 0.5}}), "m")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r["messages"][0]["content"], "hello");
        assert_eq!(r["max_tokens"], 9);
        assert_eq!(r["top_p"], 0.5);
        assert!(titan_to_openai(&json!({"inputText": 5}), "m").is_err());
    }
}
