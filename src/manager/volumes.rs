//! Volumes across the cluster, with Swarm classic's semantics: every
//! node's volumes are listed as `node/name`; a volume created under a plain
//! name is created on every healthy node (so a container finds it wherever
//! it lands), one named `node/name` on that node only; a plain name is
//! inspected on the first node that has it and removed from every node
//! that has it. Like networks, volumes are read from the engines when
//! asked, and kept as the engines' JSON.

use serde_json::{Map, Value};

use super::fanout::{on_node, partial, string_list};
use super::{Manager, ManagerError};
use crate::cluster::NodeId;
use crate::scheduler::spec::Located;

/// One volume as one node lists it.
#[derive(Debug, Clone)]
pub struct NodeVolume {
    /// The node.
    pub node: NodeId,
    /// The node's name in the cluster.
    pub node_name: String,
    /// The engine's volume object.
    pub volume: Map<String, Value>,
}

impl NodeVolume {
    /// `Name` as the engine has it.
    pub fn name(&self) -> &str {
        self.volume
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The volume under its cluster name, `node/name`.
    pub fn to_cluster_json(&self) -> Value {
        let mut volume = self.volume.clone();
        volume.insert(
            "Name".into(),
            Value::String(format!("{}/{}", self.node_name, self.name())),
        );
        Value::Object(volume)
    }
}

/// The copies `reference` names: `node/name` on that node, a plain name on
/// every node that has it, in node order. `NotFound` when none.
pub fn matching<'a>(
    all: &'a [NodeVolume],
    reference: &str,
) -> Result<Vec<&'a NodeVolume>, ManagerError> {
    let on_node: Vec<&NodeVolume> = match reference.split_once('/') {
        Some((node, name)) => all
            .iter()
            .filter(|v| v.node_name == node && v.name() == name)
            .collect(),
        None => Vec::new(),
    };
    let found = if on_node.is_empty() {
        all.iter().filter(|v| v.name() == reference).collect()
    } else {
        on_node
    };
    if found.is_empty() {
        return Err(ManagerError::NotFound(format!(
            "get {reference}: no such volume"
        )));
    }
    Ok(found)
}

impl Manager {
    /// Every healthy node's volumes (`query` passed to each engine), the
    /// engines' warnings, and the nodes that could not be read.
    pub async fn node_volumes(&self, query: &str) -> (Vec<NodeVolume>, Vec<String>) {
        let path = if query.is_empty() {
            "/volumes".to_string()
        } else {
            format!("/volumes?{query}")
        };
        let answers = self
            .fan_out(|engine| {
                let path = path.clone();
                async move { engine.get_json::<Value>(&path).await }
            })
            .await;
        let mut volumes = Vec::new();
        let mut warnings = Vec::new();
        for (node, node_name, answer) in answers {
            match answer {
                Ok(list) => {
                    for warning in string_list(&list, "Warnings") {
                        warnings.push(format!("{node_name}: {warning}"));
                    }
                    let found = list.get("Volumes").and_then(Value::as_array).cloned();
                    for volume in found.into_iter().flatten() {
                        if let Value::Object(volume) = volume {
                            volumes.push(NodeVolume {
                                node: node.clone(),
                                node_name: node_name.clone(),
                                volume,
                            });
                        }
                    }
                }
                Err(e) => warnings.push(format!("{node_name}: volumes not listed: {e}")),
            }
        }
        (volumes, warnings)
    }

    /// `GET /volumes`: every healthy node's volumes as `node/name`, the
    /// warnings naming the node they come from (an unhealthy node is one).
    pub async fn list_volumes(&self, query: &str) -> Result<Value, ManagerError> {
        let (volumes, mut warnings) = self.node_volumes(query).await;
        warnings.extend(
            self.unhealthy_nodes()
                .into_iter()
                .map(|n| format!("{n}: node unhealthy, its volumes are not listed")),
        );
        let mut listed: Vec<Value> = volumes.iter().map(NodeVolume::to_cluster_json).collect();
        listed.sort_by(|a, b| {
            a["Name"]
                .as_str()
                .unwrap_or_default()
                .cmp(b["Name"].as_str().unwrap_or_default())
        });
        Ok(serde_json::json!({
            "Volumes": listed,
            "Warnings": if warnings.is_empty() { Value::Null } else { serde_json::json!(warnings) },
        }))
    }

    /// `GET /volumes/{ref}`: the first node's copy, as `node/name`.
    pub async fn inspect_volume(&self, reference: &str) -> Result<Value, ManagerError> {
        let (volumes, _) = self.node_volumes("").await;
        let found = matching(&volumes, reference)?;
        Ok(found[0].to_cluster_json())
    }

