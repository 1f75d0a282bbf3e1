//! The standard scenario: a hollow fleet, one or more managers in front of
//! it, then [`place`] (create + start) and [`query`], with the managers'
//! memory and CPU time. `c1m` is the same run at Nomad's C1M size (5,000
//! nodes over two `hollow-engine` processes, 1,000,000 containers, three
//! managers), labelled in groups, and queried with filtered listings
//! instead of the whole `ps -a`.
//!
//! Steps (`scenario`): start the fleet (`hollow-engine --nodes N
//! --base-port P`, node `i` on `127.0.0.1:P+i`, its admin port on `P-1`,
//! `P-1..P+N-1` a free range below the ephemeral ports) and wait until its
//! first and last node answer `/_ping`; start the managers (`swarm manage`
//! with a fresh `--data-dir` and discovery `nodes://127.0.0.1:[P:P+N-1]`;
//! the first bootstraps, the others `--join` it and are waited for as
//! voters); wait until `GET /info` lists N `Healthy` nodes; place; query;
//! read `/proc/PID/status` and `/proc/PID/stat` of every process; stop
//! everything (SIGTERM, then SIGKILL). Every process is also killed when
//! the run ends early (an error, or the future dropped on Ctrl-C).

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::net::NetCounters;
use super::place::{self, PlaceConfig, PlaceReport};
use super::query::{self, Endpoint, QueryConfig, QueryReport};
use super::rig::{check_binaries, FleetSpec, HollowFleet, Rig, RigConfig};
use super::stats::{cell_ms, markdown, mib, ms, Summary};
use crate::process::{Memory, Process};

/// Timeout of one readiness request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// The scenario's parameters.
#[derive(Debug, Clone)]
pub struct StandardConfig {
    /// The scenario's name in the report (`standard`, `c1m`).
    pub name: String,
    /// Hollow nodes.
    pub nodes: usize,
    /// `hollow-engine` processes the nodes are split over.
    pub fleet_processes: usize,
    /// Containers to create (and start).
    pub containers: usize,
    /// Concurrent clients of the placement.
    pub clients: usize,
    /// Managers (one Raft cluster).
    pub managers: usize,
    /// Timed requests per query endpoint.
    pub requests: usize,
    /// Whether to time `ps -a` (the whole list).
    pub ps_all: bool,
    /// Filtered listings to time (`docker ps -a --filter F`).
    pub filters: Vec<String>,
    /// Label the containers in this many groups
    /// ([`place::GROUP_LABEL`]), for the filtered listings.
    pub groups: Option<usize>,
    /// What the figures are held to (printed, never asserted).
    pub targets: Targets,
    /// Whether to start each container (`docker run -d`) or only create it.
    pub start: bool,
    /// The image of the containers (every hollow node holds `busybox:local`).
    pub image: String,
    /// Container names are `PREFIX-N`.
    pub prefix: String,
    /// How long one benchmark request may take.
    pub timeout: Duration,
    /// Stop placing when no create succeeded for this long.
    pub stall_timeout: Duration,
    /// The binaries and how they start.
    pub rig: RigConfig,
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available to this process.
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// `cpu family` of /proc/cpuinfo.
    pub cpu_family: String,
    /// `model` of /proc/cpuinfo.
    pub cpu_model_number: String,
    /// Kernel release.
    pub kernel: String,
    /// `MemTotal`, in bytes.
    pub memory_bytes: u64,
}

impl Machine {
    /// Reads /proc.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field("model name"),
            cpu_family: field("cpu family"),
            cpu_model_number: field("model"),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            memory_bytes,
        }
    }

    /// One line: `2 CPUs, AMD EPYC (family 26, model 2), Linux 6.18, 23.4 GiB`.
    pub fn describe(&self) -> String {
        format!(
            "{} CPUs, {} (family {}, model {}), Linux {}, {:.1} GiB",
            self.cpus,
            self.cpu_model,
            self.cpu_family,
            self.cpu_model_number,
            self.kernel,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        )
    }
}

