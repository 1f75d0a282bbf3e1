//! Three in-process nodes on loopback: replication, leader failover without
//! losing acknowledged entries, restart from disk, and catch-up by snapshot.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use swarm_raft::{Config, Error, ServerState};

const WITHIN: Duration = Duration::from_secs(10);

fn dirs(n: usize) -> Vec<tempfile::TempDir> {
    (0..n)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_fails_over_and_restarts() {
    let config = Config::default();
    let dirs = dirs(3);
    let mut nodes: Vec<Option<Node>> = cluster(&dirs, &config)
        .await
        .into_iter()
        .map(Some)
        .collect();

    let live: Vec<&Node> = nodes.iter().flatten().collect();
    let leader = live[wait_leader(&live, WITHIN).await];
    let leader_id = leader.id();

    // 100 proposals, each answered with the leader's apply output.
    for i in 0..100 {
        let len = leader.propose(format!("c{i}")).await.expect("propose");
        assert_eq!(len, i + 1);
    }
    for node in &live {
        wait_len(node, 100, WITHIN).await;
        let entries = node.read_local(|j| j.entries.clone());
        assert_eq!(entries.len(), 100, "node {}", node.id());
        assert_eq!(entries[99], "c99");
    }
    assert_eq!(leader.read(|j| j.entries.len()).await.expect("read"), 100);

    // A follower refuses, naming the leader; it can forward through it.
    let follower = live.iter().find(|n| n.id() != leader_id).unwrap();
    match follower.propose("refused".to_string()).await {
        Err(Error::ForwardToLeader {
            leader_id: Some(id),
            leader_node: Some(node),
        }) => {
            assert_eq!(id, leader_id);
            assert_eq!(node, member(leader));
        }
        other => panic!("expected ForwardToLeader, got {other:?}"),
    }
    assert!(matches!(
        follower.read(|j| j.entries.len()).await,
        Err(Error::ForwardToLeader { leader_id: Some(id), .. }) if id == leader_id
    ));
    let len = follower
        .propose_via_leader("forwarded".to_string())
        .await
        .expect("forward");
    assert_eq!(len, 101);

    // Kill the leader: a new one accepts writes within 2 s.
    let old_index = nodes
        .iter()
        .position(|n| n.as_ref().map(|n| n.id()) == Some(leader_id))
        .unwrap();
    let old = nodes[old_index].take().unwrap();
    let old_addr = old.raft_addr();
    let killed = Instant::now();
    old.shutdown().await.expect("shutdown");
    drop(old);
    eprintln!("leader shut down in {:?}", killed.elapsed());
    let live: Vec<&Node> = nodes.iter().flatten().collect();
    let new_leader = live[wait_leader(&live, Duration::from_secs(2)).await];
    assert_ne!(new_leader.id(), leader_id);
    let len = new_leader
        .propose("after failover".to_string())
        .await
        .expect("propose");
    let failover = killed.elapsed();
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?}"
    );
    assert_eq!(len, 102, "nothing acknowledged was lost");
    let entries = new_leader.read(|j| j.entries.clone()).await.expect("read");
    assert_eq!(entries.len(), 102);
    assert_eq!(entries[100], "forwarded");
    for i in 0..20 {
        new_leader.propose(format!("d{i}")).await.expect("propose");
    }

    // Restart the old leader from its data directory: it catches up.
    let restarted = start(leader_id, old_addr, dirs[old_index].path(), &config).await;
    wait_len(&restarted, 122, WITHIN).await;
    let expected = new_leader.read_local(|j| j.clone());
    assert_eq!(restarted.read_local(|j| j.clone()), expected);
    assert_eq!(expected.entries.len(), 122);
    eprintln!("failover to a new leader accepting writes: {failover:?}");

    restarted.shutdown().await.expect("shutdown");
    for node in nodes.iter().flatten() {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_by_snapshot() {
    let config = Config {
        snapshot_logs_since_last: 50,
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    };
    let dirs = dirs(3);
    let mut nodes: Vec<Option<Node>> = cluster(&dirs, &config)
        .await
        .into_iter()
        .map(Some)
        .collect();
    let live: Vec<&Node> = nodes.iter().flatten().collect();
    let leader_id = live[wait_leader(&live, WITHIN).await].id();
    let leader_index = nodes
        .iter()
        .position(|n| n.as_ref().unwrap().id() == leader_id)
        .unwrap();
    let lagging_index = (leader_index + 1) % 3;

    for i in 0..10 {
        nodes[leader_index]
            .as_ref()
            .unwrap()
            .propose(format!("a{i}"))
            .await
            .expect("propose");
    }
    let lagging = nodes[lagging_index].take().unwrap();
    let (lagging_id, lagging_addr) = (lagging.id(), lagging.raft_addr());
    let leader = nodes[leader_index].as_ref().unwrap();
    wait_len(&lagging, 10, WITHIN).await;
    let lagging_last = wait(&lagging, WITHIN, "log applied", |m| {
        m.last_applied.map(|l| l.index) == m.last_log_index
    })
    .await
    .last_log_index
    .unwrap();
    lagging.shutdown().await.expect("shutdown");
    drop(lagging);

    // Far more than the snapshot threshold while it is down.
    for i in 0..200 {
        leader.propose(format!("b{i}")).await.expect("propose");
    }
    let m = wait(leader, WITHIN, "snapshot and purge", |m| {
        m.snapshot.map(|s| s.index) >= Some(150) && m.purged.map(|p| p.index) > Some(lagging_last)
    })
    .await;
    assert!(
        m.purged.unwrap().index > lagging_last,
        "the entries it lacks are gone from the log"
    );

    let lagging = start(
        lagging_id,
        lagging_addr,
        dirs[lagging_index].path(),
        &config,
    )
    .await;
    wait_len(&lagging, 210, WITHIN).await;
    let m = lagging.metrics().borrow().clone();
    assert!(m.snapshot.is_some(), "caught up by installing a snapshot");
    let expected = leader.read_local(|j| j.clone());
    assert_eq!(expected.entries.len(), 210);
    assert_eq!(lagging.read_local(|j| j.clone()), expected);

    // Everything stops; the lagging node alone restarts from its snapshot and log tail.
    lagging.shutdown().await.expect("shutdown");
    drop(lagging);
    for node in nodes.iter_mut() {
        if let Some(node) = node.take() {
            node.shutdown().await.expect("shutdown");
        }
    }
    let alone = start(
        lagging_id,
        lagging_addr,
        dirs[lagging_index].path(),
        &config,
    )
    .await;
    wait_len(&alone, 210, WITHIN).await;
    assert_eq!(alone.read_local(|j| j.clone()), expected);
    assert_ne!(alone.metrics().borrow().state, ServerState::Leader);
    wait(&alone, WITHIN, "membership restored", |m| {
        m.membership_config.membership().voter_ids().count() == 3
    })
    .await;
    alone.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_from_one_node_and_removes_a_member() {
    let config = Config::default();
    let dirs = dirs(3);
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(start(i as u64 + 1, any_port(), dir.path(), &config).await);
    }
    let first = &nodes[0];
    first
        .initialize([(1, member(first))].into())
        .await
        .expect("initialize");
    wait(first, WITHIN, "lead alone", |m| {
        m.state == ServerState::Leader
    })
    .await;
    assert!(matches!(
        first.initialize([(1, member(first))].into()).await,
        Err(Error::AlreadyInitialized(_))
    ));
    for i in 0..5 {
        first.propose(format!("e{i}")).await.expect("propose");
    }

    // Learners catch up; then they become voters.
    for node in &nodes[1..] {
        first
            .add_learner(node.id(), member(node))
            .await
            .expect("add learner");
    }
    for node in &nodes[1..] {
        wait_len(node, 5, WITHIN).await;
        assert_eq!(node.read_local(|j| j.entries.len()), 5);
        assert_eq!(node.metrics().borrow().state, ServerState::Learner);
    }
    // The leader knows they have caught up.
    wait(first, WITHIN, "learners caught up", |_| {
        nodes[1..].iter().all(|n| first.lag(n.id()) == Some(0))
    })
    .await;
    first
        .change_membership(BTreeSet::from([1, 2, 3]))
        .await
        .expect("change membership");
    assert_eq!(
        first.propose("voted".to_string()).await.expect("propose"),
        6
    );
    for node in &nodes {
        wait(node, WITHIN, "all voters", |m| {
            m.membership_config.membership().voter_ids().count() == 3
        })
        .await;
        wait_len(node, 6, WITHIN).await;
        assert_eq!(node.read_local(|j| j.entries.len()), 6);
    }

    // Node 3 leaves; the two others go on.
    first.remove_member(3).await.expect("remove");
    let voters: BTreeSet<u64> = first
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, BTreeSet::from([1, 2]));
    assert!(first
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&3)
        .is_none());
    nodes[2].shutdown().await.expect("shutdown");
    assert_eq!(
        first
            .propose("without 3".to_string())
            .await
            .expect("propose"),
        7
    );
    assert_eq!(first.read(|j| j.entries.len()).await.expect("read"), 7);
    for node in &nodes[..2] {
        node.shutdown().await.expect("shutdown");
    }
}

