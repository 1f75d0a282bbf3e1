//! The Engine API of a hollow node: version prefixes, latency, routing and
//! the handlers. Answers are built by `shapes.rs` from bollard's models.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bollard::models::{ContainerCreateBody, ContainerCreateResponse, EventMessageTypeEnum};
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use swarm::cluster::normalize_image_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};
use tower::ServiceExt;

use super::engine::{
    image_matches, ApiError, Container, Event, Node, Program, API_VERSION, MIN_API_VERSION,
    SERVER_VERSION,
};
use super::shapes;

/// Everything a node answers.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/containers/json", get(list_containers))
        .route("/containers/create", post(create))
        .route("/containers/{id}", axum::routing::delete(remove))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/{action}", post(action))
        .route("/images/json", get(list_images))
        .route("/images/{*rest}", get(image))
        .route("/networks", get(networks))
        .route("/networks/{id}", get(network))
        .route("/volumes", get(volumes))
        .route("/hollow/kill", post(kill_self))
        .route("/hollow/revive", post(revive_self))
        .fallback(unknown)
        .method_not_allowed_fallback(unknown)
}

/// Serves one request of `node`: latency, version prefix, routing, and the
/// headers every Docker answer carries.
pub(crate) async fn handle(
    node: Arc<Node>,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let latency = node.shared.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut request = request.map(Body::new);
    if let Some((version, rest)) = split_version(request.uri().path()) {
        if version_cmp(version, API_VERSION) == std::cmp::Ordering::Greater {
            let message = format!(
                "client version {version} is too new. Maximum supported API version is {API_VERSION}"
            );
            return Ok(decorate(
                ApiError::bad_request(message).into_response(),
                false,
            ));
        }
        if version_cmp(version, MIN_API_VERSION) == std::cmp::Ordering::Less {
            let mut response = Response::new(Body::from(format!(
                "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version\n"
            )));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(decorate(response, false));
        }
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request.extensions_mut().insert(node.clone());
    let response = match node.shared.router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    Ok(decorate(response, true))
}

/// Adds the headers of a Docker answer.
fn decorate(mut response: Response, experimental: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    if experimental {
        headers.insert("docker-experimental", HeaderValue::from_static("false"));
    }
    headers.insert("ostype", HeaderValue::from_static("linux"));
    if let Ok(server) = HeaderValue::from_str(&format!("Docker/{SERVER_VERSION} (linux)")) {
        headers.insert(header::SERVER, server);
    }
    response
}

/// `/v1.41/info` → (`1.41`, `/info`).
pub(crate) fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    let (major, minor) = version.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(major) && digits(minor)) {
        return None;
    }
    let rest = &rest[end..];
    Some((version, if rest.is_empty() { "/" } else { rest }))
}

/// Compares API versions numerically (`1.9` < `1.41`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = self.status;
            return response;
        }
        json(
            self.status,
            &bollard::models::ErrorResponse {
                message: self.message,
            },
        )
    }
}

/// A JSON answer as Go's encoder writes it (with a final newline).
pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            let mut response = Response::new(Body::from(format!("{{\"message\":\"{e}\"}}\n")));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Query parameters (the last of repeated keys wins).
fn params(query: &Option<String>) -> HashMap<String, String> {
    query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Docker's boolean parameters: anything but ``, `0`, `no`, `false`, `none`.
fn truthy(params: &HashMap<String, String>, key: &str) -> bool {
    params.get(key).is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
    })
}

/// The `filters` parameter, in either of Docker's forms:
/// `{"label":{"a=b":true}}` or `{"label":["a=b"]}`.
pub(crate) fn parse_filters(
    params: &HashMap<String, String>,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let Some(raw) = params.get("filters").filter(|f| !f.trim().is_empty()) else {
        return Ok(HashMap::new());
    };
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid filter: not a JSON object"))?;
    let mut out = HashMap::new();
    for (key, values) in object {
        let list: Vec<String> = match values {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(true))
                .map(|(v, _)| v.clone())
                .collect(),
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter: values of {key:?} are not a list"
                )))
            }
        };
        out.insert(key.clone(), list);
    }
    Ok(out)
}

