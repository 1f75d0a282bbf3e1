//! Containers and exec instances: the cluster-wide list, create through the
//! scheduler, and everything about one container proxied to its node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use bollard::models::{ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum};
use serde::Deserialize;

use super::list_cache::Lookup;
use super::proxy::{engine_error, forward, read_body};
use super::{
    json_response, listing, query_of, query_param, with_query, ApiError, App, ClientVersion,
    BODY_LIMIT,
};
use crate::cluster::{ContainerState, NodeHealth};
use crate::engine::Engine;
use crate::manager::Manager;
use crate::scheduler::ContainerSpec;

pub use crate::cluster::SWARM_ID_LABEL;

/// Per-container actions, the last path segment after the container reference.
const ACTIONS: [&str; 19] = [
    "json", "start", "stop", "restart", "kill", "pause", "unpause", "rename", "update", "wait",
    "logs", "top", "stats", "changes", "export", "archive", "attach", "resize", "exec",
];

/// Actions that change a container: its state is re-read after they succeed.
const MUTATING: [&str; 8] = [
    "start", "stop", "restart", "kill", "pause", "unpause", "rename", "update",
];

/// How long a changing call waits for its event before it reads the
/// container back instead.
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// The engine event that ends a changing call (see [`MUTATING`]): the last
/// one the engine sends for it, named as the call, except that a kill with
/// `SIGKILL` (the default) ends with the container's `die`.
fn expected_event<'a>(action: &'a str, query: &str) -> &'a str {
    if action != "kill" {
        return action;
    }
    let signal = query_param(query, "signal").unwrap_or_default();
    let signal = signal.trim_start_matches("SIG");
    if signal.is_empty() || signal == "KILL" || signal == "9" {
        "die"
    } else {
        "kill"
    }
}

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
    let query = query_of(&request);
    let limit = query_param(&query, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    let all = query_param(&query, "all").is_some_and(|a| a == "1" || a == "true");
    let filtered =
        query_param(&query, "filters").is_some_and(|f| !f.trim().is_empty() && f.trim() != "{}");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "limit")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // What a node answers depends on nothing else than the path then.
    let cacheable = app.lists.enabled() && pairs.iter().all(|(k, _)| k == "all");
    let forwarded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let path = with_query(&format!("{}/containers/json", version.prefix()), &forwarded);
    let manager = &app.manager;
    let engines = manager.healthy_engines();
    // Per node: its name, and the stale copies of rescheduled containers
    // to hide (being removed from it).
    let names: Vec<(String, Vec<String>)> = {
        let state = manager.cluster.read();
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
            .cluster
            .read()
            .nodes
            .values()
            .any(|n| n.health != NodeHealth::Healthy);
    let unreachable = if filtered || !any_down {
        Vec::new()
    } else {
        unreachable_containers(manager, all, &silent)
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
fn unreachable_containers(
    manager: &Manager,
    all: bool,
    silent: &[String],
) -> Vec<ContainerSummary> {
    let state = manager.cluster.read();
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
        .filter(|c| all || c.state == ContainerState::Running)
        .map(|c| ContainerSummary {
            id: Some(c.id.clone()),
            names: Some(vec![format!("/{}/{}", state.node_name(&c.node), c.name)]),
            image: Some(c.image.clone()),
            labels: Some(c.labels.clone().into_iter().collect()),
            state: Some(ContainerSummaryStateEnum::EMPTY),
            status: Some("Host Down".into()),
            created: Some(0),
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

/// A fresh swarm-unique id (32 hex digits).
fn new_swarm_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.write_usize(i);
        hasher.write_u32(std::process::id());
        *part = hasher.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

/// Validates a create body and adds the swarm id label. Returns the body to
/// forward and the parsed model.
pub fn prepare_create_body(
    body: &[u8],
) -> Result<(serde_json::Value, ContainerCreateBody), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON: the container config must be an object",
        ));
    }
    if value
        .get("Env")
        .is_some_and(|e| !e.is_null() && !e.is_array())
    {
        return Err(ApiError::bad_request(
            "invalid container config: Env must be a list",
        ));
    }
    crate::scheduler::spec::env_to_labels(&mut value)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Docker accepts `"Cmd": "x"` for `["x"]` (its strslice type); so do we.
    for key in ["Cmd", "Entrypoint"] {
        if let Some(field) = value.get_mut(key) {
            if let Some(s) = field.as_str() {
                *field = serde_json::json!([s]);
            }
        }
    }
    if let Some(object) = value.as_object_mut() {
        let labels = object
            .entry("Labels")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if labels.is_null() {
            *labels = serde_json::Value::Object(Default::default());
        }
        if let Some(labels) = labels.as_object_mut() {
            labels
                .entry(SWARM_ID_LABEL)
                .or_insert_with(|| serde_json::Value::String(new_swarm_id()));
        }
    }
    // Typed after the swarm id is in: placement and the reservation carry it.
    // Read from the tree in place (`&Value` deserializes without a copy).
    let typed = ContainerCreateBody::deserialize(&value)
        .map_err(|e| ApiError::bad_request(format!("invalid container config: {e}")))?;
    if typed.image.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::bad_request("no image was specified"));
    }
    Ok((value, typed))
}

