//! `token://[MANAGER/]TOKEN`: token discovery served by the managers
//! (`/_swarm/tokens`), where Swarm classic used Docker Hub's discovery
//! service. The hub is a manager's API address, given in the URL
//! (`token://10.0.0.1:4000/TOKEN`, as classic's `token://HOST/TOKEN`
//! named another hub) or by `--manager`/`SWARM_MANAGER`; a manager that
//! follows `token://TOKEN` reads its own replicated state.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;

use super::DiscoveryError;
use crate::upstream::Upstream;

/// The API path of the token service.
pub const TOKENS_PATH: &str = "/_swarm/tokens";

/// Whether `token` can be one: 1 to 64 letters, digits, `-` or `_`.
pub fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A client of the token service of the managers at `hub`.
pub struct TokenHub {
    hub: String,
    upstream: Upstream,
}

impl TokenHub {
    /// A client of the manager at `hub` (`HOST:PORT`, `tcp://HOST:PORT`),
    /// over TLS with `tls` when given.
    pub fn new(
        hub: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<TokenHub, DiscoveryError> {
        let upstream = Upstream::connecting(hub, tls).map_err(|e| DiscoveryError::Hub {
            hub: hub.to_string(),
            why: e.to_string(),
        })?;
        Ok(TokenHub {
            hub: hub.to_string(),
            upstream,
        })
    }

    fn failed(&self, e: impl std::fmt::Display) -> DiscoveryError {
        DiscoveryError::Hub {
            hub: self.hub.clone(),
            why: e.to_string(),
        }
    }

    /// A new token, recorded by the managers.
    pub async fn create(&self) -> Result<String, DiscoveryError> {
        let body = self
            .upstream
            .call(Method::POST, TOKENS_PATH, None)
            .await
            .map_err(|e| self.failed(e))?;
        let token = String::from_utf8_lossy(&body).trim().to_string();
        if !valid_token(&token) {
            return Err(self.failed(format!("answered {token:?} for a token")));
        }
        Ok(token)
    }

    /// Registers engine `addr` under `token` for `ttl`.
    pub async fn register(
        &self,
        token: &str,
        addr: &str,
        ttl: Duration,
    ) -> Result<(), DiscoveryError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("addr", addr)
            .append_pair("ttl", &ttl.as_secs().max(1).to_string())
            .finish();
        self.upstream
            .call(
                Method::POST,
                &format!("{TOKENS_PATH}/{token}?{query}"),
                None,
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// The engines registered under `token` now.
    pub async fn fetch(&self, token: &str) -> Result<Vec<String>, DiscoveryError> {
        self.upstream
            .get_json(&format!("{TOKENS_PATH}/{token}"))
            .await
            .map_err(|e| self.failed(e))
    }

    /// Deletes `token` and its registrations.
    pub async fn delete(&self, token: &str) -> Result<(), DiscoveryError> {
        self.upstream
            .call(Method::DELETE, &format!("{TOKENS_PATH}/{token}"), None)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_short_and_plain() {
        assert!(valid_token("86222732d62b6868d441d430aee4f055"));
        assert!(valid_token("my-cluster_1"));
        for bad in ["", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }
}
