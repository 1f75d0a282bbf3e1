//! The containers of the cluster, by ID, with indexes by name and by label.
//!
//! Names are looked up on every create (is the name free?), every
//! `--volumes-from`/`--link` and every request that names a container;
//! labels by every container-label affinity. The indexes are private to
//! this type, kept by its only two mutators, and rebuilt when a state is
//! deserialized (snapshots carry the containers only).
//!
//! Memory is per container (issue 23 aims at 2 KB at 1,000,000 of them),
//! so nothing is kept twice that need not be: a container is its own key
//! in the ID order (no copy of its ID), the label index names nodes by a
//! 4-byte handle (not a copy of the engine ID per container and label),
//! and the index keys are boxed strings (16 bytes, not 24).
//!
//! A Raft snapshot must not stall `apply()` while it encodes a million
//! containers, so the records are shared copy-on-write: each container is
//! behind an `Arc`, in shards by the first two bytes of its ID (256 for
//! hex IDs), each shard behind an `Arc` too. [`ContainerTable::snapshot`]
//! copies only the shard list; the first change to a shard after it
//! copies that shard's set of pointers (a few thousand at a million
//! containers), never a record. The indexes are not shared: a snapshot
//! carries the records only.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::collections::{btree_map, btree_set, BTreeMap, BTreeSet};
use std::fmt;
use std::iter::FusedIterator;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::names::NameArena;
use super::shared_map::shard_key;
use super::{Container, ContainerState, NodeId};

/// Containers by ID, plus the IDs holding each name (one name may be used
/// on several nodes) and, per label, the nodes running containers with it.
#[derive(Debug, Clone, Default)]
pub struct ContainerTable {
    /// The containers in ID order, each its own key.
    by_id: Records,
    /// name → ID → where the name is in `names`.
    by_name: BTreeMap<Box<str>, SmallMap<Box<str>, u32>>,
    /// Every name back to back, for substring filters.
    names: NameArena,
    /// lower-cased label key → value → node → how many containers there carry it.
    by_label: BTreeMap<Box<str>, BTreeMap<Box<str>, NodeCounts>>,
    /// Containers per node by run state (what `docker info` shows per
    /// node), with the node's handle in the label index.
    by_node: BTreeMap<NodeId, PerNode>,
    /// Node handle → node ID (empty when free).
    node_ids: Vec<NodeId>,
    /// Handles of nodes that have no container any more, to be reused.
    free_handles: Vec<u32>,
    /// The same counts over the whole cluster.
    total: StateCounts,
}

/// Two tables are equal when they hold the same containers: the indexes
/// follow from them (handles depend on the order of changes, not on what
/// is held).
impl PartialEq for ContainerTable {
    fn eq(&self, other: &Self) -> bool {
        self.by_id.len == other.by_id.len && self.values().eq(other.values())
    }
}

impl Eq for ContainerTable {}

/// A container ordered and looked up by its ID alone, shared with the
/// snapshots taken since it last changed.
#[derive(Debug, Clone)]
struct ById(Arc<Container>);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ById {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.id.cmp(&other.0.id)
    }
}

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

/// The containers of one shard: those whose IDs share their first two
/// bytes.
type Shard = BTreeSet<ById>;

/// Every container in ID order, in copy-on-write shards (see the module
/// docs).
#[derive(Debug, Clone, Default)]
struct Records {
    shards: BTreeMap<u16, Arc<Shard>>,
    /// How many containers the shards hold.
    len: usize,
}

impl Records {
    fn get(&self, id: &str) -> Option<&ById> {
        self.shards.get(&shard_key(id))?.get(id)
    }

    /// Adds `record` (its ID is not there).
    fn insert(&mut self, record: ById) {
        let shard = self.shards.entry(shard_key(&record.0.id)).or_default();
        if Arc::make_mut(shard).insert(record) {
            self.len += 1;
        }
    }

    /// Takes the container `id` out; copies its shard first if a snapshot
    /// shares it (only when `id` is there).
    fn take(&mut self, id: &str) -> Option<Arc<Container>> {
        let key = shard_key(id);
        let shard = self.shards.get_mut(&key)?;
        if !shard.contains(id) {
            return None;
        }
        let taken = Arc::make_mut(shard).take(id)?;
        if shard.is_empty() {
            self.shards.remove(&key);
        }
        self.len -= 1;
        Some(taken.0)
    }

