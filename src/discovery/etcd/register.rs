//! Registering an engine: its key bound to a lease that each call renews.
//!
//! One lease per address, kept alive while the TTL stays the same, rather
//! than a new lease at every heartbeat: a renewal then writes nothing (a
//! keep-alive, and a read-only check that the key is still there and
//! bound), so a watch of the engines wakes only when one comes or goes.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use super::{EtcdDiscovery, Lease};
use crate::discovery::DiscoveryError;

impl EtcdDiscovery {
    /// Registers `addr` (an engine's `HOST:PORT`) for `ttl` (whole seconds,
    /// rounded up; etcd may raise a very short one to its minimum): the key
    /// `PREFIX/addr` bound to a lease of `ttl`. Called again every heartbeat
    /// by `swarm join`, before the TTL ends: while the TTL stays the same it
    /// keeps the address's lease alive (and puts the key back if it was
    /// deleted or changed); a lease that expired meanwhile, or another TTL,
    /// takes a new lease (and revokes the old one). Each address has its
    /// own lease.
    pub async fn register(&self, addr: &str, ttl: Duration) -> Result<(), DiscoveryError> {
        crate::discovery::validate_address(addr)?;
        if addr.contains('/') {
            return Err(DiscoveryError::BadAddress(addr.to_string()));
        }
        let ttl = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        // One registration at a time: their leases are one map.
        let mut held = self.state.leases.lock().await;
        let old = held.get(addr).copied();
        if let Some(lease) = old.filter(|l| l.ttl == ttl) {
            if self.renew(addr, lease.id).await? {
                return Ok(());
            }
        }
        let id = self.grant_and_put(addr, ttl).await?;
        held.insert(addr.to_string(), Lease { id, ttl });
        if let Some(old) = old.filter(|old| old.id != id) {
            // Best effort: unrenewed, it expires anyway.
            let revoked = self
                .state
                .conn
                .request("revoking the previous lease", |mut client| async move {
                    client.lease_revoke(old.id).await
                })
                .await;
            if let Err(e) = revoked {
                tracing::debug!(error = %e, "previous discovery lease not revoked");
            }
        }
        Ok(())
    }

    /// Keeps lease `id` alive and makes sure `addr`'s key holds the
    /// address and is bound to it; false if the lease has expired.
    async fn renew(&self, addr: &str, id: i64) -> Result<bool, DiscoveryError> {
        let alive = self
            .state
            .conn
            .request("renewing the registration", |mut client| async move {
                match client.lease_keep_alive(id).await {
                    Ok(_) => Ok(true),
                    // etcd-client's word for an answer of TTL 0.
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if !alive {
            return Ok(false);
        }
        let (key, addr) = (self.key(addr), addr.to_string());
        let txn = Txn::new()
            .when([
                Compare::lease(key.clone(), CompareOp::Equal, id),
                Compare::value(key.clone(), CompareOp::Equal, addr.clone()),
            ])
            .or_else([TxnOp::put(
                key,
                addr,
                Some(PutOptions::new().with_lease(id)),
            )]);
        self.state
            .conn
            .request("renewing the registration", |mut client| async move {
                client.txn(txn).await
            })
            .await?;
        Ok(true)
    }

    /// Takes a lease of `ttl` seconds and puts `addr`'s key with it.
    async fn grant_and_put(&self, addr: &str, ttl: i64) -> Result<i64, DiscoveryError> {
        let granted = self
            .state
            .conn
            .request("taking a lease", |mut client| async move {
                client.lease_grant(ttl, None).await
            })
            .await?;
        let id = granted.id();
        let (key, value) = (self.key(addr), addr.to_string());
        self.state
            .conn
            .request("registering", |mut client| async move {
                client
                    .put(key, value, Some(PutOptions::new().with_lease(id)))
                    .await
            })
            .await?;
        Ok(id)
    }
}
