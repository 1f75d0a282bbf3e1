//! CPU and memory, with and without overcommit; container slots and node
//! health.

use super::fixtures::{options, outcome, outcome_with, spec, Failures, G4};
use crate::cluster::testing::{
    add_container, add_node, fail_node, info, reserve_cmd, run, usage_world, NodeRow, GIB,
};
use crate::cluster::{ClusterState, Command, Resources};
use crate::scheduler::Strategy;

// ---------------------------------------------------------------------------
// CPU, memory, overcommit
// ---------------------------------------------------------------------------

const RESOURCE_ROWS: &[(&[NodeRow], &str, i64, &str)] = &[
    // memory, with and without overcommit
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-m 2g", 0, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "-m 2147483649",
        0,
        "ERR: 2 GiB of free memory",
    ),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "-m 2254857830",
        50_000,
        "n1",
    ),
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-m 2.1g", 50_000, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "-m 2254857831",
        50_000,
        "ERR: of free memory (no node has it)",
    ),
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-m 4g", 1_000_000, "n1"),
    // a negative overcommit keeps part of the node free (classic's -1 < x < 0)
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-m 1g", -500_000, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "-m 1073741825",
        -500_000,
        "ERR: 1 GiB of free memory",
    ),
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-c 1", -500_000, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "-c 2",
        -500_000,
        "ERR: free",
    ),
    (&[("n1", 2, 2 * GIB, 0, GIB, 0)], "-m 1g", 0, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, GIB, 0)],
        "-m 1073741825",
        0,
        "ERR: 1 GiB of free memory",
    ),
    (&[("n1", 2, 2 * GIB, 0, 2 * GIB, 0)], "", 0, "n1"),
    (&[("n1", 2, 2 * GIB, 0, 2 * GIB, 0)], "-c 1", 0, "n1"),
    (
        &[("n1", 2, 0, 0, 0, 0)],
        "-m 1m",
        50_000,
        "ERR: 1 MiB of free memory",
    ),
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-m 1.5g", 50_000, "n1"),
    (
        &[("n1", 2, GIB, 0, 0, 0), ("n2", 2, 4 * GIB, 0, 0, 0)],
        "-m 2g",
        50_000,
        "n2",
    ),
    (
        &[("n1", 2, GIB, 0, 0, 0), ("n2", 2, 4 * GIB, 0, 3 * GIB, 0)],
        "-m 2g",
        50_000,
        "ERR: 2 GiB of free memory (no node has it)",
    ),
    // CPU: -c N reserves N CPUs, --cpus X reserves X CPUs and wins
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "-c 2", 0, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "-c 3",
        50_000,
        "ERR: 3 free CPUs (lacking on 1 node)",
    ),
    (&[("n1", 2, 2 * GIB, 0, 0, 0)], "--cpus 2.1", 50_000, "n1"),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "--cpus 2.1",
        0,
        "ERR: 2.1 free CPUs",
    ),
    (
        &[("n1", 2, 2 * GIB, 0, 0, 0)],
        "--cpus 2.101",
        50_000,
        "ERR: 2.101 free CPUs",
    ),
    (&[("n1", 1, 2 * GIB, 0, 0, 0)], "--cpus 0.5 -c 4", 0, "n1"),
    (
        &[("n1", 2, 2 * GIB, 1500, 0, 0)],
        "-c 1",
        0,
        "ERR: 1 free CPUs",
    ),
    (&[("n1", 2, 2 * GIB, 1500, 0, 0)], "--cpus 0.5", 0, "n1"),
    (
        &[("n1", 2, 2 * GIB, 1500, 0, 0)],
        "--cpus 0.6",
        50_000,
        "n1",
    ),
    (&[("n1", 2, 2 * GIB, 2000, 0, 0)], "-m 1g", 0, "n1"),
    (
        &[("n1", 1, 8 * GIB, 0, 0, 0), ("n2", 4, GIB, 0, 0, 0)],
        "-c 2 -m 2g",
        50_000,
        "ERR: 2 GiB of free memory (lacking on 1 node)|2 free CPUs (lacking on 1 node)",
    ),
    (
        &[
            ("n1", 1, 8 * GIB, 0, 0, 0),
            ("n2", 4, GIB, 0, 0, 0),
            ("n3", 4, 8 * GIB, 0, 0, 0),
        ],
        "-c 2 -m 2g",
        50_000,
        "n3",
    ),
];

