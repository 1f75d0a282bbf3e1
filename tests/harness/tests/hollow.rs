//! Hollow engines (`swarm_harness::hollow`, `hollow-engine`): their API answers in
//! the shapes of a real engine, `swarm manage` runs over a fleet of them,
//! and killed nodes fail the way dead hosts do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use swarm_harness::hollow::{Fleet, FleetConfig};
use swarm_harness::{
    docker_ok, free_port, info_value, start_engines, start_manager, wait_for, Engines,
    FAST_REFRESH, IMAGE,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn fleet(rt: &tokio::runtime::Runtime, config: FleetConfig) -> Fleet {
    rt.block_on(Fleet::start(config))
        .expect("starting a hollow fleet")
}

/// A fleet of `nodes` nodes with the default settings.
fn fleet_of(rt: &tokio::runtime::Runtime, nodes: usize) -> Fleet {
    fleet(
        rt,
        FleetConfig {
            nodes,
            ..Default::default()
        },
    )
}

/// One HTTP/1.0 request (`Connection: close`); returns status, the raw
/// head, and the body as read until the server closes.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_string()
    };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer from {addr}: {head:?}"));
    (status, head, raw.get(split + 4..).unwrap_or(&[]).to_vec())
}

/// A request that must answer `want`; returns the body as JSON (Null if empty).
fn call(addr: &str, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
    let (status, head, raw) = http(addr, method, path, body);
    assert_eq!(
        status,
        want,
        "{method} {path} on {addr}: {head}\n{}",
        String::from_utf8_lossy(&raw)
    );
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    // Not JSON (`_ping`): the text.
    serde_json::from_slice(&raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every non-null field of `v` as `.A.B[].C` → JSON type (arrays by their
/// first element).
fn fields(v: &Value, prefix: &str, out: &mut BTreeMap<String, &'static str>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if x.is_null() {
                    continue;
                }
                let path = format!("{prefix}.{k}");
                out.insert(path.clone(), json_type(x));
                fields(x, &path, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                fields(first, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// Fields the real engine answers (non-null) that the hollow one lacks or
/// types differently, minus `allowed` (prefixes).
fn shape_gaps(what: &str, real: &Value, hollow: &Value, allowed: &[&str]) -> Vec<String> {
    let (mut r, mut h) = (BTreeMap::new(), BTreeMap::new());
    fields(real, what, &mut r);
    fields(hollow, what, &mut h);
    let mut gaps = Vec::new();
    for (path, typ) in &r {
        if allowed
            .iter()
            .any(|a| path.starts_with(&format!("{what}{a}")))
        {
            continue;
        }
        match h.get(path) {
            None => gaps.push(format!("{path}: missing (real: {typ})")),
            Some(t) if t != typ => gaps.push(format!("{path}: {t}, real: {typ}")),
            Some(_) => {}
        }
    }
    let extra: Vec<&String> = h.keys().filter(|p| !r.contains_key(*p)).collect();
    if !extra.is_empty() {
        eprintln!("{what}: fields only the hollow engine sends: {extra:?}");
    }
    gaps
}

/// `v` at a `/`-separated pointer, for messages.
fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// Replaces container IDs in an error message, so two engines compare.
fn without_ids(message: &str) -> String {
    message
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 64)
        .fold(message.to_string(), |m, id| m.replace(id, "<ID>"))
}

// ---------------------------------------------------------------------------
// The same calls on a real engine and on a hollow one: the fields the
// manager reads are there with the same values, every field the real engine
// sends is there with the same JSON type, errors carry the same status and
// message, logs the same framing, events the same sequence. Each test below
// starts its own pair, runs the same lifecycle of a container `shape` on
// both, and checks one group of endpoints.
// ---------------------------------------------------------------------------

/// A real engine and a hollow one with the same label; field order is
/// drop order (the real engine last).
struct Pair {
    _hollow: Fleet,
    rt: tokio::runtime::Runtime,
    /// ("real", address), ("hollow", address).
    targets: [(&'static str, String); 2],
    t0: Instant,
    _engines: Engines,
}

/// One engine's answers to the lifecycle of `shape`, by step.
type Answers = BTreeMap<&'static str, Value>;

impl Pair {
    fn start() -> Pair {
        let t0 = Instant::now();
        let engines = start_engines(&[&[("zone", "a")]]);
        let rt = runtime();
        let hollow = fleet(
            &rt,
            FleetConfig {
                labels: vec!["zone=a".into()],
                ..Default::default()
            },
        );
        let targets = [
            ("real", engines[0].tcp.clone()),
            ("hollow", hollow.addr(0).to_string()),
        ];
        eprintln!("engines ready in {:?}", t0.elapsed());
        Pair {
            _hollow: hollow,
            rt,
            targets,
            t0,
            _engines: engines,
        }
    }

    /// What the manager reads, through its own engine client: one per target.
    fn clients(&self) -> Vec<swarm::engine::Engine> {
        self.targets
            .iter()
            .map(|(_, a)| {
                swarm::engine::Engine::new(&format!("tcp://{a}")).expect("engine address")
            })
            .collect()
    }

    /// The lifecycle of `shape` on both: real answers first, hollow second.
    fn lifecycle(&self) -> (Answers, Answers) {
        let port = free_port();
        let create = json!({
            "Image": IMAGE,
            "Cmd": ["sleep", "300"],
            "Env": ["FOO=bar"],
            "Labels": {"app": "shape"},
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {
                "Memory": 64 << 20,
                "NanoCpus": 500_000_000,
                "CpuShares": 512,
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": port.to_string()}]},
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            },
        });
        let [real, hollow] = self
            .targets
            .clone()
            .map(|(label, addr)| lifecycle(label, &addr, &create));
        // Every step is checked by one of the tests.
        let mut checked: Vec<&str> = CONTAINER_KEYS.iter().chain(&SYSTEM_KEYS).copied().collect();
        checked.push("errors");
        checked.sort();
        assert_eq!(real.keys().copied().collect::<Vec<_>>(), checked);
        (real, hollow)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        eprintln!("shape test took {:?}", self.t0.elapsed());
    }
}

/// Creates `shape` from `create`, inspects it, starts it, lists it, asks
/// the system endpoints, provokes errors, pauses, stops and waits for it
/// on the engine at `addr`, recording the answers.
fn lifecycle(label: &str, addr: &str, create: &Value) -> Answers {
    let mut a = BTreeMap::new();
    let created = call(
        addr,
        "POST",
        "/v1.41/containers/create?name=shape",
        Some(create),
        201,
    );
    a.insert("create", created.clone());
    let id = created["Id"].as_str().expect("Id").to_string();
    assert_eq!(id.len(), 64, "{label}: ID {id}");
    a.insert(
        "inspect created",
        call(addr, "GET", "/containers/shape/json", None, 200),
    );
    call(addr, "POST", "/v1.41/containers/shape/start", None, 204);
    a.insert(
        "inspect running",
        call(addr, "GET", "/v1.41/containers/shape/json", None, 200),
    );
    a.insert(
        "list",
        call(addr, "GET", "/v1.41/containers/json?all=1", None, 200),
    );
    a.insert("info", call(addr, "GET", "/v1.41/info", None, 200));
    a.insert("version", call(addr, "GET", "/version", None, 200));
    a.insert("images", call(addr, "GET", "/v1.41/images/json", None, 200));
    a.insert(
        "image",
        call(addr, "GET", "/v1.41/images/busybox:local/json", None, 200),
    );
    a.insert("networks", call(addr, "GET", "/v1.41/networks", None, 200));
    a.insert("volumes", call(addr, "GET", "/v1.41/volumes", None, 200));

    // Errors: status and message.
    let mut errors = Vec::new();
    for (method, path, body) in [
        ("POST", "/v1.41/containers/shape/start", None),
        ("POST", "/v1.41/containers/create?name=shape", Some(create)),
        (
            "POST",
            "/v1.41/containers/create",
            Some(&json!({"Image": "nothere"})),
        ),
        (
            "POST",
            "/v1.41/containers/create?name=b%20ad",
            Some(&json!({"Image": IMAGE})),
        ),
        ("GET", "/v1.41/containers/nope/json", None),
        ("POST", "/v1.41/containers/nope/stop", None),
        ("DELETE", "/v1.41/containers/shape", None),
        ("POST", "/v1.41/containers/shape/unpause", None),
        ("POST", "/v1.41/containers/shape/kill?signal=FOO", None),
        ("GET", "/v1.41/containers/shape/logs", None),
        (
            "GET",
            "/v1.41/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
            None,
        ),
        ("GET", "/v1.41/images/nothere/json", None),
        ("GET", "/v9.99/info", None),
        ("GET", "/nonsense", None),
    ] {
        let (status, _, raw) = http(addr, method, path, body);
        let message = serde_json::from_slice::<Value>(&raw)
            .ok()
            .and_then(|v| v["message"].as_str().map(without_ids))
            .unwrap_or_default();
        errors.push(json!([method, path, status, message]));
    }
    a.insert("errors", Value::Array(errors));

    // Pause, stop (the busybox PID 1 ignores SIGTERM: killed after t), wait.
    call(addr, "POST", "/v1.41/containers/shape/pause", None, 204);
    a.insert(
        "list paused",
        call(addr, "GET", "/v1.41/containers/json", None, 200),
    );
    call(addr, "POST", "/v1.41/containers/shape/unpause", None, 204);
    call(addr, "POST", "/v1.41/containers/shape/stop?t=1", None, 204);
    a.insert(
        "stop again",
        call(addr, "POST", "/v1.41/containers/shape/stop", None, 304),
    );
    a.insert(
        "wait",
        call(addr, "POST", "/v1.41/containers/shape/wait", None, 200),
    );
    a.insert(
        "inspect exited",
        call(addr, "GET", "/v1.41/containers/shape/json", None, 200),
    );
    a.insert(
        "list exited",
        call(addr, "GET", "/v1.41/containers/json?all=1", None, 200),
    );
    a
}

/// The shape gaps of the answers to `keys` (see [`shape_gaps`]).
fn gaps_of(real: &Answers, hol: &Answers, keys: &[&str]) -> Vec<String> {
    let mut gaps = Vec::new();
    for key in keys {
        let (r, h) = (&real[key], &hol[key]);
        match *key {
            "networks" => {
                let by_name = |v: &Value| -> BTreeMap<String, Value> {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .map(|n| (n["Name"].as_str().unwrap_or("").to_string(), n.clone()))
                        .collect()
                };
                let (r, h) = (by_name(r), by_name(h));
                assert_eq!(r.keys().collect::<Vec<_>>(), h.keys().collect::<Vec<_>>());
                for (name, rn) in &r {
                    gaps.extend(shape_gaps(&format!("networks.{name}"), rn, &h[name], &[]));
                }
            }
            // Engine-dependent: warnings about the host, storage driver data.
            "info" => gaps.extend(shape_gaps(key, r, h, &[".Warnings", ".DriverStatus"])),
            _ => gaps.extend(shape_gaps(key, r, h, &[".GraphDriver.Data"])),
        }
    }
    gaps
}

/// The recorded steps of the container endpoints, which
/// [`container_endpoints_answer_in_the_shapes_of_a_real_engine`] checks.
const CONTAINER_KEYS: [&str; 9] = [
    "create",
    "inspect created",
    "inspect running",
    "inspect exited",
    "list",
    "list paused",
    "list exited",
    "stop again",
    "wait",
];
/// The recorded steps of the system endpoints, which
/// [`system_endpoints_answer_in_the_shapes_of_a_real_engine`] checks.
const SYSTEM_KEYS: [&str; 6] = ["info", "version", "images", "image", "networks", "volumes"];

/// Containers: create, inspect, list, stop, wait have every field of the
/// real engine's answers with the same JSON type, and the same values
/// where the manager and the CLI read them.
#[test]
fn container_endpoints_answer_in_the_shapes_of_a_real_engine() {
    let pair = Pair::start();
    let (real, hol) = pair.lifecycle();
    let gaps = gaps_of(&real, &hol, &CONTAINER_KEYS);
    assert!(gaps.is_empty(), "shape gaps:\n{}", gaps.join("\n"));

    for key in ["inspect created", "inspect running", "inspect exited"] {
        for pointer in [
            "/Name",
            "/Path",
            "/Args",
            "/State/Status",
            "/State/Running",
            "/State/Paused",
            "/State/Restarting",
            "/State/ExitCode",
            "/RestartCount",
            "/Config/Image",
            "/Config/Cmd",
            "/Config/Labels",
            "/Config/ExposedPorts",
            "/Config/Tty",
            "/HostConfig/Memory",
            "/HostConfig/MemorySwap",
            "/HostConfig/NanoCpus",
            "/HostConfig/CpuShares",
            "/HostConfig/PortBindings",
            "/HostConfig/RestartPolicy",
            "/HostConfig/NetworkMode",
            "/HostConfig/AutoRemove",
            "/HostConfig/ShmSize",
        ] {
            assert_eq!(
                at(&hol[key], pointer),
                at(&real[key], pointer),
                "{key} {pointer}"
            );
        }
        // Host ports (the real engine binds its own --ip, hollow 0.0.0.0).
        let bound = |v: &Value| -> Value {
            let mut ports = at(v, "/NetworkSettings/Ports").clone();
            for list in ports
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
            {
                for b in list.as_array_mut().into_iter().flatten() {
                    b["HostIp"] = Value::Null;
                }
            }
            ports
        };
        assert_eq!(
            bound(&hol[key]),
            bound(&real[key]),
            "{key} NetworkSettings.Ports"
        );
        let hostname = at(&hol[key], "/Config/Hostname").as_str().unwrap_or("");
        assert_eq!(Some(hostname), hol[key]["Id"].as_str().map(|id| &id[..12]));
        let env = at(&hol[key], "/Config/Env").to_string();
        assert!(env.contains("FOO=bar") && env.contains("PATH="), "{env}");
        for time in ["/Created", "/State/StartedAt", "/State/FinishedAt"] {
            let t = at(&hol[key], time).as_str().unwrap_or("");
            assert!(
                chrono::DateTime::parse_from_rfc3339(t).is_ok(),
                "{key} {time}: {t}"
            );
        }
    }
    let ports = |v: &Value| -> Vec<Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| json!([p["PrivatePort"], p["PublicPort"], p["Type"]]))
            .collect()
    };
    for key in ["list", "list paused", "list exited"] {
        for pointer in [
            "/0/Names",
            "/0/Image",
            "/0/Command",
            "/0/State",
            "/0/Labels",
            "/0/HostConfig",
        ] {
            assert_eq!(
                at(&hol[key], pointer),
                at(&real[key], pointer),
                "{key} {pointer}"
            );
        }
        let status = |v: &Value| {
            let s = at(v, "/0/Status").as_str().unwrap_or("").to_string();
            s.split(' ').next().unwrap_or("").to_string()
                + if s.contains("(Paused)") {
                    " (Paused)"
                } else {
                    ""
                }
        };
        assert_eq!(status(&hol[key]), status(&real[key]), "{key} Status");
        assert_eq!(
            ports(at(&hol[key], "/0/Ports")),
            ports(at(&real[key], "/0/Ports")),
            "{key} Ports"
        );
    }
    assert_eq!(hol["wait"], real["wait"], "wait answer");
    assert_eq!(hol["create"]["Warnings"], real["create"]["Warnings"]);
}

/// System endpoints: info, version, images, an image, networks, volumes
/// have every field of the real engine's answers with the same JSON type,
/// and the same values where the manager reads them.
#[test]
fn system_endpoints_answer_in_the_shapes_of_a_real_engine() {
    let pair = Pair::start();
    let (real, hol) = pair.lifecycle();
    let gaps = gaps_of(&real, &hol, &SYSTEM_KEYS);
    assert!(gaps.is_empty(), "shape gaps:\n{}", gaps.join("\n"));

    for pointer in [
        "/Labels",
        "/OSType",
        "/Containers",
        "/ContainersRunning",
        "/ContainersStopped",
        "/Images",
    ] {
        assert_eq!(
            at(&hol["info"], pointer),
            at(&real["info"], pointer),
            "info {pointer}"
        );
    }
    for pointer in ["/ApiVersion", "/MinAPIVersion", "/Os", "/Arch"] {
        assert_eq!(
            at(&hol["version"], pointer),
            at(&real["version"], pointer),
            "version {pointer}"
        );
    }
    for pointer in [
        "/0/RepoTags",
        "/0/Containers",
        "/0/SharedSize",
        "/0/ParentId",
    ] {
        assert_eq!(
            at(&hol["images"], pointer),
            at(&real["images"], pointer),
            "images {pointer}"
        );
    }
}

/// Errors: the same status and message for each wrong call.
#[test]
fn errors_answer_like_a_real_engine() {
    let pair = Pair::start();
    let (real, hol) = pair.lifecycle();
    let gaps = gaps_of(&real, &hol, &["errors"]);
    assert!(gaps.is_empty(), "shape gaps:\n{}", gaps.join("\n"));
    let errors = |v: &Value| -> Vec<Value> { v.as_array().cloned().unwrap_or_default() };
    for (h, r) in errors(&hol["errors"])
        .iter()
        .zip(errors(&real["errors"]).iter())
    {
        assert_eq!(h, r, "error answers (method, path, status, message)");
    }
}

/// Logs: the multiplexed stream framing, byte for byte.
#[test]
fn logs_are_framed_like_a_real_engine() {
    let pair = Pair::start();
    let script = json!({"Image": IMAGE, "Cmd": ["sh", "-c", "echo hello"]});
    let mut logs = Vec::new();
    for (_, addr) in &pair.targets {
        call(
            addr,
            "POST",
            "/v1.41/containers/create?name=echo",
            Some(&script),
            201,
        );
        call(addr, "POST", "/v1.41/containers/echo/start", None, 204);
        assert_eq!(
            call(addr, "POST", "/v1.41/containers/echo/wait", None, 200)["StatusCode"],
            0
        );
        let (status, _, raw) = http(
            addr,
            "GET",
            "/v1.41/containers/echo/logs?stdout=1&stderr=1",
            None,
        );
        assert_eq!(status, 200);
        logs.push(raw);
        call(addr, "DELETE", "/v1.41/containers/echo", None, 204);
    }
    assert_eq!(logs[1], b"\x01\0\0\0\0\0\0\x06hello\n".to_vec());
    assert_eq!(logs[1], logs[0], "log framing");
}

/// Events: the same container actions, in the same order, from the
/// lifecycle of `shape` to its removal.
#[test]
fn events_come_in_the_order_of_a_real_engine() {
    let pair = Pair::start();
    let rt = &pair.rt;
    let mut event_streams = Vec::new();
    for client in pair.clients() {
        let stream = rt.block_on(client.events(None)).expect("events");
        event_streams.push(rt.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut actions = Vec::new();
            while let Some(Ok(event)) = stream.next().await {
                let action = event.action.unwrap_or_default();
                let name = event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|a| a.get("name").cloned())
                    .unwrap_or_default();
                if name != "shape" {
                    continue;
                }
                let done = action == "destroy";
                actions.push(action);
                if done {
                    break;
                }
            }
            actions
        }));
    }
    // Event streams are subscribed once their headers came back.
    std::thread::sleep(Duration::from_millis(200));
    pair.lifecycle();
    for (_, addr) in &pair.targets {
        call(addr, "DELETE", "/v1.41/containers/shape", None, 204);
    }
    let actions: Vec<Vec<String>> = event_streams
        .into_iter()
        .map(|h| {
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), h).await })
                .expect("events until destroy")
                .expect("event task")
        })
        .collect();
    eprintln!("events: real {:?}", actions[0]);
    assert_eq!(actions[1], actions[0], "container events");
}

