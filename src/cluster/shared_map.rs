//! [`SharedMap`]: a map from strings to values whose copies share their
//! entries copy-on-write, for the parts of the state a Raft snapshot must
//! copy under the state's lock (see `ClusterState::snapshot`).
//!
//! The entries are in shards by the first two bytes of their key (256 for
//! hex keys such as swarm ids), each behind an `Arc`: cloning the map
//! copies the shard list, and the first change to a shard after a clone
//! copies that shard alone.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The shard of `key`: its first two bytes, big-endian, zero-padded.
/// Shards in key order hold the keys in order (a shorter key pads with the
/// smallest byte).
pub(crate) fn shard_key(key: &str) -> u16 {
    match key.as_bytes() {
        [] => 0,
        [a] => u16::from(*a) << 8,
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
    }
}

/// A `BTreeMap<String, V>` whose clones share their entries until one of
/// them changes (see the module docs); encodes as that map does.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedMap<V> {
    shards: BTreeMap<u16, Arc<BTreeMap<String, V>>>,
    len: usize,
}

impl<V> Default for SharedMap<V> {
    fn default() -> Self {
        Self {
            shards: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V: Clone> SharedMap<V> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.shards.get(&shard_key(key))?.get(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets the value of `key`; returns the one it replaced.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        let shard = self.shards.entry(shard_key(&key)).or_default();
        let old = Arc::make_mut(shard).insert(key, value);
        self.len += usize::from(old.is_none());
        old
    }

    /// Removes `key`; returns its value. A shard shared with a clone is
    /// copied only when `key` is in it.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let at = shard_key(key);
        let shard = self.shards.get_mut(&at)?;
        if !shard.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(shard).remove(key);
        if shard.is_empty() {
            self.shards.remove(&at);
        }
        self.len -= 1;
        old
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> + '_ {
        self.shards.values().flat_map(|shard| shard.iter())
    }
}

impl<V: Clone> FromIterator<(String, V)> for SharedMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut map = SharedMap::default();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

impl<V: Clone + fmt::Debug> fmt::Debug for SharedMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Clone + Serialize> Serialize for SharedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // With its length first, as bincode needs it.
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, V: Clone + Deserialize<'de>> Deserialize<'de> for SharedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, V>::deserialize(deserializer).map(|map| map.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_keep_their_entries_and_encode_as_a_btreemap() {
        let keys = ["", "0", "00", "0a", "a", "ab1", "ab2", "ff"];
        let mut map: SharedMap<usize> = keys.iter().map(|k| (k.to_string(), k.len())).collect();
        let plain: BTreeMap<String, usize> =
            keys.iter().map(|k| (k.to_string(), k.len())).collect();
        let then = bincode::serialize(&plain).expect("btreemap");
        assert_eq!(bincode::serialize(&map).expect("map"), then);
        let copy = map.clone();
        assert_eq!(map.insert("ab1".into(), 9), Some(3));
        assert_eq!(map.remove("0"), Some(1));
        assert_eq!(map.remove("0"), None);
        assert_eq!(map.insert("b".into(), 1), None);
        assert_eq!(bincode::serialize(&copy).expect("copy"), then);
        assert_eq!((copy.len(), map.len()), (8, 8));
        assert_eq!(map.get("ab1"), Some(&9));
        assert!(!map.contains_key("0") && copy.contains_key("0"));
        let back: SharedMap<usize> =
            bincode::deserialize(&bincode::serialize(&map).expect("map")).expect("decode");
        assert_eq!(back, map);
        assert_eq!(
            back.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["", "00", "0a", "a", "ab1", "ab2", "b", "ff"]
        );
    }
}
