//! A real etcd speaking the v3 API, for swarm's etcd discovery
//! (`etcd://`): Debian's `etcd-server` (3.4) on 127.0.0.1, plain
//! ([`EtcdV3::start`]) or serving TLS that asks clients for a certificate
//! of its CA ([`EtcdV3::start_tls`]). Its client and peer ports are free
//! ports; its `/health` is on a third, always plain HTTP, which tells when
//! it is ready. Its data and log are in a temporary directory.
//!
//! [`EtcdV3::kill`] and [`EtcdV3::restart`] take it down and bring it back
//! on the same ports with the same data. Dropping the [`EtcdV3`] kills it
//! (printing its log's tail if the thread panics) and removes its
//! directory. [`crate::etcd::Etcd`] is another etcd: the engines' v2
//! cluster store, on a bridge address.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::http_get;
use crate::ports::free_port;
use crate::process::{tail, Process};
use crate::sys::LOG_TAIL_LINES;
use crate::watchdog::{watch_log, watchdog};

/// Debian's etcd.
const ETCD: &str = "/usr/bin/etcd";

/// How long a started etcd may take to report itself healthy.
pub const ETCD_V3_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running etcd (see the module's documentation).
pub struct EtcdV3 {
    /// Its client address, `127.0.0.1:PORT`: an `etcd://` URL's endpoint.
    pub addr: String,
    /// Where `GET /health` answers, `127.0.0.1:PORT`.
    health_addr: String,
    process: Process,
    /// Data and log; removed on drop (after the kill: field order).
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for EtcdV3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdV3")
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl EtcdV3 {
    /// Starts a plain etcd and waits until it is healthy.
    pub fn start() -> anyhow::Result<EtcdV3> {
        EtcdV3::start_with(None)
    }

    /// Starts an etcd serving TLS with `cert_dir`'s `cert.pem` and
    /// `key.pem` (Docker's layout) that accepts only clients with a
    /// certificate of `cert_dir`'s `ca.pem` (`--client-cert-auth`), and
    /// waits until it is healthy.
    pub fn start_tls(cert_dir: &Path) -> anyhow::Result<EtcdV3> {
        EtcdV3::start_with(Some(cert_dir))
    }

    fn start_with(cert_dir: Option<&Path>) -> anyhow::Result<EtcdV3> {
        watchdog();
        if !Path::new(ETCD).exists() {
            bail!("{ETCD} missing: apt-get install etcd-server (tests/run.sh does)");
        }
        let dir = tempfile::Builder::new()
            .prefix("swarm-etcd-v3-")
            .tempdir()
            .context("creating etcd's directory")?;
        let addr = format!("127.0.0.1:{}", free_port());
        let health_addr = format!("127.0.0.1:{}", free_port());
        let scheme = if cert_dir.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{addr}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut args: Vec<String> = [
            "--name",
            "swarm-test",
            "--data-dir",
            &dir.path().join("data").display().to_string(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("swarm-test={peer}"),
            "--initial-cluster-state",
            "new",
            "--listen-metrics-urls",
            &format!("http://{health_addr}"),
            // One member: it elects itself after one election timeout.
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--logger",
            "zap",
            // A failing test prints the log's tail: problems, not the startup.
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(certs) = cert_dir {
            let file = |name: &str| certs.join(name).display().to_string();
            args.extend([
                "--cert-file".to_string(),
                file("cert.pem"),
                "--key-file".to_string(),
                file("key.pem"),
                "--trusted-ca-file".to_string(),
                file("ca.pem"),
                "--client-cert-auth".to_string(),
            ]);
        }
        let log = dir.path().join("etcd.log");
        let process = Process::spawn("etcd", Path::new(ETCD), &args, &log)?;
        watch_log(format!("etcd v3 {addr}"), log);
        let mut etcd = EtcdV3 {
            addr,
            health_addr,
            process,
            dir,
        };
        etcd.wait_healthy()?;
        Ok(etcd)
    }

    /// Polls `GET /health` until it says `"health":"true"` (a leader, no
    /// alarm).
    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if !self.process.is_running() {
                bail!(
                    "etcd on {} exited during startup\n{}",
                    self.addr,
                    tail(self.process.log(), LOG_TAIL_LINES)
                );
            }
            let last = match http_get(&self.health_addr, "/health") {
                Ok((200, body)) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok((status, body)) => format!("{status}: {}", body.trim()),
                Err(e) => e.to_string(),
            };
            if start.elapsed() > ETCD_V3_START_TIMEOUT {
                bail!(
                    "etcd on {} not healthy within {ETCD_V3_START_TIMEOUT:?} (last: {last})\n{}",
                    self.addr,
                    tail(self.process.log(), LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (SIGKILL): its clients' connections break, new ones are
    /// refused.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same ports with the same data, and waits
    /// until it is healthy.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.start()?;
        self.wait_healthy()
    }

    /// Its directory (data and `etcd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

impl Drop for EtcdV3 {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- etcd {} log tail ---\n{}",
                self.addr,
                self.process.log_tail(LOG_TAIL_LINES)
            );
        }
        self.process.kill();
    }
}
