//! The chaos runner (`swarm-bench chaos`): a fleet of engines
//! (`ChaosFleet`: hollow nodes, or real engines, see [`super::real`]) and a Raft cluster of managers, each on a host of its
//! own ([`ChaosNet`]) unless told otherwise, clients driving a seeded
//! workload of creates, starts, stops, renames and removes through random
//! managers and HAProxy ([`Vip`]), a nemesis injecting process, network
//! and engine faults ([`Fault`]) on a seeded schedule, and a poller of
//! every manager's `/_swarm/state`. Everything is recorded in a
//! [`History`]; once the faults healed, every node answered healthy and
//! the managers converged (or a bounded wait ran out), the engines'
//! containers and the managers' states are read into a [`Final`] and
//! [`check_recording`] judges the run.
//!
//! How an answer counts (see `super::history`): 2xx and 304 are `Ok`; a
//! 4xx, or a 500 carrying the scheduler's refusal
//! ([`swarm::scheduler::NO_RESOURCES`], [`swarm::scheduler::NO_NODE`]), is
//! `Failed`; anything else (other
//! 5xx, a timeout, a connection error) is `Unknown`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::checker::{check_recording, Final, Report};
use super::fleet::{wait_ping, ChaosFleet};
use super::history::{FaultKind, History, OpKind, Outcome, Recording};
use super::net::ChaosNet;
use super::settle::settle;
use super::vip::Vip;
use crate::bench::client::{message, Answer, Client};
use crate::bench::rig::{check_binaries, Rig, RigConfig};
pub use crate::rng::Rng;

/// Timeout of one control request (readiness, polling, final reads).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the poller asks every manager for its state.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long a restarted or resumed manager gets to answer `/_ping`.
const BACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an engine outage lasts: the managers of a chaos run notice a
/// dead node within about 3 s ([`MANAGER_ARGS`]).
const OUTAGE: Duration = Duration::from_secs(8);
/// When, into an outage, a second node is killed.
const OUTAGE_SECOND_AT: Duration = Duration::from_secs(4);
/// How long the second node is down.
const OUTAGE_SECOND: Duration = Duration::from_secs(2);
/// The managers' engine refresh settings in a chaos run: a node is
/// refreshed every 2-4 s and failed after 2 failures in a row (the
/// defaults, 30-60 s and 3, would make an outage minutes long).
const MANAGER_ARGS: [&str; 6] = [
    "--engine-refresh-min-interval",
    "2s",
    "--engine-refresh-max-interval",
    "4s",
    "--engine-failure-retry",
    "2",
];
/// The CPU reservations of creates that reserve CPUs by `NanoCpus`, in
/// milli-CPUs, on hollow nodes (the others reserve one CPU by `CpuShares`).
const HOLLOW_CPUS: [u64; 3] = [250, 500, 1000];
/// The same on real engines, which have the machine's few CPUs for all
/// their containers (the others reserve no CPU), so that a reasonable
/// share of creates fits.
const REAL_CPUS: [u64; 3] = [50, 100, 200];
/// The host ports creates publish from: few, so that they conflict.
const PORT_POOL: [u16; 4] = [20_001, 20_002, 20_003, 20_004];
/// The pause of a client after an ambiguous answer (none, or a 5xx) or a
/// scheduler's refusal.
const BACKOFF: Duration = Duration::from_millis(50);
/// "No manager ID" in the leader slot the poller keeps.
const NO_LEADER: usize = usize::MAX;

/// The runner's parameters.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Managers (one Raft cluster).
    pub managers: usize,
    /// Hollow nodes (unused with real engines).
    pub nodes: usize,
    /// Real engines instead of hollow nodes (see [`super::real`]); 0 for
    /// hollow nodes.
    pub engines: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// How long the workload and the faults last.
    pub duration: Duration,
    /// Seed of the workload and the fault schedule.
    pub seed: u64,
    /// One fault begins this often (and heals before the next).
    pub fault_every: Duration,
    /// Image of the containers (the hollow nodes hold `busybox:local`).
    pub image: String,
    /// Memory every hollow node reports, in bytes.
    pub node_memory: u64,
    /// CPUs every hollow node reports.
    pub node_cpus: u64,
    /// The managers' overcommit (swarm's default: 0.05).
    pub overcommit: f64,
    /// How long one workload request may take.
    pub request_timeout: Duration,
    /// Bound of the wait for the managers to converge after healing.
    pub converge_timeout: Duration,
    /// Whether the nemesis also stops nodes (hollow or real) for a while.
    pub engine_faults: bool,
    /// Whether every manager runs on a host of its own (a network namespace
    /// of a [`ChaosNet`], which needs root), so that the nemesis can also
    /// cut, drop, lose and delay their traffic.
    pub net: bool,
    /// The faults to draw from, evenly; empty: the usual mix
    /// ([`Fault::of_roll`]).
    pub only: Vec<Fault>,
    /// Whether part of the workload goes through HAProxy in front of the
    /// managers ([`super::vip::Vip`]), recorded as manager `vip`.
    pub vip: bool,
    /// The binaries and how they start.
    pub rig: RigConfig,
}

