//! Nodes joining and observed, full container lists.

use crate::cluster::testing::{engine, listed, two_nodes};
use crate::cluster::{
    ApplyError, ClusterState, Command, Container, ImageRef, NodeHealth, Resources,
};

#[test]
fn a_joining_node_comes_with_its_containers_and_images() {
    let mut s = ClusterState::default();
    let held = Container {
        resources: Some(Resources {
            memory: 256 << 20,
            cpus_milli: 500,
            ports: Vec::new(),
        }),
        ..listed("a1", "AAAA:1111", "web")
    };
    s.apply(Command::NodeJoined {
        info: engine("AAAA:1111", "host"),
        containers: vec![held],
        version: 0,
        images: vec![ImageRef {
            id: "sha256:b0".into(),
            tags: vec!["busybox:local".into()],
        }],
    })
    .unwrap();
    let node = &s.nodes["AAAA:1111"];
    assert_eq!(node.health, NodeHealth::Healthy);
    assert_eq!(node.containers.len(), 1);
    assert_eq!((node.usage.memory, node.usage.cpus_milli), (256 << 20, 500));
    assert!(node.has_image("busybox:local"));
    assert_eq!(s.containers.get("a1").map(|c| c.name.as_str()), Some("web"));
    // Joining again with a list taken before a newer change: the node
    // and its images are recorded, the stale list is not.
    s.apply(Command::ContainerObserved(listed("a2", "AAAA:1111", "db")))
        .unwrap();
    s.apply(Command::NodeJoined {
        info: engine("AAAA:1111", "host"),
        containers: vec![],
        version: 0,
        images: vec![],
    })
    .unwrap();
    assert_eq!(s.nodes["AAAA:1111"].containers.len(), 2);
    assert!(!s.nodes["AAAA:1111"].has_image("busybox:local"));
}

#[test]
fn containers_observed_replaces_one_node_only() {
    let mut s = two_nodes();
    s.apply(Command::ContainerObserved(listed("a1", "AAAA:1111", "x")))
        .unwrap();
    s.apply(Command::ContainerObserved(listed("b1", "BBBB:2222", "y")))
        .unwrap();
    let version = s.nodes["AAAA:1111"].version;
    let stale = Command::ContainersObserved {
        node: "AAAA:1111".into(),
        containers: vec![],
        version: version - 1,
    };
    assert!(matches!(s.apply(stale), Err(ApplyError::Stale(_))));
    s.apply(Command::ContainersObserved {
        node: "AAAA:1111".into(),
        containers: vec![listed("a2", "AAAA:1111", "z")],
        version,
    })
    .unwrap();
    let ids: Vec<&str> = s.containers.keys().map(|k| k.as_str()).collect();
    assert_eq!(ids, vec!["a2", "b1"]);
    s.apply(Command::NodeRemoved {
        id: "BBBB:2222".into(),
    })
    .unwrap();
    assert_eq!(s.containers.len(), 1);
}

#[test]
fn command_and_age_stay_when_a_later_record_lacks_them() {
    let mut s = two_nodes();
    let seen = Container {
        command: "sleep 600".into(),
        created: 1_700_000_000,
        ..listed("a1", "AAAA:1111", "web")
    };
    s.apply(Command::ContainerObserved(seen)).unwrap();
    // A record made from the create request alone knows neither.
    s.apply(Command::ContainerObserved(listed("a1", "AAAA:1111", "web")))
        .unwrap();
    let kept = |s: &ClusterState| {
        let c = s.containers.get("a1").expect("a1");
        (c.command.clone(), c.created)
    };
    assert_eq!(kept(&s), ("sleep 600".to_string(), 1_700_000_000));
    // A full list of the node does not lose them either.
    let version = s.nodes["AAAA:1111"].version;
    s.apply(Command::ContainersObserved {
        node: "AAAA:1111".into(),
        containers: vec![listed("a1", "AAAA:1111", "web")],
        version,
    })
    .unwrap();
    assert_eq!(kept(&s), ("sleep 600".to_string(), 1_700_000_000));
}
