//! Request logs: built on the request path, written in batches by one task off
//! the request path, and flushed when Tollgate shuts down.

pub mod export;
pub mod payload;
mod sinks;

pub use export::Exporters;
pub use payload::LoggedContent;

use crate::config::StoredLogs;
use crate::directory::Directory;
use crate::store::directory::SpendKind;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(200);
const QUEUE: usize = 100_000;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One request, as it is logged (and later billed). Names are shared
/// (`Arc<str>`): the deployment's are not copied per call, and the store binds
/// them without copying.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    pub request_id: Arc<str>,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub call_type: &'static str,
    pub surface: &'static str,
    pub api_key_hash: Option<Arc<str>>,
    pub key_alias: Option<Arc<str>>,
    pub user_id: Option<Arc<str>>,
    pub team_id: Option<Arc<str>>,
    pub model_requested: Arc<str>,
    pub model_group: Option<Arc<str>>,
    pub deployment_id: Option<Arc<str>>,
    pub provider: Option<Arc<str>>,
    pub upstream_model: Option<Arc<str>>,
    pub stream: bool,
    pub status_code: u16,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub attempts: u32,
    pub fallbacks_used: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub spend: f64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub metadata: Option<serde_json::Value>,
    /// Whether `api_key_hash` is a virtual key (whose counters this log adds to).
    pub virtual_key: bool,
    /// The answer came from the response cache.
    pub cache_hit: bool,
    /// The guardrails the call passed through: `[{name, mode, outcome, ms}]`.
    pub guardrails: Option<serde_json::Value>,
    /// The prompt and the answer, when something keeps them (the store with
    /// `store_prompts_in_spend_logs`, or the log destinations).
    pub content: Option<Box<LoggedContent>>,
    /// The caller asked for `no-log`: no log destination gets this call.
    pub no_log: bool,
}

impl RequestLog {
    /// Whether the call succeeded (its `outcome` is `success`).
    pub fn succeeded(&self) -> bool {
        self.outcome == "success"
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the request path hands its logs; never blocks.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<RequestLog>,
    dropped: Arc<AtomicU64>,
}

impl LogSink {
    /// Logs dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn send(&self, log: RequestLog) {
        if self.tx.try_send(log).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(
                    dropped = n,
                    "request log queue is full or closed; logs dropped"
                );
            }
        }
    }
}

/// The writer task; `shutdown` drains the queue and writes what is left.
pub struct LogWriter {
    handle: JoinHandle<()>,
    stop: CancellationToken,
    exporters: Arc<Exporters>,
}

impl LogWriter {
    /// `stored`: which logs the store keeps, and whether with prompts and answers.
    pub fn start(
        store: Store,
        directory: Arc<Directory>,
        exporters: Arc<Exporters>,
        stored: StoredLogs,
    ) -> (LogSink, LogWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(run(
            Writer {
                store,
                directory,
                exporters: exporters.clone(),
                stored,
            },
            rx,
            stop.clone(),
        ));
        (
            LogSink {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            LogWriter {
                handle,
                stop,
                exporters,
            },
        )
    }

    /// Call once every request has ended. Waits until the last `LogSink` is
    /// gone (a stream dropped by a departed client logs from its destructor,
    /// which can run just after the server stops), so the writer sees the
    /// channel close with everything in it; after `SHUTDOWN_GRACE` it stops
    /// waiting and writes what is queued.
    /// Then the log destinations send what they hold.
    pub async fn shutdown(mut self) {
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.handle).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "request log writer failed");
            }
            Err(_) => {
                tracing::warn!(
                    "request log senders still alive at shutdown; writing what is queued"
                );
                self.stop.cancel();
                if let Err(e) = self.handle.await {
                    tracing::error!(error = %e, "request log writer failed");
                }
            }
        }
        self.exporters.shutdown().await;
    }
}

/// Wakes every `FLUSH_EVERY` and writes what queued meanwhile, so a request's
/// send never has to wake this task (no cross-thread wake-up per request).
struct Writer {
    store: Store,
    directory: Arc<Directory>,
    exporters: Arc<Exporters>,
    stored: StoredLogs,
}

async fn run(store: Writer, mut rx: mpsc::Receiver<RequestLog>, stop: CancellationToken) {
    let mut batch: Vec<RequestLog> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        loop {
            match rx.try_recv() {
                Ok(log) => {
                    batch.push(log);
                    if batch.len() >= BATCH {
                        write(&store, &mut batch).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    write(&store, &mut batch).await;
                    return;
                }
            }
        }
        write(&store, &mut batch).await;
        if stopping {
            break;
        }
    }
    // Shutting down: write whatever arrived while the last batch was written.
    rx.close();
    while let Some(log) = rx.recv().await {
        batch.push(log);
        if batch.len() >= BATCH {
            write(&store, &mut batch).await;
        }
    }
    write(&store, &mut batch).await;
}

