//! The API's accept loop: HTTP/1.1 connections served by hyper (upgrades
//! included) under limits that keep clients from taking the manager down.
//!
//! - **Descriptors**: at most [`ConnectionCap`] client connections are
//!   open at once (a hijacked stream keeps its connection's place until
//!   it closes). By default the cap follows the process's `RLIMIT_NOFILE`
//!   less a reserve for what the manager needs whatever clients do (its
//!   engines, Raft peers, files): see [`derived_cap`]. A connection past
//!   the cap takes the place of the open connection that has waited
//!   longest for a request (fresh, idle between requests, or still
//!   sending its head); when every connection has a request in flight,
//!   the newcomer gets `503 {"message": ...}` and is closed at once.
//! - **Timeouts**: a fresh connection must deliver its first request head,
//!   and a connection that has started a head must finish it, within
//!   `header_timeout` (slowloris: a byte every few seconds does not extend
//!   it); a kept-alive connection may wait `idle_timeout` between requests.
//!   From the moment a request's head is read until its answer has been
//!   written to the end, nothing is timed: `logs -f`, `events`, `attach`
//!   and `exec` stream as long as they like, and upgraded connections are
//!   never cut.
//! - hyper's own answers to unparsable requests (`431`, `414`, `400`) get
//!   Docker's JSON body (`canned.rs`).
//!
//! [`serve_stream`] serves one accepted stream of any kind (TCP, unix
//! socket, or a TLS stream wrapped around either). Beside this file:
//! `activity.rs` (a connection's phase and deadline), `stream.rs` (the
//! stream as hyper reads and writes it, answers' bodies), `canned.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

mod activity;
mod canned;
mod stream;
mod tls;

pub use tls::TlsClient;

use activity::{Activity, RequestGuard};
use stream::{Guarded, Watched};

/// Descriptors kept for the manager itself whatever clients do: Raft
/// peers and their streams, the Raft log's files, listeners, DNS.
pub const BASE_RESERVE: u64 = 128;
/// Descriptors kept per engine: its event stream, its pooled connection,
/// and one for a refresh or a proxied request in flight.
pub const PER_ENGINE_RESERVE: u64 = 3;
/// The derived cap never goes below this many client connections.
pub const MIN_CONNECTIONS: usize = 16;
/// How long a shutdown waits for open connections to finish their
/// requests before it gives up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after an accept that failed for lack of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits of the API's connections (`swarm manage --api-*` flags).
#[derive(Clone)]
pub struct Limits {
    /// Time a connection has to deliver a whole request head, counted from
    /// its opening or from the first byte of the head.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait between two requests.
    pub idle_timeout: Duration,
    /// Largest request line and headers, in bytes (larger: `431`).
    pub max_header_size: usize,
    /// How many client connections may be open at once.
    pub cap: ConnectionCap,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_header_size", &self.max_header_size)
            .field("cap", &self.cap.current())
            .finish()
    }
}

/// How many client connections may be open at once.
#[derive(Clone)]
pub enum ConnectionCap {
    /// A number given by the operator.
    Fixed(usize),
    /// From the descriptor limit and the engines the manager knows of
    /// ([`derived_cap`]), read at every accept.
    Derived {
        /// The process's `RLIMIT_NOFILE` (soft).
        descriptors: u64,
        /// How many engines the manager talks to now.
        engines: Arc<dyn Fn() -> usize + Send + Sync>,
    },
}

impl ConnectionCap {
    /// The cap now.
    pub fn current(&self) -> usize {
        match self {
            ConnectionCap::Fixed(n) => *n,
            ConnectionCap::Derived {
                descriptors,
                engines,
            } => derived_cap(*descriptors, engines()),
        }
    }
}

/// Client connections a process with `descriptors` descriptors can hold
/// while it talks to `engines` engines: half of what is left after
/// [`BASE_RESERVE`] and [`PER_ENGINE_RESERVE`] per engine (a proxied call
/// holds an engine connection besides its client's), at least
/// [`MIN_CONNECTIONS`].
pub fn derived_cap(descriptors: u64, engines: usize) -> usize {
    let reserve = BASE_RESERVE + PER_ENGINE_RESERVE * engines as u64;
    let free = descriptors.saturating_sub(reserve) / 2;
    usize::try_from(free)
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS)
}

/// The process's soft `RLIMIT_NOFILE`, read from `/proc/self/limits`
/// (`None` when unreadable; `u64::MAX` when unlimited).
pub fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_descriptor_limit(&limits)
}