/// What swarm's engine client makes of both: the node, the container
/// (listed and inspected) and the images read the same.
#[test]
fn the_manager_reads_a_hollow_engine_as_a_real_one() {
    let pair = Pair::start();
    pair.lifecycle();
    let rt = &pair.rt;
    let observed: Vec<_> = pair
        .clients()
        .iter()
        .map(|c| {
            let node = rt.block_on(c.observe("t".into())).expect("observe");
            let listed = rt.block_on(c.containers("n")).expect("containers");
            let one = rt
                .block_on(c.container("n", listed[0].id.as_str()))
                .expect("container")
                .expect("container exists");
            let images = rt.block_on(c.images()).expect("images");
            (node, listed, one, images)
        })
        .collect();
    let (rn, hn) = (&observed[0].0, &observed[1].0);
    assert_eq!(hn.labels, rn.labels, "node labels");
    assert_eq!(hn.os_type, rn.os_type);
    assert_eq!(hn.api_version, rn.api_version);
    assert_eq!(hn.architecture, rn.architecture);
    assert!(hn.cpus > 0 && hn.memory > 0 && !hn.id.is_empty() && !hn.server_version.is_empty());
    assert_eq!(hn.hostname, "hollow-0");
    for k in [1, 2] {
        // IDs and creation times differ; both engines give a time.
        let strip = |c: &swarm::cluster::Container| {
            let mut c = c.clone();
            c.id.clear();
            assert!(c.created > 0, "{c:?}");
            c.created = 0;
            c
        };
        let (r, h) = match k {
            1 => (strip(&observed[0].1[0]), strip(&observed[1].1[0])),
            _ => (strip(&observed[0].2), strip(&observed[1].2)),
        };
        assert_eq!(h, r, "the container as the manager reads it");
    }
    assert!(observed[1]
        .2
        .resources
        .as_ref()
        .is_some_and(|r| r.cpus_milli == 500 && r.memory == 64 << 20));
    let tags = |images: &[swarm::cluster::ImageRef]| -> Vec<Vec<String>> {
        images.iter().map(|i| i.tags.clone()).collect()
    };
    assert_eq!(tags(&observed[1].3), tags(&observed[0].3));
}

