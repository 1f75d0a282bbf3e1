//! The checks a request passes at the API's front, before it is routed or
//! handed to the leader, for what a browser or a careless client could do
//! to a manager bound to loopback or a private network:
//!
//! - **Host** ([`Hosts`]): a web page whose name an attacker re-points at
//!   127.0.0.1 (DNS rebinding) reaches the API with its own name in
//!   `Host`. Served are IP literals, `localhost` and `*.localhost`, the
//!   names the docker CLI gives unix sockets (`docker`,
//!   `api.moby.localhost`), this machine's hostname, the names in `-H` and
//!   `--advertise`, and those given with `--api-host`; a request without
//!   `Host` (HTTP/1.0) too. Others: 403.
//! - **Origin** ([`Origins`]): browsers send it on cross-origin requests,
//!   the docker CLI and the SDKs never do. A request that carries one is
//!   refused (403) unless `--api-cors-header` allows the origin, as
//!   dockerd's flag of that name does; an allowed one gets dockerd's CORS
//!   headers, and its preflight (`OPTIONS`) a 200.
//! - **Content type** ([`check_json`]): an endpoint that takes a JSON body
//!   refuses a body of another content type with Docker's 400
//!   (`Content-Type specified (text/plain) must be 'application/json'`):
//!   a page's form or `fetch` with `text/plain` needs no preflight.
//! - **Body size** ([`body_limit`]): bodies of small-JSON endpoints are
//!   read whole here, up to `--api-max-body-size` (413 past it, 408 when
//!   they take longer than the header timeout); uploads that stream
//!   (`docker cp` into a container, `docker load`, imports) are not
//!   limited.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::ApiError;

/// The front's settings (from `swarm manage --api-*` flags).
#[derive(Debug, Clone, Default)]
pub struct Front {
    /// The names `Host` may carry.
    pub hosts: Hosts,
    /// The origins cross-origin requests may come from.
    pub origins: Origins,
    /// Largest body of an endpoint that is not a streamed upload.
    pub max_body: usize,
    /// Time such a body has to arrive once its head was read.
    pub body_timeout: Duration,
}

/// Over TLS, only a manager's certificate may change the cluster's
/// membership (`/_swarm/join`, `/_swarm/remove`): a user of the API may
/// not add a manager of their own, which would read the whole state and
/// could lead. Checked before a follower forwards the request (the leader
/// sees the follower's certificate). Without TLS nothing is known of the
/// client: the manager warns at start that its API is open.
fn check_membership(request: &Request) -> Result<(), ApiError> {
    let path = request.uri().path();
    if !matches!(path, "/_swarm/join" | "/_swarm/remove") {
        return Ok(());
    }
    match request.extensions().get::<super::serve::TlsClient>() {
        Some(client) if client.kind != Some(crate::ca::CertKind::Manager) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{path} needs a manager's certificate (swarmctl cert issue --kind manager); this client showed {}",
                client
                    .kind
                    .map(|k| format!("a {k} certificate"))
                    .unwrap_or_else(|| "none of the CA's kinds".to_string())
            ),
        )),
        _ => Ok(()),
    }
}

/// What the front makes of a request.
pub enum Admitted {
    /// To serve: the request (with its body read whole unless it is a
    /// streamed upload, and without `Origin`), and the
    /// `Access-Control-Allow-Origin` its answer gets, if any.
    Serve(Request, Option<HeaderValue>),
    /// Answered at the front: a refusal, or an allowed preflight.
    Answer(Response),
}

