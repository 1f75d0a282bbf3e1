//! Table-driven tests of placement over synthetic cluster states, built only
//! through `Command`s and `apply()`, plus property tests of `place()` and of
//! the `Reserve` re-check.
//!
//! Most tables state the *set* of nodes a container may land on: placement
//! runs with the `random` strategy over many seeds and the nodes it picks are
//! compared with the row (`"ERR: text"` rows expect `Unschedulable` with that
//! text in its message).

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::ContainerCreateBody;
use serde_json::{json, Value};

use super::spec::{env_to_labels, AFFINITIES_LABEL, CONSTRAINTS_LABEL};
use super::{place, place_with, ContainerSpec, InFlight, Options, Strategy};
use crate::cluster::testing::{
    add_container, add_node, fail_node, images, info, res, reserve_cmd, run, usage_world, NodeRow,
    GIB, MIB,
};
use crate::cluster::{ClusterState, Command, NodeInfo, Resources};

// ---------------------------------------------------------------------------
// Building specs from Docker create bodies
// ---------------------------------------------------------------------------

/// `1g`, `512m`, `1.5g`, `123` (bytes).
fn size(text: &str) -> i64 {
    let (number, unit) = match text.char_indices().last() {
        Some((i, 'g')) => (&text[..i], GIB),
        Some((i, 'm')) => (&text[..i], MIB),
        Some((i, 'k')) => (&text[..i], 1024),
        _ => (text, 1),
    };
    (number.parse::<f64>().unwrap() * unit as f64) as i64
}

/// A Docker create body from `docker run`-like flags (no spaces in values):
/// `-p [ip:]host:container[/proto]`, `--expose 80[/udp]`, `--net MODE`,
/// `-m SIZE`, `-c SHARES`, `--cpus X`, `--volumes-from X`, `--link X`,
/// `-e VAR`, `--label k=v`, `--image X`.
fn create_body(args: &str) -> Value {
    let mut body = serde_json::Map::new();
    let mut hc = serde_json::Map::new();
    let mut env: Vec<Value> = Vec::new();
    let mut labels = serde_json::Map::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut exposed = serde_json::Map::new();
    let mut volumes_from: Vec<Value> = Vec::new();
    let mut links: Vec<Value> = Vec::new();
    let mut words = args.split_whitespace();
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag {
            "-p" => {
                let (addr, proto) = value.split_once('/').unwrap_or((value, "tcp"));
                let parts: Vec<&str> = addr.split(':').collect();
                let (ip, host, inner) = match parts.as_slice() {
                    [inner] => ("", "", *inner),
                    [host, inner] => ("", *host, *inner),
                    [ip, host, inner] => (*ip, *host, *inner),
                    _ => panic!("bad -p {value}"),
                };
                bindings
                    .entry(format!("{inner}/{proto}"))
                    .or_default()
                    .push(json!({"HostIp": ip, "HostPort": host}));
            }
            "--expose" => {
                let key = if value.contains('/') {
                    value.to_string()
                } else {
                    format!("{value}/tcp")
                };
                exposed.insert(key, json!({}));
            }
            "--net" => {
                hc.insert("NetworkMode".into(), json!(value));
            }
            "-m" => {
                hc.insert("Memory".into(), json!(size(value)));
            }
            "-c" => {
                hc.insert("CpuShares".into(), json!(value.parse::<i64>().unwrap()));
            }
            "--cpus" => {
                let nano = (value.parse::<f64>().unwrap() * 1e9).round() as i64;
                hc.insert("NanoCpus".into(), json!(nano));
            }
            "--volumes-from" => volumes_from.push(json!(value)),
            "--link" => links.push(json!(value)),
            "-e" => env.push(json!(value)),
            "--label" => {
                let (k, v) = value.split_once('=').unwrap();
                labels.insert(k.into(), json!(v));
            }
            "--image" => {
                body.insert("Image".into(), json!(value));
            }
            other => panic!("unknown flag {other}"),
        }
    }
    if !bindings.is_empty() {
        hc.insert("PortBindings".into(), json!(bindings));
    }
    if !volumes_from.is_empty() {
        hc.insert("VolumesFrom".into(), Value::Array(volumes_from));
    }
    if !links.is_empty() {
        hc.insert("Links".into(), Value::Array(links));
    }
    if !hc.is_empty() {
        body.insert("HostConfig".into(), Value::Object(hc));
    }
    if !exposed.is_empty() {
        body.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if !env.is_empty() {
        body.insert("Env".into(), Value::Array(env));
    }
    if !labels.is_empty() {
        body.insert("Labels".into(), Value::Object(labels));
    }
    Value::Object(body)
}

