//! Rescheduling after a node failure: how long until the containers of a
//! dead node run elsewhere.
//!
//! Steps (each a function of `scenario`): start the fleet (`hollow-engine
//! --nodes N`, node `i` on `127.0.0.1:P+i`, its admin endpoint on `P-1`),
//! ask the victim its name and ID, start the manager (one `swarm manage`
//! over the fleet with the given `--engine-refresh-min-interval`,
//! `--engine-refresh-max-interval` and `--engine-failure-retry`); wait until
//! `info` lists N `Healthy` nodes; optionally place `background` ordinary
//! containers over the fleet ([`place`]); start the policy containers (K
//! containers with `-e reschedule:on-node-failure` and the soft constraint
//! `-e constraint:node==~VICTIM`) and check (inspect: `Node.Name`) that they
//! all run on the victim. Then:
//!
//! - **kill**: `POST /hollow/kill?node=V` on the admin port; `t0` is when
//!   it was sent. Every [`RescheduleConfig::poll`] the bench asks the
//!   manager `GET /info` (until the victim's `└ Status` reads `Unhealthy`:
//!   the detection time) and `GET /containers/{name}/json` for each
//!   container not yet moved, until it answers with `Node.Name` other than
//!   the victim and `State.Running`: its move time. First, median and last
//!   ("all moved") are reported, from `t0`;
//! - **revive**: `POST /hollow/revive?node=V`; from then on, the victim's
//!   engine is asked directly (`GET /containers/json?all=1` filtered by the
//!   name prefix) until none of the containers is left there (the stale
//!   copies removed), and then the manager (`GET /containers/json?all=1`
//!   with the same filter) until it lists every name exactly once;
//! - **audit**: the fleet's container count (`GET /hollow/nodes`) must be
//!   the background containers plus K (no duplicate anywhere), and the
//!   manager's log lines about rescheduling are counted.
//!
//! Times are measured when an answer arrives, so they are late by up to
//! one polling round (the poll interval plus the round's requests). The
//! goal (all moved within 5 s of the kill) is printed as met or missed,
//! never turned into an error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use super::client::Client;
use super::place::{self, PlaceConfig, PlaceReport};
use super::rig::{check_binaries, FleetSpec, HollowFleet, Rig, RigConfig};
use super::standard::Machine;
use super::stats::{markdown, mib, ms, percentile};
use crate::manager::{Manager, ManagerConfig};
use crate::ports::try_free_port;
use crate::process::{Memory, Process};

/// The goal: every container runs elsewhere within this of the kill.
pub const GOAL: Duration = Duration::from_secs(5);
/// Manager log messages counted at the end.
const LOG_MESSAGES: [(&str, &str); 6] = [
    ("rescheduling", "node failed: rescheduling container"),
    ("rescheduled", "container rescheduled"),
    (
        "stale_removed",
        "stale copy of a rescheduled container removed",
    ),
    ("step_failed", "reschedule step failed"),
    ("left_in_place", "left in place"),
    ("engine_refresh_failed", "engine refresh failed"),
];

/// The scenario's parameters.
#[derive(Debug, Clone)]
pub struct RescheduleConfig {
    /// Hollow nodes.
    pub nodes: usize,
    /// Containers with the reschedule policy, all on the victim.
    pub containers: usize,
    /// Ordinary containers placed (and started) over the fleet first.
    pub background: usize,
    /// Concurrent clients placing the background containers.
    pub clients: usize,
    /// Index of the node to kill; default: `nodes / 2`.
    pub victim: Option<usize>,
    /// Image of every container.
    pub image: String,
    /// `--engine-refresh-min-interval` of the manager.
    pub refresh_min: Duration,
    /// `--engine-refresh-max-interval` of the manager.
    pub refresh_max: Duration,
    /// `--engine-failure-retry` of the manager.
    pub failure_retry: u32,
    /// Bound of the move phase and, again, of the cleanup phase.
    pub timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Pause between two polling rounds.
    pub poll: Duration,
    /// The binaries and how they start (`log_level` `info` or finer: the
    /// bench counts the manager's rescheduling lines).
    pub rig: RigConfig,
}

/// The manager's refresh flags.
#[derive(Debug, Clone, Serialize)]
pub struct ManagerFlags {
    /// `--engine-refresh-min-interval`, in seconds.
    pub engine_refresh_min_interval_s: f64,
    /// `--engine-refresh-max-interval`, in seconds.
    pub engine_refresh_max_interval_s: f64,
    /// `--engine-failure-retry`.
    pub engine_failure_retry: u32,
    /// The whole command line after `swarm`.
    pub args: Vec<String>,
}

