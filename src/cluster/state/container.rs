//! Containers as the state holds them, the create in flight that holds a
//! name and resources until its container exists ([`Reservation`]), and
//! what a container that asked to be rescheduled on node failure is
//! re-created from ([`RescheduleSpec`], [`Rescheduling`]).

use serde::{Deserialize, Serialize};

use super::labels::Labels;
use super::node::NodeId;
use crate::cluster::resources::Resources;

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
    pub labels: Labels,
    /// What it reserves; `None` while only its list entry was seen.
    pub resources: Option<Resources>,
    /// Its command as `docker ps` shows it; empty until observed.
    pub command: String,
    /// When its engine created it, in seconds since the epoch; 0 until
    /// observed.
    pub created: i64,
}

impl Container {
    /// Takes from `older` (an earlier record of the same container) what
    /// this record did not observe: the command and creation time, which
    /// never change, and what it holds.
    pub fn keep_observed(&mut self, older: &Container) {
        if self.command.is_empty() {
            self.command.clone_from(&older.command);
        }
        if self.created == 0 {
            self.created = older.created;
        }
        if self.resources.is_none() {
            self.resources.clone_from(&older.resources);
        }
    }
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