    fn iter(&self) -> Values<'_> {
        Values {
            shards: self.shards.values(),
            front: None,
            back: None,
            len: self.len,
        }
    }
}

/// The containers of a [`ContainerTable`] in ID order
/// ([`ContainerTable::values`]).
#[derive(Debug, Clone)]
pub struct Values<'a> {
    shards: btree_map::Values<'a, u16, Arc<Shard>>,
    front: Option<btree_set::Iter<'a, ById>>,
    back: Option<btree_set::Iter<'a, ById>>,
    /// How many are left between `front` and `back`.
    len: usize,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a Container;

    fn next(&mut self) -> Option<&'a Container> {
        loop {
            if let Some(e) = self.front.as_mut().and_then(Iterator::next) {
                self.len -= 1;
                return Some(&e.0);
            }
            match self.shards.next() {
                Some(shard) => self.front = Some(shard.iter()),
                None => {
                    let e = self.back.as_mut().and_then(Iterator::next)?;
                    self.len -= 1;
                    return Some(&e.0);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl DoubleEndedIterator for Values<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.back.as_mut().and_then(DoubleEndedIterator::next_back) {
                self.len -= 1;
                return Some(&e.0);
            }
            match self.shards.next_back() {
                Some(shard) => self.back = Some(shard.iter()),
                None => {
                    let e = self
                        .front
                        .as_mut()
                        .and_then(DoubleEndedIterator::next_back)?;
                    self.len -= 1;
                    return Some(&e.0);
                }
            }
        }
    }
}

impl ExactSizeIterator for Values<'_> {}

impl FusedIterator for Values<'_> {}

/// The containers of a [`ContainerTable`] as they were when
/// [`ContainerTable::snapshot`] was called, sharing them with it: encodes
/// as the table does.
#[derive(Debug, Clone)]
pub struct TableSnapshot(Records);

impl Serialize for TableSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_records(&self.0, serializer)
    }
}

/// The records as a map from ID to container, as a `BTreeMap<String,
/// Container>` is (the snapshot's format).
fn serialize_records<S: Serializer>(records: &Records, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(records.iter().map(|c| (&c.id, c)))
}

/// A node's container counts and its handle in the label index.
#[derive(Debug, Clone, Copy, Default)]
struct PerNode {
    counts: StateCounts,
    handle: u32,
}

/// How many containers there are, and how many of them run or are paused
/// (the rest are stopped: created, exited, dead).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Every container.
    pub total: usize,
    /// Running or restarting.
    pub running: usize,
    /// Paused.
    pub paused: usize,
}

impl StateCounts {
    /// Neither running nor paused.
    pub fn stopped(&self) -> usize {
        self.total - self.running - self.paused
    }

    fn add(&mut self, state: ContainerState, sign: isize) {
        let step = |n: &mut usize| *n = n.saturating_add_signed(sign);
        step(&mut self.total);
        match state {
            ContainerState::Running | ContainerState::Restarting => step(&mut self.running),
            ContainerState::Paused => step(&mut self.paused),
            _ => {}
        }
    }
}

/// The nodes running a container with one label value
/// ([`ContainerTable::label_holders`]).
#[derive(Debug, Clone, Copy)]
pub struct LabelHolders<'a> {
    nodes: &'a NodeCounts,
    by_node: &'a BTreeMap<NodeId, PerNode>,
}

impl LabelHolders<'_> {
    /// Whether `node` runs such a container.
    pub fn contains(&self, node: &str) -> bool {
        self.by_node.get(node).is_some_and(|n| {
            self.nodes
                .0
                .binary_search_by_key(&n.handle, |(h, _)| *h)
                .is_ok()
        })
    }
}

/// A map kept as a sorted vector, for the leaves of the indexes: they hold
/// one entry or a few (a name used on one node, a label value carried on a
/// few nodes, the swarm ID label on exactly one), where a `BTreeMap` would
/// allocate a whole B-tree node of several hundred bytes for each.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SmallMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value of `key`, inserted as `V::default()` when missing.
    fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (key, V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(self.0.remove(i).1)
    }

    fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.0.iter().map(|(k, _)| k)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The leaf of the label index: node handle → how many containers there
/// carry the label, in handle order (a search compares numbers, not IDs).
#[derive(Debug, Clone, Default)]
struct NodeCounts(Vec<(u32, u32)>);

