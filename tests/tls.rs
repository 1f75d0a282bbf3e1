//! The built-in CA end to end: `swarmctl ca init` and `swarmctl cert
//! issue` (the real binary) make the certificates of a real `dockerd`
//! started with `--tlsverify` and of the real `docker` CLI; the engine
//! serves a client of its CA, with the files named or in `~/.docker`, and
//! refuses one without a certificate, with another CA's, or with a
//! certificate that is not for clients. `openssl verify` agrees.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use swarm_harness::{
    docker_cmd, docker_ok, start_engines_with, wait_for, EngineOptions, EngineTls,
};

/// Runs the real `swarmctl` with `args` and a `HOME` of its own (no
/// `DOCKER_CERT_PATH` or `SWARM_CA_DIR` from the caller's environment).
fn swarmctl(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmctl"))
        .args(args)
        .env("HOME", home)
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("SWARM_CA_DIR")
        .output()
        .expect("run swarmctl")
}

/// `swarmctl ARGS` that must succeed; its stdout.
fn swarmctl_ok(home: &Path, args: &[&str]) -> String {
    let out = swarmctl(home, args);
    assert!(
        out.status.success(),
        "swarmctl {} failed\nstdout: {}\nstderr: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `swarmctl ARGS` that must fail; its stderr.
fn swarmctl_err(home: &Path, args: &[&str]) -> String {
    let out = swarmctl(home, args);
    assert!(
        !out.status.success(),
        "swarmctl {} succeeded but should have failed\nstdout: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `openssl verify -CAfile CA [-purpose P] CERT`: (success, output).
fn openssl_verify(ca: &Path, purpose: Option<&str>, cert: &Path) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(ca);
    if let Some(purpose) = purpose {
        cmd.args(["-purpose", purpose]);
    }
    let out = cmd.arg(cert).output().expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `docker -H host ARGS version` with `HOME=home`: (success, stdout, stderr).
fn docker_version(host: &str, home: &Path, tls_args: &[&str]) -> (bool, String, String) {
    let mut args = tls_args.to_vec();
    args.extend(["version", "--format", "{{.Server.Version}}"]);
    let out = docker_cmd(30, host, &args)
        .env("HOME", home)
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run docker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--tlsverify` and the three files of a certificate directory.
fn tls_flags(dir: &Path) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        "--tlsverify".into(),
        format!("--tlscacert={}", file("ca.pem")),
        format!("--tlscert={}", file("cert.pem")),
        format!("--tlskey={}", file("key.pem")),
    ]
}

/// A dockerd with an engine certificate of the CA serves the docker CLI
/// holding a client certificate of the CA (named, or found in
/// `~/.docker`) or a manager's, and nothing else.
#[test]
fn engine_with_tlsverify_serves_clients_of_its_ca_only() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let home = root.join("home");
    let ca = root.join("ca");
    let ca_s = ca.display().to_string();
    let engine_dir = root.join("engine");

    let said = swarmctl_ok(&home, &["ca", "init", "--dir", &ca_s]);
    assert!(said.contains("CA created in"), "{said}");
    let said = swarmctl_ok(
        &home,
        &[
            "cert",
            "issue",
            "--ca",
            &ca_s,
            "--kind",
            "engine",
            "--san",
            "127.0.0.1,localhost",
            "--out",
            &engine_dir.display().to_string(),
        ],
    );
    assert!(said.contains("dockerd --tlsverify"), "{said}");
    // A client's certificate goes where the docker CLI looks by default.
    swarmctl_ok(
        &home,
        &[
            "cert", "issue", "--ca", &ca_s, "--kind", "client", "--cn", "tester",
        ],
    );
    let client_dir = home.join(".docker");
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(client_dir.join(file).is_file(), "~/.docker/{file}");
    }
    let manager_dir = root.join("manager");
    swarmctl_ok(
        &home,
        &[
            "cert",
            "issue",
            "--ca",
            &ca_s,
            "--kind",
            "manager",
            "--san",
            "127.0.0.1",
            "--out",
            &manager_dir.display().to_string(),
        ],
    );

    // openssl: every certificate chains to the CA, each for its purpose.
    let ca_pem = ca.join("ca.pem");
    for (dir, good, bad) in [
        (&engine_dir, "sslserver", Some("sslclient")),
        (&client_dir, "sslclient", Some("sslserver")),
        (&manager_dir, "sslserver", None),
        (&manager_dir, "sslclient", None),
    ] {
        let cert = dir.join("cert.pem");
        let (ok, text) = openssl_verify(&ca_pem, None, &cert);
        assert!(ok, "openssl verify {}: {text}", cert.display());
        let (ok, text) = openssl_verify(&ca_pem, Some(good), &cert);
        assert!(
            ok,
            "openssl verify -purpose {good} {}: {text}",
            cert.display()
        );
        if let Some(bad) = bad {
            let (ok, text) = openssl_verify(&ca_pem, Some(bad), &cert);
            assert!(!ok, "{} passes -purpose {bad}: {text}", cert.display());
        }
    }

    // Another CA and its client: a stranger to the engine.
    let other_ca = root.join("other-ca");
    let other_client = root.join("other-client");
    swarmctl_ok(
        &home,
        &["ca", "init", "--dir", &other_ca.display().to_string()],
    );
    swarmctl_ok(
        &home,
        &[
            "cert",
            "issue",
            "--ca",
            &other_ca.display().to_string(),
            "--kind",
            "client",
            "--cn",
            "stranger",
            "--out",
            &other_client.display().to_string(),
        ],
    );
    let (ok, text) = openssl_verify(&ca_pem, None, &other_client.join("cert.pem"));
    assert!(!ok, "another CA's certificate verifies: {text}");

    let engines = start_engines_with(vec![EngineOptions {
        tls: Some(EngineTls::in_dir(&engine_dir)),
        ..EngineOptions::default()
    }]);
    let engine = &engines[0];
    let host = engine.tcp_host();

    // The client certificate, named on the command line.
    let flags = tls_flags(&client_dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (ok, out, err) = docker_version(&host, &home, &flags);
    assert!(ok, "docker --tlsverify with the client certificate: {err}");
    let version = docker_ok(
        &engine.host(),
        &["version", "--format", "{{.Server.Version}}"],
    );
    assert_eq!(out, version, "the engine's version over TLS");

    // The same, found in ~/.docker: --tlsverify alone.
    let (ok, out2, err) = docker_version(&host, &home, &["--tlsverify"]);
    assert!(ok, "docker --tlsverify with ~/.docker: {err}");
    assert_eq!(out2, out);

    // A manager is a client of the engines.
    let flags = tls_flags(&manager_dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (ok, _, err) = docker_version(&host, &home, &flags);
    assert!(ok, "docker with the manager certificate: {err}");

    // The refusals. The CLI's error depends on when the engine's alert
    // arrives (a TLS alert, or a reset while writing), so the reason is
    // read from the engine's log.
    let ca_flag = format!("--tlscacert={}", ca_pem.display());
    let bare = root.join("bare-home");
    let refused = |what: &str, flags: &[&str], reason: &str| {
        let offset = log_len(&engine.log_path());
        let (ok, out, err) = docker_version(&host, &bare, flags);
        assert!(!ok && out.is_empty(), "served {what}: {out}");
        wait_for(
            &format!("the engine to log why it refused {what} ({reason:?}); CLI said: {err}"),
            Duration::from_secs(10),
            || {
                log_since(&engine.log_path(), offset)
                    .contains(reason)
                    .then_some(())
            },
        );
    };

    refused(
        "a client without certificate",
        &["--tlsverify", &ca_flag],
        "client didn't provide a certificate",
    );

    // Another CA's client certificate.
    let flags = tls_flags(&other_client);
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags[1] = &ca_flag; // the client trusts the engine's CA
    refused(
        "another CA's client",
        &flags,
        "failed to verify client certificate: x509: certificate signed by unknown authority",
    );

    // The engine's own certificate is no client certificate (serverAuth only).
    let flags = tls_flags(&engine_dir);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    refused(
        "an engine certificate as a client",
        &flags,
        "incompatible key usage",
    );

    // Plain HTTP.
    let (ok, out, err) = docker_version(&host, &bare, &[]);
    assert!(!ok && out.is_empty(), "served plain HTTP: {out}");
    assert!(err.contains("HTTP request to an HTTPS server"), "{err}");
}

/// The length of a file (0 if missing).
fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// What was appended to a file after `offset`.
fn log_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The CLI's refusals: an existing CA, an existing certificate, no CA, a
/// SAN with a port, a server kind without SAN; `--force` overwrites.
#[test]
fn cli_refuses_clearly_and_forces_on_demand() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path().join("home");
    // Default CA directory: ~/.swarm/ca.
    let said = swarmctl_ok(&home, &["ca", "init"]);
    assert!(
        said.contains(&home.join(".swarm/ca").display().to_string()),
        "{said}"
    );
    let key = home.join(".swarm/ca/ca-key.pem");
    let before = std::fs::read(&key).expect("CA key");
    let err = swarmctl_err(&home, &["ca", "init"]);
    assert!(
        err.contains("already exist") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&key).expect("CA key"), before);
    swarmctl_ok(&home, &["ca", "init", "--force"]);
    assert_ne!(std::fs::read(&key).expect("CA key"), before);

    let out = tmp.path().join("m1");
    let out_s = out.display().to_string();
    let issue = [
        "cert",
        "issue",
        "--kind",
        "manager",
        "--san",
        "m1.example",
        "--out",
        &out_s,
    ];
    swarmctl_ok(&home, &issue);
    let err = swarmctl_err(&home, &issue);
    assert!(err.contains("cert.pem") && err.contains("--force"), "{err}");
    let mut forced = issue.to_vec();
    forced.push("--force");
    swarmctl_ok(&home, &forced);

    let err = swarmctl_err(
        &home,
        &[
            "cert",
            "issue",
            "--kind",
            "engine",
            "--san",
            "10.0.0.1:2376",
            "--out",
            &out_s,
        ],
    );
    assert!(err.contains("without a port"), "{err}");
    let err = swarmctl_err(
        &home,
        &["cert", "issue", "--kind", "engine", "--out", &out_s],
    );
    assert!(err.contains("subject alternative name"), "{err}");
    let nowhere = tmp.path().join("nowhere").display().to_string();
    let err = swarmctl_err(
        &home,
        &[
            "cert", "issue", "--ca", &nowhere, "--kind", "client", "--cn", "x", "--out", &out_s,
        ],
    );
    assert!(
        err.contains("no CA in") && err.contains("swarmctl ca init"),
        "{err}"
    );
    let err = swarmctl_err(&home, &["cert", "issue", "--kind", "admin", "--san", "x"]);
    assert!(err.contains("admin"), "{err}");
}
