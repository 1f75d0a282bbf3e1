//! The walk over the rank index: the node the exhaustive walk would
//! choose, found without looking at every node.
//!
//! The nodes are kept in buckets of nodes that rank alike under any
//! request, grouped by capacity class and sorted as the strategies rank
//! ([`crate::cluster::RankIndex`]). For `spread` and `binpack` the walk
//! visits each class's buckets in rank order, computes a bucket's exact
//! rank once, asks the per-node filters only of the buckets that could
//! win, and leaves a class as soon as the next bucket's bound
//! ([`crate::cluster::ClassBounds`]) cannot beat the best rank found (a
//! threshold walk). Every bucket of the best rank that holds a node
//! passing the filters joins the tie, and the answer is a seeded draw
//! among the tied nodes that pass, each as likely as the others: the same
//! rank as the exhaustive walk, and the same chances among ties.
//!
//! Nodes with placements in flight rank with what is on its way: they are
//! ranked one by one first and left out of their buckets. The image, when
//! only some nodes hold it, is looked for first among holders (by the same
//! walk with a budget, then through the list of holders), as the pipeline
//! prefers holders whatever their rank. `random` draws nodes until one
//! passes.
//!
//! The walk answers [`Found::Exhaustive`] when it cannot answer exactly
//! (an image named by ID, a memory below zero, `random` meeting mostly
//! nodes that fail); [`Found::Nothing`] sends the caller to the
//! exhaustive walk too, which counts why nodes were turned away.

use std::cmp::Ordering;

use super::pipeline::{Pipeline, Rejections};
use super::strategy::{self, prefer, splitmix, InFlight, Load, Picker, Rank, Strategy};
use super::walk::exhaustive;
use crate::cluster::{Bucket, Class, ImageQuery, Node, NodeId, Nodes, Slot};

/// What the walk found.
pub(super) enum Found<'s> {
    /// The node to place on.
    Node(&'s NodeId),
    /// No node passes.
    Nothing,
    /// The walk cannot answer this placement exactly: walk every node.
    Exhaustive,
}

/// Nodes the holders-first walk checks before it goes through the list of
/// holders instead (holders are rare near the top of the ranking).
const HOLDER_BUDGET: usize = 256;

/// Random draws among tied nodes (or, for `random`, among all nodes)
/// before every candidate is looked at.
const DRAWS: usize = 64;

/// Bucket members checked one by one; of larger buckets a few are drawn
/// first.
const SMALL_BUCKET: usize = 8;

/// The best node for the placement `pipeline` prepared (see the module
/// docs).
pub(super) fn best<'s>(pipeline: &Pipeline<'s>, seed: u64, in_flight: &InFlight) -> Found<'s> {
    if pipeline.spec.resources.memory < 0 {
        return Found::Exhaustive;
    }
    let nodes = &pipeline.state.nodes;
    if let Some(named) = pipeline.named_nodes() {
        if named.len() * 8 <= nodes.len() {
            return named_walk(pipeline, &named, seed, in_flight);
        }
    }
    let mut walk = Walk::new(pipeline, seed, in_flight);
    let Some(query) = &pipeline.image else {
        return walk.any(None);
    };
    if query.id_prefix.is_some() {
        return Found::Exhaustive;
    }
    let holders = nodes.with_image_hash(query.hash);
    if holders == 0 {
        return walk.any(None);
    }
    if holders == nodes.len() {
        // Every node holds it, but for a name of the same hash: check the
        // winner.
        return match walk.any(None) {
            Found::Node(id) if !nodes[id].has_image_query(query) => Found::Exhaustive,
            found => found,
        };
    }
    if pipeline.options.strategy == Strategy::Random {
        return Found::Exhaustive;
    }
    let found = match walk.ranked(Some(query), Some(HOLDER_BUDGET)) {
        Some(found) => found,
        None => walk.scan_holders(query),
    };
    match found {
        Found::Nothing => walk.any(None),
        found => found,
    }
}

