//! The built-in certificate authority: creates a CA and issues the
//! certificates of a cluster with TLS everywhere, in Docker's file layout.
//!
//! [`init`] writes a new CA into a directory (`ca.pem`, and `ca-key.pem`
//! readable by the owner only). [`issue`] signs a new key with it and
//! writes a certificate directory as dockerd and the docker CLI read it:
//! `ca.pem` (a copy of the CA certificate), `cert.pem` and `key.pem`. A
//! certificate is one of four [`CertKind`]s, named in its subject's OU (as
//! SwarmKit names roles), so that a peer can tell a manager from a user:
//! `server` and `engine` (serverAuth), `client` (clientAuth, what `docker
//! --tlsverify` presents) and `manager` (both: a manager serves its API and
//! Raft ports and is a client of the other managers and of the engines).
//! [`peer_kind`] reads that kind back from a peer's certificate.
//!
//! Keys are ECDSA P-256 (rustls and Go's crypto/tls accept them), in
//! PKCS#8 PEM. Certificates start one hour in the past, as SwarmKit's do,
//! so that a machine whose clock is a little behind accepts them.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// File name of the CA certificate, in a CA directory and in a certificate
/// directory alike (Docker's `--tlscacert` default).
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA's private key, in the CA directory only.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// File name of an issued certificate (Docker's `--tlscert` default).
pub const CERT_FILE: &str = "cert.pem";
/// File name of an issued certificate's private key (Docker's `--tlskey`
/// default).
pub const KEY_FILE: &str = "key.pem";

/// How long a new CA is valid by default: ten years.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// How long an issued certificate is valid by default: one year.
pub const DEFAULT_CERT_DAYS: u32 = 365;
/// Common name of a new CA unless another is given.
pub const DEFAULT_CA_NAME: &str = "swarm-ca";
/// Organization (O) of every subject the CA writes, its own included.
pub const ORGANIZATION: &str = "swarm";

/// How far in the past a certificate's validity starts (SwarmKit's
/// backdate), so that clocks a little behind accept a fresh certificate.
const BACKDATE: time::Duration = time::Duration::hours(1);
/// Longest common name X.509 allows (ub-common-name).
const MAX_COMMON_NAME: usize = 64;
/// Mode of private key files: readable and writable by the owner only.
const KEY_MODE: u32 = 0o600;
/// Mode of certificate files: public.
const CERT_MODE: u32 = 0o644;
/// Mode of directories this module creates: they hold private keys.
const DIR_MODE: u32 = 0o700;

/// What a certificate is for; written as the subject's OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// A TLS server other than an engine or a manager (serverAuth), e.g. a
    /// load balancer terminating TLS in front of the managers.
    Server,
    /// A user or tool talking to a manager or an engine (clientAuth): what
    /// the docker CLI presents with `--tlsverify`.
    Client,
    /// A Docker engine's server certificate (serverAuth), for dockerd's
    /// `--tlsverify --tlscert`.
    Engine,
    /// A swarm manager (serverAuth and clientAuth): it serves the Docker API
    /// and Raft, and is a client of the other managers and of the engines.
    Manager,
}

impl CertKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [CertKind; 4] = [
        CertKind::Server,
        CertKind::Client,
        CertKind::Engine,
        CertKind::Manager,
    ];

    /// The kind's name on the command line: `server`, `client`, `engine`,
    /// `manager`.
    pub fn name(self) -> &'static str {
        match self {
            CertKind::Server => "server",
            CertKind::Client => "client",
            CertKind::Engine => "engine",
            CertKind::Manager => "manager",
        }
    }

    /// The subject OU that marks the kind: `swarm-` and its name.
    pub fn organizational_unit(self) -> &'static str {
        match self {
            CertKind::Server => "swarm-server",
            CertKind::Client => "swarm-client",
            CertKind::Engine => "swarm-engine",
            CertKind::Manager => "swarm-manager",
        }
    }

    /// The kind an OU marks, if it is one of ours.
    pub fn from_organizational_unit(ou: &str) -> Option<CertKind> {
        CertKind::ALL
            .into_iter()
            .find(|k| k.organizational_unit() == ou)
    }

    /// Whether the certificate may authenticate a TLS server
    /// (extended key usage serverAuth).
    pub fn server_auth(self) -> bool {
        !matches!(self, CertKind::Client)
    }

    /// Whether the certificate may authenticate a TLS client
    /// (extended key usage clientAuth).
    pub fn client_auth(self) -> bool {
        matches!(self, CertKind::Client | CertKind::Manager)
    }
}

