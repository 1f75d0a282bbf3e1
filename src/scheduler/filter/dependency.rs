//! dependency: a container that uses another's volumes (`--volumes-from`),
//! links to it (`--link`) or joins its network (`--net=container:X`) goes
//! to that container's node; one that uses a node-local network or a named
//! volume goes to a node that holds it (`ContainerSpec::located`, which
//! the manager fills in). `place()` resolves the containers' node once.

use super::{Filter, Prepared};
use crate::cluster::Node;

/// Keeps only the node the dependencies live on, among the nodes that hold
/// the container's local networks and volumes.
pub struct Dependency;

impl Filter for Dependency {
    fn name(&self) -> &'static str {
        "dependency"
    }

    fn enabled(&self, prepared: &Prepared<'_>) -> bool {
        prepared.dependency_node.is_some() || !prepared.spec.located.is_empty()
    }

    fn check(&self, prepared: &Prepared<'_>, node: &Node) -> bool {
        prepared.dependency_node.is_none_or(|d| d == node.id())
            && prepared
                .spec
                .located
                .iter()
                .all(|l| l.nodes.contains(node.id()))
    }

    fn explain(&self, prepared: &Prepared<'_>, _: usize, _: usize) -> String {
        let state = prepared.state;
        let mut reasons = Vec::new();
        if let Some(node) = prepared.dependency_node {
            reasons.push(format!(
                "dependencies {} (on node {}, which cannot take it)",
                prepared.spec.dependencies.join(", "),
                state.node_name(node)
            ));
        }
        for located in &prepared.spec.located {
            let names: Vec<String> = located.nodes.iter().map(|n| state.node_name(n)).collect();
            let (one, many) = ("node", "nodes");
            reasons.push(format!(
                "{} (on {} {}, which cannot take it)",
                located.what,
                if names.len() == 1 { one } else { many },
                names.join(", ")
            ));
        }
        reasons.join("; ")
    }
}
