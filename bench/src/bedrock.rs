//! Bedrock runtime: Converse, ConverseStream (AWS event-stream) and InvokeModel
//! for Titan / Cohere embeddings.

use std::sync::Arc;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::http::{HeaderValue as HttpHeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::common::{
    bedrock_error, finish_json, json_response, preflight, stream_response, Ev, Plan, Provider, Req,
};
use crate::state::Shared;
use crate::text::{
    count_words, embedding_vector, generate, normalize, push_joined, split_pieces, word_chunks,
    Conversation, Finish, ToolChoice,
};

fn auth_ok(st: &Shared, req: &Req) -> bool {
    let Some(key) = st.config.required_key.as_deref() else {
        return true;
    };
    req.header("authorization")
        .is_some_and(|a| a.contains(&format!("Credential={key}/")))
}

fn validation(msg: &str) -> Response {
    bedrock_error(400, "ValidationException", msg)
}

/// Text of a Converse toolResult's `content` list.
fn tool_result_text(content: &Value) -> String {
    let mut s = String::new();
    for b in content.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            push_joined(&mut s, t);
        } else if let Some(j) = b.get("json") {
            push_joined(&mut s, &j.to_string());
        }
    }
    s
}

fn conversation(body: &Value) -> Result<Conversation, Response> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err(validation(
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null",
        ));
    };
    let mut conv = Conversation::default();
    for b in body
        .get("system")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        conv.prompt_words += count_words(b.get("text").and_then(Value::as_str).unwrap_or(""));
    }
    for (i, m) in messages.iter().enumerate() {
        let mut text = String::new();
        let mut images = 0;
        let mut last_tool_result = None;
        for b in m
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if let Some(t) = b.get("text").and_then(Value::as_str) {
                conv.prompt_words += count_words(t);
                push_joined(&mut text, t);
            } else if b.get("image").is_some() {
                images += 1;
            } else if let Some(tr) = b.get("toolResult") {
                let t = tool_result_text(tr.get("content").unwrap_or(&Value::Null));
                conv.prompt_words += count_words(&t);
                last_tool_result = Some(t);
            }
        }
        if m.get("role").and_then(Value::as_str) == Some("user") {
            if i + 1 == messages.len() {
                conv.tool_result = last_tool_result;
            }
            conv.last_user_text = text;
            conv.last_user_images = images;
        }
    }
    if let Some(tc) = body.get("toolConfig") {
        conv.tools = tc
            .get("tools")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.pointer("/toolSpec/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(name) = tc.pointer("/toolChoice/tool/name").and_then(Value::as_str) {
            conv.tool_choice = ToolChoice::Named(name.to_owned());
        }
    }
    conv.parallel = body
        .pointer("/additionalModelRequestFields/tool_choice/disable_parallel_tool_use")
        .and_then(Value::as_bool)
        != Some(true);
    conv.max_tokens = body
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_u64);
    conv.stop = body
        .pointer("/inferenceConfig/stopSequences")
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

fn stop_reason(f: &Finish) -> &'static str {
    match f {
        Finish::EndTurn => "end_turn",
        Finish::MaxTokens => "max_tokens",
        Finish::StopSequence(_) => "stop_sequence",
        Finish::ToolUse => "tool_use",
    }
}

/// One AWS event-stream message (`:event-type`, `:content-type`, `:message-type`).
fn es_event(event_type: &'static str, payload: &Value) -> Bytes {
    let msg = Message::new_from_parts(
        vec![
            Header::new(":event-type", HeaderValue::String(event_type.into())),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            Header::new(":message-type", HeaderValue::String("event".into())),
        ],
        Bytes::from(payload.to_string()),
    );
    let mut buf = Vec::with_capacity(128);
    // Writing to a Vec fails only for oversize messages, which these never are.
    if write_message_to(&msg, &mut buf).is_err() {
        buf.clear();
    }
    Bytes::from(buf)
}

fn with_request_id(mut r: Response) -> Response {
    r.headers_mut().insert(
        "x-amzn-requestid",
        HttpHeaderValue::from_static("mock-request-id"),
    );
    r
}

async fn checks(st: &Shared, req: &Req, model: &str) -> Result<Plan, Response> {
    if !auth_ok(st, req) {
        return Err(Provider::Bedrock.error(403, None, None));
    }
    let plan = preflight(st, Provider::Bedrock, &req.path, model).await?;
    if req.json.is_none() {
        return Err(validation(
            "Malformed input request, please reformat your input and try again.",
        ));
    }
    Ok(plan)
}

