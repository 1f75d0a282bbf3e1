//! Listeners: one accept task per live node whose connections hyper serves
//! with the shared router; killing and reviving a node; the admin endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::engine::Node;
use super::{FleetInner, HollowError};

/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a node that kills itself over HTTP waits for its answer to leave.
const SELF_KILL_DELAY: Duration = Duration::from_millis(20);

/// A node's listener state: serving or not, and an epoch that every kill
/// and revive bumps (a timed revive only acts if nothing happened since).
#[derive(Default)]
pub(crate) struct Life {
    serving: Option<Serving>,
    epoch: u64,
}

/// A live listener: cancelling stops it and all its connections; `done`
/// yields `None` once they all ended.
struct Serving {
    cancel: CancellationToken,
    done: mpsc::Receiver<()>,
}

/// Opens a listener on `addr` (SO_REUSEADDR, so a killed node can listen
/// again at once).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections until `cancel`, serving each with `handle`; every
/// connection ends when `cancel` fires. `done` is dropped when all ended.
fn accept<F, Fut>(
    listener: TcpListener,
    cancel: CancellationToken,
    done: mpsc::Sender<()>,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let cancel = cancel.clone();
            let done = done.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                let _done = done;
                let service = hyper::service::service_fn(handle);
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::select! {
                    result = connection => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    }
                    // Dropping the connection closes the socket mid-stream.
                    _ = cancel.cancelled() => {}
                }
            });
        }
    });
}

impl Node {
    fn listen(self: &Arc<Self>, life: &mut Life, listener: TcpListener) {
        let cancel = self.shared.shutdown.child_token();
        let (done_tx, done_rx) = mpsc::channel(1);
        let node = self.clone();
        *self.connections.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((cancel.clone(), done_tx.clone()));
        accept(listener, cancel.clone(), done_tx, move |request| {
            super::api::handle(node.clone(), request)
        });
        life.serving = Some(Serving {
            cancel,
            done: done_rx,
        });
        life.epoch += 1;
        self.alive.store(true, Ordering::SeqCst);
    }

    /// Serves the API on `listener` (already bound to `self.addr`).
    pub(crate) async fn serve(self: &Arc<Self>, listener: TcpListener) {
        let mut life = self.life.lock().await;
        self.listen(&mut life, listener);
    }

    async fn kill_locked(&self, life: &mut Life) {
        life.epoch += 1;
        if let Some(mut serving) = life.serving.take() {
            self.alive.store(false, Ordering::SeqCst);
            // Its sender must go too, or `done` never ends.
            *self.connections.lock().unwrap_or_else(|e| e.into_inner()) = None;
            serving.cancel.cancel();
            while serving.done.recv().await.is_some() {}
            tracing::info!(node = self.index, addr = %self.addr, "hollow node killed");
        }
    }

    fn revive_locked(self: &Arc<Self>, life: &mut Life) -> Result<(), HollowError> {
        if life.serving.is_some() {
            return Ok(());
        }
        let listener = bind(self.addr).map_err(|source| HollowError::Bind {
            addr: self.addr,
            source,
        })?;
        self.listen(life, listener);
        tracing::info!(node = self.index, addr = %self.addr, "hollow node revived");
        Ok(())
    }

    /// Closes the listener and every connection; returns once they are closed.
    pub(crate) async fn kill(self: &Arc<Self>) {
        let mut life = self.life.lock().await;
        self.kill_locked(&mut life).await;
    }

    /// Listens again on the same address.
    pub(crate) async fn revive(self: &Arc<Self>) -> Result<(), HollowError> {
        let mut life = self.life.lock().await;
        self.revive_locked(&mut life)
    }