/// `POST /containers/create`: place, reserve, create on the node, record.
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
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
    let (value, typed) = prepare_create_body(&body)?;
    let name = name.map(|n| n.trim_start_matches('/').to_string());
    let spec = ContainerSpec::from_create(name.as_deref(), &typed)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let manager = &app.manager;
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    let reservation = manager.reserve(&spec).await?;
    let result = async {
        if let (true, Some(swarm_id)) = (spec.reschedule, &spec.swarm_id) {
            // Before the engine has it: a container that exists can always
            // be re-created from the state.
            manager
                .cluster
                .propose(crate::cluster::Command::SpecRecorded {
                    swarm_id: swarm_id.clone(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                    name: spec.name.clone(),
                })
                .await
                .map_err(crate::manager::ManagerError::from)?;
        }
        let engine = manager.engine(&reservation.node)?;
        let mut outgoing = Request::post(with_query(
            &format!("{}/containers/create", version.prefix()),
            &query,
        ))
        .header("content-type", "application/json")
        .body(Body::from(bytes))
        .map_err(|e| ApiError::internal(e.to_string()))?;
        for (k, v) in parts
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-registry"))
        {
            outgoing.headers_mut().insert(k.clone(), v.clone());
        }
        let response = engine.send(outgoing).await?;
        let (status, headers, body) = read_body(response.map(Body::new), BODY_LIMIT).await?;
        if !status.is_success() {
            return Err(engine_error(status, &body));
        }
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("Id").and_then(|i| i.as_str()).map(str::to_string))
            .ok_or_else(|| ApiError::internal("engine answered create without an Id"))?;
        match &spec.name {
            // Everything the state keeps of it is in the request: no need to
            // read it back. Labels its image adds are read back when its
            // `create` event is applied after this record, else by the
            // node's next refresh.
            Some(name) => {
                let container = crate::cluster::Container {
                    id: id.clone(),
                    node: reservation.node.clone(),
                    name: name.clone(),
                    image: typed.image.clone().unwrap_or_default(),
                    state: crate::cluster::ContainerState::Created,
                    labels: typed
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    resources: Some(reservation.resources.clone()),
                };
                if let Err(e) = manager.created(&reservation, container).await {
                    tracing::warn!(container = %id, error = %e, "cannot record the created container");
                }
            }
            // The engine picked the name.
            None => manager.record_created(&reservation, &id).await,
        }
        let mut answer = Response::new(Body::from(body));
        *answer.status_mut() = status;
        if let Some(ct) = headers.get("content-type") {
            answer.headers_mut().insert("content-type", ct.clone());
        }
        Ok(answer)
    }
    .await;
    // `ContainerCreated` ended the reservation; only a failed create holds one.
    if result.is_err() {
        manager.release(&reservation).await;
    }
    // Debug, as engines log creates: a line per create at `info` cost a
    // busy manager 3-6% of its placements (and a state read each).
    if let Ok(answer) = &result {
        tracing::debug!(node = %manager.cluster.read().node_name(&reservation.node), status = answer.status().as_u16(), "container created");
    }
    result
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
    let (container, engine) = manager.resolve(&reference).await?;
    let query = query_of(&request);
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
            let response = forward(&engine, request, &target).await?;
            let (status, headers, body) = read_body(response, BODY_LIMIT).await?;
            if status.is_success() {
                if let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("Id").and_then(|i| i.as_str()).map(str::to_string))
                {
                    manager.record_exec(&id, &container.node);
                }
            }
            let mut answer = Response::new(Body::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        }
        (Method::DELETE, None) => {
            let response = forward(&engine, request, &target).await?;
            if response.status().is_success() {
                let _ = manager
                    .cluster
                    .propose(crate::cluster::Command::ContainerRemoved {
                        id: container.id.clone(),
                    })
                    .await;
            }
            Ok(response)
        }
        (Method::POST, Some(action)) if MUTATING.contains(&action) => {
            if action == "rename" {
                let new_name = query_param(&query, "name").unwrap_or_default();
                if !valid_container_name(&new_name) {
                    return Err(invalid_name(&new_name));
                }
                let holder = manager
                    .cluster
                    .read()
                    .name_holder(new_name.trim_start_matches('/'));
                if let Some(holder) = holder.filter(|h| *h != container.id) {
                    return Err(crate::cluster::ApplyError::NameInUse {
                        name: new_name.trim_start_matches('/').to_string(),
                        holder,
                    }
                    .into());
                }
            }
            // A start (every `docker run`) waits for its engine event to
            // update the state, or reads the container back when events are
            // not followed or it does not come; other changes are read back
            // (a `stop` once left the state running on a real engine in
            // `tests/cli.rs`, cause not found yet), so the next request sees
            // the change.
            let wait = (action == "start" && manager.follows_events(&container.node)).then(|| {
                manager
                    .waiters
                    .expect(&container.id, expected_event(action, &query))
            });
            let response = forward(&engine, request, &target).await?;
            if response.status().is_success() {
                let seen = match wait {
                    Some(wait) => wait.wait(EVENT_WAIT).await,
                    None => false,
                };
                if !seen {
                    tracing::debug!(container = %container.id, action, "no event applied: reading the container back");
                    if let Err(e) = manager
                        .refresh_container(&container.node, &container.id)
                        .await
                    {
                        tracing::warn!(container = %container.id, error = %e, "cannot re-read container");
                    }
                }
            }
            Ok(response)
        }
        _ => forward(&engine, request, &target).await,
    }
}

