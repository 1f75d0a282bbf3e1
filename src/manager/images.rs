//! Images made on one node: `docker commit` goes to the container's node,
//! and the node's images are re-read before the answer, so the new image
//! is listed at once and placement prefers the node that holds it. Also
//! the healthy nodes for the image calls that go to all of them (pull,
//! load), and the pick of one for the calls any engine answers alike
//! (registry search, `docker login`, registry lookups). And the copy of
//! an image from a node that holds it to one that does not
//! ([`Manager::copy_image`]): what the cluster holds, as a virtual
//! engine, runs on any node its scheduler picks.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Request;

use super::{EngineAnswer, Manager, ManagerError};
use crate::cluster::NodeId;
use crate::engine::Engine;

/// A `docker commit` as the API received it.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The container reference (`?container=`): a name, `node/name`, an ID
    /// or a unique ID prefix.
    pub container: String,
    /// The client's `/vX.Y` prefix, or nothing.
    pub prefix: String,
    /// The client's query (`container`, `repo`, `tag`, `comment`,
    /// `author`, `pause`, `changes`).
    pub query: String,
    /// The body (the image's configuration, JSON), as the client sent it.
    pub body: Bytes,
    /// Its content type.
    pub content_type: Option<HeaderValue>,
}

impl Manager {
    /// Commits the container to an image on the container's node (the
    /// query's `container` replaced by the container's ID, which the
    /// engine knows), then re-reads that node's images. The engine's
    /// answer is returned as it is, an error status included.
    pub async fn commit(&self, commit: CommitRequest) -> Result<EngineAnswer, ManagerError> {
        let (container, engine) = self.resolve(&commit.container).await?;
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                url::form_urlencoded::parse(commit.query.as_bytes()).map(|(k, v)| {
                    if k == "container" {
                        (k, container.id.clone().into())
                    } else {
                        (k, v)
                    }
                }),
            )
            .finish();
        let mut request = Request::post(format!("{}/commit?{query}", commit.prefix));
        if let Some(content_type) = commit.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Body::from(commit.body))
            .map_err(|e| ManagerError::InvalidRequest(format!("invalid commit request: {e}")))?;
        let answer = engine.exchange(request).await?;
        if answer.status().is_success() {
            if let Err(e) = self.refresh_node_images(&container.node, &engine).await {
                tracing::warn!(node = %container.node, error = %e, "cannot re-read the images after a commit");
            }
        }
        let (parts, body) = answer.into_parts();
        Ok(EngineAnswer {
            status: parts.status,
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
            body,
        })
    }

    /// Copies `image` (a name or an ID) to node `to` from a healthy node
    /// that holds it: the holder's `docker save` streamed into `to`'s
    /// `docker load`, then `to`'s images re-read. Returns the node it came
    /// from; an error when no other node holds it or the copy failed.
    pub async fn copy_image(&self, image: &str, to: &str) -> Result<NodeId, ManagerError> {
        let holders: Vec<NodeId> = {
            let state = self.cluster.read();
            state
                .nodes
                .values()
                .filter(|n| n.health == crate::cluster::NodeHealth::Healthy)
                .filter(|n| n.info.id != to && n.has_image(image))
                .map(|n| n.info.id.clone())
                .collect()
        };
        let from = match holders.as_slice() {
            [] => return Err(ManagerError::NotFound(format!("No such image: {image}"))),
            [one] => one.clone(),
            [first, ..] => self
                .newest_copy(&holders, &[image.to_string()])
                .await
                .unwrap_or_else(|| first.clone()),
        };
        let source = self.engine(&from)?;
        let target = self.engine(to)?;
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("names", image)
            .finish();
        let save = Request::get(format!("/images/get?{query}"))
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| ManagerError::Internal(e.to_string()))?;
        let saved = source.send(save).await?;
        if !saved.status().is_success() {
            let status = saved.status();
            let body = http_body_util::BodyExt::collect(saved.into_body())
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(source.status_error(status, &body).into());
        }
        let load = Request::post("/images/load?quiet=1")
            .header(CONTENT_TYPE, "application/x-tar")
            .body(Body::new(saved.into_body()))
            .map_err(|e| ManagerError::Internal(e.to_string()))?;
        let answer = target.exchange(load).await?;
        if !answer.status().is_success() {
            return Err(target.status_error(answer.status(), answer.body()).into());
        }
        if let Some(error) = crate::engine::stream_error(answer.body()) {
            return Err(ManagerError::Internal(format!(
                "copying {image} to {}: {error}",
                self.cluster.read().node_name(to)
            )));
        }
        self.refresh_images(to).await?;
        Ok(from)
    }

    /// Of `nodes`, the one holding the newest copy of any of `images` (by
    /// the image's `Created`; ties: the first of `nodes`), so that a push,
    /// a save or a copy of a name that nodes hold as different builds
    /// always reads the same one; `None` when no node answers.
    pub async fn newest_copy(&self, nodes: &[NodeId], images: &[String]) -> Option<NodeId> {
        let asks = nodes.iter().filter_map(|node| {
            let engine = self.engine(node).ok()?;
            Some(async move {
                let mut newest = None;
                for image in images {
                    let inspected = engine
                        .get_json::<serde_json::Value>(&format!("/images/{image}/json"))
                        .await;
                    let created = inspected.ok().and_then(|v| {
                        let created = v.get("Created")?.as_str()?.to_string();
                        chrono::DateTime::parse_from_rfc3339(&created).ok()
                    });
                    newest = newest.max(created);
                }
                (newest, node)
            })
        });
        let mut best: Option<(chrono::DateTime<chrono::FixedOffset>, &NodeId)> = None;
        for (created, node) in futures::future::join_all(asks).await {
            if let Some(created) = created {
                if best.as_ref().is_none_or(|(b, _)| created > *b) {
                    best = Some((created, node));
                }
            }
        }
        best.map(|(_, node)| node.clone())
    }

    /// A healthy node for a call that any engine answers alike (`what`
    /// says what for, in the error when there is none): the first in
    /// node-ID order.
    pub fn some_healthy_engine(&self, what: &str) -> Result<(NodeId, Arc<Engine>), ManagerError> {
        self.healthy_engines()
            .into_iter()
            .next()
            .ok_or_else(|| ManagerError::NoHealthyNode(what.to_string()))
    }

    /// The healthy nodes, or an error saying there is none to `what`.
    pub fn healthy_or_error(&self, what: &str) -> Result<Vec<(NodeId, Arc<Engine>)>, ManagerError> {
        let engines = self.healthy_engines();
        if engines.is_empty() {
            return Err(ManagerError::NoHealthyNode(what.to_string()));
        }
        Ok(engines)
    }
}