/// The best of the few nodes the dependencies or the local networks and
/// volumes name, walked one by one.
fn named_walk<'s>(
    pipeline: &Pipeline<'s>,
    named: &[&str],
    seed: u64,
    in_flight: &InFlight,
) -> Found<'s> {
    let nodes = &pipeline.state.nodes;
    let candidates = named.iter().filter_map(|id| nodes.get(*id).map(|n| &**n));
    let mut scratch = Rejections::default();
    match exhaustive(pipeline, candidates, seed, in_flight, &mut scratch) {
        Some(node) => Found::Node(&node.info.id),
        None => Found::Nothing,
    }
}

/// Bucket members of the best rank, or a node in flight ranked alone.
enum Tie<'s> {
    /// A node in flight (it passed).
    One(Slot),
    /// A bucket with at least one member that passes.
    Many(&'s [Slot]),
}

impl Tie<'_> {
    fn len(&self) -> usize {
        match self {
            Tie::One(_) => 1,
            Tie::Many(members) => members.len(),
        }
    }
}

/// One placement's walk.
struct Walk<'p, 's> {
    pipeline: &'p Pipeline<'s>,
    nodes: &'s Nodes,
    strategy: Strategy,
    /// The nodes in flight, by slot (sorted), with their loads.
    flying: Vec<(Slot, Load)>,
    /// The draws' state (SplitMix64).
    rng: u64,
}

impl<'p, 's> Walk<'p, 's> {
    fn new(pipeline: &'p Pipeline<'s>, seed: u64, in_flight: &InFlight) -> Self {
        let nodes = &pipeline.state.nodes;
        let mut flying: Vec<(Slot, Load)> = in_flight
            .iter()
            .filter_map(|(id, load)| Some((nodes.slot(id)?, load)))
            .collect();
        flying.sort_unstable_by_key(|(slot, _)| *slot);
        Walk {
            pipeline,
            nodes,
            strategy: pipeline.options.strategy,
            flying,
            rng: seed,
        }
    }

    fn draw(&mut self, below: usize) -> usize {
        (splitmix(&mut self.rng) % below as u64) as usize
    }

    fn flying_load(&self, slot: Slot) -> Option<Load> {
        self.flying
            .binary_search_by_key(&slot, |(s, _)| *s)
            .ok()
            .map(|i| self.flying[i].1)
    }

    /// Whether the node in `slot`, of a bucket that passed, passes the
    /// per-node filters (and holds the image `holds`, when given): read
    /// from the node only when some filter asks about nodes one by one.
    fn member_passes(&self, slot: Slot, holds: Option<&ImageQuery>) -> bool {
        if holds.is_none() && !self.pipeline.checks_nodes() {
            return self.nodes.bucket(slot).is_some();
        }
        self.passing(slot, holds).is_some()
    }

    /// The node in `slot` if it passes the per-node filters (and holds
    /// the image `holds`, when given).
    fn passing(&self, slot: Slot, holds: Option<&ImageQuery>) -> Option<(&'s NodeId, &'s Node)> {
        let (id, node) = self.nodes.at(slot)?;
        let mut scratch = Rejections::default();
        let passes = self.pipeline.passes_filters(node, &mut scratch)
            && holds.is_none_or(|q| node.has_image_query(q));
        passes.then_some((id, node))
    }

    /// [`Walk::passing`], CPU and memory fitting too: for nodes checked
    /// alone, outside a bucket that passed.
    fn fitting(&self, slot: Slot, holds: Option<&ImageQuery>) -> Option<(&'s NodeId, &'s Node)> {
        let mut scratch = Rejections::default();
        self.passing(slot, holds)
            .filter(|(_, node)| self.pipeline.fits(node, &mut scratch))
    }

