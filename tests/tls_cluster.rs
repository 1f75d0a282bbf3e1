//! TLS everywhere, end to end: `swarm manage --tlsverify` with certificates
//! of one CA (the harness' [`Pki`], swarm's built-in CA), real `dockerd`s,
//! the real `docker` CLI and `swarmctl`.
//!
//! - One manager in front of two engines that themselves require TLS (and
//!   a third at its unix socket, reached without TLS): the docker CLI with
//!   a client certificate runs, lists, execs, reads logs and streams stdin
//!   through it; a client without a certificate, with
//!   another CA's, with an expired one, or speaking plain HTTP is refused
//!   and the manager goes on serving; only a manager's certificate may ask
//!   to join or remove managers; SIGHUP makes the manager serve a new
//!   certificate to new connections while an open `docker events` stream
//!   goes on.
//! - Three managers, each with its own manager certificate, in front of
//!   plain engines (`--engine-tls=false`): they join over TLS, `swarmctl`
//!   lists them with TLS flags, a follower forwards to the leader over
//!   TLS; a manager with another CA's certificate never joins, one with a
//!   client certificate does not start, a client's join is refused by
//!   leader and follower alike; the Raft ports refuse anything but a manager's
//!   certificate; a new leader takes over when the leader is killed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm::ca::CertKind;
use swarm_harness::manager::TEST_LOG_LEVEL;
use swarm_harness::members::{bare, joined_as_voter, parse_members, Member};
use swarm_harness::pki::{anonymous_client_config, cert_der, serial, tls_exchange};
use swarm_harness::{
    client_config, compose_cmd, docker_cmd, docker_in_tty, free_port, http_get, info_value,
    output_ok, output_with_stdin, start_engines, start_engines_with, timed, tls_flags, tls_request,
    wait_for, wait_ok, watchdog, EngineOptions, EngineTls, Manager, ManagerConfig, Pki,
    FAST_REFRESH, IMAGE,
};

