#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};
use tollgate_bench::MockConfig;

fn req(text: &str) -> Value {
    json!({"model": "claude-3-5-sonnet-20241022", "max_tokens": 100,
           "system": [{"type": "text", "text": "be brief"}],
           "messages": [{"role": "user", "content": text}]})
}

fn tool(name: &str) -> Value {
    json!({"name": name, "description": "d", "input_schema": {"type": "object"}})
}

#[tokio::test]
async fn non_stream_schema() {
    let m = mock().await;
    let r = post_with(
        &m.url("/v1/messages"),
        &req("hello world"),
        ANTHROPIC_HEADERS,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-3-5-sonnet-20241022");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Mock reply to: hello world"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert_eq!(
        m.last_request().unwrap().header("x-api-key"),
        Some("sk-ant-test")
    );
}

#[tokio::test]
async fn reply_and_tool_rules_table() {
    let m = mock().await;
    let img = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}});
    // (overrides, expected content, stop_reason, stop_sequence)
    let cases: Vec<(Value, Value, &str, Value)> = vec![
        (
            json!({"max_tokens": 3}),
            json!([{"type": "text", "text": "Mock reply to:"}]),
            "max_tokens",
            Value::Null,
        ),
        (
            json!({"stop_sequences": ["world"]}),
            json!([{"type": "text", "text": "Mock reply to: hello "}]),
            "stop_sequence",
            json!("world"),
        ),
        (
            json!({"system": "plain string system"}),
            json!([{"type": "text", "text": "Mock reply to: hello world"}]),
            "end_turn",
            Value::Null,
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, img, img]}]}),
            json!([{"type": "text", "text": "Mock reply to: see [1 image] [1 image]"}]),
            "end_turn",
            Value::Null,
        ),
        (
            json!({"tools": [tool("a")]}),
            json!([{"type": "tool_use", "name": "a", "input": {"input": "hello world"}}]),
            "tool_use",
            Value::Null,
        ),
        (
            json!({"tools": [tool("a"), tool("b")]}),
            json!([{"type": "tool_use", "name": "a", "input": {"input": "hello world"}},
                   {"type": "tool_use", "name": "b", "input": {"input": "hello world"}}]),
            "tool_use",
            Value::Null,
        ),
        (
            json!({"tools": [tool("a"), tool("b")], "tool_choice": {"type": "any", "disable_parallel_tool_use": true}}),
            json!([{"type": "tool_use", "name": "a", "input": {"input": "hello world"}}]),
            "tool_use",
            Value::Null,
        ),
        (
            json!({"tools": [tool("a"), tool("b")], "tool_choice": {"type": "tool", "name": "b"}}),
            json!([{"type": "tool_use", "name": "b", "input": {"input": "hello world"}}]),
            "tool_use",
            Value::Null,
        ),
        (
            json!({"tools": [tool("a")], "tool_choice": {"type": "none"}}),
            json!([{"type": "text", "text": "Mock reply to: hello world"}]),
            "end_turn",
            Value::Null,
        ),
        (
            json!({"tools": [tool("a")], "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "sunny"}]}]}]}),
            json!([{"type": "text", "text": "Mock reply to tool result: sunny"}]),
            "end_turn",
            Value::Null,
        ),
        (
            json!({"messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rainy"}]}]}),
            json!([{"type": "text", "text": "Mock reply to tool result: rainy"}]),
            "end_turn",
            Value::Null,
        ),
    ];
    for (over, want, reason, seq) in cases {
        let mut body = req("hello world");
        for (k, v) in over.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post_with(&m.url("/v1/messages"), &body, ANTHROPIC_HEADERS).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let mut v = r.json();
        for block in v["content"].as_array_mut().unwrap() {
            if block["type"] == "tool_use" {
                let id = block.as_object_mut().unwrap().remove("id").unwrap();
                assert!(id.as_str().unwrap().starts_with("toolu_"));
            }
        }
        assert_eq!(v["content"], want, "case {over}");
        assert_eq!(v["stop_reason"], reason, "case {over}");
        assert_eq!(v["stop_sequence"], seq, "case {over}");
    }
}

#[tokio::test]
async fn errors_table() {
    let m = mock_with(
        MockConfig::default()
            .with_context_window(5)
            .with_required_key("sk-ant-test"),
    )
    .await;
    let mut no_max = req("x");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    type Case<'a> = (
        Value,
        &'a [(&'a str, &'a str)],
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            no_max,
            ANTHROPIC_HEADERS,
            400,
            "invalid_request_error",
            Some("max_tokens: Field required"),
        ),
        (
            req("x"),
            &[("x-api-key", "sk-ant-test")],
            400,
            "invalid_request_error",
            Some("anthropic-version: header is required"),
        ),
        (
            req("x"),
            &[("anthropic-version", "2023-06-01"), ("x-api-key", "bad")],
            401,
            "authentication_error",
            None,
        ),
        (
            req("one two three four"),
            ANTHROPIC_HEADERS,
            400,
            "invalid_request_error",
            Some("prompt is too long: 6 tokens > 5 maximum"),
        ),
    ];
    for (body, headers, status, kind, msg) in cases {
        let r = post_with(&m.url("/v1/messages"), &body, headers).await;
        assert_eq!(r.status, status, "{}", r.text);
        let v = r.json();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
        if let Some(msg) = msg {
            assert_eq!(v["error"]["message"], msg);
        }
    }
}

#[tokio::test]
async fn stream_text_events() {
    let m = mock().await;
    let mut body = req("hello world");
    body["stream"] = json!(true);
    let r = post_with(&m.url("/v1/messages"), &body, ANTHROPIC_HEADERS).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = sse_json(&r.text);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_deref().unwrap());
    }
    let start = &events[0].1["message"];
    assert_eq!(start["usage"]["input_tokens"], 4);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(start["content"], json!([]));
    let text: String = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Mock reply to: hello world");
    let md = &events[9].1;
    assert_eq!(
        md["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(md["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn stream_tool_use_events() {
    let m = mock().await;
    let mut body = req("hello world");
    body["stream"] = json!(true);
    body["tools"] = json!([tool("a"), tool("b")]);
    let r = post_with(&m.url("/v1/messages"), &body, ANTHROPIC_HEADERS).await;
    let events = sse_json(&r.text);
    for idx in 0..2u64 {
        let start = events
            .iter()
            .find(|(e, d)| e.as_deref() == Some("content_block_start") && d["index"] == idx)
            .unwrap();
        assert_eq!(start.1["content_block"]["type"], "tool_use");
        assert!(start.1["content_block"]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_"));
        assert_eq!(start.1["content_block"]["input"], json!({}));
        let parts: Vec<&str> = events
            .iter()
            .filter(|(e, d)| e.as_deref() == Some("content_block_delta") && d["index"] == idx)
            .map(|(_, d)| {
                assert_eq!(d["delta"]["type"], "input_json_delta");
                d["delta"]["partial_json"].as_str().unwrap()
            })
            .collect();
        assert!(parts.len() >= 3);
        let json: Value = serde_json::from_str(&parts.concat()).unwrap();
        assert_eq!(json, json!({"input": "hello world"}));
    }
    let md = events
        .iter()
        .find(|(e, _)| e.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(md.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn count_tokens() {
    let m = mock().await;
    let r = post_with(
        &m.url("/v1/messages/count_tokens"),
        &req("a b c"),
        ANTHROPIC_HEADERS,
    )
    .await;
    assert_eq!(r.json(), json!({"input_tokens": 5}));
}