/// Node `name`'s status in `docker info` output.
fn node_status(info: &str, name: &str) -> Option<String> {
    let mut lines = info
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{name}: ")));
    lines.next()?;
    lines.take_while(|l| l.contains('└')).find_map(|l| {
        l.trim()
            .strip_prefix("└ Status:")
            .map(|s| s.trim().to_string())
    })
}

/// Waits until `docker info` on `host` shows node `name` with `status`.
fn wait_node_status(host: &str, name: &str, status: &str, within: Duration) {
    wait_for(&format!("node {name} {status}"), within, || {
        let info = docker_ok(host, &["info"]);
        (node_status(&info, name).as_deref() == Some(status)).then_some(())
    });
}

/// A manager over `discovery` refreshing every 1-8 s, a node unhealthy
/// after 3 failed refreshes: the backoff the dead-node tests count on.
fn backoff_manager(discovery: &str) -> swarm_harness::Manager {
    start_manager(&[
        "--engine-refresh-min-interval",
        "1s",
        "--engine-refresh-max-interval",
        "8s",
        "--engine-failure-retry",
        "3",
        discovery,
    ])
}

/// `swarm manage` over 20 hollow engines: all healthy, a container runs on
/// one of them (and exits as `sleep 1` does), `ps`/`stop`/`rm` work, and a
/// killed node turns Unhealthy then Healthy again once revived. (Docker
/// refuses one-letter names such as `x`: the containers are `nap` and `long`.)
#[test]
fn swarm_manages_a_fleet_of_twenty_hollow_engines() {
    let t0 = Instant::now();
    let rt = runtime();
    let fleet = fleet(
        &rt,
        FleetConfig {
            nodes: 20,
            labels: vec!["kind=hollow".into()],
            ..Default::default()
        },
    );
    let discovery = fleet.discovery();
    let mut args = FAST_REFRESH.to_vec();
    args.push(&discovery);
    let manager = start_manager(&args);
    let host = manager.host.clone();
    wait_for("20 healthy nodes", Duration::from_secs(30), || {
        let info = docker_ok(&host, &["info"]);
        (info_value(&info, "Nodes") == ["20"]
            && info_value(&info, "└ Status") == vec!["Healthy".to_string(); 20])
        .then_some(())
    });
    eprintln!("20 nodes healthy after {:?}", t0.elapsed());

    let id = docker_ok(&host, &["run", "-d", "--name", "nap", IMAGE, "sleep", "1"]);
    assert_eq!(id.len(), 64, "container ID: {id}");
    let node = docker_ok(&host, &["inspect", "-f", "{{.Node.Name}}", "nap"]);
    let index: usize = node
        .strip_prefix("hollow-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("nap landed on {node:?}, not a hollow node"));
    assert_eq!(fleet.container_count(index), 1, "nap is on {node}");
    let listed = |all: bool| -> Vec<String> {
        let mut args = vec!["ps", "--format", "{{.Names}}\t{{.Status}}"];
        if all {
            args.push("-a");
        }
        docker_ok(&host, &args)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let line_of = |lines: &[String], name: &str| -> Option<String> {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")).map(str::to_string))
    };
    assert!(
        line_of(&listed(true), &format!("{node}/nap")).is_some(),
        "ps -a: {:?}",
        listed(true)
    );
    // `sleep 1` ends: the engine's die event reaches the manager.
    wait_for("nap exited", Duration::from_secs(10), || {
        line_of(&listed(true), &format!("{node}/nap")).filter(|s| s.starts_with("Exited (0)"))
    });
    assert_eq!(
        docker_ok(&host, &["logs", "nap"]),
        "hollow-engine: sleep 1",
        "canned logs"
    );
    docker_ok(&host, &["stop", "nap"]);
    docker_ok(&host, &["rm", "nap"]);
    // Attached runs: the manager splices the hijacked connection.
    assert_eq!(
        docker_ok(&host, &["run", "--rm", IMAGE, "echo", "hello", "world"]),
        "hello world"
    );
    assert!(line_of(&listed(true), &format!("{node}/nap")).is_none());
    assert_eq!(fleet.container_count(index), 0);

    // A long one, then its node dies and comes back.
    docker_ok(
        &host,
        &["run", "-d", "--name", "long", IMAGE, "sleep", "300"],
    );
    let ynode = docker_ok(&host, &["inspect", "-f", "{{.Node.Name}}", "long"]);
    let yi: usize = ynode["hollow-".len()..].parse().expect("node index");
    assert!(line_of(&listed(false), &format!("{ynode}/long")).is_some_and(|s| s.starts_with("Up ")));
    // Node yi is killed through the library; another node kills itself
    // for 8 s through its own admin path.
    let other = (yi + 1) % fleet.len();
    let other_name = fleet.name(other);
    rt.block_on(fleet.kill(yi)).expect("kill");
    assert!(
        TcpStream::connect(fleet.addr(yi)).is_err(),
        "a killed node refuses connections"
    );
    let answer = call(
        &fleet.addr(other).to_string(),
        "POST",
        "/hollow/kill?for=8s",
        None,
        200,
    );
    assert_eq!(answer["Alive"], false);
    wait_for("both nodes unhealthy", Duration::from_secs(20), || {
        let info = docker_ok(&host, &["info"]);
        (node_status(&info, &ynode).as_deref() == Some("Unhealthy")
            && node_status(&info, &other_name).as_deref() == Some("Unhealthy"))
        .then_some(())
    });
    assert_eq!(
        line_of(&listed(true), &format!("{ynode}/long")).as_deref(),
        Some("Host Down")
    );
    rt.block_on(fleet.revive(yi)).expect("revive");
    wait_for("both nodes healthy again", Duration::from_secs(25), || {
        let info = docker_ok(&host, &["info"]);
        (info_value(&info, "└ Status") == vec!["Healthy".to_string(); 20]).then_some(())
    });
    let info = docker_ok(&host, &["info"]);
    assert_eq!(info_value(&info, "Nodes"), ["20"]);
    assert!(line_of(&listed(false), &format!("{ynode}/long")).is_some_and(|s| s.starts_with("Up ")));
    docker_ok(&host, &["rm", "-f", "long"]);
    assert_eq!(fleet.container_count(yi), 0);
    drop(manager);
    eprintln!("manager test took {:?}", t0.elapsed());
}

/// A node that stays down is refreshed on the backoff of
/// `--engine-refresh-min-interval`/`--engine-refresh-max-interval`, not
/// every time its event stream fails to reconnect (about once a second),
/// and its return is still noticed at once.
#[test]
fn a_dead_node_is_retried_on_the_backoff_and_its_return_noticed_at_once() {
    let rt = runtime();
    let fleet = fleet_of(&rt, 2);
    let manager = backoff_manager(&fleet.discovery());
    let host = manager.host.clone();
    wait_for("2 healthy nodes", Duration::from_secs(30), || {
        let info = docker_ok(&host, &["info"]);
        (info_value(&info, "└ Status") == vec!["Healthy".to_string(); 2]).then_some(())
    });
    let failures = |log: &str| log.matches("engine refresh failed").count();
    let before = failures(&manager.log());
    rt.block_on(fleet.kill(1)).expect("kill");
    let dead = fleet.name(1);
    wait_node_status(&host, &dead, "Unhealthy", Duration::from_secs(10));
    // Down for 12 s: retried after 0.5 s and 1 s (Unhealthy at the third
    // failure), then after 1, 2, 4, 8 s: 6 refreshes. Woken by every failed
    // reconnect of the event stream it would be about 12.
    std::thread::sleep(Duration::from_secs(12));
    let tried = failures(&manager.log()) - before;
    assert!(
        (3..=8).contains(&tried),
        "{tried} failed refreshes of a node down for 12 s\n{}",
        manager.log_tail(40)
    );
    // Back: the event loop sees it answer and wakes the refresh, well
    // before the 8 s the backoff has reached.
    rt.block_on(fleet.revive(1)).expect("revive");
    wait_node_status(&host, &dead, "Healthy", Duration::from_secs(4));
}

/// A node already down when the manager starts watching it (a new leader
/// takes over while an engine is down; here, a manager starting) has no
/// event stream yet to notice its return: its return must still be
/// noticed within about a second, not at the next refresh of the backoff.
#[test]
fn a_node_down_from_the_start_is_noticed_at_once_when_it_comes() {
    let rt = runtime();
    let fleet = fleet_of(&rt, 2);
    rt.block_on(fleet.kill(1)).expect("kill");
    let manager = backoff_manager(&fleet.discovery());
    let host = manager.host.clone();
    let dead = format!("tcp://{}", fleet.addr(1));
    // Failed at 0, 0.5, 1.5, 2.5, 4.5 and 8.5 s: the next try is 8 s away.
    wait_for("6 failed refreshes", Duration::from_secs(20), || {
        let log = manager.log();
        let failed = log
            .lines()
            .filter(|l| l.contains("engine refresh failed") && l.contains(&dead))
            .count();
        (failed >= 6).then_some(())
    });
    rt.block_on(fleet.revive(1)).expect("revive");
    let name = fleet.name(1);
    wait_node_status(&host, &name, "Healthy", Duration::from_secs(4));
}

/// Kill and revive in process: refused connections, broken event streams,
/// same identity and containers afterwards; timed kills; latency; timers
/// (`sleep`, restart policies) and `wait`.
#[test]
fn hollow_nodes_die_come_back_and_run_their_timers() {
    let rt = runtime();
    let fleet = fleet_of(&rt, 2);
    let addr = fleet.addr(1).to_string();
    let id_before = call(&addr, "GET", "/info", None, 200)["ID"].clone();
    assert_eq!(id_before.as_str(), Some(fleet.id(1).as_str()));
    call(
        &addr,
        "POST",
        "/containers/create?name=keep",
        Some(&json!({"Image": IMAGE, "Cmd": ["sleep", "infinity"]})),
        201,
    );
    call(&addr, "POST", "/containers/keep/start", None, 204);

    let mut attach = TcpStream::connect(&addr).expect("connect");
    attach
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        attach,
        "POST /v1.41/containers/keep/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    .expect("attach");
    let mut attached = vec![0u8; 512];
    let n = attach.read(&mut attached).expect("attach answer");
    attached.truncate(n);
    let head = String::from_utf8_lossy(&attached).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    let client = swarm::engine::Engine::new(&addr).expect("address");
    let stream = rt.block_on(client.events(None)).expect("events");
    let ended = rt.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), fleet.kill(1)).await })
        .expect("kill returns although a connection is attached")
        .expect("kill");
    assert!(!fleet.is_alive(1).expect("node 1"));
    let mut rest = Vec::new();
    let _ = attach.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the attached stream ends with its node");
    let refused = TcpStream::connect(&addr).expect_err("a killed node refuses connections");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ended).await })
        .expect("the event stream breaks when its node dies")
        .expect("event task");
    // An attached (hijacked) connection is cut too.
    assert!(!attached.is_empty(), "attach answered 101");
    // The other node is unaffected.
    call(&fleet.addr(0).to_string(), "GET", "/_ping", None, 200);

    rt.block_on(fleet.revive(1)).expect("revive");
    assert_eq!(
        call(&addr, "GET", "/v1.24/info", None, 200)["ID"],
        id_before
    );
    assert_eq!(
        call(&addr, "GET", "/containers/keep/json", None, 200)["State"]["Status"],
        "running"
    );

    rt.block_on(fleet.kill_for(1, Duration::from_millis(300)))
        .expect("kill for");
    assert!(TcpStream::connect(&addr).is_err());
    // The listener accepts connections a moment before the node reports
    // itself alive (bind, then the flag): wait for both.
    wait_for("node back after 300 ms", Duration::from_secs(5), || {
        let alive = fleet.is_alive(1).expect("node 1");
        (alive && TcpStream::connect(&addr).is_ok()).then_some(())
    });
    assert!(fleet.is_alive(1).expect("node 1"));

    // sleep 1 ends after about a second; wait answers then.
    call(
        &addr,
        "POST",
        "/containers/create?name=nap",
        Some(&json!({"Image": IMAGE, "Cmd": ["sleep", "1"]})),
        201,
    );
    call(&addr, "POST", "/containers/nap/start", None, 204);
    let t = Instant::now();
    let waited = call(&addr, "POST", "/containers/nap/wait", None, 200);
    assert_eq!(waited, json!({"Error": null, "StatusCode": 0}));
    assert!(
        t.elapsed() >= Duration::from_millis(800) && t.elapsed() < Duration::from_secs(5),
        "sleep 1 took {:?}",
        t.elapsed()
    );
    // A failing command under `always` keeps restarting.
    call(
        &addr,
        "POST",
        "/containers/create?name=flappy",
        Some(
            &json!({"Image": IMAGE, "Cmd": ["false"], "HostConfig": {"RestartPolicy": {"Name": "always"}}}),
        ),
        201,
    );
    call(&addr, "POST", "/containers/flappy/start", None, 204);
    wait_for("restarts", Duration::from_secs(5), || {
        let c = call(&addr, "GET", "/containers/flappy/json", None, 200);
        (c["RestartCount"].as_i64().unwrap_or(0) >= 2).then_some(())
    });
    call(&addr, "POST", "/containers/flappy/stop", None, 204);
    let c = call(&addr, "GET", "/containers/flappy/json", None, 200);
    assert_eq!(c["State"]["Status"], "exited");

    // Latency is added to every answer.
    let slow = fleet_with_latency(&rt, Duration::from_millis(150));
    let t = Instant::now();
    call(&slow.addr(0).to_string(), "GET", "/_ping", None, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
}

