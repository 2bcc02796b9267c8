#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{Credentials, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseOutput as Out,
    ConverseStreamOutput as Ev, InferenceConfiguration, Message, SpecificToolChoice, StopReason,
    SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_sdk_bedrockruntime::Client;
use aws_smithy_types::Document;
use common::*;
use serde_json::{json, Value};
use tollgate_bench::{Fault, MockConfig, MockHandle};

const MODEL: &str = "us.anthropic.claude-3-5-sonnet-20240620-v1:0";

async fn sdk_with_retry(m: &MockHandle, retry: RetryConfig) -> Client {
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDMOCK", "secret", None, None, "test"))
        .endpoint_url(m.base_url())
        .retry_config(retry)
        .load()
        .await;
    Client::new(&conf)
}

async fn sdk(m: &MockHandle) -> Client {
    sdk_with_retry(m, RetryConfig::disabled()).await
}

fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.into()))
        .build()
        .unwrap()
}

fn tools(names: &[&str], choice: Option<ToolChoice>) -> ToolConfiguration {
    let mut b = ToolConfiguration::builder();
    for n in names {
        b = b.tools(Tool::ToolSpec(
            ToolSpecification::builder()
                .name(*n)
                .description("d")
                .input_schema(ToolInputSchema::Json(Document::Object(
                    [("type".to_owned(), Document::String("object".into()))].into(),
                )))
                .build()
                .unwrap(),
        ));
    }
    if let Some(c) = choice {
        b = b.tool_choice(c);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn sdk_converse_text_and_signing() {
    let m = mock().await;
    let c = sdk(&m).await;
    let out = c
        .converse()
        .model_id(MODEL)
        .system(SystemContentBlock::Text("be brief".into()))
        .messages(user("hello big world"))
        .inference_config(InferenceConfiguration::builder().temperature(0.5).build())
        .send()
        .await
        .unwrap();
    let Some(Out::Message(msg)) = out.output() else {
        panic!("no message")
    };
    assert_eq!(msg.role(), &ConversationRole::Assistant);
    assert_eq!(
        msg.content(),
        &[ContentBlock::Text("Mock reply to: hello big world".into())]
    );
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    let u = out.usage().unwrap();
    assert_eq!(
        (u.input_tokens(), u.output_tokens(), u.total_tokens()),
        (5, 6, 11)
    );

    let req = m.last_request().unwrap();
    assert_eq!(
        req.path,
        "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let auth = req.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDMOCK/"),
        "{auth}"
    );
    assert!(req.header("x-amz-date").is_some());
    assert_eq!(req.body["inferenceConfig"]["temperature"], json!(0.5));
}

#[tokio::test]
async fn sdk_converse_limits_and_tools() {
    let m = mock().await;
    let c = sdk(&m).await;
    // max tokens and stop sequences
    let out = c
        .converse()
        .model_id(MODEL)
        .messages(user("a b c"))
        .inference_config(InferenceConfiguration::builder().max_tokens(2).build())
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::MaxTokens);
    let Some(Out::Message(msg)) = out.output() else {
        panic!()
    };
    assert_eq!(msg.content(), &[ContentBlock::Text("Mock reply".into())]);
    let out = c
        .converse()
        .model_id(MODEL)
        .messages(user("a b c"))
        .inference_config(
            InferenceConfiguration::builder()
                .stop_sequences("b")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::StopSequence);

    // (tools, choice, expected names)
    let named = ToolChoice::Tool(SpecificToolChoice::builder().name("b").build().unwrap());
    let cases: Vec<(Vec<&str>, Option<ToolChoice>, Vec<&str>)> = vec![
        (vec!["a"], None, vec!["a"]),
        (vec!["a", "b", "c"], None, vec!["a", "b"]),
        (vec!["a", "b"], Some(named), vec!["b"]),
    ];
    for (names, choice, want) in cases {
        let out = c
            .converse()
            .model_id(MODEL)
            .messages(user("weather in Paris"))
            .tool_config(tools(&names, choice))
            .send()
            .await
            .unwrap();
        assert_eq!(out.stop_reason(), &StopReason::ToolUse);
        let Some(Out::Message(msg)) = out.output() else {
            panic!()
        };
        let got: Vec<&str> = msg
            .content()
            .iter()
            .map(|b| {
                let ContentBlock::ToolUse(t) = b else {
                    panic!("{b:?}")
                };
                assert!(t.tool_use_id().starts_with("tooluse_"));
                let Document::Object(o) = t.input() else {
                    panic!()
                };
                assert_eq!(
                    o.get("input"),
                    Some(&Document::String("weather in Paris".into()))
                );
                t.name()
            })
            .collect();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn sdk_converse_stream_text() {
    let m = mock().await;
    let c = sdk(&m).await;
    let mut out = c
        .converse_stream()
        .model_id(MODEL)
        .messages(user("hello world"))
        .send()
        .await
        .unwrap();
    let mut kinds = vec![];
    let mut text = String::new();
    while let Some(ev) = out.stream.recv().await.unwrap() {
        match &ev {
            Ev::MessageStart(s) => {
                assert_eq!(s.role(), &ConversationRole::Assistant);
                kinds.push("messageStart");
            }
            Ev::ContentBlockDelta(d) => {
                assert_eq!(d.content_block_index(), 0);
                let Some(ContentBlockDelta::Text(t)) = d.delta() else {
                    panic!()
                };
                text.push_str(t);
                kinds.push("contentBlockDelta");
            }
            Ev::ContentBlockStop(s) => {
                assert_eq!(s.content_block_index(), 0);
                kinds.push("contentBlockStop");
            }
            Ev::MessageStop(s) => {
                assert_eq!(s.stop_reason(), &StopReason::EndTurn);
                kinds.push("messageStop");
            }
            Ev::Metadata(md) => {
                let u = md.usage().unwrap();
                assert_eq!(
                    (u.input_tokens(), u.output_tokens(), u.total_tokens()),
                    (2, 5, 7)
                );
                assert!(md.metrics().is_some());
                kinds.push("metadata");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text, "Mock reply to: hello world");
    assert_eq!(kinds.first(), Some(&"messageStart"));
    assert_eq!(
        &kinds[kinds.len() - 3..],
        &["contentBlockStop", "messageStop", "metadata"]
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "contentBlockDelta").count(),
        5
    );
    assert_eq!(m.active_streams(), 0);
    let req = m.last_request().unwrap();
    assert!(req.path.ends_with("/converse-stream"));
}

#[tokio::test]
async fn sdk_converse_stream_tools() {
    let m = mock().await;
    let c = sdk(&m).await;
    let mut out = c
        .converse_stream()
        .model_id(MODEL)
        .messages(user("weather in Paris"))
        .tool_config(tools(&["a", "b"], None))
        .send()
        .await
        .unwrap();
    let mut starts = vec![];
    let mut inputs = [String::new(), String::new()];
    let mut pieces = [0, 0];
    let mut stop = None;
    while let Some(ev) = out.stream.recv().await.unwrap() {
        match ev {
            Ev::ContentBlockStart(s) => {
                let Some(ContentBlockStart::ToolUse(t)) = s.start() else {
                    panic!()
                };
                starts.push((s.content_block_index(), t.name().to_owned()));
            }
            Ev::ContentBlockDelta(d) => {
                let i = usize::try_from(d.content_block_index()).unwrap();
                let Some(ContentBlockDelta::ToolUse(t)) = d.delta() else {
                    panic!()
                };
                inputs[i].push_str(t.input());
                pieces[i] += 1;
            }
            Ev::MessageStop(s) => stop = Some(s.stop_reason().clone()),
            _ => {}
        }
    }
    assert_eq!(starts, vec![(0, "a".to_owned()), (1, "b".to_owned())]);
    for (s, p) in inputs.iter().zip(pieces) {
        assert_eq!(
            serde_json::from_str::<Value>(s).unwrap(),
            json!({"input": "weather in Paris"})
        );
        assert!(p >= 3);
    }
    assert_eq!(stop, Some(StopReason::ToolUse));
}

#[tokio::test]
async fn sdk_error_mapping_table() {
    let m = mock().await;
    let c = sdk(&m).await;
    let cases = [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (408, "ModelTimeoutException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ];
    for (status, name) in cases {
        m.push_fault(Fault::status(status));
        let err = c
            .converse()
            .model_id(MODEL)
            .messages(user("x"))
            .send()
            .await
            .unwrap_err();
        let raw = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(raw, Some(status));
        let se = err.into_service_error();
        assert_eq!(
            aws_sdk_bedrockruntime::error::ProvideErrorMetadata::code(&se),
            Some(name)
        );
        assert!(aws_sdk_bedrockruntime::error::ProvideErrorMetadata::message(&se).is_some());
    }
    // Model trigger and the stream operation.
    let err = c
        .converse_stream()
        .model_id("anthropic.claude-fail-429")
        .messages(user("x"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_throttling_exception());
}

#[tokio::test]
async fn sdk_retries_injected_500() {
    let m = mock().await;
    let c = sdk_with_retry(
        &m,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    )
    .await;
    m.push_faults([Fault::status(500), Fault::status(503)]);
    let out = c
        .converse()
        .model_id(MODEL)
        .messages(user("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    assert_eq!(m.request_count(), 3);
    assert!(m.pending_faults().is_empty());
}

#[tokio::test]
async fn sdk_stream_abort_is_an_error() {
    let m = mock().await;
    let c = sdk(&m).await;
    m.push_fault(Fault::stream_error_after(2));
    let mut out = c
        .converse_stream()
        .model_id(MODEL)
        .messages(user("one two three four"))
        .send()
        .await
        .unwrap();
    let mut got = 0;
    let err = loop {
        match out.stream.recv().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("stream ended cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, 2, "{err:?}");
}

#[tokio::test]
async fn sdk_invoke_embeddings() {
    let m = mock().await;
    let c = sdk(&m).await;
    let out = c
        .invoke_model()
        .model_id("amazon.titan-embed-text-v2:0")
        .content_type("application/json")
        .body(Blob::new(
            serde_json::to_vec(&json!({"inputText": "hello there", "dimensions": 16})).unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["inputTextTokenCount"], 2);
    let e: Vec<f32> = v["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(e, tollgate_bench::embedding_vector("hello there", 16));

    let out = c
        .invoke_model()
        .model_id("amazon.titan-embed-text-v2:0")
        .body(Blob::new(
            serde_json::to_vec(&json!({"inputText": "x", "normalize": true})).unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    let norm: f64 = v["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-4);

    let out = c
        .invoke_model()
        .model_id("cohere.embed-english-v3")
        .body(Blob::new(
            serde_json::to_vec(&json!({"texts": ["a", "b c"], "input_type": "search_document"}))
                .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["response_type"], "embeddings_floats");
    assert_eq!(v["texts"], json!(["a", "b c"]));
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    assert!(v["id"].is_string());

    let out = c
        .invoke_model()
        .model_id("cohere.embed-multilingual-v3")
        .body(Blob::new(
            serde_json::to_vec(&json!({"texts": ["a"], "input_type": "search_query",
            "embedding_types": ["float", "int8"]}))
            .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["response_type"], "embeddings_by_type");
    assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 8);
    assert_eq!(v["embeddings"]["int8"][0].as_array().unwrap().len(), 8);

    let err = c
        .invoke_model()
        .model_id("cohere.embed-english-v3")
        .body(Blob::new(b"{\"texts\":[\"a\"]}".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_validation_exception());
}

#[tokio::test]
async fn raw_converse_wire_format() {
    let m = mock_with(MockConfig::default().with_context_window(8)).await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0";
    let url = m.url("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    // (body, expected status, expected text or error message)
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"messages": [{"role": "user", "content": [{"text": "look"},
            {"image": {"format": "png", "source": {"bytes": "AAAA"}}}]}]}),
            200,
            "Mock reply to: look [1 image]",
        ),
        (
            json!({"messages": [
            {"role": "user", "content": [{"text": "weather?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "a", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"temp": 21}}]}}]}],
            "toolConfig": {"tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {}}}}], "toolChoice": {"any": {}}}}),
            200,
            "Mock reply to tool result: {\"temp\":21}",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a b c d e f g h i"}]}]}),
            400,
            "Input is too long for requested model.",
        ),
        (json!({"system": [{"text": "x"}]}), 400, ""),
    ];
    for (body, status, want) in cases {
        let r = post(&url, &body).await;
        assert_eq!(r.status, status, "{}", r.text);
        let v = r.json();
        if status == 200 {
            assert_eq!(v["output"]["message"]["content"][0]["text"], want);
            assert!(v["metrics"]["latencyMs"].is_u64());
        } else {
            assert_eq!(
                r.header("x-amzn-errortype"),
                Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/")
            );
            assert!(v["message"].is_string());
            if !want.is_empty() {
                assert_eq!(v["message"], want);
            }
        }
    }
    // The fault `match` sees the decoded model id.
    m.push_fault(Fault::status(429).matching("inference-profile/us.anthropic"));
    let r = post(
        &url,
        &json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(arn.contains("inference-profile/us.anthropic"));
}

#[tokio::test]
async fn required_key_checks_sigv4_access_key() {
    let m = mock_with(MockConfig::default().with_required_key("AKIDMOCK")).await;
    let c = sdk(&m).await;
    c.converse()
        .model_id(MODEL)
        .messages(user("x"))
        .send()
        .await
        .unwrap();
    let r = post(&m.url("/model/m/converse"), &json!({"messages": []})).await;
    assert_eq!(r.status, 403);
}
