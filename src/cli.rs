//! Command-line interface of the `swarm` binary (clap), with flags named as
//! Swarm classic named them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::scheduler::Strategy;

/// `swarm --version`: `swarm version X`, as classic printed it.
const VERSION: &str = concat!("version ", env!("CARGO_PKG_VERSION"));

/// swarm: a Docker-native clustering system.
#[derive(Debug, Parser)]
#[command(
    name = "swarm",
    version = VERSION,
    about,
    propagate_version = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version (`swarm version X`).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Log level: error, warn, info, debug, trace (or a tracing filter).
    #[arg(
        short = 'l',
        long,
        global = true,
        default_value = "info",
        env = "SWARM_LOG_LEVEL"
    )]
    pub log_level: String,
    /// Debug logging (classic's flag: --log-level debug).
    #[arg(long, global = true, env = "DEBUG", value_parser = clap::builder::FalseyValueParser::new())]
    pub debug: bool,
    /// Classic's experimental features: accepted; everything here is on.
    #[arg(long, global = true)]
    pub experimental: bool,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command line with classic's single-dash long flags (`-debug`,
/// `-strategy binpack`, `-H`'s siblings as Go's flag package took them)
/// given their second dash: an argument `-NAME` or `-NAME=VALUE` whose
/// NAME is a long flag of `swarm` or its subcommands becomes `--NAME...`.
/// Short flags (`-H`, `-f`, `-l`, `-v`) and values are left alone.
pub fn classic_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut longs: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    for sub in command.get_subcommands() {
        longs.extend(
            sub.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string)),
        );
        for alias in sub.get_arguments().filter_map(|a| a.get_visible_aliases()) {
            longs.extend(alias.into_iter().map(str::to_string));
        }
    }
    args.into_iter()
        .map(|arg| {
            let single = arg.len() > 2 && arg.starts_with('-') && !arg.starts_with("--");
            let name = arg[1..].split('=').next().unwrap_or_default();
            if single && name.len() > 1 && longs.iter().any(|l| l == name) {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `swarm` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Docker Engine API in front of a cluster of engines.
    #[command(visible_alias = "m")]
    Manage(Box<ManageArgs>),
    /// Print the engine addresses a discovery resolves to.
    #[command(visible_alias = "l")]
    List {
        /// Discovery URL: nodes://HOST:PORT,..., file:///path,
        /// token://[MANAGER:PORT/]TOKEN, etcd://... or zk://... (else
        /// $SWARM_DISCOVERY).
        #[arg(env = "SWARM_DISCOVERY")]
        discovery: Option<String>,
        /// How long the discovery may take to answer.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// Discovery option KEY=VALUE (repeatable): kv.cacertfile,
        /// kv.certfile, kv.keyfile (TLS to the key-value store).
        #[arg(long = "discovery-opt", value_name = "KEY=VALUE")]
        discovery_opts: Vec<String>,
        /// A manager serving token discovery (API address), for a
        /// token:// URL that names none.
        #[arg(long, env = "SWARM_MANAGER")]
        manager: Option<String>,
        /// How to reach a token:// URL's manager when it serves TLS (the
        /// docker CLI's flags).
        #[command(flatten)]
        tls: crate::tls::ClientTlsArgs,
    },
    /// Make a discovery token for token://TOKEN (asked of the managers
    /// with --manager, else made here: a manager started with
    /// token://TOKEN then serves it).
    #[command(visible_alias = "c")]
    Create {
        /// A manager serving token discovery (API address, any manager of
        /// the cluster).
        #[arg(long, env = "SWARM_MANAGER")]
        manager: Option<String>,
        /// How to reach the manager when it serves TLS (the docker CLI's
        /// flags).
        #[command(flatten)]
        tls: crate::tls::ClientTlsArgs,
    },
    /// Register an engine with a discovery (token://...), and keep it
    /// registered: run it next to the engine's dockerd.
    #[command(visible_alias = "j")]
    Join(JoinArgs),
}

/// `swarm join` flags, with classic's defaults.
#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// The engine's address as the managers reach it, IP:PORT (dockerd's
    /// -H tcp://0.0.0.0:PORT).
    #[arg(long, visible_alias = "addr", env = "SWARM_ADVERTISE")]
    pub advertise: Option<String>,
    /// Time between two registrations.
    #[arg(long, default_value = "60s", value_parser = parse_heartbeat)]
    pub heartbeat: Duration,
    /// How long a registration lasts unless renewed (more than the
    /// heartbeat).
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Longest random wait before the first registration (many engines
    /// joining at once spread out).
    #[arg(long, default_value = "0s", value_parser = parse_delay, allow_hyphen_values = true)]
    pub delay: Duration,
    /// A manager serving token discovery (API address), for a token://
    /// URL that names none.
    #[arg(long, env = "SWARM_MANAGER")]
    pub manager: Option<String>,
    /// Discovery option KEY=VALUE (repeatable): kv.cacertfile,
    /// kv.certfile, kv.keyfile (TLS to the key-value store).
    #[arg(long = "discovery-opt", value_name = "KEY=VALUE")]
    pub discovery_opts: Vec<String>,
    /// How to reach a token:// URL's manager when it serves TLS (the
    /// docker CLI's flags).
    #[command(flatten)]
    pub tls: crate::tls::ClientTlsArgs,
    /// Discovery URL: token://[MANAGER:PORT/]TOKEN,
    /// etcd://HOST:PORT,.../PATH or zk://HOST:PORT,.../PATH (else
    /// $SWARM_DISCOVERY).
    #[arg(env = "SWARM_DISCOVERY")]
    pub discovery: Option<String>,
}

/// Classic's words for a missing discovery: `verb` is what needed it
/// (`join`, `list`).
pub fn discovery_required(discovery: Option<&str>, verb: &str) -> Result<String, String> {
    discovery
        .filter(|d| !d.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            format!("discovery required to {verb} a cluster. See 'swarm {verb} --help'.")
        })
}

impl JoinArgs {
    /// Classic's checks: a discovery and an address are given, the TTL
    /// outlasts the heartbeat. Returns the discovery and the address.
    pub fn validate(&self) -> Result<(String, String), String> {
        let discovery = discovery_required(self.discovery.as_deref(), "join")?;
        let advertise = self
            .advertise
            .clone()
            .filter(|a| !a.trim().is_empty())
            .ok_or("missing mandatory --advertise flag")?;
        if self.ttl <= self.heartbeat {
            return Err(format!(
                "--ttl must be strictly superior to the heartbeat value ({:?} <= {:?})",
                self.ttl, self.heartbeat
            ));
        }
        Ok((discovery, advertise))
    }
}

/// `--delay`: a duration, never negative (classic's message).
fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err("--delay should not be a negative number".into());
    }
    humantime_duration(s)
}

