//! `zk://HOST[:PORT],...[/PATH]`: engines registered in ZooKeeper, as
//! classic Swarm's libkv discovery kept them.
//!
//! Layout (classic's): engine `IP:PORT` is the znode
//! `/PATH/docker/swarm/nodes/IP:PORT`, its data the address again; the
//! engines are that directory's children. Without a path it is
//! `/docker/swarm/nodes`.
//!
//! A registration lasts as long as the session that made it: the znode is
//! *ephemeral*, as libkv's ZooKeeper store made a key written with a TTL
//! (it ignored the TTL itself). ZooKeeper's TTL nodes are no alternative:
//! they need `extendedTypesEnabled` on the server (off by default) and are
//! reaped by its container sweep (once a minute by default), not at the
//! TTL. Here the session's timeout is the TTL, so the engine disappears
//! about a TTL after its `swarm join` stops, however it stops: the session
//! is detached (closing the process does not end it early) and kept alive
//! by the client's pings in between heartbeats. The server bounds the
//! timeout (by default 4 s to 40 s: `minSessionTimeout` and
//! `maxSessionTimeout`, twice and twenty times `tickTime`); a warning
//! says when it set another one. Each heartbeat's [`ZkDiscovery::register`]
//! checks the node is there and the session's own, and makes it again after
//! the session was lost (ZooKeeper unreachable for longer than the TTL).
//!
//! One session serves all calls of a [`ZkDiscovery`] and its clones; it is
//! made at the first call, within a few seconds or with an error naming the
//! URL, and every call is bounded in time (see [`session`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use zookeeper_client as zk;

use super::DiscoveryError;

pub mod session;
pub mod url;

use session::Session;
use url::ZkUrl;

/// Where classic kept the engines, under the URL's path.
pub const NODES_DIR: &str = "docker/swarm/nodes";

const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
const DIRECTORY: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

/// A `zk://` discovery: its servers and path, and the session shared by
/// its clones (see the module's documentation).
#[derive(Clone)]
pub struct ZkDiscovery {
    url: ZkUrl,
    /// The URL, normalized.
    url_text: String,
    /// The znode whose children are the engines.
    nodes: String,
    shared: Arc<Shared>,
}

/// What clones share.
struct Shared {
    session: Session,
    /// The addresses of the last fetch, sorted: what [`ZkDiscovery::changed`]
    /// compares with.
    last: Mutex<Option<Vec<String>>>,
}

impl std::fmt::Debug for ZkDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url())
    }
}

impl PartialEq for ZkDiscovery {
    /// Same servers and path (sessions aside).
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for ZkDiscovery {}

impl ZkDiscovery {
    /// Parses `rest`, the URL after `zk://`: `h1:2181,h2:2181/path` (the
    /// path optional and possibly nested, `a/b`; a port left out is 2181).
    /// Connects nothing yet.
    pub fn parse(rest: &str) -> Result<ZkDiscovery, DiscoveryError> {
        let url = ZkUrl::parse(rest).map_err(|why| DiscoveryError::BadStoreUrl {
            url: format!("zk://{rest}"),
            why,
        })?;
        let mut nodes = String::new();
        for segment in url
            .path
            .iter()
            .map(String::as_str)
            .chain(NODES_DIR.split('/'))
        {
            nodes.push('/');
            nodes.push_str(segment);
        }
        let url_text = url.to_url();
        let session = Session::new(url.servers.join(","), url_text.clone());
        Ok(ZkDiscovery {
            url,
            url_text,
            nodes,
            shared: Arc::new(Shared {
                session,
                last: Mutex::new(None),
            }),
        })
    }

    /// The URL, normalized: `zk://HOST:PORT,...[/PATH]`.
    pub fn url(&self) -> &str {
        &self.url_text
    }

    /// The znode whose children are the engines:
    /// `/PATH/docker/swarm/nodes`.
    pub fn nodes_path(&self) -> &str {
        &self.nodes
    }

    fn session(&self) -> &Session {
        &self.shared.session
    }