/// `GET /containers/{id}/json` with the `Node` object Swarm adds.
async fn inspect(
    manager: &Manager,
    engine: &Engine,
    node: &str,
    request: Request,
    target: &str,
) -> Result<Response, ApiError> {
    let response = forward(engine, request, target).await?;
    let (status, _, body) = read_body(response, BODY_LIMIT).await?;
    if !status.is_success() {
        return Err(engine_error(status, &body));
    }
    let mut value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::internal(format!("engine answered invalid JSON: {e}")))?;
    let node_object = {
        let state = manager.cluster.read();
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
    let node = match manager.exec_node(id) {
        Some(node) => node,
        None => find_exec(manager, &version, id)
            .await
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?,
    };
    let engine = manager.engine(&node)?;
    forward(&engine, request, &target).await
}

/// Asks every node for an exec instance this manager did not create.
async fn find_exec(manager: &Manager, version: &ClientVersion, id: &str) -> Option<String> {
    let path = format!("{}/exec/{id}/json", version.prefix());
    for (node, engine) in manager.healthy_engines() {
        if let Ok((status, _)) = engine_get(&engine, &path).await {
            if status.is_success() {
                manager.record_exec(id, &node);
                return Some(node);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changing_calls_wait_for_their_last_event() {
        assert_eq!(expected_event("start", ""), "start");
        assert_eq!(expected_event("stop", "t=1"), "stop");
        assert_eq!(expected_event("rename", "name=x"), "rename");
        for query in ["", "signal=KILL", "signal=SIGKILL", "signal=9"] {
            assert_eq!(expected_event("kill", query), "die", "{query}");
        }
        assert_eq!(expected_event("kill", "signal=HUP"), "kill");
    }

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

    #[test]
    fn create_bodies() {
        let (value, typed) =
            prepare_create_body(br#"{"Image":"busybox:local","Cmd":["true"],"Extra":1}"#).unwrap();
        assert_eq!(typed.image.as_deref(), Some("busybox:local"));
        assert_eq!(value["Extra"], 1, "unknown fields are kept");
        let id = value["Labels"][SWARM_ID_LABEL].as_str().unwrap();
        assert_eq!(id.len(), 32);

        let (value, typed) =
            prepare_create_body(br#"{"Image":"x","Cmd":"sh","Labels":{"a":"b"}}"#).unwrap();
        assert_eq!(typed.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(value["Labels"]["a"], "b");
        assert!(value["Labels"][SWARM_ID_LABEL].is_string());

        for (body, expect) in [
            (&b""[..], "config cannot be empty"),
            (b"  ", "config cannot be empty"),
            (b"{not json", "invalid JSON"),
            (b"[1]", "must be an object"),
            (br#"{"Image": 5}"#, "invalid container config"),
            (br#"{"Image":"x","Cmd":5}"#, "invalid container config"),
            (br#"{"Cmd":["x"]}"#, "no image"),
        ] {
            let err = prepare_create_body(body).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains(expect),
                "{}: {}",
                String::from_utf8_lossy(body),
                err.message
            );
        }
    }

    #[test]
    fn swarm_ids_differ() {
        assert_ne!(new_swarm_id(), new_swarm_id());
    }
}
