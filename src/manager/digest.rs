//! What this manager's copy of the replicated state is, for a checker to
//! compare across managers (`GET /_swarm/state`): the Raft view (role,
//! term, applied index) and a digest of the state itself. Managers that
//! applied the same log hold the same state, so once they report the same
//! applied index their digests must agree.

use std::hash::{Hash, Hasher};

use serde::Serialize;

use super::{Manager, ManagerError};

/// Reads of the state [`Manager::state_view`] takes at most.
const STATE_READS: u32 = 5;

/// One manager's view of its replicated state.
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    /// Its Raft ID.
    pub id: u64,
    /// `leader`, `follower`, `learner` or `candidate`, as Raft says.
    pub role: String,
    /// Its current term.
    pub term: u64,
    /// The last log index applied to the state the digest was taken of.
    pub applied_index: Option<u64>,
    /// A digest of the whole state (its encoding hashed): equal states,
    /// equal digests, within one build of swarm.
    pub digest: String,
    /// How many containers the state holds.
    pub containers: usize,
    /// With `containers=1`: each container's ID, name and node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<StateContainer>>,
}

/// A container as the state holds it.
#[derive(Debug, Clone, Serialize)]
pub struct StateContainer {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The node it is on.
    pub node: String,
}

impl Manager {
    /// This manager's [`StateView`], with the list of containers when
    /// `with_list`. The applied index is read before and after the state:
    /// when an entry was applied in between, the read is taken again (a
    /// few times; under a steady stream of writes the last read is given,
    /// its index the one read after it).
    pub fn state_view(&self, with_list: bool) -> Result<StateView, ManagerError> {
        for attempt in 1..=STATE_READS {
            let before = self.cluster.metrics().borrow().last_applied;
            let (digest, containers, list) = {
                let state = self.cluster.read();
                let bytes = bincode::serialize(&*state)
                    .map_err(|e| ManagerError::Internal(format!("encoding the state: {e}")))?;
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                let list = with_list.then(|| {
                    state
                        .containers
                        .values()
                        .map(|c| StateContainer {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            node: c.node.clone(),
                        })
                        .collect()
                });
                (
                    format!("{:016x}-{}", hasher.finish(), bytes.len()),
                    state.containers.len(),
                    list,
                )
            };
            let metrics = self.cluster.metrics().borrow().clone();
            if metrics.last_applied != before && attempt < STATE_READS {
                continue;
            }
            return Ok(StateView {
                id: self.cluster.id(),
                role: format!("{:?}", metrics.state).to_lowercase(),
                term: metrics.current_term,
                applied_index: metrics.last_applied.map(|l| l.index),
                digest,
                containers,
                list,
            });
        }
        Err(ManagerError::Internal("no read of the state".into()))
    }
}
