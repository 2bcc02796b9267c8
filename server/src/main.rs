//! `tollgate`: an LLM gateway and its admin console in one process.

mod alerts;
mod auth;
mod catalog;
mod config;
mod counters;
mod directory;
mod gateway;
mod http;
mod logs;
mod metrics;
pub mod pricing;
mod providers;
mod secret;
mod state;
mod store;
mod ui;

use clap::{Parser, Subcommand};
use config::env::Env;
use secret::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

// Many small, short-lived allocations per request (JSON trees, headers): mimalloc
// serves them with less CPU than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tollgate", version, about = "LLM gateway and admin console")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway and the console.
    Serve {
        /// A LiteLLM config.yaml. Without one, the demo config is used.
        #[arg(long, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1", env = "TOLLGATE_HOST")]
        host: String,
        #[arg(long, default_value_t = 4000, env = "TOLLGATE_PORT")]
        port: u16,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, env = "TOLLGATE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, env = "TOLLGATE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Validate a config file and print its warnings.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the demo config generated for this machine.
    DemoConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // sqlx, reqwest and the AWS SDK share one TLS crypto provider.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a TLS crypto provider was already installed");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                host,
                port,
                tls_cert,
                tls_key,
            } => serve(config, &host, port, tls_cert.zip(tls_key)).await,
            Command::CheckConfig { config } => check_config(&config).await,
            Command::DemoConfig => {
                let found = config::demo::discover(&Env::default()).await;
                print!("{}", config::demo::yaml(&found));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

type LogFormat = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Switches Tollgate's log lines to JSON once the config asks for it
/// (`litellm_settings.json_logs`), after start.
static LOG_FORMAT: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<LogFormat, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

fn log_format(json: bool) -> LogFormat {
    use tracing_subscriber::Layer;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json {
        layer.json().boxed()
    } else {
        layer.boxed()
    }
}

/// Log lines go to stderr, as text or (`TOLLGATE_LOG_FORMAT=json`,
/// `JSON_LOGS=true`) one JSON object per line.
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,aws_config=warn"));
    let json = std::env::var("TOLLGATE_LOG_FORMAT").is_ok_and(|v| v == "json")
        || std::env::var("JSON_LOGS")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    let (format, handle) = tracing_subscriber::reload::Layer::new(log_format(json));
    let _ = LOG_FORMAT.set(handle);
    tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .init();
}

fn use_json_logs() {
    if let Some(h) = LOG_FORMAT.get() {
        if let Err(e) = h.reload(log_format(true)) {
            tracing::warn!(error = %e, "cannot switch log lines to JSON");
        }
    }
}

async fn check_config(path: &std::path::Path) -> Result<(), String> {
    let (cfg, _) = catalog::load_config(Some(path.to_path_buf())).await?;
    gateway::guardrails::Guardrails::build(&cfg.guardrails)
        .await
        .map_err(|(p, reason)| format!("config {}: {p}: {reason}", cfg.source))?;
    for w in &cfg.warnings {
        println!("warning: {w}");
    }
    println!(
        "{}: {} deployments, OK",
        path.display(),
        cfg.deployments.len()
    );
    Ok(())
}

