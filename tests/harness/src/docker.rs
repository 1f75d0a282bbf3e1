//! The real `docker` CLI, bounded in time and recorded in the trace. The
//! helpers that assert (`docker_ok`, `docker_err`) or cannot go on (the
//! CLI does not start) panic: they are for tests.

use std::io::Write;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Instant;

use crate::watchdog::trace;

/// `timeout -k 5 SECS PROGRAM`: a command that cannot outlive `secs`. The
/// kill-after matters: `docker run`/`attach` proxy SIGTERM to the container
/// instead of exiting, so a plain `timeout` would never end a hung one.
/// Stdin is /dev/null unless the caller sets it.
pub fn timed(secs: u64, program: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &secs.to_string(), program])
        .stdin(Stdio::null());
    cmd
}

/// `PROGRAM ARGS` (a `swarm-bench` binary) bounded by [`timed`]`(secs)`,
/// recorded in the trace; its output and how long it ran are printed for
/// the test's log. Returns its exit status, stdout and stderr.
pub fn run_bench(secs: u64, program: &str, args: &[&str]) -> (ExitStatus, String, String) {
    trace(format!("swarm-bench {}", args.join(" ")));
    let t0 = std::time::Instant::now();
    let out = timed(secs, program)
        .args(args)
        .output()
        .expect("running swarm-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "swarm-bench {} ran {:?}\n{stdout}\n{stderr}",
        args.first().unwrap_or(&""),
        t0.elapsed()
    );
    (out.status, stdout, stderr)
}

/// `docker -H host ARGS` bounded by [`timed`]`(secs)`; recorded in the trace.
pub fn docker_cmd(secs: u64, host: &str, args: &[&str]) -> Command {
    trace(format!("docker -H {host} {}", args.join(" ")));
    let mut cmd = timed(secs, "docker");
    cmd.args(["-H", host]).args(args);
    cmd
}

/// `docker-compose ARGS` in the project directory `dir` against `host`
/// (as `DOCKER_HOST`), bounded by [`timed`]`(180)`; without the caller's
/// `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` and `DOCKER_CONTEXT`, and
/// without `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE`, which requests lets
/// override the CA docker-py names. A test over TLS sets its own.
pub fn compose_cmd(host: &str, dir: &std::path::Path, args: &[&str]) -> Command {
    trace(format!("docker-compose ({host}) {}", args.join(" ")));
    let mut cmd = timed(180, "docker-compose");
    cmd.args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    cmd
}

/// `docker-compose down -v` in `dir` against `host`, which must succeed.
/// dockerd 20.10 sometimes still counts an endpoint of a container it has
/// just removed (seen twice in about ten runs, under a full suite's load:
/// `network proj_default ... has active endpoints`); a second `down` a
/// moment later then finds the network free. An endpoint that stays (a
/// container left attached) fails the second one too; what the cluster
/// lists is printed first.
pub fn compose_down(host: &str, dir: &std::path::Path) {
    let first = compose_cmd(host, dir, &["down", "-v"])
        .output()
        .expect("running docker-compose");
    if first.status.success() {
        return;
    }
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(
        stderr.contains("has active endpoints"),
        "docker-compose down -v failed: {stderr}"
    );
    let (_, listed, _) = docker(host, &["ps", "-a", "--format", "{{.Names}} {{.Networks}}"]);
    eprintln!("down -v refused ({stderr}); the cluster lists:\n{listed}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    output_ok(compose_cmd(host, dir, &["down", "-v"]));
}

/// Runs `cmd` (e.g. [`compose_cmd`]), which must succeed; its stdout,
/// trimmed. Panics with both outputs otherwise.
pub fn output_ok(mut cmd: Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the docker CLI against `host` with `args`; returns (success, stdout, stderr). Never panics on a failed command.
pub fn docker(host: &str, args: &[&str]) -> (bool, String, String) {
    // A hung CLI must fail the test, not stall the suite.
    let t = Instant::now();
    let result = match docker_cmd(90, host, args).output() {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (false, String::new(), format!("cannot run docker: {e}")),
    };
    trace(format!(
        "  -> {} in {:?}",
        if result.0 { "ok" } else { "failed" },
        t.elapsed()
    ));
    result
}

/// Like `docker` but panics with stdout+stderr when the command fails; returns stdout trimmed.
pub fn docker_ok(host: &str, args: &[&str]) -> String {
    let (ok, out, err) = docker(host, args);
    if !ok {
        panic!(
            "`docker -H {host} {}` failed\nstdout: {out}\nstderr: {err}",
            args.join(" ")
        );
    }
    out.trim().to_string()
}

/// Like `docker` but panics when the command succeeds; returns stderr.
pub fn docker_err(host: &str, args: &[&str]) -> String {
    let (ok, out, err) = docker(host, args);
    if ok {
        panic!(
            "`docker -H {host} {}` succeeded but should have failed\nstdout: {out}\nstderr: {err}",
            args.join(" ")
        );
    }
    err
}

/// The values of `KEY: value` lines of `docker info` output, in order.
pub fn info_value(info: &str, key: &str) -> Vec<String> {
    info.lines()
        .filter_map(|l| l.trim_start().strip_prefix(key))
        .filter_map(|rest| rest.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .collect()
}

/// `docker -H host ARGS` (60 s at most) with `input` written to its stdin
/// (then closed); returns its output. Panics if the CLI cannot be run.
pub fn docker_with_stdin(host: &str, args: &[&str], input: &[u8]) -> Output {
    output_with_stdin(docker_cmd(60, host, args), input)
}

/// Runs `cmd` with `input` written to its stdin (then closed); returns its
/// output. Panics if the command cannot be run.
pub fn output_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("docker output")
}

/// `docker -H host ARGS` (ARGS one shell-quoted string) run in a terminal
/// that script(1) provides, for `-it`; returns what the terminal showed.
/// Panics if script(1) cannot be run.
pub fn docker_in_tty(host: &str, args: &str) -> String {
    trace(format!("script: docker -H {host} {args}"));
    // script's stdin stays open (a pipe nobody writes to) until it is done,
    // like a user's terminal: at EOF on its stdin script types an
    // end-of-file into the terminal, which a real session never sees.
    //
    // docker must be in the terminal's foreground process group, or setting
    // raw mode stops it with SIGTTOU and it hangs with no output. A plain
    // `timeout` moves itself and docker into a new group; `--foreground`
    // does not. `exec` and a fixed SHELL keep the result the same whether
    // or not the environment sets SHELL (script runs `$SHELL -c`, and dash
    // does not exec a lone command).
    let mut child = timed(90, "script")
        .env("SHELL", "/bin/sh")
        .args([
            "-qfec",
            &format!("exec timeout --foreground -k 5 60 docker -H {host} {args}"),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let keyboard = child.stdin.take();
    let out = child.wait_with_output().expect("script");
    drop(keyboard);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    trace(format!("  -> {} {text:?}", out.status));
    text
}
