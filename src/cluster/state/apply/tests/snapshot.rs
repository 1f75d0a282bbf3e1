//! A snapshot ([`ClusterState::snapshot`]) shares the nodes, containers
//! and create bodies with the state: whatever commands follow, it must
//! still encode as the state did when it was taken, and the state must
//! not see the snapshot.

use proptest::prelude::*;

use super::usage::{command, NODES};
use crate::cluster::testing::engine;
use crate::cluster::{ClusterState, Command};

/// Applies `ops` (see [`command`]) to three nodes, taking a snapshot after
/// `at` of them, and checks that it encodes as the state did then, and
/// that the state at the end (returned) reads back from its own snapshot.
fn snapshot_holds(ops: &[(u8, u8, u8, u8)], at: usize) -> Result<ClusterState, TestCaseError> {
    let mut s = ClusterState::default();
    for node in NODES {
        s.apply_command(Command::NodeObserved(engine(node, node)))
            .unwrap();
    }
    // Create bodies for the swarm ids the commands use: removing their
    // containers drops them.
    for i in 0..4 {
        s.apply_command(Command::SpecRecorded {
            swarm_id: format!("sw{i}"),
            body: format!("{{\"Image\": \"busybox:{i}\"}}"),
            name: None,
        })
        .unwrap();
    }
    let mut taken = None;
    for (i, &(op, a, b, c)) in ops.iter().enumerate() {
        if i == at {
            taken = Some((s.snapshot(), bincode::serialize(&s).expect("state")));
        }
        let command = command(&s, op, a, b, c);
        let _ = s.apply(command);
    }
    let (snapshot, then) = taken.unwrap_or_else(|| (s.snapshot(), bincode::serialize(&s).unwrap()));
    prop_assert_eq!(bincode::serialize(&snapshot).expect("snapshot"), then);
    drop(snapshot);
    let now = bincode::serialize(&s.snapshot()).expect("snapshot");
    prop_assert_eq!(&now, &bincode::serialize(&s).expect("state"));
    let back: ClusterState = bincode::deserialize(&now).expect("decode");
    prop_assert_eq!(&back, &s);
    prop_assert_eq!(back.nodes.drift(), None);
    prop_assert_eq!(back.usage_drift(), Vec::<String>::new());
    Ok(s)
}

#[test]
fn a_snapshot_keeps_the_state_it_was_taken_of() {
    // Create c1 on a node, snapshot, stop it, observe it elsewhere, remove it.
    snapshot_holds(&[(2, 0, 1, 1), (5, 0, 1, 1), (3, 1, 1, 1), (4, 1, 1, 1)], 1).unwrap();
}

#[test]
fn a_snapshot_keeps_a_create_body_the_state_forgets() {
    // c1 created with swarm id sw1, snapshot, c1 removed: its body goes.
    let s = snapshot_holds(&[(2, 0, 1, 0), (4, 0, 1, 0)], 1).unwrap();
    assert!(!s.reschedule_specs.contains_key("sw1"));
    assert_eq!(s.reschedule_specs.len(), 3);
}

proptest! {
    // No failure file: a failing case found becomes a named test like the one above.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(200)
    })]
    #[test]
    fn snapshots_keep_their_state_while_commands_go_on(
        ops in proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 1..60),
        at in 0..60usize,
    ) {
        snapshot_holds(&ops, at).map(drop)?;
    }
}
