//! `ClusterState`, its `Command`s and the deterministic `apply`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::nodes::Nodes;
use super::table::ContainerTable;

/// A node's identity: its engine's ID (`docker info` → `ID`).
pub type NodeId = String;

/// Whether a node is usable for placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeHealth {
    /// Answers its refreshes.
    Healthy,
    /// Failed `--engine-failure-retry` refreshes in a row.
    Unhealthy,
}

impl std::fmt::Display for NodeHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeHealth::Healthy => "Healthy",
            NodeHealth::Unhealthy => "Unhealthy",
        })
    }
}

/// What an engine says about itself (`docker info`), as observed by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeInfo {
    /// Engine ID.
    pub id: NodeId,
    /// Engine host name (`Name`); two engines may share one.
    pub hostname: String,
    /// The address the manager reaches the engine at (`tcp://..` or `unix://..`).
    pub addr: String,
    /// Number of CPUs (`NCPU`).
    pub cpus: i64,
    /// Memory in bytes (`MemTotal`).
    pub memory: i64,
    /// Engine labels (`--label k=v`).
    pub labels: BTreeMap<String, String>,
    /// `OperatingSystem`.
    pub operating_system: String,
    /// `OSType`.
    pub os_type: String,
    /// `Architecture`.
    pub architecture: String,
    /// `KernelVersion`.
    pub kernel_version: String,
    /// Storage `Driver`.
    pub storage_driver: String,
    /// `ServerVersion`.
    pub server_version: String,
    /// Highest API version the engine speaks (`/version` → `ApiVersion`).
    pub api_version: String,
    /// When this observation was made (RFC 3339), stamped by the observer.
    pub observed_at: String,
}

/// An image present on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// `sha256:...` image ID.
    pub id: String,
    /// `repo:tag` names.
    pub tags: Vec<String>,
}

/// A node: an engine in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The latest observation of the engine.
    pub info: NodeInfo,
    /// Name unique in the cluster: the host name, with a short ID suffix when
    /// another node already uses that host name.
    pub name: String,
    /// Health as last observed.
    pub health: NodeHealth,
    /// The last refresh error, cleared by a successful refresh.
    pub error: Option<String>,
    /// When the last refresh (successful or not) was recorded.
    pub updated_at: String,
    /// Images on the node.
    pub images: Vec<ImageRef>,
    /// IDs of the node's containers (an index over `ClusterState::containers`).
    pub containers: BTreeSet<String>,
    /// What the node's containers and reservations hold, kept current by `apply`.
    pub usage: Usage,
    /// Bumped by every single-container change on the node; a full
    /// container list observed at an older version is stale and refused.
    pub version: u64,
    /// The `containerslots=N` engine label, parsed when the node is observed.
    pub slots: Option<usize>,
    /// Normalized `repo:tag` names of `images` (`busybox` → `busybox:latest`)
    /// with their `name_hash`, sorted and without duplicates: placement
    /// probes the hashes and compares a string only on a hit.
    pub image_names: Vec<(u64, String)>,
}

fn parse_slots(info: &NodeInfo) -> Option<usize> {
    info.labels
        .get("containerslots")
        .and_then(|v| v.trim().parse().ok())
}

/// What is held on a node by its containers and the creates in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Reserved CPU in thousandths of a CPU.
    pub cpus_milli: u64,
    /// Reserved memory in bytes.
    pub memory: i64,
    /// Containers plus reservations.
    pub containers: usize,
    /// Bound host ports.
    pub ports: Vec<HostPort>,
    /// How full the node is without overcommit, in basis points: reserved
    /// CPU × 10000 / CPUs + reserved memory × 10000 / memory. Overcommit
    /// scales every node alike, so rankings can use this as it is.
    pub fullness_bp: u64,
}

impl Usage {
    /// One more container or reservation, holding `resources` (`None`: a
    /// container whose resources are not known counts, and holds nothing).
    fn add(&mut self, resources: Option<&Resources>) {
        self.containers += 1;
        if let Some(r) = resources {
            self.cpus_milli += r.cpus_milli;
            self.memory += r.memory.max(0);
            for port in &r.ports {
                let at = self.ports.partition_point(|p| p < port);
                self.ports.insert(at, port.clone());
            }
        }
    }

    /// Takes back what [`Usage::add`] counted for the same `resources`.
    fn remove(&mut self, resources: Option<&Resources>) {
        self.containers = self.containers.saturating_sub(1);
        if let Some(r) = resources {
            self.cpus_milli = self.cpus_milli.saturating_sub(r.cpus_milli);
            self.memory -= r.memory.max(0);
            for port in &r.ports {
                if let Some(at) = self.ports.iter().position(|p| p == port) {
                    self.ports.remove(at);
                }
            }
        }
    }
}

/// `used × 10000 / capacity` (0 for a node without that capacity).
pub fn basis_points(used: u64, capacity: u64) -> u64 {
    used.saturating_mul(10_000)
        .checked_div(capacity)
        .unwrap_or(0)
}

/// Why a node cannot take a container's resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Unfit {
    /// Not enough unreserved memory.
    #[error("{free} of free memory, {requested} requested")]
    Memory {
        /// Free memory (human-readable).
        free: String,
        /// Requested memory (human-readable).
        requested: String,
    },
    /// Not enough unreserved CPU.
    #[error("{free} free CPUs, {requested} requested")]
    Cpu {
        /// Free CPUs.
        free: String,
        /// Requested CPUs.
        requested: String,
    },
    /// A requested host port is bound already.
    #[error("port {0} already in use")]
    Port(HostPort),
    /// The node's `containerslots` label is reached.
    #[error("all {0} container slots are taken")]
    Slots(usize),
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Parses `tcp`, `udp`, `sctp` (empty means tcp).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// A host port a container binds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostPort {
    /// Host IP; empty, `0.0.0.0` or `::` mean every address.
    pub ip: String,
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

impl HostPort {
    fn all_addresses(&self) -> bool {
        matches!(self.ip.as_str(), "" | "0.0.0.0" | "::" | "[::]")
    }

    /// Whether both cannot be bound on one host at once.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.proto == other.proto
            && (self.all_addresses() || other.all_addresses() || self.ip == other.ip)
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        };
        if self.all_addresses() {
            write!(f, "{}/{proto}", self.port)
        } else {
            write!(f, "{}:{}/{proto}", self.ip, self.port)
        }
    }
}

/// What a container reserves on its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in thousandths (`-c N` counts N CPUs as in classic; `--cpus 1.5` is 1500).
    pub cpus_milli: u64,
    /// Memory in bytes (`-m`).
    pub memory: i64,
    /// Host ports (`-p`, and exposed ports under `--net=host`).
    pub ports: Vec<HostPort>,
}

/// Which optional checks a reservation gets (CPU and memory always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    /// Host ports must be free (the `port` filter).
    pub ports: bool,
    /// `containerslots` must not be reached (the `containerslots` filter).
    pub slots: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            ports: true,
            slots: true,
        }
    }
}

/// Overcommit in parts per million of capacity (`swarm.overcommit=0.05` is 50 000).
pub type OvercommitPpm = u32;

/// `1.5 GiB`-style sizes, as classic printed them.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", bytes.max(0))
    } else {
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text} {}", UNITS[unit])
    }
}

/// Thousandths of a CPU as a decimal (`1500` → `1.5`).
pub fn human_cpus(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        let text = format!("{:.3}", milli as f64 / 1000.0);
        text.trim_end_matches('0').to_string()
    }
}

impl Node {
    /// Recomputes `usage.fullness_bp` from the usage and the capacity.
    fn refresh_fullness(&mut self) {
        self.usage.fullness_bp = self.fullness_bp(&self.usage);
    }

