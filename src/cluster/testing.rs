//! Builders of cluster states for tests, shared by the cluster's own tests
//! and the scheduler's: states are built only through [`Command`]s and
//! [`ClusterState::apply`], as the managers build them.

use std::collections::BTreeMap;

use super::{ClusterState, Command, Container, ContainerState, NodeInfo};

/// An engine with 2 CPUs and 1 GiB, as `docker info` describes it.
pub(crate) fn engine(id: &str, hostname: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        hostname: hostname.into(),
        addr: format!("tcp://127.0.0.1:{}", 2375 + id.len()),
        cpus: 2,
        memory: 1 << 30,
        observed_at: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    }
}

/// A container as a node's list shows it: running `busybox:local`, no
/// labels, what it holds unknown.
pub(crate) fn listed(id: &str, node: &str, name: &str) -> Container {
    Container {
        id: id.into(),
        node: node.into(),
        name: name.into(),
        image: "busybox:local".into(),
        state: ContainerState::Running,
        labels: BTreeMap::new(),
        resources: None,
    }
}

/// Two [`engine`]s with the host name `host`: `AAAA:1111` (named `host`)
/// and `BBBB:2222` (named `host-bbbb`).
pub(crate) fn two_nodes() -> ClusterState {
    let mut s = ClusterState::default();
    s.apply(Command::NodeObserved(engine("AAAA:1111", "host")))
        .unwrap();
    s.apply(Command::NodeObserved(engine("BBBB:2222", "host")))
        .unwrap();
    s
}
