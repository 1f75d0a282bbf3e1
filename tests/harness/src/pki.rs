//! Certificates for TLS tests, and TLS probes to see what a server does
//! with them.
//!
//! A [`Pki`] is a temporary directory holding a CA of swarm's built-in kind
//! ([`swarm::ca`]) and every certificate a test issues with it, each in
//! its own directory in Docker's layout (`ca.pem`, `cert.pem`, `key.pem`),
//! ready for dockerd's and the docker CLI's `--tlscacert/--tlscert/--tlskey`
//! ([`tls_flags`]) and for `swarm manage`'s. Beside good certificates it
//! makes the bad ones a server must refuse: an expired client certificate
//! ([`Pki::issue_expired_client`]) and one another CA signed
//! ([`Pki::issue_stranger`]).
//!
//! The probes are blocking and need no runtime of the caller's:
//! [`tls_request`] sends one HTTP/1.0 request over TLS and returns the
//! answer with the certificate the server showed; [`tls_exchange`] sends
//! raw bytes after the handshake and returns the first bytes answered (for
//! a port that does not speak HTTP/1, such as the Raft port's gRPC).

use std::io;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use swarm::ca::{self, CaOptions, CertKind, IssueRequest, SanName};
use swarm::tls::{Identity, ServerAuth, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a probe may take, connection, handshake and answer included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA in a temporary directory (removed on drop), a second, unrelated CA
/// for strangers, and the certificate directories issued with them.
#[derive(Debug)]
pub struct Pki {
    /// The temporary directory: `ca/`, `other-ca/` and one directory per
    /// certificate issued.
    dir: tempfile::TempDir,
}

impl Pki {
    /// Creates the CA (`ca/`) and the strangers' CA (`other-ca/`) in a new
    /// temporary directory.
    pub fn new() -> anyhow::Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("swarm-pki-")
            .tempdir()
            .context("creating the PKI's directory")?;
        let pki = Pki { dir };
        for (dir, name) in [
            (pki.ca_dir(), "swarm-test-ca"),
            (pki.other_ca_dir(), "stranger-ca"),
        ] {
            ca::init(
                &dir,
                &CaOptions {
                    common_name: name.to_string(),
                    ..CaOptions::default()
                },
            )
            .with_context(|| format!("creating the CA in {}", dir.display()))?;
        }
        Ok(pki)
    }

    /// The PKI's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA's directory (`ca.pem`, `ca-key.pem`).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The CA's certificate, what a peer of the cluster trusts.
    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join(ca::CA_CERT_FILE)
    }

    /// The strangers' CA directory.
    fn other_ca_dir(&self) -> PathBuf {
        self.dir.path().join("other-ca")
    }

    /// Issues a certificate of `kind` with the CA: common name `name`,
    /// subject alternative names `sans` (IP addresses or DNS names), valid
    /// one year. It goes to `<dir>/<name>/` in Docker's layout, which is
    /// returned; issuing `name` again replaces the certificate and key
    /// there (a new key, a new serial: a rotation).
    pub fn issue(&self, kind: CertKind, name: &str, sans: &[&str]) -> anyhow::Result<PathBuf> {
        let out = self.cert_dir(name)?;
        issue_with(&self.ca_dir(), kind, name, sans, &out)?;
        Ok(out)
    }

    /// A client certificate that the CA signed but whose validity ended a
    /// day ago (it started two days ago), in `<dir>/<name>/`.
    pub fn issue_expired_client(&self, name: &str) -> anyhow::Result<PathBuf> {
        let out = self.cert_dir(name)?;
        let ca_dir = self.ca_dir();
        let ca_pem = std::fs::read_to_string(ca_dir.join(ca::CA_CERT_FILE))
            .context("reading the CA certificate")?;
        let ca_key =
            std::fs::read_to_string(ca_dir.join(ca::CA_KEY_FILE)).context("reading the CA key")?;
        let ca_key = KeyPair::from_pem(&ca_key).context("the CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("the CA certificate")?;

        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, ca::ORGANIZATION);
        subject.push(
            DnType::OrganizationalUnitName,
            CertKind::Client.organizational_unit(),
        );
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(2);
        params.not_after = now - time::Duration::days(1);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("a key")?;
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the expired certificate")?;

        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        write(&out.join(ca::CA_CERT_FILE), ca_pem.as_bytes())?;
        write(&out.join(ca::CERT_FILE), cert.pem().as_bytes())?;
        write(&out.join(ca::KEY_FILE), key.serialize_pem().as_bytes())?;
        Ok(out)
    }

    /// A certificate of `kind` signed by another CA, in `<dir>/<name>/`.
    /// Its `ca.pem` is this PKI's CA, so that its holder trusts the
    /// cluster's servers and gets as far as showing its certificate: only
    /// that certificate is a stranger's.
    pub fn issue_stranger(
        &self,
        kind: CertKind,
        name: &str,
        sans: &[&str],
    ) -> anyhow::Result<PathBuf> {
        let out = self.cert_dir(name)?;
        issue_with(&self.other_ca_dir(), kind, name, sans, &out)?;
        std::fs::copy(self.ca_cert(), out.join(ca::CA_CERT_FILE))
            .context("copying the CA certificate")?;
        Ok(out)
    }

    /// `<dir>/<name>`, refusing a name that is not one path component.
    fn cert_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !matches!(name, "ca" | "other-ca");
        if !plain {
            bail!("{name:?} cannot name a certificate directory");
        }
        Ok(self.dir.path().join(name))
    }
}

