//! The checker of a chaos run: [`check`] reads a history (operations,
//! fault windows, leadership observations, `super::history`) and the
//! [`Final`] state read once every fault healed (each engine's containers,
//! each manager's replicated state), and answers a [`Report`]: every
//! broken promise with its evidence (op ids, names, containers, nodes,
//! managers), and the run's figures (availability and latency, overall,
//! outside faults and per fault window). Pure code: no process, no
//! network; a saved history replays into it.
//!
//! # How outcomes count
//!
//! An operation takes effect at one instant between its invocation and
//! its completion. An acknowledged (`Ok`) or refused (`Failed`) one
//! completed, so that instant lies in [start, end]; a refused one took no
//! effect at all. An `Unknown` one may have taken effect at any instant
//! after its start, even after its client gave up, or never. The checker
//! uses unknown operations only to *excuse*, never to accuse: an unknown
//! create is never lost (it was not acknowledged), an unknown remove is
//! never undone, an unknown remove or rename that may have happened
//! excuses a missing container and may separate two holders of a name. A
//! container an unknown create left is fine when a manager's state holds
//! it, an orphan when none does. Equal instants count as concurrent (the
//! lenient reading). Operations name containers by the names the workload
//! gave them (a remove may also give a full ID); a leading `/` is dropped
//! from every name.
//!
//! # The promises
//!
//! - [`Promise::NoLostCreate`]: the container ID of every `Ok` create is
//!   on some engine, unless a remove may have removed it: a remove (not
//!   refused) of its ID, or of a name it may have carried, whose end (none
//!   when unknown) is not before the first instant it may have carried that
//!   name. It may carry its create's name from the create's start, and
//!   `to` from `max(t, rename start)` through a rename (not refused) `from
//!   → to` that did not end before `t`, the instant it may carry `from`
//!   (earliest instants over every chain of renames, as shortest paths).
//!   An `Ok` create without an ID is present when an engine holds its name;
//!   so is one with the reschedule policy when an engine holds a name it
//!   may carry: a copy rescheduled off a failed node has another ID (and
//!   the same swarm ID, which the history does not know).
//! - [`Promise::NoUndoneRemove`]: when an `Ok` create of `N` ended before
//!   an `Ok` remove of `N` began, the container it created is neither on an
//!   engine nor in a manager's state under the name `N`, unless a rename
//!   (not refused) from or to `N` overlaps [create start, remove end]: then
//!   which container the remove hit is not certain. A container found under
//!   another name is not judged. (Were `N` ever held twice, a remove may
//!   hit the other holder: such a report comes with a name violation.)
//! - [`Promise::UniqueNames`], [`Promise::UniqueSwarmIds`]: over all the
//!   engines' containers (containers without a swarm ID are not compared).
//! - [`Promise::NodeCapacity`]: on each node, the memory and the CPU all
//!   its containers reserve (running or not) are at most its capacity ×
//!   (1 + overcommit), computed as swarm does: overcommit in rounded
//!   millionths, `capacity × (1 000 000 + ppm) / 1 000 000` rounded down.
//!   One violation per node and resource.
//! - [`Promise::UniqueHostPorts`]: no two containers of a node bind
//!   conflicting host ports (same port and protocol, and the same IP or
//!   either on every address). One violation per node, port and protocol.
//! - [`Promise::OneLeaderPerTerm`]: at most one manager said it led a
//!   term. One violation per term.
//! - [`Promise::Converged`]: every manager was read and has the same
//!   digest. One violation per manager not read and per manager outside
//!   the largest group of equal digests (ties: the group of the manager
//!   first by name), with the container IDs its state holds and theirs
//!   does not, and the reverse.
//! - [`Promise::NamesLinearizable`]: see "Name linearizability" below.
//! - [`Promise::NoOrphans`]: every container on an engine is in at least
//!   one manager's state (by ID): nobody else owns it. The evidence names
//!   the creates of its name that failed or whose outcome is unknown. A
//!   manager that lacks a container others hold is a convergence matter.
//!
//! # Name linearizability
//!
//! A name is a lock with one holder. Its acquisitions: `Ok` creates of
//! `N`, `Ok` renames to `N`. Its releases: removes of `N` and renames from
//! `N` that were not refused (acknowledged, or unknown with no end). The
//! history is linearizable for `N` only if its acquisitions can be put in
//! an order consistent with real time (`a` before `b` whenever `a` ended
//! before `b` began) with a release between any two consecutive ones, each
//! release used once and consistent with real time as well.
//!
//! The checker decides a relaxation of that, so it never accuses a
//! linearizable history but may miss some that are not: each name is
//! judged alone (a rename's two names may take it at different
//! instants), a name is free when the run starts, a release may come
//! while the name is free, and only *pairs* of acquisitions are judged.
//! Two acquisitions `a`, `b` conflict when no release fits between them in
//! either order. In the order `a` then `b`, a release `r` fits iff
//! `r.end ≥ a.start`, `r.start ≤ b.end` and `b.end ≥ a.start` (three
//! intervals pairwise consistent with an order can take points in that
//! order). With `f(s)` the earliest start of a release that ends at `s` or
//! later, and `g(a) = max(a.start, f(a.start))`, `a` then `b` is possible
//! iff `b.end ≥ g(a)`: `a` and `b` conflict iff `b.end < g(a)` and
//! `a.end < g(b)`. Acquisitions sorted by end with a running maximum of
//! `g` give, for each acquisition `b`, an earlier-ending `a` in conflict
//! with it: `b` counts as one violation, the `a` of largest `g` its
//! witness. O(k log k) for k operations on the name. Not caught: three or
//! more acquisitions that need more releases than there are (three
//! creates acknowledged around one unknown remove).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::{secs, Fault, LeaderObservation, Op, OpKind, Outcome, Recording};
use crate::bench::stats::{cell_ms, mib, percentile};