/// `POST /model/{modelId}/converse` and `/converse-stream`.
pub(crate) async fn converse(st: Arc<Shared>, req: Req, model: String, stream: bool) -> Response {
    let plan = match checks(&st, &req, &model).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(body) = req.json.as_ref() else {
        return validation("Malformed input request");
    };
    let conv = match conversation(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if conv.prompt_words > st.config.context_window {
        return validation("Input is too long for requested model.");
    }
    let outcome = generate(&conv);
    let reason = stop_reason(&outcome.finish);
    let ids: Vec<String> = outcome
        .tool_calls
        .iter()
        .map(|_| format!("tooluse_mock{}", st.next_id()))
        .collect();
    let usage = json!({
        "inputTokens": conv.prompt_words,
        "outputTokens": outcome.completion_tokens,
        "totalTokens": conv.prompt_words + outcome.completion_tokens,
    });

    if stream {
        let mut ev = vec![Ev::meta(es_event(
            "messageStart",
            &json!({"role": "assistant"}),
        ))];
        match &outcome.text {
            Some(text) => {
                for w in word_chunks(text) {
                    ev.push(Ev::token(es_event(
                        "contentBlockDelta",
                        &json!({"contentBlockIndex": 0, "delta": {"text": w}}),
                    )));
                }
                ev.push(Ev::meta(es_event(
                    "contentBlockStop",
                    &json!({"contentBlockIndex": 0}),
                )));
            }
            None => {
                for (i, (call, id)) in outcome.tool_calls.iter().zip(&ids).enumerate() {
                    ev.push(Ev::token(es_event(
                        "contentBlockStart",
                        &json!({"contentBlockIndex": i,
                                "start": {"toolUse": {"toolUseId": id, "name": call.name}}}),
                    )));
                    for piece in split_pieces(&call.arguments, 3) {
                        ev.push(Ev::token(es_event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}}),
                        )));
                    }
                    ev.push(Ev::meta(es_event(
                        "contentBlockStop",
                        &json!({"contentBlockIndex": i}),
                    )));
                }
            }
        }
        ev.push(Ev::meta(es_event(
            "messageStop",
            &json!({"stopReason": reason}),
        )));
        ev.push(Ev::meta(es_event(
            "metadata",
            &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
        )));
        return with_request_id(stream_response(
            &st,
            "application/vnd.amazon.eventstream",
            ev,
            plan,
        ));
    }

    let content: Vec<Value> = match &outcome.text {
        Some(text) => vec![json!({ "text": text })],
        None => outcome
            .tool_calls
            .iter()
            .zip(&ids)
            .map(|(c, id)| json!({"toolUse": {"toolUseId": id, "name": c.name, "input": c.input}}))
            .collect(),
    };
    let latency = u64::try_from(plan.non_stream_delay(&outcome).as_millis()).unwrap_or(u64::MAX);
    let resp = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": reason,
        "usage": usage,
        "metrics": {"latencyMs": latency.max(1)},
    });
    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
    with_request_id(finish_json(StatusCode::OK, bytes, plan, Some(&outcome)).await)
}

fn dims_of(v: Option<&Value>) -> Result<usize, Response> {
    match v {
        None | Some(Value::Null) => Ok(8),
        Some(v) => match v.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=65_536).contains(&d) => Ok(d),
            _ => Err(validation("dimensions must be a positive integer")),
        },
    }
}

#[allow(clippy::cast_possible_truncation)]
fn quantize_i8(v: &[f32]) -> Vec<i64> {
    v.iter().map(|x| (x * 127.0).round() as i64).collect()
}

#[allow(clippy::cast_possible_truncation)]
fn quantize_u8(v: &[f32]) -> Vec<i64> {
    v.iter()
        .map(|x| ((x + 1.0) * 127.5).round() as i64)
        .collect()
}

/// `POST /model/{modelId}/invoke`: Titan and Cohere embeddings.
pub(crate) async fn invoke(st: Arc<Shared>, req: Req, model: String) -> Response {
    let plan = match checks(&st, &req, &model).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(body) = req.json.as_ref() else {
        return validation("Malformed input request");
    };
    let resp = if model.contains("titan-embed") {
        let Some(text) = body.get("inputText").and_then(Value::as_str) else {
            return validation("Malformed input request: #: required key [inputText] not found, please reformat your input and try again.");
        };
        let dims = match dims_of(body.get("dimensions")) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let mut v = embedding_vector(text, dims);
        if body.get("normalize").and_then(Value::as_bool) == Some(true) {
            normalize(&mut v);
        }
        json!({"embedding": v, "inputTextTokenCount": count_words(text)})
    } else if model.contains("cohere.embed") {
        let Some(texts) = body.get("texts").and_then(Value::as_array) else {
            return validation("Malformed input request: #: required key [texts] not found, please reformat your input and try again.");
        };
        if body.get("input_type").and_then(Value::as_str).is_none() {
            return validation("Malformed input request: #: required key [input_type] not found, please reformat your input and try again.");
        }
        let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        let vectors: Vec<Vec<f32>> = texts.iter().map(|t| embedding_vector(t, 8)).collect();
        let id = format!("mock-embed-{}", st.next_id());
        match body.get("embedding_types").and_then(Value::as_array) {
            None => json!({"id": id, "embeddings": vectors, "texts": texts,
                           "response_type": "embeddings_floats"}),
            Some(types) => {
                let mut by_type = serde_json::Map::new();
                for t in types.iter().filter_map(Value::as_str) {
                    let v = match t {
                        "float" => json!(vectors),
                        "int8" => json!(vectors.iter().map(|v| quantize_i8(v)).collect::<Vec<_>>()),
                        "uint8" => json!(vectors.iter().map(|v| quantize_u8(v)).collect::<Vec<_>>()),
                        other => {
                            return validation(&format!(
                                "Malformed input request: embedding type {other} is not supported by the mock"
                            ))
                        }
                    };
                    by_type.insert(t.to_owned(), v);
                }
                json!({"id": id, "embeddings": by_type, "texts": texts,
                       "response_type": "embeddings_by_type"})
            }
        }
    } else {
        return validation("The provided model identifier is invalid.");
    };
    let bytes = serde_json::to_vec(&resp).unwrap_or_default();
    with_request_id(finish_json(StatusCode::OK, bytes, plan, None).await)
}

