//! The Docker Engine API front-end.
//!
//! Accepts the paths with and without a `/vX.Y` prefix, answers cluster-wide
//! calls (`info`, `version`, container and image lists, disk usage,
//! prunes) from all nodes, proxies calls about one container, exec
//! instance or image to the node(s) concerned, and refuses, saying why,
//! the endpoints the cluster does not serve (swarm mode, plugins, builds:
//! `refused.rs`). Every endpoint of the Engine API has its own route
//! (`docs/api-coverage.md`). Errors are Docker-shaped (`{"message": ...}`).

mod build;
mod containers;
mod disk;
pub mod errors;
pub mod guard;
mod images;
mod info_sections;
mod list_cache;
mod listing;
mod managers;
mod networks;
mod node_filter;
pub mod proxy;
mod ps_filter;
mod refused;
pub mod serve;
mod system;
mod tokens;
mod volumes;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

use crate::manager::Manager;
pub use errors::ApiError;

/// The API version reported while no engine has answered yet.
pub const FALLBACK_API_VERSION: &str = "1.41";

/// Largest engine answer the API reads whole (inspects, lists); request
/// bodies are bounded by `--api-max-body-size` ([`guard`]).
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Shared handler state.
pub struct App {
    /// The manager behind the API.
    pub manager: Arc<Manager>,
    /// Connection details of the leader, for followers' forwarding.
    leader: managers::LeaderClient,
    /// Nodes' container lists, between `docker ps` requests.
    lists: Arc<list_cache::ListCache>,
    /// The checks every request passes first.
    front: guard::Front,
    /// Each node's part of `info`, kept between requests.
    info_sections: info_sections::Sections,
}

/// The API version the client asked for in its path, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientVersion(pub Option<String>);

impl ClientVersion {
    /// `/vX.Y` or the empty string, to prefix forwarded paths with.
    pub fn prefix(&self) -> String {
        self.0
            .as_ref()
            .map(|v| format!("/v{v}"))
            .unwrap_or_default()
    }
}

/// Splits `/v1.41/containers/json` into `Some("1.41")` and `/containers/json`.
pub fn split_version(path: &str) -> (Option<String>, String) {
    if let Some(rest) = path.strip_prefix("/v") {
        let (version, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let numeric = version.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.chars().all(|c| c.is_ascii_digit())
                && minor.chars().all(|c| c.is_ascii_digit())
        });
        if numeric {
            return (Some(version.to_string()), tail.to_string());
        }
    }
    (None, path.to_string())
}

/// Parses `MAJOR.MINOR` (each a number that fits in 64 bits), as the
/// version of a `/vX.Y` prefix must be.
pub fn parse_version(v: &str) -> Option<(u64, u64)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Compares dotted API versions numerically.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| -> (u64, u64) {
        let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
        (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
    };
    parse(a).cmp(&parse(b))
}

