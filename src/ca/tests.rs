//! Tests of the built-in CA: what [`init`] and [`issue`] write (files,
//! modes, chain, SANs, EKUs, OU, validity), what they refuse, and what
//! [`peer_kind`] says of certificates of every kind and of strangers.

use super::*;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

const DAY: i64 = 24 * 3600;

/// A fresh CA in a temporary directory.
fn new_ca() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    init(dir.path(), &CaOptions::default()).expect("init");
    dir
}

/// The DER of the PEM certificate in `path`.
fn der_of(path: &Path) -> Vec<u8> {
    let pem = fs::read(path).expect("read certificate");
    let (_, pem) = parse_x509_pem(&pem).expect("PEM");
    pem.contents
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Seconds since the epoch, now.
fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn names(list: &[&str]) -> Vec<SanName> {
    list.iter()
        .map(|n| n.parse().expect("valid name"))
        .collect()
}

/// The DNS and IP SANs of a certificate, as text.
fn sans_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(ext) = cert.subject_alternative_name().expect("SAN extension") else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")).to_string(),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")).to_string(),
                _ => panic!("bad IP SAN {b:?}"),
            },
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

/// The CA: a self-signed CA certificate for end-entity certificates only,
/// valid ten years from an hour ago, its key readable by the owner only.
#[test]
fn init_writes_a_ca_and_a_private_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_dir = dir.path().join("nested/ca");
    let files = init(&ca_dir, &CaOptions::default()).expect("init");
    assert_eq!(files.cert, ca_dir.join("ca.pem"));
    assert_eq!(files.key, ca_dir.join("ca-key.pem"));
    assert_eq!(mode(&files.key), 0o600);
    assert_eq!(mode(&ca_dir), 0o700);

    let der = der_of(&files.cert);
    let (_, cert) = X509Certificate::from_der(&der).expect("X.509");
    assert!(cert.is_ca());
    let bc = cert
        .basic_constraints()
        .expect("ok")
        .expect("present")
        .value;
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().expect("ok").expect("present").value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    cert.verify_signature(None).expect("self-signed");
    assert_eq!(cert.subject().to_string(), "O=swarm, CN=swarm-ca");
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    assert!(
        (not_before - (now() - 3600)).abs() < 60,
        "backdated an hour"
    );
    assert!((not_after - (now() + 3650 * DAY)).abs() < 60, "ten years");
    assert_eq!(
        SystemTime::from(cert.validity().not_after.to_datetime()),
        files.not_after
    );
    assert!(peer_kind(&der).expect("parse").is_none(), "a CA is no peer");
}

