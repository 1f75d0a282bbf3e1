//! Memory of the replicated state, and the cost of its Raft snapshot, at
//! scale (issue 23's compact state).
//!
//! ```sh
//! cargo bench -p swarm-harness --bench state_mem -- --nodes 5000 --containers 100000
//! cargo bench -p swarm-harness --bench state_mem -- --nodes 5000 --containers 1000000
//! ```
//!
//! Builds a `ClusterState` through the commands a manager commits: each
//! node joins (`NodeJoined`: its info, labels and images), then every
//! container is made as `docker run -d` makes it (`Reserve`,
//! `ContainerCreated` with the record the manager builds from the request,
//! `ContainerStateChanged` to running), round robin over the nodes. The
//! records look like real ones: 64-hex IDs and swarm ids, compose-style
//! names, labels and images, a command, a creation time, resources.
//!
//! Prints live bytes (counted by a global allocator around jemalloc, the
//! manager's allocator: requested sizes and jemalloc's usable sizes) and
//! RSS (`/proc/self/status`) per node and per container, what a copy of
//! each part of the state holds (the container table's indexes, the
//! records alone, nodes), and the snapshot as Raft makes it: the bincode
//! of the whole state (`swarm_raft`'s store encodes it with bincode 1's
//! defaults), its size, the time to encode it (build) and to decode it
//! (install: the indexes are rebuilt), and to drop a state.
//!
//! Then the snapshot while commands go on: a thread applies `docker run
//! -d`'s commands in a loop, each under the state's write lock as the Raft
//! store applies them, and records how long each waited and took, while
//! the main thread builds a snapshot as `build_blocking` did before (the
//! encode under the read lock) and as it does now (`ClusterState::snapshot`
//! under the lock, the encode after), and installs one (the swap under the
//! write lock; decoding happens before it). The applier's longest time is
//! what a placement's `Reserve` waits at worst.
//!
//! Figures are printed, never asserted. Built as a test (no `--bench`
//! argument) it runs on 20 nodes and 2,000 containers and checks the
//! decoded state equals the built one, and that the snapshot taken while
//! applying decodes to a consistent state.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use swarm::cluster::{
    Checks, ClusterState, Command, Container, ContainerState, ImageRef, Labels, Node, NodeInfo,
    Reservation, Resources, SWARM_ID_LABEL,
};
use swarm_harness::rng::Rng;
use tikv_jemallocator::Jemalloc;

/// Bytes asked for by live allocations.
static REQUESTED: AtomicIsize = AtomicIsize::new(0);
/// Bytes jemalloc holds for live allocations (its size classes).
static USABLE: AtomicIsize = AtomicIsize::new(0);

/// jemalloc, counting what is live.
struct Counting;