/// The transport protocol of a host port.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A host port a container binds. Deliberately not swarm's own
/// `cluster::HostPort`: the checker judges the port rule with its own
/// copy of it, so a fault in swarm's cannot hide itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostPort {
    /// Host IP; empty, `0.0.0.0` or `::` mean every address.
    #[serde(default)]
    pub ip: String,
    /// Port number.
    pub port: u16,
    /// Protocol (TCP when left out).
    #[serde(default)]
    pub proto: Proto,
}

impl HostPort {
    /// `port`/tcp on every address.
    pub fn tcp(port: u16) -> HostPort {
        HostPort {
            ip: String::new(),
            port,
            proto: Proto::Tcp,
        }
    }

    fn every_address(&self) -> bool {
        matches!(self.ip.as_str(), "" | "0.0.0.0" | "::" | "[::]")
    }

    /// Whether both cannot be bound on one host at once.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.proto == other.proto
            && (self.every_address() || other.every_address() || self.ip == other.ip)
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        };
        if self.every_address() {
            write!(f, "{}/{proto}", self.port)
        } else {
            write!(f, "{}:{}/{proto}", self.ip, self.port)
        }
    }
}

/// A container as an engine lists it after healing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineContainer {
    /// Container ID.
    pub id: String,
    /// Its name (a leading `/` is ignored).
    pub name: String,
    /// Its `com.docker.swarm.id` label, if any.
    #[serde(default)]
    pub swarm_id: Option<String>,
    /// Memory it reserves, in bytes.
    #[serde(default)]
    pub memory: u64,
    /// CPU it reserves, in thousandths.
    #[serde(default)]
    pub cpus_milli: u64,
    /// Host ports it binds.
    #[serde(default)]
    pub host_ports: Vec<HostPort>,
}

/// What a node offers, before overcommit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Memory in bytes.
    pub memory: u64,
    /// CPUs in thousandths.
    pub cpus_milli: u64,
}

/// One engine after healing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalNode {
    /// Node name.
    pub name: String,
    /// Its capacity.
    pub capacity: Capacity,
    /// The cluster's overcommit (`0.05` lets reservations reach 105%).
    #[serde(default)]
    pub overcommit: f64,
    /// Every container it holds.
    pub containers: Vec<EngineContainer>,
}

/// A container as a manager's replicated state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateContainer {
    /// Container ID.
    pub id: String,
    /// Its name (a leading `/` is ignored).
    pub name: String,
}

/// One manager after healing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalManager {
    /// Manager name.
    pub name: String,
    /// Digest of its replicated state (opaque); `None` when it could not
    /// be read.
    pub digest: Option<String>,
    /// The containers its state holds.
    pub containers: Vec<StateContainer>,
}

/// What was read once every fault healed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Final {
    /// Every engine.
    pub nodes: Vec<FinalNode>,
    /// Every manager.
    pub managers: Vec<FinalManager>,
}

/// A promise the checker checks (see the module docs for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Promise {
    /// No acknowledged create lost.
    NoLostCreate,
    /// No acknowledged remove undone.
    NoUndoneRemove,
    /// No name twice on the engines.
    UniqueNames,
    /// No swarm ID twice on the engines.
    UniqueSwarmIds,
    /// No node reserves more than its capacity × (1 + overcommit).
    NodeCapacity,
    /// No host port bound twice on a node.
    UniqueHostPorts,
    /// At most one leader per term.
    OneLeaderPerTerm,
    /// Every manager holds the same state.
    Converged,
    /// Acknowledged creates, renames and removes of each name are
    /// linearizable.
    NamesLinearizable,
    /// Every container on the engines is in the managers' state.
    NoOrphans,
}

impl Promise {
    /// Every promise, in report order.
    pub const ALL: [Promise; 10] = [
        Promise::NoLostCreate,
        Promise::NoUndoneRemove,
        Promise::UniqueNames,
        Promise::UniqueSwarmIds,
        Promise::NodeCapacity,
        Promise::UniqueHostPorts,
        Promise::OneLeaderPerTerm,
        Promise::Converged,
        Promise::NamesLinearizable,
        Promise::NoOrphans,
    ];

    /// The promise in words.
    pub fn title(self) -> &'static str {
        match self {
            Promise::NoLostCreate => "no acknowledged create lost",
            Promise::NoUndoneRemove => "no acknowledged remove undone",
            Promise::UniqueNames => "no name twice on the engines",
            Promise::UniqueSwarmIds => "no swarm ID twice on the engines",
            Promise::NodeCapacity => "no node over-committed",
            Promise::UniqueHostPorts => "no host port bound twice on a node",
            Promise::OneLeaderPerTerm => "at most one leader per term",
            Promise::Converged => "managers converged",
            Promise::NamesLinearizable => "names linearizable",
            Promise::NoOrphans => "no orphan container",
        }
    }
}

/// One broken promise, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The promise broken.
    pub promise: Promise,
    /// What happened, in words.
    pub detail: String,
    /// The operations involved, by id.
    #[serde(default)]
    pub ops: Vec<u64>,
    /// The container names involved.
    #[serde(default)]
    pub names: Vec<String>,
    /// The container IDs involved.
    #[serde(default)]
    pub containers: Vec<String>,
    /// The nodes involved.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// The managers involved.
    #[serde(default)]
    pub managers: Vec<String>,
}

impl Violation {
    fn new(promise: Promise, detail: String) -> Violation {
        Violation {
            promise,
            detail,
            ops: Vec::new(),
            names: Vec::new(),
            containers: Vec::new(),
            nodes: Vec::new(),
            managers: Vec::new(),
        }
    }

    fn ops(mut self, ops: impl IntoIterator<Item = u64>) -> Violation {
        self.ops.extend(ops);
        self.ops.sort_unstable();
        self.ops.dedup();
        self
    }