/// Setup timings and counts.
#[derive(Debug, Clone, Serialize)]
pub struct RescheduleSetup {
    /// First node port.
    pub base_port: u16,
    /// Manager API address.
    pub manager: String,
    /// `hollow-engine` start → its first and last node answer.
    pub hollow_ready_ms: f64,
    /// Manager start → it answers `info`.
    pub manager_ready_ms: f64,
    /// Manager ready → `info` lists every node healthy.
    pub nodes_healthy_ms: f64,
    /// The background placement, if any.
    pub background: Option<PlaceReport>,
    /// Creating and starting the policy containers (one after another).
    pub policy_containers_ms: f64,
}

/// One policy container.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    /// Its name.
    pub name: String,
    /// Its ID on the victim.
    pub old_id: String,
    /// The copy's ID, once seen running elsewhere.
    pub new_id: Option<String>,
    /// The copy's node.
    pub node: Option<String>,
    /// Kill → first answer showing it running on another node.
    pub moved_ms: Option<f64>,
}

/// Everything the scenario measured (written as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct RescheduleReport {
    /// `reschedule`.
    pub bench: String,
    /// Where it ran.
    pub machine: Machine,
    /// Hollow nodes.
    pub nodes: usize,
    /// Policy containers.
    pub containers: usize,
    /// Background containers asked for.
    pub background: usize,
    /// The victim's name (`hollow-I`).
    pub victim: String,
    /// Its index in the fleet.
    pub victim_index: usize,
    /// The manager's refresh flags.
    pub manager_flags: ManagerFlags,
    /// Setup.
    pub setup: RescheduleSetup,
    /// Pause between polling rounds, in ms.
    pub poll_ms: f64,
    /// Kill → `info` shows the victim `Unhealthy`.
    pub detection_ms: Option<f64>,
    /// Every policy container.
    pub moved: Vec<Moved>,
    /// How many run elsewhere.
    pub moved_count: usize,
    /// Kill → the first one runs elsewhere.
    pub first_ms: Option<f64>,
    /// Kill → half of them run elsewhere (nearest rank, of the moved ones).
    pub p50_ms: Option<f64>,
    /// Kill → every one runs elsewhere (None if some never did).
    pub all_moved_ms: Option<f64>,
    /// Whether all moved within [`GOAL`].
    pub goal_met: bool,
    /// Revive → `info` shows the victim `Healthy` again.
    pub victim_healthy_ms: Option<f64>,
    /// Revive → the victim's engine holds none of the containers.
    pub stale_removed_ms: Option<f64>,
    /// Revive → (after the victim is clean) the manager lists every name once.
    pub listed_once_ms: Option<f64>,
    /// Containers of the whole fleet at the end (`GET /hollow/nodes`).
    pub fleet_containers: Option<usize>,
    /// What the fleet should hold: background placed plus the policy ones.
    pub fleet_expected: usize,
    /// The manager's log lines by kind (see `LOG_MESSAGES`).
    pub log_lines: Vec<(String, usize)>,
    /// The manager's memory before the kill.
    pub manager_before_kill: Option<Memory>,
    /// The manager's memory at the end (`peak_rss_bytes`: the run's peak).
    pub manager_at_end: Option<Memory>,
    /// The manager's CPU seconds from the kill to the end of the cleanup.
    pub manager_cpu_s: Option<f64>,
    /// What went wrong with the feature (never moved, duplicates, stale
    /// copies left, ...); empty when all went well.
    pub problems: Vec<String>,
    /// The whole run.
    pub wall_ms: f64,
}

/// Runs the scenario; every process it started is stopped when it returns
/// (or when the future is dropped).
pub async fn run(config: &RescheduleConfig) -> anyhow::Result<RescheduleReport> {
    check_binaries(&[
        ("hollow-engine", &config.rig.hollow_bin),
        ("swarm", &config.rig.swarm_bin),
    ])?;
    if config.nodes < 2 {
        bail!("--nodes must be at least 2 (one to kill, one to move to)");
    }
    if config.containers == 0 {
        bail!("--containers must be at least 1");
    }
    let victim = config.victim.unwrap_or(config.nodes / 2);
    if victim >= config.nodes {
        bail!(
            "--victim {victim}: the fleet has nodes 0 to {}",
            config.nodes - 1
        );
    }
    let mut rig = Rig::new("swarm-bench-reschedule", config.rig.keep)?;
    let outcome = scenario(config, victim, &mut rig).await;
    rig.finish("reschedule", outcome.is_err(), 30);
    outcome
}

/// Prints a progress line to stderr if asked to.
fn progress(config: &RescheduleConfig, line: String) {
    if config.rig.progress {
        eprintln!("reschedule: {line}");
    }
}

/// `GET path` answered 200 with JSON.
async fn get_json(client: &mut Client, path: &str) -> Result<Value, String> {
    let answer = client.get(path).await?;
    if answer.status != 200 {
        return Err(format!("GET {path}: {}", answer.describe()));
    }
    answer
        .json()
        .ok_or_else(|| format!("GET {path}: invalid JSON"))
}

