//! `mock-upstream`: the mock OpenAI / Anthropic / Bedrock server as a process.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use tollgate_bench::MockConfig;

#[derive(Parser, Debug)]
#[command(
    name = "mock-upstream",
    about = "Mock LLM upstream (OpenAI, Anthropic, Bedrock)"
)]
struct Args {
    /// Port to listen on (0 = any free port; the real one is printed).
    #[arg(long)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Delay before the first token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    first_token_delay_ms: u64,
    /// Delay between streamed token events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    inter_chunk_delay_ms: u64,
    /// Do not record requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
    /// Prompt words above which chat requests fail with a context-length error.
    #[arg(long, default_value_t = 1000)]
    context_window: usize,
    /// Require this API key (OpenAI bearer/api-key, Anthropic x-api-key, Bedrock access key id).
    #[arg(long)]
    required_key: Option<String>,
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = MockConfig {
        first_token_delay: Duration::from_millis(args.first_token_delay_ms),
        inter_chunk_delay: Duration::from_millis(args.inter_chunk_delay_ms),
        context_window: args.context_window,
        required_key: args.required_key,
        record: !args.no_record,
    };
    let handle = tollgate_bench::start_on(SocketAddr::new(args.host, args.port), config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "mock-upstream listening on {}", handle.base_url())?;
        out.flush()?;
    }
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}
