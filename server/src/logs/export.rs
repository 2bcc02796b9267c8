//! Delivery of request logs to the configured destinations (S3, Langsmith,
//! OpenTelemetry, a webhook): each destination has its own bounded queue and
//! task, sends in batches, retries with backoff, counts what it drops, and
//! drains its queue when Tollgate shuts down. Nothing here runs on a
//! request's path: the log writer hands over each batch it has written.

use super::sinks::Sink;
use super::RequestLog;
use crate::config::{CallbacksConfig, Destination};
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a shutdown waits for the destinations to take what is queued.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The running destinations, for service events raised far from the log
/// writer (Redis going away and coming back).
static RUNNING: std::sync::OnceLock<Arc<Exporters>> = std::sync::OnceLock::new();

/// Sends a service event to the `service_callback` destinations, if any.
pub fn service_event(service: &str, event: &str, failure: bool, error: Option<String>) {
    if let Some(x) = RUNNING
        .get()
        .filter(|x| x.shared.iter().any(|s| s.dest.service))
    {
        x.service(serde_json::json!({
            "type": "service",
            "service": service,
            "event": event,
            "status": if failure { "failure" } else { "success" },
            "error": error,
            "time": super::now_ms() as f64 / 1000.0,
        }));
    }
}

/// What a destination is handed.
#[derive(Debug, Clone)]
pub enum Item {
    Request(Arc<RequestLog>),
    /// A service event (`service_callback`): Redis or the store failing or back.
    Service(Arc<Value>),
}

/// A failed delivery: `retry` unless the destination refused the batch for good.
#[derive(Debug)]
pub struct SendError {
    pub retry: bool,
    pub message: String,
}

impl SendError {
    pub fn retry(message: impl Into<String>) -> Self {
        SendError {
            retry: true,
            message: message.into(),
        }
    }

    /// From an HTTP status: 408, 429 and 5xx are worth another try.
    pub fn status(code: u16, body: &str) -> Self {
        SendError {
            retry: code == 408 || code == 429 || code >= 500,
            message: format!(
                "HTTP {code}: {}",
                body.chars().take(300).collect::<String>()
            ),
        }
    }
}

/// One destination's counters, as `/active/callbacks` and `/metrics` show them.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationStats {
    pub name: &'static str,
    pub success: bool,
    pub failure: bool,
    pub service: bool,
    /// Records waiting to be sent.
    pub queued: u64,
    /// Records delivered.
    pub delivered: u64,
    /// Records given up after every retry, or refused by the destination.
    pub failed: u64,
    /// Records refused because the queue was full.
    pub dropped: u64,
    pub last_error: Option<String>,
}

struct Shared {
    dest: Destination,
    queue: Mutex<VecDeque<Item>>,
    cap: usize,
    batch: usize,
    wake: Notify,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn push(&self, items: impl Iterator<Item = Item>) {
        let mut dropped = 0u64;
        let full_batch = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            for item in items {
                if q.len() >= self.cap {
                    dropped += 1;
                } else {
                    q.push_back(item);
                }
            }
            q.len() >= self.batch
        };
        if dropped > 0 {
            let before = self.dropped.fetch_add(dropped, Ordering::Relaxed);
            // Loud, but not once per record.
            if (before + dropped).ilog2() != before.max(1).ilog2() || before == 0 {
                tracing::error!(
                    destination = self.dest.name(),
                    dropped = before + dropped,
                    queue = self.cap,
                    "log destination queue is full: records dropped"
                );
                crate::alerts::raise(
                    "callback_failures",
                    format!("callback-full:{}", self.dest.name()),
                    Duration::from_secs(600),
                    format!(
                        "📭 The {} log destination is behind: its queue of {} is full and {} request logs were dropped so far.",
                        self.dest.name(),
                        self.cap,
                        before + dropped
                    ),
                );
            }
        }
        if full_batch {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Vec<Item> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len().min(self.batch);
        q.drain(..n).collect()
    }

