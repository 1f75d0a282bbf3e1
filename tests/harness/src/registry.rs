//! A real image registry for tests: Debian's `docker-registry`
//! (Distribution 2.8), plain HTTP on `127.0.0.1:PORT` with its storage in a
//! temporary directory. The engines the harness starts share the host's
//! loopback (unless given a network namespace of their own) and dockerd
//! lets `127.0.0.0/8` registries speak plain HTTP, so no
//! `--insecure-registry` is needed. Dropping the [`Registry`] kills it and
//! removes its storage.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::http_get;
use crate::ports::free_port;
use crate::process::Process;
use crate::sys::LOG_TAIL_LINES;

/// How long a started registry may take to answer `GET /v2/`.
pub const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry (see the module's documentation).
pub struct Registry {
    /// Its address, `127.0.0.1:PORT`: images are named `ADDR/repo:tag`.
    pub addr: String,
    process: Process,
    /// `/etc/docker/certs.d/ADDR`, for a registry with TLS.
    trusted: Option<std::path::PathBuf>,
    /// Storage, configuration and log; removed on drop (after the kill:
    /// field order).
    _dir: tempfile::TempDir,
}

/// What a registry with TLS and basic auth needs: its certificate
/// directory (Docker's layout, a server certificate for 127.0.0.1) and one
/// user.
#[derive(Debug, Clone)]
pub struct Secure {
    /// `ca.pem`, `cert.pem`, `key.pem`.
    pub cert_dir: std::path::PathBuf,
    /// The user's name.
    pub user: String,
    /// The user's password.
    pub password: String,
}

impl Registry {
    /// Starts a plain registry and waits until it answers `GET /v2/`.
    pub fn start() -> anyhow::Result<Registry> {
        Registry::start_with(None)
    }

    /// Starts a registry serving TLS with `secure.cert_dir`'s certificate
    /// and htpasswd basic auth for `secure.user`; the engines trust its CA
    /// through `/etc/docker/certs.d/ADDR/ca.crt` (removed on drop). Waits
    /// until `GET /v2/` asks for credentials.
    pub fn start_secure(secure: &Secure) -> anyhow::Result<Registry> {
        Registry::start_with(Some(secure))
    }

    fn start_with(secure: Option<&Secure>) -> anyhow::Result<Registry> {
        let program = std::path::Path::new("/usr/bin/docker-registry");
        if !program.exists() {
            bail!("docker-registry missing: apt-get install docker-registry (tests/run.sh does)");
        }
        let dir = tempfile::Builder::new()
            .prefix("swarm-registry-")
            .tempdir()
            .context("creating the registry's directory")?;
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        let mut trusted = None;
        if let Some(secure) = secure {
            text.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                secure.cert_dir.join("cert.pem").display(),
                secure.cert_dir.join("key.pem").display()
            ));
            let htpasswd = dir.path().join("htpasswd");
            let out = std::process::Command::new("htpasswd")
                .args(["-Bbn", &secure.user, &secure.password])
                .output()
                .context("running htpasswd (apt-get install apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::fs::write(&htpasswd, &out.stdout).context("writing htpasswd")?;
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: swarm-test\n    path: {}\n",
                htpasswd.display()
            ));
            let certs_d = std::path::PathBuf::from("/etc/docker/certs.d").join(&addr);
            std::fs::create_dir_all(&certs_d).context("creating /etc/docker/certs.d")?;
            std::fs::copy(secure.cert_dir.join("ca.pem"), certs_d.join("ca.crt"))
                .context("installing the registry's CA for the engines")?;
            trusted = Some(certs_d);
        }
        std::fs::write(&config, text).context("writing the registry's configuration")?;
        let log = dir.path().join("registry.log");
        let process = Process::spawn(
            "docker-registry",
            program,
            &["serve".to_string(), config.display().to_string()],
            &log,
        )?;
        let mut registry = Registry {
            addr,
            process,
            trusted,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            let up = match secure {
                // TLS: a plain probe gets the server's 400, which is enough.
                Some(_) => std::net::TcpStream::connect(&registry.addr).is_ok(),
                None => matches!(http_get(&registry.addr, "/v2/"), Ok((200, _))),
            };
            if up {
                return Ok(registry);
            }
            if !registry.process.is_running() || started.elapsed() > REGISTRY_START_TIMEOUT {
                bail!(
                    "docker-registry on {} did not answer /v2/ within {REGISTRY_START_TIMEOUT:?}\n--- log ---\n{}",
                    registry.addr,
                    crate::process::tail(&registry._dir.path().join("registry.log"), LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.process.kill();
        if let Some(dir) = &self.trusted {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
