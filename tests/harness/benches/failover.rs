//! Failover: how long writes stop when the Raft leader of three managers dies.
//!
//! ```sh
//! cargo build --release --bin swarm
//! cargo bench --bench failover                 # 20 leader kills
//! cargo bench --bench failover -- --kills=5 --interval-ms=20
//! ```
//!
//! Starts three `swarm manage` processes (`target/release/swarm`, or
//! `SWARM_BIN`) on loopback with fresh data dirs, one Raft cluster over the
//! local engine (`unix:///var/run/docker.sock`; `busybox:local`, the tests'
//! image, is loaded there first if missing, built from /bin/busybox of
//! Debian's busybox-static).
//! A writer starts one `POST /containers/create` of `busybox:local` every
//! `--interval-ms` (20) through the next live manager in turn, without
//! waiting for the previous one (a create goes through Raft's `Reserve`, so
//! it needs a leader); the created containers are removed right away through
//! the engine itself. Then, `--kills` times: find the leader (the manager
//! that `/_swarm/members` says leads), SIGKILL it, and measure
//! - kill → first accepted write: until the first create that was *sent
//!   after* the kill is answered 201 (it includes that create's own latency);
//! - kill → new leader: until a survivor reports another leader;
//!
//! then restart the killed manager from its data dir with its first command
//! line, and wait until it is a reachable voter again and a write was
//! accepted after that, before the next kill.
//!
//! Prints one row per kill and p50/p90/p99/max (nearest rank), and writes
//! the figures to `target/failover.json`. Timing is reported, never
//! asserted. Every container the run created (label `swarm-bench-failover`)
//! and every manager process are removed at the end, also after an error
//! or Ctrl-C. Built as a test (`cargo test --all-targets`, no `--bench`
//! argument) it does nothing: it needs a release build and Docker.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use swarm::upstream::Upstream;
use swarm_harness::bench::client::{fold_error, message, oneshot, oneshot_json};
use swarm_harness::bench::stats::{markdown, ms, percentile};
use swarm_harness::image::busybox_image_tar;
use swarm_harness::ports::try_free_port;
use swarm_harness::process::tail;
use swarm_harness::{Manager, ManagerConfig, IMAGE};

/// The engine all managers serve (their discovery is `nodes://` of it).
const ENGINE: &str = "unix:///var/run/docker.sock";
/// Label on every container this bench creates; its value is the run ID.
const LABEL: &str = "swarm-bench-failover";
/// Writes in flight at most; a tick finding them all busy is skipped.
const MAX_IN_FLIGHT: usize = 64;
/// How long one write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a control request (members, info, ping) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the cluster gets to form, recover, or take a manager back.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the bench polls while it waits.
const POLL: Duration = Duration::from_millis(5);
/// Pause after a restarted manager is back and a write went through,
/// before the next kill.
const SETTLE: Duration = Duration::from_millis(500);

/// Command-line options (after `cargo bench --bench failover --`).
struct Options {
    /// Whether cargo runs this as a benchmark (`--bench`), not as a test.
    bench: bool,
    /// How many times the leader is killed.
    kills: usize,
    /// Pause between two writes started by the writer.
    interval: Duration,
}

