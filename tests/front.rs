//! The API's front end to end: `swarm manage` over hollow engines, driven
//! with raw HTTP. What is checked is the manager's own doing, before any
//! engine is asked (error shapes, timeouts, the connection cap, the
//! checks on requests and create bodies), so hollow engines stand in for
//! real ones.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

/// Every error answer carries Docker's `{"message": ...}`, whoever made
/// it: axum's 405, and the version check, which refuses a version that is
/// no number.
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

    // HEAD answers stay bodiless.
    let a = exchange(&m.addr, &request("HEAD", "/_ping", &[host], ""));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "");
}