/// A Raft heartbeat: a duration from 10ms to 10s.
pub fn parse_raft_heartbeat(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(10) {
        return Err(format!(
            "{s}: the Raft heartbeat must be between 10ms and 10s"
        ));
    }
    Ok(d)
}

/// A heartbeat: at least one second, as classic required.
pub fn parse_heartbeat(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("invalid heartbeat {s:?}: at least 1s"));
    }
    Ok(d)
}

/// A duration that may be zero.
fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// `swarm manage` flags.
#[derive(Debug, clap::Args)]
pub struct ManageArgs {
    /// Address to serve the API on: tcp://IP:PORT or unix:///path.
    #[arg(
        short = 'H',
        long = "host",
        default_value = "tcp://127.0.0.1:4000",
        env = "SWARM_HOST"
    )]
    pub host: String,
    /// Address other managers and clients reach this one at (IP:PORT).
    #[arg(long, visible_alias = "addr", env = "SWARM_ADVERTISE")]
    pub advertise: Option<String>,
    /// Directory for the manager's state.
    #[arg(long, default_value = "/var/lib/swarm")]
    pub data_dir: PathBuf,
    /// Placement strategy.
    #[arg(long, value_enum, default_value_t = Strategy::Spread)]
    pub strategy: Strategy,
    /// Scheduler filter to enable (repeat for several); default: all.
    #[arg(short = 'f', long = "filter", value_parser = clap::builder::PossibleValuesParser::new(crate::scheduler::filter::names()))]
    pub filters: Vec<String>,
    /// Shortest pause between two refreshes of an engine.
    #[arg(long, default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub engine_refresh_min_interval: Duration,
    /// Longest pause between two refreshes of an engine.
    #[arg(long, default_value = "60s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub engine_refresh_max_interval: Duration,
    /// Cluster option KEY=VALUE (repeatable): `swarm.overcommit=0.05` lets
    /// reservations exceed capacity by that fraction (default 0.05; above
    /// -1, a negative one keeps part of each node free);
    /// `swarm.createretry=N` tries a create an engine refused on up to N
    /// other nodes (default 0).
    #[arg(long = "cluster-opt", value_parser = parse_cluster_opt)]
    pub cluster_opts: Vec<ClusterOpt>,
    /// How long a node's container list, once read, may answer `docker ps`
    /// again while nothing changed on the node (its `Up 5 seconds` texts lag
    /// by at most this); 0s asks the engines every time.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub list_cache: Duration,
    /// Failed refreshes in a row after which a node is unhealthy.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub engine_failure_retry: u32,
    /// Address of this manager's Raft service (IP:PORT), which the other
    /// managers reach it at. Port 0 picks a free port (a single manager).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub raft_addr: std::net::SocketAddr,
    /// API address (IP:PORT) of a manager of an existing cluster to join;
    /// without it, a new cluster is started (or, with a data dir that holds
    /// one, the cluster it belongs to is rejoined).
    #[arg(long)]
    pub join: Option<String>,
    /// Build a Raft snapshot (and compact the log) once this many log
    /// entries were applied since the last one (an entry carries the
    /// commands proposed together: one or more), and at least half as many
    /// as the state holds containers, nodes and creates in flight.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub raft_snapshot_logs: u64,
    /// How often the Raft leader sends heartbeats, which is also the
    /// deadline of one replication round trip: keep it above the round-trip
    /// time between managers (the default allows about 100 ms). A follower
    /// calls an election after 3.3 to 4.4 heartbeats without one. Give
    /// every manager the same.
    #[arg(long, default_value = "100ms", value_parser = parse_raft_heartbeat)]
    pub raft_heartbeat: Duration,
    /// Time an API connection has to send a whole request head, counted
    /// from its opening or from the head's first byte (slowloris); 0s
    /// never times heads out.
    #[arg(long, default_value = "20s", value_parser = parse_timeout)]
    pub api_header_timeout: Duration,
    /// Time a kept-alive API connection may wait between two requests
    /// before it is closed; 0s keeps idle connections. Streams (logs -f,
    /// events, attach, exec) are never cut.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub api_idle_timeout: Duration,
    /// Client connections the API holds at once. Default: half of the
    /// descriptors RLIMIT_NOFILE leaves after 128 for the manager and 3
    /// per engine, at least 16. Past it, a new connection replaces the one
    /// that waited longest for a request, or gets 503 when all are busy.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub api_max_connections: Option<u64>,
    /// Largest request line and headers the API reads (bytes; k, M
    /// suffixes: 64k, 1M); larger ones get 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub api_max_header_size: u64,
    /// Largest request body the API reads, except uploads that stream
    /// (docker cp into a container, docker load, imports); larger ones
    /// get 413.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub api_max_body_size: u64,
    /// A name clients reach the API by (repeatable; *.example.com for its
    /// subdomains). Requests whose Host is not an IP address, localhost,
    /// docker, this machine's hostname, the -H or --advertise name or one
    /// of these are refused (403): a defence against DNS rebinding.
    #[arg(long = "api-host", value_name = "NAME")]
    pub api_hosts: Vec<String>,
    /// An origin whose cross-origin (browser) requests are served, with
    /// CORS headers, as dockerd's flag (repeatable or comma-separated; *
    /// for any). Requests with another Origin header are refused (403).
    #[arg(long = "api-cors-header", value_name = "ORIGIN")]
    pub api_cors_origins: Vec<String>,
    /// TLS: the API's, the Raft port's, toward engines and peers.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Swarm classic's flags, accepted with classic's meaning or with a
    /// warning of what replaces them.
    #[command(flatten)]
    pub classic: ClassicArgs,
    /// Reach engines at TCP addresses over TLS, presenting `--tlscert`
    /// [default: true with --tls or --tlsverify]. Engines on a unix socket
    /// are reached as they are.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub engine_tls: Option<bool>,
    /// Discovery URL: nodes://HOST:PORT,..., file:///path,
    /// etcd://HOST:PORT,.../PATH, zk://HOST:PORT,.../PATH or token://TOKEN
    /// (served by the managers themselves); consul:// is not served (no
    /// Consul server could be run to test it). Default: the
    /// local engine (DOCKER_HOST, else unix:///var/run/docker.sock). The
    /// first leader records it as the cluster's; later managers follow
    /// the recorded one (swarmctl discovery set changes it). Else
    /// $SWARM_DISCOVERY.
    #[arg(env = "SWARM_DISCOVERY")]
    pub discovery: Option<String>,
}