impl NodeCounts {
    /// One more container on the node with `handle`.
    fn add(&mut self, handle: u32) {
        match self.0.binary_search_by_key(&handle, |(h, _)| *h) {
            Ok(i) => self.0[i].1 += 1,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (handle, 1));
            }
        }
    }

    /// One container fewer on the node with `handle`.
    fn take(&mut self, handle: u32) {
        if let Ok(i) = self.0.binary_search_by_key(&handle, |(h, _)| *h) {
            self.0[i].1 -= 1;
            if self.0[i].1 == 0 {
                self.0.remove(i);
            }
        }
    }
}

/// `key` lower-cased, borrowed when it is already.
fn lower(key: &str) -> Cow<'_, str> {
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        Cow::Borrowed(key)
    }
}

impl ContainerTable {
    /// The container with full ID `id`.
    pub fn get(&self, id: &str) -> Option<&Container> {
        self.by_id.get(id).map(|e| &*e.0)
    }

    /// Whether a container has full ID `id`.
    pub fn contains_key(&self, id: &str) -> bool {
        self.by_id.get(id).is_some()
    }

    /// Every container, in ID order.
    pub fn values(&self) -> Values<'_> {
        self.by_id.iter()
    }

    /// Every container ID, in order.
    pub fn keys(
        &self,
    ) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone + '_ {
        self.values().map(|c| &c.id)
    }

    /// How many containers there are.
    pub fn len(&self) -> usize {
        self.by_id.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.len == 0
    }

    /// The containers as they are now, sharing them with the table (a copy
    /// of the shard list: microseconds), to encode while the table changes.
    pub fn snapshot(&self) -> TableSnapshot {
        TableSnapshot(self.by_id.clone())
    }

    /// The containers called `name` (without `/`), in ID order.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Container> + 'a {
        self.by_name
            .get(name)
            .into_iter()
            .flat_map(|ids| ids.keys())
            .filter_map(|id| self.get(id))
    }

    /// The nodes running a container labelled `key=value` (`key` compared
    /// without case, as affinities do), in ID order (sorted per call: the
    /// index keeps them by handle).
    pub fn label_nodes<'a>(
        &'a self,
        key: &str,
        value: &str,
    ) -> impl Iterator<Item = &'a NodeId> + 'a {
        let mut nodes: Vec<&NodeId> = self
            .by_label
            .get(lower(key).as_ref())
            .and_then(|values| values.get(value))
            .into_iter()
            .flat_map(|nodes| nodes.0.iter())
            .map(|(h, _)| &self.node_ids[*h as usize])
            .collect();
        nodes.sort_unstable();
        nodes.into_iter()
    }

    /// The nodes holding a container with label `key` (compared without
    /// case), whatever its value.
    pub fn label_key_nodes(&self, key: &str) -> BTreeSet<&NodeId> {
        self.by_label
            .get(lower(key).as_ref())
            .into_iter()
            .flat_map(|values| values.values())
            .flat_map(|nodes| nodes.0.iter())
            .map(|(h, _)| &self.node_ids[*h as usize])
            .collect()
    }

    /// The nodes running a container labelled `key=value`, to ask about
    /// one node at a time without collecting them (`None`: no such node).
    pub fn label_holders(&self, key: &str, value: &str) -> Option<LabelHolders<'_>> {
        self.by_label
            .get(lower(key).as_ref())
            .and_then(|values| values.get(value))
            .map(|nodes| LabelHolders {
                nodes,
                by_node: &self.by_node,
            })
    }

    /// Containers of `node` by run state.
    pub fn node_counts(&self, node: &str) -> StateCounts {
        self.by_node.get(node).map(|n| n.counts).unwrap_or_default()
    }

    /// Containers of the whole cluster by run state.
    pub fn counts(&self) -> StateCounts {
        self.total
    }

    /// Counts `container` in, with its name and labels; it is not in
    /// `by_id` (the caller puts it there).
    fn index(&mut self, container: &Container) {
        self.total.add(container.state, 1);
        let handle = match self.by_node.get_mut(container.node.as_str()) {
            Some(n) => {
                n.counts.add(container.state, 1);
                n.handle
            }
            None => {
                let handle = match self.free_handles.pop() {
                    Some(h) => {
                        self.node_ids[h as usize].clone_from(&container.node);
                        h
                    }
                    None => {
                        self.node_ids.push(container.node.clone());
                        u32::try_from(self.node_ids.len() - 1).expect("fewer than 2^32 nodes")
                    }
                };
                let mut counts = StateCounts::default();
                counts.add(container.state, 1);
                self.by_node
                    .insert(container.node.clone(), PerNode { counts, handle });
                handle
            }
        };
        let at = self.names.add(&container.name, handle);
        match self.by_name.get_mut(container.name.as_str()) {
            Some(ids) => {
                *ids.entry_or_default(container.id.as_str().into()) = at;
            }
            None => {
                let mut ids = SmallMap::default();
                *ids.entry_or_default(container.id.as_str().into()) = at;
                self.by_name.insert(container.name.as_str().into(), ids);
            }
        }
        for (key, value) in &container.labels {
            let key = lower(key);
            let values = match self.by_label.get_mut(key.as_ref()) {
                Some(values) => values,
                None => self.by_label.entry(key.as_ref().into()).or_default(),
            };
            let nodes = match values.get_mut(value) {
                Some(nodes) => nodes,
                None => values.entry(value.into()).or_default(),
            };
            nodes.add(handle);
        }
    }

    /// Takes `old`, just removed from `by_id`, out of the counts and
    /// indexes.
    fn unindex(&mut self, old: &Container) {
        if let Some(ids) = self.by_name.get_mut(old.name.as_str()) {
            if let Some(at) = ids.remove(old.id.as_str()) {
                self.names.remove(at);
            }
            if ids.is_empty() {
                self.by_name.remove(old.name.as_str());
            }
        }
        let handle = self.by_node.get(old.node.as_str()).map(|n| n.handle);
        for (key, value) in &old.labels {
            let key = lower(key);
            let Some(values) = self.by_label.get_mut(key.as_ref()) else {
                continue;
            };
            if let (Some(nodes), Some(handle)) = (values.get_mut(value), handle) {
                nodes.take(handle);
                if nodes.0.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(key.as_ref());
            }
        }
        self.total.add(old.state, -1);
        if let Some(n) = self.by_node.get_mut(old.node.as_str()) {
            n.counts.add(old.state, -1);
            if n.counts.total == 0 {
                // No label entry names the node any more: its handle is free.
                let handle = n.handle;
                self.by_node.remove(old.node.as_str());
                self.node_ids[handle as usize] = String::new();
                self.free_handles.push(handle);
            }
        }
        if self.names.wasteful() {
            self.lay_out_names();
        }
    }

    /// Lays the names out afresh, without the removed ones.
    fn lay_out_names(&mut self) {
        let mut names = NameArena::default();
        for (name, ids) in self.by_name.iter_mut() {
            for (id, at) in ids.0.iter_mut() {
                let handle = self
                    .by_id
                    .get(id)
                    .and_then(|c| self.by_node.get(c.0.node.as_str()))
                    .map_or(u32::MAX, |n| n.handle);
                *at = names.add(name, handle);
            }
        }
        self.names = names;
    }

    /// The nodes holding a container whose name, as `/name`, holds
    /// `literal` (Docker's `name` filter without special characters).
    pub fn name_literal_nodes(&self, literal: &str) -> BTreeSet<&NodeId> {
        let mut handles = BTreeSet::new();
        self.names.literal_nodes(literal, &mut handles);
        self.handle_ids(handles)
    }

    /// The nodes holding a container whose name, as `/name`, `re`
    /// matches (Docker's `name` filter).
    pub fn name_regex_nodes(&self, re: &regex::Regex) -> BTreeSet<&NodeId> {
        let mut handles = BTreeSet::new();
        self.names.regex_nodes(re, &mut handles);
        self.handle_ids(handles)
    }

    /// The node IDs of node handles.
    fn handle_ids(&self, handles: BTreeSet<u32>) -> BTreeSet<&NodeId> {
        handles
            .into_iter()
            .filter_map(|h| self.node_ids.get(h as usize))
            .collect()
    }

    /// Inserts or replaces a container; returns the one it replaced.
    pub(super) fn insert(&mut self, container: Container) -> Option<Container> {
        let old = self.remove(&container.id);
        self.index(&container);
        self.by_id.insert(ById(Arc::new(container)));
        old
    }

    /// Changes the run state of container `id` (the indexes do not depend
    /// on it, only the counts do); whether it is there.
    pub(super) fn set_state(&mut self, id: &str, state: ContainerState) -> bool {
        let Some(mut shared) = self.by_id.take(id) else {
            return false;
        };
        // A snapshot holding the container keeps it as it was.
        let container = Arc::make_mut(&mut shared);
        let old = std::mem::replace(&mut container.state, state);
        self.total.add(old, -1);
        self.total.add(state, 1);
        if let Some(n) = self.by_node.get_mut(container.node.as_str()) {
            n.counts.add(old, -1);
            n.counts.add(state, 1);
        }
        self.by_id.insert(ById(shared));
        true
    }

    /// Removes a container by full ID.
    pub(super) fn remove(&mut self, id: &str) -> Option<Container> {
        let old = self.by_id.take(id)?;
        self.unindex(&old);
        Some(Arc::unwrap_or_clone(old))
    }
}

