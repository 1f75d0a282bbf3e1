//! Rescheduling on node failure, run by the leader.
//!
//! A container created with `reschedule:on-node-failure` has its create
//! body in the state (`SpecRecorded`). When its node turns unhealthy the
//! leader commits `RescheduleStarted` (the intent, keyed by the container's
//! `com.docker.swarm.id`), places and creates a copy elsewhere with the same
//! name, config and labels (the same swarm id included), starts it if the
//! original ran, and commits `RescheduleDone`. Once the copy is in the
//! state, the original leaves it and is remembered as stale; when its node
//! answers again the leader removes it from the node (`StaleRemoved`).
//!
//! Every step is idempotent against the state, so a new leader resumes what
//! an old one left: a copy already in the state is only started; a
//! reservation with the swarm id (an earlier leader's create in flight)
//! sends the leader to that node's engine to look for the copy before it
//! creates one there; only when neither exists is a node chosen. The copy
//! is always created under the original's name on the reserved node, so a
//! create repeated there (after a timeout, or by the next leader while the
//! previous one's create was still in flight) is refused by the engine
//! rather than making a second copy.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::containers::{Change, EngineCreate};
use super::{Manager, ManagerError};
use crate::cluster::{
    Command, Container, ContainerState, NodeHealth, Rescheduling, Reservation, SWARM_ID_LABEL,
};
use crate::scheduler::ContainerSpec;

/// How often the leader looks for work.
const TICK: Duration = Duration::from_millis(250);
/// First pause after a failed attempt; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between attempts for one container.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Containers moved at the same time.
const PARALLEL: usize = 16;

/// Retry bookkeeping of one key (a swarm id, or a stale container).
#[derive(Default)]
struct Backoff {
    next: HashMap<String, (Instant, Duration)>,
}

impl Backoff {
    fn ready(&self, key: &str) -> bool {
        self.next
            .get(key)
            .is_none_or(|(at, _)| Instant::now() >= *at)
    }

    fn failed(&mut self, key: &str) -> Duration {
        let pause = self
            .next
            .get(key)
            .map(|(_, p)| (*p * 2).min(MAX_BACKOFF))
            .unwrap_or(FIRST_BACKOFF);
        self.next
            .insert(key.to_string(), (Instant::now() + pause, pause));
        pause
    }

    fn succeeded(&mut self, key: &str) {
        self.next.remove(key);
    }
}

/// Drives reschedules and stale-copy removals until `cancel` (leadership
/// lost or shutdown).
pub(super) async fn drive(manager: Arc<Manager>, cancel: CancellationToken) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let backoff: Arc<Mutex<Backoff>> = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        for id in to_start(&manager) {
            match manager
                .cluster
                .propose(Command::RescheduleStarted { id: id.clone() })
                .await
            {
                Ok(()) => {
                    tracing::info!(container = %id, "node failed: rescheduling container");
                    publish(&manager, "reschedule", &id, None);
                }
                Err(e) => tracing::debug!(container = %id, error = %e, "reschedule not started"),
            }
        }
        let jobs = work(&manager);
        for job in jobs {
            let key = job.key();
            {
                let mut taken = busy.lock().unwrap_or_else(|e| e.into_inner());
                let ready = backoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .ready(&key);
                if !ready || !taken.insert(key.clone()) {
                    continue;
                }
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let old_id = match &job {
                Job::Move(_, entry) => Some(entry.old_id.clone()),
                Job::Clean { .. } => None,
            };
            let (manager, busy, backoff) = (manager.clone(), busy.clone(), backoff.clone());
            let cancel = cancel.clone();
            tokio::spawn(async move {
                // A step stops with the leadership; the next leader resumes
                // from the state (and the engine, for a create in flight).
                let result = tokio::select! {
                    _ = cancel.cancelled() => return,
                    result = job.run(&manager) => result,
                };
                let mut b = backoff.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(()) => b.succeeded(&key),
                    Err(e) => {
                        let pause = b.failed(&key);
                        tracing::warn!(job = %key, error = %e, retry_in = ?pause, "reschedule step failed");
                        if let Some(old) = old_id {
                            publish(&manager, "reschedule_failed", &old, Some(e.to_string()));
                        }
                    }
                }
                drop(b);
                busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                drop(permit);
            });
        }
    }
}

/// Publishes a reschedule event about container `id` (on its failed node).
fn publish(manager: &Manager, action: &str, id: &str, error: Option<String>) {
    let node = {
        let state = manager.cluster.read();
        state
            .containers
            .get(id)
            .map(|c| (c.node.clone(), c.name.clone()))
    };
    let mut attributes = std::collections::HashMap::new();
    if let Some((_, name)) = &node {
        attributes.insert("name".to_string(), name.clone());
    }
    if let Some(error) = error {
        attributes.insert("error".to_string(), error);
    }
    let node = node.and_then(|(n, _)| manager.node_ref(&n));
    manager
        .events
        .swarm_event("container", action, id, attributes, node.as_ref());
}

