//! Engine faults the manager must settle by itself, with a real engine
//! behind a proxy the test controls.

use std::time::Duration;

use swarm_harness::proxy::Proxy;
use swarm_harness::{
    docker, docker_cmd, docker_ok, info_value, start_engines, start_manager, wait_for,
    FAST_REFRESH, IMAGE,
};

/// A create whose answer never comes back (the connection breaks after
/// the engine made the container) is settled by the manager: it finds the
/// container by its swarm id, records it and answers 201 with its ID. The
/// name stays taken: no second container of that name, no orphan.
#[test]
fn a_create_whose_answer_broke_off_is_settled() {
    let engines = start_engines(&[&[]]);
    let engine = &engines[0];
    let proxy = Proxy::start(&engine.tcp, 0).expect("proxy");
    let discovery = format!("nodes://{}", proxy.addr);
    let mut args = FAST_REFRESH.to_vec();
    args.push(&discovery);
    let manager = start_manager(&args);
    let host = manager.host.clone();
    wait_for("the node healthy", Duration::from_secs(30), || {
        let info = docker_ok(&host, &["info"]);
        (info_value(&info, "└ Status") == ["Healthy"]).then_some(())
    });

    // From now on the engine's answers are held back (a byte a second).
    proxy.set_rate(1);
    let create = {
        let host = host.clone();
        std::thread::spawn(move || {
            docker_cmd(60, &host, &["create", "--name", "amb", IMAGE, "true"])
                .output()
                .expect("docker create")
        })
    };
    let made = wait_for("the engine made amb", Duration::from_secs(30), || {
        let id = docker_ok(
            &engine.host(),
            &["ps", "-aq", "--no-trunc", "--filter", "name=amb"],
        );
        (!id.is_empty()).then_some(id)
    });
    // The answer breaks off; the proxy still forwards new connections.
    proxy.set_rate(0);
    proxy.reset();
    let out = create.join().expect("create thread");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout, made,
        "the manager answers with the container it found"
    );
    // Recorded: listed through the manager, its name taken.
    let listed = docker_ok(&host, &["ps", "-a", "--format", "{{.Names}}"]);
    assert!(listed.lines().any(|l| l.ends_with("/amb")), "{listed}");
    let (ok, _, err) = docker(&host, &["create", "--name", "amb", IMAGE, "true"]);
    assert!(!ok && err.contains("already in use"), "{err}");
    assert_eq!(
        docker_ok(&engine.host(), &["ps", "-aq", "--filter", "name=amb"])
            .lines()
            .count(),
        1
    );
}
