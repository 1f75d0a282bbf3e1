//! Ranking: the spread, binpack and random strategies, placements in
//! flight, the preference for nodes holding the image, and ties.

use std::collections::{BTreeMap, BTreeSet};

use super::fixtures::{options, outcome_with, spec, Failures, G4};
use crate::cluster::testing::{images, usage_world, NodeRow, GIB};
use crate::cluster::ClusterState;
use crate::scheduler::{place, place_with, ContainerSpec, InFlight, Options, Strategy};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

const STRATEGY_ROWS: &[(Strategy, &[NodeRow], &str, &str)] = &[
    // spread: lowest weight, then fewest containers, then any of the tied
    (
        Strategy::Spread,
        &[
            ("a", 4, G4, 0, 0, 0),
            ("b", 4, G4, 0, 0, 0),
            ("c", 4, G4, 0, 0, 0),
        ],
        "",
        "a,b,c",
    ),
    (
        Strategy::Spread,
        &[
            ("a", 4, G4, 1000, 0, 0),
            ("b", 4, G4, 0, 0, 0),
            ("c", 4, G4, 2000, 0, 0),
        ],
        "",
        "b",
    ),
    (
        Strategy::Spread,
        &[
            ("a", 4, G4, 0, 0, 2),
            ("b", 4, G4, 0, 0, 1),
            ("c", 4, G4, 0, 0, 3),
        ],
        "",
        "b",
    ),
    (
        Strategy::Spread,
        &[
            ("a", 4, G4, 0, 0, 1),
            ("b", 4, G4, 0, 0, 1),
            ("c", 4, G4, 0, 0, 1),
        ],
        "-c 1",
        "a,b,c",
    ),
    (
        Strategy::Spread,
        &[("a", 4, G4, 0, 0, 5), ("b", 4, G4, 100, 0, 0)],
        "",
        "a",
    ),
    (
        Strategy::Spread,
        &[("a", 1, GIB, 0, 0, 0), ("b", 8, 8 * GIB, 0, 0, 0)],
        "-c 1 -m 1g",
        "b",
    ),
    (
        Strategy::Spread,
        &[("a", 4, G4, 2000, 0, 0), ("b", 4, G4, 0, 3 * GIB, 0)],
        "",
        "a",
    ),
    (
        Strategy::Spread,
        &[("a", 1, GIB, 0, 0, 0), ("b", 4, G4, 2000, 2 * GIB, 3)],
        "-m 2g",
        "b",
    ),
    (
        Strategy::Spread,
        &[("a", 4, G4, 0, 0, 0), ("b", 4, G4, 0, 0, 0)],
        "-m 5g",
        "ERR: of free memory",
    ),
    // binpack: highest weight that fits, then most containers, then any of
    // the tied
    (
        Strategy::Binpack,
        &[
            ("a", 4, G4, 1000, 0, 0),
            ("b", 4, G4, 2000, 0, 0),
            ("c", 4, G4, 0, 0, 0),
        ],
        "",
        "b",
    ),
    (
        Strategy::Binpack,
        &[
            ("a", 4, G4, 1000, 0, 0),
            ("b", 4, G4, 3900, 0, 0),
            ("c", 4, G4, 0, 0, 0),
        ],
        "-c 1",
        "a",
    ),
    (
        Strategy::Binpack,
        &[
            ("a", 4, G4, 0, 0, 1),
            ("b", 4, G4, 0, 0, 3),
            ("c", 4, G4, 0, 0, 2),
        ],
        "",
        "b",
    ),
    (
        Strategy::Binpack,
        &[
            ("a", 4, G4, 0, 0, 0),
            ("b", 4, G4, 0, 0, 0),
            ("c", 4, G4, 0, 0, 0),
        ],
        "-m 1g",
        "a,b,c",
    ),
    (
        Strategy::Binpack,
        &[("a", 2, 2 * GIB, 1000, 0, 0), ("b", 8, 8 * GIB, 3000, 0, 0)],
        "",
        "a",
    ),
    (
        Strategy::Binpack,
        &[("a", 4, G4, 0, 3 * GIB, 0), ("b", 4, G4, 0, GIB, 0)],
        "-m 1g",
        "a",
    ),
    (
        Strategy::Binpack,
        &[("a", 4, G4, 0, 3 * GIB, 0), ("b", 4, G4, 0, GIB, 0)],
        "-m 1.5g",
        "b",
    ),
    (
        Strategy::Binpack,
        &[("a", 4, G4, 0, 0, 9), ("b", 4, G4, 100, 0, 0)],
        "",
        "b",
    ),
    // random: any fitting node, every one reachable over the seeds
    (
        Strategy::Random,
        &[
            ("a", 4, G4, 0, 0, 0),
            ("b", 4, G4, 0, 0, 0),
            ("c", 4, G4, 0, 0, 0),
        ],
        "",
        "a,b,c",
    ),
    (
        Strategy::Random,
        &[
            ("a", 1, GIB, 0, 0, 0),
            ("b", 4, G4, 0, 0, 0),
            ("c", 4, G4, 3000, 0, 0),
        ],
        "-m 2g",
        "b,c",
    ),
    (
        Strategy::Random,
        &[
            ("a", 1, GIB, 0, 0, 0),
            ("b", 4, G4, 0, 0, 0),
            ("c", 4, G4, 3000, 0, 0),
        ],
        "-m 2g -c 2",
        "b",
    ),
    (
        Strategy::Random,
        &[
            ("a", 1, GIB, 0, 0, 0),
            ("b", 1, GIB, 0, 0, 0),
            ("c", 1, GIB, 0, 0, 0),
            ("d", 1, GIB, 0, 0, 0),
            ("e", 1, GIB, 0, 0, 0),
            ("f", 1, GIB, 0, 0, 0),
        ],
        "",
        "a,b,c,d,e,f",
    ),
    (
        Strategy::Random,
        &[("a", 1, GIB, 0, 0, 0)],
        "-c 2",
        "ERR: 2 free CPUs",
    ),
];