impl FromIterator<Container> for ContainerTable {
    /// The table of `iter`'s containers; of two with one ID, the later
    /// stays (as inserting them one by one would leave it). The ID order is
    /// built at once, from the sorted containers.
    fn from_iter<I: IntoIterator<Item = Container>>(iter: I) -> Self {
        let mut containers: Vec<Container> = iter.into_iter().collect();
        // Stable: equal IDs keep their order, and the last one is kept.
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        let mut unique: Vec<Container> = Vec::with_capacity(containers.len());
        for c in containers {
            match unique.last_mut() {
                Some(last) if last.id == c.id => *last = c,
                _ => unique.push(c),
            }
        }
        let mut table = ContainerTable::default();
        for c in &unique {
            table.index(c);
        }
        table.by_id.len = unique.len();
        // In ID order: each shard is built from its sorted run at once.
        let mut records = unique.into_iter().map(|c| ById(Arc::new(c))).peekable();
        while let Some(first) = records.next() {
            let key = shard_key(&first.0.id);
            let mut run = vec![first];
            while let Some(next) = records.next_if(|r| shard_key(&r.0.id) == key) {
                run.push(next);
            }
            table
                .by_id
                .shards
                .insert(key, Arc::new(run.into_iter().collect()));
        }
        table
    }
}

