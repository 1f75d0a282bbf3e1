//! Reschedules: moving a container off a failed node once, remembering
//! the copy left there, forgetting create bodies nothing refers to.

use crate::cluster::testing::{engine, listed, two_nodes};
use crate::cluster::{
    ApplyError, Checks, ClusterState, Command, Container, Reservation, Resources, SWARM_ID_LABEL,
};

fn with_swarm_id(mut c: Container, swarm_id: &str) -> Container {
    c.labels.insert(SWARM_ID_LABEL.into(), swarm_id.into());
    c
}

fn fail(s: &mut ClusterState, node: &str) {
    s.apply(Command::NodeFailed {
        id: node.into(),
        error: "gone".into(),
        unhealthy: true,
        at: "2026-01-01T00:00:01Z".into(),
    })
    .unwrap();
}

#[test]
fn a_reschedule_moves_the_container_once_and_remembers_the_stale_copy() {
    let mut s = two_nodes();
    let (a, b) = ("AAAA:1111", "BBBB:2222");
    s.apply(Command::SpecRecorded {
        swarm_id: "S1".into(),
        body: "{}".into(),
        name: Some("web".into()),
    })
    .unwrap();
    s.apply(Command::ContainerObserved(with_swarm_id(
        listed("old", b, "web"),
        "S1",
    )))
    .unwrap();
    // Only from an unhealthy node, and only with a known body.
    let start = Command::RescheduleStarted { id: "old".into() };
    assert!(matches!(
        s.apply(start.clone()),
        Err(ApplyError::NotReschedulable { .. })
    ));
    fail(&mut s, b);
    s.apply(start.clone()).unwrap();
    let before = s.clone();
    s.apply(start).unwrap();
    assert_eq!(s, before, "starting twice changes nothing");
    assert!(s.rescheduling["S1"].was_running);
    // The copy may take the old one's name.
    s.apply(Command::Reserve {
        reservation: Reservation {
            id: "r1".into(),
            node: a.into(),
            name: Some("web".into()),
            resources: Resources::default(),
            swarm_id: Some("S1".into()),
        },
        overcommit: 0,
        checks: Checks::default(),
    })
    .unwrap();
    s.apply(Command::ContainerCreated {
        reservation: "r1".into(),
        container: with_swarm_id(listed("new", a, "web"), "S1"),
    })
    .unwrap();
    let named: Vec<&str> = s.containers.named("web").map(|c| c.id.as_str()).collect();
    assert_eq!(named, vec!["new"], "listed once, on the new node");
    assert!(s.is_stale(b, "old"));
    s.apply(Command::RescheduleDone {
        swarm_id: "S1".into(),
    })
    .unwrap();
    assert!(s.rescheduling.is_empty());
    // The node comes back listing the old copy: it stays out.
    s.apply(Command::NodeObserved(engine(b, "host"))).unwrap();
    let version = s.nodes[b].version;
    s.apply(Command::ContainersObserved {
        node: b.into(),
        containers: vec![with_swarm_id(listed("old", b, "web"), "S1")],
        version,
    })
    .unwrap();
    s.apply(Command::ContainerObserved(with_swarm_id(
        listed("old", b, "web"),
        "S1",
    )))
    .unwrap();
    assert!(s.containers.get("old").is_none());
    s.apply(Command::StaleRemoved {
        node: b.into(),
        id: "old".into(),
    })
    .unwrap();
    assert!(s.stale.is_empty());
    // Removing the container forgets its body.
    assert!(s.reschedule_specs.contains_key("S1"));
    s.apply(Command::ContainerRemoved { id: "new".into() })
        .unwrap();
    assert!(s.reschedule_specs.is_empty());
}

#[test]
fn a_copy_seen_in_a_node_list_also_retires_the_old_one() {
    let mut s = two_nodes();
    let (a, b) = ("AAAA:1111", "BBBB:2222");
    s.apply(Command::SpecRecorded {
        swarm_id: "S1".into(),
        body: "{}".into(),
        name: None,
    })
    .unwrap();
    s.apply(Command::ContainerObserved(with_swarm_id(
        listed("old", b, "x"),
        "S1",
    )))
    .unwrap();
    fail(&mut s, b);
    s.apply(Command::RescheduleStarted { id: "old".into() })
        .unwrap();
    // A new leader finds the copy the old one created but never recorded.
    let version = s.nodes[a].version;
    s.apply(Command::ContainersObserved {
        node: a.into(),
        containers: vec![with_swarm_id(listed("new", a, "x"), "S1")],
        version,
    })
    .unwrap();
    assert!(s.containers.get("old").is_none());
    assert!(s.is_stale(b, "old"));
    assert_eq!(s.nodes[b].usage.containers, 0);
}

#[test]
fn a_failed_create_forgets_its_body() {
    let mut s = two_nodes();
    s.apply(Command::SpecRecorded {
        swarm_id: "S2".into(),
        body: "{}".into(),
        name: None,
    })
    .unwrap();
    s.apply(Command::Reserve {
        reservation: Reservation {
            id: "r".into(),
            node: "AAAA:1111".into(),
            name: None,
            resources: Resources::default(),
            swarm_id: Some("S2".into()),
        },
        overcommit: 0,
        checks: Checks::default(),
    })
    .unwrap();
    s.apply(Command::Release { id: "r".into() }).unwrap();
    assert!(s.reschedule_specs.is_empty());
}
