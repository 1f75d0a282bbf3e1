//! Disk space across the nodes: `docker system df` and the prunes.
//!
//! - [`Manager::disk_usage`]: every healthy node's `GET /system/df`, merged
//!   into one answer shaped as an engine's: `LayersSize` (and the old
//!   `BuilderSize`) summed, images merged per ID as `docker images` merges
//!   them, containers named `/node/name` as `docker ps` names them, volumes
//!   named `node/name`, build cache records side by side.
//! - [`Manager::prune`]: `POST /containers/prune`, `/images/prune` or
//!   `/build/prune` sent to every healthy node at once with the client's
//!   query (filters included): the deleted lists are concatenated and
//!   `SpaceReclaimed` summed. A node that fails does not hide the others:
//!   the result ([`Pruned`]) holds what was done and which nodes failed,
//!   and the API answers an error naming them. The state is brought in
//!   line before the answer: the nodes' containers are re-read after a
//!   containers prune (and the deleted ones recorded as removed, whatever
//!   the engines' events are doing meanwhile), their images after an
//!   images prune.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use hyper::Method;
use serde_json::{Map, Value};

use super::{Manager, ManagerError};
use crate::cluster::{Command, NodeId};
use crate::engine::Engine;

/// What a prune removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// `POST /containers/prune`: stopped containers.
    Containers,
    /// `POST /images/prune`: dangling (or, with `dangling=false`, unused)
    /// images.
    Images,
    /// `POST /build/prune`: the builder's cache.
    BuildCache,
    /// `POST /networks/prune`: unused networks (listed as `node/name`).
    Networks,
    /// `POST /volumes/prune`: unused volumes (listed as `node/name`).
    Volumes,
}

impl Prune {
    /// The engine path, without a version prefix.
    pub fn path(self) -> &'static str {
        match self {
            Prune::Containers => "/containers/prune",
            Prune::Images => "/images/prune",
            Prune::BuildCache => "/build/prune",
            Prune::Networks => "/networks/prune",
            Prune::Volumes => "/volumes/prune",
        }
    }

    /// The answer's list of what was deleted.
    fn deleted_key(self) -> &'static str {
        match self {
            Prune::Containers => "ContainersDeleted",
            Prune::Images => "ImagesDeleted",
            Prune::BuildCache => "CachesDeleted",
            Prune::Networks => "NetworksDeleted",
            Prune::Volumes => "VolumesDeleted",
        }
    }

    /// What it removes, in words.
    pub fn what(self) -> &'static str {
        match self {
            Prune::Containers => "containers",
            Prune::Images => "images",
            Prune::BuildCache => "build cache",
            Prune::Networks => "networks",
            Prune::Volumes => "volumes",
        }
    }
}

/// A node where a call sent to every node failed.
#[derive(Debug)]
pub struct NodeFailure {
    /// The node.
    pub node: NodeId,
    /// Its name, as `docker info` and container names show it.
    pub name: String,
    /// What went wrong there (the engine's own error when it answered).
    pub error: ManagerError,
}

/// The prunes of every healthy node, together.
#[derive(Debug)]
pub struct Pruned {
    /// What was pruned.
    pub kind: Prune,
    /// The answer as one engine's: the deleted lists of the nodes that
    /// succeeded concatenated, their `SpaceReclaimed` summed.
    pub answer: Value,
    /// Names of the nodes whose prune succeeded.
    pub done: Vec<String>,
    /// The nodes whose prune failed.
    pub failed: Vec<NodeFailure>,
}

impl Pruned {
    /// How many things the nodes that succeeded deleted (for images: the
    /// images deleted, not the tags untagged).
    pub fn deleted(&self) -> usize {
        let list = self.answer.get(self.kind.deleted_key());
        let items = list.and_then(Value::as_array).map(Vec::as_slice);
        match self.kind {
            Prune::Images => items
                .unwrap_or_default()
                .iter()
                .filter(|i| i.get("Deleted").is_some())
                .count(),
            _ => items.map_or(0, <[Value]>::len),
        }
    }

