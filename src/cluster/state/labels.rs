//! [`Labels`]: a container's labels as one sorted slice of pairs.
//!
//! A container carries a few labels (swarm's ID, a compose project, a
//! scheduling hint). A `BTreeMap` allocates a whole B-tree leaf for them,
//! 640 bytes whatever their number; at a million containers that was a
//! third of the state. One boxed slice of boxed strings holds the pairs
//! and nothing else. It encodes as the map it replaces (a map in JSON, the
//! same bytes in bincode), so stored state reads back unchanged.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Label key → value, in key order, each key once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| &*self.0[i].1)
    }

    /// Whether label `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets label `key` to `value`.
    pub fn insert(&mut self, key: String, value: String) {
        let mut pairs = std::mem::take(&mut self.0).into_vec();
        match pairs.binary_search_by(|(k, _)| (**k).cmp(key.as_str())) {
            Ok(i) => pairs[i].1 = value.into(),
            Err(i) => pairs.insert(i, (key.into(), value.into())),
        }
        self.0 = pairs.into_boxed_slice();
    }

    /// The labels in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Of two pairs with one key, the later stays (as a map's inserts).
impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(Box<str>, Box<str>)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stable: equal keys keep their order; the last one is kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match unique.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => unique.push(pair),
            }
        }
        Labels(unique.into_boxed_slice())
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, Box<str>)>,
        fn(&'a (Box<str>, Box<str>)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::iter::Map<
        std::vec::IntoIter<(Box<str>, Box<str>)>,
        fn((Box<str>, Box<str>)) -> (String, String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_vec()
            .into_iter()
            .map(|(k, v)| (k.into_string(), v.into_string()))
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of label keys to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut pairs: Vec<(String, String)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(pairs.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn acts_as_the_map_it_replaces() {
        let pairs = [("b", "2"), ("a", "1"), ("c", "3"), ("a", "4")];
        let labels: Labels = pairs.iter().copied().collect();
        let expected = map(&pairs);
        assert_eq!(labels.len(), 3);
        assert!(labels
            .iter()
            .eq(expected.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        assert_eq!(labels.get("a"), Some("4"));
        assert_eq!(labels.get("z"), None);
        let mut more = labels.clone();
        more.insert("aa".into(), "5".into());
        more.insert("b".into(), "6".into());
        assert_eq!(
            more.into_iter().collect::<BTreeMap<_, _>>(),
            map(&[("a", "4"), ("aa", "5"), ("b", "6"), ("c", "3")])
        );
        assert!(Labels::default().is_empty());
    }

    #[test]
    fn encodes_as_the_map_it_replaces() {
        let pairs = [("com.docker.swarm.id", "abc"), ("app", "web")];
        let labels: Labels = pairs.iter().copied().collect();
        let expected = map(&pairs);
        let bytes = bincode::serialize(&labels).expect("encoded");
        assert_eq!(bytes, bincode::serialize(&expected).expect("encoded"));
        assert_eq!(
            bincode::deserialize::<Labels>(&bytes).expect("decoded"),
            labels
        );
        let json = serde_json::to_string(&labels).expect("JSON");
        assert_eq!(json, serde_json::to_string(&expected).expect("JSON"));
        assert_eq!(serde_json::from_str::<Labels>(&json).expect("read"), labels);
    }
}
