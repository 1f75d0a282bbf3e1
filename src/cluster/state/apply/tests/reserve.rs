//! Creates in flight: what `Reserve` checks against the state as it is,
//! and how `Release` and the container that ends a reservation give back
//! what it held.

use crate::cluster::testing::{listed, two_nodes};
use crate::cluster::{
    ApplyError, Checks, Command, HostPort, Proto, Reservation, Resources, Unfit, SWARM_ID_LABEL,
};

#[test]
fn reserve_refuses_taken_names_and_unhealthy_nodes() {
    let mut s = two_nodes();
    s.apply(Command::ContainerObserved(listed("a1", "AAAA:1111", "web")))
        .unwrap();
    let reserve = |id: &str, node: &str, name: &str| Command::Reserve {
        reservation: Reservation {
            id: id.into(),
            node: node.into(),
            name: Some(name.into()),
            resources: Resources::default(),
            swarm_id: None,
        },
        overcommit: 0,
        checks: Checks::default(),
    };
    assert!(matches!(
        s.apply(reserve("r1", "BBBB:2222", "web")),
        Err(ApplyError::NameInUse { .. })
    ));
    s.apply(reserve("r2", "BBBB:2222", "api")).unwrap();
    let before = s.clone();
    assert!(matches!(
        s.apply(reserve("r3", "AAAA:1111", "api")),
        Err(ApplyError::NameInUse { .. })
    ));
    assert_eq!(s, before, "a refused command changes nothing");
    assert_eq!(s.nodes["BBBB:2222"].usage.containers, 1);
    s.apply(Command::Release { id: "r2".into() }).unwrap();
    assert_eq!(s.nodes["BBBB:2222"].usage.containers, 0);
    s.apply(Command::NodeFailed {
        id: "BBBB:2222".into(),
        error: "down".into(),
        unhealthy: true,
        at: "t".into(),
    })
    .unwrap();
    assert!(matches!(
        s.apply(reserve("r4", "BBBB:2222", "x")),
        Err(ApplyError::NodeUnhealthy(_))
    ));
    assert!(matches!(
        s.apply(reserve("r5", "nope", "x")),
        Err(ApplyError::UnknownNode(_))
    ));
}

#[test]
fn disabled_port_and_slot_filters_are_not_checked_on_reserve() {
    let mut s = two_nodes();
    let port = HostPort {
        ip: String::new(),
        port: 8080,
        proto: Proto::Tcp,
    };
    let reserve = |id: &str, checks: Checks| Command::Reserve {
        reservation: Reservation {
            id: id.into(),
            node: "AAAA:1111".into(),
            name: None,
            resources: Resources {
                ports: vec![port.clone()],
                ..Default::default()
            },
            swarm_id: None,
        },
        overcommit: 0,
        checks,
    };
    s.apply(reserve("r1", Checks::default())).unwrap();
    assert!(matches!(
        s.apply(reserve("r2", Checks::default())),
        Err(ApplyError::Unfit {
            reason: Unfit::Port(_),
            ..
        })
    ));
    let off = Checks {
        ports: false,
        slots: false,
    };
    s.apply(reserve("r3", off)).unwrap();
}

#[test]
fn an_observed_container_ends_its_reservation() {
    let mut s = two_nodes();
    let resources = Resources {
        cpus_milli: 1000,
        memory: 1 << 20,
        ports: vec![],
    };
    s.apply(Command::Reserve {
        reservation: Reservation {
            id: "r1".into(),
            node: "AAAA:1111".into(),
            name: Some("web".into()),
            resources: resources.clone(),
            swarm_id: Some("sw1".into()),
        },
        overcommit: 0,
        checks: Checks::default(),
    })
    .unwrap();
    assert_eq!(s.nodes["AAAA:1111"].usage.cpus_milli, 1000);
    let mut c = listed("c1", "AAAA:1111", "web");
    c.labels.insert(SWARM_ID_LABEL.into(), "sw1".into());
    c.resources = Some(resources);
    s.apply(Command::ContainerObserved(c.clone())).unwrap();
    assert!(
        s.reservations.is_empty(),
        "the container replaces its reservation"
    );
    let usage = &s.nodes["AAAA:1111"].usage;
    assert_eq!(
        (usage.cpus_milli, usage.memory, usage.containers),
        (1000, 1 << 20, 1)
    );
    // The create path then reports it again: still counted once.
    s.apply(Command::ContainerCreated {
        reservation: "r1".into(),
        container: c,
    })
    .unwrap();
    assert_eq!(s.nodes["AAAA:1111"].usage.containers, 1);
}
