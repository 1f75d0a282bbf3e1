//! The `swarm` binary: `swarm manage`, `join`, `create` and `list`.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use swarm::api::{self, Listen};
use swarm::cli::{Cli, Command, LogFormat, ManageArgs};
use swarm::cluster::{Cluster, RaftSettings};
use swarm::discovery::Discovery;
use swarm::manager::{Manager, ManagerConfig};
use swarm::tls::{ClientTlsArgs, ManagerTls};

/// jemalloc, not glibc's allocator: a busy manager spent about a tenth of
/// its CPU in glibc's malloc and free; with jemalloc it places 10-20% more
/// containers per second for 5% more memory (docs/perf-log.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(swarm::cli::classic_args(std::env::args()));
    let level = if cli.debug {
        "debug"
    } else {
        cli.log_level.as_str()
    };
    init_logging(level, cli.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Manage(args) => manage(*args).await,
            Command::List {
                discovery,
                manager,
                timeout,
                discovery_opts,
                tls,
            } => {
                let discovery = swarm::cli::discovery_required(discovery.as_deref(), "list")
                    .map_err(anyhow::Error::msg)?;
                list(
                    &discovery,
                    manager.as_deref(),
                    timeout,
                    &discovery_opts,
                    &tls,
                )
                .await
            }
            Command::Create { manager, tls } => create(manager.as_deref(), &tls).await,
            Command::Join(args) => join_discovery(args).await,
        }
    })
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    // Raft's own chatter (votes, replication) is for debugging: below info
    // unless the filter names it.
    let directives = if level.contains("openraft") {
        level.to_string()
    } else {
        format!("{level},openraft=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("invalid --log-level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// TLS to the manager `discovery` asks, as `tls` says: only a `token://`
/// discovery with a manager reads the flags' files (`DOCKER_TLS_VERIFY`
/// set for the docker CLI does not stop `swarm list etcd://...`).
fn hub_tls(
    discovery: &Discovery,
    tls: &ClientTlsArgs,
) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    match discovery.token_hub() {
        Some(_) => Ok(tls.client_config(&swarm::tls::process_env)?),
        None => Ok(None),
    }
}

async fn list(
    url: &str,
    manager: Option<&str>,
    timeout: std::time::Duration,
    opts: &[String],
    tls: &ClientTlsArgs,
) -> anyhow::Result<()> {
    let kv_tls = swarm::cli::kv_tls(opts).map_err(anyhow::Error::msg)?;
    let discovery = Discovery::parse_with(url, kv_tls)?.with_hub(manager);
    let hub_tls = hub_tls(&discovery, tls)?;
    let addrs = tokio::time::timeout(timeout, discovery.fetch_with(hub_tls.as_ref()))
        .await
        .map_err(|_| anyhow::anyhow!("{url} gave no answer within {timeout:?}"))??;
    for addr in addrs {
        println!("{addr}");
    }
    Ok(())
}

/// `swarm create`: a token from the managers, or made here.
async fn create(manager: Option<&str>, tls: &ClientTlsArgs) -> anyhow::Result<()> {
    let token = match manager {
        Some(hub) => {
            let tls = tls.client_config(&swarm::tls::process_env)?;
            swarm::discovery::token::TokenHub::new(hub, tls.as_ref())?
                .create()
                .await?
        }
        None => swarm::ids::random_hex32(),
    };
    println!("{token}");
    Ok(())
}

/// `swarm join`: registers the engine until interrupted.
async fn join_discovery(args: swarm::cli::JoinArgs) -> anyhow::Result<()> {
    let (url, advertise) = args.validate().map_err(anyhow::Error::msg)?;
    let kv_tls = swarm::cli::kv_tls(&args.discovery_opts).map_err(anyhow::Error::msg)?;
    let discovery = Discovery::parse_with(&url, kv_tls)?.with_hub(args.manager.as_deref());
    let hub_tls = hub_tls(&discovery, &args.tls)?;
    let join = swarm::discovery::join::Join {
        discovery,
        advertise: advertise.trim_start_matches("tcp://").to_string(),
        heartbeat: args.heartbeat,
        ttl: args.ttl,
        delay: args.delay,
        hub_tls,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
    });
    swarm::discovery::join::run(join, cancel).await?;
    Ok(())
}

