//! Multi-host overlay networks over a real key-value store (issue 19): a
//! real etcd ([`Etcd`], v2 API) and two real engines, each in a network
//! namespace of its own with its own IP, started with `--cluster-store`
//! and `--cluster-advertise` (dockerd 20.10's legacy overlay: VXLAN
//! between the engines' IPs, gossip on 7946, networks and addresses in
//! etcd). A container on one engine reaches one on the other by name.
//!
//! Container names have two characters at least: dockerd 20.10 refuses
//! `--name a` ("Invalid container name").

use std::time::{Duration, Instant};

use swarm_harness::{
    docker, docker_ok, info_value, start_engines_with, start_manager, wait_for, wait_ok,
    EngineOptions, Engines, Etcd, FAST_REFRESH, IMAGE,
};

/// How long a container may take to reach the other over the overlay
/// (the engines learn of each other through the store and gossip).
const REACH_TIMEOUT: Duration = Duration::from_secs(30);

/// Two engines with an etcd as their cluster store. Field order: the
/// engines stop before their store.
struct OverlayEngines {
    engines: Engines,
    etcd: Etcd,
}

/// Starts an etcd and two engines that use it as their cluster store.
fn overlay_engines() -> OverlayEngines {
    let t = Instant::now();
    let etcd = Etcd::start();
    let options = EngineOptions {
        cluster_store: Some(etcd.cluster_store()),
        ..EngineOptions::default()
    };
    let engines = start_engines_with(vec![options.clone(), options]);
    eprintln!(
        "etcd on {} and engines {} ({}), {} ({}) up in {:?}",
        etcd.addr,
        engines[0].name,
        engines[0].ip(),
        engines[1].name,
        engines[1].ip(),
        t.elapsed()
    );
    OverlayEngines { engines, etcd }
}

