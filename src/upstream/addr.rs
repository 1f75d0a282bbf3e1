//! Addresses of HTTP servers (engines, managers) and connections to them:
//! plain, or TLS over TCP ([`Dialer`]).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a server (an engine, a manager) listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Addr {
    /// Plain TCP, `host:port`.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

/// A byte stream to a server.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A boxed connection to a server.
pub type Conn = Pin<Box<dyn Io>>;

/// An address that is not a server address. (Discovery lists engines, so
/// the text names them.)
#[derive(Debug, thiserror::Error)]
#[error("invalid engine address {0:?}")]
pub struct BadAddr(pub String);

impl Addr {
    /// Parses `HOST:PORT`, `tcp://HOST:PORT`, `http://HOST:PORT` or `unix:///path`.
    pub fn parse(s: &str) -> Result<Addr, BadAddr> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Addr::Unix(PathBuf::from(path)));
            }
            return Err(BadAddr(s.to_string()));
        }
        let hostport = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s)
            .trim_end_matches('/');
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Addr::Tcp(hostport.to_string()))
            }
            _ => Err(BadAddr(s.to_string())),
        }
    }

    /// Opens a new plain connection, giving up after `CONNECT_TIMEOUT` (10 s).
    pub async fn dial(&self) -> std::io::Result<Conn> {
        Dialer::plain(self.clone()).dial().await
    }

    /// The host part of a TCP address, without IPv6 brackets.
    pub fn host(&self) -> Option<&str> {
        match self {
            Addr::Tcp(hostport) => hostport
                .rsplit_once(':')
                .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']')),
            Addr::Unix(_) => None,
        }
    }

    async fn connect(&self) -> std::io::Result<Conn> {
        match self {
            Addr::Tcp(hostport) => {
                let stream = TcpStream::connect(hostport).await?;
                stream.set_nodelay(true)?;
                Ok(Box::pin(stream))
            }
            Addr::Unix(path) => Ok(Box::pin(UnixStream::connect(path).await?)),
        }
    }
}

/// How a client reaches its server: the address, and TLS when the server
/// speaks it (the server's certificate must name the address's host).
#[derive(Clone)]
pub struct Dialer {
    addr: Addr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    /// Plain connections to `addr`.
    pub fn plain(addr: Addr) -> Dialer {
        Dialer { addr, tls: None }
    }

    /// TLS connections to `addr` (TCP only) with `config`.
    pub fn tls(addr: Addr, config: Arc<rustls::ClientConfig>) -> Result<Dialer, BadAddr> {
        let name = addr
            .host()
            .and_then(|host| ServerName::try_from(host.to_string()).ok())
            .ok_or_else(|| BadAddr(format!("{addr} (TLS needs a TCP address)")))?;
        Ok(Dialer {
            addr,
            tls: Some((TlsConnector::from(config), name)),
        })
    }

    /// The address.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Whether connections speak TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a new connection (the TLS handshake included), giving up after
    /// `CONNECT_TIMEOUT` (10 s).
    pub async fn dial(&self) -> std::io::Result<Conn> {
        let open = async {
            let conn = self.addr.connect().await?;
            match &self.tls {
                None => Ok(conn),
                Some((connector, name)) => {
                    let stream = connector.connect(name.clone(), conn).await?;
                    Ok(Box::pin(stream) as Conn)
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))
            })
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(hostport) => write!(f, "tcp://{hostport}"),
            Addr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            Addr::parse("1.2.3.4:2375").unwrap(),
            Addr::Tcp("1.2.3.4:2375".into())
        );
        assert_eq!(Addr::parse("tcp://h:1").unwrap().to_string(), "tcp://h:1");
        assert_eq!(
            Addr::parse("unix:///var/run/docker.sock").unwrap(),
            Addr::Unix("/var/run/docker.sock".into())
        );
        for bad in ["h", "h:x", ":1", "unix://rel", "h:70000"] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
    }
}
