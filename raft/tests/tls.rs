//! Raft over TLS: a three-node cluster whose peers present certificates of
//! one CA replicates and elects as a plaintext one does, and the Raft port
//! refuses a client that speaks plaintext, shows no certificate, or shows
//! one of another CA.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cluster, wait_leader, Node};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use swarm_raft::{Config, RaftTls};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

/// A CA and what it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    fn root(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for 127.0.0.1, for serving and for client auth.
    fn leaf(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key DER");
        (vec![cert.der().clone()], key)
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.root()).expect("root");
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Server and client configurations of one node.
    fn node_tls(&self) -> RaftTls {
        let (certs, key) = self.leaf();
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), Self::provider())
            .build()
            .expect("verifier");
        let mut server = ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .expect("server config");
        server.alpn_protocols = vec![b"h2".to_vec()];
        let mut client = self.client_config(Some((certs, key)));
        Arc::get_mut(&mut client).expect("unique").alpn_protocols = vec![b"h2".to_vec()];
        RaftTls {
            server: Arc::new(server),
            client,
        }
    }

    /// A client trusting this CA, showing `identity` if given.
    fn client_config(
        &self,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots());
        Arc::new(match identity {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        })
    }
}

fn dirs(n: usize) -> Vec<tempfile::TempDir> {
    (0..n)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect()
}

/// Whether a TLS client with `config` gets through a handshake with `node`
/// and a first read (a refused client certificate shows on the read).
async fn handshake(node: &Node, config: Arc<ClientConfig>) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(tcp) = tokio::net::TcpStream::connect(node.raft_addr()).await else {
        return false;
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await
    else {
        return false;
    };
    // An HTTP/2 preface; the server answers with its SETTINGS unless it
    // refused the client's certificate.
    if stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 9];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await,
        Ok(Ok(_))
    )
}

/// Whether `node` answers an HTTP/2 client preface sent in plaintext with
/// a SETTINGS frame.
async fn plaintext_h2(node: &Node) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(node.raft_addr()).await else {
        return false;
    };
    if tcp
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .is_err()
    {
        return false;
    }
    let mut frame = [0u8; 9];
    match tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut frame)).await {
        // A frame header: length (3 bytes), type 4 = SETTINGS.
        Ok(Ok(_)) => frame[3] == 4,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_replicates_and_refuses_strangers() {
    let ca = Ca::new("cluster CA");
    let node_dirs = dirs(3);
    let mut nodes = Vec::new();
    for (i, dir) in node_dirs.iter().enumerate() {
        let config = Config {
            tls: Some(ca.node_tls()),
            ..Config::default()
        };
        nodes.push(common::start(i as u64 + 1, common::any_port(), dir.path(), &config).await);
    }
    let members = nodes.iter().map(|n| (n.id(), common::member(n))).collect();
    nodes[0].initialize(members).await.expect("initialize");
    let refs: Vec<&Node> = nodes.iter().collect();
    let leader = wait_leader(&refs, Duration::from_secs(10)).await;
    for i in 0..5 {
        let len = nodes[leader]
            .propose(format!("entry {i}"))
            .await
            .expect("propose over TLS");
        assert_eq!(len, i + 1);
    }
    for node in &nodes {
        common::wait(node, Duration::from_secs(5), "applied", |m| {
            m.last_applied.is_some_and(|l| l.index >= 6)
        })
        .await;
        assert_eq!(node.state().entries.len(), 5, "node {}", node.id());
    }

    // The same CA and a certificate: through.
    let member = ca.client_config(Some(ca.leaf()));
    assert!(handshake(&nodes[0], member).await, "a member is refused");
    // No certificate: refused.
    assert!(!handshake(&nodes[0], ca.client_config(None)).await);
    // A certificate of another CA (the server's is trusted): refused.
    let other = Ca::new("another CA");
    let mut roots = RootCertStore::empty();
    roots.add(ca.root()).expect("root");
    let (certs, key) = other.leaf();
    let stranger = ClientConfig::builder_with_provider(Ca::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client cert");
    assert!(!handshake(&nodes[0], Arc::new(stranger)).await);
    // Plaintext HTTP/2 (what a gRPC client without TLS sends): no SETTINGS
    // frame comes back, only a TLS alert or the end of the connection.
    assert!(!plaintext_h2(&nodes[0]).await, "plaintext HTTP/2 answered");
    // The same probe gets its SETTINGS from a plaintext node.
    let plain_dirs = dirs(1);
    let plain = cluster(&plain_dirs, &Config::default()).await;
    assert!(plaintext_h2(&plain[0]).await, "the probe cannot tell");
    assert_eq!(plain[0].propose("x".into()).await.expect("plain"), 1);
}
