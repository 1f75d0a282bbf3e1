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
    let progress = c.ok(&["pull", &image]);
    for engine in c.engines.iter() {
        let (ok, _, err) = docker(&engine.host(), &["image", "inspect", &image]);
        assert!(
            ok,
            "{image} missing on {} after the pull: {err}",
            engine.name
        );
        // Each node's progress, by name.
        assert!(
            progress.contains(&format!("{}: ", engine.name)),
            "no line of {}: {progress}",
            engine.name
        );
    }

    // A client that decodes chunk by chunk (docker-py's streaming pull)
    // reads one JSON message per chunk.
    let chunks = python_pull(c.host(), &image);
    assert!(chunks.contains("messages:"), "{chunks}");

    // A repository the registry lacks: every node's failure is a line, and
    // one error at the end names the nodes.
    let missing = format!("{}/nothing:1", registry.addr);
    let err = c.err(&["pull", &missing]);
    for engine in c.engines.iter() {
        assert!(
            err.contains(&engine.name),
            "{} not named: {err}",
            engine.name
        );
    }
    assert!(err.contains("pull failed on"), "{err}");

    // A raw API create of an image no node has: the manager pulls it on
    // the chosen node first (a raw client does not pull on a 404).
    for engine in c.engines.iter() {
        docker_ok(&engine.host(), &["rmi", &image]);
    }
    let body = format!(r#"{{"Image": "{image}", "Cmd": ["sleep", "600"]}}"#);
    let (status, answer) = post_json(&c.manager.addr, "/containers/create?name=raw-pulled", &body);
    assert_eq!(status, 201, "{answer}");
    let node = c.node_of("raw-pulled");
    let (ok, _, err) = docker(&c.engine_named(&node).host(), &["image", "inspect", &image]);
    assert!(ok, "{image} not pulled on {node}: {err}");
    c.ok(&["rm", "-f", "raw-pulled"]);
    // An image no registry has: Docker's 404.
    let body = format!(r#"{{"Image": "{}/nothing:1"}}"#, registry.addr);
    let (status, answer) = post_json(&c.manager.addr, "/containers/create", &body);
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("No such image"), "{answer}");

    // A run of an image no node has: the CLI pulls (404 from the create),
    // then creates; the container runs.
    for engine in c.engines.iter() {
        // Only the raw create's node has it.
        let _ = docker(&engine.host(), &["rmi", &image]);
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

    // Two nodes hold different builds under one tag: the push sends the
    // newest (node-2's commit, made after node-1's tag).
    let tagged = format!("{}/twice:1", registry.addr);
    docker_ok(&c.engines[0].host(), &["tag", IMAGE, &tagged]);
    docker_ok(
        &c.engines[1].host(),
        &["run", "--name", "newer", IMAGE, "touch", "/newer"],
    );
    docker_ok(&c.engines[1].host(), &["commit", "newer", &tagged]);
    docker_ok(&c.engines[1].host(), &["rm", "newer"]);
    // The manager learns of both copies at its next image refresh.
    swarm_harness::wait_for(
        "both copies known",
        std::time::Duration::from_secs(30),
        || {
            let listed = c.ok(&["images", "-q", &tagged]);
            (listed.lines().count() == 2).then_some(())
        },
    );
    c.ok(&["push", &tagged]);
    let digests = |i: usize| {
        docker_ok(
            &c.engines[i].host(),
            &["image", "inspect", "-f", "{{.RepoDigests}}", &tagged],
        )
    };
    assert!(
        digests(1).contains("/twice@sha256:"),
        "node-2 did not push: {}",
        digests(1)
    );
    assert!(
        !digests(0).contains("/twice@"),
        "node-1 pushed: {}",
        digests(0)
    );

    // docker export | docker import through the manager: the archive
    // reaches every node whole; garbage is refused, not imported empty.
    c.ok(&["run", "-d", "--name", "exported", IMAGE, "sleep", "600"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("exported.tar");
    let tar = tar.to_str().expect("path");
    c.ok(&["export", "-o", tar, "exported"]);
    c.ok(&["import", tar, "imported:1"]);
    for engine in c.engines.iter() {
        let size = docker_ok(
            &engine.host(),
            &["image", "inspect", "-f", "{{.Size}}", "imported:1"],
        );
        let size: u64 = size.parse().unwrap_or(0);
        assert!(
            size > 1_000_000,
            "imported:1 on {} is {size} bytes",
            engine.name
        );
    }
    let garbage = dir.path().join("garbage.tar");
    std::fs::write(&garbage, b"this is not a tar archive").expect("garbage");
    let err = c.err(&["import", garbage.to_str().expect("path"), "garbage:1"]);
    assert!(
        err.contains("import failed") || err.contains("tar"),
        "{err}"
    );
    c.ok(&["rm", "-f", "exported"]);
}

/// docker-py's low-level streaming pull (Debian's python3-docker, which
/// docker-compose brings), `json.loads` on every chunk as a
/// client that trusts one message per chunk does; prints `messages: N` or
/// the error (`Extra data` when a chunk holds two messages).
fn python_pull(host: &str, image: &str) -> String {
    let script = format!(
        "import json, docker\napi = docker.APIClient(base_url='{host}')\nn = 0\nfor chunk in api.pull('{image}', stream=True):\n    json.loads(chunk)\n    n += 1\nprint('messages:', n)\n"
    );
    let out = std::process::Command::new("timeout")
        .args(["60", "/usr/bin/python3", "-c", &script])
        .env_remove("DOCKER_HOST")
        .output()
        .expect("python3");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `docker CLI` with a `HOME` of its own (its own credentials store).
fn docker_home(host: &str, home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = swarm_harness::docker_cmd(120, host, args)
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .output()
        .expect("running docker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// A registry with TLS and htpasswd: `docker login` through the manager
/// (one node asks the registry) succeeds with the password and fails
/// clearly without it; push and pull carry the credentials
/// (`X-Registry-Auth`) to the nodes; without them every node is refused
/// and named.
#[test]
fn login_push_and_pull_with_tls_and_basic_auth() {
    let pki = swarm_harness::Pki::new().expect("PKI");
    // Not loopback: dockerd would not verify a 127.0.0.0/8 registry.
    let ip = swarm_harness::registry::routable_ip().expect("a routable address");
    let cert_dir = pki
        .issue(swarm::ca::CertKind::Server, "registry", &[&ip])
        .expect("registry certificate");
    let secure = swarm_harness::registry::Secure {
        cert_dir,
        ip,
        user: "alice".into(),
        password: "s3cret-pass".into(),
    };
    let registry = Registry::start_secure(&secure).expect("registry");
    let c = start_cluster(&[&[], &[]], |e| {
        format!("nodes://{},{}", e[0].tcp, e[1].host())
    });
    for engine in c.engines.iter() {
        registry.trust(engine).expect("trusting the registry's CA");
    }
    let home = tempfile::tempdir().expect("home");
    let stranger = tempfile::tempdir().expect("home");
    let host = c.host();
    let addr = &registry.addr;

    let (ok, _, err) = docker_home(
        host,
        home.path(),
        &["login", addr, "-u", "alice", "-p", "wrong"],
    );
    assert!(!ok, "a wrong password logged in");
    assert!(err.to_lowercase().contains("unauthorized"), "{err}");
    let (ok, out, err) = docker_home(
        host,
        home.path(),
        &["login", addr, "-u", "alice", "-p", "s3cret-pass"],
    );
    assert!(ok && out.contains("Login Succeeded"), "{out} {err}");

    let image = format!("{addr}/private:1");
    docker_ok(&c.engines[0].host(), &["tag", IMAGE, &image]);
    let (ok, _, err) = docker_home(host, stranger.path(), &["push", &image]);
    assert!(!ok, "pushed without credentials");
    assert!(err.to_lowercase().contains("auth"), "{err}");
    let (ok, out, err) = docker_home(host, home.path(), &["push", &image]);
    assert!(ok && out.contains("digest: sha256:"), "{out} {err}");

    docker_ok(&c.engines[0].host(), &["rmi", &image]);
    let (ok, _, err) = docker_home(host, stranger.path(), &["pull", &image]);
    assert!(!ok, "pulled without credentials");
    for engine in c.engines.iter() {
        assert!(
            err.contains(&engine.name),
            "{} not named: {err}",
            engine.name
        );
    }
    let (ok, out, err) = docker_home(host, home.path(), &["pull", &image]);
    assert!(ok, "{out} {err}");
    for engine in c.engines.iter() {
        let (ok, _, err) = docker(&engine.host(), &["image", "inspect", &image]);
        assert!(ok, "{image} missing on {}: {err}", engine.name);
    }

    // node-2 no longer trusts the registry's CA: its pull fails on the
    // certificate and is named alone; node-1's succeeds.
    registry.distrust(&c.engines[1]).expect("forgetting the CA");
    let second = format!("{addr}/private:2");
    docker_ok(&c.engines[0].host(), &["tag", IMAGE, &second]);
    let (ok, out, err) = docker_home(host, home.path(), &["push", &second]);
    assert!(ok, "{out} {err}");
    docker_ok(&c.engines[0].host(), &["rmi", &second]);
    let (ok, out, err) = docker_home(host, home.path(), &["pull", &second]);
    assert!(!ok, "the pull succeeded on a node without the CA: {out}");
    let closing = err.lines().last().unwrap_or_default();
    assert!(
        closing.contains("pull failed on node-2") && !closing.contains("node-1"),
        "{err}"
    );
    assert!(err.contains("certificate"), "{err}");
    assert!(docker(&c.engines[0].host(), &["image", "inspect", &second]).0);
    assert!(!docker(&c.engines[1].host(), &["image", "inspect", &second]).0);
}

/// `POST path` with a JSON body over a fresh connection; (status, body).
fn post_json(addr: &str, path: &str, body: &str) -> (u16, String) {
    swarm_harness::http_request(
        addr,
        "POST",
        path,
        Some(body),
        std::time::Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}