/// Proposals made at the same time share log entries (group commit), and
/// each proposer still gets the output of its own command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_share_entries() {
    let config = Config::default();
    let dirs = dirs(3);
    let nodes = cluster(&dirs, &config).await;
    let live: Vec<&Node> = nodes.iter().collect();
    let leader = live[wait_leader(&live, WITHIN).await];
    let before = leader.metrics().borrow().last_log_index.unwrap_or(0);

    const N: usize = 300;
    let outputs = futures::future::join_all((0..N).map(|i| leader.propose(format!("g{i}")))).await;
    let after = leader.metrics().borrow().last_log_index.unwrap_or(0);

    // Each output is the journal's length right after that command: all
    // different, 1..=N, and the command sits at that position.
    let journal = leader.read(|j| j.entries.clone()).await.expect("read");
    let mut seen = BTreeSet::new();
    for (i, output) in outputs.into_iter().enumerate() {
        let len = output.expect("propose");
        assert_eq!(journal[len - 1], format!("g{i}"), "output of proposal {i}");
        assert!(seen.insert(len), "two proposals answered {len}");
    }
    assert_eq!(seen.len(), N);
    let entries = after - before;
    assert!(
        entries < N as u64,
        "{N} concurrent proposals took {entries} entries"
    );
    for node in &live {
        wait_len(node, N, WITHIN).await;
        assert_eq!(node.read_local(|j| j.entries.clone()), journal);
    }
    println!("{N} concurrent proposals in {entries} entries");
}
