//! `swarm-raft`: a generic replicated state machine.
//!
//! Three pieces around one openraft type configuration ([`TypeConfig`]):
//! storage ([`store`]: the log and vote in sled, the state machine in memory
//! with sled snapshots), the network ([`network`]: tonic client and service
//! for `proto/raft.proto`), and the application handle, [`ReplicatedNode`],
//! which starts a node and proposes, reads and changes membership.
//!
//! It knows nothing of Docker: it replicates opaque bincode commands into any
//! [`StateMachine`], and a snapshot is the bincode of the whole state.
//! Concurrent proposals are grouped into one log entry (see `batch.rs`).

mod batch;
mod chunks;
pub mod network;
mod snapshots;
pub mod store;
mod tls;

mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("swarm.raft");
}

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Cursor;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::ChangeMembers;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch, Mutex};
use tokio::task::JoinHandle;

pub use openraft;
pub use openraft::{RaftMetrics, ServerState};
pub use tls::RaftTls;

use crate::batch::Proposer;
use crate::network::{NetworkFactory, RaftService, MAX_MESSAGE_BYTES};
use crate::store::{LogStore, SharedState, StateMachineStore};

/// A deterministic state machine that Raft replicates.
///
/// Every replica applies the same commands in the same order and must reach
/// the same state, so `apply` may not read clocks, randomness or the network.
/// A snapshot is the bincode of the whole state, hence the serde bounds.
pub trait StateMachine:
    Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// A command carried through the log.
    type Command: Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static;
    /// What applying a command answers to its proposer.
    type Output: Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static;
    /// The version of the encoding of the state and its commands, recorded
    /// with the data: a node refuses at start data of another version (or
    /// of none, written before versions were recorded), which it could not
    /// decode.
    const FORMAT: u32;
    /// What a snapshot encodes: the state as it was when taken, encoding
    /// to the same bincode as the state itself.
    type Snapshot: Serialize + Send + 'static;

    /// Applies one committed command.
    fn apply(&mut self, command: Self::Command) -> Self::Output;

    /// About how many objects the state holds: a snapshot waits for at
    /// least half as many entries since the last one (see
    /// [`Config::snapshot_logs_since_last`]), so that its cost per entry
    /// stays the same however large the state grows.
    fn weight(&self) -> u64 {
        0
    }

    /// The state as it is now, for a snapshot. Taken under the state's
    /// read lock, which `apply` waits for, and encoded after it is
    /// released: it should be cheap (a clone of shared parts), not a deep
    /// copy of a large state.
    fn snapshot(&self) -> Self::Snapshot;
}

/// The addresses of one Raft member: where peers reach its Raft service, and
/// where clients reach its application API (to be forwarded to the leader).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` of the Raft service (`proto/raft.proto`).
    pub raft_addr: String,
    /// The application's API address, opaque to Raft.
    pub api_addr: String,
}