/// `docker -H host network ls` as `name driver scope` lines.
fn networks(host: &str) -> Vec<String> {
    docker_ok(
        host,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Waits until `from` (a container of `host`) pings `to` by name over the
/// overlay, then fetches a file of about 1 MB from the httpd `to` runs
/// on port 8080 (full-size packets through VXLAN).
fn assert_reaches(host: &str, from: &str, to: &str) {
    wait_ok(
        &format!("{from} pinging {to}"),
        REACH_TIMEOUT,
        || match docker(host, &["exec", from, "ping", "-c1", "-W2", to]) {
            (true, _, _) => Ok(()),
            (false, out, err) => Err(format!("{out}{err}")),
        },
    );
    let size = docker_ok(
        host,
        &[
            "exec",
            from,
            "sh",
            "-c",
            &format!("wget -q -O - http://{to}:8080/busybox | wc -c"),
        ],
    );
    let size: u64 = size.trim().parse().unwrap_or(0);
    assert!(size > 500_000, "{from} fetched {size} bytes from {to}");
}

/// The legacy overlay works on this machine, straight against the
/// engines: a network created on one engine is a global network on the
/// other, and containers on both reach each other by name.
#[test]
fn overlay_network_spans_engines() {
    let t = Instant::now();
    let o = overlay_engines();
    let (h1, h2) = (o.engines[0].tcp_host(), o.engines[1].tcp_host());

    let id = docker_ok(&h1, &["network", "create", "-d", "overlay", "ovl"]);
    assert!(
        networks(&h2).contains(&"ovl overlay global".to_string()),
        "engine 2 does not list ovl: {:?}",
        networks(&h2)
    );
    assert_eq!(
        docker_ok(&h2, &["network", "inspect", "-f", "{{.Id}}", "ovl"]),
        id
    );
    // Both engines registered themselves in the store, at their own IPs.
    // (Each engine registers on its own schedule after it started.)
    wait_ok(
        "both engines registered in etcd",
        Duration::from_secs(30),
        || {
            let (code, nodes) = o.etcd.get("/docker/nodes")?;
            if code == 200
                && nodes.contains(&o.engines[0].ip())
                && nodes.contains(&o.engines[1].ip())
            {
                Ok(())
            } else {
                Err(format!("engines not registered in etcd: {code} {nodes}"))
            }
        },
    );

    docker_ok(
        &h1,
        &[
            "run",
            "-d",
            "--name",
            "ovl-a",
            "--network",
            "ovl",
            IMAGE,
            "sleep",
            "600",
        ],
    );
    docker_ok(
        &h2,
        &[
            "run",
            "-d",
            "--name",
            "ovl-b",
            "--network",
            "ovl",
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/bin",
        ],
    );
    assert_reaches(&h1, "ovl-a", "ovl-b");
    wait_ok("ovl-b pinging ovl-a", REACH_TIMEOUT, || {
        match docker(&h2, &["exec", "ovl-b", "ping", "-c1", "-W2", "ovl-a"]) {
            (true, _, _) => Ok(()),
            (false, out, err) => Err(format!("{out}{err}")),
        }
    });

    docker_ok(&h1, &["rm", "-f", "ovl-a"]);
    docker_ok(&h2, &["rm", "-f", "ovl-b"]);
    docker_ok(&h2, &["network", "rm", "ovl"]);
    for h in [&h1, &h2] {
        assert!(
            !networks(h).iter().any(|n| n.starts_with("ovl ")),
            "ovl still listed on {h}"
        );
    }
    eprintln!("overlay_network_spans_engines: {:?}", t.elapsed());
}

/// The same through the manager: the overlay network is created with
/// the docker CLI against `swarm manage`, listed once under its own name
/// (global scope), and containers the manager places on different nodes
/// reach each other by name.
#[test]
fn overlay_network_spans_nodes_through_the_manager() {
    let t = Instant::now();
    let o = overlay_engines();
    let discovery = format!("nodes://{}", o.engines.tcp_addrs().join(","));
    let mut args = FAST_REFRESH.to_vec();
    args.push(&discovery);
    let manager = start_manager(&args);
    let m = manager.host.as_str();
    wait_for("both nodes healthy", Duration::from_secs(30), || {
        (info_value(&docker_ok(m, &["info"]), "└ Status") == ["Healthy", "Healthy"]).then_some(())
    });
    let (node1, node2) = (o.engines[0].name.as_str(), o.engines[1].name.as_str());

    docker_ok(m, &["network", "create", "-d", "overlay", "ovl"]);
    // Listed once, under its own name: not as node-1/ovl and node-2/ovl.
    let listed = wait_for("ovl listed by the manager", Duration::from_secs(10), || {
        let all = networks(m);
        all.iter().any(|n| n.starts_with("ovl ")).then_some(all)
    });
    let ovl: Vec<&String> = listed.iter().filter(|n| n.contains("ovl")).collect();
    assert_eq!(ovl, ["ovl overlay global"], "manager lists {listed:?}");
    assert_eq!(
        docker_ok(
            m,
            &[
                "network",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}} {{.Scope}}",
                "ovl"
            ]
        ),
        "ovl overlay global"
    );
    for e in o.engines.iter() {
        assert!(
            networks(&e.tcp_host()).contains(&"ovl overlay global".to_string()),
            "{} does not hold ovl",
            e.name
        );
    }

    let on_node1 = format!("constraint:node=={node1}");
    let on_node2 = format!("constraint:node=={node2}");
    docker_ok(
        m,
        &[
            "run",
            "-d",
            "--name",
            "ovl-a",
            "--network",
            "ovl",
            "-e",
            &on_node1,
            IMAGE,
            "sleep",
            "600",
        ],
    );
    docker_ok(
        m,
        &[
            "run",
            "-d",
            "--name",
            "ovl-b",
            "--network",
            "ovl",
            "-e",
            &on_node2,
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/bin",
        ],
    );
    assert_eq!(
        docker_ok(m, &["inspect", "-f", "{{.Node.Name}}", "ovl-a"]),
        node1
    );
    assert_eq!(
        docker_ok(m, &["inspect", "-f", "{{.Node.Name}}", "ovl-b"]),
        node2
    );
    assert_reaches(m, "ovl-a", "ovl-b");

    docker_ok(m, &["rm", "-f", "ovl-a", "ovl-b"]);
    docker_ok(m, &["network", "rm", "ovl"]);
    for h in [
        m.to_string(),
        o.engines[0].tcp_host(),
        o.engines[1].tcp_host(),
    ] {
        assert!(
            !networks(&h).iter().any(|n| n.contains("ovl")),
            "ovl still listed on {h}: {:?}",
            networks(&h)
        );
    }
    drop(manager);
    eprintln!(
        "overlay_network_spans_nodes_through_the_manager: {:?}",
        t.elapsed()
    );
}
