//! The placement pipeline, step by step: what a placement means, written
//! so that it reads in order. [`place_reference`] runs the steps over every
//! node, each step narrowing a list of candidates, as SwarmKit's pipeline
//! and Nomad's chained iterators do:
//!
//! 1. [`Pipeline::passes_filters`]: the hard filters, in [`FILTERS`] order,
//!    a node stopping at the first that rejects it;
//! 2. [`Pipeline::fits`]: CPU and memory fit (overcommit included);
//! 3. [`Pipeline::apply_soft_rules`]: soft constraints and affinities, each
//!    dropped when no candidate left satisfies it;
//! 4. [`Pipeline::prefer_image`]: the nodes holding the image, when any does;
//! 5. the strategy ranks what is left ([`strategy::choose`]), nodes whose
//!    refreshes fail below all others ([`strategy::Rank`]).
//!
//! Nodes turned away are counted per step ([`Rejections`]); when none is
//! left, [`Pipeline::unschedulable`] says why in words. `place()` answers
//! the same through the walks of [`super::walk`], which need no candidate
//! list; the property tests hold the two to the same choices.

use std::collections::BTreeSet;

use super::expr::{Matcher, Op};
use super::filter::{
    self, affinity_accepts, affinity_holders, constraint_accepts, ContainerSlots, Filter, Health,
    Prepared, FILTERS,
};
use super::strategy::{self, InFlight};
use super::{ContainerSpec, Options, Unschedulable};
use crate::cluster::{
    cpu_with_overcommit, human_bytes, human_cpus, memory_with_overcommit, Bucket, ClusterState,
    ImageQuery, LookupError, Node, NodeHealth, NodeId,
};

/// Index of the `health` filter in [`FILTERS`].
const HEALTH: usize = 0;
/// Index of the `containerslots` filter in [`FILTERS`].
const SLOTS: usize = 2;

/// The reference placement: every step over every node, in order (see the
/// module documentation). Same inputs, same answer as `place_with`.
pub fn place_reference(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    seed: u64,
    in_flight: &InFlight,
) -> Result<NodeId, Unschedulable> {
    Pipeline::new(state, spec, options)?.run(seed, in_flight)
}

/// Every node the reference placement chooses among at random (those of
/// the best rank), in ID order, or its refusal: `place_with` must answer
/// one of them, or the same refusal.
pub fn reference_ties(
    state: &ClusterState,
    spec: &ContainerSpec,
    options: &Options,
    in_flight: &InFlight,
) -> Result<Vec<NodeId>, Unschedulable> {
    let pipeline = Pipeline::new(state, spec, options)?;
    let mut rejections = Rejections::default();
    let candidates = pipeline.candidates(&mut rejections);
    let mut cursor = in_flight.cursor();
    let ranked: Vec<(&Node, strategy::Rank)> = candidates
        .into_iter()
        .map(|n| (n, strategy::key(n, &spec.resources, cursor.load(n.id()))))
        .collect();
    let prefer = |a, b| strategy::prefer(options.strategy, a, b);
    let Some(best) = ranked.iter().map(|(_, k)| *k).max_by(|a, b| prefer(*a, *b)) else {
        return Err(pipeline.unschedulable(&rejections));
    };
    Ok(ranked
        .into_iter()
        .filter(|(_, k)| prefer(*k, best).is_eq())
        .map(|(n, _)| n.info.id.clone())
        .collect())
}

/// Nodes turned away by each step.
#[derive(Debug, Default)]
pub(super) struct Rejections {
    /// Per hard filter, by its index in [`FILTERS`].
    by_filter: [usize; FILTERS.len()],
    /// Nodes without the memory asked for.
    no_memory: usize,
    /// Nodes without the CPUs asked for.
    no_cpu: usize,
}

/// What a node lacks for the request (step 2).
enum Lack {
    /// Not enough free memory.
    Memory,
    /// Not enough free CPUs.
    Cpu,
}