/// Strips the version prefix before routing and records it for handlers.
fn strip_version(mut request: Request) -> Request {
    let (version, path) = split_version(request.uri().path());
    if version.is_some() {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request.extensions_mut().insert(ClientVersion(version));
    request
}

/// Refuses versions that are no numbers (`1.99999999999999999999`) and
/// versions newer than every node speaks, as an engine would: the
/// refusal, if any.
fn check_version(app: &App, request: &Request) -> Option<Response> {
    let asked = request
        .extensions()
        .get::<ClientVersion>()
        .and_then(|v| v.0.as_deref());
    if let Some(asked) = asked {
        if parse_version(asked).is_none() {
            return Some(
                ApiError::bad_request(format!(
                    "invalid API version {asked:?}: expected MAJOR.MINOR, two numbers"
                ))
                .into_response(),
            );
        }
        let max = system::api_version(&app.manager);
        if version_cmp(asked, &max) == std::cmp::Ordering::Greater {
            return Some(
                ApiError::bad_request(format!(
                    "client version {asked} is too new. Maximum supported API version is {max}"
                ))
                .into_response(),
            );
        }
    }
    None
}

async fn not_found(request: Request) -> ApiError {
    tracing::debug!(method = %request.method(), uri = %request.uri(), "no route");
    ApiError::not_found("page not found")
}

/// A known path asked with a method it does not take (axum adds `Allow`).
async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Gives an error answer without a body Docker's `{"message": ...}` (the
/// status's reason): every error a client gets is JSON, whoever made it
/// (an engine, a layer). Answers to `HEAD` stay bodiless.
fn with_error_body(head: bool, response: Response) -> Response {
    use axum::body::HttpBody;
    let status = response.status();
    if head
        || !(status.is_client_error() || status.is_server_error())
        || response.body().size_hint().exact() != Some(0)
    {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("error").to_string();
    let (mut parts, _) = response.into_parts();
    let fresh = ApiError::new(status, message).into_response();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    for (name, value) in fresh.headers() {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, fresh.into_body())
}

/// The API router.
pub fn router(manager: Arc<Manager>, checks: guard::Front) -> Router {
    let lists = Arc::new(list_cache::ListCache::new(manager.config.list_cache));
    let app = Arc::new(App {
        manager,
        leader: managers::LeaderClient::default(),
        lists,
        front: checks,
        info_sections: info_sections::Sections::default(),
    });
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(disk::disk_usage))
        .route("/auth", post(system::on_any_node))
        .route("/distribution/{*rest}", get(system::on_any_node))
        // A `DELETE` of a fixed path under /containers/ or /images/
        // removes the container or image of that name, as on an engine.
        .route(
            "/containers/json",
            get(containers::list).delete(containers::dispatch),
        )
        .route(
            "/containers/create",
            post(containers::create).delete(containers::dispatch),
        )
        .route(
            "/containers/prune",
            post(disk::prune_containers).delete(containers::dispatch),
        )
        .route("/containers/{*rest}", any(containers::dispatch))
        .route("/exec/{*rest}", any(containers::exec))
        .route("/images/json", get(images::list).delete(images::dispatch))
        .route("/images/load", post(images::load).delete(images::dispatch))
        .route(
            "/images/create",
            post(images::pull).delete(images::dispatch),
        )
        .route("/images/get", get(images::save).delete(images::dispatch))
        .route(
            "/images/search",
            get(system::on_any_node).delete(images::dispatch),
        )
        .route(
            "/images/prune",
            post(disk::prune_images).delete(images::dispatch),
        )
        .route("/images/{*rest}", any(images::dispatch))
        .route("/commit", post(images::commit))
        .route("/build/prune", post(disk::prune_build_cache))
        .route("/build", post(build::build))
        .route("/session", any(refused::session))
        .route("/plugins", any(refused::plugins))
        .route("/plugins/{*rest}", any(refused::plugins))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(disk::prune_networks))
        .route("/networks/{*rest}", any(networks::dispatch))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(disk::prune_volumes))
        .route("/volumes/{*rest}", any(volumes::dispatch))
        .route("/_swarm/members", get(managers::members))
        .route("/_swarm/state", get(managers::state))
        .route("/_swarm/join", post(managers::join))
        .route("/_swarm/remove", post(managers::remove))
        .route("/_swarm/tokens", post(tokens::create))
        .route(
            "/_swarm/tokens/{token}",
            get(tokens::engines)
                .post(tokens::register)
                .delete(tokens::delete),
        )
        .route(
            "/_swarm/discovery",
            get(tokens::discovery).post(tokens::set_discovery),
        )
        .merge(swarm_mode_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), front))
        .with_state(app)
}

/// Swarm mode's endpoints, every one refused ([`refused::swarm_mode`]).
fn swarm_mode_routes() -> Router<Arc<App>> {
    ["swarm", "nodes", "services", "tasks", "secrets", "configs"]
        .into_iter()
        .fold(Router::new(), |router, resource| {
            router
                .route(&format!("/{resource}"), any(refused::swarm_mode))
                .route(&format!("/{resource}/{{*rest}}"), any(refused::swarm_mode))
        })
}

