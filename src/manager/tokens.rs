//! Token discovery served by the managers, as Docker Hub's discovery
//! service once served it for Swarm classic: `swarm create` asks for a
//! token, `swarm join token://TOKEN` registers an engine under it every
//! heartbeat, `swarm list` and a manager following `token://TOKEN` read
//! the engines whose registration has not ended. Tokens and registrations
//! are in the replicated state, so they survive the loss of a manager.
//! Also the cluster's discovery URL, one setting of the whole cluster.

use std::time::Duration;

use super::{Manager, ManagerError};
use crate::cluster::Command;
use crate::discovery::token::valid_token;

/// Longest registration a join may ask for.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Now, in Unix milliseconds.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Manager {
    /// Makes a new token (32 hex digits, as classic's) and records it.
    pub async fn create_token(&self) -> Result<String, ManagerError> {
        let token = crate::ids::random_hex32();
        self.ensure_token(&token).await?;
        Ok(token)
    }

    /// Records `token` unless it exists (a manager started with
    /// `token://TOKEN` serves that token).
    pub async fn ensure_token(&self, token: &str) -> Result<(), ManagerError> {
        check_token(token)?;
        if self.cluster.read().tokens.contains_key(token) {
            return Ok(());
        }
        self.cluster
            .propose(Command::TokenCreated {
                token: token.to_string(),
                at_ms: now_ms(),
            })
            .await?;
        Ok(())
    }

    /// Registers engine `addr` under `token` for `ttl`.
    pub async fn register_engine(
        &self,
        token: &str,
        addr: &str,
        ttl: Duration,
    ) -> Result<(), ManagerError> {
        check_token(token)?;
        crate::discovery::validate_address(addr)
            .map_err(|e| ManagerError::InvalidRequest(e.to_string()))?;
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(ManagerError::InvalidRequest(format!(
                "invalid ttl {ttl:?}: between 1 s and {MAX_TTL:?}"
            )));
        }
        self.cluster
            .propose(Command::TokenRegistered {
                token: token.to_string(),
                addr: addr.to_string(),
                at_ms: now_ms(),
                ttl_ms: ttl.as_millis() as u64,
            })
            .await?;
        Ok(())
    }

    /// The engines registered under `token` whose registration has not
    /// ended.
    pub fn token_engines(&self, token: &str) -> Result<Vec<String>, ManagerError> {
        self.cluster
            .read()
            .tokens
            .get(token)
            .map(|t| t.live(now_ms()))
            .ok_or_else(|| unknown_token(token))
    }

    /// Deletes `token` and its registrations.
    pub async fn delete_token(&self, token: &str) -> Result<(), ManagerError> {
        self.cluster
            .propose(Command::TokenDeleted {
                token: token.to_string(),
            })
            .await?;
        Ok(())
    }

    /// The cluster's discovery URL, once recorded.
    pub fn cluster_discovery(&self) -> Option<String> {
        self.cluster.read().discovery.clone()
    }

    /// Sets the cluster's discovery URL (checked first): the leader
    /// follows it from its next look at the engines on.
    pub async fn set_discovery(&self, url: &str) -> Result<(), ManagerError> {
        let discovery = crate::discovery::Discovery::parse(url)
            .map_err(|e| ManagerError::InvalidRequest(e.to_string()))?;
        if let crate::discovery::Discovery::Token { hub: None, token } = &discovery {
            self.ensure_token(token).await?;
        }
        self.cluster
            .propose(Command::DiscoverySet {
                url: url.to_string(),
            })
            .await?;
        Ok(())
    }
}

fn check_token(token: &str) -> Result<(), ManagerError> {
    if valid_token(token) {
        Ok(())
    } else {
        Err(ManagerError::InvalidRequest(format!(
            "invalid discovery token {token:?}: 1 to 64 letters, digits, - or _"
        )))
    }
}

fn unknown_token(token: &str) -> ManagerError {
    ManagerError::NotFound(format!(
        "unknown discovery token {token}: make one with swarm create"
    ))
}
