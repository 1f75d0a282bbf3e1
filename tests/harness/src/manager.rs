//! `swarm manage` child processes for tests.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::http_get;
use crate::ports::free_port;
use crate::sys::{tail_file, LOG_TAIL_LINES};
use crate::watchdog::{watch_log, watchdog};

/// A running `swarm manage` child process; Drop kills it (by pid) and waits.
pub struct Manager {
    /// The manager's API address, `127.0.0.1:PORT`.
    pub addr: String,
    /// The manager as a docker `-H` value, `tcp://127.0.0.1:PORT`.
    pub host: String,
    /// Pid of the `swarm` process (0 after [`Manager::kill`]).
    pub pid: u32,
    extra_args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    /// The manager's whole log (stdout + stderr).
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the manager's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// A directory that lives as long as the manager (for data dirs etc.).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// SIGKILLs the manager and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.pid = 0;
    }

    /// Whether the manager process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the manager (if running) and starts it again with the same
    /// address and arguments; waits for /_ping (panics after 20 s).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ping();
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening manager log");
        let log2 = log.try_clone().expect("cloning manager log fd");
        let mut cmd = Command::new(crate::binary("swarm"));
        cmd.arg("manage").arg("-H").arg(&self.host);
        // Each manager keeps its Raft data in its own directory (unless the
        // test names one), which survives restarts of the manager.
        if !self.extra_args.iter().any(|a| a == "--data-dir") {
            cmd.arg("--data-dir").arg(self._dir.path().join("data"));
        }
        // Requests and hijacked streams are logged, so a failing test's log
        // tail says which call hung.
        if !self.extra_args.iter().any(|a| a == "--log-level") {
            cmd.args(["--log-level", "info,swarm::api=debug"]);
        }
        let child = cmd
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawning swarm manage");
        self.pid = child.id();
        self.child = Some(child);
        watch_log(format!("swarm manage {}", self.addr), self.log.clone());
    }

    fn wait_ping(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "swarm manage on {} exited during startup: {status}\n--- log ---\n{}",
                        self.addr,
                        self.log_tail(LOG_TAIL_LINES)
                    );
                }
            }
            if matches!(http_get(&self.addr, "/_ping"), Ok((200, body)) if body.trim() == "OK") {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "swarm manage on {} did not answer /_ping within 20 s\n--- log ---\n{}",
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
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
        self.kill();
    }
}

/// Starts env!("CARGO_BIN_EXE_swarm") with `manage -H tcp://127.0.0.1:<free port> <extra args>`,
/// stdout+stderr to a log file in a temp dir (its tail is printed on Drop if the
/// test is panicking), and waits until GET /_ping answers OK; panics after 20 s.
pub fn start_manager(extra_args: &[&str]) -> Manager {
    watchdog();
    let dir = tempfile::Builder::new()
        .prefix("swarm-mgr-")
        .tempdir()
        .expect("creating manager temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut m = Manager {
        host: format!("tcp://{addr}"),
        addr,
        pid: 0,
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        child: None,
        log: dir.path().join("manager.log"),
        _dir: dir,
    };
    m.spawn();
    m.wait_ping();
    m
}