fn parse_descriptor_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// A listener of the API: TCP (plain or TLS) or a unix socket.
pub enum Listener {
    /// `tcp://IP:PORT`.
    Tcp(tokio::net::TcpListener),
    /// `tcp://IP:PORT` speaking TLS with this configuration (its
    /// certificate, which clients it accepts). As dockerd, a unix socket
    /// never speaks TLS: its file's permissions say who may use it.
    Tls(tokio::net::TcpListener, Arc<rustls::ServerConfig>),
    /// `unix:///path`.
    Unix(tokio::net::UnixListener),
}

/// The API's service: the router behind the version prefix stripping.
pub type ApiService = tower::util::MapRequest<axum::Router, fn(Request<Body>) -> Request<Body>>;

/// Serves `service` on `listener` under `limits` until `shutdown`
/// resolves; then lets open connections finish their requests for a few
/// seconds.
pub async fn serve(
    listener: Listener,
    service: ApiService,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        service,
        limits,
        open: Mutex::new(Open::default()),
        drained: Notify::new(),
        shutdown: CancellationToken::new(),
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                let no_descriptors = matches!(e.raw_os_error(), Some(23 | 24)); // ENFILE, EMFILE
                if no_descriptors {
                    tracing::warn!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                } else {
                    tracing::debug!(error = %e, "accept failed");
                }
                continue;
            }
        };
        let Some(conn) = Conn::admit(&shared) else {
            match &stream {
                Accepted::Tcp(s) => refuse(s, &shared),
                Accepted::Unix(s) => refuse(s, &shared),
            }
            continue;
        };
        match (stream, &listener) {
            (Accepted::Tcp(s), Listener::Tls(_, config)) => {
                tokio::spawn(tls::serve_tls(s, config.clone(), conn))
            }
            (Accepted::Tcp(s), _) => tokio::spawn(serve_stream(s, conn, None)),
            (Accepted::Unix(s), _) => tokio::spawn(serve_stream(s, conn, None)),
        };
    }
    shared.shutdown.cancel();
    let drained = async {
        loop {
            let waiting = shared.drained.notified();
            if shared.lock().conns.is_empty() {
                return;
            }
            waiting.await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::info!(
            open = shared.lock().conns.len(),
            "connections still open after the shutdown grace"
        );
    }
    Ok(())
}

/// An accepted stream.
enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) | Listener::Tls(l, _) => accept_tcp(l).await.map(Accepted::Tcp),
        Listener::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
    }
}

/// Accepts a TCP connection that sends without delay, as Docker's daemon
/// does (Go's default): a small write, such as a keystroke through
/// `attach` or one event of a stream, goes out at once instead of waiting
/// for the peer to acknowledge the previous one.
pub async fn accept_tcp(listener: &tokio::net::TcpListener) -> io::Result<tokio::net::TcpStream> {
    let (stream, _) = listener.accept().await?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    Ok(stream)
}

