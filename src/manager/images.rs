//! Images made on one node: `docker commit` goes to the container's node,
//! and the node's images are re-read before the answer, so the new image
//! is listed at once and placement prefers the node that holds it. Also
//! the healthy nodes for the image calls that go to all of them (pull,
//! load), and the pick of one for the calls any engine answers alike
//! (registry search, `docker login`, registry lookups).

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