    /// How full `usage` makes this node (see [`Usage::fullness_bp`]).
    fn fullness_bp(&self, usage: &Usage) -> u64 {
        basis_points(usage.cpus_milli, self.cpu_capacity_milli(0))
            + basis_points(usage.memory.max(0) as u64, self.memory_capacity(0) as u64)
    }

    /// CPU capacity in thousandths, overcommit included.
    pub fn cpu_capacity_milli(&self, overcommit: OvercommitPpm) -> u64 {
        let base = self.info.cpus.max(0) as u64 * 1000;
        base + base.saturating_mul(u64::from(overcommit)) / 1_000_000
    }

    /// Memory capacity in bytes, overcommit included.
    pub fn memory_capacity(&self, overcommit: OvercommitPpm) -> i64 {
        // Exact for memories below 16 EiB / overcommit-ppm, i.e. any real host.
        let base = self.info.memory.max(0) as u64;
        let extra = base.saturating_mul(u64::from(overcommit)) / 1_000_000;
        i64::try_from(base.saturating_add(extra)).unwrap_or(i64::MAX)
    }

    /// The `containerslots=N` engine label, when set to a number.
    pub fn container_slots(&self) -> Option<usize> {
        self.slots
    }

    /// Whether `resources` fit on the node next to what it holds already.
    pub fn fits(&self, resources: &Resources, overcommit: OvercommitPpm) -> Result<(), Unfit> {
        self.fits_checking(resources, overcommit, Checks::default())
    }

    /// [`Node::fits`], with the port and slot checks as `checks` says
    /// (they follow the `port` and `containerslots` filters).
    pub fn fits_checking(
        &self,
        resources: &Resources,
        overcommit: OvercommitPpm,
        checks: Checks,
    ) -> Result<(), Unfit> {
        if resources.memory > 0 {
            let capacity = self.memory_capacity(overcommit);
            if self.usage.memory + resources.memory > capacity {
                return Err(Unfit::Memory {
                    free: human_bytes(capacity - self.usage.memory),
                    requested: human_bytes(resources.memory),
                });
            }
        }
        if resources.cpus_milli > 0 {
            let capacity = self.cpu_capacity_milli(overcommit);
            if self.usage.cpus_milli + resources.cpus_milli > capacity {
                return Err(Unfit::Cpu {
                    free: human_cpus(capacity.saturating_sub(self.usage.cpus_milli)),
                    requested: human_cpus(resources.cpus_milli),
                });
            }
        }
        if let Some(port) = self
            .port_conflict(&resources.ports)
            .filter(|_| checks.ports)
        {
            return Err(Unfit::Port(port.clone()));
        }
        if let Some(slots) = self.container_slots().filter(|_| checks.slots) {
            if self.usage.containers >= slots {
                return Err(Unfit::Slots(slots));
            }
        }
        Ok(())
    }

    /// The first of `ports` already bound on the node.
    pub fn port_conflict<'a>(&self, ports: &'a [HostPort]) -> Option<&'a HostPort> {
        ports
            .iter()
            .find(|p| self.usage.ports.iter().any(|used| used.conflicts(p)))
    }
    /// The node ID.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Whether the node holds `reference` (a name such as `busybox`,
    /// `busybox:local`, `docker.io/library/busybox:1`, or an image ID or ID prefix).
    pub fn has_image(&self, reference: &str) -> bool {
        self.has_image_query(&ImageQuery::new(reference))
    }

    /// [`Node::has_image`] for a reference prepared once (placement asks every node).
    pub fn has_image_query(&self, query: &ImageQuery) -> bool {
        self.names_hashed(query.hash)
            .any(|name| name == query.normalized)
            || self.has_image_id(query)
    }

    /// [`Node::has_image_query`] up to name hashes: true when a name of the
    /// node has the reference's hash (almost surely the same name), or an
    /// image ID starts with the reference. Never false when `has_image_query`
    /// is true.
    pub fn may_have_image(&self, query: &ImageQuery) -> bool {
        self.names_hashed(query.hash).next().is_some() || self.has_image_id(query)
    }

    /// The node's normalized image names whose `name_hash` is `hash`.
    fn names_hashed(&self, hash: u64) -> impl Iterator<Item = &str> + '_ {
        let first = self.image_names.partition_point(|(h, _)| *h < hash);
        self.image_names[first..]
            .iter()
            .take_while(move |(h, _)| *h == hash)
            .map(|(_, name)| name.as_str())
    }

    /// Whether an image ID of the node starts with the query's ID prefix.
    fn has_image_id(&self, query: &ImageQuery) -> bool {
        query.id_prefix.as_deref().is_some_and(|prefix| {
            self.images
                .iter()
                .any(|image| image.id.trim_start_matches("sha256:").starts_with(prefix))
        })
    }

    /// The address part used as the node's IP in inspect answers.
    pub fn ip(&self) -> String {
        let addr = self.info.addr.trim_start_matches("tcp://");
        if addr.starts_with("unix://") {
            return "127.0.0.1".to_string();
        }
        match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_matches(['[', ']']).to_string(),
            None => addr.to_string(),
        }
    }
}

/// An image reference prepared for matching against many nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageQuery {
    /// `normalize_image_name(reference)`.
    pub normalized: String,
    /// The bare hex digits when the reference can be an image ID (prefix).
    pub id_prefix: Option<String>,
    /// `name_hash(normalized)`.
    pub hash: u64,
}

/// A stable 64-bit hash of a name (FNV-1a): the same on every replica and run.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ImageQuery {
    /// Prepares `reference`.
    pub fn new(reference: &str) -> Self {
        let bare = reference.trim().trim_start_matches("sha256:");
        let normalized = normalize_image_name(reference.trim());
        ImageQuery {
            hash: name_hash(&normalized),
            normalized,
            id_prefix: (bare.len() >= 4 && bare.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| bare.to_string()),
        }
    }
}

/// Whether `image` answers to `reference`.
pub fn image_matches(image: &ImageRef, reference: &str) -> bool {
    let reference = reference.trim();
    if reference.is_empty() {
        return false;
    }
    let bare_id = image.id.trim_start_matches("sha256:");
    let bare_ref = reference.trim_start_matches("sha256:");
    if bare_ref.len() >= 4
        && bare_ref.chars().all(|c| c.is_ascii_hexdigit())
        && bare_id.starts_with(bare_ref)
    {
        return true;
    }
    let wanted = normalize_image_name(reference);
    image
        .tags
        .iter()
        .any(|tag| normalize_image_name(tag) == wanted)
}

/// `busybox` → `busybox:latest`; `docker.io/library/x:1` → `x:1`.
pub fn normalize_image_name(name: &str) -> String {
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .or_else(|| name.strip_prefix("library/"))
        .unwrap_or(name);
    if name.contains('@') {
        return name.to_string();
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Run state of a container, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting.
    Restarting,
    /// Exited.
    Exited,
    /// Being removed.
    Removing,
    /// Dead.
    Dead,
}

impl ContainerState {
    /// Parses the engine's state word (`running`, `exited`, ...).
    pub fn parse(word: &str) -> ContainerState {
        match word {
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "exited" => ContainerState::Exited,
            "removing" => ContainerState::Removing,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Created,
        }
    }
}

/// A container on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Full container ID.
    pub id: String,
    /// Node it lives on.
    pub node: NodeId,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as given at create.
    pub image: String,
    /// Run state.
    pub state: ContainerState,
    /// Labels, including `com.docker.swarm.id` for containers swarm created.
    pub labels: BTreeMap<String, String>,
    /// What it reserves; `None` while only its list entry was seen.
    pub resources: Option<Resources>,
}

