//! `passthrough`: the speed-of-light reference proxy for the benchmark.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "passthrough",
    about = "Forwards every request unchanged to one upstream"
)]
struct Args {
    /// Port to listen on (0 = any free port; the real one is printed).
    #[arg(long)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Upstream base URL, e.g. http://127.0.0.1:9000
    #[arg(long)]
    upstream: String,
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
    let handle = tollgate_bench::passthrough::start_passthrough(
        SocketAddr::new(args.host, args.port),
        &args.upstream,
    )
    .await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "passthrough listening on {}", handle.base_url())?;
        out.flush()?;
    }
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}
