//! One watcher per engine: a refresh loop (info, containers, images) with
//! backoff, and an event loop that keeps containers and images current
//! between refreshes. Failures are counted; after `--engine-failure-retry`
//! failed refreshes in a row the node is marked unhealthy, and the next
//! successful refresh marks it healthy again. A node's return is noticed
//! within about a second, by its event loop, or, for a node that has not
//! answered since its watcher started (down when this manager took the
//! lead), by pinging it while the refresh waits out its backoff.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::EventMessageTypeEnum;
use futures::StreamExt;

use super::events::NodeRef;
use super::{EngineSlot, Manager, ManagerError};
use crate::cluster::{ClusterState, Command, ContainerState, NodeId, SWARM_ID_LABEL};
use crate::engine::EngineError;
use std::sync::atomic::Ordering;

/// Pause before re-subscribing to a broken event stream.
const EVENTS_RETRY: Duration = Duration::from_secs(1);

/// While a node's events are followed without a break, its whole
/// container list is read on one refresh in this many (every 5-10 minutes
/// with the default 30-60 s): the events keep the state current, and the
/// list only catches what they might have missed. Reading it on every
/// refresh cost, at a million containers (200 a node), about 100 µs of
/// CPU per container placed, between the engines' answers and the
/// leader's parsing. A stream that starts or breaks makes the next
/// refresh read it.
pub(super) const FULL_LIST_EVERY: u32 = 10;

/// Which refreshes of one node read its whole container list (see
/// [`FULL_LIST_EVERY`]).
#[derive(Debug)]
pub(super) struct ListTurns {
    /// The next refresh must read it: the event stream started or broke
    /// since the last one, or the last read failed.
    due: std::sync::atomic::AtomicBool,
    /// Refreshes since the last read.
    skipped: std::sync::atomic::AtomicU32,
}

impl Default for ListTurns {
    /// The first refresh reads it.
    fn default() -> Self {
        ListTurns {
            due: std::sync::atomic::AtomicBool::new(true),
            skipped: Default::default(),
        }
    }
}

