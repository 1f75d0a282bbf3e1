//! Rescheduling on node failure, end to end: containers created with the
//! `on-node-failure` reschedule policy (`-e reschedule:on-node-failure` or
//! the `com.docker.swarm.reschedule-policies` label) are re-created on a
//! healthy node when their node's engine dies, exactly once, also when the
//! leading manager dies in the middle of it; the stale copies are removed
//! from the failed node when it comes back. Real engines, the real `docker`
//! CLI, `swarm manage` processes (one, or three replicating with Raft).
//!
//! Placement on the engine that will be killed: the policy containers use a
//! soft constraint (`node==~B`), which is kept in their stored config and
//! must not pin the copy to the dead node; the container without the policy
//! uses a hard one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm_harness::{
    docker, docker_ok, free_port, info_value, start_cluster, start_engines, start_manager, timed,
    trace, wait_ok, Engine, Manager, IMAGE,
};

/// The label swarm puts on every container it creates.
const SWARM_ID: &str = "com.docker.swarm.id";
/// The label holding the reschedule policies.
const POLICY_LABEL: &str = "com.docker.swarm.reschedule-policies";
/// Bound on "the containers of a dead node run elsewhere" (it takes a few
/// seconds: unhealthy after 2 failed refreshes 1-2 s apart, then a tick).
const MOVE_BOUND: Duration = Duration::from_secs(30);
/// Bound on "a restarted node is healthy and cleaned".
const BACK_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `docker -H host ARGS` as a Result (stdout trimmed, or why it failed).
fn try_docker(host: &str, args: &[&str]) -> Result<String, String> {
    let (ok, out, err) = docker(host, args);
    if ok {
        Ok(out.trim().to_string())
    } else {
        Err(format!(
            "`docker -H {host} {}` failed: {}{}",
            args.join(" "),
            out.trim(),
            err.trim()
        ))
    }
}

/// `docker ps -a` through a manager: (`node/name`, status) per line.
fn listed(host: &str) -> Result<Vec<(String, String)>, String> {
    let out = try_docker(host, &["ps", "-a", "--format", "{{.Names}} {{.Status}}"])?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((n, s)) => (n.to_string(), s.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect())
}

/// The status `docker info` (through a manager) gives the node with engine
/// ID `engine_id`.
fn node_status(info: &str, engine_id: &str) -> Option<String> {
    info_value(info, "└ ID")
        .into_iter()
        .zip(info_value(info, "└ Status"))
        .find(|(id, _)| id == engine_id)
        .map(|(_, s)| s)
}

/// The containers on an engine (asked directly) carrying swarm id `id`, as
/// (name, state) pairs.
fn on_engine_with_swarm_id(engine: &Engine, id: &str) -> Result<Vec<(String, String)>, String> {
    let filter = format!("label={SWARM_ID}={id}");
    let out = try_docker(
        &engine.host(),
        &[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}} {{.State}}",
        ],
    )?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((n, s)) => (n.to_string(), s.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect())
}

/// The names of every container on an engine (asked directly).
fn engine_names(engine: &Engine) -> Result<BTreeSet<String>, String> {
    Ok(
        try_docker(&engine.host(), &["ps", "-a", "--format", "{{.Names}}"])?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect(),
    )
}