/// Containers with a known create body on unhealthy nodes that are not
/// being rescheduled yet.
fn to_start(manager: &Manager) -> Vec<String> {
    let state = manager.cluster.read();
    if state.reschedule_specs.is_empty() {
        return Vec::new();
    }
    state
        .nodes
        .values()
        .filter(|n| n.health == NodeHealth::Unhealthy)
        .flat_map(|n| n.containers.iter())
        .filter_map(|id| state.containers.get(id))
        .filter(|c| {
            c.labels.get(SWARM_ID_LABEL).is_some_and(|s| {
                state.reschedule_specs.contains_key(s) && !state.rescheduling.contains_key(s)
            })
        })
        .map(|c| c.id.clone())
        .collect()
}

/// One unit of work.
enum Job {
    /// Move the container with this swarm id.
    Move(String, Rescheduling),
    /// Remove a stale copy from its node, which answers again.
    Clean { node: String, id: String },
}

impl Job {
    fn key(&self) -> String {
        match self {
            Job::Move(swarm_id, _) => swarm_id.clone(),
            Job::Clean { id, .. } => format!("stale {id}"),
        }
    }

    async fn run(self, manager: &Manager) -> Result<(), ManagerError> {
        match self {
            Job::Move(swarm_id, entry) => move_container(manager, &swarm_id, &entry).await,
            Job::Clean { node, id } => remove_stale(manager, &node, &id).await,
        }
    }
}

/// Everything to do now: reschedules in progress, and stale copies on
/// nodes that are healthy again.
fn work(manager: &Manager) -> Vec<Job> {
    let state = manager.cluster.read();
    let mut jobs: Vec<Job> = state
        .rescheduling
        .iter()
        .map(|(s, r)| Job::Move(s.clone(), r.clone()))
        .collect();
    for (node, ids) in &state.stale {
        if state
            .nodes
            .get(node)
            .is_some_and(|n| n.health == NodeHealth::Healthy)
        {
            jobs.extend(ids.iter().map(|id| Job::Clean {
                node: node.clone(),
                id: id.clone(),
            }));
        }
    }
    jobs
}

/// The copy of `swarm_id` outside the failed node, if the state has one.
fn copy_of(manager: &Manager, swarm_id: &str, entry: &Rescheduling) -> Option<Container> {
    let state = manager.cluster.read();
    let nodes: Vec<String> = state
        .containers
        .label_nodes(SWARM_ID_LABEL, swarm_id)
        .cloned()
        .collect();
    nodes
        .iter()
        .filter_map(|n| state.nodes.get(n))
        .flat_map(|n| n.containers.iter())
        .filter_map(|id| state.containers.get(id))
        .find(|c| c.id != entry.old_id && c.labels.get(SWARM_ID_LABEL) == Some(swarm_id))
        .cloned()
}

