//! Where the rules of a create let it go: constraints and affinities (in
//! each of the forms a client may hand them over), dependencies on other
//! containers, subsets of the filters turned off with `--filter`, and the
//! messages of refusals.

use serde_json::json;

use super::fixtures::{
    all_filters, options, outcome, outcome_with, spec, spec_forms, spec_of, Failures,
};
use crate::cluster::testing::{
    add_container, add_node, fail_node, images, info, res, reserve_cmd, run, usage_world, GIB, MIB,
};
use crate::cluster::{ClusterState, NodeInfo};
use crate::scheduler::spec::{env_to_labels, AFFINITIES_LABEL, CONSTRAINTS_LABEL};
use crate::scheduler::{Options, Strategy};

// ---------------------------------------------------------------------------
// Constraints and affinities
// ---------------------------------------------------------------------------

/// Four healthy nodes and an unhealthy one, with containers and images:
///
/// - node-1: region=us-east zone=a disk=ssd tier=e1 Environment=Prod;
///   overlay2, 5.15.0-105-generic, Ubuntu, linux, x86_64
/// - node-2: region=us-west zone=b disk=hdd tier=ex;
///   btrfs, 6.1.0-18-amd64, Debian, linux, aarch64
/// - node-12: region=eu-central disk=ssd tier=e12;
///   overlay2, 6.1.0-18-amd64, Debian, linux, x86_64
/// - win-4: region=eu-west tier=e;
///   windowsfilter, 10.0 20348, Windows Server, windows, x86_64
/// - node-5: region=us-east disk=ssd, unhealthy
///
/// Containers: web-1 (service=web, com.example.team=blue) on node-1, web-2
/// (service=web) on node-2, db (service=db) on node-12. Images: node-1
/// redis:7 + nginx:1.25; node-2 busybox:latest and
/// registry.local:5000/team/app:v2; node-12 redis:latest.
fn fixture() -> ClusterState {
    let mut s = ClusterState::default();
    add_node(
        &mut s,
        info(
            "a1b2c3d4e5f6",
            "node-1",
            4,
            8 * GIB,
            &[
                ("region", "us-east"),
                ("zone", "a"),
                ("disk", "ssd"),
                ("tier", "e1"),
                ("Environment", "Prod"),
            ],
        ),
    );
    add_node(
        &mut s,
        NodeInfo {
            kernel_version: "6.1.0-18-amd64".into(),
            operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
            storage_driver: "btrfs".into(),
            architecture: "aarch64".into(),
            ..info(
                "b2c3d4e5f6a7",
                "node-2",
                4,
                8 * GIB,
                &[
                    ("region", "us-west"),
                    ("zone", "b"),
                    ("disk", "hdd"),
                    ("tier", "ex"),
                ],
            )
        },
    );
    add_node(
        &mut s,
        NodeInfo {
            kernel_version: "6.1.0-18-amd64".into(),
            operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
            ..info(
                "c3d4e5f6a7b8",
                "node-12",
                4,
                8 * GIB,
                &[("region", "eu-central"), ("disk", "ssd"), ("tier", "e12")],
            )
        },
    );
    add_node(
        &mut s,
        NodeInfo {
            kernel_version: "10.0 20348".into(),
            operating_system: "Windows Server 2022 Datacenter".into(),
            os_type: "windows".into(),
            storage_driver: "windowsfilter".into(),
            ..info(
                "d4e5f6a7b8c9",
                "win-4",
                4,
                8 * GIB,
                &[("region", "eu-west"), ("tier", "e")],
            )
        },
    );
    add_node(
        &mut s,
        info(
            "e5f6a7b8c9d0",
            "node-5",
            4,
            8 * GIB,
            &[("region", "us-east"), ("disk", "ssd")],
        ),
    );
    fail_node(&mut s, "e5f6a7b8c9d0");
    add_container(
        &mut s,
        "f00dcafe0001aaaa",
        "a1b2c3d4e5f6",
        "web-1",
        &[("service", "web"), ("com.example.team", "blue")],
        Some(res(100, 64 * MIB, &[])),
    );
    add_container(
        &mut s,
        "f00dcafe0002bbbb",
        "b2c3d4e5f6a7",
        "web-2",
        &[("service", "web")],
        None,
    );
    add_container(
        &mut s,
        "beefbeef0003cccc",
        "c3d4e5f6a7b8",
        "db",
        &[("service", "db")],
        Some(res(500, 256 * MIB, &["5432/tcp"])),
    );
    images(
        &mut s,
        "a1b2c3d4e5f6",
        &[("sha256:1111aaaa2222bbbb", &["redis:7", "nginx:1.25"])],
    );
    images(
        &mut s,
        "b2c3d4e5f6a7",
        &[
            ("sha256:2222bbbb3333cccc", &["busybox:latest"]),
            (
                "sha256:3333cccc4444dddd",
                &["registry.local:5000/team/app:v2"],
            ),
        ],
    );
    images(
        &mut s,
        "c3d4e5f6a7b8",
        &[("sha256:4444dddd5555eeee", &["redis:latest"])],
    );
    s
}

