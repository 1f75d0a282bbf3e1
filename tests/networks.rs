//! Networks and volumes across the cluster with the real docker CLI and
//! two real engines: node-local networks listed as `node/name`, created on
//! the node named or the scheduler's, references resolved as classic did
//! (ambiguous names refused with the candidates), connect on the
//! container's node, placement following local networks and named
//! volumes, prune and removal on every node, and Compose on top.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use swarm_harness::{
    compose_cmd, compose_down, docker, docker_ok, http_get, info_value, output_ok, start_cluster,
    wait_for, Cluster, IMAGE,
};

/// `docker -H <engine of node> ARGS`: what the node itself says.
fn on_node(c: &Cluster, node: &str, args: &[&str]) -> String {
    docker_ok(&c.engine_named(node).host(), args)
}

/// The names `docker network ls` shows through the manager.
fn network_names(c: &Cluster) -> Vec<String> {
    c.ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn scenario_networks(c: &Cluster) {
    // Each node's built-in networks, by node.
    let names = network_names(c);
    for want in [
        "node-1/bridge",
        "node-2/bridge",
        "node-1/host",
        "node-2/none",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    let bridges = c.ok(&["network", "ls", "--filter", "driver=bridge", "-q"]);
    assert_eq!(bridges.lines().count(), 2, "{bridges}");

    // node/name creates on that node only.
    c.ok(&["network", "create", "node-1/front"]);
    assert!(
        on_node(c, "node-1", &["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|n| n == "front")
    );
    assert!(
        !on_node(c, "node-2", &["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|n| n == "front")
    );
    assert_eq!(
        c.ok(&["network", "inspect", "-f", "{{.Name}} {{.Driver}}", "front"]),
        "node-1/front bridge"
    );
    assert_eq!(
        c.ok(&["network", "inspect", "-f", "{{.Name}}", "node-1/front"]),
        "node-1/front"
    );
    let e = c.err(&["network", "create", "front"]);
    assert!(e.contains("already exists"), "{e}");

    // A plain name goes where the scheduler says; constraints in labels.
    c.ok(&[
        "network",
        "create",
        "--label",
        r#"com.docker.swarm.constraints=["node==node-2"]"#,
        "back",
    ]);
    assert_eq!(
        c.ok(&["network", "inspect", "-f", "{{.Name}}", "back"]),
        "node-2/back"
    );

    // The same name on both nodes is ambiguous; node/name is not.
    c.ok(&["network", "create", "node-1/dup"]);
    c.ok(&["network", "create", "node-2/dup"]);
    let e = c.err(&["network", "inspect", "dup"]);
    assert!(
        e.contains("ambiguous") && e.contains("node-1/dup") && e.contains("node-2/dup"),
        "{e}"
    );
    let e = c.err(&["network", "inspect", "nosuchnet"]);
    assert!(e.contains("not found"), "{e}");

    // Placement follows the network; a contradicting constraint is
    // explained with the network's node.
    for i in 0..4 {
        let name = format!("on-front-{i}");
        c.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "front",
            IMAGE,
            "sleep",
            "600",
        ]);
        assert_eq!(c.node_of(&name), "node-1", "{name}");
    }
    let e = c.err(&[
        "run",
        "-d",
        "--network",
        "front",
        "-e",
        "constraint:node==node-2",
        IMAGE,
        "true",
    ]);
    assert!(e.contains("network front") && e.contains("node-1"), "{e}");
    let e = c.err(&["run", "-d", "--network", "nosuchnet", IMAGE, "true"]);
    assert!(e.contains("nosuchnet") && e.contains("not found"), "{e}");

    // connect: on the container's node; another node's local network is a
    // clear error.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "n2",
        "-e",
        "constraint:node==node-2",
        IMAGE,
        "sleep",
        "600",
    ]);
    let e = c.err(&["network", "connect", "front", "n2"]);
    assert!(
        e.contains("local to node node-1") && e.contains("node-2"),
        "{e}"
    );
    c.ok(&["network", "connect", "back", "n2"]);
    let nets = c.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "n2",
    ]);
    assert!(nets.contains("back"), "{nets}");
    c.ok(&["network", "disconnect", "back", "n2"]);

    // Removal: refused while in use (the engine's reason, with the node),
    // then done.
    let e = c.err(&["network", "rm", "front"]);
    assert!(e.contains("node-1"), "{e}");
    let ids = c.ok(&["ps", "-aq", "--filter", "name=on-front"]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.lines());
    c.ok(&rm);
    c.ok(&["network", "rm", "front", "back", "node-1/dup"]);
    let names = network_names(c);
    for gone in ["node-1/front", "node-2/back", "node-1/dup"] {
        assert!(!names.iter().any(|n| n == gone), "{gone} left: {names:?}");
    }

    // prune: unused networks of every node.
    c.ok(&["network", "create", "node-1/unused1"]);
    c.ok(&["network", "create", "node-2/unused2"]);
    let out = c.ok(&["network", "prune", "-f"]);
    for want in ["node-1/unused1", "node-2/unused2", "node-2/dup"] {
        assert!(out.contains(want), "{want} not pruned: {out}");
    }
    assert!(!network_names(c).iter().any(|n| n.contains("unused")));
    c.ok(&["rm", "-f", "n2"]);
}