/// Answers a connection past the cap with 503 and closes it, without
/// waiting for anything: what the client sent meanwhile is dropped.
fn refuse<S: TryIo>(stream: &S, shared: &Shared) {
    let open = shared.lock().conns.len();
    let body = serde_json::json!({
        "message": format!(
            "too many connections: {open} open, every one busy with a request (see --api-max-connections)"
        )
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tracing::warn!(open, "API connection refused: every connection is busy");
    let _ = stream.try_write_all(answer.as_bytes());
    // Read what already came, so that closing sends FIN rather than RST.
    let mut sink = [0u8; 4096];
    let _ = stream.try_read_some(&mut sink);
}

/// Non-blocking writes and reads of an accepted stream.
trait TryIo {
    fn try_write_all(&self, buf: &[u8]) -> io::Result<()>;
    fn try_read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
}

macro_rules! try_io {
    ($t:ty) => {
        impl TryIo for $t {
            fn try_write_all(&self, mut buf: &[u8]) -> io::Result<()> {
                while !buf.is_empty() {
                    let n = self.try_write(buf)?;
                    buf = &buf[n..];
                }
                Ok(())
            }
            fn try_read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.try_read(buf)
            }
        }
    };
}
try_io!(tokio::net::TcpStream);
try_io!(tokio::net::UnixStream);

/// What every connection shares.
struct Shared {
    service: ApiService,
    limits: Limits,
    open: Mutex<Open>,
    /// Woken when a connection closes (for the shutdown's wait).
    drained: Notify,
    shutdown: CancellationToken,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The open connections.
#[derive(Default)]
struct Open {
    next: u64,
    conns: HashMap<u64, Arc<Activity>>,
    /// Connections told to close that have not closed yet.
    evicting: usize,
}

/// A connection's place among the open ones, given back when dropped:
/// it lives in the stream, so a hijacked stream keeps it.
struct Slot {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.shared.lock();
        if let Some(activity) = open.conns.remove(&self.id) {
            if activity.is_evicted() {
                open.evicting = open.evicting.saturating_sub(1);
            }
        }
        drop(open);
        self.shared.drained.notify_waiters();
    }
}

/// An admitted connection: its place and its activity.
pub struct Conn {
    slot: Slot,
    activity: Arc<Activity>,
}

impl Conn {
    /// A place for a new connection: free, or taken from the connection
    /// that has waited longest for a request; `None` when every open
    /// connection has a request in flight.
    fn admit(shared: &Arc<Shared>) -> Option<Conn> {
        let cap = shared.limits.cap.current();
        let mut open = shared.lock();
        if open.conns.len().saturating_sub(open.evicting) >= cap {
            let oldest = open
                .conns
                .values()
                .filter_map(|a| a.waiting_since().map(|since| (since, a)))
                .min_by_key(|(since, _)| *since)
                .map(|(_, a)| a.clone())?;
            oldest.evict();
            open.evicting += 1;
            tracing::debug!(
                cap,
                "connection cap reached: closing the longest waiting one"
            );
        }
        let id = open.next;
        open.next += 1;
        let activity = Arc::new(Activity::new());
        open.conns.insert(id, activity.clone());
        Some(Conn {
            slot: Slot {
                id,
                shared: shared.clone(),
            },
            activity,
        })
    }
}

/// Serves one accepted stream (TCP, unix socket, or a TLS stream over
/// either) as an API connection until it closes, its timeouts expire, it
/// is evicted, or the manager shuts down. Over TLS, `client` says who the
/// client is; every request of the connection carries it as an extension.
pub async fn serve_stream<S>(stream: S, conn: Conn, client: Option<TlsClient>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Conn { slot, activity } = conn;
    let shared = slot.shared.clone();
    let io = Watched {
        inner: stream,
        activity: activity.clone(),
        rewriting: None,
        _slot: slot,
    };
    let service = {
        let (service, activity) = (shared.service.clone(), activity.clone());
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let (service, activity) = (service.clone(), activity.clone());
            if let Some(client) = &client {
                request.extensions_mut().insert(*client);
            }
            activity.request_started();
            let guard = RequestGuard(activity.clone());
            async move {
                let response = service.oneshot(request.map(Body::new)).await?;
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    activity.upgraded();
                }
                Ok::<_, std::convert::Infallible>(response.map(|body| Guarded {
                    body,
                    _guard: guard,
                }))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_header_size(shared.limits.max_header_size)
        .keep_alive(true);
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let changed = activity.changed.notified();
        let deadline = match activity.deadline(&shared.limits) {
            Ok(deadline) => deadline,
            Err(reason) => {
                tracing::debug!(reason, "closing an API connection");
                return;
            }
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "API connection ended");
                }
                return;
            }
            _ = changed => {}
            _ = sleep => {}
            _ = shared.shutdown.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn api_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = accept_tcp(&listener).await.expect("accept");
        assert!(accepted.nodelay().expect("TCP_NODELAY"), "Nagle is on");
        drop(client);
    }

    #[test]
    fn cap_follows_the_descriptor_limit() {
        // 1,024 descriptors, 2 engines: (1024 - 128 - 6) / 2.
        assert_eq!(derived_cap(1024, 2), 445);
        // Each engine takes its share first.
        assert_eq!(derived_cap(1024, 100), (1024 - 128 - 300) / 2);
        assert_eq!(derived_cap(65_536, 1_000), (65_536 - 128 - 3_000) / 2);
        // Never nothing.
        assert_eq!(derived_cap(256, 1_000), MIN_CONNECTIONS);
        assert_eq!(derived_cap(0, 0), MIN_CONNECTIONS);
        assert!(derived_cap(u64::MAX, 3) > 1 << 30);
    }

    #[test]
    fn descriptor_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127498               127498               processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_descriptor_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_descriptor_limit(unlimited), Some(u64::MAX));
        assert_eq!(parse_descriptor_limit("nothing here"), None);
        assert!(descriptor_limit().is_some_and(|n| n > 0));
    }
}