const HEALTHY: &str = "node-1,node-2,node-12,win-4";

/// Rules (`constraint:` / `affinity:`) → where the container may go.
const RULE_ROWS: &[(&[&str], &str)] = &[
    // == and != with exact values
    (&["constraint:region==us-east"], "node-1"),
    (&["constraint:region!=us-east"], "node-2,node-12,win-4"),
    (&["constraint:region==mars"], "ERR: constraint region==mars"),
    (&["constraint:region!=mars"], HEALTHY),
    (
        &["constraint:region==US-EAST"],
        "ERR: constraint region==US-EAST",
    ),
    (&["constraint:missing==x"], "ERR: constraint missing==x"),
    (&["constraint:missing!=x"], HEALTHY),
    // globs
    (&["constraint:region==us-*"], "node-1,node-2"),
    (&["constraint:region==eu-*"], "node-12,win-4"),
    (&["constraint:region!=us-*"], "node-12,win-4"),
    (&["constraint:region==*-west"], "node-2,win-4"),
    (&["constraint:tier==e?"], "node-1,node-2"),
    (&["constraint:tier==e*"], HEALTHY),
    (&["constraint:zone==*"], "node-1,node-2"),
    (&["constraint:zone!=a"], "node-2,node-12,win-4"),
    // regular expressions (unanchored unless anchored)
    (&["constraint:region==/^eu-(central|west)$/"], "node-12,win-4"),
    (&["constraint:region==/west/"], "node-2,win-4"),
    (&["constraint:tier==/^e.$/"], "node-1,node-2"),
    (&["constraint:tier!=/^e.$/"], "node-12,win-4"),
    (&["constraint:tier==/^e\\d+$/"], "node-1,node-12"),
    // keys are case-insensitive, values are not
    (&["constraint:REGION==us-east"], "node-1"),
    (&["constraint:Region!=us-east"], "node-2,node-12,win-4"),
    (&["constraint:environment==Prod"], "node-1"),
    (&["constraint:ENVIRONMENT==prod"], "ERR: constraint environment==prod"),
    // node: name or ID
    (&["constraint:node==node-1"], "node-1"),
    (&["constraint:NODE==win-4"], "win-4"),
    (&["constraint:node==node-?"], "node-1,node-2"),
    (&["constraint:node==node-*"], "node-1,node-2,node-12"),
    (&["constraint:node==/^node-1/"], "node-1,node-12"),
    (&["constraint:node!=node-1"], "node-2,node-12,win-4"),
    (&["constraint:node==b2c3d4e5f6a7"], "node-2"),
    (&["constraint:node!=b2c3d4e5f6a7"], "node-1,node-12,win-4"),
    (&["constraint:node==c3d4*"], "node-12"),
    (&["constraint:node==node-5"], "ERR: constraint node==node-5"),
    // docker info keys
    (&["constraint:storagedriver==overlay2"], "node-1,node-12"),
    (&["constraint:storagedriver!=overlay2"], "node-2,win-4"),
    (&["constraint:StorageDriver==btrfs"], "node-2"),
    (&["constraint:kernelversion==6.1.*"], "node-2,node-12"),
    (&["constraint:kernelversion==/generic$/"], "node-1"),
    (&["constraint:operatingsystem==Debian*"], "node-2,node-12"),
    (&["constraint:operatingsystem==/Windows Server/"], "win-4"),
    (&["constraint:ostype==windows"], "win-4"),
    (&["constraint:ostype==linux"], "node-1,node-2,node-12"),
    (&["constraint:OSType!=linux"], "win-4"),
    (&["constraint:architecture==aarch64"], "node-2"),
    (&["constraint:architecture==x86_64"], "node-1,node-12,win-4"),
    (&["constraint:architecture==arm*"], "ERR: constraint architecture==arm*"),
    // health
    (&["constraint:health==healthy"], HEALTHY),
    (
        &["constraint:health==unhealthy"],
        "ERR: a healthy node (1 node unhealthy)|constraint health==unhealthy (rejected 4 of 5 nodes)",
    ),
    (&["constraint:health!=healthy"], "ERR: constraint health!=healthy"),
    // several constraints all hold
    (&["constraint:disk==ssd", "constraint:region==eu-*"], "node-12"),
    (&["constraint:disk==ssd", "constraint:zone!=a"], "node-12"),
    (
        &["constraint:region==us-east", "constraint:region==us-west"],
        "ERR: constraint region==us-east, region==us-west",
    ),
    // soft constraints: dropped when no node satisfies them
    (&["constraint:region==~mars"], HEALTHY),
    (&["constraint:region==~us-east"], "node-1"),
    (&["constraint:region!=~us-east"], "node-2,node-12,win-4"),
    (&["constraint:region!=~*"], HEALTHY),
    (&["constraint:disk==ssd", "constraint:region==~us-*"], "node-1"),
    (&["constraint:disk==hdd", "constraint:region==~eu-*"], "node-2"),
    (&["constraint:disk==~ssd", "constraint:region==~us-*"], "node-1"),
    (&["constraint:region==~eu-*", "constraint:disk==~hdd"], "node-12,win-4"),
    (&["constraint:node==~node-5"], HEALTHY),
    (
        &["constraint:region==mars", "constraint:disk==~ssd"],
        "ERR: constraint region==mars (rejected",
    ),
    // container affinities: name, ID, glob, regex, negation, soft
    (&["affinity:container==web-1"], "node-1"),
    (&["affinity:container==web-*"], "node-1,node-2"),
    (&["affinity:container==/^web-\\d$/"], "node-1,node-2"),
    (&["affinity:container==db"], "node-12"),
    (&["affinity:container==beefbeef0003cccc"], "node-12"),
    (&["affinity:container==f00dcafe*"], "node-1,node-2"),
    (&["affinity:container!=db"], "node-1,node-2,win-4"),
    (&["affinity:container!=web-*"], "node-12,win-4"),
    (&["affinity:container==nope"], "ERR: affinity container==nope"),
    (&["affinity:container==~nope"], HEALTHY),
    (&["affinity:container==~db"], "node-12"),
    (&["affinity:container!=~web-*"], "node-12,win-4"),
    // image affinities: name, tag, repository, ID, ID prefix, glob, regex
    (&["affinity:image==busybox"], "node-2"),
    (&["affinity:image==busybox:latest"], "node-2"),
    (&["affinity:image==docker.io/library/busybox:latest"], "node-2"),
    (&["affinity:image==redis:7"], "node-1"),
    (&["affinity:image==redis:latest"], "node-12"),
    (&["affinity:image==redis"], "node-1,node-12"),
    (&["affinity:image==redis:8"], "ERR: affinity image==redis:8"),
    (&["affinity:image==docker.io/library/redis"], "node-1,node-12"),
    (&["affinity:image==/^redis$/"], "node-1,node-12"),
    (&["affinity:image!=redis"], "node-2,win-4"),
    (&["affinity:image==team/app"], "ERR: affinity image==team/app"),
    (&["affinity:image==sha256:2222bbbb3333cccc"], "node-2"),
    (&["affinity:image==2222bbbb"], "node-2"),
    (&["affinity:image==redis*"], "node-1,node-12"),
    (&["affinity:image==/^nginx/"], "node-1"),
    (&["affinity:image!=redis*"], "node-2,win-4"),
    (&["affinity:image==registry.local:5000/team/app:v2"], "node-2"),
    (&["affinity:image==registry.local:5000/team/app"], "node-2"),
    (&["affinity:image==alpine"], "ERR: affinity image==alpine"),
    (&["affinity:image==~alpine"], HEALTHY),
    (&["affinity:image==~busybox"], "node-2"),
    // container label affinities
    (&["affinity:service==web"], "node-1,node-2"),
    (&["affinity:service==db"], "node-12"),
    (&["affinity:service!=web"], "node-12,win-4"),
    (&["affinity:SERVICE==db"], "node-12"),
    (&["affinity:service==w*"], "node-1,node-2"),
    (&["affinity:com.example.team==blue"], "node-1"),
    (&["affinity:service==cache"], "ERR: affinity service==cache"),
    (&["affinity:service==~cache"], HEALTHY),
    // affinities and constraints together
    (
        &["affinity:container==web-*", "affinity:service!=db"],
        "node-1,node-2",
    ),
    (&["affinity:container!=web-1", "affinity:image==redis*"], "node-12"),
    (
        &["affinity:container==web-*", "constraint:region==us-west"],
        "node-2",
    ),
    (
        &["affinity:container==db", "constraint:region==us-*"],
        "ERR: affinity container==db|constraint region==us-*",
    ),
    (
        &["affinity:service==~web", "constraint:disk==ssd"],
        "node-1",
    ),
    (
        &["affinity:container==~web-*", "constraint:ostype==windows"],
        "win-4",
    ),
];

