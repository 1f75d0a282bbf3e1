//! Creates in flight: what `Reserve` checks against the state as it is
//! (so that placements made on one snapshot cannot both reserve), and how
//! `Release` and the container that ends a reservation
//! (`ContainerCreated`, atomically) give back what it held.

use crate::cluster::testing::{
    add_node, container, fail_node, host_port, info, listed, res, reserve_cmd, run, two_nodes,
    usage_world, GIB, MIB,
};
use crate::cluster::{
    ApplyError, Checks, ClusterState, Command, HostPort, Proto, Reservation, Resources, Unfit,
    SWARM_ID_LABEL,
};
use crate::scheduler::{place, ContainerSpec, Options};

/// floor(2 GiB × 1.05): what a 2 GiB node offers with the default overcommit.
const TWO_GIB_OC: i64 = 2_254_857_830;

/// A create that asks for `resources` and nothing else, as placement reads
/// it (what `docker run -m ... -p ...` comes to).
fn asking(resources: Resources) -> ContainerSpec {
    ContainerSpec {
        resources,
        ..Default::default()
    }
}

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

type ApplyCheck = fn(&Result<(), ApplyError>) -> bool;

/// What: node labels, a first command that succeeds, a second command and
/// what `apply` must answer to it, on one 2-CPU 2 GiB node `ID-n1`.
type ApplyRow = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Command,
    Command,
    ApplyCheck,
);

fn apply_rows() -> Vec<ApplyRow> {
    let r = |id: &str, name: Option<&str>, resources: Resources, oc: i64| {
        reserve_cmd(id, "ID-n1", name, resources, oc)
    };
    let none: &[(&str, &str)] = &[];
    vec![
        (
            "memory: 1.5 GiB twice on 2 GiB",
            none,
            r("r1", None, res(0, 3 * GIB / 2, &[]), 0),
            r("r2", None, res(0, 3 * GIB / 2, &[]), 0),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Memory { .. },
                        ..
                    })
                )
            },
        ),
        (
            "memory: 1 GiB + 1.1 GiB with 5% overcommit",
            none,
            r("r1", None, res(0, GIB, &[]), 50_000),
            r("r2", None, res(0, TWO_GIB_OC - GIB, &[]), 50_000),
            |o| o.is_ok(),
        ),
        (
            "memory: 1 GiB + 1.1 GiB + 1 byte with 5% overcommit",
            none,
            r("r1", None, res(0, GIB, &[]), 50_000),
            r("r2", None, res(0, TWO_GIB_OC - GIB + 1, &[]), 50_000),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Memory { .. },
                        ..
                    })
                )
            },
        ),
        (
            "cpu: 1.5 + 1 on 2 CPUs with 5%",
            none,
            r("r1", None, res(1500, 0, &[]), 50_000),
            r("r2", None, res(1000, 0, &[]), 50_000),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Cpu { .. },
                        ..
                    })
                )
            },
        ),
        (
            "cpu: 1 + 1 on 2 CPUs",
            none,
            r("r1", None, res(1000, 0, &[]), 0),
            r("r2", None, res(1000, 0, &[]), 0),
            |o| o.is_ok(),
        ),
        (
            "port: 8080/tcp twice",
            none,
            r("r1", None, res(0, 0, &["8080/tcp"]), 0),
            r("r2", None, res(0, 0, &["8080/tcp"]), 0),
            |o| matches!(o, Err(ApplyError::Unfit { reason: Unfit::Port(p), .. }) if p.port == 8080),
        ),
        (
            "port: all addresses then one address",
            none,
            r("r1", None, res(0, 0, &["8080/tcp"]), 0),
            r("r2", None, res(0, 0, &["127.0.0.1:8080/tcp"]), 0),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Port(_),
                        ..
                    })
                )
            },
        ),
        (
            "port: one address then all addresses",
            none,
            r("r1", None, res(0, 0, &["127.0.0.1:8080/tcp"]), 0),
            r("r2", None, res(0, 0, &["0.0.0.0:8080/tcp"]), 0),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Port(_),
                        ..
                    })
                )
            },
        ),
        (
            "port: two different addresses",
            none,
            r("r1", None, res(0, 0, &["127.0.0.1:8080/tcp"]), 0),
            r("r2", None, res(0, 0, &["127.0.0.2:8080/tcp"]), 0),
            |o| o.is_ok(),
        ),
        (
            "port: tcp then udp",
            none,
            r("r1", None, res(0, 0, &["8080/tcp"]), 0),
            r("r2", None, res(0, 0, &["8080/udp"]), 0),
            |o| o.is_ok(),
        ),
        (
            "slots: containerslots=1",
            &[("containerslots", "1")],
            r("r1", None, Resources::default(), 0),
            r("r2", None, Resources::default(), 0),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Slots(1),
                        ..
                    })
                )
            },
        ),
        (
            "name held by a create in flight",
            none,
            r("r1", Some("web"), Resources::default(), 0),
            r("r2", Some("web"), Resources::default(), 0),
            |o| matches!(o, Err(ApplyError::NameInUse { name, holder }) if name == "web" && holder == "r1"),
        ),
        (
            "duplicate reservation ID",
            none,
            r("r1", None, Resources::default(), 0),
            r("r1", None, Resources::default(), 0),
            |o| matches!(o, Err(ApplyError::DuplicateReservation(id)) if id == "r1"),
        ),
        (
            "unknown node",
            none,
            r("r1", None, Resources::default(), 0),
            reserve_cmd("r2", "nowhere", None, Resources::default(), 0),
            |o| matches!(o, Err(ApplyError::UnknownNode(_))),
        ),
        (
            "node turned unhealthy",
            none,
            Command::NodeFailed {
                id: "ID-n1".into(),
                error: "down".into(),
                unhealthy: true,
                at: "t".into(),
            },
            r("r1", None, Resources::default(), 0),
            |o| matches!(o, Err(ApplyError::NodeUnhealthy(n)) if n == "n1"),
        ),
        (
            "name held by a container",
            none,
            Command::ContainerObserved(container("c1", "ID-n1", "db", &[], None)),
            r("r1", Some("db"), Resources::default(), 0),
            |o| matches!(o, Err(ApplyError::NameInUse { holder, .. }) if holder == "c1"),
        ),
        (
            "port held by a container",
            none,
            Command::ContainerObserved(container(
                "c1",
                "ID-n1",
                "db",
                &[],
                Some(res(0, 0, &["53/udp"])),
            )),
            r("r1", None, res(0, 0, &["10.1.1.1:53/udp"]), 0),
            |o| {
                matches!(
                    o,
                    Err(ApplyError::Unfit {
                        reason: Unfit::Port(_),
                        ..
                    })
                )
            },
        ),
    ]
}

