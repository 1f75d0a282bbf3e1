//! One engine per node: an [`Upstream`] client of its API (plain or TLS: a
//! keep-alive pool for what the manager reads, parsed into bollard's
//! models, the requests it proxies and the event stream; a fresh
//! connection for each upgraded request), and the last failure seen. An
//! engine reports observations; it never decides.

use std::sync::Mutex;

use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::{Request, Response};

use crate::cluster::{Container, ContainerState, ImageRef, NodeInfo};
use crate::upstream::{Addr, BadAddr, PoolBody, Upstream, UpstreamError};

/// A failure talking to an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The engine.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP failed mid-request.
    #[error("engine {addr}: {source}")]
    Http {
        /// The engine.
        addr: String,
        /// Why.
        source: hyper::Error,
    },
    /// A pooled request failed (connecting, or mid-request).
    #[error("engine {addr}: {message}")]
    Pool {
        /// The engine.
        addr: String,
        /// Why.
        message: String,
    },
    /// The engine API answered an error, or bollard failed.
    #[error("engine {addr}: {source}")]
    Api {
        /// The engine.
        addr: String,
        /// Why.
        source: bollard::errors::Error,
    },
}

impl EngineError {
    /// The HTTP status the engine answered, when it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            EngineError::Api {
                source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }

    /// The engine's own message for an API error, else the whole error.
    pub fn engine_message(&self) -> String {
        match self {
            EngineError::Api {
                source: bollard::errors::Error::DockerResponseServerError { message, .. },
                ..
            } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl From<UpstreamError> for EngineError {
    /// The same failure, in the words engines' errors have always used (an
    /// error status becomes the API error bollard would report).
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Connect { addr, source } => EngineError::Connect { addr, source },
            UpstreamError::Http { addr, source } => EngineError::Http { addr, source },
            UpstreamError::Pool { addr, message } => EngineError::Pool { addr, message },
            UpstreamError::Status {
                addr,
                status,
                message,
            } => EngineError::Api {
                addr,
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: status,
                    message,
                },
            },
        }
    }
}

/// A Docker Engine the manager talks to.
pub struct Engine {
    /// The address as discovery gave it.
    pub source: String,
    http: Upstream,
    last_error: Mutex<Option<String>>,
    /// The API version `/version` last gave, with the engine ID and server
    /// version `/info` gave with it (see [`Engine::observe`]).
    api_version: Mutex<Option<KnownVersion>>,
}

/// An engine's API version, and the engine and release it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownVersion {
    engine_id: String,
    server_version: String,
    api_version: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("addr", self.addr()).finish()
    }
}

impl Engine {
    /// An engine at `source` (a discovery address); no connection is made yet.
    pub fn new(source: &str) -> Result<Engine, BadAddr> {
        Engine::connecting(source, None)
    }

