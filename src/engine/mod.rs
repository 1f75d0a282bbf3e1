//! One engine per node: an [`Upstream`] client of its API (a keep-alive
//! pool for what the manager reads, parsed into bollard's models, and the
//! requests it proxies; a fresh connection for each upgraded request), a
//! bollard client for the event stream, and the last failure seen. An
//! engine reports observations; it never decides.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bollard::query_parameters::EventsOptions;
use bollard::{ClientVersion, Docker};
use futures::{Stream, StreamExt};
use hyper::{Request, Response};

use crate::cluster::{Container, ContainerState, ImageRef, NodeInfo};
use crate::upstream::{Addr, BadAddr, PoolBody, Upstream, UpstreamError, REQUEST_TIMEOUT_SECS};

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
    client: tokio::sync::Mutex<Option<Docker>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("addr", self.addr()).finish()
    }
}

impl Engine {
    /// An engine at `source` (a discovery address); no connection is made yet.
    pub fn new(source: &str) -> Result<Engine, BadAddr> {
        Ok(Engine {
            http: Upstream::new(source)?,
            source: source.to_string(),
            client: tokio::sync::Mutex::new(None),
            last_error: Mutex::new(None),
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
        let docker = match self.addr() {
            Addr::Tcp(hostport) => {
                Docker::connect_with_http(hostport, REQUEST_TIMEOUT_SECS, &start)
            }
            Addr::Unix(path) => {
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
        let addr = self.addr().to_string();
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
