//! The docker CLI's TLS flags for a client of a manager (`swarmctl`, and
//! `swarm create`, `join` and `list` asking a manager's token service):
//! `--tls`, `--tlsverify` (`DOCKER_TLS_VERIFY`), `--tlscacert`,
//! `--tlscert`, `--tlskey`, the files defaulting to `$DOCKER_CERT_PATH`,
//! else `~/.docker`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;

use super::{Identity, ServerAuth, TlsError, TlsFiles};

/// Reads an environment variable: `std::env::var_os`, or a fake in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process's environment, as an [`Env`].
pub fn process_env(key: &str) -> Option<OsString> {
    std::env::var_os(key)
}

/// Where Docker's clients keep their certificates in `env`:
/// `DOCKER_CERT_PATH`, else `~/.docker`.
pub fn cert_dir_in(env: Env<'_>) -> PathBuf {
    if let Some(dir) = env("DOCKER_CERT_PATH").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".docker")
}

/// The docker CLI's TLS flags, with its defaults: the files in
/// `$DOCKER_CERT_PATH`, else `~/.docker`. Unlike the docker CLI, `--tls`
/// alone still verifies the server against the CA.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// Speak TLS to the manager, verifying it against the CA; show the
    /// client certificate when there is one.
    #[arg(long, global = true)]
    pub tls: bool,
    /// Speak TLS and show a client certificate (implies --tls).
    #[arg(long, global = true, env = "DOCKER_TLS_VERIFY",
          action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    pub tlsverify: bool,
    /// The CA's certificate [default: ca.pem in $DOCKER_CERT_PATH, else
    /// ~/.docker].
    #[arg(long, global = true, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// The client certificate [default: cert.pem there].
    #[arg(long, global = true, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// Its private key [default: key.pem there].
    #[arg(long, global = true, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// Whether the flags ask for TLS (`--tls` or `--tlsverify`).
    pub fn enabled(&self) -> bool {
        self.tls || self.tlsverify
    }

    /// The files named, with the defaults of `env` for the others.
    pub fn files(&self, env: Env<'_>) -> TlsFiles {
        TlsFiles::given_or_in(
            &cert_dir_in(env),
            self.tlscacert.as_deref(),
            self.tlscert.as_deref(),
            self.tlskey.as_deref(),
        )
    }

    /// The client configuration the flags ask for; `None`: plain HTTP.
    /// With `--tlsverify`, or `--tls` and both a certificate and a key
    /// file, the certificate is shown; with `--tls` alone, none.
    pub fn client_config(&self, env: Env<'_>) -> Result<Option<Arc<ClientConfig>>, TlsError> {
        if !self.enabled() {
            return Ok(None);
        }
        let files = self.files(env);
        let with_certificate = self.tlsverify || (files.cert.exists() && files.key.exists());
        let config = if with_certificate {
            Identity::load(files.clone())
                .and_then(|identity| identity.client_config(ServerAuth::Verified, &[]))
        } else {
            super::client_config_without_identity(&files.ca)
        };
        config.map(Some).map_err(|why| TlsError::ClientFiles {
            files: files.to_string(),
            why: Box::new(why),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{self, CaOptions, CertKind, IssueRequest};
    use clap::Parser;
    use std::path::Path;

    /// The flags on a command of their own.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        tls: ClientTlsArgs,
    }

    fn parse(args: &[&str]) -> ClientTlsArgs {
        let argv = std::iter::once("test").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect("parses").tls
    }

    /// Files default to the certificate directory, a missing file is an
    /// error naming it, a certificate found is shown.
    #[test]
    fn files_follow_the_docker_cli() {
        let none = |_: &str| None;
        assert!(parse(&[]).client_config(&none).expect("plain").is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let env =
            |key: &str| (key == "DOCKER_CERT_PATH").then(|| dir.path().as_os_str().to_owned());
        let home = |key: &str| (key == "HOME").then(|| OsString::from("/home/ann"));
        assert_eq!(cert_dir_in(&env), dir.path());
        assert_eq!(cert_dir_in(&home), Path::new("/home/ann/.docker"));
        let named = parse(&["--tls", "--tlscert", "/c/me.pem"]).files(&env);
        assert_eq!(named.ca, dir.path().join("ca.pem"));
        assert_eq!(named.cert, Path::new("/c/me.pem"));
        assert_eq!(named.key, dir.path().join("key.pem"));

        let verify = parse(&["--tlsverify"]);
        let err = verify.client_config(&env).expect_err("no files");
        assert!(
            err.to_string()
                .contains(&dir.path().join("ca.pem").display().to_string()),
            "{err}"
        );
        ca::init(&dir.path().join("ca"), &CaOptions::default()).expect("ca");
        let alice = IssueRequest {
            common_name: Some("alice".into()),
            ..IssueRequest::new(CertKind::Client, Vec::new())
        };
        ca::issue(&dir.path().join("ca"), &alice, dir.path()).expect("client certificate");
        let config = verify.client_config(&env).expect("loads").expect("TLS");
        assert!(config.client_auth_cert_resolver.has_certs());
        // --tls finds the certificate too; without one it shows none.
        let tls = parse(&["--tls"]);
        let config = tls.client_config(&env).expect("loads").expect("TLS");
        assert!(config.client_auth_cert_resolver.has_certs());
        std::fs::remove_file(dir.path().join("key.pem")).expect("remove");
        let config = tls.client_config(&env).expect("CA alone").expect("TLS");
        assert!(!config.client_auth_cert_resolver.has_certs());
        let err = verify.client_config(&env).expect_err("no key");
        assert!(err.to_string().contains("key.pem"), "{err}");
    }
}