    /// An engine at `source`, reached over TLS with `tls` when given.
    pub fn connecting(
        source: &str,
        tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Engine, BadAddr> {
        Ok(Engine {
            http: Upstream::connecting(source, tls)?,
            source: source.to_string(),
            last_error: Mutex::new(None),
            api_version: Mutex::new(None),
        })
    }

    /// Where the engine listens.
    pub fn addr(&self) -> &Addr {
        self.http.addr()
    }

    /// The engine's HTTP client: proxied requests go through it.
    pub fn http(&self) -> &Upstream {
        &self.http
    }

    /// Changes whenever what the engine lists may have changed: after every
    /// request sent through it other than `GET` and `HEAD`, and whenever
    /// the manager sees one of its events ([`Engine::changed`]). An answer
    /// read while the generation stayed the same is still the engine's
    /// answer.
    pub fn generation(&self) -> u64 {
        self.http.generation()
    }

    /// Marks that the engine's containers may have changed (see
    /// [`Engine::generation`]).
    pub fn changed(&self) {
        self.http.changed()
    }

    fn api_err(&self, source: bollard::errors::Error) -> EngineError {
        EngineError::Api {
            addr: self.addr().to_string(),
            source,
        }
    }

    /// Records the last failure (shown in `docker info` for engines that never answered).
    pub fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// The last recorded failure.
    pub fn error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads `info` into a node observation stamped `observed_at`, with the
    /// API version of `version`. That one is read only when the engine or
    /// its release is new to this client: an engine's API version follows
    /// from its release, and a refresh of each of thousands of nodes every
    /// 30-60 s otherwise sends a second request, on a second connection
    /// (one is kept idle per engine).
    pub async fn observe(&self, observed_at: String) -> Result<NodeInfo, EngineError> {
        let info = self
            .get_json::<bollard::models::SystemInfo>("/info")
            .await?;
        let id = info.id.clone().unwrap_or_default();
        let server_version = info.server_version.clone().unwrap_or_default();
        let known = self
            .api_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|k| k.engine_id == id && k.server_version == server_version);
        let api_version = match known {
            Some(known) => known.api_version,
            None => {
                let version = self
                    .get_json::<bollard::models::SystemVersion>("/version")
                    .await?;
                let api_version = version.api_version.unwrap_or_default();
                *self.api_version.lock().unwrap_or_else(|e| e.into_inner()) = Some(KnownVersion {
                    engine_id: id,
                    server_version,
                    api_version: api_version.clone(),
                });
                api_version
            }
        };
        let labels = info
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l, String::new()),
            })
            .collect();
        Ok(NodeInfo {
            id: info.id.unwrap_or_default(),
            hostname: info.name.unwrap_or_default(),
            addr: self.addr().to_string(),
            cpus: info.ncpu.unwrap_or(0),
            memory: info.mem_total.unwrap_or(0),
            labels,
            operating_system: info.operating_system.unwrap_or_default(),
            os_type: info.os_type.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_default(),
            kernel_version: info.kernel_version.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
            api_version,
            observed_at,
        })
    }

    /// Every container on the engine, stopped ones included.
    pub async fn containers(&self, node: &str) -> Result<Vec<Container>, EngineError> {
        let list = self
            .get_json::<Vec<bollard::models::ContainerSummary>>("/containers/json?all=1")
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let names = c.names.unwrap_or_default();
                Some(Container {
                    id: c.id?,
                    node: node.to_string(),
                    name: primary_name(&names),
                    image: c.image.unwrap_or_default(),
                    state: ContainerState::parse(
                        &c.state.map(|s| s.to_string()).unwrap_or_default(),
                    ),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    resources: None,
                    command: c.command.unwrap_or_default(),
                    created: c.created.unwrap_or(0),
                })
            })
            .collect())
    }

    /// One container, or `None` when the engine does not know it.
    pub async fn container(&self, node: &str, id: &str) -> Result<Option<Container>, EngineError> {
        let path = format!("/containers/{}/json", urlencoding_path(id));
        let inspect = match self
            .get_json::<bollard::models::ContainerInspectResponse>(&path)
            .await
        {
            Ok(inspect) => inspect,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let config = inspect.config.unwrap_or_default();
        let resources = crate::cluster::resources::from_host_config(
            inspect.host_config.as_ref(),
            config.exposed_ports.as_deref().unwrap_or(&[]),
        );
        let state = inspect
            .state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        // As the engine's list shows it: the path, then the arguments.
        let command = std::iter::once(inspect.path.unwrap_or_default())
            .chain(inspect.args.unwrap_or_default())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let created = inspect
            .created
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
            .map_or(0, |at| at.timestamp());
        Ok(inspect.id.map(|id| Container {
            id,
            node: node.to_string(),
            name: inspect
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            state: ContainerState::parse(&state),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            resources: Some(resources),
            command,
            created,
        }))
    }

    /// The images on the engine.
    pub async fn images(&self) -> Result<Vec<ImageRef>, EngineError> {
        let list = self
            .get_json::<Vec<bollard::models::ImageSummary>>("/images/json")
            .await?;
        Ok(list
            .into_iter()
            .map(|i| ImageRef {
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .chain(i.repo_digests)
                    .filter(|t| t != "<none>:<none>" && t != "<none>@<none>")
                    .collect(),
            })
            .collect())
    }

    /// The engine's container and image events: from `since` (the engine's
    /// `timeNano` of an event, as the engine replays its recent ones) or
    /// from now on. The request is sent (and refused, if the engine does
    /// not answer) before this returns; the stream ends when the engine
    /// closes it or a message does not parse.
    pub async fn events(
        &self,
        since: Option<i64>,
    ) -> Result<
        impl Stream<Item = Result<bollard::models::EventMessage, EngineError>> + use<>,
        EngineError,
    > {
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("filters", r#"{"type":["container","image"]}"#);
            if let Some(nanos) = since {
                let since = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
                query.append_pair("since", &since);
            }
            query.finish()
        };
        let request = Request::get(format!("/events?{query}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| self.pool_error(e.to_string()))?;
        let response = self.send(request).await?;
        if !response.status().is_success() {
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.status_error(parts.status, &body));
        }
        let addr = self.addr().to_string();
        Ok(json_lines(response.into_body()).map(move |item| {
            item.map_err(|message| EngineError::Pool {
                addr: addr.clone(),
                message,
            })
        }))
    }

    fn pool_error(&self, message: String) -> EngineError {
        EngineError::Pool {
            addr: self.addr().to_string(),
            message,
        }
    }

    /// `GET path` on the keep-alive pool, the JSON answer parsed into `T`
    /// (a bollard model). An error status becomes the engine's API error, as
    /// bollard reports it. (bollard's own client keeps no idle connection:
    /// every call of it would open one.)
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, EngineError> {
        let body = self.call(hyper::Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|err| self.api_err(err.into()))
    }

    /// One request on the keep-alive pool (see [`Upstream::call`]).
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, EngineError> {
        Ok(self.http.call(method, path, body).await?)
    }

    /// Sends `request` and reads its whole answer (see [`Upstream::exchange`]).
    pub async fn exchange<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<bytes::Bytes>, EngineError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Ok(self.http.exchange(request).await?)
    }

    /// The engine's error answer (`status`, `body`) as its API error.
    pub fn status_error(&self, status: hyper::StatusCode, body: &[u8]) -> EngineError {
        self.http.status_error(status, body).into()
    }

    /// Sends one raw HTTP request (see [`Upstream::send`]).
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<PoolBody>, EngineError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Ok(self.http.send(request).await?)
    }
}

