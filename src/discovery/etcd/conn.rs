//! The connection to the store: one etcd client, made on first use and
//! shared by every request after it. Making it dials every endpoint at
//! once and keeps the first that answers a status request, so a store that
//! is down fails within [`CONNECT_TIMEOUT`] with each endpoint's reason. A
//! request that fails or takes longer than [`REQUEST_TIMEOUT`] drops the
//! client: the next request connects anew (to whichever endpoint is up).

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Channel, Client};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Mutex;
use tokio::time::timeout;
use tonic::transport::Endpoint;

use super::tls::LoadedTls;
use crate::discovery::DiscoveryError;

/// How long connecting to one endpoint may take (TCP, TLS and a first
/// request); the endpoints are tried at the same time.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one request to the store may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 pings on a connection with a request open (a watch), to notice a
/// store that vanished without closing it. etcd refuses pings more often
/// than every 5 s, and any without a request open.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a ping may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client of one store (see the module's documentation).
pub struct Connection {
    url: String,
    endpoints: Vec<String>,
    tls: Option<LoadedTls>,
    /// The client and its generation, which tells a failed request whether
    /// the client it used is still the current one.
    client: Mutex<(u64, Option<Client>)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connection {
    /// A connection to `endpoints` (`HOST:PORT`), none made yet; `url`
    /// names the store in errors.
    pub fn new(url: String, endpoints: Vec<String>, tls: Option<LoadedTls>) -> Connection {
        Connection {
            url,
            endpoints,
            tls,
            client: Mutex::new((0, None)),
        }
    }

    /// An error about the store, naming its URL.
    pub fn error(&self, why: impl Into<String>) -> DiscoveryError {
        DiscoveryError::Store {
            url: self.url.clone(),
            why: why.into(),
        }
    }

    /// Runs `request` with the client (connecting first if there is none),
    /// bounded by [`REQUEST_TIMEOUT`]; `what` names it in errors. A failure
    /// drops the client.
    pub async fn request<T, F, Fut>(&self, what: &str, request: F) -> Result<T, DiscoveryError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let (generation, client) = self.client().await?;
        let why = match timeout(REQUEST_TIMEOUT, request(client)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => describe(&e),
            Err(_) => format!("no answer within {REQUEST_TIMEOUT:?}"),
        };
        self.forget(generation).await;
        Err(self.error(format!("{what}: {why}")))
    }

    /// The client and its generation, connecting if there is none.
    pub async fn client(&self) -> Result<(u64, Client), DiscoveryError> {
        let mut current = self.client.lock().await;
        if let Some(client) = &current.1 {
            return Ok((current.0, client.clone()));
        }
        let client = self.connect().await?;
        current.0 += 1;
        current.1 = Some(client.clone());
        Ok((current.0, client))
    }

    /// Drops the client of `generation` if it is still the current one.
    pub async fn forget(&self, generation: u64) {
        let mut current = self.client.lock().await;
        if current.0 == generation && current.1.take().is_some() {
            tracing::debug!(url = %self.url, "dropping the etcd connection after a failure");
        }
    }

    /// Connects to every endpoint at once; the first that answers wins.
    async fn connect(&self) -> Result<Client, DiscoveryError> {
        let mut attempts: FuturesUnordered<_> = self
            .endpoints
            .iter()
            .map(|endpoint| async move {
                let result = timeout(CONNECT_TIMEOUT, self.connect_one(endpoint))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {CONNECT_TIMEOUT:?}")));
                (endpoint, result)
            })
            .collect();
        let mut failures = Vec::new();
        while let Some((endpoint, result)) = attempts.next().await {
            match result {
                Ok(client) => {
                    tracing::debug!(url = %self.url, %endpoint, "connected to etcd");
                    return Ok(client);
                }
                Err(why) => failures.push(format!("{}: {why}", self.uri(endpoint))),
            }
        }
        Err(self.error(format!("cannot connect: {}", failures.join("; "))))
    }

    /// Connects to one endpoint and asks for its status.
    async fn connect_one(&self, endpoint: &str) -> Result<Client, String> {
        let mut builder = Endpoint::from_shared(self.uri(endpoint))
            .map_err(|e| chain(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.client_config())
                .map_err(|e| chain(&e))?;
        }
        let channel = builder
            .connect()
            .await
            .map_err(|e| with_hint(chain(&e), self.tls.as_ref()))?;
        let mut client = Client::from_channel(Channel::Tonic(channel), None)
            .await
            .map_err(|e| describe(&e))?;
        client
            .status()
            .await
            .map_err(|e| with_hint(describe(&e), self.tls.as_ref()))?;
        Ok(client)
    }

    /// The URI of an endpoint: `https://` with TLS, else `http://`.
    fn uri(&self, endpoint: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{endpoint}")
    }
}

/// An etcd client error as one line: a gRPC status's message, or the
/// transport error, with their causes.
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            let mut why = if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                status.message().to_string()
            };
            if let Some(source) = status.source() {
                append(&mut why, &chain(source));
            }
            without_repeats(&why)
        }
        etcd_client::Error::TransportError(e) => chain(e),
        other => other.to_string(),
    }
}

/// A failed connection's reason, with what to check when it looks like a
/// TLS mismatch. `tls` is the client's: none, or with a client certificate
/// or not.
fn with_hint(why: String, tls: Option<&LoadedTls>) -> String {
    // How a peer that dislikes the handshake shows: it hangs up (with TLS
    // 1.3 the client may see the server's alert, or only the close).
    let closed = [
        "connection closed",
        "broken pipe",
        "connection reset",
        "operation was canceled",
        "h2 protocol error",
    ]
    .iter()
    .any(|words| why.contains(words));
    let alert = ["BadCertificate", "CertificateRequired", "UnknownCA"]
        .iter()
        .any(|alert| why.contains(alert));
    let hint = match tls {
        None if closed => "if the store serves TLS, give kv.cacertfile",
        Some(_) if why.contains("UnknownIssuer") => {
            "kv.cacertfile is not the CA of the store's certificate"
        }
        Some(_) if why.contains("NotValidForName") => {
            "the store's certificate does not name the endpoint's host"
        }
        Some(tls) if closed || alert => {
            if tls.has_identity() {
                "the store may refuse our client certificate: kv.certfile, kv.keyfile"
            } else {
                "the store may want a client certificate: kv.certfile, kv.keyfile"
            }
        }
        _ => return why,
    };
    format!("{why} ({hint})")
}

/// An error and its causes, `a: b: c`, leaving out a cause already said.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        append(&mut why, &cause.to_string());
        source = cause.source();
    }
    without_repeats(&why)
}

/// `a: b: a: c` as `a: b: c`: layers of errors often repeat their cause's
/// words.
fn without_repeats(why: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in why.split(": ") {
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

fn append(why: &mut String, cause: &str) {
    if !cause.is_empty() && !why.contains(cause) {
        why.push_str(": ");
        why.push_str(cause);
    }
}