impl Options {
    /// Parses `--kills=N` and `--interval-ms=N`; cargo adds `--bench`.
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            bench: false,
            kills: 20,
            interval: Duration::from_millis(20),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        options.bench = args.iter().any(|a| a == "--bench");
        if !options.bench {
            // Built as a test: whatever the test runner passes is ignored.
            return Ok(options);
        }
        for arg in args {
            if arg == "--bench" {
                options.bench = true;
            } else if let Some(v) = arg.strip_prefix("--kills=") {
                options.kills = v.parse().with_context(|| format!("bad {arg:?}"))?;
            } else if let Some(v) = arg.strip_prefix("--interval-ms=") {
                let ms: u64 = v.parse().with_context(|| format!("bad {arg:?}"))?;
                options.interval = Duration::from_millis(ms.max(1));
            } else {
                bail!("unknown argument {arg:?}: expected --kills=N, --interval-ms=N");
            }
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Sends one request (with a JSON body if given) to `engine` and returns the
/// status and body, or why there was none within `timeout`.
async fn http(
    engine: &Upstream,
    method: hyper::Method,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    oneshot_json(engine, method, path, body, timeout)
        .await
        .map(|a| (a.status, a.body))
}

/// Like [`http`], with a raw body and its content type.
async fn http_raw(
    engine: &Upstream,
    method: hyper::Method,
    path: &str,
    body: Option<(Bytes, &str)>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    oneshot(engine, method, path, body, timeout)
        .await
        .map(|a| (a.status, a.body))
}

// ---------------------------------------------------------------------------
// Managers
// ---------------------------------------------------------------------------

/// One `swarm manage` of the cluster and what the writer shares with it.
struct Peer {
    /// 1, 2 or 3 (only for messages).
    n: usize,
    /// The process.
    manager: Manager,
    /// A client for its API.
    client: Arc<Upstream>,
    /// Shared with the writer: whether to send it writes.
    alive: Arc<AtomicBool>,
}

impl Peer {
    /// Its API address, `127.0.0.1:PORT`.
    fn api(&self) -> &str {
        &self.manager.addr
    }

    /// Whether its process runs (was not killed).
    fn is_up(&self) -> bool {
        self.manager.pid().is_some()
    }

    /// SIGKILLs the process (if running) and reaps it; no more writes.
    fn kill(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        self.manager.kill();
    }

    /// An error if the process has exited on its own.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if !self.is_up() {
            return Ok(());
        }
        let running = self.manager.check_running();
        if running.is_err() {
            self.alive.store(false, Ordering::SeqCst);
        }
        running.with_context(|| format!("manager m{}", self.n))
    }
}

/// One manager as `/_swarm/members` describes it (the fields used here).
#[derive(Debug, Clone)]
struct Member {
    /// Raft node ID.
    id: u64,
    /// API address.
    api_addr: String,
    /// leader, follower or learner.
    role: String,
    /// Whether the leader hears from it.
    reachable: bool,
}

