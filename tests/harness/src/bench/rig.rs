//! The processes of a self-contained scenario (`standard`, `reschedule`)
//! and the steps both take with them: start a hollow fleet and wait until
//! it answers, start managers and wait until they are ready, wait until
//! every node is healthy. Every process is stopped when the run ends, also
//! on an error or when the future is dropped (Ctrl-C).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::client::Client;
use super::query::node_counts;
use super::scratch::ScratchDir;
use crate::manager::{Manager, ManagerConfig};
use crate::ports::{free_port_range, try_free_port};
use crate::process::{tail, Process};

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(100);
/// How long a stopping process gets after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// An error naming the first binary that does not exist.
pub(crate) fn check_binaries(binaries: &[(&str, &Path)]) -> anyhow::Result<()> {
    for (what, bin) in binaries {
        if !bin.exists() {
            bail!(
                "{what} binary {} missing: cargo build --release --bins (or pass its path)",
                bin.display()
            );
        }
    }
    Ok(())
}

/// What every scenario's rig is made of and how it starts: the binaries,
/// their extra arguments, the fleet's ports, how long they get, and what
/// is kept and printed.
#[derive(Debug, Clone)]
pub struct RigConfig {
    /// The `hollow-engine` binary.
    pub hollow_bin: PathBuf,
    /// The `swarm` binary.
    pub swarm_bin: PathBuf,
    /// Extra arguments for `hollow-engine`.
    pub hollow_args: Vec<String>,
    /// Extra arguments for every `swarm manage`.
    pub manager_args: Vec<String>,
    /// The certificates of a TLS run (`swarm-bench --tls`), kept as long
    /// as the run: `manager_args` name its files.
    pub pki: Option<std::sync::Arc<crate::Pki>>,
    /// `--log-level` of the managers.
    pub log_level: String,
    /// First node port; default: a free range.
    pub base_port: Option<u16>,
    /// How long the fleet and the managers get to be ready.
    pub ready_timeout: Duration,
    /// Keep the scratch directory (logs, data dirs).
    pub keep: bool,
    /// Print progress to stderr.
    pub progress: bool,
}

/// The processes of a run; field order is drop order: managers, then the
/// fleet, then the scratch directory.
pub(crate) struct Rig {
    /// The managers, in the order they were started.
    pub(crate) managers: Vec<Manager>,
    /// The `hollow-engine` processes, once started.
    pub(crate) hollow: Vec<Process>,
    /// Logs and data dirs.
    pub(crate) scratch: ScratchDir,
}

/// How to start the hollow fleet.
pub(crate) struct FleetSpec<'a> {
    /// The `hollow-engine` binary.
    pub(crate) bin: &'a Path,
    /// Hollow nodes.
    pub(crate) nodes: usize,
    /// The address every node listens on (`127.0.0.1` unless the managers
    /// live in network namespaces of their own).
    pub(crate) host: &'a str,
    /// First node port; `None`: a free range.
    pub(crate) base_port: Option<u16>,
    /// Whether to pass `--admin-port BASE-1` (hollow-engine's default
    /// otherwise, unless `args` say something else).
    pub(crate) admin: bool,
    /// Extra arguments for `hollow-engine`.
    pub(crate) args: &'a [String],
    /// How long the fleet gets to answer.
    pub(crate) ready_timeout: Duration,
    /// How long one `/_ping` may take.
    pub(crate) request_timeout: Duration,
    /// How many `hollow-engine` processes share the nodes (consecutive
    /// ports and names; the admin port, if any, is the first's).
    pub(crate) processes: usize,
}

/// A started hollow fleet: node `i` on `host:base+i`, the admin endpoint
/// on `base-1`.
pub(crate) struct HollowFleet {
    /// Nodes.
    pub(crate) nodes: usize,
    /// The address the nodes listen on.
    pub(crate) host: String,
    /// First node port.
    pub(crate) base: u16,
    /// Last node port.
    pub(crate) last: usize,
    /// The processes' pids, in node order.
    pub(crate) pids: Vec<u32>,
    /// Start → its first and last node answer.
    pub(crate) ready: Duration,
}

