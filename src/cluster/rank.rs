//! The nodes grouped by how they rank, kept up to date with every change,
//! so that placement finds the best node without walking them all (see
//! `docs/scheduling.md`, "How a node is chosen").
//!
//! A [`Bucket`] holds the nodes that rank alike under any request: same
//! health, refresh failure, slot limit, capacity, reserved CPU and memory
//! and container count. Buckets are grouped by capacity [`Class`] and,
//! inside a class, ordered the way the strategies rank: refresh failure,
//! then fullness, then containers. For a request of `r` CPUs and memory,
//! every node of a class has a weight (fullness with the request) between
//! its fullness plus [`ClassBounds::low`] and its fullness plus
//! [`ClassBounds::high`], so a walk in bucket order can stop as soon as the
//! next bucket's bound cannot beat the best node found.

use std::collections::BTreeMap;

use super::state::{basis_points, Node, NodeHealth};

/// A node's stable number in the index while it is in the state.
pub type Slot = u32;

/// What ranks a node, field by field in the order buckets are sorted in:
/// two nodes with the same key rank alike under every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    /// [`Node::failing`]: ranks below every node whose refreshes succeed.
    pub failing: bool,
    /// `usage.fullness_bp`.
    pub fullness_bp: u64,
    /// `usage.containers`.
    pub containers: usize,
    /// Whether the node is `Healthy`.
    pub healthy: bool,
    /// The `containerslots` limit.
    pub slots: Option<usize>,
    /// Reserved CPU, in thousandths.
    pub cpus_milli: u64,
    /// Reserved memory, in bytes.
    pub memory: i64,
    /// CPU capacity in thousandths, without overcommit.
    pub cpu_capacity_milli: u64,
    /// Memory capacity in bytes, without overcommit.
    pub memory_capacity: i64,
}

impl Bucket {
    /// The bucket `node` belongs in.
    pub fn of(node: &Node) -> Bucket {
        Bucket {
            failing: node.failing(),
            fullness_bp: node.usage.fullness_bp,
            containers: node.usage.containers,
            healthy: node.health == NodeHealth::Healthy,
            slots: node.slots,
            cpus_milli: node.usage.cpus_milli,
            memory: node.usage.memory,
            cpu_capacity_milli: node.cpu_capacity_milli(0),
            memory_capacity: node.memory_capacity(0),
        }
    }

    /// The capacity class of the bucket.
    pub fn class(&self) -> Class {
        Class {
            cpu_capacity_milli: self.cpu_capacity_milli,
            memory_floor: memory_floor(self.memory_capacity),
        }
    }
}

/// Nodes of about the same capacity: the same CPUs, and memory within
/// 1/64 of each other (`[memory_floor, memory_floor + step)`), so that a
/// fleet whose hosts each report a slightly different memory size still
/// makes few classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Class {
    /// CPU capacity in thousandths.
    pub cpu_capacity_milli: u64,
    /// The memory capacity rounded down to its 7 leading bits.
    pub memory_floor: i64,
}

/// How far a request can move the weight of a class's nodes above their
/// fullness, in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassBounds {
    /// At least this much.
    pub low: u64,
    /// At most this much.
    pub high: u64,
}

/// `memory` rounded down to its 7 leading bits (0 stays 0).
fn memory_floor(memory: i64) -> i64 {
    if memory <= 0 {
        return 0;
    }
    let shift = (63 - memory.leading_zeros()).saturating_sub(6);
    (memory >> shift) << shift
}

/// The step of the memory class starting at `floor` (0 for the empty one).
fn memory_step(floor: i64) -> i64 {
    if floor <= 0 {
        return 0;
    }
    1 << (63 - floor.leading_zeros()).saturating_sub(6)
}

impl Class {
    /// How much a request of `cpus_milli` and `memory` (both ≥ 0, not both
    /// 0) adds to the weight of this class's nodes. Floors add up to at
    /// most one less than the floor of the sum, per dimension:
    /// `⌊(u+r)X/C⌋` is `⌊uX/C⌋ + ⌊rX/C⌋` or one more.
    pub fn bounds(&self, cpus_milli: u64, memory: i64) -> ClassBounds {
        let mut bounds = ClassBounds { low: 0, high: 0 };
        if cpus_milli > 0 && self.cpu_capacity_milli > 0 {
            let share = basis_points(cpus_milli, self.cpu_capacity_milli);
            bounds.low += share;
            bounds.high += share + 1;
        }
        if memory > 0 && self.memory_floor > 0 {
            let memory = memory as u64;
            let largest = (self.memory_floor + memory_step(self.memory_floor) - 1) as u64;
            bounds.low += basis_points(memory, largest);
            bounds.high += basis_points(memory, self.memory_floor as u64) + 1;
        }
        bounds
    }
}

