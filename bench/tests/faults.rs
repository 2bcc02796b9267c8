#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use tollgate_bench::{Fault, FaultKind, MockConfig};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "one two three"}]})
}

fn anthropic(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
}

async fn push_http(m: &tollgate_bench::MockHandle, faults: Value) -> Resp {
    post(&m.url("/__mock/faults"), &faults).await
}

#[tokio::test]
async fn status_faults_in_each_provider_shape() {
    let m = mock().await;
    let r = push_http(&m, json!([{"status": 500}, {"status": 429, "retry_after": 1},
                               {"status": 529, "match": "claude"}, {"status": 503, "match": "/model/"}])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["pending"], 4);
    assert_eq!(m.pending_faults().len(), 4);

    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["type"], "server_error");
    assert!(r.header("retry-after").is_none());

    // The 529 only matches "claude"; the 429 (no match) is next in line for OpenAI.
    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");

    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o")).await;
    assert_eq!(r.status, 200);

    let r = post_with(
        &m.url("/v1/messages"),
        &anthropic("claude-3-haiku"),
        ANTHROPIC_HEADERS,
    )
    .await;
    assert_eq!(r.status, 529);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );

    let r = post(
        &m.url("/model/amazon.nova-pro-v1%3A0/converse"),
        &json!({"messages": []}),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/")
    );
    assert!(m.pending_faults().is_empty());
}

#[tokio::test]
async fn anthropic_error_types_table() {
    let m = mock().await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        m.push_fault(Fault::status(status).with_message("boom"));
        let r = post_with(
            &m.url("/v1/messages"),
            &anthropic("claude"),
            ANTHROPIC_HEADERS,
        )
        .await;
        assert_eq!(r.status, status);
        assert_eq!(
            r.json(),
            json!({"type": "error", "error": {"type": kind, "message": "boom"}})
        );
    }
}

#[tokio::test]
async fn reset_drops_connection() {
    let m = mock().await;
    push_http(&m, json!([{"kind": "reset"}])).await;
    let err = client()
        .post(m.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err:?}");
    assert!(err.status().is_none());
    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o")).await;
    assert_eq!(r.status, 200);
    assert_eq!(m.request_count(), 2);
}

async fn read_until_error(resp: reqwest::Response) -> (String, bool) {
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    let mut errored = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                errored = true;
                break;
            }
        }
    }
    (String::from_utf8(got).unwrap(), errored)
}