    /// The engine addresses registered now, sorted (none while the
    /// directory does not exist). Children that are no engine address are
    /// left out with a warning.
    pub async fn fetch(&self) -> Result<Vec<String>, DiscoveryError> {
        let session = self.session();
        let client = session.client(None).await?;
        let what = format!("listing {}", self.nodes);
        let names = match session
            .within(&what, client.list_children(&self.nodes))
            .await?
        {
            Ok(names) => names,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(e) => return Err(session.failed(format!("{what}: {e}"))),
        };
        let addrs = addresses(names, true);
        self.remember(&addrs);
        Ok(addrs)
    }

    /// Registers `addr` (an engine's `IP:PORT`) for `ttl`, the timeout of
    /// the session holding its ephemeral znode; called again every
    /// heartbeat by `swarm join`, it makes the znode again if it is gone,
    /// and takes over one left by another session (an earlier join).
    pub async fn register(&self, addr: &str, ttl: Duration) -> Result<(), DiscoveryError> {
        if !is_engine_address(addr) {
            return Err(DiscoveryError::BadAddress(addr.to_string()));
        }
        let session = self.session();
        let client = session.client(Some(ttl)).await?;
        let node = format!("{}/{addr}", self.nodes);
        let what = format!("registering {addr} at {node}");
        let failed = |e: zk::Error| session.failed(format!("{what}: {e}"));
        // A few rounds: the node may change between the check and the
        // write.
        for _ in 0..3 {
            match session
                .within(&what, client.check_stat(&node))
                .await?
                .map_err(failed)?
            {
                Some(stat) if stat.ephemeral_owner == client.session_id().0 => return Ok(()),
                Some(stat) => {
                    // Another session's (an earlier join's): replaced in
                    // one transaction, so no fetch finds the engine gone.
                    let mut takeover = client.new_multi_writer();
                    takeover
                        .add_delete(&node, Some(stat.version))
                        .map_err(failed)?;
                    takeover
                        .add_create(&node, addr.as_bytes(), &EPHEMERAL)
                        .map_err(failed)?;
                    let commit = async { takeover.commit().await.map_err(zk::Error::from) };
                    match session.within(&what, commit).await? {
                        Ok(_) => return Ok(()),
                        Err(zk::Error::NoNode | zk::Error::BadVersion | zk::Error::NodeExists) => {}
                        Err(e) => return Err(failed(e)),
                    }
                }
                None => {
                    let creating = client.create(&node, addr.as_bytes(), &EPHEMERAL);
                    match session.within(&what, creating).await? {
                        Ok(_) => return Ok(()),
                        Err(zk::Error::NodeExists) => {}
                        Err(zk::Error::NoNode) => {
                            let mkdir = client.mkdir(&self.nodes, &DIRECTORY);
                            session.within(&what, mkdir).await?.map_err(failed)?;
                        }
                        Err(e) => return Err(failed(e)),
                    }
                }
            }
        }
        Err(session.failed(format!("{what}: the znode kept changing under us")))
    }

    /// Waits until the registered set may have changed, so the caller
    /// fetches again: at once when it differs from the last
    /// [`ZkDiscovery::fetch`], else when a ZooKeeper watch on the
    /// directory fires or the connection is lost. An error when the watch
    /// cannot be set (ZooKeeper unreachable): wait before calling again.
    pub async fn changed(&self) -> Result<(), DiscoveryError> {
        let session = self.session();
        let client = session.client(None).await?;
        let mut state = client.state_watcher();
        state.state();
        let last = self.last();
        let what = format!("watching {}", self.nodes);
        let failed = |e: zk::Error| session.failed(format!("{what}: {e}"));
        let watching = client.get_and_watch_children(&self.nodes);
        let watcher = match session.within(&what, watching).await? {
            Ok((names, _, watcher)) => {
                let now = addresses(names, false);
                if last.is_some_and(|last| last != now) {
                    return Ok(());
                }
                watcher
            }
            Err(zk::Error::NoNode) => {
                // No directory yet: watch for its creation.
                let watching = client.check_and_watch_stat(&self.nodes);
                match session.within(&what, watching).await?.map_err(failed)? {
                    (Some(_), _) => return Ok(()),
                    (None, watcher) => {
                        if last.is_some_and(|last| !last.is_empty()) {
                            return Ok(());
                        }
                        watcher
                    }
                }
            }
            Err(e) => return Err(failed(e)),
        };
        tokio::select! {
            _ = watcher.changed() => {}
            _ = async {
                loop {
                    let now = state.changed().await;
                    if now == zk::SessionState::Disconnected || now.is_terminated() {
                        break;
                    }
                }
            } => {}
        }
        Ok(())
    }

