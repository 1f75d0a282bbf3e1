//! `swarm list`, `--version` and `--help` of the real binary (no Docker needed).

use std::process::Command;

fn swarm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .output()
        .expect("run swarm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_expands_ranges() {
    let (ok, out, err) = swarm(&["list", "nodes://10.0.0.[1:3]:2375,unix:///run/d.sock"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "10.0.0.1:2375\n10.0.0.2:2375\n10.0.0.3:2375\nunix:///run/d.sock\n"
    );
}

#[test]
fn list_refuses_bad_discovery() {
    let (ok, _, err) = swarm(&["list", "nodes://10.0.0.[3:1]:2375"]);
    assert!(!ok);
    assert!(err.contains("FROM is greater than TO"), "{err}");
    let (ok, _, err) = swarm(&["list", "file:///no/such/file"]);
    assert!(!ok);
    assert!(err.contains("cannot read discovery file"), "{err}");
}

#[test]
fn version_and_help() {
    // As classic printed it.
    for flag in ["--version", "-v"] {
        let (ok, out, _) = swarm(&[flag]);
        assert!(ok);
        assert_eq!(
            out.trim(),
            format!("swarm version {}", env!("CARGO_PKG_VERSION"))
        );
    }
    let (ok, out, _) = swarm(&["help"]);
    assert!(ok && out.contains("join"), "{out}");
    for command in [&["--help"][..], &["manage", "--help"], &["list", "--help"]] {
        let (ok, out, err) = swarm(command);
        assert!(ok, "{command:?}: {err}");
        assert!(out.contains("Usage: swarm"), "{command:?}: {out}");
    }
    let (_, out, _) = swarm(&["manage", "--help"]);
    for flag in [
        "--host",
        "--advertise",
        "--data-dir",
        "--strategy",
        "--filter",
        "--engine-refresh-min-interval",
        "--engine-refresh-max-interval",
        "--engine-failure-retry",
        "--log-level",
        "--log-format",
    ] {
        assert!(out.contains(flag), "manage --help lacks {flag}");
    }
}

#[test]
fn manage_refuses_bad_flags() {
    let (ok, _, err) = swarm(&["manage", "-H", "tcp://nope", "nodes://a:1"]);
    assert!(!ok);
    assert!(err.contains("invalid -H"), "{err}");
    let (ok, _, err) = swarm(&["manage", "consul://x"]);
    assert!(!ok);
    assert!(err.contains("unsupported discovery"), "{err}");
}
