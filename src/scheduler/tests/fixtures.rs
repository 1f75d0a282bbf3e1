//! What the tables share: Docker create bodies built from `docker
//! run`-like flags and the specs placement reads from them, and placement
//! run over many seeds with its outcome compared to a row.
//!
//! The cluster states themselves are built with [`crate::cluster::testing`].

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::ContainerCreateBody;
use serde_json::{json, Value};

use crate::cluster::testing::{GIB, MIB};
use crate::cluster::ClusterState;
use crate::scheduler::spec::{env_to_labels, AFFINITIES_LABEL, CONSTRAINTS_LABEL};
use crate::scheduler::{place, ContainerSpec, Options, Strategy};

// ---------------------------------------------------------------------------
// Building specs from Docker create bodies
// ---------------------------------------------------------------------------

/// `1g`, `512m`, `1.5g`, `123` (bytes).
pub(super) fn size(text: &str) -> i64 {
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
pub(super) fn create_body(args: &str) -> Value {
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
pub(super) fn spec_of(mut body: Value) -> ContainerSpec {
    env_to_labels(&mut body).expect("env_to_labels");
    let body: ContainerCreateBody = serde_json::from_value(body).expect("create body");
    ContainerSpec::from_create(None, &body).expect("spec")
}

pub(super) fn spec(args: &str) -> ContainerSpec {
    spec_of(create_body(args))
}

/// The three ways a client hands swarm its rules (`constraint:X` /
/// `affinity:X`): `-e` entries read as they are, `-e` entries moved into the
/// labels by `env_to_labels` (and an image nobody has, so that placement takes
/// its slow path), and the two labels written as JSON arrays.
pub(super) fn spec_forms(rules: &[&str]) -> Vec<(&'static str, ContainerSpec)> {
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

pub(super) fn options(strategy: Strategy, overcommit: i64) -> Options {
    Options {
        strategy,
        overcommit,
        ..Options::default()
    }
}

pub(super) fn all_filters() -> Vec<String> {
    Options::default().filters
}

/// The nodes (by name, sorted, comma-separated) placement picks over 64
/// seeds, or `ERR: message`.
pub(super) fn outcome_with(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
) -> String {
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

pub(super) fn outcome(state: &ClusterState, spec: &ContainerSpec) -> String {
    outcome_with(state, spec, &options(Strategy::Random, 50_000))
}

/// Compares an outcome with a row's expectation: a node set (any order) or
/// `ERR: text` (the message contains each `|`-separated part of text).
pub(super) fn matches_want(got: &str, want: &str) -> bool {
    match want.strip_prefix("ERR:") {
        Some(parts) => got.starts_with("ERR:") && parts.split('|').all(|p| got.contains(p.trim())),
        None => {
            let mut want: Vec<&str> = want.split(',').map(str::trim).collect();
            want.sort_unstable();
            got == want.join(",")
        }
    }
}

pub(super) struct Failures(Vec<String>);

impl Failures {
    pub(super) fn new() -> Self {
        Failures(Vec::new())
    }

    pub(super) fn check(&mut self, row: impl std::fmt::Display, got: &str, want: &str) {
        if !matches_want(got, want) {
            self.0
                .push(format!("{row}\n    want {want}\n    got  {got}"));
        }
    }

    pub(super) fn done(self, rows: usize) {
        assert!(
            self.0.is_empty(),
            "{} of {rows} rows failed:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// 4 GiB, the memory of most nodes in the tables.
pub(super) const G4: i64 = 4 * GIB;
