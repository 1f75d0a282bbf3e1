//! Placement throughput: `scheduler::place()` on one thread over synthetic
//! clusters of 1,000 and 10,000 nodes (30 containers each, varied labels,
//! capacities, ports and images), built through `Command`s as the watchers
//! would feed them.
//!
//! `cargo bench --bench place` prints one row per (nodes, scenario): the
//! median of 5 runs of at least 0.5 s each. Two rows are not `place()`:
//! `floor` is the plain spread choice as one inline loop (what the data
//! structure allows), `reserve+release` is the other half of a create,
//! `Reserve` then `Release` through `apply()`.
//!
//! Arguments: a scenario name selects it (a name that is no scenario's
//! selects by substring: `cargo bench --bench place -- spread`);
//! `--nodes=1000,10000` sets the cluster sizes; `--iters=N` runs exactly N
//! operations per row once, for `perf` or `valgrind --tool=callgrind`.
//! Every scenario's answer is checked against the exhaustive reference
//! (`reference_ties`). The fill rows (`--fill=1000,10000`) place three
//! containers per node into a fresh cluster one after the other, each
//! reserved, by the index walk and by the exhaustive reference, and print
//! how even (spread) or packed (binpack) each left it.
//! Built as a test (`cargo test --all-targets`, no `--bench` argument), it
//! runs every row once on 50 nodes, checks the answers and exits.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use swarm::cluster::{
    ClusterState, Command, Container, ContainerState, HostPort, ImageRef, NodeHealth, NodeInfo,
    Proto, Reservation, Resources,
};
use swarm::scheduler::expr::Expr;
use swarm::scheduler::{
    place, place_reference, reference_ties, ContainerSpec, InFlight, Options, Strategy,
};
use swarm_harness::rng::Rng;

const GIB: i64 = 1 << 30;
const MIB: i64 = 1 << 20;
const CONTAINERS_PER_NODE: usize = 30;
const RUNS: usize = 5;
const RUN_TIME: Duration = Duration::from_millis(500);

const REGIONS: [&str; 4] = ["eu", "us-east", "us-west", "ap-south"];
const SERVICES: [&str; 5] = ["web", "db", "cache", "worker", "batch"];
/// Image pool: (tag, share of nodes that hold it, in percent).
const IMAGES: [(&str, u64); 10] = [
    ("busybox:local", 30),
    ("redis:7", 40),
    ("nginx:1.27", 50),
    ("postgres:16", 20),
    ("alpine:latest", 70),
    ("registry.example.com/team/api:2.3.1", 25),
    ("registry.example.com/team/worker:2.3.1", 25),
    ("python:3.12-slim", 35),
    ("golang:1.23", 10),
    ("memcached:1.6", 15),
];

