//! An HTTP/1 client of one server the manager sends requests on to: an
//! engine's API, or another manager's (a follower forwards to its leader,
//! a joining manager asks a member, `swarmctl` asks a manager).
//!
//! Plain requests share a keep-alive pool (`pool.rs`); a request asking for
//! an upgrade (attach, exec start) gets a connection of its own, which
//! stays usable for the upgraded stream. The client counts requests that
//! may have changed something on the server ([`Upstream::generation`]), so
//! an answer read while the count stayed the same is still the server's
//! answer. [`crate::engine::Engine`] is this client plus what is particular
//! to engines (bollard for events, health).

mod addr;
mod pool;

pub use addr::{Addr, BadAddr, Conn, Dialer};
pub use pool::PoolBody;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The largest answer read whole (a JSON answer, a create's).
const MAX_BODY: usize = 256 << 20;
/// Seconds [`Upstream::call`] waits for a server to answer one request's headers.
pub const REQUEST_TIMEOUT_SECS: u64 = 20;

/// Source of generations: unique across clients, so that a client replaced
/// by a new one for the same server never repeats a generation.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// A failure talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The server could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP failed mid-request.
    #[error("{addr}: {source}")]
    Http {
        /// The server.
        addr: String,
        /// Why.
        source: hyper::Error,
    },
    /// A pooled request failed (connecting, or mid-request).
    #[error("{addr}: {message}")]
    Pool {
        /// The server.
        addr: String,
        /// Why.
        message: String,
    },
    /// The server answered an error status.
    #[error("{addr} answered {status}: {message}")]
    Status {
        /// The server.
        addr: String,
        /// Its status.
        status: u16,
        /// Its message (`{"message": ...}`, else the body's text).
        message: String,
    },
}

/// A client of one server.
pub struct Upstream {
    addr: Addr,
    dialer: Dialer,
    pool: pool::Pool,
    generation: AtomicU64,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Moves its client's generation on when dropped.
struct Changes<'a>(&'a Upstream);

impl Drop for Changes<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

impl Upstream {
    /// A client of the server at `addr` (`tcp://HOST:PORT`, `HOST:PORT` or
    /// `unix:///path`), keeping one idle connection; none is made yet.
    pub fn new(addr: &str) -> Result<Upstream, BadAddr> {
        Ok(Upstream::at(Addr::parse(addr)?))
    }

