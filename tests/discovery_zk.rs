//! `zk://` discovery against a real ZooKeeper (Debian's 3.8, started by the
//! harness, one per test): registrations land under classic's keys and are
//! fetched; a join that stops takes its engine out about a TTL later while
//! a running one stays; `changed()` wakes on a registration; a ZooKeeper
//! that is down fails calls within seconds, naming the URL, and once back
//! it serves again.

use std::time::{Duration, Instant};

use swarm::discovery::zk::ZkDiscovery;
use swarm::discovery::DiscoveryError;
use swarm_harness::ZooKeeper;

/// The TTL of these tests' registrations.
const TTL: Duration = Duration::from_secs(3);

fn start_zookeeper() -> ZooKeeper {
    let zk = ZooKeeper::start().expect("starting ZooKeeper");
    eprintln!("ZooKeeper {} up in {:?}", zk.addr, zk.started_in);
    zk
}

fn discovery(url: &str) -> ZkDiscovery {
    let rest = url.strip_prefix("zk://").expect("a zk:// URL");
    ZkDiscovery::parse(rest).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Fetches until `done` holds, for at most `within`; the last fetch.
async fn fetch_until(
    d: &ZkDiscovery,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>, String> {
    let started = Instant::now();
    loop {
        let last = d.fetch().await;
        if let Ok(addrs) = &last {
            if done(addrs) {
                return Ok(addrs.clone());
            }
        }
        if started.elapsed() > within {
            return Err(format!("after {within:?}, last fetch: {last:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_fetched_under_classics_keys() {
    let zk = start_zookeeper();
    let url = zk.url("swarm/prod");
    let (join_a, join_b, manager) = (discovery(&url), discovery(&url), discovery(&url));
    assert_eq!(
        manager.fetch().await.expect("empty fetch"),
        Vec::<String>::new()
    );

    join_a
        .register("10.0.0.1:2375", TTL)
        .await
        .expect("register a");
    join_b
        .register("10.0.0.2:2375", TTL)
        .await
        .expect("register b");
    // Every heartbeat registers again: nothing changes.
    join_a
        .register("10.0.0.1:2375", TTL)
        .await
        .expect("register a again");
    assert_eq!(
        manager.fetch().await.expect("fetch"),
        ["10.0.0.1:2375", "10.0.0.2:2375"]
    );

    // Classic's layout, read with a plain client: an ephemeral znode per
    // engine under PATH/docker/swarm/nodes, its data the address. Junk
    // there is ignored.
    let raw = zookeeper_client::Client::connect(&zk.addr)
        .await
        .expect("plain client");
    let node = "/swarm/prod/docker/swarm/nodes/10.0.0.1:2375";
    let (data, stat) = raw.get_data(node).await.expect(node);
    assert_eq!(data, b"10.0.0.1:2375");
    assert_ne!(stat.ephemeral_owner, 0, "{node} is not ephemeral");
    let junk =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    raw.create("/swarm/prod/docker/swarm/nodes/junk", b"", &junk)
        .await
        .expect("junk node");
    assert_eq!(
        manager.fetch().await.expect("fetch"),
        ["10.0.0.1:2375", "10.0.0.2:2375"]
    );

    // Another path is another cluster.
    let other = discovery(&zk.url("other"));
    assert_eq!(other.fetch().await.expect("other"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_join_disappears_after_its_ttl() {
    let zk = start_zookeeper();
    let url = zk.url("");
    let manager = discovery(&url);
    let stopping = discovery(&url);
    stopping
        .register("10.0.0.1:2375", TTL)
        .await
        .expect("register");
    // A join that keeps running: a heartbeat every second.
    let running = discovery(&url);
    running
        .register("10.0.0.2:2375", TTL)
        .await
        .expect("register");
    let heartbeat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = running.register("10.0.0.2:2375", TTL).await {
                eprintln!("heartbeat: {e}");
            }
        }
    });
    assert_eq!(
        manager.fetch().await.expect("fetch"),
        ["10.0.0.1:2375", "10.0.0.2:2375"]
    );

    drop(stopping);
    let stopped = Instant::now();
    // Not at once: the registration lasts its TTL...
    assert_eq!(
        manager.fetch().await.expect("fetch"),
        ["10.0.0.1:2375", "10.0.0.2:2375"]
    );
    // ...and ends about then (ZooKeeper expires sessions on its 500 ms tick).
    let left = fetch_until(&manager, TTL + Duration::from_secs(3), |a| {
        a == ["10.0.0.2:2375"]
    })
    .await
    .expect("the stopped join's engine should disappear");
    let gone_after = stopped.elapsed();
    eprintln!("stopped join's engine gone after {gone_after:?} (TTL {TTL:?})");
    assert!(
        gone_after >= TTL / 2,
        "gone after {gone_after:?}, before its TTL {TTL:?}"
    );
    assert_eq!(left, ["10.0.0.2:2375"]);

    // The running join's engine outlives several TTLs.
    tokio::time::sleep(TTL).await;
    assert_eq!(manager.fetch().await.expect("fetch"), ["10.0.0.2:2375"]);
    heartbeat.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_returns_after_a_registration() {
    let zk = start_zookeeper();
    let url = zk.url("watched");
    let manager = discovery(&url);
    let join = discovery(&url);
    assert!(manager.fetch().await.expect("fetch").is_empty());

    // Nothing registered yet (the directory does not even exist): it waits.
    let waiting = tokio::time::timeout(Duration::from_millis(500), manager.changed()).await;
    assert!(waiting.is_err(), "changed() returned early: {waiting:?}");

    let watch = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.changed().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!watch.is_finished(), "changed() returned before a change");
    let registered = Instant::now();
    join.register("10.0.0.1:2375", TTL).await.expect("register");
    tokio::time::timeout(Duration::from_secs(3), watch)
        .await
        .expect("changed() should return after a registration")
        .expect("the watch task")
        .expect("changed()");
    eprintln!(
        "changed() returned {:?} after the registration",
        registered.elapsed()
    );
    assert_eq!(manager.fetch().await.expect("fetch"), ["10.0.0.1:2375"]);

    // With the directory there, a second registration wakes it too.
    let watch = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.changed().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!watch.is_finished(), "changed() returned before a change");
    join.register("10.0.0.2:2375", TTL).await.expect("register");
    tokio::time::timeout(Duration::from_secs(3), watch)
        .await
        .expect("changed() should return after a registration")
        .expect("the watch task")
        .expect("changed()");

    // A change between a fetch and the next changed() is not missed.
    assert_eq!(manager.fetch().await.expect("fetch").len(), 2);
    join.register("10.0.0.3:2375", TTL).await.expect("register");
    tokio::time::timeout(Duration::from_secs(1), manager.changed())
        .await
        .expect("changed() should return at once: the set differs from the last fetch")
        .expect("changed()");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_down_fails_fast_and_back_serves_again() {
    let mut zk = start_zookeeper();
    let url = zk.url("swarm");
    let manager = discovery(&url);
    let join = discovery(&url);
    join.register("10.0.0.1:2375", TTL).await.expect("register");
    assert_eq!(manager.fetch().await.expect("fetch"), ["10.0.0.1:2375"]);

    zk.stop();
    // A session that was up: its calls fail as the connection drops, or
    // wait for a reconnection, boundedly.
    let started = Instant::now();
    let err = manager
        .fetch()
        .await
        .expect_err("fetch with ZooKeeper down");
    let took = started.elapsed();
    eprintln!("fetch with ZooKeeper down failed after {took:?}: {err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(matches!(err, DiscoveryError::Store { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("down or unreachable"), "{text}");
    let err = join
        .register("10.0.0.1:2375", TTL)
        .await
        .expect_err("register with ZooKeeper down");
    assert!(err.to_string().contains(&url), "{err}");
    // No session yet: connecting fails at once.
    let started = Instant::now();
    let err = discovery(&url).fetch().await.expect_err("a new session");
    let took = started.elapsed();
    eprintln!("a new session with ZooKeeper down failed after {took:?}: {err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    let err = manager
        .changed()
        .await
        .expect_err("changed() with ZooKeeper down");
    assert!(err.to_string().contains(&url), "{err}");

    tokio::task::block_in_place(|| zk.start_again()).expect("starting ZooKeeper again");
    eprintln!("ZooKeeper up again in {:?}", zk.started_in);
    let back = Instant::now();
    fetch_until(&manager, Duration::from_secs(5), |a| a == ["10.0.0.1:2375"])
        .await
        .expect("fetch should work again with ZooKeeper back");
    eprintln!("served again {:?} after ZooKeeper was back", back.elapsed());
    // The join's next heartbeat registers again, in a new session.
    join.register("10.0.0.1:2375", TTL)
        .await
        .expect("register with ZooKeeper back");
    let fresh = discovery(&url);
    assert_eq!(fresh.fetch().await.expect("fetch"), ["10.0.0.1:2375"]);
    // The session from before the outage has expired by now; the
    // registration is the live session's.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    assert_eq!(fresh.fetch().await.expect("fetch"), ["10.0.0.1:2375"]);
}

/// Classic's setup with a ZooKeeper, as a user runs it: `swarm manage
/// zk://...`, `swarm join` next to each engine, `swarm list`; a stopped
/// join's node leaves after its TTL (its session's timeout) and returns
/// when joined again.
#[test]
fn manage_join_and_list_with_a_zookeeper() {
    use swarm_harness::join::{swarm_join, swarm_list, wait_nodes};
    let zk = start_zookeeper();
    let engines = swarm_harness::start_engines(&[&[], &[]]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = zk.url("classic");
    let mut args = swarm_harness::FAST_REFRESH.to_vec();
    args.push(&url);
    let manager = swarm_harness::start_manager(&args);
    let addrs: Vec<String> = engines.iter().map(|e| e.tcp.clone()).collect();
    let log = |name: &str| dir.path().join(name);
    let mut first = swarm_join(&addrs[0], &url, &[], &log("j1"));
    let mut second = swarm_join(&addrs[1], &url, &[], &log("j2"));
    wait_nodes(&manager.host, 2);
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(swarm_list(&url), want);

    second.kill().expect("kill join");
    second.wait().expect("reap join");
    wait_nodes(&manager.host, 1);
    assert_eq!(swarm_list(&url), [addrs[0].clone()]);
    let mut second = swarm_join(&addrs[1], &url, &[], &log("j3"));
    wait_nodes(&manager.host, 2);
    for join in [&mut first, &mut second] {
        let _ = join.kill();
        let _ = join.wait();
    }
}
