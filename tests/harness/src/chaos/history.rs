//! The history of a chaos run: every operation a client sent (what, to
//! which manager, when it was invoked and when it completed, and how), the
//! fault windows the nemesis opened and closed, and who said it led in
//! which term. [`History`] records them from many threads at once; a
//! [`Recording`] is what it recorded, saved as JSON when a run fails and
//! loaded again to replay it into the checker (`super::checker`).
//!
//! Instants are [`Duration`]s since the run started, saved as whole
//! nanoseconds (`start_ns`, `end_ns`, `at_ns`).
//!
//! An operation's [`Outcome`] is what its client saw:
//! - [`Outcome::Ok`]: the manager acknowledged it (a create carries the
//!   container ID it answered);
//! - [`Outcome::Failed`]: the manager definitely refused it and nothing
//!   happened (409 name in use, 400, 404, unschedulable): the checker
//!   takes such an operation as having had no effect at all;
//! - [`Outcome::Unknown`]: the client cannot tell (timeout, connection
//!   reset, a 5xx from a proxy): it may have taken effect at any instant
//!   after it was invoked, even after its client gave up. An operation
//!   still running when the history is read counts as unknown.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What an operation asked a manager to do. Containers are named by the
/// names the workload gave them (a leading `/` is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpKind {
    /// `docker create --name NAME -m MEMORY -c CPUS -p PORT:..`.
    Create {
        /// Container name.
        name: String,
        /// Reserved memory in bytes (0: none).
        memory: u64,
        /// Reserved CPU in thousandths (0: none).
        cpus_milli: u64,
        /// Host ports published (TCP, every address).
        host_ports: Vec<u16>,
        /// Whether it asked to be rescheduled on node failure (`-e
        /// reschedule:on-node-failure`): its container may be replaced by
        /// a copy with another ID and the same name.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reschedule: bool,
    },
    /// `docker start NAME`.
    Start {
        /// Container name.
        name: String,
    },
    /// `docker stop NAME`.
    Stop {
        /// Container name.
        name: String,
    },
    /// `docker rename FROM TO`.
    Rename {
        /// The name before.
        from: String,
        /// The name after.
        to: String,
    },
    /// `docker rm -f NAME`.
    Remove {
        /// Container name.
        name: String,
    },
}

impl OpKind {
    /// A short word for the kind: `create`, `start`, `stop`, `rename`,
    /// `remove`.
    pub fn word(&self) -> &'static str {
        match self {
            OpKind::Create { .. } => "create",
            OpKind::Start { .. } => "start",
            OpKind::Stop { .. } => "stop",
            OpKind::Rename { .. } => "rename",
            OpKind::Remove { .. } => "remove",
        }
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpKind::Create {
                name,
                memory,
                cpus_milli,
                host_ports,
                reschedule,
            } => {
                write!(f, "create {name}")?;
                if *reschedule {
                    write!(f, " -e reschedule:on-node-failure")?;
                }
                if *memory > 0 {
                    write!(f, " -m {memory}")?;
                }
                if *cpus_milli > 0 {
                    write!(f, " cpus {cpus_milli}m")?;
                }
                for port in host_ports {
                    write!(f, " -p {port}")?;
                }
                Ok(())
            }
            OpKind::Start { name } => write!(f, "start {name}"),
            OpKind::Stop { name } => write!(f, "stop {name}"),
            OpKind::Rename { from, to } => write!(f, "rename {from} {to}"),
            OpKind::Remove { name } => write!(f, "remove {name}"),
        }
    }
}

/// How an operation ended, as its client saw it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged.
    Ok {
        /// The container ID a create was answered with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_id: Option<String>,
    },
    /// Definitely refused: it had no effect.
    Failed {
        /// The HTTP status, when there was one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The error message.
        message: String,
    },
    /// Ambiguous: it may or may not have taken effect.
    Unknown {
        /// What the client saw (timeout, reset, status).
        message: String,
    },
}

impl Outcome {
    /// Acknowledged, with no container ID (anything but a create).
    pub fn ok() -> Outcome {
        Outcome::Ok { container_id: None }
    }

    /// An acknowledged create that answered `id`.
    pub fn created(id: impl Into<String>) -> Outcome {
        Outcome::Ok {
            container_id: Some(id.into()),
        }
    }

