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
//! [`ManagerTls`] builds all of a manager's configurations from its flags;
//! [`ClientTlsArgs`], the docker CLI's flags, a client's (`swarmctl`,
//! `swarm create`, `join` and `list` asking a manager).
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

mod client;
mod manager;

pub use client::{cert_dir_in, process_env, ClientTlsArgs, Env};
pub use manager::{reload_on_sighup, ApiClients, ManagerTls, TlsModes};

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
    /// A manager serving TLS was given a certificate of another kind.
    #[error("{0} is not a manager's certificate: managers authenticate each other with the kind manager (swarmctl cert issue --kind manager)")]
    NotManager(String),
    /// A client's files (its flags' or their defaults) are unusable.
    #[error("TLS files ({files}): {why}")]
    ClientFiles {
        /// The files, as the flags that name them.
        files: String,
        /// What is wrong with them.
        why: Box<TlsError>,
    },
}

/// Where Docker's clients keep their certificates: `DOCKER_CERT_PATH`, else
/// `~/.docker`.
pub fn default_cert_dir() -> PathBuf {
    cert_dir_in(&process_env)
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

    /// The files given (`--tlscacert`, `--tlscert`, `--tlskey`), and for
    /// each one not given Docker's default in `dir`.
    pub fn given_or_in(
        dir: &Path,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> TlsFiles {
        let defaults = TlsFiles::in_dir(dir);
        TlsFiles {
            ca: ca.map_or(defaults.ca, Path::to_path_buf),
            cert: cert.map_or(defaults.cert, Path::to_path_buf),
            key: key.map_or(defaults.key, Path::to_path_buf),
        }
    }
}

/// The files as the flags that name them: `--tlscacert CA, --tlscert
/// CERT, --tlskey KEY`.
impl fmt::Display for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--tlscacert {}, --tlscert {}, --tlskey {}",
            self.ca.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Which clients a server accepts.
#[derive(Clone, Copy)]
pub enum ClientAuth {
    /// Any client; one that shows a certificate must show one the CA
    /// signed (`--tls` without `--tlsverify`: encryption, and who the
    /// client is when it says).
    Optional,
    /// Clients with a certificate signed by the CA (`--tlsverify`).
    Verified,
    /// Clients with a certificate signed by the CA that `is_manager` says a
    /// manager's (the Raft port).
    Managers(fn(&[u8]) -> bool),
}

/// Which servers a client accepts.
#[derive(Clone, Copy)]
pub enum ServerAuth {
    /// Servers with a certificate the CA signed for the address dialled.
    Verified,
    /// The same, and `is_manager` says the certificate a manager's (Raft
    /// peers).
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
            ClientAuth::Optional => builder.with_client_cert_verifier(self.client_verifier(true)?),
            ClientAuth::Verified => builder.with_client_cert_verifier(self.client_verifier(false)?),
            ClientAuth::Managers(is_manager) => {
                builder.with_client_cert_verifier(Arc::new(ManagersOnly {
                    inner: self.client_verifier(false)?,
                    is_manager,
                }))
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(Current(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client configuration trusting the servers the CA signed (and,
    /// with `servers` [`ServerAuth::Managers`], only managers) and
    /// presenting this identity, with `alpn` protocols.
    pub fn client_config(
        self: &Arc<Self>,
        servers: ServerAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match servers {
            ServerAuth::Verified => builder.with_root_certificates(self.roots.clone()),
            ServerAuth::Managers(is_manager) => {
                let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    self.roots.clone(),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ManagerServers {
                        inner,
                        is_manager,
                    }))
            }
        };
        let mut config = builder.with_client_cert_resolver(Arc::new(Current(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Clients signed by the CA; with `optional`, also clients that show
    /// no certificate.
    fn client_verifier(&self, optional: bool) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let builder =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder.build().map_err(|e| TlsError::Config(e.to_string()))
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
        managers_only(self.is_manager, end_entity)?;
        Ok(ClientCertVerified::assertion())
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

/// The check both manager verifiers add to the CA's: the peer's
/// certificate is a manager's.
fn managers_only(
    is_manager: fn(&[u8]) -> bool,
    end_entity: &CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    if is_manager(end_entity.as_ref()) {
        Ok(())
    } else {
        Err(rustls::Error::General(
            "the peer's certificate is not a manager's".into(),
        ))
    }
}

/// A server verifier that, beyond the CA's signature and the name, wants a
/// manager's certificate. (rustls calls a verifier of one's own
/// "dangerous": it only adds a check to the usual one here.)
struct ManagerServers {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    is_manager: fn(&[u8]) -> bool,
}

impl fmt::Debug for ManagerServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManagerServers")
    }
}

impl rustls::client::danger::ServerCertVerifier for ManagerServers {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        managers_only(self.is_manager, end_entity)?;
        Ok(verified)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A test CA writing leaf certificates in Docker's layout.
    struct TestCa(CertifiedIssuer<'static, KeyPair>);

    impl TestCa {
        fn new() -> TestCa {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, "test CA");
            TestCa(
                CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
                    .expect("CA"),
            )
        }

        /// Writes `ca.pem`, `cert.pem`, `key.pem` for 127.0.0.1 with
        /// organizational unit `ou` into `dir`.
        fn write(&self, dir: &Path, ou: &str) -> TlsFiles {
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, ou);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &self.0).expect("leaf");
            std::fs::create_dir_all(dir).expect("dir");
            std::fs::write(dir.join("ca.pem"), self.0.pem()).expect("ca");
            std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
            std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
            TlsFiles::in_dir(dir)
        }
    }

    /// The test's notion of a manager: the OU says so.
    fn is_manager(der: &[u8]) -> bool {
        der.windows(b"swarm-manager".len())
            .any(|w| w == b"swarm-manager")
    }

    /// A handshake of `client` with `server` over an in-memory pipe, and one
    /// byte each way: the server's certificate as the client saw it, or
    /// why it failed.
    async fn exchange(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<Vec<u8>, String> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(async move {
            let mut stream = tokio_rustls::TlsAcceptor::from(server)
                .accept(b)
                .await
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(&byte).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        });
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let result = async {
            let mut stream = tokio_rustls::TlsConnector::from(client)
                .connect(name, a)
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(b"x").await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .map_err(|e| e.to_string())?;
            let (_, connection) = stream.get_ref();
            Ok::<_, String>(
                connection
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec())
                    .unwrap_or_default(),
            )
        }
        .await;
        let served = serving.await.expect("server task");
        let seen = result?;
        served.map_err(|e| format!("server: {e}"))?;
        Ok(seen)
    }

    #[tokio::test]
    async fn verified_clients_only_of_the_ca() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = TestCa::new();
        let server =
            Identity::load(ca.write(&dir.path().join("server"), "swarm-server")).expect("server");
        let user =
            Identity::load(ca.write(&dir.path().join("user"), "swarm-client")).expect("user");
        let config = server
            .server_config(ClientAuth::Verified, &[])
            .expect("config");
        let seen = exchange(
            config.clone(),
            user.client_config(ServerAuth::Verified, &[])
                .expect("client"),
        )
        .await
        .expect("a client of the CA");
        assert_eq!(seen, server.certificate()[0].as_ref());
        // No certificate: refused.
        let anonymous =
            client_config_without_identity(&dir.path().join("user/ca.pem")).expect("anon");
        assert!(exchange(config.clone(), anonymous.clone()).await.is_err());
        // --tls without --tlsverify lets it in.
        let optional = server
            .server_config(ClientAuth::Optional, &[])
            .expect("optional");
        assert!(exchange(optional.clone(), anonymous).await.is_ok());
        // Another CA's client: refused in both modes.
        let other = TestCa::new();
        let stranger_files = other.write(&dir.path().join("stranger"), "swarm-client");
        let mut stranger_files = stranger_files;
        stranger_files.ca = dir.path().join("user/ca.pem");
        let stranger = Identity::load(stranger_files).expect("stranger");
        let stranger = stranger
            .client_config(ServerAuth::Verified, &[])
            .expect("client");
        assert!(exchange(config, stranger.clone()).await.is_err());
        assert!(exchange(optional, stranger).await.is_err());
    }

    #[tokio::test]
    async fn managers_only_both_ways() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = TestCa::new();
        let manager = Identity::load(ca.write(&dir.path().join("m"), "swarm-manager")).expect("m");
        let user = Identity::load(ca.write(&dir.path().join("u"), "swarm-client")).expect("u");
        let raft = manager
            .server_config(ClientAuth::Managers(is_manager), &[])
            .expect("raft");
        let peer = manager
            .client_config(ServerAuth::Managers(is_manager), &[])
            .expect("peer");
        assert!(exchange(raft.clone(), peer.clone()).await.is_ok());
        // A user's certificate of the same CA does not open the Raft port.
        let as_user = user
            .client_config(ServerAuth::Verified, &[])
            .expect("client");
        assert!(exchange(raft, as_user).await.is_err());
        // Nor does a manager accept a user's server as a peer.
        let user_server = user
            .server_config(ClientAuth::Verified, &[])
            .expect("server");
        assert!(exchange(user_server, peer).await.is_err());
    }

    #[tokio::test]
    async fn a_reloaded_certificate_serves_new_connections() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = TestCa::new();
        let files = ca.write(&dir.path().join("s"), "swarm-server");
        let server = Identity::load(files.clone()).expect("server");
        let config = server
            .server_config(ClientAuth::Optional, &[])
            .expect("config");
        // A new client each time: a resumed session would not show the
        // server's certificate again.
        let client = || client_config_without_identity(&files.ca).expect("client");
        let first = exchange(config.clone(), client()).await.expect("first");
        ca.write(&dir.path().join("s"), "swarm-server");
        // Not yet reloaded: the same certificate.
        let same = exchange(config.clone(), client()).await.expect("same");
        assert_eq!(same, first);
        server.reload().expect("reload");
        let second = exchange(config.clone(), client()).await.expect("second");
        assert_ne!(second, first, "the reloaded certificate is not served");
        // A broken file keeps the current certificate.
        std::fs::write(&files.key, "not a key").expect("write");
        assert!(server.reload().is_err());
        let kept = exchange(config, client()).await.expect("kept");
        assert_eq!(kept, second);
    }

    #[test]
    fn unreadable_files_say_which_and_why() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = TestCa::new();
        let files = ca.write(dir.path(), "swarm-server");
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            ..files.clone()
        };
        let e = Identity::load(missing).expect_err("missing");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        std::fs::write(dir.path().join("empty.pem"), "").expect("write");
        let empty = TlsFiles {
            ca: dir.path().join("empty.pem"),
            ..files.clone()
        };
        let e = Identity::load(empty).expect_err("no CA");
        assert!(e.to_string().contains("no certificate"), "{e}");
        // Another certificate's key.
        let other = ca.write(&dir.path().join("other"), "swarm-server");
        let mismatch = TlsFiles {
            key: other.key,
            ..files
        };
        let e = Identity::load(mismatch).expect_err("mismatch");
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}
