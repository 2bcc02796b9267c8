#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;
use tollgate_bench::passthrough::start_passthrough;
use tollgate_bench::MockConfig;

#[tokio::test]
async fn passthrough_forwards_unchanged() {
    let m = mock().await;
    let p = start_passthrough("127.0.0.1:0".parse().unwrap(), &m.base_url())
        .await
        .unwrap();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "via proxy"}]});
    let direct = post(&m.url("/v1/chat/completions"), &body).await;
    let url = format!(
        "{}/openai/deployments/d/chat/completions?api-version=1",
        p.base_url()
    );
    let proxied = post_with(&url, &body, &[("api-key", "k1"), ("x-custom", "v")]).await;
    assert_eq!(proxied.status, 200);
    assert_eq!(
        proxied.json()["choices"][0]["message"]["content"],
        direct.json()["choices"][0]["message"]["content"]
    );
    let rec = m.last_request().unwrap();
    assert_eq!(rec.path, "/openai/deployments/d/chat/completions");
    assert_eq!(rec.query.as_deref(), Some("api-version=1"));
    assert_eq!(rec.header("x-custom"), Some("v"));
    assert_eq!(rec.body, body);

    // Errors and streams pass through unchanged.
    m.push_fault(tollgate_bench::Fault::status(429).with_retry_after(2));
    let r = post(&format!("{}/v1/chat/completions", p.base_url()), &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let s = post(&format!("{}/v1/chat/completions", p.base_url()), &sbody).await;
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse(&s.text).last().unwrap().1, "[DONE]");
}

#[tokio::test]
async fn passthrough_propagates_client_disconnect() {
    let m =
        mock_with(MockConfig::default().with_inter_chunk_delay(Duration::from_millis(50))).await;
    let p = start_passthrough("127.0.0.1:0".parse().unwrap(), &m.base_url())
        .await
        .unwrap();
    let body = json!({"model": "m", "stream": true,
                      "messages": [{"role": "user", "content": "word ".repeat(60)}]});
    let r = client()
        .post(format!("{}/v1/chat/completions", p.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    let _ = s.next().await.unwrap().unwrap();
    assert_eq!(m.active_streams(), 1);
    drop(s);
    assert!(m.wait_for_active_streams(0, Duration::from_secs(3)).await);
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_ready(bin: &str, args: &[&str], prefix: &str) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Child(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("bad ready line {line:?}"))
        .to_owned();
    (child, url)
}

#[tokio::test]
async fn binaries_print_ready_line_and_serve() {
    let (mut mock_child, mock_url) = spawn_ready(
        env!("CARGO_BIN_EXE_mock-upstream"),
        &[
            "--port",
            "0",
            "--no-record",
            "--first-token-delay-ms",
            "0",
            "--context-window",
            "50",
        ],
        "mock-upstream listening on ",
    );
    assert!(mock_url.starts_with("http://127.0.0.1:"));
    assert!(!mock_url.ends_with(":0"));
    let (_pt, pt_url) = spawn_ready(
        env!("CARGO_BIN_EXE_passthrough"),
        &["--port", "0", "--upstream", &mock_url],
        "passthrough listening on ",
    );
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "bin"}]});
    let r = post(&format!("{pt_url}/v1/chat/completions"), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Mock reply to: bin"
    );
    let recs = client()
        .get(format!("{mock_url}/__mock/requests"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(recs, "[]", "--no-record");

    // SIGTERM stops it cleanly.
    let pid = mock_child.0.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = mock_child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mock-upstream ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