/// Words the mock guardrail blocks (any case).
const GUARDRAIL_BLOCKED: &[&str] = &["forbidden", "blockme"];
/// What the mock guardrail answers when it blocks.
pub const GUARDRAIL_BLOCKED_MESSAGE: &str = "Sorry, the model cannot answer this question.";

/// `POST /guardrail/{id}/version/{version}/apply` (ApplyGuardrail). One fixed
/// policy for every guardrail: text with a blocked word is blocked (a word
/// policy assessment, the blocked message as output); email addresses are
/// anonymized to `{EMAIL}`, a capitalised word after `Mr.`/`Ms.`/`Dr.` to
/// `{NAME}` (a PII assessment, the anonymized text as output);
/// anything else passes. An identifier starting with `missing` is not found.
pub(crate) async fn apply_guardrail(
    st: Arc<Shared>,
    req: Req,
    id: String,
    version: String,
) -> Response {
    if !auth_ok(&st, &req) {
        return Provider::Bedrock.error(403, None, None);
    }
    if id.starts_with("missing") {
        return bedrock_error(
            404,
            "ResourceNotFoundException",
            &format!("The guardrail {id} was not found."),
        );
    }
    if version.is_empty() {
        return validation("guardrailVersion is required.");
    }
    let Some(body) = req.json.as_ref() else {
        return validation("Malformed input request");
    };
    let source = body.get("source").and_then(Value::as_str).unwrap_or("");
    if source != "INPUT" && source != "OUTPUT" {
        return validation("source must be INPUT or OUTPUT.");
    }
    let texts: Vec<String> = body
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|b| b.pointer("/text/text").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let units = texts.iter().map(|t| t.len().div_ceil(1000)).sum::<usize>();
    let usage = json!({
        "topicPolicyUnits": units, "contentPolicyUnits": units, "wordPolicyUnits": units,
        "sensitiveInformationPolicyUnits": units, "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
    });
    let blocked = texts.iter().find_map(|t| {
        let lower = t.to_lowercase();
        GUARDRAIL_BLOCKED
            .iter()
            .find(|w| lower.contains(*w))
            .map(|w| w.to_string())
    });
    if let Some(word) = blocked {
        return json_response(
            StatusCode::OK,
            &json!({
                "action": "GUARDRAIL_INTERVENED",
                "actionReason": "Guardrail blocked.",
                "outputs": [{"text": GUARDRAIL_BLOCKED_MESSAGE}],
                "assessments": [{"wordPolicy": {"customWords": [{"match": word, "action": "BLOCKED", "detected": true}]}}],
                "usage": usage,
            }),
        );
    }
    let mut anonymized = false;
    let mut matches = Vec::new();
    let outputs: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut after_title = false;
            let words: Vec<String> = t
                .split(' ')
                .map(|w| {
                    // A name after a title, as Bedrock's NAME entity.
                    if std::mem::replace(&mut after_title, matches!(w, "Mr." | "Ms." | "Dr."))
                        && w.chars().next().is_some_and(char::is_uppercase)
                    {
                        anonymized = true;
                        matches.push(
                            w.trim_end_matches(|c: char| !c.is_alphanumeric())
                                .to_string(),
                        );
                        return "{NAME}".to_string();
                    }
                    let bare =
                        w.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '.');
                    let bare = bare.trim_end_matches('.');
                    if bare.contains('@') && bare.contains('.') && !bare.starts_with('@') {
                        anonymized = true;
                        matches.push(bare.to_string());
                        w.replace(bare, "{EMAIL}")
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            json!({"text": words.join(" ")})
        })
        .collect();
    if !anonymized {
        return json_response(
            StatusCode::OK,
            &json!({"action": "NONE", "outputs": [], "assessments": [{}], "usage": usage}),
        );
    }
    let pii: Vec<Value> = matches
        .iter()
        .map(|m| {
            let kind = if m.contains('@') { "EMAIL" } else { "NAME" };
            json!({"match": m, "type": kind, "action": "ANONYMIZED", "detected": true})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "action": "GUARDRAIL_INTERVENED",
            "actionReason": "Guardrail masked.",
            "outputs": outputs,
            "assessments": [{"sensitiveInformationPolicy": {"piiEntities": pii}}],
            "usage": usage,
        }),
    )
}