/// The spec of a create body, after `env_to_labels` as the API does.
fn spec_of(mut body: Value) -> ContainerSpec {
    env_to_labels(&mut body).expect("env_to_labels");
    let body: ContainerCreateBody = serde_json::from_value(body).expect("create body");
    ContainerSpec::from_create(None, &body).expect("spec")
}

fn spec(args: &str) -> ContainerSpec {
    spec_of(create_body(args))
}

/// The three ways a client hands swarm its rules (`constraint:X` /
/// `affinity:X`): `-e` entries read as they are, `-e` entries moved into the
/// labels by `env_to_labels` (and an image nobody has, so that placement takes
/// its slow path), and the two labels written as JSON arrays.
fn spec_forms(rules: &[&str]) -> Vec<(&'static str, ContainerSpec)> {
    let env: Vec<&str> = rules.to_vec();
    let raw: ContainerCreateBody = serde_json::from_value(json!({ "Env": env })).unwrap();
    let raw = ContainerSpec::from_create(None, &raw).expect("spec from raw env");
    let moved = spec_of(json!({ "Env": env, "Image": "nobody-has-this:v1" }));
    let mut constraints = Vec::new();
    let mut affinities = Vec::new();
    for rule in rules {
        if let Some(c) = rule.strip_prefix("constraint:") {
            constraints.push(c);
        } else if let Some(a) = rule.strip_prefix("affinity:") {
            affinities.push(a);
        } else {
            panic!("rule {rule} is neither constraint: nor affinity:");
        }
    }
    let mut labels = serde_json::Map::new();
    if !constraints.is_empty() {
        labels.insert(
            CONSTRAINTS_LABEL.into(),
            json!(serde_json::to_string(&constraints).unwrap()),
        );
    }
    if !affinities.is_empty() {
        labels.insert(
            AFFINITIES_LABEL.into(),
            json!(serde_json::to_string(&affinities).unwrap()),
        );
    }
    let labelled = spec_of(json!({ "Labels": labels, "Env": ["A=1"] }));
    vec![("env", raw), ("env moved", moved), ("labels", labelled)]
}

// ---------------------------------------------------------------------------
// Running placement
// ---------------------------------------------------------------------------

fn options(strategy: Strategy, overcommit: u32) -> Options {
    Options {
        strategy,
        overcommit,
        ..Options::default()
    }
}

fn all_filters() -> Vec<String> {
    Options::default().filters
}

/// The nodes (by name, sorted, comma-separated) placement picks over 64
/// seeds, or `ERR: message`.
fn outcome_with(state: &ClusterState, spec: &ContainerSpec, options: &Options) -> String {
    let mut names = BTreeSet::new();
    let mut errors = BTreeSet::new();
    for seed in 0..64 {
        match place(state, spec, options, seed) {
            Ok(id) => {
                names.insert(state.nodes[&id].name.clone());
            }
            Err(e) => {
                errors.insert(e.to_string());
            }
        }
    }
    assert!(
        names.is_empty() || errors.is_empty(),
        "placement both succeeded ({names:?}) and failed ({errors:?})"
    );
    match errors.into_iter().next() {
        Some(e) => format!("ERR: {e}"),
        None => names.into_iter().collect::<Vec<_>>().join(","),
    }
}

fn outcome(state: &ClusterState, spec: &ContainerSpec) -> String {
    outcome_with(state, spec, &options(Strategy::Random, 50_000))
}