    fn names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Violation {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    fn containers<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Violation {
        self.containers.extend(ids.into_iter().map(Into::into));
        self
    }

    fn nodes<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Violation {
        self.nodes.extend(nodes.into_iter().map(Into::into));
        self.nodes.sort();
        self.nodes.dedup();
        self
    }

    fn managers<S: Into<String>>(mut self, managers: impl IntoIterator<Item = S>) -> Violation {
        self.managers.extend(managers.into_iter().map(Into::into));
        self
    }
}

/// Latency figures, in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// What a set of operations came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Operations.
    pub total: usize,
    /// Acknowledged.
    pub ok: usize,
    /// Definitely refused.
    pub failed: usize,
    /// Ambiguous or never completed.
    pub unknown: usize,
    /// `ok / total`; `None` when there was no operation.
    pub availability: Option<f64>,
    /// Latency of the operations that completed (any outcome); `None` when
    /// none did.
    pub latency: Option<Latency>,
}

impl Tally {
    /// The tally of `ops`.
    pub fn of<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Tally {
        let mut tally = Tally::default();
        let mut latencies = Vec::new();
        for op in ops {
            tally.total += 1;
            match op.outcome {
                Outcome::Ok { .. } => tally.ok += 1,
                Outcome::Failed { .. } => tally.failed += 1,
                Outcome::Unknown { .. } => tally.unknown += 1,
            }
            latencies.extend(op.latency());
        }
        if tally.total > 0 {
            tally.availability = Some(tally.ok as f64 / tally.total as f64);
        }
        if !latencies.is_empty() {
            latencies.sort_unstable();
            tally.latency = Some(Latency {
                p50_ms: percentile(&latencies, 50.0),
                p99_ms: percentile(&latencies, 99.0),
                max_ms: percentile(&latencies, 100.0),
            });
        }
        tally
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ops: {} ok, {} failed, {} unknown",
            self.total, self.ok, self.failed, self.unknown
        )?;
        if let Some(a) = self.availability {
            write!(f, "; availability {:.1}%", a * 100.0)?;
        }
        if let Some(l) = self.latency {
            write!(
                f,
                "; latency p50 {}, p99 {}, max {}",
                cell_ms(l.p50_ms),
                cell_ms(l.p99_ms),
                cell_ms(l.max_ms)
            )?;
        }
        Ok(())
    }
}

/// The operations that overlapped one fault window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    /// The window.
    pub fault: Fault,
    /// Operations whose [start, end] overlaps it (an unfinished one lasts
    /// for ever).
    pub ops: Tally,
}

/// The figures of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Every operation.
    pub ops: Tally,
    /// Operations that overlapped no fault window.
    pub calm: Tally,
    /// Per fault window, in the order they opened.
    pub windows: Vec<WindowFigures>,
    /// Containers on the engines.
    pub engine_containers: usize,
    /// Of those, the ones no manager's state holds.
    pub orphans: usize,
    /// Terms in which some manager said it led.
    pub leader_terms: usize,
}

/// The checker's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Every broken promise, in [`Promise::ALL`] order.
    pub violations: Vec<Violation>,
    /// The run's figures.
    pub figures: Figures,
}

impl Report {
    /// Whether every promise was kept.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations of `promise`.
    pub fn of(&self, promise: Promise) -> impl Iterator<Item = &Violation> + '_ {
        self.violations.iter().filter(move |v| v.promise == promise)
    }

    /// How many violations of `promise`.
    pub fn count(&self, promise: Promise) -> usize {
        self.of(promise).count()
    }

    /// As JSON, indented.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// Details shown per promise by `Display` (JSON holds them all).
const SHOWN: usize = 20;

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let broken = Promise::ALL.iter().filter(|&&p| self.count(p) > 0).count();
        if broken == 0 {
            writeln!(f, "chaos check: OK, every promise kept")?;
        } else {
            writeln!(f, "chaos check: {broken} promise(s) VIOLATED")?;
        }
        for promise in Promise::ALL {
            let n = self.count(promise);
            if n == 0 {
                writeln!(f, "  {:<36} OK", promise.title())?;
                continue;
            }
            writeln!(f, "  {:<36} VIOLATED {n}", promise.title())?;
            for v in self.of(promise).take(SHOWN) {
                writeln!(f, "      - {}", v.detail)?;
            }
            if n > SHOWN {
                writeln!(f, "      ... and {} more", n - SHOWN)?;
            }
        }
        let fig = &self.figures;
        writeln!(f, "figures:")?;
        writeln!(f, "  all: {}", fig.ops)?;
        writeln!(f, "  outside faults: {}", fig.calm)?;
        for w in &fig.windows {
            writeln!(f, "  during {}: {}", w.fault, w.ops)?;
        }
        writeln!(
            f,
            "  containers on the engines: {}, orphans: {}; terms with a leader: {}",
            fig.engine_containers, fig.orphans, fig.leader_terms
        )
    }
}

/// Checks a saved run: [`check`] over the parts of `recording`.
pub fn check_recording(recording: &Recording, fin: &Final) -> Report {
    check(&recording.ops, &recording.faults, &recording.leaders, fin)
}

/// Checks every promise of the module docs over a run's history and what
/// was read after healing.
pub fn check(ops: &[Op], faults: &[Fault], leaders: &[LeaderObservation], fin: &Final) -> Report {
    let index = Index::new(ops, fin);
    let mut violations = Vec::new();
    lost_creates(&index, &mut violations);
    undone_removes(&index, &mut violations);
    unique_names(&index, &mut violations);
    unique_swarm_ids(&index, &mut violations);
    node_capacity(&index, &mut violations);
    unique_host_ports(&index, &mut violations);
    one_leader_per_term(leaders, &mut violations);
    converged(fin, &mut violations);
    names_linearizable(&index, &mut violations);
    let orphans = no_orphans(&index, &mut violations);
    let figures = Figures {
        ops: Tally::of(ops),
        calm: Tally::of(
            ops.iter()
                .filter(|op| !faults.iter().any(|w| overlaps(op, w))),
        ),
        windows: faults
            .iter()
            .map(|w| WindowFigures {
                fault: w.clone(),
                ops: Tally::of(ops.iter().filter(|op| overlaps(op, w))),
            })
            .collect(),
        engine_containers: index.engine.len(),
        orphans,
        leader_terms: leaders
            .iter()
            .filter(|o| o.is_leader)
            .map(|o| o.term)
            .collect::<BTreeSet<_>>()
            .len(),
    };
    Report {
        violations,
        figures,
    }
}