/// A fault the nemesis can inject and heal. The network faults need
/// [`ChaosConfig::net`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL one manager; restart it (same data dir, same arguments).
    Kill,
    /// SIGSTOP one manager (the leader more often than not); SIGCONT.
    Pause,
    /// SIGKILL two managers at once; restart both.
    KillTwo,
    /// A node stops answering and comes back: a hollow node by itself
    /// (`POST /hollow/kill?for=`), a real engine SIGKILLed and restarted.
    EngineKill,
    /// A node down long enough to be declared failed and its
    /// `reschedule:on-node-failure` containers moved, and another one
    /// killed for a moment while they move.
    EngineOutage,
    /// The leader cut from every other manager (both ways).
    PartitionLeader,
    /// The managers split: each alone with three, two against three with
    /// five (two against the rest from five on).
    Split,
    /// Packets from one manager to another lost, the other way delivered:
    /// the leader deaf to a follower, or a follower deaf to the leader.
    OneWay,
    /// The link between the leader and a follower cut and restored every
    /// few hundred milliseconds.
    Flap,
    /// A share of the packets between every two managers lost.
    Loss,
    /// Every packet between managers held for tens of milliseconds.
    Delay,
    /// The leader cut from its clients and the engines, still reaching the
    /// other managers.
    CutLeader,
}

impl Fault {
    /// Every fault, in the order of [`Fault::name`]s listed by `--only`.
    pub const ALL: [Fault; 12] = [
        Fault::Kill,
        Fault::Pause,
        Fault::KillTwo,
        Fault::EngineKill,
        Fault::EngineOutage,
        Fault::PartitionLeader,
        Fault::Split,
        Fault::OneWay,
        Fault::Flap,
        Fault::Loss,
        Fault::Delay,
        Fault::CutLeader,
    ];

    /// Its name on the command line (`--only kill,split`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::KillTwo => "kill-two",
            Fault::EngineKill => "engine-kill",
            Fault::EngineOutage => "engine-outage",
            Fault::PartitionLeader => "partition-leader",
            Fault::Split => "split",
            Fault::OneWay => "one-way",
            Fault::Flap => "flap",
            Fault::Loss => "loss",
            Fault::Delay => "delay",
            Fault::CutLeader => "cut-leader",
        }
    }

    /// The fault named `name` (see [`Fault::name`]).
    pub fn parse(name: &str) -> Result<Fault, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault {name:?}: one of {}", names.join(", "))
            })
    }

    /// How the history names it.
    pub fn kind(self) -> FaultKind {
        match self {
            Fault::Kill => FaultKind::Kill,
            Fault::Pause => FaultKind::Pause,
            Fault::KillTwo => FaultKind::KillTwo,
            Fault::EngineKill => FaultKind::EngineKill,
            Fault::EngineOutage => FaultKind::Other("engine-outage".into()),
            Fault::PartitionLeader | Fault::Split => FaultKind::Partition,
            Fault::OneWay => FaultKind::OneWay,
            Fault::Flap => FaultKind::Other("flap".into()),
            Fault::Loss => FaultKind::Loss,
            Fault::Delay => FaultKind::Other("delay".into()),
            Fault::CutLeader => FaultKind::Other("cut-leader".into()),
        }
    }

    /// Whether it is made in the network (between managers, or between a
    /// manager and everything else).
    pub fn is_network(self) -> bool {
        !matches!(
            self,
            Fault::Kill | Fault::Pause | Fault::KillTwo | Fault::EngineKill | Fault::EngineOutage
        )
    }

    /// The fault of a roll in `0..100`: the process faults alone without a
    /// network of managers, a mix of both with one; engine faults only if
    /// asked for.
    pub fn of_roll(roll: usize, net: bool, engine_faults: bool, managers: usize) -> Fault {
        let pick = |table: &[(usize, Fault)]| {
            table
                .iter()
                .find(|(below, _)| roll < *below)
                .map(|(_, f)| *f)
                .unwrap_or(Fault::Pause)
        };
        let fault = match (net, engine_faults) {
            (false, _) => pick(&[
                (9, Fault::EngineKill),
                (15, Fault::EngineOutage),
                (40, Fault::Kill),
                (80, Fault::Pause),
                (100, Fault::KillTwo),
            ]),
            (true, _) => pick(&[
                (6, Fault::EngineKill),
                (10, Fault::EngineOutage),
                (22, Fault::Kill),
                (34, Fault::Pause),
                (40, Fault::KillTwo),
                (54, Fault::PartitionLeader),
                (64, Fault::Split),
                (74, Fault::OneWay),
                (82, Fault::Flap),
                (88, Fault::Loss),
                (94, Fault::Delay),
                (100, Fault::CutLeader),
            ]),
        };
        match fault {
            Fault::EngineKill | Fault::EngineOutage if !engine_faults => Fault::Kill,
            Fault::KillTwo if managers < 3 => Fault::Pause,
            f if f.is_network() && managers < 2 => Fault::Pause,
            f => f,
        }
    }
}

/// What a run came to.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosOutcome {
    /// The seed.
    pub seed: u64,
    /// The checker's report.
    pub report: Report,
    /// What was read after healing.
    #[serde(skip)]
    pub fin: Final,
    /// The history.
    #[serde(skip)]
    pub recording: Recording,
    /// Whether every manager reported the same applied index and digest
    /// within the bounded wait.
    pub converged: bool,
    /// Healing → nodes healthy, managers converged and engines still (or
    /// the wait ran out), in ms.
    pub converge_ms: f64,
    /// Faults injected.
    pub faults: usize,
    /// Where the logs and data are, when kept.
    pub kept: Option<String>,
}

