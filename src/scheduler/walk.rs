//! The walks `place()` runs: the same choices as the reference pipeline
//! ([`super::pipeline`]), made in one pass over the nodes without a list
//! of candidates, each with its early exits:
//!
//! - with soft rules, the candidates must be narrowed rule by rule: the
//!   reference pipeline itself runs ([`Pipeline::run`]);
//! - otherwise [`node_walk`] checks each node (steps 1 and 2) and offers
//!   it to two pickers at once (step 5): the best node overall and the
//!   best that holds the image (step 4); the latter wins when there is
//!   one. A node counts as holding the image when it has a name of the
//!   image's hash (no string comparison per tied node); only the winner
//!   is compared in full, and a mere hash collision walks again, exactly;
//! - when health is the only check and every node or none holds the
//!   image, [`summary_walk`] reads the nodes' 32-byte summaries alone and
//!   only the winning node itself.
//!
//! Placements in flight are read by a cursor that moves along with the
//! nodes (both in ID order).

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
    let mut rejections = Rejections::default();
    match best_node(pipeline, seed, in_flight, &mut rejections) {
        Some(node) => Ok(node.info.id.clone()),
        None => Err(pipeline.unschedulable(&rejections)),
    }
}

/// The best node that passes, preferring those that hold the image.
fn best_node<'s>(
    pipeline: &Pipeline<'s>,
    seed: u64,
    in_flight: &InFlight,
    rejections: &mut Rejections,
) -> Option<&'s Node> {
    let nodes = &pipeline.state.nodes;
    // When every node has a name of the image's hash, every node counts
    // as holding it: one picker serves as both.
    let everywhere = pipeline
        .image
        .as_ref()
        .is_some_and(|q| nodes.with_image_hash(q.hash) == nodes.len());
    let summaries_do = pipeline.health_only() && (pipeline.image.is_none() || everywhere);
    let (holding, any) = if summaries_do {
        summary_walk(pipeline, seed, in_flight, rejections)
    } else {
        node_walk(pipeline, false, seed, in_flight, rejections)
    };
    match (holding, &pipeline.image) {
        (Some(node), Some(query)) if node.has_image_query(query) => Some(node),
        // A name of the same hash, not the image: walk again, exactly.
        (Some(_), _) => {
            let (holding, any) = node_walk(pipeline, true, seed, in_flight, rejections);
            holding.or(any)
        }
        (None, _) => any,
    }
}

/// The best node by the summaries alone (health the only check), and the
/// same node again as the best holder when an image is asked for (every
/// node holds it by hash); only the winner is read from the nodes.
fn summary_walk<'s>(
    pipeline: &Pipeline<'s>,
    seed: u64,
    in_flight: &InFlight,
    rejections: &mut Rejections,
) -> (Option<&'s Node>, Option<&'s Node>) {
    let nodes = &pipeline.state.nodes;
    let resources = &pipeline.spec.resources;
    let mut in_flight = in_flight.cursor();
    let mut any = Picker::new(pipeline.options.strategy, seed);
    let ids = nodes.ids();
    for (i, (summary, id)) in nodes.summaries().iter().zip(ids).enumerate() {
        if !pipeline.summary_passes(summary, rejections) {
            continue;
        }
        let pending = in_flight.load_headed(summary.id_head, || id.as_str());
        let node = || nodes.get(id);
        let Some(key) = strategy::summary_key(summary, resources, pending, node) else {
            continue;
        };
        any.offer(i, key);
    }
    let best = any.best().and_then(|i| nodes.get(&ids[i]));
    (pipeline.image.as_ref().and(best), best)
}

/// The best holder of the image and the best node overall, in one pass
/// over the nodes (steps 1 and 2 on each). Unless `exact`, a node with a
/// name of the image's hash counts as holding it.
fn node_walk<'s>(
    pipeline: &Pipeline<'s>,
    exact: bool,
    seed: u64,
    in_flight: &InFlight,
    rejections: &mut Rejections,
) -> (Option<&'s Node>, Option<&'s Node>) {
    let nodes = &pipeline.state.nodes;
    let resources = &pipeline.spec.resources;
    let health_only = pipeline.health_only();
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
    for ((node, summary), id) in nodes.values().zip(nodes.summaries()).zip(nodes.ids()) {
        let passed = if health_only {
            pipeline.summary_passes(summary, rejections)
        } else {
            pipeline.passes_filters(node, rejections) && pipeline.fits(node, rejections)
        };
        if !passed {
            continue;
        }
        let pending = in_flight.load_headed(summary.id_head, || id.as_str());
        let Some(key) = strategy::summary_key(summary, resources, pending, || Some(node)) else {
            continue;
        };
        any.offer(node, key);
        if holding.could_take(key) && pipeline.image.as_ref().is_some_and(|q| holds(node, q)) {
            holding.offer(node, key);
        }
    }
    (holding.best(), any.best())
}
