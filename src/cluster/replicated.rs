//! The Raft wrapper: [`Cluster`] replicates [`Command`]s to every manager
//! and answers what [`ClusterState::apply`] answered once a command is
//! committed. The leader proposes; every manager applies the same log to
//! its own `ClusterState` (the [`swarm_raft::StateMachine`] below). Also
//! how a manager keeps its Raft identity (`DIR/node-id`) and watches its
//! quorum.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm_raft::{Member, ReplicatedNode, ServerState, StateGuard};

use super::{ApplyError, ClusterState, Command, StateSnapshot};

/// How long a proposal may wait to be committed before the client is told
/// that there is no quorum.
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// A leader that heard no quorum for this long refuses writes at once.
const QUORUM_STALE: Duration = Duration::from_secs(1);

/// Most entries a learner may be behind the leader's log to be made a voter.
const PROMOTE_LAG: u64 = 100;

/// How often the leader confirms that it still has a quorum.
const QUORUM_PROBE_EVERY: Duration = Duration::from_millis(200);

/// How long a manager may take to answer a reachability probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Why a proposal did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// Committed, and `apply()` refused it (every replica refused it alike).
    #[error(transparent)]
    Refused(#[from] ApplyError),
    /// This manager is not the leader.
    #[error("this manager is not the primary (primary: {})", .0.as_deref().unwrap_or("unknown"))]
    NotLeader(Option<String>),
    /// No leader with a quorum: nothing was acknowledged.
    #[error("no leader: {0}")]
    NoQuorum(String),
    /// Raft itself failed (stopped, storage).
    #[error("replication failed: {0}")]
    Raft(String),
}

/// The Raft settings of a manager.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Where peers reach this manager's Raft service.
    pub raft_addr: SocketAddr,
    /// Where clients (and followers forwarding them) reach this manager's API.
    pub api_addr: String,
    /// Directory of the Raft log, snapshots and the manager's ID.
    pub data_dir: std::path::PathBuf,
    /// Build a snapshot every this many applied entries.
    pub snapshot_logs: u64,
    /// The leader's heartbeat (see [`swarm_raft::Config::with_heartbeat`]).
    pub heartbeat: Duration,
    /// Mutual TLS on the Raft port and toward peers; `None`: plaintext.
    pub tls: Option<swarm_raft::RaftTls>,
}

/// One manager as the cluster knows it (`swarmctl members`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Raft node ID.
    pub id: u64,
    /// Docker API address.
    pub api_addr: String,
    /// Raft address.
    pub raft_addr: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// The current term as the leader knows it.
    pub term: u64,
    /// The member's last log index: the leader's own, or what it matched on the member.
    pub last_log_index: Option<u64>,
    /// Applied index (exact for the leader; the matched index for the others).
    pub applied_index: Option<u64>,
    /// Whether its Raft address answered a probe just now.
    pub reachable: bool,
}

/// The replicated cluster state of this manager: every change is a
/// [`Command`] committed through Raft (openraft, sled log, tonic transport)
/// and applied by every manager alike.
pub struct Cluster {
    raft: ReplicatedNode<ClusterState>,
    api_addr: String,
    /// While leading: when a quorum was last confirmed (see
    /// [`Cluster::watch_quorum`]); `None` while not leading.
    quorum_seen: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Cluster {
    /// Starts this manager's Raft node on `settings` (its ID is kept in the
    /// data dir, so a restart rejoins with the same identity).
    pub async fn start(settings: &RaftSettings) -> Result<Cluster, ClusterError> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| ClusterError::DataDir(settings.data_dir.display().to_string(), e))?;
        let id = node_id(&settings.data_dir)?;
        let config = swarm_raft::Config {
            cluster_name: "swarm".into(),
            snapshot_logs_since_last: settings.snapshot_logs.max(1),
            max_in_snapshot_log_to_keep: settings.snapshot_logs.clamp(1, 100),
            tls: settings.tls.clone(),
            ..swarm_raft::Config::with_heartbeat(settings.heartbeat)
        };
        let raft = ReplicatedNode::start(
            id,
            settings.raft_addr,
            settings.data_dir.join("raft"),
            config,
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        Ok(Cluster {
            raft,
            api_addr: settings.api_addr.clone(),
            quorum_seen: std::sync::Mutex::new(None),
        })
    }

