//! One hollow engine: its identity, its containers with Docker's state
//! machine (created → running ⇄ paused → exited, restarting under a restart
//! policy), and its event stream.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use bollard::models::{
    ContainerCreateBody, EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum,
    PortMap, RestartPolicyNameEnum,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use swarm::cluster::normalize_image_name;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::net::Life;
use super::FleetConfig;

/// The API version every node speaks.
pub(crate) const API_VERSION: &str = "1.41";
/// The oldest API version a node accepts.
pub(crate) const MIN_API_VERSION: &str = "1.12";
/// What nodes report as their Docker version.
pub(crate) const SERVER_VERSION: &str = "20.10.24+hollow";
/// The one image every node holds.
pub(crate) const IMAGE_TAG: &str = crate::image::IMAGE;
/// Its ID.
pub(crate) const IMAGE_ID: &str =
    "sha256:d580ce7c52d7920333b4a289141f4cc9f9da3bdc0fbfd1f8457239132c2f929a";
/// Its only layer.
pub(crate) const IMAGE_LAYER: &str =
    "sha256:6db8b32dea33cef62e36e7f88766d06202ecc3b438c21684b34251db6d9d006a";
/// Its environment.
pub(crate) const IMAGE_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Its default command.
pub(crate) const IMAGE_CMD: &str = "sh";
/// Its size in bytes.
pub(crate) const IMAGE_SIZE: i64 = 4_261_550;
/// When it was built (Unix seconds).
pub(crate) const IMAGE_CREATED: i64 = 1_684_454_400;
/// Events kept for a slow reader before its stream is closed.
const EVENT_BUFFER: usize = 256;
/// First delay before a restart policy restarts a container; doubles with
/// every quick restart, up to [`MAX_RESTART_DELAY`].
const RESTART_DELAY: Duration = Duration::from_millis(100);
/// Longest delay between restarts.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
/// A container that ran this long restarts with the first delay again.
const RESTART_RESET: Duration = Duration::from_secs(10);

/// What every node of a fleet shares.
pub(crate) struct Shared {
    /// `NCPU`.
    pub cpus: i64,
    /// `MemTotal`.
    pub memory: i64,
    /// Engine labels, `key=value`.
    pub labels: Vec<String>,
    /// Delay before every answer.
    pub latency: Duration,
    /// Node names are `<prefix>-<first_index + i>`.
    pub name_prefix: String,
    /// The number in the first node's name.
    pub first_index: usize,
    /// The host's kernel version, reported by every node.
    pub kernel: String,
    /// When the fleet started (networks' creation time).
    pub started: DateTime<Utc>,
    /// The API, shared by every node (the node comes as an extension).
    pub router: axum::Router,
    /// Cancelled when the fleet is dropped: stops listeners and timers.
    pub shutdown: CancellationToken,
    ids: RandomIds,
}

impl Shared {
    pub(crate) fn new(config: &FleetConfig) -> Shared {
        Shared {
            cpus: config.cpus,
            memory: config.memory,
            labels: config.labels.clone(),
            latency: config.latency,
            name_prefix: config.name_prefix.clone(),
            first_index: config.first_index,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "5.15.0-hollow".into()),
            started: Utc::now(),
            router: super::api::router(),
            shutdown: CancellationToken::new(),
            ids: RandomIds::default(),
        }
    }
}

/// Random 64-hex-digit IDs: a keyed hash of a counter, so never repeated
/// within a process.
#[derive(Default)]
struct RandomIds {
    key: std::collections::hash_map::RandomState,
    counter: AtomicU64,
}

impl RandomIds {
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut out = String::with_capacity(64);
        for part in 0..4u64 {
            let mut h = self.key.build_hasher();
            h.write_u64(n);
            h.write_u64(part);
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }
}

/// A deterministic 64-bit mix of `seed` (FNV-1a, then splitmix64).
fn mix(seed: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 hex digits derived from `seed` (stable: network IDs, sandbox IDs).
pub(crate) fn derived_hex(seed: &str) -> String {
    (0..4).map(|i| format!("{:016x}", mix(seed, i))).collect()
}

/// An engine ID in Docker 20.10's format (12 groups of 4 base32 letters),
/// derived from the node's address.
fn engine_id(addr: &SocketAddr) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let seed = format!("hollow-engine {addr}");
    let mut groups = Vec::with_capacity(12);
    for g in 0..12u64 {
        let bits = mix(&seed, g);
        let group: String = (0..4)
            .map(|k| char::from(ALPHABET[((bits >> (k * 5)) & 31) as usize]))
            .collect();
        groups.push(group);
    }
    groups.join(":")
}

/// A Docker API error: status and message (`{"message": ...}`); 304 has no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_modified() -> ApiError {
        ApiError::new(StatusCode::NOT_MODIFIED, "")
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn no_such_container(reference: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No such container: {reference}"),
        )
    }
}

/// A container's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
}

impl Status {
    /// Docker's name of the state.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        }
    }

    /// Whether Docker calls the container running (`State.Running`).
    pub(crate) fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// Why a container stopped: decides whether its restart policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Its command ended.
    Natural,
    /// `kill`: only `unless-stopped` stays down.
    Killed,
    /// `stop`, `restart`, `rm -f`: stays down.
    Stopped,
}

/// The host config fields a hollow container keeps.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub port_bindings: Option<PortMap>,
    pub publish_all_ports: bool,
    pub restart: RestartPolicyNameEnum,
    pub max_retry: i64,
    pub network_mode: String,
    pub auto_remove: bool,
    pub privileged: bool,
    pub binds: Option<Vec<String>>,
    pub shm_size: i64,
}

