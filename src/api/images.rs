//! Images: the list merged across nodes; inspect, history and save from a
//! node that has the image; tag and remove on every node that has it; load
//! to every node, the uploaded archive streamed to all of them at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use bollard::models::ImageSummary;
use futures::{SinkExt, StreamExt};

use super::containers::engine_get;
use super::proxy::{engine_error, forward, read_body};
use super::{
    json_response, query_of, query_param, with_query, ApiError, App, ClientVersion, BODY_LIMIT,
};
use crate::cluster::NodeId;
use crate::engine::Engine;
use crate::manager::{CommitRequest, Manager};

/// Per-image actions, the last path segment after the image name.
const ACTIONS: [&str; 5] = ["json", "tag", "get", "history", "push"];

/// `GET /images/json`: every node's images, one entry per image ID.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = with_query(
        &format!("{}/images/json", version.prefix()),
        &query_of(&request),
    );
    let jobs = app
        .manager
        .healthy_engines()
        .into_iter()
        .map(|(node, engine)| {
            let path = path.clone();
            async move { (node, engine_get(&engine, &path).await) }
        });
    let mut merged: BTreeMap<String, ImageSummary> = BTreeMap::new();
    for (node, answer) in futures::future::join_all(jobs).await {
        let list = match answer {
            Ok((status, body)) if status.is_success() => {
                serde_json::from_slice::<Vec<ImageSummary>>(&body).map_err(|e| e.to_string())
            }
            Ok((status, body)) if status == StatusCode::BAD_REQUEST => {
                return Err(engine_error(status, &body))
            }
            Ok((status, body)) => Err(engine_error(status, &body).message),
            Err(e) => Err(e.message),
        };
        match list {
            Ok(list) => {
                for image in list {
                    merge_image(&mut merged, image);
                }
            }
            Err(e) => tracing::warn!(%node, error = %e, "image list failed on a node"),
        }
    }
    let mut images: Vec<ImageSummary> = merged.into_values().collect();
    images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(json_response(StatusCode::OK, &images))
}

/// Folds one node's image into the merged list: tags and digests united,
/// container counts summed.
pub fn merge_image(merged: &mut BTreeMap<String, ImageSummary>, image: ImageSummary) {
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

/// Nodes whose state lists `reference`.
fn nodes_with(manager: &Manager, reference: &str) -> Vec<NodeId> {
    manager
        .state()
        .nodes
        .values()
        .filter(|n| n.health == crate::cluster::NodeHealth::Healthy && n.has_image(reference))
        .map(|n| n.info.id.clone())
        .collect()
}

fn no_such_image(reference: &str) -> ApiError {
    ApiError::not_found(format!("No such image: {reference}"))
}

/// Splits `library/x:1/json` into (`library/x:1`, `json`).
pub fn split_image(rest: &str) -> (String, Option<String>) {
    super::split_action(rest, &ACTIONS)
}

/// Everything under `/images/{name}`.
pub(super) async fn dispatch(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix("/images/").unwrap_or("");
    let (name, action) = split_image(rest);
    let manager = &app.manager;
    let query = query_of(&request);
    let target = match &action {
        Some(action) => format!("{}/images/{name}/{action}", version.prefix()),
        None => format!("{}/images/{name}", version.prefix()),
    };
    let target = with_query(&target, &query);
    match (request.method().clone(), action.as_deref()) {
        (Method::POST, Some("tag")) => {
            on_every_holder(manager, &name, request, &target, false).await
        }
        (Method::DELETE, None) => on_every_holder(manager, &name, request, &target, true).await,
        (Method::POST, Some("push")) | (Method::GET, Some("get")) => {
            // The CLI sends `docker push repo:1` as `/images/repo/push?tag=1`.
            // A push and a save read the newest copy when several nodes hold one.
            let image = pushed_image(&name, query_param(&query, "tag").as_deref());
            match newest_holder(manager, &image).await {
                Some(engine) => forward(engine.http(), request, &target).await,
                None => on_one_holder(manager, &image, &version.prefix(), request, &target).await,
            }
        }
        _ => on_one_holder(manager, &name, &version.prefix(), request, &target).await,
    }
}

/// The image a push names: `name` with the query's `tag` when it has one
/// and the name carries neither tag nor digest.
fn pushed_image(name: &str, tag: Option<&str>) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    match tag.filter(|t| !t.is_empty()) {
        Some(tag) if !last.contains(':') && !last.contains('@') => format!("{name}:{tag}"),
        _ => name.to_string(),
    }
}

