//! Strategies rank the nodes that passed the filters.
//!
//! A node's weight is how full it would be with the new container, in basis
//! points of capacity: `(used + requested) CPU × 10000 / CPUs +
//! (used + requested) memory × 10000 / memory`. (Overcommit stretches every
//! node's capacity by the same factor, so it changes which nodes fit, not
//! their order.) `spread` takes the lowest weight, then the fewest containers;
//! `binpack` the highest weight, then the most containers; `random` any
//! node. Remaining ties are broken at random (by the placement's seed):
//! placements running at once on the same snapshot of the state would
//! otherwise all pick the same first node, and a burst of `docker run`s
//! would pile onto it.
//!
//! Above all that, as classic weighted a node's health above its usage, a
//! node whose last refresh failed (not unhealthy yet) is chosen only when
//! every candidate's refreshes fail, whatever the strategy.

use std::collections::BTreeMap;

use crate::cluster::{basis_points, id_head, Bucket, Node, NodeId, Resources};

/// Placements decided but not in the state yet (their reservations are
/// being proposed), per node: ranked as if they were there, so placements
/// running at once do not all see the same least-used node.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    /// In ID order, as placement offers the nodes: a [`Cursor`] walks it
    /// along (a lookup per node, a thousand 60-byte IDs hashed, was a
    /// tenth of a busy manager's CPU).
    by_node: BTreeMap<NodeId, Load>,
}

/// Walks an [`InFlight`] along nodes offered in ascending ID order.
pub struct Cursor<'a> {
    /// The nodes in flight in ID order, each with its [`id_head`].
    entries: Vec<(u64, &'a str, Load)>,
    /// The first entry not passed yet.
    next: usize,
}

impl Cursor<'_> {
    /// What is on its way to `node`; nodes must come in ascending ID order
    /// (a node asked out of order counts nothing in flight).
    pub fn load(&mut self, node: &str) -> Load {
        self.load_headed(id_head(node), || node)
    }

    /// [`Cursor::load`] for a node whose [`id_head`] is `head`: its ID
    /// (`id`, read only when a node in flight has the same head) stays
    /// where it is for almost every node.
    pub fn load_headed<'n>(&mut self, head: u64, id: impl Fn() -> &'n str) -> Load {
        while let Some(&(h, other, load)) = self.entries.get(self.next) {
            match headed_cmp((h, other), head, &id) {
                std::cmp::Ordering::Less => self.next += 1,
                std::cmp::Ordering::Equal => return load,
                std::cmp::Ordering::Greater => break,
            }
        }
        Load::default()
    }
}

/// Orders IDs given with their heads (see [`id_head`]) as `str::cmp`
/// would: by the heads when they differ, else by the whole IDs (`b` is
/// read only then).
fn headed_cmp<'b>(
    (ha, a): (u64, &str),
    hb: u64,
    b: impl FnOnce() -> &'b str,
) -> std::cmp::Ordering {
    ha.cmp(&hb).then_with(|| a.cmp(b()))
}

/// `a.cmp(b)` as the cursor decides it.
#[cfg(test)]
fn id_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    headed_cmp((id_head(a), a), id_head(b), || b)
}

/// What placements in flight add to a node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Containers.
    pub containers: usize,
    /// CPU, in thousandths.
    pub cpus_milli: u64,
    /// Memory, in bytes.
    pub memory: i64,
}

impl InFlight {
    /// A placement of `resources` on `node` is on its way.
    pub fn add(&mut self, node: &str, resources: &Resources) {
        let load = self.by_node.entry(node.to_string()).or_default();
        load.containers += 1;
        load.cpus_milli += resources.cpus_milli;
        load.memory += resources.memory.max(0);
    }

    /// That placement is in the state now, or was refused.
    pub fn remove(&mut self, node: &str, resources: &Resources) {
        if let Some(load) = self.by_node.get_mut(node) {
            load.containers = load.containers.saturating_sub(1);
            load.cpus_milli = load.cpus_milli.saturating_sub(resources.cpus_milli);
            load.memory = (load.memory - resources.memory.max(0)).max(0);
            if load.containers == 0 {
                self.by_node.remove(node);
            }
        }
    }

    /// A walk along nodes in ascending ID order.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            entries: self
                .by_node
                .iter()
                .map(|(id, load)| (id_head(id), id.as_str(), *load))
                .collect(),
            next: 0,
        }
    }

    /// Each node with something on its way, and what.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Load)> + '_ {
        self.by_node.iter().map(|(id, load)| (id.as_str(), *load))
    }

    /// Whether nothing is on its way.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

/// How to choose among the nodes that pass the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Strategy {
    /// Least used node first.
    #[default]
    Spread,
    /// Most used node that still fits first.
    Binpack,
    /// Any node, chosen at random.
    Random,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Spread => "spread",
            Strategy::Binpack => "binpack",
            Strategy::Random => "random",
        })
    }
}

/// The node's fullness with `resources` added, in basis points (see
/// module docs). Overcommit multiplies every node's capacity alike, so it
/// does not change the order and is left out.
pub fn weight(node: &Node, resources: &Resources) -> u64 {
    bucket_weight(&Bucket::of(node), resources)
}

/// [`weight`] of the nodes of `bucket` (they all weigh the same).
pub fn bucket_weight(bucket: &Bucket, resources: &Resources) -> u64 {
    if resources.cpus_milli == 0 && resources.memory <= 0 {
        return bucket.fullness_bp;
    }
    basis_points(
        bucket.cpus_milli + resources.cpus_milli,
        bucket.cpu_capacity_milli,
    ) + basis_points(
        (bucket.memory + resources.memory).max(0) as u64,
        bucket.memory_capacity as u64,
    )
}