/// What every request goes through before its route, in one layer (each
/// layer costs a boxed future and a service clone per request): a debug
/// trace of the request and its answer, the front's checks (Host,
/// Origin, content type, body size: [`guard`]), the hand-over to the
/// leader on a follower ([`managers::forward_to_leader`]), the version
/// check.
async fn front(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let span = tracing::debug_span!("request", method = %request.method(), uri = %request.uri());
    let _enter = span.enter();
    tracing::debug!("request");
    drop(_enter);
    let head = request.method() == axum::http::Method::HEAD;
    let (response, allow_origin) = match app.front.admit(request).await {
        guard::Admitted::Answer(response) => (response, None),
        guard::Admitted::Serve(request, allow_origin) => {
            let response = match managers::forward_to_leader(&app, request).await {
                managers::Served::Here(request) => match check_version(&app, &request) {
                    None => next.run(request).await,
                    Some(refused) => refused,
                },
                managers::Served::Answered(response) => response,
            };
            (response, allow_origin)
        }
    };
    let mut response = with_error_body(head, response);
    if let Some(origin) = allow_origin {
        guard::Origins::decorate(origin, response.headers_mut());
    }
    tracing::debug!(parent: &span, status = response.status().as_u16(), "response");
    response
}

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `tcp://IP:PORT`.
    Tcp(String),
    /// `unix:///path`.
    Unix(std::path::PathBuf),
}

impl Listen {
    /// Parses `-H`: `tcp://IP:PORT`, `IP:PORT` or `unix:///path`.
    pub fn parse(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Listen::Unix(path.into()));
            }
            return Err(format!(
                "invalid -H {s:?}: unix socket path must be absolute"
            ));
        }
        let hostport = s.strip_prefix("tcp://").unwrap_or(s);
        match hostport.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => Ok(Listen::Tcp(hostport.to_string())),
            _ => Err(format!(
                "invalid -H {s:?}: expected tcp://IP:PORT or unix:///path"
            )),
        }
    }
}

/// How the API serves its clients (`swarm manage --api-*` flags).
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Time a connection has to deliver a whole request head.
    pub header_timeout: std::time::Duration,
    /// Time a kept-alive connection may wait between two requests.
    pub idle_timeout: std::time::Duration,
    /// Largest request line and headers, in bytes.
    pub max_header_size: usize,
    /// Client connections open at once; `None`: from the descriptor limit
    /// ([`serve::derived_cap`]).
    pub max_connections: Option<usize>,
    /// Largest body of an endpoint that is not a streamed upload.
    pub max_body_size: usize,
    /// Names `Host` may carry besides IP literals, `localhost`, `docker`
    /// and the hostname ([`guard::Hosts`]).
    pub hosts: Vec<String>,
    /// Origins cross-origin requests may come from (`*`: any).
    pub cors_origins: Vec<String>,
    /// TLS on a TCP listener (`--tls`, `--tlsverify`); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            header_timeout: std::time::Duration::from_secs(20),
            idle_timeout: std::time::Duration::from_secs(60),
            max_header_size: 64 * 1024,
            max_connections: None,
            max_body_size: 4 << 20,
            hosts: Vec::new(),
            cors_origins: Vec::new(),
            tls: None,
        }
    }
}

/// Serves the API on `listen` until `shutdown` resolves (see
/// [`serve::serve`] for the limits every connection is held to).
pub async fn serve(
    listen: &Listen,
    manager: Arc<Manager>,
    options: ApiOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = match options.max_connections {
        Some(n) => serve::ConnectionCap::Fixed(n),
        None => {
            let descriptors = serve::descriptor_limit().unwrap_or(1024);
            let engines = {
                let manager = Arc::clone(&manager);
                Arc::new(move || manager.state().nodes.len())
            };
            serve::ConnectionCap::Derived {
                descriptors,
                engines,
            }
        }
    };
    let limits = serve::Limits {
        header_timeout: options.header_timeout,
        idle_timeout: options.idle_timeout,
        max_header_size: options.max_header_size,
        cap,
    };
    let front = guard::Front {
        hosts: guard::Hosts::new(options.hosts.iter().cloned().chain(guard::hostname())),
        origins: guard::Origins::new(&options.cors_origins),
        max_body: options.max_body_size,
        body_timeout: options.header_timeout,
    };
    let service: serve::ApiService = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(strip_version as fn(Request) -> Request),
        router(manager, front),
    );
    let listener = match listen {
        Listen::Tcp(addr) => {
            let tcp = tokio::net::TcpListener::bind(addr).await?;
            match &options.tls {
                Some(config) => serve::Listener::Tls(tcp, config.clone()),
                None => serve::Listener::Tcp(tcp),
            }
        }
        Listen::Unix(path) => {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
            serve::Listener::Unix(tokio::net::UnixListener::bind(path)?)
        }
    };
    tracing::info!(
        listen = ?listen,
        tls = matches!(listener, serve::Listener::Tls(..)),
        max_connections = limits.cap.current(),
        header_timeout = ?limits.header_timeout,
        idle_timeout = ?limits.idle_timeout,
        "API listening"
    );
    serve::serve(listener, service, limits, shutdown).await
}