/// What a batch adds to each spend counter. `model_budget(token, model)`
/// says whether a key's spend on a model is counted apart.
fn spend_deltas(
    batch: &[RequestLog],
    model_budget: impl Fn(&str, &str) -> bool,
) -> Vec<(SpendKind, String, f64)> {
    let mut sums: HashMap<(SpendKind, std::borrow::Cow<'_, str>), f64> = HashMap::new();
    for r in batch
        .iter()
        .filter(|r| r.spend > 0.0 && r.spend.is_finite())
    {
        *sums.entry((SpendKind::Proxy, "proxy".into())).or_default() += r.spend;
        if r.virtual_key {
            if let Some(k) = &r.api_key_hash {
                *sums.entry((SpendKind::Key, k.as_ref().into())).or_default() += r.spend;
                if let Some(m) = r.model_group.as_deref().filter(|m| model_budget(k, m)) {
                    let id = crate::store::directory::key_model_id(k, m);
                    *sums.entry((SpendKind::KeyModel, id.into())).or_default() += r.spend;
                }
            }
            if let Some(u) = &r.user_id {
                *sums.entry((SpendKind::User, (&**u).into())).or_default() += r.spend;
            }
            if let Some(t) = &r.team_id {
                *sums.entry((SpendKind::Team, (&**t).into())).or_default() += r.spend;
            }
        }
    }
    let mut out: Vec<_> = sums
        .into_iter()
        .map(|((kind, id), s)| (kind, id.to_string(), s))
        .collect();
    // One order everywhere, so concurrent batches of two processes lock rows alike.
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

async fn write(w: &Writer, batch: &mut Vec<RequestLog>) {
    if batch.is_empty() {
        return;
    }
    let snap = w.directory.snapshot();
    let deltas = spend_deltas(batch, |token, model| {
        snap.keys
            .get(token)
            .is_some_and(|k| k.record.settings.model_max_budget.contains_key(model))
    });
    for attempt in 0..3u32 {
        match w.store.insert_request_logs(batch, &deltas, w.stored).await {
            Ok(updated) => {
                w.directory.settle(&updated);
                hand_over(w, batch);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, rows = batch.len(), "writing request logs failed");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
            }
        }
    }
    tracing::error!(
        rows = batch.len(),
        "request logs could not be written to the store"
    );
    crate::metrics::store_error();
    crate::alerts::raise(
        "db_exceptions",
        "store:request_logs".into(),
        Duration::from_secs(600),
        format!(
            "🗄️ The store refused {} request logs after 3 tries (spend is still counted in memory; the logs still go to the log destinations).",
            batch.len()
        ),
    );
    if !w.exporters.is_empty() {
        w.exporters.service(serde_json::json!({
            "type": "service",
            "service": "store",
            "event": "request_logs_not_written",
            "status": "failure",
            "rows": batch.len(),
            "time": now_ms() as f64 / 1000.0,
        }));
    }
    // The destinations still get them.
    hand_over(w, batch);
}

/// After the store: one log line and the metrics for each request, then the
/// batch goes to the log destinations.
fn hand_over(w: &Writer, batch: &mut Vec<RequestLog>) {
    let slow = crate::alerts::slow_after().map(|d| d.as_millis() as u64);
    for r in batch.iter() {
        crate::metrics::observe(r);
        if let Some(limit) = slow.filter(|l| r.latency_ms > *l) {
            let group = r.model_group.as_deref().unwrap_or(&r.model_requested);
            crate::alerts::raise(
                "llm_too_slow",
                format!("slow:{group}"),
                Duration::from_secs(600),
                format!(
                    "🐢 Slow call to {group} (deployment {}): {:.1}s, over the {:.1}s threshold (request {}).",
                    r.deployment_id.as_deref().unwrap_or("-"),
                    r.latency_ms as f64 / 1000.0,
                    limit as f64 / 1000.0,
                    r.request_id
                ),
            );
        }
        tracing::info!(
            target: "tollgate::request",
            request_id = %r.request_id,
            key_alias = r.key_alias.as_deref(),
            user_id = r.user_id.as_deref(),
            team_id = r.team_id.as_deref(),
            surface = r.surface,
            call_type = r.call_type,
            model = %r.model_requested,
            model_group = r.model_group.as_deref(),
            deployment = r.deployment_id.as_deref(),
            stream = r.stream,
            status = r.status_code,
            outcome = r.outcome,
            latency_ms = r.latency_ms,
            ttft_ms = r.ttft_ms,
            prompt_tokens = r.prompt_tokens,
            completion_tokens = r.completion_tokens,
            cost = r.spend,
            cache_hit = r.cache_hit,
            attempts = r.attempts,
            error = r.error.as_deref(),
            "request"
        );
    }
    if w.exporters.is_empty() {
        batch.clear();
        return;
    }
    let shared: Vec<Arc<RequestLog>> = batch.drain(..).map(Arc::new).collect();
    w.exporters.offer(&shared);
}