    /// Kills the node now and revives it after `duration`, unless it was
    /// revived or killed again meanwhile.
    pub(crate) async fn kill_for(self: &Arc<Self>, duration: Duration) {
        let epoch = {
            let mut life = self.life.lock().await;
            self.kill_locked(&mut life).await;
            life.epoch
        };
        let node = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = node.shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(duration) => {}
            }
            let mut life = node.life.lock().await;
            if life.epoch == epoch {
                if let Err(e) = node.revive_locked(&mut life) {
                    tracing::warn!(node = node.index, error = %e, "cannot revive hollow node");
                }
            }
        });
    }

    /// `POST /hollow/kill[?for=5s]` on the node itself: it answers, then dies.
    pub(crate) fn kill_self(self: &Arc<Self>, duration: Option<Duration>) {
        let node = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SELF_KILL_DELAY).await;
            match duration {
                Some(d) => node.kill_for(d).await,
                None => node.kill().await,
            }
        });
    }
}

/// Serves the admin endpoint on `listener` until the fleet is dropped.
pub(crate) fn serve_admin(fleet: Arc<FleetInner>, listener: TcpListener) {
    let cancel = fleet.shared.shutdown.clone();
    let (done, _) = mpsc::channel(1);
    accept(listener, cancel, done, move |request| {
        admin(fleet.clone(), request)
    });
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = text(status, format!("{value}\n"));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "message": message.to_string() }),
    )
}

/// `node=3`, `node=2-5` or `node=all`: the indexes named.
fn node_range(spec: Option<&str>, len: usize) -> Result<std::ops::Range<usize>, String> {
    let spec = spec.ok_or("node=I (an index, a range A-B, or all) is required")?;
    if spec == "all" {
        return Ok(0..len);
    }
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("invalid node {spec:?}"))
    };
    let (from, to) = match spec.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(spec)?, parse(spec)?),
    };
    if from > to || to >= len {
        return Err(format!(
            "no node {spec}: the fleet has {len} nodes (0-{})",
            len - 1
        ));
    }
    Ok(from..to + 1)
}

/// The admin endpoint: `POST /hollow/kill?node=I[&for=5s]`,
/// `POST /hollow/revive?node=I`, `GET /hollow/nodes`, `GET /_ping`.
async fn admin(
    fleet: Arc<FleetInner>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    let response = match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/_ping") => text(StatusCode::OK, "OK"),
        (&Method::GET, "/hollow/nodes") => {
            let nodes: Vec<serde_json::Value> = fleet
                .nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "Node": n.index,
                        "Addr": n.addr.to_string(),
                        "ID": n.id,
                        "Name": n.name,
                        "Alive": n.is_alive(),
                        "Containers": n.container_count(),
                    })
                })
                .collect();
            json(StatusCode::OK, &serde_json::Value::Array(nodes))
        }
        (&Method::POST, "/hollow/kill") | (&Method::POST, "/hollow/revive") => {
            let range = match node_range(param("node"), fleet.nodes.len()) {
                Ok(range) => range,
                Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e)),
            };
            let duration = match param("for").filter(|d| !d.is_empty()) {
                Some(d) => match humantime::parse_duration(d) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        return Ok(error(
                            StatusCode::BAD_REQUEST,
                            format!("invalid for={d}: {e}"),
                        ))
                    }
                },
                None => None,
            };
            let mut failures = Vec::new();
            for node in &fleet.nodes[range.clone()] {
                if path == "/hollow/kill" {
                    match duration {
                        Some(d) => node.kill_for(d).await,
                        None => node.kill().await,
                    }
                } else if let Err(e) = node.revive().await {
                    failures.push(e.to_string());
                }
            }
            if failures.is_empty() {
                let nodes: Vec<serde_json::Value> = fleet.nodes[range]
                    .iter()
                    .map(|n| serde_json::json!({ "Node": n.index, "Alive": n.is_alive() }))
                    .collect();
                json(StatusCode::OK, &serde_json::Value::Array(nodes))
            } else {
                error(StatusCode::INTERNAL_SERVER_ERROR, failures.join("; "))
            }
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    };
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ranges() {
        assert_eq!(node_range(Some("3"), 5), Ok(3..4));
        assert_eq!(node_range(Some("1-3"), 5), Ok(1..4));
        assert_eq!(node_range(Some("all"), 5), Ok(0..5));
        assert!(node_range(Some("5"), 5).is_err());
        assert!(node_range(Some("3-1"), 5).is_err());
        assert!(node_range(Some("x"), 5).is_err());
        assert!(node_range(None, 5).is_err());
    }
}