/// Runs the scenario; every process it started is stopped when it returns
/// (or when the future is dropped).
pub async fn run(config: &ChaosConfig) -> anyhow::Result<ChaosOutcome> {
    if config.engines == 0 {
        check_binaries(&[("hollow-engine", &config.rig.hollow_bin)])?;
    }
    check_binaries(&[("swarm", &config.rig.swarm_bin)])?;
    if config.engines == 0 && config.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if config.managers == 0 || config.clients == 0 {
        bail!("--managers and --clients must be at least 1");
    }
    if let Some(f) = config.only.iter().find(|f| f.is_network()) {
        if !config.net || config.managers < 2 {
            bail!(
                "fault {} needs two managers or more on hosts of their own (no --shared-net)",
                f.name()
            );
        }
    }
    // Made before the rig and dropped after it: the managers stop as the
    // rig stops them, then their hosts go.
    let net = match config.net {
        true => Some(Arc::new(ChaosNet::new(config.managers)?)),
        false => None,
    };
    let mut rig = Rig::new("swarm-chaos", config.rig.keep)?;
    let outcome = scenario(config, &mut rig, net.clone()).await;
    rig.finish("chaos", outcome.is_err(), 20);
    drop(rig);
    drop(net);
    outcome
}

/// Prints a progress line if asked to.
fn progress(config: &ChaosConfig, line: String) {
    if config.rig.progress {
        eprintln!("chaos: {line}");
    }
}

/// The steps, on a rig the caller stops.
async fn scenario(
    config: &ChaosConfig,
    rig: &mut Rig,
    net: Option<Arc<ChaosNet>>,
) -> anyhow::Result<ChaosOutcome> {
    let fleet = ChaosFleet::start(config, rig, net.as_deref(), |l| progress(config, l)).await?;
    let fleet = Arc::new(fleet);
    let apis = start_managers(config, rig, &fleet, net.as_deref()).await?;
    let healthy = rig
        .wait_healthy(
            &apis[0],
            fleet.len(),
            config.rig.ready_timeout,
            CONTROL_TIMEOUT,
            config.rig.progress.then_some("chaos"),
        )
        .await?;
    progress(
        config,
        format!("{healthy} nodes healthy; seed {}", config.seed),
    );

    let history = Arc::new(History::new());
    let stop = Arc::new(AtomicBool::new(false));
    let leader = Arc::new(AtomicUsize::new(NO_LEADER));
    let names: Vec<String> = (1..=apis.len()).map(|i| format!("m{i}")).collect();
    let poller = tokio::spawn(poll(
        names.clone(),
        apis.clone(),
        Arc::clone(&history),
        Arc::clone(&stop),
        Arc::clone(&leader),
    ));
    // The clients' doors: every manager, and the VIP if asked for.
    let vip = match config.vip {
        true => Some(Vip::start(&rig.dir(), &apis).await?),
        false => None,
    };
    let (mut doors, mut door_names) = (apis.clone(), names.clone());
    if let Some(vip) = &vip {
        progress(
            config,
            format!("HAProxy in front of the managers on {}", vip.addr),
        );
        doors.push(vip.addr.clone());
        door_names.push("vip".to_string());
    }
    let workers: Vec<_> = (0..config.clients)
        .map(|c| {
            let worker = Worker {
                client: c as u32,
                names: door_names.clone(),
                apis: doors.clone(),
                history: Arc::clone(&history),
                stop: Arc::clone(&stop),
                rng: Rng::new(config.seed.wrapping_add(1 + c as u64)),
                image: config.image.clone(),
                real: config.engines > 0,
                timeout: config.request_timeout,
            };
            tokio::spawn(worker.run())
        })
        .collect();

    let deadline = Instant::now() + config.duration;
    let mut nemesis = Nemesis {
        rng: Rng::new(config.seed ^ 0x006E_656D_6573_6973),
        names: names.clone(),
        apis: apis.clone(),
        fleet: Some(Arc::clone(&fleet)),
        history: Arc::clone(&history),
        leader: Arc::clone(&leader),
        faults: 0,
        net,
    };
    let chaos = nemesis.run(config, rig, deadline).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.await;
    }
    let _ = poller.await;
    drop(vip);
    chaos?;
    rig.check()?;
    progress(
        config,
        format!(
            "workload over: {} operations, {} faults; waiting for the managers to converge",
            history.len(),
            nemesis.faults
        ),
    );

    let healed = Instant::now();
    // A node back from an outage just before the end is noticed within
    // about a second; its stale copies are removed once it is healthy.
    let healthy = rig
        .wait_healthy(
            &apis[0],
            fleet.len(),
            config.converge_timeout,
            CONTROL_TIMEOUT,
            None,
        )
        .await;
    if let Err(e) = healthy {
        progress(config, format!("not every node healthy: {e:#}"));
    }
    let (converged, managers, nodes) = settle(
        &names,
        &apis,
        &fleet,
        config.overcommit,
        config.converge_timeout,
    )
    .await?;
    let converge_ms = healed.elapsed().as_secs_f64() * 1000.0;
    progress(
        config,
        format!(
            "managers {} after {:.1} s",
            if converged {
                "converged"
            } else {
                "did NOT converge"
            },
            converge_ms / 1000.0
        ),
    );
    let fin = Final { nodes, managers };
    let recording = history.recording();
    let report = check_recording(&recording, &fin);
    let kept = rig
        .scratch
        .is_kept()
        .then(|| rig.dir().display().to_string());
    Ok(ChaosOutcome {
        seed: config.seed,
        report,
        fin,
        recording,
        converged,
        converge_ms,
        faults: nemesis.faults,
        kept,
    })
}

