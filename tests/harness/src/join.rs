//! Swarm classic's setup commands, run as a user runs them: `swarm join`
//! in the background next to an engine, `swarm list` to its end.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::binary;
use crate::watchdog::trace;

/// `swarm ARGS` to its end (at most 30 s), without the caller's
/// `SWARM_MANAGER`.
pub fn swarm(args: &[&str]) -> Output {
    trace(format!("swarm {}", args.join(" ")));
    Command::new("timeout")
        .args(["-k", "5", "30"])
        .arg(binary("swarm"))
        .args(args)
        .env_remove("SWARM_MANAGER")
        .stdin(Stdio::null())
        .output()
        .expect("running swarm")
}

/// Stdout and stderr of `out`, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `swarm join --advertise ADVERTISE --heartbeat 1s --ttl 3s EXTRA...
/// DISCOVERY` in the background, its output in `log`. Kill it to stop the
/// registrations.
pub fn swarm_join(advertise: &str, discovery: &str, extra: &[&str], log: &Path) -> Child {
    trace(format!("swarm join --advertise {advertise} {discovery}"));
    let log = std::fs::File::create(log).expect("join log");
    Command::new(binary("swarm"))
        .args([
            "join",
            "--advertise",
            advertise,
            "--heartbeat",
            "1s",
            "--ttl",
            "3s",
        ])
        .args(extra)
        .arg(discovery)
        .env_remove("SWARM_MANAGER")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("starting swarm join")
}

/// The sorted lines of `swarm list URL`, which must succeed.
pub fn swarm_list(url: &str) -> Vec<String> {
    let out = swarm(&["list", url]);
    assert!(
        out.status.success(),
        "swarm list {url}: {}",
        output_text(&out)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Waits (up to 30 s) until `docker info` through `host` counts `want`
/// nodes, all healthy.
pub fn wait_nodes(host: &str, want: usize) {
    crate::wait_for(
        &format!("{want} healthy nodes"),
        std::time::Duration::from_secs(30),
        || {
            let out = Command::new("docker")
                .args(["-H", host, "info"])
                .output()
                .ok()?;
            let info = String::from_utf8_lossy(&out.stdout).into_owned();
            let healthy = crate::info_value(&info, "└ Status")
                .iter()
                .filter(|s| *s == "Healthy")
                .count();
            (crate::info_value(&info, "Nodes") == [want.to_string()] && healthy == want)
                .then_some(())
        },
    )
}
