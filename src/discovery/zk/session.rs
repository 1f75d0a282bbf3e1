//! The one ZooKeeper session of a [`super::ZkDiscovery`]: made on first
//! use, kept while it lives (the client reconnects by itself after a
//! short loss), made anew once it has ended (expired or closed) or when a
//! call failed for want of a connection, and every call on it bounded in
//! time.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use zookeeper_client as zk;

use crate::discovery::DiscoveryError;

/// How long making a session may take (every server is tried).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one call may wait for its answer; while the connection is
/// lost, calls queue for the reconnection, so a store that is down fails
/// them after this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The session timeout asked for when no TTL says otherwise (reads only):
/// libkv's default.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A session made on demand (see the module's documentation).
pub struct Session {
    /// The servers, `HOST:PORT,...`: the client's connect string.
    servers: String,
    /// The URL, for messages.
    url: String,
    current: Mutex<Option<Held>>,
}

/// A live client and the session timeout it asked for.
struct Held {
    client: zk::Client,
    asked: Duration,
}

impl Session {
    /// No session yet for `servers` (`HOST:PORT,...`); `url` names it in
    /// errors.
    pub fn new(servers: String, url: String) -> Session {
        Session {
            servers,
            url,
            current: Mutex::new(None),
        }
    }

    /// A failure of this store, for `why`.
    pub fn failed(&self, why: impl std::fmt::Display) -> DiscoveryError {
        DiscoveryError::Store {
            url: self.url.clone(),
            why: why.to_string(),
        }
    }

    /// A client of a live session: with session timeout `ttl` when given
    /// (a session with another is replaced; its ephemeral nodes end with
    /// it, at its timeout), else the current one or a new one with
    /// [`DEFAULT_SESSION_TIMEOUT`].
    pub async fn client(&self, ttl: Option<Duration>) -> Result<zk::Client, DiscoveryError> {
        let mut current = self.current.lock().await;
        if let Some(held) = current.as_ref() {
            let live = !held.client.state().is_terminated();
            if live && ttl.is_none_or(|ttl| ttl == held.asked) {
                return Ok(held.client.clone());
            }
        }
        // The old session, if any, is dropped here: detached, it ends on
        // the server at its timeout.
        *current = None;
        let asked = ttl.unwrap_or(DEFAULT_SESSION_TIMEOUT);
        let client = self.connect(asked).await?;
        let granted = client.session_timeout();
        if ttl.is_some() && granted != asked {
            tracing::warn!(
                url = %self.url,
                ttl = ?asked,
                session_timeout = ?granted,
                "ZooKeeper set another session timeout than the TTL (its minSessionTimeout \
                 and maxSessionTimeout bound it): a stopped join's engine disappears after that"
            );
        }
        *current = Some(Held {
            client: client.clone(),
            asked,
        });
        Ok(client)
    }

    /// A new session with timeout `asked`, within [`CONNECT_TIMEOUT`].
    ///
    /// Detached: dropping the last client does not close the session, so
    /// its ephemeral nodes last until the session times out on the server,
    /// whether the join process exits cleanly or is killed (the TTL, as
    /// classic's).
    async fn connect(&self, asked: Duration) -> Result<zk::Client, DiscoveryError> {
        let connecting = zk::Client::connector()
            .with_session_timeout(asked)
            .with_detached()
            .with_fail_eagerly()
            .connect(&self.servers);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(zk::Error::NoHosts)) => Err(self.failed(
                "cannot connect: no ZooKeeper server accepted a session (down or unreachable?)",
            )),
            Ok(Err(e)) => Err(self.failed(format!("cannot connect: {e}"))),
            Err(_) => Err(self.failed(format!(
                "cannot connect: no ZooKeeper server answered within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    /// `call` within [`CALL_TIMEOUT`]: its own result, or an error of
    /// this store naming `what` when no answer came in time or the
    /// connection was lost under it. A session that is not connected then
    /// is given up: the next call makes a new one at once rather than
    /// waiting for the client's reconnection backoff (seconds, growing)
    /// once ZooKeeper is back; a registration's node is taken over by the
    /// new session.
    pub async fn within<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, zk::Error>>,
    ) -> Result<Result<T, zk::Error>, DiscoveryError> {
        let why = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Err(zk::Error::ConnectionLoss)) => {
                "connection to ZooKeeper lost (down or unreachable?)".to_string()
            }
            Ok(result) => return Ok(result),
            Err(_) => format!("no answer within {CALL_TIMEOUT:?} (ZooKeeper down or unreachable?)"),
        };
        self.forget_unless_connected().await;
        Err(self.failed(format!("{what}: {why}")))
    }

    /// Gives up the session unless it is connected.
    async fn forget_unless_connected(&self) {
        let mut current = self.current.lock().await;
        let connected = current.as_ref().is_some_and(|held| {
            matches!(
                held.client.state(),
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly
            )
        });
        if !connected {
            *current = None;
        }
    }
}
