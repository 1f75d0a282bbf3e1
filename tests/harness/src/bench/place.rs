//! Placement: create (and start) many containers with many concurrent
//! clients through one or more managers.
//!
//! Each client keeps one connection to its manager (client `k` uses
//! manager `k mod K`) and repeats, until `containers` were tried: take the
//! next number `i`, `POST /containers/create?name=PREFIX-i` with
//! `{"Image": IMAGE, "Cmd": CMD, "Labels": {"swarm-bench": PREFIX}}` (with
//! `groups`, also the label `swarm-bench.group: i mod groups`), then,
//! with `start`, `POST /containers/{id}/start` (what `docker run -d` sends).
//! Every operation is timed on its own; the throughput is over the whole
//! run, from the first request to the last answer.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::client::{Client, Errors};
use super::stats::{ms, Summary};

/// Label on every container the bench creates; its value is the prefix.
pub const LABEL: &str = "swarm-bench";

/// Label of container `i` when the containers are put in groups
/// ([`PlaceConfig::groups`]); its value is `i mod groups`.
pub const GROUP_LABEL: &str = "swarm-bench.group";

/// What to place, where.
#[derive(Debug, Clone)]
pub struct PlaceConfig {
    /// Manager API addresses (`tcp://IP:PORT`); clients spread over them.
    pub managers: Vec<String>,
    /// How many containers to create.
    pub containers: usize,
    /// Concurrent clients, each with one request in flight.
    pub clients: usize,
    /// Whether to start each container once created.
    pub start: bool,
    /// The image of the containers.
    pub image: String,
    /// Their command.
    pub cmd: Vec<String>,
    /// Names are `PREFIX-N`; also the value of the [`LABEL`] label.
    pub prefix: String,
    /// Label container `i` [`GROUP_LABEL`]`=i mod groups`, for filtered
    /// listings to find a few of many.
    pub groups: Option<usize>,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
    /// Print the progress to stderr every few seconds.
    pub progress: bool,
    /// Give up (take no new container) when no create succeeded for this
    /// long: the manager is stuck, and the rest would only time out.
    pub stall_timeout: Duration,
}

/// Figures of one tenth of the run (by container number, so in time
/// order): how latency and rate change as the cluster fills up.
#[derive(Debug, Clone, Serialize)]
pub struct Tenth {
    /// First container number of this tenth.
    pub from: usize,
    /// One past the last.
    pub to: usize,
    /// Successful creates per second within this tenth.
    pub placements_per_s: f64,
    /// Create latency.
    pub create: Summary,
    /// Create + start latency (with `start`).
    pub run: Option<Summary>,
}

/// What a placement run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PlaceReport {
    /// Containers tried.
    pub containers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Managers the clients used.
    pub managers: Vec<String>,
    /// Whether containers were started.
    pub start: bool,
    /// Containers created (answered 201 with an ID).
    pub placed: usize,
    /// Containers started (204 or 304), with `start`.
    pub started: usize,
    /// Requests that failed (creates and starts).
    pub failures: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// From the first request to the last answer.
    pub wall_ms: f64,
    /// Successful creates per second of [`PlaceReport::wall_ms`].
    pub placements_per_s: f64,
    /// Latency of `POST /containers/create`.
    pub create: Summary,
    /// Latency of `POST /containers/{id}/start` (with `start`).
    pub start_latency: Option<Summary>,
    /// Latency of create + start, what `docker run -d` waits for (with
    /// `start`; successful runs only).
    pub run: Option<Summary>,
    /// The same per tenth of the run.
    pub tenths: Vec<Tenth>,
    /// TCP connections the clients opened (one each unless errors).
    pub connections: u64,
    /// Why the run stopped before trying every container, if it did.
    pub aborted: Option<String>,
    /// IDs of the containers created, for a later removal.
    #[serde(skip)]
    pub ids: Vec<String>,
}

/// One create (and start).
#[derive(Debug, Clone)]
struct Op {
    /// Container number.
    index: usize,
    /// When the create was sent, since the run started.
    begun: Duration,
    /// When the last answer came, since the run started.
    ended: Duration,
    /// Create latency, if it succeeded.
    create: Option<Duration>,
    /// Start latency, if it succeeded.
    start: Option<Duration>,
    /// The created container.
    id: Option<String>,
}

/// What one client returns.
struct ClientResult {
    ops: Vec<Op>,
    errors: Errors,
    connections: u64,
}