impl Front {
    /// Checks `request` (see the module's documentation).
    pub async fn admit(&self, mut request: Request) -> Admitted {
        let refuse = |e: ApiError| Admitted::Answer(e.into_response());
        if let Err(e) = self.hosts.check(request.headers()) {
            return refuse(e);
        }
        if let Err(e) = check_membership(&request) {
            return refuse(e);
        }
        let allow_origin = match self.origins.check(request.headers()) {
            Ok(allowed) => allowed,
            Err(e) => return refuse(e),
        };
        if let Some(origin) = &allow_origin {
            if request.method() == Method::OPTIONS {
                let mut preflight = StatusCode::OK.into_response();
                Origins::decorate(origin.clone(), preflight.headers_mut());
                return Admitted::Answer(preflight);
            }
            // Checked here: the leader, or an engine, need not see it.
            request.headers_mut().remove(header::ORIGIN);
        }
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let Some(max) = body_limit(&method, &path, self.max_body) else {
            return Admitted::Serve(request, allow_origin);
        };
        let (parts, body) = request.into_parts();
        let bytes = if hyper::body::Body::size_hint(&body).exact() == Some(0) {
            bytes::Bytes::new()
        } else {
            let announced = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if announced.is_some_and(|n| n > max as u64) {
                return refuse(too_large(max));
            }
            let read = http_body_util::Limited::new(body, max).collect();
            match tokio::time::timeout(self.body_timeout, read).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return refuse(too_large(max))
                }
                Ok(Err(e)) => return refuse(ApiError::bad_request(format!("reading body: {e}"))),
                Err(_) => {
                    return refuse(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "request body not received within {}s",
                            self.body_timeout.as_secs()
                        ),
                    ))
                }
            }
        };
        if takes_json(&method, &path) {
            if let Err(e) = check_json(&parts.headers, bytes.is_empty()) {
                return refuse(e);
            }
        }
        Admitted::Serve(Request::from_parts(parts, Body::from(bytes)), allow_origin)
    }
}

/// This machine's hostname (`/proc/sys/kernel/hostname`), if readable.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The names a request's `Host` may carry.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// Lower-cased names; `*.example.com` stands for its subdomains.
    names: Vec<String>,
}

/// The names every manager serves besides IP literals and `*.localhost`.
const BUILT_IN_HOSTS: [&str; 2] = ["localhost", "docker"];

impl Hosts {
    /// The built-in names and `names` (`-H` and `--advertise` hosts,
    /// `--api-host` values, the hostname).
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Hosts {
        let mut all: Vec<String> = BUILT_IN_HOSTS.iter().map(|s| s.to_string()).collect();
        for name in names {
            let name = name
                .as_ref()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if !name.is_empty() && !all.contains(&name) {
                all.push(name);
            }
        }
        Hosts { names: all }
    }

    /// Whether a request with this `Host` header value is served.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
        if name.parse::<IpAddr>().is_ok() || name.ends_with(".localhost") {
            return true;
        }
        self.names
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => name
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => *allowed == name,
            })
    }

    /// The refusal of a request whose `Host` is not served, if it is one.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        for value in headers.get_all(header::HOST) {
            let host = value.to_str().unwrap_or("");
            if !self.allows(host) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "Host {host:?} is not a name of this manager: give it with --api-host to serve it (IP addresses and localhost are always served)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The name in a `Host` value: `name:port` → `name`, `[::1]:port` → `::1`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(ip, _)| ip).unwrap_or(rest);
    }
    if host.parse::<IpAddr>().is_ok() {
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The host part of a `-H` or `--advertise` address (`tcp://NAME:PORT`,
/// `NAME:PORT`), if it has one.
pub fn address_host(addr: &str) -> Option<String> {
    let rest = addr.split_once("://").map(|(_, r)| r).unwrap_or(addr);
    if addr.starts_with("unix://") || rest.is_empty() {
        return None;
    }
    Some(host_name(rest).to_string())
}

/// The origins `--api-cors-header` allows.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Lower-cased origins without a trailing slash; `*` allows any.
    allowed: Vec<String>,
}

/// What an allowed cross-origin request is answered with, as dockerd.
const CORS_HEADERS: &str = "Origin, X-Requested-With, Content-Type, Accept, X-Registry-Auth";
const CORS_METHODS: &str = "HEAD, GET, POST, DELETE, PUT, OPTIONS";

impl Origins {
    /// Origins from `--api-cors-header` values (each one origin, `*`, or
    /// a comma-separated list).
    pub fn new<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Origins {
        let allowed = values
            .into_iter()
            .flat_map(|v| {
                v.as_ref()
                    .split(',')
                    .map(normal_origin)
                    .filter(|o| !o.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        Origins { allowed }
    }

    /// For a request with these headers: `Ok(None)` without `Origin`,
    /// `Ok(Some(value for Access-Control-Allow-Origin))` for an allowed
    /// origin, a 403 for any other.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let text = origin.to_str().unwrap_or("");
        if self.allowed.iter().any(|a| a == "*") {
            return Ok(Some(HeaderValue::from_static("*")));
        }
        if self.allowed.contains(&normal_origin(text)) {
            return Ok(Some(origin.clone()));
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-origin request refused: origin {text:?} is not allowed (see --api-cors-header)"
            ),
        ))
    }

    /// Adds dockerd's CORS headers for an allowed origin.
    pub fn decorate(allow_origin: HeaderValue, headers: &mut HeaderMap) {
        if allow_origin != "*" {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
    }
}

fn normal_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `method path` (version prefix stripped) takes a JSON body:
/// create, update, start, commit, exec create and start, and the
/// managers' join and remove.
pub fn takes_json(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    if matches!(
        path,
        "/containers/create"
            | "/networks/create"
            | "/volumes/create"
            | "/commit"
            | "/_swarm/join"
            | "/_swarm/remove"
    ) {
        return true;
    }
    if path.starts_with("/networks/")
        && (path.ends_with("/connect") || path.ends_with("/disconnect"))
    {
        return true;
    }
    if let Some(rest) = path.strip_prefix("/containers/") {
        let (_, action) = super::containers::split_reference(rest);
        return matches!(action.as_deref(), Some("update" | "exec" | "start"));
    }
    if let Some(rest) = path.strip_prefix("/exec/") {
        return rest.trim_end_matches('/').ends_with("/start");
    }
    false
}

/// Docker's check of a JSON body's content type: a body must come as
/// `application/json` (parameters such as `charset` allowed). An empty
/// body passes whatever its type: Docker's Go client sends `text/plain`
/// with the empty bodies of `start`, `kill`, ...
pub fn check_json(headers: &HeaderMap, empty_body: bool) -> Result<(), ApiError> {
    if empty_body {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(json_expected(&content_type))
    }
}

fn json_expected(content_type: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Content-Type specified ({content_type}) must be 'application/json'"
    ))
}