async fn manage(args: ManageArgs) -> anyhow::Result<()> {
    for note in args.classic_notes().map_err(anyhow::Error::msg)? {
        tracing::warn!("{note}");
    }
    let listen = Listen::parse(&args.host).map_err(anyhow::Error::msg)?;
    let discovery_url = args.discovery_url();
    let kv_tls = args.kv_tls().map_err(anyhow::Error::msg)?;
    let discovery = Discovery::parse_with(&discovery_url, kv_tls.clone())?;
    if let Discovery::Nodes(addrs) = &discovery {
        let own = match &listen {
            Listen::Tcp(addr) => format!("tcp://{addr}"),
            Listen::Unix(path) => format!("unix://{}", path.display()),
        };
        if addrs
            .iter()
            .any(|a| swarm::upstream::Addr::parse(a).is_ok_and(|e| e.to_string() == own))
        {
            anyhow::bail!(
                "discovery lists this manager's own address {own} as an engine (is DOCKER_HOST pointing at the manager?)"
            );
        }
    }
    let api_addr = match (&args.advertise, &listen) {
        (Some(advertise), _) => advertise.trim_start_matches("tcp://").to_string(),
        (None, Listen::Tcp(addr)) => addr.to_string(),
        (None, Listen::Unix(path)) => format!("unix://{}", path.display()),
    };
    let modes = args.tls_modes();
    let files = args.tls.files();
    let tls = ManagerTls::new(files.clone(), modes)
        .with_context(|| format!("setting up TLS ({files})"))?;
    if tls.is_some() {
        let between_managers = match modes.api {
            Some(_) => "mutual TLS, managers only",
            None => "plain",
        };
        tracing::info!(api = ?modes.api, between_managers, engines = modes.engines, "TLS");
    }
    if tls.as_ref().and_then(|t| t.api.as_ref()).is_none() {
        warn_if_open(&listen);
    }
    let settings = RaftSettings {
        raft_addr: args.raft_addr,
        api_addr,
        data_dir: args.data_dir.clone(),
        snapshot_logs: args.raft_snapshot_logs,
        heartbeat: args.raft_heartbeat,
        tls: tls.as_ref().and_then(|t| t.raft.clone()),
    };
    let cluster = Cluster::start(&settings)
        .await
        .with_context(|| format!("starting raft on {}", args.raft_addr))?;
    let member = cluster.member();
    tracing::info!(id = cluster.id(), raft = %member.raft_addr, api = %member.api_addr, "manager identity");
    let config = ManagerConfig {
        placement: args.placement(),
        refresh_min: args.engine_refresh_min_interval,
        refresh_max: args
            .engine_refresh_max_interval
            .max(args.engine_refresh_min_interval),
        failure_retry: args.failure_retry(),
        list_cache: args.list_cache,
        engine_tls: tls.as_ref().and_then(|t| t.engines.clone()),
        peer_tls: tls.as_ref().and_then(|t| t.peers.clone()),
        kv_tls,
        create_retry: args.create_retry(),
    };
    let joining = !cluster.has_membership() && args.join.is_some();
    if !cluster.has_membership() && args.join.is_none() {
        cluster
            .bootstrap()
            .await
            .context("bootstrapping the cluster")?;
        tracing::info!("started a new cluster");
    }
    let manager = Manager::new(config, cluster);
    let cancel = CancellationToken::new();
    {
        let manager = Arc::clone(&manager);
        let cancel = cancel.clone();
        tokio::spawn(async move { manager.watch_quorum(cancel).await });
    }
    if let (true, Some(target)) = (joining, args.join.clone()) {
        tokio::spawn(join(
            target,
            manager.raft_id(),
            member.clone(),
            manager.config.peer_tls.clone(),
            cancel.clone(),
        ));
    }
    tokio::spawn(lead_while_leader(
        Arc::clone(&manager),
        discovery_url,
        cancel.clone(),
    ));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "swarm manager starting"
    );
    let shutdown = {
        let cancel = cancel.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            cancel.cancel();
        }
    };
    if let Some(tls) = &tls {
        tokio::spawn(swarm::tls::reload_on_sighup(
            tls.identity.clone(),
            cancel.clone(),
        ));
    }
    let options = api::ApiOptions {
        tls: tls.as_ref().and_then(|t| t.api.clone()),
        ..args.api_options()
    };
    let served = api::serve(&listen, Arc::clone(&manager), options, shutdown)
        .await
        .with_context(|| format!("serving the API on {}", args.host));
    manager.shutdown().await;
    served
}

