//! Which nodes a filtered `docker ps` asks: the replicated state knows
//! every container's name, labels and node, so a node holding none that
//! a `label` or `name` filter could match is left out. The engines still
//! apply every filter themselves; this only never asks a node that cannot
//! answer anything, so a rare label or name among a million containers
//! costs a few engine requests, not one per node. Both lookups are
//! indexes of the state (labels to nodes, and all names in one text), a
//! few milliseconds at a million containers under the state's lock.
//!
//! The state follows the engines' events: a container made on an engine
//! directly is found by a filtered `docker ps` once its `create` event
//! was applied (one without filters asks every engine, and lists it at
//! once).
//!
//! What is left out must hold no match, so every doubt keeps a node: label
//! keys are compared without case (a superset of Docker's exact keys), a
//! name pattern Rust's `regex` cannot read keeps every node, and filters
//! on anything else do not narrow.

use std::collections::BTreeSet;

use serde_json::Value;

use super::node_filter::filter_values;
use crate::cluster::{ClusterState, NodeId};

/// The `label` and `name` filters of a `docker ps` request.
#[derive(Debug, Default)]
pub struct Narrowing {
    /// Every `label` filter (`key` or `key=value`): a match carries all.
    labels: Vec<(String, Option<String>)>,
    /// The `name` filters (a match has one), `None` when one of them
    /// cannot be read here or matches every name.
    names: Option<Vec<NamePattern>>,
}

/// One `name` filter: Docker matches it as a regular expression against
/// the name with its leading `/`, anywhere in it.
#[derive(Debug)]
enum NamePattern {
    /// No special character: a plain substring.
    Literal(String),
    /// Anything else.
    Regex(regex::Regex),
}

impl NamePattern {
    /// The pattern of `value`; `None` when it cannot be read here (every
    /// node is kept) or matches every name.
    fn of(value: &str) -> Option<NamePattern> {
        if value.is_empty() {
            return None;
        }
        // Outside a class only these are special (`regex::escape` also
        // escapes `-`, `&`, `~` and `#`, common in names).
        if !value.contains(|c| "\\.+*?()|[]{}^$".contains(c)) {
            return Some(NamePattern::Literal(value.to_string()));
        }
        regex::Regex::new(value).ok().map(NamePattern::Regex)
    }
}

impl Narrowing {
    /// The narrowing `filters` (Docker's JSON map of filter names to
    /// values) allow; none for filters that cannot be read (the engines
    /// answer those).
    pub fn of(filters: &str) -> Narrowing {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(filters) else {
            return Narrowing::default();
        };
        let labels = map
            .get("label")
            .and_then(filter_values)
            .unwrap_or_default()
            .into_iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (l, None),
            })
            .collect();
        let names = map
            .get("name")
            .and_then(filter_values)
            .filter(|values| !values.is_empty())
            .and_then(|values| values.iter().map(|v| NamePattern::of(v)).collect());
        Narrowing { labels, names }
    }

    /// The nodes that may hold a matching container (`None` when the
    /// filters do not narrow): labels from the state's label index, names
    /// from its name text ([`crate::cluster::ContainerTable`]).
    pub fn nodes<'a>(&self, state: &'a ClusterState) -> Option<BTreeSet<NodeId>> {
        if self.labels.is_empty() && self.names.is_none() {
            return None;
        }
        let table = &state.containers;
        let mut kept: Option<BTreeSet<&NodeId>> = None;
        let mut narrow = |holders: BTreeSet<&'a NodeId>| {
            kept = Some(match kept.take() {
                Some(before) => before.intersection(&holders).copied().collect(),
                None => holders,
            });
        };
        for (key, value) in &self.labels {
            narrow(match value {
                Some(value) => table.label_nodes(key, value).collect(),
                None => table.label_key_nodes(key),
            });
        }
        if let Some(patterns) = &self.names {
            let mut named = BTreeSet::new();
            for pattern in patterns {
                named.extend(match pattern {
                    NamePattern::Literal(literal) => table.name_literal_nodes(literal),
                    NamePattern::Regex(re) => table.name_regex_nodes(re),
                });
            }
            narrow(named);
        }
        kept.map(|nodes| nodes.into_iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::{engine, listed};
    use crate::cluster::Command;

    type Held<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

    /// Nodes `n1`.. joined with the containers `(id, node, name, labels)`.
    fn state(containers: &[Held]) -> ClusterState {
        let mut state = ClusterState::default();
        let nodes: BTreeSet<&str> = containers.iter().map(|c| c.1).collect();
        for node in nodes {
            let held = containers
                .iter()
                .filter(|c| c.1 == node)
                .map(|(id, node, name, labels)| crate::cluster::Container {
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..listed(id, node, name)
                })
                .collect();
            state
                .apply(Command::NodeJoined {
                    info: engine(node, node),
                    containers: held,
                    version: 0,
                    images: Vec::new(),
                })
                .expect("joined");
        }
        state
    }

    fn nodes(state: &ClusterState, filters: &str) -> Option<Vec<String>> {
        Narrowing::of(filters)
            .nodes(state)
            .map(|n| n.into_iter().collect())
    }

    fn cluster() -> ClusterState {
        state(&[
            ("a1", "n1", "web-1", &[("tier", "front"), ("g", "1")]),
            ("a2", "n2", "web-2", &[("tier", "back"), ("g", "1")]),
            ("a3", "n3", "db-10", &[("Tier", "back")]),
            ("a4", "n3", "cache", &[]),
        ])
    }

    #[test]
    fn labels_narrow_to_their_holders_and_together_to_all_of_them() {
        let s = cluster();
        let v = |list: &[&str]| Some(list.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(
            nodes(&s, r#"{"label":{"tier=back":true}}"#),
            v(&["n2", "n3"])
        );
        assert_eq!(nodes(&s, r#"{"label":["tier"]}"#), v(&["n1", "n2", "n3"]));
        assert_eq!(
            nodes(&s, r#"{"label":{"tier=back":true,"g=1":true}}"#),
            v(&["n2"])
        );
        assert_eq!(nodes(&s, r#"{"label":{"nope":true}}"#), v(&[]));
        // Labels and names together: both must hold on the node.
        assert_eq!(
            nodes(&s, r#"{"label":{"tier=back":true},"name":{"web":true}}"#),
            v(&["n2"])
        );
    }

    #[test]
    fn names_match_as_docker_does_anywhere_in_slash_name() {
        let s = cluster();
        let v = |list: &[&str]| Some(list.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(nodes(&s, r#"{"name":{"web":true}}"#), v(&["n1", "n2"]));
        assert_eq!(nodes(&s, r#"{"name":{"b-1":true}}"#), v(&["n1", "n3"]));
        assert_eq!(nodes(&s, r#"{"name":{"/db":true}}"#), v(&["n3"]));
        assert_eq!(nodes(&s, r#"{"name":{"/eb":true}}"#), v(&[]));
        assert_eq!(
            nodes(&s, r#"{"name":["^/web-2$","cache"]}"#),
            v(&["n2", "n3"])
        );
        assert_eq!(nodes(&s, r#"{"name":{"-[0-9]{2}$":true}}"#), v(&["n3"]));
    }

    #[test]
    fn doubt_keeps_every_node() {
        let s = cluster();
        assert_eq!(nodes(&s, r#"{"status":{"running":true}}"#), None);
        assert_eq!(nodes(&s, r#"{"name":{"(unclosed":true}}"#), None);
        assert_eq!(nodes(&s, r#"{"name":{"":true}}"#), None);
        assert_eq!(nodes(&s, "not json"), None);
        assert_eq!(nodes(&s, "{}"), None);
    }
}
