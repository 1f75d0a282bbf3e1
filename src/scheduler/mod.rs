//! Placement: which node a new container goes to.
//!
//! Pure functions over a [`ClusterState`] snapshot: no I/O, no locks, so
//! placement can be tested and benchmarked alone. The pipeline
//! (`pipeline.rs`, whose [`place_reference`] runs it step by step):
//!
//! 1. hard filters in order (health, port, containerslots, dependency,
//!    affinity, constraint; `--filter` enables a subset), each a small
//!    type in [`filter`] that checks a node and explains its refusals;
//! 2. resources: CPU and memory must fit (overcommit included);
//! 3. soft constraints and affinities (`~`), each dropped when no remaining
//!    node satisfies it;
//! 4. nodes that already hold the image are preferred (no registry may be
//!    reachable to pull it elsewhere);
//! 5. the strategy ranks what is left (see [`strategy`]).
//!
//! [`place`] and [`place_with`] give the same answers (a node of the same
//! rank, the same refusal) through the walk over the rank index of
//! `index.rs`, which looks at a few buckets of alike nodes, or the walks of
//! `walk.rs`, which make the steps in one pass over the nodes, without a
//! list of candidates.
//!
//! The caller turns the answer into a `Reserve` command, which `apply()`
//! re-checks against the latest state, so concurrent placements never
//! over-commit a node or bind one host port twice.

pub mod expr;
pub mod filter;
mod index;
mod pipeline;
pub mod spec;
pub mod strategy;
mod walk;

use crate::cluster::{ClusterState, NodeId, OvercommitPpm};
use filter::FILTERS;
use pipeline::Pipeline;

pub use pipeline::{place_reference, reference_ties};
pub use spec::{ContainerSpec, SpecError};
pub use strategy::{InFlight, Strategy};

/// No node can take the container; `reasons` says why, one per step that
/// rejected nodes, with counts. The text begins as Swarm classic's did
/// (scripts match it): `no resources available to schedule container`
/// when only CPUs or memory were lacking, else `Unable to find a node that
/// satisfies the following conditions`; the reasons follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", if *.resources_only { NO_RESOURCES } else { NO_NODE }, .reasons.join("; "))]
pub struct Unschedulable {
    /// Why nodes were rejected.
    pub reasons: Vec<String>,
    /// Whether every node that passed the filters lacked CPUs or memory.
    pub resources_only: bool,
}

/// Classic's words when the filters left no node.
pub const NO_NODE: &str = "Unable to find a node that satisfies the following conditions";
/// Classic's words when no node has the CPUs or memory.
pub const NO_RESOURCES: &str = "no resources available to schedule container";

impl Unschedulable {
    /// Refused by the filters (or no node at all), for `reasons`.
    pub fn filtered(reasons: Vec<String>) -> Unschedulable {
        Unschedulable {
            reasons,
            resources_only: false,
        }
    }
}

/// Placement settings of a manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How to rank nodes.
    pub strategy: Strategy,
    /// Overcommit, parts per million of capacity.
    pub overcommit: OvercommitPpm,
    /// Names of the enabled filters.
    pub filters: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strategy: Strategy::Spread,
            overcommit: 50_000,
            filters: FILTERS.iter().map(|f| f.name().to_string()).collect(),
        }
    }
}

impl Options {
    /// The reservation checks matching the enabled `port` and
    /// `containerslots` filters.
    pub fn checks(&self) -> crate::cluster::Checks {
        let on = |name: &str| self.filters.iter().any(|f| f == name);
        crate::cluster::Checks {
            ports: on("port"),
            slots: on("containerslots"),
        }
    }
}

/// Picks the node for `spec`. `seed` drives the `random` strategy and
/// breaks ties, so that placement stays a pure function of its inputs.
pub fn place(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    seed: u64,
) -> Result<NodeId, Unschedulable> {
    place_with(state, spec, options, seed, &InFlight::default())
}

/// [`place`], ranking nodes as if the placements `in_flight` were already
/// in the state.
pub fn place_with(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    seed: u64,
    in_flight: &InFlight,
) -> Result<NodeId, Unschedulable> {
    walk::place(&Pipeline::new(state, spec, options)?, seed, in_flight)
}

#[cfg(test)]
mod tests;