/// The member list as `client` reports it.
async fn members(client: &Upstream) -> Result<Vec<Member>, String> {
    let (status, body) = http(
        client,
        hyper::Method::GET,
        "/_swarm/members",
        None,
        CONTROL_TIMEOUT,
    )
    .await?;
    if status != 200 {
        return Err(format!("members: {status} {}", message(&body)));
    }
    let list: Vec<Value> =
        serde_json::from_slice(&body).map_err(|e| format!("members: invalid JSON: {e}"))?;
    list.iter()
        .map(|m| {
            Ok(Member {
                id: m["id"].as_u64().ok_or("members: no numeric id")?,
                api_addr: m["api_addr"].as_str().unwrap_or_default().to_string(),
                role: m["role"].as_str().unwrap_or_default().to_string(),
                reachable: m["reachable"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

/// The `Role` of a manager's `/info` SystemStatus (`primary`, `replica`).
async fn info_role(client: &Upstream) -> Result<String, String> {
    let (status, body) = http(client, hyper::Method::GET, "/info", None, CONTROL_TIMEOUT).await?;
    if status != 200 {
        return Err(format!("info: {status} {}", message(&body)));
    }
    let info: Value = serde_json::from_slice(&body).map_err(|e| format!("info: {e}"))?;
    info["SystemStatus"]
        .as_array()
        .and_then(|pairs| {
            pairs
                .iter()
                .find(|p| p[0].as_str() == Some("Role"))
                .and_then(|p| p[1].as_str().map(str::to_string))
        })
        .ok_or_else(|| "info: no Role in SystemStatus".to_string())
}

/// The three managers and what they share with the writer.
struct Cluster {
    /// The managers, m1 first (the one that bootstrapped).
    managers: Vec<Peer>,
    /// Holds the data dirs and logs; removed when dropped (after the
    /// managers, which are dropped first).
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts m1 (bootstrap), waits for it to lead, then m2 and m3 with
    /// `--join` m1, waiting for each to be a voter.
    async fn start(bin: PathBuf) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("swarm-failover-")
            .tempdir()
            .context("creating a temp dir")?;
        let discovery = format!("nodes://{ENGINE}");
        let mut cluster = Cluster {
            managers: Vec::new(),
            _dir: dir,
        };
        for n in 1..=3 {
            let manager = Manager::spawn(ManagerConfig {
                name: format!("m{n}"),
                bin: Some(bin.clone()),
                raft_addr: Some(format!("127.0.0.1:{}", try_free_port()?)),
                join: cluster.managers.first().map(|m| m.api().to_string()),
                args: vec![discovery.clone()],
                dir: Some(cluster._dir.path().to_path_buf()),
                ..ManagerConfig::default()
            })?;
            let client = Arc::new(
                Upstream::new(&manager.host).map_err(|e| anyhow!("manager address: {e}"))?,
            );
            cluster.managers.push(Peer {
                n,
                manager,
                client,
                alive: Arc::new(AtomicBool::new(false)),
            });
            cluster.wait_member(n - 1).await?;
        }
        Ok(cluster)
    }

    /// Waits until manager `i` answers and some manager lists it as a
    /// reachable voter (with a leader in the same list); then the writer
    /// may send it writes.
    async fn wait_member(&mut self, i: usize) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let api = self.managers[i].api().to_string();
        let mut last = String::from("no answer yet");
        loop {
            self.managers[i].check_running()?;
            for j in self.live() {
                match members(&self.managers[j].client).await {
                    Ok(list) => {
                        let voter = list.iter().any(|m| {
                            m.api_addr == api
                                && m.reachable
                                && (m.role == "leader" || m.role == "follower")
                        });
                        let leader = list.iter().any(|m| m.role == "leader");
                        if voter && leader {
                            self.managers[i].alive.store(true, Ordering::SeqCst);
                            return Ok(start.elapsed());
                        }
                        last = format!("m{} lists {list:?}", j + 1);
                    }
                    Err(e) => last = format!("m{}: {e}", j + 1),
                }
            }
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "m{} ({api}) is no voter after {READY_TIMEOUT:?}: {last}\n{}",
                    i + 1,
                    tail(self.managers[i].manager.log_path(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Indexes of the managers whose process runs.
    fn live(&self) -> Vec<usize> {
        (0..self.managers.len())
            .filter(|&i| self.managers[i].is_up())
            .collect()
    }

    /// The index of the leader and its Raft ID, as the live managers report
    /// it (the first answer naming a leader that is one of ours and alive).
    async fn leader(&self, not: Option<u64>) -> Result<(usize, u64), String> {
        let mut last = String::from("no live manager");
        for j in self.live() {
            match members(&self.managers[j].client).await {
                Ok(list) => {
                    let found = list
                        .iter()
                        .find(|m| m.role == "leader" && Some(m.id) != not)
                        .and_then(|m| {
                            let i = self.managers.iter().position(|x| x.api() == m.api_addr)?;
                            self.managers[i].is_up().then_some(())?;
                            Some((i, m.id))
                        });
                    match found {
                        Some(found) => return Ok(found),
                        None => last = format!("m{} lists no live leader: {list:?}", j + 1),
                    }
                }
                Err(e) => last = format!("m{}: {e}", j + 1),
            }
        }
        Err(last)
    }
}

// ---------------------------------------------------------------------------
// The engine and its image
// ---------------------------------------------------------------------------

/// Checks the local engine answers and holds `busybox:local`, loading the
/// tests' image ([`busybox_image_tar`]) if it does not.
async fn ensure_image(engine: &Upstream) -> anyhow::Result<()> {
    let (status, body) = http(engine, hyper::Method::GET, "/_ping", None, CONTROL_TIMEOUT)
        .await
        .map_err(|e| anyhow!("the local engine {ENGINE} does not answer: {e}"))?;
    if status != 200 {
        bail!(
            "the local engine answers /_ping with {status}: {}",
            message(&body)
        );
    }
    let path = format!("/images/{IMAGE}/json");
    let (status, _) = http(engine, hyper::Method::GET, &path, None, CONTROL_TIMEOUT)
        .await
        .map_err(|e| anyhow!("inspecting {IMAGE}: {e}"))?;
    if status == 200 {
        return Ok(());
    }
    eprintln!("failover: loading {IMAGE} into {ENGINE}");
    let tar = tokio::task::spawn_blocking(busybox_image_tar)
        .await
        .context("building the image")?
        .map_err(|e| anyhow!("building {IMAGE}: {e}"))?;
    // The API behind `docker load`.
    let (status, body) = http_raw(
        engine,
        hyper::Method::POST,
        "/images/load?quiet=1",
        Some((Bytes::from(tar.to_vec()), "application/x-tar")),
        Duration::from_secs(120),
    )
    .await
    .map_err(|e| anyhow!("loading {IMAGE}: {e}"))?;
    let text = String::from_utf8_lossy(&body);
    if status != 200 || text.contains("\"error\"") {
        bail!("loading {IMAGE}: {status} {text}");
    }
    Ok(())
}

/// Removes every container of this run (by label) through the engine;
/// returns how many it removed.
async fn remove_containers(engine: &Upstream, run: &str) -> anyhow::Result<usize> {
    let filters = json!({ "label": [format!("{LABEL}={run}")] }).to_string();
    let path = format!(
        "/containers/json?all=1&filters={}",
        percent_encoding::utf8_percent_encode(&filters, percent_encoding::NON_ALPHANUMERIC)
    );
    let (status, body) = http(
        engine,
        hyper::Method::GET,
        &path,
        None,
        CONTROL_TIMEOUT * 10,
    )
    .await
    .map_err(|e| anyhow!("listing the run's containers: {e}"))?;
    if status != 200 {
        bail!("listing the run's containers: {status} {}", message(&body));
    }
    let list: Vec<Value> = serde_json::from_slice(&body).context("container list")?;
    let mut removed = 0;
    for c in list {
        if let Some(id) = c["Id"].as_str() {
            if delete_container(engine, id).await.is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// `DELETE /containers/ID?force=1` on the engine.
async fn delete_container(engine: &Upstream, id: &str) -> Result<(), String> {
    let path = format!("/containers/{id}?force=1");
    let (status, body) = http(engine, hyper::Method::DELETE, &path, None, WRITE_TIMEOUT).await?;
    match status {
        200..=299 | 404 => Ok(()),
        _ => Err(format!("{status} {}", message(&body))),
    }
}

// ---------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------

/// One accepted write: when it was sent and when the answer came.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    /// When the request was sent.
    sent: Instant,
    /// When the 201 arrived.
    answered: Instant,
}

/// What the writer records, shared with the bench loop.
#[derive(Default)]
struct WriteLog {
    /// Accepted writes, in the order their answers came.
    accepted: Mutex<Vec<Accepted>>,
    /// Refused or failed writes.
    failed: AtomicU64,
    /// Ticks skipped because [`MAX_IN_FLIGHT`] writes were pending.
    skipped: AtomicU64,
    /// A few distinct failure messages, with their counts.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl WriteLog {
    /// The first accepted write sent at or after `since`, if any.
    fn first_sent_after(&self, since: Instant) -> Option<Accepted> {
        let accepted = self.accepted.lock().ok()?;
        accepted
            .iter()
            .filter(|a| a.sent >= since)
            .min_by_key(|a| a.answered)
            .copied()
    }

    /// Records a failure (the message's first 160 characters, with
    /// addresses and error numbers folded, so one kind of error counts once).
    fn fail(&self, why: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let key = fold_error(why);
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < 20 || errors.contains_key(&key) {
                *errors.entry(key).or_default() += 1;
            }
        }
    }
}

/// Starts one create every `interval` through the next live manager, until
/// `stop` is set; created IDs go to `created` for removal. Returns once
/// every write it started has ended.
async fn writer(
    targets: Vec<(Arc<Upstream>, Arc<AtomicBool>)>,
    interval: Duration,
    run: String,
    log: Arc<WriteLog>,
    created: mpsc::UnboundedSender<String>,
    stop: Arc<AtomicBool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let mut next = 0usize;
    while !stop.load(Ordering::SeqCst) {
        ticker.tick().await;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            log.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        // The next manager in turn whose process runs.
        let Some(k) = (0..targets.len())
            .map(|d| (next + d) % targets.len())
            .find(|&k| targets[k].1.load(Ordering::SeqCst))
        else {
            continue;
        };
        next = k + 1;
        seq += 1;
        let client = targets[k].0.clone();
        let name = format!("failover-{run}-{seq}");
        let body = json!({
            "Image": IMAGE,
            "Cmd": ["true"],
            "Labels": { LABEL: run },
        });
        let log = log.clone();
        let created = created.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            let path = format!("/containers/create?name={name}");
            match http(
                &client,
                hyper::Method::POST,
                &path,
                Some(&body),
                WRITE_TIMEOUT,
            )
            .await
            {
                Ok((201, body)) => {
                    let answered = Instant::now();
                    if let Ok(mut accepted) = log.accepted.lock() {
                        accepted.push(Accepted { sent, answered });
                    }
                    let id = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["Id"].as_str().map(str::to_string));
                    if let Some(id) = id {
                        let _ = created.send(id);
                    }
                }
                Ok((status, body)) => log.fail(&format!("{status} {}", message(&body))),
                Err(e) => log.fail(&e),
            }
        });
    }
    // Wait for the writes still pending.
    let _all = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
}

/// Removes the containers the writer created, one at a time, as they come.
async fn remover(engine: Arc<Upstream>, mut created: mpsc::UnboundedReceiver<String>) {
    while let Some(id) = created.recv().await {
        let _ = delete_container(&engine, &id).await;
    }
}

// ---------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------

/// The figures of one kill.
#[derive(Debug, Clone)]
struct Kill {
    /// Which manager was killed (1..3) and its Raft ID.
    killed: (usize, u64),
    /// Which manager led next (1..3), if one was seen.
    new_leader: Option<usize>,
    /// Kill → first accepted write sent after the kill.
    first_write: Duration,
    /// Kill → a survivor reports another leader.
    election: Option<Duration>,
    /// Restart → the manager is a reachable voter again.
    rejoin: Duration,
    /// Writes refused or failed between the kill and the first accepted one.
    failed: u64,
}

/// Polls the survivors until one reports a leader other than `old`;
/// the time since `since`, or None after [`READY_TIMEOUT`].
async fn watch_election(
    survivors: Vec<(usize, Arc<Upstream>)>,
    apis: Vec<String>,
    old: u64,
    since: Instant,
) -> Option<(Duration, usize)> {
    while since.elapsed() < READY_TIMEOUT {
        for (_, client) in &survivors {
            let Ok(list) = members(client).await else {
                continue;
            };
            if let Some(m) = list.iter().find(|m| m.role == "leader" && m.id != old) {
                let n = apis
                    .iter()
                    .position(|a| *a == m.api_addr)
                    .map_or(0, |i| i + 1);
                return Some((since.elapsed(), n));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Runs the kills against a started cluster; the figures of each.
async fn kills(
    cluster: &mut Cluster,
    options: &Options,
    log: &WriteLog,
) -> anyhow::Result<Vec<Kill>> {
    let mut results = Vec::new();
    let apis: Vec<String> = cluster
        .managers
        .iter()
        .map(|m| m.api().to_string())
        .collect();
    for round in 1..=options.kills {
        let (i, id) = cluster
            .leader(None)
            .await
            .map_err(|e| anyhow!("before kill {round}: no leader: {e}"))?;
        match info_role(&cluster.managers[i].client).await {
            Ok(role) if role == "primary" => {}
            Ok(role) => eprintln!(
                "failover: warning: leader m{} (Raft {id}) says Role {role:?} in /info",
                i + 1
            ),
            Err(e) => eprintln!("failover: warning: leader m{} /info: {e}", i + 1),
        }
        let failed_before = log.failed.load(Ordering::Relaxed);
        let survivors: Vec<(usize, Arc<Upstream>)> = (0..3)
            .filter(|&j| j != i)
            .map(|j| (j, cluster.managers[j].client.clone()))
            .collect();

        let killed_at = Instant::now();
        cluster.managers[i].kill();
        let election = tokio::spawn(watch_election(survivors, apis.clone(), id, killed_at));

        let first = loop {
            if let Some(a) = log.first_sent_after(killed_at) {
                break a;
            }
            if killed_at.elapsed() > READY_TIMEOUT {
                bail!(
                    "kill {round}: no write accepted within {READY_TIMEOUT:?} after killing m{} \
                     (Raft {id}); failures: {:?}",
                    i + 1,
                    log.errors.lock().map(|e| e.clone()).unwrap_or_default()
                );
            }
            for j in cluster.live() {
                cluster.managers[j].check_running()?;
            }
            tokio::time::sleep(POLL).await;
        };
        let first_write = first.answered.duration_since(killed_at);
        let failed = log.failed.load(Ordering::Relaxed) - failed_before;
        let (election, new_leader) = match election.await {
            Ok(Some((d, n))) => (Some(d), Some(n)),
            _ => (None, None),
        };

        let restarted = Instant::now();
        cluster.managers[i].manager.start()?;
        let rejoin = cluster.wait_member(i).await.map(|_| restarted.elapsed())?;
        // One write accepted after the rejoin, then a pause, before the next kill.
        let back = Instant::now();
        while log.first_sent_after(back).is_none() {
            if back.elapsed() > READY_TIMEOUT {
                bail!(
                    "after kill {round}: no write accepted once m{} was back",
                    i + 1
                );
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(SETTLE).await;

        let kill = Kill {
            killed: (i + 1, id),
            new_leader,
            first_write,
            election,
            rejoin,
            failed,
        };
        eprintln!(
            "failover: kill {round:>2}/{}: m{} (Raft {id}) killed; first write after {:.0} ms, \
             new leader m{} after {}, {} writes failed; back as voter after {:.0} ms",
            options.kills,
            i + 1,
            ms(first_write),
            new_leader.map_or("?".to_string(), |n| n.to_string()),
            election.map_or("-".to_string(), |d| format!("{:.0} ms", ms(d))),
            failed,
            ms(rejoin),
        );
        results.push(kill);
    }
    Ok(results)
}

/// Where `target/failover.json` goes: the target directory this bench
/// was built in (the parent of its `release` directory).
fn json_path() -> anyhow::Result<PathBuf> {
    let profile = swarm_harness::binary::profile_dir().map_err(|e| anyhow!(e))?;
    let target = profile.parent().unwrap_or(&profile);
    Ok(target.join("failover.json"))
}

/// Prints the per-kill rows and the percentile table; writes the JSON.
fn report(options: &Options, results: &[Kill], log: &WriteLog) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = results
        .iter()
        .enumerate()
        .map(|(k, r)| {
            vec![
                (k + 1).to_string(),
                format!("m{} ({})", r.killed.0, r.killed.1),
                r.new_leader.map_or("?".to_string(), |n| format!("m{n}")),
                r.election
                    .map_or("-".to_string(), |d| format!("{:.1} ms", ms(d))),
                format!("{:.1} ms", ms(r.first_write)),
                r.failed.to_string(),
                format!("{:.0} ms", ms(r.rejoin)),
            ]
        })
        .collect();
    println!();
    print!(
        "{}",
        markdown(
            &[
                ("kill", true),
                ("killed (Raft ID)", false),
                ("new leader", false),
                ("kill→new leader", true),
                ("kill→first accepted write", true),
                ("failed writes", true),
                ("restart→voter", true),
            ],
            &rows
        )
    );

    let mut writes: Vec<Duration> = results.iter().map(|r| r.first_write).collect();
    writes.sort();
    let mut elections: Vec<Duration> = results.iter().filter_map(|r| r.election).collect();
    elections.sort();
    let mut latencies: Vec<Duration> = log
        .accepted
        .lock()
        .map(|a| a.iter().map(|a| a.answered - a.sent).collect())
        .unwrap_or_default();
    latencies.sort();

    let mut stats = serde_json::Map::new();
    let mut rows = Vec::new();
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
        let figures = [
            percentile(&writes, p),
            percentile(&elections, p),
            percentile(&latencies, p),
        ];
        let mut row = vec![name.to_string()];
        row.extend(figures.iter().map(|f| format!("{f:.1} ms")));
        rows.push(row);
        stats.insert(
            name.to_string(),
            json!({
                "kill_to_first_write_ms": figures[0],
                "kill_to_new_leader_ms": figures[1],
                "create_latency_ms": figures[2],
            }),
        );
    }
    let title = format!(
        "{} kills, a create every {} ms",
        results.len(),
        options.interval.as_millis()
    );
    println!();
    print!(
        "{}",
        markdown(
            &[
                (title.as_str(), false),
                ("kill→first accepted write", true),
                ("kill→new leader", true),
                ("create latency (all accepted)", true),
            ],
            &rows
        )
    );
    let accepted = latencies.len();
    let failed = log.failed.load(Ordering::Relaxed);
    let skipped = log.skipped.load(Ordering::Relaxed);
    println!();
    println!("writes: {accepted} accepted, {failed} failed, {skipped} ticks skipped (all {MAX_IN_FLIGHT} in flight)");
    let errors = log.errors.lock().map(|e| e.clone()).unwrap_or_default();
    for (why, count) in &errors {
        println!("  {count:>5} × {why}");
    }

    let doc = json!({
        "bench": "failover",
        "managers": 3,
        "kills": results.len(),
        "write_interval_ms": options.interval.as_millis() as u64,
        "stats": stats,
        "writes": { "accepted": accepted, "failed": failed, "skipped_ticks": skipped },
        "write_errors": errors,
        "rounds": results.iter().map(|r| json!({
            "killed": format!("m{}", r.killed.0),
            "killed_raft_id": r.killed.1,
            "new_leader": r.new_leader.map(|n| format!("m{n}")),
            "kill_to_first_write_ms": ms(r.first_write),
            "kill_to_new_leader_ms": r.election.map(ms),
            "failed_writes": r.failed,
            "restart_to_voter_ms": ms(r.rejoin),
        })).collect::<Vec<_>>(),
    });
    let path = json_path()?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("figures written to {}", path.display());
    Ok(())
}

/// The `swarm` binary: `SWARM_BIN`, else `target/release/swarm` (see
/// [`swarm_harness::try_binary`]); it must know `--raft-addr` and `--join`.
fn swarm_bin() -> anyhow::Result<PathBuf> {
    let bin = swarm_harness::try_binary("swarm").map_err(|e| anyhow!(e))?;
    let help = Command::new(&bin)
        .args(["manage", "--help"])
        .output()
        .with_context(|| format!("running {} manage --help", bin.display()))?;
    let help = String::from_utf8_lossy(&help.stdout);
    if !help.contains("--raft-addr") || !help.contains("--join") {
        bail!(
            "{} has no --raft-addr/--join: this build has no HA managers",
            bin.display()
        );
    }
    Ok(bin)
}

/// Sets up, measures, and always cleans up.
async fn bench(options: Options) -> anyhow::Result<()> {
    let bin = swarm_bin()?;
    let engine = Arc::new(Upstream::new(ENGINE).map_err(|e| anyhow!("{e}"))?);
    ensure_image(&engine).await?;
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or(0)
    );
    eprintln!(
        "failover: starting 3 managers ({}), run {run}",
        bin.display()
    );
    let mut cluster = Cluster::start(bin).await?;
    eprintln!(
        "failover: cluster up: {}",
        cluster
            .managers
            .iter()
            .map(|m| format!("m{} {}", m.n, m.api()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let log = Arc::new(WriteLog::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (created_tx, created_rx) = mpsc::unbounded_channel();
    let targets = cluster
        .managers
        .iter()
        .map(|m| (m.client.clone(), m.alive.clone()))
        .collect();
    let writer = tokio::spawn(writer(
        targets,
        options.interval,
        run.clone(),
        log.clone(),
        created_tx,
        stop.clone(),
    ));
    let remover = tokio::spawn(remover(engine.clone(), created_rx));

    // Warm-up: the managers must see the engine before a create can pass.
    let warm = Instant::now();
    let outcome = async {
        while log.first_sent_after(warm).is_none() {
            if warm.elapsed() > READY_TIMEOUT {
                bail!(
                    "no write accepted within {READY_TIMEOUT:?} of the cluster being up: {:?}",
                    log.errors.lock().map(|e| e.clone()).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "failover: first write accepted after {:.0} ms; killing the leader {} times",
            ms(warm.elapsed()),
            options.kills
        );
        kills(&mut cluster, &options, &log).await
    };
    let outcome = tokio::select! {
        r = outcome => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };

    // Cleanup, whatever happened: writer, processes, containers.
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(WRITE_TIMEOUT * 2, writer).await;
    let _ = tokio::time::timeout(Duration::from_secs(120), remover).await;
    let logs: Vec<PathBuf> = cluster
        .managers
        .iter()
        .map(|m| m.manager.log_path().to_path_buf())
        .collect();
    if outcome.is_err() {
        for path in &logs {
            eprintln!("{}", tail(path, 15));
        }
    }
    drop(cluster);
    match remove_containers(&engine, &run).await {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "failover: removed {n} containers left over (creates answered after the kill or lost)"
        ),
        Err(e) => {
            eprintln!("failover: cleanup: {e} (containers labelled {LABEL}={run} may remain)")
        }
    }
    let results = outcome?;
    report(&options, &results, &log)
}

/// Runs the bench under `cargo bench`; does nothing as a test.
fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    if !options.bench {
        println!(
            "failover bench: needs Docker and a release build; run `cargo bench --bench failover`"
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(bench(options))
}