/// An existing CA is kept unless forced; forced, it is replaced.
#[test]
fn init_refuses_an_existing_ca_unless_forced() {
    let dir = new_ca();
    let before = fs::read(dir.path().join("ca.pem")).expect("read");
    match init(dir.path(), &CaOptions::default()) {
        Err(CaError::Exists(paths)) => assert_eq!(
            paths,
            vec![dir.path().join("ca.pem"), dir.path().join("ca-key.pem")]
        ),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(fs::read(dir.path().join("ca.pem")).expect("read"), before);
    // A lone key is a CA too: nothing is overwritten.
    let lone = tempfile::tempdir().expect("temp dir");
    fs::write(lone.path().join("ca-key.pem"), "secret").expect("write");
    assert!(matches!(
        init(lone.path(), &CaOptions::default()),
        Err(CaError::Exists(p)) if p == vec![lone.path().join("ca-key.pem")]
    ));

    let forced = CaOptions {
        force: true,
        common_name: "other-ca".into(),
        days: 10,
    };
    init(dir.path(), &forced).expect("forced init");
    let der = der_of(&dir.path().join("ca.pem"));
    let (_, cert) = X509Certificate::from_der(&der).expect("X.509");
    assert_eq!(cert.subject().to_string(), "O=swarm, CN=other-ca");
    assert!((cert.validity().not_after.timestamp() - (now() + 10 * DAY)).abs() < 60);
}

/// Every kind: the three files, the chain to the CA, the SANs, the EKUs,
/// the OU and CN, a year of validity, a 0600 key that is the cert's.
#[test]
fn issued_certificates_chain_to_the_ca_with_what_was_asked() {
    let ca = new_ca();
    let ca_der = der_of(&ca.path().join("ca.pem"));
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).expect("CA");
    let cases: [(CertKind, &[&str], bool, bool); 4] = [
        (CertKind::Server, &["lb.example", "10.0.0.9"], true, false),
        (CertKind::Client, &[], false, true),
        (
            CertKind::Engine,
            &["node-1.example", "127.0.0.1", "::1"],
            true,
            false,
        ),
        (
            CertKind::Manager,
            &["127.0.0.1", "localhost", "m1.example"],
            true,
            true,
        ),
    ];
    for (kind, sans, server_auth, client_auth) in cases {
        let out = tempfile::tempdir().expect("temp dir");
        let out_dir = out.path().join("certs");
        let mut request = IssueRequest::new(kind, names(sans));
        if kind == CertKind::Client {
            request.common_name = Some("alice".into());
        }
        let issued = issue(ca.path(), &request, &out_dir).expect("issue");
        assert_eq!(issued.ca, out_dir.join("ca.pem"));
        assert_eq!(issued.cert, out_dir.join("cert.pem"));
        assert_eq!(issued.key, out_dir.join("key.pem"));
        assert_eq!(mode(&issued.key), 0o600, "{kind}");
        assert_eq!(mode(&issued.cert), 0o644, "{kind}");
        assert_eq!(mode(&out_dir), 0o700, "{kind}");
        assert_eq!(
            fs::read(&issued.ca).expect("read"),
            fs::read(ca.path().join("ca.pem")).expect("read"),
            "{kind}: ca.pem is the CA's"
        );

        let der = der_of(&issued.cert);
        let (_, cert) = X509Certificate::from_der(&der).expect("X.509");
        cert.verify_signature(Some(ca_cert.public_key()))
            .unwrap_or_else(|e| panic!("{kind}: not signed by the CA: {e}"));
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw(), "{kind}");
        assert!(!cert.is_ca(), "{kind}");
        let expected_cn = if kind == CertKind::Client {
            "alice"
        } else {
            sans[0]
        };
        assert_eq!(
            cert.subject().to_string(),
            format!("O=swarm, OU=swarm-{kind}, CN={expected_cn}")
        );
        assert_eq!(issued.common_name, expected_cn);
        assert_eq!(sans_of(&cert), sans, "{kind}");
        let eku = cert
            .extended_key_usage()
            .expect("ok")
            .expect("present")
            .value;
        assert_eq!(eku.server_auth, server_auth, "{kind} serverAuth");
        assert_eq!(eku.client_auth, client_auth, "{kind} clientAuth");
        assert!(!eku.any, "{kind}");
        let not_after = cert.validity().not_after.timestamp();
        assert!(
            (not_after - (now() + 365 * DAY)).abs() < 60,
            "{kind}: a year"
        );
        assert_eq!(peer_kind(&der).expect("parse"), Some(kind));
        assert_eq!(is_manager_certificate(&der), kind == CertKind::Manager);

        let key_pem = fs::read_to_string(&issued.key).expect("read key");
        let key = KeyPair::from_pem(&key_pem).expect("key");
        assert_eq!(
            key.public_key_raw(),
            cert.public_key().subject_public_key.data.as_ref(),
            "{kind}: key.pem is the certificate's key"
        );
    }
}

