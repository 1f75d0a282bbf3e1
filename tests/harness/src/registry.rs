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
    /// Storage, configuration and log; removed on drop (after the kill:
    /// field order).
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits until it answers `GET /v2/`.
    pub fn start() -> anyhow::Result<Registry> {
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
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            ),
        )
        .context("writing the registry's configuration")?;
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
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if matches!(http_get(&registry.addr, "/v2/"), Ok((200, _))) {
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
    }
}
