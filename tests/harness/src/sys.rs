//! Commands and processes of this host: running a command with a bound,
//! signals, the process tree from /proc, killing a tree of processes,
//! cleaning what a killed engine left (cgroups, mounts), reading logs.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::docker::timed;

/// How many lines of a log are printed when a test fails.
pub(crate) const LOG_TAIL_LINES: usize = 60;

/// Whether the file, from byte `offset` on, contains `needle`.
pub(crate) fn log_since_contains(path: &Path, offset: u64, needle: &str) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).contains(needle)
}

/// The last `lines` lines of a file (empty if unreadable).
pub(crate) fn tail_file(path: &Path, lines: usize) -> String {
    let content = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = content.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command, returning an error with its output when it fails.
pub(crate) fn run_checked(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = timed(60, cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Runs a command, ignoring its outcome and output.
pub(crate) fn run_quiet(cmd: &str, args: &[&str]) {
    let _ = timed(60, cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a command with `input` on stdin; kills it after `timeout`.
pub(crate) fn run_with_input(
    cmd: &str,
    args: &[&str],
    input: &[u8],
    timeout: Duration,
) -> Result<Output, String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let stdin = child.stdin.take();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&input);
        }
    });
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let status = match wait_child(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            return Err(format!(
                "`{cmd} {}` timed out after {timeout:?}",
                args.join(" ")
            ));
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Waits up to `timeout` for `child` to exit (polling every 50 ms).
pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` (e.g. "TERM", "KILL") to the pids with the `kill` command.
pub(crate) fn signal(pids: &[u32], sig: &str) {
    if pids.is_empty() {
        return;
    }
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{sig}"));
    for p in pids {
        cmd.arg(p.to_string());
    }
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// (pid, ppid, cmdline) of every process.
pub(crate) fn processes() -> Vec<(u32, u32, String)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        v.push((pid, ppid, cmdline));
    }
    v
}

/// Whether a command line is one of the processes the harness runs on a
/// slot: an engine's (not, say, a `swarm manage` whose arguments name the
/// engine's socket) or an [`crate::etcd::Etcd`].
pub(crate) fn is_engine_process(cmdline: &str) -> bool {
    let program = cmdline.split_whitespace().next().unwrap_or("");
    let base = program.rsplit('/').next().unwrap_or(program);
    [
        "dockerd",
        "containerd",
        "docker-proxy",
        "runc",
        "docker-init",
        "perl",
        "unshare",
        "nsenter",
        "sh",
        "etcd",
    ]
    .iter()
    .any(|p| base.starts_with(p))
}

/// SIGKILLs `seeds`, every engine process whose command line contains `marker`, and
/// all their descendants; waits (up to 5 s) until they are gone.
pub(crate) fn kill_tree(seeds: &[u32], marker: Option<&str>) {
    let me = std::process::id();
    let procs = processes();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid, _) in &procs {
        children.entry(*ppid).or_default().push(*pid);
    }
    let mut set: HashSet<u32> = seeds.iter().copied().collect();
    if let Some(m) = marker {
        for (pid, _, cmd) in &procs {
            if cmd.contains(m) && is_engine_process(cmd) {
                set.insert(*pid);
            }
        }
    }
    let mut stack: Vec<u32> = set.iter().copied().collect();
    while let Some(p) = stack.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if set.insert(*c) {
                stack.push(*c);
            }
        }
    }
    set.remove(&me);
    set.remove(&0);
    set.remove(&1);
    let pids: Vec<u32> = set.into_iter().filter(|p| !proc_is_zombie(*p)).collect();
    if pids.is_empty() {
        return;
    }
    signal(&pids, "KILL");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) && pids.iter().any(|p| proc_alive(*p)) {
        thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn proc_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !proc_is_zombie(pid)
}

pub(crate) fn proc_is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Start time (clock ticks since boot) of a process, to detect pid reuse.
pub(crate) fn proc_starttime(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command: state is field 3; starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Removes cgroups left by containers of a killed engine (`/sys/fs/cgroup/*/docker/<id>`).
pub(crate) fn remove_cgroups(containers_dir: &Path) {
    let Ok(rd) = fs::read_dir(containers_dir) else {
        return;
    };
    let ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    if ids.is_empty() {
        return;
    }
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        roots.extend(rd.flatten().map(|e| e.path()));
    }
    for root in roots {
        for id in &ids {
            let _ = fs::remove_dir(root.join("docker").join(id));
        }
    }
}

/// Removes a directory tree, lazily unmounting anything mounted below it first.
pub(crate) fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let prefix = format!("{}/", dir.display());
    if let Ok(mounts) = fs::read_to_string("/proc/mounts") {
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            run_quiet("umount", &["-l", m]);
        }
    }
    if fs::remove_dir_all(dir).is_err() {
        run_quiet("rm", &["-rf", &dir.to_string_lossy()]);
    }
}