/// A node joins (turns Healthy, a candidate for placement) only together
/// with its containers and images. An engine already runs a container
/// with 1 GiB of memory and answers every call 150 ms late; a new manager
/// is polled for `info` while it loads the engine: the first answer that
/// shows the node Healthy also shows the container and its reservation.
/// (Recorded one after the other, the node was Healthy with nothing
/// reserved for the 300 ms its list and the container's inspect took.)
#[test]
fn a_node_turns_healthy_only_with_its_containers_known() {
    let rt = runtime();
    let fleet = fleet_with_latency(&rt, Duration::from_millis(150));
    let engine = fleet.addr(0).to_string();
    let created = call(
        &engine,
        "POST",
        "/containers/create?name=held",
        Some(
            &json!({"Image": IMAGE, "Cmd": ["sleep", "1000"], "HostConfig": {"Memory": 1u64 << 30}}),
        ),
        201,
    );
    let id = created["Id"].as_str().expect("Id").to_string();
    call(
        &engine,
        "POST",
        &format!("/containers/{id}/start"),
        None,
        204,
    );
    let discovery = fleet.discovery();
    let mut args = FAST_REFRESH.to_vec();
    args.push(&discovery);
    let manager = start_manager(&args);
    let status = |info: &Value, key: &str| -> Option<String> {
        info["SystemStatus"].as_array()?.iter().find_map(|pair| {
            (pair[0].as_str()?.trim() == key).then(|| pair[1].as_str().map(str::to_string))?
        })
    };
    let info = wait_for("the node healthy", Duration::from_secs(20), || {
        let info = call(&manager.addr, "GET", "/info", None, 200);
        (status(&info, "└ Status").as_deref() == Some("Healthy")).then_some(info)
    });
    assert_eq!(
        status(&info, "└ Reserved Memory").as_deref(),
        Some("1 GiB / 8 GiB"),
        "{info:#}"
    );
    assert_eq!(
        status(&info, "└ Containers").as_deref(),
        Some("1 (1 Running, 0 Paused, 0 Stopped)"),
        "{info:#}"
    );
}

