//! Bedrock's Converse wire format, both ways: a Converse request becomes the
//! neutral (OpenAI-shaped) request, and neutral answers and chunks become
//! Converse responses and ConverseStream events. Built as JSON values: the
//! Converse shapes are open-ended (tagged content blocks) and read once.

use super::AwsError;
use crate::gateway::types::{ChatChunk, ChatResponse, Usage};
use base64::Engine;
use serde_json::{json, Map, Value};

/// Fields of `additionalModelRequestFields` that Tollgate reads itself.
pub const GATEWAY_FIELDS: &[&str] = &["enable_history", "session_id", "promptVariables"];

fn invalid(msg: impl Into<String>) -> AwsError {
    AwsError::validation(msg)
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AwsError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{path} must be an object")))
}

fn arr<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, AwsError> {
    v.as_array()
        .ok_or_else(|| invalid(format!("{path} must be a list")))
}

fn str_at<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, AwsError> {
    m.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.{key} must be a string")))
}

/// An image or document's bytes as a data URL (`source.bytes` is base64 on the wire).
fn data_url(block: &Map<String, Value>, mime: &str, path: &str) -> Result<String, AwsError> {
    let source = block
        .get("source")
        .map(|s| obj(s, &format!("{path}.source")))
        .transpose()?
        .ok_or_else(|| invalid(format!("{path}.source is required")))?;
    if let Some(b64) = source.get("bytes").and_then(Value::as_str) {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| invalid(format!("{path}.source.bytes is not valid base64")))?;
        return Ok(format!("data:{mime};base64,{b64}"));
    }
    if source.contains_key("s3Location") {
        return Err(invalid(format!(
            "{path}.source.s3Location is not supported by this gateway; send the bytes"
        )));
    }
    Err(invalid(format!("{path}.source must have bytes")))
}

fn image_mime(format: &str, path: &str) -> Result<&'static str, AwsError> {
    Ok(match format {
        "png" => "image/png",
        "jpeg" | "jpg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        other => {
            return Err(invalid(format!(
                "{path}.format must be one of png, jpeg, gif, webp; got {other:?}"
            )))
        }
    })
}

fn document_mime(format: &str) -> &'static str {
    match format {
        "pdf" => "application/pdf",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "html" => "text/html",
        "md" => "text/markdown",
        _ => "text/plain",
    }
}

/// Text of a toolResult's content list (`text` and `json` blocks).
fn tool_result_text(content: &[Value]) -> String {
    let mut parts = Vec::new();
    for b in content {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            parts.push(t.to_string());
        } else if let Some(j) = b.get("json") {
            parts.push(j.to_string());
        }
    }
    parts.join("\n")
}

