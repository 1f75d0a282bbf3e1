//! When to build a snapshot: once the entries applied since the last one
//! number at least `snapshot_logs_since_last` and at least half of what
//! the state holds ([`StateMachine::weight`]).
//!
//! A fixed count made a large state snapshot far too often: with 150,000
//! containers, a snapshot every 5,000 entries encoded 100 MB every 1,700
//! creates, stalling commits for the encode each time (create latency max
//! 456 ms) and churning memory. Proportional to the state, a snapshot's
//! cost spreads over as many entries as the state has objects: constant
//! per entry, whatever the size.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::store::{read_state, SharedState};
use crate::{StateMachine, TypeConfig};

/// How long to wait for a snapshot asked for before asking again.
const PATIENCE: Duration = Duration::from_secs(60);

/// Whether a snapshot is due, `applied` entries applied and the last
/// snapshot at `snapshot`, with a state of `weight` objects.
pub(crate) fn due(applied: u64, snapshot: Option<u64>, weight: u64, min_logs: u64) -> bool {
    let since = match snapshot {
        Some(index) => applied.saturating_sub(index),
        // Entries 0..=applied.
        None => applied + 1,
    };
    since >= min_logs.max(weight / 2)
}

/// Watches `raft`'s progress and asks for a snapshot when one is due; ends
/// with the node.
pub(crate) fn spawn<S: StateMachine>(
    raft: openraft::Raft<TypeConfig<S>>,
    state: SharedState<S>,
    min_logs: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        // The snapshot index when one was last asked for, and when.
        let mut asked: Option<(Option<u64>, Instant)> = None;
        while metrics.changed().await.is_ok() {
            let (applied, snapshot) = {
                let m = metrics.borrow_and_update();
                (m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
            };
            let Some(applied) = applied else { continue };
            if asked.is_some_and(|(at, when)| at == snapshot && when.elapsed() < PATIENCE) {
                continue;
            }
            // The weight is read only when the count alone would do.
            if !due(applied, snapshot, 0, min_logs) {
                continue;
            }
            let weight = read_state(&state).state.weight();
            if due(applied, snapshot, weight, min_logs) {
                asked = Some((snapshot, Instant::now()));
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn snapshots_are_due_after_the_count_and_half_the_state() {
        // A small state: the count decides.
        assert!(!due(48, Some(0), 10, 50));
        assert!(due(50, Some(0), 10, 50));
        assert!(due(49, None, 0, 50));
        // A large one: half of it.
        assert!(!due(70_000, Some(0), 150_000, 5_000));
        assert!(due(75_000, Some(0), 150_000, 5_000));
        // A state growing with its log snapshots at doubling indexes.
        assert!(due(100, Some(50), 100, 10));
        assert!(!due(180, Some(100), 180, 10));
        assert!(due(200, Some(100), 200, 10));
    }
}