impl fmt::Display for CertKind {
    /// The kind's [`name`](CertKind::name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CertKind {
    type Err = CaError;

    /// Parses a kind's [`name`](CertKind::name).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| CaError::BadKind(s.to_string()))
    }
}

/// A subject alternative name: the DNS name or IP address a client dials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SanName {
    /// A DNS name (lowercased), e.g. `node-1.example` or `*.example`.
    Dns(String),
    /// An IP address, e.g. `127.0.0.1` or `::1`.
    Ip(IpAddr),
}

impl fmt::Display for SanName {
    /// The name, or the address as Rust prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SanName::Dns(name) => f.write_str(name),
            SanName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl FromStr for SanName {
    type Err = CaError;

    /// An IP address (an IPv6 one may be in brackets), else a DNS name:
    /// labels of letters, digits and inner hyphens, at most 63 bytes each
    /// and 253 in all, the first label possibly `*`. A URL, a port or a
    /// last label of digits only (a mistyped address) is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| CaError::BadName {
            name: s.to_string(),
            reason: reason.to_string(),
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(SanName::Ip(ip));
        }
        if text.contains("://") {
            return Err(bad("give a host name or an IP address, not a URL"));
        }
        if text.contains(':') {
            return Err(bad(
                "give a host name or an IP address without a port (a certificate names hosts, not ports)",
            ));
        }
        let name = text.to_ascii_lowercase();
        if name.len() > 253 {
            return Err(bad("a DNS name is at most 253 characters long"));
        }
        let labels: Vec<&str> = name.split('.').collect();
        for (i, label) in labels.iter().enumerate() {
            if i == 0 && *label == "*" && labels.len() > 1 {
                continue;
            }
            if label.is_empty() {
                return Err(bad(
                    "a DNS name has no empty label (no leading, trailing or double dot)",
                ));
            }
            if label.len() > 63 {
                return Err(bad("a DNS label is at most 63 characters long"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(bad(
                    "a DNS name has only letters, digits, hyphens and dots (a wildcard only as `*.` in front)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a DNS label neither starts nor ends with a hyphen"));
            }
        }
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                "not an IP address, and not a DNS name (its last label is a number)",
            ));
        }
        Ok(SanName::Dns(name))
    }
}

/// An error of the CA: a file, a name, the CA itself.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Files that would be overwritten; nothing was written.
    #[error("{} already exist{}", list_paths(.0), if .0.len() == 1 { "s" } else { "" })]
    Exists(Vec<PathBuf>),
    /// The CA directory lacks the CA certificate or its key.
    #[error("no CA in {}: {} is missing", .dir.display(), .missing.display())]
    NoCa {
        /// The CA directory given.
        dir: PathBuf,
        /// The file that is not there.
        missing: PathBuf,
    },
    /// The CA's certificate or key cannot be used.
    #[error("invalid CA in {}: {reason}", .path.display())]
    BadCa {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A subject alternative name that is neither an IP address nor a DNS name.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A common name that X.509 cannot hold.
    #[error("invalid common name {0:?}: 1 to 64 characters")]
    BadCommonName(String),
    /// A kind name other than `server`, `client`, `engine`, `manager`.
    #[error("unknown certificate kind {0:?}: server, client, engine or manager")]
    BadKind(String),
    /// A server certificate without a name to serve.
    #[error(
        "a {0} certificate needs at least one subject alternative name: the DNS names \
         and IP addresses clients dial"
    )]
    NoSan(CertKind),
    /// A client certificate with neither a common name nor a SAN to take it from.
    #[error("a client certificate needs a common name (the user's name)")]
    NoCommonName,
    /// A validity the CA cannot give.
    #[error("invalid validity: {0}")]
    BadValidity(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Key generation or signing failed.
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A peer certificate that is not DER X.509.
    #[error("unreadable certificate: {0}")]
    BadCertificate(String),
}