/// An instant in nanoseconds since the run started; [`NEVER`] for no
/// bound.
type Nanos = u64;

/// No bound: after every instant.
const NEVER: Nanos = u64::MAX;

fn ns(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

/// The first instant `op` may take effect.
fn begin(op: &Op) -> Nanos {
    ns(op.start)
}

/// The last instant `op` may take effect ([`NEVER`] when unknown).
fn deadline(op: &Op) -> Nanos {
    op.effect_deadline().map_or(NEVER, ns)
}

/// When an operation completed, for details.
fn ended(op: &Op) -> String {
    op.end.map_or_else(|| "never".to_string(), secs)
}

fn overlaps(op: &Op, w: &Fault) -> bool {
    let op_end = op.end.map_or(NEVER, ns);
    let w_end = w.end.map_or(NEVER, ns);
    begin(op) <= w_end && op_end >= ns(w.start)
}

fn norm(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// One sighting of a container after healing.
struct Sighting<'a> {
    /// Where: a node or a manager.
    place: &'a str,
    /// Under which name.
    name: &'a str,
}

/// What one name saw.
#[derive(Default)]
struct NameOps<'a> {
    creates: Vec<&'a Op>,
    removes: Vec<&'a Op>,
    renames_from: Vec<&'a Op>,
    renames_to: Vec<&'a Op>,
}

/// The history and the final state, looked up by name and by ID.
struct Index<'a> {
    ops: &'a [Op],
    fin: &'a Final,
    by_name: HashMap<&'a str, NameOps<'a>>,
    /// Container ID → where engines hold it.
    engine: HashMap<&'a str, Vec<Sighting<'a>>>,
    /// Container ID → which managers' states hold it.
    state: HashMap<&'a str, Vec<Sighting<'a>>>,
    /// Names on the engines.
    engine_names: BTreeSet<&'a str>,
    /// Container ID → the `Ok` creates that answered it.
    created: HashMap<&'a str, Vec<&'a Op>>,
    /// Name (or ID) → the latest deadline of its removes not refused.
    remove_deadline: HashMap<&'a str, Nanos>,
    /// Name → the renames (not refused) from it, by target.
    renames: HashMap<&'a str, Vec<RenameEdge<'a>>>,
}

/// The renames (not refused) from one name to another, sorted by
/// deadline, with the least start from each one on.
struct RenameEdge<'a> {
    to: &'a str,
    deadlines: Vec<Nanos>,
    suffix_min_start: Vec<Nanos>,
}

impl RenameEdge<'_> {
    /// The earliest instant a container that may carry the source name
    /// from `t` on may carry the target through one of these renames.
    fn arrival(&self, t: Nanos) -> Option<Nanos> {
        let i = self.deadlines.partition_point(|&d| d < t);
        self.suffix_min_start.get(i).map(|&start| start.max(t))
    }
}

