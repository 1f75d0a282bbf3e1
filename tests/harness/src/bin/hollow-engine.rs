//! `hollow-engine`: N fake Docker Engines in one process, for testing and
//! benchmarking `swarm manage` at scale (the engines are
//! [`swarm_harness::hollow`]'s; see there for what they serve).
//!
//! ```text
//! hollow-engine --nodes 1000 --base-port 20000 [--host 127.0.0.1] [--cpus 4]
//!               [--memory 8g] [--label k=v]... [--latency 1ms] [--admin-port P]
//! swarm manage -H tcp://127.0.0.1:2375 'nodes://127.0.0.1:[20000:20999]'
//! ```
//!
//! Node `i` listens on `BASE_PORT + i` and is named `hollow-<i>`. Once all
//! listeners accept, one line is printed on stdout:
//! `hollow-engine: N nodes on HOST:FIRST-LAST, admin HOST:PORT, discovery nodes://...`.
//!
//! Failures, for tests:
//! - on any node, `POST /hollow/kill?for=5s` makes that node stop answering
//!   (listener and connections closed) for 5 s; without `for`, until revived;
//! - on the admin port (`--admin-port`, default `BASE_PORT - 1`):
//!   `POST /hollow/kill?node=I[&for=5s]`, `POST /hollow/revive?node=I`
//!   (`node` is an index, a range `A-B`, or `all`), and `GET /hollow/nodes`
//!   (index, address, ID, name, alive, containers of every node).
//!
//! SIGINT or SIGTERM stops everything.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use swarm_harness::hollow::{parse_memory, Fleet, FleetConfig};

const AFTER_HELP: &str = "\
Node I listens on BASE_PORT+I, named <NAME_PREFIX>-<I>, each with its own engine ID
(stable across kill/revive), containers and events; every node holds busybox:local.
API 1.41 (with or without a /vX.Y prefix): _ping, version, info, events, containers
(create/start/stop/kill/restart/pause/unpause/rename/wait/logs/attach/inspect/list/
remove), images list/inspect, networks, volumes; the rest answers 501. Containers run
nothing: `sleep N`, `true`, `false`, `echo`, `exit N` (also inside `sh -c`) end as they
would; other commands run until stopped. Logs and attached output are canned.

Failure injection:
  POST http://HOST:BASE_PORT+I/hollow/kill?for=5s   node I stops answering for 5 s
  POST http://HOST:BASE_PORT+I/hollow/kill          node I stops answering until revived
  POST http://HOST:ADMIN/hollow/kill?node=I[&for=5s]   same, through the admin port
  POST http://HOST:ADMIN/hollow/revive?node=I          node I answers again
  GET  http://HOST:ADMIN/hollow/nodes                  every node: address, ID, alive
  (node=I may also be a range A-B or `all`)
A killed node closes its listener and all connections (clients see connection
refused and broken streams); its containers are kept.

Many nodes need many file descriptors: about 3 per node with a manager attached
(raise `ulimit -n` for thousands of nodes).";

/// N fake Docker Engines in one process.
#[derive(Parser, Debug)]
#[command(name = "hollow-engine", version, about, after_help = AFTER_HELP)]
struct Args {
    /// How many engines to run.
    #[arg(long)]
    nodes: usize,
    /// Node I listens on BASE_PORT + I (0: every node on a free port).
    #[arg(long)]
    base_port: u16,
    /// The address every node listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// NCPU every node reports.
    #[arg(long, default_value_t = 4)]
    cpus: i64,
    /// MemTotal every node reports (512m, 8g, ...).
    #[arg(long, default_value = "8g", value_parser = memory)]
    memory: i64,
    /// An engine label every node reports (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    labels: Vec<String>,
    /// Delay added before every answer (1ms, 50ms, ...).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Node I is named <NAME_PREFIX>-<FIRST_INDEX + I>.
    #[arg(long, default_value = "hollow")]
    name_prefix: String,
    /// The number in the first node's name (for a fleet split over several
    /// processes).
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// Port of the admin endpoint (default BASE_PORT - 1; 0: a free port).
    #[arg(long)]
    admin_port: Option<u16>,
    /// Serve no admin endpoint.
    #[arg(long, conflicts_with = "admin_port")]
    no_admin: bool,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "HOLLOW_LOG", default_value = "warn")]
    log: String,
}

fn memory(s: &str) -> Result<i64, String> {
    parse_memory(s).map_err(|e| e.to_string())
}

fn label(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// The soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    if let Some(limit) = open_files_limit() {
        let wanted = args.nodes as u64 * 3 + 64;
        if limit < wanted {
            tracing::warn!(
                limit,
                wanted,
                "few file descriptors for this many nodes: raise `ulimit -n`"
            );
        }
    }
    let admin_port = if args.no_admin {
        None
    } else {
        Some(
            args.admin_port
                .unwrap_or_else(|| args.base_port.saturating_sub(1)),
        )
    };
    let t0 = Instant::now();
    let fleet = Fleet::start(FleetConfig {
        nodes: args.nodes,
        host: args.host,
        base_port: args.base_port,
        cpus: args.cpus,
        memory: args.memory,
        labels: args.labels.clone(),
        latency: args.latency,
        name_prefix: args.name_prefix.clone(),
        first_index: args.first_index,
        admin_port,
    })
    .await?;
    let started = t0.elapsed();
    let addrs = fleet.addrs();
    let (first, last) = (addrs[0], addrs[addrs.len() - 1]);
    let discovery = if args.base_port == 0 {
        fleet.discovery()
    } else {
        format!(
            "nodes://{}:[{}:{}]",
            url_host(&args.host),
            first.port(),
            last.port()
        )
    };
    let admin = fleet
        .admin_addr()
        .map_or("none".to_string(), |a| a.to_string());
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "hollow-engine: {} nodes on {}-{}, admin {admin}, discovery {discovery} (started in {} ms)",
        fleet.len(),
        first,
        last.port(),
        started.as_millis()
    )?;
    stdout.flush()?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(fleet);
    Ok(())
}

/// An IP as it appears in a URL (IPv6 in brackets).
fn url_host(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
