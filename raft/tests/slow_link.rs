//! Three nodes whose every connection crosses a link that holds each byte
//! for a while, as between distant sites: proposals commit and linearizable
//! reads answer as long as the heartbeat (also openraft's deadline of one
//! append-entries round trip) is above the round-trip time.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use swarm_raft::{Config, Member};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Starts a TCP relay to `target` that delivers every chunk `delay` after
/// it arrived, in order, both ways; returns its address.
async fn delay_line(target: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            pipe(ri, wo, delay);
            pipe(ro, wi, delay);
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
}

/// Three nodes reaching each other only through delay lines of `one_way`;
/// 20 proposals through the leader must each commit within 5 s, and a
/// linearizable read must see them all.
async fn replicates_across(one_way: Duration, config: Config) {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(start(i as u64 + 1, any_port(), dir.path(), &config).await);
    }
    let mut members = BTreeMap::new();
    for node in &nodes {
        let relay = delay_line(node.raft_addr(), one_way).await;
        members.insert(
            node.id(),
            Member::new(relay.to_string(), format!("api-{}", node.id())),
        );
    }
    nodes[0].initialize(members).await.expect("initialize");
    let live: Vec<&Node> = nodes.iter().collect();
    let leader = live[wait_leader(&live, Duration::from_secs(20)).await];
    let started = Instant::now();
    for i in 0..20 {
        let committed =
            tokio::time::timeout(Duration::from_secs(5), leader.propose(format!("e{i}")))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "proposal {i} not committed within 5 s over a {one_way:?} one-way link \
                     (heartbeat {:?})",
                        config.heartbeat_interval
                    )
                });
        assert_eq!(committed.expect("propose"), i + 1);
    }
    let read = tokio::time::timeout(Duration::from_secs(5), leader.read(|j| j.entries.len()))
        .await
        .expect("a linearizable read within 5 s")
        .expect("read");
    assert_eq!(read, 20);
    println!(
        "20 proposals over a {one_way:?} one-way link in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_heartbeat_tolerates_a_60ms_round_trip() {
    replicates_across(Duration::from_millis(30), Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_heartbeat_tolerates_a_wide_area_round_trip() {
    let config = Config::with_heartbeat(Duration::from_millis(400));
    assert!(config.election_timeout_min > config.heartbeat_interval);
    assert!(config.election_timeout_max > config.election_timeout_min);
    replicates_across(Duration::from_millis(120), config).await;
}