/// A cluster of `nodes` nodes built through `Command`s, as the watchers
/// would feed it: node info, one full container list per node
/// (`per_node` containers), images.
fn build_state(nodes: usize, per_node: usize, seed: u64) -> ClusterState {
    let mut rng = Rng::new(seed);
    let mut state = ClusterState::default();
    let mut unhealthy = Vec::new();
    for i in 0..nodes {
        let region = *rng.pick(&REGIONS);
        let zone = format!("{region}-{}", ["a", "b", "c"][rng.below(3)]);
        let mut labels = BTreeMap::from([
            ("region".to_string(), region.to_string()),
            ("zone".to_string(), zone),
            (
                "disk".to_string(),
                if rng.below(3) == 0 { "hdd" } else { "ssd" }.to_string(),
            ),
            ("rack".to_string(), format!("r{}", rng.below(64))),
        ]);
        if rng.below(20) == 0 {
            labels.insert("containerslots".to_string(), "40".to_string());
        }
        let id = rng.engine_id();
        if i % 100 == 99 {
            unhealthy.push(id.clone());
        }
        let info = NodeInfo {
            id: id.clone(),
            hostname: format!("node-{i}"),
            addr: format!("tcp://127.0.0.1:{}", 20_000 + i),
            cpus: *rng.pick(&[8, 16, 32, 48, 64]),
            memory: *rng.pick(&[16, 32, 64, 128, 256]) * GIB,
            labels,
            operating_system: "Debian GNU/Linux 13 (trixie)".into(),
            os_type: "linux".into(),
            architecture: "x86_64".into(),
            kernel_version: "6.12.0-1-amd64".into(),
            storage_driver: if rng.below(10) == 0 {
                "vfs"
            } else {
                "overlay2"
            }
            .into(),
            server_version: "28.5.1".into(),
            api_version: "1.51".into(),
            observed_at: "2026-01-01T00:00:00Z".into(),
        };
        state.apply(Command::NodeObserved(info)).unwrap();

        let containers = (0..per_node)
            .map(|j| {
                let mut ports = Vec::new();
                // A third of the nodes bind 8080/tcp on every address;
                // each node binds one of 127.0.0.1:9000-9004.
                if j == 0 && i % 3 == 0 {
                    ports.push(HostPort {
                        ip: String::new(),
                        port: 8080,
                        proto: Proto::Tcp,
                    });
                }
                if j == 1 {
                    ports.push(HostPort {
                        ip: "127.0.0.1".into(),
                        port: 9000 + (i % 5) as u16,
                        proto: Proto::Tcp,
                    });
                }
                let service = *rng.pick(&SERVICES);
                Container {
                    id: rng.hex(4),
                    node: id.clone(),
                    name: if i == 0 && j == 2.min(per_node - 1) {
                        // The target of the `--volumes-from data` scenario.
                        "data".to_string()
                    } else {
                        format!("{service}-{i}-{j}")
                    },
                    image: rng.pick(&IMAGES).0.into(),
                    state: ContainerState::Running,
                    labels: swarm::cluster::Labels::from([
                        ("com.docker.swarm.id".to_string(), rng.hex(2)),
                        ("service".to_string(), service.to_string()),
                    ]),
                    resources: Some(Resources {
                        cpus_milli: *rng.pick(&[0, 100, 200, 250]),
                        memory: *rng.pick(&[0, 64 * MIB, 128 * MIB, 256 * MIB, 512 * MIB]),
                        ports,
                    }),
                    command: "sleep 1d".into(),
                    created: 1_700_000_000,
                }
            })
            .collect();
        let version = state.nodes[&id].version;
        state
            .apply(Command::ContainersObserved {
                node: id.clone(),
                containers,
                version,
            })
            .unwrap();

        let mut images = Vec::new();
        for (tag, share) in IMAGES {
            if rng.chance(share) {
                images.push(ImageRef {
                    id: format!("sha256:{}", rng.hex(4)),
                    tags: vec![tag.to_string()],
                });
            }
        }
        state
            .apply(Command::ImagesObserved { node: id, images })
            .unwrap();
    }
    // 1% of the nodes are unhealthy (not node 0, which holds `data`).
    for id in unhealthy {
        state
            .apply(Command::NodeFailed {
                id,
                error: "connection refused".into(),
                unhealthy: true,
                at: "2026-01-01T00:00:00Z".into(),
            })
            .unwrap();
    }
    state
}

struct Scenario {
    name: &'static str,
    spec: ContainerSpec,
    strategy: Strategy,
}

fn expr(text: &str) -> Expr {
    Expr::parse(text).unwrap()
}

fn scenarios() -> Vec<Scenario> {
    let scenario = |name, strategy, spec| Scenario {
        name,
        spec,
        strategy,
    };
    let resources = |cpus_milli, memory| Resources {
        cpus_milli,
        memory,
        ports: Vec::new(),
    };
    vec![
        scenario("spread", Strategy::Spread, ContainerSpec::default()),
        scenario(
            "spread, image redis:7",
            Strategy::Spread,
            ContainerSpec {
                image: Some("redis:7".into()),
                ..Default::default()
            },
        ),
        scenario(
            "spread -m 1g --cpus 0.5",
            Strategy::Spread,
            ContainerSpec {
                resources: resources(500, GIB),
                ..Default::default()
            },
        ),
        scenario(
            "binpack -m 1g",
            Strategy::Binpack,
            ContainerSpec {
                resources: resources(0, GIB),
                ..Default::default()
            },
        ),
        scenario(
            "constraint:region==eu",
            Strategy::Spread,
            ContainerSpec {
                constraints: vec![expr("region==eu")],
                ..Default::default()
            },
        ),
        scenario(
            "-p 8080:80",
            Strategy::Spread,
            ContainerSpec {
                resources: Resources {
                    ports: vec![HostPort {
                        ip: String::new(),
                        port: 8080,
                        proto: Proto::Tcp,
                    }],
                    ..Default::default()
                },
                ..Default::default()
            },
        ),
        scenario(
            "zone==~eu-a, image busybox:local",
            Strategy::Spread,
            ContainerSpec {
                image: Some("busybox:local".into()),
                constraints: vec![expr("zone==~eu-a")],
                ..Default::default()
            },
        ),
        scenario(
            "--volumes-from data",
            Strategy::Spread,
            ContainerSpec {
                dependencies: vec!["data".into()],
                ..Default::default()
            },
        ),
        scenario(
            "affinity:service==db",
            Strategy::Spread,
            ContainerSpec {
                affinities: vec![expr("service==db")],
                ..Default::default()
            },
        ),
    ]
}

