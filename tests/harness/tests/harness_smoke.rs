//! Smoke test of the test harness itself (`swarm_harness::engines`): two real engines
//! with distinct identities, published ports, exec, and a clean teardown.

use std::path::Path;
use std::time::{Duration, Instant};

use swarm_harness::{docker_ok, free_port, http_get, start_engines, wait_for, IMAGE};

#[test]
fn two_engines_have_distinct_identities_ports_and_exec_and_clean_up() {
    let t0 = Instant::now();
    let engines = start_engines(&[&[("region", "eu")], &[("region", "us")]]);
    eprintln!("2 engines ready in {:?}", t0.elapsed());
    assert_eq!(engines.len(), 2);

    let (e1, e2) = (&engines[0], &engines[1]);
    let id1 = docker_ok(&e1.host(), &["info", "--format", "{{.ID}}"]);
    let id2 = docker_ok(&e2.tcp_host(), &["info", "--format", "{{.ID}}"]);
    assert_ne!(id1, id2, "engine IDs must differ");
    assert_eq!(id1, e1.id());
    assert_eq!(id2, e2.id());
    assert_eq!(
        docker_ok(&e1.host(), &["info", "--format", "{{.Name}}"]),
        "node-1"
    );
    assert_eq!(
        docker_ok(&e2.host(), &["info", "--format", "{{.Name}}"]),
        "node-2"
    );
    let l1 = docker_ok(&e1.host(), &["info", "--format", "{{.Labels}}"]);
    let l2 = docker_ok(&e2.host(), &["info", "--format", "{{.Labels}}"]);
    assert!(l1.contains("region=eu"), "labels of node-1: {l1}");
    assert!(l2.contains("region=us"), "labels of node-2: {l2}");

    // Same image (same ID) on both engines.
    let img1 = docker_ok(
        &e1.host(),
        &["image", "inspect", "--format", "{{.Id}}", IMAGE],
    );
    let img2 = docker_ok(
        &e2.host(),
        &["image", "inspect", "--format", "{{.Id}}", IMAGE],
    );
    assert_eq!(img1, img2, "{IMAGE} must have the same ID on every engine");
    assert_eq!(
        docker_ok(
            &e1.host(),
            &[
                "run",
                "--rm",
                IMAGE,
                "sh",
                "-c",
                "echo hello; cat /etc/passwd | head -1"
            ]
        ),
        "hello\nroot:x:0:0:root:/root:/bin/sh"
    );

    // A published port on engine 2 answers on the engine's address.
    let port = free_port();
    let published = format!("{}:{port}", e2.ip());
    let cid = docker_ok(
        &e2.host(),
        &[
            "run",
            "-d",
            "-p",
            &format!("{port}:80"),
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "80",
        ],
    );
    let (status, _) = wait_for(
        "httpd behind the published port",
        Duration::from_secs(10),
        || http_get(&published, "/").ok(),
    );
    assert!(
        (200..500).contains(&status),
        "unexpected HTTP status {status}"
    );

    // exec works.
    assert_eq!(docker_ok(&e2.host(), &["exec", &cid, "echo", "hi"]), "hi");

    // Containers of one engine reach each other over the bridge.
    let ip = docker_ok(
        &e2.host(),
        &[
            "inspect",
            "--format",
            "{{.NetworkSettings.IPAddress}}",
            &cid,
        ],
    );
    let reply = docker_ok(
        &e2.host(),
        &[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {ip} 80 | head -1"),
        ],
    );
    assert!(
        reply.starts_with("HTTP/1."),
        "container-to-container HTTP: {reply:?}"
    );

    // A long-running container, to check teardown with live containers.
    docker_ok(&e1.host(), &["run", "-d", IMAGE, "sleep", "1000"]);

    let pids: Vec<u32> = engines.iter().map(|e| e.pid).collect();
    let sockets: Vec<_> = engines.iter().map(|e| e.socket.clone()).collect();
    let bridges: Vec<String> = engines.iter().map(|e| e.bridge()).collect();
    let t1 = Instant::now();
    drop(engines);
    eprintln!("2 engines stopped in {:?}", t1.elapsed());

    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "dockerd {pid} still running after drop"
        );
    }
    for s in sockets {
        assert!(!s.exists(), "{} still exists after drop", s.display());
    }
    for b in bridges {
        assert!(
            !Path::new(&format!("/sys/class/net/{b}")).exists(),
            "bridge {b} still exists after drop"
        );
    }
    // Nothing listens on the published port any more.
    assert!(
        http_get(&published, "/").is_err(),
        "{published} still answers after drop"
    );
}
