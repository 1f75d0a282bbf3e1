//! Discovery: which engines make up the cluster.
//!
//! A discovery URL resolves to a set of engine addresses. `nodes://` lists
//! them inline, `file://` names a file that is re-read when it changes, so
//! nodes come and go. Both accept Swarm classic's ranges: `10.0.0.[10:20]:2375`
//! stands for eleven addresses. An address is `HOST:PORT` (plain TCP),
//! `tcp://HOST:PORT` or `unix:///path/to/docker.sock`. `token://TOKEN`
//! names the engines registered under a token with the managers'
//! token service (see [`token`]).

use std::path::PathBuf;
use std::sync::Arc;

mod endpoint;
pub mod etcd;
pub mod join;
pub mod token;
pub mod zk;

/// Why a discovery URL or its content is unusable.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The URL has no scheme this build knows.
    #[error("unsupported discovery {0:?}: expected nodes://HOST:PORT,..., file:///path, token://[MANAGER/]TOKEN, etcd://HOST:PORT,.../PATH or zk://HOST:PORT,.../PATH (consul:// is not served: no Consul server could be run to test it)")]
    UnsupportedScheme(String),
    /// The URL names no engine.
    #[error("discovery {0:?} lists no engine")]
    Empty(String),
    /// An entry is not an engine address.
    #[error("invalid engine address {0:?}: expected HOST:PORT, tcp://HOST:PORT or unix:///path")]
    BadAddress(String),
    /// A `[a:b]` range is malformed.
    #[error("invalid range in {entry:?}: {why}")]
    BadRange {
        /// The entry holding the range.
        entry: String,
        /// What is wrong with it.
        why: String,
    },
    /// A `token://` URL is malformed or names no hub where one is needed.
    #[error("invalid token discovery {url:?}: {why}")]
    BadToken {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The managers serving token discovery failed or refused.
    #[error("token discovery at {hub}: {why}")]
    Hub {
        /// The manager asked.
        hub: String,
        /// What went wrong.
        why: String,
    },
    /// `swarm join` with a discovery that lists its engines itself.
    #[error(
        "nothing to join: nodes:// and file:// list their engines themselves; add the engine there"
    )]
    NotJoinable,
    /// The discovery file could not be read.
    #[error("cannot read discovery file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An `etcd://` or `zk://` URL is malformed.
    #[error("invalid discovery {url:?}: {why}")]
    BadStoreUrl {
        /// The whole URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The TLS options of the store (`kv.cacertfile`, `kv.certfile`,
    /// `kv.keyfile`) are unusable.
    #[error("discovery TLS: {0}")]
    StoreTls(String),
    /// The store could not be reached, or refused or failed a request.
    #[error("discovery {url}: {why}")]
    Store {
        /// The store's URL, `etcd://...` or `zk://...`.
        url: String,
        /// What failed.
        why: String,
    },
}

/// Ranges larger than this are refused as a likely typo.
const MAX_RANGE: u64 = 65_536;

/// A parsed discovery URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// A fixed list of engines.
    Nodes(Vec<String>),
    /// A file with one engine address (or range) per line; `#` starts a comment.
    File(PathBuf),
    /// The engines registered in an etcd (`etcd://HOST:PORT,.../PATH`).
    Etcd(etcd::EtcdDiscovery),
    /// The engines registered in a ZooKeeper (`zk://HOST:PORT,.../PATH`).
    Zk(zk::ZkDiscovery),
    /// The engines registered under a token with the managers' token
    /// service at `hub` (a manager's API address); without a hub, the
    /// manager's own.
    Token {
        /// A manager's API address, when the URL or `--manager` names one.
        hub: Option<String>,
        /// The token.
        token: String,
    },
}

impl Discovery {
    /// Parses a discovery URL.
    pub fn parse(url: &str) -> Result<Discovery, DiscoveryError> {
        Discovery::parse_with(url, None)
    }

