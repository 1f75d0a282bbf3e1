//! `swarm manage`'s flags, with classic's that it takes or replaces.

use std::path::PathBuf;
use std::time::Duration;

use crate::scheduler::Strategy;

use super::kv::{discovery_opt, kv_tls};
use super::tls::TlsArgs;
use super::values::{
    parse_duration, parse_heartbeat, parse_raft_heartbeat, parse_size, parse_timeout, NO_TIMEOUT,
};

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
pub(super) const DISCOVERY_OPTS: [&str; 4] =
    ["kv.cacertfile", "kv.certfile", "kv.keyfile", "kv.path"];

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
