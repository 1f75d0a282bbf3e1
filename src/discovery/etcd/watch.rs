//! Waiting for the registered engines to change: an etcd watch of the
//! prefix.

use std::sync::atomic::Ordering;

use etcd_client::WatchOptions;

use super::{conn, EtcdDiscovery, REQUEST_TIMEOUT};
use crate::discovery::DiscoveryError;

impl EtcdDiscovery {
    /// Waits until the registered engines may differ from what the last
    /// [`EtcdDiscovery::fetch`] returned (at once if they changed since):
    /// an etcd watch of the prefix from the revision after that fetch
    /// (before any fetch, from now). A registration, an expiry or a
    /// deletion wakes it; a renewal changes nothing and does not. The store
    /// unreachable (within the time bounds) or the watch broken end it with
    /// an error: back off, fetch again, then wait again.
    pub async fn changed(&self) -> Result<(), DiscoveryError> {
        let conn = &self.state.conn;
        let (generation, mut client) = conn.client().await?;
        let mut options = WatchOptions::new().with_prefix();
        let fetched = self.state.fetched.load(Ordering::SeqCst);
        if fetched > 0 {
            options = options.with_start_revision(fetched + 1);
        }
        let prefix = self.config.prefix.clone();
        let watch = tokio::time::timeout(REQUEST_TIMEOUT, client.watch(prefix, Some(options)));
        let (_watcher, mut stream) = match watch.await {
            Ok(Ok(watch)) => watch,
            Ok(Err(e)) => {
                conn.forget(generation).await;
                let why = conn::describe(&e);
                return Err(conn.error(format!("watching the engines: {why}")));
            }
            Err(_) => {
                conn.forget(generation).await;
                return Err(conn.error(format!(
                    "watching the engines: no answer within {REQUEST_TIMEOUT:?}"
                )));
            }
        };
        loop {
            match stream.message().await {
                // Canceled: compacted past the revision fetched, say; the
                // caller fetches again either way.
                Ok(Some(response)) if response.canceled() || !response.events().is_empty() => {
                    return Ok(())
                }
                Ok(Some(_)) => continue,
                Ok(None) => {
                    conn.forget(generation).await;
                    return Err(conn.error("watching the engines: the store ended the watch"));
                }
                Err(e) => {
                    conn.forget(generation).await;
                    let why = conn::describe(&e);
                    return Err(conn.error(format!("watching the engines: {why}")));
                }
            }
        }
    }
}