/// `days` sets the validity; a certificate may not outlive its CA, nor
/// last zero days.
#[test]
fn validity_is_the_days_asked_within_the_ca() {
    let ca = tempfile::tempdir().expect("temp dir");
    let options = CaOptions {
        days: 100,
        ..CaOptions::default()
    };
    init(ca.path(), &options).expect("init");
    let out = tempfile::tempdir().expect("temp dir");
    let mut request = IssueRequest::new(CertKind::Engine, names(&["127.0.0.1"]));
    request.days = 30;
    let issued = issue(ca.path(), &request, out.path()).expect("issue");
    let der = der_of(&issued.cert);
    let (_, cert) = X509Certificate::from_der(&der).expect("X.509");
    assert!((cert.validity().not_after.timestamp() - (now() + 30 * DAY)).abs() < 60);
    assert!((cert.validity().not_before.timestamp() - (now() - 3600)).abs() < 60);

    for days in [101, 0] {
        request.days = days;
        request.force = true;
        let err = issue(ca.path(), &request, out.path()).expect_err("refused");
        assert!(matches!(err, CaError::BadValidity(_)), "{days}: {err}");
    }
    assert!(init(
        ca.path(),
        &CaOptions {
            days: 0,
            force: true,
            ..CaOptions::default()
        }
    )
    .is_err());
}