/// A Converse request (the body of `/model/{id}/converse[-stream]`) as an
/// OpenAI chat request for `model`. Returns the request and the gateway's own
/// fields taken from `additionalModelRequestFields`.
pub fn to_openai(
    body: &Value,
    model: &str,
    stream: bool,
) -> Result<(Value, Map<String, Value>), AwsError> {
    let body = obj(body, "The request body")?;
    let mut messages: Vec<Value> = Vec::new();
    if let Some(system) = body.get("system") {
        let mut text = Vec::new();
        for (i, b) in arr(system, "system")?.iter().enumerate() {
            let b = obj(b, &format!("system[{i}]"))?;
            if let Some(t) = b.get("text").and_then(Value::as_str) {
                text.push(t.to_string());
            } else if let Some(t) = b.pointer_text("guardContent") {
                text.push(t);
            } else if !b.contains_key("cachePoint") {
                return Err(invalid(format!("system[{i}] must be a text block")));
            }
        }
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text.join("\n")}));
        }
    }
    let list = body
        .get("messages")
        .map(|m| arr(m, "messages"))
        .transpose()?;
    for (i, m) in list.into_iter().flatten().enumerate() {
        let path = format!("messages[{i}]");
        let m = obj(m, &path)?;
        let role = str_at(m, "role", &path)?;
        if role != "user" && role != "assistant" {
            return Err(invalid(format!(
                "{path}.role must be user or assistant, got {role:?}"
            )));
        }
        let content = m
            .get("content")
            .map(|c| arr(c, &format!("{path}.content")))
            .transpose()?
            .ok_or_else(|| invalid(format!("{path}.content is required")))?;
        let mut parts: Vec<Value> = Vec::new();
        let mut tool_calls: Vec<Value> = Vec::new();
        let mut tool_results: Vec<Value> = Vec::new();
        for (j, b) in content.iter().enumerate() {
            let bp = format!("{path}.content[{j}]");
            let b = obj(b, &bp)?;
            if let Some(t) = b.get("text").and_then(Value::as_str) {
                parts.push(json!({"type": "text", "text": t}));
            } else if let Some(img) = b.get("image") {
                let img = obj(img, &format!("{bp}.image"))?;
                let mime = image_mime(
                    str_at(img, "format", &format!("{bp}.image"))?,
                    &format!("{bp}.image"),
                )?;
                let url = data_url(img, mime, &format!("{bp}.image"))?;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            } else if let Some(doc) = b.get("document") {
                let doc = obj(doc, &format!("{bp}.document"))?;
                let format = str_at(doc, "format", &format!("{bp}.document"))?;
                let url = data_url(doc, document_mime(format), &format!("{bp}.document"))?;
                let name = doc
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("document");
                parts.push(json!({"type": "file", "file": {"file_data": url, "filename": format!("{name}.{format}")}}));
            } else if let Some(tu) = b.get("toolUse") {
                let tu = obj(tu, &format!("{bp}.toolUse"))?;
                if role != "assistant" {
                    return Err(invalid(format!(
                        "{bp}.toolUse is only allowed in assistant messages"
                    )));
                }
                let input = tu.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({
                    "id": str_at(tu, "toolUseId", &format!("{bp}.toolUse"))?,
                    "type": "function",
                    "function": {"name": str_at(tu, "name", &format!("{bp}.toolUse"))?, "arguments": input.to_string()},
                }));
            } else if let Some(tr) = b.get("toolResult") {
                let tr = obj(tr, &format!("{bp}.toolResult"))?;
                if role != "user" {
                    return Err(invalid(format!(
                        "{bp}.toolResult is only allowed in user messages"
                    )));
                }
                let content = tr
                    .get("content")
                    .map(|c| arr(c, &format!("{bp}.toolResult.content")))
                    .transpose()?
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let mut text = tool_result_text(content);
                if tr.get("status").and_then(Value::as_str) == Some("error") {
                    text = format!("Error: {text}");
                }
                tool_results.push(json!({
                    "role": "tool",
                    "tool_call_id": str_at(tr, "toolUseId", &format!("{bp}.toolResult"))?,
                    "content": text,
                }));
            } else if let Some(t) = b.pointer_text("guardContent") {
                parts.push(json!({"type": "text", "text": t}));
            } else if b.contains_key("reasoningContent") || b.contains_key("cachePoint") {
                // Earlier reasoning and cache markers are not replayed to other providers.
            } else {
                let kind = b.keys().next().map(String::as_str).unwrap_or("(empty)");
                return Err(invalid(format!(
                    "{bp}: content block {kind:?} is not supported"
                )));
            }
        }
        super::super::formats::push_turn(&mut messages, role, parts, tool_calls, tool_results);
    }

    let mut req = json!({"model": model, "messages": messages});
    if stream {
        req["stream"] = json!(true);
        req["stream_options"] = json!({"include_usage": true});
    }
    if let Some(ic) = body.get("inferenceConfig") {
        let ic = obj(ic, "inferenceConfig")?;
        for (from, to) in [
            ("maxTokens", "max_tokens"),
            ("temperature", "temperature"),
            ("topP", "top_p"),
        ] {
            if let Some(v) = ic.get(from) {
                if !v.is_number() {
                    return Err(invalid(format!("inferenceConfig.{from} must be a number")));
                }
                req[to] = v.clone();
            }
        }
        if let Some(s) = ic.get("stopSequences") {
            req["stop"] = Value::Array(arr(s, "inferenceConfig.stopSequences")?.clone());
        }
    }
    if let Some(tc) = body.get("toolConfig") {
        let tc = obj(tc, "toolConfig")?;
        let mut tools = Vec::new();
        for (i, t) in tc
            .get("tools")
            .map(|t| arr(t, "toolConfig.tools"))
            .transpose()?
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = format!("toolConfig.tools[{i}]");
            let Some(spec) = t.get("toolSpec").and_then(Value::as_object) else {
                if t.get("cachePoint").is_some() {
                    continue;
                }
                return Err(invalid(format!("{path}.toolSpec is required")));
            };
            let mut f = json!({"name": str_at(spec, "name", &format!("{path}.toolSpec"))?});
            if let Some(d) = spec.get("description") {
                f["description"] = d.clone();
            }
            if let Some(schema) = spec.get("inputSchema").and_then(|s| s.get("json")) {
                f["parameters"] = schema.clone();
            }
            tools.push(json!({"type": "function", "function": f}));
        }
        if !tools.is_empty() {
            req["tools"] = Value::Array(tools);
        }
        if let Some(choice) = tc.get("toolChoice") {
            let choice = obj(choice, "toolChoice")?;
            req["tool_choice"] = if choice.contains_key("auto") {
                json!("auto")
            } else if choice.contains_key("any") {
                json!("required")
            } else if let Some(t) = choice.get("tool").and_then(Value::as_object) {
                json!({"type": "function", "function": {"name": str_at(t, "name", "toolConfig.toolChoice.tool")?}})
            } else {
                return Err(invalid(
                    "toolConfig.toolChoice must be one of auto, any, tool",
                ));
            };
        }
    }
    if let Some(meta) = body.get("requestMetadata") {
        req["metadata"] = Value::Object(obj(meta, "requestMetadata")?.clone());
    }
    let mut gateway = Map::new();
    if let Some(extra) = body.get("additionalModelRequestFields") {
        for (k, v) in obj(extra, "additionalModelRequestFields")? {
            if GATEWAY_FIELDS.contains(&k.as_str()) {
                gateway.insert(k.clone(), v.clone());
            } else {
                req[k.as_str()] = v.clone();
            }
        }
    }
    if let Some(v) = body.get("promptVariables") {
        gateway.insert("promptVariables".into(), v.clone());
    }
    // Bedrock's own guardrail field names a configured guardrail (by name).
    if let Some(g) = body.get("guardrailConfig").filter(|v| !v.is_null()) {
        let id = g
            .get("guardrailIdentifier")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("guardrailConfig.guardrailIdentifier is required"))?;
        gateway.insert("guardrails".into(), serde_json::json!([id]));
    }
    for unsupported in ["additionalModelResponseFieldPaths", "performanceConfig"] {
        if body.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(invalid(format!(
                "{unsupported} is not supported by this gateway yet"
            )));
        }
    }
    Ok((req, gateway))
}