/// Step: the managers, the first bootstrapping, the others joining it and
/// waited for as voters, each on host i of `net` if given; their API
/// addresses.
async fn start_managers(
    config: &ChaosConfig,
    rig: &mut Rig,
    fleet: &ChaosFleet,
    net: Option<&ChaosNet>,
) -> anyhow::Result<Vec<String>> {
    let mut apis: Vec<String> = Vec::new();
    for i in 0..config.managers {
        let name = format!("m{}", i + 1);
        let mut extra = vec![
            "--cluster-opt".to_string(),
            format!("swarm.overcommit={}", config.overcommit),
        ];
        extra.extend(MANAGER_ARGS.iter().map(|a| a.to_string()));
        let manager = rig.start_member(
            &config.rig,
            &name,
            &extra,
            fleet.discovery(),
            apis.first().cloned(),
            net.map(|n| (n.netns(i), n.ip(i))),
        )?;
        let api = manager.addr.clone();
        progress(
            config,
            format!(
                "manager {name} (pid {}) on {api}",
                manager.pid().unwrap_or(0)
            ),
        );
        let first = apis.first().cloned();
        rig.wait_manager_ready(
            &api,
            first.as_deref(),
            config.rig.ready_timeout,
            CONTROL_TIMEOUT,
        )
        .await?;
        apis.push(api);
    }
    Ok(apis)
}