impl<'a> Index<'a> {
    fn new(ops: &'a [Op], fin: &'a Final) -> Index<'a> {
        let mut by_name: HashMap<&'a str, NameOps<'a>> = HashMap::new();
        let mut created: HashMap<&'a str, Vec<&'a Op>> = HashMap::new();
        for op in ops {
            match &op.kind {
                OpKind::Create { name, .. } => {
                    by_name.entry(norm(name)).or_default().creates.push(op);
                    if let Outcome::Ok {
                        container_id: Some(id),
                    } = &op.outcome
                    {
                        created.entry(id.as_str()).or_default().push(op);
                    }
                }
                OpKind::Remove { name } => {
                    by_name.entry(norm(name)).or_default().removes.push(op);
                }
                OpKind::Rename { from, to } if norm(from) != norm(to) => {
                    by_name.entry(norm(from)).or_default().renames_from.push(op);
                    by_name.entry(norm(to)).or_default().renames_to.push(op);
                }
                OpKind::Rename { .. } | OpKind::Start { .. } | OpKind::Stop { .. } => {}
            }
        }
        let mut engine: HashMap<&'a str, Vec<Sighting<'a>>> = HashMap::new();
        let mut engine_names = BTreeSet::new();
        for node in &fin.nodes {
            for c in &node.containers {
                engine.entry(c.id.as_str()).or_default().push(Sighting {
                    place: &node.name,
                    name: norm(&c.name),
                });
                engine_names.insert(norm(&c.name));
            }
        }
        let mut state: HashMap<&'a str, Vec<Sighting<'a>>> = HashMap::new();
        for manager in &fin.managers {
            for c in &manager.containers {
                state.entry(c.id.as_str()).or_default().push(Sighting {
                    place: &manager.name,
                    name: norm(&c.name),
                });
            }
        }
        let mut remove_deadline: HashMap<&'a str, Nanos> = HashMap::new();
        let mut pairs: BTreeMap<(&'a str, &'a str), Vec<(Nanos, Nanos)>> = BTreeMap::new();
        for op in ops.iter().filter(|op| !op.is_failed()) {
            match &op.kind {
                OpKind::Remove { name } => {
                    let latest = remove_deadline.entry(norm(name)).or_insert(0);
                    *latest = (*latest).max(deadline(op));
                }
                OpKind::Rename { from, to } if norm(from) != norm(to) => {
                    pairs
                        .entry((norm(from), norm(to)))
                        .or_default()
                        .push((deadline(op), begin(op)));
                }
                _ => {}
            }
        }
        let mut renames: HashMap<&'a str, Vec<RenameEdge<'a>>> = HashMap::new();
        for ((from, to), mut edges) in pairs {
            edges.sort_unstable();
            let mut suffix_min_start = vec![NEVER; edges.len()];
            let mut min = NEVER;
            for (i, &(_, start)) in edges.iter().enumerate().rev() {
                min = min.min(start);
                suffix_min_start[i] = min;
            }
            renames.entry(from).or_default().push(RenameEdge {
                to,
                deadlines: edges.iter().map(|e| e.0).collect(),
                suffix_min_start,
            });
        }
        Index {
            ops,
            fin,
            by_name,
            engine,
            state,
            engine_names,
            created,
            remove_deadline,
            renames,
        }
    }

    fn name(&self, name: &str) -> Option<&NameOps<'a>> {
        self.by_name.get(name)
    }

    /// The `Ok` creates (name, ID) of the history.
    fn acked_creates(&self) -> impl Iterator<Item = (&'a Op, &'a str, Option<&'a str>)> + '_ {
        self.ops
            .iter()
            .filter_map(|op| match (&op.kind, &op.outcome) {
                (OpKind::Create { name, .. }, Outcome::Ok { container_id }) => {
                    Some((op, norm(name), container_id.as_deref()))
                }
                _ => None,
            })
    }

    /// Every name the container of `create` (of `name`) may have carried,
    /// with the earliest instant it may have: a time-respecting walk over
    /// the renames, earliest instants first (module docs).
    fn names_it_may_carry(&self, create: &Op, name: &'a str) -> HashMap<&'a str, Nanos> {
        let t0 = begin(create);
        let mut earliest: HashMap<&'a str, Nanos> = HashMap::from([(name, t0)]);
        let mut heap = BinaryHeap::from([Reverse((t0, name))]);
        while let Some(Reverse((t, x))) = heap.pop() {
            if earliest.get(x).is_some_and(|&e| e < t) {
                continue;
            }
            for edge in self.renames.get(x).into_iter().flatten() {
                let Some(at) = edge.arrival(t) else { continue };
                if earliest.get(edge.to).is_none_or(|&e| at < e) {
                    earliest.insert(edge.to, at);
                    heap.push(Reverse((at, edge.to)));
                }
            }
        }
        earliest
    }

    /// Whether a remove (not refused) of `name` may take effect at `t` or
    /// later.
    fn remove_may_follow(&self, name: &str, t: Nanos) -> bool {
        self.remove_deadline.get(name).is_some_and(|&d| d >= t)
    }

    /// Whether the container an `Ok` create of `name` answered `id` for
    /// may have been removed (module docs): a time-respecting walk over
    /// the renames it may have gone through, earliest instants first.
    fn possibly_removed(&self, create: &Op, name: &'a str, id: Option<&str>) -> bool {
        if id.is_some_and(|id| self.remove_may_follow(id, begin(create))) {
            return true;
        }
        self.names_it_may_carry(create, name)
            .into_iter()
            .any(|(x, t)| self.remove_may_follow(x, t))
    }

    /// Whether an engine holds a name the container of `create` may have
    /// carried (a rescheduled copy of it, say).
    fn name_may_be_held(&self, create: &Op, name: &'a str) -> bool {
        self.names_it_may_carry(create, name)
            .keys()
            .any(|x| self.engine_names.contains(x))
    }

    /// The `Ok` creates that answered `id`, by op id.
    fn creators(&self, id: &str) -> impl Iterator<Item = u64> + '_ {
        self.created.get(id).into_iter().flatten().map(|op| op.id)
    }
}

fn lost_creates(index: &Index<'_>, out: &mut Vec<Violation>) {
    for (op, name, id) in index.acked_creates() {
        let rescheduled = matches!(
            op.kind,
            OpKind::Create {
                reschedule: true,
                ..
            }
        );
        let present = match id {
            Some(id) if index.engine.contains_key(id) => true,
            Some(_) if rescheduled => index.name_may_be_held(op, name),
            Some(_) => false,
            None => index.engine_names.contains(name),
        };
        if present || index.possibly_removed(op, name, id) {
            continue;
        }
        let shown = id.unwrap_or("(no ID)");
        let mut detail = format!(
            "op {} (create {name}) acknowledged {shown} at {}; no engine holds it and no remove may have removed it",
            op.id,
            ended(op)
        );
        let knowing: Vec<&str> = id
            .and_then(|id| index.state.get(id))
            .into_iter()
            .flatten()
            .map(|s| s.place)
            .collect();
        if !knowing.is_empty() {
            detail.push_str(&format!(
                " (the state of {} still holds it)",
                knowing.join(", ")
            ));
        }
        out.push(
            Violation::new(Promise::NoLostCreate, detail)
                .ops([op.id])
                .names([name])
                .containers(id)
                .managers(knowing),
        );
    }
}

/// Acknowledged removes of one name, sorted by start, with the minimum
/// end from each one on.
struct AckedRemoves<'a> {
    starts: Vec<Nanos>,
    /// `suffix_min[i]`: the remove of least end among those from `i` on.
    suffix_min: Vec<&'a Op>,
}

