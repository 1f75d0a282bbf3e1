//! Command-line interface of the `swarm` binary (clap), with flags named as
//! Swarm classic named them.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

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

mod join;
mod kv;
mod manage;
mod tls;
mod values;

pub use join::JoinArgs;
pub use kv::kv_tls;
pub use manage::{parse_cluster_opt, ClassicArgs, ClusterOpt, ManageArgs};
pub use tls::TlsArgs;
pub use values::{
    parse_duration, parse_heartbeat, parse_raft_heartbeat, parse_size, parse_timeout,
};

#[cfg(test)]
mod tests;
