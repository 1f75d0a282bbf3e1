//! A connection's phase (fresh, sending a head, busy, idle, upgraded) and
//! the deadline it sets: written by its stream (bytes read), its service
//! (requests and answers) and the accept loop (eviction), watched by the
//! connection's task.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opened at this instant; no byte yet.
    Fresh(Instant),
    /// The first byte of a request head came at this instant.
    Head(Instant),
    /// This many requests in flight (read, answer not written to the end).
    Busy(usize),
    /// No request since its last answer ended, at this instant.
    Idle(Instant),
    /// Upgraded (attach, exec): a raw stream now.
    Upgraded,
}

#[derive(Debug)]
struct ActivityState {
    phase: Phase,
    /// Told to close to make room for a new connection.
    evicted: bool,
}

/// A connection's phase, written by its stream (bytes read), its service
/// (requests and answers) and the accept loop (eviction), and watched by
/// its task.
pub(super) struct Activity {
    state: Mutex<ActivityState>,
    pub(super) changed: Notify,
}

impl Activity {
    /// A connection opened now.
    pub(super) fn new() -> Activity {
        Activity {
            state: Mutex::new(ActivityState {
                phase: Phase::Fresh(Instant::now()),
                evicted: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Since when it has waited for a request, if it does (fresh, idle or
    /// sending a head) and is not being closed already.
    pub(super) fn waiting_since(&self) -> Option<Instant> {
        let state = self.lock();
        match state.phase {
            _ if state.evicted => None,
            Phase::Fresh(t) | Phase::Head(t) | Phase::Idle(t) => Some(t),
            Phase::Busy(_) | Phase::Upgraded => None,
        }
    }

    /// Bytes came from the client.
    pub(super) fn read_some(&self) {
        let mut state = self.lock();
        if let Phase::Fresh(_) | Phase::Idle(_) = state.phase {
            state.phase = match state.phase {
                // A fresh connection's clock runs from its opening.
                Phase::Fresh(t) => Phase::Head(t),
                _ => Phase::Head(Instant::now()),
            };
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request's head was read.
    pub(super) fn request_started(&self) {
        let mut state = self.lock();
        state.phase = match state.phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Upgraded => Phase::Upgraded,
            _ => Phase::Busy(1),
        };
        drop(state);
        self.changed.notify_one();
    }

    /// A request's answer was written to the end (or dropped).
    pub(super) fn request_ended(&self) {
        let mut state = self.lock();
        state.phase = match state.phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            Phase::Busy(_) => Phase::Idle(Instant::now()),
            other => other,
        };
        drop(state);
        self.changed.notify_one();
    }

    /// Tells the connection to close, to make room for a new one.
    pub(super) fn evict(&self) {
        self.lock().evicted = true;
        self.changed.notify_one();
    }

    /// Whether it was told to close.
    pub(super) fn is_evicted(&self) -> bool {
        self.lock().evicted
    }

    /// Its request was answered with `101`: a raw stream from now on.
    pub(super) fn upgraded(&self) {
        self.lock().phase = Phase::Upgraded;
        self.changed.notify_one();
    }

    /// Whether it is a raw stream now.
    pub(super) fn is_upgraded(&self) -> bool {
        self.lock().phase == Phase::Upgraded
    }

    /// When the connection is to be closed unless something happens:
    /// `Err` with the reason when that is now.
    pub(super) fn deadline(&self, limits: &Limits) -> Result<Option<Instant>, &'static str> {
        let state = self.lock();
        let deadline = match state.phase {
            Phase::Busy(_) | Phase::Upgraded => return Ok(None),
            _ if state.evicted => return Err("connection cap reached"),
            Phase::Fresh(t) | Phase::Head(t) => t + limits.header_timeout,
            Phase::Idle(t) => t + limits.idle_timeout,
        };
        if deadline <= Instant::now() {
            Err(match state.phase {
                Phase::Idle(_) => "idle timeout",
                _ => "header timeout",
            })
        } else {
            Ok(Some(deadline))
        }
    }
}

/// Marks its request ended when dropped, with the answer's body.
pub(super) struct RequestGuard(pub(super) Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::serve::ConnectionCap;

    #[tokio::test(start_paused = true)]
    async fn phases_and_deadlines() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_size: 1 << 16,
            cap: ConnectionCap::Fixed(4),
        };
        let a = Activity::new();
        let opened = Instant::now();
        assert_eq!(
            a.deadline(&limits),
            Ok(Some(opened + limits.header_timeout))
        );
        // A trickled head keeps the clock of the opening.
        tokio::time::advance(Duration::from_secs(4)).await;
        a.read_some();
        tokio::time::advance(Duration::from_secs(4)).await;
        a.read_some();
        assert_eq!(
            a.deadline(&limits),
            Ok(Some(opened + limits.header_timeout))
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(a.deadline(&limits), Err("header timeout"));
        // A request in flight is never timed, however long it streams.
        a.request_started();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(a.deadline(&limits), Ok(None));
        assert_eq!(a.waiting_since(), None);
        a.request_ended();
        let idle = Instant::now();
        assert_eq!(a.deadline(&limits), Ok(Some(idle + limits.idle_timeout)));
        assert_eq!(a.waiting_since(), Some(idle));
        // The next head has the header timeout from its first byte.
        tokio::time::advance(Duration::from_secs(30)).await;
        a.read_some();
        assert_eq!(
            a.deadline(&limits),
            Ok(Some(Instant::now() + limits.header_timeout))
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(a.deadline(&limits), Err("header timeout"));
        a.request_started();
        a.upgraded();
        a.request_ended();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(a.deadline(&limits), Ok(None));
        assert!(a.is_upgraded());
    }
}
