//! A real image registry for tests: Debian's `docker-registry`
//! (Distribution 2.8), with its storage in a temporary directory.
//!
//! - Plain HTTP on `127.0.0.1:PORT` ([`Registry::start`]): the engines the
//!   harness starts share the host's loopback (unless given a network
//!   namespace of their own) and dockerd lets `127.0.0.0/8` registries
//!   speak plain HTTP, so no `--insecure-registry` is needed.
//! - TLS and htpasswd basic auth ([`Registry::start_secure`]) on a routable
//!   address of the host ([`routable_ip`]), not loopback: dockerd treats
//!   every `127.0.0.0/8` registry as insecure and would not verify its
//!   certificate. An engine verifies it once it trusts the CA
//!   ([`Registry::trust`], the engine's own `certs.d`); one that does not
//!   fails with `x509: certificate signed by unknown authority`.
//!
//! Dropping the [`Registry`] kills it and removes its storage.

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
    /// Its address, `IP:PORT`: images are named `ADDR/repo:tag`.
    pub addr: String,
    process: Process,
    /// The CA engines are to trust ([`Registry::trust`]), with TLS.
    ca: Option<std::path::PathBuf>,
    /// Storage, configuration and log; removed on drop (after the kill:
    /// field order).
    _dir: tempfile::TempDir,
}

/// What a registry with TLS and basic auth needs: its certificate
/// directory (Docker's layout, a server certificate for [`routable_ip`])
/// and one user.
#[derive(Debug, Clone)]
pub struct Secure {
    /// `ca.pem`, `cert.pem`, `key.pem`.
    pub cert_dir: std::path::PathBuf,
    /// The address it serves on, which its certificate names: [`routable_ip`].
    pub ip: String,
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

    /// Starts a registry on `secure.ip` serving TLS with
    /// `secure.cert_dir`'s certificate and htpasswd basic auth for
    /// `secure.user`; engines verify it once they [`Registry::trust`] it.
    /// Waits until it accepts connections.
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
        let ip = secure.map_or("127.0.0.1", |s| s.ip.as_str());
        let addr = format!("{ip}:{}", free_port());
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
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
            ca: secure.map(|s| s.cert_dir.join("ca.pem")),
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

impl Registry {
    /// Makes `engine` trust this registry's CA: `ca.crt` in the engine's
    /// own `certs.d/ADDR` (dockerd reads it at each pull, no restart).
    pub fn trust(&self, engine: &crate::Engine) -> anyhow::Result<()> {
        let ca = self.ca.as_ref().context("a plain registry has no CA")?;
        let dir = engine.certs_d().join(&self.addr);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::copy(ca, dir.join("ca.crt"))
            .with_context(|| format!("installing the registry's CA in {}", dir.display()))?;
        Ok(())
    }

    /// Makes `engine` forget this registry's CA again.
    pub fn distrust(&self, engine: &crate::Engine) -> anyhow::Result<()> {
        let dir = engine.certs_d().join(&self.addr);
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
    }
}

/// A non-loopback IPv4 address of this host that its engines reach: the
/// source address of the default route (`ip -4 route get`), else the
/// first of `hostname -I` outside `127.0.0.0/8`.
pub fn routable_ip() -> anyhow::Result<String> {
    let routed = std::process::Command::new("ip")
        .args(["-4", "route", "get", "192.0.2.200"])
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut words = text.split_whitespace();
            words.find(|w| *w == "src")?;
            words.next().map(str::to_string)
        });
    if let Some(ip) = routed.filter(|ip| !ip.starts_with("127.")) {
        return Ok(ip);
    }
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .context("running hostname -I")?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
        .context("this host has no non-loopback IPv4 address")
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.process.kill();
    }
}