/// The raw query string of a request, or "".
pub fn query_of(request: &Request<Body>) -> String {
    request.uri().query().unwrap_or("").to_string()
}

/// Appends `?query` when there is one.
pub fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// Splits `REF/ACTION` (ACTION one of `actions`) into the percent-decoded
/// reference and the action; anything else is a bare reference. References
/// may hold slashes themselves (`node-1/web`, `library/busybox:1`).
pub fn split_action(rest: &str, actions: &[&str]) -> (String, Option<String>) {
    let rest = rest.trim_end_matches('/');
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    match rest.rsplit_once('/') {
        Some((reference, action)) if actions.contains(&action) && !reference.is_empty() => {
            (decode(reference), Some(action.to_string()))
        }
        _ => (decode(rest), None),
    }
}

/// One query parameter's first value.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// An engine's whole answer (status, content type, body) as the client's.
pub fn engine_answer(answer: crate::manager::EngineAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    if let Some(ct) = answer.content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}

/// A JSON answer with `status`.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response()),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        assert_eq!(
            split_version("/v1.41/containers/json"),
            (Some("1.41".into()), "/containers/json".into())
        );
        assert_eq!(split_version("/v1.41"), (Some("1.41".into()), "/".into()));
        assert_eq!(split_version("/_ping"), (None, "/_ping".into()));
        assert_eq!(split_version("/version"), (None, "/version".into()));
        assert_eq!(split_version("/volumes"), (None, "/volumes".into()));
        assert_eq!(split_version("/v1/x"), (None, "/v1/x".into()));
        assert_eq!(split_version("/v1.x/x"), (None, "/v1.x/x".into()));
    }

    #[test]
    fn versions_must_be_numbers() {
        assert_eq!(parse_version("1.41"), Some((1, 41)));
        assert_eq!(parse_version("1.999999999999999999999"), None);
        assert_eq!(parse_version("99999999999999999999.1"), None);
        assert_eq!(parse_version("1"), None);
    }

    #[tokio::test]
    async fn empty_error_answers_get_a_message() {
        use http_body_util::BodyExt;
        let empty = |status| {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = status;
            response
        };
        let response = with_error_body(false, empty(StatusCode::METHOD_NOT_ALLOWED));
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"message":"Method Not Allowed"}"#);
        // HEAD answers, successes and answers with a body are left alone.
        for (head, response) in [
            (true, empty(StatusCode::NOT_FOUND)),
            (false, empty(StatusCode::NO_CONTENT)),
            (false, ApiError::not_found("x").into_response()),
        ] {
            let status = response.status();
            let response = with_error_body(head, response);
            assert_eq!(response.status(), status);
            assert!(!response.headers().contains_key("content-type") || !head);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert!(body.is_empty() || body.starts_with(b"{\"message\":\"x\""));
        }
    }

    #[test]
    fn version_order() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("1.41", "1.9"), Greater);
        assert_eq!(version_cmp("1.41", "1.41"), Equal);
        assert_eq!(version_cmp("1.24", "1.41"), Less);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            Listen::parse("tcp://127.0.0.1:4000").unwrap(),
            Listen::Tcp("127.0.0.1:4000".into())
        );
        assert_eq!(
            Listen::parse("0.0.0.0:2375").unwrap(),
            Listen::Tcp("0.0.0.0:2375".into())
        );
        assert!(Listen::parse("unix:///tmp/s.sock").is_ok());
        assert!(Listen::parse("unix://rel").is_err());
        assert!(Listen::parse("tcp://nope").is_err());
    }

    #[test]
    fn queries() {
        assert_eq!(
            query_param("a=1&name=x%2Fy", "name").as_deref(),
            Some("x/y")
        );
        assert_eq!(query_param("a=1", "name"), None);
        assert_eq!(with_query("/p", ""), "/p");
        assert_eq!(with_query("/p", "a=1"), "/p?a=1");
    }
}
