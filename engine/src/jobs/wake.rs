//! Wake-ups: how an idle runner learns that a job was pushed.
//!
//! A `tokio::sync::watch` channel per queue (plus one for "any queue") carries a counter.
//! A runner marks the current value seen *before* it fetches, and waits for a change only
//! after an empty fetch, so a push that lands between the two is never lost — the failure
//! mode measured in apalis-core's `PollWith` wrapper.
//!
//! Sources:
//! - SQLite: the update hook on the single writer connection fires for every row inserted
//!   into apalis's `Jobs` table by this process (our pushes, hand-overs from
//!   `deferred_jobs`, retries). It fires before commit, which is safe: the runner's fetch
//!   goes through the same single writer connection, so it cannot run until that
//!   transaction has ended. The hook does not know the queue, so it wakes every queue.
//! - PostgreSQL: apalis's `AFTER INSERT` trigger sends `NOTIFY "apalis::job::insert"` with
//!   the job type, delivered at commit to every process; one listener per process wakes
//!   that queue's runners.
//!
//! Pushes from another process on the same SQLite file are seen at the runner's safety-net
//! poll ([`super::runner::RunnerOptions::idle_poll`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The wake-up channels of one database. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Wakeups {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    any: watch::Sender<u64>,
    queues: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            any: watch::Sender::new(0),
            queues: Mutex::new(HashMap::new()),
        }
    }
}

/// A runner's side: resolves when its queue (or any queue) may have new work.
#[derive(Debug)]
pub struct WakeReceiver {
    any: watch::Receiver<u64>,
    queue: watch::Receiver<u64>,
}

impl Wakeups {
    pub fn new() -> Self {
        Self::default()
    }

    fn queue_sender(&self, queue: &str) -> watch::Sender<u64> {
        // A poisoned lock only means another thread panicked mid-insert; the map is intact.
        let mut queues = self
            .inner
            .queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        queues
            .entry(queue.to_string())
            .or_insert_with(|| watch::Sender::new(0))
            .clone()
    }

    /// Wakes the runners of one queue.
    pub fn wake(&self, queue: &str) {
        let queues = self
            .inner
            .queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(sender) = queues.get(queue) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every runner (the SQLite hook cannot tell which queue).
    pub fn wake_all(&self) {
        self.inner.any.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self, queue: &str) -> WakeReceiver {
        WakeReceiver {
            any: self.inner.any.subscribe(),
            queue: self.queue_sender(queue).subscribe(),
        }
    }
}

impl WakeReceiver {
    /// Marks every signal so far as seen. Call before fetching.
    pub fn mark_seen(&mut self) {
        self.any.borrow_and_update();
        self.queue.borrow_and_update();
    }

    /// Resolves at the first signal not yet marked seen (at once if one arrived since
    /// [`WakeReceiver::mark_seen`]).
    pub async fn changed(&mut self) {
        tokio::select! {
            r = self.any.changed() => { if r.is_err() { std::future::pending::<()>().await } }
            r = self.queue.changed() => { if r.is_err() { std::future::pending::<()>().await } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_between_mark_and_wait_is_not_lost() {
        let wakeups = Wakeups::new();
        let mut rx = wakeups.subscribe("webhook");
        rx.mark_seen();
        wakeups.wake("webhook");
        tokio::time::timeout(Duration::from_secs(1), rx.changed())
            .await
            .expect("the earlier signal resolves the wait at once");
        rx.mark_seen();
        wakeups.wake_all();
        tokio::time::timeout(Duration::from_secs(1), rx.changed())
            .await
            .expect("a wake-all reaches every queue");
    }

    #[tokio::test]
    async fn another_queues_signal_does_not_wake() {
        let wakeups = Wakeups::new();
        let mut rx = wakeups.subscribe("webhook");
        let _other = wakeups.subscribe("notify");
        rx.mark_seen();
        wakeups.wake("notify");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), rx.changed())
                .await
                .is_err()
        );
    }
}
