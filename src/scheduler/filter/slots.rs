//! containerslots: an engine label `containerslots=N` caps the number of
//! containers (and creates in flight) on the node.

use super::{count_nodes, Filter, Prepared};
use crate::cluster::Node;

/// Rejects nodes whose container slots are all taken.
pub struct ContainerSlots;

impl Filter for ContainerSlots {
    fn name(&self) -> &'static str {
        "containerslots"
    }

    fn enabled(&self, prepared: &Prepared<'_>) -> bool {
        prepared.any_slots
    }

    fn check(&self, _: &Prepared<'_>, node: &Node) -> bool {
        node.container_slots()
            .is_none_or(|slots| node.usage.containers < slots)
    }

    fn explain(&self, _: &Prepared<'_>, rejected: usize, total: usize) -> String {
        format!(
            "a free container slot (containerslots reached on {})",
            count_nodes(rejected, total)
        )
    }
}
