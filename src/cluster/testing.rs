//! Builders of cluster states for tests, shared by the cluster's own tests,
//! the scheduler's and the API's: states are built only through
//! [`Command`]s and [`ClusterState::apply`], as the managers build them.
//!
//! The first builders describe nodes and containers in full (`info`,
//! `container`, `res`) and add them to a state (`add_node`, `observe`,
//! `images`, `usage_world`); the last ones (`engine`, `listed`,
//! `two_nodes`) are the small defaults of the state's own tests.

use super::{
    Checks, ClusterState, Command, Container, ContainerState, HostPort, ImageRef, NodeInfo, Proto,
    Reservation, Resources,
};

pub(crate) const MIB: i64 = 1 << 20;
pub(crate) const GIB: i64 = 1 << 30;

/// Applies `command`, which must succeed.
pub(crate) fn run(state: &mut ClusterState, command: Command) {
    let shown = format!("{command:?}");
    state
        .apply(command)
        .unwrap_or_else(|e| panic!("apply({shown}) failed: {e}"));
}

/// A Linux engine (Ubuntu, x86_64, overlay2) with `cpus`, `memory` and
/// `labels`, reached at `tcp://HOSTNAME:2375`.
pub(crate) fn info(
    id: &str,
    hostname: &str,
    cpus: i64,
    memory: i64,
    labels: &[(&str, &str)],
) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        hostname: hostname.into(),
        addr: format!("tcp://{hostname}:2375"),
        cpus,
        memory,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        operating_system: "Ubuntu 22.04.4 LTS".into(),
        os_type: "linux".into(),
        architecture: "x86_64".into(),
        kernel_version: "5.15.0-105-generic".into(),
        storage_driver: "overlay2".into(),
        server_version: "24.0.7".into(),
        api_version: "1.43".into(),
        observed_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// Applies `NodeObserved` for `info`.
pub(crate) fn add_node(state: &mut ClusterState, info: NodeInfo) {
    run(state, Command::NodeObserved(info));
}

/// Marks node `id` unhealthy (`NodeFailed`).
pub(crate) fn fail_node(state: &mut ClusterState, id: &str) {
    run(
        state,
        Command::NodeFailed {
            id: id.into(),
            error: "connection refused".into(),
            unhealthy: true,
            at: "2026-01-01T00:01:00Z".into(),
        },
    );
}

/// A running `busybox:latest` container with `labels`, holding `resources`
/// (`None`: unknown, as in a list entry).
pub(crate) fn container(
    id: &str,
    node: &str,
    name: &str,
    labels: &[(&str, &str)],
    resources: Option<Resources>,
) -> Container {
    Container {
        id: id.into(),
        node: node.into(),
        name: name.into(),
        image: "busybox:latest".into(),
        state: ContainerState::Running,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        resources,
        command: String::new(),
        created: 0,
    }
}

/// Observes a [`container`] built from the same arguments.
pub(crate) fn add_container(
    state: &mut ClusterState,
    id: &str,
    node: &str,
    name: &str,
    labels: &[(&str, &str)],
    resources: Option<Resources>,
) {
    observe(state, container(id, node, name, labels, resources));
}

/// Applies `ContainerObserved` for `container`.
pub(crate) fn observe(state: &mut ClusterState, container: Container) {
    run(state, Command::ContainerObserved(container));
}

/// `Reserve` of `resources` on `node`, with overcommit `oc` and every check.
pub(crate) fn reserve_cmd(
    id: &str,
    node: &str,
    name: Option<&str>,
    resources: Resources,
    oc: crate::cluster::OvercommitPpm,
) -> Command {
    Command::Reserve {
        reservation: Reservation {
            id: id.into(),
            node: node.into(),
            name: name.map(str::to_string),
            resources,
            swarm_id: None,
        },
        overcommit: oc,
        checks: Checks::default(),
    }
}

/// Applies `ImagesObserved` for `node`: `(ID, tags)` pairs.
pub(crate) fn images(state: &mut ClusterState, node: &str, list: &[(&str, &[&str])]) {
    run(
        state,
        Command::ImagesObserved {
            node: node.into(),
            images: list
                .iter()
                .map(|(id, tags)| ImageRef {
                    id: id.to_string(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                })
                .collect(),
        },
    );
}

/// `8080/tcp`, `127.0.0.1:53/udp`, `[::]:53/udp`, `8080` (tcp).
pub(crate) fn host_port(text: &str) -> HostPort {
    let (addr, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let (ip, port) = match addr.strip_prefix('[').and_then(|a| a.split_once("]:")) {
        Some((ip, port)) => (ip, port),
        None => addr.rsplit_once(':').unwrap_or(("", addr)),
    };
    HostPort {
        ip: ip.into(),
        port: port.parse().unwrap(),
        proto: Proto::parse(proto).unwrap(),
    }
}

/// CPU in thousandths, memory in bytes, ports as [`host_port`] reads them.
pub(crate) fn res(cpus_milli: u64, memory: i64, ports: &[&str]) -> Resources {
    Resources {
        cpus_milli,
        memory,
        ports: ports.iter().map(|p| host_port(p)).collect(),
    }
}

/// A node: name, CPUs, memory, CPU and memory held, extra containers that
/// hold nothing (they count as containers only).
pub(crate) type NodeRow = (&'static str, i64, i64, u64, i64, usize);

/// Nodes named `name` with IDs `ID-name` (so ID order is name order).
pub(crate) fn usage_world(rows: &[NodeRow]) -> ClusterState {
    let mut s = ClusterState::default();
    for &(name, cpus, memory, used_cpu, used_memory, extra) in rows {
        let id = format!("ID-{name}");
        add_node(&mut s, info(&id, name, cpus, memory, &[]));
        if used_cpu > 0 || used_memory > 0 {
            add_container(
                &mut s,
                &format!("{name}-used"),
                &id,
                &format!("{name}-used"),
                &[],
                Some(res(used_cpu, used_memory, &[])),
            );
        }
        for i in 0..extra {
            add_container(
                &mut s,
                &format!("{name}-extra-{i}"),
                &id,
                &format!("{name}-extra-{i}"),
                &[],
                None,
            );
        }
    }
    s
}

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
        labels: crate::cluster::Labels::default(),
        resources: None,
        command: String::new(),
        created: 0,
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
