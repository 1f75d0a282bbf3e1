//! A manager's TLS, from its flags: one [`Identity`] (its certificate and
//! key, trusting one CA) behind every configuration it serves or dials
//! with, and the SIGHUP handler that rotates it.

use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use tokio_util::sync::CancellationToken;

use super::{ClientAuth, Identity, ServerAuth, TlsError, TlsFiles};
use crate::ca::is_manager_certificate;

/// What a manager speaks TLS on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsModes {
    /// The API's clients (`--tlsverify`: [`ClientAuth::Verified`],
    /// `--tls`: [`ClientAuth::Optional`]); `None`: plain API, and plain
    /// Raft and forwarding.
    pub api: Option<ApiClients>,
    /// Engines at TCP addresses (`--engine-tls`).
    pub engines: bool,
}

/// Which API clients a TLS manager serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiClients {
    /// Those with a certificate of the CA (`--tlsverify`).
    Verified,
    /// Any; a certificate shown must be the CA's (`--tls`).
    Optional,
}

/// Every TLS configuration of a manager.
#[derive(Debug)]
pub struct ManagerTls {
    /// The certificate and key all of them hand out (reloaded on SIGHUP).
    pub identity: Arc<Identity>,
    /// The API's server side.
    pub api: Option<Arc<ServerConfig>>,
    /// The Raft port and the channels to peers: mutual TLS taking a
    /// manager's certificate only, ALPN h2 (gRPC).
    pub raft: Option<swarm_raft::RaftTls>,
    /// Toward the other managers' APIs (forwarding, `--join`): only a
    /// manager's certificate is trusted.
    pub peers: Option<Arc<ClientConfig>>,
    /// Toward engines: any server certificate of the CA for the address.
    pub engines: Option<Arc<ClientConfig>>,
}

impl ManagerTls {
    /// Loads `files` and builds what `modes` ask for; `None` when nothing
    /// speaks TLS. With a TLS API, the certificate must be a manager's:
    /// the other managers accept no other.
    pub fn new(files: TlsFiles, modes: TlsModes) -> Result<Option<ManagerTls>, TlsError> {
        if modes.api.is_none() && !modes.engines {
            return Ok(None);
        }
        let identity = Identity::load(files)?;
        let managers = ServerAuth::Managers(is_manager_certificate);
        let api = match modes.api {
            None => None,
            Some(clients) => {
                let own = identity.certificate();
                if !own.first().is_some_and(|c| is_manager_certificate(c)) {
                    return Err(TlsError::NotManager(
                        identity.files().cert.display().to_string(),
                    ));
                }
                Some(clients)
            }
        };
        let h2: &[&[u8]] = &[b"h2"];
        let tls = ManagerTls {
            api: api
                .map(|clients| {
                    let clients = match clients {
                        ApiClients::Verified => ClientAuth::Verified,
                        ApiClients::Optional => ClientAuth::Optional,
                    };
                    identity.server_config(clients, &[])
                })
                .transpose()?,
            raft: api
                .map(|_| -> Result<_, TlsError> {
                    Ok(swarm_raft::RaftTls {
                        server: identity
                            .server_config(ClientAuth::Managers(is_manager_certificate), h2)?,
                        client: identity.client_config(managers, h2)?,
                    })
                })
                .transpose()?,
            peers: api
                .map(|_| identity.client_config(managers, &[]))
                .transpose()?,
            engines: modes
                .engines
                .then(|| identity.client_config(ServerAuth::Verified, &[]))
                .transpose()?,
            identity,
        };
        Ok(Some(tls))
    }
}

/// Rereads the certificate and key on every SIGHUP (rotation) until
/// `cancel`: connections opened afterwards present them, open ones finish
/// with the old. A file that does not load is logged and the current
/// certificate kept.
pub async fn reload_on_sighup(identity: Arc<Identity>, cancel: CancellationToken) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP: certificates reload only on restart");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        match identity.reload() {
            Ok(()) => {
                tracing::info!(cert = %identity.files().cert.display(), "SIGHUP: certificate and key reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: cannot reload the certificate; keeping the current one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{self, CaOptions, CertKind, IssueRequest, SanName};

    /// A CA and one certificate of each kind a manager may be given.
    fn issue(dir: &std::path::Path, kind: CertKind) -> TlsFiles {
        let ca_dir = dir.join("ca");
        if !ca_dir.exists() {
            ca::init(&ca_dir, &CaOptions::default()).expect("CA");
        }
        let out = dir.join(kind.name());
        let request = IssueRequest {
            common_name: Some(kind.name().into()),
            ..IssueRequest::new(kind, vec![SanName::Ip("127.0.0.1".parse().expect("ip"))])
        };
        ca::issue(&ca_dir, &request, &out).expect("certificate");
        TlsFiles::in_dir(&out)
    }

    #[test]
    fn a_tls_api_takes_a_managers_certificate_and_secures_raft() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = issue(dir.path(), CertKind::Manager);
        let client = issue(dir.path(), CertKind::Client);
        let verify = TlsModes {
            api: Some(ApiClients::Verified),
            engines: true,
        };

        let tls = ManagerTls::new(manager.clone(), verify)
            .expect("loads")
            .expect("some TLS");
        assert!(tls.api.is_some() && tls.raft.is_some() && tls.peers.is_some());
        assert!(tls.engines.is_some());
        let h2 = b"h2".to_vec();
        let raft = tls.raft.as_ref().expect("raft");
        assert_eq!(raft.server.alpn_protocols, vec![h2.clone()]);
        assert_eq!(raft.client.alpn_protocols, vec![h2]);

        match ManagerTls::new(client.clone(), verify) {
            Err(TlsError::NotManager(path)) => assert!(path.ends_with("cert.pem"), "{path}"),
            other => panic!("a client certificate was taken: {other:?}"),
        }
        // Engines alone: any certificate the engines accept will do, and
        // the API, Raft and forwarding stay plain.
        let engines_only = TlsModes {
            api: None,
            engines: true,
        };
        let tls = ManagerTls::new(client, engines_only)
            .expect("loads")
            .expect("some TLS");
        assert!(tls.api.is_none() && tls.raft.is_none() && tls.peers.is_none());
        assert!(tls.engines.is_some());
        let plain = TlsModes {
            api: None,
            engines: false,
        };
        assert!(ManagerTls::new(manager, plain).expect("nothing").is_none());
    }
}