fn fleet_with_latency(rt: &tokio::runtime::Runtime, latency: Duration) -> Fleet {
    fleet(
        rt,
        FleetConfig {
            latency,
            ..Default::default()
        },
    )
}

/// Whether 127.0.0.1:`port` can be listened on the way hollow-engine
/// does (SO_REUSEADDR: connections in TIME_WAIT do not block it).
fn port_free(port: u16) -> bool {
    tokio::net::TcpSocket::new_v4()
        .and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        })
        .is_ok()
}

/// The binary: N nodes on consecutive ports, `--help` documents the admin
/// endpoint, which kills and revives a node.
#[test]
fn hollow_engine_binary_serves_nodes_and_an_admin_port() {
    let exe = env!("CARGO_BIN_EXE_hollow-engine");
    let help = Command::new(exe).arg("--help").output().expect("--help");
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "--nodes",
        "--base-port",
        "--latency",
        "/hollow/kill?for=5s",
        "/hollow/revive?node=I",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let mut started = None;
    for attempt in 0..20u64 {
        // Below the ephemeral range, where client connections take ports.
        let seed = u64::from(std::process::id()) * 7919 + attempt * 104_729;
        let base = 10_000 + (seed % 20_000) as u16;
        if !(base - 1..=base + 2).all(port_free) {
            continue;
        }
        let mut child = Reaped(
            Command::new(exe)
                .args([
                    "--nodes",
                    "3",
                    "--base-port",
                    &base.to_string(),
                    "--label",
                    "zone=x",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn hollow-engine"),
        );
        let mut line = String::new();
        let stdout = child.0.stdout.take().expect("stdout");
        // The first line comes once every node listens (or stdout closes).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        if let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
            line = l;
        }
        if line.contains("3 nodes") {
            started = Some((child, base, line));
            break;
        }
    }
    let (child, base, line) = started.expect("hollow-engine did not start");
    assert!(
        line.contains(&format!(
            "discovery nodes://127.0.0.1:[{base}:{}]",
            base + 2
        )),
        "{line}"
    );
    let node1 = format!("127.0.0.1:{}", base + 1);
    let admin = format!("127.0.0.1:{}", base - 1);
    let info = docker_ok(
        &format!("tcp://{node1}"),
        &["info", "--format", "{{.Name}} {{.ID}} {{.Labels}}"],
    );
    assert!(
        info.starts_with("hollow-1 ") && info.ends_with("[zone=x]"),
        "{info}"
    );
    call(&admin, "POST", "/hollow/kill?node=1", None, 200);
    assert!(TcpStream::connect(&node1).is_err(), "node 1 is dead");
    let nodes = call(&admin, "GET", "/hollow/nodes", None, 200);
    let alive: Vec<bool> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["Alive"].as_bool().unwrap_or(true))
        .collect();
    assert_eq!(alive, [true, false, true]);
    call(&admin, "POST", "/hollow/kill?node=9", None, 400);
    call(&admin, "POST", "/hollow/revive?node=1", None, 200);
    let again = docker_ok(
        &format!("tcp://{node1}"),
        &["info", "--format", "{{.Name}} {{.ID}} {{.Labels}}"],
    );
    assert_eq!(again, info, "same identity after revive");
    drop(child);
}

