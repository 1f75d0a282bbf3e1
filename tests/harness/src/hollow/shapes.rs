//! The JSON a Docker 20.10 engine answers, built from bollard's models. The
//! few fields API 1.41 still sends but bollard's (newer) models dropped
//! (`VirtualSize`, the legacy `NetworkSettings` fields, ...) are added to
//! the serialized value.

use std::collections::HashMap;

use bollard::models::{
    Commit, ConfigReference, ContainerConfig, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, ContainerWaitResponse, DriverData,
    EndpointSettings, HostConfig, HostConfigCgroupnsModeEnum, HostConfigIsolationEnum,
    HostConfigLogConfig, ImageInspect, ImageInspectMetadata, ImageInspectRootFs, ImageSummary,
    IndexInfo, Ipam, IpamConfig, LocalNodeState, Network, PluginsInfo, PortBinding, PortMap,
    PortSummary, PortSummaryTypeEnum, RegistryServiceConfig, RestartPolicy, Runtime, SwarmInfo,
    SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, SystemInfoIsolationEnum,
    SystemVersion, SystemVersionComponents, SystemVersionPlatform, VolumeListResponse,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::engine::{
    command_line, derived_hex, image_matches, label_hash, network_of, ApiError, Container, Node,
    State, Status, API_VERSION, IMAGE_CMD, IMAGE_CREATED, IMAGE_ENV, IMAGE_ID, IMAGE_LAYER,
    IMAGE_SIZE, IMAGE_TAG, MIN_API_VERSION, SERVER_VERSION,
};

/// Docker's data root, as reported.
const ROOT: &str = "/var/lib/docker";
/// The bridge network's gateway.
const GATEWAY: &str = "172.17.0.1";
/// Git commit reported for the engine.
const GIT_COMMIT: &str = "5d6db84";
/// Go version reported for the engine.
const GO_VERSION: &str = "go1.19.8";
/// containerd and runc as reported.
const CONTAINERD: (&str, &str) = ("1.6.20", "1.6.20-hollow");
const RUNC: (&str, &str) = ("1.1.5", "1.1.5-hollow");

/// A time as Go's RFC 3339 with nanoseconds (trailing zeros dropped);
/// `None` is Go's zero time.
pub(crate) fn go_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        None => "0001-01-01T00:00:00Z".into(),
        Some(t) => {
            let nanos = t.timestamp_subsec_nanos();
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            if nanos == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{nanos:09}");
                format!("{base}.{}Z", frac.trim_end_matches('0'))
            }
        }
    }
}

/// Docker's `units.HumanDuration`.
pub(crate) fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.num_seconds() + 1800) / 3600;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.num_hours() / 24 / 365)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Adds `extra` to the JSON object `value`.
fn patch(value: &mut Value, extra: Value) {
    if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
        object.extend(extra);
    }
}

fn to_value<T: serde::Serialize>(model: &T) -> Value {
    serde_json::to_value(model).unwrap_or(Value::Null)
}

/// `GET /version`.
pub(crate) fn version(node: &Node) -> SystemVersion {
    let details = HashMap::from([
        ("ApiVersion".to_string(), API_VERSION.to_string()),
        ("Arch".to_string(), go_arch().to_string()),
        (
            "BuildTime".to_string(),
            "2023-04-04T00:00:00.000000000+00:00".to_string(),
        ),
        ("Experimental".to_string(), "false".to_string()),
        ("GitCommit".to_string(), GIT_COMMIT.to_string()),
        ("GoVersion".to_string(), GO_VERSION.to_string()),
        ("KernelVersion".to_string(), node.shared.kernel.clone()),
        ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
        ("Os".to_string(), "linux".to_string()),
    ]);
    let component = |name: &str, version: &str, commit: &str| SystemVersionComponents {
        name: name.to_string(),
        version: version.to_string(),
        details: Some(HashMap::from([(
            "GitCommit".to_string(),
            commit.to_string(),
        )])),
    };
    SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "Hollow Engine".into(),
        }),
        components: Some(vec![
            SystemVersionComponents {
                name: "Engine".into(),
                version: SERVER_VERSION.into(),
                details: Some(details),
            },
            component("containerd", CONTAINERD.0, CONTAINERD.1),
            component("runc", RUNC.0, RUNC.1),
            component("docker-init", "0.19.0", ""),
        ]),
        version: Some(SERVER_VERSION.into()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some(GIT_COMMIT.into()),
        go_version: Some(GO_VERSION.into()),
        os: Some("linux".into()),
        arch: Some(go_arch().into()),
        kernel_version: Some(node.shared.kernel.clone()),
        experimental: None,
        build_time: Some("2023-04-04T00:00:00.000000000+00:00".into()),
    }
}

