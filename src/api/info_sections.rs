//! Each node's part of `docker info`'s `SystemStatus`, kept between
//! requests while the node stays the same.
//!
//! At 5,000 nodes `info` writes 55,000 pairs; formatting them (sizes, CPU
//! counts, labels sorted, JSON escaping) took about 3 µs a node, 15 ms a
//! request. A node's pairs depend only on the node and its container
//! counts, so they are kept as JSON with the node's
//! [revision](crate::cluster::Nodes::revision) and counts, and written as
//! they are until either changes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::value::RawValue;

use crate::cluster::{NodeId, StateCounts};

/// One node's pairs as JSON, and what they were written from.
struct Section {
    revision: u64,
    counts: StateCounts,
    pairs: Vec<Box<RawValue>>,
}

/// Node ID → its pairs as last written (see the module docs).
#[derive(Default)]
pub struct Sections(Mutex<HashMap<NodeId, Section>>);

/// The sections, locked for one `info`.
pub struct Locked<'a>(std::sync::MutexGuard<'a, HashMap<NodeId, Section>>);

impl Sections {
    /// Locks them for one `info` (two at once take turns).
    pub fn lock(&self) -> Locked<'_> {
        Locked(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Locked<'_> {
    /// Node `id`'s pairs, written by `write` unless kept from the same
    /// `revision` and `counts`; `None` if `write` fails.
    pub fn pairs(
        &mut self,
        id: &str,
        revision: u64,
        counts: StateCounts,
        write: impl FnOnce() -> serde_json::Result<Vec<Box<RawValue>>>,
    ) -> serde_json::Result<&[Box<RawValue>]> {
        let fresh = self
            .0
            .get(id)
            .is_some_and(|s| s.revision == revision && s.counts == counts);
        if !fresh {
            let pairs = write()?;
            self.0.insert(
                id.to_string(),
                Section {
                    revision,
                    counts,
                    pairs,
                },
            );
        }
        Ok(self.0.get(id).map(|s| s.pairs.as_slice()).unwrap_or(&[]))
    }

    /// Forgets the nodes `keep` says are gone, once there are more kept
    /// than `nodes` (the nodes there are).
    pub fn prune(&mut self, nodes: usize, keep: impl Fn(&str) -> bool) {
        if self.0.len() > nodes {
            self.0.retain(|id, _| keep(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).expect("JSON")
    }

    #[test]
    fn pairs_are_kept_while_revision_and_counts_stay() {
        let sections = Sections::default();
        let mut locked = sections.lock();
        let counts = StateCounts::default();
        let first = locked
            .pairs("n1", 1, counts, || Ok(vec![raw(r#"["a","1"]"#)]))
            .expect("written")
            .len();
        assert_eq!(first, 1);
        let kept = locked
            .pairs("n1", 1, counts, || panic!("kept: not written again"))
            .expect("kept");
        assert_eq!(kept[0].get(), r#"["a","1"]"#);
        let more = StateCounts { total: 1, ..counts };
        let again = locked
            .pairs("n1", 1, more, || Ok(vec![raw(r#"["a","2"]"#)]))
            .expect("written");
        assert_eq!(again[0].get(), r#"["a","2"]"#);
        let newer = locked
            .pairs("n1", 2, more, || Ok(vec![raw(r#"["a","3"]"#)]))
            .expect("written");
        assert_eq!(newer[0].get(), r#"["a","3"]"#);
        locked
            .pairs("n2", 1, counts, || Ok(Vec::new()))
            .expect("written");
        locked.prune(1, |id| id == "n1");
        assert_eq!(locked.0.len(), 1);
    }
}
