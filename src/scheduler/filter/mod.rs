//! Filters: each decides whether a node may take the container, and says
//! in words why nodes were rejected. Hard filters run in a fixed order;
//! soft constraints and affinities are applied afterwards by `place()`.

mod affinity;
mod constraint;
mod dependency;
mod health;
mod port;
mod slots;

use super::expr::Expr;
use super::ContainerSpec;
use crate::cluster::{ClusterState, Node};

pub use affinity::{affinity_accepts, affinity_holders, Affinity, Holders};
pub use constraint::{constraint_accepts, Constraint};
pub use dependency::Dependency;
pub use health::Health;
pub use port::Port;
pub use slots::ContainerSlots;

/// What every filter sees: the state, the spec, and what was precomputed
/// once per placement.
pub struct Prepared<'a> {
    /// The state placement runs on.
    pub state: &'a ClusterState,
    /// The container to place.
    pub spec: &'a ContainerSpec,
    /// For each affinity of the spec, in order: the nodes where it holds
    /// (`None` for image affinities, which are checked per node).
    pub affinity_nodes: Vec<Option<Holders<'a>>>,
    /// The node all dependencies live on, when there are dependencies.
    pub dependency_node: Option<&'a str>,
    /// Whether any node has a `containerslots` label.
    pub any_slots: bool,
}

/// One step of the pipeline.
pub trait Filter: Sync {
    /// The name used with `--filter`.
    fn name(&self) -> &'static str;
    /// Whether the filter has anything to check for this container.
    fn enabled(&self, prepared: &Prepared<'_>) -> bool;
    /// Whether `node` passes.
    fn check(&self, prepared: &Prepared<'_>, node: &Node) -> bool;
    /// Why `rejected` of `total` nodes were turned away.
    fn explain(&self, prepared: &Prepared<'_>, rejected: usize, total: usize) -> String;
}

/// Every filter, in pipeline order (cheap and decisive first, as classic).
pub static FILTERS: [&dyn Filter; 6] = [
    &Health,
    &Port,
    &ContainerSlots,
    &Dependency,
    &Affinity,
    &Constraint,
];

/// The filter names, in pipeline order: the values `--filter` accepts.
pub fn names() -> [&'static str; 6] {
    FILTERS.map(|f| f.name())
}

/// `N nodes` / `all N nodes` / `1 node`.
pub(crate) fn count_nodes(rejected: usize, total: usize) -> String {
    match (rejected, total) {
        (r, t) if r == t && t > 1 => format!("all {t} nodes"),
        (1, _) => "1 node".to_string(),
        (r, _) => format!("{r} nodes"),
    }
}

/// The hard expressions of a list, joined for messages.
pub(crate) fn hard_list(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .filter(|e| !e.soft)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