#[test]
fn rules_table() {
    let state = fixture();
    let mut failures = Failures::new();
    for (rules, want) in RULE_ROWS {
        for (form, spec) in spec_forms(rules) {
            let got = outcome(&state, &spec);
            failures.check(format_args!("{rules:?} via {form}"), &got, want);
        }
    }
    failures.done(RULE_ROWS.len());
}

#[test]
fn both_rule_forms_merge() {
    // -e entries are appended to the labels the client already set.
    let state = fixture();
    let mut body = json!({
        "Env": ["constraint:region==us-*"],
        "Labels": {
            CONSTRAINTS_LABEL: "[\"disk==hdd\"]",
            AFFINITIES_LABEL: "[\"service==web\"]"
        }
    });
    env_to_labels(&mut body).unwrap();
    assert_eq!(
        body["Labels"][CONSTRAINTS_LABEL],
        "[\"disk==hdd\",\"region==us-*\"]"
    );
    let spec = spec_of(body);
    assert_eq!(outcome(&state, &spec), "node-2");
}

// ---------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------

fn dependency_world() -> ClusterState {
    let mut s = ClusterState::default();
    for (id, host) in [
        ("11aa", "node-1"),
        ("22bb", "node-2"),
        ("33cc", "node-3"),
        ("44dd", "node-4"),
    ] {
        add_node(&mut s, info(id, host, 2, 2 * GIB, &[]));
    }
    for (id, node, name) in [
        ("d0d0d0d0aaaa", "11aa", "data"),
        ("db00db00aaaa", "11aa", "db"),
        ("cac4e000bbbb", "22bb", "cache"),
        ("0e70e700bbbb", "22bb", "net0"),
        ("d00b1e01aaaa", "11aa", "dup"),
        ("d00b1e03cccc", "33cc", "dup"),
        ("01d01d00dddd", "44dd", "old"),
    ] {
        add_container(&mut s, id, node, name, &[], None);
    }
    fail_node(&mut s, "44dd");
    s
}