/// Config flags of a container.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
}

/// A published port while the container runs: (`80/tcp`, host IP, host port).
pub(crate) type Published = (String, String, u16);

/// One container, as small as the shapes allow.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub working_dir: String,
    pub flags: Flags,
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub host: Host,
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub restart_count: i64,
    /// How many times it was started (each run adds its canned output).
    pub runs: u32,
    /// Bumped by every start and exit: a timer of an older run does nothing.
    generation: u64,
    /// Restarts that followed a short run (the restart delay doubles).
    quick_restarts: u32,
    /// Index of its address in the bridge network.
    pub ip_index: u32,
    pub published: Vec<Published>,
}

impl Container {
    /// Entrypoint followed by command: what would run.
    pub(crate) fn argv(&self) -> Vec<String> {
        let mut argv = self.entrypoint.clone().unwrap_or_default();
        argv.extend(self.cmd.clone().unwrap_or_default());
        argv
    }

    /// What its command does.
    pub(crate) fn program(&self) -> Program {
        program(&self.argv(), self.flags.tty || self.flags.open_stdin)
    }

    /// Its address on the bridge network, e.g. `172.17.0.2`.
    pub(crate) fn ip(&self) -> String {
        let n = self.ip_index + 2;
        format!("172.17.{}.{}", (n >> 8) & 255, n & 255)
    }

    /// Its MAC address on the bridge network.
    pub(crate) fn mac(&self) -> String {
        let n = self.ip_index + 2;
        format!("02:42:ac:11:{:02x}:{:02x}", (n >> 8) & 255, n & 255)
    }
}

/// What a container's command does once started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Program {
    /// `Some((after, code))`: it ends by itself; `None`: it runs until stopped.
    pub exit: Option<(Duration, i64)>,
    /// Its canned output (one run), stdout lines.
    pub stdout: Vec<String>,
    /// Its canned output (one run), stderr lines.
    pub stderr: Vec<String>,
}

/// Reads what `argv` would do in busybox: `true`, `false`, `echo`, `exit`,
/// `sleep` (alone or in a `sh -c` script of `;`/`&&`-separated commands)
/// end after the sleeps with the last command's status; a shell without
/// `-c` ends at once unless `interactive`; anything else runs until stopped.
/// A command that prints nothing gets one canned line naming it.
pub(crate) fn program(argv: &[String], interactive: bool) -> Program {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let base = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    let exit = match base {
        None => Some((Duration::ZERO, 0)),
        Some("sh" | "ash" | "bash") if argv.get(1).map(String::as_str) == Some("-c") => script(
            argv.get(2).map(String::as_str).unwrap_or(""),
            &mut stdout,
            &mut stderr,
        ),
        // Reads stdin: ends at once when it is closed.
        Some(_) if reads_stdin(argv) => (!interactive).then_some((Duration::ZERO, 0)),
        Some(_) => simple(argv, &mut stdout, &mut stderr),
    };
    if stdout.is_empty() && stderr.is_empty() {
        stdout.push(format!("hollow-engine: {}", command_line(argv)));
    }
    Program {
        exit,
        stdout,
        stderr,
    }
}

/// Whether `argv` only reads its stdin (a bare shell or `cat`).
pub(crate) fn reads_stdin(argv: &[String]) -> bool {
    argv.len() == 1
        && matches!(
            argv[0].rsplit('/').next(),
            Some("sh" | "ash" | "bash" | "cat")
        )
}

/// One simple command: `Some((time it takes, status))`, or `None` when it
/// runs until stopped.
fn simple(
    argv: &[String],
    stdout: &mut Vec<String>,
    stderr: &mut Vec<String>,
) -> Option<(Duration, i64)> {
    let name = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a))?;
    let args = &argv[1..];
    match name {
        "true" | ":" => Some((Duration::ZERO, 0)),
        "false" => Some((Duration::ZERO, 1)),
        "exit" => Some((
            Duration::ZERO,
            args.first()
                .and_then(|a| a.parse::<i64>().ok())
                .unwrap_or(0)
                & 255,
        )),
        "echo" => {
            let (to_stderr, words): (bool, Vec<&String>) = {
                let to_stderr = args.iter().any(|a| a == ">&2" || a == "1>&2");
                (
                    to_stderr,
                    args.iter()
                        .filter(|a| *a != ">&2" && *a != "1>&2")
                        .collect(),
                )
            };
            let (newline, words) = match words.first() {
                Some(first) if first.as_str() == "-n" => (false, &words[1..]),
                _ => (true, &words[..]),
            };
            let text = words
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if newline || !text.is_empty() {
                if to_stderr {
                    stderr.push(text);
                } else {
                    stdout.push(text);
                }
            }
            Some((Duration::ZERO, 0))
        }
        "sleep" => {
            let mut total = Duration::ZERO;
            for a in args {
                match sleep_arg(a) {
                    Some(Some(d)) => total += d,
                    Some(None) => return None,
                    None => return Some((Duration::ZERO, 1)),
                }
            }
            if args.is_empty() {
                return Some((Duration::ZERO, 1));
            }
            Some((total, 0))
        }
        _ => None,
    }
}

/// `10`, `1.5`, `2m`, `1h`, `1d`: `Some(Some(d))`; `inf`/`infinity`:
/// `Some(None)`; anything else: `None`.
fn sleep_arg(arg: &str) -> Option<Option<Duration>> {
    let a = arg.trim();
    if a == "inf" || a == "infinity" {
        return Some(None);
    }
    let (number, unit) = match a.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&a[..i], c),
        _ => (a, 's'),
    };
    let n: f64 = number.parse().ok()?;
    let secs = n * match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    if secs > 1e9 {
        return Some(None);
    }
    Some(Some(Duration::from_secs_f64(secs)))
}

