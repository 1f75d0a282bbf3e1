//! Images: the list merged across nodes; inspect, history and save from a
//! node that has the image; tag and remove on every node that has it; load
//! to every node, the uploaded archive streamed to all of them at once.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use futures::StreamExt;

use super::proxy::forward;
use super::{
    engine_answer, json_response, query_of, query_param, with_query, ApiError, App, ClientVersion,
};
use crate::manager::CommitRequest;

/// Per-image actions, the last path segment after the image name.
const ACTIONS: [&str; 5] = ["json", "tag", "get", "history", "push"];

/// `GET /images/json`: every node's images, one entry per image ID.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let (query, only) = super::node_filter::take(&query_of(&request))?;
    let path = with_query(&format!("{}/images/json", version.prefix()), &query);
    let images = app
        .manager
        .images(&path, only.as_ref().map(|o| o.names()))
        .await?;
    Ok(json_response(StatusCode::OK, &images))
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
    let method = request.method().clone();
    match (method.clone(), action.as_deref()) {
        (Method::POST, Some("tag")) => {
            let answer = manager
                .on_image_holders(&name, method, &target, false)
                .await?;
            Ok(engine_answer(answer))
        }
        (Method::DELETE, None) => {
            let answer = manager
                .on_image_holders(&name, method, &target, true)
                .await?;
            Ok(engine_answer(answer))
        }
        (Method::POST, Some("push")) | (Method::GET, Some("get")) => {
            // The CLI sends `docker push repo:1` as `/images/repo/push?tag=1`.
            // A push and a save read the newest copy when several nodes hold one.
            let image = pushed_image(&name, query_param(&query, "tag").as_deref());
            let engine = manager.image_source(&image, true).await?;
            forward(engine.http(), request, &target).await
        }
        _ => {
            let engine = manager.image_source(&name, false).await?;
            forward(engine.http(), request, &target).await
        }
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
    let engine = app.manager.images_source(&names).await?;
    let target = with_query(&format!("{}/images/get", version.prefix()), &query);
    forward(engine.http(), request, &target).await
}

/// `POST /commit?container=REF&repo=..&tag=..`: the container committed
/// on its node, whose images are then re-read ([`crate::manager::Manager::commit`]).
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
        return upload_everywhere(&app, request, &target, "import").await;
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
    upload_everywhere(&app, request, &target, "load").await
}

/// Streams the request's body (an image archive: `load`, `import`) to
/// every healthy node at once, at `target` ([`crate::manager::Manager::upload_everywhere`]).
async fn upload_everywhere(
    app: &App,
    request: Request,
    target: &str,
    what: &str,
) -> Result<Response, ApiError> {
    let content_type = request.headers().get("content-type").cloned();
    let answer = app
        .manager
        .upload_everywhere(target, content_type, request.into_body(), what)
        .await?;
    Ok(engine_answer(answer))
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
