//! Smoke run of `swarm-bench standard` on a small hollow fleet: 50 nodes,
//! 500 containers created and started by 16 clients through one manager.
//!
//! Checks that the bench runs end to end and reports sane figures; the
//! figures themselves are printed, never compared with the targets (a test
//! build on a shared CI machine says nothing about them).

use serde_json::Value;

/// Bound of the whole bench run, in seconds.
const BENCH_SECS: u64 = 300;

/// A `swarm-bench` report: the JSON, and its text for failure messages.
struct Report {
    json: Value,
    text: String,
}

impl Report {
    /// Runs `swarm-bench ARGS` with this build's binaries and a `--json`
    /// file, and reads the report; fails the test if the bench fails.
    fn of(args: &[&str]) -> Report {
        swarm_harness::watchdog();
        let swarm = swarm_harness::binary("swarm");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("report.json");
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--hollow-bin",
            env!("CARGO_BIN_EXE_hollow-engine"),
            "--swarm-bin",
            swarm.to_str().expect("utf-8 binary path"),
            "--json",
            path.to_str().expect("utf-8 temp path"),
        ]);
        let (status, stdout, stderr) =
            swarm_harness::run_bench(BENCH_SECS, env!("CARGO_BIN_EXE_swarm-bench"), &all);
        assert!(
            status.success(),
            "swarm-bench failed ({}):\n{stdout}\n{stderr}",
            status
        );
        let text = std::fs::read_to_string(&path).expect("the JSON report");
        let json = serde_json::from_str(&text).expect("valid JSON");
        Report { json, text }
    }

    /// The number at `pointer`; fails the test if there is none.
    fn num(&self, pointer: &str) -> f64 {
        self.json
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{pointer} missing in {}", self.text))
    }
}

#[test]
fn standard_scenario_on_50_hollow_nodes() {
    let run = Report::of(&[
        "standard",
        "--nodes",
        "50",
        "--containers",
        "500",
        "--clients",
        "16",
        "--requests",
        "10",
        "--ready-timeout",
        "120s",
    ]);
    let text = &run.text;
    let num = |pointer: &str| run.num(pointer);
    assert_eq!(num("/setup/healthy_nodes"), 50.0);
    assert_eq!(num("/place/containers"), 500.0);
    assert_eq!(num("/place/placed"), 500.0, "{text}");
    assert_eq!(num("/place/started"), 500.0, "{text}");
    assert_eq!(num("/place/failures"), 0.0, "{text}");
    assert_eq!(num("/query/ps/items"), 500.0, "ps -a lists every container");
    assert_eq!(num("/query/info/items"), 50.0, "info lists every node");
    assert_eq!(num("/query/info/failures"), 0.0);
    assert_eq!(num("/query/ps/failures"), 0.0);
    for pointer in [
        "/place/placements_per_s",
        "/place/create/p50_ms",
        "/place/run/p99_ms",
        "/place/run/max_ms",
        "/query/info/latency/p50_ms",
        "/query/ps/latency/p99_ms",
        "/manager_figures/0/after_query/rss_bytes",
        "/manager_figures/0/after_query/peak_rss_bytes",
        "/hollow_figures/0/after_query/rss_bytes",
    ] {
        let v = num(pointer);
        assert!(v > 0.0 && v.is_finite(), "{pointer} = {v}");
    }
    assert!(
        num("/place/run/p50_ms") <= num("/place/run/p99_ms")
            && num("/place/run/p99_ms") <= num("/place/run/max_ms"),
        "percentiles in order"
    );
    // Within bounds that only a broken measurement would leave: under a
    // minute per operation, under 64 GiB of memory.
    assert!(num("/place/run/max_ms") < 60_000.0);
    assert!(num("/manager_figures/0/after_query/peak_rss_bytes") < (64u64 << 30) as f64);
}

