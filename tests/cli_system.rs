//! Disk usage, prunes, commit and the routes of the whole Engine API,
//! end to end: two real engines, `swarm manage` in front of them, and the
//! real `docker` CLI (`system df`, `container prune`, `image prune`,
//! `builder prune`, `system prune`, `commit`, `search`, `node ls`, ...). One cluster for
//! the whole file; each scenario runs in turn and every failure is
//! reported by name at the end.
//!
//! The manager is started with `--engine-failure-retry 1000`: a killed
//! engine stays a healthy node of the state for the rest of the file, so
//! the last scenario can show a prune fanned out to a node that is down.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use swarm_harness::{
    docker_ok, info_value, start_engines, start_manager, wait_for, Cluster, IMAGE,
};

/// Raw HTTP/1.1 request to `addr`; returns (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    let head_end = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
    let (head, body) = text.split_at(head_end);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// The data of a chunked body.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A JSON answer's value.
fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// `docker run -d --name NAME` on node `node` (a constraint), `cmd` as the
/// command; `detach: false` waits for it to exit.
fn run_on(c: &Cluster, node: &str, name: &str, detach: bool, extra: &[&str], cmd: &[&str]) {
    let constraint = format!("constraint:node=={node}");
    let mut args = vec!["run"];
    if detach {
        args.push("-d");
    }
    args.extend(["--name", name, "-e", &constraint]);
    args.extend(extra);
    args.push(IMAGE);
    args.extend(cmd);
    c.ok(&args);
    assert_eq!(c.node_of(name), node, "{name} placed on {node}");
}

fn node_names(c: &Cluster) -> [String; 2] {
    [c.engines[0].name.clone(), c.engines[1].name.clone()]
}