/// The buckets, by class (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankIndex {
    classes: BTreeMap<Class, BTreeMap<Bucket, Vec<Slot>>>,
    /// Per slot: where it is in its bucket's list.
    position: Vec<u32>,
}

impl RankIndex {
    /// Puts `slot` into `bucket`.
    pub(super) fn insert(&mut self, slot: Slot, bucket: Bucket) {
        let members = self
            .classes
            .entry(bucket.class())
            .or_default()
            .entry(bucket)
            .or_default();
        let at = slot as usize;
        if self.position.len() <= at {
            self.position.resize(at + 1, 0);
        }
        self.position[at] = members.len() as u32;
        members.push(slot);
    }

    /// Takes `slot` out of `bucket`, where it is.
    pub(super) fn remove(&mut self, slot: Slot, bucket: &Bucket) {
        let class = bucket.class();
        let Some(buckets) = self.classes.get_mut(&class) else {
            return;
        };
        let Some(members) = buckets.get_mut(bucket) else {
            return;
        };
        let at = self.position[slot as usize] as usize;
        if members.get(at) != Some(&slot) {
            return;
        }
        members.swap_remove(at);
        if let Some(&moved) = members.get(at) {
            self.position[moved as usize] = at as u32;
        }
        if members.is_empty() {
            buckets.remove(bucket);
            if buckets.is_empty() {
                self.classes.remove(&class);
            }
        }
    }

    /// The classes and their buckets, in order.
    pub fn classes(&self) -> impl Iterator<Item = (&Class, &BTreeMap<Bucket, Vec<Slot>>)> {
        self.classes.iter()
    }

    /// The buckets of `class`, in order.
    pub fn buckets(&self, class: &Class) -> Option<&BTreeMap<Bucket, Vec<Slot>>> {
        self.classes.get(class)
    }

    /// Whether `slot` is in `bucket`.
    pub(super) fn holds(&self, slot: Slot, bucket: &Bucket) -> bool {
        self.classes
            .get(&bucket.class())
            .and_then(|b| b.get(bucket))
            .is_some_and(|m| {
                self.position
                    .get(slot as usize)
                    .is_some_and(|&at| m.get(at as usize) == Some(&slot))
            })
    }

    /// How many slots the buckets hold.
    pub(super) fn len(&self) -> usize {
        self.classes
            .values()
            .flat_map(|b| b.values())
            .map(Vec::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn weight(used: u64, request: u64, capacity: u64) -> u64 {
        basis_points(used + request, capacity)
    }

    #[test]
    fn memory_classes_are_within_one_64th() {
        assert_eq!(memory_floor(0), 0);
        assert_eq!(memory_floor(100), 100);
        assert_eq!(memory_floor(1 << 30), 1 << 30);
        let m = (16i64 << 30) - 12_345;
        let floor = memory_floor(m);
        assert!(floor <= m && m < floor + memory_step(floor));
        assert!(memory_step(floor) * 64 <= floor * 2);
    }

    proptest! {
        /// The bounds hold for every node of the class: weight with the
        /// request minus fullness is within `[low, high]`.
        #[test]
        fn bounds_hold_for_every_node_of_the_class(
            cpus in 0u64..64_000,
            memory in 0i64..(1 << 40),
            used_cpu in 0u64..128_000,
            used_memory in 0u64..(1 << 41),
            cpu_request in 0u64..8_000,
            memory_request in 0i64..(1 << 34),
        ) {
            prop_assume!(cpu_request > 0 || memory_request > 0);
            let bucket = Bucket {
                failing: false,
                fullness_bp: 0,
                containers: 0,
                healthy: true,
                slots: None,
                cpus_milli: used_cpu,
                memory: used_memory as i64,
                cpu_capacity_milli: cpus,
                memory_capacity: memory,
            };
            let fullness = basis_points(used_cpu, cpus) + basis_points(used_memory, memory as u64);
            let with = weight(used_cpu, cpu_request, cpus)
                + weight(used_memory, memory_request as u64, memory as u64);
            let b = bucket.class().bounds(cpu_request, memory_request);
            prop_assert!(fullness + b.low <= with, "{} + {} > {}", fullness, b.low, with);
            prop_assert!(with <= fullness + b.high, "{} > {} + {}", with, fullness, b.high);
        }
    }
}
