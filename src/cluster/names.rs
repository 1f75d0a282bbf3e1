//! [`NameArena`]: every container's name in one string, for `docker ps
//! --filter name=...`.
//!
//! Docker matches a name filter anywhere in `/name`. Looking at a million
//! names one by one, each behind its own pointers, took 150 ns a name (a
//! cache miss or two each): 150 ms per request. Here the names lie back to
//! back as `/web-1/db/cache-7...`, so a plain filter is one substring
//! search over a few megabytes (SIMD, through `regex`'s literal search),
//! and a regular expression runs over slices of the same string. Each name
//! knows its node by the table's 4-byte handle.
//!
//! A removed name stays in the text, marked gone, until more than half of
//! the text is gone; then the table lays the names out afresh.

use std::collections::BTreeSet;

/// Marks an entry whose name was removed.
const GONE: u32 = u32::MAX;

/// Every name, back to back, with its node (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct NameArena {
    /// `/name` after `/name`, in the order they came.
    text: String,
    /// Per name, in text order: where its `/` is, and its node's handle
    /// ([`GONE`] once removed).
    entries: Vec<(u32, u32)>,
    /// Bytes of removed names still in `text`.
    gone: usize,
}

impl NameArena {
    /// Adds `name` of a container on the node with `handle`; returns where
    /// it is, to remove it by.
    pub(super) fn add(&mut self, name: &str, handle: u32) -> u32 {
        let at = u32::try_from(self.text.len()).expect("names fit in 4 GiB");
        self.text.push('/');
        self.text.push_str(name);
        self.entries.push((at, handle));
        at
    }

    /// Removes the name added at `at`.
    pub(super) fn remove(&mut self, at: u32) {
        if let Ok(i) = self.entries.binary_search_by_key(&at, |(a, _)| *a) {
            if self.entries[i].1 != GONE {
                self.entries[i].1 = GONE;
                self.gone += self.end(i) - at as usize;
            }
        }
    }

    /// Whether more than half of the text is removed names (and the
    /// table should lay them out afresh).
    pub(super) fn wasteful(&self) -> bool {
        self.gone > 4096 && self.gone * 2 > self.text.len()
    }

    /// Where entry `i`'s name ends.
    fn end(&self, i: usize) -> usize {
        self.entries
            .get(i + 1)
            .map_or(self.text.len(), |(next, _)| *next as usize)
    }

    /// The entry whose name holds byte `at` of the text.
    fn entry_at(&self, at: usize) -> usize {
        self.entries
            .partition_point(|(start, _)| *start as usize <= at)
            .saturating_sub(1)
    }

    /// Adds to `nodes` the handle of every node with a name that holds
    /// `literal` (as `/name`: a literal starting with `/` matches at the
    /// start of a name; one with a `/` elsewhere, no name).
    pub(super) fn literal_nodes(&self, literal: &str, nodes: &mut BTreeSet<u32>) {
        if literal.is_empty() || literal.strip_prefix('/').unwrap_or(literal).contains('/') {
            return;
        }
        let Ok(finder) = regex::Regex::new(&regex::escape(literal)) else {
            return;
        };
        for found in finder.find_iter(&self.text) {
            let i = self.entry_at(found.start());
            // Names hold no `/`: a match never runs into the next one.
            let handle = self.entries[i].1;
            if handle != GONE {
                nodes.insert(handle);
            }
        }
    }

    /// Adds to `nodes` the handle of every node with a name that `re`
    /// matches (as `/name`).
    pub(super) fn regex_nodes(&self, re: &regex::Regex, nodes: &mut BTreeSet<u32>) {
        for (i, (at, handle)) in self.entries.iter().enumerate() {
            if *handle != GONE
                && !nodes.contains(handle)
                && re.is_match(&self.text[*at as usize..self.end(i)])
            {
                nodes.insert(*handle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(a: &NameArena, lit: &str) -> Vec<u32> {
        let mut nodes = BTreeSet::new();
        a.literal_nodes(lit, &mut nodes);
        nodes.into_iter().collect()
    }

    #[test]
    fn literals_match_within_one_name_and_slash_at_its_start() {
        let mut a = NameArena::default();
        let web = a.add("web-1", 1);
        a.add("db-10", 2);
        a.add("cache", 3);
        assert_eq!(literal(&a, "b-1"), [1, 2]);
        assert_eq!(literal(&a, "/db"), [2]);
        assert_eq!(literal(&a, "/eb"), Vec::<u32>::new());
        // Never across two names (`...-10/cache`).
        assert_eq!(literal(&a, "0/c"), Vec::<u32>::new());
        assert_eq!(literal(&a, "1/db"), Vec::<u32>::new());
        a.remove(web);
        assert_eq!(literal(&a, "b-1"), [2]);
        let mut nodes = BTreeSet::new();
        a.regex_nodes(&regex::Regex::new("^/[cd]").expect("regex"), &mut nodes);
        assert_eq!(nodes.into_iter().collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn removed_names_count_as_waste() {
        let mut a = NameArena::default();
        let names: Vec<u32> = (0..1000).map(|i| a.add(&format!("name-{i}"), 0)).collect();
        assert!(!a.wasteful());
        for at in &names[..600] {
            a.remove(*at);
            a.remove(*at); // twice is once
        }
        assert!(a.wasteful());
        assert_eq!(literal(&a, "name-599"), Vec::<u32>::new());
        assert_eq!(literal(&a, "name-600"), [0]);
    }
}