const DEPENDENCY_ROWS: &[(&str, &str)] = &[
    ("", "node-1,node-2,node-3"),
    ("--volumes-from data", "node-1"),
    ("--volumes-from data:ro", "node-1"),
    ("--volumes-from d0d0", "node-1"),
    ("--volumes-from d0d0d0d0aaaa", "node-1"),
    ("--link /db:/web/db", "node-1"),
    ("--link db:database", "node-1"),
    ("--link cache", "node-2"),
    ("--net container:net0", "node-2"),
    ("--net container:0e70e700bbbb", "node-2"),
    ("--volumes-from data --link db", "node-1"),
    ("--volumes-from data --link db --link data", "node-1"),
    ("--volumes-from node-3/dup", "node-3"),
    (
        "--volumes-from data --link cache",
        "ERR: dependencies on one node|data on node-1|cache on node-2",
    ),
    (
        "--link db --net container:net0",
        "ERR: dependencies on one node|db on node-1|net0 on node-2",
    ),
    ("--link ghost", "ERR: dependency ghost (no such container)"),
    ("--volumes-from data --link ghost", "ERR: dependency ghost"),
    ("--volumes-from dup", "ERR: dependency dup|several nodes"),
    ("--link db -m 3g", "ERR: of free memory"),
    (
        "--link db -e constraint:node==node-2",
        "ERR: constraint node==node-2|dependencies db (on node node-1",
    ),
    ("--link old", "ERR: a healthy node"),
    (
        "--link cache -e affinity:container!=net0",
        "ERR: affinity container!=net0",
    ),
];

