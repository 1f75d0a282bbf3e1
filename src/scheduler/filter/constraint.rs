//! constraint: expressions over node attributes: `node` (cluster name, host
//! name or ID), any
//! engine label, and the standard keys from `docker info` (storagedriver,
//! executiondriver, kernelversion, operatingsystem, ostype, architecture),
//! plus `health`.

use super::{hard_list, Filter, Prepared};
use crate::cluster::{Node, NodeHealth};
use crate::scheduler::expr::Expr;

/// Rejects nodes that fail a hard constraint.
pub struct Constraint;

/// Whether `node` satisfies `expr`.
pub fn constraint_accepts(expr: &Expr, node: &Node) -> bool {
    let info = &node.info;
    let standard = match expr.key.as_str() {
        "node" => {
            return expr.accepts(
                [node.name.as_str(), info.hostname.as_str(), info.id.as_str()].into_iter(),
            )
        }
        "storagedriver" => Some(info.storage_driver.as_str()),
        "executiondriver" => Some(""),
        "kernelversion" => Some(info.kernel_version.as_str()),
        "operatingsystem" => Some(info.operating_system.as_str()),
        "ostype" => Some(info.os_type.as_str()),
        "architecture" => Some(info.architecture.as_str()),
        "health" => Some(match node.health {
            NodeHealth::Healthy => "healthy",
            NodeHealth::Unhealthy => "unhealthy",
        }),
        _ => None,
    };
    match standard {
        Some(value) => expr.accepts(std::iter::once(value)),
        None => match info.labels.get(&expr.key) {
            // Keys are lower-cased in the expression: the common case is one lookup.
            Some(value) => expr.accepts(std::iter::once(value.as_str())),
            None => expr.accepts(
                info.labels
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(&expr.key))
                    .map(|(_, v)| v.as_str()),
            ),
        },
    }
}

impl Filter for Constraint {
    fn name(&self) -> &'static str {
        "constraint"
    }

    fn enabled(&self, prepared: &Prepared<'_>) -> bool {
        prepared.spec.constraints.iter().any(|e| !e.soft)
    }

    fn check(&self, prepared: &Prepared<'_>, node: &Node) -> bool {
        prepared
            .spec
            .constraints
            .iter()
            .filter(|e| !e.soft)
            .all(|e| constraint_accepts(e, node))
    }

    fn explain(&self, prepared: &Prepared<'_>, rejected: usize, total: usize) -> String {
        format!(
            "constraint {} (rejected {rejected} of {total} nodes)",
            hard_list(&prepared.spec.constraints)
        )
    }
}