/// A `sh -c` script: commands separated by `;`, `&&`, `||` or newlines,
/// words split on blanks with simple quotes removed.
fn script(
    text: &str,
    stdout: &mut Vec<String>,
    stderr: &mut Vec<String>,
) -> Option<(Duration, i64)> {
    let mut total = Duration::ZERO;
    let mut status = 0;
    let normalized = text
        .replace("&&", ";")
        .replace("||", ";")
        .replace('\n', ";");
    for command in normalized.split(';') {
        let words = shell_words(command);
        if words.is_empty() {
            continue;
        }
        if matches!(words[0].as_str(), "exec") {
            let rest = words[1..].to_vec();
            return simple(&rest, stdout, stderr).map(|(d, c)| (total + d, c));
        }
        if words[0] == "exit" {
            let code = words
                .get(1)
                .and_then(|a| a.parse::<i64>().ok())
                .unwrap_or(status)
                & 255;
            return Some((total, code));
        }
        let (d, c) = simple(&words, stdout, stderr)?;
        total += d;
        status = c;
    }
    Some((total, status))
}

/// Splits a shell command into words (single and double quotes group).
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The command as `docker ps` shows it: words joined by blanks, a word with
/// blanks or quotes single-quoted.
pub(crate) fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if w.is_empty()
                || w.contains(|c: char| c.is_whitespace() || "'\"\\$`;&|<>(){}*?!#~".contains(c))
            {
                format!("'{}'", w.replace('\'', "'\"'\"'"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One event as sent on `/events`, with what filters and waiters need.
#[derive(Debug)]
pub(crate) struct Event {
    pub typ: EventMessageTypeEnum,
    pub action: String,
    pub actor: String,
    pub attributes: HashMap<String, String>,
    /// The exit code a `die` reports, or the last one at `destroy`.
    pub exit_code: Option<i64>,
    /// The JSON line (with its newline).
    pub line: Bytes,
}

/// The wire form of an event: Docker 20.10 still sends the legacy
/// `status`/`id`/`from` fields for container and image events.
#[derive(serde::Serialize)]
struct WireEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(flatten)]
    message: &'a EventMessage,
}

/// Everything a node holds, behind its lock.
#[derive(Default)]
pub(crate) struct State {
    /// ID → container (boxed: the table's slack stays small).
    pub containers: HashMap<String, Box<Container>>,
    /// Name (without slash) → ID.
    pub names: HashMap<String, String>,
    /// Containers by label, for `label` filters: [`label_hash`] of each
    /// label's `key` and of its `key=value` → the IDs carrying it. A
    /// filtered list looks at these, not at every container (as a real
    /// engine would on its own machine, the fleet's CPU is not the
    /// manager's to share). Hashes may collide: lists check each filter.
    pub by_label: HashMap<u64, Vec<Arc<str>>>,
    next_ip: u32,
    next_pid: i64,
    next_port: u16,
}

/// The [`State::by_label`] key of a label filter's `key` or `key=value`.
pub(crate) fn label_hash(filter: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(filter.as_bytes());
    hasher.finish()
}

/// The [`State::by_label`] keys container `c` is indexed under: the hash
/// of each label's `key` and of its `key=value`.
fn label_keys(c: &Container) -> impl Iterator<Item = u64> + '_ {
    c.labels
        .iter()
        .flat_map(|(key, value)| [label_hash(key), label_hash(&format!("{key}={value}"))])
}

impl State {
    /// Adds `container` to the state and its labels to [`State::by_label`].
    fn insert(&mut self, container: Container) {
        let id: Arc<str> = Arc::from(container.id.as_str());
        for hash in label_keys(&container) {
            self.by_label.entry(hash).or_default().push(id.clone());
        }
        self.names
            .insert(container.name.clone(), container.id.clone());
        self.containers
            .insert(container.id.clone(), Box::new(container));
    }

    /// Takes container `id` out of the state and of its indexes.
    fn remove(&mut self, id: &str) -> Option<Box<Container>> {
        let c = self.containers.remove(id)?;
        self.names.remove(&c.name);
        for hash in label_keys(&c) {
            if let Some(ids) = self.by_label.get_mut(&hash) {
                ids.retain(|other| &**other != id);
                if ids.is_empty() {
                    self.by_label.remove(&hash);
                }
            }
        }
        Some(c)
    }

    /// Docker's lookup: full ID, then name, then unique ID prefix.
    pub(crate) fn resolve(&self, reference: &str) -> Result<String, ApiError> {
        if reference.is_empty() {
            return Err(ApiError::no_such_container(reference));
        }
        if self.containers.contains_key(reference) {
            return Ok(reference.to_string());
        }
        if let Some(id) = self.names.get(reference.trim_start_matches('/')) {
            return Ok(id.clone());
        }
        let mut found = self
            .containers
            .keys()
            .filter(|id| id.starts_with(reference));
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id.clone()),
            (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
                "Multiple IDs found with provided prefix: {reference}"
            ))),
            _ => Err(ApiError::no_such_container(reference)),
        }
    }

    /// The container `reference` names (ID, name or unique ID prefix).
    pub(crate) fn get(&self, reference: &str) -> Result<&Container, ApiError> {
        let id = self.resolve(reference)?;
        self.containers
            .get(&id)
            .map(|c| &**c)
            .ok_or_else(|| ApiError::no_such_container(reference))
    }
}