/// One step of moving a container; see the module documentation.
async fn move_container(
    manager: &Manager,
    swarm_id: &str,
    entry: &Rescheduling,
) -> Result<(), ManagerError> {
    if let Some(copy) = copy_of(manager, swarm_id, entry) {
        let running = matches!(
            copy.state,
            ContainerState::Running | ContainerState::Restarting
        );
        if entry.was_running && !running {
            start(manager, &copy.node, &copy.id).await?;
        }
        manager
            .cluster
            .propose(Command::RescheduleDone {
                swarm_id: swarm_id.to_string(),
            })
            .await?;
        let node = manager.cluster.read().node_name(&copy.node);
        tracing::info!(container = %entry.old_id, new = %copy.id, %node, "container rescheduled");
        manager.events.swarm_event(
            "container",
            "rescheduled",
            &copy.id,
            [
                ("name".to_string(), copy.name.clone()),
                ("previous".to_string(), entry.old_id.clone()),
            ]
            .into(),
            manager.node_ref(&copy.node).as_ref(),
        );
        return Ok(());
    }
    let (back, pending, spec) = {
        let state = manager.cluster.read();
        let healthy = |node: &str| {
            state
                .nodes
                .get(node)
                .is_some_and(|n| n.health == NodeHealth::Healthy)
        };
        (
            !state.nodes.contains_key(&entry.old_node) || healthy(&entry.old_node),
            state
                .reservations
                .values()
                .find(|r| r.swarm_id.as_deref() == Some(swarm_id))
                .map(|r| (r.clone(), healthy(&r.node))),
            state.reschedule_specs.get(swarm_id).cloned(),
        )
    };
    if back {
        // The node answered again before a copy existed: leave it there.
        if let Some((r, _)) = &pending {
            manager.release(r).await;
        }
        manager
            .cluster
            .propose(Command::RescheduleDone {
                swarm_id: swarm_id.to_string(),
            })
            .await?;
        tracing::info!(container = %entry.old_id, "node is back before the container was moved: left in place");
        return Ok(());
    }
    let Some(spec) = spec else {
        // Nothing to re-create it from (cannot happen: RescheduleStarted
        // requires the body, and it is kept while the reschedule runs).
        manager
            .cluster
            .propose(Command::RescheduleDone {
                swarm_id: swarm_id.to_string(),
            })
            .await?;
        return Ok(());
    };
    let typed: ContainerCreateBody = serde_json::from_str(&spec.body)
        .map_err(|e| ManagerError::Reschedule(format!("stored create body: {e}")))?;
    let reservation = match pending {
        // The node reserved for the copy died too: place it again.
        Some((r, false)) => {
            manager.release(&r).await;
            return Ok(());
        }
        // Ours from an earlier attempt, or an earlier leader's: the copy may
        // exist already (the create reached the engine, its record did not).
        Some((r, true)) => {
            if let Some(id) = find_on_node(manager, &r, swarm_id).await? {
                return manager.refresh_container(&r.node, &id).await;
            }
            r
        }
        None => {
            let placement = ContainerSpec::from_create(Some(&entry.name), &typed)
                .map_err(|e| ManagerError::Reschedule(format!("stored create body: {e}")))?;
            manager.reserve(&placement).await?
        }
    };
    // Always under the original's name, on the reserved node: a create
    // repeated there (after a timeout, or by the next leader) is refused by
    // the engine instead of making a second copy. The reservation is kept
    // on failure for the same reason.
    let path = format!(
        "/containers/create?name={}",
        url::form_urlencoded::byte_serialize(entry.name.as_bytes()).collect::<String>()
    );
    let create = EngineCreate {
        path: &path,
        body: spec.body.clone().into(),
        typed: &typed,
        name: Some(&entry.name),
        headers: Default::default(),
    };
    let id = match manager.create_reserved(&reservation, create).await {
        Ok((id, _)) => id,
        Err(ManagerError::Engine(e)) if e.status() == Some(409) => {
            // The name is taken on that node: by our copy (look again), or
            // by a container the state does not know (place elsewhere).
            if let Some(id) = find_on_node(manager, &reservation, swarm_id).await? {
                return manager.refresh_container(&reservation.node, &id).await;
            }
            manager.release(&reservation).await;
            return Err(e.into());
        }
        Err(e) => return Err(e),
    };
    if entry.was_running {
        start(manager, &reservation.node, &id).await?;
    }
    Ok(())
}

/// Starts container `id` on `node` and records its new state.
async fn start(manager: &Manager, node: &str, id: &str) -> Result<(), ManagerError> {
    let request = hyper::Request::post(format!("/containers/{id}/start"))
        .body(axum::body::Body::empty())
        .map_err(|e| ManagerError::Internal(e.to_string()))?;
    let response = manager
        .change_container(node, id, Change::Start, request)
        .await?;
    match response.status() {
        status if status.is_success() => Ok(()),
        // Already running: the state may not know it yet.
        StatusCode::NOT_MODIFIED => manager.refresh_container(node, id).await,
        status => {
            let engine = manager.engine(node)?;
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Err(engine.status_error(status, &body).into())
        }
    }
}

/// The container carrying `swarm_id` on the reservation's node, if the
/// engine has one.
async fn find_on_node(
    manager: &Manager,
    reservation: &Reservation,
    swarm_id: &str,
) -> Result<Option<String>, ManagerError> {
    let engine = manager.engine(&reservation.node)?;
    let filters = serde_json::json!({ "label": [format!("{SWARM_ID_LABEL}={swarm_id}")] });
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("all", "1")
        .append_pair("filters", &filters.to_string())
        .finish();
    let list: Vec<bollard::models::ContainerSummary> = engine
        .get_json(&format!("/containers/json?{query}"))
        .await?;
    Ok(list.into_iter().find_map(|c| c.id))
}

/// Removes a stale copy from its node (gone already counts as removed).
async fn remove_stale(manager: &Manager, node: &str, id: &str) -> Result<(), ManagerError> {
    let engine = manager.engine(node)?;
    match engine
        .call(
            Method::DELETE,
            &format!("/containers/{id}?force=1&v=0"),
            None,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e.into()),
    }
    manager
        .cluster
        .propose(Command::StaleRemoved {
            node: node.to_string(),
            id: id.to_string(),
        })
        .await?;
    tracing::info!(container = %id, node = %manager.cluster.read().node_name(node), "stale copy of a rescheduled container removed");
    Ok(())
}