impl ListTurns {
    /// Whether this refresh reads the list, the node's events being
    /// `followed` or not; counts the refresh.
    pub(super) fn take(&self, followed: bool) -> bool {
        let read = self.due.swap(false, Ordering::Relaxed)
            || !followed
            || self.skipped.load(Ordering::Relaxed) + 1 >= FULL_LIST_EVERY;
        if read {
            self.skipped.store(0, Ordering::Relaxed);
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        read
    }

    /// The next refresh reads the list.
    pub(super) fn make_due(&self) {
        self.due.store(true, Ordering::Relaxed);
    }
}

/// How long a returning engine's event subscription gets to be in place
/// before its refresh starts.
const SUBSCRIBE_GRACE: Duration = Duration::from_millis(100);

pub(super) async fn watch_engine(manager: Arc<Manager>, slot: Arc<EngineSlot>) {
    let mut failures: u32 = 0;
    let mut events: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        match refresh(&manager, &slot).await {
            Ok(node) => {
                if failures >= manager.config.failure_retry {
                    manager.events.swarm_event(
                        "node",
                        "engine_reconnect",
                        &node,
                        Default::default(),
                        manager.node_ref(&node).as_ref(),
                    );
                }
                failures = 0;
                slot.engine.set_error(None);
                if events.as_ref().is_none_or(|h| h.is_finished()) {
                    events = Some(tokio::spawn(follow_events(
                        manager.clone(),
                        slot.clone(),
                        node,
                    )));
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let message = e.to_string();
                tracing::warn!(engine = %slot.engine.addr(), failures, error = %message, "engine refresh failed");
                slot.engine.set_error(Some(message.clone()));
                if let Some(node) = slot.node() {
                    let unhealthy = failures >= manager.config.failure_retry;
                    let _ = manager
                        .cluster
                        .propose(Command::NodeFailed {
                            id: node.clone(),
                            error: message.clone(),
                            unhealthy,
                            at: now(),
                        })
                        .await;
                    if failures == manager.config.failure_retry {
                        manager.events.swarm_event(
                            "node",
                            "engine_disconnect",
                            &node,
                            [("error".to_string(), message)].into(),
                            manager.node_ref(&node).as_ref(),
                        );
                    }
                }
            }
        }
        let pause = next_pause(&manager.config, failures);
        // No event loop yet to notice the engine's return: watch for it here.
        let unfollowed = failures > 0 && events.is_none();
        tokio::select! {
            _ = slot.cancel.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
            _ = slot.wake.notified() => {}
            _ = answers_again(&slot), if unfollowed => {}
        }
    }
    if let Some(handle) = events {
        handle.abort();
    }
}

/// Resolves once the engine answers `_ping`, asked every [`EVENTS_RETRY`].
async fn answers_again(slot: &EngineSlot) {
    loop {
        tokio::time::sleep(EVENTS_RETRY).await;
        if slot
            .engine
            .call(hyper::Method::GET, "/_ping", None)
            .await
            .is_ok()
        {
            return;
        }
    }
}

/// First retry after a failed refresh of a node not yet unhealthy.
const FAILURE_RETRY: Duration = Duration::from_millis(500);

/// Pause before the next refresh: a jittered interval between min and max
/// while healthy. After a failure, quick retries (500 ms, doubling, at most
/// min) until `--engine-failure-retry` failures in a row declare the node
/// unhealthy, so that a dead node is known within seconds; from then on
/// backoff from min up to max.
fn next_pause(config: &super::ManagerConfig, failures: u32) -> Duration {
    let (min, max) = (
        config.refresh_min,
        config.refresh_max.max(config.refresh_min),
    );
    if failures == 0 {
        let spread = max - min;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        min + spread.mul_f64(f64::from(nanos % 1000) / 1000.0)
    } else if failures < config.failure_retry {
        let factor = 2u32.saturating_pow((failures - 1).min(16));
        FAILURE_RETRY.saturating_mul(factor).min(min)
    } else {
        let factor = 2u32.saturating_pow((failures - config.failure_retry).min(16));
        min.saturating_mul(factor).min(max)
    }
}

/// Reads everything about the engine and commits it; returns the node ID.
async fn refresh(manager: &Manager, slot: &EngineSlot) -> Result<NodeId, EngineError> {
    let engine = &slot.engine;
    let info = engine.observe(now()).await?;
    let id = info.id.clone();
    if let Some(old) = slot.node().filter(|old| *old != id) {
        tracing::warn!(engine = %engine.addr(), %old, new = %id, "engine ID changed: a different engine answers at this address");
        let _ = manager
            .cluster
            .propose(Command::NodeRemoved { id: old })
            .await;
    }
    // An engine failure fails the refresh; a refused proposal does not.
    let engine_only = |e: ManagerError| match e {
        ManagerError::Engine(e) => Err(e),
        other => {
            tracing::warn!(error = %other, "refresh not recorded");
            Ok(())
        }
    };
    if !manager.cluster.read().nodes.contains_key(&id) {
        // New: healthy only together with its containers and images.
        if let Err(e) = manager.add_node(info, engine).await {
            engine_only(e)?;
        }
        slot.set_node(Some(id.clone()));
        return Ok(id);
    }
    let _ = manager.cluster.propose(Command::NodeObserved(info)).await;
    slot.set_node(Some(id.clone()));
    if slot.lists.take(slot.following.load(Ordering::Relaxed)) {
        if let Err(e) = manager.refresh_node_containers(&id, engine).await {
            // Read it again next time.
            slot.lists.make_due();
            engine_only(e)?;
            return Ok(id);
        }
    }
    if let Err(e) = manager.refresh_node_images(&id, engine).await {
        engine_only(e)?;
    }
    Ok(id)
}

/// Applies the engine's events until the stream breaks, then asks for a
/// refresh (events may have been missed, or the engine died) and
/// re-subscribes. While the engine does not answer `_ping` it only checks
/// again every second: the refresh loop's own backoff decides when to
/// refresh a node that is down, and the engine's return wakes it at once,
/// so an unhealthy node is healthy again within about a second.
async fn follow_events(manager: Arc<Manager>, slot: Arc<EngineSlot>, node: NodeId) {
    let mut unreachable = false;
    // The engine's time of the last event applied: a new subscription
    // starts there, so events that happen while the stream is down (the
    // engine restarted, or the network dropped) are replayed by the engine
    // instead of lost.
    let mut cursor: Option<i64> = None;
    loop {
        if let Err(e) = slot.engine.call(hyper::Method::GET, "/_ping", None).await {
            if !unreachable {
                tracing::debug!(engine = %slot.engine.addr(), error = %e, "engine does not answer");
            }
            unreachable = true;
            tokio::select! {
                _ = slot.cancel.cancelled() => return,
                _ = tokio::time::sleep(EVENTS_RETRY) => {}
            }
            continue;
        }
        let mut resumed_at = cursor;
        match slot.engine.events(cursor).await {
            Ok(stream) => {
                // The node as its events name it (names do not change),
                // looked up once it is in the state.
                let mut node_ref: Option<Arc<NodeRef>> = None;
                let mut stream = std::pin::pin!(stream.peekable());
                if unreachable {
                    // Back: subscribe first (the first poll sends the
                    // request), then refresh, so that what the refresh
                    // sets off (removing stale copies) shows in the events.
                    let _ = tokio::time::timeout(SUBSCRIBE_GRACE, stream.as_mut().peek()).await;
                    unreachable = false;
                    slot.wake.notify_one();
                }
                // Lists read before now may miss what happened unseen.
                slot.engine.changed();
                slot.lists.make_due();
                slot.following.store(true, Ordering::Relaxed);
                while let Some(event) = stream.next().await {
                    let event = match event {
                        Ok(event) => event,
                        Err(e) => {
                            tracing::debug!(engine = %slot.engine.addr(), error = %e, "event stream broke");
                            break;
                        }
                    };
                    if let Some(at) = event.time_nano {
                        match resumed_at {
                            // Replayed, and applied before the stream broke.
                            Some(seen) if at <= seen => continue,
                            // Past the replay: from here on every event
                            // counts (even if the engine's clock steps back).
                            Some(_) => resumed_at = None,
                            None => {}
                        }
                        cursor = Some(at);
                    }
                    let actor = event
                        .actor
                        .as_ref()
                        .and_then(|a| a.id.clone())
                        .unwrap_or_default();
                    let action = event.action.clone().unwrap_or_default();
                    let typ = event.typ;
                    // Anything but an exec may change what the engine lists.
                    if !action.starts_with("exec_") {
                        slot.engine.changed();
                    }
                    let effect = match typ {
                        Some(EventMessageTypeEnum::CONTAINER) if !actor.is_empty() => {
                            let attributes =
                                event.actor.as_ref().and_then(|a| a.attributes.as_ref());
                            container_effect(
                                &manager.cluster.read(),
                                &node,
                                &actor,
                                &action,
                                attributes,
                            )
                        }
                        Some(EventMessageTypeEnum::IMAGE) => Effect::Images,
                        _ => Effect::Nothing,
                    };
                    if node_ref.is_none() {
                        node_ref = manager.node_ref(&node).map(Arc::new);
                    }
                    if let Some(node) = &node_ref {
                        manager.events.engine_event(event, node.clone());
                    }
                    apply_effect(&manager, &node, &actor, effect).await;
                    if !actor.is_empty() {
                        manager.waiters.applied(&actor, &action);
                    }
                }
                slot.following.store(false, Ordering::Relaxed);
                slot.lists.make_due();
                slot.engine.changed();
            }
            Err(e) => {
                tracing::debug!(engine = %slot.engine.addr(), error = %e, "cannot follow events")
            }
        }
        slot.wake.notify_one();
        tokio::select! {
            _ = slot.cancel.cancelled() => return,
            _ = tokio::time::sleep(EVENTS_RETRY) => {}
        }
    }
}

/// What an engine event changes in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    /// Nothing the state holds (`kill`, `exec_start`, `attach`, ..., or a
    /// `create` the manager records itself).
    Nothing,
    /// The container's run state, read from the event alone.
    State(ContainerState),
    /// Read the container back from the engine (`rename`, `update`, or a
    /// container the state does not know).
    Reread,
    /// The container is gone.
    Removed,
    /// Read the node's images again.
    Images,
}

