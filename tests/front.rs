//! The API's front end to end: `swarm manage` over hollow engines, driven
//! with raw HTTP. What is checked is the manager's own doing, before any
//! engine is asked (error shapes, timeouts, the connection cap, the
//! checks on requests and create bodies), so hollow engines stand in for
//! real ones.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm_harness::hollow::{Fleet, FleetConfig};
use swarm_harness::{docker_ok, info_value, start_manager, wait_for, Manager, FAST_REFRESH};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A fleet of `nodes` hollow engines.
fn fleet(rt: &tokio::runtime::Runtime, nodes: usize) -> Fleet {
    rt.block_on(Fleet::start(FleetConfig {
        nodes,
        ..Default::default()
    }))
    .expect("starting a hollow fleet")
}

/// A manager over `fleet` with `extra` flags (and fast refreshes), once
/// every node is healthy.
fn manager(fleet: &Fleet, extra: &[&str]) -> Manager {
    let discovery = fleet.discovery();
    let mut args: Vec<&str> = FAST_REFRESH.to_vec();
    args.extend_from_slice(extra);
    args.push(&discovery);
    let m = start_manager(&args);
    all_healthy(&m.host, fleet.len());
    m
}

/// Waits until `docker info` shows `nodes` healthy nodes.
fn all_healthy(host: &str, nodes: usize) {
    wait_for("every node healthy", Duration::from_secs(30), || {
        let info = docker_ok(host, &["info"]);
        (info_value(&info, "└ Status") == vec!["Healthy".to_string(); nodes]).then_some(())
    });
}

/// An HTTP answer read to its end.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if any.
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// Docker's error shape: a JSON content type and `{"message": ...}`;
    /// the message.
    fn docker_error(&self) -> String {
        let kind = self.header("content-type").unwrap_or_default();
        assert!(
            kind.starts_with("application/json"),
            "error answer without a JSON type: {self:?}"
        );
        let value: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("error answer is not JSON ({e}): {self:?}"));
        value["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {value}"))
            .to_string()
    }
}

/// Sends `request` (raw bytes) on a new connection and reads the answer
/// until the server closes or the body (content-length) is complete.
fn exchange(addr: &str, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    // The server may answer before it read everything (413, 431): a
    // failed write is not the test's failure, a missing answer is.
    let _ = stream.write_all(request);
    read_answer(&mut stream)
}

fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(answer) = complete(&raw) {
            return answer;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no answer: {e}"),
            Err(_) => break,
        }
    }
    // Closed: what came is the answer (a HEAD's has no body).
    parse(&raw).unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&raw)))
}

/// The answer in `raw`, its body as far as it came.
fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some(Answer {
        status: head.get(9..12)?.parse().ok()?,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// The answer in `raw` once its head and content-length body are there.
fn complete(raw: &[u8]) -> Option<Answer> {
    let answer = parse(raw)?;
    let length: usize = answer.header("content-length")?.parse().ok()?;
    (answer.body.len() >= length).then_some(answer)
}

/// `METHOD PATH` with `headers` (each `Name: value`) and `body`.
fn request(method: &str, path: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    text.into_bytes()
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(within)).expect("read timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
        if start.elapsed() > within {
            return None;
        }
    }
}

/// Every error answer carries Docker's `{"message": ...}`, whoever made
/// it: axum's 405, hyper's 431/414/400 on unparsable requests, and the
/// version check, which refuses a version that is no number.
#[test]
fn every_error_answer_is_docker_json() {
    let rt = runtime();
    let fleet = fleet(&rt, 1);
    let m = manager(&fleet, &[]);
    let host = "Host: docker";

    let a = exchange(&m.addr, &request("POST", "/_ping", &[host], ""));
    assert_eq!(a.status, 405, "{a:?}");
    assert!(a.docker_error().contains("not allowed"), "{a:?}");
    assert_eq!(a.header("allow").as_deref(), Some("GET,HEAD"), "{a:?}");

    // Docker answers 400 to a version it cannot parse.
    let a = exchange(
        &m.addr,
        &request("GET", "/v1.999999999999999999999/info", &[host], ""),
    );
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.docker_error().contains("invalid API version"), "{a:?}");

    // Headers past --api-max-header-size (64 KiB), and a URI as long.
    let big = format!("X-Big: {}", "a".repeat(70_000));
    let a = exchange(&m.addr, &request("GET", "/_ping", &[host, &big], ""));
    assert_eq!(a.status, 431, "{a:?}");
    assert!(a.docker_error().contains("too large"), "{a:?}");
    let long = format!("/_ping?{}", "a".repeat(70_000));
    let a = exchange(&m.addr, &request("GET", &long, &[host], ""));
    assert_eq!(a.status, 431, "{a:?}");
    a.docker_error();

    let a = exchange(&m.addr, b"GARBAGE\r\n\r\n");
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.docker_error().contains("malformed"), "{a:?}");

    // A manager of another state format may not join: its log would hold
    // entries it cannot read.
    let join =
        r#"{"id": 77, "raft_addr": "127.0.0.1:1", "api_addr": "127.0.0.1:2", "format": 999}"#;
    let a = exchange(
        &m.addr,
        &request(
            "POST",
            "/_swarm/join",
            &[host, "Content-Type: application/json"],
            join,
        ),
    );
    assert_eq!(a.status, 409, "{a:?}");
    assert!(a.docker_error().contains("reads format 999"), "{a:?}");

    // HEAD answers stay bodiless.
    let a = exchange(&m.addr, &request("HEAD", "/_ping", &[host], ""));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "");

    // With a larger header limit, hyper's own URI limit (64 KiB) answers 414.
    let m = manager(&fleet, &["--api-max-header-size", "1M"]);
    let a = exchange(&m.addr, &request("GET", &long, &[host], ""));
    assert_eq!(a.status, 414, "{a:?}");
    assert!(a.docker_error().contains("URI too long"), "{a:?}");
}

