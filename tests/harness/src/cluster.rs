//! The cluster fixture: real engines and one `swarm manage` in front of
//! them, with docker CLI helpers aimed at the manager and named scenarios
//! run one after the other on it.

use std::time::{Duration, Instant};

use crate::docker::{docker_err, docker_ok, info_value};
use crate::engines::{start_engines, Engine, Engines};
use crate::manager::{start_manager, Manager};
use crate::wait::wait_for;
use crate::watchdog::{trace, trace_lines};

/// A named check run against a shared cluster.
pub type Scenario = fn(&Cluster);

/// Engines and a `swarm manage` in front of them, with docker CLI helpers
/// aimed at the manager. Test files add their own helpers in `impl Cluster`.
pub struct Cluster {
    /// The engines, `engines[i]` has hostname `node-{i+1}`.
    pub engines: Engines,
    /// The manager.
    pub manager: Manager,
}

/// Manager flags for tests: refresh every 1 s to 2 s, unhealthy after 2 failures.
pub const FAST_REFRESH: [&str; 6] = [
    "--engine-refresh-min-interval",
    "1s",
    "--engine-refresh-max-interval",
    "2s",
    "--engine-failure-retry",
    "2",
];

/// Starts engines with `labels`, a manager over the discovery URL that
/// `discovery` builds from them (fast refresh: 1 s to 2 s, unhealthy after
/// 2 failures), and waits until `docker info` shows every node Healthy.
pub fn start_cluster(
    labels: &[&[(&str, &str)]],
    discovery: impl FnOnce(&Engines) -> String,
) -> Cluster {
    start_cluster_with(labels, discovery, &[])
}

/// [`start_cluster`], with `manager_args` added to the manager's flags.
pub fn start_cluster_with(
    labels: &[&[(&str, &str)]],
    discovery: impl FnOnce(&Engines) -> String,
    manager_args: &[&str],
) -> Cluster {
    let engines = start_engines(labels);
    let discovery = discovery(&engines);
    let mut args = FAST_REFRESH.to_vec();
    // Node lists kept long: a `docker ps` that misses a change shows it
    // (only a change on the node, not the time, may renew a list).
    args.extend(["--list-cache", "1h"]);
    args.extend_from_slice(manager_args);
    args.push(&discovery);
    let manager = start_manager(&args);
    let cluster = Cluster { engines, manager };
    let want = vec!["Healthy".to_string(); labels.len()];
    wait_for("every node healthy", Duration::from_secs(30), || {
        (info_value(&cluster.ok(&["info"]), "└ Status") == want).then_some(())
    });
    cluster
}

impl Cluster {
    /// The manager as a docker `-H` value.
    pub fn host(&self) -> &str {
        &self.manager.host
    }

    /// `docker -H manager ARGS` must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        docker_ok(self.host(), args)
    }

    /// `docker -H manager ARGS` must fail; returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        docker_err(self.host(), args)
    }

    /// The engine whose hostname is `node`; panics if there is none.
    pub fn engine_named(&self, node: &str) -> &Engine {
        self.engines
            .iter()
            .find(|e| e.name == node)
            .unwrap_or_else(|| panic!("no engine named {node}"))
    }

    /// The node name a container runs on, from swarm's inspect.
    pub fn node_of(&self, container: &str) -> String {
        self.ok(&["inspect", "-f", "{{.Node.Name}}", container])
    }

    /// Runs each named scenario, catching its panic; prints the manager's
    /// log when any failed and returns the names of those that failed.
    /// `after` runs after each scenario (e.g. cleanup) and counts as one.
    pub fn run_scenarios(
        &self,
        scenarios: &[(&'static str, Scenario)],
        after: impl Fn(&Cluster),
    ) -> Vec<&'static str> {
        let mut failed = Vec::new();
        for (name, scenario) in scenarios {
            eprintln!("--- scenario: {name}");
            trace(format!("scenario {name}"));
            let t = Instant::now();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(self))).is_err() {
                failed.push(*name);
            }
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| after(self))).is_err() {
                failed.push("(after scenario)");
            }
            eprintln!("    {name}: {:?}", t.elapsed());
        }
        if !failed.is_empty() {
            eprintln!("manager log:\n{}", self.manager.log_tail(80));
            eprintln!("last steps:");
            for l in trace_lines() {
                eprintln!("{l}");
            }
        }
        failed
    }
}