#[test]
fn placements_in_flight_rank_as_placed() {
    // Three empty nodes: without anything in flight, any of them.
    let state = usage_world(&[
        ("a", 4, G4, 0, 0, 0),
        ("b", 4, G4, 0, 0, 0),
        ("c", 4, G4, 0, 0, 0),
    ]);
    let spread = options(Strategy::Spread, 50_000);
    let binpack = options(Strategy::Binpack, 50_000);
    let one = spec("");
    let mut in_flight = InFlight::default();
    let picked = |in_flight: &InFlight, options: &Options, spec: &ContainerSpec| {
        (0..64)
            .map(|seed| {
                let id = place_with(&state, spec, options, seed, in_flight).expect("placed");
                state.nodes[&id].name.clone()
            })
            .collect::<BTreeSet<_>>()
    };
    // Two placements on their way to a and b: spread takes c, binpack a
    // or b (each now holds one container more).
    in_flight.add("ID-a", &one.resources);
    in_flight.add("ID-b", &one.resources);
    assert_eq!(
        picked(&in_flight, &spread, &one),
        BTreeSet::from(["c".to_string()])
    );
    assert_eq!(
        picked(&in_flight, &binpack, &one),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    // Resources in flight weigh too: 2 CPUs on their way to c.
    in_flight.add("ID-c", &spec("-c 2").resources);
    assert_eq!(
        picked(&in_flight, &spread, &spec("-c 1")),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    // A cursor walks the nodes in ID order.
    let mut cursor = in_flight.cursor();
    let counts: Vec<usize> = ["ID-0", "ID-a", "ID-b", "ID-c", "ID-d"]
        .iter()
        .map(|id| cursor.load(id).containers)
        .collect();
    assert_eq!(counts, [0, 1, 1, 1, 0]);
    assert_eq!(in_flight.cursor().load("ID-c").cpus_milli, 2000);
    // Once applied (or refused), they no longer count.
    in_flight.remove("ID-a", &one.resources);
    in_flight.remove("ID-b", &one.resources);
    in_flight.remove("ID-c", &spec("-c 2").resources);
    assert!(in_flight.is_empty());
    assert_eq!(picked(&in_flight, &spread, &one).len(), 3);
}

#[test]
fn strategy_table() {
    let mut failures = Failures::new();
    for (strategy, nodes, args, want) in STRATEGY_ROWS {
        let state = usage_world(nodes);
        let spec = spec(args);
        let opts = options(*strategy, 50_000);
        let got = outcome_with(&state, &spec, &opts);
        failures.check(format_args!("{strategy} {nodes:?} {args:?}"), &got, want);
        // Deterministic: the same seed gives the same answer.
        for seed in [0, 1, 7, 42, u64::MAX] {
            assert_eq!(
                place(&state, &spec, &opts, seed),
                place(&state, &spec, &opts, seed),
                "{strategy} {args} seed {seed}"
            );
        }
    }
    failures.done(STRATEGY_ROWS.len());
}

// ---------------------------------------------------------------------------
// Image preference
// ---------------------------------------------------------------------------

/// a, b, c with 4 CPUs and 4 GiB; b is the fullest and holds busybox.
fn image_world() -> ClusterState {
    let mut s = usage_world(&[
        ("a", 4, G4, 0, 0, 0),
        ("b", 4, G4, 2000, 2 * GIB, 2),
        ("c", 4, G4, 1000, 0, 0),
    ]);
    images(
        &mut s,
        "ID-b",
        &[("sha256:abcdef0123456789", &["busybox:latest", "app:v2"])],
    );
    images(&mut s, "ID-c", &[("sha256:9999888877776666", &["app:v1"])]);
    s
}

const IMAGE_ROWS: &[(Strategy, &str, &str)] = &[
    (Strategy::Spread, "--image busybox", "b"),
    (Strategy::Spread, "--image busybox:latest", "b"),
    (Strategy::Spread, "--image docker.io/library/busybox", "b"),
    (Strategy::Spread, "--image sha256:abcdef0123456789", "b"),
    (Strategy::Spread, "--image abcdef01", "b"),
    (Strategy::Spread, "--image alpine", "a"),
    (Strategy::Spread, "--image busybox -m 2.5g", "a"),
    (Strategy::Spread, "--image app:v1", "c"),
    (Strategy::Spread, "--image app", "a"),
    (Strategy::Binpack, "--image app:v1", "c"),
    (Strategy::Binpack, "--image alpine", "b"),
    (Strategy::Random, "--image busybox", "b"),
    (Strategy::Random, "--image alpine", "a,b,c"),
    (
        Strategy::Spread,
        "--image busybox -e constraint:node!=b",
        "a",
    ),
    (
        Strategy::Spread,
        "--image busybox -e constraint:node==~c",
        "c",
    ),
];

#[test]
fn image_preference_table() {
    let state = image_world();
    let mut failures = Failures::new();
    for (strategy, args, want) in IMAGE_ROWS {
        let got = outcome_with(&state, &spec(args), &options(*strategy, 50_000));
        failures.check(format_args!("{strategy} {args}"), &got, want);
    }
    failures.done(IMAGE_ROWS.len());
}

/// Several holders in ID order, the best of them neither first nor last:
/// the image check is skipped for nodes that cannot beat the best holder
/// found so far, and must still find that best one.
/// Places each row's spec with its strategy (overcommit 5%) on `s` and
/// checks the outcome (see [`outcome_with`]).
fn check_strategy_rows(s: &ClusterState, rows: &[(Strategy, &str, &str)]) {
    let mut failures = Failures::new();
    for (strategy, args, want) in rows {
        let got = outcome_with(s, &spec(args), &options(*strategy, 50_000));
        failures.check(format_args!("{strategy} {args}"), &got, want);
    }
    failures.done(rows.len());
}

#[test]
fn the_best_holder_wins_wherever_it_is() {
    let mut s = usage_world(&[
        ("a", 4, G4, 0, 0, 0),
        ("b", 4, G4, 2000, 2 * GIB, 2),
        ("c", 4, G4, 3000, 3 * GIB, 3),
        ("d", 4, G4, 1000, GIB, 1),
        ("e", 4, G4, 2500, 2 * GIB, 2),
    ]);
    for node in ["ID-b", "ID-c", "ID-d", "ID-e"] {
        images(
            &mut s,
            node,
            &[("sha256:abcdef0123456789", &["busybox:latest"])],
        );
    }
    let rows: &[(Strategy, &str, &str)] = &[
        (Strategy::Spread, "--image busybox", "d"),
        (Strategy::Binpack, "--image busybox", "c"),
        (Strategy::Spread, "--image alpine", "a"),
        (Strategy::Random, "--image busybox", "b,c,d,e"),
    ];
    check_strategy_rows(&s, rows);
}

/// Ties are drawn evenly: over many seeds each of four equal nodes is
/// chosen about as often as the others, whatever the strategy.
#[test]
fn ties_are_drawn_evenly() {
    let s = usage_world(&[
        ("a", 4, G4, 1000, GIB, 1),
        ("b", 4, G4, 1000, GIB, 1),
        ("c", 4, G4, 1000, GIB, 1),
        ("d", 4, G4, 1000, GIB, 1),
    ]);
    for strategy in [Strategy::Spread, Strategy::Binpack, Strategy::Random] {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for seed in 0..4000 {
            let id = place(&s, &spec(""), &options(strategy, 50_000), seed).expect("placed");
            *counts.entry(id).or_default() += 1;
        }
        assert_eq!(counts.len(), 4, "{strategy}: {counts:?}");
        for (id, n) in &counts {
            // 1,000 expected, standard deviation 27.
            assert!(
                (850..=1150).contains(n),
                "{strategy}: {id} chosen {n} times"
            );
        }
    }
}

/// Placement takes a matching name hash for the name and compares the
/// name of the winner only: a node whose image name merely shares the
/// hash must not win over a real holder.
#[test]
fn a_name_hash_collision_does_not_count_as_the_image() {
    let mut s = usage_world(&[
        ("a", 4, G4, 0, 0, 0),
        ("b", 4, G4, 2000, 2 * GIB, 2),
        ("c", 4, G4, 3000, 3 * GIB, 3),
    ]);
    images(
        &mut s,
        "ID-c",
        &[("sha256:abcdef0123456789", &["busybox:latest"])],
    );
    let wanted = crate::cluster::ImageQuery::new("busybox");
    // `a` (the least used) claims a name with the image's hash.
    {
        let mut a = s.nodes.get_mut("ID-a").expect("node a");
        a.image_names = vec![(wanted.hash, "imposter:latest".into())];
        assert!(a.may_have_image(&wanted) && !a.has_image_query(&wanted));
    }
    assert_eq!(s.nodes.drift(), None);
    let rows: &[(Strategy, &str, &str)] = &[
        (Strategy::Spread, "--image busybox", "c"),
        (Strategy::Binpack, "--image busybox", "c"),
        (Strategy::Random, "--image busybox", "c"),
        (Strategy::Spread, "--image alpine", "a"),
    ];
    check_strategy_rows(&s, rows);
}