/// Of the nodes that hold `image` (when several do), the one whose copy
/// was created last: what a push sends is the newest build of the tag.
async fn newest_holder(manager: &Manager, image: &str) -> Option<Arc<Engine>> {
    let holders = nodes_with(manager, image);
    if holders.len() < 2 {
        return None;
    }
    let node = manager.newest_copy(&holders, &[image.to_string()]).await?;
    manager.engine(&node).ok()
}

/// Sends a read (inspect, history, save) to one node that has the image;
/// when the state knows none, asks each healthy node in turn.
async fn on_one_holder(
    manager: &Manager,
    name: &str,
    prefix: &str,
    request: Request,
    target: &str,
) -> Result<Response, ApiError> {
    let mut holders = nodes_with(manager, name);
    if holders.is_empty() {
        let probe = format!("{prefix}/images/{name}/json");
        for (node, engine) in manager.healthy_engines() {
            if matches!(engine_get(&engine, &probe).await, Ok((s, _)) if s.is_success()) {
                holders.push(node);
                break;
            }
        }
    }
    let node = holders.first().ok_or_else(|| no_such_image(name))?;
    let engine = manager.engine(node)?;
    forward(engine.http(), request, target).await
}

/// Sends a change (tag, remove) to every node that has the image. Removal
/// answers are merged; a failure on any node is reported with its node.
async fn on_every_holder(
    manager: &Manager,
    name: &str,
    request: Request,
    target: &str,
    merge_arrays: bool,
) -> Result<Response, ApiError> {
    let holders = nodes_with(manager, name);
    if holders.is_empty() {
        return Err(no_such_image(name));
    }
    let method = request.method().clone();
    let mut merged: Vec<serde_json::Value> = Vec::new();
    let mut last_status = StatusCode::OK;
    let mut failures: Vec<(String, ApiError)> = Vec::new();
    for node in &holders {
        let engine = manager.engine(node)?;
        let outgoing = Request::builder()
            .method(method.clone())
            .uri(target)
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let response = forward(engine.http(), outgoing, target).await;
        let answer = match response {
            Ok(response) => read_body(response, BODY_LIMIT).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, _, body)) if status.is_success() => {
                last_status = status;
                if merge_arrays {
                    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&body) {
                        merged.extend(items);
                    }
                }
            }
            Ok((status, _, body)) => failures.push((node.clone(), engine_error(status, &body))),
            Err(e) => failures.push((node.clone(), e)),
        }
        if let Err(e) = manager.refresh_images(node).await {
            tracing::debug!(error = %e, "image refresh failed");
        }
    }
    drop(request);
    if let Some((node, error)) = failures.first() {
        if failures.len() == holders.len() {
            return Err(error.clone());
        }
        let node_name = manager.state().node_name(node);
        return Err(ApiError::new(
            error.status,
            format!(
                "{} (on node {node_name}; done on the other nodes)",
                error.message
            ),
        ));
    }
    if merge_arrays {
        Ok(json_response(last_status, &merged))
    } else {
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = last_status;
        Ok(answer)
    }
}

/// `GET /images/get?names=..`: saved from a node that has all the images.
pub(super) async fn save(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = query_of(&request);
    let names: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v.into_owned())
        .collect();
    let manager = &app.manager;
    let holders: Vec<NodeId> = {
        let state = manager.state();
        state
            .nodes
            .values()
            .filter(|n| n.health == crate::cluster::NodeHealth::Healthy)
            .filter(|n| names.iter().all(|name| n.has_image(name)))
            .map(|n| n.info.id.clone())
            .collect()
    };
    let no_node = || {
        ApiError::not_found(format!(
            "no node has all of the images: {}",
            names.join(", ")
        ))
    };
    // Several nodes may hold different builds under one name: the newest
    // copy is saved, the one a push sends.
    let engine = match holders.as_slice() {
        [] => return Err(no_node()),
        [node] => manager.engine(node)?,
        _ => {
            let node = manager
                .newest_copy(&holders, &names)
                .await
                .ok_or_else(no_node)?;
            manager.engine(&node)?
        }
    };
    let target = with_query(&format!("{}/images/get", version.prefix()), &query);
    forward(engine.http(), request, &target).await
}

/// `POST /commit?container=REF&repo=..&tag=..`: the container committed
/// on its node, whose images are then re-read ([`Manager::commit`]).
pub(super) async fn commit(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = query_of(&request);
    let container = query_param(&query, "container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("no container to commit: the query needs container=NAME_OR_ID")
        })?;
    let content_type = request.headers().get("content-type").cloned();
    // Read whole and bounded by the front already (--api-max-body-size).
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
    let answer = app
        .manager
        .commit(CommitRequest {
            container,
            prefix: version.prefix(),
            query,
            body,
            content_type,
        })
        .await?;
    Ok(super::engine_answer(answer))
}