    /// A definite refusal.
    pub fn failed(status: Option<u16>, message: impl Into<String>) -> Outcome {
        Outcome::Failed {
            status,
            message: message.into(),
        }
    }

    /// An ambiguous ending.
    pub fn unknown(message: impl Into<String>) -> Outcome {
        Outcome::Unknown {
            message: message.into(),
        }
    }

    /// `ok`, `failed` or `unknown`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Failed { .. } => "failed",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// The outcome of an operation that never completed.
const NEVER_COMPLETED: &str = "never completed";

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Its number, in invocation order from 0.
    pub id: u64,
    /// The client (worker) that sent it.
    pub client: u32,
    /// The manager it was sent to.
    pub manager: String,
    /// What it asked.
    pub kind: OpKind,
    /// When it was invoked, since the run started.
    #[serde(rename = "start_ns", with = "nanos")]
    pub start: Duration,
    /// When it completed; `None` if it never did (then its outcome is
    /// unknown).
    #[serde(
        rename = "end_ns",
        with = "opt_nanos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub end: Option<Duration>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Op {
    /// Whether it was acknowledged.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// Whether it was definitely refused.
    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }

    /// Whether it is ambiguous (or never completed).
    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown { .. })
    }

    /// How long it took, when it completed.
    pub fn latency(&self) -> Option<Duration> {
        self.end.map(|end| end.saturating_sub(self.start))
    }

    /// The last instant it may have taken effect: its end when it was
    /// acknowledged or refused, `None` (never bounded) when unknown.
    pub fn effect_deadline(&self) -> Option<Duration> {
        match self.outcome {
            Outcome::Unknown { .. } => None,
            _ => self.end,
        }
    }
}

/// What a fault did.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A manager SIGKILLed (and started again at the end of the window).
    Kill,
    /// A manager SIGSTOPped (SIGCONT at the end).
    Pause,
    /// Managers cut in two groups.
    Partition,
    /// Traffic dropped one way only.
    OneWay,
    /// Packets lost or delayed on some links.
    Loss,
    /// Two managers killed at once (quorum lost with three).
    KillTwo,
    /// An engine killed.
    EngineKill,
    /// Anything else, in words.
    Other(String),
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Loss => "loss",
            FaultKind::KillTwo => "kill-two",
            FaultKind::EngineKill => "engine-kill",
            FaultKind::Other(what) => what,
        })
    }
}

/// A fault window: from its start until it healed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What it did.
    pub kind: FaultKind,
    /// Whom it hit (a manager, `m1|m2,m3` for a partition, an engine).
    pub target: String,
    /// When it began, since the run started.
    #[serde(rename = "start_ns", with = "nanos")]
    pub start: Duration,
    /// When it healed; `None` if it had not when the run stopped.
    #[serde(
        rename = "end_ns",
        with = "opt_nanos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub end: Option<Duration>,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} [{}, ", self.kind, self.target, secs(self.start))?;
        match self.end {
            Some(end) => write!(f, "{}]", secs(end)),
            None => write!(f, "end]"),
        }
    }
}

/// What one manager said of its leadership at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderObservation {
    /// The manager asked.
    pub manager: String,
    /// Its Raft term.
    pub term: u64,
    /// Whether it said it was the leader of that term.
    pub is_leader: bool,
    /// When it answered, since the run started.
    #[serde(rename = "at_ns", with = "nanos")]
    pub at: Duration,
}

/// An instant as seconds with three decimals: `12.345s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Everything a [`History`] recorded; JSON for saving a run and replaying
/// it into the checker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recording {
    /// The operations, by id.
    pub ops: Vec<Op>,
    /// The fault windows, in the order they opened.
    pub faults: Vec<Fault>,
    /// The leadership observations, in the order they were made.
    pub leaders: Vec<LeaderObservation>,
}

impl Recording {
    /// As JSON, on one line.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// Read back from [`Recording::to_json`]'s JSON.
    pub fn from_json(json: &str) -> serde_json::Result<Recording> {
        serde_json::from_str(json)
    }

    /// Writes it as JSON to `path`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let json = self.to_json().context("serializing the history")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a history [`Recording::save`] wrote.
    pub fn load(path: &Path) -> anyhow::Result<Recording> {
        let json =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Recording::from_json(&json).with_context(|| format!("parsing {}", path.display()))
    }
}