    /// Parses a discovery URL, with TLS to a key-value store when given
    /// (classic's `--discovery-opt kv.cacertfile=... kv.certfile=...
    /// kv.keyfile=...`).
    pub fn parse_with(url: &str, kv_tls: Option<etcd::KvTls>) -> Result<Discovery, DiscoveryError> {
        if let Some(rest) = url.strip_prefix("etcd://") {
            return Ok(Discovery::Etcd(etcd::EtcdDiscovery::parse(rest, kv_tls)?));
        }
        if let Some(rest) = url.strip_prefix("zk://") {
            return Ok(Discovery::Zk(zk::ZkDiscovery::parse(rest)?));
        }
        if let Some(rest) = url.strip_prefix("nodes://") {
            let addrs = expand_list(rest.split(','))?;
            if addrs.is_empty() {
                return Err(DiscoveryError::Empty(url.to_string()));
            }
            Ok(Discovery::Nodes(addrs))
        } else if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(DiscoveryError::Empty(url.to_string()));
            }
            Ok(Discovery::File(PathBuf::from(path)))
        } else if let Some(rest) = url.strip_prefix("token://") {
            let bad = |why: &str| DiscoveryError::BadToken {
                url: url.to_string(),
                why: why.to_string(),
            };
            let (hub, token) = match rest.rsplit_once('/') {
                Some((hub, token)) => {
                    validate_address(hub).map_err(|_| bad("the hub is not HOST:PORT"))?;
                    (Some(hub.to_string()), token)
                }
                None => (None, rest),
            };
            if !token::valid_token(token) {
                return Err(bad("a token is 1 to 64 letters, digits, - or _"));
            }
            Ok(Discovery::Token {
                hub,
                token: token.to_string(),
            })
        } else if !url.contains("://") && !url.trim().is_empty() {
            // Classic's bare `IP:PORT,IP:PORT` is a nodes:// list.
            Discovery::parse(&format!("nodes://{url}"))
        } else {
            Err(DiscoveryError::UnsupportedScheme(url.to_string()))
        }
    }

    /// This discovery with `hub` as its token service when it is a
    /// `token://` URL that names none.
    pub fn with_hub(self, hub: Option<&str>) -> Discovery {
        match (self, hub) {
            (Discovery::Token { hub: None, token }, Some(hub)) => Discovery::Token {
                hub: Some(hub.to_string()),
                token,
            },
            (other, _) => other,
        }
    }

    /// The manager a `token://` discovery asks, when it names one.
    pub fn token_hub(&self) -> Option<&str> {
        match self {
            Discovery::Token { hub, .. } => hub.as_deref(),
            _ => None,
        }
    }

    /// The engine addresses this discovery names now.
    pub async fn fetch(&self) -> Result<Vec<String>, DiscoveryError> {
        self.fetch_with(None).await
    }

    /// [`Discovery::fetch`], asking a `token://` discovery's manager over
    /// TLS with `hub_tls` when given.
    pub async fn fetch_with(
        &self,
        hub_tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Vec<String>, DiscoveryError> {
        match self {
            Discovery::Nodes(addrs) => Ok(addrs.clone()),
            Discovery::File(path) => {
                let text =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|source| DiscoveryError::Io {
                            path: path.clone(),
                            source,
                        })?;
                parse_file(&text)
            }
            Discovery::Etcd(etcd) => etcd.fetch().await,
            Discovery::Zk(zk) => zk.fetch().await,
            Discovery::Token {
                hub: Some(hub),
                token,
            } => token::TokenHub::new(hub, hub_tls)?.fetch(token).await,
            Discovery::Token { hub: None, token } => Err(DiscoveryError::BadToken {
                url: format!("token://{token}"),
                why: "no manager serves it here: name one, token://MANAGER:PORT/TOKEN or --manager"
                    .into(),
            }),
        }
    }

    /// Whether the set can change over time (and so is worth watching).
    pub fn is_dynamic(&self) -> bool {
        matches!(
            self,
            Discovery::File(_) | Discovery::Token { .. } | Discovery::Etcd(_) | Discovery::Zk(_)
        )
    }
}