#[test]
fn dependency_table() {
    let state = dependency_world();
    let mut failures = Failures::new();
    for (args, want) in DEPENDENCY_ROWS {
        let got = outcome(&state, &spec(args));
        failures.check(args, &got, want);
    }
    failures.done(DEPENDENCY_ROWS.len());
}

/// Local networks and named volumes (`ContainerSpec::located`, as the
/// manager fills it in from the engines): only nodes holding all of them,
/// and among those the dependencies' node.
#[test]
fn located_networks_and_volumes() {
    use crate::scheduler::spec::Located;
    let state = dependency_world();
    let at = |what: &str, nodes: &[&str]| Located {
        what: what.to_string(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
    };
    let rows: Vec<(&str, Vec<Located>, &str)> = vec![
        ("", vec![at("network front", &["22bb"])], "node-2"),
        (
            "",
            vec![at("volume data", &["11aa", "33cc"])],
            "node-1,node-3",
        ),
        (
            "",
            vec![
                at("network front", &["22bb", "33cc"]),
                at("volume data", &["11aa", "33cc"]),
            ],
            "node-3",
        ),
        (
            "--link db",
            vec![at("volume data", &["11aa", "33cc"])],
            "node-1",
        ),
        (
            "--link db",
            vec![at("network front", &["22bb"])],
            "ERR: dependencies db (on node node-1|network front (on node node-2",
        ),
        // On an unhealthy node only: both reasons are given.
        (
            "",
            vec![at("network back", &["44dd"])],
            "ERR: a healthy node|network back (on node node-4, which cannot take it)",
        ),
        (
            "",
            vec![at("network front", &["22bb"]), at("volume data", &["11aa"])],
            "ERR: network front (on node node-2|volume data (on node node-1",
        ),
    ];
    let mut failures = Failures::new();
    for (args, located, want) in &rows {
        let mut spec = spec(args);
        spec.located = located.clone();
        let got = outcome(&state, &spec);
        failures.check(format!("{args} {located:?}"), &got, want);
        // The one-pass walks and the reference pipeline agree.
        let options = options(Strategy::Spread, 50_000);
        let walked = crate::scheduler::place(&state, &spec, &options, 7).map_err(|e| e.to_string());
        let reference =
            crate::scheduler::place_reference(&state, &spec, &options, 7, &Default::default())
                .map_err(|e| e.to_string());
        assert_eq!(walked, reference, "{args} {located:?}");
    }
    failures.done(rows.len());
}

// ---------------------------------------------------------------------------
// --filter subsets
// ---------------------------------------------------------------------------

/// node-1 (us-east) binds 8080; node-2 (us-west) has its single container
/// slot taken; node-3 (eu-west) is unhealthy.
fn filter_world() -> ClusterState {
    let mut s = ClusterState::default();
    add_node(
        &mut s,
        info("f1", "node-1", 2, 2 * GIB, &[("region", "us-east")]),
    );
    add_node(
        &mut s,
        info(
            "f2",
            "node-2",
            2,
            2 * GIB,
            &[("region", "us-west"), ("containerslots", "1")],
        ),
    );
    add_node(
        &mut s,
        info("f3", "node-3", 2, 2 * GIB, &[("region", "eu-west")]),
    );
    add_container(
        &mut s,
        "c1",
        "f1",
        "c1",
        &[],
        Some(res(0, 0, &["8080/tcp"])),
    );
    add_container(&mut s, "c2", "f2", "c2", &[], None);
    fail_node(&mut s, "f3");
    s
}

/// Filters turned off (`*` = every filter off) → outcome.
const FILTER_ROWS: &[(&[&str], &str, &str)] = &[
    (&[], "", "node-1"),
    (&["containerslots"], "", "node-1,node-2"),
    // Without the health filter the unhealthy node-3 is a candidate, the
    // last one: the strategy ranks failing nodes below the others.
    (&["health"], "", "node-1"),
    (&["health"], "-e constraint:region==eu-west", "node-3"),
    (&["health", "containerslots"], "", "node-1,node-2"),
    (&["*"], "", "node-1,node-2"),
    (&["*"], "-m 100g", "ERR: of free memory"),
    (
        &[],
        "-e constraint:region==us-west",
        "ERR: a free container slot|constraint region==us-west",
    ),
    (&["constraint"], "-e constraint:region==mars", "node-1"),
    (
        &["constraint", "containerslots"],
        "-e constraint:region==~us-west",
        "node-1,node-2",
    ),
    (
        &["containerslots"],
        "-e constraint:region==~us-west",
        "node-2",
    ),
    (
        &[],
        "-p 8080:80",
        "ERR: port 8080/tcp already in use on 1 node",
    ),
    (&["port"], "-p 8080:80", "node-1"),
    (
        &[],
        "-e affinity:container==nope",
        "ERR: affinity container==nope",
    ),
    (&["affinity"], "-e affinity:container==nope", "node-1"),
    (
        &["affinity", "containerslots"],
        "-e affinity:container==~c2",
        "node-1,node-2",
    ),
    (&["containerslots"], "-e affinity:container==~c2", "node-2"),
    (
        &[],
        "--link ghost",
        "ERR: dependency ghost (no such container)",
    ),
    (&["dependency"], "--link ghost", "node-1"),
    (&["containerslots"], "--link c2", "node-2"),
    (
        &["dependency", "containerslots"],
        "--link c2",
        "node-1,node-2",
    ),
];

#[test]
fn filter_subset_table() {
    let state = filter_world();
    let mut failures = Failures::new();
    for (off, args, want) in FILTER_ROWS {
        let filters: Vec<String> = all_filters()
            .into_iter()
            .filter(|f| !off.contains(&"*") && !off.contains(&f.as_str()))
            .collect();
        let opts = Options {
            filters,
            ..options(Strategy::Random, 50_000)
        };
        let got = outcome_with(&state, &spec(args), &opts);
        failures.check(format_args!("off {off:?} {args:?}"), &got, want);
    }
    failures.done(FILTER_ROWS.len());
}

#[test]
fn every_filter_has_a_name_in_the_defaults() {
    let names = all_filters();
    for name in [
        "health",
        "port",
        "containerslots",
        "dependency",
        "affinity",
        "constraint",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Unschedulable messages
// ---------------------------------------------------------------------------

fn two_nodes_on_8080() -> ClusterState {
    let mut s = usage_world(&[("n1", 2, GIB, 0, 0, 0), ("n2", 2, GIB, 0, 0, 0)]);
    add_container(
        &mut s,
        "w1",
        "ID-n1",
        "w1",
        &[],
        Some(res(0, 0, &["8080/tcp"])),
    );
    run(
        &mut s,
        reserve_cmd("r1", "ID-n2", None, res(0, 0, &["8080/tcp", "9090/tcp"]), 0),
    );
    s
}

fn empty() -> ClusterState {
    ClusterState::default()
}

/// Builds a state for a row.
type World = fn() -> ClusterState;

const MESSAGE_ROWS: &[(World, &str, &str)] = &[
    (
        empty,
        "",
        "ERR: Unable to find a node that satisfies the following conditions: a node (the cluster has none)",
    ),
    (
        fixture,
        "-e constraint:region==mars",
        "ERR: Unable to find a node that satisfies the following conditions: \
         a healthy node (1 node unhealthy); constraint region==mars (rejected 4 of 5 nodes)",
    ),
    (
        fixture,
        "-e constraint:region==mars -e constraint:disk==~ssd",
        "ERR: constraint region==mars (rejected 4 of 5 nodes)",
    ),
    (
        two_nodes_on_8080,
        "-p 8080:80",
        "ERR: port 8080/tcp already in use on all 2 nodes",
    ),
    (two_nodes_on_8080, "-p 9090:80", "n1"),
    (
        two_nodes_on_8080,
        "-p 9090:80 -e constraint:node==n2",
        "ERR: port 9090/tcp already in use on 1 node; constraint node==n2 (rejected 1 of 2 nodes)",
    ),
    (
        two_nodes_on_8080,
        "-p 9090:80 -m 2g",
        "ERR: port 9090/tcp already in use on 1 node; 2 GiB of free memory (no node has it)",
    ),
    (
        two_nodes_on_8080,
        "-p 127.0.0.1:8080:80 -p 9090:90",
        "ERR: ports 9090/tcp, 127.0.0.1:8080/tcp already in use on all 2 nodes",
    ),
    (
        two_nodes_on_8080,
        "-m 1.5g",
        "ERR: no resources available to schedule container: 1.5 GiB of free memory (no node has it)",
    ),
    (
        two_nodes_on_8080,
        "-m 1.5g -e constraint:node!=n9",
        "ERR: 1.5 GiB of free memory (no node has it)",
    ),
    (
        two_nodes_on_8080,
        "-c 3",
        "ERR: no resources available to schedule container: 3 free CPUs (lacking on all 2 nodes)",
    ),
    (
        two_nodes_on_8080,
        "--cpus 2.5",
        "ERR: 2.5 free CPUs (lacking on all 2 nodes)",
    ),
    (
        dependency_world,
        "--link db --link cache",
        "ERR: dependencies on one node (they are on different nodes: db on node-1, cache on node-2)",
    ),
    (
        fixture,
        "-e affinity:container==nope",
        "ERR: affinity container==nope (rejected 4 of 5 nodes)",
    ),
    (
        fixture,
        "-e affinity:container==nope -e affinity:image==~redis",
        "ERR: affinity container==nope (rejected 4 of 5 nodes)",
    ),
    (
        filter_world,
        "-e constraint:node==node-2",
        "ERR: a free container slot (containerslots reached on 1 node)",
    ),
    (
        filter_world,
        "-e constraint:node==node-3",
        "ERR: a healthy node (1 node unhealthy)",
    ),
    (
        filter_world,
        "-m 3g --cpus 1",
        "ERR: a healthy node (1 node unhealthy); \
         a free container slot (containerslots reached on 1 node); \
         3 GiB of free memory (no node has it)",
    ),
];

#[test]
fn message_table() {
    let mut failures = Failures::new();
    for (world, args, want) in MESSAGE_ROWS {
        let state = world();
        let got = outcome(&state, &spec(args));
        failures.check(args, &got, want);
    }
    failures.done(MESSAGE_ROWS.len());
}

/// `node==NAME` is answered from the nodes by name, ID and host name, not
/// by walking every node: nodes sharing a host name (`host`, `host-bbbb`)
/// are both `node==host`, one only by its cluster name or its ID.
#[test]
fn node_constraints_reach_every_node_they_name() {
    let s = crate::cluster::testing::two_nodes();
    let placed = |constraint: &str| -> std::collections::BTreeSet<String> {
        let spec = crate::scheduler::ContainerSpec {
            constraints: vec![crate::scheduler::expr::Expr::parse(constraint).unwrap()],
            ..Default::default()
        };
        (0..64)
            .filter_map(|seed| crate::scheduler::place(&s, &spec, &Options::default(), seed).ok())
            .collect()
    };
    let both: std::collections::BTreeSet<String> =
        ["AAAA:1111".to_string(), "BBBB:2222".to_string()].into();
    assert_eq!(placed("node==host"), both);
    assert_eq!(placed("node==host-bbbb"), ["BBBB:2222".to_string()].into());
    assert_eq!(placed("node==AAAA:1111"), ["AAAA:1111".to_string()].into());
    assert!(placed("node==other").is_empty());
}
