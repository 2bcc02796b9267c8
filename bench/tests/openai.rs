#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tollgate_bench::MockConfig;

fn user(text: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": text}
    ]})
}

#[tokio::test]
async fn non_stream_schema() {
    let m = mock().await;
    let r = post(&m.url("/v1/chat/completions"), &user("hello big world")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o");
    assert!(v["system_fingerprint"].is_string());
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(c["message"]["content"], "Mock reply to: hello big world");
    assert!(c["message"]["refusal"].is_null());
    assert!(c["message"].get("tool_calls").is_none());
    assert!(c["logprobs"].is_null());
    assert_eq!(c["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );
}

#[tokio::test]
async fn reply_rules_table() {
    let m = mock().await;
    // (extra request fields, messages override, expected content, finish_reason, completion_tokens)
    let cases: Vec<(Value, Option<Value>, &str, &str, u64)> = vec![
        (json!({}), None, "Mock reply to: one two three", "stop", 6),
        (
            json!({"max_tokens": 4}),
            None,
            "Mock reply to: one",
            "length",
            4,
        ),
        (
            json!({"max_completion_tokens": 2}),
            None,
            "Mock reply",
            "length",
            2,
        ),
        (
            json!({"max_tokens": 100}),
            None,
            "Mock reply to: one two three",
            "stop",
            6,
        ),
        (
            json!({"stop": "two"}),
            None,
            "Mock reply to: one ",
            "stop",
            4,
        ),
        (
            json!({"stop": ["zzz", "three", "one"]}),
            None,
            "Mock reply to: ",
            "stop",
            3,
        ),
        (
            json!({"response_format": {"type": "json_object"}}),
            None,
            r#"{"reply":"Mock reply to: one two three"}"#,
            "stop",
            6,
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}),
            None,
            r#"{"reply":"Mock reply to: one two three"}"#,
            "stop",
            6,
        ),
        (
            json!({}),
            Some(json!([{"role": "user", "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this"}]}])),
            "Mock reply to: look at this [1 image]",
            "stop",
            8,
        ),
        (
            json!({}),
            Some(
                json!([{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                {"role": "user", "content": "second"}]),
            ),
            "Mock reply to: second",
            "stop",
            4,
        ),
    ];
    for (extra, messages, want, finish, ct) in cases {
        let mut body = user("one two three");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        if let Some(msgs) = messages {
            body["messages"] = msgs;
        }
        let r = post(&m.url("/v1/chat/completions"), &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["choices"][0]["message"]["content"], want, "case {body}");
        assert_eq!(v["choices"][0]["finish_reason"], finish, "case {body}");
        assert_eq!(v["usage"]["completion_tokens"], ct, "case {body}");
    }
}

#[tokio::test]
async fn n_choices() {
    let m = mock().await;
    let mut body = user("hi");
    body["n"] = json!(3);
    let v = post(&m.url("/chat/completions"), &body).await.json();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["content"], "Mock reply to: hi");
    }
    assert_eq!(v["usage"]["completion_tokens"], 12);
}

fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": "d",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}}}})
}

