//! Requests that changed a container wait here until the engine's event for
//! that change has been applied to the state: the event loop records the
//! change (`start` → running, ...), so the request does not read the
//! container back, yet a client that asks right after its answer sees the
//! change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Per container ID: the actions awaited, each with its waiter.
type Waiting = HashMap<String, Vec<(String, oneshot::Sender<()>)>>;

/// Waiters by container ID, each for one event action.
#[derive(Default)]
pub struct EventWaiters {
    waiting: Mutex<Waiting>,
}

impl EventWaiters {
    /// Registers interest in the next `action` event of container `id`
    /// applied from now on. Register before sending the request that causes
    /// the event, so that an event applied before the engine's answer counts.
    pub fn expect(self: &Arc<Self>, id: &str, action: &str) -> EventWait {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .entry(id.to_string())
            .or_default()
            .push((action.to_string(), tx));
        EventWait {
            rx,
            id: id.to_string(),
            registry: self.clone(),
        }
    }

    /// The effect of event `action` of container `id` is in the state:
    /// wakes whoever waits for it.
    pub fn applied(&self, id: &str, action: &str) {
        let mut waiting = self.lock();
        let Some(list) = waiting.get_mut(id) else {
            return;
        };
        let mut i = 0;
        while i < list.len() {
            if list[i].0 == action {
                let (_, tx) = list.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
        if list.is_empty() {
            waiting.remove(id);
        }
    }

    /// How many waits are registered (for tests).
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One registered wait; dropping it unregisters it.
pub struct EventWait {
    rx: oneshot::Receiver<()>,
    id: String,
    registry: Arc<EventWaiters>,
}

impl EventWait {
    /// Waits for the event at most `limit`; whether it was applied.
    pub async fn wait(mut self, limit: Duration) -> bool {
        matches!(tokio::time::timeout(limit, &mut self.rx).await, Ok(Ok(())))
    }
}

impl Drop for EventWait {
    fn drop(&mut self) {
        self.rx.close();
        let mut waiting = self.registry.lock();
        if let Some(list) = waiting.get_mut(&self.id) {
            list.retain(|(_, tx)| !tx.is_closed());
            if list.is_empty() {
                waiting.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_on_its_event_only_and_unregisters() {
        let waiters = Arc::new(EventWaiters::default());
        let start = waiters.expect("c1", "start");
        let other = waiters.expect("c2", "start");
        assert_eq!(waiters.len(), 2);
        waiters.applied("c1", "die");
        waiters.applied("c3", "start");
        assert_eq!(waiters.len(), 2);
        waiters.applied("c1", "start");
        assert!(start.wait(Duration::from_millis(10)).await);
        // Not applied: times out, and is gone once dropped.
        assert!(!other.wait(Duration::from_millis(10)).await);
        assert!(waiters.is_empty());
        // A wait dropped before its event leaves nothing behind.
        drop(waiters.expect("c4", "stop"));
        assert!(waiters.is_empty());
    }
}
