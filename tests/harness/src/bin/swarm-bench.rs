//! `swarm-bench`: benchmarks against swarm managers.
//!
//! ```sh
//! cargo build --release --bins
//! target/release/swarm-bench standard                       # 1,000 nodes, 30,000 containers, 64 clients
//! target/release/swarm-bench standard --nodes 50 --containers 500 --clients 16 --json out.json
//! target/release/swarm-bench c1m                            # 5,000 nodes, 1,000,000 containers, 3 managers
//! target/release/swarm-bench place --manager tcp://127.0.0.1:4000 --containers 1000 --clients 32 --start
//! target/release/swarm-bench query --manager tcp://127.0.0.1:4000 --requests 50
//! target/release/swarm-bench reschedule                     # kill 1 of 1,000 nodes holding 30 policy containers
//! target/release/swarm-bench chaos --duration 60s --seed 7 --history h.json --final f.json
//! target/release/swarm-bench chaos --replay h.json --final f.json   # only re-run the checker
//! target/release/swarm-bench chaos --replay h.json --final f.json --png t.png   # and draw it
//! ```
//!
//! `standard`, `c1m` and `reschedule` start a hollow fleet (`hollow-engine`) and `swarm manage`
//! processes itself and stops them at the end (also on an error, Ctrl-C or
//! SIGTERM); `place` and `query` run against managers already running.
//! Leader failover is measured by `cargo bench --bench failover` (see
//! docs/benchmarks.md). Figures are printed as tables and, with `--json`,
//! written to a file; they are never checked against the targets by exit
//! status.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use swarm::ca::CertKind;
use swarm_harness::bench::net::NetCounters;
use swarm_harness::bench::place::{self, PlaceConfig};
use swarm_harness::bench::query::{self, QueryConfig};
use swarm_harness::bench::reschedule::{self, RescheduleConfig};
use swarm_harness::bench::standard::{self, StandardConfig};
use swarm_harness::bench::stats::mib;
use swarm_harness::bench::RigConfig;
use swarm_harness::chaos::checker::{check_recording, Final, Report};
use swarm_harness::chaos::history::Recording;
use swarm_harness::chaos::run::{self as chaos, ChaosConfig};
use swarm_harness::chaos::timeline;
use swarm_harness::process::{cpu_time, Memory};

/// Benchmarks against swarm managers.
#[derive(Debug, Parser)]
#[command(name = "swarm-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Create (and with --start, start) containers with concurrent clients.
    Place(PlaceArgs),
    /// Latency of `GET /info` and `GET /containers/json?all=1`.
    Query(QueryArgs),
    /// Hollow engines + managers + place (create + start) + query + memory.
    Standard(StandardArgs),
    /// Nomad's C1M: 1,000,000 containers on 5,000 hollow nodes by three
    /// managers, then filtered listings and `info`.
    C1m(C1mArgs),
    /// Hollow engines + a manager; kill the node holding containers with
    /// `reschedule:on-node-failure` and time until they run elsewhere.
    Reschedule(RescheduleArgs),
    /// Hollow (or real) engines + a Raft cluster of managers under a seeded workload
    /// and seeded faults (kills, pauses); checks the cluster's promises.
    Chaos(ChaosArgs),
}

