//! Hollow engines: many fake Docker Engines in one process, for tests and
//! benchmarks of the manager at a scale real `dockerd`s cannot reach.
//!
//! A [`Fleet`] of N nodes listens on N TCP ports (node `i` on
//! `base_port + i`, or each on a free port when `base_port` is 0). Every
//! node is an independent engine with its own engine ID (derived from its
//! address, so it is stable across [`Fleet::kill`]/[`Fleet::revive`] and
//! restarts of the process), name (`hollow-<i>`), containers and event
//! stream. Each node serves the subset of the Engine API the manager uses,
//! with and without a `/vX.Y` prefix (API 1.41, minimum 1.12), in the JSON
//! shapes of a Docker 20.10 engine (built from bollard's models):
//!
//! - `GET|HEAD /_ping`, `GET /version`, `GET /info`, `GET /events`
//!   (chunked JSON lines: container create/start/kill/die/stop/pause/
//!   unpause/restart/rename/destroy, network connect/disconnect)
//! - containers: `POST /containers/create`, `GET /containers/json`,
//!   `GET /containers/{id}/json`, `POST /containers/{id}/start|stop|kill|
//!   restart|pause|unpause|wait|rename|resize|attach`, `GET
//!   /containers/{id}/logs`, `DELETE /containers/{id}`
//! - `GET /images/json`, `GET /images/{name}/json` (every node holds
//!   `busybox:local`), `GET /networks`, `GET /networks/{id}`, `GET /volumes`
//!
//! Containers live in memory and run nothing. What a container "does" is
//! read from its command: `true`, `false`, `echo ...`, `exit N`, `sleep N`
//! (alone or in a `sh -c` script) end it with the matching exit code (after
//! the sleep), a shell without `-c` ends at once unless it has a TTY or
//! open stdin, and anything else runs until it is stopped. Logs are canned:
//! what the command echoes, else one line naming the command (`logs`, and
//! `attach`, so `docker run` without `-d` works: the hijacked connection
//! carries each run's output and closes when the container stops; the end
//! of an attached stdin ends a bare `sh`). Restart policies, `--rm`
//! (AutoRemove) and `wait` conditions behave as on Docker. Everything else
//! of the Engine API (exec, pull, build, ...) answers 501.
//!
//! A node can die and come back ([`Fleet::kill`], [`Fleet::revive`], or
//! over HTTP, see [`FleetConfig::admin_port`] and `POST /hollow/kill` on a
//! node): a killed node closes its listener and every open connection, so
//! clients get "connection refused" and broken streams, while its
//! containers stay as they were, like a host cut off the network.
//!
//! All nodes share one tokio runtime; an idle node costs one accept task and
//! a few hundred bytes, a container well under a kilobyte.

mod api;
mod engine;
mod net;
mod shapes;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use engine::{Node, Shared};

/// Why a fleet could not start or a node could not change.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// There is no node with this index.
    #[error("no node {index}: the fleet has {len} nodes")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes there are.
        len: usize,
    },
}

/// What a fleet looks like. [`FleetConfig::default`] is one node on a free
/// port of 127.0.0.1 with 4 CPUs, 8 GiB, no labels, no latency, no admin port.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How many nodes.
    pub nodes: usize,
    /// The address every node listens on.
    pub host: IpAddr,
    /// Node `i` listens on `base_port + i`; 0 gives every node a free port.
    pub base_port: u16,
    /// `NCPU` every node reports.
    pub cpus: i64,
    /// `MemTotal` every node reports, in bytes.
    pub memory: i64,
    /// Engine labels (`key=value`) every node reports.
    pub labels: Vec<String>,
    /// Delay added before every answer.
    pub latency: Duration,
    /// Node `i` is named `<name_prefix>-<first_index + i>`.
    pub name_prefix: String,
    /// The number in the first node's name (a fleet split over several
    /// processes numbers its nodes on from one process to the next).
    pub first_index: usize,
    /// Where the admin endpoint listens (`Some(0)`: a free port; `None`:
    /// no admin endpoint). It answers `POST /hollow/kill?node=I[&for=5s]`,
    /// `POST /hollow/revive?node=I` and `GET /hollow/nodes`.
    pub admin_port: Option<u16>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nodes: 1,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            cpus: 4,
            memory: 8 << 30,
            labels: Vec::new(),
            latency: Duration::ZERO,
            name_prefix: "hollow".into(),
            first_index: 0,
            admin_port: None,
        }
    }
}

/// A running fleet of hollow engines. Dropping it stops every node, its
/// timers and the admin endpoint (their tasks end on the runtime that
/// started them).
pub struct Fleet {
    inner: Arc<FleetInner>,
}

/// What the admin endpoint shares with the fleet.
pub(crate) struct FleetInner {
    nodes: Vec<Arc<Node>>,
    shared: Arc<Shared>,
    admin: Option<SocketAddr>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("nodes", &self.inner.nodes.len())
            .field("admin", &self.inner.admin)
            .finish()
    }
}

