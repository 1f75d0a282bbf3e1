//! The changes the managers replicate ([`Command`]) and why `apply` may
//! refuse one ([`ApplyError`]). Commands carry only what was observed or
//! decided (times, IDs, names are chosen by the proposer), so that every
//! replica applies them alike.

use serde::{Deserialize, Serialize};

use super::container::{Container, ContainerState, Reservation};
use super::image::ImageRef;
use super::node::{Checks, NodeId, NodeInfo, OvercommitPpm, Unfit};

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
    /// A discovery token was made (`swarm create`, or a manager started
    /// with `token://TOKEN`); a no-op when it exists.
    TokenCreated {
        /// The token.
        token: String,
        /// When (Unix milliseconds, the leader's clock).
        at_ms: u64,
    },
    /// An engine registered under a token (`swarm join`) until `at_ms +
    /// ttl_ms`; refused for an unknown token.
    TokenRegistered {
        /// The token.
        token: String,
        /// The engine's address, `IP:PORT`.
        addr: String,
        /// When (Unix milliseconds, the leader's clock).
        at_ms: u64,
        /// How long the registration lasts unless renewed.
        ttl_ms: u64,
    },
    /// A token and its registrations were deleted.
    TokenDeleted {
        /// The token.
        token: String,
    },
    /// The cluster's discovery URL was set.
    DiscoverySet {
        /// The URL.
        url: String,
    },
    /// The cluster got its ID; a no-op once it has one.
    ClusterIdSet {
        /// The ID.
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

/// Why a command was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    /// The node is not in the cluster.
    #[error("no such node: {0}")]
    UnknownNode(NodeId),
    /// No discovery token has this value.
    #[error("unknown discovery token {0}: make one with swarm create")]
    UnknownToken(String),
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