/// Compares an outcome with a row's expectation: a node set (any order) or
/// `ERR: text` (the message contains each `|`-separated part of text).
fn matches_want(got: &str, want: &str) -> bool {
    match want.strip_prefix("ERR:") {
        Some(parts) => got.starts_with("ERR:") && parts.split('|').all(|p| got.contains(p.trim())),
        None => {
            let mut want: Vec<&str> = want.split(',').map(str::trim).collect();
            want.sort_unstable();
            got == want.join(",")
        }
    }
}

struct Failures(Vec<String>);

impl Failures {
    fn new() -> Self {
        Failures(Vec::new())
    }

    fn check(&mut self, row: impl std::fmt::Display, got: &str, want: &str) {
        if !matches_want(got, want) {
            self.0
                .push(format!("{row}\n    want {want}\n    got  {got}"));
        }
    }

    fn done(self, rows: usize) {
        assert!(
            self.0.is_empty(),
            "{} of {rows} rows failed:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

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

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// CPU, memory, overcommit
// ---------------------------------------------------------------------------

const RESOURCE_ROWS: &[(&[NodeRow], &str, u32, &str)] = &[
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
// Strategies
// ---------------------------------------------------------------------------

const G4: i64 = 4 * GIB;

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
    assert!(!s.nodes.summary_drift());
    let rows: &[(Strategy, &str, &str)] = &[
        (Strategy::Spread, "--image busybox", "c"),
        (Strategy::Binpack, "--image busybox", "c"),
        (Strategy::Random, "--image busybox", "c"),
        (Strategy::Spread, "--image alpine", "a"),
    ];
    check_strategy_rows(&s, rows);
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
    (&[("n1", false)], "n1,n2"),
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
    (&["health"], "", "node-1,node-3"),
    (&["health", "containerslots"], "", "node-1,node-2,node-3"),
    (&["*"], "", "node-1,node-2,node-3"),
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
        "ERR: unable to find a node that satisfies: a node (the cluster has none)",
    ),
    (
        fixture,
        "-e constraint:region==mars",
        "ERR: unable to find a node that satisfies: \
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
        "ERR: 1.5 GiB of free memory (no node has it)",
    ),
    (
        two_nodes_on_8080,
        "-m 1.5g -e constraint:node!=n9",
        "ERR: 1.5 GiB of free memory (no node has it)",
    ),
    (
        two_nodes_on_8080,
        "-c 3",
        "ERR: 3 free CPUs (lacking on all 2 nodes)",
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

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

mod props {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use proptest::test_runner::Config;

    use super::{add_node, images, info, reserve_cmd};
    use crate::cluster::{
        ClusterState, Command, Container, ContainerState, HostPort, Node, NodeHealth, Proto,
        Resources,
    };
    use crate::scheduler::expr::Expr;
    use crate::scheduler::strategy::weight;
    use crate::scheduler::{
        place, place_with, ContainerSpec, InFlight, Options, Strategy as Placement,
    };

    const REGIONS: [&str; 3] = ["us-east", "us-west", "eu-west"];
    const IPS: [&str; 3] = ["", "127.0.0.1", "10.0.0.1"];
    const MIB: i64 = 1 << 20;

    #[derive(Debug, Clone)]
    struct GenRes {
        cpus_milli: u64,
        memory_mib: i64,
        ports: Vec<(usize, u16, bool)>,
    }

    impl GenRes {
        fn resources(&self) -> Resources {
            let mut ports: Vec<HostPort> = Vec::new();
            for &(ip, port, udp) in &self.ports {
                let p = HostPort {
                    ip: IPS[ip].into(),
                    port,
                    proto: if udp { Proto::Udp } else { Proto::Tcp },
                };
                // One create never binds a port twice itself.
                if !ports.iter().any(|q| q.conflicts(&p)) {
                    ports.push(p);
                }
            }
            Resources {
                cpus_milli: self.cpus_milli,
                memory: self.memory_mib * MIB,
                ports,
            }
        }
    }

    #[derive(Debug, Clone)]
    struct GenNode {
        cpus: i64,
        memory_mib: i64,
        region: usize,
        slots: Option<usize>,
        unhealthy: bool,
        held: Vec<(GenRes, bool)>,
    }

    #[derive(Debug, Clone)]
    struct GenRule {
        region: usize,
        glob: bool,
        ne: bool,
        soft: bool,
    }

    impl GenRule {
        fn text(&self) -> String {
            let value = if self.glob {
                "us-*"
            } else {
                REGIONS[self.region % 3]
            };
            let op = if self.ne { "!=" } else { "==" };
            let soft = if self.soft { "~" } else { "" };
            format!("region{op}{soft}{value}")
        }

        /// Independent of the scheduler's matcher.
        fn holds(&self, node: &Node) -> bool {
            let matched = match node.info.labels.get("region") {
                Some(v) if self.glob => v.starts_with("us-"),
                Some(v) => v == REGIONS[self.region % 3],
                None => false,
            };
            matched != self.ne
        }
    }

    fn gen_res() -> impl Strategy<Value = GenRes> {
        (
            prop_oneof![Just(0u64), 1u64..3000],
            prop_oneof![Just(0i64), 1i64..2048],
            prop::collection::vec((0..3usize, 8000u16..8004, any::<bool>()), 0..=2),
        )
            .prop_map(|(cpus_milli, memory_mib, ports)| GenRes {
                cpus_milli,
                memory_mib,
                ports,
            })
    }

    fn gen_node() -> impl Strategy<Value = GenNode> {
        (
            0i64..8,
            prop_oneof![Just(0i64), 256i64..8192],
            0..4usize,
            prop::option::weighted(0.3, 0..4usize),
            prop::bool::weighted(0.2),
            prop::collection::vec((gen_res(), any::<bool>()), 0..5),
        )
            .prop_map(
                |(cpus, memory_mib, region, slots, unhealthy, held)| GenNode {
                    cpus,
                    memory_mib,
                    region,
                    slots,
                    unhealthy,
                    held,
                },
            )
    }

    fn gen_rule() -> impl Strategy<Value = GenRule> {
        (
            0..3usize,
            prop::bool::weighted(0.2),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(region, glob, ne, soft)| GenRule {
                region,
                glob,
                ne,
                soft,
            })
    }

    fn gen_spec() -> impl Strategy<Value = (GenRes, Vec<GenRule>)> {
        (gen_res(), prop::collection::vec(gen_rule(), 0..=2))
    }

    fn gen_placement() -> impl Strategy<Value = Placement> {
        prop_oneof![
            Just(Placement::Spread),
            Just(Placement::Binpack),
            Just(Placement::Random)
        ]
    }

    fn gen_overcommit() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), Just(50_000u32), Just(250_000u32)]
    }

    fn node_id(i: usize) -> String {
        format!("N{i}")
    }

    /// Nodes, then what they hold (containers, or creates in flight through
    /// Reserve), kept within capacity, then the failures.
    fn build(nodes: &[GenNode], overcommit: u32) -> ClusterState {
        let mut s = ClusterState::default();
        for (i, n) in nodes.iter().enumerate() {
            let slots = n.slots.map(|v| v.to_string());
            let mut labels: Vec<(&str, &str)> = Vec::new();
            if n.region < 3 {
                labels.push(("region", REGIONS[n.region]));
            }
            if let Some(v) = &slots {
                labels.push(("containerslots", v));
            }
            add_node(
                &mut s,
                info(
                    &node_id(i),
                    &format!("h{i}"),
                    n.cpus,
                    n.memory_mib * MIB,
                    &labels,
                ),
            );
        }
        for (i, n) in nodes.iter().enumerate() {
            let id = node_id(i);
            for (j, (held, pending)) in n.held.iter().enumerate() {
                let resources = held.resources();
                if s.nodes[&id].fits(&resources, overcommit).is_err() {
                    continue;
                }
                let command = if *pending {
                    reserve_cmd(&format!("r-{i}-{j}"), &id, None, resources, overcommit)
                } else {
                    Command::ContainerObserved(Container {
                        id: format!("c-{i}-{j}"),
                        node: id.clone(),
                        name: format!("c-{i}-{j}"),
                        image: "busybox".into(),
                        state: ContainerState::Running,
                        labels: BTreeMap::new(),
                        resources: Some(resources),
                    })
                };
                s.apply(command).unwrap();
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            if n.unhealthy {
                s.apply(Command::NodeFailed {
                    id: node_id(i),
                    error: "down".into(),
                    unhealthy: true,
                    at: "t".into(),
                })
                .unwrap();
            }
        }
        s
    }

    fn make_spec(res: &GenRes, rules: &[GenRule]) -> ContainerSpec {
        let mut constraints = Vec::new();
        for rule in rules {
            let expr = Expr::parse(&rule.text()).unwrap();
            if !constraints
                .iter()
                .any(|e: &Expr| e.to_string() == expr.to_string())
            {
                constraints.push(expr);
            }
        }
        ContainerSpec {
            resources: res.resources(),
            constraints,
            ..Default::default()
        }
    }

    fn options(strategy: Placement, overcommit: u32) -> Options {
        Options {
            strategy,
            overcommit,
            ..Options::default()
        }
    }

    /// Whether `node` may take `spec`, computed without the filters.
    fn feasible(node: &Node, spec: &ContainerSpec, rules: &[GenRule], overcommit: u32) -> bool {
        node.health == NodeHealth::Healthy
            && rules.iter().filter(|r| !r.soft).all(|r| r.holds(node))
            && !spec
                .resources
                .ports
                .iter()
                .any(|p| node.usage.ports.iter().any(|u| u.conflicts(p)))
            && node.fits(&spec.resources, overcommit).is_ok()
    }

    fn within_capacity(s: &ClusterState, overcommit: u32) -> Result<(), String> {
        for node in s.nodes.values() {
            let u = &node.usage;
            if u.memory > node.memory_capacity(overcommit) {
                return Err(format!("{} holds {} bytes of memory", node.name, u.memory));
            }
            if u.cpus_milli > node.cpu_capacity_milli(overcommit) {
                return Err(format!("{} holds {} milli-CPUs", node.name, u.cpus_milli));
            }
            for (i, a) in u.ports.iter().enumerate() {
                if let Some(b) = u.ports[i + 1..].iter().find(|b| a.conflicts(b)) {
                    return Err(format!("{} binds {a} and {b}", node.name));
                }
            }
            if let Some(slots) = node.container_slots() {
                if u.containers > slots {
                    return Err(format!(
                        "{} holds {} of {slots} slots",
                        node.name, u.containers
                    ));
                }
            }
        }
        Ok(())
    }

    fn config() -> Config {
        Config {
            cases: 400,
            // No failure file: a failing case found becomes a named test.
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// Where `spec` goes by the one-pass ranking and by the candidate-list
    /// ranking (a soft rule that every node satisfies sends it down that
    /// path), with creates `pending` (node index modulo the nodes) in flight.
    fn ranked_both_ways(
        state: &ClusterState,
        spec: &ContainerSpec,
        pending: &[(usize, GenRes)],
        strategy: Placement,
        seed: u64,
    ) -> (
        Result<crate::cluster::NodeId, crate::scheduler::Unschedulable>,
        Result<crate::cluster::NodeId, crate::scheduler::Unschedulable>,
    ) {
        let mut in_flight = InFlight::default();
        for (i, load) in pending {
            in_flight.add(&node_id(*i % state.nodes.len()), &load.resources());
        }
        let listed = ContainerSpec {
            constraints: vec![Expr::parse("region!=~no-such-region").unwrap()],
            ..spec.clone()
        };
        let opts = options(strategy, 50_000);
        (
            place_with(state, spec, &opts, seed, &in_flight),
            place_with(state, &listed, &opts, seed, &in_flight),
        )
    }

    proptest! {
        #![proptest_config(config())]

        /// place() answers a node iff one is feasible; the node is feasible,
        /// honours the soft constraints whenever some feasible node does, and
        /// is one of those spread / binpack rank first.
        #[test]
        fn placement_is_sound_complete_and_ranked(
            nodes in prop::collection::vec(gen_node(), 1..=8),
            (res, rules) in gen_spec(),
            strategy in gen_placement(),
            overcommit in gen_overcommit(),
            seed in any::<u64>(),
        ) {
            let state = build(&nodes, overcommit);
            let spec = make_spec(&res, &rules);
            let opts = options(strategy, overcommit);
            let ok: Vec<&Node> = state
                .nodes
                .values()
                .filter(|n| feasible(n, &spec, &rules, overcommit))
                .collect();
            match place(&state, &spec, &opts, seed) {
                Err(e) => prop_assert!(
                    ok.is_empty(),
                    "refused ({e}) though {} nodes fit",
                    ok.len()
                ),
                Ok(id) => {
                    let node = &state.nodes[&id];
                    prop_assert!(node.health == NodeHealth::Healthy);
                    for rule in rules.iter().filter(|r| !r.soft) {
                        prop_assert!(rule.holds(node), "{} breaks {}", node.name, rule.text());
                    }
                    prop_assert!(node.port_conflict(&spec.resources.ports).is_none());
                    prop_assert!(node.fits(&spec.resources, overcommit).is_ok());
                    prop_assert!(ok.iter().any(|n| n.id() == id));
                    // Soft constraints narrow in order, each dropped when
                    // no remaining node satisfies it.
                    let mut narrowed = ok.clone();
                    for rule in rules.iter().filter(|r| r.soft) {
                        if narrowed.iter().any(|n| rule.holds(n)) {
                            narrowed.retain(|n| rule.holds(n));
                        }
                    }
                    prop_assert!(narrowed.iter().any(|n| n.id() == id));
                    let key = |n: &Node| (weight(n, &spec.resources), n.usage.containers);
                    let expected = match strategy {
                        Placement::Spread => narrowed.iter().min_by_key(|n| key(n)).copied(),
                        Placement::Binpack => narrowed
                            .iter()
                            .copied()
                            .fold(None, |best: Option<&Node>, n| match best {
                                Some(b) if key(b) >= key(n) => Some(b),
                                _ => Some(n),
                            }),
                        Placement::Random => Some(node),
                    };
                    prop_assert_eq!(expected.map(key), Some(key(node)));
                }
            }
        }

        /// Placing and reserving until placement fails never over-commits a
        /// node nor binds a port twice, and apply() accepts every answer of
        /// place().
        #[test]
        fn place_and_reserve_never_overcommits(
            nodes in prop::collection::vec(gen_node(), 1..=8),
            specs in prop::collection::vec(gen_spec(), 1..=3),
            strategy in gen_placement(),
            overcommit in gen_overcommit(),
        ) {
            let mut state = build(&nodes, overcommit);
            prop_assert!(within_capacity(&state, overcommit).is_ok());
            let opts = options(strategy, overcommit);
            let specs: Vec<ContainerSpec> =
                specs.iter().map(|(r, rules)| make_spec(r, rules)).collect();
            for i in 0..40u64 {
                let spec = &specs[i as usize % specs.len()];
                let Ok(node) = place(&state, spec, &opts, i) else { break };
                let reserved = state.apply(reserve_cmd(
                    &format!("p{i}"),
                    &node,
                    Some(&format!("new-{i}")),
                    spec.resources.clone(),
                    overcommit,
                ));
                prop_assert!(reserved.is_ok(), "place() chose {node}, apply() said {reserved:?}");
                if let Err(e) = within_capacity(&state, overcommit) {
                    prop_assert!(false, "after {} reservations: {e}", i + 1);
                }
            }
        }

        /// A Reserve that does not fit is refused and changes nothing; one
        /// that fits adds exactly its resources.
        #[test]
        fn refused_reserve_changes_nothing(
            nodes in prop::collection::vec(gen_node(), 1..=8),
            target in 0..9usize,
            res in gen_res(),
            name in prop::option::of(0..3usize),
            overcommit in gen_overcommit(),
        ) {
            let mut state = build(&nodes, overcommit);
            let node = node_id(target);
            let resources = res.resources();
            let name = name.map(|i| format!("c-0-{i}"));
            let before = state.clone();
            let fits = state.nodes.get(&node).map(|n| {
                n.health == NodeHealth::Healthy && n.fits(&resources, overcommit).is_ok()
            });
            let name_free = name.as_deref().is_none_or(|n| state.name_holder(n).is_none());
            let outcome = state.apply(reserve_cmd(
                "x",
                &node,
                name.as_deref(),
                resources.clone(),
                overcommit,
            ));
            match outcome {
                Err(_) => prop_assert_eq!(&state, &before),
                Ok(()) => {
                    prop_assert!(fits == Some(true) && name_free);
                    let (was, now) = (&before.nodes[&node].usage, &state.nodes[&node].usage);
                    prop_assert_eq!(now.memory, was.memory + resources.memory);
                    prop_assert_eq!(now.cpus_milli, was.cpus_milli + resources.cpus_milli);
                    prop_assert_eq!(now.containers, was.containers + 1);
                    prop_assert_eq!(now.ports.len(), was.ports.len() + resources.ports.len());
                }
            }
            if fits != Some(true) {
                prop_assert!(state == before);
            }
        }

        /// The one-pass ranking (both pickers in one walk, in-flight loads
        /// by cursor, the image probed by hash) picks the node that the
        /// candidate-list ranking picks, with creates in flight and the
        /// image on some nodes or on all: a soft rule that every node satisfies
        /// sends the same placement down the second path.
        #[test]
        fn one_pass_ranks_as_the_candidate_list_does(
            nodes in prop::collection::vec(gen_node(), 1..=12),
            holders in prop::collection::vec(any::<bool>(), 12),
            everywhere in any::<bool>(),
            pending in prop::collection::vec((0..12usize, gen_res()), 0..=6),
            res in gen_res(),
            strategy in gen_placement(),
            seed in any::<u64>(),
        ) {
            let mut state = build(&nodes, 50_000);
            for (i, holds) in holders.iter().take(nodes.len()).enumerate() {
                if *holds || everywhere {
                    images(&mut state, &node_id(i), &[("sha256:b0", &["busybox:local"])]);
                }
            }
            let one_pass = ContainerSpec {
                image: Some("busybox:local".into()),
                ..make_spec(&res, &[])
            };
            let (walked, listed) = ranked_both_ways(&state, &one_pass, &pending, strategy, seed);
            prop_assert_eq!(walked, listed);
        }

        /// The walk over the nodes' summaries alone (health the only check,
        /// no resources asked, the image on every node or none asked) picks
        /// the node that the candidate-list ranking picks, with creates in
        /// flight that hold resources or not, and with unhealthy nodes; and
        /// so does the walk over the nodes when the image is on some only.
        #[test]
        fn the_summary_walk_ranks_as_the_candidate_list_does(
            nodes in prop::collection::vec(gen_node(), 1..=16),
            pending in prop::collection::vec((0..16usize, gen_res()), 0..=8),
            strategy in gen_placement(),
            seed in any::<u64>(),
            with_image in any::<bool>(),
            lacking in prop::option::of(0..16usize),
        ) {
            let nodes: Vec<GenNode> = nodes
                .into_iter()
                .map(|n| GenNode { slots: None, ..n })
                .collect();
            let mut state = build(&nodes, 50_000);
            for i in 0..nodes.len() {
                if lacking.is_none_or(|l| l % nodes.len() != i) {
                    images(&mut state, &node_id(i), &[("sha256:b0", &["busybox:local"])]);
                }
            }
            let spec = ContainerSpec {
                image: with_image.then(|| "busybox:local".into()),
                ..Default::default()
            };
            let (walked, listed) = ranked_both_ways(&state, &spec, &pending, strategy, seed);
            prop_assert_eq!(walked, listed);
        }
    }
}