impl Member {
    /// A member reachable at `raft_addr`, serving clients at `api_addr`.
    pub fn new(raft_addr: impl Into<String>, api_addr: impl Into<String>) -> Self {
        Self {
            raft_addr: raft_addr.into(),
            api_addr: api_addr.into(),
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft {} api {}", self.raft_addr, self.api_addr)
    }
}

/// The openraft type configuration replicating `S`.
///
/// The response of an entry is `None` for entries that carry no command
/// (blank entries of a new leader, membership changes).
pub struct TypeConfig<S>(PhantomData<fn() -> S>);

impl<S> fmt::Debug for TypeConfig<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypeConfig")
    }
}
impl<S> Clone for TypeConfig<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for TypeConfig<S> {}
impl<S> Default for TypeConfig<S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}
impl<S> PartialEq for TypeConfig<S> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<S> Eq for TypeConfig<S> {}
impl<S> PartialOrd for TypeConfig<S> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<S> Ord for TypeConfig<S> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<S: StateMachine> openraft::RaftTypeConfig for TypeConfig<S> {
    /// One entry carries the commands proposed together (group commit).
    type D = Vec<S::Command>;
    /// Their outputs, in order (none for blank and membership entries).
    type R = Vec<S::Output>;
    type NodeId = u64;
    type Node = Member;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// Raft metrics of one node: its state, the current leader, term, last log
/// index, applied index, snapshot, purged log and membership.
pub type Metrics = RaftMetrics<u64, Member>;

/// The directory, inside a node's data directory, of the sled database
/// that holds its current snapshot (see [`store::StateMachineStore`]).
pub const SNAPSHOT_DIR: &str = "snapshot";

/// The default leader heartbeat, in milliseconds (see
/// [`Config::with_heartbeat`]).
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;

/// Timing and log compaction settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name of the cluster (for logs).
    pub cluster_name: String,
    /// How often the leader sends heartbeats; also the append-entries deadline.
    pub heartbeat_interval: Duration,
    /// A follower hearing no leader for the leader's lease (openraft: the
    /// maximum below) plus a random time between these two, drawn once per
    /// process, starts an election. A wide range makes split votes rare.
    pub election_timeout_min: Duration,
    /// See `election_timeout_min`.
    pub election_timeout_max: Duration,
    /// Build a snapshot once this many entries were applied since the last
    /// one, and at least half of [`StateMachine::weight`].
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log below the last snapshot (for slow followers).
    pub max_in_snapshot_log_to_keep: u64,
    /// Deadline of one snapshot chunk.
    pub install_snapshot_timeout: Duration,
    /// Deadline to establish a connection to a peer.
    pub connect_timeout: Duration,
    /// Deadline of a proposal forwarded to the leader
    /// ([`ReplicatedNode::propose_via_leader`]).
    pub forward_timeout: Duration,
    /// TLS on the Raft port and toward peers; `None`: plaintext.
    pub tls: Option<RaftTls>,
}

impl Default for Config {
    fn default() -> Self {
        // Room for a 100 ms round trip between managers (a 50 ms heartbeat
        // committed nothing over a 60 ms one), a new leader about half a
        // second after the old one's death.
        Config::with_heartbeat(Duration::from_millis(DEFAULT_HEARTBEAT_MS))
    }
}

impl Config {
    /// The default settings with leader heartbeats every `heartbeat`, which
    /// is also openraft's deadline of one append-entries round trip: it
    /// must stay above the round-trip time between managers, or nothing
    /// commits. A follower calls an election after 3.3 to 4.4 heartbeats
    /// without one: openraft waits out the leader's lease (the maximum
    /// election timeout, 2.2 heartbeats) plus a random timeout between the
    /// minimum (1.1) and the maximum, drawn once per process.
    pub fn with_heartbeat(heartbeat: Duration) -> Config {
        Config {
            cluster_name: "swarm".to_string(),
            heartbeat_interval: heartbeat,
            election_timeout_min: heartbeat * 11 / 10,
            election_timeout_max: heartbeat * 22 / 10,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 100,
            install_snapshot_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            forward_timeout: Duration::from_secs(5),
            tls: None,
        }
    }

    fn to_openraft(&self) -> Result<openraft::Config, Error> {
        let ms = |d: Duration| d.as_millis() as u64;
        openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: ms(self.install_snapshot_timeout),
            // `snapshots::spawn` asks for them (openraft's policy is a
            // fixed count).
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Config(e.to_string()))
    }
}

