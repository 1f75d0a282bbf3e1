//! Child processes of a benchmark (logs, memory, CPU time, a clean stop)
//! and scratch directories.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// A process the benchmark started; killed (SIGKILL) when dropped.
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `program args...` with stdin from /dev/null and stdout and
    /// stderr appended to `log`; `name` is for messages.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context("cloning the log fd")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} ({})", name, program.display()))?;
        Ok(Process {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Its name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// An error (with the end of its log) if it has exited.
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
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        all[start..].join("\n")
    )
}

/// A fresh directory under the system temp dir, removed (with everything
/// in it) when dropped unless [`ScratchDir::keep`] was called.
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Creates `$TMPDIR/PREFIX-PID-NANOS`.
    pub fn new(prefix: &str) -> anyhow::Result<ScratchDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir { path, keep: false })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place when dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
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

/// Machine-wide TCP counters, to tell a slow manager from a congested
/// kernel: `ActiveOpens` (/proc/net/snmp), `TCPSynRetrans`
/// (/proc/net/netstat) and the netfilter connection tracking table, which,
/// when full, drops new connections, loopback included ("nf_conntrack:
/// table full, dropping packet"): their SYNs are retried after 1 s, 3 s...
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NetCounters {
    /// TCP connections opened so far (connect() calls that sent a SYN).
    pub active_opens: u64,
    /// SYNs sent again for want of an answer.
    pub syn_retransmits: u64,
    /// Entries in the connection tracking table, if netfilter tracks.
    pub conntrack_count: Option<u64>,
    /// Its size.
    pub conntrack_max: Option<u64>,
}

impl NetCounters {
    /// Reads the counters now (missing ones are 0 or None).
    pub fn read() -> NetCounters {
        let snmp = fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let netstat = fs::read_to_string("/proc/net/netstat").unwrap_or_default();
        let number = |path: &str| {
            fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        NetCounters {
            active_opens: proc_net_field(&snmp, "Tcp:", "ActiveOpens").unwrap_or(0),
            syn_retransmits: proc_net_field(&netstat, "TcpExt:", "TCPSynRetrans").unwrap_or(0),
            conntrack_count: number("/proc/sys/net/netfilter/nf_conntrack_count"),
            conntrack_max: number("/proc/sys/net/netfilter/nf_conntrack_max"),
        }
    }

    /// The counters' growth from `before` to `self` (table figures as now).
    pub fn since(&self, before: &NetCounters) -> NetCounters {
        NetCounters {
            active_opens: self.active_opens.saturating_sub(before.active_opens),
            syn_retransmits: self.syn_retransmits.saturating_sub(before.syn_retransmits),
            ..*self
        }
    }

    /// Whether the tracking table is at least 90% full.
    pub fn conntrack_nearly_full(&self) -> bool {
        match (self.conntrack_count, self.conntrack_max) {
            (Some(n), Some(max)) if max > 0 => n * 10 >= max * 9,
            _ => false,
        }
    }
}

/// A field of a /proc/net/snmp-style file: a header line `PREFIX names...`
/// followed by a line `PREFIX values...`.
fn proc_net_field(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let column = names.split_whitespace().position(|n| n == name);
        if let Some(column) = column {
            return values.split_whitespace().nth(column)?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod net_tests {
    use super::*;

    #[test]
    fn reads_proc_net_fields() {
        let text = "Ip: Forwarding X\nIp: 1 2\nTcp: RtoAlgorithm ActiveOpens\nTcp: 1 646268\n";
        assert_eq!(proc_net_field(text, "Tcp:", "ActiveOpens"), Some(646268));
        assert_eq!(proc_net_field(text, "Tcp:", "Nope"), None);
        let now = NetCounters::read();
        assert!(now.active_opens >= now.since(&now).active_opens);
    }
}