/// One placement's settings and what its steps need, worked out once.
pub(super) struct Pipeline<'a> {
    /// The state placement runs on.
    pub(super) state: &'a ClusterState,
    /// The container to place.
    pub(super) spec: &'a ContainerSpec,
    /// Strategy, overcommit, enabled filters.
    pub(super) options: &'a Options,
    /// What the filters read.
    prepared: Prepared<'a>,
    /// Whether the `health` filter is on. It and `containerslots` run on
    /// every node: they are checked inline, the others through `active`.
    check_health: bool,
    /// Whether the `containerslots` filter is on and some node has slots.
    check_slots: bool,
    /// The other hard filters that have something to check, with their
    /// index in [`FILTERS`].
    active: Vec<(usize, &'static dyn Filter)>,
    /// Whether the container asks for CPU or memory.
    wants_resources: bool,
    /// Soft constraints to apply (their filter is on).
    soft_constraints: bool,
    /// Soft affinities to apply (their filter is on).
    soft_affinities: bool,
    /// The image, as nodes are asked whether they hold it.
    pub(super) image: Option<ImageQuery>,
    /// The nodes a hard `node==NAME` constraint leaves, when there is one.
    named_by_constraint: Option<BTreeSet<&'a str>>,
}

impl<'a> Pipeline<'a> {
    /// Prepares the placement of `spec` on `state`; refuses at once when
    /// the cluster has no node or the dependencies cannot be placed with.
    pub(super) fn new(
        state: &'a ClusterState,
        spec: &'a ContainerSpec,
        options: &'a Options,
    ) -> Result<Pipeline<'a>, Unschedulable> {
        if state.nodes.is_empty() {
            return Err(Unschedulable::filtered(vec![
                "a node (the cluster has none)".into(),
            ]));
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
        let active = FILTERS
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, f)| f.name() != Health.name() && f.name() != ContainerSlots.name())
            .filter(|(_, f)| enabled(f.name()) && f.enabled(&prepared))
            .collect();
        let resources = &spec.resources;
        let named_by_constraint = if enabled("constraint") {
            named_by_constraint(state, spec)
        } else {
            None
        };
        Ok(Pipeline {
            named_by_constraint,
            check_health: enabled(Health.name()),
            check_slots: enabled(ContainerSlots.name()) && prepared.any_slots,
            active,
            wants_resources: resources.cpus_milli > 0 || resources.memory > 0,
            // Soft rules belong to their filter: `--filter` without it ignores them.
            soft_constraints: enabled("constraint") && spec.constraints.iter().any(|e| e.soft),
            soft_affinities: enabled("affinity") && spec.affinities.iter().any(|e| e.soft),
            image: spec.image.as_deref().map(ImageQuery::new),
            prepared,
            state,
            spec,
            options,
        })
    }

    /// Steps 1 to 4 over every node: the candidates the strategy ranks.
    fn candidates(&self, rejections: &mut Rejections) -> Vec<&'a Node> {
        let mut candidates: Vec<&Node> = self
            .state
            .nodes
            .values()
            .map(|node| &**node)
            .filter(|node| self.passes_filters(node, rejections) && self.fits(node, rejections))
            .collect();
        self.apply_soft_rules(&mut candidates);
        self.prefer_image(&mut candidates);
        candidates
    }

    /// Steps 1 to 5 over every node (see the module documentation).
    pub(super) fn run(&self, seed: u64, in_flight: &InFlight) -> Result<NodeId, Unschedulable> {
        let mut rejections = Rejections::default();
        let candidates = self.candidates(&mut rejections);
        let resources = &self.spec.resources;
        strategy::choose(
            candidates.into_iter(),
            resources,
            in_flight,
            self.options.strategy,
            seed,
        )
        .map(|node| node.info.id.clone())
        .ok_or_else(|| self.unschedulable(&rejections))
    }

    /// Whether soft constraints or affinities narrow the candidates.
    pub(super) fn has_soft_rules(&self) -> bool {
        self.soft_constraints || self.soft_affinities
    }

    /// The only nodes that can take the container, in ID order, when its
    /// dependencies or its local networks and volumes name them.
    pub(super) fn named_nodes(&self) -> Option<Vec<&'a str>> {
        if let Some(node) = self.prepared.dependency_node {
            return Some(vec![node]);
        }
        let located = self.spec.located.iter().map(|l| &l.nodes);
        let by_constraint = self.named_by_constraint.iter();
        let smallest = located
            .map(|n| (n.len(), n.iter().map(String::as_str).collect::<Vec<_>>()))
            .chain(by_constraint.map(|n| (n.len(), n.iter().copied().collect())))
            .min_by_key(|(len, _)| *len)?;
        Some(smallest.1)
    }

    /// Whether any filter must be asked node by node: without, every node
    /// of a bucket that [`Pipeline::bucket_passes`] passes.
    pub(super) fn checks_nodes(&self) -> bool {
        !self.active.is_empty()
    }

    /// Steps 1 and 2 for every node of `bucket` at once, as far as the
    /// bucket tells: health, container slots, CPU and memory. The other
    /// filters are asked node by node ([`Pipeline::passes_filters`]).
    pub(super) fn bucket_passes(&self, bucket: &Bucket) -> bool {
        if self.check_health && !bucket.healthy {
            return false;
        }
        if self.check_slots && bucket.slots.is_some_and(|s| bucket.containers >= s) {
            return false;
        }
        self.lacking(
            bucket.cpus_milli,
            bucket.memory,
            bucket.cpu_capacity_milli,
            bucket.memory_capacity,
        )
        .is_none()
    }

    /// What a node with `cpus_milli` and `memory` reserved, of capacities
    /// `cpu_capacity_milli` and `memory_capacity` (without overcommit),
    /// lacks for the request: memory first, as step 2 checks.
    fn lacking(
        &self,
        cpus_milli: u64,
        memory: i64,
        cpu_capacity_milli: u64,
        memory_capacity: i64,
    ) -> Option<Lack> {
        if !self.wants_resources {
            return None;
        }
        let resources = &self.spec.resources;
        let overcommit = self.options.overcommit;
        if resources.memory > 0
            && memory + resources.memory > memory_with_overcommit(memory_capacity, overcommit)
        {
            return Some(Lack::Memory);
        }
        if resources.cpus_milli > 0
            && cpus_milli + resources.cpus_milli
                > cpu_with_overcommit(cpu_capacity_milli, overcommit)
        {
            return Some(Lack::Cpu);
        }
        None
    }

    /// Step 1: whether `node` passes every hard filter; the first that
    /// rejects it is counted.
    pub(super) fn passes_filters(&self, node: &Node, rejections: &mut Rejections) -> bool {
        if self.check_health && node.health != NodeHealth::Healthy {
            rejections.by_filter[HEALTH] += 1;
            return false;
        }
        if self.check_slots && node.slots.is_some_and(|s| node.usage.containers >= s) {
            rejections.by_filter[SLOTS] += 1;
            return false;
        }
        for (i, f) in &self.active {
            if !f.check(&self.prepared, node) {
                rejections.by_filter[*i] += 1;
                return false;
            }
        }
        true
    }

    /// Step 2: whether the CPU and memory asked for fit on `node`.
    pub(super) fn fits(&self, node: &Node, rejections: &mut Rejections) -> bool {
        let usage = &node.usage;
        let lack = self.lacking(
            usage.cpus_milli,
            usage.memory,
            node.cpu_capacity_milli(0),
            node.memory_capacity(0),
        );
        match lack {
            Some(Lack::Memory) => rejections.no_memory += 1,
            Some(Lack::Cpu) => rejections.no_cpu += 1,
            None => {}
        }
        lack.is_none()
    }

    /// Step 3: each soft constraint, then each soft affinity, keeps the
    /// candidates that satisfy it, unless none does.
    pub(super) fn apply_soft_rules(&self, candidates: &mut Vec<&Node>) {
        let spec = self.spec;
        if self.soft_constraints {
            for expr in spec.constraints.iter().filter(|e| e.soft) {
                narrow(candidates, |n| constraint_accepts(expr, n));
            }
        }
        if self.soft_affinities {
            let holders = &self.prepared.affinity_nodes;
            for (expr, holders) in spec.affinities.iter().zip(holders) {
                if expr.soft {
                    narrow(candidates, |n| affinity_accepts(expr, holders.as_ref(), n));
                }
            }
        }
    }

    /// Step 4: the candidates holding the image, if any does.
    pub(super) fn prefer_image(&self, candidates: &mut Vec<&Node>) {
        if let Some(query) = &self.image {
            narrow(candidates, |n| n.has_image_query(query));
        }
    }

    /// Why no node is left, one reason per step that turned nodes away.
    pub(super) fn unschedulable(&self, rejections: &Rejections) -> Unschedulable {
        let total = self.state.nodes.len();
        let resources = &self.spec.resources;
        let mut reasons: Vec<String> = FILTERS
            .iter()
            .zip(&rejections.by_filter)
            .filter(|(_, r)| **r > 0)
            .map(|(f, r)| f.explain(&self.prepared, *r, total))
            .collect();
        let left = total - rejections.by_filter.iter().sum::<usize>();
        let no_memory = rejections.no_memory;
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
        if rejections.no_cpu > 0 {
            reasons.push(format!(
                "{} free CPUs (lacking on {})",
                human_cpus(resources.cpus_milli),
                filter::count_nodes(rejections.no_cpu, left)
            ));
        }
        let by_filters = rejections.by_filter.iter().any(|r| *r > 0);
        let resources_only = !by_filters && (no_memory > 0 || rejections.no_cpu > 0);
        if reasons.is_empty() {
            reasons.push("a node to place the container on".into());
        }
        Unschedulable {
            reasons,
            resources_only,
        }
    }
}

