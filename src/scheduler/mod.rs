//! Placement: which node a new container goes to.
//!
//! Pure functions over a [`ClusterState`] snapshot: no I/O, no locks, so
//! placement can be tested and benchmarked alone. The pipeline:
//!
//! 1. hard filters in order (health, port, containerslots, dependency,
//!    affinity, constraint; `--filter` enables a subset);
//! 2. resources: CPU and memory must fit (overcommit included);
//! 3. soft constraints and affinities (`~`), each dropped when no remaining
//!    node satisfies it;
//! 4. nodes that already hold the image are preferred (no registry may be
//!    reachable to pull it elsewhere);
//! 5. the strategy ranks what is left (see [`strategy`]).
//!
//! The caller turns the answer into a `Reserve` command, which `apply()`
//! re-checks against the latest state, so concurrent placements never
//! over-commit a node or bind one host port twice.

pub mod expr;
pub mod filter;
pub mod spec;
pub mod strategy;

use std::collections::BTreeSet;

use crate::cluster::{
    human_bytes, human_cpus, ClusterState, ImageQuery, LookupError, Node, NodeHealth, NodeId,
    NodeSummary, OvercommitPpm,
};
use filter::{
    affinity_accepts, affinity_holders, constraint_accepts, ContainerSlots, Filter, Health,
    Prepared, FILTERS,
};
use strategy::Picker;

/// Index of the `health` filter in [`FILTERS`].
const HEALTH: usize = 0;
/// Index of the `containerslots` filter in [`FILTERS`].
const SLOTS: usize = 2;
pub use spec::{ContainerSpec, SpecError};
pub use strategy::{InFlight, Strategy};

/// No node can take the container; `reasons` says why, one per step that
/// rejected nodes, with counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to find a node that satisfies: {}", .reasons.join("; "))]
pub struct Unschedulable {
    /// Why nodes were rejected.
    pub reasons: Vec<String>,
}

/// Placement settings of a manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How to rank nodes.
    pub strategy: Strategy,
    /// Overcommit, parts per million of capacity.
    pub overcommit: OvercommitPpm,
    /// Names of the enabled filters.
    pub filters: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strategy: Strategy::Spread,
            overcommit: 50_000,
            filters: FILTERS.iter().map(|f| f.name().to_string()).collect(),
        }
    }
}

impl Options {
    /// The reservation checks matching the enabled `port` and
    /// `containerslots` filters.
    pub fn checks(&self) -> crate::cluster::Checks {
        let on = |name: &str| self.filters.iter().any(|f| f == name);
        crate::cluster::Checks {
            ports: on("port"),
            slots: on("containerslots"),
        }
    }
}

/// Picks the node for `spec`. `seed` drives the `random` strategy and
/// breaks ties, so that placement stays a pure function of its inputs.
pub fn place(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    seed: u64,
) -> Result<NodeId, Unschedulable> {
    place_with(state, spec, options, seed, &InFlight::default())
}

