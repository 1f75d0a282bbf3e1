//! The manager: keeps the cluster state in step with the engines and does
//! what the API asks of the cluster (placement, lookups, bookkeeping).
//!
//! It owns one watcher per discovered engine (see `watch.rs`) and the
//! [`Cluster`] they report into. The API layer asks it to resolve container
//! references, to reserve a node for a create, and to refresh what a proxied
//! request changed.

mod build;
mod containers;
pub mod digest;
mod disk;
pub mod events;
mod fanout;
mod follow;
mod image_nodes;
mod images;
mod membership;
pub mod networks;
mod pull;
mod reschedule;
mod tokens;
pub mod volumes;
pub mod waiters;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::{
    ApplyError, Cluster, Command, Container, LookupError, NodeHealth, NodeId, ProposeError,
    Reservation,
};
use crate::engine::{Engine, EngineError};
use crate::scheduler::{self, ContainerSpec, Unschedulable};
use crate::upstream::BadAddr;

pub use build::BuildRequest;
pub use containers::{Change, CreateRequest, EngineAnswer};
pub use disk::{container_name, NodeFailure, Prune, Pruned};
pub use images::CommitRequest;
pub use membership::MemberRole;

/// Placement attempts before a create gives up under contention.
const RESERVE_ATTEMPTS: usize = 16;

/// How often a dynamic discovery (a file) is re-read.
const DISCOVERY_POLL: Duration = Duration::from_secs(1);

/// Tunables of `swarm manage`.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Placement: strategy, enabled filters, overcommit.
    pub placement: scheduler::Options,
    /// Shortest pause between two refreshes of an engine.
    pub refresh_min: Duration,
    /// Longest pause between two refreshes of an engine.
    pub refresh_max: Duration,
    /// Failed refreshes in a row after which a node is unhealthy.
    pub failure_retry: u32,
    /// How long a node's container list may be served again (`docker ps`).
    pub list_cache: Duration,
    /// TLS toward engines at TCP addresses (`--engine-tls`); `None`:
    /// plain HTTP.
    pub engine_tls: Option<Arc<rustls::ClientConfig>>,
    /// TLS toward the other managers' APIs (a follower forwarding to the
    /// leader), showing this manager's certificate; `None`: plain HTTP.
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// TLS to a key-value store discovery (`--discovery-opt kv.*`).
    pub kv_tls: Option<crate::discovery::etcd::KvTls>,
    /// Other nodes a create that failed on its node is tried on
    /// (`--cluster-opt swarm.createretry`).
    pub create_retry: u32,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            placement: scheduler::Options::default(),
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(60),
            failure_retry: 3,
            list_cache: Duration::from_secs(2),
            engine_tls: None,
            peer_tls: None,
            kv_tls: None,
            create_retry: 0,
        }
    }
}

/// Why a cluster-level operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The container reference did not resolve.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// No node can take the container.
    #[error(transparent)]
    Unschedulable(#[from] Unschedulable),
    /// The change was refused or could not be replicated.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// An engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The node has no connected engine.
    #[error("node {0} has no engine connection")]
    NoEngine(String),
    /// No node is healthy to do what was asked (the words after "to").
    #[error("no healthy node to {0}")]
    NoHealthyNode(String),
    /// A container cannot be re-created from what the state holds.
    #[error("cannot reschedule: {0}")]
    Reschedule(String),
    /// The request is malformed (a create body, a placement rule).
    #[error("{0}")]
    InvalidRequest(String),
    /// Something that cannot happen did (an engine answered nonsense).
    #[error("{0}")]
    Internal(String),
    /// No node knows the exec instance.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// No manager has the ID.
    #[error("no manager with id {0}")]
    NoSuchManager(u64),
    /// Raft refused a membership change.
    #[error("{0}")]
    Membership(String),
    /// No such object (a network, a volume, a node): Docker's 404.
    #[error("{0}")]
    NotFound(String),
    /// A reference names several objects; the message names them.
    #[error("{0}")]
    Ambiguous(String),
    /// The object exists already, or is in use: Docker's 409.
    #[error("{0}")]
    Conflict(String),
}