/// Connections that send nothing, or a request head a byte at a time, are
/// closed after --api-header-timeout, and a small body that trickles is
/// answered 408 after as long; kept-alive connections are closed after
/// --api-idle-timeout between requests; streams (events, a hijacked
/// attach) stay open however long they last.
#[test]
fn slow_and_idle_connections_are_closed_streams_are_not() {
    let rt = runtime();
    let fleet = fleet(&rt, 1);
    let m = manager(
        &fleet,
        &["--api-header-timeout", "2s", "--api-idle-timeout", "3s"],
    );
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(&m.addr).expect("connect");

    // Slowloris: a byte every 500 ms never completes a head.
    let mut slow = TcpStream::connect(&m.addr).expect("connect");
    let trickle = std::thread::spawn(move || {
        let start = Instant::now();
        for byte in b"GET /_ping HTTP/1.1\r\nHost: docker\r\nX-Slow: aaaaaaaaaaaaaaa\r\n" {
            if slow.write_all(&[*byte]).is_err() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        None
    });

    // Kept alive after an answer.
    let mut kept = TcpStream::connect(&m.addr).expect("connect");
    kept.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .expect("write");
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let idle_since = Instant::now();

    // Streams: the event stream, and a container's attached output.
    let mut events = TcpStream::connect(&m.addr).expect("connect");
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n")
        .expect("write");
    let a = exchange(
        &m.addr,
        &request(
            "POST",
            "/containers/create?name=forever",
            &["Host: docker", "Content-Type: application/json"],
            r#"{"Image":"busybox:local","Cmd":["top"]}"#,
        ),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let a = exchange(
        &m.addr,
        &request("POST", "/containers/forever/start", &["Host: docker"], ""),
    );
    assert_eq!(a.status, 204, "{a:?}");
    let mut attach = TcpStream::connect(&m.addr).expect("connect");
    attach
        .write_all(b"POST /containers/forever/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        .expect("write");
    attach
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let n = attach.read(&mut buf).expect("upgrade answer");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    closed_within(&mut silent, Duration::from_secs(6)).expect("silent kept open");
    let silent_for = t0.elapsed();
    assert!(
        silent_for >= Duration::from_millis(1900) && silent_for <= Duration::from_secs(6),
        "silent connection closed after {silent_for:?}"
    );
    closed_within(&mut kept, Duration::from_secs(6)).expect("idle kept open");
    let idle_for = idle_since.elapsed();
    assert!(
        idle_for >= Duration::from_millis(2900) && idle_for <= Duration::from_secs(8),
        "idle connection closed after {idle_for:?}"
    );
    let slow_closed = trickle.join().expect("trickle thread");
    assert!(
        slow_closed.is_some_and(|d| d < Duration::from_secs(6)),
        "the slow head was still read after {slow_closed:?}"
    );

    // A create body that trickles.
    let mut slow = TcpStream::connect(&m.addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    slow.write_all(
        b"POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Ima",
    )
    .expect("write");
    let asked = Instant::now();
    let a = read_answer(&mut slow);
    assert_eq!(a.status, 408, "{a:?}");
    a.docker_error();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );

    // Well past both timeouts, the streams are still open.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(closed_within(&mut events, Duration::from_millis(200)), None);
    assert_eq!(closed_within(&mut attach, Duration::from_millis(200)), None);
    assert!(t0.elapsed() > Duration::from_secs(5));
}

/// With the descriptor limit at 256, 400 idle connections do not take the
/// manager down: the connection cap derived from the limit (61 clients:
/// half of 256 - 128 - 3 per engine) makes each new connection take the
/// place of the one idle longest, so `/_ping`, `docker` commands and the
/// engines' refreshes (a node killed turns unhealthy, revived healthy
/// again) keep working; when every connection is busy, a newcomer gets a
/// 503 at once.
#[test]
fn idle_connections_leave_descriptors_for_requests_and_engines() {
    let rt = runtime();
    let fleet = fleet(&rt, 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let wrapper = dir.path().join("swarm-256");
    let swarm = swarm_harness::binary("swarm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 256 || exit 1\nexec {} \"$@\"\n",
            swarm.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let discovery = fleet.discovery();
    let mut args: Vec<String> = FAST_REFRESH.iter().map(|s| s.to_string()).collect();
    args.extend(["--log-level".into(), "info".into(), discovery]);
    let mut m = Manager::spawn(swarm_harness::ManagerConfig {
        bin: Some(wrapper),
        args,
        ..Default::default()
    })
    .expect("spawn");
    m.wait_ping(Duration::from_secs(20)).expect("ping");
    let host = m.host.clone();
    all_healthy(&host, 2);

    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&m.addr).expect("connect"))
        .collect();
    let t0 = Instant::now();
    let a = exchange(&m.addr, &request("GET", "/_ping", &["Host: docker"], ""));
    assert_eq!((a.status, a.body.as_str()), (200, "OK"), "{a:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "ping took {:?}",
        t0.elapsed()
    );
    docker_ok(
        &host,
        &["run", "-d", "--name", "busy", "busybox:local", "top"],
    );
    assert_eq!(docker_ok(&host, &["ps", "-q"]).lines().count(), 1);

    // The engines are still refreshed: a dead node is noticed, and its return.
    rt.block_on(fleet.kill(1)).expect("kill node 1");
    wait_for("node 1 unhealthy", Duration::from_secs(30), || {
        let info = docker_ok(&host, &["info"]);
        info_value(&info, "└ Status")
            .contains(&"Unhealthy".to_string())
            .then_some(())
    });
    rt.block_on(fleet.revive(1)).expect("revive node 1");
    all_healthy(&host, 2);
    let log = m.log();
    assert!(!log.contains("Too many open files"), "EMFILE in the log");
    drop(idle);

    // Every place busy with a stream: a newcomer is told so at once.
    let streams: Vec<TcpStream> = (0..61)
        .map(|_| {
            let mut s = TcpStream::connect(&m.addr).expect("connect");
            s.write_all(b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n")
                .expect("write");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).expect("events answer");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            s
        })
        .collect();
    let a = exchange(&m.addr, &request("GET", "/_ping", &["Host: docker"], ""));
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.docker_error().contains("too many connections"), "{a:?}");
    drop(streams);
    wait_for("room again", Duration::from_secs(10), || {
        let a = exchange(&m.addr, &request("GET", "/_ping", &["Host: docker"], ""));
        (a.status == 200).then_some(())
    });
}

/// Create bodies the manager refuses itself with 400, before placement
/// (nothing reaches an engine): ports that are none (the port filter
/// must understand every port to keep it from being booked twice), a
/// host IP that is no IP, a constraint holding a NUL byte, CpuShares of
/// 2^40 (which classic swarm reads as CPUs to reserve).
#[test]
fn bad_create_bodies_are_refused_before_placement() {
    let rt = runtime();
    let fleet = fleet(&rt, 2);
    let m = manager(&fleet, &[]);
    let binding = |ip: &str, port: &str| serde_json::json!({"PortBindings": {"80/tcp": [{"HostIp": ip, "HostPort": port}]}});
    let cases = [
        (
            binding("", "70000"),
            None,
            r#"invalid port specification: "70000""#,
        ),
        (
            binding("", "65536"),
            None,
            r#"invalid port specification: "65536""#,
        ),
        (
            binding("", "-1"),
            None,
            r#"invalid port specification: "-1""#,
        ),
        (
            binding("", "abc"),
            None,
            r#"invalid port specification: "abc""#,
        ),
        (
            binding("", "65530-65540"),
            None,
            r#"invalid port specification: "65530-65540""#,
        ),
        (
            binding("not-an-ip", "8080"),
            None,
            "invalid IP address: not-an-ip",
        ),
        (
            serde_json::json!({"PortBindings": {"0/tcp": [{"HostPort": "8080"}]}}),
            None,
            r#"invalid port specification: "0""#,
        ),
        (
            serde_json::json!({}),
            Some(serde_json::json!({"99999/tcp": {}})),
            r#"invalid port specification: "99999""#,
        ),
        (
            serde_json::json!({}),
            Some(serde_json::json!({"80/xyz": {}})),
            r#"invalid port specification: "80/xyz""#,
        ),
        (
            serde_json::json!({}),
            Some(serde_json::json!({"abc": {}})),
            r#"invalid port specification: "abc""#,
        ),
        (
            serde_json::json!({"CpuShares": 1_u64 << 40}),
            None,
            "invalid CpuShares 1099511627776: must be between 0 and 262144",
        ),
    ];
    let create = |body: &Value| {
        exchange(
            &m.addr,
            &request(
                "POST",
                "/containers/create",
                &["Host: docker", "Content-Type: application/json"],
                &body.to_string(),
            ),
        )
    };
    for (host_config, exposed, message) in cases {
        let mut body = serde_json::json!({
            "Image": "busybox:local",
            "Cmd": ["true"],
            "HostConfig": host_config,
        });
        if let Some(exposed) = exposed {
            body["ExposedPorts"] = exposed;
        }
        let a = create(&body);
        assert_eq!(a.status, 400, "{body}: {a:?}");
        assert_eq!(a.docker_error(), message, "{body}");
    }
    let body = serde_json::json!({
        "Image": "busybox:local",
        "Cmd": ["true"],
        "Env": ["constraint:region==eu\u{0}"],
    });
    let a = create(&body);
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.docker_error().contains("control character"), "{a:?}");
    for node in 0..fleet.len() {
        assert_eq!(fleet.container_count(node), 0, "node {node}");
    }
    // The same create with a port that is one goes through.
    let a = create(&serde_json::json!({
        "Image": "busybox:local",
        "Cmd": ["true"],
        "HostConfig": binding("127.0.0.1", "8080"),
    }));
    assert_eq!(a.status, 201, "{a:?}");
}

/// Creates and starts `name` (running until stopped) through the manager.
fn running(addr: &str, name: &str) {
    let a = exchange(
        addr,
        &request(
            "POST",
            &format!("/containers/create?name={name}"),
            &["Host: docker", "Content-Type: application/json"],
            r#"{"Image":"busybox:local","Cmd":["top"]}"#,
        ),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let a = exchange(
        addr,
        &request(
            "POST",
            &format!("/containers/{name}/start"),
            &["Host: docker"],
            "",
        ),
    );
    assert_eq!(a.status, 204, "{a:?}");
}

/// Whether container `name` runs, as the manager's inspect says.
fn is_running(addr: &str, name: &str) -> bool {
    let a = exchange(
        addr,
        &request(
            "GET",
            &format!("/containers/{name}/json"),
            &["Host: docker"],
            "",
        ),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let value: Value = serde_json::from_str(&a.body).expect("inspect JSON");
    value["State"]["Running"] == Value::Bool(true)
}

/// What a web page in the operator's browser can send to a manager on
/// loopback is refused: JSON endpoints refuse a body that is not
/// `application/json` (a form or a `text/plain` fetch needs no CORS
/// preflight), a request with an `Origin` not allowed by
/// --api-cors-header gets 403 (even body-less ones such as kill), and
/// a `Host` that is not one of the manager's names gets 403 (DNS
/// rebinding).
#[test]
fn cross_site_requests_are_refused() {
    let rt = runtime();
    let fleet = fleet(&rt, 1);
    let m = manager(&fleet, &[]);
    running(&m.addr, "target");
    let plain = ["Host: docker", "Content-Type: text/plain"];
    for (path, body) in [
        (
            "/containers/create?name=csrf",
            r#"{"Image":"busybox:local","Cmd":["top"]}"#,
        ),
        ("/containers/target/update", r#"{"Memory":0}"#),
        ("/containers/target/exec", r#"{"Cmd":["true"]}"#),
        ("/exec/0123abcd/start", r#"{"Detach":true}"#),
        (
            "/_swarm/join",
            r#"{"id":7,"raft_addr":"127.0.0.1:1","api_addr":"127.0.0.1:2"}"#,
        ),
        ("/_swarm/remove", r#"{"id":7}"#),
    ] {
        let a = exchange(&m.addr, &request("POST", path, &plain, body));
        assert_eq!(a.status, 400, "{path}: {a:?}");
        assert_eq!(
            a.docker_error(),
            "Content-Type specified (text/plain) must be 'application/json'",
            "{path}"
        );
    }
    assert_eq!(fleet.container_count(0), 1, "a container was created");

    // Origin: refused unless allowed, body-less requests included.
    let evil = ["Host: docker", "Origin: http://evil.example"];
    for (method, path) in [
        ("POST", "/containers/target/kill"),
        ("GET", "/containers/json"),
        ("OPTIONS", "/containers/create"),
    ] {
        let a = exchange(&m.addr, &request(method, path, &evil, ""));
        assert_eq!(a.status, 403, "{method} {path}: {a:?}");
        assert!(a.docker_error().contains("http://evil.example"), "{a:?}");
    }
    assert!(
        is_running(&m.addr, "target"),
        "killed by a cross-site request"
    );

    // Host: names of the manager only.
    let port = m.addr.rsplit_once(':').expect("port").1;
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("127.0.0.1.evil.example:{port}"),
    ] {
        let header = format!("Host: {host}");
        for (method, path) in [("GET", "/_ping"), ("POST", "/containers/target/kill")] {
            let a = exchange(&m.addr, &request(method, path, &[&header], ""));
            assert_eq!(a.status, 403, "{host} {path}: {a:?}");
            assert!(a.docker_error().contains("--api-host"), "{a:?}");
        }
    }
    assert!(
        is_running(&m.addr, "target"),
        "killed through a foreign Host"
    );
    for host in [
        format!("localhost:{port}"),
        "api.moby.localhost".to_string(),
        "docker".to_string(),
        m.addr.clone(),
        format!("[::1]:{port}"),
    ] {
        let header = format!("Host: {host}");
        let a = exchange(&m.addr, &request("GET", "/_ping", &[&header], ""));
        assert_eq!(a.status, 200, "{host}: {a:?}");
    }
    let a = exchange(&m.addr, b"GET /_ping HTTP/1.0\r\n\r\n");
    assert_eq!(a.status, 200, "no Host: {a:?}");
}

/// Origins given with --api-cors-header get dockerd's CORS headers (and
/// their preflight a 200); names given with --api-host are served.
#[test]
fn allowed_origins_and_names_are_served() {
    let rt = runtime();
    let fleet = fleet(&rt, 1);
    let m = manager(
        &fleet,
        &[
            "--api-host",
            "swarm.example",
            "--api-cors-header",
            "http://ui.example",
        ],
    );
    let ui = ["Host: swarm.example", "Origin: http://ui.example"];
    let a = exchange(&m.addr, &request("OPTIONS", "/containers/create", &ui, ""));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.header("access-control-allow-origin").as_deref(),
        Some("http://ui.example")
    );
    assert!(a
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let a = exchange(&m.addr, &request("GET", "/containers/json", &ui, ""));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.header("access-control-allow-origin").as_deref(),
        Some("http://ui.example")
    );
    let other = ["Host: docker", "Origin: http://other.example"];
    let a = exchange(&m.addr, &request("GET", "/containers/json", &other, ""));
    assert_eq!(a.status, 403, "{a:?}");
    let a = exchange(
        &m.addr,
        &request("GET", "/_ping", &["Host: other.example"], ""),
    );
    assert_eq!(a.status, 403, "{a:?}");
}

/// A follower checks Host and Origin against its own flags and hands the
/// request to the leader, which serves it although its flags allow
/// neither: the forwarded request carries no Origin and Host `docker`.
#[test]
fn followers_forward_what_they_admit() {
    let rt = runtime();
    let fleet = fleet(&rt, 1);
    let leader_raft = format!("127.0.0.1:{}", swarm_harness::free_port());
    let leader = manager(&fleet, &["--raft-addr", &leader_raft]);
    let follower_raft = format!("127.0.0.1:{}", swarm_harness::free_port());
    let follower = manager(
        &fleet,
        &[
            "--raft-addr",
            &follower_raft,
            "--join",
            &leader.addr,
            "--api-host",
            "follower.example",
            "--api-cors-header",
            "http://ui.example",
        ],
    );
    wait_for("a follower", Duration::from_secs(30), || {
        let info = docker_ok(&follower.host, &["info"]);
        (info_value(&info, "Role") == ["replica"]).then_some(())
    });
    let headers = [
        "Host: follower.example",
        "Origin: http://ui.example",
        "Content-Type: application/json",
    ];
    let a = exchange(
        &follower.addr,
        &request(
            "POST",
            "/containers/create?name=via-follower",
            &headers,
            r#"{"Image":"busybox:local","Cmd":["top"]}"#,
        ),
    );
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(
        a.header("access-control-allow-origin").as_deref(),
        Some("http://ui.example")
    );
    // The leader itself refuses both.
    let a = exchange(
        &leader.addr,
        &request("GET", "/containers/json", &headers[..1], ""),
    );
    assert_eq!(a.status, 403, "{a:?}");
    let a = exchange(
        &leader.addr,
        &request("GET", "/containers/json", &["Host: docker", headers[1]], ""),
    );
    assert_eq!(a.status, 403, "{a:?}");
}

/// Sends `head` then `body_len` bytes of zeros (from another thread, as
/// an HTTP client does) and reads the answer meanwhile.
fn upload(addr: &str, head: &str, body_len: usize, chunked: bool) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let head = head.to_string();
    let sender = std::thread::spawn(move || {
        writer.write_all(head.as_bytes())?;
        let chunk = vec![b'0'; 64 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            if chunked {
                writer.write_all(format!("{n:x}\r\n").as_bytes())?;
            }
            writer.write_all(&chunk[..n])?;
            if chunked {
                writer.write_all(b"\r\n")?;
            }
            left -= n;
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n")?;
        }
        std::io::Result::Ok(())
    });
    let answer = read_answer(&mut stream);
    drop(stream);
    let _ = sender.join();
    answer
}

/// Bodies of endpoints that take small JSON are limited
/// (--api-max-body-size, 4 MiB): 100 MB sent to a start, announced or
/// chunked, get 413 at once (it was a 500 "Broken pipe"); uploads
/// that stream (docker cp into a container, docker load) are not
/// limited and reach the engine.
#[test]
fn small_bodies_are_limited_uploads_are_not() {
    let rt = runtime();
    let fleet = fleet(&rt, 1);
    let m = manager(&fleet, &[]);
    running(&m.addr, "target");
    const BIG: usize = 100 << 20;
    let json = "Host: docker\r\nContent-Type: application/json";
    for chunked in [false, true] {
        let length = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {BIG}")
        };
        let head = format!("POST /containers/target/start HTTP/1.1\r\n{json}\r\n{length}\r\n\r\n");
        let t0 = Instant::now();
        let a = upload(&m.addr, &head, BIG, chunked);
        assert_eq!(a.status, 413, "chunked {chunked}: {a:?}");
        assert!(a.docker_error().contains("--api-max-body-size"), "{a:?}");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    }
    let head = format!(
        "POST /containers/create HTTP/1.1\r\n{json}\r\nContent-Length: {}\r\n\r\n",
        (4 << 20) + 1
    );
    let a = upload(&m.addr, &head, (4 << 20) + 1, false);
    assert_eq!(a.status, 413, "{a:?}");

    // Streamed uploads go to the engine whole (hollow engines answer 501).
    for (method, path) in [
        ("PUT", "/containers/target/archive?path=/tmp"),
        ("POST", "/images/load"),
    ] {
        let len = 10 << 20;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: {len}\r\n\r\n"
        );
        let a = upload(&m.addr, &head, len, false);
        assert_ne!(a.status, 413, "{path}: {a:?}");
    }
}
