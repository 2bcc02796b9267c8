//! `ttft`: streaming time-to-first-token client for the benchmark.
//!
//! Sends N sequential `"stream": true` chat-completion requests over one
//! keep-alive HTTP/1.1 connection and measures, per request, the time from
//! sending the request to
//! - the response head (`headers`),
//! - the first SSE `data:` event carrying a non-empty `delta.content` (`ttft`),
//! - the end of the body (`total`).
//!
//! Prints one machine-readable line per metric, in microseconds:
//! `ttft_us n=300 p50=.. p90=.. p99=.. max=.. mean=..`
//!
//! The client sets TCP_NODELAY and reuses its connection, so a server that
//! leaves Nagle on for its accepted sockets shows up here as ~40 ms TTFT
//! (Nagle waiting for the client's delayed ACK).

use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Parser, Debug)]
#[command(
    name = "ttft",
    about = "Measures streaming time-to-first-token (sequential requests)"
)]
struct Args {
    /// Full URL, e.g. http://127.0.0.1:4000/v1/chat/completions
    #[arg(long)]
    url: String,
    /// Bearer token sent as `Authorization: Bearer <KEY>`.
    #[arg(long)]
    key: Option<String>,
    #[arg(long, default_value = "bench")]
    model: String,
    /// Measured requests.
    #[arg(short = 'n', long, default_value_t = 300)]
    requests: usize,
    /// Unmeasured requests sent first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

#[derive(Clone, Copy)]
struct Sample {
    headers: Duration,
    ttft: Duration,
    total: Duration,
}

/// True for an SSE line `data: {...}` whose first choice's `delta.content`
/// is a non-empty string.
fn is_content_event(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"data:") else {
        return false;
    };
    let payload = rest.trim_ascii();
    if payload.is_empty() || payload == b"[DONE]" {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    v.pointer("/choices/0/delta/content")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

async fn one(
    client: &Client<HttpConnector, Full<Bytes>>,
    args: &Args,
    body: &Bytes,
) -> Result<Sample, String> {
    let mut builder = Request::post(args.url.as_str())
        .header("content-type", "application/json")
        .header("accept", "text/event-stream");
    if let Some(key) = &args.key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let req = builder
        .body(Full::new(body.clone()))
        .map_err(|e| format!("bad request: {e}"))?;

    let start = Instant::now();
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let headers = start.elapsed();
    let status = resp.status();
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut scanned = 0usize;
    let mut ttft: Option<Duration> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body error: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if ttft.is_some() {
            continue; // drain the rest so the connection can be reused
        }
        buf.extend_from_slice(&data);
        while let Some(nl) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let line = &buf[scanned..scanned + nl];
            scanned += nl + 1;
            if is_content_event(line) {
                ttft = Some(start.elapsed());
                break;
            }
        }
    }
    let total = start.elapsed();
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&buf)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    let ttft = ttft.ok_or_else(|| "stream ended without a content event".to_string())?;
    Ok(Sample {
        headers,
        ttft,
        total,
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // nearest-rank
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(out: &mut impl std::io::Write, name: &str, mut us: Vec<u64>) -> std::io::Result<()> {
    us.sort_unstable();
    let mean = if us.is_empty() {
        0.0
    } else {
        us.iter().sum::<u64>() as f64 / us.len() as f64
    };
    writeln!(
        out,
        "{name}_us n={} p50={} p90={} p99={} max={} mean={:.0}",
        us.len(),
        percentile(&us, 50.0),
        percentile(&us, 90.0),
        percentile(&us, 99.0),
        us.last().copied().unwrap_or(0),
        mean
    )
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ttft: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttft: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let body = Bytes::from(
        serde_json::json!({
            "model": args.model,
            "messages": [{"role": "user", "content": "hello world"}],
            "max_tokens": 16,
            "stream": true,
        })
        .to_string(),
    );
    // Like real clients (reqwest, curl), disable Nagle on our side.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build::<_, Full<Bytes>>(connector);
    let timeout = Duration::from_millis(args.timeout_ms);

    let mut samples = Vec::with_capacity(args.requests);
    let mut errors = 0usize;
    let mut first_error: Option<String> = None;
    for i in 0..args.warmup + args.requests {
        let res = match tokio::time::timeout(timeout, one(&client, args, &body)).await {
            Ok(r) => r,
            Err(_) => Err("timeout".to_string()),
        };
        match res {
            Ok(s) if i >= args.warmup => samples.push(s),
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                if first_error.is_none() {
                    first_error = Some(e);
                }
                if errors > 10 {
                    break;
                }
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!("ttft: {errors} errors, first: {e}");
    }
    if samples.is_empty() {
        return Err("no successful requests".to_string());
    }
    let mut out = std::io::stdout().lock();
    let to_us = |f: fn(&Sample) -> Duration| -> Vec<u64> {
        samples
            .iter()
            .map(|s| u64::try_from(f(s).as_micros()).unwrap_or(u64::MAX))
            .collect()
    };
    let io = |e: std::io::Error| e.to_string();
    report(&mut out, "headers", to_us(|s| s.headers)).map_err(io)?;
    report(&mut out, "ttft", to_us(|s| s.ttft)).map_err(io)?;
    report(&mut out, "total", to_us(|s| s.total)).map_err(io)?;
    writeln!(out, "errors={errors}").map_err(io)?;
    out.flush().map_err(io)?;
    Ok(())
}