#[tokio::test]
async fn tool_rules_table() {
    let m = mock().await;
    // (tools, tool_choice, parallel_tool_calls, expected called names; empty = text reply)
    let cases: Vec<(Vec<&str>, Value, Value, Vec<&str>)> = vec![
        (vec!["a"], Value::Null, Value::Null, vec!["a"]),
        (
            vec!["a", "b", "c"],
            Value::Null,
            Value::Null,
            vec!["a", "b"],
        ),
        (vec!["a", "b"], json!("auto"), json!(false), vec!["a"]),
        (
            vec!["a", "b"],
            json!("required"),
            json!(true),
            vec!["a", "b"],
        ),
        (
            vec!["a", "b"],
            json!({"type": "function", "function": {"name": "b"}}),
            Value::Null,
            vec!["b"],
        ),
        (vec!["a", "b"], json!("none"), Value::Null, vec![]),
    ];
    for (tools, choice, parallel, want) in cases {
        let mut body = user("weather in Paris");
        body["tools"] = Value::Array(tools.iter().map(|t| tool(t)).collect());
        if !choice.is_null() {
            body["tool_choice"] = choice.clone();
        }
        if !parallel.is_null() {
            body["parallel_tool_calls"] = parallel.clone();
        }
        let v = post(&m.url("/v1/chat/completions"), &body).await.json();
        let c = &v["choices"][0];
        if want.is_empty() {
            assert_eq!(c["message"]["content"], "Mock reply to: weather in Paris");
            assert_eq!(c["finish_reason"], "stop");
            continue;
        }
        assert!(c["message"]["content"].is_null(), "{v}");
        assert_eq!(c["finish_reason"], "tool_calls");
        let calls = c["message"]["tool_calls"].as_array().unwrap();
        let names: Vec<&str> = calls
            .iter()
            .map(|c| c["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, want, "choice {choice} parallel {parallel}");
        for call in calls {
            assert!(call["id"].as_str().unwrap().starts_with("call_"));
            assert_eq!(call["type"], "function");
            assert_eq!(
                call["function"]["arguments"],
                r#"{"input":"weather in Paris"}"#
            );
        }
        if calls.len() == 2 {
            assert_ne!(calls[0]["id"], calls[1]["id"]);
        }
    }
}

#[tokio::test]
async fn tool_result_turn() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o", "tools": [tool("a")], "tool_choice": "required", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "a", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}
    ]});
    let v = post(&m.url("/v1/chat/completions"), &body).await.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock reply to tool result: sunny, 21C"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn stream_text_framing() {
    let m = mock().await;
    for include_usage in [false, true] {
        let mut body = user("hello big world");
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let r = post(&m.url("/v1/chat/completions"), &body).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        let raw = sse(&r.text);
        assert_eq!(raw.last().unwrap().1, "[DONE]");
        assert!(raw.iter().all(|(e, _)| e.is_none()));
        let events = sse_json(&r.text);
        let first = &events[0].1;
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["model"], "gpt-4o");
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        let words: Vec<&str> = events[1..]
            .iter()
            .filter_map(|(_, e)| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(
            words,
            vec!["Mock ", "reply ", "to: ", "hello ", "big ", "world"]
        );
        let ids: Vec<&Value> = events.iter().map(|(_, e)| &e["id"]).collect();
        assert!(ids.iter().all(|i| *i == ids[0]));
        let (fin_idx, fin) = events
            .iter()
            .enumerate()
            .find(|(_, (_, e))| !e["choices"][0]["finish_reason"].is_null())
            .unwrap();
        assert_eq!(fin.1["choices"][0]["delta"], json!({}));
        assert_eq!(fin.1["choices"][0]["finish_reason"], "stop");
        if include_usage {
            assert_eq!(events.len(), fin_idx + 2);
            let u = &events[fin_idx + 1].1;
            assert_eq!(u["choices"], json!([]));
            assert_eq!(u["usage"]["prompt_tokens"], 5);
            assert_eq!(u["usage"]["completion_tokens"], 6);
            assert!(events[0].1["usage"].is_null());
        } else {
            assert_eq!(events.len(), fin_idx + 1);
            assert!(events[0].1.get("usage").is_none());
        }
    }
}