#[test]
fn resource_table() {
    let mut failures = Failures::new();
    for (nodes, args, oc, want) in RESOURCE_ROWS {
        let state = usage_world(nodes);
        let got = outcome_with(&state, &spec(args), &options(Strategy::Random, *oc));
        failures.check(
            format_args!("{nodes:?} {args:?} overcommit {oc}"),
            &got,
            want,
        );
    }
    failures.done(RESOURCE_ROWS.len());
}

// ---------------------------------------------------------------------------
// Health and container slots
// ---------------------------------------------------------------------------

/// One node with a `containerslots` label (if any), containers and
/// reservations → can it take one more?
const SLOT_ROWS: &[(Option<&str>, usize, usize, &str)] = &[
    (None, 5, 0, "n1"),
    (Some("3"), 2, 0, "n1"),
    (Some("3"), 1, 1, "n1"),
    (
        Some("2"),
        2,
        0,
        "ERR: a free container slot (containerslots reached on 1 node)",
    ),
    (Some("2"), 1, 1, "ERR: a free container slot"),
    (Some("2"), 0, 2, "ERR: a free container slot"),
    (Some("0"), 0, 0, "ERR: a free container slot"),
    (Some(" 2 "), 1, 0, "n1"),
    (Some("many"), 9, 0, "n1"),
    (Some("-1"), 9, 0, "n1"),
];

#[test]
fn slots_table() {
    let mut failures = Failures::new();
    for (slots, containers, reservations, want) in SLOT_ROWS {
        let mut s = ClusterState::default();
        let labels: Vec<(&str, &str)> = slots.iter().map(|v| ("containerslots", *v)).collect();
        add_node(&mut s, info("ID-n1", "n1", 4, G4, &labels));
        for i in 0..*containers {
            add_container(
                &mut s,
                &format!("c{i}"),
                "ID-n1",
                &format!("c{i}"),
                &[],
                None,
            );
        }
        for i in 0..*reservations {
            run(
                &mut s,
                reserve_cmd(&format!("r{i}"), "ID-n1", None, Resources::default(), 0),
            );
        }
        let got = outcome(&s, &spec(""));
        failures.check(
            format_args!("slots {slots:?}, {containers} containers, {reservations} reservations"),
            &got,
            want,
        );
    }
    failures.done(SLOT_ROWS.len());
}

/// Health changes (node, unhealthy?) applied in order to two nodes → where
/// containers go.
const HEALTH_ROWS: &[(&[(&str, bool)], &str)] = &[
    (&[], "n1,n2"),
    (&[("n1", true)], "n2"),
    // A failed refresh, not unhealthy yet: the other node wins, as
    // classic weighted health into the strategy; both failing, either.
    (&[("n1", false)], "n2"),
    (&[("n1", false), ("n2", false)], "n1,n2"),
    (
        &[("n1", true), ("n2", true)],
        "ERR: a healthy node (all 2 nodes unhealthy)",
    ),
    (&[("n1", true), ("n2", false)], "n2"),
];

#[test]
fn health_table() {
    let mut failures = Failures::new();
    for (changes, want) in HEALTH_ROWS {
        let mut s = usage_world(&[("n1", 2, GIB, 0, 0, 0), ("n2", 2, GIB, 0, 0, 0)]);
        for (node, unhealthy) in *changes {
            run(
                &mut s,
                Command::NodeFailed {
                    id: format!("ID-{node}"),
                    error: "timeout".into(),
                    unhealthy: *unhealthy,
                    at: "t".into(),
                },
            );
        }
        failures.check(format_args!("{changes:?}"), &outcome(&s, &spec("")), want);
    }
    failures.done(HEALTH_ROWS.len());
}

#[test]
fn a_node_observed_again_is_healthy_again() {
    let mut s = usage_world(&[("n1", 2, GIB, 0, 0, 0)]);
    fail_node(&mut s, "ID-n1");
    assert!(outcome(&s, &spec("")).starts_with("ERR: "));
    add_node(&mut s, info("ID-n1", "n1", 2, GIB, &[]));
    assert_eq!(outcome(&s, &spec("")), "n1");
}