fn volume_names(c: &Cluster) -> Vec<String> {
    c.ok(&["volume", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn scenario_volumes(c: &Cluster) {
    // A plain name on every node, node/name on that node.
    let created = c.ok(&["volume", "create", "data"]);
    assert!(
        created == "node-1/data" || created == "node-2/data",
        "{created}"
    );
    c.ok(&["volume", "create", "node-2/only2"]);
    let names = volume_names(c);
    for want in ["node-1/data", "node-2/data", "node-2/only2"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(!names.iter().any(|n| n == "node-1/only2"), "{names:?}");
    assert_eq!(
        c.ok(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "only2"]),
        "node-2/only2 local"
    );
    let e = c.err(&["volume", "inspect", "nosuchvolume"]);
    assert!(e.contains("no such volume"), "{e}");
    let filtered = c.ok(&["volume", "ls", "-q", "--filter", "name=only"]);
    assert_eq!(filtered, "node-2/only2");

    // Placement follows a volume that exists on some nodes only.
    for i in 0..3 {
        let name = format!("uses-only2-{i}");
        c.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            "only2:/data",
            IMAGE,
            "sleep",
            "600",
        ]);
        assert_eq!(c.node_of(&name), "node-2", "{name}");
    }
    let e = c.err(&[
        "run",
        "-d",
        "-v",
        "only2:/data",
        "-e",
        "constraint:node==node-1",
        IMAGE,
        "true",
    ]);
    assert!(e.contains("volume only2") && e.contains("node-2"), "{e}");
    // A volume that exists nowhere is made where the container lands.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "fresh-vol",
        "-v",
        "brandnew:/x",
        IMAGE,
        "sleep",
        "600",
    ]);
    let node = c.node_of("fresh-vol");
    assert!(volume_names(c).contains(&format!("{node}/brandnew")));

    // In use: refused with the node named; forced after the container goes.
    let e = c.err(&["volume", "rm", "only2"]);
    assert!(e.contains("node-2") && e.contains("in use"), "{e}");
    c.ok(&[
        "rm",
        "-f",
        "uses-only2-0",
        "uses-only2-1",
        "uses-only2-2",
        "fresh-vol",
    ]);
    c.ok(&["volume", "rm", "only2", "data"]);
    let names = volume_names(c);
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("/only2") || n.ends_with("/data")),
        "{names:?}"
    );

    // prune on every node, space summed.
    c.ok(&["volume", "create", "node-1/p1"]);
    c.ok(&["volume", "create", "node-2/p2"]);
    // Docker 20.10 prunes anonymous and named volumes alike.
    let out = c.ok(&["volume", "prune", "-f"]);
    assert!(
        out.contains("node-1/p1") && out.contains("node-2/p2"),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space"), "{out}");
}

/// A Compose project of three services (one with depends_on, one with a
/// named volume, one with a constraint), the default network and one
/// declared network, pinned to node-1 by their labels.
const COMPOSE: &str = r#"version: "2.4"
services:
  db:
    image: IMAGE
    command: sleep 600
    stop_grace_period: 1s
    volumes:
      - dbdata:/data
    networks: [back]
  web:
    image: IMAGE
    command: sh -c "echo web-up; sleep 600"
    stop_grace_period: 1s
    depends_on: [db]
    networks: [default, back]
  worker:
    image: IMAGE
    command: sleep 600
    stop_grace_period: 1s
    environment:
      - "constraint:node==node-1"
networks:
  default:
    labels:
      com.docker.swarm.constraints: '["node==node-1"]'
  back:
    labels:
      com.docker.swarm.constraints: '["node==node-1"]'
volumes:
  dbdata: {}
"#;

/// `docker-compose ARGS` in `dir` against the manager; must succeed.
fn compose(c: &Cluster, dir: &Path, args: &[&str]) -> String {
    output_ok(compose_cmd(c.host(), dir, args))
}

