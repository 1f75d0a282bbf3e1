//! What a snapshot costs in memory over the state it encodes.
//!
//! A node's state is grown to `--mb` megabytes of strings (commands name
//! the growth; the log stays small), then:
//!
//! - **build**: a snapshot is asked for and waited for; the peak RSS over
//!   the RSS before is what building and storing it added, and the RSS
//!   after it what stays (sled keeps what it stores in memory);
//! - **send and install**: a second node joins as a learner in the same
//!   process; the log below the snapshot is purged, so it gets the
//!   snapshot. What the learner holds once it is installed (its state and
//!   its stored snapshot) shows in the RSS after; the peak over that is
//!   what sending and installing held on top.
//!
//! The peak is `VmHWM`, reset before each step (`/proc/self/clear_refs`).
//! The state's snapshot shares its strings (an `Arc`), as the manager's
//! copy-on-write state does, so taking it costs nothing. The allocator is
//! the manager's (jemalloc).
//!
//! ```sh
//! cargo bench -p swarm-raft --bench snapshot_mem -- --mb 650
//! ```
//!
//! Built as a test (`cargo test --all-targets`, no `--bench` argument) it
//! makes a smoke run of 8 MB, checking only that the learner ends with the
//! leader's state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use swarm_raft::{Config, Member, ReplicatedNode, StateMachine};

/// Strings of 1 KiB, shared with the snapshots taken of them.
#[derive(Debug, Clone, Default)]
struct Blob {
    entries: Arc<Vec<String>>,
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Blob {
            entries: Arc::new(Vec::deserialize(d)?),
        })
    }
}

/// Adds `count` strings of `len` bytes.
#[derive(Debug, Serialize, Deserialize)]
struct Grow {
    count: u32,
    len: u32,
}

impl StateMachine for Blob {
    const FORMAT: u32 = 1;
    type Command = Grow;
    type Output = usize;
    type Snapshot = Blob;

    fn apply(&mut self, grow: Grow) -> usize {
        let entries = Arc::make_mut(&mut self.entries);
        for i in 0..grow.count {
            let fill = char::from(b'a' + (entries.len() as u32 + i) as u8 % 26);
            entries.push(std::iter::repeat_n(fill, grow.len as usize).collect());
        }
        entries.len()
    }

    fn snapshot(&self) -> Blob {
        self.clone()
    }
}

type Node = ReplicatedNode<Blob>;

/// The manager's allocator: what it gives back to the system shows in RSS.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A field of `/proc/self/status`, in bytes.
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .map_or(0, |kb: u64| kb * 1024)
}

fn rss() -> u64 {
    status("VmRSS:")
}

fn peak() -> u64 {
    status("VmHWM:")
}

/// Resets `VmHWM` to the current RSS.
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak RSS: {e}");
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

async fn wait(node: &Node, what: &str, check: impl Fn(&swarm_raft::Metrics) -> bool + Send) {
    node.raft()
        .wait(Some(Duration::from_secs(600)))
        .metrics(check, what)
        .await
        .unwrap_or_else(|e| panic!("node {}: {what}: {e}", node.id()));
}

fn member(node: &Node) -> Member {
    Member::new(node.raft_addr().to_string(), format!("api-{}", node.id()))
}

#[tokio::main]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut mb: u32 = if bench { 650 } else { 8 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--mb" {
            mb = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--mb takes a number of megabytes");
        }
    }
    let config = Config {
        // Only the snapshot asked for below.
        snapshot_logs_since_last: u64::MAX / 4,
        max_in_snapshot_log_to_keep: 0,
        install_snapshot_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let addr = "127.0.0.1:0".parse().expect("address");
    let one = Node::start(1, addr, dirs[0].path(), config.clone())
        .await
        .expect("start node 1");
    one.initialize(BTreeMap::from([(1, member(&one))]))
        .await
        .expect("initialize");
    wait(&one, "leader", |m| m.current_leader == Some(1)).await;

    let started = Instant::now();
    for _ in 0..mb {
        one.propose(Grow {
            count: 1024,
            len: 1024,
        })
        .await
        .expect("grow");
    }
    let state = rss();
    println!(
        "state: {mb} MB of strings applied in {:.1} s; RSS {}",
        started.elapsed().as_secs_f64(),
        mib(state)
    );

    reset_peak();
    let before = rss();
    let started = Instant::now();
    one.trigger_snapshot().await.expect("snapshot");
    let applied = one.metrics().borrow().last_applied;
    wait(&one, "snapshot built", |m| m.snapshot == applied).await;
    let built = started.elapsed();
    let build_peak = peak();
    let kept = rss();
    println!(
        "build: {:.1} s; RSS before {}, peak {} ({} over the state), after {} ({} kept)",
        built.as_secs_f64(),
        mib(before),
        mib(build_peak),
        mib(build_peak.saturating_sub(before)),
        mib(kept),
        mib(kept.saturating_sub(before))
    );
    wait(&one, "log purged", |m| m.purged == applied).await;

    reset_peak();
    let before = rss();
    let started = Instant::now();
    let two = Node::start(2, addr, dirs[1].path(), config)
        .await
        .expect("start node 2");
    one.add_learner(2, member(&two)).await.expect("add learner");
    wait(&two, "snapshot installed", |m| m.snapshot == applied).await;
    let installed = started.elapsed();
    let install_peak = peak();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    println!(
        "send and install: {:.1} s; RSS before {}, after {} (the learner holds {}), peak {} ({} over after)",
        installed.as_secs_f64(),
        mib(before),
        mib(after),
        mib(after.saturating_sub(before)),
        mib(install_peak),
        mib(install_peak.saturating_sub(after))
    );
    let held = |node: &Node| node.read_local(|blob| blob.entries.len());
    assert_eq!(
        held(&two),
        held(&one),
        "the learner ends with the leader's state"
    );
    if !bench {
        println!("snapshot_mem: smoke run ok (`cargo bench -p swarm-raft --bench snapshot_mem` measures)");
    }
    let _ = two.shutdown().await;
    let _ = one.shutdown().await;
}
