use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a fault does (besides an optional `delay_ms`, which always comes first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with the provider's error shape and `status`.
    Status,
    /// Drop the TCP connection (RST) without any response.
    Reset,
    /// Send the headers and `chunks` stream events (SSE events, or AWS
    /// event-stream messages), then abort the connection. For a non-stream
    /// request: headers and half of the JSON body, then abort. A stream with
    /// fewer events aborts after its last one (no clean end).
    StreamErrorAfter,
    /// Only wait `delay_ms`, then answer normally.
    Delay,
}

/// One scripted fault. JSON form (all fields optional):
/// `{"status":500}`, `{"status":429,"retry_after":1}`, `{"kind":"reset"}`,
/// `{"kind":"stream_error_after","chunks":2}`, `{"delay_ms":300}`,
/// plus `"match":"<substring of path or model>"`, `"message":"<error text>"`,
/// `"times":N` (apply to the next N matching requests, default 1).
///
/// When `kind` is absent it is inferred: `status` given → status, else
/// `chunks` given → stream_error_after, else delay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FaultKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Seconds, sent as the `retry-after` header of a status fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Apply only to requests whose path or model contains this substring.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<String>,
    /// Error message to use instead of the provider's default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many matching requests this fault applies to (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Fault {
    /// The provider's error with this HTTP status.
    pub fn status(status: u16) -> Self {
        Fault {
            kind: Some(FaultKind::Status),
            status: Some(status),
            ..Fault::default()
        }
    }

    /// Drop the connection without a response.
    pub fn reset() -> Self {
        Fault {
            kind: Some(FaultKind::Reset),
            ..Fault::default()
        }
    }

    /// Stream `chunks` events, then abort the connection.
    pub fn stream_error_after(chunks: usize) -> Self {
        Fault {
            kind: Some(FaultKind::StreamErrorAfter),
            chunks: Some(chunks),
            ..Fault::default()
        }
    }

    /// Wait, then answer normally.
    pub fn delay(d: Duration) -> Self {
        Fault {
            kind: Some(FaultKind::Delay),
            delay_ms: Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            ..Fault::default()
        }
    }

    /// Sets `retry_after` (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Adds a delay before the fault takes effect.
    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Applies only to requests whose path or model contains `s`.
    pub fn matching(mut self, s: impl Into<String>) -> Self {
        self.match_ = Some(s.into());
        self
    }

    /// Overrides the error message.
    pub fn with_message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }

    /// Applies to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// The effective kind (explicit, or inferred from the fields).
    pub fn effective_kind(&self) -> FaultKind {
        match self.kind {
            Some(k) => k,
            None if self.status.is_some() => FaultKind::Status,
            None if self.chunks.is_some() => FaultKind::StreamErrorAfter,
            None => FaultKind::Delay,
        }
    }

    fn matches(&self, path: &str, model: &str) -> bool {
        match &self.match_ {
            None => true,
            Some(m) => path.contains(m.as_str()) || model.contains(m.as_str()),
        }
    }
}

struct Queued {
    fault: Fault,
    remaining: u32,
}

/// FIFO of scripted faults; lock-free check when empty.
#[derive(Default)]
pub(crate) struct FaultQueue {
    len: AtomicUsize,
    queue: Mutex<VecDeque<Queued>>,
}

impl FaultQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) -> usize {
        let mut q = self.lock();
        for fault in faults {
            let remaining = fault.times.unwrap_or(1).max(1);
            q.push_back(Queued { fault, remaining });
        }
        self.len.store(q.len(), Ordering::Release);
        q.len()
    }

    pub fn clear(&self) {
        let mut q = self.lock();
        q.clear();
        self.len.store(0, Ordering::Release);
    }

    pub fn pending(&self) -> Vec<Fault> {
        self.lock()
            .iter()
            .map(|q| {
                let mut f = q.fault.clone();
                if f.times.is_some() || q.remaining != 1 {
                    f.times = Some(q.remaining);
                }
                f
            })
            .collect()
    }

    /// Takes the first queued fault that applies to this request.
    pub fn take(&self, path: &str, model: &str) -> Option<Fault> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.lock();
        let idx = q.iter().position(|f| f.fault.matches(path, model))?;
        let entry = q.get_mut(idx)?;
        entry.remaining = entry.remaining.saturating_sub(1);
        let fault = entry.fault.clone();
        if entry.remaining == 0 {
            q.remove(idx);
        }
        self.len.store(q.len(), Ordering::Release);
        Some(fault)
    }
}