/// Median placements per second over `RUNS` runs of at least `RUN_TIME`;
/// with `--iters=N`, one run of exactly N operations (for profilers).
fn measure(iters: Option<u64>, mut op: impl FnMut(u64)) -> f64 {
    if let Some(n) = iters {
        let start = Instant::now();
        for i in 0..n {
            op(i);
        }
        return n as f64 / start.elapsed().as_secs_f64();
    }
    // Warm up and size a batch to about 5 ms.
    let start = Instant::now();
    let mut batch: u64 = 0;
    while start.elapsed() < Duration::from_millis(20) {
        op(batch);
        batch += 1;
    }
    let batch = (batch / 4).max(1);
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let mut done: u64 = 0;
            loop {
                for i in 0..batch {
                    op(done + i);
                }
                done += batch;
                let elapsed = start.elapsed();
                if elapsed >= RUN_TIME {
                    return done as f64 / elapsed.as_secs_f64();
                }
            }
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[RUNS / 2]
}

fn row(nodes: usize, scenario: &str, rate: f64) {
    println!(
        "| {nodes:>6} | {scenario:<34} | {:>12.0} | {:>12.2} |",
        rate,
        1e6 / rate
    );
}

/// Checks that a scenario's answer obeys its rules.
fn check(state: &ClusterState, scenario: &Scenario, node: &str) {
    let node = &state.nodes[node];
    assert_eq!(node.health, NodeHealth::Healthy);
    if scenario.name.contains("region==eu") {
        assert_eq!(node.info.labels["region"], "eu", "{}", scenario.name);
    }
    if !scenario.spec.dependencies.is_empty() {
        assert_eq!(
            state.resolve_container("data").unwrap().node,
            node.info.id,
            "{}",
            scenario.name
        );
    }
    if scenario.name.contains("8080") {
        assert!(node.port_conflict(&scenario.spec.resources.ports).is_none());
    }
    if let Some(image) = &scenario.spec.image {
        assert!(node.has_image(image), "{}", scenario.name);
    }
}

