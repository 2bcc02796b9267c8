use super::*;

fn req(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn requests_convert_to_messages_api() {
    let r = req(json!({
        "model": "claude-3-haiku",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "and kind"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": "calling", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "42"},
            {"role": "user", "content": "thanks"}
        ],
        "max_completion_tokens": 50, "stop": ["END"], "user": "u1",
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false
    }));
    let m = to_messages_request(&r, false, 4096, false).unwrap_or_else(|e| panic!("{e}"));
    let v = serde_json::to_value(&m).unwrap_or_default();
    assert_eq!(v["max_tokens"], 50);
    assert_eq!(
        v["system"],
        json!([{"type": "text", "text": "be brief"}, {"type": "text", "text": "and kind"}])
    );
    assert_eq!(
        v["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
    );
    assert_eq!(
        v["messages"][1]["content"][1],
        json!({"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}})
    );
    // The tool result and the next user text share one user turn.
    assert_eq!(v["messages"][2]["role"], "user");
    assert_eq!(v["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(v["messages"][2]["content"][1]["text"], "thanks");
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(
        v["tool_choice"],
        json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
    );
    assert_eq!(v["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(v["metadata"], json!({"user_id": "u1"}));
    assert!(v.get("stream").is_none());
}

#[test]
fn tool_choice_modes_map() {
    for (choice, want) in [
        ("auto", json!({"type": "auto"})),
        ("required", json!({"type": "any"})),
        ("none", json!({"type": "none"})),
    ] {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": choice}),
        );
        let m = to_messages_request(&r, false, 10, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.tool_choice, Some(want));
    }
}

#[test]
fn unsupported_params_are_refused_or_dropped() {
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2, "logprobs": true, "foo": 1}),
    );
    let e = to_messages_request(&r, false, 10, false)
        .err()
        .map(|e| (e.kind, e.message));
    let (kind, msg) = e.unwrap_or_else(|| panic!("accepted"));
    assert_eq!(kind, ErrorKind::UnsupportedParams);
    assert!(msg.contains("n, logprobs, foo"), "{msg}");
    assert!(to_messages_request(&r, true, 10, false).is_ok());
}

#[test]
fn responses_convert_with_stop_reasons_and_usage() {
    let cases = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ];
    for (stop, finish) in cases {
        let msg: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "model": "claude", "stop_reason": stop,
            "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "tu", "name": "f", "input": {"a": 1}}],
            "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 5}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let r = from_messages_response(msg, false);
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some(finish));
        assert_eq!(r.choices[0].message.content.as_deref(), Some("hi"));
        let calls = r.choices[0].message.tool_calls.clone().unwrap_or_default();
        assert_eq!(calls[0].function.arguments, r#"{"a":1}"#);
        let u = r.usage.unwrap_or_default();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (15, 3, 18)
        );
    }
}

#[test]
fn json_mode_turns_the_tool_into_content() {
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
    );
    let m = to_messages_request(&r, false, 10, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.json_mode);
    assert_eq!(
        m.tool_choice,
        Some(json!({"type": "tool", "name": JSON_TOOL}))
    );
    let msg: MessagesResponse = serde_json::from_value(json!({"id": "x", "model": "m", "stop_reason": "tool_use", "content": [{"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"a": 1}}]})).unwrap_or_else(|e| panic!("{e}"));
    let resp = from_messages_response(msg, true);
    assert_eq!(
        resp.choices[0].message.content.as_deref(),
        Some(r#"{"a":1}"#)
    );
    assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(resp.choices[0].message.tool_calls.is_none());
}

#[test]
fn stream_events_map_to_chunks() {
    let mut st = StreamState::new(false);
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_9", "model": "claude", "usage": {"input_tokens": 7, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "tu1", "name": "f", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let mut chunks = Vec::new();
    for (ev, data) in events {
        for c in st.on_event(ev, data.to_string().as_bytes()) {
            chunks.push(c.unwrap_or_else(|e| panic!("{e}")));
        }
    }
    let text: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.content.clone())
        .collect();
    assert_eq!(text, "Hello");
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(chunks.iter().all(|c| c.id == "msg_9"));
    let args: String = chunks
        .iter()
        .filter_map(|c| {
            c.choices
                .first()?
                .delta
                .tool_calls
                .as_ref()?
                .first()?
                .function
                .as_ref()?
                .arguments
                .clone()
        })
        .collect();
    assert_eq!(args, r#"{"a":1}"#);
    let finish = chunks
        .iter()
        .find_map(|c| c.choices.first()?.finish_reason.clone());
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = chunks
        .last()
        .and_then(|c| c.usage.clone())
        .unwrap_or_default();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 12));
}

#[test]
fn stream_error_events_are_classified() {
    let mut st = StreamState::new(false);
    let out = st.on_event(
        "error",
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    let e = out
        .into_iter()
        .next()
        .and_then(Result::err)
        .unwrap_or_else(|| panic!("no error"));
    assert_eq!(e.kind, ErrorKind::Unavailable);
}