impl ManageArgs {
    /// The discovery URL to use, defaulting to the local engine.
    pub fn discovery_url(&self) -> String {
        match &self.discovery {
            Some(url) => url.clone(),
            None => {
                let local = std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
                format!("nodes://{local}")
            }
        }
    }

    /// Enabled filters in pipeline order.
    pub fn enabled_filters(&self) -> Vec<String> {
        crate::scheduler::filter::names()
            .iter()
            .filter(|f| self.filters.is_empty() || self.filters.iter().any(|g| g == *f))
            .map(|f| f.to_string())
            .collect()
    }
}

/// `swarm manage` flags of Swarm classic that this manager takes with
/// their meaning or replaces (see [`ManageArgs::classic_notes`]).
#[derive(Debug, Clone, clap::Args)]
pub struct ClassicArgs {
    /// Cluster driver: `swarm` (the only one; classic's Mesos driver is
    /// not served).
    #[arg(short = 'c', long, default_value = "swarm")]
    pub cluster_driver: String,
    /// Classic's manager replication through the discovery store: built in
    /// here (Raft; managers join with --join).
    #[arg(long)]
    pub replication: bool,
    /// Classic's leader lock TTL: Raft's election replaces it.
    #[arg(long, value_parser = parse_duration)]
    pub replication_ttl: Option<Duration>,
    /// Classic's discovery heartbeat: the discovery is followed every
    /// second here (`swarm join --heartbeat` sets the engines' own).
    #[arg(long, value_parser = parse_heartbeat)]
    pub heartbeat: Option<Duration>,
    /// Discovery option KEY=VALUE (repeatable): kv.cacertfile, kv.certfile,
    /// kv.keyfile (TLS to a key-value store), kv.path.
    #[arg(long = "discovery-opt", value_name = "KEY=VALUE")]
    pub discovery_opts: Vec<String>,
    /// Classic's refresh of the engines a node filter names: engines are
    /// followed through their events here, always current.
    #[arg(long)]
    pub refresh_on_node_filter: bool,
    /// Classic's deprecated name of --engine-failure-retry: taken for it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub engine_refresh_retry: Option<u32>,
    /// Classic's CORS switch: any origin may call the API from a browser
    /// (as --api-cors-header '*').
    #[arg(long, visible_alias = "cors")]
    pub api_enable_cors: bool,
}

