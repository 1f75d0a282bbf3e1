//! The containers of the cluster, by ID, with indexes by name and by label.
//!
//! Names are looked up on every create (is the name free?), every
//! `--volumes-from`/`--link` and every request that names a container;
//! labels by every container-label affinity. The indexes are private to
//! this type, kept by its only two mutators, and rebuilt when a state is
//! deserialized (snapshots carry the containers only).

use std::borrow::Borrow;
use std::collections::{btree_map, BTreeMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Container, ContainerState, NodeId};

/// Containers by ID, plus the IDs holding each name (one name may be used
/// on several nodes) and, per label, the nodes running containers with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerTable {
    by_id: BTreeMap<String, Container>,
    by_name: BTreeMap<String, SmallMap<String, ()>>,
    /// lower-cased label key → value → node → how many containers there carry it.
    by_label: BTreeMap<String, BTreeMap<String, SmallMap<NodeId, usize>>>,
    /// Containers per node by run state (what `docker info` shows per node).
    by_node: BTreeMap<NodeId, StateCounts>,
    /// The same over the whole cluster.
    total: StateCounts,
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
pub struct LabelHolders<'a>(&'a SmallMap<NodeId, usize>);

impl LabelHolders<'_> {
    /// Whether `node` runs such a container.
    pub fn contains(&self, node: &str) -> bool {
        self.0.find(node).is_ok()
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

    fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(&mut self.0[i].1)
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

impl ContainerTable {
    /// The container with full ID `id`.
    pub fn get(&self, id: &str) -> Option<&Container> {
        self.by_id.get(id)
    }

    /// Whether a container has full ID `id`.
    pub fn contains_key(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every container, in ID order.
    pub fn values(&self) -> btree_map::Values<'_, String, Container> {
        self.by_id.values()
    }

    /// Every container ID, in order.
    pub fn keys(&self) -> btree_map::Keys<'_, String, Container> {
        self.by_id.keys()
    }

    /// How many containers there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The containers called `name` (without `/`), in ID order.
    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Container> + 'a {
        self.by_name
            .get(name)
            .into_iter()
            .flat_map(|ids| ids.keys())
            .filter_map(|id| self.by_id.get(id))
    }

    /// The nodes running a container labelled `key=value` (`key` compared
    /// without case, as affinities do), in ID order.
    pub fn label_nodes<'a>(
        &'a self,
        key: &str,
        value: &str,
    ) -> impl Iterator<Item = &'a NodeId> + 'a {
        self.by_label
            .get(&key.to_ascii_lowercase())
            .and_then(|values| values.get(value))
            .into_iter()
            .flat_map(|nodes| nodes.keys())
    }

    /// The nodes running a container labelled `key=value`, to ask about
    /// one node at a time without collecting them (`None`: no such node).
    pub fn label_holders(&self, key: &str, value: &str) -> Option<LabelHolders<'_>> {
        self.by_label
            .get(&key.to_ascii_lowercase())
            .and_then(|values| values.get(value))
            .map(LabelHolders)
    }

    /// Containers of `node` by run state.
    pub fn node_counts(&self, node: &str) -> StateCounts {
        self.by_node.get(node).copied().unwrap_or_default()
    }

    /// Containers of the whole cluster by run state.
    pub fn counts(&self) -> StateCounts {
        self.total
    }

    fn count(&mut self, container: &Container, sign: isize) {
        self.total.add(container.state, sign);
        let node = self.by_node.entry(container.node.clone()).or_default();
        node.add(container.state, sign);
        if node.total == 0 {
            self.by_node.remove(&container.node);
        }
    }

    /// Inserts or replaces a container; returns the one it replaced.
    pub(super) fn insert(&mut self, container: Container) -> Option<Container> {
        let old = self.remove(&container.id);
        self.count(&container, 1);
        self.by_name
            .entry(container.name.clone())
            .or_default()
            .entry_or_default(container.id.clone());
        for (key, value) in &container.labels {
            *self
                .by_label
                .entry(key.to_ascii_lowercase())
                .or_default()
                .entry(value.clone())
                .or_default()
                .entry_or_default(container.node.clone()) += 1;
        }
        self.by_id.insert(container.id.clone(), container);
        old
    }

    /// Changes the run state of container `id` (the indexes do not depend
    /// on it, only the counts do); whether it is there.
    pub(super) fn set_state(&mut self, id: &str, state: ContainerState) -> bool {
        let Some(container) = self.by_id.get_mut(id) else {
            return false;
        };
        let old = std::mem::replace(&mut container.state, state);
        let node = container.node.clone();
        for (state, sign) in [(old, -1), (state, 1)] {
            self.total.add(state, sign);
            self.by_node
                .entry(node.clone())
                .or_default()
                .add(state, sign);
        }
        true
    }

    /// Removes a container by full ID.
    pub(super) fn remove(&mut self, id: &str) -> Option<Container> {
        let old = self.by_id.remove(id)?;
        self.count(&old, -1);
        if let btree_map::Entry::Occupied(mut ids) = self.by_name.entry(old.name.clone()) {
            ids.get_mut().remove(id);
            if ids.get().is_empty() {
                ids.remove();
            }
        }
        for (key, value) in &old.labels {
            let key = key.to_ascii_lowercase();
            let Some(values) = self.by_label.get_mut(&key) else {
                continue;
            };
            if let Some(nodes) = values.get_mut(value) {
                if let Some(count) = nodes.get_mut(&old.node) {
                    *count -= 1;
                    if *count == 0 {
                        nodes.remove(&old.node);
                    }
                }
                if nodes.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(&key);
            }
        }
        Some(old)
    }
}

impl FromIterator<Container> for ContainerTable {
    fn from_iter<I: IntoIterator<Item = Container>>(iter: I) -> Self {
        let mut table = ContainerTable::default();
        for c in iter {
            table.insert(c);
        }
        table
    }
}

impl Serialize for ContainerTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ContainerTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let by_id = BTreeMap::<String, Container>::deserialize(deserializer)?;
        Ok(by_id.into_values().collect())
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
            labels: BTreeMap::new(),
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
        assert_eq!(m.get_mut("n1").copied(), Some(2));
        assert_eq!(m.remove("n2"), Some(1));
        assert_eq!(m.remove("n2"), None);
        assert!(m.get_mut("n9").is_none());
        assert_eq!(m.remove("n1"), Some(2));
        assert_eq!(m.remove("n3"), Some(1));
        assert!(m.is_empty());
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