/// `docker inspect -f '{{json FIELD}}' REF` on `host`, parsed.
fn inspect_json(host: &str, reference: &str, field: &str) -> Value {
    let out = docker_ok(
        host,
        &["inspect", "-f", &format!("{{{{json {field}}}}}"), reference],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON {out:?} from inspect: {e}"))
}

/// The container's `com.docker.swarm.id`, through `host`.
fn swarm_id_of(host: &str, reference: &str) -> String {
    let id = docker_ok(
        host,
        &[
            "inspect",
            "-f",
            &format!("{{{{index .Config.Labels \"{SWARM_ID}\"}}}}"),
            reference,
        ],
    );
    assert!(!id.is_empty(), "{reference} has no {SWARM_ID} label");
    id
}

/// What must be the same on a rescheduled copy: image, command, env, labels.
fn config_of(host: &str, reference: &str) -> Value {
    let config = inspect_json(host, reference, ".Config");
    serde_json::json!({
        "Image": config["Image"],
        "Cmd": config["Cmd"],
        "Env": config["Env"],
        "Labels": config["Labels"],
    })
}

/// One raw HTTP/1.1 POST with a JSON body; returns (status, body).
fn http_post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to manager");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many lines of the manager's log contain `needle`.
fn log_count(manager: &Manager, needle: &str) -> usize {
    manager.log().lines().filter(|l| l.contains(needle)).count()
}

// ---------------------------------------------------------------------------
// One manager, two engines
// ---------------------------------------------------------------------------

/// Each name of `want` listed, and nothing else, none twice.
fn listed_exactly(list: &[(String, String)], want: &BTreeSet<String>) -> Result<(), String> {
    let got: BTreeSet<String> = list.iter().map(|(n, _)| n.clone()).collect();
    if got != *want || list.len() != want.len() {
        return Err(format!("listed {list:?}"));
    }
    Ok(())
}

#[test]
fn policy_containers_move_when_their_node_dies() {
    let t_start = Instant::now();
    let mut c = start_cluster(&[&[], &[]], |e| {
        format!("nodes://{}", e.tcp_addrs().join(","))
    });
    eprintln!("cluster up in {:?}", t_start.elapsed());
    let host = c.host().to_string();
    let (a, b) = (c.engines[0].name.clone(), c.engines[1].name.clone());
    let (a_id, b_id) = (c.engines[0].id(), c.engines[1].id());
    let soft = format!("constraint:node==~{b}");
    let hard = format!("constraint:node=={b}");
    let policy_label = format!("{POLICY_LABEL}=[\"on-node-failure\"]");

    // Two policy containers (the env form, running; the label form, only
    // created) and one without the policy, all on B.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "rs-running",
        "-e",
        "reschedule:on-node-failure",
        "-e",
        &soft,
        "-e",
        "KEEP=me",
        IMAGE,
        "sleep",
        "600",
    ]);
    c.ok(&[
        "create",
        "--name",
        "rs-created",
        "--label",
        &policy_label,
        "--label",
        "app=demo",
        "-e",
        &soft,
        IMAGE,
        "sleep",
        "600",
    ]);
    c.ok(&[
        "run", "-d", "--name", "rs-plain", "-e", &hard, IMAGE, "sleep", "600",
    ]);
    let names = ["rs-running", "rs-created", "rs-plain"];
    for name in names {
        assert_eq!(c.node_of(name), b, "{name} was not placed on {b}");
    }
    let ids: BTreeMap<&str, String> = names.iter().map(|n| (*n, swarm_id_of(&host, n))).collect();
    let configs: BTreeMap<&str, Value> = names.iter().map(|n| (*n, config_of(&host, n))).collect();
    assert_eq!(
        configs["rs-running"]["Labels"][POLICY_LABEL], "[\"on-node-failure\"]",
        "the env policy is kept as a label: {}",
        configs["rs-running"]
    );

    // `docker events` through the manager sees the failure, the reschedule
    // and the return (read once B is back, below).
    // Ends by itself (`--until`), or when told to below.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let until = (std::time::SystemTime::now() + Duration::from_secs(110))
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    const EVENT_FORMAT: &str = "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}";
    let mut events = swarm_harness::docker_cmd(
        120,
        &host,
        &["events", "--until", &until, "--format", EVENT_FORMAT],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("docker events");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    if let Some(out) = events.stdout.take() {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut text = seen.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
    }
    std::thread::sleep(Duration::from_millis(500));

    // B's engine crashes.
    c.engines[1].kill();
    let t_kill = Instant::now();
    let moved = format!("{a}/");
    // What the manager lists once the move is done, and again once B is back.
    let want: BTreeSet<String> = [
        format!("{moved}rs-running"),
        format!("{moved}rs-created"),
        format!("{b}/rs-plain"),
    ]
    .into();
    wait_ok(
        "the policy containers listed on A, the other one still on B",
        MOVE_BOUND,
        || {
            let list = listed(&host)?;
            let status: BTreeMap<&str, &str> =
                list.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
            listed_exactly(&list, &want)?;
            if !status[format!("{moved}rs-running").as_str()].starts_with("Up") {
                return Err(format!("rs-running not up on {a}: {list:?}"));
            }
            if status[format!("{moved}rs-created").as_str()] != "Created" {
                return Err(format!("rs-created not just created on {a}: {list:?}"));
            }
            if status[format!("{b}/rs-plain").as_str()] != "Host Down" {
                return Err(format!("rs-plain not Host Down on {b}: {list:?}"));
            }
            Ok(())
        },
    );
    let took = t_kill.elapsed();
    eprintln!("policy containers listed on {a} {took:?} after {b}'s engine was killed");

    // The node is unhealthy, and engine A has exactly one copy of each.
    let info = c.ok(&["info"]);
    assert_eq!(
        node_status(&info, &b_id).as_deref(),
        Some("Unhealthy"),
        "{info}"
    );
    assert_eq!(
        node_status(&info, &a_id).as_deref(),
        Some("Healthy"),
        "{info}"
    );
    let engine_a = &c.engines[0];
    assert_eq!(
        on_engine_with_swarm_id(engine_a, &ids["rs-running"]).unwrap_or_else(|e| panic!("{e}")),
        vec![("rs-running".to_string(), "running".to_string())]
    );
    assert_eq!(
        on_engine_with_swarm_id(engine_a, &ids["rs-created"]).unwrap_or_else(|e| panic!("{e}")),
        vec![("rs-created".to_string(), "created".to_string())]
    );
    assert!(
        on_engine_with_swarm_id(engine_a, &ids["rs-plain"])
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty(),
        "the container without the policy was re-created on {a}"
    );
    for name in ["rs-running", "rs-created"] {
        let copy = config_of(&engine_a.host(), name);
        assert_eq!(
            copy, configs[name],
            "{name}'s copy on {a} differs from the original"
        );
    }
    // Through the manager, the name resolves to the copy on A.
    assert_eq!(c.node_of("rs-running"), a);
    assert_eq!(c.node_of("rs-created"), a);
    eprintln!(
        "manager log: {} 'rescheduling container', {} 'container rescheduled'",
        log_count(&c.manager, "rescheduling container"),
        log_count(&c.manager, "container rescheduled")
    );

    // B comes back: its stale copies go, the other container stays.
    c.engines[1].restart();
    let t_back = Instant::now();
    let mut duplicates_seen: Vec<Vec<(String, String)>> = Vec::new();
    wait_ok(
        "B healthy again, its stale copies removed",
        BACK_BOUND,
        || {
            let info = try_docker(&host, &["info"])?;
            if node_status(&info, &b_id).as_deref() != Some("Healthy") {
                return Err(format!(
                    "{b} is {:?}",
                    node_status(&info, &b_id).unwrap_or_default()
                ));
            }
            let list = listed(&host)?;
            let mut seen = BTreeSet::new();
            if list
                .iter()
                .any(|(n, _)| !seen.insert(n.rsplit('/').next().unwrap_or(n)))
                && duplicates_seen.len() < 5
            {
                duplicates_seen.push(list.clone());
            }
            let on_b = engine_names(&c.engines[1])?;
            if on_b != BTreeSet::from(["rs-plain".to_string()]) {
                return Err(format!("{b} holds {on_b:?}"));
            }
            listed_exactly(&list, &want)?;
            Ok(())
        },
    );
    eprintln!(
        "{b} healthy and cleaned {:?} after its engine was restarted",
        t_back.elapsed()
    );
    // The stale copies are hidden from listings from the moment B answers
    // again until they are removed: no name is ever listed twice.
    assert!(
        duplicates_seen.is_empty(),
        "while {b} was coming back, a name was listed twice: {duplicates_seen:?}"
    );
    let wanted_events = [
        format!("node engine_disconnect {b_id}"),
        "container reschedule ".to_string(),
        "container rescheduled ".to_string(),
        format!("node engine_reconnect {b_id}"),
        "container destroy ".to_string(),
    ];
    let seen = wait_ok("the events of the failure", Duration::from_secs(10), || {
        let text = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match wanted_events.iter().find(|w| !text.contains(w.as_str())) {
            Some(missing) => Err(format!("no `{missing}` in docker events:\n{text}")),
            None => Ok(text),
        }
    });
    // SIGTERM to `timeout`, which passes it on to docker.
    let _ = timed(10, "kill")
        .args(["-TERM", &events.id().to_string()])
        .status();
    let _ = events.wait();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("container rescheduled ") && l.ends_with(" rs-running")),
        "{seen}"
    );
    // The same, asked afterwards: `--since` replays the manager's history.
    let now = (std::time::SystemTime::now() + Duration::from_secs(1))
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let replayed = swarm_harness::docker_cmd(
        30,
        &host,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &now,
            "--format",
            EVENT_FORMAT,
        ],
    )
    .output()
    .expect("docker events --since");
    let replayed = String::from_utf8_lossy(&replayed.stdout);
    for wanted in &wanted_events {
        assert!(
            replayed.contains(wanted.as_str()),
            "no `{wanted}` replayed by docker events --since:\n{replayed}"
        );
    }
    // Nothing else changed: the copies are still the only ones, the running
    // one still runs, and the stale ones are gone for good.
    for name in ["rs-running", "rs-created"] {
        let on_a =
            on_engine_with_swarm_id(&c.engines[0], &ids[name]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(on_a.len(), 1, "{name} on {a}: {on_a:?}");
        let on_b =
            on_engine_with_swarm_id(&c.engines[1], &ids[name]).unwrap_or_else(|e| panic!("{e}"));
        assert!(on_b.is_empty(), "{name} still on {b}: {on_b:?}");
    }
    assert_eq!(
        on_engine_with_swarm_id(&c.engines[0], &ids["rs-running"])
            .unwrap_or_else(|e| panic!("{e}"))[0]
            .1,
        "running"
    );
    assert_eq!(
        on_engine_with_swarm_id(&c.engines[1], &ids["rs-plain"]).unwrap_or_else(|e| panic!("{e}")),
        vec![("rs-plain".to_string(), "exited".to_string())],
        "the container without the policy must stay on {b} (exited by the crash)"
    );
    assert_eq!(c.node_of("rs-plain"), b);
    eprintln!("total {:?}", t_start.elapsed());
}