/// Full IDs of the containers listed by `docker ps -a` through `host`.
fn all_ids(host: &str) -> BTreeSet<String> {
    docker_ok(host, &["ps", "-aq", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn id_of(c: &Cluster, name: &str) -> String {
    c.ok(&["inspect", "-f", "{{.Id}}", name])
}

/// The 64-hex lines of a prune's output (its deleted IDs), without
/// `sha256:` / `deleted: ` prefixes.
fn deleted_ids(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("deleted: ")
                .trim_start_matches("sha256:")
        })
        .filter(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

/// `docker info`'s Running and Stopped totals: the manager's state.
fn state_counts(c: &Cluster) -> [i64; 2] {
    let info = c.ok(&["info"]);
    ["Running", "Stopped"].map(|key| {
        info_value(&info, key)[0]
            .parse::<i64>()
            .unwrap_or_else(|e| panic!("{key}: {e}: {info}"))
    })
}

fn scenario_system_df(c: &Cluster) {
    let [n1, n2] = node_names(c);
    run_on(c, &n1, "df-a", true, &[], &["sleep", "600"]);
    run_on(c, &n2, "df-b", true, &[], &["sleep", "600"]);
    docker_ok(&c.engines[0].host(), &["volume", "create", "df-vol"]);

    let table = c.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(
        table.contains("Images 1 1"),
        "one image, merged by ID: {table}"
    );
    assert!(table.contains("Containers 2 2"), "{table}");
    assert!(table.contains("Local Volumes 1 0"), "{table}");

    // LayersSize is the sum of the nodes'; names as the cluster names them.
    let (status, body) = http(&c.manager.addr, "GET", "/v1.41/system/df");
    assert_eq!(status, 200, "{body}");
    let usage = json(&body);
    let layers: i64 = c
        .engines
        .iter()
        .map(|e| {
            let (status, body) = http(&e.tcp, "GET", "/v1.41/system/df");
            assert_eq!(status, 200, "{body}");
            json(&body)["LayersSize"].as_i64().expect("LayersSize")
        })
        .sum();
    assert_eq!(usage["LayersSize"].as_i64(), Some(layers), "{usage}");
    let images = usage["Images"].as_array().expect("Images");
    let busybox: Vec<_> = images
        .iter()
        .filter(|i| i["RepoTags"].to_string().contains(IMAGE))
        .collect();
    assert_eq!(busybox.len(), 1, "{usage}");
    assert!(
        busybox[0]["Containers"].as_i64() >= Some(2),
        "summed: {usage}"
    );

    let verbose = c.ok(&["system", "df", "-v"]);
    for name in [
        format!("{n1}/df-a"),
        format!("{n2}/df-b"),
        format!("{n1}/df-vol"),
    ] {
        assert!(verbose.contains(&name), "{name} in {verbose}");
    }
    assert!(verbose.contains("Build cache usage"), "{verbose}");
    c.ok(&["rm", "-f", "df-a", "df-b"]);
    docker_ok(&c.engines[0].host(), &["volume", "rm", "df-vol"]);
}

fn scenario_container_prune(c: &Cluster) {
    let [n1, n2] = node_names(c);
    run_on(c, &n1, "keep-1", true, &[], &["sleep", "600"]);
    run_on(c, &n2, "keep-2", true, &[], &["sleep", "600"]);
    let labelled = ["--label", "prune=yes"];
    run_on(c, &n1, "gone-1", false, &labelled, &["true"]);
    run_on(c, &n2, "gone-2", false, &labelled, &["true"]);
    run_on(c, &n2, "other-2", false, &[], &["true"]);
    let gone: BTreeSet<String> = ["gone-1", "gone-2"].map(|n| id_of(c, n)).into();
    let other = id_of(c, "other-2");
    // The exits reach the state with the engines' `die` events.
    wait_for(
        "the state to count the exits",
        Duration::from_secs(10),
        || (state_counts(c) == [2, 3]).then_some(()),
    );

    // Filters reach the engines: only the labelled stopped containers go.
    let out = c.ok(&["container", "prune", "-f", "--filter", "label=prune=yes"]);
    assert_eq!(deleted_ids(&out), gone, "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    let listed = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{n1}/keep-1"),
            format!("{n2}/keep-2"),
            format!("{n2}/other-2")
        ],
        "{listed}"
    );
    assert_eq!(state_counts(c), [2, 1], "the state forgot the pruned ones");
    for engine in c.engines.iter() {
        let left = all_ids(&engine.host());
        assert!(
            left.is_disjoint(&gone),
            "{} still has {left:?}",
            engine.name
        );
    }

    // Without a filter every stopped container goes; running ones stay.
    let out = c.ok(&["container", "prune", "-f"]);
    assert_eq!(deleted_ids(&out), BTreeSet::from([other]), "{out}");
    assert_eq!(state_counts(c), [2, 0]);
    let names = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.lines().count(), 2, "{names}");
    // Nothing left to prune: an empty answer, as an engine's.
    let out = c.ok(&["container", "prune", "-f"]);
    assert!(deleted_ids(&out).is_empty(), "{out}");
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    let err = c.err(&["container", "prune", "-f", "--filter", "bogus=1"]);
    assert!(err.contains("Invalid filter 'bogus'"), "{err}");
}

fn scenario_commit(c: &Cluster) {
    let [n1, _] = node_names(c);
    run_on(
        c,
        &n1,
        "to-commit",
        true,
        &[],
        &["sh", "-c", "echo committed-content > /marker; sleep 600"],
    );
    wait_for("the marker written", Duration::from_secs(10), || {
        let out = c.ok(&["exec", "to-commit", "cat", "/marker"]);
        (out == "committed-content").then_some(())
    });
    let id = c.ok(&["commit", "to-commit", "committed:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    // Listed at once, on the container's node only.
    let images = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "committed:1"), "{images}");
    for engine in c.engines.iter() {
        let on_engine = docker_ok(&engine.host(), &["images", "-q", "committed:1"]);
        assert_eq!(!on_engine.is_empty(), engine.name == n1, "{}", engine.name);
    }
    // Placement prefers the node that holds the image: the run works.
    let out = c.ok(&[
        "run",
        "--name",
        "from-commit",
        "committed:1",
        "cat",
        "/marker",
    ]);
    assert_eq!(out, "committed-content");
    assert_eq!(c.node_of("from-commit"), n1);
    // node/name references and the commit's options reach the engine.
    c.ok(&[
        "commit",
        "-c",
        "LABEL made=by-commit",
        &format!("{n1}/to-commit"),
        "committed:2",
    ]);
    let label = c.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"made\"}}",
        "committed:2",
    ]);
    assert_eq!(label, "by-commit");
    let err = c.err(&["commit", "no-such-container", "committed:3"]);
    assert!(
        err.contains("No such container: no-such-container"),
        "{err}"
    );
    c.ok(&["rm", "-f", "to-commit", "from-commit"]);
    c.ok(&["rmi", "committed:1", "committed:2"]);
}

