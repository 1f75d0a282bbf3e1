//! Networks across the cluster, with Swarm classic's semantics:
//!
//! - a node-local network (scope `local`: bridge, host, none, user bridges,
//!   macvlan) is listed once per node as `node/name`; a cluster-wide one
//!   (scope `global` or `swarm`: overlay over the engines' cluster store)
//!   once, under its own name;
//! - a reference is `node/name` (or `node/ID`), a full ID, a name, or a
//!   unique ID prefix, in that order; a name held by several nodes' local
//!   networks is ambiguous and the error names the candidates;
//! - a create for `node/name` goes to that node, one for a plain name to a
//!   node the scheduler picks (constraints from the labels honoured);
//!   connect and disconnect go to the container's node.
//!
//! Networks are read from the engines when asked (they are not part of the
//! replicated state): a listing or a lookup asks every healthy node at
//! once. Engines' network objects are kept as JSON maps so that no field
//! an engine sends is lost on the way.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::fanout::on_node;
use super::{Manager, ManagerError};
use crate::cluster::NodeId;
use crate::scheduler::spec::Located;

/// One network as one node lists it.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    /// The node.
    pub node: NodeId,
    /// The node's name in the cluster.
    pub node_name: String,
    /// The engine's network object.
    pub network: Map<String, Value>,
}

impl NodeNetwork {
    /// `Id`.
    pub fn id(&self) -> &str {
        self.network.get("Id").and_then(Value::as_str).unwrap_or("")
    }

    /// `Name` as the engine has it.
    pub fn name(&self) -> &str {
        self.network
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Whether the network spans the cluster (scope `global` or `swarm`).
    pub fn is_global(&self) -> bool {
        matches!(
            self.network.get("Scope").and_then(Value::as_str),
            Some("global" | "swarm")
        )
    }

    /// The name the cluster shows: `node/name` for a local network.
    pub fn cluster_name(&self) -> String {
        if self.is_global() {
            self.name().to_string()
        } else {
            format!("{}/{}", self.node_name, self.name())
        }
    }

    /// The network object under its cluster name.
    pub fn to_cluster_json(&self) -> Value {
        let mut network = self.network.clone();
        network.insert("Name".into(), Value::String(self.cluster_name()));
        Value::Object(network)
    }
}

/// One node's engine list as [`NodeNetwork`]s.
fn of_node(node: &NodeId, node_name: &str, list: Vec<Map<String, Value>>) -> Vec<NodeNetwork> {
    list.into_iter()
        .map(|network| NodeNetwork {
            node: node.clone(),
            node_name: node_name.to_string(),
            network,
        })
        .collect()
}

/// The networks `reference` names among `all` (every copy of a global
/// network, or one node's local network); `Err` for none (404) or an
/// ambiguous name (400, naming the candidates).
pub fn resolve<'a>(
    all: &'a [NodeNetwork],
    reference: &str,
) -> Result<Vec<&'a NodeNetwork>, ManagerError> {
    let not_found = || ManagerError::NotFound(format!("network {reference} not found"));
    if reference.is_empty() {
        return Err(not_found());
    }
    if let Some((node, rest)) = reference.split_once('/') {
        let on_node: Vec<&NodeNetwork> = all
            .iter()
            .filter(|n| n.node_name == node && (n.name() == rest || n.id() == rest))
            .collect();
        if !on_node.is_empty() {
            return Ok(on_node);
        }
    }
    let by_id: Vec<&NodeNetwork> = all.iter().filter(|n| n.id() == reference).collect();
    if !by_id.is_empty() {
        return Ok(by_id);
    }
    let by_name: Vec<&NodeNetwork> = all.iter().filter(|n| n.name() == reference).collect();
    if !by_name.is_empty() {
        return one_network(by_name, reference);
    }
    let by_prefix: Vec<&NodeNetwork> = all
        .iter()
        .filter(|n| n.id().starts_with(reference))
        .collect();
    if !by_prefix.is_empty() {
        return one_network(by_prefix, reference);
    }
    Err(not_found())
}

