//! `_ping`, `version` and the aggregated `info` with Swarm's per-node section.

use std::fmt::Display;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bollard::models::{SystemInfo, SystemVersion};

use super::{json_response, version_cmp, App, FALLBACK_API_VERSION};
use crate::cluster::{human_bytes, human_cpus, ClusterState, NodeHealth};
use crate::manager::Manager;

/// `swarm/<crate version>`, the server version clients see.
pub fn server_version() -> String {
    format!("swarm/{}", env!("CARGO_PKG_VERSION"))
}

/// The highest API version every known node speaks.
pub fn api_version(manager: &Manager) -> String {
    manager
        .state()
        .nodes
        .values()
        .map(|n| n.info.api_version.clone())
        .filter(|v| !v.is_empty())
        .min_by(|a, b| version_cmp(a, b))
        .unwrap_or_else(|| FALLBACK_API_VERSION.to_string())
}

pub(super) async fn ping(State(app): State<Arc<App>>) -> Response {
    let mut response = Response::new(Body::from("OK"));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&api_version(&app.manager)) {
        headers.insert("api-version", v);
    }
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert("pragma", HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(super) async fn version(State(app): State<Arc<App>>) -> Response {
    let api = api_version(&app.manager);
    let version = SystemVersion {
        version: Some(server_version()),
        api_version: Some(api),
        // Requests are forwarded with the client's version: engines since
        // Docker 1.12 accept 1.24, the oldest the docker CLI still speaks.
        min_api_version: Some("1.24".to_string()),
        git_commit: Some(
            option_env!("SWARM_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
        ),
        go_version: Some(format!("rust (swarm {})", env!("CARGO_PKG_VERSION"))),
        os: Some(std::env::consts::OS.to_string()),
        arch: Some(go_arch().to_string()),
        kernel_version: Some(kernel_version()),
        ..Default::default()
    };
    json_response(StatusCode::OK, &version)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub(super) async fn info(State(app): State<Arc<App>>) -> Response {
    let manager = &app.manager;
    let pending: Vec<(String, Option<String>)> = manager
        .engine_slots()
        .into_iter()
        .filter(|(_, slot)| slot.node().is_none())
        .map(|(addr, slot)| (addr, slot.engine.error()))
        .collect();
    let state = manager.state();
    let mut info = aggregate(&state);
    info.id = state.cluster_id.clone();
    info.name = Some(hostname());
    info.kernel_version = Some(kernel_version());
    info.n_events_listener = Some(manager.events.listeners() as i64);
    let role = if manager.is_leader() {
        Role::Primary
    } else {
        Role::Replica {
            primary: manager.leader_api(),
        }
    };
    let strategy = manager.config.placement.strategy.to_string();
    /// `info` as the engine's, plus swarm's `SystemStatus` pairs.
    #[derive(serde::Serialize)]
    struct Info<'a> {
        #[serde(flatten)]
        info: &'a SystemInfo,
        #[serde(rename = "SystemStatus")]
        status: SystemStatus<'a>,
    }
    json_response(
        StatusCode::OK,
        &Info {
            info: &info,
            status: SystemStatus {
                state: &state,
                role: &role,
                strategy: &strategy,
                filters: &manager.config.placement.filters,
                pending: &pending,
                sections: &app.info_sections,
            },
        },
    )
}

/// Calls that any engine answers alike, passed through to one healthy
/// node: a registry search (`GET /images/search`), a login (`POST
/// /auth`), a registry lookup (`GET /distribution/{name}/json`).
pub(super) async fn on_any_node(
    State(app): State<Arc<App>>,
    axum::Extension(version): axum::Extension<super::ClientVersion>,
    request: axum::extract::Request,
) -> Result<Response, super::ApiError> {
    let path = request.uri().path().to_string();
    let (_, engine) = app.manager.some_healthy_engine(&format!("answer {path}"))?;
    let target = super::with_query(
        &format!("{}{path}", version.prefix()),
        &super::query_of(&request),
    );
    super::proxy::forward(engine.http(), request, &target).await
}

/// `GET /events`: the cluster's events (see [`crate::manager::events`]),
/// one JSON object per line, filtered by `filters`: with `since` (Unix
/// seconds) first the kept ones from then on, then the new ones; ends at
/// `until` (Unix seconds) if given.
pub(super) async fn events(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
) -> Result<Response, super::ApiError> {
    let query = super::query_of(&request);
    let filter = crate::manager::events::EventFilter::parse(
        super::query_param(&query, "filters").as_deref(),
    )
    .map_err(super::ApiError::bad_request)?;
    let seconds = |key: &str| -> Result<Option<f64>, super::ApiError> {
        match super::query_param(&query, key).filter(|v| !v.is_empty()) {
            Some(text) => text.parse::<f64>().map(Some).map_err(|_| {
                super::ApiError::bad_request(format!("invalid value for {key}: {text}"))
            }),
            None => Ok(None),
        }
    };
    let since = seconds("since")?;
    let until = seconds("until")?;
    let deadline = until.map(|until| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        tokio::time::Instant::now() + std::time::Duration::from_secs_f64((until - now).max(0.0))
    });
    let (past, rx) = app.manager.events.subscribe_since(since);
    let past: std::collections::VecDeque<_> = past
        .into_iter()
        .filter(|e| until.is_none_or(|until| e.time() <= until))
        .collect();
    // The kept events first, then the new ones, through one filter.
    let stream = futures::stream::unfold(
        (past, rx, filter),
        move |(mut past, mut rx, filter)| async move {
            loop {
                let event = match past.pop_front() {
                    Some(event) => event,
                    None => next_live(&mut rx, deadline).await?,
                };
                let event = event.to_json();
                if filter.matches(&event) {
                    return Some((
                        Ok::<_, std::convert::Infallible>(event_line(&event)),
                        (past, rx, filter),
                    ));
                }
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .map_err(|e| super::ApiError::internal(e.to_string()))
}

/// The next event published, or `None` once `deadline` passed or the hub
/// closed. A subscriber that fell behind skips what it missed.
async fn next_live(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<crate::manager::events::Event>>,
    deadline: Option<tokio::time::Instant>,
) -> Option<Arc<crate::manager::events::Event>> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let next = match deadline {
            Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok()?,
            None => rx.recv().await,
        };
        match next {
            Ok(event) => return Some(event),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "events subscriber too slow: events dropped");
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

/// One event as a line of the stream.
fn event_line(event: &serde_json::Value) -> bytes::Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    bytes::Bytes::from(line)
}

/// Cluster-wide `info` fields from the state: counts and summed capacity.
pub fn aggregate(state: &ClusterState) -> SystemInfo {
    let counts = state.containers.counts();
    SystemInfo {
        containers: Some(counts.total as i64),
        containers_running: Some(counts.running as i64),
        containers_paused: Some(counts.paused as i64),
        containers_stopped: Some(counts.stopped() as i64),
        images: Some(state.nodes.values().map(|n| n.images.len() as i64).sum()),
        ncpu: Some(state.nodes.values().map(|n| n.info.cpus).sum()),
        mem_total: Some(state.nodes.values().map(|n| n.info.memory).sum()),
        server_version: Some(server_version()),
        operating_system: Some(std::env::consts::OS.to_string()),
        os_type: Some("linux".to_string()),
        architecture: Some(std::env::consts::ARCH.to_string()),
        driver: Some(String::new()),
        logging_driver: Some(String::new()),
        debug: Some(false),
        n_events_listener: Some(0),
        experimental_build: Some(false),
        // Docker's own swarm mode is not this swarm: report it inactive.
        swarm: Some(bollard::models::SwarmInfo {
            local_node_state: Some(bollard::models::LocalNodeState::INACTIVE),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// This manager's part, as `docker info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The leader: it schedules and talks to the engines.
    Primary,
    /// A follower, forwarding to `primary` (its API address, when known).
    Replica {
        /// The leader's API address.
        primary: Option<String>,
    },
}

/// Swarm's `SystemStatus` section: role (and the primary's address on a
/// replica), strategy, filters, and per node its address, ID, status,
/// containers, reservations, labels, error, update time and server
/// version; engines that never answered show as `Pending`. Written
/// straight into the response: nothing is allocated per pair (5,000 nodes
/// make 55,000 pairs).
pub struct SystemStatus<'a> {
    /// The state to show.
    pub state: &'a ClusterState,
    /// This manager's part.
    pub role: &'a Role,
    /// The placement strategy.
    pub strategy: &'a str,
    /// The enabled filters.
    pub filters: &'a [String],
    /// Engines that never answered: address and last error.
    pub pending: &'a [(String, Option<String>)],
    /// Each node's pairs as last written, kept while it stays the same.
    pub sections: &'a super::info_sections::Sections,
}

impl serde::Serialize for SystemStatus<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        let mut pair = |k: &dyn Display, v: &dyn Display| seq.serialize_element(&Pair(k, v));
        pair(&"Role", &self.role.word())?;
        if let Role::Replica { primary } = self.role {
            pair(&"Primary", &primary.as_deref().unwrap_or("none"))?;
        }
        pair(&"Strategy", &self.strategy)?;
        pair(&"Filters", &self.filters.join(", "))?;
        pair(&"Nodes", &(self.state.nodes.len() + self.pending.len()))?;
        let mut nodes: Vec<_> = self.state.nodes.iter().collect();
        nodes.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        let mut sections = self.sections.lock();
        for (id, node) in nodes {
            let counts = self.state.containers.node_counts(id);
            let revision = self.state.nodes.revision(id);
            let pairs = sections
                .pairs(id, revision, counts, || node_pairs(node, counts))
                .map_err(serde::ser::Error::custom)?;
            for p in pairs {
                seq.serialize_element(p)?;
            }
        }
        let nodes = self.state.nodes.len();
        sections.prune(nodes, |id| self.state.nodes.contains_key(id));
        drop(sections);
        let mut pair = |k: &dyn Display, v: &dyn Display| seq.serialize_element(&Pair(k, v));
        for (addr, error) in self.pending {
            pair(&" (unknown)", &address_of(addr))?;
            pair(&"  └ ID", &"(unknown)")?;
            pair(&"  └ Status", &"Pending")?;
            pair(&"  └ Containers", &"0")?;
            pair(&"  └ Reserved CPUs", &"0 / 0")?;
            pair(&"  └ Reserved Memory", &"0 B / 0 B")?;
            pair(&"  └ Labels", &"")?;
            pair(&"  └ Error", &error.as_deref().unwrap_or("(none)"))?;
            pair(&"  └ UpdatedAt", &"")?;
            pair(&"  └ ServerVersion", &"")?;
        }
        seq.end()
    }
}

/// Node `node`'s pairs of `SystemStatus`, with `counts` its containers, as
/// JSON.
fn node_pairs(
    node: &crate::cluster::Node,
    counts: crate::cluster::StateCounts,
) -> serde_json::Result<Vec<Box<serde_json::value::RawValue>>> {
    let mut pairs = Vec::with_capacity(11);
    let mut pair = |k: &dyn Display, v: &dyn Display| -> serde_json::Result<()> {
        pairs.push(serde_json::value::to_raw_value(&Pair(k, v))?);
        Ok(())
    };
    let (total, running, paused) = (counts.total, counts.running, counts.paused);
    let info = &node.info;
    pair(&format_args!(" {}", node.name), &address_of(&info.addr))?;
    pair(&"  └ ID", &info.id)?;
    let health = match node.health {
        NodeHealth::Healthy => "Healthy",
        NodeHealth::Unhealthy => "Unhealthy",
    };
    pair(&"  └ Status", &health)?;
    pair(
        &"  └ Containers",
        &format_args!(
            "{total} ({running} Running, {paused} Paused, {} Stopped)",
            total - running - paused
        ),
    )?;
    pair(
        &"  └ Reserved CPUs",
        &format_args!("{} / {}", human_cpus(node.usage.cpus_milli), info.cpus),
    )?;
    pair(
        &"  └ Reserved Memory",
        &format_args!(
            "{} / {}",
            human_bytes(node.usage.memory),
            human_bytes(info.memory)
        ),
    )?;
    pair(&"  └ Labels", &Labels(node))?;
    pair(&"  └ Error", &node.error.as_deref().unwrap_or("(none)"))?;
    pair(&"  └ UpdatedAt", &node.updated_at)?;
    pair(&"  └ ServerVersion", &info.server_version)?;
    Ok(pairs)
}

impl Role {
    /// `primary` or `replica`.
    fn word(&self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica { .. } => "replica",
        }
    }
}

/// One `[key, value]` pair, both written through `Display`.
struct Pair<'a>(&'a dyn Display, &'a dyn Display);

impl serde::Serialize for Pair<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut pair = serializer.serialize_tuple(2)?;
        pair.serialize_element(&Shown(self.0))?;
        pair.serialize_element(&Shown(self.1))?;
        pair.end()
    }
}