/// Runs the placement; `Err` only when the configuration is unusable
/// (failed requests are counted in the report).
pub async fn run(config: &PlaceConfig) -> anyhow::Result<PlaceReport> {
    if config.managers.is_empty() {
        anyhow::bail!("no manager address");
    }
    let clients = config.clients.max(1);
    let mut connections = Vec::with_capacity(clients);
    for k in 0..clients {
        let addr = &config.managers[k % config.managers.len()];
        connections.push(Client::manager(addr, config.timeout).map_err(anyhow::Error::msg)?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Progress::default());
    let body = json!({
        "Image": config.image,
        "Cmd": config.cmd,
        "Labels": { LABEL: config.prefix },
    });
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in connections {
        tasks.push(tokio::spawn(place_loop(
            client,
            config.clone(),
            body.clone(),
            next.clone(),
            done.clone(),
            shared.clone(),
            t0,
        )));
    }
    let stall = config.stall_timeout;
    let watchdog = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let last = Duration::from_millis(shared.last_success_ms.load(Ordering::Relaxed));
                if t0.elapsed().saturating_sub(last) > stall {
                    shared.abort.store(true, Ordering::Relaxed);
                    return;
                }
            }
        })
    };
    let progress = config.progress.then(|| {
        let done = done.clone();
        let total = config.containers;
        tokio::spawn(async move {
            let mut last = (0usize, Instant::now());
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let n = done.load(Ordering::Relaxed);
                let rate = (n - last.0) as f64 / last.1.elapsed().as_secs_f64();
                eprintln!(
                    "place: {n}/{total} after {:.0} s ({rate:.0}/s over the last 5 s)",
                    t0.elapsed().as_secs_f64()
                );
                last = (n, Instant::now());
            }
        })
    });
    let mut ops = Vec::with_capacity(config.containers);
    let mut errors = Errors::default();
    let mut opened = 0;
    for task in tasks {
        let result = task
            .await
            .map_err(|e| anyhow::anyhow!("a client task failed: {e}"))?;
        ops.extend(result.ops);
        errors.merge(&result.errors);
        opened += result.connections;
    }
    let wall = t0.elapsed();
    watchdog.abort();
    if let Some(progress) = progress {
        progress.abort();
    }
    ops.sort_by_key(|op| op.index);
    let mut report = report(config, clients, &ops, errors, wall, opened);
    if shared.abort.load(Ordering::Relaxed) && ops.len() < config.containers {
        report.aborted = Some(format!(
            "no create succeeded for {stall:?}: stopped after {} of {} containers",
            ops.len(),
            config.containers
        ));
    }
    Ok(report)
}

/// What the clients share besides the counters.
#[derive(Default)]
struct Progress {
    /// When a create last succeeded, in ms since the run started.
    last_success_ms: AtomicU64,
    /// Set when the run must stop taking containers.
    abort: AtomicBool,
}