/// One discovered engine with its watcher.
pub struct EngineSlot {
    /// The engine.
    pub engine: Arc<Engine>,
    node: Mutex<Option<NodeId>>,
    wake: Notify,
    cancel: CancellationToken,
    /// Whether its event stream is open (changes show in the state through
    /// the events).
    following: AtomicBool,
    /// Which refreshes read the whole container list.
    lists: watch::ListTurns,
}

impl EngineSlot {
    /// The node this engine turned out to be, once it answered.
    pub fn node(&self) -> Option<NodeId> {
        self.node.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether this engine is node `id` (without copying the ID).
    fn is_node(&self, id: &str) -> bool {
        self.node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(id)
    }

    fn set_node(&self, id: Option<NodeId>) {
        *self.node.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }
}

/// A placement counted in [`Manager`]'s `in_flight` until dropped (its
/// reservation applied or refused).
struct OnItsWay<'a> {
    in_flight: &'a Mutex<scheduler::InFlight>,
    node: NodeId,
    resources: &'a crate::cluster::Resources,
}

impl Drop for OnItsWay<'_> {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.node, self.resources);
    }
}

/// The cluster manager.
pub struct Manager {
    /// The replicated state: read by anyone through [`Manager::state`],
    /// changed only by the manager's own commands.
    cluster: Cluster,
    /// Tunables.
    pub config: ManagerConfig,
    /// The cluster's event stream.
    pub events: events::EventHub,
    engines: RwLock<BTreeMap<String, Arc<EngineSlot>>>,
    /// Node ID → its engine slot, filled by [`Manager::engine`] and checked
    /// on every use: a slot that left discovery is cancelled, and one that
    /// now answers as another node fails `is_node`.
    by_node: RwLock<HashMap<NodeId, std::sync::Weak<EngineSlot>>>,
    execs: Mutex<HashMap<String, NodeId>>,
    /// Requests waiting for an engine event to be applied.
    waiters: Arc<waiters::EventWaiters>,
    reservation_seq: AtomicU64,
    /// Placements whose reservations are being proposed: the next
    /// placements rank nodes as if they were in the state already.
    in_flight: Mutex<scheduler::InFlight>,
    /// This manager itself, for background tasks.
    me: std::sync::Weak<Manager>,
    /// Each node's networks as last listed whole: what a node that stopped
    /// answering held, so that placement can say a network is on it.
    known_networks: Mutex<HashMap<NodeId, Vec<networks::NodeNetwork>>>,
}