#[test]
fn bad_reschedule_policy_is_refused() {
    let c = start_cluster(&[&[]], |e| format!("nodes://{}", e.tcp_addrs().join(",")));
    // The docker CLI, env form.
    let err = c.err(&[
        "run",
        "-d",
        "--name",
        "bad-env",
        "-e",
        "reschedule:always",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(err.contains("invalid reschedule policy"), "{err}");
    // The docker CLI, label form.
    let err = c.err(&[
        "create",
        "--name",
        "bad-label",
        "--label",
        &format!("{POLICY_LABEL}=[\"always\"]"),
        IMAGE,
        "true",
    ]);
    assert!(err.contains("invalid reschedule policy"), "{err}");
    // The API answers 400.
    let (status, body) = http_post(
        &c.manager.addr,
        "/containers/create?name=bad-api",
        &format!(r#"{{"Image":"{IMAGE}","Env":["reschedule:always"]}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid reschedule policy"), "{body}");
    // Nothing was created anywhere, and no name is held.
    for engine in c.engines.iter() {
        let names = engine_names(engine).unwrap_or_else(|e| panic!("{e}"));
        assert!(names.is_empty(), "{} holds {names:?}", engine.name);
    }
    let all = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(all.is_empty(), "listed: {all}");
    c.ok(&[
        "create",
        "--name",
        "bad-env",
        "-e",
        "reschedule:on-node-failure",
        IMAGE,
        "true",
    ]);
    c.ok(&["rm", "bad-env"]);
}

// ---------------------------------------------------------------------------
// Three managers: the leader dies while it reschedules
// ---------------------------------------------------------------------------

/// `docker info` through `host` (10 s at most).
fn info_of(host: &str) -> Result<String, String> {
    let out = timed(10, "docker")
        .args(["-H", host, "info"])
        .output()
        .map_err(|e| format!("running docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "docker -H {host} info: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `swarmctl --manager HOST members --format json` roles, or why not.
fn member_roles(host: &str) -> Result<Vec<(String, bool)>, String> {
    trace(format!("swarmctl --manager {host} members --format json"));
    let out = timed(20, env!("CARGO_BIN_EXE_swarmctl"))
        .args(["--manager", host, "members", "--format", "json"])
        .output()
        .map_err(|e| format!("running swarmctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "swarmctl members: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "members JSON: {e}: {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(value
        .as_array()
        .ok_or("members is not an array")?
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_string(),
                m["reachable"].as_bool().unwrap_or(false),
            )
        })
        .collect())
}

/// The index of the manager whose `docker info` says `Role: primary`, when
/// exactly one does.
fn primary(managers: &[Manager]) -> Result<usize, String> {
    let mut primaries = Vec::new();
    for (i, m) in managers
        .iter()
        .enumerate()
        .filter(|(_, m)| m.pid().is_some())
    {
        let info = info_of(&m.host)?;
        if info_value(&info, "Role").first().map(String::as_str) == Some("primary") {
            primaries.push(i);
        }
    }
    match primaries[..] {
        [one] => Ok(one),
        _ => Err(format!("primaries: {primaries:?}")),
    }
}

#[test]
fn reschedule_survives_a_leader_change() {
    const COUNT: usize = 6;
    let t_start = Instant::now();
    // Locals drop in reverse order: the managers go before the engines.
    let mut engines = start_engines(&[&[], &[]]);
    let discovery = format!("nodes://{}", engines.tcp_addrs().join(","));
    let mut managers: Vec<Manager> = Vec::new();
    for i in 0..3 {
        let raft = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = ["--raft-addr", raft.as_str()]
            .iter()
            .chain(swarm_harness::FAST_REFRESH.iter())
            .map(|s| s.to_string())
            .collect();
        if i > 0 {
            args.extend(["--join".to_string(), managers[0].addr.clone()]);
        }
        args.push(discovery.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        managers.push(start_manager(&args));
        wait_ok(
            &format!("{} voting members", i + 1),
            Duration::from_secs(30),
            || {
                let roles = member_roles(&managers[0].host)?;
                let leaders = roles.iter().filter(|(r, _)| r == "leader").count();
                let followers = roles.iter().filter(|(r, _)| r == "follower").count();
                let ok = roles.len() == i + 1
                    && roles.iter().all(|(_, reachable)| *reachable)
                    && leaders == 1
                    && followers == i;
                ok.then_some(()).ok_or(format!("members {roles:?}"))
            },
        );
    }
    let leader = wait_ok("one primary", Duration::from_secs(10), || {
        primary(&managers)
    });
    let host = managers[leader].host.clone();
    let (a_id, b_id) = (engines[0].id(), engines[1].id());
    wait_ok("both nodes healthy", Duration::from_secs(30), || {
        let info = info_of(&host)?;
        let ok = node_status(&info, &a_id).as_deref() == Some("Healthy")
            && node_status(&info, &b_id).as_deref() == Some("Healthy");
        ok.then_some(())
            .ok_or(format!("status {:?}", info_value(&info, "└ Status")))
    });
    eprintln!(
        "3 managers (leader {leader}) over 2 engines up in {:?}",
        t_start.elapsed()
    );
    let (a, b) = (engines[0].name.clone(), engines[1].name.clone());
    let soft = format!("constraint:node==~{b}");
    let names: Vec<String> = (0..COUNT).map(|i| format!("ha-rs-{i}")).collect();
    for name in &names {
        docker_ok(
            &host,
            &[
                "run",
                "-d",
                "--name",
                name,
                "-e",
                "reschedule:on-node-failure",
                "-e",
                &soft,
                IMAGE,
                "sleep",
                "600",
            ],
        );
    }
    let mut ids = BTreeMap::new();
    for name in &names {
        let node = docker_ok(&host, &["inspect", "-f", "{{.Node.Name}}", name]);
        assert_eq!(node, b, "{name} was not placed on {b}");
        ids.insert(name.clone(), swarm_id_of(&host, name));
    }

    // B's engine crashes; the leader starts rescheduling and dies at once.
    let offset = managers[leader].log().len();
    engines[1].kill();
    let t_kill = Instant::now();
    let started = Instant::now();
    loop {
        let log = managers[leader].log();
        if log
            .get(offset..)
            .unwrap_or("")
            .contains("rescheduling container")
        {
            break;
        }
        assert!(
            started.elapsed() < MOVE_BOUND,
            "the leader logged no \"rescheduling container\" within {MOVE_BOUND:?} after {b} died"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    managers[leader].kill();
    let killed_at = docker_ok(&engines[0].host(), &["info", "-f", "{{.SystemTime}}"]);
    let log = managers[leader].log();
    let since = log.get(offset..).unwrap_or("");
    eprintln!(
        "leader {leader} killed {:?} after {b}'s engine; it had logged {} 'rescheduling container', {} 'container rescheduled'",
        t_kill.elapsed(),
        since.matches("rescheduling container").count(),
        since.matches("container rescheduled").count()
    );
    let copies = engine_names(&engines[0]).map(|n| n.len());
    eprintln!("copies on {a} when the leader died: {copies:?}");
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    // Through a surviving manager: every container once, on A, running; on
    // engine A: exactly one container per swarm id.
    let mut attempt = 0usize;
    wait_ok(
        "every policy container running once on A through a survivor",
        Duration::from_secs(45),
        || {
            let via = &managers[survivors[attempt % survivors.len()]].host;
            attempt += 1;
            let list = listed(via)?;
            for name in &names {
                let mine: Vec<&(String, String)> = list
                    .iter()
                    .filter(|(n, _)| n.rsplit('/').next() == Some(name.as_str()))
                    .collect();
                match mine[..] {
                    [(n, s)] if *n == format!("{a}/{name}") && s.starts_with("Up") => {}
                    _ => return Err(format!("{name}: {mine:?} (via {via})")),
                }
            }
            for (name, id) in &ids {
                let on_a = on_engine_with_swarm_id(&engines[0], id)?;
                if on_a != [(name.clone(), "running".to_string())] {
                    return Err(format!("{name} on {a}: {on_a:?}"));
                }
            }
            Ok(())
        },
    );
    eprintln!(
        "all {COUNT} running on {a} {:?} after {b}'s engine was killed",
        t_kill.elapsed()
    );
    eprintln!("leader killed at about {killed_at} (engine clock); the copies on {a}:");
    for name in &names {
        eprintln!(
            "  {}",
            docker_ok(
                &engines[0].host(),
                &[
                    "inspect",
                    "-f",
                    "{{.Name}} created {{.Created}} started {{.State.StartedAt}}",
                    name,
                ],
            )
        );
    }
    // A late duplicate would come within a few reschedule ticks.
    std::thread::sleep(Duration::from_secs(2));
    let via = &managers[survivors[0]].host;
    let all = listed(via).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), COUNT, "listed through {via}: {all:?}");
    for (name, id) in &ids {
        let on_a = on_engine_with_swarm_id(&engines[0], id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            on_a,
            [(name.clone(), "running".to_string())],
            "{name} on {a}"
        );
    }
    let new_leader = wait_ok("a new primary", Duration::from_secs(10), || {
        primary(&managers)
    });
    eprintln!(
        "new leader {new_leader} logged {} 'container rescheduled'; total {:?}",
        log_count(&managers[new_leader], "container rescheduled"),
        t_start.elapsed()
    );
    for line in managers[new_leader]
        .log()
        .lines()
        .filter(|l| l.contains("swarm::manager::reschedule") || l.contains("leading"))
    {
        eprintln!("  new leader: {}", strip_ansi(line));
    }
    drop(managers);
}