/// Options shared by the scenarios against running managers.
#[derive(Debug, Args)]
struct Target {
    /// Manager API addresses, comma-separated (tcp://IP:PORT or unix:///path).
    #[arg(long, value_delimiter = ',', required = true)]
    manager: Vec<String>,
    /// Pid of the manager process, to report its memory and CPU time.
    #[arg(long)]
    pid: Option<u32>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// How long one request may take before it counts as failed.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `swarm-bench place`.
#[derive(Debug, Args)]
struct PlaceArgs {
    #[command(flatten)]
    target: Target,
    /// Containers to create.
    #[arg(long, default_value_t = 1000)]
    containers: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Start every container after creating it (`docker run -d`).
    #[arg(long)]
    start: bool,
    /// Image of the containers.
    #[arg(long, default_value = "busybox:local")]
    image: String,
    /// Command of the containers (space-separated).
    #[arg(long, default_value = "sleep 1000")]
    cmd: String,
    /// Container names are PREFIX-N (default: bench<pid>).
    #[arg(long)]
    prefix: Option<String>,
    /// Remove the created containers afterwards (and time it).
    #[arg(long)]
    remove: bool,
    /// Stop when no create succeeded for this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    stall_timeout: Duration,
}

/// `swarm-bench query`.
#[derive(Debug, Args)]
struct QueryArgs {
    #[command(flatten)]
    target: Target,
    /// Timed requests per endpoint.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    /// Also time `docker ps -a --filter F` (repeatable: `label=k=v`,
    /// `name=x`, ...).
    #[arg(long = "filter", value_name = "F")]
    filters: Vec<String>,
}

/// The processes a self-contained scenario starts (`standard`, `c1m`,
/// `reschedule`): which binaries, their extra arguments, ports, readiness.
#[derive(Debug, Clone, Args)]
struct RigArgs {
    /// The hollow-engine binary (default: next to swarm-bench, or in $SWARM_BIN_DIR).
    #[arg(long)]
    hollow_bin: Option<PathBuf>,
    /// The swarm binary (default: $SWARM_BIN, else next to swarm-bench or in $SWARM_BIN_DIR).
    #[arg(long)]
    swarm_bin: Option<PathBuf>,
    /// Extra argument for hollow-engine (repeat; e.g. --hollow-arg=--latency=1ms).
    #[arg(long = "hollow-arg", allow_hyphen_values = true)]
    hollow_args: Vec<String>,
    /// Extra argument for every swarm manage (repeat).
    #[arg(long = "manager-arg", allow_hyphen_values = true)]
    manager_args: Vec<String>,
    /// --log-level of the managers (info or finer for `reschedule`: it
    /// counts their rescheduling lines).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// First node port (default: a free range; the admin port is the one below).
    #[arg(long)]
    base_port: Option<u16>,
    /// How long the fleet and the managers get to be ready.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// Managers serve `--tlsverify` (a manager certificate of a CA made for
    /// the run, mutual TLS between them) and the benchmark's clients show
    /// a client certificate; the hollow engines stay plain
    /// (`--engine-tls=false`).
    #[arg(long)]
    tls: bool,
}

impl RigArgs {
    /// The rig these flags ask for (with `--keep` and progress unless
    /// `--quiet`); binaries default to those [`swarm_harness::try_binary`]
    /// finds.
    fn config(self, keep: bool, quiet: bool) -> anyhow::Result<RigConfig> {
        let hollow_bin = match self.hollow_bin {
            Some(p) => p,
            None => swarm_harness::try_binary("hollow-engine").map_err(anyhow::Error::msg)?,
        };
        let swarm_bin = match self.swarm_bin {
            Some(p) => p,
            None => swarm_harness::try_binary("swarm").map_err(anyhow::Error::msg)?,
        };
        let mut manager_args = self.manager_args;
        let pki = if self.tls {
            let pki = swarm_harness::Pki::new()?;
            let manager = pki.issue(CertKind::Manager, "manager", &["127.0.0.1", "localhost"])?;
            let client = pki.issue(CertKind::Client, "bench", &[])?;
            manager_args.extend(swarm_harness::tls_flags(&manager));
            manager_args.push("--engine-tls=false".into());
            swarm_harness::bench::client::use_tls(swarm_harness::client_config(&client)?);
            Some(std::sync::Arc::new(pki))
        } else {
            None
        };
        Ok(RigConfig {
            hollow_bin,
            swarm_bin,
            hollow_args: self.hollow_args,
            manager_args,
            pki,
            log_level: self.log_level,
            base_port: self.base_port,
            ready_timeout: self.ready_timeout,
            keep,
            progress: !quiet,
        })
    }
}

/// What `standard` and `c1m` share: the clients, what they create, the
/// queries after, the rig and the output.
#[derive(Debug, Args)]
struct RunArgs {
    /// Concurrent clients (spread over the managers).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Timed requests per query endpoint.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Only create the containers, do not start them.
    #[arg(long)]
    no_start: bool,
    /// Image of the containers.
    #[arg(long, default_value = "busybox:local")]
    image: String,
    #[command(flatten)]
    rig: RigArgs,
    /// How long one request may take before it counts as failed.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Stop placing when no create succeeded for this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    stall_timeout: Duration,
    /// Keep the scratch directory (logs, data dirs) and print where it is.
    #[arg(long)]
    keep: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `swarm-bench standard`.
#[derive(Debug, Args)]
struct StandardArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Containers to create and start.
    #[arg(long, default_value_t = 30_000)]
    containers: usize,
    /// Managers (one Raft cluster; clients spread over them).
    #[arg(long, default_value_t = 1)]
    managers: usize,
    /// `hollow-engine` processes the nodes are split over.
    #[arg(long, default_value_t = 1)]
    fleet_processes: usize,
    #[command(flatten)]
    run: RunArgs,
}

/// `swarm-bench c1m`.
#[derive(Debug, Args)]
struct C1mArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Containers to create and start.
    #[arg(long, default_value_t = 1_000_000)]
    containers: usize,
    /// Managers (one Raft cluster; clients spread over them).
    #[arg(long, default_value_t = 3)]
    managers: usize,
    /// `hollow-engine` processes the nodes are split over.
    #[arg(long, default_value_t = 2)]
    fleet_processes: usize,
    /// Containers are labelled `swarm-bench.group=i mod GROUPS`; the
    /// label filter asks for one group.
    #[arg(long, default_value_t = 1000)]
    groups: usize,
    #[command(flatten)]
    run: RunArgs,
}