/// Smoke run of `swarm-bench c1m` at a small size: 40 nodes over two
/// `hollow-engine` processes, 400 containers in 10 label groups, three
/// managers. Checks that the split fleet is one cluster of distinct nodes
/// and that the filtered listings find exactly what they ask for.
#[test]
fn c1m_scenario_on_40_hollow_nodes_and_three_managers() {
    let run = Report::of(&[
        "c1m",
        "--nodes",
        "40",
        "--containers",
        "400",
        "--groups",
        "10",
        "--clients",
        "8",
        "--requests",
        "5",
        "--ready-timeout",
        "120s",
    ]);
    let (report, text) = (&run.json, &run.text);
    let num = |pointer: &str| run.num(pointer);
    assert_eq!(report["bench"], "c1m");
    // Two processes' nodes, each its own: 40 healthy nodes, not 20.
    assert_eq!(num("/setup/healthy_nodes"), 40.0, "{text}");
    assert_eq!(num("/query/info/items"), 40.0, "{text}");
    assert_eq!(report["hollow_figures"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["manager_figures"].as_array().map(Vec::len), Some(3));
    assert_eq!(num("/place/placed"), 400.0, "{text}");
    assert_eq!(num("/place/failures"), 0.0, "{text}");
    assert!(report["query"]["ps"].is_null(), "no whole ps -a: {text}");
    let filtered = report["query"]["filtered"].as_array().expect("filtered");
    assert_eq!(filtered.len(), 2, "{text}");
    // One group of ten: 40 containers; the name of container 133 alone.
    assert!(filtered[0]["what"]
        .as_str()
        .is_some_and(|w| w.contains("label=")));
    assert_eq!(num("/query/filtered/0/items"), 40.0, "{text}");
    assert!(filtered[1]["what"]
        .as_str()
        .is_some_and(|w| w.contains("name=")));
    assert_eq!(num("/query/filtered/1/items"), 1.0, "{text}");
    assert_eq!(num("/query/filtered/0/failures"), 0.0);
    assert_eq!(num("/query/filtered/1/failures"), 0.0);
    assert_eq!(report["targets"]["place_within_s"], 300.0);
}

/// Smoke run of `swarm-bench reschedule`: 20 hollow nodes, 5 containers
/// with `reschedule:on-node-failure` on the node that is killed. Checks the
/// report is complete and that every container moved, once, and that the
/// stale copies left the revived node; not the timing.
#[test]
fn reschedule_scenario_on_20_hollow_nodes() {
    let run = Report::of(&[
        "reschedule",
        "--nodes",
        "20",
        "--containers",
        "5",
        "--background",
        "20",
        "--clients",
        "4",
        "--engine-refresh-min-interval",
        "1s",
        "--engine-refresh-max-interval",
        "2s",
        "--engine-failure-retry",
        "2",
        "--timeout",
        "60s",
    ]);
    let (report, text) = (&run.json, &run.text);
    let num = |pointer: &str| run.num(pointer);
    assert_eq!(report["problems"], serde_json::json!([]), "{text}");
    assert_eq!(num("/containers"), 5.0);
    assert_eq!(num("/moved_count"), 5.0, "every container moved: {text}");
    assert_eq!(num("/setup/background/placed"), 20.0);
    assert_eq!(num("/fleet_containers"), 25.0, "no duplicate: {text}");
    assert_eq!(num("/fleet_expected"), 25.0);
    let victim = report["victim"].as_str().expect("victim");
    for m in report["moved"].as_array().expect("moved") {
        let node = m["node"].as_str().expect("moved to a node");
        assert_ne!(node, victim, "{m}");
        assert_ne!(m["new_id"], m["old_id"], "{m}");
    }
    for pointer in [
        "/detection_ms",
        "/first_ms",
        "/p50_ms",
        "/all_moved_ms",
        "/victim_healthy_ms",
        "/stale_removed_ms",
        "/listed_once_ms",
        "/manager_at_end/rss_bytes",
    ] {
        let v = num(pointer);
        assert!(v > 0.0 && v.is_finite(), "{pointer} = {v}");
    }
    assert!(num("/first_ms") <= num("/p50_ms") && num("/p50_ms") <= num("/all_moved_ms"));
    assert!(report["goal_met"].is_boolean());
}