/// `POST path` answered with a 2xx (or 304).
async fn post_ok(client: &mut Client, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let answer = client.post(path, body).await.map_err(anyhow::Error::msg)?;
    if !(200..300).contains(&answer.status) && answer.status != 304 {
        bail!("POST {path}: {}", answer.describe());
    }
    Ok(answer.json().unwrap_or(Value::Null))
}

/// The `└ Status` `info` gives the node with engine ID `id`.
pub fn node_status(info: &Value, id: &str) -> Option<String> {
    let pairs = info.get("SystemStatus")?.as_array()?;
    let mut found = false;
    for pair in pairs {
        let key = pair.get(0).and_then(Value::as_str).unwrap_or("").trim();
        let value = pair.get(1).and_then(Value::as_str).unwrap_or("").trim();
        if key == "└ ID" {
            found = value == id;
        } else if found && key == "└ Status" {
            return Some(value.to_string());
        }
    }
    None
}

/// The names (without the leading `/` or `/node/`) in a container list.
fn listed_names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("Names")?.as_array()?.first()?.as_str())
        .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
        .collect()
}

/// `/containers/json?all=1` filtered by a name prefix.
fn list_path(prefix: &str) -> String {
    let filters = serde_json::json!({ "name": [prefix] }).to_string();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("all", "1")
        .append_pair("filters", &filters)
        .finish();
    format!("/containers/json?{query}")
}

/// Node name, ID and whether it runs, from an inspect answer.
fn placement(inspect: &Value) -> (Option<String>, Option<String>, bool) {
    (
        inspect
            .pointer("/Node/Name")
            .and_then(Value::as_str)
            .map(str::to_string),
        inspect
            .get("Id")
            .and_then(Value::as_str)
            .map(str::to_string),
        inspect.pointer("/State/Running").and_then(Value::as_bool) == Some(true),
    )
}

/// The steps, on a rig that the caller stops.
async fn scenario(
    config: &RescheduleConfig,
    victim: usize,
    rig: &mut Rig,
) -> anyhow::Result<RescheduleReport> {
    let t_run = Instant::now();
    let fleet = start_fleet(config, rig).await?;
    let victim = Victim::ask(&fleet, victim, config.request_timeout).await?;
    let manager = start_manager(config, rig, &fleet).await?;
    let nodes_healthy = wait_healthy(config, rig, &fleet, &manager).await?;
    let background = place_background(config, rig, &manager.api).await?;
    let mut run = Reschedule::new(config, rig, &fleet, victim, &manager.api)?;
    let (mut moved, policy_containers) = run.start_policy_containers().await?;
    let before_kill = ManagerSample::take(run.rig)?;
    let kill = run.kill(&mut moved).await?;
    let moves = Moves::of(&moved);
    progress(
        config,
        format!(
            "{} of {} moved; all moved: {}",
            moves.count,
            moved.len(),
            moves
                .all_ms
                .map_or("never".into(), |v| format!("{v:.0} ms"))
        ),
    );
    let revival = run.revive().await?;
    let at_end = ManagerSample::take(run.rig)?;
    let background_placed = background.as_ref().map_or(0, |b| b.placed);
    let audit = run
        .audit(&manager, background_placed, &kill, &revival, &moved)
        .await?;
    let Reschedule { victim, .. } = run;
    Ok(RescheduleReport {
        bench: "reschedule".into(),
        machine: Machine::detect(),
        nodes: config.nodes,
        containers: moved.len(),
        background: config.background,
        victim: victim.name,
        victim_index: victim.index,
        manager_flags: ManagerFlags {
            engine_refresh_min_interval_s: config.refresh_min.as_secs_f64(),
            engine_refresh_max_interval_s: config.refresh_max.as_secs_f64(),
            engine_failure_retry: config.failure_retry,
            args: manager.args,
        },
        setup: RescheduleSetup {
            base_port: fleet.base,
            manager: manager.api,
            hollow_ready_ms: ms(fleet.ready),
            manager_ready_ms: ms(manager.ready),
            nodes_healthy_ms: ms(nodes_healthy),
            background,
            policy_containers_ms: ms(policy_containers),
        },
        poll_ms: ms(config.poll),
        detection_ms: kill.detection.map(ms),
        moved,
        moved_count: moves.count,
        first_ms: moves.first_ms,
        p50_ms: moves.p50_ms,
        all_moved_ms: moves.all_ms,
        goal_met: moves.all_ms.is_some_and(|v| v <= ms(GOAL)),
        victim_healthy_ms: revival.victim_healthy.map(ms),
        stale_removed_ms: revival.stale_removed.map(ms),
        listed_once_ms: revival.listed_once.map(ms),
        fleet_containers: audit.fleet_containers,
        fleet_expected: audit.fleet_expected,
        log_lines: audit.log_lines,
        manager_before_kill: before_kill.memory,
        manager_at_end: at_end.memory,
        manager_cpu_s: match (before_kill.cpu, at_end.cpu) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        },
        problems: audit.problems,
        wall_ms: ms(t_run.elapsed()),
    })
}