/// A create in flight: holds a name (and later resources) on a node until
/// the container exists or the create failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Unique reservation ID chosen by the proposer.
    pub id: String,
    /// Node the container is being created on.
    pub node: NodeId,
    /// Requested container name, if any.
    pub name: Option<String>,
    /// What the container will hold.
    pub resources: Resources,
    /// The `com.docker.swarm.id` label the container is created with: once a
    /// container carrying it is observed, it holds the resources instead.
    pub swarm_id: Option<String>,
}

/// Label carrying the swarm-unique id of every container swarm creates.
pub const SWARM_ID_LABEL: &str = "com.docker.swarm.id";

/// A change to the cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// An engine answered a refresh: upsert the node, mark it healthy.
    NodeObserved(NodeInfo),
    /// A refresh of a known node failed.
    NodeFailed {
        /// The node.
        id: NodeId,
        /// The error message.
        error: String,
        /// Whether the failure count reached the limit: the node turns unhealthy.
        unhealthy: bool,
        /// When (RFC 3339).
        at: String,
    },
    /// The node left discovery.
    NodeRemoved {
        /// The node.
        id: NodeId,
    },
    /// Full container list of a node: replaces what was known of that node,
    /// unless a single-container change came in after the list was taken.
    ContainersObserved {
        /// The node.
        node: NodeId,
        /// All its containers. Entries without resources keep those already known.
        containers: Vec<Container>,
        /// The node's `version` when the list was requested.
        version: u64,
    },
    /// A create finished: the container replaces its reservation, atomically.
    ContainerCreated {
        /// The reservation made for it.
        reservation: String,
        /// The container as the engine reports it.
        container: Container,
    },
    /// One container was created or changed.
    ContainerObserved(Container),
    /// A container's engine reported a change of run state (an event: `start`,
    /// `die`, `pause`, ...): only its state changes. Ignored for a container
    /// the state does not hold on that node.
    ContainerStateChanged {
        /// Container ID.
        id: String,
        /// Node the event came from.
        node: NodeId,
        /// The new run state.
        state: ContainerState,
    },
    /// One container is gone.
    ContainerRemoved {
        /// Container ID.
        id: String,
    },
    /// Full image list of a node.
    ImagesObserved {
        /// The node.
        node: NodeId,
        /// Its images.
        images: Vec<ImageRef>,
    },
    /// Hold a name and resources on a node for a create in flight; refused
    /// when the node cannot take them any more (checked against this very
    /// state, so concurrent placements never over-commit).
    Reserve {
        /// The reservation.
        reservation: Reservation,
        /// Overcommit allowed, in parts per million of capacity.
        overcommit: OvercommitPpm,
        /// Port and slot checks, as the manager's enabled filters say.
        checks: Checks,
    },
    /// Drop a reservation (create done or failed).
    Release {
        /// Reservation ID.
        id: String,
    },
    /// Keep the create body of a container that asked to be rescheduled on
    /// node failure (recorded before the create reaches its engine).
    SpecRecorded {
        /// The container's `com.docker.swarm.id`.
        swarm_id: String,
        /// The create body as sent to the engine (JSON).
        body: String,
        /// The container's name, if it has one.
        name: Option<String>,
    },
    /// Start moving a container off its failed node: refused unless the
    /// node is unhealthy and the container's create body is known; a no-op
    /// when already started.
    RescheduleStarted {
        /// The container's ID on the failed node.
        id: String,
    },
    /// A reschedule is over (its copy runs elsewhere, or it was given up
    /// because the node came back first).
    RescheduleDone {
        /// The container's `com.docker.swarm.id`.
        swarm_id: String,
    },
    /// A copy left on a failed node by a reschedule was removed from it.
    StaleRemoved {
        /// The node.
        node: NodeId,
        /// The container ID there.
        id: String,
    },
    /// An engine new to the state, with what it holds, in one step: the
    /// node turns healthy (a candidate for placement) only together with
    /// its containers (and their reservations) and its images.
    /// `NodeObserved`, then `ContainersObserved` (skipped if stale), then
    /// `ImagesObserved`.
    NodeJoined {
        /// The engine's observation.
        info: NodeInfo,
        /// All its containers.
        containers: Vec<Container>,
        /// The node's `version` when the list was requested (0 if it was
        /// not in the state then).
        version: u64,
        /// Its images.
        images: Vec<ImageRef>,
    },
}

/// What a container with the `on-node-failure` policy is re-created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescheduleSpec {
    /// The create body as sent to the engine (JSON).
    pub body: String,
    /// The container's name, if it has one.
    pub name: Option<String>,
}

/// A reschedule in progress: the container being moved off a failed node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rescheduling {
    /// Its ID on the failed node.
    pub old_id: String,
    /// The failed node.
    pub old_node: NodeId,
    /// Whether it ran there (then its copy is started too).
    pub was_running: bool,
    /// Its name: the copy gets the same one, which also makes re-trying a
    /// create on one node safe (the engine refuses a second container with
    /// that name).
    pub name: String,
}

/// Why a command was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    /// The node is not in the cluster.
    #[error("no such node: {0}")]
    UnknownNode(NodeId),
    /// The node cannot take new containers.
    #[error("node {0} is not healthy")]
    NodeUnhealthy(String),
    /// A container or a create in flight already holds the name.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name.
        name: String,
        /// ID of the container (or reservation) that holds it.
        holder: String,
    },
    /// A reservation with that ID exists.
    #[error("reservation {0} exists")]
    DuplicateReservation(String),
    /// The node cannot take the reservation's resources.
    #[error("node {node}: {reason}")]
    Unfit {
        /// Node name.
        node: String,
        /// Why.
        reason: Unfit,
    },
    /// A full container list was taken before a newer single change.
    #[error("stale container list for node {0}")]
    Stale(NodeId),
    /// A reschedule was asked for a container that cannot be rescheduled.
    #[error("container {id} cannot be rescheduled: {why}")]
    NotReschedulable {
        /// The container.
        id: String,
        /// Why.
        why: String,
    },
}

/// Why a container reference did not resolve to one container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Nothing matches.
    #[error("No such container: {0}")]
    NotFound(String),
    /// Several containers match.
    #[error("{0}")]
    Ambiguous(String),
}

/// Everything the managers agree on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Nodes by ID (with the summaries placement reads).
    pub nodes: Nodes,
    /// Containers by ID (and by name).
    pub containers: ContainerTable,
    /// Creates in flight by reservation ID.
    pub reservations: BTreeMap<String, Reservation>,
    /// Create bodies of containers with the `on-node-failure` policy, by
    /// swarm id.
    pub reschedule_specs: BTreeMap<String, RescheduleSpec>,
    /// Reschedules in progress, by swarm id.
    pub rescheduling: BTreeMap<String, Rescheduling>,
    /// Copies left on failed nodes by reschedules, removed from the node
    /// when it answers again: node → container IDs. Observations of the
    /// node never bring them back into the state.
    pub stale: BTreeMap<NodeId, BTreeSet<String>>,
}

impl ClusterState {
    /// Applies one command. Validation happens before any write, so a
    /// refused command leaves the state untouched.
    pub fn apply(&mut self, command: Command) -> Result<(), ApplyError> {
        let result = self.apply_command(command);
        debug_assert_eq!(self.usage_drift(), Vec::<NodeId>::new(), "usage drifted");
        debug_assert!(!self.nodes.summary_drift(), "node summaries drifted");
        result
    }

