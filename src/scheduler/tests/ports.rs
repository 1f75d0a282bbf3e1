//! Host ports: which bindings conflict with those held by containers and
//! creates in flight (addresses, protocols, ranges, `--net=host`).

use super::fixtures::{outcome, spec, Failures};
use crate::cluster::testing::{add_container, add_node, info, res, reserve_cmd, run, GIB};
use crate::cluster::ClusterState;

/// node-1 runs a container bound to 8080/tcp, 127.0.0.1:9000/tcp and 53/udp;
/// node-2 has a create in flight holding 8080/tcp and runs a container bound
/// to 10.0.0.2:9000/tcp; node-3 runs containers bound to 0.0.0.0:6000/tcp
/// and [::]:5000/tcp.
fn port_world() -> ClusterState {
    let mut s = ClusterState::default();
    for (id, host) in [("p1", "node-1"), ("p2", "node-2"), ("p3", "node-3")] {
        add_node(&mut s, info(id, host, 4, 4 * GIB, &[]));
    }
    add_container(
        &mut s,
        "c1",
        "p1",
        "web",
        &[],
        Some(res(0, 0, &["8080/tcp", "127.0.0.1:9000/tcp", "53/udp"])),
    );
    run(
        &mut s,
        reserve_cmd("r2", "p2", Some("pending"), res(0, 0, &["8080/tcp"]), 0),
    );
    add_container(
        &mut s,
        "c2",
        "p2",
        "admin",
        &[],
        Some(res(0, 0, &["10.0.0.2:9000/tcp"])),
    );
    add_container(
        &mut s,
        "c3",
        "p3",
        "metrics",
        &[],
        Some(res(0, 0, &["0.0.0.0:6000/tcp", "[::]:5000/tcp"])),
    );
    s
}

const PORT_ROWS: &[(&str, &str)] = &[
    ("-p 8080:80", "node-3"),
    ("-p 8081:80", "node-1,node-2,node-3"),
    ("-p 8080:80/udp", "node-1,node-2,node-3"),
    ("-p 8080:80/sctp", "node-1,node-2,node-3"),
    ("-p 53:53/udp", "node-2,node-3"),
    ("-p 53:53", "node-1,node-2,node-3"),
    ("-p 0.0.0.0:53:53/udp", "node-2,node-3"),
    ("-p 127.0.0.1:9000:80", "node-2,node-3"),
    ("-p 10.0.0.2:9000:80", "node-1,node-3"),
    ("-p 10.0.0.9:9000:80", "node-1,node-2,node-3"),
    ("-p 9000:80", "node-3"),
    ("-p 127.0.0.2:8080:80", "node-3"),
    ("-p 6000:80", "node-1,node-2"),
    ("-p 127.0.0.1:6000:80", "node-1,node-2"),
    ("-p 127.0.0.1:5000:80", "node-1,node-2"),
    ("-p 8080:80 -p 53:53/udp", "node-3"),
    (
        "-p 8080:80 -p 6000:81",
        "ERR: ports 6000/tcp, 8080/tcp already in use on all 3 nodes",
    ),
    ("-p 8079-8081:80", "node-3"),
    ("-p 80", "node-1,node-2,node-3"),
    ("-p 0:80", "node-1,node-2,node-3"),
    ("--net host --expose 8080", "node-3"),
    ("--net host --expose 53/udp", "node-2,node-3"),
    ("--net host --expose 7000 --expose 6000", "node-1,node-2"),
    ("--expose 8080", "node-1,node-2,node-3"),
    ("--net bridge --expose 8080", "node-1,node-2,node-3"),
    (
        "-p 8080:80 -e constraint:node!=node-3",
        "ERR: port 8080/tcp already in use on 2 nodes|constraint node!=node-3 (rejected 1 of 3",
    ),
];

#[test]
fn port_table() {
    let state = port_world();
    let mut failures = Failures::new();
    for (args, want) in PORT_ROWS {
        let got = outcome(&state, &spec(args));
        failures.check(args, &got, want);
    }
    failures.done(PORT_ROWS.len());
}