/// A string written through `Display`.
struct Shown<'a>(&'a dyn Display);

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

/// A node's labels as `info` shows them: its engine labels and the
/// standard keys, `key=value` in the order of those texts, joined.
struct Labels<'a>(&'a crate::cluster::Node);

impl Display for Labels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = &self.0.info;
        let mut labels: Vec<(&str, &str)> = info
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.extend([
            ("kernelversion", info.kernel_version.as_str()),
            ("operatingsystem", info.operating_system.as_str()),
            ("ostype", info.os_type.as_str()),
            ("storagedriver", info.storage_driver.as_str()),
        ]);
        // As the `key=value` texts sort, without making them.
        labels.sort_by(|a, b| {
            let a = a.0.bytes().chain(std::iter::once(b'=')).chain(a.1.bytes());
            let b = b.0.bytes().chain(std::iter::once(b'=')).chain(b.1.bytes());
            a.cmp(b)
        });
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Engine address as shown in `info`: `IP:PORT` for TCP, the URL for unix.
fn address_of(addr: &str) -> String {
    addr.strip_prefix("tcp://").unwrap_or(addr).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::{add_node, container, images, observe, res};
    use crate::cluster::{Container, ContainerState, NodeInfo};

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for (id, host, cpus, mem) in [("ID1", "n1", 2, 1 << 30), ("ID2", "n2", 4, 3 << 30)] {
            add_node(
                &mut s,
                NodeInfo {
                    id: id.into(),
                    hostname: host.into(),
                    addr: format!("tcp://127.0.0.1:{}", 2370 + cpus),
                    cpus,
                    memory: mem,
                    labels: [("region".to_string(), "eu".to_string())].into(),
                    os_type: "linux".into(),
                    storage_driver: "vfs".into(),
                    server_version: "20.10.24".into(),
                    api_version: if cpus == 2 {
                        "1.41".into()
                    } else {
                        "1.43".into()
                    },
                    observed_at: "2026-11-25T00:00:00Z".into(),
                    ..Default::default()
                },
            );
            images(&mut s, id, &[("sha256:1", &["busybox:local"])]);
        }
        for (i, st) in [
            ContainerState::Running,
            ContainerState::Paused,
            ContainerState::Exited,
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("c{i}");
            observe(
                &mut s,
                Container {
                    image: "busybox:local".into(),
                    state: st,
                    ..container(&id, "ID1", &id, &[], Some(res(500, 1 << 29, &[])))
                },
            );
        }
        s
    }

    #[test]
    fn aggregates_counts_and_capacity() {
        let info = aggregate(&state());
        assert_eq!(info.containers, Some(3));
        assert_eq!(info.containers_running, Some(1));
        assert_eq!(info.containers_paused, Some(1));
        assert_eq!(info.containers_stopped, Some(1));
        assert_eq!(info.images, Some(2));
        assert_eq!(info.ncpu, Some(6));
        assert_eq!(info.mem_total, Some(4 << 30));
        assert_eq!(
            info.server_version.as_deref(),
            Some(server_version().as_str())
        );
    }

    /// The pairs `info` writes, read back.
    fn system_status(
        state: &ClusterState,
        role: &Role,
        strategy: &str,
        filters: &[String],
        pending: &[(String, Option<String>)],
    ) -> Vec<[String; 2]> {
        let sections = super::super::info_sections::Sections::default();
        let status = SystemStatus {
            state,
            role,
            strategy,
            filters,
            pending,
            sections: &sections,
        };
        serde_json::from_value(serde_json::to_value(&status).expect("serialize")).expect("pairs")
    }

    #[test]
    fn per_node_section() {
        let pending = vec![(
            "127.0.0.1:9".to_string(),
            Some("connection refused".to_string()),
        )];
        let status = system_status(
            &state(),
            &Role::Primary,
            "spread",
            &["health".into()],
            &pending,
        );
        let get = |k: &str| {
            status
                .iter()
                .filter(|p| p[0] == k)
                .map(|p| p[1].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("Role"), vec!["primary"]);
        assert_eq!(get("Strategy"), vec!["spread"]);
        assert_eq!(get("Nodes"), vec!["3"]);
        assert_eq!(get(" n1"), vec!["127.0.0.1:2372"]);
        assert_eq!(get("  └ ID"), vec!["ID1", "ID2", "(unknown)"]);
        assert_eq!(get("  └ Status"), vec!["Healthy", "Healthy", "Pending"]);
        assert_eq!(
            get("  └ Containers")[0],
            "3 (1 Running, 1 Paused, 1 Stopped)"
        );
        assert_eq!(get("  └ Reserved Memory")[1], "0 B / 3 GiB");
        assert_eq!(get("  └ Reserved Memory")[0], "1.5 GiB / 1 GiB");
        assert_eq!(get("  └ Reserved CPUs")[0], "1.5 / 2");
        assert!(get("  └ Labels")[0].contains("region=eu"));
        assert!(get("  └ Labels")[0].contains("storagedriver=vfs"));
        assert_eq!(
            get("  └ Error"),
            vec!["(none)", "(none)", "connection refused"]
        );
        let replica = |primary: Option<&str>| {
            let role = Role::Replica {
                primary: primary.map(String::from),
            };
            system_status(&state(), &role, "spread", &[], &[])
        };
        assert_eq!(
            replica(Some("10.0.0.1:4000"))[..2],
            [
                ["Role".to_string(), "replica".to_string()],
                ["Primary".to_string(), "10.0.0.1:4000".to_string()]
            ]
        );
        assert_eq!(replica(None)[1][1], "none");
    }

    /// Labels sort as their `key=value` texts do, not by key: `a.b=2`
    /// before `a=1` (`.` sorts before `=`), as the texts sorted before.
    #[test]
    fn labels_sort_as_their_texts() {
        let mut s = ClusterState::default();
        add_node(
            &mut s,
            crate::cluster::testing::info("ID9", "n9", 1, 1 << 30, &[("a", "1"), ("a.b", "2")]),
        );
        let status = system_status(&s, &Role::Primary, "spread", &[], &[]);
        let labels = status
            .iter()
            .find(|p| p[0] == "  └ Labels")
            .expect("labels");
        let texts: Vec<&str> = labels[1].split(", ").collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        assert_eq!(&texts[..2], ["a.b=2", "a=1"]);
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 << 30), "2 GiB");
    }
}