/// Memory and CPU time of one process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessFigures {
    /// Its name (`m1`, `hollow-engine`).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Memory right after the placement.
    pub after_place: Option<Memory>,
    /// Memory after the queries (its `peak_rss_bytes` is the run's peak).
    pub after_query: Option<Memory>,
    /// Open file descriptors right after the placement.
    pub fds_after_place: Option<usize>,
    /// CPU seconds used during the placement.
    pub place_cpu_s: Option<f64>,
    /// Of which in the kernel (system time).
    pub place_system_cpu_s: Option<f64>,
    /// CPU seconds used from its start to the end of the queries.
    pub total_cpu_s: Option<f64>,
}

/// Setup timings.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// First node port.
    pub base_port: u16,
    /// Discovery URL the managers were given.
    pub discovery: String,
    /// Manager API addresses.
    pub managers: Vec<String>,
    /// `hollow-engine` start → its first and last node answer.
    pub hollow_ready_ms: f64,
    /// First manager start → every manager answers (and is a voter).
    pub managers_ready_ms: f64,
    /// Managers ready → `info` lists every node healthy.
    pub nodes_healthy_ms: f64,
    /// Healthy nodes when the placement began.
    pub healthy_nodes: usize,
}

/// Everything the standard scenario measured (written as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct StandardReport {
    /// `standard` or `c1m`.
    pub bench: String,
    /// Where it ran.
    pub machine: Machine,
    /// Hollow nodes.
    pub nodes: usize,
    /// Containers tried.
    pub containers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Managers.
    pub managers: usize,
    /// Setup timings.
    pub setup: Setup,
    /// The placement.
    pub place: PlaceReport,
    /// The queries.
    pub query: QueryReport,
    /// Every manager's memory and CPU time.
    pub manager_figures: Vec<ProcessFigures>,
    /// The hollow fleet's processes'.
    pub hollow_figures: Vec<ProcessFigures>,
    /// Machine-wide TCP figures of the placement (opens and SYN
    /// retransmits during it; the tracking table as it ended).
    pub place_network: NetCounters,
    /// The whole run, from the first process started to the last stopped.
    pub wall_ms: f64,
    /// What the figures are held to.
    pub targets: Targets,
}

/// Runs the standard scenario; every process it started is stopped when
/// it returns (or when the future is dropped).
pub async fn run(config: &StandardConfig) -> anyhow::Result<StandardReport> {
    check_binaries(&[
        ("hollow-engine", &config.rig.hollow_bin),
        ("swarm", &config.rig.swarm_bin),
    ])?;
    if config.nodes == 0 || config.managers == 0 {
        bail!("--nodes and --managers must be at least 1");
    }
    let mut rig = Rig::new("swarm-bench", config.rig.keep)?;
    let outcome = scenario(config, &mut rig).await;
    rig.finish(&config.name, outcome.is_err(), 20);
    outcome
}

/// The steps, on a rig that the caller stops.
async fn scenario(config: &StandardConfig, rig: &mut Rig) -> anyhow::Result<StandardReport> {
    let t0 = Instant::now();
    let mut run = Standard { config, rig };
    let fleet = run.start_fleet().await?;
    let managers = run.start_managers(&fleet).await?;
    let (healthy, nodes_healthy) = run.wait_healthy(&fleet, &managers).await?;
    let placed = run.place(&managers).await?;
    let query = run.query(&managers).await?;
    let (manager_figures, hollow_figures) = run.figures(&fleet, &placed)?;
    run.rig.stop();
    Ok(StandardReport {
        bench: config.name.clone(),
        machine: Machine::detect(),
        nodes: config.nodes,
        containers: config.containers,
        clients: config.clients,
        managers: config.managers,
        setup: Setup {
            base_port: fleet.base,
            discovery: fleet.discovery(),
            managers: managers.apis,
            hollow_ready_ms: ms(fleet.ready),
            managers_ready_ms: ms(managers.ready),
            nodes_healthy_ms: ms(nodes_healthy),
            healthy_nodes: healthy,
        },
        place: placed.report,
        query,
        manager_figures,
        hollow_figures,
        place_network: placed.network,
        wall_ms: ms(t0.elapsed()),
        targets: config.targets,
    })
}

/// What the steps share: the parameters and the processes.
struct Standard<'a> {
    config: &'a StandardConfig,
    rig: &'a mut Rig,
}

/// The started managers.
struct Managers {
    /// Their API addresses, the bootstrapping one first.
    apis: Vec<String>,
    /// First start → every manager answers (and is a voter).
    ready: Duration,
}