/// An invoked operation, to complete with [`History::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHandle(usize);

impl OpHandle {
    /// The operation's id in the history.
    pub fn id(self) -> u64 {
        self.0 as u64
    }
}

/// An opened fault window, to close with [`History::fault_healed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultHandle(usize);

/// The recorder of a run, shared by its clients, its nemesis and its
/// leader observer (`&History` is enough: it is `Sync`). One short lock per
/// call: far more than a few thousand operations a second.
#[derive(Debug)]
pub struct History {
    started: Instant,
    recording: Mutex<Recording>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// A history whose run starts now.
    pub fn new() -> History {
        History::starting_at(Instant::now())
    }

    /// A history whose run started at `started`.
    pub fn starting_at(started: Instant) -> History {
        History {
            started,
            recording: Mutex::new(Recording::default()),
        }
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `client` sends `kind` to `manager` now.
    pub fn invoke(&self, client: u32, manager: impl Into<String>, kind: OpKind) -> OpHandle {
        let mut op = Op {
            id: 0,
            client,
            manager: manager.into(),
            kind,
            start: Duration::ZERO,
            end: None,
            outcome: Outcome::unknown(NEVER_COMPLETED),
        };
        let mut recording = self.lock();
        op.start = self.elapsed();
        let index = recording.ops.len();
        op.id = index as u64;
        recording.ops.push(op);
        OpHandle(index)
    }

    /// Records that the operation of `handle` ended now with `outcome`.
    /// The first completion of an operation counts; later ones are
    /// ignored.
    pub fn complete(&self, handle: OpHandle, outcome: Outcome) {
        let mut recording = self.lock();
        let end = self.elapsed();
        if let Some(op) = recording.ops.get_mut(handle.0) {
            if op.end.is_none() {
                op.end = Some(end);
                op.outcome = outcome;
            }
        }
    }

    /// Records that a fault of `kind` hits `target` from now on.
    pub fn fault_began(&self, kind: FaultKind, target: impl Into<String>) -> FaultHandle {
        let target = target.into();
        let mut recording = self.lock();
        let start = self.elapsed();
        recording.faults.push(Fault {
            kind,
            target,
            start,
            end: None,
        });
        FaultHandle(recording.faults.len() - 1)
    }

    /// Records that the fault of `handle` healed now (the first call
    /// counts).
    pub fn fault_healed(&self, handle: FaultHandle) {
        let mut recording = self.lock();
        let end = self.elapsed();
        if let Some(fault) = recording.faults.get_mut(handle.0) {
            fault.end.get_or_insert(end);
        }
    }

    /// Records that `manager` said now that its term is `term` and whether
    /// it leads.
    pub fn observe_leader(&self, manager: impl Into<String>, term: u64, is_leader: bool) {
        let manager = manager.into();
        let mut recording = self.lock();
        let at = self.elapsed();
        recording.leaders.push(LeaderObservation {
            manager,
            term,
            is_leader,
            at,
        });
    }

    /// How many operations were invoked so far.
    pub fn len(&self) -> usize {
        self.lock().ops.len()
    }

    /// Whether no operation was invoked yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of everything recorded so far (operations still running are
    /// unknown, with no end).
    pub fn recording(&self) -> Recording {
        self.lock().clone()
    }
}

/// A [`Duration`] as whole nanoseconds.
mod nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_nanos)
    }
}

