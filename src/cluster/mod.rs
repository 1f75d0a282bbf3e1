//! The cluster domain: what the managers agree on.
//!
//! [`ClusterState`] holds every node (engine) with its capacity, labels and
//! health, every container swarm knows of with the node it lives on, and the
//! pending [`Reservation`]s of creates in flight. It changes only through
//! [`Command`]s fed to [`ClusterState::apply`], which is deterministic: no
//! clocks, no randomness, no I/O. [`Cluster`] replicates the commands with
//! Raft: the leader proposes, every manager applies the same log.
//!
//! The state and its commands are in `state/`, the collections it keeps
//! its nodes and containers in (with their indexes) in `nodes.rs` and
//! `table.rs`, the nodes by rank for placement in `rank.rs`, what a container reserves in [`resources`], and the Raft
//! wrapper in `replicated.rs`. Tests build states with the shared builders
//! of `testing.rs`.

mod names;
mod nodes;
mod rank;
mod replicated;
pub mod resources;
mod shared_map;
mod state;
mod table;
#[cfg(test)]
pub(crate) mod testing;

pub use nodes::{id_head, NodeMut, Nodes, NodesSnapshot};
pub use rank::{Bucket, Class, ClassBounds, RankIndex, Slot};
pub use replicated::{Cluster, ClusterError, MemberStatus, ProposeError, RaftSettings};
pub use resources::{HostPort, Proto, Resources};
pub use shared_map::SharedMap;
pub use state::{
    basis_points, cpu_with_overcommit, human_bytes, human_cpus, image_matches,
    memory_with_overcommit, normalize_image_name, ApplyError, Checks, ClusterState, Command,
    Container, ContainerState, ImageQuery, ImageRef, Labels, LookupError, Node, NodeHealth, NodeId,
    NodeInfo, OvercommitPpm, RescheduleSpec, Rescheduling, Reservation, StateSnapshot, Unfit,
    Usage, SWARM_ID_LABEL,
};
pub use table::{ContainerTable, LabelHolders, StateCounts, TableSnapshot, Values};
