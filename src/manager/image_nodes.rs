//! Image calls over the nodes: the list merged across every healthy node,
//! the node a read goes to (one that holds the image), a change (tag,
//! remove) on every node that holds it, and an upload (load, import)
//! streamed to every healthy node at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use bollard::models::ImageSummary;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};

use super::fanout::with_status;
use super::{EngineAnswer, Manager, ManagerError};
use crate::cluster::{NodeHealth, NodeId};
use crate::engine::{Engine, EngineError};

/// Chunks of an upload buffered per node before the slowest holds the
/// others back.
const UPLOAD_BUFFER: usize = 4;

impl Manager {
    /// `GET /images/json` on every healthy node (`path_and_query` as the
    /// client sent it; with `only`, on the nodes of those names or IDs),
    /// merged: one entry per image ID, newest first. A node that cannot
    /// answer is left out (logged); a `400` (a bad filter) is the answer,
    /// and so is an error every node gave (`before=` an image none has).
    pub async fn images(
        &self,
        path_and_query: &str,
        only: Option<&[String]>,
    ) -> Result<Vec<ImageSummary>, ManagerError> {
        let answers = self
            .fan_out(
                |engine| async move { engine.get_json::<Vec<ImageSummary>>(path_and_query).await },
            )
            .await;
        let mut merged: BTreeMap<String, ImageSummary> = BTreeMap::new();
        let (mut answered, mut first_error) = (false, None);
        for (node, name, answer) in answers {
            if only.is_some_and(|only| !only.iter().any(|n| *n == node || *n == name)) {
                continue;
            }
            match answer {
                Ok(list) => {
                    answered = true;
                    for image in list {
                        merge_image(&mut merged, image);
                    }
                }
                Err(e) if e.status() == Some(400) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(%node, error = %e, "image list failed on a node");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let (false, Some(e)) = (answered, first_error) {
            return Err(e.into());
        }
        let mut images: Vec<ImageSummary> = merged.into_values().collect();
        images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(images)
    }

    /// The healthy nodes whose state lists `reference` (a name, a digest,
    /// an ID or ID prefix).
    pub fn image_holders(&self, reference: &str) -> Vec<NodeId> {
        self.cluster
            .read()
            .nodes
            .values()
            .filter(|n| n.health == NodeHealth::Healthy && n.has_image(reference))
            .map(|n| n.info.id.clone())
            .collect()
    }

    /// The engine a read of image `name` goes to: with `newest` (a push,
    /// a save), the node with the newest copy when several hold it
    /// ([`Manager::newest_copy`]); else the first that holds it. When the
    /// state knows no holder, the first healthy node whose engine has it.
    pub async fn image_source(
        &self,
        name: &str,
        newest: bool,
    ) -> Result<Arc<Engine>, ManagerError> {
        let holders = self.image_holders(name);
        if newest && holders.len() > 1 {
            if let Some(node) = self.newest_copy(&holders, &[name.to_string()]).await {
                return self.engine(&node);
            }
        }
        if let Some(node) = holders.first() {
            return self.engine(node);
        }
        let probe = format!("/images/{name}/json");
        for (_, engine) in self.healthy_engines() {
            if engine.get_json::<serde_json::Value>(&probe).await.is_ok() {
                return Ok(engine);
            }
        }
        Err(no_such_image(name))
    }

    /// The engine a save of `names` goes to: a node that holds them all;
    /// the one with the newest copy when several do.
    pub async fn images_source(&self, names: &[String]) -> Result<Arc<Engine>, ManagerError> {
        let holders: Vec<NodeId> = self
            .cluster
            .read()
            .nodes
            .values()
            .filter(|n| n.health == NodeHealth::Healthy)
            .filter(|n| names.iter().all(|name| n.has_image(name)))
            .map(|n| n.info.id.clone())
            .collect();
        // Classic's words, then which image no healthy node holds at all.
        let no_node = || {
            let state = self.cluster.read();
            let nowhere: Vec<&str> = names
                .iter()
                .filter(|name| {
                    !state
                        .nodes
                        .values()
                        .any(|n| n.health == NodeHealth::Healthy && n.has_image(name))
                })
                .map(String::as_str)
                .collect();
            let why = if nowhere.is_empty() {
                "each is on some node, but no node holds them all".to_string()
            } else {
                format!("no healthy node holds {}", nowhere.join(", "))
            };
            ManagerError::NotFound(format!(
                "Unable to find a healthy engine containing all images: [{}] ({why})",
                names.join(" ")
            ))
        };
        let node = match holders.as_slice() {
            [] => return Err(no_node()),
            [node] => node.clone(),
            _ => self
                .newest_copy(&holders, names)
                .await
                .ok_or_else(no_node)?,
        };
        self.engine(&node)
    }

    /// Sends `method path_and_query` (a tag, a remove) to every node that
    /// holds image `name`, then re-reads their images. With
    /// `merge_arrays` the answers' JSON arrays are concatenated (a
    /// remove's list of what went). A failure on every node is the first
    /// node's error as the engine gave it; on some, an error that names
    /// the node and says the others did it.
    pub async fn on_image_holders(
        &self,
        name: &str,
        method: Method,
        path_and_query: &str,
        merge_arrays: bool,
    ) -> Result<EngineAnswer, ManagerError> {
        let holders = self.image_holders(name);
        if holders.is_empty() {
            return Err(no_such_image(name));
        }
        let mut merged: Vec<serde_json::Value> = Vec::new();
        let mut last_status = StatusCode::OK;
        let mut failures: Vec<(NodeId, EngineError)> = Vec::new();
        for node in &holders {
            let engine = self.engine(node)?;
            let request = Request::builder()
                .method(method.clone())
                .uri(path_and_query)
                .body(http_body_util::Empty::<Bytes>::new())
                .map_err(|e| ManagerError::Internal(e.to_string()))?;
            match engine.exchange(request).await {
                Ok(answer) if answer.status().is_success() => {
                    last_status = answer.status();
                    if merge_arrays {
                        if let Ok(serde_json::Value::Array(items)) =
                            serde_json::from_slice(answer.body())
                        {
                            merged.extend(items);
                        }
                    }
                }
                Ok(answer) => failures.push((
                    node.clone(),
                    engine.status_error(answer.status(), answer.body()),
                )),
                Err(e) => failures.push((node.clone(), e)),
            }
            if let Err(e) = self.refresh_images(node).await {
                tracing::debug!(error = %e, "image refresh failed");
            }
        }
        if let Some((node, error)) = failures.into_iter().next() {
            if holders.len() == 1 {
                return Err(error.into());
            }
            let message = format!(
                "{} (on node {}; done on the other nodes)",
                error.engine_message(),
                self.cluster.read().node_name(&node)
            );
            return Err(with_status(error.status(), message));
        }
        let body = if merge_arrays {
            Bytes::from(
                serde_json::to_vec(&merged).map_err(|e| ManagerError::Internal(e.to_string()))?,
            )
        } else {
            Bytes::new()
        };
        Ok(EngineAnswer {
            status: last_status,
            content_type: merge_arrays.then(|| HeaderValue::from_static("application/json")),
            body,
        })
    }

    /// Streams `body` (an image archive: `docker load`, `docker import -`)
    /// to every healthy node at once at `path_and_query`, then re-reads
    /// their images. The first node's answer; an error naming the node
    /// when one failed (`what` says which call, for the message).
    pub async fn upload_everywhere(
        &self,
        path_and_query: &str,
        content_type: Option<HeaderValue>,
        body: Body,
        what: &str,
    ) -> Result<EngineAnswer, ManagerError> {
        let engines = self.healthy_or_error(&format!("{what} images to"))?;
        let content_type =
            content_type.unwrap_or_else(|| HeaderValue::from_static("application/x-tar"));
        let mut senders = Vec::new();
        let mut uploads = Vec::new();
        for (node, engine) in engines {
            let (tx, rx) =
                futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(UPLOAD_BUFFER);
            senders.push(tx);
            let request = Request::post(path_and_query)
                .header(CONTENT_TYPE, content_type.clone())
                .body(Body::from_stream(rx))
                .map_err(|e| ManagerError::Internal(e.to_string()))?;
            uploads
                .push(async move { (node, engine.exchange(request).await.map(|a| (engine, a))) });
        }
        let pump = async move {
            let mut body = body.into_data_stream();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => {
                        let mut open = Vec::with_capacity(senders.len());
                        for mut tx in senders.drain(..) {
                            if tx.send(Ok(chunk.clone())).await.is_ok() {
                                open.push(tx);
                            }
                        }
                        senders = open;
                        if senders.is_empty() {
                            return;
                        }
                    }
                    Err(e) => {
                        for mut tx in senders.drain(..) {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        }
                        return;
                    }
                }
            }
        };
        let (results, ()) = futures::join!(futures::future::join_all(uploads), pump);
        let mut first_ok: Option<EngineAnswer> = None;
        let mut failure: Option<(NodeId, EngineError)> = None;
        for (node, result) in results {
            if let Err(e) = self.refresh_images(&node).await {
                tracing::debug!(error = %e, "image refresh failed");
            }
            match result {
                Ok((_, answer)) if answer.status().is_success() => {
                    if first_ok.is_none() {
                        let (parts, body) = answer.into_parts();
                        first_ok = Some(EngineAnswer {
                            status: parts.status,
                            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
                            body,
                        });
                    }
                }
                Ok((engine, answer)) => {
                    let error = engine.status_error(answer.status(), answer.body());
                    failure.get_or_insert((node, error));
                }
                Err(e) => {
                    failure.get_or_insert((node, e));
                }
            }
        }
        if let Some((node, error)) = failure {
            let message = format!(
                "{what} failed on node {}: {}",
                self.cluster.read().node_name(&node),
                error.engine_message()
            );
            return Err(with_status(error.status(), message));
        }
        first_ok.ok_or_else(|| ManagerError::Internal(format!("no node answered the {what}")))
    }
}