/// The `--discovery-opt` keys classic knew.
const DISCOVERY_OPTS: [&str; 4] = ["kv.cacertfile", "kv.certfile", "kv.keyfile", "kv.path"];

impl ManageArgs {
    /// Classic's flags checked: an error for what cannot be served (a
    /// Mesos driver, an unknown discovery option, a refresh minimum above
    /// the maximum); otherwise the warnings to log for flags that are
    /// replaced here.
    pub fn classic_notes(&self) -> Result<Vec<String>, String> {
        let c = &self.classic;
        if c.cluster_driver != "swarm" {
            return Err(format!(
                "unsupported --cluster-driver {:?}: only swarm is served (classic's Mesos driver is not)",
                c.cluster_driver
            ));
        }
        kv_tls(&c.discovery_opts)?;
        for opt in &c.discovery_opts {
            let key = opt.split_once('=').map_or(opt.as_str(), |(k, _)| k);
            if !opt.contains('=') || !DISCOVERY_OPTS.contains(&key) {
                return Err(format!(
                    "invalid --discovery-opt {opt:?}: expected KEY=VALUE with KEY one of {}",
                    DISCOVERY_OPTS.join(", ")
                ));
            }
        }
        if self.engine_refresh_min_interval > self.engine_refresh_max_interval {
            return Err(format!(
                "--engine-refresh-min-interval ({:?}) must not exceed --engine-refresh-max-interval ({:?})",
                self.engine_refresh_min_interval, self.engine_refresh_max_interval
            ));
        }
        let mut notes = Vec::new();
        if c.replication || c.replication_ttl.is_some() {
            notes.push(
                "--replication and --replication-ttl are not needed: managers replicate through Raft (start more with --join)"
                    .to_string(),
            );
        }
        if self.overcommit() < 0.0 {
            notes.push(
                "-1 < swarm.overcommit < 0 will make swarm take less resource than docker engine offers"
                    .to_string(),
            );
        }
        let discovery_heartbeat = self
            .cluster_opts
            .iter()
            .any(|o| matches!(o, ClusterOpt::DiscoveryHeartbeat(_)));
        if c.heartbeat.is_some() || discovery_heartbeat {
            notes.push(
                "--heartbeat (swarm.discovery.heartbeat) of swarm manage is not needed: the discovery is followed every second"
                    .to_string(),
            );
        }
        if c.engine_refresh_retry.is_some() {
            notes.push(
                "--engine-refresh-retry is deprecated: taken as --engine-failure-retry".to_string(),
            );
        }
        if c.refresh_on_node_filter {
            notes.push(
                "--refresh-on-node-filter is not needed: engines are followed through their events"
                    .to_string(),
            );
        }
        Ok(notes)
    }

    /// The value of `--discovery-opt KEY=...`, if given.
    pub fn discovery_opt(&self, key: &str) -> Option<String> {
        discovery_opt(&self.classic.discovery_opts, key)
    }

    /// TLS to a key-value store, from `--discovery-opt kv.*`.
    pub fn kv_tls(&self) -> Result<Option<crate::discovery::etcd::KvTls>, String> {
        kv_tls(&self.classic.discovery_opts)
    }
}

/// The value of `KEY=...` in `opts`, the last if repeated.
fn discovery_opt(opts: &[String], key: &str) -> Option<String> {
    opts.iter()
        .filter_map(|o| o.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .next_back()
}

/// TLS to a key-value store from classic's `--discovery-opt
/// kv.cacertfile=... kv.certfile=... kv.keyfile=...`; a certificate or key
/// without the CA is refused.
pub fn kv_tls(opts: &[String]) -> Result<Option<crate::discovery::etcd::KvTls>, String> {
    let (ca, cert, key) = (
        discovery_opt(opts, "kv.cacertfile"),
        discovery_opt(opts, "kv.certfile"),
        discovery_opt(opts, "kv.keyfile"),
    );
    match ca {
        Some(ca) => Ok(Some(crate::discovery::etcd::KvTls {
            ca: ca.into(),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
        })),
        None if cert.is_some() || key.is_some() => {
            Err("--discovery-opt kv.certfile/kv.keyfile need kv.cacertfile (the store's CA)".into())
        }
        None => Ok(None),
    }
}

/// Docker's TLS flags, as `dockerd` and the `docker` CLI take them.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Serve the API over TLS; a client certificate is optional (but must
    /// be the CA's when shown). Managers still authenticate each other.
    #[arg(long)]
    pub tls: bool,
    /// Serve the API over TLS and require a client certificate signed by
    /// the CA (implies --tls).
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA's certificate [default: $DOCKER_CERT_PATH/ca.pem, else
    /// ~/.docker/ca.pem].
    #[arg(long, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// This manager's certificate, of kind manager [default: cert.pem
    /// beside the CA's default].
    #[arg(long, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// This manager's private key [default: key.pem beside the CA's
    /// default].
    #[arg(long, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether the API speaks TLS (`--tls` or `--tlsverify`).
    pub fn enabled(&self) -> bool {
        self.tls || self.tlsverify
    }

    /// The files named, with Docker's defaults for those that are not.
    pub fn files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles::given_or_in(
            &crate::tls::default_cert_dir(),
            self.tlscacert.as_deref(),
            self.tlscert.as_deref(),
            self.tlskey.as_deref(),
        )
    }
}