    fn stats(&self) -> DestinationStats {
        DestinationStats {
            name: self.dest.name(),
            success: self.dest.success,
            failure: self.dest.failure,
            service: self.dest.service,
            queued: self.queue.lock().map(|q| q.len() as u64).unwrap_or(0),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// The destinations and their tasks.
pub struct Exporters {
    shared: Vec<Arc<Shared>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop: CancellationToken,
    /// Whether destinations get prompts and answers.
    pub content: bool,
    names: [Vec<&'static str>; 3],
}

impl Exporters {
    /// Builds each destination's client and starts its task.
    pub async fn start(cfg: &CallbacksConfig) -> Result<Arc<Self>, String> {
        let stop = CancellationToken::new();
        let mut shared = Vec::new();
        let mut tasks = Vec::new();
        for dest in &cfg.destinations {
            let sink = Sink::build(&dest.kind, cfg.destinations_get_content()).await?;
            let s = Arc::new(Shared {
                dest: dest.clone(),
                queue: Mutex::new(VecDeque::new()),
                cap: cfg.queue,
                batch: sink.batch_size(),
                wake: Notify::new(),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                last_error: Mutex::new(None),
            });
            let every = sink.flush_every().unwrap_or(cfg.flush_every);
            tracing::info!(
                destination = dest.name(),
                success = dest.success,
                failure = dest.failure,
                service = dest.service,
                flush_secs = every.as_secs_f64(),
                "request logs are sent to {}",
                sink.describe()
            );
            tasks.push(tokio::spawn(run(
                s.clone(),
                sink,
                every,
                cfg.attempts,
                stop.clone(),
            )));
            shared.push(s);
        }
        let names = |pick: fn(&Destination) -> bool| {
            cfg.destinations
                .iter()
                .filter(|d| pick(d))
                .map(Destination::name)
                .collect()
        };
        let x = Arc::new(Exporters {
            names: [
                names(|d| d.success),
                names(|d| d.failure),
                names(|d| d.service),
            ],
            shared,
            tasks: Mutex::new(tasks),
            stop,
            content: cfg.destinations_get_content(),
        });
        if !x.is_empty() && RUNNING.set(Arc::clone(&x)).is_err() {
            tracing::debug!("log destinations were already started in this process");
        }
        Ok(x)
    }

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// Hands a written batch to the destinations that take its kind of record.
    pub fn offer(&self, logs: &[Arc<RequestLog>]) {
        for s in &self.shared {
            let wanted = logs.iter().filter(|l| !l.no_log).filter(|l| {
                if l.succeeded() {
                    s.dest.success
                } else {
                    s.dest.failure
                }
            });
            s.push(wanted.map(|l| Item::Request(Arc::clone(l))));
        }
    }

    /// A service event for the `service_callback` destinations.
    pub fn service(&self, event: Value) {
        let event = Arc::new(event);
        for s in self.shared.iter().filter(|s| s.dest.service) {
            s.push(std::iter::once(Item::Service(Arc::clone(&event))));
        }
    }

    /// A test record for the destination `name` (`/health/services`):
    /// whether there is such a destination.
    pub fn test(&self, name: &str) -> bool {
        let mut found = false;
        for s in self.shared.iter().filter(|s| s.dest.name() == name) {
            found = true;
            s.push(std::iter::once(Item::Service(Arc::new(
                serde_json::json!({
                    "type": "service",
                    "service": "tollgate",
                    "event": "health_services_test",
                    "status": "success",
                    "error": null,
                    "time": super::now_ms() as f64 / 1000.0,
                }),
            ))));
            s.wake.notify_one();
        }
        found
    }

    pub fn stats(&self) -> Vec<DestinationStats> {
        self.shared.iter().map(|s| s.stats()).collect()
    }

    /// `[success, failure, service]` destination names.
    pub fn lists(&self) -> &[Vec<&'static str>; 3] {
        &self.names
    }

    /// Sends what is queued (bounded by a deadline) and stops the tasks.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(SHUTDOWN_DEADLINE, all).await.is_err() {
            tracing::error!("log destinations did not finish sending within {SHUTDOWN_DEADLINE:?}; the rest is lost");
        }
        for s in self.stats() {
            if s.queued > 0 || s.failed > 0 || s.dropped > 0 {
                tracing::warn!(
                    destination = s.name,
                    queued = s.queued,
                    failed = s.failed,
                    dropped = s.dropped,
                    "log destination ended with records not delivered"
                );
            }
        }
    }
}

async fn run(s: Arc<Shared>, sink: Sink, every: Duration, attempts: u32, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = s.wake.notified() => false,
            _ = stop.cancelled() => true,
        };
        loop {
            let batch = s.take();
            if batch.is_empty() {
                break;
            }
            deliver(&s, &sink, batch, attempts, &stop).await;
        }
        if stopping || stop.is_cancelled() {
            // The writer hands its last batch over before cancelling: send it.
            loop {
                let batch = s.take();
                if batch.is_empty() {
                    return;
                }
                deliver(&s, &sink, batch, attempts, &stop).await;
            }
        }
    }
}

async fn deliver(
    s: &Shared,
    sink: &Sink,
    batch: Vec<Item>,
    attempts: u32,
    stop: &CancellationToken,
) {
    let n = batch.len() as u64;
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    let err = loop {
        match sink.send(&batch).await {
            Ok(()) => {
                s.delivered.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Err(e) if !e.retry || attempt >= attempts => break e,
            Err(e) => {
                tracing::warn!(
                    destination = s.dest.name(),
                    attempt,
                    records = n,
                    error = %e.message,
                    "sending request logs failed; retrying"
                );
                // Shutting down: retry quickly, within the shutdown deadline.
                let pause = if stop.is_cancelled() {
                    wait.min(Duration::from_secs(1))
                } else {
                    jitter(wait)
                };
                tokio::time::sleep(pause).await;
                wait = (wait * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    };
    s.failed.fetch_add(n, Ordering::Relaxed);
    tracing::error!(
        destination = s.dest.name(),
        records = n,
        attempts = attempt,
        error = %err.message,
        "request logs could not be delivered; dropped"
    );
    crate::alerts::raise(
        "callback_failures",
        format!("callback:{}", s.dest.name()),
        Duration::from_secs(600),
        format!(
            "📭 The {} log destination did not take {n} request logs after {attempt} tries: {}",
            s.dest.name(),
            err.message
        ),
    );
    if let Ok(mut last) = s.last_error.lock() {
        *last = Some(err.message);
    }
}

/// `d` give or take a quarter, so retries of many processes spread out.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + rand::random::<f64>() * 0.5)
}