/// Keeps the candidates that satisfy `keep`, unless none does (soft rules).
fn narrow(candidates: &mut Vec<&Node>, keep: impl Fn(&Node) -> bool) {
    if candidates.iter().any(|n| keep(n)) {
        candidates.retain(|n| keep(n));
    }
}

/// Every node the spec's hard `node==NAME` constraints (exact names)
/// accept, and maybe others: `None` when it has none.
fn named_by_constraint<'a>(
    state: &'a ClusterState,
    spec: &ContainerSpec,
) -> Option<BTreeSet<&'a str>> {
    spec.constraints
        .iter()
        .filter(|e| !e.soft && e.key == "node" && e.op == Op::Eq)
        .filter_map(|e| match &e.matcher {
            Matcher::Exact(name) => Some(state.nodes.known_as(name)),
            Matcher::Pattern(_) => None,
        })
        .reduce(|a, b| a.intersection(&b).copied().collect())
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
                return Err(Unschedulable::filtered(vec![format!(
                    "dependency {dependency} (no such container)"
                )]))
            }
            Err(e) => {
                return Err(Unschedulable::filtered(vec![format!(
                    "dependency {dependency} ({e})"
                )]))
            }
        }
    }
    let distinct: BTreeSet<&str> = nodes.iter().map(|(n, _)| *n).collect();
    if distinct.len() > 1 {
        let placed: Vec<String> = nodes
            .iter()
            .map(|(n, d)| format!("{d} on {}", state.node_name(n)))
            .collect();
        return Err(Unschedulable::filtered(vec![format!(
            "dependencies on one node (they are on different nodes: {})",
            placed.join(", ")
        )]));
    }
    Ok(distinct.into_iter().next())
}