/// [`place`], ranking nodes as if the placements `in_flight` were already
/// in the state.
pub fn place_with(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    seed: u64,
    in_flight: &InFlight,
) -> Result<NodeId, Unschedulable> {
    if state.nodes.is_empty() {
        return Err(Unschedulable {
            reasons: vec!["a node (the cluster has none)".into()],
        });
    }
    let enabled = |name: &str| options.filters.iter().any(|f| f == name);
    let dependency_node = if enabled("dependency") {
        dependency_node(state, spec)?
    } else {
        None
    };
    let prepared = Prepared {
        state,
        spec,
        affinity_nodes: spec
            .affinities
            .iter()
            .map(|e| affinity_holders(e, state))
            .collect(),
        dependency_node,
        any_slots: state.nodes.with_slots() > 0,
    };
    // health and containerslots run on every node: checked inline, the
    // others through the `Filter` trait. `rejected` counts per FILTERS index.
    let check_health = enabled(Health.name());
    let check_slots = enabled(ContainerSlots.name()) && prepared.any_slots;
    let active: Vec<(usize, &dyn Filter)> = FILTERS
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, f)| f.name() != Health.name() && f.name() != ContainerSlots.name())
        .filter(|(_, f)| enabled(f.name()) && f.enabled(&prepared))
        .collect();
    let resources = &spec.resources;
    let wants_resources = resources.cpus_milli > 0 || resources.memory > 0;
    // Soft rules belong to their filter: `--filter` without it ignores them.
    let soft_constraints = enabled("constraint") && spec.constraints.iter().any(|e| e.soft);
    let soft_affinities = enabled("affinity") && spec.affinities.iter().any(|e| e.soft);
    let image = spec.image.as_deref().map(ImageQuery::new);

    let mut rejected = [0usize; FILTERS.len()];
    let (mut no_memory, mut no_cpu) = (0usize, 0usize);
    let unhealthy = |node: &Node| check_health && node.health != NodeHealth::Healthy;
    let mut passes = |node: &Node| {
        if unhealthy(node) {
            rejected[HEALTH] += 1;
            return false;
        }
        if check_slots && node.slots.is_some_and(|s| node.usage.containers >= s) {
            rejected[SLOTS] += 1;
            return false;
        }
        for (i, f) in &active {
            if !f.check(&prepared, node) {
                rejected[*i] += 1;
                return false;
            }
        }
        if wants_resources {
            let u = &node.usage;
            if resources.memory > 0
                && u.memory + resources.memory > node.memory_capacity(options.overcommit)
            {
                no_memory += 1;
                return false;
            }
            if resources.cpus_milli > 0
                && u.cpus_milli + resources.cpus_milli > node.cpu_capacity_milli(options.overcommit)
            {
                no_cpu += 1;
                return false;
            }
        }
        true
    };

    let health_only = active.is_empty() && !check_slots && !wants_resources;
    let mut rejected_unhealthy = 0usize;
    let chosen = if !soft_constraints && !soft_affinities {
        // One pass, no allocation: the best node overall and the best that
        // holds the image; the latter wins when there is one. Unless
        // `exact`, a node with a name of the image's hash counts as holding
        // it (no string comparison per tied node): only the winner's name
        // is compared, and a mere hash collision ranks again exactly. When
        // every node has a name of that hash, every node counts as holding
        // it: one picker serves as both. Health and rank are read from the
        // nodes' summaries, the node itself only for what they lack.
        let everywhere = image
            .as_ref()
            .is_some_and(|q| state.nodes.with_image_hash(q.hash) == state.nodes.len());
        let mut scan = |exact: bool| {
            let mut in_flight = in_flight.cursor();
            // Health alone when nothing else is checked: read from the
            // summary, not a call per node.
            let mut healthy = |summary: &NodeSummary| {
                let down = check_health && !summary.healthy;
                if down {
                    rejected_unhealthy += 1;
                }
                !down
            };
            if health_only && !exact && (image.is_none() || everywhere) {
                // The nodes themselves are not read at all, only the winner.
                let mut any = Picker::new(options.strategy, seed);
                let ids = state.nodes.ids();
                for (i, (summary, id)) in state.nodes.summaries().iter().zip(ids).enumerate() {
                    if !healthy(summary) {
                        continue;
                    }
                    let pending = in_flight.load_headed(summary.id_head, || id.as_str());
                    let node = || state.nodes.get(id);
                    let Some(key) = strategy::summary_key(summary, resources, pending, node) else {
                        continue;
                    };
                    any.offer(i, key);
                }
                let best = any.best().and_then(|i| state.nodes.get(&ids[i]));
                return (image.as_ref().and(best), best);
            }
            let mut any = Picker::new(options.strategy, seed);
            let mut holding = Picker::new(options.strategy, seed);
            let nodes = state.nodes.values().zip(state.nodes.summaries());
            for ((node, summary), id) in nodes.zip(state.nodes.ids()) {
                let passed = if health_only {
                    healthy(summary)
                } else {
                    passes(node)
                };
                if !passed {
                    continue;
                }
                let pending = in_flight.load_headed(summary.id_head, || id.as_str());
                let Some(key) = strategy::summary_key(summary, resources, pending, || Some(node))
                else {
                    continue;
                };
                any.offer(node, key);
                let holds = |q: &ImageQuery| {
                    if exact {
                        node.has_image_query(q)
                    } else {
                        node.may_have_image(q)
                    }
                };
                if holding.could_take(key) && image.as_ref().is_some_and(holds) {
                    holding.offer(node, key);
                }
            }
            (holding.best(), any.best())
        };
        match (scan(false), &image) {
            ((Some(node), _), Some(q)) if node.has_image_query(q) => Some(node),
            ((Some(_), _), _) => {
                let (holding, any) = scan(true);
                holding.or(any)
            }
            ((None, any), _) => any,
        }
    } else {
        let mut candidates: Vec<&Node> = state.nodes.values().filter(|n| passes(n)).collect();
        for expr in spec
            .constraints
            .iter()
            .filter(|e| e.soft && soft_constraints)
        {
            narrow(&mut candidates, |n| constraint_accepts(expr, n));
        }
        for (expr, holders) in spec.affinities.iter().zip(&prepared.affinity_nodes) {
            if expr.soft && soft_affinities {
                narrow(&mut candidates, |n| {
                    affinity_accepts(expr, holders.as_ref(), n)
                });
            }
        }
        if let Some(query) = &image {
            narrow(&mut candidates, |n| n.has_image_query(query));
        }
        strategy::choose(
            candidates.into_iter(),
            resources,
            in_flight,
            options.strategy,
            seed,
        )
    };
    if let Some(node) = chosen {
        return Ok(node.info.id.clone());
    }
    rejected[HEALTH] += rejected_unhealthy;

    let total = state.nodes.len();
    let mut reasons: Vec<String> = FILTERS
        .iter()
        .zip(&rejected)
        .filter(|(_, r)| **r > 0)
        .map(|(f, r)| f.explain(&prepared, *r, total))
        .collect();
    let left = total - rejected.iter().sum::<usize>();
    if no_memory > 0 {
        reasons.push(if no_memory == left {
            format!(
                "{} of free memory (no node has it)",
                human_bytes(resources.memory)
            )
        } else {
            format!(
                "{} of free memory (lacking on {})",
                human_bytes(resources.memory),
                filter::count_nodes(no_memory, left)
            )
        });
    }
    if no_cpu > 0 {
        reasons.push(format!(
            "{} free CPUs (lacking on {})",
            human_cpus(resources.cpus_milli),
            filter::count_nodes(no_cpu, left)
        ));
    }
    if reasons.is_empty() {
        reasons.push("a node to place the container on".into());
    }
    Err(Unschedulable { reasons })
}

