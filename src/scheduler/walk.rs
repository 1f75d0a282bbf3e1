//! The walks `place()` runs: the same choices as the reference pipeline
//! ([`super::pipeline`]), made without a list of candidates:
//!
//! - with soft rules, the candidates must be narrowed rule by rule: the
//!   reference pipeline itself runs ([`Pipeline::run`]);
//! - otherwise the walk over the rank index ([`super::index`]) finds the
//!   best node looking at a few buckets of alike nodes, not at every node;
//! - where it does not answer (an image named by ID, a refusal to
//!   explain), [`exhaustive`] checks each node (steps 1 and 2) and offers
//!   it to two pickers at once (step 5): the best node overall and the
//!   best that holds the image (step 4); the latter wins when there is
//!   one. A node counts as holding the image when it has a name of the
//!   image's hash (no string comparison per tied node); only the winner
//!   is compared in full, and a mere hash collision walks again, exactly.
//!   The nodes it turned away, counted per step, explain a refusal.

use super::index::{self, Found};
use super::pipeline::{Pipeline, Rejections};
use super::strategy::{self, InFlight, Picker};
use super::Unschedulable;
use crate::cluster::{ImageQuery, Node, NodeId};

/// The node for the placement `pipeline` prepared.
pub(super) fn place(
    pipeline: &Pipeline<'_>,
    seed: u64,
    in_flight: &InFlight,
) -> Result<NodeId, Unschedulable> {
    if pipeline.has_soft_rules() {
        return pipeline.run(seed, in_flight);
    }
    let found = index::best(pipeline, seed, in_flight);
    if let Found::Node(id) = found {
        return Ok(id.clone());
    }
    let mut rejections = Rejections::default();
    let nodes = pipeline.state.nodes.values().map(|n| &**n);
    match exhaustive(pipeline, nodes, seed, in_flight, &mut rejections) {
        Some(node) => {
            debug_assert!(
                matches!(found, Found::Exhaustive),
                "the index walk found no node, the exhaustive walk {}",
                node.id()
            );
            Ok(node.info.id.clone())
        }
        None => Err(pipeline.unschedulable(&rejections)),
    }
}

/// The best of `nodes` (in ascending ID order) that passes, preferring
/// those that hold the image.
pub(super) fn exhaustive<'s>(
    pipeline: &Pipeline<'s>,
    nodes: impl Iterator<Item = &'s Node> + Clone,
    seed: u64,
    in_flight: &InFlight,
    rejections: &mut Rejections,
) -> Option<&'s Node> {
    let (holding, any) = node_walk(pipeline, nodes.clone(), false, seed, in_flight, rejections);
    match (holding, &pipeline.image) {
        (Some(node), Some(query)) if node.has_image_query(query) => Some(node),
        // A name of the same hash, not the image: walk again, exactly.
        (Some(_), _) => {
            let (holding, any) = node_walk(pipeline, nodes, true, seed, in_flight, rejections);
            holding.or(any)
        }
        (None, _) => any,
    }
}

/// The best holder of the image and the best node overall among `nodes`
/// (in ascending ID order), in one pass (steps 1 and 2 on each). Unless
/// `exact`, a node with a name of the image's hash counts as holding it.
fn node_walk<'s>(
    pipeline: &Pipeline<'s>,
    nodes: impl Iterator<Item = &'s Node>,
    exact: bool,
    seed: u64,
    in_flight: &InFlight,
    rejections: &mut Rejections,
) -> (Option<&'s Node>, Option<&'s Node>) {
    let resources = &pipeline.spec.resources;
    let strategy = pipeline.options.strategy;
    let mut in_flight = in_flight.cursor();
    let mut any = Picker::new(strategy, seed);
    let mut holding = Picker::new(strategy, seed);
    let holds = |node: &Node, q: &ImageQuery| {
        if exact {
            node.has_image_query(q)
        } else {
            node.may_have_image(q)
        }
    };
    for node in nodes {
        if !(pipeline.passes_filters(node, rejections) && pipeline.fits(node, rejections)) {
            continue;
        }
        let key = strategy::key(node, resources, in_flight.load(node.id()));
        any.offer(node, key);
        if holding.could_take(key) && pipeline.image.as_ref().is_some_and(|q| holds(node, q)) {
            holding.offer(node, key);
        }
    }
    (holding.best(), any.best())
}