/// Why a Raft operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This node is not the leader. `leader_node` says where to send the
    /// request, when a leader is known. A proposal answered this way was not
    /// acknowledged; it may still commit if the old leader had appended it.
    #[error("not the leader (leader: {})", match (.leader_id, .leader_node) {
        (Some(id), Some(node)) => format!("{id} at {node}"),
        (Some(id), None) => id.to_string(),
        _ => "unknown".to_string(),
    })]
    ForwardToLeader {
        /// The leader's node ID, if known.
        leader_id: Option<u64>,
        /// The leader's addresses, if known.
        leader_node: Option<Member>,
    },
    /// The leader could not confirm its leadership with a quorum.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// `initialize` on a node that already has a membership.
    #[error("already initialized: {0}")]
    AlreadyInitialized(String),
    /// A membership change was refused (e.g. another one in progress).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// Invalid settings.
    #[error("invalid raft config: {0}")]
    Config(String),
    /// The Raft node stopped (shut down, or a storage failure).
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// A transport failure while forwarding to the leader.
    #[error("transport: {0}")]
    Transport(String),
    /// Storage could not be opened or read.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// Encoding or decoding failed.
    #[error("encoding: {0}")]
    Encoding(#[from] bincode::Error),
    /// The data directory holds data of another format than this build
    /// reads.
    #[error("{0}")]
    Format(String),
    /// The Raft address could not be bound.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The same error again, for each proposer of a failed batch (the
    /// wrapped library errors become their text).
    fn duplicate(&self) -> Error {
        match self {
            Error::ForwardToLeader {
                leader_id,
                leader_node,
            } => Error::ForwardToLeader {
                leader_id: *leader_id,
                leader_node: leader_node.clone(),
            },
            Error::NoQuorum(m) => Error::NoQuorum(m.clone()),
            Error::AlreadyInitialized(m) => Error::AlreadyInitialized(m.clone()),
            Error::Membership(m) => Error::Membership(m.clone()),
            Error::Config(m) => Error::Config(m.clone()),
            Error::Fatal(m) => Error::Fatal(m.clone()),
            Error::Transport(m) => Error::Transport(m.clone()),
            Error::Storage(e) => Error::Fatal(format!("storage: {e}")),
            Error::Encoding(e) => Error::Fatal(format!("encoding: {e}")),
            Error::Format(m) => Error::Format(m.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl From<RaftError<u64, ClientWriteError<u64, Member>>> for Error {
    fn from(e: RaftError<u64, ClientWriteError<u64, Member>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::ForwardToLeader {
                leader_id: f.leader_id,
                leader_node: f.leader_node,
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                Error::Membership(e.to_string())
            }
            RaftError::Fatal(f) => Error::Fatal(f.to_string()),
        }
    }
}

impl From<RaftError<u64, CheckIsLeaderError<u64, Member>>> for Error {
    fn from(e: RaftError<u64, CheckIsLeaderError<u64, Member>>) -> Self {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => Error::ForwardToLeader {
                leader_id: f.leader_id,
                leader_node: f.leader_node,
            },
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
                Error::NoQuorum(q.to_string())
            }
            RaftError::Fatal(f) => Error::Fatal(f.to_string()),
        }
    }
}

/// A read lock on the applied state; dereferences to `S`.
pub struct StateGuard<'a, S>(std::sync::RwLockReadGuard<'a, store::Applied<S>>);

impl<S> std::ops::Deref for StateGuard<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0.state
    }
}

/// The running Raft service of a node.
struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// One Raft node replicating `S`: the handle the application holds.
pub struct ReplicatedNode<S: StateMachine> {
    id: u64,
    raft: openraft::Raft<TypeConfig<S>>,
    proposer: Proposer<S>,
    state: SharedState<S>,
    raft_addr: SocketAddr,
    network: NetworkFactory,
    forward_timeout: Duration,
    server: Mutex<Option<Server>>,
}

impl<S: StateMachine> ReplicatedNode<S> {
    /// Starts node `id`: opens its storage in `data_dir` (restoring the last
    /// snapshot and log), and serves the Raft RPCs on `raft_addr` (port 0
    /// picks a free port; see [`ReplicatedNode::raft_addr`]).
    ///
    /// A new node waits for [`initialize`](Self::initialize) (first member)
    /// or to be added by the leader; a restarted one rejoins its cluster.
    pub async fn start(
        id: u64,
        raft_addr: SocketAddr,
        data_dir: impl AsRef<Path>,
        config: Config,
    ) -> Result<Self, Error> {
        let raft_config = Arc::new(config.to_openraft()?);
        let db = store::open_db(data_dir.as_ref())?;
        store::check_format(&db, S::FORMAT, data_dir.as_ref())?;
        let log_store = LogStore::<TypeConfig<S>>::new(&db)?;
        let state_machine = StateMachineStore::<S>::new(&db, data_dir.as_ref().join(SNAPSHOT_DIR))?;
        drop(db);
        let state = state_machine.shared();
        let network = NetworkFactory::new(
            id,
            config.connect_timeout,
            config.tls.as_ref().map(|t| t.client.clone()),
        );
        let listener = tokio::net::TcpListener::bind(raft_addr).await?;
        let raft_addr = listener.local_addr()?;

        let raft = openraft::Raft::new(id, raft_config, network.clone(), log_store, state_machine)
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;
        snapshots::spawn(raft.clone(), state.clone(), config.snapshot_logs_since_last);

        let service = crate::pb::raft_server::RaftServer::new(RaftService::new(raft.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder().add_service(service);
        let stopped = async {
            let _ = stopped.await;
        };
        let task = match &config.tls {
            Some(tls) => tokio::spawn(server.serve_with_incoming_shutdown(
                tls::incoming(listener, tls.server.clone()),
                stopped,
            )),
            None => tokio::spawn(server.serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stopped,
            )),
        };
        tracing::info!(id, %raft_addr, "raft node started");

        Ok(Self {
            id,
            proposer: Proposer::start(raft.clone()),
            raft,
            state,
            raft_addr,
            network,
            forward_timeout: config.forward_timeout,
            server: Mutex::new(Some(Server { stop, task })),
        })
    }

    /// This node's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the Raft service listens on.
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_addr
    }