impl ManageArgs {
    /// Whether engines at TCP addresses are reached over TLS.
    pub fn engine_tls(&self) -> bool {
        self.engine_tls.unwrap_or(self.tls.enabled())
    }

    /// What the manager speaks TLS on.
    pub fn tls_modes(&self) -> crate::tls::TlsModes {
        use crate::tls::ApiClients;
        crate::tls::TlsModes {
            api: match (self.tls.tlsverify, self.tls.tls) {
                (true, _) => Some(ApiClients::Verified),
                (false, true) => Some(ApiClients::Optional),
                (false, false) => None,
            },
            engines: self.engine_tls(),
        }
    }
}

/// One `--cluster-opt` (classic's keys).
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterOpt {
    /// `swarm.overcommit=F`: fraction of capacity reservations may exceed
    /// it by; above -1 (a negative one keeps part of each node free).
    Overcommit(f64),
    /// `swarm.createretry=N`: a create that fails on a node is tried on
    /// up to N other nodes.
    CreateRetry(u32),
    /// `swarm.discovery.heartbeat=D`: classic's discovery period; the
    /// discovery is followed every second here.
    DiscoveryHeartbeat(Duration),
}

/// Parses `swarm.overcommit=0.05`, `swarm.createretry=2`, with classic's
/// checks and messages.
pub fn parse_cluster_opt(s: &str) -> Result<ClusterOpt, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid --cluster-opt {s:?}: expected KEY=VALUE"))?;
    let value = value.trim();
    match key.trim() {
        "swarm.overcommit" => {
            let ratio: f64 = value
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite())
                .ok_or_else(|| {
                    format!("invalid swarm.overcommit {value:?}: expected a number such as 0.05")
                })?;
            if ratio <= -1.0 {
                return Err(format!(
                    "swarm.overcommit should be larger than -1, {ratio:.6} is invalid"
                ));
            }
            if ratio > 1000.0 {
                return Err(format!(
                    "swarm.overcommit {ratio} is more than a thousand times each node's capacity"
                ));
            }
            Ok(ClusterOpt::Overcommit(ratio))
        }
        "swarm.createretry" => {
            let n: i64 = value.parse().map_err(|_| {
                format!("invalid swarm.createretry {value:?}: expected a whole number such as 2")
            })?;
            if n < 0 {
                return Err(format!("swarm.createretry can not be negative, {n} is invalid"));
            }
            Ok(ClusterOpt::CreateRetry(u32::try_from(n).unwrap_or(u32::MAX)))
        }
        "swarm.discovery.heartbeat" => Ok(ClusterOpt::DiscoveryHeartbeat(parse_heartbeat(value)?)),
        mesos if mesos.starts_with("mesos.") => Err(format!(
            "--cluster-opt {mesos}: classic's Mesos driver is not served"
        )),
        other => Err(format!(
            "unknown --cluster-opt {other:?}: known are swarm.overcommit, swarm.createretry, swarm.discovery.heartbeat"
        )),
    }
}

impl ManageArgs {
    /// How the API serves its clients, from the `--api-*` flags (a zero
    /// timeout is a very long one).
    pub fn api_options(&self) -> crate::api::ApiOptions {
        let timeout = |d: Duration| {
            if d.is_zero() {
                NO_TIMEOUT
            } else {
                d
            }
        };
        crate::api::ApiOptions {
            header_timeout: timeout(self.api_header_timeout),
            idle_timeout: timeout(self.api_idle_timeout),
            max_header_size: usize::try_from(self.api_max_header_size).unwrap_or(usize::MAX),
            max_connections: self
                .api_max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_body_size: usize::try_from(self.api_max_body_size).unwrap_or(usize::MAX),
            hosts: self
                .api_hosts
                .iter()
                .cloned()
                .chain(crate::api::guard::address_host(&self.host))
                .chain(
                    self.advertise
                        .as_deref()
                        .and_then(crate::api::guard::address_host),
                )
                .collect(),
            cors_origins: if self.classic.api_enable_cors {
                vec!["*".to_string()]
            } else {
                self.api_cors_origins.clone()
            },
            tls: None,
        }
    }

    /// Placement options from the flags.
    pub fn placement(&self) -> crate::scheduler::Options {
        crate::scheduler::Options {
            strategy: self.strategy,
            overcommit: (self.overcommit() * 1_000_000.0).round() as i64,
            filters: self.enabled_filters(),
        }
    }