/// The leadership poller: every [`POLL_EVERY`], each manager's state,
/// asked by a loop of its own (so a paused manager delays nobody and shows
/// as not answering), recorded as observations; the last manager seen
/// leading is kept in `leader`.
async fn poll(
    names: Vec<String>,
    apis: Vec<String>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    leader: Arc<AtomicUsize>,
) {
    let loops = apis.into_iter().enumerate().map(|(i, api)| {
        let (name, history, stop, leader) = (
            names[i].clone(),
            Arc::clone(&history),
            Arc::clone(&stop),
            Arc::clone(&leader),
        );
        async move {
            let Ok(mut client) = Client::manager(&api, CONTROL_TIMEOUT) else {
                return;
            };
            while !stop.load(Ordering::SeqCst) {
                if let Some((term, is_leader)) = role_of(&mut client).await {
                    history.observe_leader(name.clone(), term, is_leader);
                    if is_leader {
                        leader.store(i, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    });
    futures::future::join_all(loops).await;
}

/// A manager's term and whether it leads, from `/_swarm/state`.
async fn role_of(client: &mut Client) -> Option<(u64, bool)> {
    let answer = client.get("/_swarm/state").await.ok()?;
    let v = (answer.status == 200).then(|| answer.json())??;
    let term = v.get("term")?.as_u64()?;
    let role = v.get("role")?.as_str()? == "leader";
    Some((term, role))
}

/// One client of the workload: the names it created (or may have), and
/// its own generator.
struct Worker {
    client: u32,
    /// Where its requests may go (managers, the VIP), by name and address.
    names: Vec<String>,
    apis: Vec<String>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    rng: Rng,
    image: String,
    /// Whether the engines are real: lighter CPU reservations.
    real: bool,
    timeout: Duration,
}

/// How an answer counts (see the module docs).
pub fn outcome_of(result: &Result<Answer, String>) -> Outcome {
    match result {
        Err(e) => Outcome::unknown(e.clone()),
        Ok(a) if (200..300).contains(&a.status) || a.status == 304 => Outcome::ok(),
        Ok(a) if (400..500).contains(&a.status) => {
            Outcome::failed(Some(a.status), message(&a.body))
        }
        Ok(a) => {
            let why = message(&a.body);
            let refused = [swarm::scheduler::NO_RESOURCES, swarm::scheduler::NO_NODE]
                .iter()
                .any(|r| why.starts_with(r));
            if a.status == 500 && refused {
                Outcome::failed(Some(a.status), why)
            } else {
                Outcome::unknown(format!("{}: {why}", a.status))
            }
        }
    }
}

/// Whether `outcome` says the container does not exist (404).
fn is_missing(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Failed {
            status: Some(404),
            ..
        }
    )
}

impl Worker {
    /// Sends operations until told to stop.
    async fn run(mut self) {
        let mut clients: Vec<Option<Client>> = self
            .apis
            .iter()
            .map(|a| Client::manager(a, self.timeout).ok())
            .collect();
        // Names this client created, or may have (unknown outcomes).
        let mut owned: Vec<String> = Vec::new();
        let mut next = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let m = self.rng.below(self.apis.len());
            let Some(client) = clients[m].as_mut() else {
                break;
            };
            let roll = self.rng.below(100);
            let pick = (!owned.is_empty()).then(|| self.rng.below(owned.len()));
            let fresh = format!("c{}-{next}", self.client);
            match pick {
                Some(i) if roll < 35 => {
                    let name = owned[i].clone();
                    let (kind, path) = if roll < 20 {
                        let path = format!("/containers/{name}/start");
                        (OpKind::Start { name }, path)
                    } else {
                        let path = format!("/containers/{name}/stop?t=0");
                        (OpKind::Stop { name }, path)
                    };
                    let outcome = self.send(client, m, kind, Method::POST, &path, None).await;
                    if is_missing(&outcome) {
                        owned.swap_remove(i);
                    }
                }
                Some(i) if roll < 45 => {
                    next += 1;
                    let from = owned[i].clone();
                    let path = format!("/containers/{from}/rename?name={fresh}");
                    let kind = OpKind::Rename {
                        from,
                        to: fresh.clone(),
                    };
                    let outcome = self.send(client, m, kind, Method::POST, &path, None).await;
                    match outcome {
                        Outcome::Ok { .. } => owned[i] = fresh,
                        Outcome::Unknown { .. } => owned.push(fresh),
                        Outcome::Failed { .. } if is_missing(&outcome) => {
                            owned.swap_remove(i);
                        }
                        Outcome::Failed { .. } => {}
                    }
                }
                Some(i) if roll < 65 => {
                    let name = owned[i].clone();
                    let path = format!("/containers/{name}?force=1");
                    let kind = OpKind::Remove { name };
                    let outcome = self
                        .send(client, m, kind, Method::DELETE, &path, None)
                        .await;
                    if !matches!(outcome, Outcome::Unknown { .. }) {
                        owned.swap_remove(i);
                    }
                }
                _ => {
                    next += 1;
                    let (kind, body) = self.create_spec(&fresh);
                    let path = format!("/containers/create?name={fresh}");
                    let outcome = self
                        .send(client, m, kind, Method::POST, &path, Some(&body))
                        .await;
                    if !matches!(outcome, Outcome::Failed { .. }) {
                        owned.push(fresh);
                    }
                }
            }
        }
    }

    /// A create of `name`: memory, CPU, sometimes a host port from the
    /// pool, sometimes the reschedule policy.
    fn create_spec(&mut self, name: &str) -> (OpKind, Value) {
        let memory: u64 = [128u64, 256, 512][self.rng.below(3)] << 20;
        let mut host = json!({ "Memory": memory });
        let cpus_milli = if self.rng.chance(70) {
            let table = if self.real { REAL_CPUS } else { HOLLOW_CPUS };
            let milli = table[self.rng.below(3)];
            host["NanoCpus"] = json!(milli * 1_000_000);
            milli
        } else if self.real {
            0
        } else {
            host["CpuShares"] = json!(1);
            1000
        };
        let mut host_ports = Vec::new();
        let mut body = json!({
            "Image": self.image,
            "Cmd": ["sleep", "1000"],
        });
        if self.rng.chance(25) {
            let port = PORT_POOL[self.rng.below(PORT_POOL.len())];
            host_ports.push(port);
            host["PortBindings"] = json!({ "80/tcp": [{ "HostPort": port.to_string() }] });
            body["ExposedPorts"] = json!({ "80/tcp": {} });
        }
        let reschedule = self.rng.chance(20);
        if reschedule {
            body["Env"] = json!(["reschedule:on-node-failure"]);
        }
        body["HostConfig"] = host;
        let kind = OpKind::Create {
            name: name.to_string(),
            memory,
            cpus_milli,
            host_ports,
            reschedule,
        };
        (kind, body)
    }

    /// Sends one operation to manager `m` and records it.
    async fn send(
        &self,
        client: &mut Client,
        m: usize,
        kind: OpKind,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Outcome {
        let is_create = matches!(kind, OpKind::Create { .. });
        let handle = self
            .history
            .invoke(self.client, self.names[m].clone(), kind);
        let result = client.request(method, path, body).await;
        let mut outcome = outcome_of(&result);
        if let (true, Outcome::Ok { .. }, Ok(answer)) = (is_create, &outcome, &result) {
            let id = answer
                .json()
                .and_then(|v| v.get("Id")?.as_str().map(str::to_string));
            if let Some(id) = id {
                outcome = Outcome::created(id);
            }
        }
        self.history.complete(handle, outcome.clone());
        let refused = matches!(outcome, Outcome::Failed { status: Some(s), .. } if s >= 500);
        if refused || matches!(outcome, Outcome::Unknown { .. }) {
            // A manager down, no leader, or no node to place on: do not
            // spin on fast errors.
            tokio::time::sleep(BACKOFF).await;
        }
        outcome
    }
}

/// The fault injector: one fault at a time on a seeded schedule.
struct Nemesis {
    rng: Rng,
    names: Vec<String>,
    apis: Vec<String>,
    /// The engines (none in unit tests).
    fleet: Option<Arc<ChaosFleet>>,
    history: Arc<History>,
    leader: Arc<AtomicUsize>,
    faults: usize,
    /// The managers' hosts, when they have their own.
    net: Option<Arc<ChaosNet>>,
}

impl Nemesis {
    /// Every `fault_every` until `deadline`: a fault, held for 30-70% of
    /// the interval, healed, and the managers it hit back.
    async fn run(
        &mut self,
        config: &ChaosConfig,
        rig: &mut Rig,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let mut tick = Instant::now();
        loop {
            // On the schedule, unless the last fault took longer to heal.
            tick = (tick + config.fault_every).max(Instant::now() + Duration::from_millis(200));
            if tick >= deadline {
                tokio::time::sleep_until(deadline.into()).await;
                return Ok(());
            }
            tokio::time::sleep_until(tick.into()).await;
            let n = self.apis.len();
            let roll = self.rng.below(100);
            let fault = match config.only.as_slice() {
                [] => Fault::of_roll(roll, self.net.is_some(), config.engine_faults, n),
                only => only[roll % only.len()],
            };
            let hold = config
                .fault_every
                .mul_f64(0.3 + 0.4 * self.rng.below(101) as f64 / 100.0);
            if fault == Fault::EngineKill {
                self.engine_kill(config, hold).await?;
                continue;
            }
            if fault == Fault::EngineOutage {
                self.engine_outage(config).await?;
                continue;
            }
            let targets = self.targets(fault, n);
            // Loss in percent, delay in ms.
            let amount = match fault {
                Fault::Loss => 10 + 10 * self.rng.below(4) as u64,
                Fault::Delay => 20 + 20 * self.rng.below(4) as u64,
                _ => 0,
            };
            let target = self.describe(fault, &targets, amount);
            progress(config, format!("fault {fault:?} on {target} for {hold:?}"));
            let handle = self.history.fault_began(fault.kind(), target);
            self.faults += 1;
            let applied = self.apply(fault, rig, &targets, amount, hold);
            if applied.is_ok() {
                tokio::time::sleep(hold).await;
            }
            let healed = self.heal(fault, rig, &targets);
            self.history.fault_healed(handle);
            applied?;
            healed?;
            for &i in &targets {
                wait_back(&self.apis[i]).await?;
            }
        }
    }

    /// A random node stops answering for `hold`; waits until it answers
    /// again.
    async fn engine_kill(&mut self, config: &ChaosConfig, hold: Duration) -> anyhow::Result<()> {
        let fleet = self.fleet()?;
        let i = self.rng.below(fleet.len());
        let node = fleet.addr(i);
        progress(
            config,
            format!("fault EngineKill on node {node} for {hold:?}"),
        );
        let handle = self.history.fault_began(Fault::EngineKill.kind(), node);
        self.faults += 1;
        fleet.stop_for(i, hold).await?;
        tokio::time::sleep(hold).await;
        let back = fleet.wait_back(i).await;
        self.history.fault_healed(handle);
        back
    }

    /// A random node down for [`OUTAGE`], long enough for the managers to
    /// declare it failed and move its `reschedule:on-node-failure`
    /// containers; [`OUTAGE_SECOND_AT`] into it, another node killed for
    /// [`OUTAGE_SECOND`] while they move. Waits until both answer again.
    async fn engine_outage(&mut self, config: &ChaosConfig) -> anyhow::Result<()> {
        let fleet = self.fleet()?;
        let n = fleet.len();
        let first = self.rng.below(n);
        let second = (first + 1 + self.rng.below(n.max(2) - 1)) % n;
        let target = format!("{} then {}", fleet.addr(first), fleet.addr(second));
        progress(
            config,
            format!("fault EngineOutage on {target} for {OUTAGE:?}"),
        );
        let handle = self.history.fault_began(Fault::EngineOutage.kind(), target);
        self.faults += 1;
        fleet.stop_for(first, OUTAGE).await?;
        tokio::time::sleep(OUTAGE_SECOND_AT).await;
        if second != first {
            fleet.stop_for(second, OUTAGE_SECOND).await?;
        }
        tokio::time::sleep(OUTAGE.saturating_sub(OUTAGE_SECOND_AT)).await;
        let back = match fleet.wait_back(first).await {
            Ok(()) => fleet.wait_back(second).await,
            Err(e) => Err(e),
        };
        self.history.fault_healed(handle);
        back
    }

    /// Whom `fault` hits. A pause hits the last leader seen two times in
    /// three; two kills hit two distinct managers. Network faults: the
    /// leader (partition, cut) or the leader and another manager (one way:
    /// the first's packets to the second lost; flap), every manager (loss,
    /// delay), or every manager in a random order (split, grouped by
    /// [`split_groups`]). Without a known leader, a random manager stands
    /// for it.
    fn targets(&mut self, fault: Fault, n: usize) -> Vec<usize> {
        let seen = self.leader.load(Ordering::SeqCst);
        let leader = if seen < n { seen } else { self.rng.below(n) };
        let other = |rng: &mut Rng, of: usize| (of + 1 + rng.below(n.max(2) - 1)) % n;
        match fault {
            Fault::Pause if self.rng.chance(67) => vec![leader],
            Fault::Kill | Fault::Pause | Fault::EngineKill | Fault::EngineOutage => {
                vec![self.rng.below(n)]
            }
            Fault::KillTwo => {
                let first = self.rng.below(n);
                vec![first, other(&mut self.rng, first)]
            }
            Fault::PartitionLeader | Fault::CutLeader => vec![leader],
            Fault::OneWay | Fault::Flap => {
                let follower = other(&mut self.rng, leader);
                if fault == Fault::OneWay && self.rng.chance(50) {
                    vec![follower, leader]
                } else {
                    vec![leader, follower]
                }
            }
            Fault::Loss | Fault::Delay => (0..n).collect(),
            Fault::Split => {
                let mut all: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    all.swap(i, self.rng.below(i + 1));
                }
                all
            }
        }
    }

    /// The fault's target in words, for the history: `m1`, `m1,m2`,
    /// `m1|m2,m3` (groups that cannot reach each other), `m1->m2` (one
    /// way), `m1~m2` (flapping), `all 20%`, `all 40ms`.
    fn describe(&self, fault: Fault, targets: &[usize], amount: u64) -> String {
        let names = |list: &[usize]| {
            list.iter()
                .map(|&i| self.names[i].as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        match fault {
            Fault::PartitionLeader => {
                let rest: Vec<usize> = (0..self.names.len())
                    .filter(|i| !targets.contains(i))
                    .collect();
                format!("{}|{}", names(targets), names(&rest))
            }
            Fault::Split => split_groups(targets)
                .iter()
                .map(|g| names(g))
                .collect::<Vec<_>>()
                .join("|"),
            Fault::OneWay => format!("{}->{}", names(&targets[..1]), names(&targets[1..])),
            Fault::Flap => format!("{}~{}", names(&targets[..1]), names(&targets[1..])),
            Fault::Loss => format!("all {amount}%"),
            Fault::Delay => format!("all {amount}ms"),
            _ => names(targets),
        }
    }

    /// The engines; an error for an engine fault without them.
    fn fleet(&self) -> anyhow::Result<Arc<ChaosFleet>> {
        self.fleet
            .clone()
            .ok_or_else(|| anyhow::anyhow!("engine faults need a fleet"))
    }

    /// The managers' network; an error for a network fault without one.
    fn net(&self) -> anyhow::Result<&ChaosNet> {
        self.net.as_deref().ok_or_else(|| {
            anyhow::anyhow!("network faults need the managers on hosts of their own")
        })
    }

    /// Injects `fault` into the managers `targets` (see
    /// [`Nemesis::targets`]); `amount` is the loss in percent or the delay
    /// in ms; a flap lasts `hold`.
    fn apply(
        &self,
        fault: Fault,
        rig: &mut Rig,
        targets: &[usize],
        amount: u64,
        hold: Duration,
    ) -> anyhow::Result<()> {
        match fault {
            Fault::Kill | Fault::KillTwo => targets.iter().for_each(|&i| rig.managers[i].kill()),
            Fault::Pause => {
                let pids: Vec<u32> = targets
                    .iter()
                    .filter_map(|&i| rig.managers[i].pid())
                    .collect();
                crate::sys::signal(&pids, "STOP");
            }
            Fault::EngineKill | Fault::EngineOutage => {}
            Fault::PartitionLeader => {
                let rest: Vec<usize> = (0..rig.managers.len())
                    .filter(|i| !targets.contains(i))
                    .collect();
                self.net()?.partition(&[targets, &rest])?;
            }
            Fault::Split => {
                let groups = split_groups(targets);
                let groups: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
                self.net()?.partition(&groups)?;
            }
            Fault::OneWay => self.net()?.drop_one_way(targets[0], targets[1])?,
            Fault::Flap => {
                let period = Duration::from_millis(200 + 100 * (amount % 4));
                self.net()?
                    .flap(targets[0], targets[1], period, Instant::now() + hold)?;
            }
            Fault::Loss => {
                let net = self.net()?;
                for (k, &a) in targets.iter().enumerate() {
                    for &b in &targets[k + 1..] {
                        net.loss(a, b, amount as f64 / 100.0)?;
                    }
                }
            }
            Fault::Delay => {
                let net = self.net()?;
                for &i in targets {
                    net.delay(i, amount)?;
                }
            }
            Fault::CutLeader => self.net()?.cut_clients(targets[0])?,
        }
        Ok(())
    }

    /// Heals `fault`: restarts the killed managers, resumes the paused,
    /// removes the network's faults.
    fn heal(&self, fault: Fault, rig: &mut Rig, targets: &[usize]) -> anyhow::Result<()> {
        match fault {
            Fault::Kill | Fault::KillTwo => {
                for &i in targets {
                    rig.managers[i].start()?;
                }
            }
            Fault::Pause => {
                let pids: Vec<u32> = targets
                    .iter()
                    .filter_map(|&i| rig.managers[i].pid())
                    .collect();
                crate::sys::signal(&pids, "CONT");
            }
            Fault::EngineKill | Fault::EngineOutage => {}
            Fault::CutLeader => self.net()?.restore_clients(targets[0])?,
            _ => self.net()?.heal()?,
        }
        Ok(())
    }
}

/// The groups of a split of `order` (every manager, shuffled): each alone
/// when there are three or fewer, else the first two against the rest.
pub fn split_groups(order: &[usize]) -> Vec<Vec<usize>> {
    if order.len() <= 3 {
        order.iter().map(|&i| vec![i]).collect()
    } else {
        vec![order[..2].to_vec(), order[2..].to_vec()]
    }
}

/// Waits until the manager at `api` answers `/_ping` ([`BACK_TIMEOUT`]).
async fn wait_back(api: &str) -> anyhow::Result<()> {
    wait_ping(api, true, BACK_TIMEOUT, api, "after healing", || None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(status: u16, body: &str) -> Result<Answer, String> {
        Ok(Answer {
            status,
            body: Bytes::from(body.to_string()),
        })
    }

    #[test]
    fn only_definite_refusals_fail() {
        assert!(matches!(outcome_of(&answer(201, "{}")), Outcome::Ok { .. }));
        assert!(matches!(outcome_of(&answer(304, "")), Outcome::Ok { .. }));
        let conflict = outcome_of(&answer(409, r#"{"message":"name in use"}"#));
        assert_eq!(conflict, Outcome::failed(Some(409), "name in use"));
        let refused = format!(r#"{{"message":"{}"}}"#, swarm::scheduler::NO_RESOURCES);
        assert!(matches!(
            outcome_of(&answer(500, &refused)),
            Outcome::Failed { .. }
        ));
        let other = outcome_of(&answer(500, r#"{"message":"raft: no leader"}"#));
        assert!(matches!(other, Outcome::Unknown { .. }), "{other:?}");
        assert!(matches!(
            outcome_of(&answer(503, "")),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            outcome_of(&Err("timeout".into())),
            Outcome::Unknown { .. }
        ));
    }

    #[test]
    fn the_generator_is_seeded() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(7);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut other = Rng::new(8);
        assert_ne!(a[0], other.next_u64());
        assert!((0..1000).all(|_| r.below(3) < 3));
    }

    fn worker(real: bool) -> Worker {
        Worker {
            client: 0,
            names: vec!["m1".into()],
            apis: Vec::new(),
            history: Arc::new(History::new()),
            stop: Arc::new(AtomicBool::new(false)),
            rng: Rng::new(5),
            image: "busybox:local".into(),
            real,
            timeout: Duration::from_secs(1),
        }
    }

    /// (cpus_milli, the body's NanoCpus, CpuShares) of 200 creates.
    fn cpus_of_creates(real: bool) -> Vec<(u64, Option<u64>, Option<u64>)> {
        let mut w = worker(real);
        (0..200)
            .map(|i| {
                let (kind, body) = w.create_spec(&format!("c{i}"));
                let OpKind::Create { cpus_milli, .. } = kind else {
                    panic!("not a create: {kind:?}");
                };
                let host = |k: &str| body.pointer(&format!("/HostConfig/{k}"))?.as_u64();
                (cpus_milli, host("NanoCpus"), host("CpuShares"))
            })
            .collect()
    }

    #[test]
    fn creates_on_real_engines_reserve_a_fraction_of_a_cpu() {
        let real = cpus_of_creates(true);
        assert!(real
            .iter()
            .all(|(m, _, shares)| *m <= 200 && shares.is_none()));
        assert!(real
            .iter()
            .all(|(m, nano, _)| nano.unwrap_or(0) == m * 1_000_000));
        let without = real.iter().filter(|(m, _, _)| *m == 0).count();
        assert!(
            (30..=100).contains(&without),
            "{without} of 200 without CPU"
        );
        // Hollow nodes: as before, up to a CPU, and one by CpuShares.
        let hollow = cpus_of_creates(false);
        assert!(hollow.iter().all(|(m, _, _)| [250, 500, 1000].contains(m)));
        assert!(hollow.iter().any(|(_, _, shares)| *shares == Some(1)));
    }

    fn nemesis(leader: usize) -> Nemesis {
        Nemesis {
            rng: Rng::new(3),
            names: vec!["m1".into(), "m2".into(), "m3".into()],
            apis: Vec::new(),
            fleet: None,
            history: Arc::new(History::new()),
            leader: Arc::new(AtomicUsize::new(leader)),
            faults: 0,
            net: None,
        }
    }

    #[test]
    fn two_kills_hit_two_managers_and_pauses_favour_the_leader() {
        let mut n = nemesis(1);
        for _ in 0..200 {
            let t = n.targets(Fault::KillTwo, 3);
            assert_eq!(t.len(), 2);
            assert_ne!(t[0], t[1]);
            assert!(t.iter().all(|&i| i < 3));
        }
        let on_leader = (0..300)
            .filter(|_| n.targets(Fault::Pause, 3) == vec![1])
            .count();
        assert!(on_leader > 150, "{on_leader} of 300 pauses on the leader");
        let mut none = nemesis(NO_LEADER);
        assert!((0..100).all(|_| none.targets(Fault::Pause, 3)[0] < 3));
    }

    #[test]
    fn network_faults_only_with_a_network_and_two_managers() {
        for roll in 0..100 {
            let f = Fault::of_roll(roll, false, true, 3);
            assert!(!f.is_network(), "{f:?} without a network");
            let f = Fault::of_roll(roll, true, false, 3);
            assert_ne!(f, Fault::EngineKill, "roll {roll}: no engine faults asked");
            assert!(!Fault::of_roll(roll, true, true, 1).is_network());
            assert_ne!(Fault::of_roll(roll, true, true, 2), Fault::KillTwo);
        }
        let kinds: std::collections::BTreeSet<String> = (0..100)
            .map(|r| format!("{:?}", Fault::of_roll(r, true, true, 3)))
            .collect();
        assert_eq!(kinds.len(), 12, "every fault can be drawn: {kinds:?}");
    }

    #[test]
    fn faults_are_named_on_the_command_line() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()), Ok(f));
        }
        let err = Fault::parse("meteor").unwrap_err();
        assert!(
            err.contains("meteor") && err.contains("partition-leader"),
            "{err}"
        );
    }

    #[test]
    fn splits_isolate_each_of_three_and_two_of_five() {
        assert_eq!(split_groups(&[2, 0, 1]), vec![vec![2], vec![0], vec![1]]);
        assert_eq!(
            split_groups(&[4, 1, 0, 3, 2]),
            vec![vec![4, 1], vec![0, 3, 2]]
        );
        let mut n = nemesis(1);
        for _ in 0..50 {
            let mut t = n.targets(Fault::Split, 5);
            t.sort_unstable();
            assert_eq!(t, vec![0, 1, 2, 3, 4], "a split names every manager once");
            assert_eq!(n.targets(Fault::PartitionLeader, 3), vec![1]);
            let one_way = n.targets(Fault::OneWay, 3);
            assert!(
                one_way.contains(&1) && one_way[0] != one_way[1],
                "{one_way:?}"
            );
        }
        assert_eq!(n.describe(Fault::PartitionLeader, &[1], 0), "m2|m1,m3");
        assert_eq!(n.describe(Fault::Split, &[2, 0, 1], 0), "m3|m1|m2");
        assert_eq!(n.describe(Fault::OneWay, &[0, 1], 0), "m1->m2");
        assert_eq!(n.describe(Fault::Delay, &[0, 1, 2], 40), "all 40ms");
    }
}