impl Managers {
    /// Their addresses as `tcp://` URLs, for the clients.
    fn urls(&self) -> Vec<String> {
        self.apis.iter().map(|a| format!("tcp://{a}")).collect()
    }
}

/// Memory, descriptors and CPU time of one process at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    memory: Option<Memory>,
    fds: Option<usize>,
    cpu: Option<(Duration, Duration)>,
}

impl Sample {
    /// The process's figures now.
    fn of(process: &Process) -> Sample {
        Sample {
            memory: process.memory(),
            fds: process.open_fds(),
            cpu: process.cpu_split(),
        }
    }
}

/// The placement and the processes' figures around it.
struct Placed {
    report: PlaceReport,
    /// Machine-wide TCP during the placement.
    network: NetCounters,
    /// Every manager before and after the placement.
    managers: Vec<(Sample, Sample)>,
    /// The fleet's processes before and after the placement.
    hollow: Vec<(Sample, Sample)>,
}

impl Standard<'_> {
    /// Prints a progress line to stderr if asked to.
    fn progress(&self, line: String) {
        progress(self.config, line);
    }

    /// The fleet's processes, sampled now.
    fn sample_fleet(&self) -> Vec<Sample> {
        self.rig.hollow.iter().map(Sample::of).collect()
    }

    /// Step: the hollow fleet, until its first and last node answer.
    async fn start_fleet(&mut self) -> anyhow::Result<HollowFleet> {
        let config = self.config;
        let spec = FleetSpec {
            bin: &config.rig.hollow_bin,
            nodes: config.nodes,
            host: "127.0.0.1",
            base_port: config.rig.base_port,
            admin: false,
            args: &config.rig.hollow_args,
            ready_timeout: config.rig.ready_timeout,
            request_timeout: CONTROL_TIMEOUT,
            processes: config.fleet_processes,
        };
        self.rig
            .start_fleet(&spec, |line| progress(config, line))
            .await
    }

    /// Step: the managers with a fresh `--data-dir` each and discovery
    /// `nodes://127.0.0.1:[P:P+N-1]`; the first bootstraps, the others
    /// `--join` it and are waited for as voters.
    async fn start_managers(&mut self, fleet: &HollowFleet) -> anyhow::Result<Managers> {
        let config = self.config;
        let started = Instant::now();
        let mut apis: Vec<String> = Vec::new();
        for i in 0..config.managers {
            let name = format!("m{}", i + 1);
            let manager = self.rig.start_member(
                &config.rig,
                &name,
                &[],
                fleet.discovery(),
                apis.first().cloned(),
                None,
            )?;
            let api = manager.addr.clone();
            let line = format!(
                "manager {name} (pid {}) on {api}: swarm {}",
                manager.pid().unwrap_or(0),
                manager.args().join(" ")
            );
            self.progress(line);
            let first = apis.first().cloned();
            self.rig
                .wait_manager_ready(
                    &api,
                    first.as_deref(),
                    config.rig.ready_timeout,
                    CONTROL_TIMEOUT,
                )
                .await?;
            apis.push(api);
        }
        Ok(Managers {
            apis,
            ready: started.elapsed(),
        })
    }

    /// Step: until `GET /info` lists every node `Healthy`; how many and
    /// how long it took.
    async fn wait_healthy(
        &mut self,
        fleet: &HollowFleet,
        managers: &Managers,
    ) -> anyhow::Result<(usize, Duration)> {
        let config = self.config;
        let started = Instant::now();
        let healthy = self
            .rig
            .wait_healthy(
                &managers.apis[0],
                fleet.nodes,
                config.rig.ready_timeout,
                CONTROL_TIMEOUT,
                config.rig.progress.then_some("standard"),
            )
            .await?;
        let nodes_healthy = started.elapsed();
        self.progress(format!(
            "{healthy} nodes healthy after {:.1} s (fleet ready in {:.1} s, managers in {:.1} s)",
            nodes_healthy.as_secs_f64(),
            fleet.ready.as_secs_f64(),
            managers.ready.as_secs_f64()
        ));
        Ok((healthy, nodes_healthy))
    }

    /// Step: create (and start) the containers with many clients, with the
    /// processes' figures before and after.
    async fn place(&mut self, managers: &Managers) -> anyhow::Result<Placed> {
        let config = self.config;
        let before: Vec<Sample> = self
            .rig
            .managers
            .iter()
            .map(|m| Sample::of(m.process()))
            .collect();
        let hollow_before = self.sample_fleet();
        let net_before = NetCounters::read();
        if net_before.conntrack_nearly_full() {
            eprintln!(
                "standard: warning: the connection tracking table is nearly full ({:?} of {:?}): \
                 new connections will be dropped; entries of closed connections stay 120 s",
                net_before.conntrack_count, net_before.conntrack_max
            );
        }
        self.progress(format!(
            "placing {} containers with {} clients{}",
            config.containers,
            config.clients,
            if config.start {
                " (create + start)"
            } else {
                ""
            }
        ));
        let report = place::run(&PlaceConfig {
            managers: managers.urls(),
            containers: config.containers,
            clients: config.clients,
            start: config.start,
            image: config.image.clone(),
            cmd: vec!["sleep".into(), "1000".into()],
            prefix: config.prefix.clone(),
            groups: config.groups,
            timeout: config.timeout,
            progress: config.rig.progress,
            stall_timeout: config.stall_timeout,
        })
        .await?;
        if let Some(why) = &report.aborted {
            eprintln!("standard: placement aborted: {why}");
        }
        let network = NetCounters::read().since(&net_before);
        self.rig.check()?;
        let after = self.rig.managers.iter().map(|m| Sample::of(m.process()));
        let managers = before.into_iter().zip(after).collect();
        let hollow = hollow_before.into_iter().zip(self.sample_fleet()).collect();
        self.progress(format!(
            "placed {} ({} failed) in {:.1} s: {:.0}/s",
            report.placed,
            report.failures,
            report.wall_ms / 1000.0,
            report.placements_per_s
        ));
        Ok(Placed {
            report,
            network,
            managers,
            hollow,
        })
    }

    /// Step: the latency of `info` and `ps -a`.
    async fn query(&mut self, managers: &Managers) -> anyhow::Result<QueryReport> {
        let query = query::run(&QueryConfig {
            managers: managers.urls(),
            requests: self.config.requests,
            ps_all: self.config.ps_all,
            filters: self.config.filters.clone(),
            timeout: self.config.timeout,
        })
        .await?;
        self.rig.check()?;
        Ok(query)
    }

    /// Step: every manager's and the fleet's memory and CPU time.
    fn figures(
        &self,
        fleet: &HollowFleet,
        placed: &Placed,
    ) -> anyhow::Result<(Vec<ProcessFigures>, Vec<ProcessFigures>)> {
        let managers = self
            .rig
            .managers
            .iter()
            .zip(&placed.managers)
            .map(|(m, (before, after))| {
                ProcessFigures::new(m.name(), m.pid().unwrap_or(0), before, after, m.process())
            })
            .collect();
        let hollow = self
            .rig
            .hollow
            .iter()
            .zip(&fleet.pids)
            .zip(&placed.hollow)
            .map(|((process, pid), (before, after))| {
                ProcessFigures::new("hollow-engine", *pid, before, after, process)
            })
            .collect();
        Ok((managers, hollow))
    }
}