fn scenario_image_prune(c: &Cluster) {
    // Two commits to the same tag leave the first image dangling, on each
    // node.
    let mut dangling = BTreeSet::new();
    for keep in ["keep-1", "keep-2"] {
        let first = c.ok(&["commit", keep, "pruneme:1"]);
        c.ok(&["commit", keep, "pruneme:1"]);
        dangling.insert(first.trim_start_matches("sha256:").to_string());
    }
    let listed: BTreeSet<String> = c
        .ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"])
        .lines()
        .map(|l| l.trim_start_matches("sha256:").to_string())
        .collect();
    assert_eq!(listed, dangling);
    let out = c.ok(&["image", "prune", "-f"]);
    assert_eq!(deleted_ids(&out), dangling, "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    for host in std::iter::once(c.host().to_string()).chain(c.engines.iter().map(|e| e.host())) {
        let left = docker_ok(&host, &["images", "-q", "--filter", "dangling=true"]);
        assert!(left.is_empty(), "{host}: {left}");
    }
    // The tagged ones stay, on both nodes.
    let images = c.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "pruneme:1"), "{images}");
    c.ok(&["rmi", "pruneme:1"]);
    let out = c.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
}

fn scenario_system_prune(c: &Cluster) {
    let [n1, n2] = node_names(c);
    run_on(c, &n1, "sys-1", false, &[], &["true"]);
    run_on(c, &n2, "sys-2", false, &[], &["true"]);
    let stopped: BTreeSet<String> = ["sys-1", "sys-2"].map(|n| id_of(c, n)).into();
    let dangling = c.ok(&["commit", "keep-2", "sysprune:1"]);
    c.ok(&["commit", "keep-2", "sysprune:1"]);
    // Containers, networks, images and build cache, each fanned out.
    let out = c.ok(&["system", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("Deleted Images:"), "{out}");
    let deleted = deleted_ids(&out);
    assert!(deleted.is_superset(&stopped), "{out}");
    assert!(
        deleted.contains(dangling.trim_start_matches("sha256:")),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(state_counts(c), [2, 0]);
    c.ok(&["rmi", "sysprune:1"]);
}

fn scenario_routes(c: &Cluster) {
    // Paths that were read as names are routes of their own.
    let err = c.err(&["search", "x"]);
    assert!(!err.contains("No such image"), "{err}");
    assert!(!err.contains("page not found"), "{err}");
    assert!(
        err.contains("index.docker.io"),
        "the engine's search ran: {err}"
    );
    for args in [["node", "ls"], ["service", "ls"], ["secret", "ls"]] {
        let err = c.err(&args);
        assert!(
            err.contains("This node is not a swarm manager. It is a classic-style cluster manager"),
            "{args:?}: {err}"
        );
    }
    let err = c.err(&["plugin", "ls"]);
    assert!(
        err.contains(
            "GET /plugins is not supported by this cluster: plugins are installed on each engine"
        ),
        "{err}"
    );
    // `docker inspect` asks for a plugin as well before it gives up: the
    // refusal says "not supported", which it passes over.
    let err = c.err(&["inspect", "nothing-here"]);
    assert!(err.contains("No such object: nothing-here"), "{err}");
    let addr = &c.manager.addr;
    for (method, path, status, expect) in [
        (
            "GET",
            "/v1.41/swarm",
            503,
            "This node is not a swarm manager.",
        ),
        ("POST", "/swarm/init", 503, "(/swarm)"),
        ("GET", "/tasks/abc", 503, "(/tasks)"),
        ("GET", "/configs", 503, "(/configs)"),
        ("POST", "/v1.41/build?memory=lots", 400, "invalid memory"),
        ("POST", "/session", 501, "POST /session is not supported"),
        (
            "POST",
            "/plugins/pull",
            501,
            "POST /plugins/pull is not supported",
        ),
        ("GET", "/containers/prune", 405, "method GET not allowed"),
        ("GET", "/images/prune", 405, "method GET not allowed"),
        ("POST", "/images/search", 405, "method POST not allowed"),
        ("POST", "/commit", 400, "no container to commit"),
        ("GET", "/system/nothing", 404, "page not found"),
    ] {
        let (got, body) = http(addr, method, path);
        assert_eq!(got, status, "{method} {path}: {body}");
        let message = json(&body)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(expect), "{method} {path}: {message}");
    }
    // A container or image named as a fixed path is still removed by name.
    c.ok(&["create", "--name", "prune", IMAGE, "true"]);
    c.ok(&["rm", "prune"]);
    c.ok(&["tag", IMAGE, "search:latest"]);
    c.ok(&["rmi", "search"]);
    let images = c.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.lines().any(|l| l == "search"), "{images}");
}

