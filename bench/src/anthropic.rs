//! Anthropic Messages API.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::common::{
    anthropic_error, finish_json, json_response, preflight, sse_event, stream_response, Ev,
    Provider, Req,
};
use crate::state::Shared;
use crate::text::{
    count_words, generate, push_joined, split_pieces, word_chunks, Conversation, Finish, ToolChoice,
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
    req.header("x-api-key") == Some(key) || bearer == Some(key)
}

fn invalid(msg: &str) -> Response {
    anthropic_error(400, "invalid_request_error", msg)
}

/// Text of a tool_result's `content` (string or blocks).
fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let mut s = String::new();
            for b in blocks {
                if b.get("type").and_then(Value::as_str) == Some("text") {
                    push_joined(&mut s, b.get("text").and_then(Value::as_str).unwrap_or(""));
                }
            }
            s
        }
        _ => String::new(),
    }
}

struct MsgText {
    /// Text blocks joined.
    text: String,
    images: usize,
    /// Words in every text-bearing block (text and tool results).
    words: usize,
    /// Text of the last tool_result block.
    last_tool_result: Option<String>,
}

fn message_text(content: &Value) -> MsgText {
    let mut out = MsgText {
        text: String::new(),
        images: 0,
        words: 0,
        last_tool_result: None,
    };
    match content {
        Value::String(s) => {
            out.words = count_words(s);
            out.text = s.clone();
        }
        Value::Array(blocks) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = b.get("text").and_then(Value::as_str).unwrap_or("");
                        out.words += count_words(t);
                        push_joined(&mut out.text, t);
                    }
                    Some("image") => out.images += 1,
                    Some("tool_result") => {
                        let t = tool_result_text(b.get("content").unwrap_or(&Value::Null));
                        out.words += count_words(&t);
                        out.last_tool_result = Some(t);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

fn conversation(body: &Value) -> Result<Conversation, Response> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(invalid("messages: Field required"));
    };
    let mut conv = Conversation::default();
    match body.get("system") {
        Some(Value::String(s)) => conv.prompt_words += count_words(s),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                conv.prompt_words +=
                    count_words(b.get("text").and_then(Value::as_str).unwrap_or(""));
            }
        }
        _ => {}
    }
    let mut last_tool_result = None;
    for (i, m) in messages.iter().enumerate() {
        let t = message_text(m.get("content").unwrap_or(&Value::Null));
        conv.prompt_words += t.words;
        if m.get("role").and_then(Value::as_str) == Some("user") {
            if i + 1 == messages.len() {
                last_tool_result = t.last_tool_result;
            }
            conv.last_user_text = t.text;
            conv.last_user_images = t.images;
        }
    }
    conv.tool_result = last_tool_result;
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        conv.tools = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
    }
    let tc = body.get("tool_choice");
    conv.tool_choice = match tc.and_then(|v| v.get("type")).and_then(Value::as_str) {
        Some("none") => ToolChoice::None,
        Some("tool") => match tc.and_then(|v| v.get("name")).and_then(Value::as_str) {
            Some(n) => ToolChoice::Named(n.to_owned()),
            None => return Err(invalid("tool_choice.tool.name: Field required")),
        },
        _ => ToolChoice::Auto,
    };
    conv.parallel = tc
        .and_then(|v| v.get("disable_parallel_tool_use"))
        .and_then(Value::as_bool)
        != Some(true);
    conv.max_tokens = body.get("max_tokens").and_then(Value::as_u64);
    conv.stop = body
        .get("stop_sequences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(conv)
}

fn stop_reason(f: &Finish) -> (&'static str, Option<&str>) {
    match f {
        Finish::EndTurn => ("end_turn", None),
        Finish::MaxTokens => ("max_tokens", None),
        Finish::StopSequence(s) => ("stop_sequence", Some(s.as_str())),
        Finish::ToolUse => ("tool_use", None),
    }
}

