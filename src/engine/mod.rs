//! One engine per node: a keep-alive connection pool for what the manager
//! reads (info, version, containers, images; parsed into bollard's models)
//! and the requests it proxies, a bollard client for the event stream, and
//! a fresh connection for each upgraded (hijacked) request. An engine reports observations; it never decides.

mod addr;
mod pool;

pub use pool::PoolBody;

pub use addr::{BadEngineAddr, Conn, EngineAddr};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use bollard::{ClientVersion, Docker};
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::cluster::{Container, ContainerState, ImageRef, NodeInfo};

/// The largest JSON answer the manager reads from an engine.
const MAX_JSON_BODY: usize = 256 << 20;
/// Seconds the manager waits for an engine to answer one request's headers.
const REQUEST_TIMEOUT_SECS: u64 = 20;

/// Moves its engine's generation on when dropped.
struct Changes<'a>(&'a Engine);

impl Drop for Changes<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

/// Source of engine generations: unique across engines, so that an engine
/// replaced by a new one for the same node never repeats a generation.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

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

/// A Docker Engine the manager talks to.
pub struct Engine {
    /// Where it listens.
    pub addr: EngineAddr,
    /// The address as discovery gave it.
    pub source: String,
    client: tokio::sync::Mutex<Option<Docker>>,
    last_error: Mutex<Option<String>>,
    pool: pool::Pool,
    generation: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("addr", &self.addr).finish()
    }
}

impl Engine {
    /// An engine at `source` (a discovery address); no connection is made yet.
    pub fn new(source: &str) -> Result<Engine, BadEngineAddr> {
        let addr = EngineAddr::parse(source)?;
        Ok(Engine {
            pool: pool::Pool::new(&addr, pool::DEFAULT_IDLE),
            addr,
            source: source.to_string(),
            client: tokio::sync::Mutex::new(None),
            last_error: Mutex::new(None),
            generation: AtomicU64::new(GENERATIONS.fetch_add(1, Ordering::Relaxed)),
        })
    }

    /// The same engine, keeping up to `max_idle` idle connections instead of
    /// one: for a peer that many requests go to at once (a follower's
    /// leader, which every client's request is forwarded to).
    pub fn keeping_idle(mut self, max_idle: usize) -> Engine {
        self.pool = pool::Pool::new(&self.addr, max_idle);
        self
    }

    /// Changes whenever what the engine lists may have changed: after every
    /// request through [`Engine::send`] other than `GET` and `HEAD`, and
    /// whenever the manager sees one of its events ([`Engine::changed`]).
    /// An answer read while the generation stayed the same is still the
    /// engine's answer.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks that the engine's containers may have changed (see
    /// [`Engine::generation`]).
    pub fn changed(&self) {
        self.generation.store(
            GENERATIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
    }

    fn api_err(&self, source: bollard::errors::Error) -> EngineError {
        EngineError::Api {
            addr: self.addr.to_string(),
            source,
        }
    }

    /// The bollard client, connected and version-negotiated on first use.
    pub async fn client(&self) -> Result<Docker, EngineError> {
        let mut guard = self.client.lock().await;
        if let Some(docker) = guard.as_ref() {
            return Ok(docker.clone());
        }
        // Start from a version every engine since 1.24 accepts; negotiation raises it.
        let start = ClientVersion {
            major_version: 1,
            minor_version: 24,
        };
        let docker = match &self.addr {
            EngineAddr::Tcp(hostport) => {
                Docker::connect_with_http(hostport, REQUEST_TIMEOUT_SECS, &start)
            }
            EngineAddr::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, &start)
            }
        }
        .map_err(|e| self.api_err(e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| self.api_err(e))?;
        *guard = Some(docker.clone());
        Ok(docker)
    }

