//! Swarm classic's three-command setup with token discovery served by the
//! managers: `swarm create` gives a token, `swarm join --advertise=IP:PORT
//! token://TOKEN` next to each engine registers it every heartbeat, and
//! `swarm manage token://TOKEN` serves the engines registered under it;
//! `swarm list` shows them. A join that stops takes its node out after its
//! TTL; joined again, it comes back. Real engines, the real binaries.
//! With a manager serving TLS (`--tlsverify`), the three commands reach it
//! with the docker CLI's TLS flags and a client certificate, and say what
//! is missing without one.

use std::time::Duration;

use swarm::ca::CertKind;
use swarm_harness::join::{
    output_text as text, swarm, swarm_command, swarm_join, swarm_list as listed, wait_nodes,
    wait_nodes_with,
};
use swarm_harness::{
    start_engines, start_manager, start_manager_tls, tls_flags, wait_for, Pki, FAST_REFRESH,
};

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
    assert!(is_made_token(&token), "{token:?}");

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

/// Whether `token` is one a manager makes: 32 hex digits, as classic's.
fn is_made_token(token: &str) -> bool {
    token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit())
}

/// The setup against a manager started with `--tlsverify`: `swarm create`
/// with a client certificate gets a token, `swarm join` with the TLS flags
/// registers a real engine under it, `swarm list` with the certificate in
/// `DOCKER_CERT_PATH` and `DOCKER_TLS_VERIFY=1` lists it, and the manager
/// serves the node. Plain HTTP, or TLS without a certificate, fails at
/// once saying which flags to give.
#[test]
fn create_join_and_list_with_a_tls_manager() {
    let pki = Pki::new().expect("PKI");
    let manager_dir = pki
        .issue(CertKind::Manager, "manager", &["127.0.0.1"])
        .expect("manager certificate");
    let client_dir = pki
        .issue(CertKind::Client, "alice", &[])
        .expect("client certificate");
    let engines = start_engines(&[&[]]);
    let engine = engines.iter().next().expect("an engine").tcp.clone();
    let dir = tempfile::tempdir().expect("tempdir");

    // The engine is plain: only the manager's API speaks TLS. The cluster
    // follows another token until told to follow the one created below.
    let mut args = tls_flags(&manager_dir);
    args.push("--engine-tls=false".into());
    args.extend(FAST_REFRESH.iter().map(|a| a.to_string()));
    args.push("token://placeholder".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manager = start_manager_tls(&args, &client_dir);
    let flags = tls_flags(&client_dir);
    let with_tls = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(flags.iter().cloned())
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        swarm(&args)
    };

    let out = run(with_tls(&["create", "--manager", &manager.addr]));
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(is_made_token(&token), "{token:?}");
    let url = format!("token://{token}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarmctl"))
        .args(with_tls(&[
            "--manager",
            &manager.host,
            "discovery",
            "set",
            &url,
        ]))
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .output()
        .expect("running swarmctl");
    assert!(out.status.success(), "{}", text(&out));

    let hubbed = format!("token://{}/{token}", manager.addr);
    let mut join = swarm_join(
        &engine,
        &hubbed,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        &dir.path().join("join.log"),
    );
    // The docker CLI's environment instead of flags.
    let list = || {
        swarm_command(&["list", "--manager", &manager.addr, &url])
            .env("DOCKER_CERT_PATH", &client_dir)
            .env("DOCKER_TLS_VERIFY", "1")
            .output()
            .expect("running swarm list")
    };
    wait_for(
        "swarm list to show the engine",
        Duration::from_secs(15),
        || {
            let out = list();
            assert!(out.status.success(), "{}", text(&out));
            (String::from_utf8_lossy(&out.stdout).trim() == engine).then_some(())
        },
    );
    wait_nodes_with(&manager.host, &flags, 1);

    // Plain HTTP to the TLS manager: refused at once, the flags named.
    let plain_hint = |out: &std::process::Output| {
        let said = text(out);
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains("the manager serves TLS and this request was plain HTTP")
                && said.contains("--tlsverify"),
            "{said}"
        );
    };
    plain_hint(&swarm(&["create", "--manager", &manager.addr]));
    plain_hint(&swarm(&["list", &hubbed]));
    let log = dir.path().join("plain-join.log");
    let mut plain_join = swarm_join(&engine, &hubbed, &[], &log);
    wait_for(
        "the plain join's complaint",
        Duration::from_secs(15),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("registration failed") && l.contains("serves TLS"))
                .map(|_| ())
        },
    );
    let _ = plain_join.kill();
    let _ = plain_join.wait();
    // TLS trusting the CA but showing no certificate: the manager refuses.
    let ca = client_dir.join("ca.pem").display().to_string();
    let out = swarm(&[
        "create",
        "--manager",
        &manager.addr,
        "--tls",
        "--tlscacert",
        &ca,
    ]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("this client shows no certificate"), "{said}");
    // --tlsverify without the files: they are named.
    let missing = dir.path().join("nowhere");
    let out = swarm_command(&["create", "--manager", &manager.addr, "--tlsverify"])
        .env("DOCKER_CERT_PATH", &missing)
        .output()
        .expect("running swarm create");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&missing.join("ca.pem").display().to_string()),
        "{said}"
    );

    let _ = join.kill();
    let _ = join.wait();
}