/// The plain `spread` answer as one inline loop (see the `floor` row).
fn floor_spread(state: &ClusterState) -> Option<&str> {
    let mut best: Option<(&str, (u64, usize))> = None;
    for node in state.nodes.values() {
        if node.health != NodeHealth::Healthy
            || node
                .container_slots()
                .is_some_and(|slots| node.usage.containers >= slots)
        {
            continue;
        }
        let key = (node.usage.fullness_bp, node.usage.containers);
        if best.is_none_or(|(_, k)| key < k) {
            best = Some((node.id(), key));
        }
    }
    best.map(|(id, _)| id)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let option = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
    };
    // `--nodes=1000,10000` and `--iters=N` (a fixed count, for perf/callgrind).
    // A list of cluster sizes, `--NAME=1000,10000` (1,000 and 10,000 by default).
    let sizes_of = |name: &str| -> Vec<usize> {
        option(name)
            .map(|v| {
                v.split(',')
                    .map(|n| n.parse().unwrap_or_else(|_| panic!("{name}=N,M")))
                    .collect()
            })
            .unwrap_or_else(|| vec![1_000, 10_000])
    };
    let sizes = sizes_of("--nodes");
    let iters: Option<u64> = option("--iters").map(|v| v.parse().expect("--iters=N"));
    // `--fill=1000,10000`: the sizes of the fill rows (spread and binpack
    // quality, index walk against the exhaustive reference).
    let fill_sizes = sizes_of("--fill");
    let fill_sizes = if bench { fill_sizes } else { vec![50] };
    // A filter naming a scenario exactly selects only it; others match
    // by substring.
    let names: Vec<&str> = scenarios().iter().map(|s| s.name).collect();
    let wanted = |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                name == f.as_str() || (!names.contains(&f.as_str()) && name.contains(f.as_str()))
            })
    };

    // Built as a test (no `--bench`): one operation per row on 50 nodes.
    let (sizes, iters) = if bench {
        (sizes, iters)
    } else {
        (vec![50], Some(1))
    };

    if !bench {
        println!("place bench, smoke run: one operation per row; the figures are no measurement");
    }
    println!("| nodes  | scenario                           | placements/s | µs/placement |");
    println!("|-------:|:-----------------------------------|-------------:|-------------:|");
    for nodes in sizes {
        let built = Instant::now();
        let mut state = build_state(nodes, CONTAINERS_PER_NODE, if bench { 42 } else { 1 });
        let built = built.elapsed();
        assert_eq!(state.containers.len(), nodes * CONTAINERS_PER_NODE);
        eprintln!(
            "built {nodes} nodes, {} containers in {:.2?}",
            state.containers.len(),
            built
        );
        for s in scenarios().iter().filter(|s| wanted(s.name)) {
            let options = Options {
                strategy: s.strategy,
                ..Options::default()
            };
            let node =
                place(&state, &s.spec, &options, 0).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            check(&state, s, &node);
            // A node of the rank the exhaustive reference chooses among.
            let ties = reference_ties(&state, &s.spec, &options, &InFlight::default())
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert!(
                ties.contains(&node),
                "{}: {node} not of the best rank",
                s.name
            );
            let rate = measure(iters, |seed| {
                black_box(place(black_box(&state), black_box(&s.spec), &options, seed)).ok();
            });
            row(nodes, s.name, rate);
        }

        // Reference, not swarm code: the plain spread choice (healthy, slot
        // free, lowest fullness then fewest containers, first in ID order)
        // as one inline loop over the same `state.nodes`. The gap to the
        // `spread` row is the cost of the generic pipeline.
        let name = "floor: inline spread loop";
        if nodes <= 1_000 && wanted(name) {
            let spread = place(&state, &ContainerSpec::default(), &Options::default(), 0).unwrap();
            let key = |id: &str| {
                let usage = &state.nodes[id].usage;
                (usage.fullness_bp, usage.containers)
            };
            assert_eq!(floor_spread(&state).map(key), Some(key(&spread)));
            let rate = measure(iters, |_| {
                black_box(floor_spread(black_box(&state)));
            });
            row(nodes, name, rate);
        }

        // The other half of a create: Reserve (name and resources) then
        // Release, through apply(), on the node `place` picked.
        let name = "reserve+release (apply)";
        if wanted(name) {
            let options = Options::default();
            let resources = Resources {
                cpus_milli: 500,
                memory: GIB,
                ports: Vec::new(),
            };
            let spec = ContainerSpec {
                resources: resources.clone(),
                ..Default::default()
            };
            let node = place(&state, &spec, &options, 0).unwrap();
            assert!(state.name_holder("new-web").is_none());
            let rate = measure(iters, |i| {
                let id = format!("reservation-{i}");
                state
                    .apply(Command::Reserve {
                        reservation: Reservation {
                            id: id.clone(),
                            node: node.clone(),
                            name: Some("new-web".into()),
                            resources: resources.clone(),
                            swarm_id: Some("sw-new-web".into()),
                        },
                        overcommit: options.overcommit,
                        checks: options.checks(),
                    })
                    .unwrap();
                state.apply(Command::Release { id }).unwrap();
            });
            row(nodes, name, rate);
        }
    }
    fills(&fill_sizes, bench, &wanted);
    if !bench {
        println!("place bench: smoke run ok (`cargo bench --bench place` measures)");
    }
}

/// How a fill left the cluster: the spread of new containers over the
/// healthy nodes, and how many nodes got any.
struct Filled {
    rate: f64,
    max_minus_min: usize,
    nodes_used: usize,
}