    /// The openraft handle, for what this API does not cover.
    pub fn raft(&self) -> &openraft::Raft<TypeConfig<S>> {
        &self.raft
    }

    /// Makes this node the first of a new cluster with `members` as voters
    /// (usually just itself). Fails with [`Error::AlreadyInitialized`] on a
    /// node that already has a membership, e.g. after a restart.
    pub async fn initialize(&self, members: BTreeMap<u64, Member>) -> Result<(), Error> {
        self.raft.initialize(members).await.map_err(|e| match e {
            RaftError::APIError(InitializeError::NotAllowed(e)) => {
                Error::AlreadyInitialized(e.to_string())
            }
            RaftError::APIError(InitializeError::NotInMembers(e)) => {
                Error::Membership(e.to_string())
            }
            RaftError::Fatal(f) => Error::Fatal(f.to_string()),
        })
    }

    /// Adds `id` as a learner (on the leader): the log is replicated to it
    /// from now on, and it counts for no quorum until
    /// [`change_membership`](Self::change_membership) makes it a voter
    /// (see [`lag`](Self::lag) for how far behind it is).
    pub async fn add_learner(&self, id: u64, member: Member) -> Result<(), Error> {
        self.raft.add_learner(id, member, false).await?;
        Ok(())
    }

    /// On the leader: how many entries member `id` is behind the leader's
    /// log; `None` when nothing of the log is known to be on it yet (or
    /// this node does not lead).
    pub fn lag(&self, id: u64) -> Option<u64> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let last = m.last_log_index?;
        let matched = m.replication.as_ref()?.get(&id)?.as_ref()?.index;
        Some(last.saturating_sub(matched))
    }

    /// Makes `voters` the voting members (on the leader). Each must be a
    /// member already (e.g. a learner); voters left out are removed.
    pub async fn change_membership(&self, voters: BTreeSet<u64>) -> Result<(), Error> {
        self.raft.change_membership(voters, false).await?;
        Ok(())
    }

    /// Removes member `id` (on the leader), voter or learner. A removed
    /// node stops hearing from the cluster; shut it down.
    pub async fn remove_member(&self, id: u64) -> Result<(), Error> {
        let membership = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        if membership.voter_ids().any(|v| v == id) {
            let voters: BTreeSet<u64> = membership.voter_ids().filter(|v| *v != id).collect();
            self.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
                .await?;
        } else if membership.learner_ids().any(|l| l == id) {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await?;
        }
        Ok(())
    }

    /// Replicates `command` and answers what the leader's `apply` answered,
    /// once it is committed and applied. On a follower it fails with
    /// [`Error::ForwardToLeader`].
    pub async fn propose(&self, command: S::Command) -> Result<S::Output, Error> {
        self.proposer.propose(command).await
    }

    /// Like [`propose`](Self::propose), but a follower sends the command to
    /// the leader it knows of over the Raft transport.
    pub async fn propose_via_leader(&self, command: S::Command) -> Result<S::Output, Error> {
        let leader = match self.raft.current_leader().await {
            Some(leader) if leader != self.id => leader,
            _ => return self.propose(command).await,
        };
        let node = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned();
        let Some(node) = node else {
            return Err(Error::ForwardToLeader {
                leader_id: Some(leader),
                leader_node: None,
            });
        };
        let mut client = self
            .network
            .client(&node.raft_addr)
            .map_err(|e| Error::Transport(e.to_string()))?;
        let data = bincode::serialize(&command)?;
        let forwarded = client.forward(crate::pb::RaftRequest { data });
        let reply = tokio::time::timeout(self.forward_timeout, forwarded)
            .await
            .map_err(|_| Error::Transport(format!("leader {leader} did not answer in time")))?
            .map_err(|s| Error::Transport(s.to_string()))?
            .into_inner();
        if reply.error.is_empty() {
            let outputs: Vec<S::Output> = bincode::deserialize(&reply.data)?;
            outputs
                .into_iter()
                .next()
                .ok_or_else(|| Error::Fatal("a command entry had no output".to_string()))
        } else {
            let e: RaftError<u64, ClientWriteError<u64, Member>> =
                bincode::deserialize(&reply.data)?;
            Err(e.into())
        }
    }

    /// A linearizable read: confirms leadership with a quorum, waits until
    /// everything committed before the call is applied, then runs `f` on the
    /// state. On a follower it fails with [`Error::ForwardToLeader`].
    pub async fn read<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, Error> {
        self.raft.ensure_linearizable().await?;
        Ok(self.read_local(f))
    }

    /// Runs `f` on this node's applied state, without checking leadership:
    /// possibly stale, but never ahead of what is committed. `f` runs under
    /// the state's read lock, which `apply` waits for: keep it short.
    pub fn read_local<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&store::read_state(&self.state).state)
    }

    /// A read view of this node's applied state (see
    /// [`read_local`](Self::read_local)); `apply` waits while it is held, so
    /// drop it soon and never hold it across an `.await`.
    pub fn state(&self) -> StateGuard<'_, S> {
        StateGuard(store::read_state(&self.state))
    }

    /// Whether this node is the leader in its own view (it may have lost its
    /// quorum without knowing yet; see [`Metrics::millis_since_quorum_ack`]).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// A watch of this node's Raft metrics.
    pub fn metrics(&self) -> watch::Receiver<Metrics> {
        self.raft.metrics()
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Builds a snapshot now (in the background), whatever the policy says.
    pub async fn trigger_snapshot(&self) -> Result<(), Error> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Fatal(e.to_string()))
    }

    /// Stops Raft and the Raft service, and closes the storage. Later calls
    /// fail with [`Error::Fatal`].
    pub async fn shutdown(&self) -> Result<(), Error> {
        let result = self.raft.shutdown().await;
        if let Some(server) = self.server.lock().await.take() {
            let _ = server.stop.send(());
            let mut task = server.task;
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        tracing::info!(id = self.id, "raft node stopped");
        result.map_err(|e| Error::Fatal(e.to_string()))
    }
}