/// `swarm-bench reschedule`.
#[derive(Debug, Args)]
struct RescheduleArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Containers with `-e reschedule:on-node-failure`, all on the victim.
    #[arg(long, default_value_t = 30)]
    containers: usize,
    /// Ordinary containers placed (and started) over the fleet first.
    #[arg(long, default_value_t = 0)]
    background: usize,
    /// Concurrent clients placing the background containers.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Index of the node to kill (default: nodes / 2).
    #[arg(long)]
    victim: Option<usize>,
    /// Image of the containers.
    #[arg(long, default_value = "busybox:local")]
    image: String,
    /// --engine-refresh-min-interval of the manager.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    engine_refresh_min_interval: Duration,
    /// --engine-refresh-max-interval of the manager.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    engine_refresh_max_interval: Duration,
    /// --engine-failure-retry of the manager.
    #[arg(long, default_value_t = 3)]
    engine_failure_retry: u32,
    #[command(flatten)]
    rig: RigArgs,
    /// Bound of the wait for the moves, and again of the wait for the cleanup.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How long one request may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Pause between two polling rounds.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// Keep the scratch directory (logs, data dir) and print where it is.
    #[arg(long)]
    keep: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `swarm-bench chaos`.
#[derive(Debug, Args)]
struct ChaosArgs {
    /// Managers (one Raft cluster).
    #[arg(long, default_value_t = 3)]
    managers: usize,
    /// Hollow nodes.
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    /// Real Docker engines instead of hollow nodes (2-3 typical; needs
    /// root and dockerd).
    #[arg(long, conflicts_with = "nodes", value_parser = clap::value_parser!(u16).range(1..))]
    engines: Option<u16>,
    /// Concurrent clients of the workload.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long the workload and the faults last.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the workload and the faults (default: from the clock;
    /// printed). With --replay, only the --png title shows it.
    #[arg(long)]
    seed: Option<u64>,
    /// One fault begins this often and heals before the next.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    fault_every: Duration,
    /// Image of the containers.
    #[arg(long, default_value = "busybox:local")]
    image: String,
    /// Memory of every hollow node, in MiB.
    #[arg(long, default_value_t = 2048)]
    node_memory_mib: u64,
    /// CPUs of every hollow node.
    #[arg(long, default_value_t = 2)]
    node_cpus: u64,
    /// The managers' `swarm.overcommit`.
    #[arg(long, default_value_t = 0.05)]
    overcommit: f64,
    /// How long one workload request may take (then its outcome is unknown).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Bound of the wait for the managers to converge after healing.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    converge_timeout: Duration,
    /// The nemesis also stops hollow nodes for a while (`engine-kill`).
    #[arg(long)]
    engine_faults: bool,
    /// Managers on this machine's loopback instead of hosts of their own
    /// (network namespaces, which need root): no network faults then.
    #[arg(long)]
    shared_net: bool,
    /// Draw only these faults, evenly (comma-separated: kill, pause,
    /// kill-two, engine-kill, engine-outage, partition-leader, split,
    /// one-way, flap, loss, delay, cut-leader).
    #[arg(long, value_delimiter = ',', value_parser = chaos::Fault::parse)]
    only: Vec<chaos::Fault>,
    /// No HAProxy in front of the managers: every request goes to a
    /// manager directly.
    #[arg(long)]
    no_vip: bool,
    #[command(flatten)]
    rig: RigArgs,
    /// Keep the scratch directory (logs, data dirs) and print where it is.
    #[arg(long)]
    keep: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Write the checker's report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the history as JSON to this file.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Write the state read after healing as JSON to this file (with
    /// --replay: read it from there).
    #[arg(long = "final")]
    final_state: Option<PathBuf>,
    /// Start nothing: re-run the checker over this history and --final.
    #[arg(long, requires = "final_state")]
    replay: Option<PathBuf>,
    /// Draw the history as a PNG timeline to this file (also with
    /// --replay): latencies, outcomes per second, roles, faults.
    #[arg(long)]
    png: Option<PathBuf>,
}

