//! port: requested host ports must be free on the node, counting the ports
//! of its containers and of the creates in flight towards it.

use super::{count_nodes, Filter, Prepared};
use crate::cluster::Node;

/// Rejects nodes where a requested host port is bound.
pub struct Port;

impl Filter for Port {
    fn name(&self) -> &'static str {
        "port"
    }

    fn enabled(&self, prepared: &Prepared<'_>) -> bool {
        !prepared.spec.resources.ports.is_empty()
    }

    fn check(&self, prepared: &Prepared<'_>, node: &Node) -> bool {
        node.port_conflict(&prepared.spec.resources.ports).is_none()
    }

    fn explain(&self, prepared: &Prepared<'_>, rejected: usize, total: usize) -> String {
        let ports: Vec<String> = prepared
            .spec
            .resources
            .ports
            .iter()
            .map(|p| p.to_string())
            .collect();
        let noun = if ports.len() == 1 { "port" } else { "ports" };
        format!(
            "{noun} {} already in use on {}",
            ports.join(", "),
            count_nodes(rejected, total)
        )
    }
}
