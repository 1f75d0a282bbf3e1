//! A short `swarm-bench chaos` run with a fixed seed: 3 managers, each on
//! a host (network namespace) of its own, over 10 hollow nodes, 4 clients
//! (part of them through HAProxy) for 45 s, a fault every 2.5 s from the
//! whole mix (kills, pauses, partitions, one-way links, flaps, loss,
//! delay, engine kills and outages). The run must keep every promise the
//! checker checks; its history and final state are saved and replayed
//! into the checker (`--replay`), and its timeline is drawn.

use serde_json::Value;

/// Bound of the whole run, in seconds.
const RUN_SECS: u64 = 240;
/// The seed of the run (workload and faults).
const SEED: &str = "26";

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
    let (report, history, fin, png) = (
        path("report.json"),
        path("history.json"),
        path("final.json"),
        path("timeline.png"),
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
        "45s",
        "--fault-every",
        "2500ms",
        "--engine-faults",
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
        "--png",
        &png,
    ];
    let (status, stdout, stderr) =
        swarm_harness::run_bench(RUN_SECS, env!("CARGO_BIN_EXE_swarm-bench"), &args);
    assert!(
        status.success(),
        "chaos run (seed {SEED}) broke a promise or failed ({}):\n{stdout}\n{stderr}",
        status
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
    assert!(windows >= 10, "faults were injected: {text}");
    let kinds: Vec<String> = value
        .pointer("/figures/windows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|w| w.pointer("/fault/kind"))
        .map(Value::to_string)
        .collect();
    assert!(
        kinds.iter().any(|k| k.contains("partition")),
        "the managers were partitioned: {kinds:?}"
    );
    let history_text = std::fs::read_to_string(&history).expect("the history");
    assert!(
        history_text.contains(r#""manager":"vip""#),
        "part of the workload went through HAProxy"
    );
    let picture = std::fs::read(&png).expect("the timeline PNG");
    assert!(
        picture.starts_with(b"\x89PNG") && picture.len() > 10_000,
        "a drawn PNG timeline ({} bytes)",
        picture.len()
    );

    // The saved run replays into the same verdict.
    let (status, stdout, stderr) = swarm_harness::run_bench(
        30,
        env!("CARGO_BIN_EXE_swarm-bench"),
        &["chaos", "--replay", &history, "--final", &fin],
    );
    assert!(status.success(), "replay:\n{stdout}\n{stderr}");
}