/// Warns that a plain API on TCP lets anyone who reaches it act as root on
/// every node, and join the cluster as a manager.
fn warn_if_open(listen: &Listen) {
    if let Listen::Tcp(addr) = listen {
        let loopback = addr
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        tracing::warn!(
            %addr,
            loopback,
            "the API and the Raft port are served without TLS: whoever reaches them controls every node and may join as a manager; use --tlsverify"
        );
    }
}

/// Runs the leader's duties whenever this manager leads, and stops them as
/// soon as it does not (a deposed leader must not act on engines).
async fn lead_while_leader(
    manager: Arc<Manager>,
    discovery_url: String,
    cancel: CancellationToken,
) {
    let mut metrics = manager.raft_metrics();
    let mut duties: Option<CancellationToken> = None;
    loop {
        let leading = metrics.borrow_and_update().state == swarm_raft::ServerState::Leader;
        match (leading, &duties) {
            (true, None) => {
                tracing::info!("leading: watching the engines");
                let token = cancel.child_token();
                tokio::spawn(Arc::clone(&manager).lead(discovery_url.clone(), token.clone()));
                duties = Some(token);
            }
            (false, Some(token)) => {
                tracing::info!("not leading any more: engines left to the leader");
                token.cancel();
                duties = None;
            }
            _ => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

/// Asks the manager at `target` (any member; followers forward) to add this
/// one, until it answers yes.
async fn join(
    target: String,
    id: u64,
    member: swarm_raft::Member,
    tls: Option<Arc<rustls::ClientConfig>>,
    cancel: CancellationToken,
) {
    let body = serde_json::json!({
        "id": id,
        "raft_addr": member.raft_addr,
        "api_addr": member.api_addr,
        "format": <swarm::cluster::ClusterState as swarm_raft::StateMachine>::FORMAT,
    })
    .to_string();
    let url = if target.contains("://") {
        target.clone()
    } else {
        format!("tcp://{target}")
    };
    let member_client = match swarm::upstream::Upstream::connecting(&url, tls.as_ref()) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(%target, error = %e, "invalid --join address");
            return;
        }
    };
    loop {
        let request = hyper::Request::post("/_swarm/join")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())));
        let outcome = match request {
            Ok(request) => match member_client.send(request).await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(refusal(response).await),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(%target, "joined the cluster");
                return;
            }
            Err(e) => tracing::warn!(%target, error = %e, "join refused; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// A refused join's status and the manager's message.
async fn refusal(response: hyper::Response<swarm::upstream::PoolBody>) -> String {
    use http_body_util::BodyExt;
    let status = response.status();
    // A manager's error is a line of JSON: no more is read.
    let body = http_body_util::Limited::new(response.into_body(), 64 * 1024).collect();
    let body = match tokio::time::timeout(std::time::Duration::from_secs(5), body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => bytes::Bytes::new(),
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("answered {status}: {message}")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
