//! Three managers, each on a host of its own (a network namespace of a
//! `ChaosNet`), and what a follower does with a client's request when it
//! stops hearing the leader (a fault the chaos runner found: every client
//! that asked that follower waited until the link healed).

use std::time::{Duration, Instant};

use serde_json::Value;
use swarm_harness::chaos::net::ChaosNet;
use swarm_harness::{http_request, wait_ok, Manager, ManagerConfig};

/// The role and term `GET /_swarm/state` reports on `addr`.
fn role(addr: &str) -> Result<(String, u64), String> {
    let (status, body) = http_request(addr, "GET", "/_swarm/state", None, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status} {body}: {e}"))?;
    let role = v["role"].as_str().ok_or(format!("no role in {body}"))?;
    let term = v["term"].as_u64().ok_or(format!("no term in {body}"))?;
    Ok((role.to_string(), term))
}

#[test]
fn a_follower_that_stops_hearing_the_leader_answers_at_once() {
    swarm_harness::watchdog();
    let net = ChaosNet::new(3).expect("a chaos network (root, iproute2, iptables)");
    // No engine answers there: the managers serve an empty cluster.
    let discovery = format!("nodes://{}:1", net.bridge_ip());
    let api = |i: usize| format!("{}:2375", net.ip(i));
    let mut managers: Vec<Manager> = Vec::new();
    for i in 0..3 {
        let mut m = Manager::spawn(ManagerConfig {
            name: format!("m{}", i + 1),
            addr: Some(api(i)),
            raft_addr: Some(format!("{}:2380", net.ip(i))),
            join: (i > 0).then(|| api(0)),
            args: vec![discovery.clone()],
            netns: Some(net.netns(i)),
            ..ManagerConfig::default()
        })
        .expect("start a manager");
        m.wait_ping(Duration::from_secs(30)).expect("manager up");
        managers.push(m);
    }
    // One leader, two followers, all in its term; every follower forwards.
    let (leader, follower) = wait_ok(
        "one leader and two followers",
        Duration::from_secs(30),
        || {
            let roles: Vec<(String, u64)> =
                (0..3).map(|i| role(&api(i))).collect::<Result<_, _>>()?;
            let leaders: Vec<usize> = (0..3).filter(|&i| roles[i].0 == "leader").collect();
            let [leader] = leaders[..] else {
                return Err(format!("{roles:?}"));
            };
            if roles.iter().any(|r| r.1 != roles[leader].1) {
                return Err(format!("terms differ: {roles:?}"));
            }
            let follower = (leader + 1) % 3;
            let (status, body) = http_request(
                &api(follower),
                "GET",
                "/containers/json",
                None,
                Duration::from_secs(5),
            )
            .map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!(
                    "through follower m{}: {status} {body}",
                    follower + 1
                ));
            }
            Ok((leader, follower))
        },
    );

    // The leader's packets to the follower are lost; the follower's still
    // reach the leader. A forwarded request arrives, its answer does not.
    net.drop_one_way(leader, follower)
        .expect("drop leader -> follower");
    let asked = Instant::now();
    let answer = http_request(
        &api(follower),
        "GET",
        "/containers/json",
        None,
        Duration::from_secs(20),
    );
    let waited = asked.elapsed();
    net.heal().expect("heal");
    let (status, body) = answer.expect("an answer from the follower");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("did not answer"), "{body}");
    // It answered when it stopped taking the silent manager for the leader
    // (about half a second), not when its link came back.
    assert!(
        waited < Duration::from_secs(5),
        "the follower held the request {waited:?}: {body}"
    );
    swarm_harness::trace(format!("follower answered 503 after {waited:?}: {body}"));

    // Healed, it forwards again.
    wait_ok(
        "the follower forwards again",
        Duration::from_secs(30),
        || match http_request(
            &api(follower),
            "GET",
            "/containers/json",
            None,
            Duration::from_secs(5),
        ) {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{status} {body}")),
            Err(e) => Err(e.to_string()),
        },
    );
    drop(managers);
}