/// `GET /info`.
pub(crate) fn info(node: &Node) -> Value {
    let (total, running, paused) = {
        let state = node.state();
        let mut running = 0;
        let mut paused = 0;
        for c in state.containers.values() {
            match c.status {
                Status::Paused => paused += 1,
                s if s.is_running() => running += 1,
                _ => {}
            }
        }
        (state.containers.len() as i64, running, paused)
    };
    let commit = |id: &str| Commit {
        id: Some(id.to_string()),
    };
    let runtime = || Runtime {
        path: Some("runc".into()),
        ..Default::default()
    };
    let info = SystemInfo {
        id: Some(node.id.clone()),
        containers: Some(total),
        containers_running: Some(running),
        containers_paused: Some(paused),
        containers_stopped: Some(total - running - paused),
        images: Some(1),
        driver: Some("overlay2".into()),
        driver_status: Some(vec![
            vec!["Backing Filesystem".into(), "extfs".into()],
            vec!["Supports d_type".into(), "true".into()],
            vec!["Native Overlay Diff".into(), "true".into()],
            vec!["userxattr".into(), "false".into()],
        ]),
        docker_root_dir: Some(ROOT.into()),
        plugins: Some(PluginsInfo {
            volume: Some(vec!["local".into()]),
            network: Some(
                ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"]
                    .map(String::from)
                    .to_vec(),
            ),
            authorization: None,
            log: Some(
                [
                    "awslogs",
                    "fluentd",
                    "gcplogs",
                    "gelf",
                    "journald",
                    "json-file",
                    "local",
                    "logentries",
                    "splunk",
                    "syslog",
                ]
                .map(String::from)
                .to_vec(),
            ),
        }),
        memory_limit: Some(true),
        swap_limit: Some(true),
        cpu_cfs_period: Some(true),
        cpu_cfs_quota: Some(true),
        cpu_shares: Some(true),
        cpu_set: Some(true),
        pids_limit: Some(true),
        oom_kill_disable: Some(true),
        debug: Some(false),
        nfd: Some(24),
        n_goroutines: Some(36),
        system_time: Some(go_time(Some(Utc::now()))),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(SystemInfoCgroupVersionEnum::_1),
        n_events_listener: Some(node.listeners() as i64),
        kernel_version: Some(node.shared.kernel.clone()),
        operating_system: Some("Hollow Engine (simulated Docker Engine)".into()),
        os_version: Some(String::new()),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        ncpu: Some(node.shared.cpus),
        mem_total: Some(node.shared.memory),
        index_server_address: Some("https://index.docker.io/v1/".into()),
        registry_config: Some(RegistryServiceConfig {
            insecure_registry_cidrs: Some(vec!["127.0.0.0/8".into()]),
            index_configs: Some(HashMap::from([(
                "docker.io".to_string(),
                IndexInfo {
                    name: Some("docker.io".into()),
                    mirrors: Some(Vec::new()),
                    secure: Some(true),
                    official: Some(true),
                },
            )])),
            mirrors: Some(Vec::new()),
        }),
        generic_resources: None,
        http_proxy: Some(String::new()),
        https_proxy: Some(String::new()),
        no_proxy: Some(String::new()),
        name: Some(node.name.clone()),
        labels: Some(node.shared.labels.clone()),
        experimental_build: Some(false),
        server_version: Some(SERVER_VERSION.into()),
        runtimes: Some(HashMap::from([
            ("io.containerd.runc.v2".to_string(), runtime()),
            ("io.containerd.runtime.v1.linux".to_string(), runtime()),
            ("runc".to_string(), runtime()),
        ])),
        default_runtime: Some("runc".into()),
        swarm: Some(SwarmInfo {
            node_id: Some(String::new()),
            node_addr: Some(String::new()),
            local_node_state: Some(LocalNodeState::INACTIVE),
            control_available: Some(false),
            error: Some(String::new()),
            remote_managers: None,
            ..Default::default()
        }),
        live_restore_enabled: Some(false),
        isolation: Some(SystemInfoIsolationEnum::EMPTY),
        init_binary: Some("docker-init".into()),
        containerd_commit: Some(commit(CONTAINERD.1)),
        runc_commit: Some(commit(RUNC.1)),
        init_commit: Some(commit("")),
        security_options: Some(vec!["name=seccomp,profile=default".into()]),
        warnings: None,
        ..Default::default()
    };
    let mut value = to_value(&info);
    patch(
        &mut value,
        json!({
            "KernelMemory": true,
            "KernelMemoryTCP": true,
            "IPv4Forwarding": true,
            "BridgeNfIptables": true,
            "BridgeNfIp6tables": true,
        }),
    );
    for key in ["ContainerdCommit", "RuncCommit", "InitCommit"] {
        if let Some(commit) = value.get_mut(key) {
            let id = commit.get("ID").cloned().unwrap_or(Value::Null);
            patch(commit, json!({ "Expected": id }));
        }
    }
    if let Some(registry) = value.get_mut("RegistryConfig") {
        patch(
            registry,
            json!({
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
            }),
        );
    }
    value
}