    /// Forgets the client so that the next call reconnects and renegotiates.
    pub async fn reset(&self) {
        *self.client.lock().await = None;
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

    /// Reads `info` and `version` into a node observation stamped `observed_at`.
    pub async fn observe(&self, observed_at: String) -> Result<NodeInfo, EngineError> {
        let (info, version) = futures::try_join!(
            self.get_json::<bollard::models::SystemInfo>("/info"),
            self.get_json::<bollard::models::SystemVersion>("/version"),
        )?;
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
            addr: self.addr.to_string(),
            cpus: info.ncpu.unwrap_or(0),
            memory: info.mem_total.unwrap_or(0),
            labels,
            operating_system: info.operating_system.unwrap_or_default(),
            os_type: info.os_type.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_default(),
            kernel_version: info.kernel_version.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
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
            labels: config
                .labels
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            resources: Some(resources),
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
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
            })
            .collect())
    }

    /// The engine's container and image events: from `since` (the engine's
    /// `timeNano` of an event, as the engine replays its recent ones) or
    /// from now on.
    pub async fn events(
        &self,
        since: Option<i64>,
    ) -> Result<
        impl Stream<Item = Result<bollard::models::EventMessage, EngineError>> + use<>,
        EngineError,
    > {
        let docker = self.client().await?;
        let mut filters = std::collections::HashMap::new();
        filters.insert(
            "type".to_string(),
            vec!["container".to_string(), "image".to_string()],
        );
        let addr = self.addr.to_string();
        Ok(docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                since: since
                    .map(|nanos| format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)),
                ..Default::default()
            }))
            .map(move |item| {
                item.map_err(|source| EngineError::Api {
                    addr: addr.clone(),
                    source,
                })
            }))
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

    /// One request on the keep-alive pool (`body` sent as JSON); the answer's
    /// body when its status is a success, else the engine's API error.
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, EngineError> {
        let pool_err = |message: String| EngineError::Pool {
            addr: self.addr.to_string(),
            message,
        };
        let mut request = Request::builder().method(method.clone()).uri(path);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| pool_err(e.to_string()))?;
        let response = tokio::time::timeout(
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
            self.send(request),
        )
        .await
        .map_err(|_| {
            pool_err(format!(
                "no answer to {method} {path} in {REQUEST_TIMEOUT_SECS} s"
            ))
        })??;
        let (parts, body) = self.read_whole(response, &method, path).await?.into_parts();
        if !parts.status.is_success() {
            return Err(self.status_error(parts.status, &body));
        }
        Ok(body)
    }

    /// Sends `request` and reads its whole answer (at most 256 MiB),
    /// whatever its status.
    pub async fn exchange<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<bytes::Bytes>, EngineError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = request.method().clone();
        let path = request.uri().to_string();
        let response = self.send(request).await?;
        self.read_whole(response, &method, &path).await
    }

    /// Reads the whole body of the answer to `method path`.
    async fn read_whole(
        &self,
        response: Response<PoolBody>,
        method: &hyper::Method,
        path: &str,
    ) -> Result<Response<bytes::Bytes>, EngineError> {
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_JSON_BODY)
            .collect()
            .await
            .map_err(|e| EngineError::Pool {
                addr: self.addr.to_string(),
                message: format!("reading the answer to {method} {path}: {e}"),
            })?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }

    /// The engine's error answer (`status`, `body`) as an API error: its
    /// own `message`, else the body's text.
    pub fn status_error(&self, status: hyper::StatusCode, body: &[u8]) -> EngineError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
        self.api_err(bollard::errors::Error::DockerResponseServerError {
            status_code: status.as_u16(),
            message,
        })
    }

    /// Sends one raw HTTP request. Requests asking for an upgrade (attach,
    /// exec) get a fresh connection of their own; the others share the
    /// engine's keep-alive pool.
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<PoolBody>, EngineError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Once answered, failed or given up, whatever the request changes is
        // done or under way: the generation moves on.
        let reads_only = matches!(*request.method(), hyper::Method::GET | hyper::Method::HEAD);
        let _changes = if reads_only {
            None
        } else {
            Some(Changes(self))
        };
        if request.headers().contains_key(hyper::header::UPGRADE) {
            self.send_alone(request)
                .await
                .map(|response| response.map(PoolBody::unpooled))
        } else {
            self.send_pooled(request).await
        }
    }

    /// Sends one request on the engine's keep-alive pool.
    async fn send_pooled<B>(&self, request: Request<B>) -> Result<Response<PoolBody>, EngineError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .entry(hyper::header::HOST)
            .or_insert(hyper::header::HeaderValue::from_static("docker"));
        let request = Request::from_parts(parts, axum::body::Body::new(body));
        self.pool
            .request(request)
            .await
            .map_err(|e| EngineError::Pool {
                addr: self.addr.to_string(),
                message: innermost(&e),
            })
    }

    /// Sends one request on a fresh connection, which stays usable for an
    /// upgrade of the returned response.
    async fn send_alone<B>(
        &self,
        mut request: Request<B>,
    ) -> Result<Response<Incoming>, EngineError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = self.addr.to_string();
        let conn = self
            .addr
            .dial()
            .await
            .map_err(|source| EngineError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|source| EngineError::Http {
                addr: addr.clone(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "engine connection ended");
            }
        });
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        sender
            .send_request(request)
            .await
            .map_err(|source| EngineError::Http { addr, source })
    }
}

/// The innermost cause of a pooled request's failure (e.g. "Connection
/// refused"), which outer messages hide.
fn innermost(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = inner.to_string();
        source = inner.source();
    }
    message
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

    /// `n` GETs to `engine` at once, each answer read to its end.
    async fn burst(engine: &Engine, n: usize) {
        let requests = (0..n).map(|_| async {
            let request = Request::get("/list")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            let answer = engine.send(request).await.expect("answer");
            http_body_util::BodyExt::collect(answer.into_body())
                .await
                .expect("body");
        });
        futures::future::join_all(requests).await;
    }

    #[tokio::test]
    async fn an_engine_keeping_more_idle_connections_reuses_them_for_bursts() {
        use std::sync::atomic::Ordering;
        let (addr, accepted) = pool::tests::server().await;
        let engine = Engine::new(&addr.to_string())
            .expect("address")
            .keeping_idle(8);
        for _ in 0..3 {
            burst(&engine, 8).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8);
        // An engine's default pool keeps one: the next bursts connect again.
        let (addr, accepted) = pool::tests::server().await;
        let engine = Engine::new(&addr.to_string()).expect("address");
        for _ in 0..3 {
            burst(&engine, 8).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8 + 7 + 7);
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