/// What container event `action` of container `id` on `node` changes, with
/// the event's attributes (the container's labels, `name`, `image`). Run
/// states follow from the event alone: the engine sends `start` once the
/// container runs, `die` once it stopped; events come in the engine's
/// order, so the last one applied is the state. The containers the manager
/// creates are recorded by the create request itself.
fn container_effect(
    state: &ClusterState,
    node: &str,
    id: &str,
    action: &str,
    attributes: Option<&std::collections::HashMap<String, String>>,
) -> Effect {
    if action == "destroy" {
        return Effect::Removed;
    }
    let Some(container) = state.containers.get(id).filter(|c| c.node == node) else {
        // A create of ours in flight: its request records it.
        let swarm_id = attributes.and_then(|a| a.get(SWARM_ID_LABEL));
        if action == "create"
            && swarm_id.is_some_and(|sid| {
                state
                    .reservations
                    .values()
                    .any(|r| r.node == node && r.swarm_id.as_ref() == Some(sid))
            })
        {
            return Effect::Nothing;
        }
        return Effect::Reread;
    };
    let to = |wanted: ContainerState| {
        if container.state == wanted {
            Effect::Nothing
        } else {
            Effect::State(wanted)
        }
    };
    match action {
        // Labels the engine added (the image's) are not in the state yet.
        "create" => {
            let labels_known = attributes.is_none_or(|a| {
                a.iter()
                    .filter(|(k, _)| k.as_str() != "image" && k.as_str() != "name")
                    .all(|(k, v)| container.labels.get(k) == Some(v.as_str()))
            });
            if labels_known {
                Effect::Nothing
            } else {
                Effect::Reread
            }
        }
        "start" | "unpause" | "restart" => to(ContainerState::Running),
        "die" => to(ContainerState::Exited),
        "pause" => to(ContainerState::Paused),
        "rename" | "update" => Effect::Reread,
        _ => Effect::Nothing,
    }
}