/// Memory and CPU time of a process given by `--pid`.
#[derive(Debug, Serialize)]
struct Pid {
    pid: u32,
    memory: Option<Memory>,
    cpu_s: Option<f64>,
}

impl Pid {
    fn read(pid: u32) -> Pid {
        Pid {
            pid,
            memory: Memory::of(pid),
            cpu_s: cpu_time(pid).map(|d| d.as_secs_f64()),
        }
    }

    fn describe(&self) -> String {
        match self.memory {
            Some(m) => format!(
                "process {}: RSS {}, peak RSS {}, CPU {:.1} s",
                self.pid,
                mib(m.rss_bytes),
                mib(m.peak_rss_bytes),
                self.cpu_s.unwrap_or(f64::NAN)
            ),
            None => format!("process {}: not found", self.pid),
        }
    }
}

/// Writes `value` as pretty JSON to `path`.
fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("figures written to {}", path.display());
    Ok(())
}

async fn place_cmd(args: PlaceArgs) -> anyhow::Result<()> {
    let prefix = args
        .prefix
        .unwrap_or_else(|| format!("bench{}", std::process::id()));
    let cmd: Vec<String> = args.cmd.split_whitespace().map(str::to_string).collect();
    let config = PlaceConfig {
        managers: args.target.manager.clone(),
        containers: args.containers,
        clients: args.clients,
        start: args.start,
        image: args.image,
        cmd,
        prefix,
        groups: None,
        timeout: args.target.timeout,
        progress: true,
        stall_timeout: args.stall_timeout,
    };
    let net_before = NetCounters::read();
    let report = place::run(&config).await?;
    let network = NetCounters::read().since(&net_before);
    let before_remove = args.target.pid.map(Pid::read);
    let removal = if args.remove {
        Some(
            place::remove(
                &config.managers,
                &report.ids,
                config.clients,
                config.timeout,
            )
            .await?,
        )
    } else {
        None
    };
    println!(
        "place: {} containers, {} clients, {} manager(s): {} placed, {} failed in {:.1} s ({:.0}/s)\n",
        report.containers,
        report.clients,
        report.managers.len(),
        report.placed,
        report.failures,
        report.wall_ms / 1000.0,
        report.placements_per_s
    );
    print!(
        "{}",
        standard::latency_table(&standard::place_rows(&report))
    );
    println!();
    print!("{}", standard::tenths_table(&report));
    print!("\n{}", standard::network_line(&network, report.containers));
    if let Some(r) = &removal {
        println!(
            "\nremoved {} ({} failed) in {:.1} s; remove p50 {:.2} ms, p99 {:.2} ms",
            r.removed,
            r.failures,
            r.wall_ms / 1000.0,
            r.latency.p50_ms,
            r.latency.p99_ms
        );
    }
    if let Some(p) = &before_remove {
        println!("\n{}", p.describe());
    }
    if let Some(why) = &report.aborted {
        println!("\nABORTED: {why}");
    }
    for (why, count) in &report.errors.kinds {
        println!("  {count:>6} × {why}");
    }
    if let Some(path) = &args.target.json {
        write_json(
            path,
            &serde_json::json!({
                "bench": "place",
                "place": report,
                "remove": removal,
                "network": network,
                "process": before_remove,
            }),
        )?;
    }
    Ok(())
}

