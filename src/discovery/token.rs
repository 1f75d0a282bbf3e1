//! `token://[MANAGER/]TOKEN`: token discovery served by the managers
//! (`/_swarm/tokens`), where Swarm classic used Docker Hub's discovery
//! service. The hub is a manager's API address, given in the URL
//! (`token://10.0.0.1:4000/TOKEN`, as classic's `token://HOST/TOKEN`
//! named another hub) or by `--manager`/`SWARM_MANAGER`; a manager that
//! follows `token://TOKEN` reads its own replicated state. A manager
//! serving TLS is asked over TLS (`swarm create`, `join` and `list` take
//! the docker CLI's `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`);
//! a plain request to one fails saying so.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;

use super::DiscoveryError;
use crate::upstream::{Upstream, UpstreamError};

/// The API path of the token service.
pub const TOKENS_PATH: &str = "/_swarm/tokens";

/// Whether `token` can be one: 1 to 64 letters, digits, `-` or `_`.
pub fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Go's answer to plain HTTP on a TLS port, which managers give too.
const PLAIN_TO_TLS: &str = "HTTP request to an HTTPS server";

/// How flags name a client certificate, in hints.
const CERTIFICATE_FLAGS: &str = "--tlscacert, --tlscert, --tlskey; default ca.pem, cert.pem \
     and key.pem in $DOCKER_CERT_PATH, else ~/.docker";

/// A client of the token service of the managers at `hub`.
pub struct TokenHub {
    hub: String,
    upstream: Upstream,
    /// Whether the client speaks TLS.
    tls: bool,
    /// Whether it shows a certificate.
    certificate: bool,
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
            tls: tls.is_some(),
            certificate: tls.is_some_and(|c| c.client_auth_cert_resolver.has_certs()),
        })
    }

    /// The error of a failed call; a plain request that a manager serving
    /// TLS refused, or a TLS one without the certificate it asked for,
    /// says which flags reach it.
    fn failed(&self, e: UpstreamError) -> DiscoveryError {
        let why = match &e {
            UpstreamError::Status {
                status: 400,
                message,
                ..
            } if !self.tls && message.contains(PLAIN_TO_TLS) => format!(
                "the manager serves TLS and this request was plain HTTP ({message}): \
                 give --tlsverify and a client certificate of its CA ({CERTIFICATE_FLAGS})"
            ),
            // Under TLS 1.3 the refusal comes after the handshake: the
            // client reads an alert, or a connection already closed.
            UpstreamError::Connect { .. }
            | UpstreamError::Http { .. }
            | UpstreamError::Pool { .. }
                if self.tls && !self.certificate =>
            {
                format!(
                    "{e} (this client shows no certificate, and a manager started with \
                     --tlsverify asks for one of its CA: give --tlsverify and one, \
                     {CERTIFICATE_FLAGS})"
                )
            }
            _ => e.to_string(),
        };
        DiscoveryError::Hub {
            hub: self.hub.clone(),
            why,
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
            return Err(DiscoveryError::Hub {
                hub: self.hub.clone(),
                why: format!("answered {token:?} for a token"),
            });
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

    #[test]
    fn plain_http_refused_by_a_tls_manager_names_the_flags() {
        let hub = TokenHub::new("127.0.0.1:4000", None).expect("a hub");
        let refused = |status: u16, message: &str| {
            hub.failed(UpstreamError::Status {
                addr: "tcp://127.0.0.1:4000".into(),
                status,
                message: message.into(),
            })
            .to_string()
        };
        let e = refused(400, "Client sent an HTTP request to an HTTPS server.");
        assert!(
            e.starts_with("token discovery at 127.0.0.1:4000: the manager serves TLS")
                && e.contains("--tlsverify")
                && e.contains("DOCKER_CERT_PATH"),
            "{e}"
        );
        let e = refused(404, "unknown discovery token t");
        assert!(
            !e.contains("TLS") && e.contains("unknown discovery token t"),
            "{e}"
        );
    }
}