/// An optional [`Duration`] as whole nanoseconds.
mod opt_nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|n| n.map(Duration::from_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    fn create(name: &str) -> OpKind {
        OpKind::Create {
            name: name.to_string(),
            memory: 64 << 20,
            cpus_milli: 500,
            host_ports: vec![8080],
            reschedule: false,
        }
    }

    #[test]
    fn records_invocations_and_completions_in_order() {
        let history = History::new();
        let a = history.invoke(1, "m1", create("a"));
        let b = history.invoke(2, "m2", OpKind::Remove { name: "a".into() });
        history.complete(b, Outcome::unknown("timeout"));
        history.complete(a, Outcome::created("c1"));
        history.complete(a, Outcome::failed(Some(409), "late"));
        let rec = history.recording();
        assert_eq!(rec.ops.len(), 2);
        assert_eq!((a.id(), b.id()), (0, 1));
        assert_eq!(
            rec.ops[0].outcome,
            Outcome::created("c1"),
            "first completion wins"
        );
        assert_eq!(rec.ops[0].manager, "m1");
        assert_eq!(rec.ops[1].outcome, Outcome::unknown("timeout"));
        for op in &rec.ops {
            let end = op.end.expect("completed");
            assert!(op.start <= end);
        }
        assert!(rec.ops[0].start <= rec.ops[1].start);
    }

    #[test]
    fn an_operation_never_completed_is_unknown_with_no_end() {
        let history = History::new();
        history.invoke(1, "m1", create("a"));
        let rec = history.recording();
        assert!(rec.ops[0].is_unknown());
        assert_eq!(rec.ops[0].end, None);
        assert_eq!(rec.ops[0].effect_deadline(), None);
    }

    #[test]
    fn records_from_many_threads() {
        let history = Arc::new(History::new());
        let threads: Vec<_> = (0..4u32)
            .map(|client| {
                let history = Arc::clone(&history);
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let h = history.invoke(client, "m1", create(&format!("c{client}-{i}")));
                        history.complete(h, Outcome::created(format!("id-{client}-{i}")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recorder thread");
        }
        let rec = history.recording();
        assert_eq!(rec.ops.len(), 2000);
        for (i, op) in rec.ops.iter().enumerate() {
            assert_eq!(op.id, i as u64);
            assert!(op.is_ok() && op.end.is_some());
        }
    }

    #[test]
    fn faults_and_leaders_are_recorded() {
        let history = History::new();
        let f = history.fault_began(FaultKind::Partition, "m1|m2,m3");
        history.observe_leader("m2", 3, true);
        history.fault_healed(f);
        let open = history.fault_began(FaultKind::Other("clock skew".into()), "m3");
        let rec = history.recording();
        assert_eq!(rec.faults.len(), 2);
        assert!(rec.faults[0].end.is_some());
        assert_eq!(rec.faults[1].end, None);
        assert_eq!(rec.leaders[0].term, 3);
        assert!(rec.leaders[0].is_leader);
        history.fault_healed(open);
        assert!(history.recording().faults[1].end.is_some());
    }

    #[test]
    fn round_trips_through_json_and_a_file() {
        let rec = Recording {
            ops: vec![
                Op {
                    id: 0,
                    client: 7,
                    manager: "m1".into(),
                    kind: create("web"),
                    start: Duration::from_nanos(1_234_567_891),
                    end: Some(Duration::from_millis(1300)),
                    outcome: Outcome::created("abc"),
                },
                Op {
                    id: 1,
                    client: 8,
                    manager: "m2".into(),
                    kind: OpKind::Rename {
                        from: "web".into(),
                        to: "api".into(),
                    },
                    start: Duration::from_millis(1400),
                    end: None,
                    outcome: Outcome::unknown(NEVER_COMPLETED),
                },
                Op {
                    id: 2,
                    client: 8,
                    manager: "m3".into(),
                    kind: OpKind::Stop { name: "api".into() },
                    start: Duration::from_millis(1500),
                    end: Some(Duration::from_millis(1600)),
                    outcome: Outcome::failed(Some(404), "no such container"),
                },
            ],
            faults: vec![Fault {
                kind: FaultKind::KillTwo,
                target: "m1,m2".into(),
                start: Duration::from_secs(1),
                end: Some(Duration::from_secs(2)),
            }],
            leaders: vec![LeaderObservation {
                manager: "m3".into(),
                term: 9,
                is_leader: false,
                at: Duration::from_millis(1750),
            }],
        };
        let json = rec.to_json().expect("serializes");
        assert!(json.contains("\"start_ns\":1234567891"), "{json}");
        assert!(json.contains("\"kind\":\"kill-two\""), "{json}");
        assert_eq!(Recording::from_json(&json).expect("parses"), rec);

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.json");
        rec.save(&path).expect("saves");
        assert_eq!(Recording::load(&path).expect("loads"), rec);
        assert!(Recording::load(&dir.path().join("missing.json")).is_err());
        assert!(Recording::from_json("{\"ops\": 3}").is_err());
    }
}