/// Counts a block of `requested` bytes at `p` as live (`sign` 1) or
/// freed (`sign` -1); a null `p` (a failed allocation) counts nothing.
///
/// # Safety
/// `p` is null or a block jemalloc allocated and has not freed yet.
unsafe fn count(p: *mut u8, requested: usize, sign: isize) {
    if !p.is_null() {
        REQUESTED.fetch_add(sign * requested as isize, Ordering::Relaxed);
        USABLE.fetch_add(
            sign * tikv_jemallocator::usable_size(p) as isize,
            Ordering::Relaxed,
        );
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = Jemalloc.alloc(layout);
        count(p, layout.size(), 1);
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = Jemalloc.alloc_zeroed(layout);
        count(p, layout.size(), 1);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(ptr, layout.size(), -1);
        Jemalloc.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = tikv_jemallocator::usable_size(ptr) as isize;
        let p = Jemalloc.realloc(ptr, layout, new_size);
        if !p.is_null() {
            REQUESTED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            USABLE.fetch_add(
                tikv_jemallocator::usable_size(p) as isize - old,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes now: (requested, usable).
fn live() -> (isize, isize) {
    (
        REQUESTED.load(Ordering::Relaxed),
        USABLE.load(Ordering::Relaxed),
    )
}

/// Resident set size in bytes (`VmRSS`).
fn rss() -> isize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

const GIB: i64 = 1 << 30;
const MIB: i64 = 1 << 20;
const REGIONS: [&str; 4] = ["eu", "us-east", "us-west", "ap-south"];
const SERVICES: [&str; 6] = ["web", "api", "db", "cache", "worker", "batch"];
const IMAGES: [&str; 8] = [
    "nginx:1.27",
    "redis:7",
    "postgres:16",
    "alpine:latest",
    "registry.example.com/team/api:2.3.1",
    "registry.example.com/team/worker:2.3.1",
    "python:3.12-slim",
    "memcached:1.6",
];
const COMMANDS: [&str; 4] = [
    "nginx -g daemon off;",
    "redis-server --appendonly yes",
    "python -m app.worker --queue default",
    "sleep 1d",
];

/// Node `i` as a watcher observes it.
fn node_info(rng: &mut Rng, i: usize) -> NodeInfo {
    let region = *rng.pick(&REGIONS);
    NodeInfo {
        id: rng.engine_id(),
        hostname: format!("node-{i:05}.dc1.example.com"),
        addr: format!(
            "tcp://10.{}.{}.{}:2376",
            i / 65536,
            (i / 256) % 256,
            i % 256
        ),
        cpus: *rng.pick(&[32, 64, 96, 128]),
        memory: *rng.pick(&[64, 128, 256, 512]) * GIB,
        labels: BTreeMap::from([
            ("region".to_string(), region.to_string()),
            ("zone".to_string(), format!("{region}-{}", rng.below(3))),
            ("disk".to_string(), "ssd".to_string()),
            ("rack".to_string(), format!("r{}", rng.below(64))),
        ]),
        operating_system: "Debian GNU/Linux 13 (trixie)".into(),
        os_type: "linux".into(),
        architecture: "x86_64".into(),
        kernel_version: "6.12.0-1-amd64".into(),
        storage_driver: "overlay2".into(),
        server_version: "28.5.1".into(),
        api_version: "1.51".into(),
        observed_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// Container `i` as the manager records it after a create with a name
/// (`src/manager/containers.rs`): what the request said, plus the ID.
fn container(rng: &mut Rng, i: usize, node: &str, swarm_id: &str) -> Container {
    let service = *rng.pick(&SERVICES);
    let project = format!("shop{}", rng.below(50));
    Container {
        id: rng.hex(4),
        node: node.to_string(),
        name: format!("{project}-{service}-{i}"),
        image: rng.pick(&IMAGES).to_string(),
        state: ContainerState::Created,
        labels: Labels::from([
            (SWARM_ID_LABEL.to_string(), swarm_id.to_string()),
            ("com.docker.compose.project".to_string(), project),
            (
                "com.docker.compose.service".to_string(),
                service.to_string(),
            ),
            ("com.example.team".to_string(), format!("team-{}", i % 7)),
        ]),
        resources: Some(resources(rng)),
        command: rng.pick(&COMMANDS).to_string(),
        created: 1_767_225_600 + i as i64,
    }
}

fn resources(rng: &mut Rng) -> Resources {
    Resources {
        cpus_milli: *rng.pick(&[0, 0, 50, 100]),
        memory: *rng.pick(&[0, 64 * MIB, 128 * MIB, 256 * MIB]),
        ports: Vec::new(),
    }
}

fn apply(state: &mut ClusterState, command: Command) {
    if let Err(e) = state.apply(command) {
        panic!("apply: {e}");
    }
}

/// The commands `docker run -d` commits for container `i` on `node`:
/// `Reserve`, `ContainerCreated` with the record the manager builds, and
/// `ContainerStateChanged` to running.
fn docker_run(rng: &mut Rng, i: usize, node: &str) -> [Command; 3] {
    let swarm_id = rng.hex(4);
    let reservation = Reservation {
        id: format!("reservation-4242-{i}"),
        node: node.to_string(),
        name: None,
        resources: resources(rng),
        swarm_id: Some(swarm_id.clone()),
    };
    let mut record = container(rng, i, node, &swarm_id);
    let reservation = Reservation {
        name: Some(record.name.clone()),
        resources: record.resources.clone().unwrap_or_default(),
        ..reservation
    };
    let id = record.id.clone();
    record.resources = Some(reservation.resources.clone());
    [
        Command::Reserve {
            reservation: reservation.clone(),
            overcommit: 0,
            checks: Checks::default(),
        },
        Command::ContainerCreated {
            reservation: reservation.id,
            container: record,
        },
        Command::ContainerStateChanged {
            id,
            node: node.to_string(),
            state: ContainerState::Running,
        },
    ]
}

/// What an applier saw: how many commands, their total and longest time
/// (waiting for the write lock, then applying), the longest wait for the
/// lock alone, how many took over 1 ms and over 10 ms, and the most CPU
/// time one took (its thread's: apart from waits for the lock or a core).
#[derive(Debug, Default)]
struct Applied {
    commands: usize,
    total: Duration,
    longest: Duration,
    longest_wait: Duration,
    over_1ms: usize,
    over_10ms: usize,
    longest_cpu: Duration,
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Applies `docker run -d`'s commands from container `first` on, round
/// robin over `ids`, each under the state's write lock as the Raft store
/// applies an entry, until `stop`.
fn applier(
    shared: Arc<RwLock<ClusterState>>,
    ids: Arc<Vec<String>>,
    first: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Applied> {
    std::thread::spawn(move || {
        let mut rng = Rng::new(first as u64);
        let mut seen = Applied::default();
        let mut i = first;
        while !stop.load(Ordering::Relaxed) {
            for command in docker_run(&mut rng, i, &ids[i % ids.len()]) {
                let cpu = thread_cpu();
                let started = Instant::now();
                let mut state = shared.write().expect("lock");
                let waited = started.elapsed();
                apply(&mut state, command);
                drop(state);
                let took = started.elapsed();
                seen.longest_cpu = seen.longest_cpu.max(thread_cpu().saturating_sub(cpu));
                seen.commands += 1;
                seen.total += took;
                seen.longest = seen.longest.max(took);
                seen.longest_wait = seen.longest_wait.max(waited);
                seen.over_1ms += usize::from(took > Duration::from_millis(1));
                seen.over_10ms += usize::from(took > Duration::from_millis(10));
            }
            i += 1;
        }
        seen
    })
}

/// Runs `work` while an applier commits `docker run -d`s (from container
/// `first` on); answers what `work` returned and what the applier saw.
fn while_applying<T>(
    shared: &Arc<RwLock<ClusterState>>,
    ids: &Arc<Vec<String>>,
    first: usize,
    work: impl FnOnce() -> T,
) -> (T, Applied) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = applier(shared.clone(), ids.clone(), first, stop.clone());
    // Let it start before the work does.
    std::thread::sleep(Duration::from_millis(50));
    let out = work();
    stop.store(true, Ordering::Relaxed);
    (out, handle.join().expect("applier"))
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn applied_row(what: &str, seen: &Applied) {
    println!(
        "| {what} | {} | {} | {} | {} | {} | {} / {} |",
        seen.commands,
        us(seen.total / seen.commands.max(1) as u32),
        ms_frac(seen.longest),
        ms_frac(seen.longest_wait),
        ms_frac(seen.longest_cpu),
        seen.over_1ms,
        seen.over_10ms
    );
}

fn ms_frac(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Bytes, as `12.3 MB` (decimal).
fn mb(bytes: isize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn per(bytes: isize, n: usize) -> f64 {
    bytes as f64 / n.max(1) as f64
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Live bytes (usable) a value built by `make` holds.
fn held<T>(make: impl FnOnce() -> T) -> (T, isize) {
    let before = live().1;
    let value = make();
    (value, live().1 - before)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let option = |name: &str| -> Option<usize> {
        let at = args
            .iter()
            .position(|a| a == name || a.starts_with(&format!("{name}=")))?;
        let value = match args[at].split_once('=') {
            Some((_, v)) => v.to_string(),
            None => args.get(at + 1)?.clone(),
        };
        Some(value.replace('_', "").parse().expect("a number"))
    };
    let (nodes, containers) = if bench {
        (
            option("--nodes").unwrap_or(5_000),
            option("--containers").unwrap_or(100_000),
        )
    } else {
        (20, 2_000)
    };
    let mut rng = Rng::new(42);
    let start = live();
    let rss_start = rss();

    // Nodes join, with their images.
    let mut state = ClusterState::default();
    let mut ids = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let info = node_info(&mut rng, i);
        ids.push(info.id.clone());
        let images = (0..10)
            .map(|j| ImageRef {
                id: format!("sha256:{}", rng.hex(4)),
                tags: vec![IMAGES.get(j).unwrap_or(&"ubuntu:24.04").to_string()],
            })
            .collect();
        apply(
            &mut state,
            Command::NodeJoined {
                info,
                containers: Vec::new(),
                version: 0,
                images,
            },
        );
    }
    // The bench's own list of node IDs is no part of the state.
    let (copy, ids_bytes) = held(|| ids.clone());
    drop(copy);
    let after_nodes = live();
    let rss_nodes = rss();

    // `docker run -d`, round robin over the nodes.
    let built = Instant::now();
    for i in 0..containers {
        for command in docker_run(&mut rng, i, &ids[i % nodes]) {
            apply(&mut state, command);
        }
    }
    let built = built.elapsed();
    let after = live();
    let rss_after = rss();
    assert_eq!(state.containers.len(), containers);
    assert!(state.reservations.is_empty());

    let node_bytes = after_nodes.1 - start.1 - ids_bytes;
    let container_bytes = after.1 - after_nodes.1;
    println!(
        "state_mem: {nodes} nodes, {containers} containers (3 commands each, applied in {:.1?})",
        built
    );
    println!("| what | total | per node | per container |");
    println!("|:--|--:|--:|--:|");
    println!(
        "| live, usable (nodes / containers added) | {} / {} | {:.0} | {:.0} |",
        mb(node_bytes),
        mb(container_bytes),
        per(node_bytes, nodes),
        per(container_bytes, containers)
    );
    println!(
        "| live, requested | {} / {} | {:.0} | {:.0} |",
        mb(after_nodes.0 - start.0 - ids_bytes),
        mb(after.0 - after_nodes.0),
        per(after_nodes.0 - start.0 - ids_bytes, nodes),
        per(after.0 - after_nodes.0, containers)
    );
    println!(
        "| RSS | {} / {} | {:.0} | {:.0} |",
        mb(rss_nodes - rss_start),
        mb(rss_after - rss_nodes),
        per(rss_nodes - rss_start, nodes),
        per(rss_after - rss_nodes, containers)
    );

    // What each part holds, as a copy of it: a clone of the table shares
    // its records (copy-on-write), so it holds the indexes; the records
    // and nodes are copied one by one.
    let (table, table_bytes) = held(|| state.containers.clone());
    drop(table);
    let (records, record_bytes) = held(|| state.containers.values().cloned().collect::<Vec<_>>());
    drop(records);
    let (node_map, nodes_clone_bytes) = held(|| {
        state
            .nodes
            .iter()
            .map(|(id, node)| (id.clone(), Node::clone(node)))
            .collect::<BTreeMap<_, _>>()
    });
    drop(node_map);
    println!(
        "| container table indexes (a clone: records shared) | {} | | {:.0} |",
        mb(table_bytes),
        per(table_bytes, containers)
    );
    println!(
        "| records alone (a Vec<Container>) | {} | | {:.0} |",
        mb(record_bytes),
        per(record_bytes, containers)
    );
    println!(
        "| nodes (a BTreeMap<NodeId, Node>, with their container ID sets) | {} | {:.0} | {:.0} |",
        mb(nodes_clone_bytes),
        per(nodes_clone_bytes, nodes),
        per(nodes_clone_bytes, containers)
    );

    // The Raft snapshot: build (encode), install (decode), drop.
    let started = Instant::now();
    let snapshot = bincode::serialize(&state).expect("encode");
    let encode = started.elapsed();
    let started = Instant::now();
    let (installed, installed_bytes) =
        held(|| bincode::deserialize::<ClusterState>(&snapshot).expect("decode"));
    let decode = started.elapsed();
    if !bench {
        assert!(installed == state, "the decoded state differs");
    }
    let started = Instant::now();
    drop(black_box(installed));
    let dropped = started.elapsed();
    println!(
        "| snapshot | {} | | {:.0} |",
        mb(snapshot.len() as isize),
        per(snapshot.len() as isize, containers)
    );
    println!(
        "| installed state (decoded) | {} | | {:.0} |",
        mb(installed_bytes),
        per(installed_bytes, containers)
    );
    println!(
        "snapshot: build (encode) {}, install (decode) {}, drop {}",
        ms(encode),
        ms(decode),
        ms(dropped)
    );

    // A snapshot while commands are applied, as the Raft store builds one
    // (`build_blocking`): before, the whole encode under the read lock;
    // now, `ClusterState::snapshot` under it and the encode after it.
    let shared = Arc::new(RwLock::new(state));
    let ids = Arc::new(ids);
    let mut first = containers;
    let mut next_first = |seen: &Applied| {
        first += seen.commands / 3 + 1;
        first
    };
    let ((), quiet) = while_applying(&shared, &ids, next_first(&Applied::default()), || {
        std::thread::sleep(Duration::from_millis(500))
    });
    let (old_way, under_lock) = while_applying(&shared, &ids, next_first(&quiet), || {
        let state = shared.read().expect("lock");
        let started = Instant::now();
        let bytes = bincode::serialize(&*state).expect("encode");
        drop(state);
        (started.elapsed(), bytes.len())
    });
    let build_now = || {
        let state = shared.read().expect("lock");
        let started = Instant::now();
        let taken = state.snapshot();
        drop(state);
        let locked = started.elapsed();
        let bytes = bincode::serialize(&taken).expect("encode");
        let encoded = started.elapsed() - locked;
        let started = Instant::now();
        drop(taken);
        (locked, encoded, started.elapsed(), bytes)
    };
    // Twice: the figures move with the other core's load.
    let (new_way, taken_off) = while_applying(&shared, &ids, next_first(&under_lock), build_now);
    let (again, taken_again) = while_applying(&shared, &ids, next_first(&taken_off), build_now);
    let mut first = next_first(&taken_again);
    let (locked, encoded, taken_dropped, bytes) = new_way;
    if !bench {
        // The snapshot is the state it was taken of; the state since
        // holds more. Decoded, it is a state that agrees with itself.
        let back: ClusterState = bincode::deserialize(&bytes).expect("decode");
        assert!(back.containers.len() < shared.read().expect("lock").containers.len());
        assert_eq!(back.nodes.drift(), None);
        assert!(back.usage_drift().is_empty());
    }
    // What copy-on-write costs the applies after a snapshot, with nothing
    // else running: `docker run -d`s with and without a snapshot held.
    let mut cow = Vec::new();
    for hold in [false, true] {
        let mut state = shared.write().expect("lock");
        let started = Instant::now();
        let taken = hold.then(|| state.snapshot());
        let took = started.elapsed();
        let mut rng = Rng::new(first as u64);
        let mut seen = Applied::default();
        for i in first..first + containers.min(100_000) / 5 {
            for command in docker_run(&mut rng, i, &ids[i % ids.len()]) {
                let cpu = thread_cpu();
                let started = Instant::now();
                apply(&mut state, command);
                let took = started.elapsed();
                seen.longest_cpu = seen.longest_cpu.max(thread_cpu().saturating_sub(cpu));
                seen.commands += 1;
                seen.total += took;
                seen.longest = seen.longest.max(took);
                seen.over_1ms += usize::from(took > Duration::from_millis(1));
                seen.over_10ms += usize::from(took > Duration::from_millis(10));
            }
        }
        first += containers.min(100_000) / 5 + 1;
        drop(state);
        drop(taken);
        cow.push((took, seen));
    }
    // Install: decoded before the write lock is taken; under it, the new
    // state takes the old one's place, which is freed after.
    let decoded = bincode::deserialize::<ClusterState>(&snapshot).expect("decode");
    let started = Instant::now();
    let old = std::mem::replace(&mut *shared.write().expect("lock"), decoded);
    let swapped = started.elapsed();
    drop(old);
    println!();
    println!(
        "snapshot while applying: before, encode under the lock {} ({} bytes); now, snapshot() under the lock {}, encode after {}, dropping it {}; install swap under the lock {}",
        ms(old_way.0),
        old_way.1,
        us(locked),
        ms(encoded),
        ms(taken_dropped),
        us(swapped)
    );
    println!(
        "| applier (`docker run -d`: 3 commands each) | commands | mean | longest | longest lock wait | most CPU | > 1 ms / > 10 ms |"
    );
    println!("|:--|--:|--:|--:|--:|--:|--:|");
    applied_row("no snapshot (500 ms)", &quiet);
    applied_row("snapshot encoded under the lock (before)", &under_lock);
    applied_row("snapshot taken, encoded after the lock (now)", &taken_off);
    applied_row(
        &format!(
            "the same again (snapshot() {}, encode {})",
            us(again.0),
            ms(again.1)
        ),
        &taken_again,
    );
    let [(_, plain), (taken_in, after)] = &cow[..] else {
        unreachable!("two runs")
    };
    applied_row("alone, no snapshot held", plain);
    applied_row(
        &format!(
            "alone, a snapshot held (taken in {}): copy-on-write",
            us(*taken_in)
        ),
        after,
    );
    if !bench {
        println!("state_mem: smoke run ok (`cargo bench --bench state_mem` measures)");
    }
}
