//! Child processes of tests, benches and `swarm-bench`: one wrapper,
//! [`Process`], started with a command line and a log file (stdout and
//! stderr appended), that can be asked for its memory and CPU time, killed
//! (SIGKILL) or stopped (SIGTERM, then SIGKILL), and started again with the
//! same command line. [`crate::manager::Manager`] is one for `swarm manage`;
//! `swarm-bench` runs `hollow-engine` as one.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::sys::tail_file;

/// A child process; killed (SIGKILL) and reaped when dropped.
pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    /// The network namespace (`ip netns` name) it runs in; `None`: this
    /// process's.
    netns: Option<String>,
    child: Option<Child>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Process {
    /// Starts `program args...` with stdin from /dev/null and stdout and
    /// stderr appended to `log`; `name` is for messages.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let mut process = Process {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            log: log.to_path_buf(),
            netns: None,
            child: None,
        };
        process.start()?;
        Ok(process)
    }

    /// Like [`Process::spawn`], in the network namespace `netns` (a name
    /// `ip netns` knows) through `ip netns exec`, which enters it and execs
    /// `program`: the pid is the program's, and signals reach it.
    pub fn spawn_in_netns(
        name: &str,
        netns: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut process = Process {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.to_vec(),
            log: log.to_path_buf(),
            netns: Some(netns.to_string()),
            child: None,
        };
        process.start()?;
        Ok(process)
    }

    /// Starts it again with the same command line, appending to the same
    /// log (after [`Process::kill`] or [`Process::stop`]); does nothing
    /// while it runs.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.kill();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = out.try_clone().context("cloning the log fd")?;
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        let child = command
            .args(&self.args)
            // An error returned from main prints without anyhow's backtrace,
            // which would push the error itself out of the log's tail
            // (panics keep theirs: RUST_BACKTRACE).
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Its name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program it runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its arguments (after the program).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Replaces every argument equal to `old` by `new` for the next
    /// [`Process::start`]; how many were replaced.
    pub fn replace_arg(&mut self, old: &str, new: &str) -> usize {
        let mut replaced = 0;
        for arg in self.args.iter_mut().filter(|a| *a == old) {
            *arg = new.to_string();
            replaced += 1;
        }
        replaced
    }

    /// Its pid, from its start until it is killed or stopped (or found
    /// exited by [`Process::check_running`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its whole log (empty if unreadable).
    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// Whether it runs (started, not killed or stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// An error (with the end of its log) if it has exited by itself; an
    /// error too if it was never started or was killed.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            bail!(
                "{} exited by itself: {status}\n{}",
                self.name,
                tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// Its memory now (see [`Memory::of`]).
    pub fn memory(&self) -> Option<Memory> {
        Memory::of(self.pid()?)
    }

    /// CPU time it used so far, user and system, all threads.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid()?)
    }

    /// How many file descriptors it has open (sockets included).
    pub fn open_fds(&self) -> Option<usize> {
        open_fds(self.pid()?)
    }

    /// User and system CPU time it used so far, all threads.
    pub fn cpu_split(&self) -> Option<(Duration, Duration)> {
        cpu_split(self.pid()?)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident set size now (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
}

impl Memory {
    /// The memory of process `pid`, if it exists.
    pub fn of(pid: u32) -> Option<Memory> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Memory::parse(&status)
    }

    /// Reads `VmRSS` and `VmHWM` (kB) from a `/proc/PID/status` text.
    pub fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        Some(Memory {
            rss_bytes: field("VmRSS:")?,
            peak_rss_bytes: field("VmHWM:")?,
        })
    }
}

/// CPU time (user + system, all threads) of process `pid`, from
/// `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_split(pid).map(|(user, system)| user + system)
}

/// User and system CPU time (all threads) of process `pid`, from
/// `/proc/PID/stat`.
pub fn cpu_split(pid: u32) -> Option<(Duration, Duration)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses:
    // state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks() as f64;
    Some((
        Duration::from_secs_f64(utime as f64 / ticks),
        Duration::from_secs_f64(stime as f64 / ticks),
    ))
}

/// How many file descriptors process `pid` has open (`/proc/PID/fd`).
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The last `lines` lines of a file, headed by its name, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        tail_file(path, lines)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tswarm\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads: 3\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                rss_bytes: 100 * 1024 * 1024,
                peak_rss_bytes: 200 * 1024 * 1024
            })
        );
        assert_eq!(Memory::parse("Name: x\n"), None);
    }

    #[test]
    fn own_memory_and_cpu() {
        let me = std::process::id();
        let m = Memory::of(me).expect("own /proc status");
        assert!(m.rss_bytes > 0 && m.peak_rss_bytes >= m.rss_bytes);
        assert!(cpu_time(me).is_some());
    }
}
