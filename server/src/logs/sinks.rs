//! How each kind of destination is written to: S3 objects of JSON lines,
//! Langsmith's batch runs API, OTLP/HTTP traces, or a plain webhook.

use super::export::{Item, SendError};
use super::payload::payload;
use super::RequestLog;
use crate::config::{DestinationKind, S3Params};
use crate::secret::Secret;
use chrono::{TimeZone, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Sink {
    S3 {
        client: aws_sdk_s3::Client,
        params: S3Params,
        content: bool,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: Vec<(String, Secret)>,
        format: Format,
    },
}

pub enum Format {
    Webhook {
        content: bool,
    },
    Langsmith {
        project: String,
        run_name: String,
        content: bool,
    },
    Otel {
        protobuf: bool,
        service_name: String,
        content: bool,
    },
}

impl Sink {
    pub async fn build(kind: &DestinationKind, content: bool) -> Result<Sink, String> {
        let http = || {
            reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the HTTP client of a log destination: {e}"))
        };
        Ok(match kind {
            DestinationKind::S3(p) => Sink::S3 {
                client: s3_client(p).await,
                params: p.clone(),
                content,
            },
            DestinationKind::Webhook { url, headers } => Sink::Http {
                client: http()?,
                url: url.clone(),
                headers: headers.clone(),
                format: Format::Webhook { content },
            },
            DestinationKind::Langsmith {
                api_key,
                project,
                run_name,
                base_url,
            } => Sink::Http {
                client: http()?,
                url: format!("{base_url}/runs/batch"),
                headers: vec![("x-api-key".into(), api_key.clone())],
                format: Format::Langsmith {
                    project: project.clone(),
                    run_name: run_name.clone(),
                    content,
                },
            },
            DestinationKind::Otel {
                endpoint,
                headers,
                protobuf,
                service_name,
            } => Sink::Http {
                client: http()?,
                url: endpoint.clone(),
                headers: headers.clone(),
                format: Format::Otel {
                    protobuf: *protobuf,
                    service_name: service_name.clone(),
                    content,
                },
            },
        })
    }

    /// Records per request (or object) at most.
    pub fn batch_size(&self) -> usize {
        match self {
            Sink::S3 { params, .. } => params.batch_size.unwrap_or(1000),
            Sink::Http {
                format: Format::Langsmith { .. },
                ..
            } => 100,
            Sink::Http { .. } => 500,
        }
    }

    pub fn flush_every(&self) -> Option<Duration> {
        match self {
            Sink::S3 { params, .. } => params.flush_every,
            Sink::Http { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Sink::S3 { params, .. } => format!("s3://{}/{}", params.bucket, params.prefix),
            Sink::Http { url, .. } => url.clone(),
        }
    }

    pub async fn send(&self, batch: &[Item]) -> Result<(), SendError> {
        match self {
            Sink::S3 {
                client,
                params,
                content,
            } => put_objects(client, params, batch, *content).await,
            Sink::Http {
                client,
                url,
                headers,
                format,
            } => {
                let (body, content_type) = match format {
                    Format::Webhook { content } => (
                        serde_json::to_vec(
                            &batch
                                .iter()
                                .map(|i| record(i, *content))
                                .collect::<Vec<_>>(),
                        ),
                        "application/json",
                    ),
                    Format::Langsmith {
                        project,
                        run_name,
                        content,
                    } => {
                        let runs: Vec<Value> = batch
                            .iter()
                            .filter_map(|i| match i {
                                Item::Request(l) => {
                                    Some(langsmith_run(l, project, run_name, *content))
                                }
                                Item::Service(_) => None,
                            })
                            .collect();
                        if runs.is_empty() {
                            return Ok(());
                        }
                        (
                            serde_json::to_vec(&json!({ "post": runs })),
                            "application/json",
                        )
                    }
                    Format::Otel {
                        protobuf,
                        service_name,
                        content,
                    } => {
                        let req = otlp_request(batch, service_name, *content);
                        if *protobuf {
                            (
                                Ok(prost::Message::encode_to_vec(&req)),
                                "application/x-protobuf",
                            )
                        } else {
                            (serde_json::to_vec(&req), "application/json")
                        }
                    }
                };
                let body = body.map_err(|e| SendError {
                    retry: false,
                    message: format!("cannot encode the batch: {e}"),
                })?;
                let mut rb = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, content_type)
                    .body(body);
                for (k, v) in headers {
                    rb = rb.header(k.as_str(), v.expose());
                }
                let resp = rb
                    .send()
                    .await
                    .map_err(|e| SendError::retry(format!("{url}: {e}")))?;
                let status = resp.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = resp.text().await.unwrap_or_default();
                Err(SendError::status(status.as_u16(), &text))
            }
        }
    }
}

/// One record as JSON: a request's payload, or a service event.
fn record(item: &Item, content: bool) -> Value {
    match item {
        Item::Request(l) => payload(l, content),
        Item::Service(e) => (**e).clone(),
    }
}

async fn s3_client(p: &S3Params) -> aws_sdk_s3::Client {
    let sdk = crate::providers::bedrock::sdk_config(&p.aws).await;
    let mut conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(p.path_style);
    if let Some(endpoint) = &p.aws.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// One object of JSON lines per day the batch's records started on.
async fn put_objects(
    client: &aws_sdk_s3::Client,
    p: &S3Params,
    batch: &[Item],
    content: bool,
) -> Result<(), SendError> {
    let mut by_day: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for item in batch {
        let at = match item {
            Item::Request(l) => l.started_at_ms,
            Item::Service(_) => super::now_ms(),
        };
        let day = Utc
            .timestamp_millis_opt(at)
            .single()
            .unwrap_or_else(Utc::now)
            .format("%Y-%m-%d")
            .to_string();
        let buf = by_day.entry(day).or_default();
        if serde_json::to_writer(&mut *buf, &record(item, content)).is_ok() {
            buf.push(b'\n');
        }
    }
    let now = Utc::now();
    for (day, body) in by_day {
        let name = format!(
            "time-{}_{}.jsonl",
            now.format("%H-%M-%S-%3f"),
            uuid::Uuid::now_v7().simple()
        );
        let key = if p.prefix.is_empty() {
            format!("{day}/{name}")
        } else {
            format!("{}/{day}/{name}", p.prefix)
        };
        client
            .put_object()
            .bucket(&p.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(body.into())
            .send()
            .await
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let message = format!(
                    "s3://{}/{key}: {}",
                    p.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                );
                match status {
                    Some(code) => SendError {
                        retry: code == 408 || code == 429 || code >= 500,
                        message,
                    },
                    None => SendError::retry(message),
                }
            })?;
    }
    Ok(())
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// A Langsmith run for one request (`run_type: llm`, its own trace).
fn langsmith_run(log: &RequestLog, project: &str, run_name: &str, content: bool) -> Value {
    let id = uuid::Uuid::new_v4().to_string();
    let start = Utc
        .timestamp_millis_opt(log.started_at_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let mut meta = payload(log, false);
    let mut inputs = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();
    inputs.insert(
        "model".into(),
        json!(log.model_group.as_deref().unwrap_or(&log.model_requested)),
    );
    if content {
        if let Some(c) = &log.content {
            inputs.insert("messages".into(), c.messages.clone());
            if let Some(r) = &c.response {
                outputs = match r.clone() {
                    Value::Object(o) => o,
                    other => [("response".to_string(), other)].into_iter().collect(),
                };
            }
        }
    }
    if let Value::Object(m) = &mut meta {
        m.remove("messages");
        m.remove("response");
    }
    let mut tags = vec![json!(log.surface)];
    if let Some(g) = &log.model_group {
        tags.insert(0, json!(g));
    }
    json!({
        "id": id,
        "trace_id": id,
        "dotted_order": format!("{}{}", start.format("%Y%m%dT%H%M%S%6fZ"), id),
        "name": run_name,
        "run_type": "llm",
        "start_time": iso(log.started_at_ms),
        "end_time": iso(log.ended_at_ms),
        "session_name": project,
        "inputs": inputs,
        "outputs": outputs,
        "error": log.error,
        "extra": {
            "metadata": meta,
            "invocation_params": {"model": log.upstream_model, "stream": log.stream},
        },
        "tags": tags,
    })
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn text(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn int(key: &str, v: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(v.min(i64::MAX as u64) as i64),
    )
}

fn nanos(ms: i64) -> u64 {
    (ms.max(0) as u64).saturating_mul(1_000_000)
}

/// One span per request, with OpenTelemetry's GenAI attributes.
fn request_span(log: &RequestLog, content: bool) -> Span {
    let operation = if log.call_type == "embeddings" {
        "embeddings"
    } else {
        "chat"
    };
    let mut a = vec![
        text("gen_ai.operation.name", operation),
        text("gen_ai.request.model", &*log.model_requested),
        int("gen_ai.usage.input_tokens", log.prompt_tokens),
        int("gen_ai.usage.output_tokens", log.completion_tokens),
        text("tollgate.request_id", &*log.request_id),
        text("tollgate.surface", log.surface),
        kv("tollgate.spend", any_value::Value::DoubleValue(log.spend)),
        kv(
            "tollgate.cache_hit",
            any_value::Value::BoolValue(log.cache_hit),
        ),
        kv("tollgate.stream", any_value::Value::BoolValue(log.stream)),
        int("http.response.status_code", u64::from(log.status_code)),
    ];
    let optional = [
        ("gen_ai.provider.name", log.provider.as_deref()),
        ("gen_ai.system", log.provider.as_deref()),
        ("gen_ai.response.model", log.upstream_model.as_deref()),
        ("tollgate.model_group", log.model_group.as_deref()),
        ("tollgate.deployment_id", log.deployment_id.as_deref()),
        ("tollgate.key_alias", log.key_alias.as_deref()),
        ("tollgate.user_id", log.user_id.as_deref()),
        ("tollgate.team_id", log.team_id.as_deref()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            a.push(text(k, v));
        }
    }
    if let Some(t) = log.ttft_ms {
        a.push(kv(
            "gen_ai.server.time_to_first_token",
            any_value::Value::DoubleValue(t as f64 / 1000.0),
        ));
    }
    if let Some(g) = &log.guardrails {
        a.push(text("tollgate.guardrails", g.to_string()));
    }
    let failed = !log.succeeded();
    if failed {
        a.push(text("error.type", log.status_code.to_string()));
    }
    if content {
        if let Some(c) = &log.content {
            a.push(text("gen_ai.input.messages", c.messages.to_string()));
            if let Some(r) = &c.response {
                let out = r.get("choices").cloned().unwrap_or_else(|| r.clone());
                a.push(text("gen_ai.output.messages", out.to_string()));
            }
        }
    }
    Span {
        trace_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
        span_id: rand::random::<u64>().max(1).to_be_bytes().to_vec(),
        name: format!("{operation} {}", log.model_requested),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: nanos(log.started_at_ms),
        end_time_unix_nano: nanos(log.ended_at_ms.max(log.started_at_ms)),
        attributes: a,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Ok as i32
            },
            message: if failed {
                log.error.clone().unwrap_or_default()
            } else {
                String::new()
            },
        }),
        ..Default::default()
    }
}

/// A service event as a span of its own: `service {name}`.
fn service_span(e: &Value) -> Span {
    let at = super::now_ms();
    let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
    let failed = get("status") == "failure";
    Span {
        trace_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
        span_id: rand::random::<u64>().max(1).to_be_bytes().to_vec(),
        name: format!("service {}", get("service")),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: nanos(at),
        end_time_unix_nano: nanos(at),
        attributes: vec![
            text("tollgate.service", get("service")),
            text("tollgate.event", get("event")),
        ],
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Ok as i32
            },
            message: get("error").to_string(),
        }),
        ..Default::default()
    }
}

fn otlp_request(batch: &[Item], service_name: &str, content: bool) -> ExportTraceServiceRequest {
    let spans = batch
        .iter()
        .map(|i| match i {
            Item::Request(l) => request_span(l, content),
            Item::Service(e) => service_span(e),
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", service_name),
                    text("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tollgate".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