async fn query_cmd(args: QueryArgs) -> anyhow::Result<()> {
    let report = query::run(&QueryConfig {
        managers: args.target.manager.clone(),
        requests: args.requests,
        ps_all: true,
        filters: args.filters,
        timeout: args.target.timeout,
    })
    .await?;
    print!(
        "{}",
        standard::latency_table(&standard::query_rows(&report))
    );
    for e in [&report.info]
        .into_iter()
        .chain(&report.ps)
        .chain(&report.filtered)
    {
        println!("{} answer {} bytes", e.what, e.bytes);
    }
    let process = args.target.pid.map(Pid::read);
    if let Some(p) = &process {
        println!("{}", p.describe());
    }
    if let Some(path) = &args.target.json {
        write_json(
            path,
            &serde_json::json!({ "bench": "query", "query": report, "process": process }),
        )?;
    }
    Ok(())
}

async fn standard_cmd(args: StandardArgs) -> anyhow::Result<()> {
    let targets = standard::Targets::of(args.nodes, args.managers);
    let config = StandardConfig {
        name: "standard".into(),
        nodes: args.nodes,
        fleet_processes: args.fleet_processes,
        containers: args.containers,
        managers: args.managers,
        ps_all: true,
        filters: Vec::new(),
        groups: None,
        targets,
        ..run_config(&args.run)?
    };
    run_standard(&config, args.run.json.as_deref()).await
}

async fn c1m_cmd(args: C1mArgs) -> anyhow::Result<()> {
    let base = run_config(&args.run)?;
    // One group, and the names holding one number (N-4242, N-42420...,
    // as `docker ps --filter name=` matches a part of the name; a third of
    // the containers when there are fewer).
    let group = args.groups.saturating_sub(1).min(7);
    let probe = if args.containers > 4242 {
        4242
    } else {
        args.containers / 3
    };
    let filters = vec![
        format!("label={}={group}", place::GROUP_LABEL),
        format!("name={}-{probe}", base.prefix),
    ];
    let config = StandardConfig {
        name: "c1m".into(),
        nodes: args.nodes,
        fleet_processes: args.fleet_processes,
        containers: args.containers,
        managers: args.managers,
        ps_all: false,
        filters,
        groups: Some(args.groups),
        targets: standard::Targets::c1m(),
        ..base
    };
    run_standard(&config, args.run.json.as_deref()).await
}

/// The configuration `args` give, for one node, container and manager
/// and the first wave's targets (the caller says the rest).
fn run_config(args: &RunArgs) -> anyhow::Result<StandardConfig> {
    Ok(StandardConfig {
        name: String::new(),
        nodes: 1,
        fleet_processes: 1,
        containers: 1,
        clients: args.clients,
        managers: 1,
        requests: args.requests,
        ps_all: true,
        filters: Vec::new(),
        groups: None,
        targets: standard::Targets::of(1, 1),
        start: !args.no_start,
        image: args.image.clone(),
        prefix: format!("bench{}", std::process::id()),
        timeout: args.timeout,
        stall_timeout: args.stall_timeout,
        rig: args.rig.clone().config(args.keep, args.quiet)?,
    })
}

/// Runs `standard` or `c1m` and prints (and writes) its report.
async fn run_standard(config: &StandardConfig, json: Option<&Path>) -> anyhow::Result<()> {
    let report = standard::run(config).await?;
    println!();
    print!("{}", report.table());
    if let Some(path) = json {
        write_json(path, &report)?;
    }
    Ok(())
}