/// How long a TLS manager may take to answer its first `/_ping`.
const READY: Duration = Duration::from_secs(30);
/// Generous bound on anything the cluster does by itself (nodes healthy, a
/// member joining, an event arriving, a new leader).
const SETTLE: Duration = Duration::from_secs(30);
/// The names a manager on loopback is dialled at: its certificate's SANs.
const LOOPBACK: [&str; 2] = ["127.0.0.1", "localhost"];

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The docker CLI with a fixed set of TLS flags, a `HOME` of its own (no
/// `~/.docker` certificates) and none of the caller's `DOCKER_*` settings.
struct Cli {
    flags: Vec<String>,
    home: PathBuf,
}

impl Cli {
    fn new(flags: Vec<String>, home: &Path) -> Cli {
        std::fs::create_dir_all(home).expect("a HOME for the CLI");
        Cli {
            flags,
            home: home.to_path_buf(),
        }
    }

    /// `docker -H host FLAGS ARGS`, bounded by `secs`.
    fn cmd(&self, secs: u64, host: &str, args: &[&str]) -> Command {
        let mut all: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let mut cmd = docker_cmd(secs, host, &all);
        cmd.env("HOME", &self.home)
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        cmd
    }

    fn run(&self, host: &str, args: &[&str]) -> Output {
        self.cmd(60, host, args).output().expect("running docker")
    }

    /// Must succeed; stdout trimmed.
    fn ok(&self, host: &str, args: &[&str]) -> String {
        let out = self.run(host, args);
        assert!(
            out.status.success(),
            "`docker -H {host} {} {}` failed\nstdout: {}\nstderr: {}",
            self.flags.join(" "),
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `docker version`'s server part, or the CLI's error.
    fn server_version(&self, host: &str) -> Result<String, String> {
        let out = self
            .cmd(30, host, &["version", "--format", "{{.Server.Version}}"])
            .output()
            .expect("running docker");
        let version = text(&out.stdout);
        if out.status.success() && !version.is_empty() {
            Ok(version)
        } else {
            Err(format!("{} {}", version, text(&out.stderr)))
        }
    }

    /// `input` on stdin (then closed); the output.
    fn with_stdin(&self, host: &str, args: &[&str], input: &[u8]) -> Output {
        output_with_stdin(self.cmd(60, host, args), input)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Starts `swarm manage` with `args` (TLS flags, discovery...) and waits
/// until it answers `/_ping` over TLS to the client of `client_dir`.
fn start_tls_manager(
    name: &str,
    raft_addr: Option<String>,
    join: Option<String>,
    args: Vec<String>,
    client_dir: &Path,
) -> Manager {
    watchdog();
    let mut manager = Manager::spawn(ManagerConfig {
        name: name.to_string(),
        raft_addr,
        join,
        log_level: Some(TEST_LOG_LEVEL.to_string()),
        args,
        ..ManagerConfig::default()
    })
    .unwrap_or_else(|e| panic!("starting swarm manage {name}: {e:#}"));
    if let Err(e) = manager.wait_ping_tls(client_dir, READY) {
        panic!("{e:#}");
    }
    manager
}

/// The `message` of a Docker JSON error body.
fn json_message(body: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(body.trim()).map_err(|e| format!("not JSON ({e}): {body:?}"))?;
    value["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(String::from)
        .ok_or_else(|| format!("no message in {value}"))
}

/// `GET /_ping` over TLS answers OK.
fn pings(addr: &str, config: &Arc<rustls::ClientConfig>) -> Result<(), String> {
    match tls_request(addr, config, "GET", "/_ping", None) {
        Ok(a) if a.status == 200 && a.body.trim() == "OK" => Ok(()),
        Ok(a) => Err(format!("/_ping answered {}: {}", a.status, a.body)),
        Err(e) => Err(format!("/_ping: {e:#}")),
    }
}

/// `docker events` running in the background, its lines on a channel.
struct Events {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Events {
    fn start(cli: &Cli, host: &str) -> Events {
        let mut child = cli
            .cmd(
                150,
                host,
                &[
                    "events",
                    "--format",
                    "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker events");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("events stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Events {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line holding every word of `want`.
    fn wait_for(&mut self, want: &[&str], timeout: Duration) {
        let start = Instant::now();
        loop {
            if self
                .seen
                .iter()
                .any(|l| want.iter().all(|w| l.split_whitespace().any(|x| x == *w)))
            {
                return;
            }
            let left = timeout.saturating_sub(start.elapsed());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => panic!(
                    "no event {want:?} from docker events within {timeout:?}; saw: {:?}",
                    self.seen
                ),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "docker events ended ({:?}) before {want:?}; saw: {:?}",
                    self.child.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// Whether the CLI still runs (its stream is open).
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // `timeout` passes SIGTERM on to docker.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// One manager, engines with TLS
// ---------------------------------------------------------------------------

/// `swarm manage --tlsverify` in front of two `dockerd --tlsverify` (and a
/// plain one at its unix socket): the docker CLI with a client certificate
/// does everything through it, other clients are refused, join and remove
/// are the managers', and SIGHUP rotates the served certificate.
#[test]
fn one_manager_serves_tls_clients_in_front_of_tls_engines() {
    let t0 = Instant::now();
    let pki = Pki::new().expect("PKI");
    let engine_dir = pki
        .issue(CertKind::Engine, "engine", &LOOPBACK)
        .expect("engine certificate");
    let manager_dir = pki
        .issue(CertKind::Manager, "manager-a", &LOOPBACK)
        .expect("manager certificate");
    let client_dir = pki
        .issue(CertKind::Client, "alice", &[])
        .expect("client certificate");
    let stranger_dir = pki
        .issue_stranger(CertKind::Client, "mallory", &[])
        .expect("another CA's client certificate");
    let expired_dir = pki
        .issue_expired_client("late")
        .expect("expired certificate");

    // Two engines that require TLS, at their TCP addresses, and a third
    // one at its unix socket, which is never dialled with TLS.
    let mut options: Vec<EngineOptions> = ["eu", "us"]
        .iter()
        .map(|region| EngineOptions {
            labels: vec![("region".to_string(), region.to_string())],
            tls: Some(EngineTls::in_dir(&engine_dir)),
            ..EngineOptions::default()
        })
        .collect();
    options.push(EngineOptions {
        labels: vec![("region".to_string(), "local".to_string())],
        ..EngineOptions::default()
    });
    let engines = start_engines_with(options);
    let engine_addrs = [
        engines[0].tcp.clone(),
        engines[1].tcp.clone(),
        engines[2].host(),
    ];
    let mut args = tls_flags(&manager_dir);
    args.extend(strings(&FAST_REFRESH));
    args.push(format!("nodes://{}", engine_addrs.join(",")));
    let manager = start_tls_manager("tls-manager", None, None, args, &client_dir);
    let host = manager.host.clone();
    let addr = manager.addr.clone();
    let home = pki.dir().join("home");
    let alice = Cli::new(tls_flags(&client_dir), &home);
    eprintln!("cluster up after {:?}", t0.elapsed());

    // The manager reaches the TLS engines with its certificate, and the
    // unix socket as it is.
    let info = wait_ok("every engine healthy", SETTLE, || {
        let out = alice.run(&host, &["info"]);
        let info = text(&out.stdout);
        let status = info_value(&info, "└ Status");
        if status == ["Healthy", "Healthy", "Healthy"] {
            Ok(info)
        } else {
            Err(format!("status {status:?}: {info} {}", text(&out.stderr)))
        }
    });
    assert_eq!(info_value(&info, "Nodes"), ["3"], "{info}");
    for (engine, engine_addr) in engines.iter().zip(&engine_addrs) {
        let bare = engine_addr.strip_prefix("unix://").unwrap_or(engine_addr);
        assert!(
            info.contains(&format!(" {}: ", engine.name)) && info.contains(bare),
            "node {} ({engine_addr}) missing in {info}",
            engine.name,
        );
    }
    assert_eq!(
        info_value(&info, "└ Error"),
        ["(none)", "(none)", "(none)"],
        "{info}"
    );

    // run -d, ps, exec, logs.
    alice.ok(
        &host,
        &["run", "-d", "--name", "tls-sleeper", IMAGE, "sleep", "600"],
    );
    let names = alice.ok(&host, &["ps", "--format", "{{.Names}}"]);
    let sleeper = names
        .lines()
        .find(|l| l.ends_with("/tls-sleeper"))
        .unwrap_or_else(|| panic!("tls-sleeper not listed: {names}"));
    assert!(
        engines
            .iter()
            .any(|e| sleeper == format!("{}/tls-sleeper", e.name)),
        "{sleeper} is not on a node of the cluster"
    );
    assert_eq!(
        alice.ok(&host, &["exec", "tls-sleeper", "echo", "exec over tls"]),
        "exec over tls"
    );
    alice.ok(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "tls-logger",
            IMAGE,
            "sh",
            "-c",
            "echo logged-line; sleep 600",
        ],
    );
    wait_ok("the logger's line in docker logs", SETTLE, || {
        let logs = alice.ok(&host, &["logs", "tls-logger"]);
        (logs == "logged-line")
            .then_some(())
            .ok_or(format!("logs: {logs:?}"))
    });

    // Hijacked streams over TLS: run -i and exec -i with stdin, attach.
    let out = alice.with_stdin(
        &host,
        &["run", "-i", "--rm", IMAGE, "sh", "-c", "tr a-z A-Z"],
        b"shout over tls\n",
    );
    assert!(out.status.success(), "run -i: {out:?}");
    assert_eq!(text(&out.stdout), "SHOUT OVER TLS");
    let out = alice.with_stdin(
        &host,
        &["exec", "-i", "tls-sleeper", "cat"],
        b"through stdin\n",
    );
    assert!(out.status.success(), "exec -i: {out:?}");
    assert_eq!(text(&out.stdout), "through stdin");
    alice.ok(
        &host,
        &[
            "run",
            "-d",
            "--name",
            "tls-attach",
            IMAGE,
            "sh",
            "-c",
            "sleep 2; echo attached-out",
        ],
    );
    let out = alice.run(&host, &["attach", "tls-attach"]);
    assert!(out.status.success(), "attach: {out:?}");
    assert_eq!(text(&out.stdout), "attached-out");

    // exec -it and run -it in a terminal (script(1)), flags before the command.
    let flags = tls_flags(&client_dir).join(" ");
    let tty = docker_in_tty(
        &host,
        &format!("{flags} exec -it tls-sleeper sh -c 'tty && echo tty-ok'"),
    );
    assert!(tty.contains("/dev/pts/") && tty.contains("tty-ok"), "{tty}");
    let tty = docker_in_tty(
        &host,
        &format!("{flags} run -it --rm {IMAGE} sh -c 'tty && echo run-tty-ok'"),
    );
    assert!(tty.contains("run-tty-ok"), "{tty}");

    compose_over_tls(&host, &client_dir, &home);

    // The certificate the manager serves is its own.
    let alice_tls = client_config(&client_dir).expect("client config");
    let answer = tls_request(&addr, &alice_tls, "GET", "/_ping", None).expect("a TLS ping");
    let served = cert_der(&manager_dir.join("cert.pem")).expect("manager cert");
    assert_eq!(
        answer.server_cert, served,
        "the manager serves another certificate"
    );

    refusals(
        &pki,
        &manager,
        &alice_tls,
        &home,
        &stranger_dir,
        &expired_dir,
    );
    join_and_remove_are_for_managers(&pki, &manager, &alice_tls, &manager_dir);
    sighup_rotates_the_certificate(
        &pki,
        &manager,
        &alice,
        &alice_tls,
        &client_dir,
        &manager_dir,
    );

    alice.ok(
        &host,
        &["rm", "-f", "tls-sleeper", "tls-logger", "tls-attach"],
    );
    eprintln!("one manager, TLS engines: {:?}", t0.elapsed());
}

/// docker-compose (docker-py) through the manager with Docker's
/// environment (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`):
/// up, ps, down of a one-service project on the default bridge (a
/// project network needs the cluster's networks, issue 19).
fn compose_over_tls(host: &str, client_dir: &Path, home: &Path) {
    let project = home.join("tlsproject");
    std::fs::create_dir_all(&project).expect("project dir");
    std::fs::write(
        project.join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {IMAGE}\n    command: sleep 600\n    network_mode: bridge\n"
        ),
    )
    .expect("compose file");
    let compose = |args: &[&str]| {
        let mut cmd = compose_cmd(host, &project, args);
        cmd.env("HOME", home)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", client_dir);
        output_ok(cmd)
    };
    // The docker CLI reads the same environment.
    let out = Command::new("timeout")
        .args(["60", "docker", "ps", "--format", "{{.Names}}"])
        .env("HOME", home)
        .env("DOCKER_HOST", host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", client_dir)
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("running docker");
    assert!(
        out.status.success() && text(&out.stdout).contains("/tls-sleeper"),
        "docker ps with DOCKER_TLS_VERIFY: {out:?}"
    );
    compose(&["up", "-d"]);
    let running = compose(&["ps", "--services", "--filter", "status=running"]);
    assert_eq!(running, "web", "compose ps over TLS");
    compose(&["down"]);
    let left = compose(&["ps", "-q"]);
    assert!(left.is_empty(), "containers left after down: {left}");
}

/// Clients the manager must refuse, each followed by a check that it still
/// serves.
fn refusals(
    pki: &Pki,
    manager: &Manager,
    alice: &Arc<rustls::ClientConfig>,
    home: &Path,
    stranger_dir: &Path,
    expired_dir: &Path,
) {
    let host = &manager.host;
    let addr = &manager.addr;
    let still_serves = |after: &str| {
        if let Err(e) = pings(addr, alice) {
            panic!("the manager stopped serving after {after}: {e}");
        }
    };
    let ca = pki.ca_cert().display().to_string();
    let cases: [(&str, Vec<String>); 4] = [
        (
            "a client without certificate",
            strings(&["--tlsverify", "--tlscacert", &ca]),
        ),
        ("another CA's client certificate", tls_flags(stranger_dir)),
        ("an expired client certificate", tls_flags(expired_dir)),
        ("plain HTTP", Vec::new()),
    ];
    for (what, flags) in cases {
        let cli = Cli::new(flags, &home.join("refused"));
        match cli.server_version(host) {
            Ok(version) => panic!("the docker CLI with {what} was served: {version}"),
            Err(e) => eprintln!("refused {what}: {e}"),
        }
        still_serves(what);
    }

    // The same refusals seen from rustls, which shows its certificate
    // whatever the server asks for and reads the reason in the alert.
    let anonymous = anonymous_client_config(&pki.ca_cert()).expect("anonymous config");
    for (what, config, reason) in [
        ("no certificate", anonymous, "CertificateRequired"),
        (
            "another CA's certificate",
            client_config(stranger_dir).expect("stranger config"),
            "UnknownCA",
        ),
        (
            "an expired certificate",
            client_config(expired_dir).expect("expired config"),
            "CertificateExpired",
        ),
    ] {
        match tls_request(addr, &config, "GET", "/info", None) {
            Ok(a) => panic!("{what} was served: {} {}", a.status, a.body),
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    e.contains(reason),
                    "{what} was refused, but not for {reason}: {e}"
                );
            }
        }
        still_serves(what);
    }
    // Plain HTTP on the TLS port gets no API answer.
    match http_get(addr, "/_ping") {
        Ok((200, body)) => panic!("plain HTTP was served: {body:?}"),
        other => eprintln!("plain HTTP /_ping: {other:?}"),
    }
    still_serves("plain HTTP");
}

/// `POST /_swarm/join` and `/_swarm/remove` want a manager's certificate:
/// a user's gets 403 with a JSON message and changes nothing.
fn join_and_remove_are_for_managers(
    pki: &Pki,
    manager: &Manager,
    alice: &Arc<rustls::ClientConfig>,
    manager_dir: &Path,
) {
    let addr = &manager.addr;
    let members = |config: &Arc<rustls::ClientConfig>| -> Vec<Value> {
        let a = tls_request(addr, config, "GET", "/_swarm/members", None).expect("members");
        assert_eq!(a.status, 200, "members: {}", a.body);
        serde_json::from_str::<Vec<Value>>(a.body.trim())
            .unwrap_or_else(|e| panic!("members JSON {:?}: {e}", a.body))
    };
    let before = members(alice);
    assert_eq!(before.len(), 1, "{before:?}");

    let join = r#"{"id": 4242, "raft_addr": "127.0.0.1:1", "api_addr": "127.0.0.1:2"}"#;
    for (path, body) in [
        ("/_swarm/join", join),
        ("/_swarm/remove", r#"{"id": 4242}"#),
    ] {
        let a = tls_request(addr, alice, "POST", path, Some(body)).expect(path);
        assert_eq!(
            a.status, 403,
            "POST {path} with a client certificate: {}",
            a.body
        );
        let message = json_message(&a.body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        eprintln!("POST {path} as a client: 403 {message}");
    }
    assert_eq!(
        members(alice).len(),
        1,
        "a refused join changed the members"
    );

    // A manager's certificate gets past the check: this body is refused
    // for what it says, not for who sent it.
    let as_manager = client_config(manager_dir).expect("manager config");
    let bad = r#"{"id": 0, "raft_addr": "", "api_addr": ""}"#;
    let a = tls_request(addr, &as_manager, "POST", "/_swarm/join", Some(bad)).expect("join");
    assert_ne!(a.status, 403, "a manager's join refused: {}", a.body);
    assert_eq!(a.status, 400, "an invalid join: {}", a.body);
    let message = json_message(&a.body).unwrap_or_else(|e| panic!("join: {e}"));
    assert!(message.contains("non-zero id"), "{message}");
    // Another manager certificate of the same CA is a manager too.
    let other_dir = pki
        .issue(CertKind::Manager, "manager-b", &LOOPBACK)
        .expect("second manager certificate");
    let other = client_config(&other_dir).expect("config");
    let a = tls_request(addr, &other, "POST", "/_swarm/join", Some(bad)).expect("join");
    assert_eq!(a.status, 400, "another manager's invalid join: {}", a.body);
}

/// SIGHUP: the manager reads its certificate and key again; new
/// connections see the new certificate, an open event stream goes on.
fn sighup_rotates_the_certificate(
    pki: &Pki,
    manager: &Manager,
    alice: &Cli,
    alice_tls: &Arc<rustls::ClientConfig>,
    client_dir: &Path,
    manager_dir: &Path,
) {
    let host = &manager.host;
    let addr = &manager.addr;
    let old = cert_der(&manager_dir.join("cert.pem")).expect("old cert");
    let mut events = Events::start(alice, host);
    // The stream is open once it delivered an event.
    alice.ok(host, &["create", "--name", "before-reload", IMAGE, "true"]);
    events.wait_for(&["container", "create", "before-reload"], SETTLE);

    // A new certificate and key in the same files.
    let again = pki
        .issue(CertKind::Manager, "manager-a", &LOOPBACK)
        .expect("the new manager certificate");
    assert_eq!(again, manager_dir);
    let new = cert_der(&manager_dir.join("cert.pem")).expect("new cert");
    let (old_serial, new_serial) = (
        serial(&old).expect("old serial"),
        serial(&new).expect("new serial"),
    );
    assert_ne!(
        old_serial, new_serial,
        "the reissued certificate has the old serial"
    );

    let pid = manager.pid().expect("the manager's pid");
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success(), "kill -HUP {pid}");

    let served = wait_ok("the new certificate served after SIGHUP", SETTLE, || {
        // A fresh configuration each time: no resumed session.
        let config = client_config(client_dir).map_err(|e| format!("{e:#}"))?;
        let a = tls_request(addr, &config, "GET", "/_ping", None).map_err(|e| format!("{e:#}"))?;
        let seen = serial(&a.server_cert).map_err(|e| format!("{e:#}"))?;
        if a.server_cert == new {
            Ok(seen)
        } else {
            Err(format!(
                "served serial {seen}, want {new_serial} (old {old_serial})"
            ))
        }
    });
    eprintln!("SIGHUP: serial {old_serial} -> {served}");
    // The CLI trusts the new certificate (same CA) on new connections.
    assert!(
        alice.server_version(host).is_ok(),
        "docker version after the rotation"
    );
    pings(addr, alice_tls).expect("a ping after the rotation");

    // The stream opened before the reload still delivers.
    alice.ok(host, &["create", "--name", "after-reload", IMAGE, "true"]);
    events.wait_for(&["container", "create", "after-reload"], SETTLE);
    assert!(events.running(), "docker events ended with the reload");
    alice.ok(host, &["rm", "-f", "before-reload", "after-reload"]);
}

// ---------------------------------------------------------------------------
// Three managers over TLS, plain engines
// ---------------------------------------------------------------------------

/// `swarmctl` with TLS flags (or environment) and a `HOME` of its own.
struct Ctl {
    flags: Vec<String>,
    env: Vec<(String, String)>,
    home: PathBuf,
}

impl Ctl {
    fn run(&self, host: &str, args: &[&str]) -> Output {
        let mut cmd = timed(30, env!("CARGO_BIN_EXE_swarmctl"));
        cmd.args(&self.flags)
            .args(["--manager", host])
            .args(args)
            .env("HOME", &self.home)
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("SWARM_MANAGER");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("running swarmctl")
    }

    fn members(&self, host: &str) -> Result<Vec<Member>, String> {
        let out = self.run(host, &["members", "--format", "json"]);
        if !out.status.success() {
            return Err(format!(
                "swarmctl --manager {host} members failed ({}): {} {}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            ));
        }
        let mut members = parse_members(&text(&out.stdout))?;
        for m in &mut members {
            m.api_addr = bare(&m.api_addr).to_string();
        }
        Ok(members)
    }
}

/// The API addresses, roles and reachability of `members`, sorted.
fn summary(members: &[Member]) -> BTreeSet<(String, String, bool)> {
    members
        .iter()
        .map(|m| (m.api_addr.clone(), m.role.clone(), m.reachable))
        .collect()
}

/// Three `swarm manage --tlsverify` with their own manager certificates,
/// joined over TLS, in front of plain engines.
#[test]
fn three_tls_managers_join_forward_and_fail_over() {
    let t0 = Instant::now();
    let pki = Pki::new().expect("PKI");
    let manager_dirs: Vec<PathBuf> = (0..3)
        .map(|i| {
            pki.issue(CertKind::Manager, &format!("manager-{i}"), &LOOPBACK)
                .expect("manager certificate")
        })
        .collect();
    let operator_dir = pki
        .issue(CertKind::Client, "operator", &[])
        .expect("client certificate");
    let home = pki.dir().join("home");
    let cli = Cli::new(tls_flags(&operator_dir), &home);
    let ctl = Ctl {
        flags: tls_flags(&operator_dir),
        env: Vec::new(),
        home: home.clone(),
    };

    let engines = start_engines(&[&[("region", "eu")], &[("region", "us")]]);
    let discovery = format!("nodes://{}", engines.tcp_addrs().join(","));
    let raft_addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut managers: Vec<Manager> = Vec::new();
    for i in 0..3 {
        let mut args = tls_flags(&manager_dirs[i]);
        args.push("--engine-tls=false".into());
        args.extend(strings(&FAST_REFRESH));
        args.push(discovery.clone());
        let join = (i > 0).then(|| managers[0].addr.clone());
        let t = Instant::now();
        managers.push(start_tls_manager(
            &format!("m{i}"),
            Some(raft_addrs[i].clone()),
            join,
            args,
            &operator_dir,
        ));
        let new = managers[i].addr.clone();
        let first = managers[0].host.clone();
        wait_ok(
            &format!("manager {i} ({new}) a voting member"),
            SETTLE,
            || {
                let members = ctl.members(&first)?;
                joined_as_voter(&members, &new, i)
            },
        );
        eprintln!("manager {i} ({new}) a member after {:?}", t.elapsed());
    }
    let hosts: Vec<String> = managers.iter().map(|m| m.host.clone()).collect();
    let addrs: Vec<String> = managers.iter().map(|m| m.addr.clone()).collect();

    // Every manager answers swarmctl with the same three members, one leader.
    for host in &hosts {
        let members = ctl.members(host).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(members.len(), 3, "{members:?}");
        let leaders: Vec<&Member> = members.iter().filter(|m| m.role == "leader").collect();
        assert_eq!(leaders.len(), 1, "{members:?}");
        assert_eq!(leaders[0].api_addr, addrs[0], "{members:?}");
        let rafts: BTreeSet<&str> = members.iter().map(|m| m.raft_addr.as_str()).collect();
        let want: BTreeSet<&str> = raft_addrs.iter().map(String::as_str).collect();
        assert_eq!(rafts, want, "{members:?}");
    }
    // Without TLS, swarmctl gets nothing from a TLS manager.
    let plain = Ctl {
        flags: Vec::new(),
        env: Vec::new(),
        home: home.join("plain"),
    };
    std::fs::create_dir_all(&plain.home).expect("plain home");
    if let Ok(members) = plain.members(&hosts[0]) {
        panic!("swarmctl without TLS listed {members:?}");
    }

    wait_ok("both plain engines healthy", SETTLE, || {
        let out = cli.run(&hosts[1], &["info"]);
        let info = text(&out.stdout);
        let status = info_value(&info, "└ Status");
        (status == ["Healthy", "Healthy"])
            .then_some(())
            .ok_or(format!("status {status:?}: {info} {}", text(&out.stderr)))
    });

    // A follower forwards to the leader over TLS, hijacked streams included.
    assert_eq!(
        cli.ok(
            &hosts[1],
            &["run", "--rm", IMAGE, "echo", "forwarded over tls"]
        ),
        "forwarded over tls"
    );
    cli.ok(
        &hosts[2],
        &["run", "-d", "--name", "ha-tls", IMAGE, "sleep", "600"],
    );
    let names = cli.ok(&hosts[1], &["ps", "--format", "{{.Names}}"]);
    assert!(
        names.lines().any(|l| l.ends_with("/ha-tls")),
        "ha-tls not listed through a follower: {names}"
    );

    strangers_never_join(&pki, &ctl, &hosts, &addrs, &discovery, &operator_dir);
    raft_ports_want_managers(&pki, &raft_addrs, &manager_dirs, &operator_dir);

    // The leader dies; a new one is elected among the others.
    let t = Instant::now();
    managers[0].kill();
    let survivors = [hosts[1].clone(), hosts[2].clone()];
    let leader = wait_ok("a new leader among the survivors", SETTLE, || {
        let members = ctl.members(&survivors[0])?;
        let leader = members
            .iter()
            .find(|m| m.role == "leader" && m.reachable)
            .ok_or_else(|| format!("no leader: {members:?}"))?;
        if leader.api_addr == addrs[0] {
            return Err(format!("the dead manager still leads: {members:?}"));
        }
        Ok(leader.api_addr.clone())
    });
    eprintln!("new leader {leader} after {:?}", t.elapsed());
    for host in &survivors {
        let names = cli.ok(host, &["ps", "--format", "{{.Names}}"]);
        assert!(
            names.lines().any(|l| l.ends_with("/ha-tls")),
            "ha-tls not listed through {host} after the failover: {names}"
        );
    }
    // And it takes writes, through the follower too.
    wait_ok("a create after the failover", SETTLE, || {
        let out = cli.run(
            &survivors[1],
            &["create", "--name", "after-failover", IMAGE, "true"],
        );
        let err = text(&out.stderr);
        if out.status.success() || err.contains("already in use") {
            Ok(())
        } else {
            Err(err)
        }
    });
    cli.ok(&survivors[0], &["rm", "-f", "ha-tls", "after-failover"]);
    // swarmctl reads DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker CLI.
    let by_env = Ctl {
        flags: Vec::new(),
        env: vec![
            ("DOCKER_TLS_VERIFY".into(), "1".into()),
            (
                "DOCKER_CERT_PATH".into(),
                operator_dir.display().to_string(),
            ),
        ],
        home: home.clone(),
    };
    let members = by_env
        .members(&survivors[1])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(
        members
            .iter()
            .any(|m| m.role == "leader" && m.api_addr == leader),
        "{members:?}"
    );
    eprintln!("three TLS managers: {:?}", t0.elapsed());
}

/// Nothing but a manager of the CA joins: a manager whose certificate
/// another CA signed is refused again and again (its log says `join
/// refused`) and never becomes a member; a manager given a client's
/// certificate does not even start (it says why); a client asking the
/// leader or a follower to add a manager gets 403 (a follower does not
/// pass the request on with its own certificate). The membership stays
/// the three managers.
fn strangers_never_join(
    pki: &Pki,
    ctl: &Ctl,
    hosts: &[String],
    addrs: &[String],
    discovery: &str,
    operator_dir: &Path,
) {
    let foreign_dir = pki
        .issue_stranger(CertKind::Manager, "foreign-manager", &LOOPBACK)
        .expect("another CA's manager certificate");
    let client_dir = pki
        .issue(CertKind::Client, "client-as-manager", &LOOPBACK)
        .expect("a client certificate");
    let before = ctl.members(&hosts[0]).unwrap_or_else(|e| panic!("{e}"));
    let spawn = |name: &str, dir: &Path, target: &str| {
        let mut args = tls_flags(dir);
        args.push("--engine-tls=false".into());
        args.push(discovery.to_string());
        Manager::spawn(ManagerConfig {
            name: name.to_string(),
            raft_addr: Some(format!("127.0.0.1:{}", free_port())),
            join: Some(target.to_string()),
            log_level: Some(TEST_LOG_LEVEL.to_string()),
            args,
            ..ManagerConfig::default()
        })
        .unwrap_or_else(|e| panic!("starting {name}: {e:#}"))
    };
    // Another CA's manager asks a follower.
    let mut foreign = spawn("foreign-manager", &foreign_dir, &addrs[1]);
    // A client's certificate as a manager's, asking the leader.
    let mut client = spawn("client-as-manager", &client_dir, &addrs[0]);

    // Refused twice: it went on asking and was refused again.
    wait_for(
        "the manager with another CA's certificate to be refused twice",
        SETTLE,
        || (foreign.log().matches("join refused").count() >= 2).then_some(()),
    );
    assert!(
        foreign.is_running(),
        "the manager with another CA's certificate exited: {}",
        foreign.log_tail(30)
    );
    wait_for(
        "the manager with a client certificate to exit",
        SETTLE,
        || (!client.is_running()).then_some(()),
    );
    let said = client.log();
    assert!(
        said.contains("not a manager's certificate"),
        "the manager with a client certificate did not say why it stopped:\n{said}"
    );

    // A client (a user's certificate) asking to add a manager directly.
    let operator = client_config(operator_dir).expect("operator config");
    let join = format!(
        r#"{{"id": 4343, "raft_addr": "127.0.0.1:{}", "api_addr": "127.0.0.1:{}"}}"#,
        free_port(),
        free_port()
    );
    for addr in &addrs[..2] {
        let a = tls_request(addr, &operator, "POST", "/_swarm/join", Some(&join))
            .unwrap_or_else(|e| panic!("POST /_swarm/join to {addr}: {e:#}"));
        assert_eq!(
            a.status, 403,
            "a client's join through {addr} answered {}: {}",
            a.status, a.body
        );
        json_message(&a.body).unwrap_or_else(|e| panic!("join through {addr}: {e}"));
    }

    for host in hosts {
        let members = ctl.members(host).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            summary(&members),
            summary(&before),
            "the members changed while strangers asked to join"
        );
        for stranger in [&foreign, &client] {
            assert!(
                members.iter().all(|m| m.api_addr != stranger.addr),
                "{} is a member: {members:?}",
                stranger.name()
            );
        }
    }
    foreign.kill();
}

/// The Raft ports speak mutual TLS with managers only: a handshake with a
/// client's certificate or with none is refused; a manager's gets an
/// HTTP/2 (gRPC) answer.
fn raft_ports_want_managers(
    pki: &Pki,
    raft_addrs: &[String],
    manager_dirs: &[PathBuf],
    client_dir: &Path,
) {
    // The client preface of HTTP/2 and an empty SETTINGS frame.
    const H2_PREFACE: &[u8] =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let h2 = |config: Arc<rustls::ClientConfig>| {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    };
    let as_manager = h2(client_config(&manager_dirs[0]).expect("manager config"));
    let as_client = h2(client_config(client_dir).expect("client config"));
    let anonymous = h2(anonymous_client_config(&pki.ca_cert()).expect("anonymous config"));
    for raft in raft_addrs {
        let (cert, answer) = tls_exchange(raft, &as_manager, H2_PREFACE)
            .unwrap_or_else(|e| panic!("a manager's handshake with Raft {raft}: {e:#}"));
        assert!(!cert.is_empty(), "Raft {raft} showed no certificate");
        assert!(
            answer.len() >= 9 && answer[3] == 0x04,
            "Raft {raft} did not answer with HTTP/2 SETTINGS: {answer:?}"
        );
        for (what, config) in [
            ("a client certificate", &as_client),
            ("no certificate", &anonymous),
        ] {
            match tls_exchange(raft, config, H2_PREFACE) {
                Ok((_, answer)) => panic!(
                    "Raft {raft} answered {} bytes to {what}: {answer:?}",
                    answer.len()
                ),
                // Refused by the TLS layer (an alert), not a closed port.
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.contains("fatal alert"), "Raft {raft} with {what}: {e}");
                }
            }
        }
    }
}