trait GuardText {
    fn pointer_text(&self, key: &str) -> Option<String>;
}

impl GuardText for Map<String, Value> {
    /// The text of a `guardContent` block (`{"guardContent": {"text": {"text": …}}}`).
    fn pointer_text(&self, key: &str) -> Option<String> {
        self.get(key)?
            .pointer("/text/text")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// OpenAI's finish reason as Converse's stop reason.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "content_filtered",
        Some("guardrail_intervened") => "guardrail_intervened",
        Some("stop_sequence") => "stop_sequence",
        _ => "end_turn",
    }
}

pub fn usage(u: &Usage) -> Value {
    let mut v = json!({
        "inputTokens": u.prompt_tokens,
        "outputTokens": u.completion_tokens,
        "totalTokens": u.prompt_tokens + u.completion_tokens,
    });
    if let Some(c) = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .filter(|c| *c > 0)
    {
        v["cacheReadInputTokens"] = json!(c);
    }
    v
}

/// A tool call's arguments as the JSON object Converse carries.
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => json!({"value": other}),
        Err(_) if arguments.trim().is_empty() => json!({}),
        Err(_) => json!({"arguments": arguments}),
    }
}

/// A neutral answer as a Converse response.
pub fn from_response(resp: &ChatResponse, latency_ms: u64) -> Value {
    let choice = resp.choices.first();
    let mut content = Vec::new();
    if let Some(c) = choice {
        if let Some(t) = c.message.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(json!({"text": t}));
        }
        for tc in c.message.tool_calls.iter().flatten() {
            content.push(json!({"toolUse": {"toolUseId": tc.id, "name": tc.function.name, "input": tool_input(&tc.function.arguments)}}));
        }
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(choice.and_then(|c| c.finish_reason.as_deref())),
        "usage": usage(&resp.usage.clone().unwrap_or_default()),
        "metrics": {"latencyMs": latency_ms},
    })
}