/// Step: the fleet with its admin endpoint, until its first and last node
/// answer.
async fn start_fleet(config: &RescheduleConfig, rig: &mut Rig) -> anyhow::Result<HollowFleet> {
    let spec = FleetSpec {
        bin: &config.rig.hollow_bin,
        nodes: config.nodes,
        host: "127.0.0.1",
        base_port: config.rig.base_port,
        admin: true,
        args: &config.rig.hollow_args,
        ready_timeout: config.rig.ready_timeout,
        request_timeout: config.request_timeout,
        processes: 1,
    };
    rig.start_fleet(&spec, |line| progress(config, line)).await
}

/// The node that is killed.
struct Victim {
    /// Its index in the fleet.
    index: usize,
    /// Its name (`hollow-I`).
    name: String,
    /// Its engine ID.
    id: String,
    /// Its address.
    addr: String,
    /// A client of its engine.
    client: Client,
}

impl Victim {
    /// Step: node `index`'s name and engine ID, from its `info`.
    async fn ask(fleet: &HollowFleet, index: usize, timeout: Duration) -> anyhow::Result<Victim> {
        let addr = fleet.addr(index);
        let mut client = Client::new(&addr, timeout).map_err(anyhow::Error::msg)?;
        let info = get_json(&mut client, "/info")
            .await
            .map_err(anyhow::Error::msg)?;
        let field = |name: &str| {
            info.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("the victim's info has no {name}"))
        };
        Ok(Victim {
            index,
            name: field("Name")?,
            id: field("ID")?,
            addr,
            client,
        })
    }
}

/// The manager as started.
struct StartedManager {
    /// Its API address.
    api: String,
    /// Its command line after `swarm`.
    args: Vec<String>,
    /// Its log file.
    log: PathBuf,
    /// Start → it answers `info`.
    ready: Duration,
}

/// Step: one `swarm manage` over the fleet with the configured refresh
/// flags, until it answers `info`.
async fn start_manager(
    config: &RescheduleConfig,
    rig: &mut Rig,
    fleet: &HollowFleet,
) -> anyhow::Result<StartedManager> {
    let mut args: Vec<String> = vec![
        "--engine-refresh-min-interval".into(),
        humantime::format_duration(config.refresh_min).to_string(),
        "--engine-refresh-max-interval".into(),
        humantime::format_duration(config.refresh_max).to_string(),
        "--engine-failure-retry".into(),
        config.failure_retry.to_string(),
    ];
    args.extend(config.rig.manager_args.iter().cloned());
    args.push(fleet.discovery());
    let dir = rig.dir();
    let manager = rig.start_manager(ManagerConfig {
        name: "m1".into(),
        bin: Some(config.rig.swarm_bin.clone()),
        addr: Some(format!("127.0.0.1:{}", try_free_port()?)),
        raft_addr: Some(format!("127.0.0.1:{}", try_free_port()?)),
        log_level: Some(config.rig.log_level.clone()),
        args,
        dir: Some(dir),
        ..ManagerConfig::default()
    })?;
    let started = StartedManager {
        api: manager.addr.clone(),
        args: manager.args().to_vec(),
        log: manager.log_path().to_path_buf(),
        ready: Duration::ZERO,
    };
    progress(
        config,
        format!(
            "manager (pid {}) on {}: swarm {}",
            manager.pid().unwrap_or(0),
            started.api,
            started.args.join(" ")
        ),
    );
    let t = Instant::now();
    rig.wait_manager_ready(
        &started.api,
        None,
        config.rig.ready_timeout,
        config.request_timeout,
    )
    .await?;
    Ok(StartedManager {
        ready: t.elapsed(),
        ..started
    })
}

/// Step: until `info` lists every node healthy; how long it took.
async fn wait_healthy(
    config: &RescheduleConfig,
    rig: &mut Rig,
    fleet: &HollowFleet,
    manager: &StartedManager,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    rig.wait_healthy(
        &manager.api,
        fleet.nodes,
        config.rig.ready_timeout,
        config.request_timeout,
        None,
    )
    .await?;
    let nodes_healthy = started.elapsed();
    progress(
        config,
        format!(
            "{} nodes healthy after {:.1} s (fleet ready in {:.1} s, manager in {:.1} s)",
            fleet.nodes,
            nodes_healthy.as_secs_f64(),
            fleet.ready.as_secs_f64(),
            manager.ready.as_secs_f64()
        ),
    );
    Ok(nodes_healthy)
}