impl<'a> AckedRemoves<'a> {
    fn new(removes: &[&'a Op]) -> AckedRemoves<'a> {
        let mut acked: Vec<&'a Op> = removes.iter().copied().filter(|r| r.is_ok()).collect();
        acked.sort_by_key(|r| begin(r));
        let mut suffix_min: Vec<&'a Op> = acked.clone();
        for i in (0..suffix_min.len().saturating_sub(1)).rev() {
            if deadline(suffix_min[i + 1]) < deadline(suffix_min[i]) {
                suffix_min[i] = suffix_min[i + 1];
            }
        }
        AckedRemoves {
            starts: acked.iter().map(|r| begin(r)).collect(),
            suffix_min,
        }
    }

    /// The remove of least end among those that began after `t`.
    fn first_ending_after(&self, t: Nanos) -> Option<&'a Op> {
        let i = self.starts.partition_point(|&s| s <= t);
        self.suffix_min.get(i).copied()
    }
}

/// Renames (not refused) from or to one name, sorted by start, with the
/// maximum deadline up to each one.
struct TouchingRenames {
    starts: Vec<Nanos>,
    prefix_max: Vec<Nanos>,
}

impl TouchingRenames {
    fn new(n: &NameOps<'_>) -> TouchingRenames {
        let mut renames: Vec<(Nanos, Nanos)> = n
            .renames_from
            .iter()
            .chain(&n.renames_to)
            .filter(|r| !r.is_failed())
            .map(|r| (begin(r), deadline(r)))
            .collect();
        renames.sort_unstable();
        let mut prefix_max = Vec::with_capacity(renames.len());
        let mut max = 0;
        for &(_, d) in &renames {
            max = max.max(d);
            prefix_max.push(max);
        }
        TouchingRenames {
            starts: renames.iter().map(|r| r.0).collect(),
            prefix_max,
        }
    }