/// Parses a discovery file's content.
pub fn parse_file(text: &str) -> Result<Vec<String>, DiscoveryError> {
    let entries = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split(','));
    expand_list(entries)
}

fn expand_list<'a>(entries: impl Iterator<Item = &'a str>) -> Result<Vec<String>, DiscoveryError> {
    let mut out = Vec::new();
    for entry in entries.map(str::trim).filter(|e| !e.is_empty()) {
        for addr in expand(entry)? {
            validate_address(&addr)?;
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// Expands one `[a:b]` range in `entry` (at most one, as classic).
pub fn expand(entry: &str) -> Result<Vec<String>, DiscoveryError> {
    let bad = |why: &str| DiscoveryError::BadRange {
        entry: entry.to_string(),
        why: why.to_string(),
    };
    let Some(open) = entry.find('[') else {
        if entry.contains(']') {
            return Err(bad("']' without '['"));
        }
        return Ok(vec![entry.to_string()]);
    };
    let close = entry[open..]
        .find(']')
        .map(|i| i + open)
        .ok_or_else(|| bad("'[' without ']'"))?;
    let (prefix, suffix) = (&entry[..open], &entry[close + 1..]);
    if suffix.contains('[') || suffix.contains(']') {
        return Err(bad("only one range is allowed"));
    }
    let (from, to) = entry[open + 1..close]
        .split_once(':')
        .ok_or_else(|| bad("expected [FROM:TO]"))?;
    let from: u64 = from
        .trim()
        .parse()
        .map_err(|_| bad("FROM is not a number"))?;
    let to: u64 = to.trim().parse().map_err(|_| bad("TO is not a number"))?;
    if from > to {
        return Err(bad("FROM is greater than TO"));
    }
    if to - from >= MAX_RANGE {
        return Err(bad("range is too large"));
    }
    Ok((from..=to)
        .map(|i| format!("{prefix}{i}{suffix}"))
        .collect())
}

/// Checks that `addr` is an engine address: `HOST:PORT`,
/// `tcp://HOST:PORT` or `unix:///path`.
pub fn validate_address(addr: &str) -> Result<(), DiscoveryError> {
    let bad = || DiscoveryError::BadAddress(addr.to_string());
    if let Some(path) = addr.strip_prefix("unix://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(bad())
        };
    }
    let hostport = addr
        .strip_prefix("tcp://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    if hostport.contains("://") || hostport.contains('/') {
        return Err(bad());
    }
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map(|p| p == 0).unwrap_or(true) {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_lists_and_ranges() {
        let d = Discovery::parse("nodes://10.0.0.[10:12]:2375,10.0.1.1:2375").unwrap();
        assert_eq!(
            d,
            Discovery::Nodes(vec![
                "10.0.0.10:2375".into(),
                "10.0.0.11:2375".into(),
                "10.0.0.12:2375".into(),
                "10.0.1.1:2375".into(),
            ])
        );
    }

    #[test]
    fn range_in_port_and_unix_paths() {
        let d = Discovery::parse("nodes://127.0.0.1:[2375:2376],unix:///run/d.sock").unwrap();
        assert_eq!(
            d,
            Discovery::Nodes(vec![
                "127.0.0.1:2375".into(),
                "127.0.0.1:2376".into(),
                "unix:///run/d.sock".into(),
            ])
        );
    }

    #[test]
    fn classic_bare_lists_and_tokens() {
        assert_eq!(
            Discovery::parse("10.0.0.1:2375,10.0.0.[2:3]:2375").expect("bare"),
            Discovery::Nodes(vec![
                "10.0.0.1:2375".into(),
                "10.0.0.2:2375".into(),
                "10.0.0.3:2375".into()
            ])
        );
        assert_eq!(
            Discovery::parse("token://abc").expect("token"),
            Discovery::Token {
                hub: None,
                token: "abc".into()
            }
        );
        let hubbed = Discovery::parse("token://10.0.0.1:4000/abc").expect("hub");
        assert_eq!(
            hubbed,
            Discovery::Token {
                hub: Some("10.0.0.1:4000".into()),
                token: "abc".into()
            }
        );
        assert_eq!(
            Discovery::parse("token://abc")
                .expect("token")
                .with_hub(Some("m:1")),
            Discovery::Token {
                hub: Some("m:1".into()),
                token: "abc".into()
            }
        );
        assert_eq!(hubbed.clone().with_hub(Some("m:1")), hubbed);
        for bad in [
            "token://",
            "token://a b",
            "token://nohost/abc",
            "token://h:1/",
        ] {
            let e = Discovery::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid token discovery"), "{bad}: {e}");
        }
    }

    #[test]
    fn duplicates_collapse() {
        let d = Discovery::parse("nodes://a:1,a:1,tcp://b:2").unwrap();
        assert_eq!(d, Discovery::Nodes(vec!["a:1".into(), "tcp://b:2".into()]));
    }

    #[test]
    fn bad_urls_are_refused() {
        for (url, expect) in [
            ("consul://x", "unsupported discovery"),
            ("nodes://", "lists no engine"),
            ("nodes://,,", "lists no engine"),
            ("nodes://10.0.0.[5:1]:2375", "FROM is greater than TO"),
            ("nodes://10.0.0.[a:3]:2375", "FROM is not a number"),
            ("nodes://10.0.0.[1:b]:2375", "TO is not a number"),
            ("nodes://10.0.0.[1-3]:2375", "expected [FROM:TO]"),
            ("nodes://10.0.0.[1:3:2375", "without ']'"),
            ("nodes://10.0.0.1]:2375", "without '['"),
            ("nodes://10.[0:1].0.[1:3]:2375", "only one range"),
            ("nodes://10.0.0.[0:99999999]:2375", "too large"),
            ("nodes://10.0.0.1", "invalid engine address"),
            ("nodes://10.0.0.1:0", "invalid engine address"),
            ("nodes://10.0.0.1:99999", "invalid engine address"),
            ("nodes://:2375", "invalid engine address"),
            ("nodes://unix://relative.sock", "invalid engine address"),
            ("nodes://http://x/y:1", "invalid engine address"),
            ("file://", "lists no engine"),
        ] {
            let err = Discovery::parse(url).expect_err(url).to_string();
            assert!(err.contains(expect), "{url}: {err}");
        }
    }

    #[test]
    fn file_content_with_comments_and_ranges() {
        let text = "# engines\n10.0.0.[1:2]:2375 # two\n\n  unix:///a.sock  \n10.0.0.9:2375,10.0.0.8:2375\n";
        assert_eq!(
            parse_file(text).unwrap(),
            vec![
                "10.0.0.1:2375",
                "10.0.0.2:2375",
                "unix:///a.sock",
                "10.0.0.9:2375",
                "10.0.0.8:2375"
            ]
        );
        assert!(parse_file("10.0.0.1\n").is_err());
        assert!(parse_file("# nothing\n").unwrap().is_empty());
    }

    #[tokio::test]
    async fn file_is_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster");
        std::fs::write(&path, "127.0.0.1:1\n").unwrap();
        let d = Discovery::parse(&format!("file://{}", path.display())).unwrap();
        assert!(d.is_dynamic());
        assert_eq!(d.fetch().await.unwrap(), vec!["127.0.0.1:1"]);
        std::fs::write(&path, "127.0.0.1:1\n127.0.0.1:2\n").unwrap();
        assert_eq!(d.fetch().await.unwrap(), vec!["127.0.0.1:1", "127.0.0.1:2"]);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(d.fetch().await, Err(DiscoveryError::Io { .. })));
    }
}
