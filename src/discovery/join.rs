//! `swarm join`: keeps an engine registered with a discovery store, as
//! classic's did: the engine is checked first (a registration of an engine
//! nobody can reach would only make a node that never turns healthy), then
//! registered for `ttl`, again every `heartbeat`, so that it disappears
//! from the cluster `ttl` after its join stops.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{Discovery, DiscoveryError};
use crate::upstream::{Upstream, UpstreamError};

/// How long the engine's `/_ping` may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// What `swarm join` does.
#[derive(Debug, Clone)]
pub struct Join {
    /// Where to register.
    pub discovery: Discovery,
    /// The engine's address, `IP:PORT`.
    pub advertise: String,
    /// Time between registrations.
    pub heartbeat: Duration,
    /// How long a registration lasts.
    pub ttl: Duration,
    /// Longest random wait before the first registration.
    pub delay: Duration,
    /// TLS to a `token://` discovery's manager, when it serves TLS.
    pub hub_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Discovery {
    /// Registers engine `addr` for `ttl` (see [`Join`]), with a `token://`
    /// discovery's manager over TLS with `hub_tls` when given; an error for
    /// a discovery that lists its engines itself.
    pub async fn register(
        &self,
        addr: &str,
        ttl: Duration,
        hub_tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<(), DiscoveryError> {
        match self {
            Discovery::Token {
                hub: Some(hub),
                token,
            } => {
                super::token::TokenHub::new(hub, hub_tls)?
                    .register(token, addr, ttl)
                    .await
            }
            Discovery::Token { hub: None, token } => Err(DiscoveryError::BadToken {
                url: format!("token://{token}"),
                why:
                    "no manager to register with: name one, token://MANAGER:PORT/TOKEN or --manager"
                        .into(),
            }),
            Discovery::Etcd(etcd) => etcd.register(addr, ttl).await,
            Discovery::Zk(zk) => zk.register(addr, ttl).await,
            Discovery::Nodes(_) | Discovery::File(_) => Err(DiscoveryError::NotJoinable),
        }
    }

    /// Waits until the engines may have changed: the store's word where
    /// it gives one (an etcd or ZooKeeper watch, at most ten polls long),
    /// else `poll`.
    pub async fn changed_or(&self, poll: Duration) {
        let watch = match self {
            Discovery::Etcd(etcd) => Some(etcd.changed().boxed()),
            Discovery::Zk(zk) => Some(zk.changed().boxed()),
            _ => None,
        };
        if let Some(watch) = watch {
            match tokio::time::timeout(poll * 10, watch).await {
                // A change, or a long quiet: look again now.
                Ok(Ok(())) | Err(_) => return,
                // The watch failed (the store is down): poll.
                Ok(Err(_)) => {}
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// Runs `join` until `cancel`: checks the engine, registers it, and again
/// every heartbeat. Returns an error only for what retrying cannot mend
/// (a discovery that takes no registrations); an engine that does not
/// answer or a store that fails is logged and tried again.
pub async fn run(join: Join, cancel: CancellationToken) -> Result<(), DiscoveryError> {
    if matches!(join.discovery, Discovery::Nodes(_) | Discovery::File(_)) {
        return Err(DiscoveryError::NotJoinable);
    }
    super::validate_address(&join.advertise)?;
    if !join.delay.is_zero() {
        let wait = join.delay.mul_f64(fraction());
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let engine = Upstream::new(&join.advertise)
        .map_err(|_| DiscoveryError::BadAddress(join.advertise.clone()))?;
    let mut registered = false;
    loop {
        match engine_answers(&engine).await {
            Err(why) => tracing::error!(
                engine = %join.advertise,
                %why,
                "the engine does not answer; not registered (is dockerd listening on tcp://{}?)",
                join.advertise
            ),
            Ok(()) => match join
                .discovery
                .register(&join.advertise, join.ttl, join.hub_tls.as_ref())
                .await
            {
                Ok(()) => {
                    if !registered {
                        tracing::info!(engine = %join.advertise, ttl = ?join.ttl, heartbeat = ?join.heartbeat, "registered");
                    }
                    registered = true;
                }
                Err(e) => {
                    registered = false;
                    tracing::error!(engine = %join.advertise, error = %e, "registration failed");
                }
            },
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(join.heartbeat) => {}
        }
    }
}

/// Whether the engine answers `GET /_ping` (any HTTP answer counts: an
/// engine serving TLS answers a plain request with a 400).
async fn engine_answers(engine: &Upstream) -> Result<(), String> {
    let ping = engine.call(hyper::Method::GET, "/_ping", None);
    match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Err(_) => Err(format!("no answer to /_ping within {PING_TIMEOUT:?}")),
        Ok(Ok(_)) | Ok(Err(UpstreamError::Status { .. })) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// A number in [0, 1), different in each process.
fn fraction() -> f64 {
    let hex = crate::ids::random_hex32();
    let bits = u64::from_str_radix(&hex[..13], 16).unwrap_or(0);
    bits as f64 / (1u64 << 52) as f64
}