/// A child process killed (by pid) and reaped when dropped, also on panic.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_fleet_split_over_processes_numbers_its_nodes_on() {
    let rt = runtime();
    let fleet = fleet(
        &rt,
        FleetConfig {
            nodes: 2,
            first_index: 40,
            ..Default::default()
        },
    );
    assert_eq!(
        (fleet.name(0), fleet.name(1)),
        ("hollow-40".into(), "hollow-41".into())
    );
    let info = call(&fleet.addr(1).to_string(), "GET", "/info", None, 200);
    assert_eq!(info["Name"], "hollow-41");
}

/// `label` filters answer from the node's label index: exactly the
/// containers carrying every label asked for, before and after removals
/// and renames, with the other filters still applied.
#[test]
fn label_filters_list_exactly_the_labelled_containers() {
    let rt = runtime();
    let fleet = fleet_of(&rt, 1);
    let addr = fleet.addr(0).to_string();
    let create = |name: &str, labels: Value| {
        call(
            &addr,
            "POST",
            &format!("/v1.41/containers/create?name={name}"),
            Some(&json!({"Image": IMAGE, "Cmd": ["sleep", "infinity"], "Labels": labels})),
            201,
        );
    };
    create("a1", json!({"a": "1"}));
    create("a2", json!({"a": "2"}));
    create("a1b", json!({"a": "1", "b": "x"}));
    create("bare", json!({}));
    create("gone", json!({"a": "1"}));
    create("eq", json!({"x=y": "1", "x": "y"}));
    call(&addr, "DELETE", "/v1.41/containers/gone", None, 204);
    call(
        &addr,
        "POST",
        "/v1.41/containers/a2/rename?name=a2r",
        None,
        204,
    );
    call(&addr, "POST", "/v1.41/containers/a1/start", None, 204);
    let listed = |filters: Value| -> Vec<String> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("all", "1")
            .append_pair("filters", &filters.to_string())
            .finish();
        let list = call(
            &addr,
            "GET",
            &format!("/v1.41/containers/json?{query}"),
            None,
            200,
        );
        let mut names: Vec<String> = list
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c["Names"][0].as_str().unwrap_or("").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listed(json!({"label": ["a=1"]})), ["/a1", "/a1b"]);
    assert_eq!(listed(json!({"label": ["a"]})), ["/a1", "/a1b", "/a2r"]);
    assert_eq!(listed(json!({"label": ["a=1", "b=x"]})), ["/a1b"]);
    assert_eq!(listed(json!({"label": ["b", "a=2"]})), Vec::<String>::new());
    assert_eq!(
        listed(json!({"label": ["a=1"], "status": ["running"]})),
        ["/a1"]
    );
    assert_eq!(listed(json!({"label": ["nosuch"]})), Vec::<String>::new());
    assert_eq!(listed(json!({"name": ["a2r"]})), ["/a2r"]);
    // Both labels index it under `x=y`: listed once.
    assert_eq!(listed(json!({"label": ["x=y"]})), ["/eq"]);
}