    fn remember(&self, addrs: &[String]) {
        if let Ok(mut last) = self.shared.last.lock() {
            *last = Some(addrs.to_vec());
        }
    }

    fn last(&self) -> Option<Vec<String>> {
        self.shared.last.lock().ok().and_then(|last| last.clone())
    }
}

/// Whether `addr` can be registered: `HOST:PORT`, which is also a valid
/// znode name (no scheme, no slash).
fn is_engine_address(addr: &str) -> bool {
    !addr.contains('/') && super::validate_address(addr).is_ok()
}

/// The engine addresses among a directory's children, sorted; the others
/// are left out (with a warning when `warn`).
fn addresses(names: Vec<String>, warn: bool) -> Vec<String> {
    let mut addrs: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let ok = is_engine_address(name);
            if !ok && warn {
                tracing::warn!(entry = %name, "zk discovery: not an engine address, ignored");
            }
            ok
        })
        .collect();
    addrs.sort();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classics() {
        let d = ZkDiscovery::parse("10.0.0.1:2181,10.0.0.2/swarm/prod").unwrap();
        assert_eq!(d.url(), "zk://10.0.0.1:2181,10.0.0.2:2181/swarm/prod");
        assert_eq!(d.nodes_path(), "/swarm/prod/docker/swarm/nodes");
        assert_eq!(format!("{d:?}"), d.url());
        let d = ZkDiscovery::parse("zk1").unwrap();
        assert_eq!(d.nodes_path(), "/docker/swarm/nodes");
        assert_eq!(d, ZkDiscovery::parse("zk1:2181/").unwrap());
        assert_ne!(d, ZkDiscovery::parse("zk1:2181/other").unwrap());
    }

    #[test]
    fn bad_urls_name_the_url() {
        for (rest, expect) in [
            ("", "no server"),
            ("h:0/p", "is not a port"),
            ("h/a//b", "empty segment"),
        ] {
            let err = ZkDiscovery::parse(rest).expect_err(rest).to_string();
            assert!(err.contains(&format!("zk://{rest}")), "{rest:?}: {err}");
            assert!(err.contains(expect), "{rest:?}: {err}");
        }
    }

    #[test]
    fn engine_addresses_only() {
        assert!(is_engine_address("10.0.0.1:2375"));
        assert!(is_engine_address("node-1:2375"));
        for bad in [
            "10.0.0.1",
            "tcp://10.0.0.1:2375",
            "unix:///run/d.sock",
            "a/b:1",
            "",
        ] {
            assert!(!is_engine_address(bad), "{bad}");
        }
        let names = ["b:2", "junk", "a:1"].map(String::from).to_vec();
        assert_eq!(addresses(names, false), ["a:1", "b:2"]);
    }

    #[tokio::test]
    async fn register_refuses_what_is_no_engine_address() {
        let d = ZkDiscovery::parse("127.0.0.1:1").unwrap();
        let err = d
            .register("tcp://10.0.0.1:2375", Duration::from_secs(3))
            .await;
        assert!(matches!(err, Err(DiscoveryError::BadAddress(_))), "{err:?}");
    }

    #[tokio::test]
    async fn a_store_that_is_down_fails_fast_naming_the_url() {
        // A port nothing listens on: bound, then freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let d = ZkDiscovery::parse(&format!("127.0.0.1:{port}/x")).unwrap();
        let started = std::time::Instant::now();
        let err = d.fetch().await.unwrap_err().to_string();
        assert!(
            started.elapsed() < session::CONNECT_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        assert!(err.contains(&format!("zk://127.0.0.1:{port}/x")), "{err}");
        assert!(err.contains("cannot connect"), "{err}");
        let err = d.changed().await.unwrap_err().to_string();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
