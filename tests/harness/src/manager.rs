//! `swarm manage` child processes: the one wrapper tests, the `failover`
//! bench and `swarm-bench` start managers with. A [`Manager`] is a
//! [`Process`] with an API address, a directory for its log and (unless
//! told otherwise) its Raft data, and a readiness probe; it can be killed
//! (SIGKILL), stopped (SIGTERM, then SIGKILL) and started again from the
//! same command line and data.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http::http_get;
use crate::ports::try_free_port;
use crate::process::Process;
use crate::sys::LOG_TAIL_LINES;
use crate::watchdog::{watch_log, watchdog};

/// How long [`start_manager`] and [`Manager::restart`] wait for `/_ping`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// `--log-level` of the managers tests start: requests and hijacked
/// streams are logged, so a failing test's log tail says which call hung.
pub const TEST_LOG_LEVEL: &str = "info,swarm::api=debug";

/// How to start a `swarm manage`. Its command line is `swarm manage -H
/// tcp://ADDR [--raft-addr R] [--data-dir D] [--log-level L] [--join J]
/// ARGS...`; flags left `None` are not passed (swarm's defaults), except
/// the data dir.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Its name in messages and file names (`<dir>/<name>.log`).
    pub name: String,
    /// The `swarm` binary; `None`: [`crate::binary()`]`("swarm")`.
    pub bin: Option<PathBuf>,
    /// The API address, `127.0.0.1:PORT`; `None`: a free port.
    pub addr: Option<String>,
    /// `--raft-addr`.
    pub raft_addr: Option<String>,
    /// `--data-dir`; `None`: `<dir>/<name>`, unless `args` name one.
    pub data_dir: Option<PathBuf>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--join`: the API address of a manager of the cluster to join.
    pub join: Option<String>,
    /// Every other flag, and the discovery URL last.
    pub args: Vec<String>,
    /// Where its log and data dir go; `None`: a temporary directory that
    /// lives as long as the manager.
    pub dir: Option<PathBuf>,
    /// The network namespace (`ip netns` name) it runs in; `None`: the
    /// test's own. `addr` must then be given, an address of that namespace.
    pub netns: Option<String>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            name: "manager".into(),
            bin: None,
            addr: None,
            raft_addr: None,
            data_dir: None,
            log_level: None,
            join: None,
            args: Vec::new(),
            dir: None,
            netns: None,
        }
    }
}

/// A `swarm manage` child process. Dropping it kills it (SIGKILL) and, if
/// the thread is panicking (a failed test), prints its log tail first.
pub struct Manager {
    /// The manager's API address, `127.0.0.1:PORT`.
    pub addr: String,
    /// The manager as a docker `-H` value, `tcp://127.0.0.1:PORT`.
    pub host: String,
    process: Process,
    dir: PathBuf,
    /// The temporary directory, when the manager owns its directory;
    /// dropped after `process` (field order), so after the kill.
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("addr", &self.addr)
            .field("process", &self.process)
            .finish()
    }
}