#[tokio::test]
async fn stream_error_after_chunks() {
    let m = mock().await;
    m.push_faults([Fault::stream_error_after(2), Fault::stream_error_after(3)]);
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    let r = client()
        .post(m.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (text, errored) = read_until_error(r).await;
    assert!(errored);
    assert_eq!(sse(&text).len(), 2, "{text}");

    let mut body = anthropic("claude");
    body["stream"] = json!(true);
    let r = client()
        .post(m.url("/v1/messages"))
        .headers(
            ANTHROPIC_HEADERS
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let (text, errored) = read_until_error(r).await;
    assert!(errored);
    let names: Vec<String> = sse(&text).into_iter().map(|(e, _)| e.unwrap()).collect();
    assert_eq!(names, vec!["message_start", "content_block_start", "ping"]);

    // Non-stream: headers and half a body, then the abort.
    push_http(&m, json!([{"chunks": 1}])).await;
    let r = client()
        .post(m.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (text, errored) = read_until_error(r).await;
    assert!(errored);
    assert!(serde_json::from_str::<Value>(&text).is_err());
    assert_eq!(m.active_streams(), 0);
}

#[tokio::test]
async fn delay_match_and_times() {
    let m = mock().await;
    m.push_faults([
        Fault::delay(Duration::from_millis(150)),
        Fault::status(500).matching("embed").times(2),
    ]);
    let t = Instant::now();
    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o")).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Chat requests do not match "embed".
    assert_eq!(
        post(&m.url("/v1/chat/completions"), &chat("gpt-4o"))
            .await
            .status,
        200
    );
    let pending = m.pending_faults();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].times, Some(2));
    let emb = json!({"model": "text-embedding-3-small", "input": "x"});
    assert_eq!(post(&m.url("/v1/embeddings"), &emb).await.status, 500);
    assert_eq!(post(&m.url("/v1/embeddings"), &emb).await.status, 500);
    assert_eq!(post(&m.url("/v1/embeddings"), &emb).await.status, 200);
}

#[tokio::test]
async fn fault_endpoint_management() {
    let m = mock().await;
    let r = push_http(&m, json!([{"stauts": 500}])).await;
    assert_eq!(r.status, 400, "typos are rejected");
    let r = push_http(&m, json!({"kind": "reset", "match": "x"})).await;
    assert_eq!(r.json()["pending"], 1);
    let v: Value = client()
        .get(m.url("/__mock/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!([{"kind": "reset", "match": "x"}]));
    let f: Vec<Fault> = serde_json::from_value(v).unwrap();
    assert_eq!(f[0].effective_kind(), FaultKind::Reset);
    client()
        .delete(m.url("/__mock/faults"))
        .send()
        .await
        .unwrap();
    assert!(m.pending_faults().is_empty());
    // Inferred kinds.
    let f: Fault = serde_json::from_value(json!({"delay_ms": 5})).unwrap();
    assert_eq!(f.effective_kind(), FaultKind::Delay);
    let f: Fault = serde_json::from_value(json!({"status": 502, "delay_ms": 5})).unwrap();
    assert_eq!(f.effective_kind(), FaultKind::Status);
}

#[tokio::test]
async fn model_triggers_table() {
    let m = mock().await;
    for status in [500u16, 429, 503] {
        let model = format!("gpt-4o-fail-{status}");
        let r = post(&m.url("/v1/chat/completions"), &chat(&model)).await;
        assert_eq!(r.status, status);
        assert!(r.json()["error"]["message"].is_string());
        let r = post_with(
            &m.url("/v1/messages"),
            &anthropic(&format!("claude-fail-{status}")),
            ANTHROPIC_HEADERS,
        )
        .await;
        assert_eq!(r.status, status);
        assert_eq!(r.json()["type"], "error");
        let r = post(
            &m.url(&format!("/model/x.fail-{status}/converse")),
            &json!({"messages": []}),
        )
        .await;
        assert_eq!(r.status, status);
        assert!(r.header("x-amzn-errortype").is_some());
        // Azure: the deployment name carries the trigger.
        let r = post(
            &m.url(&format!(
                "/openai/deployments/dep-fail-{status}/chat/completions?api-version=1"
            )),
            &json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
        assert_eq!(r.status, status);
    }
    let t = Instant::now();
    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o-slow-200ms")).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn slow_trigger_delays_first_stream_token() {
    let m = mock().await;
    let mut body = chat("gpt-slow-400ms");
    body["stream"] = json!(true);
    let t = Instant::now();
    let r = client()
        .post(m.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(350),
        "headers come at once"
    );
    let mut s = r.bytes_stream();
    let mut got = String::new();
    while !got.contains("\"content\":\"Mock ") {
        got.push_str(std::str::from_utf8(&s.next().await.unwrap().unwrap()).unwrap());
    }
    assert!(t.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn latency_config_pacing() {
    let m = mock_with(
        MockConfig::default()
            .with_first_token_delay(Duration::from_millis(100))
            .with_inter_chunk_delay(Duration::from_millis(20)),
    )
    .await;
    // 6 word chunks: 100 + 5 * 20 = 200ms, stream or not.
    let t = Instant::now();
    let r = post(&m.url("/v1/chat/completions"), &chat("gpt-4o")).await;
    assert_eq!(r.status, 200);
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(200), "{e:?}");
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    let t = Instant::now();
    let r = post(&m.url("/v1/chat/completions"), &body).await;
    assert_eq!(sse(&r.text).len(), 9);
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(200), "{e:?}");
}

#[tokio::test]
async fn client_disconnect_ends_stream() {
    let m =
        mock_with(MockConfig::default().with_inter_chunk_delay(Duration::from_millis(50))).await;
    let mut body = chat("gpt-4o");
    body["messages"][0]["content"] = json!("word ".repeat(60));
    body["stream"] = json!(true);
    let r = client()
        .post(m.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    let _ = s.next().await.unwrap().unwrap();
    assert_eq!(m.active_streams(), 1);
    drop(s);
    assert!(m.wait_for_active_streams(0, Duration::from_secs(3)).await);

    // Same for an Anthropic stream, dropped before the first token.
    let m2 = mock_with(MockConfig::default().with_first_token_delay(Duration::from_secs(30))).await;
    let mut body = anthropic("claude");
    body["stream"] = json!(true);
    let r = client()
        .post(m2.url("/v1/messages"))
        .headers(
            ANTHROPIC_HEADERS
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(m2.wait_for_active_streams(1, Duration::from_secs(3)).await);
    drop(r);
    assert!(m2.wait_for_active_streams(0, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn recording_endpoints() {
    let m = mock().await;
    post_with(
        &m.url("/v1/chat/completions?x=1"),
        &chat("gpt-4o"),
        &[("authorization", "Bearer sk-1")],
    )
    .await;
    let r = client().get(m.url("/__mock/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = client()
        .get(m.url("/__mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let rec = &list[0];
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["path"], "/v1/chat/completions");
    assert_eq!(rec["query"], "x=1");
    assert_eq!(rec["headers"]["authorization"], "Bearer sk-1");
    assert_eq!(rec["body"]["model"], "gpt-4o");
    assert_eq!(tollgate_bench::parse_recorded(&v).unwrap(), m.requests());
    assert_eq!(m.request_count(), 1);
    client()
        .delete(m.url("/__mock/requests"))
        .send()
        .await
        .unwrap();
    assert!(m.requests().is_empty());
    assert_eq!(m.request_count(), 0);

    // Unknown routes are recorded and answered 404.
    let r = post(&m.url("/v2/nope"), &json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(m.last_request().unwrap().path, "/v2/nope");
}

#[tokio::test]
async fn no_record_still_counts() {
    let m = mock_with(MockConfig::benchmark()).await;
    for _ in 0..3 {
        assert_eq!(
            post(&m.url("/v1/chat/completions"), &chat("gpt-4o"))
                .await
                .status,
            200
        );
    }
    assert!(m.requests().is_empty());
    assert_eq!(m.request_count(), 3);
}

#[tokio::test]
async fn shutdown_stops_server() {
    let m = mock().await;
    let url = m.url("/__mock/health");
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    m.shutdown().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(client().get(&url).send().await.is_err());
}