async fn serve(
    config_path: Option<PathBuf>,
    host: &str,
    port: u16,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<(), String> {
    // A bad certificate stops the start before anything else is opened.
    let tls = match tls {
        Some((cert, key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    format!(
                        "cannot use --tls-cert {} / --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?,
        ),
        None => None,
    };
    let (cfg, source) = catalog::load_config(config_path).await?;
    if cfg.json_logs {
        use_json_logs();
    }
    for w in &cfg.warnings {
        tracing::warn!("config {}: {w}", cfg.source);
    }
    let env = Env::default();
    let master_from_env = env.get("TOLLGATE_MASTER_KEY").is_some();
    let master_key = match env
        .get("TOLLGATE_MASTER_KEY")
        .map(Secret::new)
        .or_else(|| cfg.master_key.clone())
    {
        Some(k) => k,
        None => {
            let k = Secret::new(format!("sk-{}", uuid::Uuid::new_v4().simple()));
            eprintln!(
                "tollgate: no master key configured (TOLLGATE_MASTER_KEY or general_settings.master_key); \
                 this run's master key is {}",
                k.expose()
            );
            k
        }
    };
    let database_url = env
        .get("DATABASE_URL")
        .or_else(|| cfg.database_url.clone())
        .unwrap_or_else(|| store::DEFAULT_DATABASE_URL.to_string());
    let store = store::Store::connect(&database_url)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(store = store.backend(), url = %secret::redact_dsn(&database_url), "store ready");

    // Upstreams are reached directly: no proxy matching, no redirects.
    let http = providers::upstream::HttpClient::new();
    let prefix = env
        .get("TOLLGATE_REDIS_PREFIX")
        .unwrap_or_else(|| "tollgate:".into());
    let counters = Arc::new(match &cfg.redis_url {
        Some(url) => {
            let c = counters::Counters::with_redis(url, &prefix)?;
            tracing::info!(
                prefix,
                "limits, cooldowns and usage are shared through Redis"
            );
            c
        }
        None => counters::Counters::local(),
    });
    let limiter = gateway::limits::Limiter::new(
        counters,
        gateway::limits::ProxyLimits {
            global_max_parallel_requests: cfg.global_max_parallel_requests,
        },
    );
    let router = gateway::router::Router::new(&cfg, &http, &limiter).await;
    // Alerts stop after the request logs (and their destinations) are flushed.
    let alerts_stop = tokio_util::sync::CancellationToken::new();
    let alerter = cfg
        .alerting
        .as_ref()
        .map(|a| alerts::start(a, limiter.counters.clone(), alerts_stop.clone()));
    let directory = directory::Directory::load(
        store.clone(),
        directory::ProxyBudget {
            max_budget: cfg.management.max_budget,
            budget_duration: cfg.management.budget_duration.clone(),
        },
    )
    .await
    .map_err(|e| format!("cannot read users, teams and keys: {e}"))?;
    let background = tokio_util::sync::CancellationToken::new();
    let poller = directory.spawn_poller(background.clone());
    limiter.counters.spawn_probe(background.clone());
    let cache = match cfg.cache.clone() {
        None => None,
        Some(c) => {
            let shared = cfg.redis_url.as_deref().map(|u| (u, &limiter.counters));
            let cache = gateway::cache::ResponseCache::new(c, shared, &prefix, &background)?;
            tracing::info!(
                store = cache.kind(),
                ttl_secs = cache.config().ttl.as_secs_f64(),
                "response cache on"
            );
            Some(Arc::new(cache))
        }
    };
    let guardrails = gateway::guardrails::Guardrails::build(&cfg.guardrails)
        .await
        .map_err(|(path, reason)| format!("config {}: {path}: {reason}", cfg.source))?;
    let exporters = logs::Exporters::start(&cfg.callbacks).await?;
    let stored_logs = cfg.callbacks.stored_logs();
    let keep_content = stored_logs.content || cfg.callbacks.destinations_get_content();
    let (log_sink, log_writer) = logs::LogWriter::start(
        store.clone(),
        directory.clone(),
        exporters.clone(),
        stored_logs,
    );
    if env.get("TOLLGATE_SALT_KEY").is_none() && env.get("LITELLM_SALT_KEY").is_none() {
        tracing::info!("no TOLLGATE_SALT_KEY: provider keys of models added through the API are sealed with the master key, and cannot be read if it changes");
    }
    let catalog = catalog::Catalog::new(
        source,
        catalog::sealer(&env, &master_key)?,
        http,
        master_from_env,
    );
    let oidc = match auth::oidc::Oidc::from_env(&env) {
        None => None,
        Some(Ok(o)) => {
            tracing::info!(issuer = o.issuer(), "console sign-in through {}", o.name);
            Some(Arc::new(o))
        }
        Some(Err(e)) => return Err(e),
    };
    let api_jwt = auth::jwt::ApiJwt::from_env(&env).map(|j| {
        tracing::info!(issuer = j.issuer(), "Okta JWTs are accepted on the API");
        Arc::new(j)
    });
    let state = Arc::new(state::AppState {
        oidc,
        api_jwt,
        catalog,
        prompt_cache: Default::default(),
        router: arc_swap::ArcSwap::from_pointee(router),
        store,
        logs: log_sink,
        auth: auth::Authenticator::new(&master_key, directory.clone()),
        directory,
        management: cfg.management.clone(),
        limiter,
        cache,
        guardrails,
        exporters,
        keep_content,
        stored_logs,
        health_board: cfg.health_checks.map(|_| Default::default()),
        started_at: providers::now_secs(),
    });

    // Models added through the API are served from the first request on.
    state.catalog.sync(&state).await;
    let every = env
        .get("TOLLGATE_SECRETS_REFRESH_SECS")
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 1.0)
        .unwrap_or(300.0);
    let keeper = catalog::spawn_keeper(
        state.clone(),
        std::time::Duration::from_secs_f64(every),
        background.clone(),
    );

    let checker = match (&state.health_board, cfg.health_checks) {
        (Some(board), Some(h)) => {
            tracing::info!(
                every_secs = h.every.as_secs_f64(),
                "deployments are health-checked in the background"
            );
            Some(gateway::health::spawn(
                state.clone(),
                board.clone(),
                h.every,
                background.clone(),
            ))
        }
        _ => None,
    };

    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let site_root = env
        .get("TOLLGATE_SITE_ROOT")
        .unwrap_or_else(|| "site".into());
    let console = ui::router(
        ui::leptos_options(&site_root, addr),
        Arc::new(http::console::Backend::new(state.clone())),
    );
    // Behind a load balancer that ends TLS, PROXY_BASE_URL (LiteLLM's name for
    // the address people reach the console at) says the console is on HTTPS.
    let secure_cookies = tls.is_some()
        || env
            .get("PROXY_BASE_URL")
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    auth::sessions::DbSessionStore::new(state.store.clone())
        .spawn_cleaner(std::time::Duration::from_secs(600), background.clone());
    let app = http::router(state.clone(), console, secure_cookies);
    tracing::info!(%addr, models = state.router.load().groups().count(), tls = tls.is_some(), "tollgate serving");
    if let Some(config) = tls {
        let std_listener = listener.into_std().map_err(|e| e.to_string())?;
        let handle = axum_server::Handle::new();
        let on_signal = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            on_signal.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
        println!("tollgate listening on https://{addr}");
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
            .acceptor(axum_server::accept::NoDelayAcceptor::new());
        axum_server::from_tcp(std_listener)
            .map_err(|e| e.to_string())?
            .acceptor(acceptor)
            .handle(handle)
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .map_err(|e| format!("server error: {e}"))?;
    } else {
        // Small writes (SSE chunks, short replies) go out at once, not after a delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        // One machine-readable line, for scripts and tests that start Tollgate on port 0.
        println!("tollgate listening on http://{addr}");
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    }
    tracing::info!("shutting down: flushing request logs");
    background.cancel();
    let _ = poller.await;
    let _ = keeper.await;
    if let Some(c) = checker {
        let _ = c.await;
    }
    drop(state);
    log_writer.shutdown().await;
    alerts_stop.cancel();
    if let Some(a) = alerter {
        if tokio::time::timeout(std::time::Duration::from_secs(10), a)
            .await
            .is_err()
        {
            tracing::warn!("alerts still unsent at shutdown were dropped");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