/// Encoded as a map from ID to container, as a `BTreeMap<String,
/// Container>` is (the snapshot's format).
impl Serialize for ContainerTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_records(&self.by_id, serializer)
    }
}

impl<'de> Deserialize<'de> for ContainerTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads the map's containers, dropping the keys (each container
        /// carries its ID; bincode cannot skip a value unread).
        struct Containers;

        impl<'de> Visitor<'de> for Containers {
            type Value = Vec<Container>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of container IDs to containers")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut containers = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 20));
                while let Some((_, container)) = map.next_entry::<String, Container>()? {
                    containers.push(container);
                }
                Ok(containers)
            }
        }

        let containers = deserializer.deserialize_map(Containers)?;
        Ok(containers.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ContainerState;

    fn c(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            node: "n".into(),
            name: name.into(),
            image: "busybox".into(),
            state: ContainerState::Running,
            labels: crate::cluster::Labels::default(),
            resources: None,
            command: String::new(),
            created: 0,
        }
    }

    fn labelled(id: &str, node: &str, labels: &[(&str, &str)]) -> Container {
        Container {
            node: node.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..c(id, id)
        }
    }

    fn nodes<'a>(t: &'a ContainerTable, key: &str, value: &str) -> Vec<&'a str> {
        t.label_nodes(key, value).map(String::as_str).collect()
    }

    #[test]
    fn state_counts_follow_inserts_state_changes_and_removals() {
        let mut t = ContainerTable::default();
        t.insert(labelled("a", "n1", &[]));
        t.insert(Container {
            state: ContainerState::Paused,
            ..labelled("b", "n1", &[])
        });
        t.insert(Container {
            state: ContainerState::Exited,
            ..labelled("c", "n2", &[])
        });
        let n1 = t.node_counts("n1");
        assert_eq!(
            (n1.total, n1.running, n1.paused, n1.stopped()),
            (2, 1, 1, 0)
        );
        assert_eq!(t.node_counts("n2").stopped(), 1);
        assert_eq!(t.counts().total, 3);
        // a stops: replaced in place, counted once.
        t.insert(Container {
            state: ContainerState::Exited,
            ..labelled("a", "n1", &[])
        });
        assert_eq!(t.node_counts("n1").running, 0);
        assert_eq!(t.counts().stopped(), 2);
        // b unpauses, in place; an unknown ID changes nothing.
        assert!(t.set_state("b", ContainerState::Running));
        assert!(!t.set_state("zz", ContainerState::Running));
        let n1 = t.node_counts("n1");
        assert_eq!((n1.total, n1.running, n1.paused), (2, 1, 0));
        assert_eq!(t.get("b").map(|c| c.state), Some(ContainerState::Running));
        assert!(t.set_state("b", ContainerState::Paused));
        assert_eq!(t.counts().paused, 1);
        assert_eq!(t.counts().total, 3);
        t.remove("c");
        assert_eq!(t.node_counts("n2"), StateCounts::default());
        assert_eq!(t.counts().total, 2);
        // A deserialized table rebuilds the counts.
        let back: ContainerTable =
            serde_json::from_str(&serde_json::to_string(&t).expect("ser")).expect("de");
        assert_eq!(back, t);
        assert_eq!(back.node_counts("n1").paused, 1);
    }

    #[test]
    fn the_label_index_counts_containers_per_node() {
        let mut t: ContainerTable = [
            labelled("a", "n1", &[("service", "db")]),
            labelled("b", "n1", &[("Service", "db")]),
            labelled("c", "n2", &[("service", "db"), ("tier", "x")]),
        ]
        .into_iter()
        .collect();
        assert_eq!(nodes(&t, "SERVICE", "db"), ["n1", "n2"]);
        assert!(
            nodes(&t, "service", "DB").is_empty(),
            "values keep their case"
        );
        t.remove("a");
        assert_eq!(nodes(&t, "service", "db"), ["n1", "n2"], "b is still on n1");
        t.remove("b");
        assert_eq!(nodes(&t, "service", "db"), ["n2"]);
        // relabelled (re-observed) on the same ID
        t.insert(labelled("c", "n2", &[("tier", "x")]));
        assert!(nodes(&t, "service", "db").is_empty());
        assert!(
            !t.by_label.contains_key("service"),
            "empty keys are dropped"
        );
        assert_eq!(nodes(&t, "tier", "x"), ["n2"]);
    }

    #[test]
    fn label_nodes_answer_in_id_order_while_node_handles_are_reused() {
        // Nodes first seen in reverse ID order: their handles are too.
        let mut t: ContainerTable = ContainerTable::default();
        t.insert(labelled("a", "n3", &[("tier", "x")]));
        t.insert(labelled("b", "n2", &[("tier", "x")]));
        t.insert(labelled("c", "n1", &[("tier", "x")]));
        assert_eq!(nodes(&t, "tier", "x"), ["n1", "n2", "n3"]);
        // n2 loses its only container: its handle is free, and taken by n0.
        t.remove("b");
        assert_eq!(nodes(&t, "tier", "x"), ["n1", "n3"]);
        assert_eq!(t.node_counts("n2"), StateCounts::default());
        t.insert(labelled("d", "n0", &[("tier", "x"), ("Tier", "y")]));
        assert_eq!(nodes(&t, "tier", "x"), ["n0", "n1", "n3"]);
        assert_eq!(nodes(&t, "TIER", "y"), ["n0"]);
        // A container moving to another node (same ID) moves in the index.
        t.insert(labelled("a", "n2", &[("tier", "x")]));
        assert_eq!(nodes(&t, "tier", "x"), ["n0", "n1", "n2"]);
        assert_eq!(t.node_counts("n3").total, 0);
        assert_eq!(t.node_counts("n2").total, 1);
        // A table decoded from it answers alike, whatever its handles.
        let back: ContainerTable =
            serde_json::from_str(&serde_json::to_string(&t).expect("ser")).expect("de");
        assert_eq!(back, t);
        for (key, value) in [("tier", "x"), ("tier", "y"), ("tier", "z")] {
            assert_eq!(nodes(&back, key, value), nodes(&t, key, value));
        }
    }

    #[test]
    fn a_table_collected_keeps_the_last_of_one_id_and_lists_in_id_order() {
        let t: ContainerTable = [c("b", "web"), c("a", "db"), c("b", "api")]
            .into_iter()
            .collect();
        assert_eq!(t.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(t.get("b").map(|c| c.name.as_str()), Some("api"));
        assert!(ids(&t, "web").is_empty());
        assert_eq!(ids(&t, "api"), ["b"]);
        assert_eq!(t.node_counts("n").total, 2);
        // Encoded as the map of ID to container a snapshot always held.
        let as_map: BTreeMap<String, Container> =
            t.values().map(|c| (c.id.clone(), c.clone())).collect();
        assert_eq!(
            bincode::serialize(&t).expect("table"),
            bincode::serialize(&as_map).expect("map")
        );
    }

    fn ids<'a>(t: &'a ContainerTable, name: &str) -> Vec<&'a str> {
        t.named(name).map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn the_name_index_follows_inserts_renames_and_removes() {
        let mut t: ContainerTable = [c("a", "web"), c("b", "web"), c("c", "db")]
            .into_iter()
            .collect();
        assert_eq!(ids(&t, "web"), ["a", "b"]);
        assert_eq!(ids(&t, "db"), ["c"]);
        // a rename is a re-insert under the same ID
        assert_eq!(t.insert(c("a", "api")).map(|o| o.name), Some("web".into()));
        assert_eq!(ids(&t, "web"), ["b"]);
        assert_eq!(ids(&t, "api"), ["a"]);
        assert!(t.remove("b").is_some());
        assert!(ids(&t, "web").is_empty());
        assert!(!t.by_name.contains_key("web"), "empty names are dropped");
        assert!(t.remove("b").is_none());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn small_maps_stay_sorted_and_drop_what_is_removed() {
        let mut m = SmallMap::<String, usize>::default();
        for key in ["n3", "n1", "n2", "n1"] {
            *m.entry_or_default(key.to_string()) += 1;
        }
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            ["n1", "n2", "n3"]
        );
        assert_eq!(m.find("n1").map(|i| m.0[i].1), Ok(2));
        assert_eq!(m.remove("n2"), Some(1));
        assert_eq!(m.remove("n2"), None);
        assert!(m.find("n9").is_err());
        assert_eq!(m.remove("n1"), Some(2));
        assert_eq!(m.remove("n3"), Some(1));
        assert!(m.is_empty());
    }

    #[test]
    fn values_walk_every_shard_in_id_order_from_both_ends() {
        // IDs in several shards (first two bytes), some alone in theirs.
        let ids = ["", "0", "00", "00a", "0a", "a", "ab1", "ab2", "b", "ff"];
        let t: ContainerTable = ids.iter().rev().map(|id| c(id, id)).collect();
        let forward: Vec<&str> = t.values().map(|c| c.id.as_str()).collect();
        assert_eq!(forward, ids);
        let mut backward: Vec<&str> = t.values().rev().map(|c| c.id.as_str()).collect();
        backward.reverse();
        assert_eq!(backward, ids);
        // From both ends at once, counting down.
        let mut both = t.values();
        assert_eq!(both.len(), ids.len());
        let mut met = Vec::new();
        while let (Some(a), Some(b)) = (both.next(), both.next_back()) {
            met.push((a.id.as_str(), b.id.as_str()));
            assert_eq!(both.len(), ids.len() - 2 * met.len());
        }
        assert_eq!(met.len(), ids.len() / 2);
        assert_eq!(met[4], ("0a", "a"));
        assert!(ids.iter().all(|id| t.contains_key(id)));
        assert!(!t.contains_key("ab") && !t.contains_key("zz"));
    }

    #[test]
    fn a_snapshot_keeps_the_containers_it_was_taken_of() {
        let mut t: ContainerTable = [c("a1", "web"), c("a2", "db"), c("b1", "api")]
            .into_iter()
            .collect();
        let then = bincode::serialize(&t).expect("table");
        let snapshot = t.snapshot();
        assert_eq!(bincode::serialize(&snapshot).expect("snapshot"), then);
        // Every kind of change, in a shared shard and in a new one.
        assert!(t.set_state("a1", ContainerState::Exited));
        t.remove("a2");
        t.insert(c("b1", "api2"));
        t.insert(c("c1", "new"));
        assert_eq!(bincode::serialize(&snapshot).expect("snapshot"), then);
        assert_eq!(t.get("a1").map(|c| c.state), Some(ContainerState::Exited));
        assert_eq!(ids(&t, "api2"), ["b1"]);
        assert_eq!(t.len(), 3);
        assert_eq!(
            bincode::serialize(&t.snapshot()).expect("snapshot"),
            bincode::serialize(&t).expect("table")
        );
    }

    #[test]
    fn deserializing_rebuilds_the_index() {
        let t: ContainerTable = [c("a", "web"), c("b", "db")].into_iter().collect();
        let text = serde_json::to_string(&t).expect("serialize");
        let back: ContainerTable = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, t);
        assert_eq!(ids(&back, "db"), ["b"]);
    }
}