/// The Converse answer of a call a guardrail named in `guardrailConfig` refused
/// before the model answered: its message as the text, no tokens spent.
pub fn intervened(message: &str, latency_ms: u64) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": message}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
        "metrics": {"latencyMs": latency_ms},
    })
}

/// Turns neutral chunks into ConverseStream events: `(event type, payload)`.
#[derive(Default)]
pub struct StreamEvents {
    started: bool,
    /// The open content block: its index and whether it is a tool call (with its OpenAI index).
    open: Option<(u32, Option<u32>)>,
    next_index: u32,
    stopped: bool,
}

impl StreamEvents {
    fn close(&mut self, out: &mut Vec<(&'static str, Value)>) {
        if let Some((i, _)) = self.open.take() {
            out.push(("contentBlockStop", json!({"contentBlockIndex": i})));
        }
    }

    /// Ends the message because a guardrail intervened: its message as a last
    /// text block, then `messageStop` with `guardrail_intervened`. With
    /// `latency_ms` (refused before the call) a `metadata` event follows with no
    /// tokens; a stream cut part-way has already had its usage counted elsewhere.
    pub fn intervene(
        &mut self,
        message: &str,
        latency_ms: Option<u64>,
        out: &mut Vec<(&'static str, Value)>,
    ) {
        if self.stopped {
            return;
        }
        if !self.started {
            self.started = true;
            out.push(("messageStart", json!({"role": "assistant"})));
        }
        self.close(out);
        let i = self.next_index;
        self.next_index += 1;
        out.push((
            "contentBlockDelta",
            json!({"contentBlockIndex": i, "delta": {"text": message}}),
        ));
        out.push(("contentBlockStop", json!({"contentBlockIndex": i})));
        self.stopped = true;
        out.push(("messageStop", json!({"stopReason": "guardrail_intervened"})));
        if let Some(ms) = latency_ms {
            out.push((
                "metadata",
                json!({"usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}, "metrics": {"latencyMs": ms}}),
            ));
        }
    }

    pub fn push(
        &mut self,
        chunk: &ChatChunk,
        latency_ms: u64,
        out: &mut Vec<(&'static str, Value)>,
    ) {
        if !self.started {
            self.started = true;
            out.push(("messageStart", json!({"role": "assistant"})));
        }
        // Only the first choice is rendered: Converse has one answer.
        if let Some(c) = chunk.choices.iter().find(|c| c.index == 0) {
            let d = &c.delta;
            if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                let i = match self.open {
                    Some((i, None)) => i,
                    _ => {
                        self.close(out);
                        let i = self.next_index;
                        self.next_index += 1;
                        self.open = Some((i, None));
                        i
                    }
                };
                out.push((
                    "contentBlockDelta",
                    json!({"contentBlockIndex": i, "delta": {"text": t}}),
                ));
            }
            for tc in d.tool_calls.iter().flatten() {
                let same = matches!(self.open, Some((_, Some(k))) if k == tc.index);
                if !same {
                    self.close(out);
                    let i = self.next_index;
                    self.next_index += 1;
                    self.open = Some((i, Some(tc.index)));
                    let name = tc
                        .function
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default();
                    let id = tc.id.clone().unwrap_or_else(|| format!("tooluse_{i}"));
                    out.push(("contentBlockStart", json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": id, "name": name}}})));
                }
                if let Some(args) = tc
                    .function
                    .as_ref()
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    let i = self.open.map(|(i, _)| i).unwrap_or_default();
                    out.push((
                        "contentBlockDelta",
                        json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": args}}}),
                    ));
                }
            }
            if let Some(f) = c.finish_reason.as_deref() {
                self.close(out);
                if !self.stopped {
                    self.stopped = true;
                    out.push(("messageStop", json!({"stopReason": stop_reason(Some(f))})));
                }
            }
        }
        if let Some(u) = &chunk.usage {
            self.close(out);
            if !self.stopped {
                self.stopped = true;
                out.push(("messageStop", json!({"stopReason": "end_turn"})));
            }
            out.push((
                "metadata",
                json!({"usage": usage(u), "metrics": {"latencyMs": latency_ms}}),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(body: Value) -> Value {
        to_openai(&body, "m", false)
            .unwrap_or_else(|e| panic!("{}", e.message))
            .0
    }

    #[test]
    fn messages_system_tools_and_config_map_to_openai() {
        let req = convert(json!({
            "system": [{"text": "be brief"}],
            "messages": [
                {"role": "user", "content": [{"text": "weather?"}, {"image": {"format": "png", "source": {"bytes": "aGVsbG8="}}}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get", "input": {"city": "Paris"}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"temp": 20}}]}}]},
            ],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "get", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"any": {}}},
            "additionalModelRequestFields": {"enable_history": true, "top_k": 5},
        }));
        assert_eq!(
            req["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            req["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,aGVsbG8="
        );
        assert_eq!(
            req["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            req["messages"][3],
            json!({"role": "tool", "tool_call_id": "t1", "content": "{\"temp\":20}"})
        );
        assert_eq!(req["max_tokens"], 50);
        assert_eq!(req["stop"], json!(["END"]));
        assert_eq!(req["tool_choice"], "required");
        assert_eq!(
            req["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert_eq!(req["top_k"], 5);
        assert!(req.get("enable_history").is_none());
    }

    #[test]
    fn bad_blocks_name_their_place() {
        for (body, needle) in [
            (
                json!({"messages": [{"role": "system", "content": []}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"video": {}}]}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": ""}}}]}]}),
                "format",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "!!"}}}]}]}),
                "base64",
            ),
            (json!({"messages": "hi"}), "messages must be a list"),
        ] {
            let e = to_openai(&body, "m", false)
                .err()
                .unwrap_or_else(|| panic!("accepted {body}"));
            assert!(
                e.message.contains(needle),
                "{} does not name {needle}",
                e.message
            );
        }
    }

    #[test]
    fn chunks_become_converse_stream_events() {
        let chunk =
            |v: Value| -> ChatChunk { serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}")) };
        let mut ev = StreamEvents::default();
        let mut out = Vec::new();
        ev.push(
            &chunk(
                json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}),
            ),
            1,
            &mut out,
        );
        ev.push(&chunk(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]})), 1, &mut out);
        ev.push(&chunk(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]})), 1, &mut out);
        ev.push(&chunk(json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})), 7, &mut out);
        let kinds: Vec<&str> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        assert_eq!(out[3].1["start"]["toolUse"]["toolUseId"], "c1");
        assert_eq!(out[7].1["stopReason"], "tool_use");
        assert_eq!(out[8].1["usage"]["totalTokens"], 5);
    }
}
