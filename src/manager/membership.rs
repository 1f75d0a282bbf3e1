//! The managers themselves: who leads, who belongs, and changes of the
//! membership (`swarmctl members | add-manager | remove-manager`). The
//! manager answers these from its Raft node; the API never reaches it.

use tokio_util::sync::CancellationToken;

use super::{Manager, ManagerError};
use crate::cluster::{MemberStatus, ProposeError};

impl Manager {
    /// This manager's Raft ID.
    pub fn raft_id(&self) -> u64 {
        self.cluster.id()
    }

    /// Whether this manager leads (in its own view).
    pub fn is_leader(&self) -> bool {
        self.cluster.is_leader()
    }

    /// Whether this manager leads but has heard no quorum for a while: it
    /// may have been deposed without knowing, and must not act.
    pub fn lost_quorum(&self) -> bool {
        self.cluster.lost_quorum()
    }

    /// The leader's API address, when a leader is known.
    pub fn leader_api(&self) -> Option<String> {
        self.cluster.leader_api()
    }

    /// `cluster has K of N managers`: how many members answer now.
    pub async fn quorum_text(&self) -> String {
        self.cluster.quorum_text().await
    }

    /// A watch that changes whenever Raft's view changes (role, leader, term).
    pub fn raft_metrics(&self) -> tokio::sync::watch::Receiver<swarm_raft::Metrics> {
        self.cluster.metrics()
    }

    /// Confirms the quorum while this manager leads, until `cancel` (see
    /// [`crate::cluster::Cluster::watch_quorum`]).
    pub async fn watch_quorum(&self, cancel: CancellationToken) {
        self.cluster.watch_quorum(cancel).await
    }

    /// Stops Raft (on shutdown).
    pub async fn shutdown(&self) {
        self.cluster.shutdown().await
    }

    /// Every manager with its Raft state, as the leader sees it.
    pub async fn members(&self) -> Vec<MemberStatus> {
        self.cluster.members().await
    }

    /// On the leader: adds manager `id` (reached at `raft_addr`, serving
    /// the API at `api_addr`) as a learner, and as a voter once it has
    /// caught up.
    pub async fn add_manager(
        &self,
        id: u64,
        raft_addr: String,
        api_addr: String,
    ) -> Result<(), ManagerError> {
        self.cluster
            .add_manager(id, swarm_raft::Member::new(raft_addr, api_addr))
            .await
            .map_err(membership_error)
    }

    /// On the leader: removes manager `id` from the cluster.
    pub async fn remove_manager(&self, id: u64) -> Result<(), ManagerError> {
        if !self.cluster.members().await.iter().any(|m| m.id == id) {
            return Err(ManagerError::NoSuchManager(id));
        }
        self.cluster
            .remove_manager(id)
            .await
            .map_err(membership_error)
    }
}

/// Raft's refusal of a membership change is a conflict with the current
/// membership (a change in progress, a last voter), not a server fault.
fn membership_error(e: ProposeError) -> ManagerError {
    match e {
        ProposeError::Raft(message) => ManagerError::Membership(message),
        other => other.into(),
    }
}