async fn reschedule_cmd(args: RescheduleArgs) -> anyhow::Result<()> {
    let config = RescheduleConfig {
        nodes: args.nodes,
        containers: args.containers,
        background: args.background,
        clients: args.clients,
        victim: args.victim,
        image: args.image,
        refresh_min: args.engine_refresh_min_interval,
        refresh_max: args.engine_refresh_max_interval,
        failure_retry: args.engine_failure_retry,
        timeout: args.timeout,
        request_timeout: args.request_timeout,
        poll: args.poll,
        rig: args.rig.config(args.keep, args.quiet)?,
    };
    let report = reschedule::run(&config).await?;
    println!();
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// Prints the checker's report, writes it with `--json`; an error when
/// a promise is broken.
fn chaos_verdict(report: &Report, json: Option<&Path>) -> anyhow::Result<()> {
    println!("{report}");
    if let Some(path) = json {
        let text = report.to_json().context("serializing the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if !report.ok() {
        bail!(
            "chaos: promises broken ({} violations)",
            report.violations.len()
        );
    }
    Ok(())
}

/// Draws `recording` as a PNG timeline when `--png` asks for one. The
/// caller prints the checker's verdict before it returns this result: a
/// missing font must not hide a broken promise.
fn chaos_png(recording: &Recording, png: Option<&Path>, seed: Option<u64>) -> anyhow::Result<()> {
    let Some(path) = png else { return Ok(()) };
    let options = timeline::Options {
        seed,
        ..timeline::Options::default()
    };
    timeline::render(recording, path, &options)?;
    eprintln!("timeline written to {}", path.display());
    Ok(())
}

async fn chaos_cmd(args: ChaosArgs) -> anyhow::Result<()> {
    if let (Some(history), Some(fin)) = (&args.replay, &args.final_state) {
        let recording = Recording::load(history)?;
        let text =
            std::fs::read_to_string(fin).with_context(|| format!("reading {}", fin.display()))?;
        let fin: Final =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", fin.display()))?;
        let drawn = chaos_png(&recording, args.png.as_deref(), args.seed);
        chaos_verdict(&check_recording(&recording, &fin), args.json.as_deref())?;
        return drawn;
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let config = ChaosConfig {
        managers: args.managers,
        nodes: args.nodes,
        engines: args.engines.map_or(0, usize::from),
        clients: args.clients,
        duration: args.duration,
        seed,
        fault_every: args.fault_every,
        image: args.image,
        node_memory: args.node_memory_mib << 20,
        node_cpus: args.node_cpus,
        overcommit: args.overcommit,
        request_timeout: args.request_timeout,
        converge_timeout: args.converge_timeout,
        engine_faults: args.engine_faults,
        net: !args.shared_net,
        vip: !args.no_vip,
        only: args.only,
        rig: args.rig.config(args.keep, args.quiet)?,
    };
    let outcome = chaos::run(&config).await?;
    if let Some(path) = &args.history {
        outcome.recording.save(path)?;
        eprintln!("history written to {}", path.display());
    }
    if let Some(path) = &args.final_state {
        write_json(path, &outcome.fin)?;
    }
    let nodes = match config.engines {
        0 => format!("{} nodes", config.nodes),
        n => format!("{n} real engines"),
    };
    println!(
        "chaos: seed {seed}, {} managers, {nodes}, {} clients, {:?}, {} faults; managers {} in {:.1} s",
        config.managers,
        config.clients,
        config.duration,
        outcome.faults,
        if outcome.converged { "converged" } else { "did NOT converge" },
        outcome.converge_ms / 1000.0
    );
    let drawn = chaos_png(&outcome.recording, args.png.as_deref(), Some(seed));
    chaos_verdict(&outcome.report, args.json.as_deref())?;
    drawn
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread: the bench is mostly waiting, and the machine's cores are
    // for the manager and the fleet.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async {
        let work = async {
            match cli.command {
                Scenario::Place(args) => place_cmd(args).await,
                Scenario::Query(args) => query_cmd(args).await,
                Scenario::Standard(args) => standard_cmd(args).await,
                Scenario::C1m(args) => c1m_cmd(args).await,
                Scenario::Reschedule(args) => reschedule_cmd(args).await,
                Scenario::Chaos(args) => chaos_cmd(args).await,
            }
        };
        // Dropping `work` kills every process it started.
        tokio::select! {
            result = work => result,
            why = interrupted() => bail!("{why}"),
        }
    })
}
