//! TLS to the store: [`KvTls`]'s files read and checked once, at parse
//! time, into what tonic connects with.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::discovery::DiscoveryError;

/// TLS to the store, from classic's `--discovery-opt kv.cacertfile=...
/// kv.certfile=... kv.keyfile=...`: the CA that signed the store's
/// certificate and, for a store that asks for one (`--client-cert-auth`),
/// a client certificate and its key (both or neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTls {
    /// The CA certificate(s) to verify the store with, PEM.
    pub ca: PathBuf,
    /// The client certificate (chain), PEM.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    pub key: Option<PathBuf>,
}

/// [`KvTls`] loaded: the files' content, checked to hold what they should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedTls {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl LoadedTls {
    /// Reads and checks the files of `tls`.
    pub fn load(tls: &KvTls) -> Result<LoadedTls, DiscoveryError> {
        let ca = read_certificates(&tls.ca, "kv.cacertfile")?;
        let identity = match (&tls.cert, &tls.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some((read_certificates(cert, "kv.certfile")?, read_key(key)?))
            }
            (Some(_), None) => {
                return Err(DiscoveryError::StoreTls(
                    "kv.certfile needs kv.keyfile, its private key".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(DiscoveryError::StoreTls(
                    "kv.keyfile needs kv.certfile, its certificate".into(),
                ))
            }
        };
        Ok(LoadedTls { ca, identity })
    }

    /// Whether a client certificate is given.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// tonic's client configuration: trust the CA alone, present the
    /// client certificate if any.
    pub fn client_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

fn read(path: &Path, option: &str) -> Result<Vec<u8>, DiscoveryError> {
    std::fs::read(path).map_err(|e| {
        DiscoveryError::StoreTls(format!("cannot read {option} {}: {e}", path.display()))
    })
}

fn read_certificates(path: &Path, option: &str) -> Result<Vec<u8>, DiscoveryError> {
    let pem = read(path, option)?;
    let found = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
    match found {
        Ok(certs) if !certs.is_empty() => Ok(pem),
        Ok(_) => Err(DiscoveryError::StoreTls(format!(
            "{option} {} holds no PEM certificate",
            path.display()
        ))),
        Err(e) => Err(DiscoveryError::StoreTls(format!(
            "{option} {}: {e}",
            path.display()
        ))),
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, DiscoveryError> {
    let pem = read(path, "kv.keyfile")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        DiscoveryError::StoreTls(format!(
            "kv.keyfile {} holds no usable PEM private key: {e}",
            path.display()
        ))
    })?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{self, CaOptions, CertKind, IssueRequest, SanName};

    fn err(tls: &KvTls) -> String {
        LoadedTls::load(tls).expect_err("bad TLS files").to_string()
    }

    #[test]
    fn files_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        ca::init(&ca_dir, &CaOptions::default()).expect("CA");
        let out = dir.path().join("client");
        let request = IssueRequest::new(CertKind::Client, vec![SanName::Dns("c".into())]);
        let issued = ca::issue(&ca_dir, &request, &out).expect("client certificate");
        let (ca_pem, cert, key) = (issued.ca, issued.cert, issued.key);

        let full = KvTls {
            ca: ca_pem.clone(),
            cert: Some(cert.clone()),
            key: Some(key.clone()),
        };
        assert!(LoadedTls::load(&full).expect("good files").has_identity());
        let ca_only = KvTls {
            ca: ca_pem.clone(),
            cert: None,
            key: None,
        };
        assert!(!LoadedTls::load(&ca_only).expect("CA alone").has_identity());

        let missing = dir.path().join("missing.pem");
        let e = err(&KvTls {
            ca: missing.clone(),
            ..ca_only.clone()
        });
        assert!(
            e.contains("cannot read kv.cacertfile") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(&KvTls {
            ca: key.clone(),
            ..ca_only.clone()
        });
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = err(&KvTls {
            key: Some(cert.clone()),
            ..full.clone()
        });
        assert!(e.contains("kv.keyfile") && e.contains("no usable"), "{e}");
        let e = err(&KvTls {
            key: None,
            ..full.clone()
        });
        assert!(e.contains("kv.certfile needs kv.keyfile"), "{e}");
        let e = err(&KvTls { cert: None, ..full });
        assert!(e.contains("kv.keyfile needs kv.certfile"), "{e}");
    }
}
