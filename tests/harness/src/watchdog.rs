//! Trace and watchdog: a hung test must end, and say where it hung.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::sys::{kill_tree, processes, tail_file};

/// Whether `SWARM_TEST_VERBOSE` is set (prints harness timings).
pub(crate) fn verbose() -> bool {
    std::env::var_os("SWARM_TEST_VERBOSE").is_some()
}

/// How many trace lines are kept (the newest).
const TRACE_LINES: usize = 60;

fn trace_buffer() -> &'static Mutex<VecDeque<String>> {
    static TRACE: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    TRACE.get_or_init(|| Mutex::new(VecDeque::new()))
}

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Records a step (a command, a scenario) with the time since the process
/// started; the watchdog prints the newest lines. Also printed at once with
/// SWARM_TEST_VERBOSE=1.
pub fn trace(line: String) {
    let line = format!(
        "[{:8.2}s {:?}] {line}",
        process_start().elapsed().as_secs_f64(),
        thread::current().name().unwrap_or("?")
    );
    if verbose() {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    if let Ok(mut t) = trace_buffer().lock() {
        if t.len() == TRACE_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}

/// The newest trace lines, oldest first.
pub fn trace_lines() -> Vec<String> {
    trace_buffer()
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default()
}

/// Starts, once per test process, a watchdog that ends the process when it
/// has run longer than SWARM_TEST_WATCHDOG_SECS (default 600): it prints the
/// trace and the processes this test started straight to stderr (not through
/// the test's captured output), SIGKILLs them, and exits with 101. Engines it
/// leaves behind are reclaimed by the next test process (see the slots).
pub fn watchdog() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        process_start();
        let limit = std::env::var("SWARM_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(600));
        let _ = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                thread::sleep(limit.saturating_sub(process_start().elapsed()));
                let me = std::process::id();
                let procs = processes();
                let mut report = format!(
                    "\n=== WATCHDOG: test process {me} ran longer than {limit:?}; ending it ===\n--- last steps ---\n"
                );
                if let Ok(t) = trace_buffer().lock() {
                    for l in t.iter() {
                        report.push_str(l);
                        report.push('\n');
                    }
                }
                report.push_str("--- processes this test started ---\n");
                let descendants = descendants_of(me, &procs);
                for (pid, ppid, cmd) in procs.iter().filter(|p| descendants.contains(&p.0)) {
                    report.push_str(&format!("{pid} (parent {ppid}) {cmd}\n"));
                }
                if let Ok(logs) = watched_logs().lock() {
                    for (label, path) in logs.iter() {
                        report.push_str(&format!(
                            "--- {label} log tail ({}) ---\n{}\n",
                            path.display(),
                            tail_file(path, 40)
                        ));
                    }
                }
                let _ = std::io::stderr().write_all(report.as_bytes());
                let seeds: Vec<u32> = procs
                    .iter()
                    .filter(|p| p.1 == me)
                    .map(|p| p.0)
                    .collect();
                kill_tree(&seeds, None);
                std::process::exit(101);
            });
    });
}

fn watched_logs() -> &'static Mutex<Vec<(String, PathBuf)>> {
    static LOGS: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Names a log file whose tail the watchdog prints (managers, engines).
pub fn watch_log(label: String, path: PathBuf) {
    if let Ok(mut logs) = watched_logs().lock() {
        if !logs.iter().any(|(_, p)| *p == path) {
            logs.push((label, path));
        }
    }
}

/// Every pid below `root` in the process tree.
fn descendants_of(root: u32, procs: &[(u32, u32, String)]) -> HashSet<u32> {
    let mut out = HashSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for (pid, ppid, _) in procs {
            if *ppid == p && out.insert(*pid) {
                stack.push(*pid);
            }
        }
    }
    out
}
