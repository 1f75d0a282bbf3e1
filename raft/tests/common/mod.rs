//! A tiny state machine and helpers shared by the Raft tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm_raft::{Config, Member, Metrics, ReplicatedNode, StateMachine};

/// An append-only journal of strings; applying answers the new length.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub entries: Vec<String>,
}

impl StateMachine for Journal {
    const FORMAT: u32 = 1;
    type Command = String;
    type Output = usize;
    type Snapshot = Self;

    fn apply(&mut self, command: String) -> usize {
        self.entries.push(command);
        self.entries.len()
    }

    fn snapshot(&self) -> Self {
        self.clone()
    }
}

pub type Node = ReplicatedNode<Journal>;

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn member(node: &Node) -> Member {
    Member::new(node.raft_addr().to_string(), format!("api-{}", node.id()))
}

pub async fn start(id: u64, addr: SocketAddr, dir: &Path, config: &Config) -> Node {
    Node::start(id, addr, dir, config.clone())
        .await
        .expect("start node")
}

/// Starts nodes 1..=n in `dirs` and initializes them as one cluster from node 1.
pub async fn cluster(dirs: &[tempfile::TempDir], config: &Config) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(start(i as u64 + 1, any_port(), dir.path(), config).await);
    }
    let members: BTreeMap<u64, Member> = nodes.iter().map(|n| (n.id(), member(n))).collect();
    nodes[0].initialize(members).await.expect("initialize");
    nodes
}

/// Waits until `node`'s metrics satisfy `check`.
pub async fn wait(
    node: &Node,
    within: Duration,
    what: &str,
    check: impl Fn(&Metrics) -> bool + Send,
) -> Metrics {
    node.raft()
        .wait(Some(within))
        .metrics(check, what)
        .await
        .unwrap_or_else(|e| panic!("node {}: {what}: {e}", node.id()))
}

/// Waits until one of `nodes` is leader and the others follow it; returns its index in `nodes`.
pub async fn wait_leader(nodes: &[&Node], within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let leaders: Vec<Option<u64>> = nodes.iter().map(|n| n.leader()).collect();
        if let Some(Some(leader)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*leader)) {
                if let Some(i) = nodes.iter().position(|n| n.id() == *leader) {
                    if nodes[i].metrics().borrow().state == swarm_raft::ServerState::Leader {
                        return i;
                    }
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader within {within:?}: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn applied_index(node: &Node) -> Option<u64> {
    node.metrics().borrow().last_applied.map(|l| l.index)
}

/// Waits until `node` has applied at least `len` journal entries.
///
/// Content-based on purpose: a proposer's metrics may lag its answers, so
/// comparing applied indexes across nodes races.
pub async fn wait_len(node: &Node, len: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let have = node.read_local(|j| j.entries.len());
        if have >= len {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {}: {have} of {len} entries after {within:?}",
            node.id()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