#[test]
fn apply_table() {
    let rows = apply_rows();
    let mut failures = Vec::new();
    for (what, labels, first, second, check) in &rows {
        let mut s = ClusterState::default();
        add_node(&mut s, info("ID-n1", "n1", 2, 2 * GIB, labels));
        if let Err(e) = s.apply(first.clone()) {
            failures.push(format!("{what}: the first command failed: {e}"));
            continue;
        }
        let before = s.clone();
        let outcome = s.apply(second.clone());
        if !check(&outcome) {
            failures.push(format!("{what}: unexpected {outcome:?}"));
        }
        if outcome.is_err() && s != before {
            failures.push(format!("{what}: a refused command changed the state"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reserve_after_unhealthy_is_refused() {
    let mut s = usage_world(&[("n1", 2, GIB, 0, 0, 0)]);
    fail_node(&mut s, "ID-n1");
    let before = s.clone();
    let outcome = s.apply(reserve_cmd("r", "ID-n1", None, Resources::default(), 0));
    assert!(
        matches!(outcome, Err(ApplyError::NodeUnhealthy(_))),
        "{outcome:?}"
    );
    assert_eq!(s, before);
}

#[test]
fn concurrent_placements_cannot_both_reserve() {
    // Two creates placed on the same snapshot pick the same node; apply()
    // turns the second away instead of over-committing.
    let mut s = usage_world(&[("n1", 2, 2 * GIB, 0, 0, 0), ("n2", 2, GIB, 0, 0, 0)]);
    let spec = asking(res(0, 3 * GIB / 2, &["8080/tcp"])); // -m 1.5g -p 8080:80
    let opts = Options::default();
    let snapshot = s.clone();
    let first = place(&snapshot, &spec, &opts, 1).unwrap();
    let second = place(&snapshot, &spec, &opts, 2).unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("ID-n1", "ID-n1"));
    run(
        &mut s,
        reserve_cmd("a", &first, None, spec.resources.clone(), opts.overcommit),
    );
    let before = s.clone();
    let refused = s.apply(reserve_cmd(
        "b",
        &second,
        None,
        spec.resources.clone(),
        opts.overcommit,
    ));
    assert!(
        matches!(refused, Err(ApplyError::Unfit { .. })),
        "{refused:?}"
    );
    assert_eq!(s, before);
    // Placing again on the new state finds nothing: n2 is too small.
    let e = place(&s, &spec, &opts, 3).unwrap_err();
    assert!(e.to_string().contains("of free memory"), "{e}");
    // Ports alone: the second placement sees the pending reservation.
    let small = asking(res(0, 0, &["8080/tcp"])); // -p 8080:80
    assert_eq!(place(&s, &small, &opts, 0).unwrap(), "ID-n2");
}

#[test]
fn container_created_swaps_the_reservation_atomically() {
    let mut s = usage_world(&[("n1", 2, 2 * GIB, 500, GIB / 2, 1)]);
    let resources = res(1000, GIB, &["8080/tcp"]);
    let usage_before = s.nodes["ID-n1"].usage.clone();
    run(
        &mut s,
        reserve_cmd("r1", "ID-n1", Some("web"), resources.clone(), 0),
    );
    let reserved = s.nodes["ID-n1"].usage.clone();
    assert_eq!(reserved.cpus_milli, usage_before.cpus_milli + 1000);
    assert_eq!(reserved.memory, usage_before.memory + GIB);
    assert_eq!(reserved.containers, usage_before.containers + 1);
    assert!(reserved.ports.contains(&host_port("8080/tcp")));
    run(
        &mut s,
        Command::ContainerCreated {
            reservation: "r1".into(),
            container: container("web0001", "ID-n1", "web", &[], Some(resources.clone())),
        },
    );
    assert_eq!(
        s.nodes["ID-n1"].usage, reserved,
        "usage unchanged by the swap"
    );
    assert!(s.reservations.is_empty());
    assert_eq!(
        s.containers.get("web0001").map(|c| c.name.as_str()),
        Some("web")
    );
    assert_eq!(s.name_holder("web").as_deref(), Some("web0001"));
    // The port stays taken for placement and for apply().
    let e = place(
        &s,
        &asking(res(0, 0, &["8080/tcp"])),
        &Options::default(),
        0,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("port 8080/tcp already in use on 1 node"),
        "{e}"
    );
    let before = s.clone();
    assert!(s
        .apply(reserve_cmd(
            "r2",
            "ID-n1",
            None,
            res(0, 0, &["8080/tcp"]),
            0
        ))
        .is_err());
    assert_eq!(s, before);
    // Removing the container frees everything again.
    run(
        &mut s,
        Command::ContainerRemoved {
            id: "web0001".into(),
        },
    );
    assert_eq!(s.nodes["ID-n1"].usage, usage_before);
}

#[test]
fn release_frees_what_a_reservation_held() {
    let mut s = usage_world(&[("n1", 2, 2 * GIB, 0, 0, 0)]);
    let before = s.clone();
    run(
        &mut s,
        reserve_cmd("r1", "ID-n1", Some("x"), res(2000, 2 * GIB, &["80/tcp"]), 0),
    );
    assert!(place(&s, &asking(res(0, 200 * MIB, &[])), &Options::default(), 0).is_err());
    run(&mut s, Command::Release { id: "r1".into() });
    assert_eq!(s, before);
    assert_eq!(
        place(&s, &asking(res(0, MIB, &[])), &Options::default(), 0).unwrap(),
        "ID-n1"
    );
}