    /// The bytes the nodes that succeeded reclaimed.
    pub fn space_reclaimed(&self) -> u64 {
        self.answer
            .get("SpaceReclaimed")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

impl Manager {
    /// `GET {path_and_query}` (`/v1.41/system/df?...`) on every healthy
    /// node, merged as described in the module's documentation. A node
    /// that fails is left out (logged), as `docker ps` leaves it out; a
    /// `400` (the request's own fault, the same on every node) fails the
    /// whole call, and so does every node failing.
    pub async fn disk_usage(&self, path_and_query: &str) -> Result<Value, ManagerError> {
        let answers = self
            .fan_out(|engine| whole_answer(engine, Method::GET, path_and_query))
            .await;
        if answers.is_empty() {
            return Err(ManagerError::NoHealthyNode("report disk usage of".into()));
        }
        let mut usage = DiskUsage::default();
        let mut first_error = None;
        for (_, name, answer) in answers {
            match answer.and_then(|body| usage_of(&body)) {
                Ok(node_usage) => usage.add(&name, node_usage),
                Err(e) if is_client_error(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "disk usage failed on a node");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if usage.nodes == 0 => Err(e),
            _ => Ok(usage.into_value()),
        }
    }

    /// Prunes `kind` on every healthy node at once (`prefix`: the client's
    /// `/vX.Y` or nothing; `query`: the client's, filters included), then
    /// re-reads what the prune changed in the state: the containers of
    /// every node that answered after a containers prune, their images
    /// after an images prune. Fails only when no node is healthy; the
    /// nodes' own failures are in [`Pruned::failed`].
    pub async fn prune(
        &self,
        kind: Prune,
        prefix: &str,
        query: &str,
    ) -> Result<Pruned, ManagerError> {
        let path = if query.is_empty() {
            format!("{prefix}{}", kind.path())
        } else {
            format!("{prefix}{}?{query}", kind.path())
        };
        let answers = self
            .fan_out(|engine| whole_answer(engine, Method::POST, &path))
            .await;
        if answers.is_empty() {
            return Err(ManagerError::NoHealthyNode(format!(
                "prune {} on",
                kind.what()
            )));
        }
        let mut pruned = Pruned {
            kind,
            answer: Value::Null,
            done: Vec::new(),
            failed: Vec::new(),
        };
        let mut deleted: Vec<Value> = Vec::new();
        let mut reclaimed: u64 = 0;
        let mut answered = Vec::new();
        for (node, name, answer) in answers {
            let parsed = answer.and_then(|body| {
                serde_json::from_slice::<Value>(&body).map_err(|e| {
                    ManagerError::Internal(format!(
                        "node {name} answered the prune with invalid JSON: {e}"
                    ))
                })
            });
            match parsed {
                Ok(value) => {
                    if let Some(items) = value.get(kind.deleted_key()).and_then(Value::as_array) {
                        // Networks and volumes are named by node, as listed.
                        let by_node = matches!(kind, Prune::Networks | Prune::Volumes);
                        deleted.extend(items.iter().map(|item| match item.as_str() {
                            Some(n) if by_node => Value::String(format!("{name}/{n}")),
                            _ => item.clone(),
                        }));
                    }
                    reclaimed = reclaimed.saturating_add(
                        value
                            .get("SpaceReclaimed")
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                    );
                    answered.push(node);
                    pruned.done.push(name);
                }
                Err(error) => {
                    if matches!(&error, ManagerError::Engine(e) if e.status().is_some()) {
                        answered.push(node.clone());
                    }
                    tracing::warn!(node = %name, error = %error, what = kind.what(), "prune failed on a node");
                    pruned.failed.push(NodeFailure { node, name, error });
                }
            }
        }
        let mut answer = Map::new();
        // An engine with nothing to delete answers `null`, as Go does.
        answer.insert(
            kind.deleted_key().into(),
            if deleted.is_empty() {
                Value::Null
            } else {
                Value::Array(deleted)
            },
        );
        answer.insert("SpaceReclaimed".into(), Value::from(reclaimed));
        pruned.answer = Value::Object(answer);
        self.refresh_after_prune(kind, &answered).await;
        if kind == Prune::Containers {
            self.forget_pruned(pruned.answer.get(kind.deleted_key()))
                .await;
        }
        Ok(pruned)
    }

    /// Records the removal of the containers a prune deleted that the
    /// state still holds: a node's list read after the prune is refused as
    /// stale when one of the prune's `destroy` events is applied while it
    /// is read, and the events still on their way may come after the
    /// answer.
    async fn forget_pruned(&self, deleted: Option<&Value>) {
        let left: Vec<String> = {
            let state = self.state();
            deleted
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|id| state.containers.contains_key(id))
                .map(str::to_string)
                .collect()
        };
        for id in left {
            if let Err(e) = self.cluster.propose(Command::ContainerRemoved { id }).await {
                tracing::debug!(error = %e, "cannot record a pruned container's removal");
            }
        }
    }

    /// Re-reads what a prune of `kind` changed on the nodes that answered.
    async fn refresh_after_prune(&self, kind: Prune, answered: &[NodeId]) {
        let jobs = answered.iter().map(|node| async move {
            let refreshed = match kind {
                Prune::Containers => match self.engine(node) {
                    Ok(engine) => self.refresh_node_containers(node, &engine).await,
                    Err(e) => Err(e),
                },
                Prune::Images => self.refresh_images(node).await,
                Prune::BuildCache | Prune::Volumes => Ok(()),
                // Once for all nodes, below.
                Prune::Networks => Ok(()),
            };
            if let Err(e) = refreshed {
                tracing::debug!(%node, error = %e, "refresh after a prune failed");
            }
        });
        futures::future::join_all(jobs).await;
        if kind == Prune::Networks {
            self.remember_networks().await;
        }
    }
}

/// `method path_and_query` (no body) sent to `engine`: its whole answer
/// body on success, else its error (an error status as the engine's API
/// error). Not bounded in time, unlike [`Engine::call`]: a prune of many
/// images, or a `df` computing many sizes, takes the engine a while.
async fn whole_answer(
    engine: Arc<Engine>,
    method: Method,
    path_and_query: &str,
) -> Result<bytes::Bytes, ManagerError> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(Body::empty())
        .map_err(|e| ManagerError::InvalidRequest(format!("invalid request: {e}")))?;
    let response = engine.exchange(request).await?;
    let (parts, body) = response.into_parts();
    if parts.status.is_success() {
        Ok(body)
    } else {
        Err(ManagerError::Engine(
            engine.status_error(parts.status, &body),
        ))
    }
}

/// Whether an engine refused the request itself (a `400`: bad filters),
/// which every node would refuse alike.
fn is_client_error(e: &ManagerError) -> bool {
    matches!(e, ManagerError::Engine(e) if e.status() == Some(400))
}

/// One node's `GET /system/df` answer.
fn usage_of(body: &[u8]) -> Result<Map<String, Value>, ManagerError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ManagerError::Internal(format!(
            "disk usage answer is not an object: {other}"
        ))),
        Err(e) => Err(ManagerError::Internal(format!(
            "disk usage answer is not JSON: {e}"
        ))),
    }
}