impl<S: StateMachine> Drop for ReplicatedNode<S> {
    /// A node dropped without [`shutdown`](ReplicatedNode::shutdown) still
    /// stops serving peers, so it does not linger as a silent member.
    fn drop(&mut self) {
        if let Some(server) = self.server.get_mut().take() {
            let _ = server.stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StateMachine;
    use serde::{Deserialize, Serialize};

    /// A counter: the smallest deterministic state machine.
    #[derive(Clone, Default, Serialize, Deserialize)]
    struct Counter(u64);

    impl StateMachine for Counter {
        const FORMAT: u32 = 1;
        type Command = u64;
        type Output = u64;
        type Snapshot = Self;
        fn apply(&mut self, command: u64) -> u64 {
            self.0 += command;
            self.0
        }
        fn snapshot(&self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn replicas_applying_the_same_log_agree() {
        let log = [3, 1, 4, 1, 5];
        let (mut a, mut b) = (Counter(0), Counter(0));
        let outputs_a: Vec<u64> = log.iter().map(|c| a.apply(*c)).collect();
        let outputs_b: Vec<u64> = log.iter().map(|c| b.apply(*c)).collect();
        assert_eq!(outputs_a, outputs_b);
        assert_eq!(a.0, 14);
    }

    #[test]
    fn default_config_is_valid() {
        super::Config::default().to_openraft().expect("valid");
    }
}
