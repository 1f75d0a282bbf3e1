//! dependency: a container that uses another's volumes (`--volumes-from`),
//! links to it (`--link`) or joins its network (`--net=container:X`) goes
//! to that container's node. `place()` resolves the node once.

use super::{Filter, Prepared};
use crate::cluster::Node;

/// Keeps only the node the dependencies live on.
pub struct Dependency;

impl Filter for Dependency {
    fn name(&self) -> &'static str {
        "dependency"
    }

    fn enabled(&self, prepared: &Prepared<'_>) -> bool {
        prepared.dependency_node.is_some()
    }

    fn check(&self, prepared: &Prepared<'_>, node: &Node) -> bool {
        prepared.dependency_node == Some(node.id())
    }

    fn explain(&self, prepared: &Prepared<'_>, _: usize, _: usize) -> String {
        let node = prepared
            .dependency_node
            .map(|n| prepared.state.node_name(n))
            .unwrap_or_default();
        format!(
            "dependencies {} (on node {node}, which cannot take it)",
            prepared.spec.dependencies.join(", ")
        )
    }
}