/// The first error in a whole progress answer (JSON lines, as a pull or a
/// load streams them): an engine answers such a call `200` and reports a
/// failure as a message `{"error": ...}` in the stream.
pub fn stream_error(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|m| m.get("error").and_then(|e| e.as_str()).map(str::to_string))
}

/// The JSON messages of a stream that carries one per line (Docker's
/// `/events`), parsed as they arrive.
pub fn json_lines<T, B>(body: B) -> impl Stream<Item = Result<T, String>>
where
    T: serde::de::DeserializeOwned,
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    futures::stream::unfold(
        (body, Vec::<u8>::new(), false),
        |(mut body, mut buf, done)| async move {
            loop {
                if done {
                    return None;
                }
                if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(match serde_json::from_slice(&line) {
                        Ok(message) => (Ok(message), (body, buf, false)),
                        Err(e) => (Err(format!("unreadable event: {e}")), (body, buf, true)),
                    });
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(&data);
                        }
                    }
                    Some(Err(e)) => return Some((Err(e.to_string()), (body, buf, true))),
                    // A last message without its newline.
                    None if !buf.iter().all(u8::is_ascii_whitespace) => {
                        let line = std::mem::take(&mut buf);
                        let item = serde_json::from_slice(&line)
                            .map_err(|e| format!("unreadable event: {e}"));
                        return Some((item, (body, buf, true)));
                    }
                    None => return None,
                }
            }
        },
    )
}