/// Existing cert.pem or key.pem are kept unless forced; the same CA's
/// ca.pem is no clash, another CA's is. Forced, a new key is 0600 even
/// over a world-readable one.
#[test]
fn issue_refuses_to_overwrite_unless_forced() {
    let ca = new_ca();
    let out = tempfile::tempdir().expect("temp dir");
    let request = IssueRequest::new(CertKind::Engine, names(&["127.0.0.1"]));
    issue(ca.path(), &request, out.path()).expect("first issue");
    let cert_before = fs::read(out.path().join("cert.pem")).expect("read");
    match issue(ca.path(), &request, out.path()) {
        Err(CaError::Exists(paths)) => {
            assert_eq!(
                paths,
                vec![out.path().join("cert.pem"), out.path().join("key.pem")]
            )
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(
        fs::read(out.path().join("cert.pem")).expect("read"),
        cert_before
    );

    // Only ca.pem there, the same CA's: fine.
    fs::remove_file(out.path().join("cert.pem")).expect("rm");
    fs::remove_file(out.path().join("key.pem")).expect("rm");
    issue(ca.path(), &request, out.path()).expect("same ca.pem is no clash");

    // Another CA's ca.pem: a clash.
    let other = new_ca();
    let err = issue(other.path(), &request, out.path()).expect_err("clash");
    assert!(
        matches!(&err, CaError::Exists(p) if p[0] == out.path().join("ca.pem") && p.len() == 3),
        "{err}"
    );

    fs::set_permissions(
        out.path().join("key.pem"),
        fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let forced = IssueRequest {
        force: true,
        ..request
    };
    issue(other.path(), &forced, out.path()).expect("forced");
    assert_ne!(
        fs::read(out.path().join("cert.pem")).expect("read"),
        cert_before
    );
    assert_eq!(mode(&out.path().join("key.pem")), 0o600);
    assert_eq!(
        fs::read(out.path().join("ca.pem")).expect("read"),
        fs::read(other.path().join("ca.pem")).expect("read")
    );
}

/// No CA, a certificate directory given as the CA, a key that is not the
/// CA's, a server kind without SAN, a client without a name: errors, and
/// nothing written.
#[test]
fn issue_refuses_what_it_cannot_sign() {
    let ca = new_ca();
    let out = tempfile::tempdir().expect("temp dir");
    let target = out.path().join("out");
    let engine = IssueRequest::new(CertKind::Engine, names(&["127.0.0.1"]));

    let empty = tempfile::tempdir().expect("temp dir");
    let err = issue(empty.path(), &engine, &target).expect_err("no CA");
    assert!(
        matches!(&err, CaError::NoCa { missing, .. } if *missing == empty.path().join("ca.pem")),
        "{err}"
    );

    // A certificate directory has ca.pem but not the CA key.
    let certs = tempfile::tempdir().expect("temp dir");
    issue(ca.path(), &engine, certs.path()).expect("issue");
    let err = issue(certs.path(), &engine, &target).expect_err("no CA key");
    assert!(
        matches!(&err, CaError::NoCa { missing, .. } if *missing == certs.path().join("ca-key.pem")),
        "{err}"
    );
    // ... and with a key.pem renamed ca-key.pem it is no CA either.
    fs::copy(
        certs.path().join("key.pem"),
        certs.path().join("ca-key.pem"),
    )
    .expect("copy");
    fs::copy(certs.path().join("cert.pem"), certs.path().join("ca.pem")).expect("copy");
    let err = issue(certs.path(), &engine, &target).expect_err("a leaf is no CA");
    assert!(matches!(err, CaError::BadCa { .. }), "{err}");

    // Another CA's key.
    let other = new_ca();
    fs::copy(
        other.path().join("ca-key.pem"),
        ca.path().join("ca-key.pem"),
    )
    .expect("copy");
    let err = issue(ca.path(), &engine, &target).expect_err("wrong key");
    assert!(
        matches!(&err, CaError::BadCa { path, .. } if *path == ca.path().join("ca-key.pem")),
        "{err}"
    );
    fs::write(other.path().join("ca-key.pem"), "not a key").expect("write");
    let err = issue(other.path(), &engine, &target).expect_err("garbage key");
    assert!(matches!(err, CaError::BadCa { .. }), "{err}");

    for kind in [CertKind::Server, CertKind::Engine, CertKind::Manager] {
        let mut request = IssueRequest::new(kind, Vec::new());
        request.common_name = Some("x".into());
        let err = issue(other.path(), &request, &target).expect_err("no SAN");
        assert!(matches!(err, CaError::NoSan(k) if k == kind), "{err}");
    }
    let err = issue(
        other.path(),
        &IssueRequest::new(CertKind::Client, Vec::new()),
        &target,
    )
    .expect_err("nameless client");
    assert!(matches!(err, CaError::NoCommonName), "{err}");
    let mut long = IssueRequest::new(CertKind::Client, Vec::new());
    long.common_name = Some("x".repeat(65));
    let err = issue(other.path(), &long, &target).expect_err("long CN");
    assert!(matches!(err, CaError::BadCommonName(_)), "{err}");

    assert!(!target.exists(), "nothing written");
}

/// Duplicated names are written once.
#[test]
fn duplicate_names_become_one_san() {
    let ca = new_ca();
    let out = tempfile::tempdir().expect("temp dir");
    let request = IssueRequest::new(
        CertKind::Manager,
        names(&["127.0.0.1", "Node-1.Example", "node-1.example", "127.0.0.1"]),
    );
    let issued = issue(ca.path(), &request, out.path()).expect("issue");
    let der = der_of(&issued.cert);
    let (_, cert) = X509Certificate::from_der(&der).expect("X.509");
    assert_eq!(sans_of(&cert), ["127.0.0.1", "node-1.example"]);
}

/// IP addresses and DNS names are accepted; URLs, ports, mistyped
/// addresses and malformed labels are refused.
#[test]
fn san_names_parse_as_ip_or_dns() {
    let ok = [
        ("127.0.0.1", SanName::Ip("127.0.0.1".parse().expect("ip"))),
        ("::1", SanName::Ip("::1".parse().expect("ip"))),
        ("[fd00::7]", SanName::Ip("fd00::7".parse().expect("ip"))),
        ("localhost", SanName::Dns("localhost".into())),
        ("Node-1.Example", SanName::Dns("node-1.example".into())),
        ("*.swarm.example", SanName::Dns("*.swarm.example".into())),
        ("3com.example", SanName::Dns("3com.example".into())),
    ];
    for (text, expected) in ok {
        assert_eq!(text.parse::<SanName>().expect(text), expected);
    }
    let refused = [
        "",
        "tcp://10.0.0.1:2376",
        "10.0.0.1:2376",
        "node-1:2376",
        "10.0.0.256",
        "10.0.0",
        "node_1.example",
        "-node.example",
        "node-.example",
        "node..example",
        "node.example.",
        "*",
        "a.*.example",
        "bad name",
    ];
    for text in refused {
        let err = text.parse::<SanName>().expect_err(text);
        assert!(matches!(err, CaError::BadName { .. }), "{text}: {err}");
    }
    let long_label = format!("{}.example", "a".repeat(64));
    assert!(long_label.parse::<SanName>().is_err());
}

/// Kinds parse from their names and OUs, and nothing else.
#[test]
fn kinds_round_trip_through_names_and_ous() {
    for kind in CertKind::ALL {
        assert_eq!(kind.name().parse::<CertKind>().expect("name"), kind);
        assert_eq!(
            CertKind::from_organizational_unit(kind.organizational_unit()),
            Some(kind)
        );
    }
    assert!("admin".parse::<CertKind>().is_err());
    assert_eq!(CertKind::from_organizational_unit("swarm-admin"), None);
}

/// A certificate signed by `ca_dir`'s CA with the given OUs and EKUs, as
/// another issuer might make: for [`peer_kind`]'s refusals.
fn stranger(ca_dir: &Path, ous: &[&str], ekus: &[ExtendedKeyUsagePurpose]) -> Vec<u8> {
    let ca = LoadedCa::read(ca_dir).expect("CA");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let mut name = DistinguishedName::new();
    // rcgen keeps one value per type: the OU OID spelled as a custom type
    // for each further OU.
    for (i, ou) in ous.iter().enumerate() {
        let ty = match i {
            0 => DnType::OrganizationalUnitName,
            _ => DnType::CustomDnType(vec![2, 5, 4, 11]),
        };
        name.push(ty, *ou);
    }
    name.push(DnType::CommonName, "stranger");
    params.distinguished_name = name;
    params.extended_key_usages = ekus.to_vec();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    params
        .signed_by(&key, &ca.issuer)
        .expect("sign")
        .der()
        .to_vec()
}

/// `peer_kind` names a kind only when the OU is exactly one of ours and
/// the EKUs carry what that kind needs.
#[test]
fn peer_kind_needs_one_known_ou_and_its_ekus() {
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let ca = new_ca();
    let both = [ServerAuth, ClientAuth];
    assert_eq!(
        peer_kind(&stranger(ca.path(), &["swarm-manager"], &both)).expect("parse"),
        Some(CertKind::Manager)
    );
    // A client certificate renamed manager, or missing serverAuth.
    let cases: [(&[&str], &[ExtendedKeyUsagePurpose]); 6] = [
        (&["swarm-manager"], &[ClientAuth]),
        (&["swarm-manager"], &[ServerAuth]),
        (&["swarm-client"], &[ServerAuth]),
        (&["swarm-manager", "swarm-client"], &both),
        (&["swarm-admin"], &both),
        (&[], &both),
    ];
    for (ous, ekus) in cases {
        let der = stranger(ca.path(), ous, ekus);
        assert_eq!(peer_kind(&der).expect("parse"), None, "{ous:?} {ekus:?}");
        assert!(!is_manager_certificate(&der));
    }
    // Other OUs beside ours do not matter.
    assert_eq!(
        peer_kind(&stranger(
            ca.path(),
            &["ops", "swarm-engine"],
            &[ServerAuth]
        ))
        .expect("parse"),
        Some(CertKind::Engine)
    );
    // No EKU extension at all: not ours.
    assert_eq!(
        peer_kind(&stranger(ca.path(), &["swarm-engine"], &[])).expect("parse"),
        None
    );
    assert!(matches!(
        peer_kind(b"not DER"),
        Err(CaError::BadCertificate(_))
    ));
    assert!(!is_manager_certificate(b"not DER"));
}

/// Error messages name the files and say what is wrong.
#[test]
fn errors_read_well() {
    let err = CaError::Exists(vec![
        PathBuf::from("/a/cert.pem"),
        PathBuf::from("/a/key.pem"),
    ]);
    assert_eq!(err.to_string(), "/a/cert.pem and /a/key.pem already exist");
    let err = CaError::Exists(vec![PathBuf::from("/a/ca.pem")]);
    assert_eq!(err.to_string(), "/a/ca.pem already exists");
    let err = CaError::NoCa {
        dir: PathBuf::from("/ca"),
        missing: PathBuf::from("/ca/ca.pem"),
    };
    assert_eq!(err.to_string(), "no CA in /ca: /ca/ca.pem is missing");
}
