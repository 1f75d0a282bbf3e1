//! A short `swarm-bench chaos` run with a fixed seed: 3 managers over 10
//! hollow nodes, 4 clients for 20 s, a kill or a pause every 3 s. The
//! run must keep every promise the checker checks; its history and final
//! state are saved and replayed into the checker (`--replay`).

use std::time::Instant;

use serde_json::Value;

/// Bound of the whole run, in seconds.
const RUN_SECS: u64 = 180;
/// The seed of the run (workload and faults).
const SEED: &str = "22";

#[test]
fn chaos_run_keeps_every_promise() {
    swarm_harness::watchdog();
    let swarm = swarm_harness::binary("swarm");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| {
        dir.path()
            .join(name)
            .to_str()
            .expect("utf-8 temp path")
            .to_string()
    };
    let (report, history, fin) = (
        path("report.json"),
        path("history.json"),
        path("final.json"),
    );
    let args = [
        "chaos",
        "--managers",
        "3",
        "--nodes",
        "10",
        "--clients",
        "4",
        "--duration",
        "20s",
        "--fault-every",
        "3s",
        "--seed",
        SEED,
        "--ready-timeout",
        "60s",
        "--hollow-bin",
        env!("CARGO_BIN_EXE_hollow-engine"),
        "--swarm-bin",
        swarm.to_str().expect("utf-8 binary path"),
        "--json",
        &report,
        "--history",
        &history,
        "--final",
        &fin,
    ];
    swarm_harness::trace(format!("swarm-bench {}", args.join(" ")));
    let t0 = Instant::now();
    let out = swarm_harness::timed(RUN_SECS, env!("CARGO_BIN_EXE_swarm-bench"))
        .args(args)
        .output()
        .expect("running swarm-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "swarm-bench chaos ran {:?}\n{stdout}\n{stderr}",
        t0.elapsed()
    );
    assert!(
        out.status.success(),
        "chaos run (seed {SEED}) broke a promise or failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    let text = std::fs::read_to_string(&report).expect("the JSON report");
    let value: Value = serde_json::from_str(&text).expect("valid JSON");
    let num = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{pointer} missing in {text}"))
    };
    assert!(num("/figures/ops/total") > 20, "a workload ran: {text}");
    assert!(
        num("/figures/ops/ok") > 0,
        "some operations succeeded: {text}"
    );
    let windows = value
        .pointer("/figures/windows")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert!(windows >= 3, "faults were injected: {text}");

    // The saved run replays into the same verdict.
    let replay = swarm_harness::timed(30, env!("CARGO_BIN_EXE_swarm-bench"))
        .args(["chaos", "--replay", &history, "--final", &fin])
        .output()
        .expect("running swarm-bench chaos --replay");
    assert!(
        replay.status.success(),
        "replay:\n{}\n{}",
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
}
