use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::MockConfig;
use crate::fault::FaultQueue;

/// One LLM request as the mock received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Raw (still percent-encoded) path.
    pub path: String,
    pub query: Option<String>,
    /// Lower-case header names; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The body as JSON when it parses, else as a (lossy UTF-8) string; `null` when empty.
    pub body: Value,
}

impl RecordedRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// `body.model`, when present.
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }
}

/// State shared by every connection of one mock server.
pub(crate) struct Shared {
    pub config: MockConfig,
    pub faults: FaultQueue,
    recorded: Mutex<Vec<RecordedRequest>>,
    request_count: AtomicUsize,
    active_streams: AtomicUsize,
    ids: AtomicU64,
}

impl Shared {
    pub fn new(config: MockConfig) -> Self {
        Shared {
            config,
            faults: FaultQueue::default(),
            recorded: Mutex::new(Vec::new()),
            request_count: AtomicUsize::new(0),
            active_streams: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count_request(&self) {
        self.request_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, r: RecordedRequest) {
        self.lock().push(r);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub fn request_count(&self) -> usize {
        self.request_count.load(Ordering::Relaxed)
    }

    pub fn clear_requests(&self) {
        let mut g = self.lock();
        g.clear();
        self.request_count.store(0, Ordering::Relaxed);
    }

    pub fn active_streams(&self) -> usize {
        self.active_streams.load(Ordering::Acquire)
    }

    pub fn stream_started(&self) {
        self.active_streams.fetch_add(1, Ordering::AcqRel);
    }

    pub fn stream_ended(&self) {
        self.active_streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// A fresh id number (unique per server).
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}