impl HollowFleet {
    /// Node `i`'s address.
    pub(crate) fn addr(&self, i: usize) -> String {
        format!("{}:{}", self.host, self.base as usize + i)
    }

    /// The admin endpoint's address.
    pub(crate) fn admin(&self) -> String {
        format!("{}:{}", self.host, self.base - 1)
    }

    /// The managers' discovery URL naming every node.
    pub(crate) fn discovery(&self) -> String {
        if self.nodes == 1 {
            format!("nodes://{}:{}", self.host, self.base)
        } else {
            format!("nodes://{}:[{}:{}]", self.host, self.base, self.last)
        }
    }
}

impl Rig {
    /// A rig with a fresh scratch directory `$TMPDIR/PREFIX-...`, kept at
    /// the end if `keep`.
    pub(crate) fn new(prefix: &str, keep: bool) -> anyhow::Result<Rig> {
        let mut scratch = ScratchDir::new(prefix)?;
        if keep {
            scratch.keep();
        }
        Ok(Rig {
            managers: Vec::new(),
            hollow: Vec::new(),
            scratch,
        })
    }

    /// The scratch directory.
    pub(crate) fn dir(&self) -> PathBuf {
        self.scratch.path().to_path_buf()
    }

    /// Errors if a process has exited.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        for h in &mut self.hollow {
            h.check_running()?;
        }
        for m in &mut self.managers {
            m.check_running()?;
        }
        Ok(())
    }

    /// The last lines of every log.
    pub(crate) fn tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let logs = self.hollow.iter().map(Process::log);
        for log in logs.chain(self.managers.iter().map(Manager::log_path)) {
            out.push_str(&tail(log, lines));
            out.push('\n');
        }
        out
    }

    /// Stops managers first (SIGTERM, then SIGKILL), then the fleet.
    pub(crate) fn stop(&mut self) {
        for m in &mut self.managers {
            m.stop(STOP_GRACE);
        }
        for h in &mut self.hollow {
            h.stop(STOP_GRACE);
        }
    }

    /// The end of scenario `name`: the logs' last `lines` lines if it
    /// failed, every process stopped, where the kept logs are.
    pub(crate) fn finish(&mut self, name: &str, failed: bool, lines: usize) {
        if failed {
            eprintln!("{}", self.tails(lines));
        }
        self.stop();
        if self.scratch.is_kept() {
            eprintln!(
                "{name}: logs and data kept in {}",
                self.scratch.path().display()
            );
        }
    }

    /// Step: start `hollow-engine --nodes N --base-port P --host HOST
    /// [--admin-port P-1] ARGS` (`P-1..P+N-1` a free range below the
    /// ephemeral ports unless `base_port` is given) and wait until its first
    /// and last node answer `/_ping`. `progress` prints a line first.
    pub(crate) async fn start_fleet(
        &mut self,
        spec: &FleetSpec<'_>,
        progress: impl Fn(String),
    ) -> anyhow::Result<HollowFleet> {
        // A free range is free when probed, not when bound: another process
        // may take one of its ports meanwhile (two scenarios started at once
        // pick ranges at once). A fleet that cannot listen tries another.
        let mut attempt = 1;
        loop {
            match self.launch_fleet(spec, &progress).await {
                Err(e) if spec.base_port.is_none() && attempt < 3 && cannot_listen(&e) => {
                    progress(format!(
                        "hollow-engine could not listen on its ports ({}); trying another range",
                        e.to_string().lines().next().unwrap_or_default()
                    ));
                    for (k, mut hollow) in std::mem::take(&mut self.hollow).into_iter().enumerate()
                    {
                        hollow.kill();
                        // The next try logs afresh: its errors are its own.
                        let log = hollow.log().to_path_buf();
                        let _ = std::fs::rename(
                            &log,
                            self.dir().join(format!("hollow{k}-try{attempt}.log")),
                        );
                    }
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// One try of [`Rig::start_fleet`].
    async fn launch_fleet(
        &mut self,
        spec: &FleetSpec<'_>,
        progress: &impl Fn(String),
    ) -> anyhow::Result<HollowFleet> {
        let n = spec.nodes;
        // The admin port is the one below the first node's.
        let base = match spec.base_port {
            Some(p) => p,
            None => free_port_range(spec.host, n + 1)? + 1,
        };
        if base < 2 || base as usize + n > 65_536 {
            bail!("ports {base}+{n} do not fit below 65536 (with the admin port below)");
        }
        let last = base as usize + n - 1;
        let processes = spec.processes.clamp(1, n);
        // Process k serves nodes [first, first + count).
        let shares: Vec<(usize, usize)> = (0..processes)
            .map(|k| {
                (
                    n * k / processes,
                    n * (k + 1) / processes - n * k / processes,
                )
            })
            .collect();
        let mut pids = Vec::with_capacity(processes);
        for (k, &(first, count)) in shares.iter().enumerate() {
            let mut args: Vec<String> = vec![
                "--nodes".into(),
                count.to_string(),
                "--base-port".into(),
                (base as usize + first).to_string(),
                "--first-index".into(),
                first.to_string(),
                "--host".into(),
                spec.host.to_string(),
            ];
            if spec.admin && k == 0 {
                args.extend(["--admin-port".into(), (base - 1).to_string()]);
            } else if k > 0 {
                args.push("--no-admin".into());
            }
            args.extend(spec.args.iter().cloned());
            let log = match processes {
                1 => self.dir().join("hollow.log"),
                _ => self.dir().join(format!("hollow{k}.log")),
            };
            let hollow = Process::spawn("hollow-engine", spec.bin, &args, &log)?;
            let pid = hollow.pid().unwrap_or(0);
            self.hollow.push(hollow);
            let admin = if spec.admin && k == 0 {
                format!(", admin {}:{}", spec.host, base - 1)
            } else {
                String::new()
            };
            let (from, to) = (base as usize + first, base as usize + first + count - 1);
            progress(format!(
                "hollow-engine (pid {pid}): {count} nodes on {}:{from}-{to}{admin}",
                spec.host
            ));
            pids.push(pid);
        }
        let started = Instant::now();
        let timeout = spec.request_timeout;
        // Each process's first and last node.
        let mut probes: Vec<usize> = shares
            .iter()
            .flat_map(|&(first, count)| [first, first + count - 1])
            .map(|i| base as usize + i)
            .collect();
        probes.dedup();
        for port in probes {
            let addr = format!("{}:{port}", spec.host);
            wait_until(self, spec.ready_timeout, &format!("node {addr}"), || {
                let addr = addr.clone();
                async move {
                    let mut c = Client::new(&addr, timeout)?;
                    match c.get("/_ping").await {
                        Ok(a) if a.status == 200 => Ok(Some(())),
                        Ok(a) => Err(a.describe()),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        }
        Ok(HollowFleet {
            nodes: n,
            host: spec.host.to_string(),
            base,
            last,
            pids,
            ready: started.elapsed(),
        })
    }

    /// Step: start a manager (see [`Manager::spawn`]); it is stopped with
    /// the rig.
    pub(crate) fn start_manager(&mut self, config: ManagerConfig) -> anyhow::Result<&Manager> {
        let manager = Manager::spawn(config)?;
        self.managers.push(manager);
        let last = self.managers.len() - 1;
        Ok(&self.managers[last])
    }

    /// Step: start manager `name` of a cluster over `discovery` as the
    /// rig starts them: `config`'s binary, log level and arguments, then
    /// `extra`; `--join` through `join` when given (the first bootstraps).
    /// On the loopback with free API and Raft ports, or `at` a host of its
    /// own (a network namespace and its address) on ports 2375 and 2380.
    pub(crate) fn start_member(
        &mut self,
        config: &RigConfig,
        name: &str,
        extra: &[String],
        discovery: String,
        join: Option<String>,
        at: Option<(String, Ipv4Addr)>,
    ) -> anyhow::Result<&Manager> {
        let mut args = config.manager_args.clone();
        args.extend_from_slice(extra);
        args.push(discovery);
        let dir = self.dir();
        let (netns, addr, raft_addr) = match at {
            Some((netns, ip)) => (Some(netns), format!("{ip}:2375"), format!("{ip}:2380")),
            None => (
                None,
                format!("127.0.0.1:{}", try_free_port()?),
                format!("127.0.0.1:{}", try_free_port()?),
            ),
        };
        self.start_manager(ManagerConfig {
            name: name.to_string(),
            bin: Some(config.swarm_bin.clone()),
            addr: Some(addr),
            raft_addr: Some(raft_addr),
            log_level: Some(config.log_level.clone()),
            join,
            args,
            dir: Some(dir),
            netns,
            ..ManagerConfig::default()
        })
    }

    /// Step: wait until the manager at `api` answers `/info` and, if
    /// `first` names the manager it joined, until that one lists it as a
    /// reachable voter.
    pub(crate) async fn wait_manager_ready(
        &mut self,
        api: &str,
        first: Option<&str>,
        ready_timeout: Duration,
        request_timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_until(self, ready_timeout, &format!("manager {api}"), || {
            manager_ready(api, first, request_timeout)
        })
        .await
    }

    /// Step: wait until `GET /info` on `api` lists at least `nodes` healthy
    /// nodes; returns how many. With `progress`, prints the node counts
    /// every 5 s.
    pub(crate) async fn wait_healthy(
        &mut self,
        api: &str,
        nodes: usize,
        ready_timeout: Duration,
        request_timeout: Duration,
        progress: Option<&str>,
    ) -> anyhow::Result<usize> {
        let mut last_report = Instant::now();
        wait_until(
            self,
            ready_timeout,
            &format!("{nodes} healthy nodes"),
            || {
                let print = progress.is_some() && last_report.elapsed() > Duration::from_secs(5);
                if print {
                    last_report = Instant::now();
                }
                async move {
                    let mut c = Client::manager(api, request_timeout)?;
                    let answer = c.get("/info").await?;
                    if answer.status != 200 {
                        return Err(answer.describe());
                    }
                    let counts = node_counts(&answer.json().ok_or("info: invalid JSON")?);
                    if let (true, Some(name)) = (print, progress) {
                        eprintln!(
                            "{name}: nodes {} (healthy {}, pending {}, other {})",
                            counts.nodes, counts.healthy, counts.pending, counts.other
                        );
                    }
                    Ok((counts.healthy >= nodes).then_some(counts.healthy))
                }
            },
        )
        .await
    }
}

/// Whether the manager at `api` is ready: it answers `/info`, and if
/// `first` is given, `first` lists it as a reachable voter.
async fn manager_ready(
    api: &str,
    first: Option<&str>,
    timeout: Duration,
) -> Result<Option<()>, String> {
    let mut c = Client::manager(api, timeout)?;
    let answer = c.get("/info").await?;
    if answer.status != 200 {
        return Err(answer.describe());
    }
    let Some(first) = first else {
        return Ok(Some(()));
    };
    let mut c = Client::manager(first, timeout)?;
    let answer = c.get("/_swarm/members").await?;
    if answer.status != 200 {
        return Err(answer.describe());
    }
    let members = answer.json().ok_or("members: invalid JSON")?;
    let voter = members.as_array().is_some_and(|list| {
        list.iter().any(|m| {
            m.get("api_addr").and_then(Value::as_str) == Some(api)
                && m.get("reachable").and_then(Value::as_bool) == Some(true)
                && matches!(
                    m.get("role").and_then(Value::as_str),
                    Some("leader") | Some("follower")
                )
        })
    });
    Ok(voter.then_some(()))
}

/// Polls `probe` every [`POLL`] until it returns `Ok(Some(v))`; fails
/// after `timeout` (with the last error) or when a process exited.
pub(crate) async fn wait_until<T, F, Fut>(
    rig: &mut Rig,
    timeout: Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    loop {
        rig.check()
            .with_context(|| format!("while waiting for {what}"))?;
        let last = match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_string(),
            Err(e) => e,
        };
        if start.elapsed() > timeout {
            bail!("{what} not ready after {timeout:?}: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `error` says that a hollow fleet exited because one of its
/// ports was taken (`HollowError::Bind`, in the end of its log).
fn cannot_listen(error: &anyhow::Error) -> bool {
    format!("{error:#}").contains("cannot listen on")
}
