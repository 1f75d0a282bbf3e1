//! Images through a real registry (Debian's docker-registry, plain HTTP on
//! loopback): `docker push repo:1` through the manager finds the image its
//! tag names on the node that has it and pushes it; `docker pull` through
//! the manager brings it to every node; `docker run` of an image no node
//! has pulls it first (the CLI's pull on 404, then create).

use swarm_harness::registry::Registry;
use swarm_harness::{docker, docker_ok, start_cluster, IMAGE};

#[test]
fn push_pull_and_run_through_a_registry() {
    let registry = Registry::start().expect("registry");
    let c = start_cluster(&[&[], &[]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    });
    let image = format!("{}/app:1", registry.addr);

    // Tagged on node-1 only (node/name tags through the node's engine).
    docker_ok(&c.engines[0].host(), &["tag", IMAGE, &image]);
    let pushed = c.ok(&["push", &image]);
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");

    // Gone everywhere, then pulled through the manager onto every node.
    docker_ok(&c.engines[0].host(), &["rmi", &image]);
    c.ok(&["pull", &image]);
    for engine in c.engines.iter() {
        let (ok, _, err) = docker(&engine.host(), &["image", "inspect", &image]);
        assert!(
            ok,
            "{image} missing on {} after the pull: {err}",
            engine.name
        );
    }

    // A run of an image no node has: the CLI pulls (404 from the create),
    // then creates; the container runs.
    for engine in c.engines.iter() {
        docker_ok(&engine.host(), &["rmi", &image]);
    }
    c.ok(&[
        "run",
        "-d",
        "--name",
        "from-registry",
        &image,
        "sleep",
        "600",
    ]);
    let state = c.ok(&["inspect", "-f", "{{.State.Running}}", "from-registry"]);
    assert_eq!(state, "true");
    c.ok(&["rm", "-f", "from-registry"]);
}