/// One hollow engine.
pub(crate) struct Node {
    /// Its index in the fleet.
    pub index: usize,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its engine ID.
    pub id: String,
    /// Its name (hostname).
    pub name: String,
    /// What the fleet shares.
    pub shared: Arc<Shared>,
    state: Mutex<State>,
    events: Mutex<Option<broadcast::Sender<Arc<Event>>>>,
    /// Its listener, when alive (see `net.rs`).
    pub(crate) life: tokio::sync::Mutex<Life>,
    /// Whether it answers.
    pub(crate) alive: AtomicBool,
    /// While alive: what ends its connections when it is killed, and what
    /// tells the killer they ended (held by upgraded connections too).
    pub(crate) connections: Mutex<Option<(CancellationToken, mpsc::Sender<()>)>>,
}

impl Node {
    pub(crate) fn new(index: usize, addr: SocketAddr, shared: Arc<Shared>) -> Node {
        Node {
            index,
            addr,
            id: engine_id(&addr),
            name: format!("{}-{}", shared.name_prefix, shared.first_index + index),
            shared,
            state: Mutex::new(State::default()),
            events: Mutex::new(None),
            life: tokio::sync::Mutex::new(Life::default()),
            alive: AtomicBool::new(false),
            connections: Mutex::new(None),
        }
    }

    /// The node's state, locked.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many containers it holds.
    pub(crate) fn container_count(&self) -> usize {
        self.state().containers.len()
    }

    /// Whether it answers.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The ID of one of its networks (`bridge`, `host`, `none`).
    pub(crate) fn network_id(&self, network: &str) -> String {
        derived_hex(&format!("{} network {network}", self.id))
    }

