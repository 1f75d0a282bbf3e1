//! `swarm join`'s flags.

use std::time::Duration;

use super::discovery_required;
use super::values::{parse_delay, parse_duration, parse_heartbeat};

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