/// Whether `method path` is an upload that streams (not limited):
/// `PUT /containers/{ref}/archive` (`docker cp` into a container), `POST
/// /images/load`, `POST /images/create` (an import's archive), `POST
/// /build`.
pub fn streams_upload(method: &Method, path: &str) -> bool {
    match *method {
        Method::PUT => {
            path.starts_with("/containers/") && path.trim_end_matches('/').ends_with("/archive")
        }
        Method::POST => matches!(path, "/images/load" | "/images/create" | "/build"),
        _ => false,
    }
}

/// The most a request's body may hold: `None` for streamed uploads,
/// `Some(max)` for everything else.
pub fn body_limit(method: &Method, path: &str, max: usize) -> Option<usize> {
    (!streams_upload(method, path)).then_some(max)
}

/// The refusal of a body larger than `max`.
pub fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body too large: this endpoint takes at most {max} bytes (see --api-max-body-size)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn hosts() {
        let hosts = Hosts::new(["Swarm.Example.com", "*.corp.example", "myhost"]);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:4000",
            "10.1.2.3:2375",
            "[::1]:4000",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST:4000",
            "localhost.",
            "api.moby.localhost",
            "docker",
            "swarm.example.com:4000",
            "a.corp.example",
            "b.a.corp.example:1",
            "myhost:4000",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:4000",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "corp.example",
            "xcorp.example",
            "swarm",
            "",
            "docker.evil",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        assert!(hosts.check(&headers(&[])).is_ok());
        let e = hosts
            .check(&headers(&[("host", "evil.example:4000")]))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("--api-host"), "{}", e.message);
    }

    #[test]
    fn address_hosts() {
        assert_eq!(address_host("tcp://mgr1:4000").as_deref(), Some("mgr1"));
        assert_eq!(address_host("mgr1:4000").as_deref(), Some("mgr1"));
        assert_eq!(address_host("tcp://[::1]:4000").as_deref(), Some("::1"));
        assert_eq!(address_host("unix:///var/run/swarm.sock"), None);
    }

    #[test]
    fn origins() {
        let none = Origins::new(Vec::<String>::new());
        assert_eq!(none.check(&headers(&[])).unwrap(), None);
        let e = none
            .check(&headers(&[("origin", "http://evil.example")]))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("http://evil.example"));
        assert!(none.check(&headers(&[("origin", "null")])).is_err());

        let some = Origins::new([
            "http://ui.example:8080/",
            "https://a.example,https://b.example",
        ]);
        for ok in [
            "http://ui.example:8080",
            "HTTPS://B.example",
            "https://a.example",
        ] {
            let allowed = some.check(&headers(&[("origin", ok)])).unwrap();
            assert_eq!(allowed.unwrap(), ok);
        }
        assert!(some
            .check(&headers(&[("origin", "http://ui.example:8081")]))
            .is_err());

        let any = Origins::new(["*"]);
        assert_eq!(
            any.check(&headers(&[("origin", "http://x")]))
                .unwrap()
                .unwrap(),
            "*"
        );
        let mut answer = HeaderMap::new();
        Origins::decorate(HeaderValue::from_static("http://x"), &mut answer);
        assert_eq!(answer["access-control-allow-origin"], "http://x");
        assert_eq!(answer["vary"], "Origin");
        assert!(answer["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
    }

    #[test]
    fn membership_takes_a_managers_certificate_over_tls() {
        use crate::api::serve::TlsClient;
        use crate::ca::CertKind;
        let request = |path: &str, client: Option<TlsClient>| {
            let mut request = Request::post(path).body(Body::empty()).expect("request");
            if let Some(client) = client {
                request.extensions_mut().insert(client);
            }
            request
        };
        let manager = TlsClient {
            kind: Some(CertKind::Manager),
        };
        for path in ["/_swarm/join", "/_swarm/remove"] {
            for refused in [Some(CertKind::Client), Some(CertKind::Server), None] {
                let e = check_membership(&request(path, Some(TlsClient { kind: refused })))
                    .expect_err("refused");
                assert_eq!(e.status, StatusCode::FORBIDDEN);
                assert!(e.message.contains("manager's certificate"), "{}", e.message);
            }
            assert!(check_membership(&request(path, Some(manager))).is_ok());
            // Plain HTTP or a unix socket: nothing is known of the client.
            assert!(check_membership(&request(path, None)).is_ok());
        }
        let user = Some(TlsClient {
            kind: Some(CertKind::Client),
        });
        assert!(check_membership(&request("/_swarm/members", user)).is_ok());
        assert!(check_membership(&request("/containers/create", user)).is_ok());
    }

    #[test]
    fn json_endpoints() {
        for path in [
            "/containers/create",
            "/containers/web/update",
            "/containers/node-1/web/start",
            "/containers/abc/exec",
            "/exec/abc/start",
            "/commit",
            "/_swarm/join",
            "/_swarm/remove",
        ] {
            assert!(takes_json(&Method::POST, path), "{path}");
        }
        for (method, path) in [
            (Method::POST, "/containers/web/kill"),
            (Method::POST, "/containers/web/wait"),
            (Method::POST, "/exec/abc/resize"),
            (Method::GET, "/containers/create"),
            (Method::POST, "/images/load"),
            (Method::PUT, "/containers/web/archive"),
        ] {
            assert!(!takes_json(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn content_types() {
        let json = headers(&[("content-type", "application/json")]);
        assert!(check_json(&json, false).is_ok());
        let charset = headers(&[("content-type", "Application/JSON; charset=utf-8")]);
        assert!(check_json(&charset, false).is_ok());
        assert!(check_json(&headers(&[]), true).is_ok());
        let e = check_json(&headers(&[("content-type", "text/plain")]), false).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "Content-Type specified (text/plain) must be 'application/json'"
        );
        // An empty body passes (the docker CLI's start sends text/plain);
        // a body needs the type.
        assert!(check_json(&headers(&[("content-type", "text/plain")]), true).is_ok());
        let e = check_json(&headers(&[]), false).unwrap_err();
        assert_eq!(
            e.message,
            "Content-Type specified () must be 'application/json'"
        );
    }

    #[test]
    fn limited_bodies() {
        assert_eq!(
            body_limit(&Method::POST, "/containers/create", 10),
            Some(10)
        );
        assert_eq!(
            body_limit(&Method::POST, "/containers/x/start", 10),
            Some(10)
        );
        assert_eq!(body_limit(&Method::PUT, "/containers/x/archive", 10), None);
        assert_eq!(
            body_limit(&Method::PUT, "/containers/n/x/archive/", 10),
            None
        );
        assert_eq!(body_limit(&Method::POST, "/images/load", 10), None);
        assert_eq!(body_limit(&Method::POST, "/images/create", 10), None);
        assert_eq!(body_limit(&Method::POST, "/build", 10), None);
        assert_eq!(too_large(10).status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