/// Keeps the candidates that satisfy `keep`, unless none does (soft rules).
fn narrow(candidates: &mut Vec<&Node>, keep: impl Fn(&Node) -> bool) {
    if candidates.iter().any(|n| keep(n)) {
        candidates.retain(|n| keep(n));
    }
}

/// The node all of the spec's dependencies live on.
fn dependency_node<'a>(
    state: &'a ClusterState,
    spec: &ContainerSpec,
) -> Result<Option<&'a str>, Unschedulable> {
    let mut nodes: BTreeSet<(&str, String)> = BTreeSet::new();
    for dependency in &spec.dependencies {
        match state.resolve_container(dependency) {
            Ok(c) => {
                let node = state
                    .nodes
                    .get_key_value(&c.node)
                    .map(|(k, _)| k.as_str())
                    .unwrap_or_default();
                nodes.insert((node, dependency.clone()));
            }
            Err(LookupError::NotFound(_)) => {
                return Err(Unschedulable {
                    reasons: vec![format!("dependency {dependency} (no such container)")],
                })
            }
            Err(e) => {
                return Err(Unschedulable {
                    reasons: vec![format!("dependency {dependency} ({e})")],
                })
            }
        }
    }
    let distinct: BTreeSet<&str> = nodes.iter().map(|(n, _)| *n).collect();
    if distinct.len() > 1 {
        let placed: Vec<String> = nodes
            .iter()
            .map(|(n, d)| format!("{d} on {}", state.node_name(n)))
            .collect();
        return Err(Unschedulable {
            reasons: vec![format!(
                "dependencies on one node (they are on different nodes: {})",
                placed.join(", ")
            )],
        });
    }
    Ok(distinct.into_iter().next())
}

#[cfg(test)]
mod tests;