/// Places `count` containers of `spec` one after the other on `state`,
/// each reserved before the next is placed, with `place` (the index walk)
/// or `place_reference` (the exhaustive reference).
fn fill(
    mut state: ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    count: usize,
    reference: bool,
) -> Filled {
    let before: BTreeMap<String, usize> = state
        .nodes
        .iter()
        .map(|(id, n)| (id.clone(), n.usage.containers))
        .collect();
    let start = Instant::now();
    let mut placed = 0;
    for i in 0..count {
        let seed = i as u64;
        let chosen = if reference {
            place_reference(&state, spec, options, seed, &InFlight::default())
        } else {
            place(&state, spec, options, seed)
        };
        let Ok(node) = chosen else { break };
        state
            .apply(Command::Reserve {
                reservation: Reservation {
                    id: format!("fill-{i}"),
                    node,
                    name: None,
                    resources: spec.resources.clone(),
                    swarm_id: None,
                },
                overcommit: options.overcommit,
                checks: options.checks(),
            })
            .expect("the placed node takes the reservation");
        placed += 1;
    }
    let rate = placed as f64 / start.elapsed().as_secs_f64();
    let added: Vec<usize> = state
        .nodes
        .iter()
        .filter(|(_, n)| n.health == NodeHealth::Healthy)
        .map(|(id, n)| n.usage.containers - before[id])
        .collect();
    Filled {
        rate,
        max_minus_min: added.iter().max().unwrap_or(&0) - added.iter().min().unwrap_or(&0),
        nodes_used: added.iter().filter(|a| **a > 0).count(),
    }
}

/// The fill rows: spread and binpack filling a fresh cluster (the bench's
/// node shapes, no containers), by the index walk and by the exhaustive
/// reference: the index walk must spread (max − min new containers per
/// node) and pack (nodes used) as well as the reference, give or take a
/// tie drawn otherwise.
fn fills(sizes: &[usize], bench: bool, wanted: &dyn Fn(&str) -> bool) {
    let resources = |cpus_milli, memory| Resources {
        cpus_milli,
        memory,
        ports: Vec::new(),
    };
    let rows = [
        (
            "fill: spread -m 1g --cpus 0.5",
            Strategy::Spread,
            resources(500, GIB),
            3,
        ),
        (
            "fill: binpack -m 1g",
            Strategy::Binpack,
            resources(0, GIB),
            3,
        ),
        ("fill: spread", Strategy::Spread, resources(0, 0), 3),
    ];
    if !rows.iter().any(|r| wanted(r.0)) {
        return;
    }
    println!();
    println!("| nodes  | fill                            | walk      | placements/s | max−min new | nodes used |");
    println!("|-------:|:--------------------------------|:----------|-------------:|------------:|-----------:|");
    for &nodes in sizes {
        // A state of its own per fill, not a clone of one: a clone shares
        // its nodes copy-on-write (for Raft snapshots), and the fill would
        // time the first change to each node copying it.
        let fresh = || build_state(nodes, 0, if bench { 42 } else { 1 });
        for (name, strategy, resources, per_node) in rows.iter().filter(|r| wanted(r.0)) {
            let options = Options {
                strategy: *strategy,
                ..Options::default()
            };
            let spec = ContainerSpec {
                resources: resources.clone(),
                ..Default::default()
            };
            let count = nodes * per_node;
            let walked = fill(fresh(), &spec, &options, count, false);
            let print = |walk: &str, f: &Filled| {
                println!(
                    "| {nodes:>6} | {name:<31} | {walk:<9} | {:>12.0} | {:>11} | {:>10} |",
                    f.rate, f.max_minus_min, f.nodes_used
                )
            };
            print("index", &walked);
            // The reference walks every node: skipped past 10,000 nodes.
            if nodes <= 10_000 {
                let reference = fill(fresh(), &spec, &options, count, true);
                print("reference", &reference);
                // Ties are drawn otherwise, so the two fills may part
                // where tied nodes differ in size; the ranks are the same.
                assert!(
                    walked.max_minus_min <= reference.max_minus_min + 1
                        && walked.nodes_used <= reference.nodes_used + nodes / 100 + 1,
                    "{name}: the index walk spread or packed worse than the reference"
                );
            }
        }
    }
}
