//! `GET /system/df` and the prunes (`POST /containers/prune`,
//! `/images/prune`, `/build/prune`), each one call into the manager
//! ([`Manager::disk_usage`], [`Manager::prune`]) that asks every healthy
//! node.
//!
//! A prune that fails on some nodes answers an error naming each of them
//! with its engine's message, and what the other nodes did (how many
//! deleted, space reclaimed): the docker CLI prints an error as it is,
//! while a `200` would show a partial result as if it were all. The
//! status is the first failed node's (its engine's status, `500` when it
//! could not be reached). When every node failed alike (a `400` for a bad
//! filter), that one error is the answer, as an engine's.
//!
//! [`Manager::disk_usage`]: crate::manager::Manager::disk_usage
//! [`Manager::prune`]: crate::manager::Manager::prune

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;

use super::{json_response, query_of, with_query, ApiError, App, ClientVersion};
use crate::cluster::human_bytes;
use crate::manager::{Prune, Pruned};

/// `GET /system/df`: every healthy node's disk usage, merged.
pub(super) async fn disk_usage(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = with_query(
        &format!("{}/system/df", version.prefix()),
        &query_of(&request),
    );
    let usage = app.manager.disk_usage(&path).await?;
    Ok(json_response(StatusCode::OK, &usage))
}

/// `POST /containers/prune`.
pub(super) async fn prune_containers(
    state: State<Arc<App>>,
    version: Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    prune(state, version, request, Prune::Containers).await
}

/// `POST /images/prune`.
pub(super) async fn prune_images(
    state: State<Arc<App>>,
    version: Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    prune(state, version, request, Prune::Images).await
}

/// `POST /networks/prune`.
pub(super) async fn prune_networks(
    state: State<Arc<App>>,
    version: Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    prune(state, version, request, Prune::Networks).await
}

/// `POST /volumes/prune`.
pub(super) async fn prune_volumes(
    state: State<Arc<App>>,
    version: Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    prune(state, version, request, Prune::Volumes).await
}

/// `POST /build/prune`.
pub(super) async fn prune_build_cache(
    state: State<Arc<App>>,
    version: Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    prune(state, version, request, Prune::BuildCache).await
}

async fn prune(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
    kind: Prune,
) -> Result<Response, ApiError> {
    let pruned = app
        .manager
        .prune(kind, &version.prefix(), &query_of(&request))
        .await?;
    render(pruned)
}

/// The nodes' prunes as the client's answer (see the module's
/// documentation for failures).
fn render(pruned: Pruned) -> Result<Response, ApiError> {
    if pruned.failed.is_empty() {
        return Ok(json_response(StatusCode::OK, &pruned.answer));
    }
    let deleted = pruned.deleted();
    let reclaimed = pruned.space_reclaimed();
    let what = pruned.kind.what();
    let failures: Vec<(String, ApiError)> = pruned
        .failed
        .into_iter()
        .map(|f| (f.name, ApiError::from(f.error)))
        .collect();
    let Some((_, first)) = failures.first() else {
        return Ok(json_response(StatusCode::OK, &pruned.answer));
    };
    if pruned.done.is_empty() && failures.iter().all(|(_, e)| e == first) {
        return Err(first.clone());
    }
    let mut message = failures
        .iter()
        .map(|(node, e)| format!("{what} prune failed on node {node}: {}", e.message))
        .collect::<Vec<_>>()
        .join("; ");
    if pruned.done.is_empty() {
        message.push_str("; nothing was pruned");
    } else {
        message.push_str(&format!(
            "; done on {} {}: {deleted} {} deleted, {} reclaimed",
            if pruned.done.len() == 1 {
                "node"
            } else {
                "nodes"
            },
            pruned.done.join(", "),
            noun(pruned.kind, deleted),
            human_bytes(i64::try_from(reclaimed).unwrap_or(i64::MAX)),
        ));
    }
    Err(ApiError::new(first.status, message))
}

/// What `n` deleted things of a prune of `kind` are called.
fn noun(kind: Prune, n: usize) -> &'static str {
    match (kind, n == 1) {
        (Prune::Containers, true) => "container",
        (Prune::Containers, false) => "containers",
        (Prune::Images, true) => "image",
        (Prune::Images, false) => "images",
        (Prune::BuildCache, true) => "cache record",
        (Prune::BuildCache, false) => "cache records",
        (Prune::Networks, true) => "network",
        (Prune::Networks, false) => "networks",
        (Prune::Volumes, true) => "volume",
        (Prune::Volumes, false) => "volumes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;
    use crate::manager::{ManagerError, NodeFailure};
    use http_body_util::BodyExt;
    use serde_json::json;

    fn engine_error(status: u16, message: &str) -> ManagerError {
        ManagerError::Engine(EngineError::Api {
            addr: "127.0.0.1:1".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: status,
                message: message.into(),
            },
        })
    }

    fn failure(name: &str, error: ManagerError) -> NodeFailure {
        NodeFailure {
            node: format!("id-{name}"),
            name: name.into(),
            error,
        }
    }

    fn pruned(done: &[&str], failed: Vec<NodeFailure>) -> Pruned {
        Pruned {
            kind: Prune::Containers,
            answer: json!({"ContainersDeleted": ["a", "b"], "SpaceReclaimed": 2048}),
            done: done.iter().map(|d| d.to_string()).collect(),
            failed,
        }
    }

    #[tokio::test]
    async fn every_node_done_is_the_engines_answer() {
        let response = render(pruned(&["node-1", "node-2"], Vec::new())).expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            value,
            json!({"ContainersDeleted": ["a", "b"], "SpaceReclaimed": 2048})
        );
    }

    #[test]
    fn a_failed_node_is_named_with_what_the_others_did() {
        let error = render(pruned(
            &["node-1"],
            vec![failure("node-2", ManagerError::NoEngine("node-2".into()))],
        ))
        .expect_err("partial");
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            error.message,
            "containers prune failed on node node-2: node node-2 has no engine connection; \
             done on node node-1: 2 containers deleted, 2 KiB reclaimed"
        );
        let error = render(pruned(
            &[],
            vec![
                failure(
                    "node-1",
                    engine_error(409, "a prune operation is already running"),
                ),
                failure("node-2", ManagerError::NoEngine("node-2".into())),
            ],
        ))
        .expect_err("all failed");
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert!(
            error.message.contains("on node node-1: a prune operation"),
            "{}",
            error.message
        );
        assert!(
            error.message.ends_with("; nothing was pruned"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_same_refusal_everywhere_is_the_engines() {
        let error = render(pruned(
            &[],
            vec![
                failure("node-1", engine_error(400, "Invalid filter 'bogus'")),
                failure("node-2", engine_error(400, "Invalid filter 'bogus'")),
            ],
        ))
        .expect_err("refused");
        assert_eq!(error, ApiError::bad_request("Invalid filter 'bogus'"));
    }
}
