//! The managers themselves: who leads, who belongs, and changes of the
//! membership (`swarmctl members | add-manager | remove-manager`). The
//! manager answers these from its Raft node; the API never reaches it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Manager, ManagerError};
use crate::cluster::{MemberStatus, ProposeError};

/// How long adding a manager waits for it to become a voter.
const PROMOTION_WAIT: Duration = Duration::from_secs(10);
/// How often a learner's progress is looked at.
const PROMOTION_POLL: Duration = Duration::from_millis(200);

/// A manager's part in the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// It votes and counts for the quorum.
    Voter,
    /// It receives the log and will vote once it has caught up.
    Learner,
}

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

    /// Resolves once this manager no longer takes the manager at API
    /// address `leader` for the leader.
    pub async fn leader_left(&self, leader: &str) {
        self.cluster.leader_left(leader).await
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
    /// the API at `api_addr`) as a learner, and waits up to 10 s for it to
    /// catch up and be made a voter ([`Manager::promote_learners`]); its
    /// role then.
    pub async fn add_manager(
        &self,
        id: u64,
        raft_addr: String,
        api_addr: String,
    ) -> Result<MemberRole, ManagerError> {
        self.cluster
            .add_manager(id, swarm_raft::Member::new(raft_addr, api_addr))
            .await
            .map_err(membership_error)?;
        let deadline = tokio::time::Instant::now() + PROMOTION_WAIT;
        loop {
            self.promote_learners().await?;
            if self.cluster.is_voter(id) {
                return Ok(MemberRole::Voter);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(MemberRole::Learner);
            }
            tokio::time::sleep(PROMOTION_POLL).await;
        }
    }

    /// The leader's duty: makes learners voters as they catch up (a
    /// manager added while it was not running yet, or far behind), until
    /// `cancel`.
    pub(super) async fn promote_while_leading(
        self: std::sync::Arc<Self>,
        cancel: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = self.promote_learners().await {
                tracing::debug!(error = %e, "learners not promoted");
            }
        }
    }

    /// On the leader: makes the learners that have caught up voters.
    pub async fn promote_learners(&self) -> Result<(), ManagerError> {
        let promoted = self
            .cluster
            .promote_learners()
            .await
            .map_err(membership_error)?;
        for id in promoted {
            tracing::info!(id, "manager caught up: it is a voter now");
        }
        Ok(())
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