/// Issues with the CA in `ca_dir` into `out`, replacing what is there.
fn issue_with(
    ca_dir: &Path,
    kind: CertKind,
    name: &str,
    sans: &[&str],
    out: &Path,
) -> anyhow::Result<()> {
    let names = sans
        .iter()
        .map(|s| s.parse::<SanName>())
        .collect::<Result<Vec<_>, _>>()
        .context("a subject alternative name")?;
    let mut request = IssueRequest::new(kind, names);
    request.common_name = Some(name.to_string());
    request.force = true;
    ca::issue(ca_dir, &request, out)
        .with_context(|| format!("issuing the {kind} certificate {name}"))?;
    Ok(())
}

/// Writes a file whole.
fn write(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// `--tlsverify --tlscacert D/ca.pem --tlscert D/cert.pem --tlskey
/// D/key.pem` for a certificate directory `D`: the flags of dockerd, the
/// docker CLI, `swarm manage` and `swarmctl`.
pub fn tls_flags(dir: &Path) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        "--tlsverify".into(),
        "--tlscacert".into(),
        file(ca::CA_CERT_FILE),
        "--tlscert".into(),
        file(ca::CERT_FILE),
        "--tlskey".into(),
        file(ca::KEY_FILE),
    ]
}

/// A rustls client configuration for a certificate directory: trusts the
/// servers its `ca.pem` signed (for the name dialled) and presents its
/// `cert.pem`.
pub fn client_config(dir: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let identity = Identity::load(TlsFiles::in_dir(dir))
        .with_context(|| format!("loading the certificate in {}", dir.display()))?;
    Ok(identity.client_config(ServerAuth::Verified, &[])?)
}

/// A rustls client configuration that trusts the servers `ca` (a PEM file)
/// signed and presents no certificate.
pub fn anonymous_client_config(ca: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    Ok(swarm::tls::client_config_without_identity(ca)?)
}

/// The first certificate of a PEM file, DER.
pub fn cert_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .with_context(|| format!("no certificate in {}", path.display()))?
        .with_context(|| format!("unreadable PEM in {}", path.display()))?;
    Ok(der.as_ref().to_vec())
}

/// The serial number of a DER certificate, in hex.
pub fn serial(der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(cert.raw_serial_as_string())
}

/// An HTTP answer received over TLS.
#[derive(Debug, Clone)]
pub struct TlsAnswer {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// The certificate the server showed (DER), empty if none.
    pub server_cert: Vec<u8>,
}

/// One HTTP/1.0 request `method path` with an optional JSON `body` to
/// `addr` (`127.0.0.1:PORT`) over TLS with `config`, the server named by
/// the address's host; the whole answer within [`PROBE_TIMEOUT`]. An error
/// (saying at which step) when the connection, the handshake or the
/// exchange fails: a refused client certificate shows as a failed read
/// under TLS 1.3, where the server's verdict comes after the handshake.
pub fn tls_request(
    addr: &str,
    config: &Arc<ClientConfig>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<TlsAnswer> {
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    let (server_cert, answer) = run_probe(addr, config, request.into_bytes(), ReadUntil::Eof)?;
    let (status, body) = parse_http(&answer)?;
    Ok(TlsAnswer {
        status,
        body,
        server_cert,
    })
}

/// Connects to `addr` over TLS with `config`, sends `bytes` and returns
/// the server's certificate (DER) and the first bytes it answers within
/// [`PROBE_TIMEOUT`]; an error if any step fails or the server closes the
/// connection without a byte.
pub fn tls_exchange(
    addr: &str,
    config: &Arc<ClientConfig>,
    bytes: &[u8],
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    run_probe(addr, config, bytes.to_vec(), ReadUntil::FirstBytes)
}

/// How much of the answer a probe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadUntil {
    /// Until the server closes the connection.
    Eof,
    /// Until a first read returns bytes.
    FirstBytes,
}

/// A probe on a runtime of its own, bounded by [`PROBE_TIMEOUT`].
fn run_probe(
    addr: &str,
    config: &Arc<ClientConfig>,
    request: Vec<u8>,
    until: ReadUntil,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for the probe")?;
    runtime.block_on(async {
        tokio::time::timeout(PROBE_TIMEOUT, probe(addr, config, &request, until))
            .await
            .map_err(|_| anyhow::anyhow!("{addr}: no answer within {PROBE_TIMEOUT:?}"))?
    })
}

async fn probe(
    addr: &str,
    config: &Arc<ClientConfig>,
    request: &[u8],
    until: ReadUntil,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let sa = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("no address for {addr}"))?;
    let host = addr
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(addr);
    let name = ServerName::try_from(host.to_string())
        .with_context(|| format!("{host} as a TLS server name"))?;
    let tcp = tokio::net::TcpStream::connect(sa)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let mut stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {addr}"))?;
    let server_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    stream
        .write_all(request)
        .await
        .with_context(|| format!("writing to {addr}"))?;
    stream
        .flush()
        .await
        .with_context(|| format!("writing to {addr}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if until == ReadUntil::FirstBytes {
                    break;
                }
            }
            // A server that closes without close_notify after a whole
            // answer still answered.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !answer.is_empty() => break,
            Err(e) => {
                return Err(e).with_context(|| format!("reading from {addr}"));
            }
        }
    }
    if answer.is_empty() {
        bail!("{addr} closed the connection without answering");
    }
    Ok((server_cert, answer))
}

/// The status and body of an HTTP/1 answer.
fn parse_http(answer: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