/// The rank of the nodes of `bucket` with nothing on its way to them.
pub fn bucket_key(bucket: &Bucket, resources: &Resources) -> Rank {
    (
        bucket.failing,
        bucket_weight(bucket, resources),
        bucket.containers,
    )
}

/// How a strategy ranks a node: whether its refreshes fail (a node whose
/// refreshes do not fail always wins, as classic weighted health above
/// usage), then its weight, then its container count.
pub type Rank = (bool, u64, usize);

/// A node's rank key (see [`Rank`]), counting what is on its way to it
/// (`pending`).
pub fn key(node: &Node, resources: &Resources, pending: Load) -> Rank {
    ranked(node.failing(), node, resources, pending)
}

/// [`key`] for a node whose [`Node::failing`] is known already.
fn ranked(failing: bool, node: &Node, resources: &Resources, pending: Load) -> Rank {
    if pending == Load::default() {
        return (failing, weight(node, resources), node.usage.containers);
    }
    let with = Resources {
        cpus_milli: resources.cpus_milli + pending.cpus_milli,
        memory: resources.memory.max(0) + pending.memory,
        ports: Vec::new(),
    };
    (
        failing,
        weight(node, &with),
        node.usage.containers + pending.containers,
    )
}

/// How `a` compares with `b` under `strategy`: `Greater` when a node of
/// rank `a` is preferred, `Equal` for a tie (every rank of the same
/// refresh failure, for `random`).
pub fn prefer(strategy: Strategy, a: Rank, b: Rank) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then_with(|| match strategy {
        Strategy::Spread => (b.1, b.2).cmp(&(a.1, a.2)),
        Strategy::Binpack => (a.1, a.2).cmp(&(b.1, b.2)),
        Strategy::Random => std::cmp::Ordering::Equal,
    })
}

/// Keeps the best node offered so far for a strategy; among nodes of the
/// same rank, each is kept with the same chance: every node offered draws
/// a number (from the seed) and, among equals, the highest draw wins.
/// `T` names a node: a reference, or its position in the state.
pub struct Picker<T> {
    strategy: Strategy,
    rng: u64,
    /// The kept node's draw.
    draw: u64,
    best: Option<(T, Rank)>,
}

impl<T: Copy> Picker<T> {
    /// An empty picker; `seed` drives `random`.
    pub fn new(strategy: Strategy, seed: u64) -> Self {
        Picker {
            strategy,
            rng: seed,
            draw: 0,
            best: None,
        }
    }

    /// Considers `node` with rank `key`.
    pub fn offer(&mut self, node: T, key: Rank) {
        let take = match (&self.best, self.strategy) {
            (None, _) => true,
            // Whether refreshes fail outranks the strategy.
            (Some((_, best)), _) if key.0 != best.0 => !key.0,
            (Some((_, best)), strategy) if strategy == Strategy::Random || key == *best => {
                // A tie: a draw decides, without a division per node.
                let draw = splitmix(&mut self.rng);
                if draw > self.draw {
                    self.draw = draw;
                    self.best = Some((node, key));
                }
                return;
            }
            (Some(_), _) => self.could_take(key),
        };
        if take {
            self.draw = splitmix(&mut self.rng);
            self.best = Some((node, key));
        }
    }

    /// Whether offering a node of rank `key` could change the choice: lets
    /// a caller skip a costly check (does the node hold the image?) for
    /// nodes that would lose anyway. Always true for `random`, whose draw
    /// counts every node offered, and for a tie, which draws too, unless
    /// the refreshes of one of the two fail.
    pub fn could_take(&self, key: Rank) -> bool {
        match (&self.best, self.strategy) {
            (None, _) => true,
            (Some((_, k)), _) if key.0 != k.0 => !key.0,
            (Some(_), Strategy::Random) => true,
            (Some((_, k)), Strategy::Spread) => key <= *k,
            (Some((_, k)), Strategy::Binpack) => key >= *k,
        }
    }

    /// The chosen node, if any was offered.
    pub fn best(&self) -> Option<T> {
        self.best.map(|(n, _)| n)
    }
}

/// Picks the best of `candidates` (in ascending ID order) for `strategy`.
pub fn choose<'a>(
    candidates: impl Iterator<Item = &'a Node>,
    resources: &Resources,
    in_flight: &InFlight,
    strategy: Strategy,
    seed: u64,
) -> Option<&'a Node> {
    let mut picker = Picker::new(strategy, seed);
    let mut in_flight = in_flight.cursor();
    for node in candidates {
        picker.offer(node, key(node, resources, in_flight.load(node.id())));
    }
    picker.best()
}

/// A small deterministic PRNG step (SplitMix64).
pub(super) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn id_cmp_orders_as_strings_do() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("ABCD:EFGH:1", "ABCD:EFGH:2", Less),
            ("ABCD:EFGH", "ABCD:EFGH", Equal),
            ("ABCD:EFGI", "ABCD:EFGH:ZZ", Greater),
            ("short", "shorter", Less),
            ("", "A", Less),
            ("Z", "ABCDEFGHIJ", Greater),
        ] {
            assert_eq!(super::id_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(a.cmp(b), want);
        }
    }

    proptest! {
        // No failure file: a failing case found becomes a named test beside this one.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn id_cmp_agrees_with_str_cmp(a in "[A-D:]{0,12}", b in "[A-D:]{0,12}") {
            prop_assert_eq!(super::id_cmp(&a, &b), a.cmp(&b));
        }
    }
}