    fn apply_command(&mut self, command: Command) -> Result<(), ApplyError> {
        match command {
            Command::NodeJoined {
                info,
                containers,
                version,
                images,
            } => {
                let node = info.id.clone();
                self.apply_command(Command::NodeObserved(info))?;
                match self.apply_command(Command::ContainersObserved {
                    node: node.clone(),
                    containers,
                    version,
                }) {
                    Ok(()) | Err(ApplyError::Stale(_)) => {}
                    Err(e) => return Err(e),
                }
                self.apply_command(Command::ImagesObserved { node, images })
            }
            Command::NodeObserved(info) => {
                let at = info.observed_at.clone();
                let id = info.id.clone();
                if self.nodes.contains_key(&info.id) {
                    if let Some(mut node) = self.nodes.get_mut(&info.id) {
                        node.slots = parse_slots(&info);
                        node.info = info;
                        node.health = NodeHealth::Healthy;
                        node.error = None;
                        node.updated_at = at;
                    }
                } else {
                    let name = self.unique_node_name(&info.hostname, &info.id);
                    self.nodes.insert(
                        info.id.clone(),
                        Node {
                            slots: parse_slots(&info),
                            image_names: Vec::new(),
                            info,
                            name,
                            health: NodeHealth::Healthy,
                            error: None,
                            updated_at: at,
                            images: Vec::new(),
                            containers: BTreeSet::new(),
                            usage: Usage::default(),
                            version: 0,
                        },
                    );
                }
                self.recompute_usage(&id);
                Ok(())
            }
            Command::NodeFailed {
                id,
                error,
                unhealthy,
                at,
            } => {
                let mut node = self.nodes.get_mut(&id).ok_or(ApplyError::UnknownNode(id))?;
                node.error = Some(error);
                node.updated_at = at;
                if unhealthy {
                    node.health = NodeHealth::Unhealthy;
                }
                Ok(())
            }
            Command::NodeRemoved { id } => {
                if let Some(node) = self.nodes.remove(&id) {
                    for container in node.containers {
                        self.containers.remove(&container);
                    }
                }
                self.reservations.retain(|_, r| r.node != id);
                self.stale.remove(&id);
                Ok(())
            }
            Command::ContainersObserved {
                node,
                containers,
                version,
            } => {
                let entry = self
                    .nodes
                    .get(&node)
                    .ok_or_else(|| ApplyError::UnknownNode(node.clone()))?;
                if entry.version != version {
                    return Err(ApplyError::Stale(node));
                }
                let mut known: BTreeMap<String, Container> = entry
                    .containers
                    .iter()
                    .filter_map(|id| self.containers.remove(id))
                    .map(|c| (c.id.clone(), c))
                    .collect();
                let mut ids = BTreeSet::new();
                for mut container in containers {
                    if self.is_stale(&node, &container.id) {
                        continue;
                    }
                    container.node = node.clone();
                    if container.resources.is_none() {
                        container.resources = known.remove(&container.id).and_then(|c| c.resources);
                    }
                    ids.insert(container.id.clone());
                    let moved = container
                        .labels
                        .get(SWARM_ID_LABEL)
                        .filter(|s| self.rescheduling.contains_key(*s))
                        .map(|s| (s.clone(), container.id.clone()));
                    if let Some(old) = self.containers.insert(container) {
                        // The same ID was on another node: it is here now.
                        self.detach(&old);
                    }
                    if let Some((swarm_id, id)) = moved {
                        self.retire_rescheduled(&swarm_id, &id);
                    }
                }
                if let Some(mut entry) = self.nodes.get_mut(&node) {
                    entry.containers = ids;
                }
                self.recompute_usage(&node);
                Ok(())
            }
            Command::ContainerObserved(container) => {
                if !self.nodes.contains_key(&container.node) {
                    return Err(ApplyError::UnknownNode(container.node));
                }
                if self.is_stale(&container.node, &container.id) {
                    return Ok(());
                }
                self.upsert_container(container);
                Ok(())
            }
            Command::ContainerStateChanged { id, node, state } => {
                // What it holds does not depend on its state: usage stays.
                let here = self.containers.get(&id).is_some_and(|c| c.node == node);
                if here && !self.is_stale(&node, &id) && self.containers.set_state(&id, state) {
                    if let Some(mut n) = self.nodes.get_mut(&node) {
                        n.version += 1;
                    }
                }
                Ok(())
            }
            Command::ContainerCreated {
                reservation,
                container,
            } => {
                if !self.nodes.contains_key(&container.node) {
                    return Err(ApplyError::UnknownNode(container.node));
                }
                if let Some(r) = self.reservations.remove(&reservation) {
                    self.charge(&r.node, Some(&r.resources), false);
                }
                self.upsert_container(container);
                Ok(())
            }
            Command::ContainerRemoved { id } => {
                if let Some(container) = self.containers.remove(&id) {
                    self.detach(&container);
                    if let Some(swarm_id) = container.labels.get(SWARM_ID_LABEL) {
                        self.forget_spec_if_unused(swarm_id);
                    }
                }
                for ids in self.stale.values_mut() {
                    ids.remove(&id);
                }
                self.stale.retain(|_, ids| !ids.is_empty());
                Ok(())
            }
            Command::ImagesObserved { node, images } => {
                let mut entry = self
                    .nodes
                    .get_mut(&node)
                    .ok_or(ApplyError::UnknownNode(node))?;
                let mut names: Vec<(u64, String)> = images
                    .iter()
                    .flat_map(|i| i.tags.iter())
                    .map(|t| {
                        let name = normalize_image_name(t);
                        (name_hash(&name), name)
                    })
                    .collect();
                names.sort_unstable();
                names.dedup();
                entry.image_names = names;
                entry.images = images;
                Ok(())
            }
            Command::Reserve {
                reservation,
                overcommit,
                checks,
            } => {
                if self.reservations.contains_key(&reservation.id) {
                    return Err(ApplyError::DuplicateReservation(reservation.id));
                }
                let node = self
                    .nodes
                    .get(&reservation.node)
                    .ok_or_else(|| ApplyError::UnknownNode(reservation.node.clone()))?;
                if node.health != NodeHealth::Healthy {
                    return Err(ApplyError::NodeUnhealthy(node.name.clone()));
                }
                if let Some(name) = &reservation.name {
                    let replaced = reservation
                        .swarm_id
                        .as_ref()
                        .and_then(|s| self.rescheduling.get(s))
                        .map(|r| r.old_id.as_str());
                    if let Some(holder) = self.name_holder_except(name, replaced) {
                        return Err(ApplyError::NameInUse {
                            name: name.clone(),
                            holder,
                        });
                    }
                }
                node.fits_checking(&reservation.resources, overcommit, checks)
                    .map_err(|reason| ApplyError::Unfit {
                        node: node.name.clone(),
                        reason,
                    })?;
                self.charge(&reservation.node, Some(&reservation.resources), true);
                self.reservations
                    .insert(reservation.id.clone(), reservation);
                Ok(())
            }
            Command::Release { id } => {
                if let Some(r) = self.reservations.remove(&id) {
                    self.charge(&r.node, Some(&r.resources), false);
                    if let Some(swarm_id) = &r.swarm_id {
                        self.forget_spec_if_unused(swarm_id);
                    }
                }
                Ok(())
            }
            Command::SpecRecorded {
                swarm_id,
                body,
                name,
            } => {
                self.reschedule_specs
                    .insert(swarm_id, RescheduleSpec { body, name });
                Ok(())
            }
            Command::RescheduleStarted { id } => {
                let refuse = |why: &str| ApplyError::NotReschedulable {
                    id: id.clone(),
                    why: why.to_string(),
                };
                let container = self
                    .containers
                    .get(&id)
                    .ok_or_else(|| refuse("no such container"))?;
                let swarm_id = container
                    .labels
                    .get(SWARM_ID_LABEL)
                    .ok_or_else(|| refuse("not created through swarm"))?;
                if self.rescheduling.contains_key(swarm_id) {
                    return Ok(());
                }
                if !self.reschedule_specs.contains_key(swarm_id) {
                    return Err(refuse("its create body is not known"));
                }
                let healthy = self
                    .nodes
                    .get(&container.node)
                    .is_some_and(|n| n.health == NodeHealth::Healthy);
                if healthy {
                    return Err(refuse("its node is healthy"));
                }
                let entry = Rescheduling {
                    old_id: container.id.clone(),
                    old_node: container.node.clone(),
                    name: container.name.clone(),
                    was_running: matches!(
                        container.state,
                        ContainerState::Running | ContainerState::Restarting
                    ),
                };
                self.rescheduling.insert(swarm_id.clone(), entry);
                Ok(())
            }
            Command::RescheduleDone { swarm_id } => {
                self.rescheduling.remove(&swarm_id);
                Ok(())
            }
            Command::StaleRemoved { node, id } => {
                if let Some(ids) = self.stale.get_mut(&node) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.stale.remove(&node);
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether container `id` on `node` is a copy a reschedule left behind.
    pub fn is_stale(&self, node: &str, id: &str) -> bool {
        self.stale.get(node).is_some_and(|ids| ids.contains(id))
    }

    /// Drops the create body kept for `swarm_id` once no container,
    /// reservation or reschedule refers to it any more.
    fn forget_spec_if_unused(&mut self, swarm_id: &str) {
        if !self.reschedule_specs.contains_key(swarm_id) || self.rescheduling.contains_key(swarm_id)
        {
            return;
        }
        let used = self
            .containers
            .label_nodes(SWARM_ID_LABEL, swarm_id)
            .next()
            .is_some()
            || self
                .reservations
                .values()
                .any(|r| r.swarm_id.as_deref() == Some(swarm_id));
        if !used {
            self.reschedule_specs.remove(swarm_id);
        }
    }

    /// The copy of a rescheduled container now lives on `new_node`: the
    /// one left on the failed node leaves the state and is remembered as
    /// stale, to be removed from the node when it answers again.
    fn retire_rescheduled(&mut self, swarm_id: &str, new_id: &str) {
        let Some(entry) = self.rescheduling.get(swarm_id) else {
            return;
        };
        if entry.old_id == new_id {
            return;
        }
        let (old_id, old_node) = (entry.old_id.clone(), entry.old_node.clone());
        if let Some(old) = self.containers.remove(&old_id) {
            self.detach(&old);
        }
        if self.nodes.contains_key(&old_node) {
            self.stale.entry(old_node).or_default().insert(old_id);
        }
    }

    /// Inserts or replaces one container, keeping indexes and usage current.
    /// A reservation made for it (same swarm id) ends here: the container
    /// holds its name and resources from now on, never both at once.
    fn upsert_container(&mut self, container: Container) {
        let node = container.node.clone();
        if let Some(swarm_id) = container.labels.get(SWARM_ID_LABEL) {
            let swarm_id = swarm_id.clone();
            self.retire_rescheduled(&swarm_id, &container.id);
            let done: Vec<String> = self
                .reservations
                .values()
                .filter(|r| r.swarm_id.as_deref() == Some(swarm_id.as_str()))
                .map(|r| r.id.clone())
                .collect();
            for id in done {
                if let Some(r) = self.reservations.remove(&id) {
                    self.charge(&r.node, Some(&r.resources), false);
                }
            }
        }
        if let Some(old) = self.containers.remove(&container.id) {
            if old.node == node {
                // Still indexed on the node, whose version moves below.
                self.charge(&old.node, old.resources.as_ref(), false);
            } else {
                self.detach(&old);
            }
        }
        if let Some(mut n) = self.nodes.get_mut(&node) {
            n.containers.insert(container.id.clone());
            n.version += 1;
        }
        self.charge(&node, container.resources.as_ref(), true);
        self.containers.insert(container);
    }

    /// Takes `old`, just removed from the container table, off its node:
    /// the node's index, version and usage.
    fn detach(&mut self, old: &Container) {
        if let Some(mut n) = self.nodes.get_mut(&old.node) {
            n.containers.remove(&old.id);
            n.version += 1;
        }
        self.charge(&old.node, old.resources.as_ref(), false);
    }

    /// Recomputes what a node holds from its containers and reservations.
    fn recompute_usage(&mut self, node: &str) {
        if let Some(usage) = self.computed_usage(node) {
            if let Some(mut entry) = self.nodes.get_mut(node) {
                entry.usage = usage;
            }
        }
    }

    /// What `node` holds, counted from its containers and reservations.
    fn computed_usage(&self, node: &str) -> Option<Usage> {
        let entry = self.nodes.get(node)?;
        let mut usage = Usage::default();
        let reservations = self.reservations.values().filter(|r| r.node == node);
        let resources = entry
            .containers
            .iter()
            .filter_map(|id| self.containers.get(id))
            .map(|c| c.resources.as_ref())
            .chain(reservations.map(|r| Some(&r.resources)));
        for r in resources {
            usage.add(r);
        }
        usage.fullness_bp = entry.fullness_bp(&usage);
        Some(usage)
    }

    /// Counts one container or reservation holding `resources` on `node`
    /// (`add`), or takes it back: what [`ClusterState::recompute_usage`]
    /// would find, without walking the node's containers.
    fn charge(&mut self, node: &str, resources: Option<&Resources>, add: bool) {
        if let Some(mut entry) = self.nodes.get_mut(node) {
            if add {
                entry.usage.add(resources);
            } else {
                entry.usage.remove(resources);
            }
            entry.refresh_fullness();
        }
    }

    /// Nodes whose kept usage differs from a recomputation (debug checks
    /// and tests: the two must always agree).
    pub fn usage_drift(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(id, node)| self.computed_usage(id).as_ref() != Some(&node.usage))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether `command` would change nothing: an observation of what the
    /// state already holds, or the removal of a container it does not know.
    /// Such commands are not replicated (see `Cluster::propose`).
    pub fn is_noop(&self, command: &Command) -> bool {
        match command {
            Command::ContainersObserved {
                node, containers, ..
            } => self.node_containers_match(node, containers),
            Command::ContainerObserved(container) => {
                self.containers.get(&container.id) == Some(container)
            }
            Command::ContainerRemoved { id } => !self.containers.contains_key(id),
            Command::ContainerStateChanged { id, node, state } => !self
                .containers
                .get(id)
                .is_some_and(|c| c.node == *node && c.state != *state),
            Command::ImagesObserved { node, images } => self.node_images_match(node, images),
            _ => false,
        }
    }

    /// Whether `observed` (a node's full container list) says nothing new:
    /// the same containers with the same name, image, state and labels (and
    /// resources, where the list carries them).
    pub fn node_containers_match(&self, node: &str, observed: &[Container]) -> bool {
        let Some(entry) = self.nodes.get(node) else {
            return false;
        };
        entry.containers.len() == observed.len()
            && observed.iter().all(|o| {
                self.containers.get(&o.id).is_some_and(|c| {
                    c.node == node
                        && c.name == o.name
                        && c.image == o.image
                        && c.state == o.state
                        && c.labels == o.labels
                        && (o.resources.is_none() || o.resources == c.resources)
                })
            })
    }

    /// Whether `images` are what the node holds already.
    pub fn node_images_match(&self, node: &str, images: &[ImageRef]) -> bool {
        self.nodes.get(node).is_some_and(|n| n.images == images)
    }

    /// The container or reservation holding `name`, if any.
    pub fn name_holder(&self, name: &str) -> Option<String> {
        self.name_holder_except(name, None)
    }

    /// [`Self::name_holder`], not counting container `except` (the copy
    /// being replaced by a reschedule).
    fn name_holder_except(&self, name: &str, except: Option<&str>) -> Option<String> {
        if let Some(c) = self
            .containers
            .named(name)
            .find(|c| Some(c.id.as_str()) != except)
        {
            return Some(c.id.clone());
        }
        self.reservations
            .values()
            .find(|r| r.name.as_deref() == Some(name))
            .map(|r| r.id.clone())
    }

    /// The node called `name` (its cluster-unique name) or with ID `name`.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes
            .values()
            .find(|n| n.name == name)
            .or_else(|| self.nodes.get(name))
    }

    /// Finds one container by full ID, name, `node/name`, or unique ID prefix,
    /// in that order (the engine's own order, plus the `node/name` form).
    pub fn resolve_container(&self, reference: &str) -> Result<&Container, LookupError> {
        let reference = reference.trim_start_matches('/');
        if reference.is_empty() {
            return Err(LookupError::NotFound(reference.to_string()));
        }
        if let Some(c) = self.containers.get(reference) {
            return Ok(c);
        }
        let by_name: Vec<&Container> = self.containers.named(reference).collect();
        match by_name.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|c| format!("{}/{}", self.node_name(&c.node), c.name))
                    .collect();
                return Err(LookupError::Ambiguous(format!(
                    "container name {reference} is used on several nodes, name one of: {}",
                    names.join(", ")
                )));
            }
        }
        if let Some((node_name, name)) = reference.split_once('/') {
            if let Some(node) = self.node_by_name(node_name) {
                if let Some(c) = self.containers.named(name).find(|c| c.node == node.info.id) {
                    return Ok(c);
                }
            }
        }
        let mut by_prefix = self
            .containers
            .values()
            .filter(|c| c.id.starts_with(reference));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(one), None) => Ok(one),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous(format!(
                "multiple IDs found with provided prefix: {reference}"
            ))),
            _ => Err(LookupError::NotFound(reference.to_string())),
        }
    }

    /// The cluster-unique name of a node, or its ID when unknown.
    pub fn node_name(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    fn unique_node_name(&self, hostname: &str, id: &str) -> String {
        let base = if hostname.is_empty() {
            "node"
        } else {
            hostname
        };
        let taken = |candidate: &str| {
            self.nodes
                .values()
                .any(|n| n.name == candidate && n.info.id != id)
        };
        if !taken(base) {
            return base.to_string();
        }
        let short: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let mut len = 4.min(short.len());
        loop {
            let candidate = format!("{base}-{}", &short[..len]);
            if !taken(&candidate) || len >= short.len() {
                return candidate;
            }
            len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, hostname: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            hostname: hostname.into(),
            addr: format!("tcp://127.0.0.1:{}", 2375 + id.len()),
            cpus: 2,
            memory: 1 << 30,
            observed_at: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        }
    }

    fn container(id: &str, node: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            node: node.into(),
            name: name.into(),
            image: "busybox:local".into(),
            state: ContainerState::Running,
            labels: BTreeMap::new(),
            resources: None,
        }
    }

    fn two_nodes() -> ClusterState {
        let mut s = ClusterState::default();
        s.apply(Command::NodeObserved(info("AAAA:1111", "host")))
            .unwrap();
        s.apply(Command::NodeObserved(info("BBBB:2222", "host")))
            .unwrap();
        s
    }

    #[test]
    fn a_joining_node_comes_with_its_containers_and_images() {
        let mut s = ClusterState::default();
        let held = Container {
            resources: Some(Resources {
                memory: 256 << 20,
                cpus_milli: 500,
                ports: Vec::new(),
            }),
            ..container("a1", "AAAA:1111", "web")
        };
        s.apply(Command::NodeJoined {
            info: info("AAAA:1111", "host"),
            containers: vec![held],
            version: 0,
            images: vec![ImageRef {
                id: "sha256:b0".into(),
                tags: vec!["busybox:local".into()],
            }],
        })
        .unwrap();
        let node = &s.nodes["AAAA:1111"];
        assert_eq!(node.health, NodeHealth::Healthy);
        assert_eq!(node.containers.len(), 1);
        assert_eq!((node.usage.memory, node.usage.cpus_milli), (256 << 20, 500));
        assert!(node.has_image("busybox:local"));
        assert_eq!(s.containers.get("a1").map(|c| c.name.as_str()), Some("web"));
        // Joining again with a list taken before a newer change: the node
        // and its images are recorded, the stale list is not.
        s.apply(Command::ContainerObserved(container(
            "a2",
            "AAAA:1111",
            "db",
        )))
        .unwrap();
        s.apply(Command::NodeJoined {
            info: info("AAAA:1111", "host"),
            containers: vec![],
            version: 0,
            images: vec![],
        })
        .unwrap();
        assert_eq!(s.nodes["AAAA:1111"].containers.len(), 2);
        assert!(!s.nodes["AAAA:1111"].has_image("busybox:local"));
    }

    #[test]
    fn same_hostname_gets_distinct_names() {
        let s = two_nodes();
        let names: Vec<&str> = s.nodes.values().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["host", "host-bbbb"]);
    }

    #[test]
    fn re_observing_keeps_the_name() {
        let mut s = two_nodes();
        s.apply(Command::NodeObserved(info("BBBB:2222", "host")))
            .unwrap();
        assert_eq!(s.nodes["BBBB:2222"].name, "host-bbbb");
    }

    #[test]
    fn resolves_by_id_name_node_name_and_prefix() {
        let mut s = two_nodes();
        s.apply(Command::ContainerObserved(container(
            "abc123",
            "AAAA:1111",
            "web",
        )))
        .unwrap();
        s.apply(Command::ContainerObserved(container(
            "abd456",
            "BBBB:2222",
            "db",
        )))
        .unwrap();
        assert_eq!(s.resolve_container("abc123").unwrap().name, "web");
        assert_eq!(s.resolve_container("web").unwrap().id, "abc123");
        assert_eq!(s.resolve_container("/web").unwrap().id, "abc123");
        assert_eq!(s.resolve_container("host-bbbb/db").unwrap().id, "abd456");
        assert_eq!(s.resolve_container("abd").unwrap().id, "abd456");
        assert!(matches!(
            s.resolve_container("ab"),
            Err(LookupError::Ambiguous(_))
        ));
        assert!(matches!(
            s.resolve_container("nope"),
            Err(LookupError::NotFound(_))
        ));
        assert!(matches!(
            s.resolve_container("host/db"),
            Err(LookupError::NotFound(_))
        ));
    }

    #[test]
    fn same_name_on_two_nodes_needs_the_node() {
        let mut s = two_nodes();
        s.apply(Command::ContainerObserved(container(
            "a1",
            "AAAA:1111",
            "web",
        )))
        .unwrap();
        s.apply(Command::ContainerObserved(container(
            "b1",
            "BBBB:2222",
            "web",
        )))
        .unwrap();
        assert!(matches!(
            s.resolve_container("web"),
            Err(LookupError::Ambiguous(_))
        ));
        assert_eq!(s.resolve_container("host/web").unwrap().id, "a1");
        assert_eq!(s.resolve_container("host-bbbb/web").unwrap().id, "b1");
    }

    fn with_swarm_id(mut c: Container, swarm_id: &str) -> Container {
        c.labels.insert(SWARM_ID_LABEL.into(), swarm_id.into());
        c
    }

    fn fail(s: &mut ClusterState, node: &str) {
        s.apply(Command::NodeFailed {
            id: node.into(),
            error: "gone".into(),
            unhealthy: true,
            at: "2026-01-01T00:00:01Z".into(),
        })
        .unwrap();
    }

    #[test]
    fn a_reschedule_moves_the_container_once_and_remembers_the_stale_copy() {
        let mut s = two_nodes();
        let (a, b) = ("AAAA:1111", "BBBB:2222");
        s.apply(Command::SpecRecorded {
            swarm_id: "S1".into(),
            body: "{}".into(),
            name: Some("web".into()),
        })
        .unwrap();
        s.apply(Command::ContainerObserved(with_swarm_id(
            container("old", b, "web"),
            "S1",
        )))
        .unwrap();
        // Only from an unhealthy node, and only with a known body.
        let start = Command::RescheduleStarted { id: "old".into() };
        assert!(matches!(
            s.apply(start.clone()),
            Err(ApplyError::NotReschedulable { .. })
        ));
        fail(&mut s, b);
        s.apply(start.clone()).unwrap();
        let before = s.clone();
        s.apply(start).unwrap();
        assert_eq!(s, before, "starting twice changes nothing");
        assert!(s.rescheduling["S1"].was_running);
        // The copy may take the old one's name.
        s.apply(Command::Reserve {
            reservation: Reservation {
                id: "r1".into(),
                node: a.into(),
                name: Some("web".into()),
                resources: Resources::default(),
                swarm_id: Some("S1".into()),
            },
            overcommit: 0,
            checks: Checks::default(),
        })
        .unwrap();
        s.apply(Command::ContainerCreated {
            reservation: "r1".into(),
            container: with_swarm_id(container("new", a, "web"), "S1"),
        })
        .unwrap();
        let named: Vec<&str> = s.containers.named("web").map(|c| c.id.as_str()).collect();
        assert_eq!(named, vec!["new"], "listed once, on the new node");
        assert!(s.is_stale(b, "old"));
        s.apply(Command::RescheduleDone {
            swarm_id: "S1".into(),
        })
        .unwrap();
        assert!(s.rescheduling.is_empty());
        // The node comes back listing the old copy: it stays out.
        s.apply(Command::NodeObserved(info(b, "host"))).unwrap();
        let version = s.nodes[b].version;
        s.apply(Command::ContainersObserved {
            node: b.into(),
            containers: vec![with_swarm_id(container("old", b, "web"), "S1")],
            version,
        })
        .unwrap();
        s.apply(Command::ContainerObserved(with_swarm_id(
            container("old", b, "web"),
            "S1",
        )))
        .unwrap();
        assert!(s.containers.get("old").is_none());
        s.apply(Command::StaleRemoved {
            node: b.into(),
            id: "old".into(),
        })
        .unwrap();
        assert!(s.stale.is_empty());
        // Removing the container forgets its body.
        assert!(s.reschedule_specs.contains_key("S1"));
        s.apply(Command::ContainerRemoved { id: "new".into() })
            .unwrap();
        assert!(s.reschedule_specs.is_empty());
    }

    #[test]
    fn a_copy_seen_in_a_node_list_also_retires_the_old_one() {
        let mut s = two_nodes();
        let (a, b) = ("AAAA:1111", "BBBB:2222");
        s.apply(Command::SpecRecorded {
            swarm_id: "S1".into(),
            body: "{}".into(),
            name: None,
        })
        .unwrap();
        s.apply(Command::ContainerObserved(with_swarm_id(
            container("old", b, "x"),
            "S1",
        )))
        .unwrap();
        fail(&mut s, b);
        s.apply(Command::RescheduleStarted { id: "old".into() })
            .unwrap();
        // A new leader finds the copy the old one created but never recorded.
        let version = s.nodes[a].version;
        s.apply(Command::ContainersObserved {
            node: a.into(),
            containers: vec![with_swarm_id(container("new", a, "x"), "S1")],
            version,
        })
        .unwrap();
        assert!(s.containers.get("old").is_none());
        assert!(s.is_stale(b, "old"));
        assert_eq!(s.nodes[b].usage.containers, 0);
    }

    #[test]
    fn a_failed_create_forgets_its_body() {
        let mut s = two_nodes();
        s.apply(Command::SpecRecorded {
            swarm_id: "S2".into(),
            body: "{}".into(),
            name: None,
        })
        .unwrap();
        s.apply(Command::Reserve {
            reservation: Reservation {
                id: "r".into(),
                node: "AAAA:1111".into(),
                name: None,
                resources: Resources::default(),
                swarm_id: Some("S2".into()),
            },
            overcommit: 0,
            checks: Checks::default(),
        })
        .unwrap();
        s.apply(Command::Release { id: "r".into() }).unwrap();
        assert!(s.reschedule_specs.is_empty());
    }

    #[test]
    fn reserve_refuses_taken_names_and_unhealthy_nodes() {
        let mut s = two_nodes();
        s.apply(Command::ContainerObserved(container(
            "a1",
            "AAAA:1111",
            "web",
        )))
        .unwrap();
        let reserve = |id: &str, node: &str, name: &str| Command::Reserve {
            reservation: Reservation {
                id: id.into(),
                node: node.into(),
                name: Some(name.into()),
                resources: Resources::default(),
                swarm_id: None,
            },
            overcommit: 0,
            checks: Checks::default(),
        };
        assert!(matches!(
            s.apply(reserve("r1", "BBBB:2222", "web")),
            Err(ApplyError::NameInUse { .. })
        ));
        s.apply(reserve("r2", "BBBB:2222", "api")).unwrap();
        let before = s.clone();
        assert!(matches!(
            s.apply(reserve("r3", "AAAA:1111", "api")),
            Err(ApplyError::NameInUse { .. })
        ));
        assert_eq!(s, before, "a refused command changes nothing");
        assert_eq!(s.nodes["BBBB:2222"].usage.containers, 1);
        s.apply(Command::Release { id: "r2".into() }).unwrap();
        assert_eq!(s.nodes["BBBB:2222"].usage.containers, 0);
        s.apply(Command::NodeFailed {
            id: "BBBB:2222".into(),
            error: "down".into(),
            unhealthy: true,
            at: "t".into(),
        })
        .unwrap();
        assert!(matches!(
            s.apply(reserve("r4", "BBBB:2222", "x")),
            Err(ApplyError::NodeUnhealthy(_))
        ));
        assert!(matches!(
            s.apply(reserve("r5", "nope", "x")),
            Err(ApplyError::UnknownNode(_))
        ));
    }

    #[test]
    fn disabled_port_and_slot_filters_are_not_checked_on_reserve() {
        let mut s = two_nodes();
        let port = HostPort {
            ip: String::new(),
            port: 8080,
            proto: Proto::Tcp,
        };
        let reserve = |id: &str, checks: Checks| Command::Reserve {
            reservation: Reservation {
                id: id.into(),
                node: "AAAA:1111".into(),
                name: None,
                resources: Resources {
                    ports: vec![port.clone()],
                    ..Default::default()
                },
                swarm_id: None,
            },
            overcommit: 0,
            checks,
        };
        s.apply(reserve("r1", Checks::default())).unwrap();
        assert!(matches!(
            s.apply(reserve("r2", Checks::default())),
            Err(ApplyError::Unfit {
                reason: Unfit::Port(_),
                ..
            })
        ));
        let off = Checks {
            ports: false,
            slots: false,
        };
        s.apply(reserve("r3", off)).unwrap();
    }

    #[test]
    fn an_observed_container_ends_its_reservation() {
        let mut s = two_nodes();
        let resources = Resources {
            cpus_milli: 1000,
            memory: 1 << 20,
            ports: vec![],
        };
        s.apply(Command::Reserve {
            reservation: Reservation {
                id: "r1".into(),
                node: "AAAA:1111".into(),
                name: Some("web".into()),
                resources: resources.clone(),
                swarm_id: Some("sw1".into()),
            },
            overcommit: 0,
            checks: Checks::default(),
        })
        .unwrap();
        assert_eq!(s.nodes["AAAA:1111"].usage.cpus_milli, 1000);
        let mut c = container("c1", "AAAA:1111", "web");
        c.labels.insert(SWARM_ID_LABEL.into(), "sw1".into());
        c.resources = Some(resources);
        s.apply(Command::ContainerObserved(c.clone())).unwrap();
        assert!(
            s.reservations.is_empty(),
            "the container replaces its reservation"
        );
        let usage = &s.nodes["AAAA:1111"].usage;
        assert_eq!(
            (usage.cpus_milli, usage.memory, usage.containers),
            (1000, 1 << 20, 1)
        );
        // The create path then reports it again: still counted once.
        s.apply(Command::ContainerCreated {
            reservation: "r1".into(),
            container: c,
        })
        .unwrap();
        assert_eq!(s.nodes["AAAA:1111"].usage.containers, 1);
    }

    #[test]
    fn containers_observed_replaces_one_node_only() {
        let mut s = two_nodes();
        s.apply(Command::ContainerObserved(container(
            "a1",
            "AAAA:1111",
            "x",
        )))
        .unwrap();
        s.apply(Command::ContainerObserved(container(
            "b1",
            "BBBB:2222",
            "y",
        )))
        .unwrap();
        let version = s.nodes["AAAA:1111"].version;
        let stale = Command::ContainersObserved {
            node: "AAAA:1111".into(),
            containers: vec![],
            version: version - 1,
        };
        assert!(matches!(s.apply(stale), Err(ApplyError::Stale(_))));
        s.apply(Command::ContainersObserved {
            node: "AAAA:1111".into(),
            containers: vec![container("a2", "AAAA:1111", "z")],
            version,
        })
        .unwrap();
        let ids: Vec<&str> = s.containers.keys().map(|k| k.as_str()).collect();
        assert_eq!(ids, vec!["a2", "b1"]);
        s.apply(Command::NodeRemoved {
            id: "BBBB:2222".into(),
        })
        .unwrap();
        assert_eq!(s.containers.len(), 1);
    }

    #[test]
    fn unchanged_lists_are_recognized() {
        let mut s = two_nodes();
        let web = container("c1", "AAAA:1111", "web");
        s.apply(Command::ContainersObserved {
            node: "AAAA:1111".into(),
            containers: vec![web.clone()],
            version: 0,
        })
        .unwrap();
        assert!(s.node_containers_match("AAAA:1111", std::slice::from_ref(&web)));
        assert!(!s.node_containers_match("BBBB:2222", std::slice::from_ref(&web)));
        assert!(!s.node_containers_match("AAAA:1111", &[]));
        let stopped = Container {
            state: ContainerState::Exited,
            ..web.clone()
        };
        assert!(!s.node_containers_match("AAAA:1111", &[stopped]));
        let renamed = Container {
            name: "api".into(),
            ..web.clone()
        };
        assert!(!s.node_containers_match("AAAA:1111", &[renamed]));
        let other = container("c2", "AAAA:1111", "web");
        assert!(!s.node_containers_match("AAAA:1111", &[other]));
        // the same, as commands
        assert!(s.is_noop(&Command::ContainerObserved(web.clone())));
        let running_elsewhere = Container {
            state: ContainerState::Paused,
            ..web.clone()
        };
        assert!(!s.is_noop(&Command::ContainerObserved(running_elsewhere)));
        assert!(s.is_noop(&Command::ContainerRemoved { id: "gone".into() }));
        assert!(!s.is_noop(&Command::ContainerRemoved { id: "c1".into() }));
        assert!(s.is_noop(&Command::ImagesObserved {
            node: "AAAA:1111".into(),
            images: Vec::new(),
        }));
        assert!(!s.is_noop(&Command::Release { id: "r".into() }));
    }

    #[test]
    fn image_names_normalize() {
        let image = ImageRef {
            id: "sha256:0123456789abcdef".into(),
            tags: vec!["busybox:local".into(), "alpine:latest".into()],
        };
        assert!(image_matches(&image, "busybox:local"));
        assert!(image_matches(&image, "alpine"));
        assert!(image_matches(&image, "docker.io/library/alpine:latest"));
        assert!(image_matches(&image, "0123"));
        assert!(image_matches(&image, "sha256:0123456789abcdef"));
        assert!(!image_matches(&image, "busybox"));
        assert!(!image_matches(&image, "012"));
        assert!(!image_matches(&image, ""));
        assert_eq!(normalize_image_name("reg:5000/x"), "reg:5000/x:latest");
    }

    /// Usage is kept up to date command by command (`charge`), not
    /// recounted: after any sequence of commands it must equal a recount.
    mod usage_props {
        use super::*;
        use proptest::prelude::*;

        const NODES: [&str; 3] = ["AAAA:1111", "BBBB:2222", "CCCC:3333"];

        fn resources(n: u8) -> Option<Resources> {
            (!n.is_multiple_of(4)).then(|| Resources {
                cpus_milli: u64::from(n % 3) * 500,
                memory: i64::from(n % 5) << 20,
                ports: (0..n % 3)
                    .map(|i| HostPort {
                        ip: String::new(),
                        port: 8000 + u16::from(i) + u16::from(n % 2),
                        proto: Proto::Tcp,
                    })
                    .collect(),
            })
        }

        fn command(s: &ClusterState, op: u8, a: u8, b: u8, c: u8) -> Command {
            let node = NODES[usize::from(a) % NODES.len()].to_string();
            let id = format!("c{}", b % 6);
            let swarm_id = c.is_multiple_of(3).then(|| format!("sw{}", b % 4));
            let mut labels = BTreeMap::new();
            if let Some(sid) = &swarm_id {
                labels.insert(SWARM_ID_LABEL.to_string(), sid.clone());
            }
            let observed = Container {
                labels,
                resources: resources(c),
                ..container(&id, &node, &format!("n{}", b % 6))
            };
            match op % 7 {
                0 => Command::Reserve {
                    reservation: Reservation {
                        id: format!("r{}", b % 5),
                        node,
                        name: None,
                        resources: resources(c).unwrap_or_default(),
                        swarm_id,
                    },
                    overcommit: 1_000_000,
                    checks: Checks {
                        ports: false,
                        slots: false,
                    },
                },
                1 => Command::Release {
                    id: format!("r{}", b % 5),
                },
                2 => Command::ContainerCreated {
                    reservation: format!("r{}", c % 5),
                    container: observed,
                },
                3 => Command::ContainerObserved(observed),
                4 => Command::ContainerRemoved { id },
                5 => Command::ContainerStateChanged {
                    id,
                    node,
                    state: ContainerState::Exited,
                },
                _ => Command::ContainersObserved {
                    version: s.nodes.get(&node).map_or(0, |n| n.version),
                    containers: s
                        .containers
                        .values()
                        .filter(|k| k.id.len() % 2 == usize::from(c % 2))
                        .map(|k| Container {
                            node: node.clone(),
                            ..k.clone()
                        })
                        .collect(),
                    node,
                },
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            #[test]
            fn kept_usage_equals_a_recount(ops in proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 1..60)) {
                let mut s = ClusterState::default();
                for node in NODES {
                    s.apply_command(Command::NodeObserved(info(node, node))).unwrap();
                }
                for (op, a, b, c) in ops {
                    let command = command(&s, op, a, b, c);
                    let _ = s.apply_command(command.clone());
                    prop_assert_eq!(s.usage_drift(), Vec::<NodeId>::new(), "after {:?}", command);
                    let total: usize = s.nodes.values().map(|n| n.usage.containers).sum();
                    prop_assert_eq!(total, s.containers.len() + s.reservations.len());
                }
            }
        }
    }
}