/// One client: creates (and starts) containers until none is left.
async fn place_loop(
    mut client: Client,
    config: PlaceConfig,
    body: Value,
    next: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    shared: Arc<Progress>,
    t0: Instant,
) -> ClientResult {
    let mut ops = Vec::new();
    let mut errors = Errors::default();
    loop {
        if shared.abort.load(Ordering::Relaxed) {
            break;
        }
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= config.containers {
            break;
        }
        let begun = t0.elapsed();
        let mut op = Op {
            index,
            begun,
            ended: begun,
            create: None,
            start: None,
            id: None,
        };
        let path = format!("/containers/create?name={}-{index}", config.prefix);
        let grouped = config.groups.filter(|g| *g > 0).map(|groups| {
            let mut body = body.clone();
            body["Labels"][GROUP_LABEL] = json!((index % groups).to_string());
            body
        });
        let sent = Instant::now();
        match client
            .post(&path, Some(grouped.as_ref().unwrap_or(&body)))
            .await
        {
            Ok(answer) if answer.status == 201 => {
                let id = answer
                    .json()
                    .and_then(|v| v.get("Id")?.as_str().map(str::to_string));
                match id {
                    Some(id) => {
                        op.create = Some(sent.elapsed());
                        op.id = Some(id);
                        shared
                            .last_success_ms
                            .fetch_max(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    None => errors.add("create: 201 without an Id"),
                }
            }
            Ok(answer) => errors.add(&format!("create: {}", answer.describe())),
            Err(e) => errors.add(&format!("create: {e}")),
        }
        if let (true, Some(id)) = (config.start, op.id.as_ref()) {
            let sent = Instant::now();
            match client.post(&format!("/containers/{id}/start"), None).await {
                Ok(answer) if answer.status == 204 || answer.status == 304 => {
                    op.start = Some(sent.elapsed());
                }
                Ok(answer) => errors.add(&format!("start: {}", answer.describe())),
                Err(e) => errors.add(&format!("start: {e}")),
            }
        }
        op.ended = t0.elapsed();
        ops.push(op);
        done.fetch_add(1, Ordering::Relaxed);
    }
    ClientResult {
        ops,
        errors,
        connections: client.connects(),
    }
}

/// Builds the report from the operations (sorted by container number).
fn report(
    config: &PlaceConfig,
    clients: usize,
    ops: &[Op],
    errors: Errors,
    wall: Duration,
    connections: u64,
) -> PlaceReport {
    let creates: Vec<Duration> = ops.iter().filter_map(|o| o.create).collect();
    let starts: Vec<Duration> = ops.iter().filter_map(|o| o.start).collect();
    let runs = |ops: &[Op]| -> Vec<Duration> {
        ops.iter()
            .filter_map(|o| Some(o.create? + o.start?))
            .collect()
    };
    let tenth = config.containers.div_ceil(10).max(1);
    let tenths = ops
        .chunks(tenth)
        .map(|chunk| {
            let created: Vec<Duration> = chunk.iter().filter_map(|o| o.create).collect();
            let from = chunk.iter().map(|o| o.begun).min().unwrap_or_default();
            let to = chunk.iter().map(|o| o.ended).max().unwrap_or_default();
            let span = to.saturating_sub(from).as_secs_f64();
            Tenth {
                from: chunk.first().map_or(0, |o| o.index),
                to: chunk.last().map_or(0, |o| o.index + 1),
                placements_per_s: if span > 0.0 {
                    created.len() as f64 / span
                } else {
                    0.0
                },
                create: Summary::of(&created),
                run: config.start.then(|| Summary::of(&runs(chunk))),
            }
        })
        .collect();
    PlaceReport {
        containers: config.containers,
        clients,
        managers: config.managers.clone(),
        start: config.start,
        placed: creates.len(),
        started: starts.len(),
        failures: errors.total,
        errors,
        wall_ms: ms(wall),
        placements_per_s: if wall.is_zero() {
            0.0
        } else {
            creates.len() as f64 / wall.as_secs_f64()
        },
        create: Summary::of(&creates),
        start_latency: config.start.then(|| Summary::of(&starts)),
        run: config.start.then(|| Summary::of(&runs(ops))),
        tenths,
        connections,
        aborted: None,
        ids: ops.iter().filter_map(|o| o.id.clone()).collect(),
    }
}

/// What a removal measured.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveReport {
    /// Containers removed (or already gone).
    pub removed: usize,
    /// Removals that failed.
    pub failures: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// Latency of `DELETE /containers/{id}?force=1`.
    pub latency: Summary,
    /// Wall time of the removal.
    pub wall_ms: f64,
}

/// Removes containers by ID (`DELETE /containers/{id}?force=1`) with
/// `clients` concurrent clients over `managers`.
pub async fn remove(
    managers: &[String],
    ids: &[String],
    clients: usize,
    timeout: Duration,
) -> anyhow::Result<RemoveReport> {
    if managers.is_empty() {
        anyhow::bail!("no manager address");
    }
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients.max(1) {
        let mut client =
            Client::manager(&managers[k % managers.len()], timeout).map_err(anyhow::Error::msg)?;
        let (ids, next) = (ids.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Errors::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else { break };
                let sent = Instant::now();
                let path = format!("/containers/{id}?force=1");
                match client.request(hyper::Method::DELETE, &path, None).await {
                    Ok(a) if (200..300).contains(&a.status) || a.status == 404 => {
                        latencies.push(sent.elapsed())
                    }
                    Ok(a) => errors.add(&format!("remove: {}", a.describe())),
                    Err(e) => errors.add(&format!("remove: {e}")),
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Errors::default();
    for task in tasks {
        let (l, e) = task
            .await
            .map_err(|e| anyhow::anyhow!("a client task failed: {e}"))?;
        latencies.extend(l);
        errors.merge(&e);
    }
    Ok(RemoveReport {
        removed: latencies.len(),
        failures: errors.total,
        errors,
        latency: Summary::of(&latencies),
        wall_ms: ms(t0.elapsed()),
    })
}