/// Step: the ordinary containers over the fleet, if any are asked for.
async fn place_background(
    config: &RescheduleConfig,
    rig: &mut Rig,
    api: &str,
) -> anyhow::Result<Option<PlaceReport>> {
    if config.background == 0 {
        return Ok(None);
    }
    progress(
        config,
        format!(
            "placing {} background containers with {} clients",
            config.background, config.clients
        ),
    );
    let report = place::run(&PlaceConfig {
        managers: vec![format!("tcp://{api}")],
        containers: config.background,
        clients: config.clients.max(1),
        start: true,
        image: config.image.clone(),
        cmd: vec!["sleep".into(), "100000".into()],
        prefix: format!("bg{}", std::process::id()),
        groups: None,
        timeout: config.request_timeout,
        progress: config.rig.progress,
        stall_timeout: Duration::from_secs(60),
    })
    .await?;
    rig.check()?;
    progress(
        config,
        format!(
            "placed {} background containers ({} failed) in {:.1} s",
            report.placed,
            report.failures,
            report.wall_ms / 1000.0
        ),
    );
    Ok(Some(report))
}

/// The manager's memory and CPU time at one moment.
struct ManagerSample {
    memory: Option<Memory>,
    cpu: Option<Duration>,
}

impl ManagerSample {
    /// The manager's figures now (an error if it has exited).
    fn take(rig: &mut Rig) -> anyhow::Result<ManagerSample> {
        rig.check()?;
        let process = rig.managers.first().map(Manager::process);
        Ok(ManagerSample {
            memory: process.and_then(Process::memory),
            cpu: process.and_then(Process::cpu_time),
        })
    }
}

/// What the kill step saw.
struct Kill {
    /// Kill → `info` shows the victim `Unhealthy`.
    detection: Option<Duration>,
    /// The last failed request, if any.
    last_error: Option<String>,
}

/// The move times of the policy containers.
struct Moves {
    /// How many run elsewhere.
    count: usize,
    /// Kill → the first one runs elsewhere.
    first_ms: Option<f64>,
    /// Kill → half of them (nearest rank, of the moved ones).
    p50_ms: Option<f64>,
    /// Kill → every one (None if some never did).
    all_ms: Option<f64>,
}

impl Moves {
    /// The figures of `moved`.
    fn of(moved: &[Moved]) -> Moves {
        let mut times: Vec<Duration> = moved
            .iter()
            .filter_map(|m| m.moved_ms)
            .map(|v| Duration::from_secs_f64(v / 1000.0))
            .collect();
        times.sort_unstable();
        Moves {
            count: times.len(),
            first_ms: times.first().map(|d| ms(*d)),
            p50_ms: (!times.is_empty()).then(|| percentile(&times, 50.0)),
            all_ms: (times.len() == moved.len()).then(|| percentile(&times, 100.0)),
        }
    }
}

/// What the revive step saw, from the revival on.
struct Revival {
    /// → `info` shows the victim `Healthy` again.
    victim_healthy: Option<Duration>,
    /// → the victim's engine holds none of the containers.
    stale_removed: Option<Duration>,
    /// → (after the victim is clean) the manager lists every name once.
    listed_once: Option<Duration>,
    /// The manager's last listing of the names.
    last_listing: Vec<String>,
    /// The names the victim still held at its last listing.
    victim_left: Vec<String>,
}

/// What the audit found.
struct Audit {
    fleet_containers: Option<usize>,
    fleet_expected: usize,
    log_lines: Vec<(String, usize)>,
    problems: Vec<String>,
}

/// What the steps from the policy containers on share.
struct Reschedule<'a> {
    config: &'a RescheduleConfig,
    rig: &'a mut Rig,
    victim: Victim,
    /// The policy containers' name prefix, and their names.
    prefix: String,
    names: Vec<String>,
    /// Kept-alive clients: the manager (creates, inspects, lists), the
    /// manager again for `info`, the fleet's admin endpoint.
    manager: Client,
    info: Client,
    admin: Client,
}

