//! A keep-alive connection pool per server (an engine, the leader) for plain (non-upgraded)
//! requests, over hyper's HTTP/1 connections and our own dialer (TCP or
//! unix socket), so proxied calls and list fan-outs do not open a
//! connection each.
//!
//! A connection goes back to the pool the moment its answer has been read
//! to the end (at once for an answer without a body), so the next request
//! finds it. (hyper-util's pooling client put it back from a task of its
//! own, a moment later, and raced a new connection against the wait: a
//! `docker run -d`, whose start follows its create at once, opened 1.6
//! connections to the engine.)

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::addr::Dialer;

/// Idle connections kept per server unless asked otherwise: a manager of a
/// thousand engines must not hold thousands of idle sockets and their
/// buffers (with 4 idle per engine the standard scale run peaked at
/// 306-312 MiB, with one at 248-251 MiB). Requests to one engine mostly
/// come one after the other.
pub const DEFAULT_IDLE: usize = 1;

/// An idle connection older than this is closed rather than reused.
const IDLE_FOR: Duration = Duration::from_secs(10);

/// Read buffer of a connection: hyper's adaptive buffer would grow to fit
/// the largest answer (a container list) and keep that size.
const READ_BUFFER: usize = 8 * 1024;

/// The body type requests are sent with.
type RequestBody = axum::body::Body;

/// Why a pooled request failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The server could not be reached.
    #[error("{0}")]
    Connect(#[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[source] hyper::Error),
}

/// One server's pool.
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    dialer: Dialer,
    max_idle: usize,
    idle: Mutex<Vec<(SendRequest<RequestBody>, Instant)>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SendRequest<RequestBody>, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is not too old.
    fn take(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.lock();
        idle.retain(|(sender, since)| since.elapsed() < IDLE_FOR && !sender.is_closed());
        idle.pop().map(|(sender, _)| sender)
    }

    /// A connection whose answer was read to the end: kept if there is room.
    fn put(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push((sender, Instant::now()));
        }
    }
}

impl Pool {
    /// A pool of connections `dialer` opens, keeping up to `max_idle` idle
    /// ones; no connection is made yet.
    pub fn new(dialer: &Dialer, max_idle: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                dialer: dialer.clone(),
                max_idle,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection,
    /// or a new one. A request an idle connection could not take (closed by
    /// the server meanwhile) goes out on a new one; nothing is sent twice.
    pub async fn request(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<PoolBody>, PoolError> {
        loop {
            let (mut sender, reused) = match self.shared.take() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, inner) = response.into_parts();
                    let mut body = PoolBody {
                        inner,
                        home: Some((sender, self.shared.clone())),
                    };
                    if body.inner.is_end_stream() {
                        body.release();
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the connection had closed.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
    }

    /// Opens a new connection.
    async fn connect(&self) -> Result<SendRequest<RequestBody>, PoolError> {
        let stream = self
            .shared
            .dialer
            .dial()
            .await
            .map_err(PoolError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .read_buf_exact_size(Some(READ_BUFFER))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "pooled connection ended");
            }
        });
        Ok(sender)
    }
}

/// A server's answer body. Read to its end, it puts its connection back
/// into the pool; dropped before, the connection is closed.
pub struct PoolBody {
    inner: Incoming,
    home: Option<(SendRequest<RequestBody>, Arc<Shared>)>,
}

impl std::fmt::Debug for PoolBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBody")
            .field("pooled", &self.home.is_some())
            .finish()
    }
}

impl PoolBody {
    /// A body whose connection is not pooled (an upgraded request's).
    pub fn unpooled(inner: Incoming) -> PoolBody {
        PoolBody { inner, home: None }
    }

    fn release(&mut self) {
        if let Some((sender, shared)) = self.home.take() {
            shared.put(sender);
        }
    }
}

impl Body for PoolBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => self.home = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::upstream::Addr;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server on a free port counting its connections; each answers
    /// `/empty` with 204 and anything else with a small body.
    pub(in crate::upstream) async fn server() -> (Addr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(|request: Request<Incoming>| async move {
                            let body = if request.uri().path() == "/empty" {
                                http_body_util::Full::new(Bytes::new())
                            } else {
                                http_body_util::Full::new(Bytes::from_static(b"[1,2,3]"))
                            };
                            let status = if request.uri().path() == "/empty" {
                                204
                            } else {
                                200
                            };
                            Response::builder().status(status).body(body)
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let addr = Addr::parse(&format!("tcp://{addr}")).expect("engine address");
        (addr, accepted)
    }

    fn get(path: &str) -> Request<RequestBody> {
        Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(RequestBody::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn one_connection_serves_requests_one_after_the_other() {
        let (addr, accepted) = server().await;
        let pool = Pool::new(&Dialer::plain(addr), DEFAULT_IDLE);
        for i in 0..20 {
            let path = if i % 2 == 0 { "/list" } else { "/empty" };
            let response = pool.request(get(path)).await.expect("answer");
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(body.is_empty(), path == "/empty");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Concurrent requests each get a connection; one stays idle.
        let (a, b) = tokio::join!(pool.request(get("/list")), pool.request(get("/list")));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        drop(a.into_body().collect().await.expect("a body"));
        drop(b.into_body().collect().await.expect("b body"));
        assert_eq!(pool.shared.lock().len(), DEFAULT_IDLE);
        // A body dropped before its end takes its connection with it.
        let unread = pool.request(get("/list")).await.expect("answer");
        drop(unread);
        assert!(pool.shared.lock().is_empty());
    }

    /// `n` requests to `pool` at once, then each answer read to its end.
    async fn burst(pool: &Pool, n: usize) {
        let answers = futures::future::join_all((0..n).map(|_| pool.request(get("/list")))).await;
        for answer in answers {
            drop(
                answer
                    .expect("answer")
                    .into_body()
                    .collect()
                    .await
                    .expect("body"),
            );
        }
    }

    #[tokio::test]
    async fn a_larger_pool_keeps_concurrent_connections_for_the_next_burst() {
        let (addr, accepted) = server().await;
        let pool = Pool::new(&Dialer::plain(addr), 4);
        for round in 1..=3 {
            burst(&pool, 4).await;
            assert_eq!(pool.shared.lock().len(), 4, "burst {round}");
            // Only the first burst connects: the others find four idle.
            assert_eq!(accepted.load(Ordering::SeqCst), 4, "burst {round}");
        }
        // More at once than it keeps: the extra connections are closed.
        burst(&pool, 6).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 6);
        assert_eq!(pool.shared.lock().len(), 4);
    }

    #[tokio::test]
    async fn unreachable_server_fails_to_connect() {
        let addr = Addr::parse("tcp://127.0.0.1:1").expect("address");
        let err = Pool::new(&Dialer::plain(addr), DEFAULT_IDLE)
            .request(get("/x"))
            .await
            .expect_err("refused");
        assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    }
}