/// The port type of `80/tcp`.
fn port_type(port: &str) -> PortSummaryTypeEnum {
    match port.split_once('/').map(|(_, t)| t) {
        Some("udp") => PortSummaryTypeEnum::UDP,
        Some("sctp") => PortSummaryTypeEnum::SCTP,
        _ => PortSummaryTypeEnum::TCP,
    }
}

fn port_number(port: &str) -> u16 {
    port.split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// `c`'s endpoint on its network (addresses only while it runs).
fn endpoint(node: &Node, c: &Container) -> EndpointSettings {
    let network = network_of(&c.host.network_mode);
    let live = c.status.is_running() && network == "bridge";
    let text = |s: String| if live { s } else { String::new() };
    EndpointSettings {
        network_id: Some(if c.status == Status::Created {
            String::new()
        } else {
            node.network_id(network)
        }),
        endpoint_id: Some(text(derived_hex(&format!("{} endpoint {}", c.id, c.runs)))),
        gateway: Some(text(GATEWAY.into())),
        ip_address: Some(text(c.ip())),
        ip_prefix_len: Some(if live { 16 } else { 0 }),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        mac_address: Some(text(c.mac())),
        ..Default::default()
    }
}

/// `c`'s line in `GET /containers/json`.
fn summary(node: &Node, c: &Container, now: DateTime<Utc>) -> ContainerSummary {
    let mut ports = Vec::new();
    if c.status.is_running() {
        for (port, ip, host_port) in &c.published {
            ports.push(PortSummary {
                ip: Some(ip.clone()),
                private_port: port_number(port),
                public_port: Some(*host_port),
                typ: Some(port_type(port)),
            });
        }
        for port in &c.exposed_ports {
            if !c.published.iter().any(|(p, _, _)| p == port) {
                ports.push(PortSummary {
                    ip: None,
                    private_port: port_number(port),
                    public_port: None,
                    typ: Some(port_type(port)),
                });
            }
        }
    }
    let since = |t: Option<DateTime<Utc>>| human_duration(now - t.unwrap_or(now));
    let status = match c.status {
        Status::Created => "Created".to_string(),
        Status::Running => format!("Up {}", since(c.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(c.started_at)),
        Status::Restarting => format!("Restarting ({}) {} ago", c.exit_code, since(c.finished_at)),
        Status::Exited => format!("Exited ({}) {} ago", c.exit_code, since(c.finished_at)),
    };
    let state = match c.status {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Paused => ContainerSummaryStateEnum::PAUSED,
        Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
    };
    ContainerSummary {
        id: Some(c.id.clone()),
        names: Some(vec![format!("/{}", c.name)]),
        image: Some(c.image.clone()),
        image_id: Some(IMAGE_ID.into()),
        command: Some(command_line(&c.argv())),
        created: Some(c.created.timestamp()),
        ports: Some(ports),
        labels: Some(c.labels.clone()),
        state: Some(state),
        status: Some(status),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(c.host.network_mode.clone()),
            annotations: None,
        }),
        network_settings: Some(ContainerSummaryNetworkSettings {
            networks: Some(HashMap::from([(
                network_of(&c.host.network_mode).to_string(),
                endpoint(node, c),
            )])),
        }),
        mounts: Some(Vec::new()),
        ..Default::default()
    }
}