    /// `POST /volumes/create`: `node/name` on that node; a plain name (or
    /// none: the first engine names it, the others take that name) on every
    /// healthy node. Answers with the first node's volume as `node/name`;
    /// a node that fails is named with what was created elsewhere.
    pub async fn create_volume(&self, mut body: Map<String, Value>) -> Result<Value, ManagerError> {
        let requested = body
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let targets: Vec<NodeId> = match requested.split_once('/') {
            Some((node_name, name)) => {
                body.insert("Name".into(), Value::String(name.to_string()));
                vec![self.node_named(node_name)?]
            }
            None => self.healthy_engines().into_iter().map(|(n, _)| n).collect(),
        };
        if targets.is_empty() {
            return Err(ManagerError::Internal(
                "no healthy node to create the volume on".into(),
            ));
        }
        let mut first: Option<Value> = None;
        let mut failed = Vec::new();
        let mut done = Vec::new();
        for node in targets {
            let node_name = self.state().node_name(&node);
            match self.create_volume_on(&node, &node_name, &body).await {
                Ok(copy) => {
                    if requested.is_empty() {
                        body.insert("Name".into(), Value::String(copy.name().to_string()));
                    }
                    done.push(format!("{node_name}/{}", copy.name()));
                    first.get_or_insert_with(|| copy.to_cluster_json());
                }
                Err(e) => failed.push(format!("{node_name}: {e}")),
            }
        }
        match first {
            Some(volume) if failed.is_empty() => Ok(volume),
            _ => Err(ManagerError::Internal(format!(
                "volume create failed on {}; created: {}",
                failed.join("; "),
                if done.is_empty() {
                    "none".to_string()
                } else {
                    done.join(", ")
                }
            ))),
        }
    }

    /// Creates the volume `body` describes on one node.
    async fn create_volume_on(
        &self,
        node: &str,
        node_name: &str,
        body: &Map<String, Value>,
    ) -> Result<NodeVolume, ManagerError> {
        let payload =
            serde_json::to_vec(body).map_err(|e| ManagerError::Internal(e.to_string()))?;
        let created = self
            .engine(node)?
            .call(hyper::Method::POST, "/volumes/create", Some(payload))
            .await?;
        let volume = serde_json::from_slice::<Map<String, Value>>(&created)
            .map_err(|e| ManagerError::Internal(e.to_string()))?;
        Ok(NodeVolume {
            node: node.to_string(),
            node_name: node_name.to_string(),
            volume,
        })
    }

    /// `DELETE /volumes/{ref}`: on every node that has it (`query`, e.g.
    /// `force=1`, passed through). A node that refuses (in use) is named;
    /// the others' copies are removed.
    pub async fn remove_volume(&self, reference: &str, query: &str) -> Result<(), ManagerError> {
        let (volumes, _) = self.node_volumes("").await;
        let found = matching(&volumes, reference)?;
        let mut failed: Vec<ManagerError> = Vec::new();
        let mut done = Vec::new();
        for copy in found {
            let path = if query.is_empty() {
                format!("/volumes/{}", copy.name())
            } else {
                format!("/volumes/{}?{query}", copy.name())
            };
            let removed = match self.engine(&copy.node) {
                Ok(engine) => engine
                    .call(hyper::Method::DELETE, &path, None)
                    .await
                    .map(|_| ())
                    .map_err(ManagerError::from),
                Err(e) => Err(e),
            };
            match removed {
                Ok(()) => done.push(format!("{}/{}", copy.node_name, copy.name())),
                Err(e) => failed.push(on_node(e, &copy.node_name)),
            }
        }
        match failed.len() {
            0 => Ok(()),
            // One refusal keeps its status (409 in use, 404 gone meanwhile).
            1 if done.is_empty() => Err(failed.remove(0)),
            _ => partial(failed.iter().map(|e| e.to_string()).collect(), &done),
        }
    }

    /// Where the named volumes a create mounts exist: a [`Located`] for
    /// each that exists on some nodes (one that exists nowhere is created
    /// by the engine where the container lands).
    pub async fn locate_volumes(&self, names: &[String]) -> Result<Vec<Located>, ManagerError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let (volumes, _) = self.node_volumes("").await;
        Ok(names
            .iter()
            .filter_map(|name| {
                let nodes: std::collections::BTreeSet<NodeId> = volumes
                    .iter()
                    .filter(|v| v.name() == name)
                    .map(|v| v.node.clone())
                    .collect();
                (!nodes.is_empty()).then(|| Located {
                    what: format!("volume {name}"),
                    nodes,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(node: &str, name: &str) -> NodeVolume {
        let volume = serde_json::json!({"Name": name, "Driver": "local"});
        NodeVolume {
            node: format!("{node}-id"),
            node_name: node.to_string(),
            volume: volume.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn plain_names_match_every_copy_node_names_one() {
        let all = vec![
            vol("node-1", "data"),
            vol("node-2", "data"),
            vol("node-2", "logs"),
        ];
        let nodes = |r: &str| -> Vec<String> {
            matching(&all, r)
                .unwrap_or_else(|e| panic!("{r}: {e}"))
                .iter()
                .map(|v| v.node_name.clone())
                .collect()
        };
        assert_eq!(nodes("data"), ["node-1", "node-2"]);
        assert_eq!(nodes("node-2/data"), ["node-2"]);
        assert_eq!(nodes("logs"), ["node-2"]);
        for missing in ["nope", "node-1/logs", ""] {
            assert!(
                matches!(matching(&all, missing), Err(ManagerError::NotFound(_))),
                "{missing}"
            );
        }
        assert_eq!(all[0].to_cluster_json()["Name"], "node-1/data");
    }
}
