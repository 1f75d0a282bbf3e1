//! A short `swarm-bench chaos` run over real Docker engines: 3 managers,
//! each on a host of its own, over 2 dockerd engines reached through
//! proxies on the hosts' bridge, 8 clients for 25 s, a fault every 3 s,
//! engine faults included. Seed 139 draws two engine outages and an
//! engine kill among its five faults (a dockerd SIGKILLed with its
//! containerd and containers, then restarted; an outage long enough for
//! containers with the reschedule policy to move, their stale copies
//! removed on return). The run must keep every promise, with creates that
//! succeeded on the real engines.

use serde_json::Value;

/// Bound of the whole run, in seconds.
const RUN_SECS: u64 = 150;
/// The seed of the run (workload and faults).
const SEED: &str = "139";

#[test]
fn chaos_over_real_engines_keeps_every_promise() {
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
        "--engines",
        "2",
        "--managers",
        "3",
        "--duration",
        "25s",
        "--fault-every",
        "3s",
        "--seed",
        SEED,
        "--engine-faults",
        "--ready-timeout",
        "60s",
        "--swarm-bin",
        swarm.to_str().expect("utf-8 binary path"),
        "--json",
        &report,
        "--history",
        &history,
        "--final",
        &fin,
    ];
    let (status, stdout, stderr) =
        swarm_harness::run_bench(RUN_SECS, env!("CARGO_BIN_EXE_swarm-bench"), &args);
    assert!(
        status.success(),
        "chaos run over real engines (seed {SEED}) broke a promise or failed ({}):\n{stdout}\n{stderr}",
        status
    );
    assert!(stdout.contains("2 real engines"), "{stdout}");

    let read = |path: &str| -> Value {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let value = read(&report);
    let num = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{pointer} missing in {value}"))
    };
    assert!(num("/figures/ops/total") > 50, "a workload ran: {value}");
    assert!(num("/figures/ops/ok") > 0, "{value}");
    assert!(num("/figures/engine_containers") > 0, "{value}");
    assert_eq!(num("/figures/orphans"), 0, "{value}");
    let windows = value
        .pointer("/figures/windows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // An engine fault's kind: `engine-kill`, or `{"other":"engine-outage"}`.
    let kills = windows
        .iter()
        .filter_map(|w| w.pointer("/fault/kind"))
        .filter(|k| k.to_string().contains("engine-"))
        .count();
    assert!(kills >= 2, "engines were killed and came back: {value}");
    assert!(
        value
            .get("violations")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty),
        "{value}"
    );

    // Creates reached the real engines: some were acknowledged. Not a
    // fixed share: with two engines, an outage halves the room for 16 s of
    // the 25 (152 of 854 acknowledged in one run, 17.8%).
    let recorded = read(&history);
    let creates: Vec<&Value> = recorded
        .get("ops")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|op| op.pointer("/kind/type").and_then(Value::as_str) == Some("create"))
        .collect();
    let ok = creates
        .iter()
        .filter(|op| op.pointer("/outcome/outcome").and_then(Value::as_str) == Some("ok"))
        .count();
    assert!(
        ok >= 20 && ok * 10 >= creates.len(),
        "{ok} of {} creates acknowledged",
        creates.len()
    );

    // Both engines were read back, with the machine's memory.
    let state = read(&fin);
    let nodes = state
        .get("nodes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 2, "{state}");
    for node in &nodes {
        let memory = node
            .pointer("/capacity/memory")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        assert!(memory > 1 << 30, "a real engine's memory: {node}");
    }
}