/// `a, b and c` of the paths' displays.
fn list_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// How to create a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// The CA's common name ([`DEFAULT_CA_NAME`] by default).
    pub common_name: String,
    /// How many days the CA is valid ([`DEFAULT_CA_DAYS`] by default).
    pub days: u32,
    /// Replace an existing CA (every certificate it issued stops verifying).
    pub force: bool,
}

impl Default for CaOptions {
    /// `swarm-ca`, ten years, no overwrite.
    fn default() -> Self {
        CaOptions {
            common_name: DEFAULT_CA_NAME.to_string(),
            days: DEFAULT_CA_DAYS,
            force: false,
        }
    }
}

/// What [`init`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// The CA certificate, `DIR/ca.pem`.
    pub cert: PathBuf,
    /// The CA key, `DIR/ca-key.pem` (mode 0600).
    pub key: PathBuf,
    /// When the CA expires.
    pub not_after: SystemTime,
}

/// What to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The kind (OU and extended key usages).
    pub kind: CertKind,
    /// The subject alternative names; at least one except for a client.
    pub names: Vec<SanName>,
    /// The subject's CN; the first name when not given.
    pub common_name: Option<String>,
    /// How many days the certificate is valid ([`DEFAULT_CERT_DAYS`] by
    /// default); it may not outlive the CA.
    pub days: u32,
    /// Overwrite existing `cert.pem`, `key.pem` and `ca.pem` in the output
    /// directory. Without it an existing `ca.pem` is accepted only when it
    /// is this CA's.
    pub force: bool,
}

impl IssueRequest {
    /// A request for `kind` with `names`, valid for the default year, no
    /// explicit common name, no overwrite.
    pub fn new(kind: CertKind, names: Vec<SanName>) -> Self {
        IssueRequest {
            kind,
            names,
            common_name: None,
            days: DEFAULT_CERT_DAYS,
            force: false,
        }
    }
}

/// What [`issue`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The copy of the CA certificate, `OUT/ca.pem`.
    pub ca: PathBuf,
    /// The certificate, `OUT/cert.pem`.
    pub cert: PathBuf,
    /// Its key, `OUT/key.pem` (mode 0600).
    pub key: PathBuf,
    /// The subject's common name.
    pub common_name: String,
    /// When the certificate expires.
    pub not_after: SystemTime,
}