    /// The best node that passes (holding the image `holds`, when given).
    fn any(&mut self, holds: Option<&ImageQuery>) -> Found<'s> {
        if self.strategy == Strategy::Random {
            return self.random();
        }
        self.ranked(holds, None).unwrap_or(Found::Exhaustive)
    }

    /// `random`: uniform draws over the slots until a node that passes
    /// and whose refreshes do not fail comes up.
    fn random(&mut self) -> Found<'s> {
        let slots = self.nodes.slot_count();
        for _ in 0..DRAWS {
            let slot = self.draw(slots) as Slot;
            if let Some((id, node)) = self.fitting(slot, None) {
                if !node.failing() {
                    return Found::Node(id);
                }
            }
        }
        Found::Exhaustive
    }

    /// The threshold walk for `spread` and `binpack`; `None` when more
    /// than `budget` nodes were checked.
    fn ranked(
        &mut self,
        holds: Option<&ImageQuery>,
        mut budget: Option<usize>,
    ) -> Option<Found<'s>> {
        let resources = &self.pipeline.spec.resources;
        let mut best: Option<Rank> = None;
        let mut ties: Vec<Tie<'s>> = Vec::new();
        let strategy = self.strategy;
        let consider = |best: &mut Option<Rank>, ties: &mut Vec<Tie<'s>>, key, tie| match best
            .map(|b| prefer(strategy, key, b))
        {
            Some(Ordering::Less) => {}
            Some(Ordering::Equal) => ties.push(tie),
            _ => {
                *best = Some(key);
                ties.clear();
                ties.push(tie);
            }
        };
        for &(slot, load) in &self.flying {
            if let Some((_, node)) = self.fitting(slot, holds) {
                let key = strategy::key(node, resources, load);
                consider(&mut best, &mut ties, key, Tie::One(slot));
            }
        }
        // The classes, the one whose first bucket could rank best first,
        // so that the best found early cuts the others short.
        let (cpus, memory) = (resources.cpus_milli, resources.memory);
        let mut classes: Vec<(Rank, &'s Class)> = Vec::new();
        for (class, buckets) in self.nodes.rank_index().classes() {
            let first = match self.strategy {
                Strategy::Binpack => buckets
                    .range(..first_failing())
                    .next_back()
                    .or_else(|| buckets.last_key_value()),
                _ => buckets.first_key_value(),
            };
            if let Some((bucket, _)) = first {
                classes.push((self.bound(bucket, class, cpus, memory), class));
            }
        }
        classes.sort_by(|a, b| prefer(self.strategy, b.0, a.0));
        let index = self.nodes.rank_index();
        for (_, class) in classes {
            let Some(buckets) = index.buckets(class) else {
                continue;
            };
            let ordered = match self.strategy {
                Strategy::Binpack => Ordered::Down(
                    buckets
                        .range(..first_failing())
                        .rev()
                        .chain(buckets.range(first_failing()..).rev()),
                ),
                _ => Ordered::Up(buckets.iter()),
            };
            for (bucket, members) in ordered {
                let bound = self.bound(bucket, class, cpus, memory);
                if best.is_some_and(|b| prefer(self.strategy, bound, b) == Ordering::Less) {
                    break;
                }
                if !self.pipeline.bucket_passes(bucket) {
                    continue;
                }
                let key = strategy::bucket_key(bucket, resources);
                if best.is_some_and(|b| prefer(self.strategy, key, b) == Ordering::Less) {
                    continue;
                }
                if self.any_passes(members, holds, &mut budget)? {
                    consider(&mut best, &mut ties, key, Tie::Many(members));
                }
            }
        }
        Some(self.draw_tied(&ties, holds))
    }

    /// The best rank a node of `bucket` (of `class`) could have with a
    /// request of `cpus` and `memory`.
    fn bound(&self, bucket: &Bucket, class: &Class, cpus: u64, memory: i64) -> Rank {
        let bounds = class.bounds(cpus, memory.max(0));
        let extra = match self.strategy {
            Strategy::Binpack => bounds.high,
            _ => bounds.low,
        };
        (
            bucket.failing,
            bucket.fullness_bp + extra,
            bucket.containers,
        )
    }

    /// Whether a member of a bucket, not in flight, passes; `None` when
    /// the budget ran out.
    fn any_passes(
        &mut self,
        members: &[Slot],
        holds: Option<&ImageQuery>,
        budget: &mut Option<usize>,
    ) -> Option<bool> {
        let mut check = |walk: &Self, slot: Slot| -> Option<bool> {
            if let Some(left) = budget {
                *left = left.checked_sub(1)?;
            }
            Some(walk.flying_load(slot).is_none() && walk.member_passes(slot, holds))
        };
        if members.len() > SMALL_BUCKET {
            for _ in 0..4 {
                let slot = members[self.draw(members.len())];
                if check(self, slot)? {
                    return Some(true);
                }
            }
        }
        for &slot in members {
            if check(self, slot)? {
                return Some(true);
            }
        }
        Some(false)
    }

    /// A draw among the tied nodes that pass, each as likely.
    fn draw_tied(&mut self, ties: &[Tie<'s>], holds: Option<&ImageQuery>) -> Found<'s> {
        let total: usize = ties.iter().map(Tie::len).sum();
        if total == 0 {
            return Found::Nothing;
        }
        let member = |tie: &Tie<'s>, i: usize| match tie {
            Tie::One(slot) => (*slot, false),
            Tie::Many(members) => (members[i], true),
        };
        for _ in 0..DRAWS {
            let mut i = self.draw(total);
            for tie in ties {
                if i >= tie.len() {
                    i -= tie.len();
                    continue;
                }
                let (slot, in_bucket) = member(tie, i);
                if in_bucket && self.flying_load(slot).is_some() {
                    break;
                }
                if self.member_passes(slot, holds) {
                    if let Some(id) = self.nodes.id_at(slot) {
                        return Found::Node(id);
                    }
                }
                break;
            }
        }
        // Every tied node, each kept with the same chance (reservoir).
        let mut chosen = None;
        let mut seen = 0;
        for tie in ties {
            for i in 0..tie.len() {
                let (slot, in_bucket) = member(tie, i);
                if in_bucket && self.flying_load(slot).is_some() {
                    continue;
                }
                if !self.member_passes(slot, holds) {
                    continue;
                }
                if let Some(id) = self.nodes.id_at(slot) {
                    seen += 1;
                    if self.draw(seen) == 0 {
                        chosen = Some(id);
                    }
                }
            }
        }
        chosen.map_or(Found::Nothing, Found::Node)
    }

    /// The best holder of the image through the list of holders, each
    /// checked.
    fn scan_holders(&mut self, query: &ImageQuery) -> Found<'s> {
        let resources = &self.pipeline.spec.resources;
        let Some(holders) = self.nodes.image_holders(query.hash) else {
            return Found::Nothing;
        };
        let mut picker = Picker::new(self.strategy, splitmix(&mut self.rng));
        for &slot in holders {
            let Some((id, node)) = self.fitting(slot, Some(query)) else {
                continue;
            };
            let load = self.flying_load(slot).unwrap_or_default();
            picker.offer(id, strategy::key(node, resources, load));
        }
        picker.best().map_or(Found::Nothing, Found::Node)
    }
}

/// A class's buckets in the order a strategy walks them.
enum Ordered<U, D> {
    /// Lowest rank first (`spread`).
    Up(U),
    /// Highest first, failing nodes last (`binpack`).
    Down(D),
}

impl<'s, U, D> Iterator for Ordered<U, D>
where
    U: Iterator<Item = (&'s Bucket, &'s Vec<Slot>)>,
    D: Iterator<Item = (&'s Bucket, &'s Vec<Slot>)>,
{
    type Item = (&'s Bucket, &'s Vec<Slot>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Ordered::Up(up) => up.next(),
            Ordered::Down(down) => down.next(),
        }
    }
}

/// The first bucket key of the failing nodes (buckets sort by refresh
/// failure first).
fn first_failing() -> Bucket {
    Bucket {
        failing: true,
        fullness_bp: 0,
        containers: 0,
        healthy: false,
        slots: None,
        cpus_milli: 0,
        memory: i64::MIN,
        cpu_capacity_milli: 0,
        memory_capacity: i64::MIN,
    }
}