    /// Receives every event from now on (the channel is made on first use).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        match events.as_ref() {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(EVENT_BUFFER);
                *events = Some(tx);
                rx
            }
        }
    }

    /// How many event streams and waiters listen.
    pub(crate) fn listeners(&self) -> usize {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |tx| tx.receiver_count())
    }

    fn emit(
        &self,
        typ: EventMessageTypeEnum,
        action: &str,
        actor: &str,
        attributes: HashMap<String, String>,
        from: Option<&str>,
        exit_code: Option<i64>,
    ) {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = events.as_ref().filter(|tx| tx.receiver_count() > 0) else {
            return;
        };
        let now = Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let message = EventMessage {
            typ: Some(typ),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(actor.to_string()),
                attributes: Some(attributes.clone()),
            }),
            scope: Some(EventMessageScopeEnum::LOCAL),
            time: Some(now.timestamp()),
            time_nano: Some(nanos),
        };
        let legacy = matches!(
            typ,
            EventMessageTypeEnum::CONTAINER | EventMessageTypeEnum::IMAGE
        );
        let wire = WireEvent {
            status: legacy.then_some(action),
            id: legacy.then_some(actor),
            from,
            message: &message,
        };
        let mut line = match serde_json::to_vec(&wire) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an event");
                return;
            }
        };
        line.push(b'\n');
        let _ = tx.send(Arc::new(Event {
            typ,
            action: action.to_string(),
            actor: actor.to_string(),
            attributes,
            exit_code,
            line: Bytes::from(line),
        }));
    }

    /// A container event with Docker's attributes (labels, image, name, extra).
    fn emit_container(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        if self.listeners() == 0 {
            return;
        }
        let mut attributes = c.labels.clone();
        attributes.insert("image".into(), c.image.clone());
        attributes.insert("name".into(), c.name.clone());
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        let exit_code = match action {
            "die" | "destroy" => Some(c.exit_code),
            _ => None,
        };
        self.emit(
            EventMessageTypeEnum::CONTAINER,
            action,
            &c.id,
            attributes,
            Some(&c.image),
            exit_code,
        );
    }

    /// A network connect/disconnect event for `c`'s network.
    fn emit_network(&self, c: &Container, action: &str) {
        if self.listeners() == 0 {
            return;
        }
        let network = network_of(&c.host.network_mode);
        let driver = match network {
            "host" => "host",
            "none" => "null",
            _ => "bridge",
        };
        let attributes = HashMap::from([
            ("container".to_string(), c.id.clone()),
            ("name".to_string(), network.to_string()),
            ("type".to_string(), driver.to_string()),
        ]);
        self.emit(
            EventMessageTypeEnum::NETWORK,
            action,
            &self.network_id(network),
            attributes,
            None,
            None,
        );
    }

    /// `POST /containers/create`: the new container's ID.
    pub(crate) fn create(
        self: &Arc<Self>,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<String, ApiError> {
        let image = body.image.clone().unwrap_or_default();
        if image.is_empty() {
            return Err(ApiError::bad_request(
                "Config cannot be empty in order to create a container",
            ));
        }
        if !image_matches(&image) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("No such image: {}", normalize_image_name(&image)),
            ));
        }
        if let Some(name) = name {
            if !valid_name(name) {
                return Err(ApiError::bad_request(format!(
                    "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        let hc = body.host_config.clone().unwrap_or_default();
        let restart = hc.restart_policy.clone().unwrap_or_default();
        let restart_name = match restart.name {
            None | Some(RestartPolicyNameEnum::EMPTY) => RestartPolicyNameEnum::NO,
            Some(n) => n,
        };
        let max_retry = restart.maximum_retry_count.unwrap_or(0);
        match restart_name {
            RestartPolicyNameEnum::ON_FAILURE if max_retry < 0 => {
                return Err(ApiError::bad_request(
                    "maximum retry count cannot be negative",
                ))
            }
            RestartPolicyNameEnum::ALWAYS | RestartPolicyNameEnum::UNLESS_STOPPED
                if max_retry != 0 =>
            {
                return Err(ApiError::bad_request(format!(
                    "maximum retry count cannot be used with restart policy '{restart_name}'"
                )))
            }
            _ => {}
        }
        if hc.auto_remove == Some(true) && restart_name != RestartPolicyNameEnum::NO {
            return Err(ApiError::bad_request(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        let entrypoint = body.entrypoint.clone().filter(|e| !e.is_empty());
        let cmd = match body.cmd.clone().filter(|c| !c.is_empty()) {
            Some(cmd) => Some(cmd),
            None if entrypoint.is_none() => Some(vec![IMAGE_CMD.to_string()]),
            None => None,
        };
        let mut env: Vec<String> = body.env.clone().unwrap_or_default();
        let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
        if !env.iter().any(|e| key(e) == key(IMAGE_ENV)) {
            env.push(IMAGE_ENV.to_string());
        }
        let mut exposed = body.exposed_ports.clone().unwrap_or_default();
        if let Some(bindings) = &hc.port_bindings {
            for port in bindings.keys() {
                let port = if port.contains('/') {
                    port.clone()
                } else {
                    format!("{port}/tcp")
                };
                if !exposed.contains(&port) {
                    exposed.push(port);
                }
            }
        }
        exposed.sort();
        let memory = hc.memory.unwrap_or(0);
        let host = Host {
            memory,
            memory_swap: match hc.memory_swap.unwrap_or(0) {
                0 if memory > 0 => memory * 2,
                swap => swap,
            },
            memory_reservation: hc.memory_reservation.unwrap_or(0),
            nano_cpus: hc.nano_cpus.unwrap_or(0),
            cpu_shares: hc.cpu_shares.unwrap_or(0),
            cpu_period: hc.cpu_period.unwrap_or(0),
            cpu_quota: hc.cpu_quota.unwrap_or(0),
            cpuset_cpus: hc.cpuset_cpus.clone().unwrap_or_default(),
            port_bindings: hc.port_bindings.clone(),
            publish_all_ports: hc.publish_all_ports.unwrap_or(false),
            restart: restart_name,
            max_retry,
            network_mode: hc
                .network_mode
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "default".into()),
            auto_remove: hc.auto_remove.unwrap_or(false),
            privileged: hc.privileged.unwrap_or(false),
            binds: hc.binds.clone(),
            shm_size: hc.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20),
        };
        let mut state = self.state();
        if let Some(name) = name {
            let name = name.trim_start_matches('/');
            if let Some(holder) = state.names.get(name) {
                return Err(name_conflict(name, holder));
            }
        }
        let id = loop {
            let id = self.shared.ids.next();
            // Docker avoids IDs whose short form reads as a number.
            if !id[..12].bytes().all(|b| b.is_ascii_digit()) && !state.containers.contains_key(&id)
            {
                break id;
            }
        };
        let name = match name {
            Some(name) => name.trim_start_matches('/').to_string(),
            None => random_name(&state, &id),
        };
        let ip_index = state.next_ip;
        state.next_ip = state.next_ip.wrapping_add(1) % 65_000;
        let flags = Flags {
            tty: body.tty.unwrap_or(false),
            open_stdin: body.open_stdin.unwrap_or(false),
            stdin_once: body.stdin_once.unwrap_or(false),
            attach_stdin: body.attach_stdin.unwrap_or(false),
            attach_stdout: body.attach_stdout.unwrap_or(false),
            attach_stderr: body.attach_stderr.unwrap_or(false),
        };
        let container = Container {
            hostname: body
                .hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| id[..12].to_string()),
            id: id.clone(),
            name: name.clone(),
            created: Utc::now(),
            image,
            cmd,
            entrypoint,
            env,
            labels: body.labels.clone().unwrap_or_default(),
            domainname: body.domainname.clone().unwrap_or_default(),
            user: body.user.clone().unwrap_or_default(),
            working_dir: body.working_dir.clone().unwrap_or_default(),
            flags,
            exposed_ports: exposed,
            stop_signal: body.stop_signal.clone().filter(|s| !s.is_empty()),
            stop_timeout: body.stop_timeout,
            host,
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            runs: 0,
            generation: 0,
            quick_restarts: 0,
            ip_index,
            published: Vec::new(),
        };
        self.emit_container(&container, "create", &[]);
        state.insert(container);
        Ok(id)
    }

    /// `POST /containers/{id}/start`.
    pub(crate) fn start(self: &Arc<Self>, reference: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        let c = state.get(reference)?;
        match c.status {
            Status::Running | Status::Restarting => Err(ApiError::not_modified()),
            Status::Paused => Err(ApiError::conflict(
                "cannot start a paused container, try unpause instead",
            )),
            Status::Created | Status::Exited => {
                let id = c.id.clone();
                self.run(&mut state, &id);
                Ok(())
            }
        }
    }

    /// Starts container `id` (which exists): running, `start` event, and
    /// its end when its command ends by itself.
    fn run(self: &Arc<Self>, state: &mut State, id: &str) {
        state.next_pid = state.next_pid.max(1000) + 1;
        let pid = state.next_pid;
        let mut next_port = state.next_port;
        let Some(c) = state.containers.get_mut(id) else {
            return;
        };
        c.status = Status::Running;
        c.pid = pid;
        c.exit_code = 0;
        c.started_at = Some(Utc::now());
        c.runs = c.runs.saturating_add(1);
        c.generation += 1;
        c.published = publish(c, &mut next_port);
        let generation = c.generation;
        self.emit_network(c, "connect");
        self.emit_container(c, "start", &[]);
        let program = c.program();
        state.next_port = next_port;
        match program.exit {
            Some((after, code)) if after.is_zero() => {
                self.exit(state, id, code, Cause::Natural, None)
            }
            Some((after, code)) => self.exit_later(id.to_string(), generation, after, code),
            None => {}
        }
    }

    /// Container `id` stops: exited, `die` (then `after`, e.g. `stop`), and
    /// then its restart policy or AutoRemove.
    fn exit(
        self: &Arc<Self>,
        state: &mut State,
        id: &str,
        code: i64,
        cause: Cause,
        after: Option<&str>,
    ) {
        let Some(c) = state.containers.get_mut(id) else {
            return;
        };
        let now = Utc::now();
        let ran = c
            .started_at
            .map(|s| (now - s).to_std().unwrap_or_default())
            .unwrap_or_default();
        c.status = Status::Exited;
        c.pid = 0;
        c.exit_code = code;
        c.finished_at = Some(now);
        c.generation += 1;
        c.published.clear();
        self.emit_container(c, "die", &[("exitCode", code.to_string())]);
        self.emit_network(c, "disconnect");
        if let Some(action) = after {
            self.emit_container(c, action, &[]);
        }
        let restart = match (cause, c.host.restart) {
            (Cause::Stopped, _) => false,
            (_, RestartPolicyNameEnum::ALWAYS) => true,
            (Cause::Natural, RestartPolicyNameEnum::UNLESS_STOPPED) => true,
            (_, RestartPolicyNameEnum::ON_FAILURE) => {
                code != 0 && (c.host.max_retry == 0 || c.restart_count < c.host.max_retry)
            }
            _ => false,
        };
        if restart {
            if ran >= RESTART_RESET {
                c.quick_restarts = 0;
            }
            let delay = RESTART_DELAY
                .saturating_mul(1 << c.quick_restarts.min(10))
                .min(MAX_RESTART_DELAY);
            c.quick_restarts = c.quick_restarts.saturating_add(1);
            c.restart_count += 1;
            c.status = Status::Restarting;
            let generation = c.generation;
            self.restart_later(id.to_string(), generation, delay);
        } else if c.host.auto_remove {
            self.destroy(state, id);
        }
    }

    /// Removes container `id` from the state: `destroy` event.
    fn destroy(&self, state: &mut State, id: &str) {
        if let Some(c) = state.remove(id) {
            self.emit_container(&c, "destroy", &[]);
        }
    }

    /// Ends run `generation` of container `id` with `code` after `after`.
    fn exit_later(self: &Arc<Self>, id: String, generation: u64, after: Duration, code: i64) {
        let node = self.clone();
        tokio::spawn(async move {
            let mut wait = after;
            loop {
                tokio::select! {
                    _ = node.shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let mut state = node.state();
                match state.containers.get(&id) {
                    Some(c) if c.generation == generation && c.status == Status::Running => {
                        node.exit(&mut state, &id, code, Cause::Natural, None);
                        return;
                    }
                    // A paused process ends once it is unpaused.
                    Some(c) if c.generation == generation && c.status == Status::Paused => {
                        wait = Duration::from_millis(100);
                    }
                    _ => return,
                }
            }
        });
    }

    /// Restarts container `id` (restarting since `generation`) after `delay`.
    fn restart_later(self: &Arc<Self>, id: String, generation: u64, delay: Duration) {
        let node = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = node.shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let mut state = node.state();
            if state
                .containers
                .get(&id)
                .is_some_and(|c| c.generation == generation && c.status == Status::Restarting)
            {
                node.run(&mut state, &id);
            }
        });
    }

    /// The stop sequence of a running or paused container: SIGTERM (or its
    /// stop signal), which busybox as PID 1 ignores, then SIGKILL.
    fn stop_running(self: &Arc<Self>, state: &mut State, id: &str, after: Option<&str>) {
        let Some(c) = state.containers.get(id) else {
            return;
        };
        let first = c
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(15);
        self.emit_container(c, "kill", &[("signal", first.to_string())]);
        if first != 9 {
            self.emit_container(c, "kill", &[("signal", "9".into())]);
        }
        self.exit(state, id, 137, Cause::Stopped, after);
    }

    /// `POST /containers/{id}/stop`.
    pub(crate) fn stop(self: &Arc<Self>, reference: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        let c = state.get(reference)?;
        let id = c.id.clone();
        match c.status {
            Status::Created | Status::Exited => Err(ApiError::not_modified()),
            Status::Restarting => {
                if let Some(c) = state.containers.get_mut(&id) {
                    c.status = Status::Exited;
                    c.generation += 1;
                    self.emit_container(c, "stop", &[]);
                }
                Ok(())
            }
            Status::Running | Status::Paused => {
                self.stop_running(&mut state, &id, Some("stop"));
                Ok(())
            }
        }
    }

    /// `POST /containers/{id}/kill?signal=`.
    pub(crate) fn signal(
        self: &Arc<Self>,
        reference: &str,
        signal: Option<&str>,
    ) -> Result<(), ApiError> {
        let signal = match signal.filter(|s| !s.is_empty()) {
            None => 9,
            Some(s) => parse_signal(s)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))?,
        };
        let mut state = self.state();
        let c = state.get(reference)?;
        let id = c.id.clone();
        if !matches!(c.status, Status::Running | Status::Paused) {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {reference}: Container {id} is not running"
            )));
        }
        self.emit_container(c, "kill", &[("signal", signal.to_string())]);
        if terminates(signal) {
            self.exit(&mut state, &id, 128 + signal, Cause::Killed, None);
        }
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub(crate) fn restart(self: &Arc<Self>, reference: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        let c = state.get(reference)?;
        let id = c.id.clone();
        if matches!(c.status, Status::Running | Status::Paused) {
            // A restart keeps an AutoRemove container.
            let auto_remove = c.host.auto_remove;
            if let Some(c) = state.containers.get_mut(&id) {
                c.host.auto_remove = false;
            }
            self.stop_running(&mut state, &id, Some("stop"));
            if let Some(c) = state.containers.get_mut(&id) {
                c.host.auto_remove = auto_remove;
            }
        }
        self.run(&mut state, &id);
        if let Some(c) = state.containers.get(&id) {
            self.emit_container(c, "restart", &[]);
        }
        Ok(())
    }

    /// `POST /containers/{id}/pause`.
    pub(crate) fn pause(self: &Arc<Self>, reference: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        let id = state.resolve(reference)?;
        let Some(c) = state.containers.get_mut(&id) else {
            return Err(ApiError::no_such_container(reference));
        };
        match c.status {
            Status::Running => {
                c.status = Status::Paused;
                self.emit_container(c, "pause", &[]);
                Ok(())
            }
            Status::Paused => Err(ApiError::conflict(format!(
                "Container {id} is already paused"
            ))),
            Status::Restarting => Err(ApiError::conflict(format!(
                "Container {id} is restarting, wait until the container is running"
            ))),
            Status::Created | Status::Exited => {
                Err(ApiError::conflict(format!("Container {id} is not running")))
            }
        }
    }

    /// `POST /containers/{id}/unpause`.
    pub(crate) fn unpause(self: &Arc<Self>, reference: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        let id = state.resolve(reference)?;
        let Some(c) = state.containers.get_mut(&id) else {
            return Err(ApiError::no_such_container(reference));
        };
        if c.status != Status::Paused {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Container {id} is not paused"),
            ));
        }
        c.status = Status::Running;
        self.emit_container(c, "unpause", &[]);
        Ok(())
    }

    /// `DELETE /containers/{id}?force=`.
    pub(crate) fn remove(self: &Arc<Self>, reference: &str, force: bool) -> Result<(), ApiError> {
        let mut state = self.state();
        let c = state.get(reference)?;
        let id = c.id.clone();
        match c.status {
            Status::Running | Status::Restarting | Status::Paused if !force => {
                let what = match c.status {
                    Status::Paused => {
                        return Err(ApiError::conflict(format!(
                            "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"
                        )))
                    }
                    Status::Restarting => "restarting",
                    _ => "running",
                };
                return Err(ApiError::conflict(format!(
                    "You cannot remove a {what} container {id}. Stop the container before attempting removal or force remove"
                )));
            }
            Status::Running | Status::Paused => {
                self.emit_container(c, "kill", &[("signal", "9".into())]);
                if let Some(c) = state.containers.get_mut(&id) {
                    // No AutoRemove of its own: it is removed right here.
                    c.host.auto_remove = false;
                }
                self.exit(&mut state, &id, 137, Cause::Stopped, None);
            }
            _ => {}
        }
        self.destroy(&mut state, &id);
        Ok(())
    }

    /// The attached stdin of container `id` reached its end: a command that
    /// reads it (a bare shell, `cat`) ends. True while the container has not
    /// started yet (the caller retries: the end reaches it once it runs).
    pub(crate) fn stdin_closed(self: &Arc<Self>, id: &str) -> bool {
        let mut state = self.state();
        match state
            .containers
            .get(id)
            .map(|c| (c.status, reads_stdin(&c.argv())))
        {
            Some((Status::Created, _)) => true,
            Some((Status::Running, true)) => {
                self.exit(&mut state, id, 0, Cause::Natural, None);
                false
            }
            _ => false,
        }
    }

    /// What ends this node's connections when it dies (and a token that
    /// keeps its killer waiting until the connection ended); `None` if dead.
    pub(crate) fn connection_guard(&self) -> Option<(CancellationToken, mpsc::Sender<()>)> {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `POST /containers/{id}/rename?name=`.
    pub(crate) fn rename(&self, reference: &str, new_name: &str) -> Result<(), ApiError> {
        if !valid_name(new_name) {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let new_name = new_name.trim_start_matches('/').to_string();
        let mut state = self.state();
        let id = state.resolve(reference)?;
        let old = state
            .containers
            .get(&id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        if old == new_name {
            return Err(ApiError::bad_request(
                "Renaming a container with the same name as its current name",
            ));
        }
        if let Some(holder) = state.names.get(&new_name) {
            return Err(name_conflict(&new_name, holder));
        }
        state.names.remove(&old);
        state.names.insert(new_name.clone(), id.clone());
        if let Some(c) = state.containers.get_mut(&id) {
            c.name = new_name;
            self.emit_container(c, "rename", &[("oldName", format!("/{old}"))]);
        }
        Ok(())
    }
}

fn name_conflict(name: &str, holder: &str) -> ApiError {
    ApiError::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// The ports container `c` publishes when it starts, host ports picked for
/// bindings without one (from 49153 on, per node).
fn publish(c: &Container, next_port: &mut u16) -> Vec<Published> {
    let mut out = Vec::new();
    let mut pick = || {
        *next_port = if *next_port < 49153 || *next_port == u16::MAX {
            49153
        } else {
            *next_port + 1
        };
        *next_port
    };
    if let Some(bindings) = &c.host.port_bindings {
        let mut keys: Vec<&String> = bindings.keys().collect();
        keys.sort();
        for key in keys {
            let port = if key.contains('/') {
                key.clone()
            } else {
                format!("{key}/tcp")
            };
            for b in bindings.get(key).into_iter().flatten().flatten() {
                let ip = b
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into());
                let host_port = b
                    .host_port
                    .as_deref()
                    .and_then(|p| p.split('-').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0)
                    .unwrap_or_else(&mut pick);
                out.push((port.clone(), ip, host_port));
            }
        }
    }
    if c.host.publish_all_ports {
        for port in &c.exposed_ports {
            if !out.iter().any(|(p, _, _)| p == port) {
                out.push((port.clone(), "0.0.0.0".into(), pick()));
            }
        }
    }
    out
}

/// The network a container with `network_mode` is on.
pub(crate) fn network_of(network_mode: &str) -> &str {
    match network_mode {
        "" | "default" => "bridge",
        other => other,
    }
}

/// Docker's container name rule, `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A free `adjective_surname` name, as Docker picks.
fn random_name(state: &State, id: &str) -> String {
    const LEFT: [&str; 16] = [
        "admiring", "brave", "clever", "dreamy", "eager", "festive", "gallant", "happy", "jolly",
        "keen", "loving", "modest", "nifty", "quirky", "serene", "vigilant",
    ];
    const RIGHT: [&str; 16] = [
        "albattani",
        "babbage",
        "curie",
        "darwin",
        "euler",
        "fermi",
        "galileo",
        "hopper",
        "lovelace",
        "mendel",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "turing",
        "wozniak",
    ];
    let seed = mix(id, 7);
    let base = format!(
        "{}_{}",
        LEFT[(seed & 15) as usize],
        RIGHT[((seed >> 4) & 15) as usize]
    );
    if !state.names.contains_key(&base) {
        return base;
    }
    (1u64..)
        .map(|n| format!("{base}{n}"))
        .find(|n| !state.names.contains_key(n))
        .unwrap_or(base)
}

/// `busybox:local` in the forms Docker accepts for it (familiar or fully
/// qualified name, image ID or a prefix of it).
pub(crate) fn image_matches(reference: &str) -> bool {
    let r = reference.trim();
    if r.is_empty() {
        return false;
    }
    let hex = IMAGE_ID.trim_start_matches("sha256:");
    if let Some(id) = r.strip_prefix("sha256:") {
        return !id.is_empty() && hex.starts_with(id);
    }
    if r.len() >= 4 && r.bytes().all(|b| b.is_ascii_hexdigit()) && hex.starts_with(r) {
        return true;
    }
    normalize_image_name(r) == IMAGE_TAG
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
pub(crate) fn parse_signal(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => return None,
    };
    Some(n)
}

/// Whether a signal's default action ends the process.
fn terminates(signal: i64) -> bool {
    !matches!(signal, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn programs() {
        let p = program(&argv(&["sleep", "1"]), false);
        assert_eq!(p.exit, Some((Duration::from_secs(1), 0)));
        assert_eq!(p.stdout, vec!["hollow-engine: sleep 1"]);
        assert_eq!(program(&argv(&["sleep", "infinity"]), false).exit, None);
        assert_eq!(
            program(&argv(&["sleep", "2m", "1"]), false).exit,
            Some((Duration::from_secs(121), 0))
        );
        assert_eq!(
            program(&argv(&["true"]), false).exit,
            Some((Duration::ZERO, 0))
        );
        assert_eq!(
            program(&argv(&["/bin/false"]), false).exit,
            Some((Duration::ZERO, 1))
        );
        assert_eq!(
            program(&argv(&["sh"]), false).exit,
            Some((Duration::ZERO, 0))
        );
        assert_eq!(program(&argv(&["sh"]), true).exit, None);
        assert_eq!(program(&argv(&["httpd", "-f"]), false).exit, None);
        let p = program(&argv(&["echo", "hello", "world"]), false);
        assert_eq!(
            (p.exit, p.stdout),
            (Some((Duration::ZERO, 0)), vec!["hello world".to_string()])
        );
        let p = program(
            &argv(&[
                "sh",
                "-c",
                "echo out; echo 'two words' >&2; sleep 0.5 && exit 3",
            ]),
            false,
        );
        assert_eq!(p.exit, Some((Duration::from_millis(500), 3)));
        assert_eq!(p.stdout, vec!["out"]);
        assert_eq!(p.stderr, vec!["two words"]);
        assert_eq!(
            program(&argv(&["sh", "-c", "while true; do sleep 1; done"]), false).exit,
            None
        );
    }

    #[test]
    fn command_lines_quote_like_docker() {
        assert_eq!(command_line(&argv(&["sleep", "300"])), "sleep 300");
        assert_eq!(
            command_line(&argv(&["sh", "-c", "echo out; exit 3"])),
            "sh -c 'echo out; exit 3'"
        );
    }

    #[test]
    fn images_and_signals() {
        assert!(image_matches("busybox:local"));
        assert!(image_matches("docker.io/library/busybox:local"));
        assert!(image_matches(&IMAGE_ID[7..19]));
        assert!(image_matches(IMAGE_ID));
        assert!(!image_matches("busybox"));
        assert!(image_matches("library/busybox:local"));
        assert_eq!(normalize_image_name("nothere"), "nothere:latest");
        assert_eq!(normalize_image_name("reg:5000/a/b"), "reg:5000/a/b:latest");
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("FOO"), None);
        assert!(terminates(15) && !terminates(28));
    }

    #[test]
    fn engine_ids_are_stable_and_distinct() {
        let a: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:20001".parse().unwrap();
        assert_eq!(engine_id(&a), engine_id(&a));
        assert_ne!(engine_id(&a), engine_id(&b));
        assert_eq!(engine_id(&a).len(), 12 * 4 + 11);
    }
}
