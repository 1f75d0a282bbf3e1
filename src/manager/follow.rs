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
use crate::cluster::Command;
use crate::discovery::{Discovery, DiscoveryError};

impl Manager {
    /// Follows the cluster's discovery until `cancel` (see the module's
    /// documentation); `own_url` is this manager's `swarm manage` URL.
    /// Engines that appear are watched, those that leave forgotten.
    pub async fn run_discovery(self: Arc<Self>, own_url: String, cancel: CancellationToken) {
        if self.cluster.read().cluster_id.is_none() {
            if let Err(e) = self
                .cluster
                .propose(Command::ClusterIdSet {
                    id: new_cluster_id(),
                })
                .await
            {
                tracing::warn!(error = %e, "cannot record the cluster's ID");
            }
        }
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

/// A new cluster ID in the shape of an engine's: twelve groups of four
/// characters (`ABCD:EF01:...`).
fn new_cluster_id() -> String {
    let hex = format!(
        "{}{}",
        crate::ids::random_hex32(),
        crate::ids::random_hex32()
    );
    hex.to_uppercase()
        .as_bytes()
        .chunks(4)
        .take(12)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_look_like_an_engines() {
        let id = super::new_cluster_id();
        assert_eq!(id.len(), 12 * 4 + 11, "{id}");
        assert!(id.split(':').all(|g| g.len() == 4), "{id}");
        assert_ne!(id, super::new_cluster_id());
    }
}