/// The `name` filter values as regular expressions (`None`: not one, so
/// matched as text), compiled once per list, not once per container.
fn name_patterns(filters: &HashMap<String, Vec<String>>) -> Vec<Option<regex::Regex>> {
    filters
        .get("name")
        .into_iter()
        .flatten()
        .map(|v| regex::Regex::new(v).ok())
        .collect()
}

/// Whether `c` passes the container list `filters` (keys already checked).
/// `names` are the `name` values compiled ([`name_patterns`]).
fn passes(
    state: &State,
    c: &Container,
    filters: &HashMap<String, Vec<String>>,
    names: &[Option<regex::Regex>],
) -> Result<bool, ApiError> {
    for (key, values) in filters {
        if values.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "id" => values.iter().any(|v| c.id.starts_with(v.as_str())),
            "name" => {
                let name = format!("/{}", c.name);
                names.iter().zip(values).any(|(re, v)| {
                    re.as_ref()
                        .map_or(name.contains(v.as_str()), |re| re.is_match(&name))
                })
            }
            "label" => values.iter().all(|v| match v.split_once('=') {
                Some((k, val)) => c.labels.get(k).is_some_and(|x| x == val),
                None => c.labels.contains_key(v),
            }),
            "status" => {
                for v in values {
                    if ![
                        "created",
                        "restarting",
                        "running",
                        "removing",
                        "paused",
                        "exited",
                        "dead",
                    ]
                    .contains(&v.as_str())
                    {
                        return Err(ApiError::bad_request(format!(
                            "Invalid filter 'status={v}'"
                        )));
                    }
                }
                values.iter().any(|v| v == c.status.as_str())
            }
            "exited" => {
                let mut codes = Vec::new();
                for v in values {
                    codes.push(v.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("Invalid filter 'exited={v}'"))
                    })?);
                }
                c.status == Status::Exited && codes.contains(&c.exit_code)
            }
            "ancestor" => values.iter().any(|v| image_matches(v)),
            "before" | "since" => {
                let mut ok = true;
                for v in values {
                    let other = state.resolve(v)?;
                    let other = state
                        .containers
                        .get(&other)
                        .map(|o| o.created)
                        .unwrap_or(c.created);
                    ok &= if key == "before" {
                        c.created < other
                    } else {
                        c.created > other
                    };
                }
                ok
            }
            "network" => values.iter().any(|v| v == network_of(&c.host.network_mode)),
            // expose, health, isolation, is-task, publish, volume: not kept.
            _ => true,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /containers/json`: newest first.
pub(crate) fn list(
    node: &Node,
    all: bool,
    limit: Option<i64>,
    filters: &HashMap<String, Vec<String>>,
) -> Result<Vec<ContainerSummary>, ApiError> {
    let now = Utc::now();
    let state = node.state();
    let names = name_patterns(filters);
    // With a `label` filter only the containers carrying its rarest label
    // can match (each is still checked against every filter).
    let labelled = filters.get("label").and_then(|values| {
        values
            .iter()
            .map(|v| {
                state
                    .by_label
                    .get(&label_hash(v))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|ids| ids.len())
    });
    let candidates: Box<dyn Iterator<Item = &Container>> = match labelled {
        Some(ids) => Box::new(
            ids.iter()
                .filter_map(|id| state.containers.get(&**id).map(|c| &**c)),
        ),
        None => Box::new(state.containers.values().map(|c| &**c)),
    };
    let mut chosen: Vec<&Container> = Vec::new();
    for c in candidates {
        if (all || c.status.is_running()) && passes(&state, c, filters, &names)? {
            chosen.push(c);
        }
    }
    chosen.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    // A container is indexed twice under one entry when a key holding `=`
    // spells another label's `key=value` ({"x=y": "1", "x": "y"}).
    chosen.dedup_by(|a, b| a.id == b.id);
    if let Some(limit) = limit {
        chosen.truncate(limit as usize);
    }
    Ok(chosen.into_iter().map(|c| summary(node, c, now)).collect())
}

fn host_config(c: &Container) -> HostConfig {
    let h = &c.host;
    HostConfig {
        binds: h.binds.clone(),
        container_id_file: Some(String::new()),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::new()),
        }),
        network_mode: Some(h.network_mode.clone()),
        port_bindings: Some(h.port_bindings.clone().unwrap_or_default()),
        restart_policy: Some(RestartPolicy {
            name: Some(h.restart),
            maximum_retry_count: Some(h.max_retry),
        }),
        auto_remove: Some(h.auto_remove),
        volume_driver: Some(String::new()),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::HOST),
        dns: Some(Vec::new()),
        dns_options: Some(Vec::new()),
        dns_search: Some(Vec::new()),
        ipc_mode: Some("private".into()),
        cgroup: Some(String::new()),
        oom_score_adj: Some(0),
        pid_mode: Some(String::new()),
        privileged: Some(h.privileged),
        publish_all_ports: Some(h.publish_all_ports),
        readonly_rootfs: Some(false),
        uts_mode: Some(String::new()),
        userns_mode: Some(String::new()),
        shm_size: Some(h.shm_size),
        runtime: Some("runc".into()),
        console_size: Some(vec![0, 0]),
        isolation: Some(HostConfigIsolationEnum::EMPTY),
        cpu_shares: Some(h.cpu_shares),
        memory: Some(h.memory),
        nano_cpus: Some(h.nano_cpus),
        cgroup_parent: Some(String::new()),
        blkio_weight: Some(0),
        blkio_weight_device: Some(Vec::new()),
        blkio_device_read_bps: Some(Vec::new()),
        blkio_device_write_bps: Some(Vec::new()),
        blkio_device_read_iops: Some(Vec::new()),
        blkio_device_write_iops: Some(Vec::new()),
        cpu_period: Some(h.cpu_period),
        cpu_quota: Some(h.cpu_quota),
        cpu_realtime_period: Some(0),
        cpu_realtime_runtime: Some(0),
        cpuset_cpus: Some(h.cpuset_cpus.clone()),
        cpuset_mems: Some(String::new()),
        devices: Some(Vec::new()),
        memory_reservation: Some(h.memory_reservation),
        memory_swap: Some(h.memory_swap),
        oom_kill_disable: Some(false),
        ulimits: Some(Vec::new()),
        cpu_count: Some(0),
        cpu_percent: Some(0),
        io_maximum_iops: Some(0),
        io_maximum_bandwidth: Some(0),
        masked_paths: Some(
            [
                "/proc/asound",
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
            ]
            .map(String::from)
            .to_vec(),
        ),
        readonly_paths: Some(
            [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ..Default::default()
    }
}

/// `GET /containers/{id}/json`.
pub(crate) fn inspect(node: &Node, reference: &str) -> Result<Value, ApiError> {
    let state = node.state();
    let c = state.get(reference)?;
    let argv = c.argv();
    let dir = format!("{ROOT}/containers/{}", c.id);
    let sandbox = (c.status != Status::Created).then(|| derived_hex(&format!("{} sandbox", c.id)));
    let running = c.status.is_running();
    let mut ports = PortMap::new();
    if running {
        for port in &c.exposed_ports {
            let bindings: Vec<PortBinding> = c
                .published
                .iter()
                .filter(|(p, _, _)| p == port)
                .map(|(_, ip, hp)| PortBinding {
                    host_ip: Some(ip.clone()),
                    host_port: Some(hp.to_string()),
                })
                .collect();
            ports.insert(port.clone(), (!bindings.is_empty()).then_some(bindings));
        }
    }
    let network = network_of(&c.host.network_mode).to_string();
    let endpoint = endpoint(node, c);
    let layer = derived_hex(&format!("{} layer", c.id));
    let inspect = ContainerInspectResponse {
        id: Some(c.id.clone()),
        created: Some(go_time(Some(c.created))),
        path: Some(argv.first().cloned().unwrap_or_default()),
        args: Some(argv.iter().skip(1).cloned().collect()),
        state: Some(ContainerState {
            status: Some(match c.status {
                Status::Created => ContainerStateStatusEnum::CREATED,
                Status::Running => ContainerStateStatusEnum::RUNNING,
                Status::Paused => ContainerStateStatusEnum::PAUSED,
                Status::Restarting => ContainerStateStatusEnum::RESTARTING,
                Status::Exited => ContainerStateStatusEnum::EXITED,
            }),
            running: Some(running),
            paused: Some(c.status == Status::Paused),
            restarting: Some(c.status == Status::Restarting),
            oom_killed: Some(false),
            dead: Some(false),
            pid: Some(c.pid),
            exit_code: Some(c.exit_code),
            error: Some(String::new()),
            started_at: Some(go_time(c.started_at)),
            finished_at: Some(go_time(c.finished_at)),
            health: None,
        }),
        image: Some(IMAGE_ID.into()),
        resolv_conf_path: Some(format!("{dir}/resolv.conf")),
        hostname_path: Some(format!("{dir}/hostname")),
        hosts_path: Some(format!("{dir}/hosts")),
        log_path: Some(format!("{dir}/{}-json.log", c.id)),
        name: Some(format!("/{}", c.name)),
        restart_count: Some(c.restart_count),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        host_config: Some(host_config(c)),
        graph_driver: Some(DriverData {
            name: "overlay2".into(),
            data: HashMap::from([
                (
                    "LowerDir".to_string(),
                    format!("{ROOT}/overlay2/{layer}-init/diff"),
                ),
                (
                    "MergedDir".to_string(),
                    format!("{ROOT}/overlay2/{layer}/merged"),
                ),
                (
                    "UpperDir".to_string(),
                    format!("{ROOT}/overlay2/{layer}/diff"),
                ),
                (
                    "WorkDir".to_string(),
                    format!("{ROOT}/overlay2/{layer}/work"),
                ),
            ]),
        }),
        mounts: Some(Vec::new()),
        config: Some(ContainerConfig {
            hostname: Some(c.hostname.clone()),
            domainname: Some(c.domainname.clone()),
            user: Some(c.user.clone()),
            attach_stdin: Some(c.flags.attach_stdin),
            attach_stdout: Some(c.flags.attach_stdout),
            attach_stderr: Some(c.flags.attach_stderr),
            exposed_ports: (!c.exposed_ports.is_empty()).then(|| c.exposed_ports.clone()),
            tty: Some(c.flags.tty),
            open_stdin: Some(c.flags.open_stdin),
            stdin_once: Some(c.flags.stdin_once),
            env: Some(c.env.clone()),
            cmd: c.cmd.clone(),
            image: Some(c.image.clone()),
            working_dir: Some(c.working_dir.clone()),
            entrypoint: c.entrypoint.clone(),
            labels: Some(c.labels.clone()),
            stop_signal: c.stop_signal.clone(),
            stop_timeout: c.stop_timeout,
            ..Default::default()
        }),
        network_settings: Some(bollard::models::NetworkSettings {
            sandbox_id: Some(sandbox.clone().unwrap_or_default()),
            sandbox_key: Some(
                sandbox
                    .as_deref()
                    .map(|s| format!("/var/run/docker/netns/{}", &s[..12]))
                    .unwrap_or_default(),
            ),
            ports: Some(ports),
            networks: Some(HashMap::from([(network, endpoint.clone())])),
        }),
        ..Default::default()
    };
    let mut value = to_value(&inspect);
    if let Some(hc) = value.get_mut("HostConfig") {
        patch(hc, json!({ "KernelMemory": 0, "KernelMemoryTCP": 0 }));
    }
    if let Some(ns) = value.get_mut("NetworkSettings") {
        patch(
            ns,
            json!({
                "Bridge": "",
                "HairpinMode": false,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "SecondaryIPAddresses": null,
                "SecondaryIPv6Addresses": null,
                "EndpointID": endpoint.endpoint_id,
                "Gateway": endpoint.gateway,
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": endpoint.ip_address,
                "IPPrefixLen": endpoint.ip_prefix_len,
                "IPv6Gateway": "",
                "MacAddress": endpoint.mac_address,
            }),
        );
    }
    Ok(value)
}

/// The body `wait` answers.
pub(crate) fn wait_response(code: i64) -> String {
    let mut value = to_value(&ContainerWaitResponse {
        status_code: code,
        error: None,
    });
    patch(&mut value, json!({ "Error": null }));
    format!("{value}\n")
}

fn image_summary() -> Value {
    let mut value = to_value(&ImageSummary {
        id: IMAGE_ID.into(),
        parent_id: String::new(),
        repo_tags: vec![IMAGE_TAG.into()],
        repo_digests: Vec::new(),
        created: IMAGE_CREATED,
        size: IMAGE_SIZE,
        shared_size: -1,
        labels: HashMap::new(),
        containers: -1,
        manifests: None,
        descriptor: None,
    });
    patch(&mut value, json!({ "VirtualSize": IMAGE_SIZE }));
    value
}

/// `GET /images/json`: `busybox:local`, unless `filters` leave it out.
pub(crate) fn images(filters: &HashMap<String, Vec<String>>) -> Vec<Value> {
    let glob = |pattern: &str, text: &str| {
        let re = format!(
            "^{}$",
            regex::escape(pattern)
                .replace(r"\*", "[^/]*")
                .replace(r"\?", "[^/]")
        );
        regex::Regex::new(&re).is_ok_and(|re| re.is_match(text))
    };
    let keep = filters.iter().all(|(key, values)| {
        values.is_empty()
            || match key.as_str() {
                "dangling" => values.iter().any(|v| v == "false" || v == "0"),
                "label" => false,
                "reference" => values
                    .iter()
                    .any(|v| glob(v, IMAGE_TAG) || glob(v, "busybox")),
                // before, since: the only image is neither before nor after itself.
                _ => false,
            }
    });
    if keep {
        vec![image_summary()]
    } else {
        Vec::new()
    }
}

/// `GET /images/busybox:local/json`.
pub(crate) fn image_inspect() -> Value {
    let created = DateTime::from_timestamp(IMAGE_CREATED, 0);
    let mut value = to_value(&ImageInspect {
        id: Some(IMAGE_ID.into()),
        repo_tags: Some(vec![IMAGE_TAG.into()]),
        repo_digests: Some(Vec::new()),
        comment: Some(String::new()),
        created: Some(go_time(created)),
        author: Some(String::new()),
        architecture: Some(go_arch().into()),
        os: Some("linux".into()),
        size: Some(IMAGE_SIZE),
        graph_driver: Some(DriverData {
            name: "overlay2".into(),
            data: HashMap::from([(
                "MergedDir".to_string(),
                format!("{ROOT}/overlay2/{}/merged", &IMAGE_LAYER[7..]),
            )]),
        }),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".into(),
            layers: Some(vec![IMAGE_LAYER.into()]),
        }),
        metadata: Some(ImageInspectMetadata {
            last_tag_time: Some(go_time(None)),
        }),
        ..Default::default()
    });
    let config = |env: Option<Vec<String>>, cmd: Option<Vec<String>>| {
        to_value(&ContainerConfig {
            hostname: Some(String::new()),
            domainname: Some(String::new()),
            user: Some(String::new()),
            attach_stdin: Some(false),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            tty: Some(false),
            open_stdin: Some(false),
            stdin_once: Some(false),
            env,
            cmd,
            image: Some(String::new()),
            working_dir: Some(String::new()),
            ..Default::default()
        })
    };
    patch(
        &mut value,
        json!({
            "Parent": "",
            "Container": "",
            "ContainerConfig": config(None, None),
            "Config": config(Some(vec![IMAGE_ENV.into()]), Some(vec![IMAGE_CMD.into()])),
            "DockerVersion": "",
            "VirtualSize": IMAGE_SIZE,
        }),
    );
    value
}

/// `GET /networks` (`bridge`, `host`, `none`); with `containers`, the
/// bridge lists the running containers as `GET /networks/{id}` does.
pub(crate) fn networks(node: &Node, containers: bool) -> Vec<Value> {
    let created = Some(go_time(Some(node.shared.started)));
    let make = |name: &str, driver: &str| {
        let bridge = name == "bridge";
        let network = Network {
            name: Some(name.into()),
            id: Some(node.network_id(name)),
            created: created.clone(),
            scope: Some("local".into()),
            driver: Some(driver.into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                options: None,
                config: Some(if bridge {
                    vec![IpamConfig {
                        subnet: Some("172.17.0.0/16".into()),
                        gateway: Some(GATEWAY.into()),
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                }),
            }),
            internal: Some(false),
            attachable: Some(false),
            ingress: Some(false),
            config_from: Some(ConfigReference {
                network: Some(String::new()),
            }),
            config_only: Some(false),
            options: Some(if bridge {
                HashMap::from([
                    (
                        "com.docker.network.bridge.default_bridge".to_string(),
                        "true".to_string(),
                    ),
                    (
                        "com.docker.network.bridge.enable_icc".to_string(),
                        "true".to_string(),
                    ),
                    (
                        "com.docker.network.bridge.enable_ip_masquerade".to_string(),
                        "true".to_string(),
                    ),
                    (
                        "com.docker.network.bridge.host_binding_ipv4".to_string(),
                        "0.0.0.0".to_string(),
                    ),
                    (
                        "com.docker.network.bridge.name".to_string(),
                        "docker0".to_string(),
                    ),
                    (
                        "com.docker.network.driver.mtu".to_string(),
                        "1500".to_string(),
                    ),
                ])
            } else {
                HashMap::new()
            }),
            labels: Some(HashMap::new()),
            peers: None,
            enable_ipv4: None,
            enable_ipv6: Some(false),
        };
        let mut attached = serde_json::Map::new();
        if containers && bridge {
            let state = node.state();
            for c in state.containers.values() {
                if c.status.is_running() && network_of(&c.host.network_mode) == "bridge" {
                    attached.insert(
                        c.id.clone(),
                        json!({
                            "Name": c.name,
                            "EndpointID": derived_hex(&format!("{} endpoint {}", c.id, c.runs)),
                            "MacAddress": c.mac(),
                            "IPv4Address": format!("{}/16", c.ip()),
                            "IPv6Address": "",
                        }),
                    );
                }
            }
        }
        let mut value = to_value(&network);
        patch(&mut value, json!({ "Containers": Value::Object(attached) }));
        value
    };
    vec![
        make("none", "null"),
        make("host", "host"),
        make("bridge", "bridge"),
    ]
}

/// `GET /volumes`: none.
pub(crate) fn volumes() -> Value {
    let mut value = to_value(&VolumeListResponse {
        volumes: Some(Vec::new()),
        warnings: None,
    });
    patch(&mut value, json!({ "Warnings": null }));
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times() {
        assert_eq!(go_time(None), "0001-01-01T00:00:00Z");
        let t = DateTime::from_timestamp(1_700_000_000, 483_678_330).unwrap();
        assert_eq!(go_time(Some(t)), "2023-11-14T22:13:20.48367833Z");
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(go_time(Some(t)), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn human_durations() {
        let s = chrono::Duration::seconds;
        assert_eq!(
            human_duration(chrono::Duration::milliseconds(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(42)), "42 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(600)), "10 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
    }
}
