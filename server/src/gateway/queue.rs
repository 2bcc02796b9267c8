//! Calls waiting for capacity (a slot under a limit of requests in flight, a
//! deployment with room), by what they wait for: the first by (priority,
//! arrival) of each is the one that tries next, so a priority-0 call overtakes
//! every waiting priority-10 call. Slots freed in this process wake the queue
//! at once; slots freed by another process are seen at the next recheck.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a waiting call looks again without being woken.
const RECHECK_EVERY: Duration = Duration::from_millis(25);

/// The priority of a call that names none: after every call that does.
pub const UNPRIORITISED: i64 = i64::MAX;

#[derive(Default)]
pub struct Queue {
    places: Mutex<BTreeSet<(String, i64, u64)>>,
    seq: AtomicU64,
    notify: tokio::sync::Notify,
}

/// What one try at getting capacity gave.
pub enum Turn<T, E> {
    Got(T),
    /// Full for now: keep waiting (this error is the answer if time runs out).
    Full(E),
    /// Failed for good.
    Fail(E),
}

impl Queue {
    /// Something was freed: the first in line of each resource may try now.
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Waits in line for `resource` until `attempt` gets it, fails, or
    /// `deadline` passes (then `on_timeout` words the last `Full` error).
    pub async fn wait_turn<T, E, F, Fut>(
        self: &Arc<Self>,
        resource: String,
        priority: i64,
        deadline: tokio::time::Instant,
        first: E,
        mut attempt: F,
        on_timeout: impl FnOnce(E) -> E,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Turn<T, E>>,
    {
        let place = (resource, priority, self.seq.fetch_add(1, Ordering::Relaxed));
        self.lock().insert(place.clone());
        let _ticket = Ticket {
            queue: Arc::clone(self),
            place: place.clone(),
        };
        let mut last = first;
        loop {
            let woken = self.notify.notified();
            if self.is_head(&place) {
                match attempt().await {
                    Turn::Got(v) => return Ok(v),
                    Turn::Fail(e) => return Err(e),
                    Turn::Full(e) => last = e,
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(RECHECK_EVERY) => {}
                _ = tokio::time::sleep_until(deadline) => return Err(on_timeout(last)),
            }
        }
    }

    fn is_head(&self, place: &(String, i64, u64)) -> bool {
        let q = self.lock();
        q.range((place.0.clone(), i64::MIN, 0)..).next() == Some(place)
    }

    /// Calls waiting now.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, i64, u64)>> {
        self.places.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A place in line, given up when the call gets in, fails or leaves.
struct Ticket {
    queue: Arc<Queue>,
    place: (String, i64, u64),
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queue.lock().remove(&self.place);
        // The next in line may try now.
        self.queue.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn the_best_priority_gets_the_freed_slot_first() {
        let q = Arc::new(Queue::default());
        let free = Arc::new(AtomicBool::new(false));
        let order = Arc::new(Mutex::new(Vec::new()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut tasks = Vec::new();
        for (name, priority) in [("low-1", 10), ("low-2", 10), ("urgent", 0)] {
            let (q, free, order) = (q.clone(), free.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let got = q
                    .wait_turn(
                        "r".into(),
                        priority,
                        deadline,
                        (),
                        || {
                            let free = free.clone();
                            async move {
                                if free.swap(false, Ordering::SeqCst) {
                                    Turn::Got(())
                                } else {
                                    Turn::Full(())
                                }
                            }
                        },
                        |e| e,
                    )
                    .await;
                if got.is_ok() {
                    order.lock().map(|mut o| o.push(name)).ok();
                }
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            free.store(true, Ordering::SeqCst);
            q.wake();
        }
        for t in tasks {
            let _ = t.await;
        }
        let order = order.lock().map(|o| o.clone()).unwrap_or_default();
        assert_eq!(order, vec!["urgent", "low-1", "low-2"]);
    }
}
