//! The leader follows the cluster's discovery: one URL for the whole
//! cluster, kept in the replicated state. The first leader records the one
//! it was started with; after that every leader follows the recorded one,
//! whatever its own flag says (a manager started with another, or a
//! mistyped, URL says so in its log and does not replace the cluster's
//! nodes when it leads), until `swarmctl discovery set` changes it. The
//! engines are read again every second, at once when an etcd watch says
//! they changed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Manager, DISCOVERY_POLL};
use crate::discovery::{Discovery, DiscoveryError};

impl Manager {
    /// Follows the cluster's discovery until `cancel` (see the module's
    /// documentation); `own_url` is this manager's `swarm manage` URL.
    /// Engines that appear are watched, those that leave forgotten.
    pub async fn run_discovery(self: Arc<Self>, own_url: String, cancel: CancellationToken) {
        let mut followed: Option<(String, Discovery)> = None;
        let mut last_error: Option<String> = None;
        // The engines last set: the same list again changes nothing (and
        // its comparison with the watched engines is not free at
        // thousands of nodes).
        let mut last_addrs: Option<Vec<String>> = None;
        loop {
            let url = match self.cluster_discovery() {
                Some(url) => url,
                None => {
                    if let Err(e) = self.set_discovery(&own_url).await {
                        tracing::warn!(url = %own_url, error = %e, "cannot record the cluster's discovery");
                    }
                    own_url.clone()
                }
            };
            if followed.as_ref().map(|(u, _)| u) != Some(&url) {
                match Discovery::parse_with(&url, self.config.kv_tls.clone()) {
                    Ok(discovery) => {
                        if url != own_url {
                            tracing::warn!(
                                cluster = %url,
                                flag = %own_url,
                                "following the cluster's discovery, not this manager's flag (swarmctl discovery set changes it)"
                            );
                        }
                        if let Discovery::Token { hub: None, token } = &discovery {
                            if let Err(e) = self.ensure_token(token).await {
                                tracing::warn!(%token, error = %e, "cannot record the token");
                            }
                        }
                        tracing::info!(%url, "following discovery");
                        followed = Some((url.clone(), discovery));
                    }
                    Err(e) => {
                        tracing::warn!(%url, error = %e, "the cluster's discovery does not parse; keeping the current engines")
                    }
                }
            }
            if let Some((_, discovery)) = &followed {
                match self.discover(discovery).await {
                    Ok(addrs) => {
                        if last_error.take().is_some() {
                            tracing::info!("discovery answers again");
                        }
                        if last_addrs.as_ref() != Some(&addrs) {
                            self.set_engines(&addrs, &cancel).await;
                            last_addrs = Some(addrs);
                        }
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.as_deref() != Some(text.as_str()) {
                            tracing::warn!(error = %text, "discovery failed; keeping the current engines");
                        }
                        last_error = Some(text);
                    }
                }
            }
            let next = async {
                match &followed {
                    Some((_, discovery)) => discovery.changed_or(DISCOVERY_POLL).await,
                    None => tokio::time::sleep(DISCOVERY_POLL).await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = next => {}
            }
        }
    }

    /// The engine addresses `discovery` names now: a token without a hub
    /// from this cluster's own token service.
    async fn discover(&self, discovery: &Discovery) -> Result<Vec<String>, DiscoveryError> {
        match discovery {
            Discovery::Token { hub: None, token } => {
                self.token_engines(token).map_err(|e| DiscoveryError::Hub {
                    hub: "this cluster".into(),
                    why: e.to_string(),
                })
            }
            other => other.fetch().await,
        }
    }
}