/// The matches if they are one network (one ID), else the ambiguity.
fn one_network<'a>(
    matches: Vec<&'a NodeNetwork>,
    reference: &str,
) -> Result<Vec<&'a NodeNetwork>, ManagerError> {
    let ids: BTreeSet<&str> = matches.iter().map(|n| n.id()).collect();
    if ids.len() == 1 {
        return Ok(matches);
    }
    let candidates: BTreeSet<String> = matches.iter().map(|n| n.cluster_name()).collect();
    Err(ManagerError::Ambiguous(format!(
        "network {reference} is ambiguous ({} matches: {}); name one as node/name",
        candidates.len(),
        candidates.into_iter().collect::<Vec<_>>().join(", ")
    )))
}

/// The cluster's listing of `all`: local networks once per node, each
/// global network once (by ID), sorted by cluster name.
pub fn cluster_listing(all: &[NodeNetwork]) -> Vec<Value> {
    let mut seen_global = BTreeSet::new();
    let mut listed: Vec<(String, Value)> = all
        .iter()
        .filter(|n| !n.is_global() || seen_global.insert(n.id().to_string()))
        .map(|n| (n.cluster_name(), n.to_cluster_json()))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    listed.into_iter().map(|(_, v)| v).collect()
}

impl Manager {
    /// Every healthy node's networks (`query` passed to each engine), and
    /// the nodes that could not be read with their errors.
    pub async fn node_networks(&self, query: &str) -> (Vec<NodeNetwork>, Vec<(String, String)>) {
        let path = if query.is_empty() {
            "/networks".to_string()
        } else {
            format!("/networks?{query}")
        };
        let answers = self
            .fan_out(|engine| {
                let path = path.clone();
                async move { engine.get_json::<Vec<Map<String, Value>>>(&path).await }
            })
            .await;
        let mut networks = Vec::new();
        let mut failed = Vec::new();
        for (node, node_name, answer) in answers {
            match answer {
                Ok(list) => {
                    let listed = of_node(&node, &node_name, list);
                    if query.is_empty() {
                        self.remember(&node, &listed);
                    }
                    networks.extend(listed);
                }
                Err(e) => failed.push((node_name, e.to_string())),
            }
        }
        (networks, failed)
    }