/// `id` as one path segment: container IDs and names need no escaping,
/// anything else is percent-encoded.
fn urlencoding_path(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The container's own name among the engine's `Names` (`/web`, not the
/// link alias `/other/web`), without the leading slash.
pub fn primary_name(names: &[String]) -> String {
    names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        .find(|n| !n.contains('/'))
        .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_read_line_by_line_whatever_the_chunks() {
        // Two messages split across chunks, one chunk holding the end of
        // one and the start of the next, and a last one without newline.
        let chunks = ["{\"a\":1}\n{\"a\"", ":2}\n", "\n{\"a\":3", "}"];
        let body = http_body_util::StreamBody::new(futures::stream::iter(chunks.map(|c| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(c)))
        })));
        let read: Vec<Result<serde_json::Value, String>> = json_lines(body).collect().await;
        let values: Vec<i64> = read
            .iter()
            .map(|m| m.as_ref().expect("message")["a"].as_i64().expect("a"))
            .collect();
        assert_eq!(values, [1, 2, 3]);
        // A line that is not JSON ends the stream with an error.
        let body = http_body_util::Full::new(bytes::Bytes::from("{\"a\":1}\nnot json\n{}\n"));
        let read: Vec<Result<serde_json::Value, String>> = json_lines(body).collect().await;
        assert_eq!(read.len(), 2);
        assert!(read[1]
            .as_ref()
            .is_err_and(|e| e.contains("unreadable event")));
    }

    #[tokio::test]
    async fn the_api_version_is_read_again_only_for_another_engine_or_release() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // An engine whose ID and release the test changes, counting the
        // `/version` requests it answers.
        #[derive(Default)]
        struct Fake {
            id_and_release: Mutex<(String, String)>,
            versions_read: AtomicUsize,
        }
        let fake = Arc::new(Fake::default());
        let set = |id: &str, release: &str| {
            *fake.id_and_release.lock().expect("lock") = (id.to_string(), release.to_string());
        };
        set("ENGINE-A", "20.10.5");
        let info = {
            let fake = fake.clone();
            move || {
                let (id, release) = fake.id_and_release.lock().expect("lock").clone();
                async move { axum::Json(serde_json::json!({ "ID": id, "ServerVersion": release })) }
            }
        };
        let version = {
            let fake = fake.clone();
            move || {
                let (_, release) = fake.id_and_release.lock().expect("lock").clone();
                fake.versions_read.fetch_add(1, Ordering::SeqCst);
                async move {
                    axum::Json(serde_json::json!({ "ApiVersion": format!("api of {release}") }))
                }
            }
        };
        let app = axum::Router::new()
            .route("/info", axum::routing::get(info))
            .route("/version", axum::routing::get(version));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let engine = Engine::new(&format!("tcp://{addr}")).expect("address");
        let observe = || engine.observe("now".to_string());
        let read = || fake.versions_read.load(Ordering::SeqCst);

        let first = observe().await.expect("observed");
        assert_eq!(
            (first.id.as_str(), first.api_version.as_str()),
            ("ENGINE-A", "api of 20.10.5")
        );
        assert_eq!(read(), 1);
        // The same engine and release: `/version` is not asked again.
        for _ in 0..3 {
            assert_eq!(
                observe().await.expect("observed").api_version,
                "api of 20.10.5"
            );
        }
        assert_eq!(read(), 1);
        // Upgraded in place (same ID, another release): asked again.
        set("ENGINE-A", "24.0.7");
        assert_eq!(
            observe().await.expect("observed").api_version,
            "api of 24.0.7"
        );
        assert_eq!(read(), 2);
        // Another engine at the address, even of the same release.
        set("ENGINE-B", "24.0.7");
        let other = observe().await.expect("observed");
        assert_eq!(
            (other.id.as_str(), other.api_version.as_str()),
            ("ENGINE-B", "api of 24.0.7")
        );
        assert_eq!(read(), 3);
        assert_eq!(
            observe().await.expect("observed").api_version,
            "api of 24.0.7"
        );
        assert_eq!(read(), 3);
    }

    #[test]
    fn primary_name_skips_link_aliases() {
        let names = vec!["/other/db".to_string(), "/db".to_string()];
        assert_eq!(primary_name(&names), "db");
        assert_eq!(primary_name(&[]), "");
    }

    #[tokio::test]
    async fn changing_requests_move_the_generation_on_even_when_they_fail() {
        // Nothing listens on port 1: every request fails to connect.
        let engine = Engine::new("tcp://127.0.0.1:1").expect("address");
        let other = Engine::new("tcp://127.0.0.1:1").expect("address");
        assert_ne!(engine.generation(), other.generation(), "unique per engine");
        let request = |method: hyper::Method| {
            Request::builder()
                .method(method)
                .uri("/containers/x/stop")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request")
        };
        let before = engine.generation();
        assert!(engine.send(request(hyper::Method::GET)).await.is_err());
        assert!(engine.send(request(hyper::Method::HEAD)).await.is_err());
        assert_eq!(engine.generation(), before, "reads change nothing");
        assert!(engine.send(request(hyper::Method::POST)).await.is_err());
        let after = engine.generation();
        assert_ne!(after, before);
        engine.changed();
        assert_ne!(engine.generation(), after);
    }
}