/// Refuses filter keys not in `known`, as Docker does.
fn check_filter_keys(
    filters: &HashMap<String, Vec<String>>,
    known: &[&str],
) -> Result<(), ApiError> {
    match filters.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(ApiError::bad_request(format!("Invalid filter '{key}'"))),
        None => Ok(()),
    }
}

async fn ping() -> Response {
    let mut response = Response::new(Body::from("OK"));
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn version(Extension(node): Extension<Arc<Node>>) -> Response {
    json(StatusCode::OK, &shapes::version(&node))
}

async fn info(Extension(node): Extension<Arc<Node>>) -> Response {
    json(StatusCode::OK, &shapes::info(&node))
}

/// Which events a stream wants.
struct EventFilter {
    filters: HashMap<String, Vec<String>>,
}

impl EventFilter {
    fn matches(&self, event: &Event) -> bool {
        let any = |key: &str, test: &dyn Fn(&str) -> bool| {
            self.filters
                .get(key)
                .is_none_or(|values| values.is_empty() || values.iter().any(|v| test(v)))
        };
        let typ = event.typ.to_string();
        let attr = |k: &str| event.attributes.get(k).map(String::as_str).unwrap_or("");
        let is_container = event.typ == EventMessageTypeEnum::CONTAINER;
        any("type", &|v| v == typ)
            && any("event", &|v| v == event.action)
            && any("container", &|v| {
                is_container && (event.actor.starts_with(v) || attr("name") == v)
            })
            && any("image", &|v| {
                is_container
                    && (attr("image") == v
                        || normalize_image_name(attr("image")) == normalize_image_name(v))
            })
            && any("label", &|v| match v.split_once('=') {
                Some((k, val)) => event.attributes.get(k).is_some_and(|x| x == val),
                None => event.attributes.contains_key(v),
            })
            && any("network", &|v| {
                event.typ == EventMessageTypeEnum::NETWORK
                    && (event.actor.starts_with(v) || attr("name") == v)
            })
            && any("scope", &|v| v == "local")
    }
}

/// A Docker timestamp parameter (`1700000000`, `1700000000.5`, RFC 3339).
fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(secs) = s.parse::<f64>() {
        return chrono::DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `GET /events`: JSON lines from now on (no history: `since` replays
/// nothing), until `until` if given. A reader that falls behind by more
/// than the buffer is disconnected, as a resubscribe must re-read anyway.
async fn events(Extension(node): Extension<Arc<Node>>, RawQuery(query): RawQuery) -> Response {
    let params = params(&query);
    let filters = match parse_filters(&params).and_then(|f| {
        check_filter_keys(
            &f,
            &[
                "type",
                "event",
                "container",
                "image",
                "label",
                "network",
                "scope",
                "volume",
                "daemon",
                "plugin",
                "node",
                "service",
                "secret",
                "config",
            ],
        )
        .map(|_| f)
    }) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let filter = EventFilter { filters };
    let until = params.get("until").and_then(|u| parse_time(u));
    let deadline = until.map(|u| {
        let left = (u - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::Instant::now() + left
    });
    let rx = node.subscribe();
    let shutdown = node.shared.shutdown.clone();
    let stream = futures::stream::unfold(
        (rx, filter, deadline, shutdown),
        |(mut rx, filter, deadline, shutdown)| async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    } => return None,
                    next = rx.recv() => next,
                };
                match next {
                    Ok(event) if filter.matches(&event) => {
                        let line = event.line.clone();
                        return Some((
                            Ok::<Bytes, Infallible>(line),
                            (rx, filter, deadline, shutdown),
                        ));
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_))
                    | Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn list_containers(
    Extension(node): Extension<Arc<Node>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(&query);
    let filters = parse_filters(&params)?;
    check_filter_keys(
        &filters,
        &[
            "ancestor",
            "before",
            "expose",
            "exited",
            "health",
            "id",
            "isolation",
            "is-task",
            "label",
            "name",
            "network",
            "publish",
            "since",
            "status",
            "volume",
        ],
    )?;
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    let all = truthy(&params, "all") || limit.is_some();
    let list = shapes::list(&node, all, limit, &filters)?;
    Ok(json(StatusCode::OK, &list))
}

/// `POST /containers/create?name=`.
async fn create(
    Extension(node): Extension<Arc<Node>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| !ct.is_empty())
    {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime != "application/json" {
            return Err(ApiError::bad_request(format!(
                "Content-Type specified ({ct}) must be 'application/json'"
            )));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "EOF"));
    }
    let config: ContainerCreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let params = params(&query);
    let name = params
        .get("name")
        .map(String::as_str)
        .filter(|n| !n.is_empty());
    let id = node.create(name, config)?;
    Ok(json(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id,
            warnings: Vec::new(),
        },
    ))
}

async fn inspect(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let value = shapes::inspect(&node, &id)?;
    Ok(json(StatusCode::OK, &value))
}

fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `POST /containers/{id}/{action}`.
async fn action(
    Extension(node): Extension<Arc<Node>>,
    Path((id, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = params(&query);
    match action.as_str() {
        "start" => node.start(&id).map(|_| no_content()),
        "stop" => node.stop(&id).map(|_| no_content()),
        "restart" => node.restart(&id).map(|_| no_content()),
        "kill" => node
            .signal(&id, params.get("signal").map(String::as_str))
            .map(|_| no_content()),
        "pause" => node.pause(&id).map(|_| no_content()),
        "unpause" => node.unpause(&id).map(|_| no_content()),
        "rename" => node
            .rename(&id, params.get("name").map(String::as_str).unwrap_or(""))
            .map(|_| no_content()),
        "wait" => wait(&node, &id, params.get("condition").map(String::as_str)),
        // A TTY size: nothing to resize.
        "resize" => node.state().resolve(&id).map(|_| {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::OK;
            response
        }),
        _ => Ok(unknown(method, uri).await),
    }
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`:
/// headers at once, `{"Error":null,"StatusCode":N}` when the condition holds.
fn wait(node: &Arc<Node>, reference: &str, condition: Option<&str>) -> Result<Response, ApiError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Until {
        NotRunning,
        NextExit,
        Removed,
    }
    let until = match condition {
        Some("next-exit") => Until::NextExit,
        Some("removed") => Until::Removed,
        _ => Until::NotRunning,
    };
    // Subscribe before reading the state: no exit can slip in between.
    let mut rx = node.subscribe();
    let (id, ready) = {
        let state = node.state();
        let c = state.get(reference)?;
        let id = c.id.clone();
        let ready = (until == Until::NotRunning && !c.status.is_running()).then_some(c.exit_code);
        (id, ready)
    };
    let node = node.clone();
    let code = async move {
        if let Some(code) = ready {
            return code;
        }
        loop {
            let next = tokio::select! {
                _ = node.shared.shutdown.cancelled() => return -1,
                next = rx.recv() => next,
            };
            match next {
                Ok(event) if event.actor == id && event.typ == EventMessageTypeEnum::CONTAINER => {
                    match (event.action.as_str(), until) {
                        ("die", Until::NotRunning | Until::NextExit) | ("destroy", _) => {
                            return event.exit_code.unwrap_or(0)
                        }
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let state = node.state();
                    match state.containers.get(&id) {
                        None => return 0,
                        Some(c) if until == Until::NotRunning && !c.status.is_running() => {
                            return c.exit_code
                        }
                        Some(_) => {}
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return -1,
            }
        }
    };
    let body = futures::stream::once(async move {
        let answer = shapes::wait_response(code.await);
        Ok::<Bytes, Infallible>(Bytes::from(answer))
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// `GET /containers/{id}/logs`: the canned output of every run, framed as
/// Docker's multiplexed stream (8-byte headers) unless the container has a
/// TTY; with `follow`, the stream stays open until the container stops.
async fn logs(
    Extension(node): Extension<Arc<Node>>,
    Path(reference): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(&query);
    let (stdout, stderr) = (truthy(&params, "stdout"), truthy(&params, "stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow = truthy(&params, "follow");
    let timestamps = truthy(&params, "timestamps");
    let tail = params.get("tail").and_then(|t| t.parse::<usize>().ok());
    let mut rx = follow.then(|| node.subscribe());
    let (id, frames, running) = {
        let state = node.state();
        let c = state.get(&reference)?;
        let id = c.id.clone();
        let frames = render(c, stdout, stderr, timestamps, c.runs, tail);
        (id, frames, c.status.is_running())
    };
    let initial = futures::stream::iter(frames.into_iter().map(Ok::<Bytes, Infallible>));
    let shutdown = node.shared.shutdown.clone();
    let rest = futures::stream::once(async move {
        if let (Some(rx), true) = (rx.as_mut(), running) {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = rx.recv() => next,
                };
                match next {
                    Ok(event)
                        if event.actor == id
                            && matches!(event.action.as_str(), "die" | "destroy") =>
                    {
                        break
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        Ok::<Bytes, Infallible>(Bytes::new())
    })
    .filter(|chunk| std::future::ready(chunk.as_ref().map_or(true, |c| !c.is_empty())));
    Ok(Response::new(Body::from_stream(initial.chain(rest))))
}

/// The canned output of `c`'s last `runs` runs (the last `tail` lines),
/// as Docker frames it: 8-byte headers (stream, 0, 0, 0, length) unless
/// the container has a TTY.
fn render(
    c: &Container,
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    runs: u32,
    tail: Option<usize>,
) -> Vec<Bytes> {
    let stamp = timestamps.then(|| shapes::go_time(c.started_at));
    Output {
        program: c.program(),
        tty: c.flags.tty,
        stdout,
        stderr,
    }
    .render(stamp.as_deref(), runs.min(c.runs), tail)
}

/// What a container prints per run, and how it is framed.
struct Output {
    program: Program,
    tty: bool,
    stdout: bool,
    stderr: bool,
}

impl Output {
    /// `runs` runs of output (the last `tail` lines), each line prefixed
    /// with `stamp` if given.
    fn render(&self, stamp: Option<&str>, runs: u32, tail: Option<usize>) -> Vec<Bytes> {
        let mut lines: Vec<(u8, &String)> = Vec::new();
        for _ in 0..runs {
            if self.stdout {
                lines.extend(self.program.stdout.iter().map(|l| (1u8, l)));
            }
            if self.stderr {
                lines.extend(self.program.stderr.iter().map(|l| (2u8, l)));
            }
        }
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        let end = if self.tty { "\r\n" } else { "\n" };
        lines[skip..]
            .iter()
            .map(|(stream, line)| {
                let text = match stamp {
                    Some(stamp) => format!("{stamp} {line}{end}"),
                    None => format!("{line}{end}"),
                };
                if self.tty {
                    Bytes::from(text)
                } else {
                    frame(*stream, text.as_bytes())
                }
            })
            .collect()
    }
}

/// One frame of Docker's multiplexed stream.
fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.push(stream);
    frame.extend_from_slice(&[0, 0, 0]);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// What an attached client receives: `initial`, then the output of every
/// run that starts, until the container dies or is removed (the channel
/// closes then).
fn attached_output(
    node: &Arc<Node>,
    id: String,
    mut rx: broadcast::Receiver<Arc<Event>>,
    output: Output,
    initial: Vec<Bytes>,
    stream: bool,
) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel(64);
    let node = node.clone();
    tokio::spawn(async move {
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        if !stream {
            return;
        }
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return,
                _ = node.shared.shutdown.cancelled() => return,
                next = rx.recv() => next,
            };
            match next {
                Ok(event) if event.actor == id && event.typ == EventMessageTypeEnum::CONTAINER => {
                    match event.action.as_str() {
                        // Rendered from what was read at attach: an
                        // AutoRemove container may be gone already.
                        "start" => {
                            for chunk in output.render(None, 1, None) {
                                if tx.send(chunk).await.is_err() {
                                    return;
                                }
                            }
                        }
                        "die" | "destroy" => return,
                        _ => {}
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    out
}

/// `POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1[&logs=1]`:
/// with `Upgrade: tcp`, a hijacked connection (101) carrying the output of
/// the runs that start (canned, framed unless TTY) and closed when the
/// container stops; what the client writes is discarded (echoed on a TTY),
/// and its end (or ^D on a TTY) ends a command that reads stdin. Without
/// `Upgrade`, the same output as a streamed body.
async fn attach(
    Extension(node): Extension<Arc<Node>>,
    Path(reference): Path<String>,
    RawQuery(query): RawQuery,
    mut request: Request<Body>,
) -> Result<Response, ApiError> {
    let params = params(&query);
    let (stdout, stderr) = (truthy(&params, "stdout"), truthy(&params, "stderr"));
    let rx = node.subscribe();
    let (id, tty, initial, run_output) = {
        let state = node.state();
        let c = state.get(&reference)?;
        let id = c.id.clone();
        let initial = if truthy(&params, "logs") {
            render(c, stdout, stderr, false, c.runs, None)
        } else {
            Vec::new()
        };
        let run_output = Output {
            program: c.program(),
            tty: c.flags.tty,
            stdout,
            stderr,
        };
        (id, c.flags.tty, initial, run_output)
    };
    let stream = truthy(&params, "stream");
    let mut output = attached_output(&node, id.clone(), rx, run_output, initial, stream);
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if !upgrade {
        let body = futures::stream::unfold(output, |mut output| async move {
            output
                .recv()
                .await
                .map(|chunk| (Ok::<Bytes, Infallible>(chunk), output))
        });
        let mut response = Response::new(Body::from_stream(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.docker.raw-stream"),
        );
        return Ok(response);
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let Some((cancel, done)) = node.connection_guard() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node is dying",
        ));
    };
    let reads_stdin = truthy(&params, "stdin");
    tokio::spawn(async move {
        let _done = done;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "attach upgrade failed");
                return;
            }
        };
        let (mut from_client, mut to_client) = tokio::io::split(TokioIo::new(upgraded));
        let (echo_tx, mut echo) = mpsc::channel::<Bytes>(16);
        let writer = async move {
            loop {
                let chunk = tokio::select! {
                    chunk = output.recv() => chunk,
                    Some(chunk) = echo.recv() => Some(chunk),
                };
                let Some(chunk) = chunk else { break };
                if to_client.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to_client.shutdown().await;
        };
        let reader = async {
            let mut buf = [0u8; 4096];
            loop {
                match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if tty => {
                        if buf[..n].contains(&4) {
                            break;
                        }
                        let echoed = String::from_utf8_lossy(&buf[..n]).replace('\r', "\r\n");
                        let _ = echo_tx.send(Bytes::from(echoed)).await;
                    }
                    Ok(_) => {}
                }
            }
            // The command sees the end of its stdin once it runs.
            while reads_stdin && node.stdin_closed(&id) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = writer => {}
            _ = reader => {}
            _ = cancel.cancelled() => {}
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    Ok(response)
}

/// `DELETE /containers/{id}?force=`.
async fn remove(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(&query);
    node.remove(&id, truthy(&params, "force"))?;
    Ok(no_content())
}

async fn list_images(
    Extension(_node): Extension<Arc<Node>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(&query);
    let filters = parse_filters(&params)?;
    check_filter_keys(
        &filters,
        &["before", "dangling", "label", "reference", "since"],
    )?;
    Ok(json(StatusCode::OK, &shapes::images(&filters)))
}

/// `GET /images/{name}/json`.
async fn image(Path(rest): Path<String>, method: Method, uri: Uri) -> Result<Response, ApiError> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Ok(unknown(method, uri).await);
    };
    if !image_matches(name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such image: {name}: No such image: {}",
                normalize_image_name(name)
            ),
        ));
    }
    Ok(json(StatusCode::OK, &shapes::image_inspect()))
}

async fn networks(Extension(node): Extension<Arc<Node>>) -> Response {
    json(StatusCode::OK, &shapes::networks(&node, false))
}

async fn network(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    shapes::networks(&node, true)
        .into_iter()
        .find(|n| {
            let name = n.get("Name").and_then(|v| v.as_str()).unwrap_or("");
            let nid = n.get("Id").and_then(|v| v.as_str()).unwrap_or("");
            name == id || (!id.is_empty() && nid.starts_with(&id))
        })
        .map(|n| json(StatusCode::OK, &n))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("network {id} not found")))
}

async fn volumes() -> Response {
    json(StatusCode::OK, &shapes::volumes())
}

/// `POST /hollow/kill[?for=5s]` on a node: answers, then stops answering
/// (for the duration, else until revived through the admin endpoint).
async fn kill_self(
    Extension(node): Extension<Arc<Node>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = params(&query);
    let duration = match params.get("for").filter(|d| !d.is_empty()) {
        Some(d) => Some(
            humantime::parse_duration(d)
                .map_err(|e| ApiError::bad_request(format!("invalid for={d}: {e}")))?,
        ),
        None => None,
    };
    node.kill_self(duration);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "Node": node.index, "Alive": false }),
    ))
}

/// `POST /hollow/revive` on a node that answers: nothing to do.
async fn revive_self(Extension(node): Extension<Arc<Node>>) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "Node": node.index, "Alive": true }),
    )
}

/// Paths of the Engine API that hollow nodes do not serve.
const UNIMPLEMENTED: [&str; 19] = [
    "/containers/",
    "/exec/",
    "/images/",
    "/networks",
    "/volumes",
    "/build",
    "/swarm",
    "/services",
    "/nodes",
    "/tasks",
    "/secrets",
    "/configs",
    "/plugins",
    "/system",
    "/session",
    "/distribution",
    "/auth",
    "/commit",
    "/grpc",
];

/// Anything else: 501 for the Engine API hollow nodes leave out, Docker's
/// `404 page not found` otherwise.
async fn unknown(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if UNIMPLEMENTED.iter().any(|p| path.starts_with(p)) {
        return ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("hollow-engine does not implement {method} {path}"),
        )
        .into_response();
    }
    ApiError::new(StatusCode::NOT_FOUND, "page not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        assert_eq!(split_version("/v1.41/info"), Some(("1.41", "/info")));
        assert_eq!(split_version("/v1.24"), Some(("1.24", "/")));
        assert_eq!(split_version("/volumes"), None);
        assert_eq!(split_version("/v1/info"), None);
        assert!(version_cmp("1.9", "1.41").is_lt());
        assert!(version_cmp("1.50", "1.41").is_gt());
    }

    #[test]
    fn filters_in_both_forms() {
        let p = |f: &str| HashMap::from([("filters".to_string(), f.to_string())]);
        let a = parse_filters(&p(r#"{"label":{"a=b":true}}"#)).unwrap();
        let b = parse_filters(&p(r#"{"label":["a=b"]}"#)).unwrap();
        assert_eq!(a, b);
        assert!(parse_filters(&p("{")).is_err());
        assert!(check_filter_keys(&a, &["label"]).is_ok());
        assert_eq!(
            check_filter_keys(&a, &["name"]).unwrap_err().message,
            "Invalid filter 'label'"
        );
    }
}
