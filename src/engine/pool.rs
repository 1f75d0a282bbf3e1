//! A keep-alive connection pool per engine for plain (non-upgraded)
//! requests: hyper-util's pooling client over our own dialer (TCP or unix
//! socket), so proxied calls and list fan-outs do not open a connection each.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::addr::{Conn, EngineAddr};

/// One pooled connection to an engine.
pub struct PooledConn(TokioIo<Conn>);

impl Connection for PooledConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for PooledConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PooledConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Dials the engine whatever the request URI says (one pool per engine).
#[derive(Clone)]
pub struct Dialer(pub EngineAddr);

impl tower::Service<hyper::Uri> for Dialer {
    type Response = PooledConn;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<PooledConn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let addr = self.0.clone();
        Box::pin(async move {
            let conn = tokio::time::timeout(super::CONNECT_TIMEOUT, addr.dial())
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            Ok(PooledConn(TokioIo::new(conn)))
        })
    }
}

/// The pooling client of one engine.
pub type Pool = hyper_util::client::legacy::Client<Dialer, axum::body::Body>;

/// A pool for `addr`: at most one idle connection per engine, closed after
/// 10 s (a manager of a thousand engines must not hold thousands of idle
/// sockets and their buffers: with 4 idle per engine the standard scale run
/// kept 4,000 and peaked at 306-312 MiB, with one at 248-251 MiB; a `docker
/// run -d` now costs an engine two requests, which one connection serves). Reads are 8 KiB: hyper's adaptive buffer
/// would grow to fit the largest answer (a container list) and keep that
/// size on every pooled connection.
pub fn new_pool(addr: &EngineAddr) -> Pool {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .pool_max_idle_per_host(1)
        .http1_read_buf_exact_size(8 * 1024)
        .build(Dialer(addr.clone()))
}