    /// Whether one overlaps [from, to].
    fn overlap(&self, from: Nanos, to: Nanos) -> bool {
        let q = self.starts.partition_point(|&s| s <= to);
        q > 0 && self.prefix_max[q - 1] >= from
    }
}

fn undone_removes(index: &Index<'_>, out: &mut Vec<Violation>) {
    let mut cache: HashMap<&str, (AckedRemoves<'_>, TouchingRenames)> = HashMap::new();
    for (create, name, id) in index.acked_creates() {
        let Some(id) = id else { continue };
        let (Some(n), Some(created_end)) = (index.name(name), create.end) else {
            continue;
        };
        let on_engines = index.engine.get(id).into_iter().flatten();
        let in_states = index.state.get(id).into_iter().flatten();
        let engines: Vec<&str> = on_engines
            .filter(|s| s.name == name)
            .map(|s| s.place)
            .collect();
        let managers: Vec<&str> = in_states
            .filter(|s| s.name == name)
            .map(|s| s.place)
            .collect();
        if engines.is_empty() && managers.is_empty() {
            continue;
        }
        let (removes, renames) = cache
            .entry(name)
            .or_insert_with(|| (AckedRemoves::new(&n.removes), TouchingRenames::new(n)));
        let Some(remove) = removes.first_ending_after(ns(created_end)) else {
            continue;
        };
        if renames.overlap(begin(create), deadline(remove)) {
            continue;
        }
        let mut seen = Vec::new();
        if !engines.is_empty() {
            seen.push(format!("on {}", engines.join(", ")));
        }
        if !managers.is_empty() {
            seen.push(format!("in the state of {}", managers.join(", ")));
        }
        let detail = format!(
            "op {} removed {name} in [{}, {}], after op {} created it as {id} (acknowledged at {}), yet {id} is still {}",
            remove.id,
            secs(remove.start),
            ended(remove),
            create.id,
            ended(create),
            seen.join(" and ")
        );
        out.push(
            Violation::new(Promise::NoUndoneRemove, detail)
                .ops([create.id, remove.id])
                .names([name])
                .containers([id])
                .nodes(engines)
                .managers(managers),
        );
    }
}

fn unique_names(index: &Index<'_>, out: &mut Vec<Violation>) {
    let mut by_name: BTreeMap<&str, Vec<(&str, &EngineContainer)>> = BTreeMap::new();
    for node in &index.fin.nodes {
        for c in &node.containers {
            let name = norm(&c.name);
            if !name.is_empty() {
                by_name.entry(name).or_default().push((&node.name, c));
            }
        }
    }
    for (name, holders) in by_name.into_iter().filter(|(_, h)| h.len() > 1) {
        let listed: Vec<String> = holders
            .iter()
            .map(|(node, c)| format!("{} on {node}", c.id))
            .collect();
        out.push(
            Violation::new(
                Promise::UniqueNames,
                format!(
                    "name {name} on {} containers: {}",
                    holders.len(),
                    listed.join(", ")
                ),
            )
            .ops(holders.iter().flat_map(|(_, c)| index.creators(&c.id)))
            .names([name])
            .containers(holders.iter().map(|(_, c)| c.id.as_str()))
            .nodes(holders.iter().map(|(node, _)| *node)),
        );
    }
}

fn unique_swarm_ids(index: &Index<'_>, out: &mut Vec<Violation>) {
    let mut by_id: BTreeMap<&str, Vec<(&str, &EngineContainer)>> = BTreeMap::new();
    for node in &index.fin.nodes {
        for c in &node.containers {
            if let Some(swarm_id) = c.swarm_id.as_deref().filter(|s| !s.is_empty()) {
                by_id.entry(swarm_id).or_default().push((&node.name, c));
            }
        }
    }
    for (swarm_id, holders) in by_id.into_iter().filter(|(_, h)| h.len() > 1) {
        let listed: Vec<String> = holders
            .iter()
            .map(|(node, c)| format!("{} ({}) on {node}", c.id, norm(&c.name)))
            .collect();
        out.push(
            Violation::new(
                Promise::UniqueSwarmIds,
                format!(
                    "swarm ID {swarm_id} on {} containers: {}",
                    holders.len(),
                    listed.join(", ")
                ),
            )
            .ops(holders.iter().flat_map(|(_, c)| index.creators(&c.id)))
            .names(holders.iter().map(|(_, c)| norm(&c.name)))
            .containers(holders.iter().map(|(_, c)| c.id.as_str()))
            .nodes(holders.iter().map(|(node, _)| *node)),
        );
    }
}

/// `base` × (1 + `overcommit`) as swarm computes it: overcommit in rounded
/// millionths, rounded down, never below zero.
pub fn with_overcommit(base: u64, overcommit: f64) -> u128 {
    let ppm = (overcommit * 1_000_000.0).round();
    // A float to integer cast saturates (NaN gives 0).
    let factor = (1_000_000.0 + ppm).max(0.0) as u128;
    u128::from(base) * factor / 1_000_000
}

fn node_capacity(index: &Index<'_>, out: &mut Vec<Violation>) {
    for node in &index.fin.nodes {
        let memory: u128 = node.containers.iter().map(|c| u128::from(c.memory)).sum();
        let cpus: u128 = node
            .containers
            .iter()
            .map(|c| u128::from(c.cpus_milli))
            .sum();
        let memory_limit = with_overcommit(node.capacity.memory, node.overcommit);
        let cpu_limit = with_overcommit(node.capacity.cpus_milli, node.overcommit);
        let mut broken = Vec::new();
        if memory > memory_limit {
            broken.push(format!(
                "memory {} ({memory} B) > {} ({memory_limit} B: {} × (1 + {}))",
                mib(u64::try_from(memory).unwrap_or(u64::MAX)),
                mib(u64::try_from(memory_limit).unwrap_or(u64::MAX)),
                mib(node.capacity.memory),
                node.overcommit
            ));
        }
        if cpus > cpu_limit {
            broken.push(format!(
                "CPU {cpus}m > {cpu_limit}m ({}m × (1 + {}))",
                node.capacity.cpus_milli, node.overcommit
            ));
        }
        for what in broken {
            let ids = node.containers.iter().map(|c| c.id.as_str());
            out.push(
                Violation::new(
                    Promise::NodeCapacity,
                    format!(
                        "{}: its {} containers reserve {what}",
                        node.name,
                        node.containers.len()
                    ),
                )
                .ops(node.containers.iter().flat_map(|c| index.creators(&c.id)))
                .containers(ids)
                .nodes([node.name.as_str()]),
            );
        }
    }
}

fn unique_host_ports(index: &Index<'_>, out: &mut Vec<Violation>) {
    for node in &index.fin.nodes {
        let mut by_port: BTreeMap<(u16, Proto), Vec<(usize, &HostPort)>> = BTreeMap::new();
        for (i, c) in node.containers.iter().enumerate() {
            for p in &c.host_ports {
                by_port.entry((p.port, p.proto)).or_default().push((i, p));
            }
        }
        for ((port, _), binds) in by_port {
            let mut involved = BTreeSet::new();
            for (k, (a, pa)) in binds.iter().enumerate() {
                for (b, pb) in &binds[k + 1..] {
                    if a != b && pa.conflicts(pb) {
                        involved.insert(*a);
                        involved.insert(*b);
                    }
                }
            }
            if involved.is_empty() {
                continue;
            }
            let holders: Vec<&EngineContainer> =
                involved.iter().map(|&i| &node.containers[i]).collect();
            let listed: Vec<String> = holders
                .iter()
                .map(|c| {
                    let ports: Vec<String> = c
                        .host_ports
                        .iter()
                        .filter(|p| p.port == port)
                        .map(|p| p.to_string())
                        .collect();
                    format!("{} ({}) binds {}", c.id, norm(&c.name), ports.join(" "))
                })
                .collect();
            out.push(
                Violation::new(
                    Promise::UniqueHostPorts,
                    format!(
                        "{}: port {port} bound twice: {}",
                        node.name,
                        listed.join(", ")
                    ),
                )
                .ops(holders.iter().flat_map(|c| index.creators(&c.id)))
                .names(holders.iter().map(|c| norm(&c.name)))
                .containers(holders.iter().map(|c| c.id.as_str()))
                .nodes([node.name.as_str()]),
            );
        }
    }
}

fn one_leader_per_term(leaders: &[LeaderObservation], out: &mut Vec<Violation>) {
    let mut by_term: BTreeMap<u64, BTreeMap<&str, Duration>> = BTreeMap::new();
    for o in leaders.iter().filter(|o| o.is_leader) {
        let first = by_term
            .entry(o.term)
            .or_default()
            .entry(&o.manager)
            .or_insert(o.at);
        *first = (*first).min(o.at);
    }
    for (term, managers) in by_term.into_iter().filter(|(_, m)| m.len() > 1) {
        let listed: Vec<String> = managers
            .iter()
            .map(|(m, at)| format!("{m} (from {})", secs(*at)))
            .collect();
        out.push(
            Violation::new(
                Promise::OneLeaderPerTerm,
                format!(
                    "term {term} had {} leaders: {}",
                    managers.len(),
                    listed.join(", ")
                ),
            )
            .managers(managers.keys().copied()),
        );
    }
}

/// At most this many container IDs named in one convergence detail.
const LISTED: usize = 5;

fn listed(ids: &[&str]) -> String {
    let mut s = ids[..ids.len().min(LISTED)].join(" ");
    if ids.len() > LISTED {
        s.push_str(&format!(" and {} more", ids.len() - LISTED));
    }
    s
}

fn converged(fin: &Final, out: &mut Vec<Violation>) {
    let mut managers: Vec<&FinalManager> = fin.managers.iter().collect();
    managers.sort_by(|a, b| a.name.cmp(&b.name));
    for m in managers.iter().filter(|m| m.digest.is_none()) {
        out.push(
            Violation::new(
                Promise::Converged,
                format!("{} could not be read after healing", m.name),
            )
            .managers([m.name.as_str()]),
        );
    }
    // Groups of equal digests, in the order of their first manager.
    let mut groups: Vec<(&str, Vec<&FinalManager>)> = Vec::new();
    for m in &managers {
        let Some(digest) = m.digest.as_deref() else {
            continue;
        };
        match groups.iter_mut().find(|(d, _)| *d == digest) {
            Some((_, members)) => members.push(m),
            None => groups.push((digest, vec![m])),
        }
    }
    let Some(largest) = (0..groups.len()).max_by_key(|&i| (groups[i].1.len(), Reverse(i))) else {
        return;
    };
    let (majority_digest, majority) = &groups[largest];
    let reference: BTreeSet<&str> = majority[0]
        .containers
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    let majority_names: Vec<&str> = majority.iter().map(|m| m.name.as_str()).collect();
    for (digest, members) in groups.iter().filter(|(d, _)| d != majority_digest) {
        for m in members {
            let own: BTreeSet<&str> = m.containers.iter().map(|c| c.id.as_str()).collect();
            let extra: Vec<&str> = own.difference(&reference).copied().collect();
            let missing: Vec<&str> = reference.difference(&own).copied().collect();
            let mut detail = format!(
                "{} has digest {digest} where {} have {majority_digest}",
                m.name,
                majority_names.join(", ")
            );
            if !extra.is_empty() {
                detail.push_str(&format!(
                    "; its state holds {} that theirs does not",
                    listed(&extra)
                ));
            }
            if !missing.is_empty() {
                detail.push_str(&format!("; it lacks {}", listed(&missing)));
            }
            out.push(
                Violation::new(Promise::Converged, detail)
                    .containers(extra.iter().chain(&missing).copied())
                    .managers(
                        std::iter::once(m.name.as_str()).chain(majority_names.iter().copied()),
                    ),
            );
        }
    }
}

/// An acquisition of a name, for the pairwise check.
struct Acquisition<'a> {
    op: &'a Op,
    start: Nanos,
    end: Nanos,
    /// `g`: `end` of a later acquisition must reach it.
    reach: Nanos,
}

fn names_linearizable(index: &Index<'_>, out: &mut Vec<Violation>) {
    let mut names: Vec<&str> = index.by_name.keys().copied().collect();
    names.sort_unstable();
    for name in names {
        let Some(n) = index.name(name) else { continue };
        // Releases sorted by deadline, with the least start from each on.
        let mut releases: Vec<(Nanos, Nanos)> = n
            .removes
            .iter()
            .chain(&n.renames_from)
            .filter(|r| !r.is_failed())
            .map(|r| (deadline(r), begin(r)))
            .collect();
        releases.sort_unstable();
        let mut suffix_min_start = vec![NEVER; releases.len()];
        let mut min = NEVER;
        for (i, &(_, start)) in releases.iter().enumerate().rev() {
            min = min.min(start);
            suffix_min_start[i] = min;
        }
        let earliest_release_start = |s: Nanos| {
            let i = releases.partition_point(|&(end, _)| end < s);
            suffix_min_start.get(i).copied().unwrap_or(NEVER)
        };
        let mut acquisitions: Vec<Acquisition<'_>> = n
            .creates
            .iter()
            .chain(&n.renames_to)
            .filter(|op| op.is_ok())
            .map(|op| {
                let start = begin(op);
                Acquisition {
                    op,
                    start,
                    end: deadline(op),
                    reach: start.max(earliest_release_start(start)),
                }
            })
            .collect();
        if acquisitions.len() < 2 {
            continue;
        }
        acquisitions.sort_by_key(|a| (a.end, a.start, a.op.id));
        let ends: Vec<Nanos> = acquisitions.iter().map(|a| a.end).collect();
        // prefix_max[i]: the acquisition of greatest reach among 0..=i.
        let mut prefix_max: Vec<usize> = Vec::with_capacity(acquisitions.len());
        for i in 0..acquisitions.len() {
            let best = match prefix_max.last() {
                Some(&j) if acquisitions[j].reach >= acquisitions[i].reach => j,
                _ => i,
            };
            prefix_max.push(best);
        }
        for (j, b) in acquisitions.iter().enumerate() {
            let p = j.min(ends.partition_point(|&e| e < b.reach));
            if p == 0 {
                continue;
            }
            let a = &acquisitions[prefix_max[p - 1]];
            if a.reach <= b.end {
                continue;
            }
            let detail = format!(
                "name {name} acknowledged to op {} ({} in [{}, {}]) and to op {} ({} in [{}, {}]) with no remove or rename of it that could come in between",
                a.op.id,
                a.op.kind,
                secs(a.op.start),
                ended(a.op),
                b.op.id,
                b.op.kind,
                secs(b.op.start),
                ended(b.op)
            );
            out.push(
                Violation::new(Promise::NamesLinearizable, detail)
                    .ops([a.op.id, b.op.id])
                    .names([name])
                    .containers([&a.op.outcome, &b.op.outcome].into_iter().filter_map(
                        |o| match o {
                            Outcome::Ok { container_id } => container_id.clone(),
                            _ => None,
                        },
                    )),
            );
        }
    }
}

/// Reports the orphans; answers how many.
fn no_orphans(index: &Index<'_>, out: &mut Vec<Violation>) -> usize {
    let mut count = 0;
    for node in &index.fin.nodes {
        for c in &node.containers {
            if index.state.contains_key(c.id.as_str()) {
                continue;
            }
            count += 1;
            let name = norm(&c.name);
            let acked: Vec<u64> = index.creators(&c.id).collect();
            let doubtful: Vec<&Op> = index
                .name(name)
                .map(|n| n.creates.iter().copied().filter(|op| !op.is_ok()).collect())
                .unwrap_or_default();
            let mut detail = format!(
                "{} ({name}) on {} is in no manager's state",
                c.id, node.name
            );
            if !acked.is_empty() {
                let ops: Vec<String> = acked.iter().map(|id| format!("op {id}")).collect();
                detail.push_str(&format!("; created by {} (acknowledged)", ops.join(", ")));
            }
            if !doubtful.is_empty() {
                let ops: Vec<String> = doubtful
                    .iter()
                    .map(|op| format!("op {} ({})", op.id, op.outcome.word()))
                    .collect();
                detail.push_str(&format!(
                    "; creates of {name} not acknowledged: {}",
                    ops.join(", ")
                ));
            }
            out.push(
                Violation::new(Promise::NoOrphans, detail)
                    .ops(acked.iter().copied().chain(doubtful.iter().map(|op| op.id)))
                    .names([name])
                    .containers([c.id.as_str()])
                    .nodes([node.name.as_str()]),
            );
        }
    }
    count
}

#[cfg(test)]
mod tests;
