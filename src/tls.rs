//! TLS for every connection a manager takes or makes (rustls, with ring),
//! configured with Docker's flags and file layout: a CA certificate
//! (`ca.pem`) and this process's certificate and key (`cert.pem`,
//! `key.pem`).
//!
//! - The API serves TLS with `--tls`, and with `--tlsverify` asks every
//!   client for a certificate signed by the CA ([`Identity::server_config`]).
//! - The Raft port always asks for a certificate, and only a manager's will
//!   do ([`ClientAuth::Managers`]): a user of the API cannot speak Raft.
//! - As a client (engines, the leader, a member to join), a manager trusts
//!   the servers the CA signed and presents its own certificate
//!   ([`Identity::client_config`]).
//!
//! The certificate and key are read again by [`Identity::reload`] (on
//! SIGHUP): every configuration made here hands out whatever is current,
//! so connections opened afterwards present the new certificate while
//! those already open finish with the old one. The CA is read once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls::{SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// TLS 1.2 and 1.3, as Docker accepts.
static VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no certificate.
    #[error("{0}: no certificate in it (PEM)")]
    NoCertificate(String),
    /// A file holds no usable private key.
    #[error("{path}: {why}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// rustls refused the configuration (a CA it cannot use, ...).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where Docker's clients keep their certificates: `DOCKER_CERT_PATH`, else
/// `~/.docker`.
pub fn default_cert_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CERT_PATH").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".docker")
}

/// The files of one identity, in Docker's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA's certificate: peers must be signed by it.
    pub ca: PathBuf,
    /// This process's certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// Which clients a server accepts.
#[derive(Clone, Copy)]
pub enum ClientAuth {
    /// Any client (`--tls` without `--tlsverify`): encryption only.
    Anyone,
    /// Clients with a certificate signed by the CA (`--tlsverify`).
    Verified,
    /// Clients with a certificate signed by the CA that `is_manager` says a
    /// manager's (the Raft port).
    Managers(fn(&[u8]) -> bool),
}

/// This process's certificate and key, reloadable, and the CA it trusts.
pub struct Identity {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    roots: Arc<RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("files", &self.files)
            .finish()
    }
}

impl Identity {
    /// Reads the CA, the certificate and the key of `files`.
    pub fn load(files: TlsFiles) -> Result<Arc<Identity>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| TlsError::Config(format!("CA {}: {e}", files.ca.display())))?;
        }
        let current = RwLock::new(certified_key(&files, &provider)?);
        Ok(Arc::new(Identity {
            files,
            current,
            roots: Arc::new(roots),
            provider,
        }))
    }

    /// Reads the certificate and key again: connections opened from now on
    /// present them. On an error the current ones stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The files this identity is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate (chain) presented now.
    pub fn certificate(&self) -> Vec<CertificateDer<'static>> {
        self.current().cert.clone()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A server configuration presenting this identity, accepting the
    /// `clients` said, with `alpn` protocols (e.g. `h2` for gRPC; none for
    /// the Docker API, which is HTTP/1.1).
    pub fn server_config(
        self: &Arc<Self>,
        clients: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match clients {
            ClientAuth::Anyone => builder.with_no_client_auth(),
            ClientAuth::Verified => builder.with_client_cert_verifier(self.client_verifier()?),
            ClientAuth::Managers(is_manager) => {
                builder.with_client_cert_verifier(Arc::new(ManagersOnly {
                    inner: self.client_verifier()?,
                    is_manager,
                }))
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(Current(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client configuration trusting the servers the CA signed and
    /// presenting this identity, with `alpn` protocols.
    pub fn client_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_cert_resolver(Arc::new(Current(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))
    }
}

/// A client configuration that trusts the servers `ca` signed and presents
/// no certificate (`--tls` without `--tlsverify` on a client that has
/// none).
pub fn client_config_without_identity(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(format!("CA {}: {e}", ca.display())))?;
    }
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Hands out the identity's current certificate, as a server and as a client.
#[derive(Debug)]
struct Current(Arc<Identity>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

impl ResolvesClientCert for Current {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client verifier that, beyond the CA's signature, wants a manager's
/// certificate.
struct ManagersOnly {
    inner: Arc<dyn ClientCertVerifier>,
    is_manager: fn(&[u8]) -> bool,
}

impl fmt::Debug for ManagersOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManagersOnly")
    }
}

impl ClientCertVerifier for ManagersOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if (self.is_manager)(end_entity.as_ref()) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the peer's certificate is not a manager's".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificates of a PEM file.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(shown()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(shown()));
    }
    Ok(certs)
}

/// The certificate chain and signing key of `files`.
fn certified_key(
    files: &TlsFiles,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key_error = |why: String| TlsError::Key {
        path: files.key.display().to_string(),
        why,
    };
    let pem = std::fs::read(&files.key).map_err(|source| TlsError::Read {
        path: files.key.display().to_string(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_error(format!("no private key in it (PEM): {e}")))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signer);
    certified
        .keys_match()
        .map_err(|e| key_error(format!("does not match {}: {e}", files.cert.display())))?;
    Ok(Arc::new(certified))
}
