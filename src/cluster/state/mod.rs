//! [`ClusterState`], everything the managers agree on, and the
//! [`Command`]s that change it.
//!
//! How the pieces fit:
//!
//! - `node`, `image` and `container` hold the domain types: a node with
//!   its capacity, health and [`Usage`] (and the checks a reservation must
//!   pass), the images it holds and how a reference matches them, and the
//!   containers, creates in flight and reschedules.
//! - `command` lists the changes ([`Command`]) and why one may be refused
//!   ([`ApplyError`]).
//! - `apply` is the only writer: [`ClusterState::apply`] hands each
//!   command to one method of its own and keeps the indexes and usage
//!   current, deterministically and validating before any write.
//! - `lookup` answers questions about the state (which container a
//!   reference names, who holds a name, whether a command would change
//!   anything).
//! - `display` prints sizes and CPU counts for people.
//!
//! The nodes and containers are kept in [`Nodes`] and [`ContainerTable`],
//! collections that maintain their own indexes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::nodes::{Nodes, NodesSnapshot};
use super::shared_map::SharedMap;
use super::table::{ContainerTable, TableSnapshot};

mod apply;
mod command;
mod container;
mod display;
mod image;
mod labels;
mod lookup;
mod node;
mod tokens;

pub use command::{ApplyError, Command};
pub use container::{
    Container, ContainerState, RescheduleSpec, Rescheduling, Reservation, SWARM_ID_LABEL,
};
pub use display::{human_bytes, human_cpus};
pub use image::{image_matches, normalize_image_name, ImageQuery, ImageRef};
pub use labels::Labels;
pub use lookup::LookupError;
pub use node::{
    basis_points, cpu_with_overcommit, memory_with_overcommit, Checks, Node, NodeHealth, NodeId,
    NodeInfo, OvercommitPpm, Unfit, Usage,
};
pub use tokens::TokenCluster;

/// Everything the managers agree on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Nodes by ID (with the rank index placement walks).
    pub nodes: Nodes,
    /// Containers by ID (and by name).
    pub containers: ContainerTable,
    /// Creates in flight by reservation ID.
    pub reservations: BTreeMap<String, Reservation>,
    /// Create bodies of containers with the `on-node-failure` policy, by
    /// swarm id (shared with snapshots: there may be one per container).
    pub reschedule_specs: SharedMap<RescheduleSpec>,
    /// Reschedules in progress, by swarm id.
    pub rescheduling: BTreeMap<String, Rescheduling>,
    /// Copies left on failed nodes by reschedules, removed from the node
    /// when it answers again: node → container IDs. Observations of the
    /// node never bring them back into the state.
    pub stale: BTreeMap<NodeId, BTreeSet<String>>,
    /// Token discovery served by the managers: token → its engines.
    pub tokens: BTreeMap<String, TokenCluster>,
    /// The cluster's discovery URL, once a leader recorded it (or
    /// `swarmctl discovery set` changed it): every leader follows this one.
    pub discovery: Option<String>,
    /// The cluster's ID (`docker info`'s `ID`), made once by the first
    /// leader.
    pub cluster_id: Option<String>,
}

/// The state as it was when [`ClusterState::snapshot`] was called, for a
/// Raft snapshot: it shares the nodes, containers and create bodies with
/// the state (copy-on-write), copies the rest (creates and reschedules in
/// flight, stale copies, tokens: a few), and encodes as the state does.
#[derive(Debug, Clone, Serialize)]
pub struct StateSnapshot {
    // The fields of `ClusterState`, in its order.
    nodes: NodesSnapshot,
    containers: TableSnapshot,
    reservations: BTreeMap<String, Reservation>,
    reschedule_specs: SharedMap<RescheduleSpec>,
    rescheduling: BTreeMap<String, Rescheduling>,
    stale: BTreeMap<NodeId, BTreeSet<String>>,
    tokens: BTreeMap<String, TokenCluster>,
    discovery: Option<String>,
    cluster_id: Option<String>,
}

impl ClusterState {
    /// What a Raft snapshot encodes, taken cheaply enough to hold the
    /// state's lock for (no container, node or create body is copied), to
    /// encode after the lock is released.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            nodes: self.nodes.snapshot(),
            containers: self.containers.snapshot(),
            reservations: self.reservations.clone(),
            reschedule_specs: self.reschedule_specs.clone(),
            rescheduling: self.rescheduling.clone(),
            stale: self.stale.clone(),
            tokens: self.tokens.clone(),
            discovery: self.discovery.clone(),
            cluster_id: self.cluster_id.clone(),
        }
    }
}