/// Docker's 404 for an image no node holds.
fn no_such_image(reference: &str) -> ManagerError {
    ManagerError::NotFound(format!("No such image: {reference}"))
}

/// Folds one node's image into the merged list: tags and digests united,
/// container counts summed.
fn merge_image(merged: &mut BTreeMap<String, ImageSummary>, image: ImageSummary) {
    match merged.get_mut(&image.id) {
        None => {
            merged.insert(image.id.clone(), image);
        }
        Some(existing) => {
            for tag in image.repo_tags {
                if !existing.repo_tags.contains(&tag) {
                    existing.repo_tags.push(tag);
                }
            }
            for digest in image.repo_digests {
                if !existing.repo_digests.contains(&digest) {
                    existing.repo_digests.push(digest);
                }
            }
            if image.containers > 0 {
                existing.containers = existing.containers.max(0) + image.containers;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], containers: i64) -> ImageSummary {
        ImageSummary {
            id: id.into(),
            parent_id: String::new(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: vec![],
            created: 1,
            size: 10,
            shared_size: -1,
            labels: Default::default(),
            containers,
            manifests: None,
            descriptor: None,
        }
    }

    #[test]
    fn merges_by_id() {
        let mut merged = BTreeMap::new();
        merge_image(&mut merged, image("sha256:a", &["x:1"], 1));
        merge_image(&mut merged, image("sha256:a", &["x:1", "y:2"], 2));
        merge_image(&mut merged, image("sha256:b", &["z:1"], -1));
        assert_eq!(merged.len(), 2);
        assert_eq!(merged["sha256:a"].repo_tags, vec!["x:1", "y:2"]);
        assert_eq!(merged["sha256:a"].containers, 3);
        assert_eq!(merged["sha256:b"].containers, -1);
    }
}