impl ProcessFigures {
    /// The figures of `process` (named `name`, pid `pid`) from its samples
    /// around the placement and its state now.
    fn new(name: &str, pid: u32, before: &Sample, after: &Sample, now: &Process) -> ProcessFigures {
        let delta = || {
            let ((u0, s0), (u1, s1)) = (before.cpu?, after.cpu?);
            Some((
                (u1 + s1).saturating_sub(u0 + s0).as_secs_f64(),
                s1.saturating_sub(s0).as_secs_f64(),
            ))
        };
        ProcessFigures {
            name: name.to_string(),
            pid,
            after_place: after.memory,
            after_query: now.memory(),
            fds_after_place: after.fds,
            place_cpu_s: delta().map(|d| d.0),
            place_system_cpu_s: delta().map(|d| d.1),
            total_cpu_s: now.cpu_time().map(|d| d.as_secs_f64()),
        }
    }
}

/// Prints a progress line to stderr if asked to.
fn progress(config: &StandardConfig, line: String) {
    if config.rig.progress {
        eprintln!("{}: {line}", config.name);
    }
}

/// A latency row: operation, ok, failed, rate, p50, p90, p99, max.
fn row(name: &str, ok: usize, failed: u64, rate: Option<f64>, s: &Summary) -> Vec<String> {
    vec![
        name.to_string(),
        ok.to_string(),
        failed.to_string(),
        rate.map_or("-".into(), |r| format!("{r:.0}")),
        cell_ms(s.p50_ms),
        cell_ms(s.p90_ms),
        cell_ms(s.p99_ms),
        cell_ms(s.max_ms),
    ]
}

