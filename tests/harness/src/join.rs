//! Swarm classic's setup commands, run as a user runs them: `swarm join`
//! in the background next to an engine, `swarm list` to its end.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::binary;
use crate::watchdog::trace;

/// The caller's variables that would change what `swarm` does: the
/// manager it asks, and the docker CLI's TLS settings.
const CALLERS_ENV: [&str; 3] = ["SWARM_MANAGER", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"];

/// `swarm ARGS`, bounded to 30 s, without the caller's `SWARM_MANAGER`,
/// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` (a test sets its own).
pub fn swarm_command(args: &[&str]) -> Command {
    trace(format!("swarm {}", args.join(" ")));
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "30"])
        .arg(binary("swarm"))
        .args(args)
        .stdin(Stdio::null());
    for var in CALLERS_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// [`swarm_command`] run to its end.
pub fn swarm(args: &[&str]) -> Output {
    swarm_command(args).output().expect("running swarm")
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
/// DISCOVERY` in the background, its output in `log`, without the
/// caller's variables as [`swarm_command`]. Kill it to stop the
/// registrations.
pub fn swarm_join(advertise: &str, discovery: &str, extra: &[&str], log: &Path) -> Child {
    trace(format!("swarm join --advertise {advertise} {discovery}"));
    let log = std::fs::File::create(log).expect("join log");
    let mut cmd = Command::new(binary("swarm"));
    for var in CALLERS_ENV {
        cmd.env_remove(var);
    }
    cmd.args([
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
    .stdin(Stdio::null())
    .stdout(log.try_clone().expect("log"))
    .stderr(log)
    .spawn()
    .expect("starting swarm join")
}

/// The sorted lines of `swarm list URL`, which must succeed.
pub fn swarm_list(url: &str) -> Vec<String> {
    swarm_list_with(&[], url)
}

/// The sorted lines of `swarm list EXTRA... URL` (e.g. `--discovery-opt
/// kv.cacertfile=...`), which must succeed.
pub fn swarm_list_with(extra: &[&str], url: &str) -> Vec<String> {
    let mut args = vec!["list"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = swarm(&args);
    assert!(
        out.status.success(),
        "swarm {}: {}",
        args.join(" "),
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
    wait_nodes_with(host, &[], want)
}

/// [`wait_nodes`] with the docker CLI's `flags` (e.g. TLS's,
/// [`crate::tls_flags`]).
pub fn wait_nodes_with(host: &str, flags: &[String], want: usize) {
    crate::wait_for(
        &format!("{want} healthy nodes"),
        std::time::Duration::from_secs(30),
        || {
            let out = Command::new("docker")
                .args(["-H", host])
                .args(flags)
                .arg("info")
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