/// Creates a CA in `dir` (created with mode 0700 if missing): a new
/// ECDSA P-256 key in `ca-key.pem` (0600) and its self-signed certificate
/// in `ca.pem`, a CA that signs end-entity certificates only (path length
/// 0). An existing `ca.pem` or `ca-key.pem` is an error unless
/// `options.force`.
pub fn init(dir: &Path, options: &CaOptions) -> Result<CaFiles, CaError> {
    let common_name = check_common_name(&options.common_name)?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if !options.force {
        let existing = existing(&[&cert_path, &key_path]);
        if !existing.is_empty() {
            return Err(CaError::Exists(existing));
        }
    }
    let (not_before, not_after) = validity(options.days)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(common_name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    make_dir(dir)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
    write_file(&cert_path, cert.pem().as_bytes(), CERT_MODE)?;
    Ok(CaFiles {
        cert: cert_path,
        key: key_path,
        not_after: not_after.into(),
    })
}

/// Issues a certificate signed by the CA in `ca_dir` and writes `ca.pem`
/// (a copy of the CA certificate), `cert.pem` and `key.pem` (0600) into
/// `out_dir` (created with mode 0700 if missing).
///
/// The subject is `CN=<common name>, OU=swarm-<kind>, O=swarm`; the SANs
/// are `request.names`; the extended key usages those of the kind. Nothing
/// is written when a file would be overwritten (see
/// [`IssueRequest::force`]), the CA is missing or unusable, the validity
/// outlives the CA, or a server kind has no SAN.
pub fn issue(ca_dir: &Path, request: &IssueRequest, out_dir: &Path) -> Result<Issued, CaError> {
    let common_name = match (&request.common_name, request.names.first()) {
        (Some(cn), _) => check_common_name(cn)?.to_string(),
        (None, Some(first)) => check_common_name(&first.to_string())?.to_string(),
        (None, None) if request.kind == CertKind::Client => return Err(CaError::NoCommonName),
        (None, None) => return Err(CaError::NoSan(request.kind)),
    };
    if request.kind.server_auth() && request.names.is_empty() {
        return Err(CaError::NoSan(request.kind));
    }
    let ca = LoadedCa::read(ca_dir)?;
    let (not_before, not_after) = validity(request.days)?;
    if not_after > ca.not_after {
        return Err(CaError::BadValidity(format!(
            "{} days would outlive the CA, which expires on {}; issue for fewer days or \
             create a new CA",
            request.days,
            date(ca.not_after)
        )));
    }

    let ca_out = out_dir.join(CA_CERT_FILE);
    let cert_out = out_dir.join(CERT_FILE);
    let key_out = out_dir.join(KEY_FILE);
    if !request.force {
        let mut clashes = existing(&[&cert_out, &key_out]);
        // The same CA certificate already there is no clash: several
        // certificates of one CA may share a directory's ca.pem in turn.
        match fs::read(&ca_out) {
            Ok(bytes) if bytes == ca.cert_pem => {}
            Ok(_) => clashes.insert(0, ca_out.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CaError::Io {
                    path: ca_out,
                    source,
                })
            }
        }
        if !clashes.is_empty() {
            return Err(CaError::Exists(clashes));
        }
    }

    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&common_name, Some(request.kind));
    params.subject_alt_names = san_types(&request.names)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if request.kind.server_auth() {
        params.insert_extended_key_usage(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if request.kind.client_auth() {
        params.insert_extended_key_usage(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &ca.issuer)?;

    make_dir(out_dir)?;
    write_file(&key_out, key.serialize_pem().as_bytes(), KEY_MODE)?;
    write_file(&cert_out, cert.pem().as_bytes(), CERT_MODE)?;
    write_file(&ca_out, &ca.cert_pem, CERT_MODE)?;
    Ok(Issued {
        ca: ca_out,
        cert: cert_out,
        key: key_out,
        common_name,
        not_after: not_after.into(),
    })
}

/// The kind of a peer's certificate (DER), as its subject's OU says and
/// its extended key usages agree: `Some(kind)` for a certificate this CA
/// issued as that kind, `None` for any other (no or several `swarm-` OUs,
/// an unknown one, a CA, or EKUs that lack what the kind carries, e.g. a
/// `swarm-manager` OU without clientAuth). An error only when the bytes
/// are not an X.509 certificate.
///
/// This reads the certificate; it does not verify it. Use it on a peer
/// the TLS handshake has already verified against the cluster's CA, e.g.
/// to require `Some(CertKind::Manager)` of a manager joining or of a
/// Raft peer.
pub fn peer_kind(der: &[u8]) -> Result<Option<CertKind>, CaError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CaError::BadCertificate(e.to_string()))?;
    Ok(kind_of(&cert))
}

/// Whether the DER certificate is a manager's ([`peer_kind`] is
/// `Some(CertKind::Manager)`); an unreadable one is not.
pub fn is_manager_certificate(der: &[u8]) -> bool {
    matches!(peer_kind(der), Ok(Some(CertKind::Manager)))
}

/// The kind of a parsed certificate; see [`peer_kind`].
fn kind_of(cert: &X509Certificate<'_>) -> Option<CertKind> {
    if cert.is_ca() {
        return None;
    }
    let mut ours = cert
        .subject()
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .filter(|ou| ou.starts_with("swarm-"));
    let ou = ours.next()?;
    if ours.next().is_some() {
        return None;
    }
    let kind = CertKind::from_organizational_unit(ou)?;
    let eku = cert.extended_key_usage().ok()??.value;
    let server_ok = !kind.server_auth() || eku.server_auth;
    let client_ok = !kind.client_auth() || eku.client_auth;
    (server_ok && client_ok).then_some(kind)
}

/// The CA read from its directory, ready to sign.
struct LoadedCa {
    /// `ca.pem` exactly as read, copied into certificate directories.
    cert_pem: Vec<u8>,
    /// The CA's subject, key identifier and key.
    issuer: Issuer<'static, KeyPair>,
    /// When the CA expires.
    not_after: OffsetDateTime,
}

