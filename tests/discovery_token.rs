//! Swarm classic's three-command setup with token discovery served by the
//! managers: `swarm create` gives a token, `swarm join --advertise=IP:PORT
//! token://TOKEN` next to each engine registers it every heartbeat, and
//! `swarm manage token://TOKEN` serves the engines registered under it;
//! `swarm list` shows them. A join that stops takes its node out after its
//! TTL; joined again, it comes back. Real engines, the real binaries.

use std::time::Duration;

use swarm_harness::join::{
    output_text as text, swarm, swarm_join, swarm_list as listed, wait_nodes,
};
use swarm_harness::{start_engines, start_manager, wait_for, FAST_REFRESH};

/// `swarm join` of `advertise` under `token` with the manager's token
/// service (heartbeat 1 s, TTL 3 s).
fn join(advertise: &str, manager: &str, token: &str, log: &std::path::Path) -> std::process::Child {
    swarm_join(
        advertise,
        &format!("token://{token}"),
        &["--manager", manager],
        log,
    )
}

#[test]
fn create_join_manage_and_list_with_a_token() {
    let engines = start_engines(&[&[], &[]]);
    let dir = tempfile::tempdir().expect("tempdir");

    // Made here, without a manager: 32 hex digits, as classic's.
    let out = swarm(&["create"]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token:?}"
    );

    let mut args = FAST_REFRESH.to_vec();
    let url = format!("token://{token}");
    args.push(&url);
    let manager = start_manager(&args);
    let host = manager.host.clone();
    let nodes = |want: usize| wait_nodes(&host, want);

    let addrs: Vec<String> = engines.iter().map(|e| e.tcp.clone()).collect();
    let mut first = join(&addrs[0], &manager.addr, &token, &dir.path().join("j1.log"));
    let mut second = join(&addrs[1], &manager.addr, &token, &dir.path().join("j2.log"));
    nodes(2);
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(listed(&format!("token://{}/{token}", manager.addr)), want);

    // The second join stops: its node leaves after the TTL, and comes
    // back when it joins again.
    second.kill().expect("kill join");
    second.wait().expect("reap join");
    nodes(1);
    assert_eq!(
        listed(&format!("token://{}/{token}", manager.addr)),
        [addrs[0].clone()]
    );
    let mut second = join(&addrs[1], &manager.addr, &token, &dir.path().join("j3.log"));
    nodes(2);

    // A token from the managers: known to them at once, empty.
    let out = swarm(&["create", "--manager", &manager.addr]);
    assert!(out.status.success(), "{}", text(&out));
    let other = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_ne!(other, token);
    assert!(listed(&format!("token://{}/{other}", manager.addr)).is_empty());

    // Errors a user meets, said clearly.
    let out = swarm(&["list", &format!("token://{}/nosuchtoken", manager.addr)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown discovery token nosuchtoken"),
        "{}",
        text(&out)
    );
    let out = swarm(&["list", "token://abc"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("token://MANAGER:PORT/TOKEN"),
        "{}",
        text(&out)
    );
    let out = swarm(&["list", "token://a b"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("invalid token discovery"),
        "{}",
        text(&out)
    );
    let out = swarm(&["join", "--advertise", &addrs[0], "nodes://10.0.0.1:2375"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing to join"), "{}", text(&out));
    let out = swarm(&[
        "join",
        "--advertise",
        &addrs[0],
        "--heartbeat",
        "10s",
        "--ttl",
        "5s",
        &url,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--ttl must be strictly superior"),
        "{}",
        text(&out)
    );
    let out = swarm(&[
        "join",
        "--advertise",
        &addrs[0],
        "--heartbeat",
        "500ms",
        &url,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("at least 1s"), "{}", text(&out));

    // An engine that does not answer is not registered, and says why.
    let dead = format!("127.0.0.1:{}", swarm_harness::free_port());
    let log = dir.path().join("dead.log");
    let mut stray = join(&dead, &manager.addr, &token, &log);
    wait_for("the join's complaint", Duration::from_secs(15), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("the engine does not answer"))
            .map(|_| ())
    });
    assert_eq!(listed(&format!("token://{}/{token}", manager.addr)), want);
    for child in [&mut first, &mut second, &mut stray] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