/// `POST /images/create` (`docker pull`): on every healthy node at once,
/// the nodes' progress streamed as it comes, each message naming its node
/// (see `Manager::pull_everywhere`).
pub(super) async fn pull(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let target = with_query(
        &format!("{}/images/create", version.prefix()),
        &query_of(&request),
    );
    if query_param(&query_of(&request), "fromSrc").as_deref() == Some("-") {
        // `docker import -`: the archive is the body, for every node.
        return upload_everywhere(&app.manager, request, &target, "import").await;
    }
    let auth = request.headers().get("x-registry-auth").cloned();
    let progress = app.manager.pull_everywhere(&target, auth)?;
    let mut answer = Response::new(Body::from_stream(
        progress.map(Ok::<_, std::convert::Infallible>),
    ));
    answer.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(answer)
}

/// `POST /images/load`: the archive goes to every healthy node at once.
pub(super) async fn load(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let target = with_query(
        &format!("{}/images/load", version.prefix()),
        &query_of(&request),
    );
    upload_everywhere(&app.manager, request, &target, "load").await
}

/// Streams the request's body (an image archive: `load`, `import`) to
/// every healthy node at once, at `target`; the first node's answer, or an
/// error naming the node that failed.
async fn upload_everywhere(
    manager: &Manager,
    request: Request,
    target: &str,
    what: &str,
) -> Result<Response, ApiError> {
    let engines = manager.healthy_or_error(&format!("{what} images to"))?;
    let target = target.to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("application/x-tar"));

    let mut senders = Vec::new();
    let mut uploads = Vec::new();
    for (node, engine) in engines {
        let (tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        senders.push(tx);
        let outgoing = Request::post(&target)
            .header("content-type", content_type.clone())
            .body(Body::from_stream(rx))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        uploads.push(upload(node, engine, outgoing));
    }
    let pump = async move {
        let mut body = request.into_body().into_data_stream();
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

    let mut first_ok: Option<(StatusCode, axum::http::HeaderMap, bytes::Bytes)> = None;
    let mut failures = Vec::new();
    for (node, result) in results {
        if let Err(e) = manager.refresh_images(&node).await {
            tracing::debug!(error = %e, "image refresh failed");
        }
        match result {
            Ok(answer) if answer.0.is_success() => {
                first_ok.get_or_insert(answer);
            }
            Ok((status, _, body)) => failures.push((node, engine_error(status, &body))),
            Err(e) => failures.push((node, e)),
        }
    }
    if let Some((node, error)) = failures.first() {
        let node_name = manager.state().node_name(node);
        return Err(ApiError::new(
            error.status,
            format!("{what} failed on node {node_name}: {}", error.message),
        ));
    }
    let (status, headers, body) =
        first_ok.ok_or_else(|| ApiError::internal("no node answered the load"))?;
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = status;
    if let Some(ct) = headers.get("content-type") {
        answer.headers_mut().insert("content-type", ct.clone());
    }
    Ok(answer)
}

async fn upload(
    node: NodeId,
    engine: Arc<Engine>,
    request: Request,
) -> (
    NodeId,
    Result<(StatusCode, axum::http::HeaderMap, bytes::Bytes), ApiError>,
) {
    let answer = match engine.send(request).await {
        Ok(response) => read_body(response.map(Body::new), BODY_LIMIT).await,
        Err(e) => Err(e.into()),
    };
    (node, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_names_the_tag_of_its_query() {
        assert_eq!(
            pushed_image("localhost:5999/app", Some("1")),
            "localhost:5999/app:1"
        );
        assert_eq!(pushed_image("app", Some("1")), "app:1");
        assert_eq!(pushed_image("app:2", Some("1")), "app:2");
        assert_eq!(pushed_image("app@sha256:ab", Some("1")), "app@sha256:ab");
        assert_eq!(
            pushed_image("localhost:5999/app", None),
            "localhost:5999/app"
        );
        assert_eq!(
            pushed_image("localhost:5999/app", Some("")),
            "localhost:5999/app"
        );
    }

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

    #[test]
    fn image_paths() {
        assert_eq!(
            split_image("busybox:local/json"),
            ("busybox:local".into(), Some("json".into()))
        );
        assert_eq!(
            split_image("library/x:1/tag"),
            ("library/x:1".into(), Some("tag".into()))
        );
        assert_eq!(split_image("reg:5000/x"), ("reg:5000/x".into(), None));
        assert_eq!(split_image("sha256:abc"), ("sha256:abc".into(), None));
    }
}