impl LoadedCa {
    /// Reads `ca.pem` and `ca-key.pem` of `dir` and checks that they are a
    /// CA certificate, valid now, and its key.
    fn read(dir: &Path) -> Result<LoadedCa, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let read = |path: &Path| match fs::read(path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CaError::NoCa {
                dir: dir.to_path_buf(),
                missing: path.to_path_buf(),
            }),
            Err(source) => Err(CaError::Io {
                path: path.to_path_buf(),
                source,
            }),
        };
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let bad_cert = |reason: String| CaError::BadCa {
            path: cert_path.clone(),
            reason,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(&cert_pem)
            .map_err(|e| bad_cert(format!("not a PEM certificate: {e}")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(bad_cert(
                "not a CA certificate (is this a certificate directory rather than the CA's?)"
                    .into(),
            ));
        }
        let not_after = cert.validity().not_after.to_datetime();
        if not_after <= OffsetDateTime::now_utc() {
            return Err(bad_cert(format!("the CA expired on {}", date(not_after))));
        }
        let key_text = String::from_utf8(key_pem).map_err(|_| CaError::BadCa {
            path: key_path.clone(),
            reason: "not a PEM key".into(),
        })?;
        let key = KeyPair::from_pem(&key_text).map_err(|e| CaError::BadCa {
            path: key_path.clone(),
            reason: format!("not a usable private key: {e}"),
        })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(CaError::BadCa {
                path: key_path,
                reason: format!("the key is not the key of {}", cert_path.display()),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&pem.contents.clone().into(), key)
            .map_err(|e| bad_cert(e.to_string()))?;
        Ok(LoadedCa {
            cert_pem,
            issuer,
            not_after,
        })
    }
}

/// `2026-01-31` of a date and time.
fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// The common name, if X.509 can hold it (1 to 64 characters).
fn check_common_name(cn: &str) -> Result<&str, CaError> {
    let n = cn.chars().count();
    if n == 0 || n > MAX_COMMON_NAME || cn.trim() != cn {
        return Err(CaError::BadCommonName(cn.to_string()));
    }
    Ok(cn)
}

/// `CN=cn, OU=swarm-<kind>, O=swarm`; no OU for the CA.
fn subject(common_name: &str, kind: Option<CertKind>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    if let Some(kind) = kind {
        name.push(DnType::OrganizationalUnitName, kind.organizational_unit());
    }
    name.push(DnType::CommonName, common_name);
    name
}

/// The names as rcgen's SANs, duplicates dropped.
fn san_types(names: &[SanName]) -> Result<Vec<SanType>, CaError> {
    let mut sans: Vec<SanType> = Vec::new();
    for name in names {
        let san = match name {
            SanName::Ip(ip) => SanType::IpAddress(*ip),
            SanName::Dns(dns) => {
                SanType::DnsName(dns.clone().try_into().map_err(|e: rcgen::Error| {
                    CaError::BadName {
                        name: dns.clone(),
                        reason: e.to_string(),
                    }
                })?)
            }
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// `(now - BACKDATE, now + days)` in whole seconds; zero days is an error.
fn validity(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    if days == 0 {
        return Err(CaError::BadValidity("at least 1 day".into()));
    }
    // Whole seconds, as the certificate holds them.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let not_after = now
        .checked_add(time::Duration::days(i64::from(days)))
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| CaError::BadValidity(format!("{days} days is too far ahead")))?;
    Ok((now - BACKDATE, not_after))
}

/// The paths among `paths` that exist (a dangling symlink too).
fn existing(paths: &[&Path]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .map(|p| p.to_path_buf())
        .collect()
}

/// Creates `dir` and its missing parents with mode 0700; an existing
/// directory is left as it is.
fn make_dir(dir: &Path) -> Result<(), CaError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `path` whole or not at all: a temporary file beside it, created
/// with `mode` (so a key is never readable by others, whatever the umask
/// or the file it replaces), then renamed over it.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CaError::Io { path, source }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

#[cfg(test)]
mod tests;