impl Manager {
    /// Starts `swarm manage` as `config` says; returns at once (see
    /// [`Manager::wait_ping`] for a manager that answers).
    pub fn spawn(config: ManagerConfig) -> anyhow::Result<Manager> {
        let bin = match config.bin {
            Some(bin) => bin,
            None => crate::try_binary("swarm").map_err(anyhow::Error::msg)?,
        };
        let (dir, temp) = match config.dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("swarm-mgr-")
                    .tempdir()
                    .context("creating a manager's directory")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let addr = match config.addr {
            Some(addr) => addr,
            None => format!("127.0.0.1:{}", try_free_port().context("a free port")?),
        };
        let host = format!("tcp://{addr}");
        let mut args = vec!["manage".to_string(), "-H".to_string(), host.clone()];
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(name.to_string());
                args.push(value);
            }
        };
        flag("--raft-addr", config.raft_addr);
        // The Raft data survives restarts of the manager.
        let data_dir = match config.data_dir {
            Some(d) => Some(d),
            None if config.args.iter().any(|a| a == "--data-dir") => None,
            None => Some(dir.join(&config.name)),
        };
        flag("--data-dir", data_dir.map(|d| d.display().to_string()));
        flag("--log-level", config.log_level);
        flag("--join", config.join);
        args.extend(config.args);
        let log = dir.join(format!("{}.log", config.name));
        let process = match &config.netns {
            Some(ns) => Process::spawn_in_netns(&config.name, ns, &bin, &args, &log)?,
            None => Process::spawn(&config.name, &bin, &args, &log)?,
        };
        watch_log(format!("swarm manage {addr}"), log);
        Ok(Manager {
            addr,
            host,
            process,
            dir,
            _temp: temp,
        })
    }

    /// Its name (see [`ManagerConfig::name`]).
    pub fn name(&self) -> &str {
        self.process.name()
    }

    /// Its command line after the binary (`manage -H ...`).
    pub fn args(&self) -> &[String] {
        self.process.args()
    }

    /// The process (memory, CPU time, descriptors).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Its pid, from its start until [`Manager::kill`] or [`Manager::stop`]
    /// (or until [`Manager::check_running`] found it exited).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The directory of its log and, unless told otherwise, its data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its log file (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> &Path {
        self.process.log()
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        self.process.log_text()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// An error with its log tail if it exited by itself.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.process
            .check_running()
            .with_context(|| format!("swarm manage on {}", self.addr))
    }

    /// SIGKILLs it and waits for it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.process.stop(grace);
    }

    /// Starts it again (after [`Manager::kill`] or [`Manager::stop`]) with
    /// the same address, arguments and data dir; returns at once.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.process.start()
    }

    /// Waits until `GET /_ping` answers `OK`; an error with the log tail if
    /// the process exits first or `timeout` passes. Blocks the thread.
    pub fn wait_ping(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let addr = self.addr.clone();
        self.wait_until_pinged(timeout, "", || match http_get(&addr, "/_ping") {
            Ok((200, body)) if body.trim() == "OK" => Ok(()),
            Ok((status, body)) => Err(format!("answered {status}: {}", body.trim())),
            Err(e) => Err(e.to_string()),
        })
    }

    /// Like [`Manager::wait_ping`] for a manager serving its API over TLS:
    /// waits until `GET /_ping` over TLS answers `OK`, the client trusting
    /// the `ca.pem` of the certificate directory `cert_dir` and presenting
    /// its `cert.pem` ([`crate::pki::client_config`]). Blocks the thread.
    pub fn wait_ping_tls(&mut self, cert_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        let config = crate::pki::client_config(cert_dir)?;
        let addr = self.addr.clone();
        self.wait_until_pinged(timeout, " over TLS", || {
            match crate::pki::tls_request(&addr, &config, "GET", "/_ping", None) {
                Ok(answer) if answer.status == 200 && answer.body.trim() == "OK" => Ok(()),
                Ok(answer) => Err(format!(
                    "answered {}: {}",
                    answer.status,
                    answer.body.trim()
                )),
                Err(e) => Err(format!("{e:#}")),
            }
        })
    }

    /// Polls `ping` every 100 ms until it succeeds; an error with its last
    /// failure and the log tail if the process exits first or `timeout`
    /// passes (`how` says how the manager was pinged).
    fn wait_until_pinged(
        &mut self,
        timeout: Duration,
        how: &str,
        mut ping: impl FnMut() -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if !self.process.is_running() {
                bail!(
                    "swarm manage on {} exited during startup\n--- log ---\n{}",
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            let last = match ping() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if start.elapsed() > timeout {
                bail!(
                    "swarm manage on {} did not answer /_ping{how} within {timeout:?} \
                     (last: {last})\n--- log ---\n{}",
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Manager::restart`] with every argument `old` replaced by `new`
    /// (from then on); an error when none is `old`.
    pub fn restart_with_arg(&mut self, old: &str, new: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.process.replace_arg(old, new) > 0,
            "no argument {old:?} in {:?}",
            self.process.args()
        );
        self.restart()
    }

    /// Kills it (if running), starts it again with the same address,
    /// arguments and data, and waits for `/_ping` ([`READY_TIMEOUT`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start()?;
        self.wait_ping(READY_TIMEOUT)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- swarm manage {} log tail ---\n{}",
                self.addr,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        self.process.kill();
    }
}

/// For tests: starts the `swarm` binary with `manage -H tcp://127.0.0.1:<free
/// port> --data-dir <its temp dir> --log-level` [`TEST_LOG_LEVEL`] (unless
/// `extra_args` give either) `<extra args>` and waits until `GET /_ping`
/// answers OK. Starts the [`watchdog`].
///
/// # Panics
///
/// If it cannot start or does not answer within [`READY_TIMEOUT`] (the
/// message holds its log tail).
pub fn start_manager(extra_args: &[&str]) -> Manager {
    let mut manager = spawn_for_test(extra_args);
    if let Err(e) = manager.wait_ping(READY_TIMEOUT) {
        panic!("{e:#}");
    }
    manager
}

/// [`start_manager`] for a manager serving its API over TLS (`extra_args`
/// holding `--tlsverify` or `--tls` and its files): waits until `GET
/// /_ping` answers OK over TLS to the client of the certificate directory
/// `client_dir` ([`Manager::wait_ping_tls`]).
///
/// # Panics
///
/// As [`start_manager`].
pub fn start_manager_tls(extra_args: &[&str], client_dir: &Path) -> Manager {
    let mut manager = spawn_for_test(extra_args);
    if let Err(e) = manager.wait_ping_tls(client_dir, READY_TIMEOUT) {
        panic!("{e:#}");
    }
    manager
}

/// Starts the [`watchdog`] and `swarm manage` as [`start_manager`] says,
/// without waiting for it.
fn spawn_for_test(extra_args: &[&str]) -> Manager {
    watchdog();
    let args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
    let log_level = (!args.iter().any(|a| a == "--log-level")).then(|| TEST_LOG_LEVEL.to_string());
    Manager::spawn(ManagerConfig {
        log_level,
        args,
        ..ManagerConfig::default()
    })
    .unwrap_or_else(|e| panic!("starting swarm manage: {e:#}"))
}