/// The columns of [`row`].
const COLUMNS: [(&str, bool); 8] = [
    ("operation", false),
    ("ok", true),
    ("failed", true),
    ("per s", true),
    ("p50", true),
    ("p90", true),
    ("p99", true),
    ("max", true),
];

/// The latency table of a placement: create, start, run.
pub fn place_rows(place: &PlaceReport) -> Vec<Vec<String>> {
    let wall = place.wall_ms / 1000.0;
    let rate = |n: usize| (wall > 0.0).then(|| n as f64 / wall);
    let failed = |prefix: &str| {
        place
            .errors
            .kinds
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let mut rows = vec![row(
        "create",
        place.placed,
        failed("create"),
        rate(place.placed),
        &place.create,
    )];
    if let (Some(start), Some(run)) = (&place.start_latency, &place.run) {
        rows.push(row("start", place.started, failed("start"), None, start));
        rows.push(row(
            "run -d (create+start)",
            run.count,
            place.failures,
            rate(run.count),
            run,
        ));
    }
    rows
}

/// The latency table of a query run: info, ps -a, the filtered listings.
pub fn query_rows(query: &QueryReport) -> Vec<Vec<String>> {
    let listing = |e: &Endpoint| {
        row(
            &format!("{} ({} containers)", e.what, e.items),
            e.latency.count,
            e.failures,
            None,
            &e.latency,
        )
    };
    let mut rows = vec![row(
        &format!("info ({} nodes)", query.info.items),
        query.info.latency.count,
        query.info.failures,
        None,
        &query.info.latency,
    )];
    rows.extend(query.ps.iter().map(listing));
    rows.extend(query.filtered.iter().map(listing));
    rows
}

/// Markdown for latency rows.
pub fn latency_table(rows: &[Vec<String>]) -> String {
    markdown(&COLUMNS, rows)
}

/// Placement figures per tenth of the run.
pub fn tenths_table(place: &PlaceReport) -> String {
    let rows: Vec<Vec<String>> = place
        .tenths
        .iter()
        .map(|t| {
            vec![
                format!("{}-{}", t.from, t.to),
                format!("{:.0}", t.placements_per_s),
                cell_ms(t.create.p50_ms),
                cell_ms(t.create.p99_ms),
                t.run.map_or("-".into(), |r| cell_ms(r.p99_ms)),
            ]
        })
        .collect();
    markdown(
        &[
            ("containers", false),
            ("created/s", true),
            ("create p50", true),
            ("create p99", true),
            ("run p99", true),
        ],
        &rows,
    )
}

impl StandardReport {
    /// The whole report as text: latency, tenths, processes, targets.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{}: {} nodes, {} containers, {} clients, {} manager(s); {}\n",
            self.bench,
            self.nodes,
            self.containers,
            self.clients,
            self.managers,
            self.machine.describe()
        ));
        out.push_str(&format!(
            "setup: fleet ready in {:.1} s, managers in {:.1} s, {} nodes healthy after {:.1} s; whole run {:.1} s\n\n",
            self.setup.hollow_ready_ms / 1000.0,
            self.setup.managers_ready_ms / 1000.0,
            self.setup.healthy_nodes,
            self.setup.nodes_healthy_ms / 1000.0,
            self.wall_ms / 1000.0
        ));
        out.push_str(&format!(
            "placed {} of {} ({} failed) in {:.1} s: {:.0}/s\n\n",
            self.place.placed,
            self.containers,
            self.place.failures,
            self.place.wall_ms / 1000.0,
            self.place.placements_per_s
        ));
        let mut rows = place_rows(&self.place);
        rows.extend(query_rows(&self.query));
        out.push_str(&latency_table(&rows));
        out.push('\n');
        out.push_str(&tenths_table(&self.place));
        out.push('\n');
        let procs: Vec<Vec<String>> = self
            .manager_figures
            .iter()
            .chain(&self.hollow_figures)
            .map(|p| {
                vec![
                    format!("{} (pid {})", p.name, p.pid),
                    p.after_place.map_or("-".into(), |m| mib(m.rss_bytes)),
                    p.after_query.map_or("-".into(), |m| mib(m.rss_bytes)),
                    p.after_query.map_or("-".into(), |m| mib(m.peak_rss_bytes)),
                    match (p.place_cpu_s, p.place_system_cpu_s) {
                        (Some(t), Some(k)) => format!("{t:.1} s ({k:.1} s sys)"),
                        _ => "-".into(),
                    },
                    p.total_cpu_s.map_or("-".into(), |s| format!("{s:.1} s")),
                    p.fds_after_place.map_or("-".into(), |n| n.to_string()),
                ]
            })
            .collect();
        out.push_str(&markdown(
            &[
                ("process", false),
                ("RSS after place", true),
                ("RSS at end", true),
                ("peak RSS", true),
                ("CPU during place", true),
                ("CPU total", true),
                ("fds after place", true),
            ],
            &procs,
        ));
        out.push('\n');
        out.push_str(&network_line(&self.place_network, self.place.containers));
        out.push('\n');
        out.push_str(&targets_table(
            &self.targets,
            &self.place,
            &self.query,
            self.manager_figures
                .iter()
                .filter_map(|p| p.after_query.map(|m| m.peak_rss_bytes))
                .max(),
        ));
        if let Some(why) = &self.place.aborted {
            out.push_str(&format!("\nplacement ABORTED: {why}\n"));
        }
        if !self.place.errors.kinds.is_empty() {
            out.push_str("\nfailures:\n");
            for (why, count) in &self.place.errors.kinds {
                out.push_str(&format!("  {count:>6} × {why}\n"));
            }
        }
        out
    }
}