    /// A client of the server at `addr`, over TLS with `tls` when given
    /// (`addr` must then be a TCP address whose host the server's
    /// certificate names).
    pub fn connecting(
        addr: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Upstream, BadAddr> {
        let addr = Addr::parse(addr)?;
        let dialer = match tls {
            Some(config) => Dialer::tls(addr, config.clone())?,
            None => Dialer::plain(addr),
        };
        Ok(Upstream::with(dialer))
    }

    /// A client of the server at `addr`.
    pub fn at(addr: Addr) -> Upstream {
        Upstream::with(Dialer::plain(addr))
    }

    /// A client of the server `dialer` reaches.
    pub fn with(dialer: Dialer) -> Upstream {
        Upstream {
            pool: pool::Pool::new(&dialer, pool::DEFAULT_IDLE),
            addr: dialer.addr().clone(),
            dialer,
            generation: AtomicU64::new(GENERATIONS.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// The same client, keeping up to `max_idle` idle connections instead
    /// of one: for a server that many requests go to at once (a follower's
    /// leader, which every client's request is forwarded to).
    pub fn keeping_idle(mut self, max_idle: usize) -> Upstream {
        self.pool = pool::Pool::new(&self.dialer, max_idle);
        self
    }

    /// Where the server listens.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Changes whenever what the server lists may have changed: after every
    /// request through [`Upstream::send`] other than `GET` and `HEAD`, and
    /// whenever [`Upstream::changed`] says so.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks that the server's state may have changed (see
    /// [`Upstream::generation`]).
    pub fn changed(&self) {
        self.generation.store(
            GENERATIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
    }

    /// Sends one raw HTTP request. Requests asking for an upgrade (attach,
    /// exec) get a fresh connection of their own; the others share the
    /// keep-alive pool.
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<PoolBody>, UpstreamError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Once answered, failed or given up, whatever the request changes is
        // done or under way: the generation moves on.
        let reads_only = matches!(*request.method(), Method::GET | Method::HEAD);
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

    /// Sends `request` and reads its whole answer (at most 256 MiB),
    /// whatever its status.
    pub async fn exchange<B>(&self, request: Request<B>) -> Result<Response<Bytes>, UpstreamError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = request.method().clone();
        let path = request.uri().to_string();
        let response = self.send(request).await?;
        self.read_whole(response, &method, &path).await
    }

    /// One request on the keep-alive pool (`body` sent as JSON), its
    /// headers awaited at most 20 s; the answer's body when its status is a
    /// success, else the server's error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, UpstreamError> {
        let pool_err = |message: String| UpstreamError::Pool {
            addr: self.addr.to_string(),
            message,
        };
        let mut request = Request::builder().method(method.clone()).uri(path);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(Bytes::from(
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

    /// `GET path` on the keep-alive pool, the JSON answer parsed into `T`.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, UpstreamError> {
        let body = self.call(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| UpstreamError::Pool {
            addr: self.addr.to_string(),
            message: format!("invalid JSON answer to GET {path}: {e}"),
        })
    }

    /// The server's error answer (`status`, `body`) as an error: its own
    /// `message`, else the body's text.
    pub fn status_error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        UpstreamError::Status {
            addr: self.addr.to_string(),
            status: status.as_u16(),
            message: error_message(body),
        }
    }

    /// Reads the whole body of the answer to `method path`.
    async fn read_whole(
        &self,
        response: Response<PoolBody>,
        method: &Method,
        path: &str,
    ) -> Result<Response<Bytes>, UpstreamError> {
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| UpstreamError::Pool {
                addr: self.addr.to_string(),
                message: format!("reading the answer to {method} {path}: {e}"),
            })?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }

    /// Sends one request on the keep-alive pool.
    async fn send_pooled<B>(&self, request: Request<B>) -> Result<Response<PoolBody>, UpstreamError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
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
            .map_err(|e| UpstreamError::Pool {
                addr: self.addr.to_string(),
                message: innermost(&e),
            })
    }

    /// Sends one request on a fresh connection, which stays usable for an
    /// upgrade of the returned response.
    async fn send_alone<B>(
        &self,
        mut request: Request<B>,
    ) -> Result<Response<Incoming>, UpstreamError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = self.addr.to_string();
        let conn = self
            .dialer
            .dial()
            .await
            .map_err(|source| UpstreamError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|source| UpstreamError::Http {
                addr: addr.clone(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        });
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        sender
            .send_request(request)
            .await
            .map_err(|source| UpstreamError::Http { addr, source })
    }
}

/// The message of an error answer: Docker's `{"message": ...}`, else the
/// body's text.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` GETs to `upstream` at once, each answer read to its end.
    async fn burst(upstream: &Upstream, n: usize) {
        let requests = (0..n).map(|_| async {
            let request = Request::get("/list")
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("request");
            let answer = upstream.send(request).await.expect("answer");
            BodyExt::collect(answer.into_body()).await.expect("body");
        });
        futures::future::join_all(requests).await;
    }

    #[tokio::test]
    async fn a_client_keeping_more_idle_connections_reuses_them_for_bursts() {
        use std::sync::atomic::Ordering;
        let (addr, accepted) = pool::tests::server().await;
        let upstream = Upstream::at(addr).keeping_idle(8);
        for _ in 0..3 {
            burst(&upstream, 8).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8);
        // The default pool keeps one: the next bursts connect again.
        let (addr, accepted) = pool::tests::server().await;
        let upstream = Upstream::at(addr);
        for _ in 0..3 {
            burst(&upstream, 8).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8 + 7 + 7);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(error_message(b"  page not found\n"), "page not found");
    }
}