    /// While this manager leads, confirms its quorum a few times a second
    /// (one heartbeat round), so that a leader cut off from the others
    /// knows within a second and refuses work at once. Runs until `cancel`.
    pub async fn watch_quorum(&self, cancel: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(QUORUM_PROBE_EVERY) => {}
            }
            if !self.is_leader() {
                *self.quorum_seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
                continue;
            }
            // Winning the election confirmed a quorum.
            self.quorum_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(std::time::Instant::now);
            let confirmed = tokio::time::timeout(
                QUORUM_PROBE_EVERY * 2,
                self.raft.raft().ensure_linearizable(),
            )
            .await;
            if matches!(confirmed, Ok(Ok(_))) && self.is_leader() {
                *self.quorum_seen.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(std::time::Instant::now());
            }
        }
    }

    /// This manager's Raft ID.
    pub fn id(&self) -> u64 {
        self.raft.id()
    }

    /// This manager as a Raft member.
    pub fn member(&self) -> Member {
        Member::new(self.raft.raft_addr().to_string(), self.api_addr.clone())
    }

    /// Whether this manager already belongs to a cluster (from its data dir).
    pub fn has_membership(&self) -> bool {
        !self.members_addrs().is_empty()
    }

    /// Makes this manager the only member of a new cluster.
    pub async fn bootstrap(&self) -> Result<(), ClusterError> {
        let members = BTreeMap::from([(self.id(), self.member())]);
        match self.raft.initialize(members).await {
            Ok(()) | Err(swarm_raft::Error::AlreadyInitialized(_)) => Ok(()),
            Err(e) => Err(ClusterError::Raft(e.to_string())),
        }
    }

    /// On the leader: adds manager `id` as a learner. It votes, and counts
    /// for the quorum, only once [`Cluster::promote_learners`] finds it
    /// caught up: a manager that never answers (or is still far behind)
    /// cannot take the cluster's quorum away.
    pub async fn add_manager(&self, id: u64, member: Member) -> Result<(), ProposeError> {
        self.check_leader()?;
        let known = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned();
        if known.as_ref() != Some(&member) {
            self.raft
                .add_learner(id, member)
                .await
                .map_err(raft_error)?;
        }
        Ok(())
    }

    /// On the leader: makes every learner whose log is within
    /// `PROMOTE_LAG` entries of the leader's a voter; the ones promoted.
    pub async fn promote_learners(&self) -> Result<Vec<u64>, ProposeError> {
        self.check_leader()?;
        let learners: Vec<u64> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .learner_ids()
            .collect();
        let ready: Vec<u64> = learners
            .into_iter()
            .filter(|id| self.raft.lag(*id).is_some_and(|lag| lag <= PROMOTE_LAG))
            .collect();
        if ready.is_empty() {
            return Ok(ready);
        }
        let mut voters = self.voters();
        voters.extend(ready.iter().copied());
        self.raft
            .change_membership(voters)
            .await
            .map_err(raft_error)?;
        Ok(ready)
    }

    /// Whether manager `id` is a voter.
    pub fn is_voter(&self, id: u64) -> bool {
        self.voters().contains(&id)
    }

    /// On the leader: removes manager `id` from the cluster.
    pub async fn remove_manager(&self, id: u64) -> Result<(), ProposeError> {
        self.check_leader()?;
        self.raft.remove_member(id).await.map_err(raft_error)
    }

    /// Replicates `command`; answers what `apply()` answered once it is
    /// committed. Only the leader proposes; without a quorum this fails
    /// within a few seconds and nothing is acknowledged.
    pub async fn propose(&self, command: Command) -> Result<(), ProposeError> {
        self.check_leader()?;
        if self.read().is_noop(&command) {
            return Ok(()); // nothing new: nothing to replicate
        }
        if self.lost_quorum() {
            return Err(ProposeError::NoQuorum(self.quorum_text().await));
        }
        let write = self.raft.propose(command);
        tokio::pin!(write);
        let deadline = tokio::time::sleep(WRITE_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                outcome = &mut write => {
                    return match outcome {
                        Ok(output) => output.map_err(ProposeError::Refused),
                        Err(e) => Err(raft_error(e)),
                    };
                }
                _ = &mut deadline => break,
                // Give up as soon as the quorum is known lost.
                _ = tokio::time::sleep(QUORUM_PROBE_EVERY / 2) => {
                    if self.lost_quorum() {
                        break;
                    }
                }
            }
        }
        Err(ProposeError::NoQuorum(self.quorum_text().await))
    }

    /// A read view of the applied state. Do not hold it across an `.await`.
    pub fn read(&self) -> StateGuard<'_, ClusterState> {
        self.raft.state()
    }

    /// Whether this manager leads but has heard no quorum for a while: it
    /// may have been deposed without knowing, and must not act.
    pub fn lost_quorum(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let voters = m.membership_config.membership().voter_ids().count();
        if m.state != ServerState::Leader || voters <= 1 {
            return false;
        }
        match *self.quorum_seen.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(seen) => seen.elapsed() > QUORUM_STALE,
            // Leading for less than a probe interval: just elected, which
            // took a quorum.
            None => false,
        }
    }

    /// Whether this manager leads (in its own view).
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// A watch that changes whenever Raft's view changes (role, leader, term).
    pub fn metrics(&self) -> tokio::sync::watch::Receiver<swarm_raft::Metrics> {
        self.raft.metrics()
    }

    /// The leader's API address, when a leader is known.
    pub fn leader_api(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.api_addr.clone())
    }

    /// Resolves once this manager no longer takes the manager at API
    /// address `leader` for the leader: another one leads, or none does (an
    /// election began here, as when this manager stopped hearing it).
    pub async fn leader_left(&self, leader: &str) {
        let mut metrics = self.raft.metrics();
        loop {
            metrics.borrow_and_update();
            if self.leader_api().as_deref() != Some(leader) {
                return;
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: no leader any more.
                return;
            }
        }
    }

    /// `cluster has K of N managers`: how many members answer now.
    pub async fn quorum_text(&self) -> String {
        let members = self.members_addrs();
        let total = members.len();
        let up = futures::future::join_all(members.iter().map(|(_, m)| reachable(&m.raft_addr)))
            .await
            .into_iter()
            .filter(|up| *up)
            .count();
        format!("cluster has {up} of {total} managers")
    }

    /// Every member with its state, as the leader sees it.
    pub async fn members(&self) -> Vec<MemberStatus> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members = self.members_addrs();
        let reachable = futures::future::join_all(
            members
                .iter()
                .map(|(id, m)| async move { *id == metrics.id || reachable(&m.raft_addr).await }),
        )
        .await;
        members
            .into_iter()
            .zip(reachable)
            .map(|((id, m), reachable)| {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index);
                let (last, applied) = if id == metrics.id {
                    (
                        metrics.last_log_index,
                        metrics.last_applied.map(|l| l.index),
                    )
                } else {
                    (matched, matched)
                };
                let role = if Some(id) == metrics.current_leader {
                    "leader"
                } else if voters.contains(&id) {
                    "follower"
                } else {
                    "learner"
                };
                MemberStatus {
                    id,
                    api_addr: m.api_addr,
                    raft_addr: m.raft_addr,
                    role: role.into(),
                    term: metrics.current_term,
                    last_log_index: last,
                    applied_index: applied,
                    reachable,
                }
            })
            .collect()
    }

    /// Stops Raft (on shutdown).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::debug!(error = %e, "raft shutdown");
        }
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    fn members_addrs(&self) -> Vec<(u64, Member)> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, m)| (*id, m.clone()))
            .collect()
    }

    fn check_leader(&self) -> Result<(), ProposeError> {
        let state = self.raft.metrics().borrow().state;
        if state == ServerState::Leader {
            Ok(())
        } else {
            Err(ProposeError::NotLeader(self.leader_api()))
        }
    }
}