impl Manager {
    /// A manager over the replicated `cluster`, with no engines yet.
    pub fn new(config: ManagerConfig, cluster: Cluster) -> Arc<Manager> {
        Arc::new_cyclic(|me| Manager {
            cluster,
            config,
            events: events::EventHub::default(),
            engines: RwLock::new(BTreeMap::new()),
            by_node: RwLock::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            waiters: Default::default(),
            // Microseconds since the epoch: a restarted manager never
            // reuses the numbers of its previous run.
            reservation_seq: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(1),
            ),
            in_flight: Mutex::default(),
            me: me.clone(),
            known_networks: Mutex::default(),
        })
    }

    /// A read view of the cluster state. Do not hold it across an `.await`.
    pub fn state(&self) -> swarm_raft::StateGuard<'_, crate::cluster::ClusterState> {
        self.cluster.read()
    }

    /// The engine at a discovery address: over TLS when the manager has
    /// an engine TLS configuration and the address is a TCP one.
    fn engine_at(&self, addr: &str) -> Result<Engine, BadAddr> {
        let tls = match &self.config.engine_tls {
            Some(tls) if !addr.starts_with("unix://") => Some(tls),
            _ => None,
        };
        Engine::connecting(addr, tls)
    }

    /// Makes the watched engines exactly `addrs`; nodes of engines that
    /// left (or that the state remembers at addresses no longer listed)
    /// are removed from the state.
    pub async fn set_engines(self: &Arc<Self>, addrs: &[String], cancel: &CancellationToken) {
        let mut removed = std::collections::BTreeSet::new();
        // (engine address, node ID) of every node, read once (not once per
        // engine), in ID order; the first node at an address wins a lookup.
        let known_nodes: Vec<(String, NodeId)> = self
            .cluster
            .read()
            .nodes
            .values()
            .map(|n| (n.info.addr.clone(), n.info.id.clone()))
            .collect();
        let mut by_addr: HashMap<&str, &NodeId> = HashMap::with_capacity(known_nodes.len());
        for (addr, id) in &known_nodes {
            by_addr.entry(addr.as_str()).or_insert(id);
        }
        {
            let mut engines = self.engines.write().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<String> = engines
                .keys()
                .filter(|a| !addrs.contains(a))
                .cloned()
                .collect();
            for addr in gone {
                if let Some(slot) = engines.remove(&addr) {
                    slot.cancel.cancel();
                    if let Some(node) = slot.node() {
                        tracing::info!(%addr, %node, "engine left discovery");
                        removed.insert(node);
                    }
                }
            }
            for addr in addrs {
                if engines.contains_key(addr) {
                    continue;
                }
                let engine = match self.engine_at(addr) {
                    Ok(engine) => engine,
                    Err(BadAddr(a)) => {
                        tracing::warn!(addr = %a, "skipping invalid engine address");
                        continue;
                    }
                };
                // A manager taking over knows the node from the replicated
                // state already: requests are served before the first refresh.
                let known = by_addr
                    .get(engine.addr().to_string().as_str())
                    .map(|id| (*id).clone());
                let slot = Arc::new(EngineSlot {
                    engine: Arc::new(engine),
                    node: Mutex::new(known),
                    wake: Notify::new(),
                    cancel: cancel.child_token(),
                    following: AtomicBool::new(false),
                    lists: watch::ListTurns::default(),
                });
                engines.insert(addr.clone(), slot.clone());
                tracing::info!(%addr, "engine joined discovery");
                tokio::spawn(watch::watch_engine(self.clone(), slot));
            }
            let listed: std::collections::HashSet<String> = engines
                .values()
                .map(|s| s.engine.addr().to_string())
                .collect();
            removed.extend(
                known_nodes
                    .iter()
                    .filter(|(addr, _)| !listed.contains(addr))
                    .map(|(_, id)| id.clone()),
            );
        }
        for node in removed {
            if let Err(e) = self
                .cluster
                .propose(Command::NodeRemoved { id: node })
                .await
            {
                tracing::warn!(error = %e, "cannot remove a node that left discovery");
            }
        }
    }

    /// The leader's duties, until `cancel` (leadership lost or shutdown):
    /// follow discovery and watch every engine, and release the
    /// reservations inherited from a previous leader once the engines have
    /// been read (a create it had in flight either produced a container,
    /// which the refresh accounts for by its swarm id, or nothing).
    pub async fn lead(self: Arc<Self>, discovery_url: String, cancel: CancellationToken) {
        // Reservations of reschedules in progress belong to the rescheduler.
        let inherited: Vec<String> = {
            let state = self.cluster.read();
            state
                .reservations
                .values()
                .filter(|r| {
                    r.swarm_id
                        .as_ref()
                        .is_none_or(|s| !state.rescheduling.contains_key(s))
                })
                .map(|r| r.id.clone())
                .collect()
        };
        if !inherited.is_empty() {
            self.release_after_refresh(inherited, Some(cancel.clone()));
        }
        tokio::spawn(reschedule::drive(self.clone(), cancel.clone()));
        tokio::spawn(self.clone().promote_while_leading(cancel.clone()));
        tokio::spawn(self.clone().run_discovery(discovery_url, cancel.clone()));
        cancel.cancelled().await;
        self.stop_engines();
    }

    /// Stops every engine watcher and forgets the engines, without touching
    /// the state (a manager that stops leading).
    pub fn stop_engines(&self) {
        let mut engines = self.engines.write().unwrap_or_else(|e| e.into_inner());
        for slot in engines.values() {
            slot.cancel.cancel();
        }
        engines.clear();
    }

    /// Node `id` as events name it.
    pub fn node_ref(&self, id: &str) -> Option<events::NodeRef> {
        let state = self.cluster.read();
        state.nodes.get(id).map(|n| events::NodeRef {
            name: n.name.clone(),
            id: n.info.id.clone(),
            addr: n
                .info
                .addr
                .strip_prefix("tcp://")
                .unwrap_or(&n.info.addr)
                .to_string(),
            ip: n.ip(),
        })
    }

    /// Every watched engine, by discovery address.
    pub fn engine_slots(&self) -> Vec<(String, Arc<EngineSlot>)> {
        self.engines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(a, s)| (a.clone(), s.clone()))
            .collect()
    }

    /// The engine of node `id`.
    pub fn engine(&self, id: &str) -> Result<Arc<Engine>, ManagerError> {
        self.slot(id).map(|slot| slot.engine.clone())
    }

    /// Whether node `id`'s events are followed now, so that a change made
    /// there shows in the state once its event is applied.
    pub fn follows_events(&self, id: &str) -> bool {
        self.slot(id)
            .is_ok_and(|slot| slot.following.load(Ordering::Relaxed))
    }

    fn slot(&self, id: &str) -> Result<Arc<EngineSlot>, ManagerError> {
        let known = self
            .by_node
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .and_then(std::sync::Weak::upgrade);
        if let Some(slot) = known.filter(|s| !s.cancel.is_cancelled() && s.is_node(id)) {
            return Ok(slot);
        }
        // Every request to a node asks this: scan the slots only once per node.
        let found = self
            .engines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|s| s.is_node(id))
            .cloned();
        let mut by_node = self.by_node.write().unwrap_or_else(|e| e.into_inner());
        match found {
            Some(slot) => {
                by_node.insert(id.to_string(), Arc::downgrade(&slot));
                Ok(slot)
            }
            None => {
                by_node.remove(id);
                drop(by_node);
                Err(ManagerError::NoEngine(self.cluster.read().node_name(id)))
            }
        }
    }

    /// The healthy node named `name` (or with that ID); 404 when there is
    /// none, an error saying so when it is unhealthy.
    pub fn node_named(&self, name: &str) -> Result<NodeId, ManagerError> {
        let state = self.cluster.read();
        let node = state
            .node_by_name(name)
            .ok_or_else(|| ManagerError::NotFound(format!("node {name} not found")))?;
        if node.health != NodeHealth::Healthy {
            return Err(ManagerError::InvalidRequest(format!(
                "node {name} is unhealthy"
            )));
        }
        Ok(node.info.id.clone())
    }

    /// The names of the nodes that are not healthy.
    pub fn unhealthy_nodes(&self) -> Vec<String> {
        self.cluster
            .read()
            .nodes
            .values()
            .filter(|n| n.health != NodeHealth::Healthy)
            .map(|n| n.name.clone())
            .collect()
    }

    /// A node for an object that is not a container (a network): placed as
    /// a container without resources would be, honouring the constraints
    /// in its `labels` (`com.docker.swarm.constraints`).
    pub async fn place_object(&self, labels: &serde_json::Value) -> Result<NodeId, ManagerError> {
        let body: bollard::models::ContainerCreateBody =
            serde_json::from_value(serde_json::json!({ "Labels": labels }))
                .map_err(|e| ManagerError::InvalidRequest(format!("labels: {e}")))?;
        let spec = ContainerSpec::from_create(None, &body)
            .map_err(|e| ManagerError::InvalidRequest(e.to_string()))?;
        let seed = self.reservation_seq.fetch_add(1, Ordering::Relaxed);
        Ok(scheduler::place(
            &self.cluster.read(),
            &spec,
            &self.config.placement,
            seed,
        )?)
    }

    /// Healthy nodes with their engines, in node-ID order.
    pub fn healthy_engines(&self) -> Vec<(NodeId, Arc<Engine>)> {
        let ids: Vec<NodeId> = self
            .cluster
            .read()
            .nodes
            .values()
            .filter(|n| n.health == NodeHealth::Healthy)
            .map(|n| n.info.id.clone())
            .collect();
        // One pass over the slots (not one per node): `docker ps` asks this.
        let mut by_node: HashMap<NodeId, Arc<Engine>> = self
            .engines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|s| s.node().map(|n| (n, s.engine.clone())))
            .collect();
        ids.into_iter()
            .filter_map(|id| by_node.remove(&id).map(|e| (id, e)))
            .collect()
    }

    /// Finds a container and its engine. On a miss, re-reads every engine's
    /// container list once (the container may be seconds old) and tries again.
    pub async fn resolve(&self, reference: &str) -> Result<(Container, Arc<Engine>), ManagerError> {
        let found = self.cluster.read().resolve_container(reference).cloned();
        let container = match found {
            Ok(c) => c,
            Err(LookupError::NotFound(_)) => {
                self.refresh_all_containers().await;
                self.cluster.read().resolve_container(reference).cloned()?
            }
            Err(e) => return Err(e.into()),
        };
        let engine = self.engine(&container.node)?;
        Ok((container, engine))
    }

    /// Refuses a call to a container whose node is not healthy, with
    /// classic's words, instead of the engine's connection error.
    pub fn on_healthy_node(&self, container: &Container) -> Result<(), ManagerError> {
        let state = self.cluster.read();
        match state.nodes.get(&container.node) {
            Some(node) if node.health == NodeHealth::Healthy => Ok(()),
            _ => Err(ManagerError::Internal(format!(
                "container {} running on unhealthy node {}",
                container.id,
                state.node_name(&container.node)
            ))),
        }
    }

    /// Where `docker rm --link PARENT/ALIAS` goes: the parent container,
    /// its engine, and the engine's path for the link
    /// (`/containers/PARENT/ALIAS`, the parent by its name there).
    pub async fn link_target(
        &self,
        reference: &str,
    ) -> Result<(Container, Arc<Engine>, String), ManagerError> {
        let (parent, alias) = reference
            .trim_start_matches('/')
            .rsplit_once('/')
            .ok_or_else(|| {
                ManagerError::InvalidRequest(format!(
                    "invalid link {reference}: expected PARENT/ALIAS"
                ))
            })?;
        let (container, engine) = self.resolve(parent).await?;
        let target = format!("/containers/{}/{alias}", container.name);
        Ok((container, engine, target))
    }

    /// Re-reads the container lists of all healthy nodes.
    pub async fn refresh_all_containers(&self) {
        let jobs = self
            .healthy_engines()
            .into_iter()
            .map(|(node, engine)| async move {
                if let Err(e) = self.refresh_node_containers(&node, &engine).await {
                    tracing::debug!(error = %e, "container refresh failed");
                }
            });
        futures::future::join_all(jobs).await;
    }

    /// Re-reads a node's full container list. Containers never seen in full
    /// are inspected for their resources. A list overtaken by a newer
    /// single-container change is dropped (the change is newer).
    pub async fn refresh_node_containers(
        &self,
        node: &str,
        engine: &Engine,
    ) -> Result<(), ManagerError> {
        let (containers, version) = self.read_node_containers(node, engine).await?;
        match self
            .cluster
            .propose(Command::ContainersObserved {
                node: node.to_string(),
                containers,
                version,
            })
            .await
        {
            Ok(()) | Err(ProposeError::Refused(ApplyError::Stale(_))) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Node `node`'s full container list from `engine` (containers never
    /// seen in full inspected for their resources), with the node's
    /// version when the list was requested.
    async fn read_node_containers(
        &self,
        node: &str,
        engine: &Engine,
    ) -> Result<(Vec<Container>, u64), ManagerError> {
        let version = self
            .cluster
            .read()
            .nodes
            .get(node)
            .map(|n| n.version)
            .unwrap_or(0);
        let mut containers = engine.containers(node).await?;
        let unknown: Vec<String> = {
            let state = self.cluster.read();
            containers
                .iter()
                .filter(|c| {
                    state
                        .containers
                        .get(&c.id)
                        .is_none_or(|k| k.resources.is_none())
                })
                .map(|c| c.id.clone())
                .collect()
        };
        for id in unknown {
            if let Some(full) = engine.container(node, &id).await? {
                if let Some(slot) = containers.iter_mut().find(|c| c.id == id) {
                    *slot = full;
                }
            }
        }
        Ok((containers, version))
    }

    /// Records an engine new to the state (`info`) with its containers and
    /// images, read first and committed with it in one command: the node
    /// is not Healthy, and so not a candidate for placement, while its
    /// containers' reservations and its images are unknown. (Swarm classic
    /// also loads an engine fully before adding it.)
    pub(super) async fn add_node(
        &self,
        info: crate::cluster::NodeInfo,
        engine: &Engine,
    ) -> Result<(), ManagerError> {
        let ((containers, version), images) =
            futures::future::try_join(self.read_node_containers(&info.id, engine), async {
                engine.images().await.map_err(ManagerError::from)
            })
            .await?;
        self.cluster
            .propose(Command::NodeJoined {
                info,
                containers,
                version,
                images,
            })
            .await?;
        Ok(())
    }

    /// Re-reads one container after a request changed it.
    pub async fn refresh_container(&self, node: &str, id: &str) -> Result<(), ManagerError> {
        let engine = self.engine(node)?;
        match engine.container(node, id).await? {
            Some(container) => {
                self.cluster
                    .propose(Command::ContainerObserved(container))
                    .await?
            }
            None => {
                self.cluster
                    .propose(Command::ContainerRemoved { id: id.to_string() })
                    .await?
            }
        }
        Ok(())
    }

    /// Re-reads the images of one node.
    pub async fn refresh_images(&self, node: &str) -> Result<(), ManagerError> {
        let engine = self.engine(node)?;
        self.refresh_node_images(node, &engine).await
    }

    /// Re-reads the images of node `node` from `engine`.
    pub async fn refresh_node_images(
        &self,
        node: &str,
        engine: &Engine,
    ) -> Result<(), ManagerError> {
        let images = engine.images().await?;
        self.cluster
            .propose(Command::ImagesObserved {
                node: node.to_string(),
                images,
            })
            .await?;
        Ok(())
    }

    /// Picks a node for `spec` and reserves it (name and resources) in the
    /// state: placement runs on a snapshot, `apply()` re-checks against the
    /// latest state, and a refused reservation is retried on a fresh
    /// snapshot. Release it with [`Manager::release`] or turn it into the
    /// container with [`Manager::created`].
    async fn reserve(&self, spec: &ContainerSpec) -> Result<Reservation, ManagerError> {
        let mut last = None;
        for _ in 0..RESERVE_ATTEMPTS {
            let seq = self.reservation_seq.fetch_add(1, Ordering::Relaxed);
            let seed = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0),
                );
            // Placed and counted in one step: concurrent placements see it.
            let node = {
                let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                let node = scheduler::place_with(
                    &self.cluster.read(),
                    spec,
                    &self.config.placement,
                    seed,
                    &in_flight,
                )?;
                in_flight.add(&node, &spec.resources);
                node
            };
            let _on_its_way = OnItsWay {
                in_flight: &self.in_flight,
                node: node.clone(),
                resources: &spec.resources,
            };
            let reservation = Reservation {
                // Unique across managers: a new leader must not collide
                // with reservations its predecessor left in the state.
                id: format!("reservation-{}-{seq}", self.cluster.id()),
                node,
                name: spec.name.clone(),
                resources: spec.resources.clone(),
                swarm_id: spec.swarm_id.clone(),
            };
            match self
                .cluster
                .propose(Command::Reserve {
                    reservation: reservation.clone(),
                    overcommit: self.config.placement.overcommit,
                    checks: self.config.placement.checks(),
                })
                .await
            {
                Ok(()) => return Ok(reservation),
                Err(e @ ProposeError::Refused(ApplyError::NameInUse { .. })) => {
                    return Err(e.into())
                }
                Err(ProposeError::Refused(e)) => {
                    tracing::debug!(error = %e, "reservation refused; placing again");
                    last = Some(ProposeError::Refused(e));
                }
                Err(e) => {
                    // Not acknowledged, yet it may still commit later (e.g.
                    // when the quorum returns): release it then.
                    self.release_later(reservation.id.clone());
                    return Err(e.into());
                }
            }
        }
        Err(last
            .map(ManagerError::from)
            .unwrap_or_else(|| ManagerError::NoEngine("no node".into())))
    }

    /// Records a created container in place of its reservation.
    async fn created(
        &self,
        reservation: &Reservation,
        container: crate::cluster::Container,
    ) -> Result<(), ManagerError> {
        self.cluster
            .propose(Command::ContainerCreated {
                reservation: reservation.id.clone(),
                container,
            })
            .await?;
        Ok(())
    }

    /// Reads container `id`, just created for `reservation`, back from its
    /// engine and records it in place of the reservation. Failures are only
    /// logged: the container exists whatever happens here, and the next
    /// refresh accounts for it by its swarm id.
    pub(super) async fn record_created(&self, reservation: &Reservation, id: &str) {
        let engine = match self.engine(&reservation.node) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot read the created container back");
                return;
            }
        };
        match engine.container(&reservation.node, id).await {
            Ok(Some(container)) => {
                if let Err(e) = self.created(reservation, container).await {
                    tracing::warn!(container = %id, error = %e, "cannot record the created container");
                }
            }
            Ok(None) => tracing::warn!(container = %id, "created container vanished at once"),
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot read the created container back")
            }
        }
    }

    /// Drops a reservation.
    async fn release(&self, reservation: &Reservation) {
        if self
            .cluster
            .propose(Command::Release {
                id: reservation.id.clone(),
            })
            .await
            .is_err()
        {
            self.release_later(reservation.id.clone());
        }
    }

    /// Releases reservations `ids` once the engines had a refresh
    /// interval to show a container made for one (which ends it first),
    /// while this manager leads and until `cancel` (its lead ended).
    fn release_after_refresh(&self, ids: Vec<String>, cancel: Option<CancellationToken>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let cancel = cancel.unwrap_or_default();
        let grace = self.config.refresh_max + Duration::from_secs(5);
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(grace) => {}
            }
            for id in ids {
                if cancel.is_cancelled() || !me.cluster.is_leader() {
                    return;
                }
                // Refused when the reservation ended already.
                let _ = me.cluster.propose(Command::Release { id }).await;
            }
        });
    }

    /// Keeps proposing `Release` of a reservation in the background while
    /// this manager leads (a few tries): a proposal that timed out may still
    /// commit, and its reservation must not hold a name and resources forever.
    fn release_later(&self, id: String) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if !me.cluster.is_leader() {
                    return; // the next leader drops what it inherits
                }
                match me
                    .cluster
                    .propose(Command::Release { id: id.clone() })
                    .await
                {
                    Ok(()) | Err(ProposeError::Refused(_)) => return,
                    Err(e) => tracing::debug!(error = %e, %id, "release not committed yet"),
                }
            }
        });
    }

    /// Sends `request`, an exec create, to the engine of the container on
    /// `node`, and remembers the node of the exec instance it made. The
    /// engine's whole answer is returned.
    pub async fn create_exec(
        &self,
        node: &str,
        request: hyper::Request<axum::body::Body>,
    ) -> Result<hyper::Response<bytes::Bytes>, ManagerError> {
        let answer = self.engine(node)?.exchange(request).await?;
        if answer.status().is_success() {
            if let Some(id) = serde_json::from_slice::<serde_json::Value>(answer.body())
                .ok()
                .and_then(|v| v.get("Id")?.as_str().map(str::to_string))
            {
                self.record_exec(&id, node);
            }
        }
        Ok(answer)
    }

    /// The engine of exec instance `exec_id`: the node it was created on
    /// through this manager, else the first healthy node that knows it
    /// (asked `GET {prefix}/exec/{exec_id}/json`).
    pub async fn resolve_exec(
        &self,
        exec_id: &str,
        prefix: &str,
    ) -> Result<Arc<Engine>, ManagerError> {
        let known = self
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .cloned();
        if let Some(node) = known {
            return self.engine(&node);
        }
        let path = format!("{prefix}/exec/{exec_id}/json");
        for (node, engine) in self.healthy_engines() {
            let Ok(request) = hyper::Request::get(&path).body(axum::body::Body::empty()) else {
                break;
            };
            if let Ok(answer) = engine.exchange(request).await {
                if answer.status().is_success() {
                    self.record_exec(exec_id, &node);
                    return Ok(engine);
                }
            }
        }
        Err(ManagerError::NoSuchExec(exec_id.to_string()))
    }

    /// Remembers which node an exec instance lives on.
    fn record_exec(&self, exec_id: &str, node: &str) {
        let mut execs = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        // Exec instances are short-lived; keep the table bounded.
        if execs.len() > 100_000 {
            execs.clear();
        }
        execs.insert(exec_id.to_string(), node.to_string());
    }
}
