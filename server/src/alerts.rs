//! Alerts to a Slack-compatible webhook (`general_settings.alerting: ["slack"]`,
//! `SLACK_WEBHOOK_URL`): budgets crossing their soft limit, 80% and 100%,
//! deployments failing health checks or cooling down, slow calls, the store
//! refusing logs, log destinations giving up. Raised from anywhere without
//! waiting (a bounded queue; when it is full the alert is dropped and
//! counted), each sent once per its dedup window, retried a few times.

use crate::config::AlertingConfig;
use crate::counters::Counters;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const QUEUE: usize = 1000;
const ATTEMPTS: u32 = 3;

struct Alert {
    kind: &'static str,
    /// Alerts with the same key are sent once per `window`.
    key: String,
    window: Duration,
    text: String,
}

struct Alerter {
    tx: mpsc::Sender<Alert>,
    types: BTreeSet<&'static str>,
    slow_after: Duration,
}

static ALERTER: OnceLock<Alerter> = OnceLock::new();
static SENT: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Alerts sent and alerts that could not be sent (or were dropped).
pub fn counts() -> (u64, u64) {
    (SENT.load(Ordering::Relaxed), FAILED.load(Ordering::Relaxed))
}

/// Whether alerting is on.
pub fn wants_any() -> bool {
    ALERTER.get().is_some()
}

/// Whether alerts of `kind` are sent at all.
pub fn wants(kind: &str) -> bool {
    ALERTER.get().is_some_and(|a| a.types.contains(kind))
}

/// Calls slower than this are reported, when `llm_too_slow` alerts are on.
pub fn slow_after() -> Option<Duration> {
    ALERTER
        .get()
        .filter(|a| a.types.contains("llm_too_slow"))
        .map(|a| a.slow_after)
}

/// Queues an alert of `kind`; never waits.
pub fn raise(kind: &'static str, key: String, window: Duration, text: String) {
    let Some(a) = ALERTER.get().filter(|a| a.types.contains(kind)) else {
        return;
    };
    if a.tx
        .try_send(Alert {
            kind,
            key,
            window,
            text,
        })
        .is_err()
    {
        FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A test alert (`/health/services?service=slack`), whatever `alert_types`
/// says: whether alerting is on.
pub fn test() -> bool {
    let Some(a) = ALERTER.get() else {
        return false;
    };
    let sent = a.tx.try_send(Alert {
        kind: "test",
        key: format!("test:{}", uuid::Uuid::new_v4()),
        window: Duration::ZERO,
        text: "✅ Tollgate test alert: alerts reach this channel.".into(),
    });
    sent.is_ok()
}

/// Budget thresholds a spend counter crossed from `before` to `after`:
/// 100% and 80% of `max_budget`, and the soft budget.
pub fn budget(
    what: &str,
    id: &str,
    before: f64,
    after: f64,
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
) {
    if !wants("budget_alerts") {
        return;
    }
    let crossed = |limit: f64| limit > 0.0 && before < limit && after >= limit;
    let day = Duration::from_secs(86_400);
    if let Some(m) = max_budget {
        if crossed(m) {
            raise(
                "budget_alerts",
                format!("budget:{what}:{id}:100"),
                day,
                format!("🚨 Budget exceeded: {what} {id} has spent ${after:.4} of its ${m:.4} budget (100%). Its calls are refused until the budget resets."),
            );
        } else if crossed(m * 0.8) {
            raise(
                "budget_alerts",
                format!("budget:{what}:{id}:80"),
                day,
                format!(
                    "⚠️ Budget at 80%: {what} {id} has spent ${after:.4} of its ${m:.4} budget."
                ),
            );
        }
    }
    if let Some(s) = soft_budget {
        if crossed(s) {
            raise(
                "budget_alerts",
                format!("budget:{what}:{id}:soft"),
                day,
                format!("⚠️ Soft budget crossed: {what} {id} has spent ${after:.4}, over its soft budget of ${s:.4}. It keeps working."),
            );
        }
    }
}

/// Starts the sender; alerts raised before this are not sent. `counters`
/// deduplicates alerts across processes when they share Redis.
pub fn start(
    cfg: &AlertingConfig,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let alerter = Alerter {
        tx,
        types: cfg.types.clone(),
        slow_after: cfg.slow_after,
    };
    if ALERTER.set(alerter).is_err() {
        tracing::warn!("alerting was already started in this process");
    }
    tracing::info!(types = ?cfg.types, "alerts are sent to the Slack webhook");
    tokio::spawn(run(cfg.webhook_url.clone(), counters, rx, stop))
}

async fn run(
    url: String,
    counters: Arc<Counters>,
    mut rx: mpsc::Receiver<Alert>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the alert webhook client; no alert is sent");
            return;
        }
    };
    let mut last_sent: HashMap<String, Instant> = HashMap::new();
    loop {
        let alert = tokio::select! {
            a = rx.recv() => a,
            _ = stop.cancelled() => {
                // Send what was raised before the stop, then end.
                rx.close();
                rx.recv().await
            }
        };
        let Some(alert) = alert else {
            return;
        };
        let now = Instant::now();
        if last_sent
            .get(&alert.key)
            .is_some_and(|at| now.duration_since(*at) < alert.window)
        {
            continue;
        }
        last_sent.insert(alert.key.clone(), now);
        if last_sent.len() > 10_000 {
            last_sent.retain(|_, at| now.duration_since(*at) < Duration::from_secs(86_400));
        }
        // Another process sharing Redis may have sent it already.
        if !alert.window.is_zero()
            && !counters
                .claim(&format!("alert:{}", alert.key), alert.window)
                .await
        {
            continue;
        }
        send(&client, &url, &alert).await;
    }
}

async fn send(client: &reqwest::Client, url: &str, alert: &Alert) {
    let body = json!({ "text": alert.text, "alert_type": alert.kind });
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        match client.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                SENT.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    attempt,
                    kind = alert.kind,
                    "the alert webhook refused an alert"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, kind = alert.kind, "the alert webhook is unreachable")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    FAILED.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        kind = alert.kind,
        "an alert could not be sent: {}",
        alert.text
    );
}
