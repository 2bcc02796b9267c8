//! The real `tollgate` binary against in-process mock upstreams, asserting
//! exactly what reached the upstream (call counts, paths, bodies).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tollgate_bench::{Fault, MockConfig, MockHandle};

const KEY: &str = "sk-rust-test-master";

struct Gateway {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(mock: &MockHandle) -> Gateway {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let m = mock.base_url();
    let config = format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{m}/v1", api_key: sk-up}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-haiku, api_base: "{m}", api_key: sk-up}}
  - model_name: bedrock
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_bedrock_runtime_endpoint: "{m}"
      aws_access_key_id: AKIDTEST
      aws_secret_access_key: secret
      aws_region_name: eu-west-1
  - model_name: primary
    litellm_params: {{model: openai/primary-model, api_base: "{m}/v1", api_key: sk-up}}
router_settings:
  num_retries: 2
  fallbacks: [{{primary: [claude]}}]
"#
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--port", "0", "--config"])
        .arg(&path)
        .env("TOLLGATE_MASTER_KEY", KEY)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        )
        .env("TOLLGATE_LOG", "warn")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tollgate: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = line
        .trim()
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Gateway {
        child,
        url,
        _dir: dir,
    }
}

async fn chat(gw: &Gateway, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn model_requests(mock: &MockHandle) -> Vec<tollgate_bench::RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/__mock"))
        .collect()
}

#[tokio::test]
async fn each_family_sends_exactly_one_well_formed_upstream_call() {
    let mock = tollgate_bench::start(MockConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = start_gateway(&mock);
    let cases = [
        ("gpt", "/v1/chat/completions", "gpt-4o"),
        ("claude", "/v1/messages", "claude-3-haiku"),
        (
            "bedrock",
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
    ];
    for (model, path, upstream_model) in cases {
        mock.clear_requests();
        let resp = chat(&gw, json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 20})).await;
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap_or_default();
        assert_eq!(
            body["choices"][0]["message"]["content"], "Mock reply to: ping",
            "{model}"
        );
        let reqs = model_requests(&mock);
        assert_eq!(reqs.len(), 1, "{model}: exactly one upstream call");
        assert_eq!(reqs[0].path, path, "{model}");
        if model != "bedrock" {
            assert_eq!(reqs[0].model(), Some(upstream_model), "{model}");
        }
    }
    let claude = {
        mock.clear_requests();
        chat(&gw, json!({"model": "claude", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "x"}]})).await;
        model_requests(&mock).remove(0)
    };
    assert_eq!(claude.header("x-api-key"), Some("sk-up"));
    assert_eq!(claude.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        claude.body["system"],
        json!([{"type": "text", "text": "sys"}])
    );
    assert_eq!(claude.body["max_tokens"], 4096);
}

#[tokio::test]
async fn retries_and_fallbacks_make_exactly_the_expected_calls() {
    let mock = tollgate_bench::start(MockConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = start_gateway(&mock);

    // One 500, then success: two calls.
    mock.clear_requests();
    mock.push_fault(Fault::status(500).matching("primary-model"));
    let resp = chat(
        &gw,
        json!({"model": "primary", "messages": [{"role": "user", "content": "a"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(model_requests(&mock).len(), 2);

    // Three 503s exhaust 1 + 2 retries; the fallback answers: four calls, the last to Anthropic.
    mock.clear_requests();
    mock.push_fault(Fault::status(503).matching("primary-model").times(3));
    let resp = chat(
        &gw,
        json!({"model": "primary", "messages": [{"role": "user", "content": "b"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-model"], "claude");
    let reqs = model_requests(&mock);
    assert_eq!(
        reqs.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        [
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1/messages"
        ]
    );

    // A 400 from the upstream is the caller's problem: one call, no retry, no fallback.
    mock.clear_requests();
    mock.push_fault(Fault::status(400).matching("primary-model"));
    let resp = chat(
        &gw,
        json!({"model": "primary", "messages": [{"role": "user", "content": "c"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(model_requests(&mock).len(), 1);
}

#[tokio::test]
async fn streams_end_upstream_when_the_client_leaves() {
    let mock = tollgate_bench::start(
        MockConfig::default().with_inter_chunk_delay(Duration::from_millis(100)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let gw = start_gateway(&mock);
    for model in ["gpt", "claude", "bedrock"] {
        let words = vec!["w"; 100].join(" ");
        let mut resp = chat(&gw, json!({"model": model, "stream": true, "messages": [{"role": "user", "content": words}]})).await;
        assert_eq!(resp.status(), 200, "{model}");
        let first = resp.chunk().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(first.is_some(), "{model}: a first chunk");
        assert!(
            mock.wait_for_active_streams(1, Duration::from_secs(5))
                .await,
            "{model}: upstream stream open"
        );
        drop(resp);
        assert!(
            mock.wait_for_active_streams(0, Duration::from_secs(10))
                .await,
            "{model}: upstream stream closed after the client left"
        );
    }
}