    /// Failed refreshes in a row after which a node is unhealthy:
    /// `--engine-refresh-retry` (classic's old name) when given.
    pub fn failure_retry(&self) -> u32 {
        self.classic
            .engine_refresh_retry
            .unwrap_or(self.engine_failure_retry)
    }

    /// `swarm.overcommit`, the last given, else classic's 0.05.
    fn overcommit(&self) -> f64 {
        self.cluster_opts
            .iter()
            .rev()
            .find_map(|o| match o {
                ClusterOpt::Overcommit(ratio) => Some(*ratio),
                _ => None,
            })
            .unwrap_or(0.05)
    }

    /// `swarm.createretry`, the last given, else classic's 0.
    pub fn create_retry(&self) -> u32 {
        self.cluster_opts
            .iter()
            .rev()
            .find_map(|o| match o {
                ClusterOpt::CreateRetry(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// What a timeout of `0s` stands for: a hundred years.
const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses a timeout: a duration, `0s` included (no timeout).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a size in bytes: `65536`, `64k`, `64KiB`, `1M`, `1MB` (k, M, G
/// are powers of 1,024, as Docker's sizes). At least 8 KiB, the least
/// hyper reads a request head with.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number such as 65536 or 64k"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))?;
    if bytes < 8192 {
        return Err(format!("invalid size {s:?}: must be at least 8k"));
    }
    Ok(bytes)
}

/// Parses `500ms`, `30s`, `1m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be more than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_defaults() {
        let cli = Cli::try_parse_from(["swarm", "manage", "nodes://a:1"]).unwrap();
        let Command::Manage(args) = cli.command else {
            panic!("not manage")
        };
        assert_eq!(args.host, "tcp://127.0.0.1:4000");
        assert_eq!(args.strategy, Strategy::Spread);
        assert_eq!(args.engine_refresh_min_interval, Duration::from_secs(30));
        assert_eq!(args.engine_failure_retry, 3);
        assert_eq!(args.list_cache, Duration::from_secs(2));
        assert_eq!(
            args.enabled_filters().len(),
            crate::scheduler::filter::names().len()
        );
        assert_eq!(args.discovery_url(), "nodes://a:1");
        assert_eq!(args.raft_addr.to_string(), "127.0.0.1:0");
        assert_eq!(args.join, None);
        assert_eq!(args.raft_snapshot_logs, 5000);
        assert_eq!(args.raft_heartbeat, Duration::from_millis(100));
        let api = args.api_options();
        assert_eq!(api.header_timeout, Duration::from_secs(20));
        assert_eq!(api.idle_timeout, Duration::from_secs(60));
        assert_eq!(api.max_header_size, 64 * 1024);
        assert_eq!(api.max_connections, None);
        assert_eq!(api.max_body_size, 4 << 20);
        assert_eq!(api.hosts, vec!["127.0.0.1"]);
        assert!(api.cors_origins.is_empty());
    }

    #[test]
    fn api_flags() {
        let cli = Cli::try_parse_from([
            "swarm",
            "manage",
            "--api-header-timeout",
            "2s",
            "--api-idle-timeout",
            "0s",
            "--api-max-connections",
            "50",
            "--api-max-header-size",
            "1M",
            "--api-max-body-size",
            "16k",
            "-H",
            "tcp://mgr1.example:4000",
            "--advertise",
            "mgr1.internal:4000",
            "--api-host",
            "swarm.example",
            "--api-host",
            "*.corp.example",
            "--api-cors-header",
            "http://ui.example",
        ])
        .unwrap();
        let Command::Manage(args) = cli.command else {
            panic!("not manage")
        };
        let api = args.api_options();
        assert_eq!(api.header_timeout, Duration::from_secs(2));
        assert!(api.idle_timeout > Duration::from_secs(365 * 24 * 3600));
        assert_eq!(api.max_connections, Some(50));
        assert_eq!(api.max_header_size, 1 << 20);
        assert_eq!(api.max_body_size, 16 << 10);
        assert_eq!(
            api.hosts,
            vec![
                "swarm.example",
                "*.corp.example",
                "mgr1.example",
                "mgr1.internal"
            ]
        );
        assert_eq!(api.cors_origins, vec!["http://ui.example"]);
        for bad in [
            ["--api-max-connections", "0"],
            ["--api-max-header-size", "100"],
            ["--api-max-header-size", "64q"],
            ["--api-header-timeout", "soon"],
        ] {
            let mut argv = vec!["swarm", "manage"];
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tls_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["swarm", "manage"];
            argv.extend(extra);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Manage(args)) => Ok(args),
                Ok(_) => panic!("not manage"),
                Err(e) => Err(e),
            }
        };
        let plain = parse(&[]).unwrap();
        assert!(!plain.tls.enabled());
        assert!(!plain.engine_tls());
        let verify = parse(&[
            "--tlsverify",
            "--tlscacert",
            "/c/ca.pem",
            "--tlscert",
            "/c/m.pem",
        ])
        .unwrap();
        assert!(verify.tls.enabled() && verify.tls.tlsverify);
        assert!(verify.engine_tls());
        let files = verify.tls.files();
        assert_eq!(files.ca, PathBuf::from("/c/ca.pem"));
        assert_eq!(files.cert, PathBuf::from("/c/m.pem"));
        assert!(files.key.ends_with("key.pem"));
        assert_eq!(
            verify.tls_modes().api,
            Some(crate::tls::ApiClients::Verified)
        );
        let plain_engines = parse(&["--tls", "--engine-tls=false"]).unwrap();
        assert!(plain_engines.tls.enabled() && !plain_engines.engine_tls());
        assert_eq!(
            plain_engines.tls_modes(),
            crate::tls::TlsModes {
                api: Some(crate::tls::ApiClients::Optional),
                engines: false
            }
        );
        let engines_only = parse(&["--engine-tls"]).unwrap();
        assert!(!engines_only.tls.enabled() && engines_only.engine_tls());
        assert!(parse(&["--engine-tls=maybe"]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MB"), Ok(16 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("1k").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn raft_flags() {
        let cli = Cli::try_parse_from([
            "swarm",
            "manage",
            "--raft-addr",
            "127.0.0.1:4101",
            "--join",
            "127.0.0.1:4001",
            "--raft-snapshot-logs",
            "20",
            "--raft-heartbeat",
            "400ms",
        ])
        .unwrap();
        let Command::Manage(args) = cli.command else {
            panic!("not manage")
        };
        assert_eq!(args.raft_addr.to_string(), "127.0.0.1:4101");
        assert_eq!(args.join.as_deref(), Some("127.0.0.1:4001"));
        assert_eq!(args.raft_snapshot_logs, 20);
        assert_eq!(args.raft_heartbeat, Duration::from_millis(400));
        for bad in [
            ["--raft-addr", "nowhere"],
            ["--raft-snapshot-logs", "0"],
            ["--raft-heartbeat", "5ms"],
            ["--raft-heartbeat", "1m"],
            ["--raft-heartbeat", "-1s"],
        ] {
            let mut argv = vec!["swarm", "manage"];
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manage_flags() {
        let cli = Cli::try_parse_from([
            "swarm",
            "--log-format",
            "json",
            "manage",
            "-H",
            "unix:///tmp/s",
            "--strategy",
            "binpack",
            "--filter",
            "health",
            "--filter",
            "port",
            "--engine-refresh-min-interval",
            "500ms",
            "--engine-failure-retry",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Manage(args) = cli.command else {
            panic!("not manage")
        };
        assert_eq!(args.strategy, Strategy::Binpack);
        assert_eq!(args.enabled_filters(), vec!["health", "port"]);
        assert_eq!(args.engine_refresh_min_interval, Duration::from_millis(500));
        assert_eq!(args.placement().overcommit, 50_000);
        let cli = Cli::try_parse_from(["swarm", "manage", "--cluster-opt", "swarm.overcommit=0.5"])
            .unwrap();
        let Command::Manage(args) = cli.command else {
            panic!("not manage")
        };
        assert_eq!(args.placement().overcommit, 500_000);
    }

    #[test]
    fn cluster_opts_as_classic_took_them() {
        let manage = |opts: &[&str]| {
            let mut argv = vec!["swarm", "manage"];
            for o in opts {
                argv.extend(["--cluster-opt", o]);
            }
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Manage(args)) => Ok(args),
                Ok(_) => Err("not manage".to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        let args = manage(&["swarm.overcommit=-0.5", "swarm.createretry=2"]).expect("taken");
        assert_eq!(args.placement().overcommit, -500_000);
        assert_eq!(args.create_retry(), 2);
        let notes = args.classic_notes().expect("notes");
        assert!(
            notes.iter().any(|n| n.contains("less resource")),
            "{notes:?}"
        );
        assert_eq!(manage(&[]).expect("defaults").create_retry(), 0);
        let heartbeat = manage(&["swarm.discovery.heartbeat=5s"]).expect("taken");
        let notes = heartbeat.classic_notes().expect("notes");
        assert!(notes.iter().any(|n| n.contains("heartbeat")), "{notes:?}");
        for (opt, message) in [
            (
                "swarm.overcommit=-2",
                "swarm.overcommit should be larger than -1, -2.000000 is invalid",
            ),
            (
                "swarm.createretry=-1",
                "swarm.createretry can not be negative, -1 is invalid",
            ),
            ("mesos.port=3375", "Mesos driver is not served"),
        ] {
            let e = manage(&[opt]).err().unwrap_or_default();
            assert!(e.contains(message), "{opt}: {e}");
        }
    }

    #[test]
    fn join_and_list_say_what_is_missing_as_classic() {
        let join = |argv: &[&str]| {
            let mut all = vec!["swarm", "join"];
            all.extend_from_slice(argv);
            match Cli::try_parse_from(all).map(|c| c.command) {
                Ok(Command::Join(args)) => args.validate(),
                Ok(_) => Err("not join".into()),
                Err(e) => Err(e.to_string()),
            }
        };
        // The environment may hold SWARM_DISCOVERY or SWARM_ADVERTISE.
        if std::env::var_os("SWARM_DISCOVERY").is_none() {
            assert_eq!(
                join(&["--advertise=10.0.0.1:2375"]),
                Err("discovery required to join a cluster. See 'swarm join --help'.".into())
            );
        }
        if std::env::var_os("SWARM_ADVERTISE").is_none() {
            assert_eq!(
                join(&["token://t"]),
                Err("missing mandatory --advertise flag".into())
            );
        }
        assert_eq!(
            join(&["--addr", "10.0.0.1:2375", "token://t"]),
            Ok(("token://t".into(), "10.0.0.1:2375".into()))
        );
        let delay = join(&["--delay", "-1s", "--addr", "a:1", "token://t"]);
        assert!(
            delay
                .as_ref()
                .is_err_and(|e| e.contains("--delay should not be a negative number")),
            "{delay:?}"
        );
        assert_eq!(
            discovery_required(None, "list"),
            Err("discovery required to list a cluster. See 'swarm list --help'.".into())
        );
        // Classic's one-letter commands.
        for (short, long) in [
            ("m", "manage"),
            ("l", "list"),
            ("c", "create"),
            ("j", "join"),
        ] {
            let parsed = Cli::try_parse_from(["swarm", short, "--help"]);
            let help = parsed.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(help.contains(&format!("swarm {long}")), "{short}: {help}");
        }
        // Classic's deprecated --engine-refresh-retry is taken, with a note.
        let Ok(Command::Manage(args)) =
            Cli::try_parse_from(["swarm", "manage", "--engine-refresh-retry", "5"])
                .map(|c| c.command)
        else {
            panic!("manage with --engine-refresh-retry")
        };
        assert_eq!(args.failure_retry(), 5);
        let notes = args.classic_notes().expect("notes");
        assert!(notes.iter().any(|n| n.contains("deprecated")), "{notes:?}");
    }

    #[test]
    fn bad_flags_are_refused() {
        for argv in [
            vec!["swarm", "manage", "--strategy", "bogus"],
            vec!["swarm", "manage", "--filter", "bogus"],
            vec!["swarm", "manage", "--engine-refresh-min-interval", "soon"],
            vec!["swarm", "manage", "--engine-refresh-min-interval", "0s"],
            vec!["swarm", "manage", "--engine-failure-retry", "0"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=lots"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=-1"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=-2"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.overcommit=NaN"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.createretry=-1"],
            vec!["swarm", "manage", "--cluster-opt", "swarm.createretry=x"],
            vec!["swarm", "manage", "--cluster-opt", "mesos.address=1.2.3.4"],
            vec!["swarm", "manage", "--cluster-opt", "other=1"],
        ] {
            assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn classic_command_lines_are_taken() {
        let args = |line: &str| classic_args(line.split_whitespace().map(str::to_string));
        assert_eq!(
            args(
                "swarm -debug manage -strategy binpack -H tcp://0.0.0.0:4000 -f health nodes://a:1"
            ),
            [
                "swarm",
                "--debug",
                "manage",
                "--strategy",
                "binpack",
                "-H",
                "tcp://0.0.0.0:4000",
                "-f",
                "health",
                "nodes://a:1"
            ]
        );
        assert_eq!(
            args("swarm join -advertise=1.2.3.4:2375 token://t")[2],
            "--advertise=1.2.3.4:2375"
        );
        assert_eq!(args("swarm manage -addr 1.2.3.4:4000")[2], "--addr");
        // A value that looks like a flag stays a value.
        assert_eq!(
            args("swarm manage --engine-refresh-min-interval -10s")[3],
            "-10s"
        );
        let cli = Cli::try_parse_from(args(
            "swarm -l warn -experimental manage -c swarm --replication --replication-ttl 20s \
             --heartbeat 5s --cors --discovery-opt kv.path=a --addr 1.2.3.4:4000 nodes://a:1",
        ))
        .expect("classic's flags");
        assert_eq!(cli.log_level, "warn");
        let Command::Manage(manage) = cli.command else {
            panic!("not manage")
        };
        assert_eq!(manage.advertise.as_deref(), Some("1.2.3.4:4000"));
        assert_eq!(manage.discovery_opt("kv.path").as_deref(), Some("a"));
        assert_eq!(manage.api_options().cors_origins, ["*"]);
        assert_eq!(manage.classic_notes().expect("notes").len(), 2);
        for bad in [
            "swarm manage -c mesos-experimental nodes://a:1",
            "swarm manage --discovery-opt kv.nothing=1 nodes://a:1",
            "swarm manage --engine-refresh-min-interval 90s nodes://a:1",
        ] {
            let cli = Cli::try_parse_from(args(bad)).expect(bad);
            let Command::Manage(manage) = cli.command else {
                panic!("not manage")
            };
            assert!(manage.classic_notes().is_err(), "{bad}");
        }
        for refused in [
            "swarm manage --engine-refresh-min-interval -10s nodes://a:1",
            "swarm manage --heartbeat 500ms nodes://a:1",
        ] {
            assert!(Cli::try_parse_from(args(refused)).is_err(), "{refused}");
        }
    }
}