impl<'a> Reschedule<'a> {
    /// The shared state, once the manager at `api` runs.
    fn new(
        config: &'a RescheduleConfig,
        rig: &'a mut Rig,
        fleet: &HollowFleet,
        victim: Victim,
        api: &str,
    ) -> anyhow::Result<Reschedule<'a>> {
        let rt = config.request_timeout;
        let prefix = format!("resched{}-", std::process::id());
        let names = (0..config.containers)
            .map(|i| format!("{prefix}{i}"))
            .collect();
        Ok(Reschedule {
            config,
            rig,
            prefix,
            names,
            manager: Client::manager(api, rt).map_err(anyhow::Error::msg)?,
            info: Client::manager(api, rt).map_err(anyhow::Error::msg)?,
            admin: Client::new(&fleet.admin(), rt).map_err(anyhow::Error::msg)?,
            victim,
        })
    }

    fn progress(&self, line: String) {
        progress(self.config, line);
    }

    /// Step: create and start the policy containers one after another
    /// (`-e reschedule:on-node-failure`, soft constraint `node==~VICTIM`)
    /// and check they all run on the victim.
    async fn start_policy_containers(&mut self) -> anyhow::Result<(Vec<Moved>, Duration)> {
        let victim = self.victim.name.clone();
        let started = Instant::now();
        let body = serde_json::json!({
            "Image": self.config.image,
            "Cmd": ["sleep", "100000"],
            "Env": [
                "reschedule:on-node-failure",
                format!("constraint:node==~{victim}"),
            ],
        });
        for name in &self.names {
            let path = format!("/containers/create?name={name}");
            let created = post_ok(&mut self.manager, &path, Some(&body)).await?;
            let id = created
                .get("Id")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("create {name}: no Id in {created}"))?
                .to_string();
            post_ok(&mut self.manager, &format!("/containers/{id}/start"), None).await?;
        }
        let elapsed = started.elapsed();
        let mut moved = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let inspect = get_json(&mut self.manager, &format!("/containers/{name}/json"))
                .await
                .map_err(anyhow::Error::msg)?;
            let (node, id, running) = placement(&inspect);
            if node.as_deref() != Some(victim.as_str()) || !running {
                bail!(
                    "{name} should run on {victim} (soft constraint node==~{victim}) but is on {node:?}, running: {running}"
                );
            }
            moved.push(Moved {
                name: name.clone(),
                old_id: id.unwrap_or_default(),
                new_id: None,
                node: None,
                moved_ms: None,
            });
        }
        self.progress(format!(
            "{} containers with reschedule:on-node-failure run on {victim} (created and started in {:.1} s)",
            self.names.len(),
            elapsed.as_secs_f64()
        ));
        Ok((moved, elapsed))
    }

    /// Step: `POST /hollow/kill` the victim (`t0`), then every poll ask
    /// `info` until the victim reads `Unhealthy` and inspect each container
    /// not yet moved until it runs on another node (its move time in
    /// `moved`); gives up after the timeout.
    async fn kill(&mut self, moved: &mut [Moved]) -> anyhow::Result<Kill> {
        let config = self.config;
        let (victim, index) = (self.victim.name.clone(), self.victim.index);
        self.progress(format!("killing {victim} ({})", self.victim.addr));
        let t0 = Instant::now();
        post_ok(&mut self.admin, &format!("/hollow/kill?node={index}"), None).await?;
        let mut detection: Option<Duration> = None;
        let mut pending: Vec<usize> = (0..moved.len()).collect();
        let mut last_error: Option<String> = None;
        loop {
            let round = Instant::now();
            if detection.is_none() {
                match get_json(&mut self.info, "/info").await {
                    Ok(info) => {
                        if node_status(&info, &self.victim.id).as_deref() == Some("Unhealthy") {
                            detection = Some(t0.elapsed());
                            self.progress(format!(
                                "{victim} Unhealthy after {:.0} ms",
                                ms(t0.elapsed())
                            ));
                        }
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            let mut still = Vec::with_capacity(pending.len());
            for i in pending {
                let m = &mut moved[i];
                let path = format!("/containers/{}/json", m.name);
                match get_json(&mut self.manager, &path).await {
                    Ok(inspect) => {
                        let (node, id, running) = placement(&inspect);
                        if running && node.is_some() && node.as_deref() != Some(victim.as_str()) {
                            m.moved_ms = Some(ms(t0.elapsed()));
                            m.new_id = id;
                            m.node = node;
                        } else {
                            still.push(i);
                        }
                    }
                    Err(e) => {
                        last_error = Some(e);
                        still.push(i);
                    }
                }
            }
            pending = still;
            if pending.is_empty() && detection.is_some() {
                break;
            }
            if t0.elapsed() > config.timeout {
                self.progress(format!(
                    "gave up after {:?}: {} of {} not moved{}; last error: {}",
                    config.timeout,
                    pending.len(),
                    moved.len(),
                    if detection.is_none() {
                        ", victim never Unhealthy"
                    } else {
                        ""
                    },
                    last_error.as_deref().unwrap_or("none")
                ));
                break;
            }
            self.rig.check()?;
            tokio::time::sleep(config.poll.saturating_sub(round.elapsed())).await;
        }
        Ok(Kill {
            detection,
            last_error,
        })
    }

    /// Step: `POST /hollow/revive` the victim, then every poll ask `info`
    /// until it reads `Healthy`, the victim's engine until it holds none of
    /// the containers (the stale copies removed), and then the manager
    /// until it lists every name exactly once; gives up after the timeout.
    async fn revive(&mut self) -> anyhow::Result<Revival> {
        let config = self.config;
        let victim = self.victim.name.clone();
        self.progress(format!("reviving {victim}"));
        let tr = Instant::now();
        let path = format!("/hollow/revive?node={}", self.victim.index);
        post_ok(&mut self.admin, &path, None).await?;
        let list = list_path(&self.prefix);
        let mut expected = self.names.clone();
        expected.sort();
        let mut r = Revival {
            victim_healthy: None,
            stale_removed: None,
            listed_once: None,
            last_listing: Vec::new(),
            victim_left: Vec::new(),
        };
        loop {
            let round = Instant::now();
            if r.victim_healthy.is_none() {
                if let Ok(info) = get_json(&mut self.info, "/info").await {
                    if node_status(&info, &self.victim.id).as_deref() == Some("Healthy") {
                        r.victim_healthy = Some(tr.elapsed());
                    }
                }
            }
            if r.stale_removed.is_none() {
                if let Ok(listing) = get_json(&mut self.victim.client, &list).await {
                    r.victim_left = self.ours(&listing);
                    if r.victim_left.is_empty() {
                        r.stale_removed = Some(tr.elapsed());
                    }
                }
            }
            if r.stale_removed.is_some() && r.listed_once.is_none() {
                if let Ok(listing) = get_json(&mut self.manager, &list).await {
                    let mut listing = self.ours(&listing);
                    listing.sort();
                    if listing == expected {
                        r.listed_once = Some(tr.elapsed());
                    }
                    r.last_listing = listing;
                }
            }
            if r.victim_healthy.is_some() && r.listed_once.is_some() {
                break;
            }
            if tr.elapsed() > config.timeout {
                self.progress(format!(
                    "cleanup: gave up after {:?} (victim healthy: {}, stale copies left on it: {}, manager lists: {})",
                    config.timeout,
                    r.victim_healthy.is_some(),
                    r.victim_left.len(),
                    r.last_listing.len()
                ));
                break;
            }
            self.rig.check()?;
            tokio::time::sleep(config.poll.saturating_sub(round.elapsed())).await;
        }
        self.progress(format!(
            "stale copies removed {}; every name listed once {}",
            r.stale_removed
                .map_or("never".into(), |d| format!("after {:.0} ms", ms(d))),
            r.listed_once
                .map_or("never".into(), |d| format!("after {:.0} ms", ms(d)))
        ));
        Ok(r)
    }

    /// The names of a listing that are policy containers.
    fn ours(&self, listing: &Value) -> Vec<String> {
        listed_names(listing)
            .into_iter()
            .filter(|n| n.starts_with(&self.prefix))
            .collect()
    }

    /// Step: the fleet's container count (`GET /hollow/nodes`: no
    /// duplicate anywhere), the manager's log lines about rescheduling, and
    /// what went wrong with the feature.
    async fn audit(
        &mut self,
        manager: &StartedManager,
        background_placed: usize,
        kill: &Kill,
        revival: &Revival,
        moved: &[Moved],
    ) -> anyhow::Result<Audit> {
        let config = self.config;
        let victim = &self.victim.name;
        let fleet_containers = match get_json(&mut self.admin, "/hollow/nodes").await {
            Ok(nodes) => nodes.as_array().map(|list| {
                list.iter()
                    .filter_map(|n| n.get("Containers").and_then(Value::as_u64))
                    .sum::<u64>() as usize
            }),
            Err(_) => None,
        };
        let fleet_expected = background_placed + self.names.len();
        self.rig.check()?;
        let log = std::fs::read_to_string(&manager.log).unwrap_or_default();
        let log_lines: Vec<(String, usize)> = LOG_MESSAGES
            .iter()
            .map(|(key, text)| {
                (
                    key.to_string(),
                    log.lines().filter(|l| l.contains(text)).count(),
                )
            })
            .collect();

        let mut problems = Vec::new();
        if kill.detection.is_none() {
            problems.push(format!(
                "{victim} never shown Unhealthy within {:?}",
                config.timeout
            ));
        }
        let not_moved: Vec<&str> = moved
            .iter()
            .filter(|m| m.moved_ms.is_none())
            .map(|m| m.name.as_str())
            .collect();
        if !not_moved.is_empty() {
            problems.push(format!(
                "{} of {} never ran elsewhere within {:?}: {}{}",
                not_moved.len(),
                moved.len(),
                config.timeout,
                not_moved.join(", "),
                kill.last_error
                    .as_deref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            ));
        }
        if revival.stale_removed.is_none() {
            problems.push(format!(
                "stale copies left on {victim} {:?} after its revival: {}",
                config.timeout,
                revival.victim_left.join(", ")
            ));
        } else if revival.listed_once.is_none() {
            problems.push(format!(
                "the manager never listed each name exactly once within {:?}: {} entries, {:?}",
                config.timeout,
                revival.last_listing.len(),
                revival.last_listing
            ));
        }
        match fleet_containers {
            Some(c) if c != fleet_expected => problems.push(format!(
                "the fleet holds {c} containers, expected {fleet_expected} ({background_placed} background + {})",
                self.names.len()
            )),
            None => problems.push("GET /hollow/nodes failed".into()),
            _ => {}
        }
        Ok(Audit {
            fleet_containers,
            fleet_expected,
            log_lines,
            problems,
        })
    }
}

/// A time in ms as a table cell (`-` when there is none).
fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

impl RescheduleReport {
    /// The report as text.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "reschedule: {} nodes, {} containers with reschedule:on-node-failure on {} (+{} background); {}\n",
            self.nodes,
            self.containers,
            self.victim,
            self.setup.background.as_ref().map_or(0, |b| b.placed),
            self.machine.describe()
        ));
        out.push_str(&format!(
            "manager: --engine-refresh-min-interval {} --engine-refresh-max-interval {} --engine-failure-retry {}; polling every {:.0} ms\n",
            humantime::format_duration(Duration::from_secs_f64(
                self.manager_flags.engine_refresh_min_interval_s
            )),
            humantime::format_duration(Duration::from_secs_f64(
                self.manager_flags.engine_refresh_max_interval_s
            )),
            self.manager_flags.engine_failure_retry,
            self.poll_ms
        ));
        out.push_str(&format!(
            "setup: fleet ready in {:.1} s, manager in {:.1} s, nodes healthy after {:.1} s; whole run {:.1} s\n\n",
            self.setup.hollow_ready_ms / 1000.0,
            self.setup.manager_ready_ms / 1000.0,
            self.setup.nodes_healthy_ms / 1000.0,
            self.wall_ms / 1000.0
        ));
        let rows = vec![
            vec![
                "kill → victim Unhealthy (detection)".into(),
                cell(self.detection_ms),
            ],
            vec![
                "kill → first container runs elsewhere".into(),
                cell(self.first_ms),
            ],
            vec![
                "kill → half of them run elsewhere (p50)".into(),
                cell(self.p50_ms),
            ],
            vec![
                format!(
                    "kill → all moved ({} of {})",
                    self.moved_count, self.containers
                ),
                cell(self.all_moved_ms),
            ],
            vec![
                "revive → victim Healthy again".into(),
                cell(self.victim_healthy_ms),
            ],
            vec![
                "revive → stale copies removed from the victim".into(),
                cell(self.stale_removed_ms),
            ],
            vec![
                "revive → every name listed once by the manager".into(),
                cell(self.listed_once_ms),
            ],
        ];
        out.push_str(&markdown(&[("step", false), ("time", true)], &rows));
        out.push('\n');
        let mem = |m: Option<Memory>, peak: bool| {
            m.map_or("-".into(), |m| {
                mib(if peak { m.peak_rss_bytes } else { m.rss_bytes })
            })
        };
        out.push_str(&format!(
            "manager: RSS {} before the kill, {} at the end, peak {}; {} CPU from the kill to the end\n",
            mem(self.manager_before_kill, false),
            mem(self.manager_at_end, false),
            mem(self.manager_at_end, true),
            self.manager_cpu_s
                .map_or("-".into(), |s| format!("{s:.1} s"))
        ));
        out.push_str(&format!(
            "fleet: {} containers at the end (expected {}); manager log: {}\n\n",
            self.fleet_containers.map_or("-".into(), |c| c.to_string()),
            self.fleet_expected,
            self.log_lines
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&markdown(
            &[
                ("target", false),
                ("goal", true),
                ("measured", true),
                ("", false),
            ],
            &[vec![
                format!("all {} moved after the kill", self.containers),
                "≤ 5 s".into(),
                cell(self.all_moved_ms),
                if self.goal_met { "met" } else { "missed" }.into(),
            ]],
        ));
        if !self.problems.is_empty() {
            out.push_str("\nPROBLEMS:\n");
            for p in &self.problems {
                out.push_str(&format!("  - {p}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_a_node_by_id() {
        let info = serde_json::json!({
            "SystemStatus": [
                ["Nodes", "2"],
                [" hollow-0", "127.0.0.1:1"],
                ["  └ ID", "A"],
                ["  └ Status", "Healthy"],
                [" hollow-1", "127.0.0.1:2"],
                ["  └ ID", "B"],
                ["  └ Status", "Unhealthy"],
            ]
        });
        assert_eq!(node_status(&info, "B").as_deref(), Some("Unhealthy"));
        assert_eq!(node_status(&info, "A").as_deref(), Some("Healthy"));
        assert_eq!(node_status(&info, "C"), None);
    }

    #[test]
    fn names_of_a_listing() {
        let list = serde_json::json!([
            {"Names": ["/hollow-3/r-1"]},
            {"Names": ["/r-2"]},
            {"Names": []},
        ]);
        assert_eq!(listed_names(&list), vec!["r-1", "r-2"]);
    }
}