async fn common_checks(st: &Shared, req: &Req) -> Result<(String, crate::common::Plan), Response> {
    if !auth_ok(st, req) {
        return Err(Provider::Anthropic.error(401, None, None));
    }
    let model: String = req
        .json
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_default();
    let plan = preflight(st, Provider::Anthropic, &req.path, &model).await?;
    if req.header("anthropic-version").is_none() {
        return Err(invalid("anthropic-version: header is required"));
    }
    if req.json.is_none() {
        return Err(invalid(
            "There was an error parsing the body of your request: expected a JSON object.",
        ));
    }
    if model.is_empty() {
        return Err(invalid("model: Field required"));
    }
    Ok((model, plan))
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(st: Arc<Shared>, req: Req) -> Response {
    let (_, _) = match common_checks(&st, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(body) = req.json.as_ref() else {
        return invalid("invalid body");
    };
    match conversation(body) {
        Ok(c) => json_response(StatusCode::OK, &json!({ "input_tokens": c.prompt_words })),
        Err(r) => r,
    }
}

/// `POST /v1/messages`.
pub(crate) async fn messages(st: Arc<Shared>, req: Req) -> Response {
    let (model, plan) = match common_checks(&st, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(body) = req.json.as_ref() else {
        return invalid("invalid body");
    };
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return invalid("max_tokens: Field required");
    }
    let conv = match conversation(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if conv.prompt_words > st.config.context_window {
        return invalid(&format!(
            "prompt is too long: {} tokens > {} maximum",
            conv.prompt_words, st.config.context_window
        ));
    }
    let outcome = generate(&conv);
    let id = format!("msg_mock{}", st.next_id());
    let (reason, stop_seq) = stop_reason(&outcome.finish);
    let tool_ids: Vec<String> = outcome
        .tool_calls
        .iter()
        .map(|_| format!("toolu_{}", st.next_id()))
        .collect();

    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let mut ev = vec![Ev::meta(sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": conv.prompt_words, "output_tokens": 1,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ))];
        let ping = || Ev::meta(sse_event("ping", &json!({"type": "ping"})));
        match &outcome.text {
            Some(text) => {
                ev.push(Ev::meta(sse_event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                )));
                ev.push(ping());
                for w in word_chunks(text) {
                    ev.push(Ev::token(sse_event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": w}}),
                    )));
                }
                ev.push(Ev::meta(sse_event(
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": 0}),
                )));
            }
            None => {
                for (i, (call, tid)) in outcome.tool_calls.iter().zip(&tool_ids).enumerate() {
                    ev.push(Ev::token(sse_event(
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": i,
                                "content_block": {"type": "tool_use", "id": tid, "name": call.name, "input": {}}}),
                    )));
                    if i == 0 {
                        ev.push(ping());
                    }
                    for piece in split_pieces(&call.arguments, 3) {
                        ev.push(Ev::token(sse_event(
                            "content_block_delta",
                            &json!({"type": "content_block_delta", "index": i,
                                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
                        )));
                    }
                    ev.push(Ev::meta(sse_event(
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": i}),
                    )));
                }
            }
        }
        ev.push(Ev::meta(sse_event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": stop_seq},
                    "usage": {"output_tokens": outcome.completion_tokens}}),
        )));
        ev.push(Ev::meta(sse_event(
            "message_stop",
            &json!({"type": "message_stop"}),
        )));
        return stream_response(&st, "text/event-stream", ev, plan);
    }

    let content: Vec<Value> = match &outcome.text {
        Some(text) => vec![json!({"type": "text", "text": text})],
        None => outcome
            .tool_calls
            .iter()
            .zip(&tool_ids)
            .map(
                |(c, tid)| json!({"type": "tool_use", "id": tid, "name": c.name, "input": c.input}),
            )
            .collect(),
    };
    let resp = json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": reason, "stop_sequence": stop_seq,
        "usage": {"input_tokens": conv.prompt_words, "output_tokens": outcome.completion_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    });
    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
    finish_json(StatusCode::OK, bytes, plan, Some(&outcome)).await
}
