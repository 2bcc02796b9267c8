//! One request as the log destinations get it: the fields of LiteLLM's
//! `StandardLoggingPayload` that Tollgate knows, so scripts written for
//! LiteLLM's S3 or webhook logs read Tollgate's unchanged.

use super::RequestLog;
use serde_json::{json, Map, Value};

/// The prompt and the answer of one call, as they were sent and received
/// (after guardrails masked them: never the caller's unmasked values).
#[derive(Debug, Clone, Default)]
pub struct LoggedContent {
    /// The request's messages (chat) or input (embeddings).
    pub messages: Value,
    /// The answer (an OpenAI `chat.completion` object), when there was one.
    pub response: Option<Value>,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The payload of `log`; `content` says whether its prompt and answer go too.
pub fn payload(log: &RequestLog, content: bool) -> Value {
    let failed = !log.succeeded();
    let mut metadata = Map::new();
    metadata.insert(
        "user_api_key_hash".into(),
        json!(log.api_key_hash.as_deref()),
    );
    metadata.insert("user_api_key_alias".into(), json!(log.key_alias.as_deref()));
    metadata.insert("user_api_key_user_id".into(), json!(log.user_id));
    metadata.insert("user_api_key_team_id".into(), json!(log.team_id));
    metadata.insert(
        "requester_metadata".into(),
        log.metadata.clone().unwrap_or(Value::Null),
    );
    let mut p = Map::new();
    p.insert("id".into(), json!(log.request_id));
    p.insert("call_type".into(), json!(log.call_type));
    p.insert(
        "status".into(),
        json!(if failed { "failure" } else { "success" }),
    );
    p.insert("outcome".into(), json!(log.outcome));
    p.insert("startTime".into(), json!(secs(log.started_at_ms)));
    p.insert("endTime".into(), json!(secs(log.ended_at_ms)));
    p.insert(
        "completionStartTime".into(),
        json!(log.ttft_ms.map(|t| secs(log.started_at_ms + t as i64))),
    );
    p.insert(
        "response_time".into(),
        json!(log.latency_ms as f64 / 1000.0),
    );
    p.insert("requested_model".into(), json!(log.model_requested));
    p.insert("model".into(), json!(log.upstream_model));
    p.insert("model_group".into(), json!(log.model_group));
    p.insert("model_id".into(), json!(log.deployment_id));
    p.insert("custom_llm_provider".into(), json!(log.provider));
    p.insert("surface".into(), json!(log.surface));
    p.insert("stream".into(), json!(log.stream));
    p.insert("status_code".into(), json!(log.status_code));
    p.insert("prompt_tokens".into(), json!(log.prompt_tokens));
    p.insert("completion_tokens".into(), json!(log.completion_tokens));
    p.insert(
        "total_tokens".into(),
        json!(log.prompt_tokens + log.completion_tokens),
    );
    p.insert("response_cost".into(), json!(log.spend));
    p.insert("cache_hit".into(), json!(log.cache_hit));
    p.insert("attempts".into(), json!(log.attempts));
    p.insert("fallbacks_used".into(), json!(log.fallbacks_used));
    p.insert("metadata".into(), Value::Object(metadata));
    p.insert(
        "guardrail_information".into(),
        log.guardrails.clone().unwrap_or(Value::Null),
    );
    p.insert("error_str".into(), json!(log.error));
    if failed {
        p.insert(
            "error_information".into(),
            json!({
                "error_code": log.status_code.to_string(),
                "error_message": log.error,
            }),
        );
    }
    if content {
        if let Some(c) = &log.content {
            p.insert("messages".into(), c.messages.clone());
            if let Some(r) = &c.response {
                p.insert("response".into(), r.clone());
            }
        }
    }
    Value::Object(p)
}
