//! The Raft port over TLS: the server side accepts TLS connections (the
//! handshake of each in a task of its own, so a slow or silent peer holds
//! up nobody) and hands them to tonic; the client side dials a peer, runs
//! the handshake and hands the stream to tonic's channel. Which peers are
//! accepted and which certificate is shown is the rustls configurations'
//! business (the application builds them: e.g. only its managers, with a
//! certificate it can rotate).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a peer may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS between managers: how this node serves its Raft port and how it
/// reaches its peers'.
#[derive(Debug, Clone)]
pub struct RaftTls {
    /// The Raft port's configuration (its certificate; which clients it
    /// accepts).
    pub server: Arc<ServerConfig>,
    /// The configuration toward peers (the CA they must be signed by; the
    /// certificate shown to them).
    pub client: Arc<ClientConfig>,
}

/// An accepted TLS connection, as tonic serves it.
pub(crate) struct PeerStream(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for PeerStream {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.peer_addr().ok()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The TLS connections accepted on `listener`, as a stream for tonic's
/// `serve_with_incoming`. A peer whose handshake fails (no certificate, one
/// the configuration refuses) or takes too long is dropped and logged.
pub(crate) fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> impl futures_core::Stream<Item = io::Result<PeerStream>> {
    let (tx, rx) = mpsc::channel::<io::Result<PeerStream>>(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "raft accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(PeerStream(stream))).await;
                    }
                    // A connection closed before its first byte is a
                    // reachability probe (`Cluster::reachable`), not a peer.
                    Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, error = %e, "raft connection closed before a TLS handshake")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "raft peer refused: TLS handshake failed")
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "raft peer refused: no TLS handshake within 5 s")
                    }
                }
            });
        }
    });
    ReceiverStream(rx)
}

/// A receiver as a stream.
struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// Opens TLS connections to the peer at `addr` (`IP:PORT` or
/// `HOST:PORT`, whose host the peer's certificate must name), for tonic's
/// `connect_with_connector`. An address without a usable name fails every
/// connection (it never falls back to plaintext).
pub(crate) fn connector(
    addr: &str,
    config: Arc<ClientConfig>,
) -> impl tower::Service<
    http::Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = io::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let host = addr
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(addr);
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{addr}: {e}"));
    let connector = TlsConnector::from(config);
    let addr = addr.to_string();
    tower::service_fn(move |_: http::Uri| {
        let (connector, name, addr) = (connector.clone(), name.clone(), addr.clone());
        async move {
            let name = name.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        }
    })
}
