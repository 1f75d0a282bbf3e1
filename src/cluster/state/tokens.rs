//! Discovery kept in the state: the cluster's discovery URL (one setting
//! of the cluster, not each manager's flag) and token discovery served by
//! the managers (`swarm create`, `swarm join token://TOKEN`): the engines
//! registered under each token and when each registration ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::ApplyError;
use super::ClusterState;

/// The engines registered under one token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCluster {
    /// When the token was made (Unix milliseconds).
    pub created_ms: u64,
    /// Engine address (`IP:PORT`) → when its registration ends (Unix
    /// milliseconds): a `swarm join` renews it every heartbeat.
    pub engines: BTreeMap<String, u64>,
}

impl TokenCluster {
    /// The engines whose registration has not ended at `now_ms`.
    pub fn live(&self, now_ms: u64) -> Vec<String> {
        self.engines
            .iter()
            .filter(|(_, ends)| **ends > now_ms)
            .map(|(addr, _)| addr.clone())
            .collect()
    }
}

impl ClusterState {
    /// [`super::Command::TokenCreated`]: a no-op for a token that exists.
    pub(super) fn token_created(&mut self, token: String, at_ms: u64) -> Result<(), ApplyError> {
        self.tokens.entry(token).or_insert(TokenCluster {
            created_ms: at_ms,
            engines: BTreeMap::new(),
        });
        Ok(())
    }

    /// [`super::Command::TokenRegistered`]: the engine's registration ends
    /// `ttl_ms` after `at_ms`; registrations that ended before `at_ms` go.
    pub(super) fn token_registered(
        &mut self,
        token: String,
        addr: String,
        at_ms: u64,
        ttl_ms: u64,
    ) -> Result<(), ApplyError> {
        let cluster = self
            .tokens
            .get_mut(&token)
            .ok_or(ApplyError::UnknownToken(token))?;
        cluster.engines.retain(|_, ends| *ends > at_ms);
        cluster.engines.insert(addr, at_ms.saturating_add(ttl_ms));
        Ok(())
    }

    /// [`super::Command::TokenDeleted`].
    pub(super) fn token_deleted(&mut self, token: String) -> Result<(), ApplyError> {
        self.tokens
            .remove(&token)
            .map(|_| ())
            .ok_or(ApplyError::UnknownToken(token))
    }

    /// [`super::Command::DiscoverySet`].
    pub(super) fn discovery_set(&mut self, url: String) -> Result<(), ApplyError> {
        self.discovery = Some(url);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    #[test]
    fn registrations_live_until_their_ttl() {
        let mut state = ClusterState::default();
        let register = |addr: &str, at_ms| Command::TokenRegistered {
            token: "t1".into(),
            addr: addr.into(),
            at_ms,
            ttl_ms: 3_000,
        };
        assert_eq!(
            state.apply(register("10.0.0.1:2375", 1_000)),
            Err(ApplyError::UnknownToken("t1".into()))
        );
        state
            .apply(Command::TokenCreated {
                token: "t1".into(),
                at_ms: 500,
            })
            .expect("created");
        state.apply(register("10.0.0.1:2375", 1_000)).expect("a");
        state.apply(register("10.0.0.2:2375", 2_000)).expect("b");
        assert_eq!(
            state.tokens["t1"].live(3_500),
            ["10.0.0.1:2375", "10.0.0.2:2375"]
        );
        assert_eq!(state.tokens["t1"].live(4_500), ["10.0.0.2:2375"]);
        // A renewal keeps it; a later registration drops what had ended.
        state
            .apply(register("10.0.0.2:2375", 4_900))
            .expect("renewed");
        assert_eq!(state.tokens["t1"].engines.len(), 1);
        assert_eq!(state.tokens["t1"].live(7_000), ["10.0.0.2:2375"]);
        // Made again: nothing lost.
        state
            .apply(Command::TokenCreated {
                token: "t1".into(),
                at_ms: 9_000,
            })
            .expect("again");
        assert_eq!(state.tokens["t1"].created_ms, 500);
        state
            .apply(Command::TokenDeleted { token: "t1".into() })
            .expect("deleted");
        assert!(state.tokens.is_empty());
        state
            .apply(Command::DiscoverySet {
                url: "token://t2".into(),
            })
            .expect("set");
        assert_eq!(state.discovery.as_deref(), Some("token://t2"));
        for id in ["A", "B"] {
            state
                .apply(Command::ClusterIdSet { id: id.into() })
                .expect("id");
        }
        assert_eq!(state.cluster_id.as_deref(), Some("A"), "the first stays");
    }
}