fn scenario_compose(c: &Cluster) {
    let dir = tempfile::tempdir().expect("project dir");
    let project = dir.path().join("proj");
    std::fs::create_dir_all(&project).expect("project");
    std::fs::write(
        project.join("docker-compose.yml"),
        COMPOSE.replace("IMAGE", IMAGE),
    )
    .expect("compose file");
    compose(c, &project, &["up", "-d"]);
    let running = compose(
        c,
        &project,
        &["ps", "--services", "--filter", "status=running"],
    );
    let mut services: Vec<&str> = running.lines().collect();
    services.sort_unstable();
    assert_eq!(services, ["db", "web", "worker"], "{running}");
    let logs = compose(c, &project, &["logs", "web"]);
    assert!(logs.contains("web-up"), "{logs}");
    assert_eq!(
        compose(c, &project, &["exec", "-T", "db", "sh", "-c", "echo in-db"]),
        "in-db"
    );
    compose(c, &project, &["up", "-d", "--scale", "web=3"]);
    let webs = c.ok(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.service=web",
    ]);
    assert_eq!(webs.lines().count(), 3, "{webs}");
    for id in webs.lines() {
        assert_eq!(c.node_of(id), "node-1", "web {id} off its networks' node");
    }
    compose(c, &project, &["restart"]);
    compose(c, &project, &["stop"]);
    let running = c.ok(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=proj",
    ]);
    assert!(running.is_empty(), "running after stop: {running}");
    compose(c, &project, &["start"]);
    compose_down(c.host(), &project);
    // Nothing of the project is left on any node.
    for node in ["node-1", "node-2"] {
        let left = on_node(
            c,
            node,
            &[
                "ps",
                "-aq",
                "--filter",
                "label=com.docker.compose.project=proj",
            ],
        );
        assert!(left.is_empty(), "containers left on {node}: {left}");
        let nets = on_node(c, node, &["network", "ls", "-q", "--filter", "name=proj_"]);
        assert!(nets.is_empty(), "networks left on {node}: {nets}");
        let vols = on_node(c, node, &["volume", "ls", "-q", "--filter", "name=proj_"]);
        assert!(vols.is_empty(), "volumes left on {node}: {vols}");
    }
}

/// A node down while the cluster fans out: its networks and volumes are
/// not listed (the volume list's warnings name it), a volume created
/// meanwhile lands on the nodes that answer, and a container on a network
/// of the down node is refused with both reasons.
fn scenario_node_down(c: &mut Cluster) {
    c.ok(&["network", "create", "node-2/downnet"]);
    c.ok(&["volume", "create", "node-2/downvol"]);
    let index = c
        .engines
        .iter()
        .position(|e| e.name == "node-2")
        .expect("node-2");
    c.engines.engines[index].kill();
    wait_for("node-2 unhealthy", Duration::from_secs(30), || {
        info_value(&c.ok(&["info"]), "└ Status")
            .contains(&"Unhealthy".to_string())
            .then_some(())
    });
    let names = network_names(c);
    assert!(names.iter().any(|n| n == "node-1/bridge"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("node-2/")), "{names:?}");
    let (status, body) = http_get(&c.manager.addr, "/volumes").expect("GET /volumes");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let warnings = listed["Warnings"].to_string();
    assert!(
        warnings.contains("node-2") && warnings.contains("unhealthy"),
        "{listed}"
    );
    assert!(!body.contains("node-2/downvol"), "{body}");
    c.ok(&["volume", "create", "whiledown"]);
    let names = volume_names(c);
    assert!(names.iter().any(|n| n == "node-1/whiledown"), "{names:?}");
    let e = c.err(&["run", "-d", "--network", "downnet", IMAGE, "true"]);
    assert!(
        e.contains("healthy node") && e.contains("network downnet (on node node-2"),
        "{e}"
    );
    c.engines.engines[index].restart();
    wait_for("node-2 healthy again", Duration::from_secs(60), || {
        (info_value(&c.ok(&["info"]), "└ Status") == ["Healthy", "Healthy"]).then_some(())
    });
    c.ok(&["network", "rm", "downnet"]);
    c.ok(&["volume", "rm", "downvol", "whiledown"]);
}

#[test]
fn networks_volumes_and_compose_across_two_engines() {
    let mut cluster = start_cluster(&[&[], &[]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    });
    let mut failed = cluster.run_scenarios(
        &[
            ("networks", scenario_networks),
            ("volumes", scenario_volumes),
            ("compose", scenario_compose),
        ],
        |c| {
            // Whatever a failed scenario left.
            let _ = docker(c.host(), &["rm", "-f", "n2", "fresh-vol"]);
        },
    );
    // Last: it kills and restarts an engine.
    eprintln!("--- scenario: node down");
    if catch_unwind(AssertUnwindSafe(|| scenario_node_down(&mut cluster))).is_err() {
        eprintln!("manager log:\n{}", cluster.manager.log_tail(80));
        failed.push("node down");
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}
