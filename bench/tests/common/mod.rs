#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::HeaderMap;
use serde_json::Value;
use tollgate_bench::{MockConfig, MockHandle};

pub async fn mock() -> MockHandle {
    tollgate_bench::start(MockConfig::default())
        .await
        .expect("start mock")
}

pub async fn mock_with(config: MockConfig) -> MockHandle {
    tollgate_bench::start(config).await.expect("start mock")
}

thread_local! {
    // One client per test thread (each #[tokio::test] has its own thread and runtime).
    static CLIENT: reqwest::Client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
}

pub fn client() -> reqwest::Client {
    CLIENT.with(Clone::clone)
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn post_with(url: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    let mut rb = client().post(url).json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    Resp {
        status,
        headers,
        text,
    }
}

pub async fn post(url: &str, body: &Value) -> Resp {
    post_with(url, body, &[]).await
}

pub const ANTHROPIC_HEADERS: &[(&str, &str)] = &[
    ("anthropic-version", "2023-06-01"),
    ("x-api-key", "sk-ant-test"),
];

/// Parses an SSE body into (event name, data) pairs; checks the framing.
pub fn sse(body: &str) -> Vec<(Option<String>, String)> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(d.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (event, data.expect("data line"))
        })
        .collect()
}

pub fn sse_json(body: &str) -> Vec<(Option<String>, Value)> {
    sse(body)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(e, d)| (e, serde_json::from_str(&d).expect("event JSON")))
        .collect()
}
