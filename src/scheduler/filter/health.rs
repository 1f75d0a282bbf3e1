//! health: only healthy nodes take containers.

use super::{count_nodes, Filter, Prepared};
use crate::cluster::{Node, NodeHealth};

/// Rejects unhealthy nodes.
pub struct Health;

impl Filter for Health {
    fn name(&self) -> &'static str {
        "health"
    }

    fn enabled(&self, _: &Prepared<'_>) -> bool {
        true
    }

    fn check(&self, _: &Prepared<'_>, node: &Node) -> bool {
        node.health == NodeHealth::Healthy
    }

    fn explain(&self, _: &Prepared<'_>, rejected: usize, total: usize) -> String {
        format!(
            "a healthy node ({} unhealthy)",
            count_nodes(rejected, total)
        )
    }
}