/// Commits what an event changed.
async fn apply_effect(manager: &Manager, node: &str, id: &str, effect: Effect) {
    let result = match effect {
        Effect::Nothing => return,
        Effect::State(state) => manager
            .cluster
            .propose(Command::ContainerStateChanged {
                id: id.to_string(),
                node: node.to_string(),
                state,
            })
            .await
            .map_err(ManagerError::from),
        Effect::Reread => manager.refresh_container(node, id).await,
        Effect::Removed => manager
            .cluster
            .propose(Command::ContainerRemoved { id: id.to_string() })
            .await
            .map_err(ManagerError::from),
        Effect::Images => manager.refresh_images(node).await,
    };
    if let Err(e) = result {
        tracing::debug!(container = %id, error = %e, "event not recorded");
    }
}

/// Now, RFC 3339, for observation stamps.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::ManagerConfig;

    #[test]
    fn events_change_the_state_without_reading_the_container_back() {
        use crate::cluster::{Container, NodeInfo, Reservation};
        let mut state = ClusterState::default();
        state
            .apply(Command::NodeObserved(NodeInfo {
                id: "AAAA:1111".into(),
                hostname: "a".into(),
                addr: "tcp://127.0.0.1:2375".into(),
                cpus: 1,
                memory: 1 << 30,
                ..Default::default()
            }))
            .expect("node");
        let node = state.nodes.keys().next().expect("node id").clone();
        let mut container = Container {
            id: "c1".into(),
            node: node.clone(),
            name: "web".into(),
            image: "busybox:local".into(),
            state: ContainerState::Created,
            labels: [("app".to_string(), "web".to_string())].into(),
            resources: None,
            command: String::new(),
            created: 0,
        };
        state
            .apply(Command::ContainerObserved(container.clone()))
            .expect("container");
        let attrs = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ours = attrs(&[("app", "web"), ("image", "busybox:local"), ("name", "web")]);
        let effect = |state: &ClusterState, node: &str, id: &str, action: &str| {
            container_effect(state, node, id, action, Some(&ours))
        };
        // A create the manager recorded itself, with the labels it knows.
        assert_eq!(effect(&state, &node, "c1", "create"), Effect::Nothing);
        // The image added a label: read the container back.
        let more = attrs(&[("app", "web"), ("maintainer", "x"), ("name", "web")]);
        assert_eq!(
            container_effect(&state, &node, "c1", "create", Some(&more)),
            Effect::Reread
        );
        assert_eq!(
            effect(&state, &node, "c1", "start"),
            Effect::State(ContainerState::Running)
        );
        assert_eq!(
            effect(&state, &node, "c1", "pause"),
            Effect::State(ContainerState::Paused)
        );
        container.state = ContainerState::Running;
        state
            .apply(Command::ContainerObserved(container))
            .expect("container");
        assert_eq!(effect(&state, &node, "c1", "start"), Effect::Nothing);
        assert_eq!(
            effect(&state, &node, "c1", "die"),
            Effect::State(ContainerState::Exited)
        );
        for action in [
            "kill",
            "stop",
            "attach",
            "exec_start: sh",
            "health_status: healthy",
        ] {
            assert_eq!(
                effect(&state, &node, "c1", action),
                Effect::Nothing,
                "{action}"
            );
        }
        for action in ["rename", "update"] {
            assert_eq!(
                effect(&state, &node, "c1", action),
                Effect::Reread,
                "{action}"
            );
        }
        assert_eq!(effect(&state, &node, "c1", "destroy"), Effect::Removed);
        // Unknown here: read back, unless it is a create of ours in flight.
        assert_eq!(effect(&state, "other", "c1", "start"), Effect::Reread);
        assert_eq!(effect(&state, &node, "c2", "create"), Effect::Reread);
        state
            .apply(Command::Reserve {
                reservation: Reservation {
                    id: "r1".into(),
                    node: node.clone(),
                    name: Some("db".into()),
                    resources: Default::default(),
                    swarm_id: Some("s1".into()),
                },
                overcommit: Default::default(),
                checks: Default::default(),
            })
            .expect("reserve");
        let in_flight = attrs(&[(SWARM_ID_LABEL, "s1"), ("name", "db")]);
        assert_eq!(
            container_effect(&state, &node, "c2", "create", Some(&in_flight)),
            Effect::Nothing
        );
        assert_eq!(
            container_effect(&state, &node, "c2", "start", Some(&in_flight)),
            Effect::Reread
        );
        // The state change applies once, and only to that node's container.
        let change = |node: &str, state: ContainerState| Command::ContainerStateChanged {
            id: "c1".into(),
            node: node.to_string(),
            state,
        };
        assert!(state.is_noop(&change(&node, ContainerState::Running)));
        assert!(state.is_noop(&change("other", ContainerState::Exited)));
        assert!(!state.is_noop(&change(&node, ContainerState::Exited)));
        state
            .apply(change(&node, ContainerState::Exited))
            .expect("state change");
        assert_eq!(
            state.containers.get("c1").map(|c| c.state),
            Some(ContainerState::Exited)
        );
        assert_eq!(state.containers.node_counts(&node).running, 0);
        assert_eq!(effect(&state, &node, "c1", "die"), Effect::Nothing);
        state
            .apply(change("other", ContainerState::Running))
            .expect("ignored");
        assert_eq!(
            state.containers.get("c1").map(|c| c.state),
            Some(ContainerState::Exited)
        );
    }

    #[test]
    fn pauses_stay_within_bounds_and_back_off() {
        let config = ManagerConfig {
            refresh_min: Duration::from_secs(1),
            refresh_max: Duration::from_secs(8),
            ..Default::default()
        };
        let healthy = next_pause(&config, 0);
        assert!(healthy >= Duration::from_secs(1) && healthy <= Duration::from_secs(8));
        // Quick retries until the third failure (failure_retry = 3)...
        assert_eq!(next_pause(&config, 1), Duration::from_millis(500));
        assert_eq!(next_pause(&config, 2), Duration::from_secs(1));
        // ... then backoff from min to max.
        assert_eq!(next_pause(&config, 3), Duration::from_secs(1));
        assert_eq!(next_pause(&config, 4), Duration::from_secs(2));
        assert_eq!(next_pause(&config, 5), Duration::from_secs(4));
        assert_eq!(next_pause(&config, 10), Duration::from_secs(8));
        assert_eq!(next_pause(&config, u32::MAX), Duration::from_secs(8));
        // Quick retries never exceed min.
        let slow = ManagerConfig {
            refresh_min: Duration::from_millis(200),
            failure_retry: 5,
            ..config
        };
        assert_eq!(next_pause(&slow, 3), Duration::from_millis(200));
    }

    #[test]
    fn a_followed_nodes_list_is_read_one_refresh_in_ten() {
        let turns = ListTurns::default();
        // The first refresh reads it, followed or not.
        assert!(turns.take(true));
        let reads = |turns: &ListTurns, n| (0..n).filter(|_| turns.take(true)).count();
        // Followed: one in FULL_LIST_EVERY.
        assert_eq!(reads(&turns, FULL_LIST_EVERY * 3), 3);
        // Not followed: every one.
        assert!((0..5).all(|_| turns.take(false)));
        // A stream that started or broke: the next one, then the count
        // starts again.
        assert!(!turns.take(true));
        turns.make_due();
        assert!(turns.take(true));
        assert!(!turns.take(true));
        assert_eq!(reads(&turns, FULL_LIST_EVERY - 2), 0);
        assert!(turns.take(true), "the tenth after the last read");
    }
}