    /// Keeps `listed` as all of `node`'s networks.
    fn remember(&self, node: &NodeId, listed: &[NodeNetwork]) {
        self.known_networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.clone(), listed.to_vec());
    }

    /// Lists `node`'s networks again after a change there, so that what it
    /// holds is known should it stop answering (only node-local networks
    /// matter then, and only this node's changed).
    async fn remember_networks_on(&self, node: &NodeId) {
        let Ok(engine) = self.engine(node) else {
            return;
        };
        if let Ok(list) = engine
            .get_json::<Vec<Map<String, Value>>>("/networks")
            .await
        {
            let node_name = self.state().node_name(node);
            self.remember(node, &of_node(node, &node_name, list));
        }
    }

    /// What the nodes that did not answer held when they last did (nodes
    /// still in the state only), beside `answered`.
    fn last_known_networks(&self, answered: &[NodeNetwork]) -> Vec<NodeNetwork> {
        let live: BTreeSet<&str> = answered.iter().map(|n| n.node.as_str()).collect();
        let state = self.cluster.read();
        let mut known = self
            .known_networks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        known.retain(|node, _| state.nodes.contains_key(node));
        known
            .iter()
            .filter(|(node, _)| !live.contains(node.as_str()))
            .flat_map(|(_, networks)| networks.iter().cloned())
            .collect()
    }

    /// `GET /networks`: the cluster's networks (see the module docs).
    pub async fn list_networks(&self, query: &str) -> Result<Vec<Value>, ManagerError> {
        let (networks, failed) = self.node_networks(query).await;
        for (node, error) in &failed {
            tracing::warn!(%node, %error, "network list failed on a node");
        }
        Ok(cluster_listing(&networks))
    }

    /// `GET /networks/{ref}`: the network, asked of (one of) the node(s)
    /// holding it, under its cluster name.
    pub async fn inspect_network(
        &self,
        reference: &str,
        query: &str,
    ) -> Result<Value, ManagerError> {
        let (all, _) = self.node_networks("").await;
        let found = resolve(&all, reference)?;
        let first = found[0];
        let engine = self.engine(&first.node)?;
        let path = if query.is_empty() {
            format!("/networks/{}", first.id())
        } else {
            format!("/networks/{}?{query}", first.id())
        };
        let network: Map<String, Value> = engine.get_json(&path).await?;
        Ok(NodeNetwork {
            network,
            ..first.clone()
        }
        .to_cluster_json())
    }

    /// `POST /networks/create`: on the node `node/name` names, else (a
    /// plain name) on a node the scheduler picks among the healthy ones,
    /// honouring constraints in the labels. A name the cluster already
    /// knows is refused as Docker refuses it (409).
    pub async fn create_network(
        &self,
        mut body: Map<String, Value>,
    ) -> Result<Value, ManagerError> {
        let requested = body
            .get("Name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ManagerError::InvalidRequest("network name is required".into()))?
            .to_string();
        let (all, _) = self.node_networks("").await;
        let (node, name) = match requested.split_once('/') {
            Some((node_name, name)) => {
                let node = self.node_named(node_name)?;
                (node, name.to_string())
            }
            None => {
                let labels = body.get("Labels").cloned().unwrap_or(Value::Null);
                (self.place_object(&labels).await?, requested.clone())
            }
        };
        let taken = all.iter().any(|n| {
            n.name() == name && (n.is_global() || n.node == node || !requested.contains('/'))
        });
        if taken {
            return Err(ManagerError::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        body.insert("Name".into(), Value::String(name));
        let engine = self.engine(&node)?;
        let created = engine
            .call(
                hyper::Method::POST,
                "/networks/create",
                Some(serde_json::to_vec(&body).map_err(|e| ManagerError::Internal(e.to_string()))?),
            )
            .await?;
        self.remember_networks_on(&node).await;
        serde_json::from_slice(&created).map_err(|e| ManagerError::Internal(e.to_string()))
    }

    /// Lists every node's networks again after a change on all of them (a
    /// prune), so that what a node held is known should it stop answering.
    pub(super) async fn remember_networks(&self) {
        let _ = self.node_networks("").await;
    }

    /// `POST /networks/{ref}/connect` and `.../disconnect`: on the node of
    /// the container the body names. A local network of another node is a
    /// clear error, before any engine is asked.
    pub async fn connect_network(
        &self,
        reference: &str,
        mut body: Map<String, Value>,
        action: &str,
    ) -> Result<(), ManagerError> {
        let container_ref = body
            .get("Container")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ManagerError::InvalidRequest("container is required".into()))?
            .to_string();
        let (container, engine) = self.resolve(&container_ref).await?;
        let (all, _) = self.node_networks("").await;
        let found = resolve(&all, reference)?;
        // A global network is the container's node's too, listed there
        // or not yet.
        let here = found
            .iter()
            .find(|n| n.node == container.node)
            .or_else(|| found.iter().find(|n| n.is_global()));
        let Some(network) = here else {
            let holders: Vec<String> = found.iter().map(|n| n.node_name.clone()).collect();
            return Err(ManagerError::InvalidRequest(format!(
                "network {reference} is local to node {}; container {container_ref} runs on node {}",
                holders.join(", "),
                self.state().node_name(&container.node)
            )));
        };
        body.insert("Container".into(), Value::String(container.id.clone()));
        engine
            .call(
                hyper::Method::POST,
                &format!("/networks/{}/{action}", network.id()),
                Some(serde_json::to_vec(&body).map_err(|e| ManagerError::Internal(e.to_string()))?),
            )
            .await?;
        Ok(())
    }

    /// `DELETE /networks/{ref}`: removed on its node, or (a global
    /// network) through one of the nodes that hold it.
    pub async fn remove_network(&self, reference: &str) -> Result<(), ManagerError> {
        let (all, _) = self.node_networks("").await;
        let found = resolve(&all, reference)?;
        let target = found[0];
        let engine = self.engine(&target.node)?;
        engine
            .call(
                hyper::Method::DELETE,
                &format!("/networks/{}", target.id()),
                None,
            )
            .await
            .map_err(|e| on_node(e.into(), &target.node_name))?;
        self.remember_networks_on(&target.node).await;
        Ok(())
    }

    /// Where the user networks a create joins live: a [`Located`] for each
    /// node-local one (none for a global network). A network no healthy
    /// node knows is refused with Docker's message as a 400: the docker
    /// CLI takes a 404 from a create for a missing image and pulls.
    pub async fn locate_networks(&self, names: &[String]) -> Result<Vec<Located>, ManagerError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let (mut all, _) = self.node_networks("").await;
        // A network on a node that stopped answering is still its: the
        // health filter then says why the container cannot go there.
        let stale = self.last_known_networks(&all);
        all.extend(stale);
        let mut located = Vec::new();
        for name in names {
            let found = resolve(&all, name).or_else(|e| match e {
                // The same name on several nodes: any of them will do.
                ManagerError::Ambiguous(_) => Ok(all.iter().filter(|n| n.name() == name).collect()),
                ManagerError::NotFound(message) => Err(ManagerError::InvalidRequest(message)),
                e => Err(e),
            })?;
            if found.iter().any(|n| n.is_global()) {
                continue;
            }
            located.push(Located {
                what: format!("network {name}"),
                nodes: found.iter().map(|n| n.node.clone()).collect(),
            });
        }
        Ok(located)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(node: &str, id: &str, name: &str, scope: &str) -> NodeNetwork {
        let network = serde_json::json!({"Id": id, "Name": name, "Scope": scope, "Driver": "x"});
        NodeNetwork {
            node: format!("{node}-id"),
            node_name: node.to_string(),
            network: network.as_object().cloned().unwrap_or_default(),
        }
    }

    fn world() -> Vec<NodeNetwork> {
        vec![
            net("node-1", "b1b1", "bridge", "local"),
            net("node-2", "b2b2", "bridge", "local"),
            net("node-1", "f1f1", "front", "local"),
            net("node-1", "0a0a", "ovl", "global"),
            net("node-2", "0a0a", "ovl", "global"),
            net("node-2", "babe", "back", "local"),
        ]
    }

    fn names(found: &[&NodeNetwork]) -> Vec<String> {
        found.iter().map(|n| n.cluster_name()).collect()
    }

    #[test]
    fn references_resolve_as_classic_did() {
        let all = world();
        let ok = |r: &str| names(&resolve(&all, r).unwrap_or_else(|e| panic!("{r}: {e}")));
        assert_eq!(ok("front"), ["node-1/front"]);
        assert_eq!(ok("node-2/bridge"), ["node-2/bridge"]);
        assert_eq!(ok("node-2/b2b2"), ["node-2/bridge"]);
        assert_eq!(ok("b1b1"), ["node-1/bridge"]);
        assert_eq!(ok("ovl"), ["ovl", "ovl"]);
        assert_eq!(ok("0a"), ["ovl", "ovl"]);
        assert_eq!(ok("bab"), ["node-2/back"]);
        match resolve(&all, "bridge") {
            Err(ManagerError::Ambiguous(m)) => {
                assert!(m.contains("node-1/bridge, node-2/bridge"), "{m}")
            }
            other => panic!("bridge: {other:?}"),
        }
        // `b` prefixes b1b1, b2b2 and babe.
        assert!(matches!(
            resolve(&all, "b"),
            Err(ManagerError::Ambiguous(_))
        ));
        for missing in ["nope", "node-3/front", "node-2/front", ""] {
            match resolve(&all, missing) {
                Err(ManagerError::NotFound(m)) => assert!(m.contains("not found"), "{m}"),
                other => panic!("{missing}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_listing_names_local_networks_by_node() {
        let listed: Vec<String> = cluster_listing(&world())
            .iter()
            .map(|v| v["Name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            listed,
            [
                "node-1/bridge",
                "node-1/front",
                "node-2/back",
                "node-2/bridge",
                "ovl"
            ]
        );
    }
}