#[tokio::test]
async fn stream_tool_calls() {
    let m = mock().await;
    let mut body = user("weather in Paris");
    body["stream"] = json!(true);
    body["tools"] = json!([tool("get_weather"), tool("get_time")]);
    let r = post(&m.url("/v1/chat/completions"), &body).await;
    let events = sse_json(&r.text);
    let mut args = [String::new(), String::new()];
    let mut pieces = [0, 0];
    let mut names = vec![];
    for (_, e) in &events {
        if let Some(tcs) = e["choices"][0]["delta"]["tool_calls"].as_array() {
            assert_eq!(tcs.len(), 1);
            let tc = &tcs[0];
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(name) = tc["function"]["name"].as_str() {
                assert!(tc["id"].as_str().unwrap().starts_with("call_"));
                assert_eq!(tc["type"], "function");
                assert_eq!(tc["function"]["arguments"], "");
                names.push(name.to_owned());
            } else {
                args[i].push_str(tc["function"]["arguments"].as_str().unwrap());
                pieces[i] += 1;
            }
        }
    }
    assert_eq!(names, vec!["get_weather", "get_time"]);
    for (a, p) in args.iter().zip(pieces) {
        assert_eq!(a, r#"{"input":"weather in Paris"}"#);
        assert!(p >= 3);
    }
    let last = &events.last().unwrap().1;
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn azure_paths_and_auth() {
    let m = mock_with(MockConfig::default().with_required_key("sekrit")).await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let url = m.url("/openai/deployments/my-gpt4/chat/completions?api-version=2024-10-21");
    let r = post_with(&url, &body, &[("api-key", "sekrit")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["model"], "my-gpt4");
    let req = m.last_request().unwrap();
    assert_eq!(req.path, "/openai/deployments/my-gpt4/chat/completions");
    assert_eq!(req.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(req.header("api-key"), Some("sekrit"));

    let r = post_with(&url, &body, &[("api-key", "wrong")]).await;
    assert_eq!(r.status, 401);
    let e = r.json();
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert!(e["error"]["message"].is_string());
    assert!(e["error"].get("param").is_some());

    let r = post_with(
        &m.url("/v1/chat/completions"),
        &user("x"),
        &[("authorization", "Bearer sekrit")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        m.last_request().unwrap().header("Authorization"),
        Some("Bearer sekrit")
    );
    let r = post(&m.url("/v1/chat/completions"), &user("x")).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn context_length_error() {
    let m = mock_with(MockConfig::default().with_context_window(10)).await;
    let r = post(
        &m.url("/v1/chat/completions"),
        &user("one two three four five six seven eight nine ten"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "This model's maximum context length is 10 tokens. However, your messages resulted in 12 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
    );
    let r = post(&m.url("/v1/chat/completions"), &user("short")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn validation_errors() {
    let m = mock().await;
    let r = post(&m.url("/v1/chat/completions"), &json!({"model": "gpt-4o"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "messages");
    let r = client()
        .post(m.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(m.last_request().unwrap().body, json!("{not json"));
}

#[tokio::test]
async fn embeddings_table() {
    let m = mock().await;
    // (input, dims, number of vectors, prompt tokens)
    let cases: Vec<(Value, Option<u64>, usize, u64)> = vec![
        (json!("hello world"), None, 1, 2),
        (json!(["a b c", "d"]), Some(16), 2, 4),
        (json!([1, 2, 3]), None, 1, 3),
        (json!([[1, 2], [3]]), Some(4), 2, 3),
    ];
    for (input, dims, count, tokens) in cases {
        let mut body = json!({"model": "text-embedding-3-small", "input": input});
        if let Some(d) = dims {
            body["dimensions"] = json!(d);
        }
        let v = post(&m.url("/v1/embeddings"), &body).await.json();
        assert_eq!(v["object"], "list");
        assert_eq!(v["model"], "text-embedding-3-small");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": tokens, "total_tokens": tokens})
        );
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), count);
        for (i, d) in data.iter().enumerate() {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            let e = d["embedding"].as_array().unwrap();
            assert_eq!(e.len() as u64, dims.unwrap_or(8));
            assert!(e
                .iter()
                .all(|x| (-1.0..=1.0).contains(&x.as_f64().unwrap())));
        }
    }
    // Deterministic, and equal to the library function.
    let a = post(
        &m.url("/embeddings"),
        &json!({"model": "m", "input": "same text"}),
    )
    .await
    .json();
    let b = post(
        &m.url("/openai/deployments/emb/embeddings?api-version=1"),
        &json!({"input": "same text"}),
    )
    .await
    .json();
    assert_eq!(a["data"], b["data"]);
    assert_eq!(b["model"], "emb");
    let expected: Vec<f64> = tollgate_bench::embedding_vector("same text", 8)
        .into_iter()
        .map(f64::from)
        .collect();
    let got: Vec<f64> = a["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn embeddings_base64_bytes() {
    let m = mock().await;
    let body = |fmt: &str| json!({"model": "m", "input": ["x", "y"], "dimensions": 5, "encoding_format": fmt});
    let f = post(&m.url("/v1/embeddings"), &body("float")).await.json();
    let b = post(&m.url("/v1/embeddings"), &body("base64")).await.json();
    for i in 0..2 {
        let s = b["data"][i]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        assert_eq!(bytes.len(), 5 * 4);
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let floats: Vec<f32> = f["data"][i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(decoded, floats);
    }
    let r = post(&m.url("/v1/embeddings"), &body("hex")).await;
    assert_eq!(r.status, 400);
    let r = post(
        &m.url("/v1/embeddings"),
        &json!({"model": "m", "input": []}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "input");
}

#[tokio::test]
async fn models_list() {
    let m = mock().await;
    let v: Value = client()
        .get(m.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["object"] == "model"));
}