/// The nodes' disk usage being merged.
#[derive(Debug, Default)]
struct DiskUsage {
    /// Nodes added.
    nodes: usize,
    /// `LayersSize` summed.
    layers_size: i64,
    /// `BuilderSize` (deprecated, still sent by 20.10 engines) summed, if
    /// any node sent it.
    builder_size: Option<i64>,
    /// Images by ID.
    images: BTreeMap<String, Value>,
    /// Images without an ID (none in practice), kept as they are.
    other_images: Vec<Value>,
    containers: Vec<Value>,
    volumes: Vec<Value>,
    build_cache: Vec<Value>,
    /// Other top-level fields, the first node's.
    other: Map<String, Value>,
}

impl DiskUsage {
    /// Adds node `node_name`'s usage.
    fn add(&mut self, node_name: &str, mut usage: Map<String, Value>) {
        self.nodes += 1;
        let number = |v: Option<Value>| v.as_ref().and_then(Value::as_i64);
        self.layers_size = self
            .layers_size
            .saturating_add(number(usage.remove("LayersSize")).unwrap_or(0));
        if let Some(size) = number(usage.remove("BuilderSize")) {
            self.builder_size = Some(self.builder_size.unwrap_or(0).saturating_add(size));
        }
        for image in take_array(&mut usage, "Images") {
            match image.get("Id").and_then(Value::as_str).map(str::to_string) {
                Some(id) => merge_image(&mut self.images, id, image),
                None => self.other_images.push(image),
            }
        }
        for mut container in take_array(&mut usage, "Containers") {
            if let Some(names) = container.get_mut("Names").and_then(Value::as_array_mut) {
                for name in names.iter_mut() {
                    if let Some(n) = name.as_str() {
                        *name = Value::String(container_name(node_name, n));
                    }
                }
            }
            self.containers.push(container);
        }
        for mut volume in take_array(&mut usage, "Volumes") {
            if let Some(name) = volume.get_mut("Name") {
                if let Some(n) = name.as_str() {
                    *name = Value::String(format!("{node_name}/{n}"));
                }
            }
            self.volumes.push(volume);
        }
        for record in take_array(&mut usage, "BuildCache") {
            let id = record.get("ID").and_then(Value::as_str);
            let known = id.is_some_and(|id| {
                self.build_cache
                    .iter()
                    .any(|r| r.get("ID").and_then(Value::as_str) == Some(id))
            });
            if !known {
                self.build_cache.push(record);
            }
        }
        for (key, value) in usage {
            self.other.entry(key).or_insert(value);
        }
    }

