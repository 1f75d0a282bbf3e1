//! Containers and exec instances: the cluster-wide list, create through the
//! scheduler, and everything about one container proxied to its node.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};

use super::list_cache::Lookup;
use super::proxy::{self, engine_error, forward, read_body};
use super::{
    json_response, listing, query_of, query_param, with_query, ApiError, App, ClientVersion,
    BODY_LIMIT,
};
use crate::cluster::{Container, NodeHealth};
use crate::engine::Engine;
use crate::manager::{Change, CreateRequest, Manager};

/// Per-container actions, the last path segment after the container reference.
const ACTIONS: [&str; 19] = [
    "json", "start", "stop", "restart", "kill", "pause", "unpause", "rename", "update", "wait",
    "logs", "top", "stats", "changes", "export", "archive", "attach", "resize", "exec",
];

/// GET one engine path and read the whole (bounded) answer.
pub(super) async fn engine_get(
    engine: &Engine,
    path: &str,
) -> Result<(StatusCode, bytes::Bytes), ApiError> {
    let request = Request::get(path)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = engine.send(request).await?;
    let (status, _, body) = read_body(response.map(Body::new), BODY_LIMIT).await?;
    Ok((status, body))
}

/// `GET /containers/json`: every node's list, names as `/node/name`,
/// newest first, `limit` applied to the whole. Without filters or sizes,
/// a node's list read moments ago is used again while nothing changed on
/// the node ([`super::list_cache`]).
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let (query, only) = super::node_filter::take(&query_of(&request))?;
    let limit = query_param(&query, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    // As Docker: `-n N` (and `-l`) list containers in every state.
    let all =
        limit.is_some() || query_param(&query, "all").is_some_and(|a| a == "1" || a == "true");
    let filtered = only.is_some()
        || query_param(&query, "filters").is_some_and(|f| !f.trim().is_empty() && f.trim() != "{}");
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "limit" && !(limit.is_some() && k == "all"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if limit.is_some() {
        pairs.push(("all".into(), "1".into()));
    }
    // What a node answers depends on nothing else than the path then.
    let cacheable = app.lists.enabled() && pairs.iter().all(|(k, _)| k == "all");
    let forwarded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let path = with_query(&format!("{}/containers/json", version.prefix()), &forwarded);
    let manager = &app.manager;
    let mut engines = manager.healthy_engines();
    if let Some(only) = &only {
        let state = manager.state();
        engines.retain(|(node, _)| only.matches(node, &state.node_name(node)));
    }
    // Nodes that hold no container a label or name filter could match
    // are not asked.
    let narrowing = query_param(&query, "filters").map(|f| super::ps_filter::Narrowing::of(&f));
    if let Some(holders) = narrowing.and_then(|n| n.nodes(&manager.state())) {
        engines.retain(|(node, _)| holders.contains(node));
    }
    // Per node: its name, and the stale copies of rescheduled containers
    // to hide (being removed from it).
    let names: Vec<(String, Vec<String>)> = {
        let state = manager.state();
        engines
            .iter()
            .map(|(node, _)| {
                let stale = state.stale.get(node);
                (
                    state.node_name(node),
                    stale.into_iter().flatten().cloned().collect(),
                )
            })
            .collect()
    };
    if cacheable {
        let healthy: std::collections::HashSet<&str> =
            engines.iter().map(|(node, _)| node.as_str()).collect();
        app.lists.retain_nodes(|node| healthy.contains(node));
    }
    // Nodes whose list is read for this request, and in the background.
    let (mut read, mut refreshed) = (0usize, 0usize);
    let jobs = engines
        .iter()
        .zip(&names)
        .map(|((node, engine), (node_name, _))| {
            let generation = engine.generation();
            let kept = cacheable && manager.follows_events(node);
            let found = if kept {
                app.lists.lookup(node, node_name, &path, generation)
            } else {
                Lookup::Missing
            };
            match found {
                Lookup::Fresh(_) => {}
                Lookup::Ageing(_) => refreshed += 1,
                Lookup::Missing => read += 1,
            }
            let (app, path) = (app.clone(), path.clone());
            async move {
                match found {
                    Lookup::Fresh(listing) => Ok(Some(listing)),
                    Lookup::Ageing(listing) => {
                        let (engine, node, node_name) =
                            (engine.clone(), node.clone(), node_name.clone());
                        tokio::spawn(async move {
                            let _turn = app.lists.refresh_turn().await;
                            let generation = engine.generation();
                            match node_listing(&engine, &node_name, &path).await {
                                Ok(Some(fresh)) => {
                                    app.lists.store(&node, &node_name, &path, generation, fresh);
                                }
                                _ => app.lists.refresh_failed(&node, &path),
                            }
                        });
                        Ok(Some(listing))
                    }
                    Lookup::Missing => {
                        let read = node_listing(engine, node_name, &path).await;
                        if let (true, Ok(Some(listing))) = (kept, &read) {
                            app.lists
                                .store(node, node_name, &path, generation, listing.clone());
                        }
                        read
                    }
                }
            }
        });
    let answers = futures::future::join_all(jobs).await;
    let mut shown = Vec::with_capacity(answers.len());
    // Nodes still healthy in the state whose engine did not answer: their
    // containers are listed from the state, as for unhealthy nodes.
    let mut silent = Vec::new();
    for (((node, _), (_, hidden)), answer) in engines.iter().zip(names).zip(answers) {
        match answer? {
            Some(listing) => shown.push(listing::Shown { listing, hidden }),
            None => silent.push(node.clone()),
        }
    }
    // Most often every node is healthy: skip the pass over all containers.
    let any_down = !silent.is_empty()
        || manager
            .state()
            .nodes
            .values()
            .any(|n| n.health != NodeHealth::Healthy);
    // As classic: containers of nodes that are down only with `-a`.
    let unreachable = if filtered || !any_down || !all {
        Vec::new()
    } else {
        unreachable_containers(manager, &silent)
    };
    let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let reply = listing::reply(shown, &unreachable, limit)?;
    let len = reply.content_length();
    tracing::debug!(
        nodes = engines.len(),
        read,
        refreshed,
        bytes = len,
        kept = ?app.lists.held(),
        "container list: nodes read now and in the background; (containers, bytes) kept"
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("content-length", len)
        .body(Body::from_stream(futures::stream::iter(
            reply.map(Ok::<_, std::convert::Infallible>),
        )))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// One node's container list for `path`, parsed: `Ok(None)` when the node
/// did not answer or its answer is unreadable (logged), an error when the
/// request itself is wrong (the whole list fails with it).
async fn node_listing(
    engine: &Engine,
    node_name: &str,
    path: &str,
) -> Result<Option<Arc<listing::NodeListing>>, ApiError> {
    let answer = engine_get(engine, path).await;
    Ok(listing::accept(node_name.to_string(), answer)?
        .and_then(|list| list.listing())
        .map(Arc::new))
}

/// Containers of unhealthy nodes (and of the `silent` ones, which did not
/// answer this time), from the state: they stay listed, with the status
/// `Host Down`.
fn unreachable_containers(manager: &Manager, silent: &[String]) -> Vec<ContainerSummary> {
    let state = manager.state();
    state
        .containers
        .values()
        .filter(|c| {
            silent.contains(&c.node)
                || state
                    .nodes
                    .get(&c.node)
                    .is_some_and(|n| n.health != NodeHealth::Healthy)
        })
        .map(|c| ContainerSummary {
            id: Some(c.id.clone()),
            names: Some(vec![format!("/{}/{}", state.node_name(&c.node), c.name)]),
            image: Some(c.image.clone()),
            labels: Some(c.labels.clone().into_iter().collect()),
            state: Some(ContainerSummaryStateEnum::EMPTY),
            status: Some("Host Down".into()),
            command: Some(c.command.clone()),
            created: Some(c.created),
            ..Default::default()
        })
        .collect()
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_container_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn invalid_name(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    ))
}

/// `POST /containers/create`: placed, reserved, created on the node and
/// recorded by the manager ([`Manager::create_container`]).
pub(super) async fn create(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let query = query_of(&request);
    let name = query_param(&query, "name").filter(|n| !n.is_empty());
    if let Some(name) = &name {
        if !valid_container_name(name) {
            return Err(invalid_name(name));
        }
    }
    let (parts, body) = request.into_parts();
    // Read whole and bounded by the front already (--api-max-body-size).
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
    let mut headers = axum::http::HeaderMap::new();
    for (k, v) in parts
        .headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-registry"))
    {
        headers.insert(k.clone(), v.clone());
    }
    let answer = app
        .manager
        .create_container(CreateRequest {
            name: name.map(|n| n.trim_start_matches('/').to_string()),
            body,
            path: with_query(&format!("{}/containers/create", version.prefix()), &query),
            headers,
        })
        .await?;
    Ok(super::engine_answer(answer))
}

/// Splits `web/start` into (`web`, `start`); `node-1/web/json` into
/// (`node-1/web`, `json`); `web` alone is a bare reference.
pub fn split_reference(rest: &str) -> (String, Option<String>) {
    match rest.trim_end_matches('/').strip_suffix("/attach/ws") {
        Some(reference) => (
            super::split_action(reference, &[]).0,
            Some("attach/ws".into()),
        ),
        None => super::split_action(rest, &ACTIONS),
    }
}

/// Everything under `/containers/{ref}`: routed to the container's node.
pub(super) async fn dispatch(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix("/containers/").unwrap_or("");
    let (reference, action) = split_reference(rest);
    let manager = &app.manager;
    let query = query_of(&request);
    let link = query_param(&query, "link").is_some_and(|l| l == "1" || l == "true");
    if let (&Method::DELETE, None, true) = (request.method(), &action, link) {
        // `docker rm --link parent/alias`: the link goes on the parent's node.
        let (_, engine, target) = manager.link_target(&reference).await?;
        let target = with_query(&format!("{}{target}", version.prefix()), &query);
        return forward(engine.http(), request, &target).await;
    }
    let (container, engine) = manager.resolve(&reference).await?;
    if !matches!(
        (request.method(), action.as_deref()),
        (&Method::DELETE, None)
    ) {
        manager.on_healthy_node(&container)?;
    }
    let target = match &action {
        Some(action) => format!("{}/containers/{}/{action}", version.prefix(), container.id),
        None => format!("{}/containers/{}", version.prefix(), container.id),
    };
    let target = with_query(&target, &query);
    let method = request.method().clone();

    match (method, action.as_deref()) {
        (Method::GET, Some("json")) => {
            inspect(manager, &engine, &container.node, request, &target).await
        }
        (Method::POST, Some("exec")) => {
            let (outgoing, _) = proxy::outgoing(request, &target)?;
            let answer = manager.create_exec(&container.node, outgoing).await?;
            Ok(proxy::whole_answer(answer))
        }
        (Method::DELETE, None) => {
            change(manager, &container, Change::Remove, request, &target).await
        }
        (Method::POST, Some(action)) => {
            let new_name = || query_param(&query, "name").unwrap_or_default();
            match Change::of_action(action, new_name) {
                Some(change_asked) => {
                    if let Change::Rename(_) = change_asked {
                        let new_name = new_name();
                        if !valid_container_name(&new_name) {
                            return Err(invalid_name(&new_name));
                        }
                    }
                    change(manager, &container, change_asked, request, &target).await
                }
                None => forward(engine.http(), request, &target).await,
            }
        }
        _ => forward(engine.http(), request, &target).await,
    }
}

/// A change of the container, through the manager's lifecycle service.
async fn change(
    manager: &Manager,
    container: &Container,
    change: Change,
    request: Request,
    target: &str,
) -> Result<Response, ApiError> {
    let (outgoing, upgrade) = proxy::outgoing(request, target)?;
    let response = manager
        .change_container(&container.node, &container.id, change, outgoing)
        .await?;
    proxy::answer(response, upgrade, target)
}

/// `GET /containers/{id}/json` with the `Node` object Swarm adds.
async fn inspect(
    manager: &Manager,
    engine: &Engine,
    node: &str,
    request: Request,
    target: &str,
) -> Result<Response, ApiError> {
    let response = forward(engine.http(), request, target).await?;
    let (status, _, body) = read_body(response, BODY_LIMIT).await?;
    if !status.is_success() {
        return Err(engine_error(status, &body));
    }
    let mut value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::internal(format!("engine answered invalid JSON: {e}")))?;
    let node_object = {
        let state = manager.state();
        state.nodes.get(node).map(|n| {
            serde_json::json!({
                "ID": n.info.id,
                "IP": n.ip(),
                "Addr": n.info.addr.strip_prefix("tcp://").unwrap_or(&n.info.addr),
                "Name": n.name,
                "Cpus": n.info.cpus,
                "Memory": n.info.memory,
                "Labels": n.info.labels.iter().collect::<BTreeMap<_, _>>(),
            })
        })
    };
    if let (Some(object), Some(node_object)) = (value.as_object_mut(), node_object) {
        object.insert("Node".into(), node_object);
    }
    Ok(json_response(status, &value))
}

/// `/exec/{id}/start|resize|json`: routed to the node the exec was created on.
pub(super) async fn exec(
    State(app): State<Arc<App>>,
    Extension(version): Extension<ClientVersion>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix("/exec/").unwrap_or("");
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    let manager = &app.manager;
    let target = with_query(
        &format!("{}/exec/{id}/{action}", version.prefix()),
        &query_of(&request),
    );
    let engine = manager.resolve_exec(id, &version.prefix()).await?;
    forward(engine.http(), request, &target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_actions() {
        assert_eq!(
            split_reference("web/start"),
            ("web".into(), Some("start".into()))
        );
        assert_eq!(
            split_reference("node-1/web/json"),
            ("node-1/web".into(), Some("json".into()))
        );
        assert_eq!(split_reference("node-1/web"), ("node-1/web".into(), None));
        assert_eq!(split_reference("abc"), ("abc".into(), None));
        assert_eq!(
            split_reference("abc/attach/ws"),
            ("abc".into(), Some("attach/ws".into()))
        );
        assert_eq!(
            split_reference("a%2Fb/logs"),
            ("a/b".into(), Some("logs".into()))
        );
    }

    #[test]
    fn container_names() {
        for ok in ["ab", "web-1", "a.b_c", "/web"] {
            assert!(valid_container_name(ok), "{ok}");
        }
        for bad in ["", "a", "-ab", "a b", "a/b", "ä1"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
    }
}