/// One line on the machine's TCP during a placement of `containers`.
pub fn network_line(net: &NetCounters, containers: usize) -> String {
    let mut line = format!(
        "TCP during place (whole machine): {} connections opened ({:.1} per container), {} SYN retransmits",
        net.active_opens,
        net.active_opens as f64 / containers.max(1) as f64,
        net.syn_retransmits
    );
    if let (Some(n), Some(max)) = (net.conntrack_count, net.conntrack_max) {
        line.push_str(&format!("; conntrack table {n} of {max} at the end"));
        if net.conntrack_nearly_full() {
            line.push_str(" (FULL: new connections were dropped)");
        }
    }
    line.push('\n');
    line
}

/// The targets a run is held to (printed, never asserted), by its size:
/// the first wave's at 1,000 nodes with one manager, issue 23's with three
/// managers (the card's deployment), at Kubernetes' 5,000 nodes, and C1M's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    /// Placements per second, at least.
    pub placements_per_s: f64,
    /// Every container placed within this many seconds, if held to it.
    pub place_within_s: Option<f64>,
    /// `docker run -d` p99, at most, if held to it.
    pub run_p99_ms: Option<f64>,
    /// `info` p99, at most.
    pub info_p99_ms: f64,
    /// `ps -a` p99, at most (none at 5,000 nodes: issue 23 asks filtered
    /// listings there).
    pub ps_p99_ms: Option<f64>,
    /// Filtered `ps -a --filter` p99, at most, if held to it.
    pub filtered_p99_ms: Option<f64>,
    /// Every manager's peak RSS, at most.
    pub peak_rss_bytes: u64,
}

impl Targets {
    /// The targets of a `standard` run of `nodes` nodes and `managers`
    /// managers.
    pub fn of(nodes: usize, managers: usize) -> Targets {
        let first_wave = Targets {
            placements_per_s: 3000.0,
            place_within_s: None,
            run_p99_ms: Some(20.0),
            info_p99_ms: 10.0,
            ps_p99_ms: Some(100.0),
            filtered_p99_ms: None,
            peak_rss_bytes: 256 << 20,
        };
        if nodes >= 5000 {
            Targets {
                placements_per_s: 5000.0,
                info_p99_ms: 20.0,
                ps_p99_ms: None,
                peak_rss_bytes: 1 << 30,
                ..first_wave
            }
        } else if managers >= 3 {
            Targets {
                placements_per_s: 5000.0,
                ..first_wave
            }
        } else {
            first_wave
        }
    }

