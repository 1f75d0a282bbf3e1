//! Nodes: what an engine says about itself ([`NodeInfo`]), its health, and
//! what its containers and creates in flight hold on it ([`Usage`]), with
//! the capacity checks a reservation must pass ([`Node::fits`]: CPU,
//! memory, host ports, container slots). Which images a node holds is in
//! `image.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::display::{human_bytes, human_cpus};
use super::image::ImageRef;
use crate::cluster::resources::{HostPort, Resources};

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

/// The `containerslots=N` engine label of `info`, when set to a number.
pub(super) fn parse_slots(info: &NodeInfo) -> Option<usize> {
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
    pub(super) fn add(&mut self, resources: Option<&Resources>) {
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
    pub(super) fn remove(&mut self, resources: Option<&Resources>) {
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

/// Overcommit in parts per million of capacity (`swarm.overcommit=0.05` is
/// 50 000); negative (above -1 000 000) keeps part of each node free.
pub type OvercommitPpm = i64;

/// `base` grown (or shrunk) by `overcommit`, never below zero; exact, as
/// `base` is at most 2^64.
fn with_overcommit(base: u128, overcommit: OvercommitPpm) -> u128 {
    let factor = u128::try_from(1_000_000 + i128::from(overcommit)).unwrap_or(0);
    base * factor / 1_000_000
}

/// A CPU capacity in thousandths (`base`, without overcommit) with
/// `overcommit`.
pub fn cpu_with_overcommit(base: u64, overcommit: OvercommitPpm) -> u64 {
    u64::try_from(with_overcommit(u128::from(base), overcommit)).unwrap_or(u64::MAX)
}

/// A memory capacity in bytes (`base`, without overcommit) with
/// `overcommit`.
pub fn memory_with_overcommit(base: i64, overcommit: OvercommitPpm) -> i64 {
    let base = base.max(0) as u64;
    i64::try_from(with_overcommit(u128::from(base), overcommit)).unwrap_or(i64::MAX)
}

impl Node {
    /// Recomputes `usage.fullness_bp` from the usage and the capacity.
    pub(super) fn refresh_fullness(&mut self) {
        self.usage.fullness_bp = self.fullness_bp(&self.usage);
    }

    /// How full `usage` makes this node (see [`Usage::fullness_bp`]).
    pub(super) fn fullness_bp(&self, usage: &Usage) -> u64 {
        basis_points(usage.cpus_milli, self.cpu_capacity_milli(0))
            + basis_points(usage.memory.max(0) as u64, self.memory_capacity(0) as u64)
    }

    /// CPU capacity in thousandths, overcommit included.
    pub fn cpu_capacity_milli(&self, overcommit: OvercommitPpm) -> u64 {
        cpu_with_overcommit(self.info.cpus.max(0) as u64 * 1000, overcommit)
    }

    /// Memory capacity in bytes, overcommit included.
    pub fn memory_capacity(&self, overcommit: OvercommitPpm) -> i64 {
        memory_with_overcommit(self.info.memory, overcommit)
    }

    /// Whether its last refresh failed, or it is unhealthy: placement
    /// takes it only when no other candidate is better off.
    pub fn failing(&self) -> bool {
        self.health != NodeHealth::Healthy || self.error.is_some()
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