/// Why the replicated state could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The data directory is unusable.
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// Raft could not start or bootstrap.
    #[error("raft: {0}")]
    Raft(String),
}

fn raft_error(e: swarm_raft::Error) -> ProposeError {
    match e {
        swarm_raft::Error::ForwardToLeader { leader_node, .. } => {
            ProposeError::NotLeader(leader_node.map(|n| n.api_addr))
        }
        swarm_raft::Error::NoQuorum(m) => ProposeError::NoQuorum(m),
        other => ProposeError::Raft(other.to_string()),
    }
}

/// Whether a TCP connection to `addr` opens quickly.
async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// This manager's Raft ID: read from `DIR/node-id`, or chosen and written
/// there on the first start.
fn node_id(dir: &Path) -> Result<u64, ClusterError> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            ClusterError::DataDir(
                path.display().to_string(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            // Any non-zero number unlikely to repeat among a few managers.
            let id = (nanos ^ (u64::from(std::process::id()) << 32)) % 1_000_000_000 + 1;
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| ClusterError::DataDir(path.display().to_string(), e))?;
            Ok(id)
        }
        Err(e) => Err(ClusterError::DataDir(path.display().to_string(), e)),
    }
}

impl swarm_raft::StateMachine for ClusterState {
    /// 1: what managers wrote before formats were recorded; 2: the tokens,
    /// discovery URL and ID of the cluster, containers' command and
    /// creation time, signed overcommit. Bump it with any change to how
    /// `ClusterState` or `Command` encode.
    const FORMAT: u32 = 2;
    type Command = Command;
    type Output = Result<(), ApplyError>;
    type Snapshot = StateSnapshot;

    fn apply(&mut self, command: Command) -> Self::Output {
        ClusterState::apply(self, command)
    }

    /// Containers, nodes and creates in flight: what a snapshot encodes.
    fn weight(&self) -> u64 {
        (self.containers.len() + self.nodes.len() + self.reservations.len()) as u64
    }

    fn snapshot(&self) -> StateSnapshot {
        ClusterState::snapshot(self)
    }
}