impl Fleet {
    /// Binds every node's listener (and the admin endpoint) and returns once
    /// all of them accept connections. Must run inside a tokio runtime.
    pub async fn start(config: FleetConfig) -> Result<Fleet, HollowError> {
        if config.nodes == 0 {
            return Err(HollowError::Config(
                "a fleet needs at least one node".into(),
            ));
        }
        if config.base_port != 0
            && usize::from(config.base_port) + config.nodes - 1 > usize::from(u16::MAX)
        {
            return Err(HollowError::Config(format!(
                "{} nodes from port {} go beyond port 65535",
                config.nodes, config.base_port
            )));
        }
        if let Some(bad) = config.labels.iter().find(|l| !l.contains('=')) {
            return Err(HollowError::Config(format!(
                "label {bad:?} is not key=value"
            )));
        }
        let shared = Arc::new(Shared::new(&config));
        let mut nodes = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let port = match config.base_port {
                0 => 0,
                base => base + i as u16,
            };
            let (listener, addr) = listen_on(&shared, SocketAddr::new(config.host, port))?;
            let node = Arc::new(Node::new(i, addr, shared.clone()));
            node.serve(listener).await;
            nodes.push(node);
        }
        let admin = match config.admin_port {
            Some(port) => Some(listen_on(&shared, SocketAddr::new(config.host, port))?),
            None => None,
        };
        let fleet = Fleet {
            inner: Arc::new(FleetInner {
                nodes,
                shared,
                admin: admin.as_ref().map(|(_, addr)| *addr),
            }),
        };
        if let Some((listener, _)) = admin {
            net::serve_admin(fleet.inner.clone(), listener);
        }
        Ok(fleet)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.nodes.len()
    }

    /// Whether the fleet has no node (never true for a started fleet).
    pub fn is_empty(&self) -> bool {
        self.inner.nodes.is_empty()
    }

    fn node(&self, index: usize) -> Result<&Arc<Node>, HollowError> {
        self.inner.node(index)
    }

    /// Where node `index` listens. Panics if there is no such node.
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.inner.nodes[index].addr
    }

    /// Every node's address, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.inner.nodes.iter().map(|n| n.addr).collect()
    }

    /// A `swarm manage` discovery URL naming every node: `nodes://a,b,...`.
    pub fn discovery(&self) -> String {
        let addrs: Vec<String> = self.addrs().iter().map(|a| a.to_string()).collect();
        format!("nodes://{}", addrs.join(","))
    }

    /// Node `index`'s engine ID (`docker info` `.ID`). Panics if there is no such node.
    pub fn id(&self, index: usize) -> String {
        self.inner.nodes[index].id.clone()
    }

    /// Node `index`'s name (`docker info` `.Name`). Panics if there is no such node.
    pub fn name(&self, index: usize) -> String {
        self.inner.nodes[index].name.clone()
    }

    /// How many containers node `index` holds. Panics if there is no such node.
    pub fn container_count(&self, index: usize) -> usize {
        self.inner.nodes[index].container_count()
    }

    /// Where the admin endpoint listens, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.inner.admin
    }

    /// Whether node `index` answers (is not killed).
    pub fn is_alive(&self, index: usize) -> Result<bool, HollowError> {
        Ok(self.node(index)?.is_alive())
    }

    /// Kills node `index`: closes its listener and every open connection
    /// (clients get connection refused and broken streams). Its containers
    /// stay. Returns once the port is closed; killing a dead node is a no-op.
    pub async fn kill(&self, index: usize) -> Result<(), HollowError> {
        self.node(index)?.kill().await;
        Ok(())
    }

    /// Kills node `index` now and revives it after `duration` (unless it was
    /// revived and killed again meanwhile).
    pub async fn kill_for(&self, index: usize, duration: Duration) -> Result<(), HollowError> {
        self.node(index)?.kill_for(duration).await;
        Ok(())
    }

    /// Revives node `index`: listens again on the same address, with the same
    /// engine ID and containers. Reviving a live node is a no-op.
    pub async fn revive(&self, index: usize) -> Result<(), HollowError> {
        self.node(index)?.revive().await
    }
}

/// Binds `wanted`; on failure stops what the fleet started so far.
fn listen_on(
    shared: &Shared,
    wanted: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), HollowError> {
    let bound = net::bind(wanted).and_then(|l| {
        let addr = l.local_addr()?;
        Ok((l, addr))
    });
    bound.map_err(|source| {
        shared.shutdown.cancel();
        HollowError::Bind {
            addr: wanted,
            source,
        }
    })
}

impl FleetInner {
    fn node(&self, index: usize) -> Result<&Arc<Node>, HollowError> {
        self.nodes.get(index).ok_or(HollowError::NoSuchNode {
            index,
            len: self.nodes.len(),
        })
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.inner.shared.shutdown.cancel();
    }
}

/// Parses a memory size as Docker does (`--memory`): a number with an
/// optional binary unit `b`, `k`, `m`, `g`, `t` or `p` (case-insensitive,
/// optionally followed by `b`): `512m`, `8g`, `1.5GB`, `1048576`.
pub fn parse_memory(s: &str) -> Result<i64, HollowError> {
    let bad = || HollowError::Config(format!("invalid memory size {s:?}"));
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1024").unwrap(), 1024);
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("8g").unwrap(), 8 << 30);
        assert_eq!(parse_memory("8GB").unwrap(), 8 << 30);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("2k").unwrap(), 2048);
        for bad in ["", "g", "8x", "-1g", "1..2m"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }
}