fn scenario_prune_with_a_node_down(c: &mut Cluster) {
    let [n1, n2] = node_names(c);
    run_on(c, &n1, "down-1", false, &[], &["true"]);
    run_on(c, &n2, "down-2", false, &[], &["true"]);
    let (down_1, down_2) = (id_of(c, "down-1"), id_of(c, "down-2"));
    c.engines.engines[0].kill();
    // Still a healthy node of the state (--engine-failure-retry 1000): the
    // prune goes to it and fails there.
    let err = c.err(&["container", "prune", "-f"]);
    assert!(
        err.contains(&format!("containers prune failed on node {n1}: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!("done on node {n2}: 1 container deleted")),
        "{err}"
    );
    let on_2 = all_ids(&c.engines[1].host());
    assert!(!on_2.contains(&down_2), "pruned on the node that is up");
    let listed = c.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!listed.contains("down-2"), "{listed}");
    assert!(listed.contains(&format!("{n1}/down-1")), "{listed}");
    c.engines.engines[0].restart();
    wait_for("the engine answers again", Duration::from_secs(30), || {
        let info = c.ok(&["info"]);
        (info_value(&info, "└ Error") == vec!["(none)", "(none)"]).then_some(())
    });
    // keep-1 was killed with its engine: it goes too now.
    let out = c.ok(&["container", "prune", "-f"]);
    let pruned = deleted_ids(&out);
    assert!(pruned.contains(&down_1), "{out}");
    assert!(!c
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .contains("down-1"));
}

#[test]
fn disk_usage_prunes_commit_and_routes() {
    let engines = start_engines(&[&[("region", "eu")], &[("region", "us")]]);
    let discovery = format!("nodes://{},{}", engines[0].tcp, engines[1].tcp);
    let manager = start_manager(&[
        "--engine-refresh-min-interval",
        "1s",
        "--engine-refresh-max-interval",
        "2s",
        "--engine-failure-retry",
        "1000",
        "--list-cache",
        "1h",
        &discovery,
    ]);
    let mut cluster = Cluster { engines, manager };
    wait_for("every node healthy", Duration::from_secs(30), || {
        (info_value(&cluster.ok(&["info"]), "└ Status") == ["Healthy", "Healthy"]).then_some(())
    });
    let mut failed = cluster.run_scenarios(
        &[
            ("system df", scenario_system_df),
            ("container prune", scenario_container_prune),
            ("commit", scenario_commit),
            ("image prune", scenario_image_prune),
            ("system prune", scenario_system_prune),
            ("routes", scenario_routes),
        ],
        |_| {},
    );
    // Last: it kills an engine.
    eprintln!("--- scenario: prune with a node down");
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario_prune_with_a_node_down(&mut cluster)
    }))
    .is_err()
    {
        eprintln!("manager log:\n{}", cluster.manager.log_tail(80));
        failed.push("prune with a node down");
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