    /// The merged answer, shaped as an engine's (`null` for empty lists,
    /// as Go writes them).
    fn into_value(self) -> Value {
        let list = |items: Vec<Value>| {
            if items.is_empty() {
                Value::Null
            } else {
                Value::Array(items)
            }
        };
        let mut images: Vec<Value> = self.images.into_values().chain(self.other_images).collect();
        // Newest first, as engines list them.
        images.sort_by_key(|i| std::cmp::Reverse(i.get("Created").and_then(Value::as_i64)));
        let mut out = self.other;
        out.insert("LayersSize".into(), Value::from(self.layers_size));
        out.insert("Images".into(), Value::Array(images));
        out.insert("Containers".into(), Value::Array(self.containers));
        out.insert("Volumes".into(), Value::Array(self.volumes));
        out.insert("BuildCache".into(), list(self.build_cache));
        if let Some(size) = self.builder_size {
            out.insert("BuilderSize".into(), Value::from(size));
        }
        Value::Object(out)
    }
}

/// The array under `key`, taken out of `map` (empty when absent or `null`).
fn take_array(map: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match map.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// A container's name as the cluster lists it: `/node/name` (and
/// `/node/other/alias` for a link alias), as `docker ps` shows it.
pub fn container_name(node_name: &str, engine_name: &str) -> String {
    format!("/{node_name}/{}", engine_name.trim_start_matches('/'))
}

/// Folds one node's image into the merged images: tags and digests united,
/// container counts summed (an image's `-1`, "not counted", stays unless
/// another node counted).
fn merge_image(merged: &mut BTreeMap<String, Value>, id: String, image: Value) {
    let Some(existing) = merged.get_mut(&id) else {
        merged.insert(id, image);
        return;
    };
    for key in ["RepoTags", "RepoDigests"] {
        let Some(Value::Array(new)) = image.get(key) else {
            continue;
        };
        match existing.get_mut(key) {
            Some(Value::Array(old)) => {
                for item in new {
                    if !old.contains(item) {
                        old.push(item.clone());
                    }
                }
            }
            _ => {
                if let Some(object) = existing.as_object_mut() {
                    object.insert(key.into(), Value::Array(new.clone()));
                }
            }
        }
    }
    let count = |v: &Value| v.get("Containers").and_then(Value::as_i64).unwrap_or(-1);
    let (old, new) = (count(existing), count(&image));
    if new > 0 {
        if let Some(object) = existing.as_object_mut() {
            object.insert("Containers".into(), Value::from(old.max(0) + new));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_usage(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn disk_usage_merges_nodes() {
        let mut usage = DiskUsage::default();
        usage.add(
            "node-1",
            node_usage(json!({
                "LayersSize": 100,
                "Images": [
                    {"Id": "sha256:a", "Created": 1, "RepoTags": ["busybox:local"], "Containers": 1, "Size": 10},
                    {"Id": "sha256:b", "Created": 3, "RepoTags": ["mine:1"], "Containers": 0, "Size": 5}
                ],
                "Containers": [{"Id": "c1", "Names": ["/web", "/db/web"], "SizeRw": 4}],
                "Volumes": [{"Name": "data", "UsageData": {"Size": 7, "RefCount": 1}}],
                "BuildCache": [{"ID": "x", "Size": 2}],
                "BuilderSize": 2
            })),
        );
        usage.add(
            "node-2",
            node_usage(json!({
                "LayersSize": 50,
                "Images": [
                    {"Id": "sha256:a", "Created": 1, "RepoTags": ["busybox:local", "busybox:other"], "Containers": 2, "Size": 10}
                ],
                "Containers": [{"Id": "c2", "Names": ["/web"]}],
                "Volumes": [{"Name": "data"}],
                "BuildCache": null,
                "BuilderSize": 0
            })),
        );
        let merged = usage.into_value();
        assert_eq!(merged["LayersSize"], 150);
        assert_eq!(merged["BuilderSize"], 2);
        let images = merged["Images"].as_array().expect("images");
        assert_eq!(images.len(), 2, "merged per ID: {images:?}");
        assert_eq!(images[0]["Id"], "sha256:b", "newest first");
        assert_eq!(
            images[1]["RepoTags"],
            json!(["busybox:local", "busybox:other"])
        );
        assert_eq!(images[1]["Containers"], 3);
        let names: Vec<&Value> = merged["Containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| &c["Names"])
            .collect();
        assert_eq!(
            names,
            [
                &json!(["/node-1/web", "/node-1/db/web"]),
                &json!(["/node-2/web"])
            ]
        );
        let volumes: Vec<&Value> = merged["Volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| &v["Name"])
            .collect();
        assert_eq!(volumes, ["node-1/data", "node-2/data"]);
        assert_eq!(merged["BuildCache"], json!([{"ID": "x", "Size": 2}]));
    }

    #[test]
    fn empty_disk_usage_is_an_engines() {
        let mut usage = DiskUsage::default();
        usage.add(
            "n",
            node_usage(json!({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": null})),
        );
        let merged = usage.into_value();
        assert_eq!(
            merged,
            json!({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": null})
        );
    }

    #[test]
    fn images_counted_once_per_id_and_not_counted_kept() {
        let mut merged = BTreeMap::new();
        merge_image(
            &mut merged,
            "a".into(),
            json!({"Id": "a", "Containers": -1}),
        );
        merge_image(
            &mut merged,
            "a".into(),
            json!({"Id": "a", "Containers": -1, "RepoTags": ["x:1"]}),
        );
        assert_eq!(merged["a"]["Containers"], -1);
        assert_eq!(merged["a"]["RepoTags"], json!(["x:1"]));
    }

    #[test]
    fn pruned_counts() {
        let pruned = Pruned {
            kind: Prune::Images,
            answer: json!({
                "ImagesDeleted": [{"Untagged": "x:1"}, {"Deleted": "sha256:a"}, {"Deleted": "sha256:b"}],
                "SpaceReclaimed": 12
            }),
            done: vec!["node-1".into()],
            failed: Vec::new(),
        };
        assert_eq!(pruned.deleted(), 2);
        assert_eq!(pruned.space_reclaimed(), 12);
        let pruned = Pruned {
            kind: Prune::Containers,
            answer: json!({"ContainersDeleted": null, "SpaceReclaimed": 0}),
            done: Vec::new(),
            failed: Vec::new(),
        };
        assert_eq!(pruned.deleted(), 0);
    }

    #[test]
    fn names_as_the_cluster_lists_them() {
        assert_eq!(container_name("node-1", "/web"), "/node-1/web");
        assert_eq!(container_name("node-1", "/db/web"), "/node-1/db/web");
    }
}