    /// Nomad's C1M on this machine (issue 23): 1,000,000 containers on
    /// 5,000 nodes placed by three managers within 5 minutes (3,333/s),
    /// every manager within 2 GiB, then filtered listings p99 ≤ 100 ms
    /// and `info` p99 ≤ 20 ms.
    pub fn c1m() -> Targets {
        Targets {
            placements_per_s: 1_000_000.0 / 300.0,
            place_within_s: Some(300.0),
            run_p99_ms: None,
            info_p99_ms: 20.0,
            ps_p99_ms: None,
            filtered_p99_ms: Some(100.0),
            peak_rss_bytes: 2 << 30,
        }
    }
}

/// The targets against the figures (printed, never asserted).
pub fn targets_table(
    targets: &Targets,
    place: &PlaceReport,
    query: &QueryReport,
    peak_rss: Option<u64>,
) -> String {
    let check = |met: bool| if met { "met" } else { "missed" }.to_string();
    let mut rows = vec![vec![
        "placements/s".to_string(),
        format!("≥ {:.0}", targets.placements_per_s),
        format!("{:.0}", place.placements_per_s),
        check(place.placements_per_s >= targets.placements_per_s),
    ]];
    if let Some(within) = targets.place_within_s {
        let took = place.wall_ms / 1000.0;
        rows.push(vec![
            format!("time to place {}", place.containers),
            format!("≤ {within:.0} s"),
            format!("{took:.1} s"),
            check(took <= within && place.placed == place.containers),
        ]);
    }
    if let (Some(run), Some(goal)) = (&place.run, targets.run_p99_ms) {
        rows.push(vec![
            "docker run -d p99".into(),
            format!("≤ {goal:.0} ms"),
            cell_ms(run.p99_ms),
            check(run.p99_ms <= goal),
        ]);
    }
    rows.push(vec![
        "info p99".into(),
        format!("≤ {:.0} ms", targets.info_p99_ms),
        cell_ms(query.info.latency.p99_ms),
        check(query.info.latency.p99_ms <= targets.info_p99_ms),
    ]);
    if let (Some(goal), Some(ps)) = (targets.ps_p99_ms, &query.ps) {
        rows.push(vec![
            format!("ps -a p99 ({} containers)", ps.items),
            format!("≤ {goal:.0} ms"),
            cell_ms(ps.latency.p99_ms),
            check(ps.latency.p99_ms <= goal),
        ]);
    }
    if let Some(goal) = targets.filtered_p99_ms {
        for e in &query.filtered {
            rows.push(vec![
                format!("{} p99 ({} containers)", e.what, e.items),
                format!("≤ {goal:.0} ms"),
                cell_ms(e.latency.p99_ms),
                check(e.latency.count > 0 && e.latency.p99_ms <= goal),
            ]);
        }
    }
    if let Some(peak) = peak_rss {
        rows.push(vec![
            "manager peak RSS (largest)".into(),
            format!("≤ {}", mib(targets.peak_rss_bytes)),
            mib(peak),
            check(peak <= targets.peak_rss_bytes),
        ]);
    }
    markdown(
        &[
            ("target", false),
            ("goal", true),
            ("measured", true),
            ("", false),
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::Targets;

    #[test]
    fn targets_follow_the_size_of_the_run() {
        let first = Targets::of(1000, 1);
        assert_eq!(
            (first.placements_per_s, first.info_p99_ms, first.ps_p99_ms),
            (3000.0, 10.0, Some(100.0))
        );
        assert_eq!(Targets::of(1000, 3).placements_per_s, 5000.0);
        let c1m = Targets::c1m();
        assert_eq!(
            (
                c1m.place_within_s,
                c1m.filtered_p99_ms,
                c1m.run_p99_ms,
                c1m.peak_rss_bytes
            ),
            (Some(300.0), Some(100.0), None, 2 << 30)
        );
        assert!((c1m.placements_per_s - 3333.3).abs() < 0.1);
        let k8s = Targets::of(5000, 1);
        assert_eq!(
            (
                k8s.placements_per_s,
                k8s.info_p99_ms,
                k8s.ps_p99_ms,
                k8s.peak_rss_bytes
            ),
            (5000.0, 20.0, None, 1 << 30)
        );
    }
}
