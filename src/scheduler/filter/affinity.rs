//! affinity: `container==X` (the node runs a container whose name or ID
//! matches), `image==X` (the node has a matching image), and any other key
//! as a container label (`affinity:service==web`: the node runs a container
//! labelled service=web). `!=` asks for the opposite.

use std::collections::BTreeSet;

use super::{hard_list, Filter, Prepared};
use crate::cluster::{image_matches, normalize_image_name, ClusterState, LabelHolders, Node};
use crate::scheduler::expr::{Expr, Matcher};

/// Rejects nodes that fail a hard affinity.
pub struct Affinity;

/// Where a container or label affinity holds.
pub enum Holders<'a> {
    /// On these nodes.
    Nodes(BTreeSet<&'a str>),
    /// On the nodes running a container with the label value (the
    /// index's own list, asked node by node: none when `None`).
    Label(Option<LabelHolders<'a>>),
}

impl Holders<'_> {
    /// Whether the affinity holds on `node`.
    pub fn contains(&self, node: &str) -> bool {
        match self {
            Holders::Nodes(nodes) => nodes.contains(node),
            Holders::Label(holders) => holders.is_some_and(|h| h.contains(node)),
        }
    }
}

/// For a container or label affinity, the nodes where a container matches
/// its value; `None` for an image affinity (checked per node).
pub fn affinity_holders<'a>(expr: &Expr, state: &'a ClusterState) -> Option<Holders<'a>> {
    if expr.key == "image" {
        return None;
    }
    if let Matcher::Exact(value) = &expr.matcher {
        // The indexes answer exact values without a scan.
        if expr.key != "container" {
            return Some(Holders::Label(
                state.containers.label_holders(&expr.key, value),
            ));
        }
        let nodes: BTreeSet<&str> = state
            .containers
            .named(value)
            .chain(state.containers.get(value))
            .map(|c| c.node.as_str())
            .collect();
        return Some(Holders::Nodes(nodes));
    }
    let matching = state.containers.values().filter(|c| {
        if expr.key == "container" {
            expr.matcher.matches(&c.name) || expr.matcher.matches(&c.id)
        } else {
            c.labels
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(&expr.key) && expr.matcher.matches(v))
        }
    });
    Some(Holders::Nodes(matching.map(|c| c.node.as_str()).collect()))
}

/// `redis:7` → `redis`, `reg:5000/app:v2` → `reg:5000/app`, `app@sha256:..` → `app`.
fn repository(name: &str) -> &str {
    if let Some((repo, _)) = name.split_once('@') {
        return repo;
    }
    match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => &name[..i],
        _ => name,
    }
}

/// Whether `node` satisfies `expr`, given the precomputed `holders`.
pub fn affinity_accepts(expr: &Expr, holders: Option<&Holders<'_>>, node: &Node) -> bool {
    let present = match holders {
        Some(holders) => holders.contains(node.id()),
        None => node.images.iter().any(|image| match &expr.matcher {
            // As classic: a bare repository (`redis`) matches any of its tags.
            Matcher::Exact(value) => {
                image_matches(image, value)
                    || (repository(value) == value
                        && image.tags.iter().any(|t| {
                            repository(&normalize_image_name(t))
                                == repository(&normalize_image_name(value))
                        }))
            }
            Matcher::Pattern(re) => {
                re.is_match(&image.id)
                    || image.tags.iter().any(|t| {
                        re.is_match(t)
                            || re.is_match(&normalize_image_name(t))
                            || re.is_match(repository(t))
                    })
            }
        }),
    };
    match expr.op {
        crate::scheduler::expr::Op::Eq => present,
        crate::scheduler::expr::Op::Ne => !present,
    }
}

impl Filter for Affinity {
    fn name(&self) -> &'static str {
        "affinity"
    }

    fn enabled(&self, prepared: &Prepared<'_>) -> bool {
        prepared.spec.affinities.iter().any(|e| !e.soft)
    }

    fn check(&self, prepared: &Prepared<'_>, node: &Node) -> bool {
        prepared
            .spec
            .affinities
            .iter()
            .zip(&prepared.affinity_nodes)
            .filter(|(e, _)| !e.soft)
            .all(|(e, holders)| affinity_accepts(e, holders.as_ref(), node))
    }

    fn explain(&self, prepared: &Prepared<'_>, rejected: usize, total: usize) -> String {
        format!(
            "affinity {} (rejected {rejected} of {total} nodes)",
            hard_list(&prepared.spec.affinities)
        )
    }
}
