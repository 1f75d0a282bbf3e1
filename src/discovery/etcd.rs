//! etcd discovery, classic Swarm's `etcd://HOST:PORT[,HOST:PORT...]/PATH`,
//! through the etcd v3 API.
//!
//! The engines are keys under `PATH/docker/swarm/nodes/` (libkv's layout;
//! no leading `/`), one per engine, `PATH/docker/swarm/nodes/IP:PORT` with
//! the address as the value, each bound to a lease: a `swarm join` that
//! stops renewing it drops out when the lease's TTL ends
//! ([`EtcdDiscovery::register`]). An endpoint without a port is on etcd's
//! 2379. [`EtcdDiscovery::changed`] watches the prefix, so that a manager
//! fetches again as soon as an engine comes or goes.
//!
//! The client is made on first use, shared by clones, and dropped after a
//! failed request so that the next call connects anew. Connecting tries
//! every endpoint at once and gives up after [`CONNECT_TIMEOUT`], a request
//! after [`REQUEST_TIMEOUT`]; errors name the URL, and each endpoint's
//! reason when none could be reached.

mod conn;
mod register;
mod store_url;
mod tls;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use etcd_client::GetOptions;
use tokio::sync::Mutex;

use self::conn::Connection;
pub use self::conn::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
pub use self::store_url::{DEFAULT_PORT, NODES_PATH};
pub use self::tls::KvTls;
use self::tls::LoadedTls;
use super::DiscoveryError;

/// An etcd discovery (see the module's documentation). Clones share the
/// client and the registrations.
#[derive(Clone)]
pub struct EtcdDiscovery {
    config: Arc<Config>,
    state: Arc<State>,
}

/// What the URL and the TLS options say.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    url: String,
    endpoints: Vec<String>,
    prefix: String,
    tls: Option<KvTls>,
}

/// The client, the leases held, the revision last fetched.
#[derive(Debug)]
struct State {
    conn: Connection,
    /// The lease of each address registered, by address.
    leases: Mutex<HashMap<String, Lease>>,
    /// The store's revision at the last [`EtcdDiscovery::fetch`], 0 before.
    fetched: AtomicI64,
}

/// The lease an address is registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    id: i64,
    ttl: i64,
}

impl std::fmt::Debug for EtcdDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDiscovery")
            .field("endpoints", &self.config.endpoints)
            .field("prefix", &self.config.prefix)
            .field("tls", &self.config.tls)
            .finish()
    }
}

impl PartialEq for EtcdDiscovery {
    /// Same URL and TLS options.
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for EtcdDiscovery {}

impl EtcdDiscovery {
    /// Parses `rest`, the URL after `etcd://`: `h1:2379,h2:2379/path`
    /// (the path is optional and may be nested, `a/b`; a port defaults to
    /// 2379), and reads `tls`'s files. Connects to nothing yet.
    pub fn parse(rest: &str, tls: Option<KvTls>) -> Result<EtcdDiscovery, DiscoveryError> {
        let url = format!("etcd://{rest}");
        let parsed = store_url::parse(rest).map_err(|why| DiscoveryError::BadStoreUrl {
            url: url.clone(),
            why,
        })?;
        let loaded = tls.as_ref().map(LoadedTls::load).transpose()?;
        let conn = Connection::new(url.clone(), parsed.endpoints.clone(), loaded);
        Ok(EtcdDiscovery {
            config: Arc::new(Config {
                url,
                endpoints: parsed.endpoints,
                prefix: parsed.prefix,
                tls,
            }),
            state: Arc::new(State {
                conn,
                leases: Mutex::new(HashMap::new()),
                fetched: AtomicI64::new(0),
            }),
        })
    }

    /// The URL, `etcd://...`.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The endpoints, `HOST:PORT`.
    pub fn endpoints(&self) -> &[String] {
        &self.config.endpoints
    }

    /// The key prefix of the engines, `PATH/docker/swarm/nodes/`.
    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The key of an engine: the prefix and its address.
    pub fn key(&self, addr: &str) -> String {
        format!("{}{addr}", self.config.prefix)
    }

    /// The engine addresses registered now (those whose lease has not
    /// expired), in key order. A value that is not an engine address is
    /// left out with a warning.
    pub async fn fetch(&self) -> Result<Vec<String>, DiscoveryError> {
        let prefix = self.config.prefix.clone();
        let response = self
            .state
            .conn
            .request("listing the engines", |mut client| async move {
                client
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
            })
            .await?;
        if let Some(header) = response.header() {
            self.state
                .fetched
                .fetch_max(header.revision(), Ordering::SeqCst);
        }
        let mut addrs: Vec<String> = Vec::new();
        for kv in response.kvs() {
            let value = String::from_utf8_lossy(kv.value());
            let addr = value.trim();
            if super::validate_address(addr).is_err() {
                tracing::warn!(
                    url = %self.config.url,
                    key = %String::from_utf8_lossy(kv.key()),
                    value = %value,
                    "ignoring a discovery entry that is not an engine address"
                );
            } else if !addrs.iter().any(|a| a == addr) {
                addrs.push(addr.to_string());
            }
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parse_names_the_url_in_errors() {
        let d = EtcdDiscovery::parse("h1:2379,h2/a/b", None).expect("a good URL");
        assert_eq!(d.url(), "etcd://h1:2379,h2/a/b");
        assert_eq!(d.endpoints(), ["h1:2379", "h2:2379"]);
        assert_eq!(d.prefix(), "a/b/docker/swarm/nodes/");
        assert_eq!(
            d.key("10.0.0.1:2375"),
            "a/b/docker/swarm/nodes/10.0.0.1:2375"
        );
        assert_eq!(d, d.clone());
        assert_ne!(d, EtcdDiscovery::parse("h1:2379,h2/a", None).expect("URL"));

        let err = EtcdDiscovery::parse("h1:2379,h2:0/a", None)
            .expect_err("port 0")
            .to_string();
        assert_eq!(
            err,
            "invalid discovery \"etcd://h1:2379,h2:0/a\": endpoint \"h2:0\": \"0\" is not a port (1 to 65535)"
        );
        let tls = KvTls {
            ca: "/nonexistent/ca.pem".into(),
            cert: None,
            key: None,
        };
        let err = EtcdDiscovery::parse("h1", Some(tls))
            .expect_err("no CA file")
            .to_string();
        assert!(
            err.contains("cannot read kv.cacertfile /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn register_refuses_what_is_not_host_port() {
        // Refused before any connection: nothing listens there.
        let d = EtcdDiscovery::parse("127.0.0.1:1/p", None).expect("URL");
        for addr in ["10.0.0.1", "10.0.0.1:0", "unix:///run/docker.sock", ":2375"] {
            let err = d.register(addr, Duration::from_secs(20)).await;
            assert!(
                matches!(err, Err(DiscoveryError::BadAddress(ref a)) if a == addr),
                "{addr}: {err:?}"
            );
        }
    }
}
