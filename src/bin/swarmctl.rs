//! `swarmctl`: the operator's view of a swarm cluster.
//!
//! - `swarmctl --manager tcp://IP:PORT nodes` lists the nodes the manager
//!   sees (from its `info`).
//! - `swarmctl --manager tcp://IP:PORT members [--format table|json]` lists
//!   the managers of an HA cluster (`GET /_swarm/members`; any manager
//!   answers, followers ask the leader).
//! - `swarmctl --manager tcp://IP:PORT add-manager ID RAFT_ADDR API_ADDR`
//!   adds a manager (`POST /_swarm/join`: learner, then voter).
//! - `swarmctl --manager tcp://IP:PORT discovery [set URL]` shows or
//!   changes the cluster's discovery URL (`/_swarm/discovery`).
//! - `swarmctl --manager tcp://IP:PORT remove-manager ID` removes one
//!   (`POST /_swarm/remove`).
//!
//! - `swarmctl ca init [--dir DIR] [--force] [--days N] [--cn NAME]` creates
//!   the built-in CA (`ca.pem`, `ca-key.pem`; default dir `~/.swarm/ca`).
//! - `swarmctl cert issue --kind server|client|engine|manager --san NAME_OR_IP
//!   ... [--ca DIR] [--cn NAME] [--out DIR] [--days N] [--force]` issues a
//!   certificate in Docker's layout (`ca.pem`, `cert.pem`, `key.pem`); a
//!   client's goes to `~/.docker` (`$DOCKER_CERT_PATH` if set), where the
//!   docker CLI looks with `--tlsverify`, any other to `./CN`.
//!
//! An error answer of the manager (`{"message": "..."}`, non-2xx) ends the
//! command with a non-zero exit and that message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

use swarm::ca::{self, CaError, CaOptions, CertKind, IssueRequest, SanName};
use swarm::tls::{ClientTlsArgs, Env};
use swarm::upstream::Upstream;

/// How long one request to the manager may take, answer body included.
/// A join waits for the new manager to catch up before it is promoted, so
/// this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Operator CLI for a swarm cluster.
#[derive(Debug, Parser)]
#[command(name = "swarmctl", version, about)]
struct Cli {
    /// Manager API address: tcp://IP:PORT or unix:///path.
    #[arg(long, default_value = "tcp://127.0.0.1:4000", env = "SWARM_MANAGER")]
    manager: String,
    /// How to reach a manager that serves TLS (the docker CLI's flags). A
    /// membership change (add-manager, remove-manager) takes a manager's
    /// certificate.
    #[command(flatten)]
    tls: ClientTlsArgs,
    /// What to do.
    #[command(subcommand)]
    command: Cmd,
}

/// `swarmctl` subcommands.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the nodes with their status.
    Nodes,
    /// List the managers of the cluster (Raft membership and progress).
    Members {
        /// Output format: an aligned table, or the manager's JSON as is.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Add a manager: it joins as a learner and is made a voter once it has
    /// caught up (the command waits up to 10 s for that).
    AddManager {
        /// The new manager's Raft node ID (unique in the cluster).
        id: u64,
        /// Address the new manager's Raft service listens on (IP:PORT).
        raft_addr: SocketAddr,
        /// Address the new manager's Docker API listens on (IP:PORT).
        api_addr: SocketAddr,
    },
    /// Remove a manager from the membership.
    RemoveManager {
        /// The manager's Raft node ID.
        id: u64,
    },
    /// The cluster's discovery URL: shown, or changed with `set URL` (the
    /// leader follows the new one within a second; one setting for the
    /// whole cluster, whatever each manager was started with).
    Discovery {
        /// `set`, to change it.
        #[command(subcommand)]
        change: Option<DiscoveryCmd>,
    },
    /// The built-in certificate authority.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Certificates signed by the built-in CA, in Docker's layout.
    #[command(subcommand)]
    Cert(CertCmd),
}

/// `swarmctl discovery` subcommands.
#[derive(Debug, Subcommand)]
enum DiscoveryCmd {
    /// Make URL the cluster's discovery (nodes://..., file://...,
    /// token://...).
    Set {
        /// The discovery URL.
        url: String,
    },
}

/// `swarmctl ca` subcommands.
#[derive(Debug, Subcommand)]
enum CaCmd {
    /// Create a CA: ca.pem and ca-key.pem (readable by the owner only).
    Init {
        /// Directory of the CA [default: ~/.swarm/ca].
        #[arg(long, env = "SWARM_CA_DIR")]
        dir: Option<PathBuf>,
        /// Replace an existing CA: every certificate it issued stops verifying.
        #[arg(long)]
        force: bool,
        /// Days the CA is valid.
        #[arg(long, default_value_t = ca::DEFAULT_CA_DAYS)]
        days: u32,
        /// Common name of the CA.
        #[arg(long, default_value = ca::DEFAULT_CA_NAME)]
        cn: String,
    },
}

/// `swarmctl cert` subcommands.
#[derive(Debug, Subcommand)]
enum CertCmd {
    /// Issue a certificate: ca.pem, cert.pem and key.pem in one directory.
    Issue {
        /// Directory of the CA [default: ~/.swarm/ca].
        #[arg(long, env = "SWARM_CA_DIR")]
        ca: Option<PathBuf>,
        /// What the certificate is for.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// A DNS name or IP address the holder is reached at (repeat, or
        /// separate with commas); at least one except for a client.
        #[arg(long = "san", value_name = "NAME_OR_IP", value_delimiter = ',', value_parser = parse_san)]
        sans: Vec<SanName>,
        /// Common name [default: the first --san]; a client's is the user's name.
        #[arg(long)]
        cn: Option<String>,
        /// Output directory [default: a client's $DOCKER_CERT_PATH or ~/.docker,
        /// any other ./CN].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days the certificate is valid (not beyond the CA).
        #[arg(long, default_value_t = ca::DEFAULT_CERT_DAYS)]
        days: u32,
        /// Overwrite existing ca.pem, cert.pem and key.pem.
        #[arg(long)]
        force: bool,
    },
}

/// `--kind` of `cert issue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    /// A TLS server, e.g. a load balancer in front of the managers (serverAuth).
    Server,
    /// A user or tool: what the docker CLI presents (clientAuth).
    Client,
    /// A Docker engine, for dockerd --tlsverify (serverAuth).
    Engine,
    /// A swarm manager: serves API and Raft, dials managers and engines
    /// (serverAuth and clientAuth).
    Manager,
}

impl From<KindArg> for CertKind {
    fn from(kind: KindArg) -> CertKind {
        match kind {
            KindArg::Server => CertKind::Server,
            KindArg::Client => CertKind::Client,
            KindArg::Engine => CertKind::Engine,
            KindArg::Manager => CertKind::Manager,
        }
    }
}

/// Output format of `members`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One aligned row per manager.
    Table,
    /// The JSON array exactly as the manager sent it.
    Json,
}

/// One manager as `GET /_swarm/members` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Member {
    /// Raft node ID.
    id: u64,
    /// Docker API address (IP:PORT).
    api_addr: String,
    /// Raft address (IP:PORT).
    raft_addr: String,
    /// `leader`, `follower` or `learner`.
    role: String,
    /// The Raft term the manager is in.
    term: u64,
    /// Index of the last entry in its log, if any.
    last_log_index: Option<u64>,
    /// Index of the last entry it applied, if any.
    applied_index: Option<u64>,
    /// Whether the leader hears from it.
    reachable: bool,
}

/// Parses the command line, runs the command, and exits non-zero with the
/// error on one line if it failed.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmctl: {}", error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, no backtrace (this is for
/// operators); a cause already spelled out by the message before it (as
/// the HTTP client's errors do) is not repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Runs one command.
async fn run(cli: Cli) -> anyhow::Result<()> {
    // The CA commands work on files: no manager to name.
    let env = swarm::tls::process_env;
    let command = match cli.command {
        Cmd::Ca(command) => return ca_command(command, &env),
        Cmd::Cert(command) => return cert_command(command, &env),
        command => command,
    };
    let tls = cli.tls.client_config(&env)?;
    let manager = Upstream::connecting(&cli.manager, tls.as_ref())
        .with_context(|| format!("invalid --manager {:?}", cli.manager))?;
    match command {
        Cmd::Nodes => nodes(&manager).await,
        Cmd::Members { format } => members(&manager, format).await,
        Cmd::AddManager {
            id,
            raft_addr,
            api_addr,
        } => {
            let body = serde_json::json!({
                "id": id,
                "raft_addr": raft_addr.to_string(),
                "api_addr": api_addr.to_string(),
            });
            let answer = call(&manager, hyper::Method::POST, "/_swarm/join", Some(body)).await?;
            let role = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("role")?.as_str().map(str::to_string))
                .unwrap_or_default();
            if role == "voter" {
                println!("manager {id} added (raft {raft_addr}, api {api_addr}): a voter");
            } else {
                println!(
                    "manager {id} added (raft {raft_addr}, api {api_addr}) as a learner: it becomes a voter once it has caught up"
                );
            }
            Ok(())
        }
        Cmd::RemoveManager { id } => {
            let body = serde_json::json!({ "id": id });
            call(&manager, hyper::Method::POST, "/_swarm/remove", Some(body)).await?;
            println!("manager {id} removed");
            Ok(())
        }
        Cmd::Discovery { change } => {
            let path = match &change {
                Some(DiscoveryCmd::Set { url }) => {
                    let query: String = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("url", url)
                        .finish();
                    format!("/_swarm/discovery?{query}")
                }
                None => "/_swarm/discovery".to_string(),
            };
            let method = match change {
                Some(_) => hyper::Method::POST,
                None => hyper::Method::GET,
            };
            let answer = call(&manager, method, &path, None).await?;
            let url = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("URL")?.as_str().map(str::to_string));
            println!("{}", url.as_deref().unwrap_or("(not recorded yet)"));
            Ok(())
        }
        Cmd::Ca(_) | Cmd::Cert(_) => unreachable!("handled above"),
    }
}

/// `swarmctl ca init`.
fn ca_command(command: CaCmd, env: Env<'_>) -> anyhow::Result<()> {
    let CaCmd::Init {
        dir,
        force,
        days,
        cn,
    } = command;
    let dir = match dir {
        Some(dir) => dir,
        None => default_ca_dir(env)?,
    };
    let options = CaOptions {
        common_name: cn,
        days,
        force,
    };
    let files = ca::init(&dir, &options).map_err(explain)?;
    println!(
        "CA created in {}: {} (give it to every engine, manager and user), {} (keep it \
         secret: it signs certificates); valid until {}",
        dir.display(),
        ca::CA_CERT_FILE,
        ca::CA_KEY_FILE,
        date(files.not_after)
    );
    Ok(())
}

/// `swarmctl cert issue`.
fn cert_command(command: CertCmd, env: Env<'_>) -> anyhow::Result<()> {
    let CertCmd::Issue {
        ca,
        kind,
        sans,
        cn,
        out,
        days,
        force,
    } = command;
    let kind = CertKind::from(kind);
    let ca_dir = match ca {
        Some(dir) => dir,
        None => default_ca_dir(env)?,
    };
    let common_name = cn.clone().or_else(|| sans.first().map(SanName::to_string));
    let out = match out {
        Some(out) => out,
        None => default_out_dir(kind, common_name.as_deref(), env)?,
    };
    let request = IssueRequest {
        kind,
        names: sans,
        common_name: cn,
        days,
        force,
    };
    let issued = ca::issue(&ca_dir, &request, &out).map_err(explain)?;
    let names: Vec<String> = request.names.iter().map(SanName::to_string).collect();
    let names = if names.is_empty() {
        String::new()
    } else {
        format!(" for {}", names.join(", "))
    };
    println!(
        "{kind} certificate {:?}{names} in {}: {}, {}, {}; valid until {}",
        issued.common_name,
        out.display(),
        ca::CA_CERT_FILE,
        ca::CERT_FILE,
        ca::KEY_FILE,
        date(issued.not_after)
    );
    if let Some(hint) = usage_hint(kind, &out, env) {
        println!("{hint}");
    }
    Ok(())
}

/// The CA error with what to do about it, where the command line can help.
fn explain(e: CaError) -> anyhow::Error {
    match e {
        CaError::Exists(_) => anyhow::anyhow!("{e} (pass --force to overwrite)"),
        CaError::NoCa { ref dir, .. } => anyhow::anyhow!(
            "{e} (create a CA with `swarmctl ca init --dir {}`)",
            dir.display()
        ),
        e => e.into(),
    }
}

/// `--san`: an IP address or a DNS name; the reason if neither.
fn parse_san(text: &str) -> Result<SanName, String> {
    text.parse().map_err(|e| match e {
        CaError::BadName { reason, .. } => reason,
        e => e.to_string(),
    })
}

/// `~/.swarm/ca`.
fn default_ca_dir(env: Env<'_>) -> anyhow::Result<PathBuf> {
    Ok(home(env)?.join(".swarm/ca"))
}

/// `$HOME`, which the defaults hang off.
fn home(env: Env<'_>) -> anyhow::Result<PathBuf> {
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set: give the directory explicitly")
}

/// Where a certificate goes without `--out`: a client's where the docker
/// CLI reads it with `--tlsverify` (`$DOCKER_CERT_PATH`, else
/// `~/.docker`); any other kind's in `./CN`, one directory per host to
/// copy to it.
fn default_out_dir(
    kind: CertKind,
    common_name: Option<&str>,
    env: Env<'_>,
) -> anyhow::Result<PathBuf> {
    if kind == CertKind::Client {
        return match env("DOCKER_CERT_PATH").filter(|p| !p.is_empty()) {
            Some(path) => Ok(PathBuf::from(path)),
            None => Ok(home(env)?.join(".docker")),
        };
    }
    // Without a name the library says what is missing.
    let Some(name) = common_name else {
        return Ok(PathBuf::from("."));
    };
    let safe = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !safe {
        bail!("{name:?} is not a directory name to write the certificate in: give --out DIR");
    }
    Ok(PathBuf::from(".").join(name))
}

/// How to use what was issued, for the kinds whose use Docker fixes.
fn usage_hint(kind: CertKind, out: &Path, env: Env<'_>) -> Option<String> {
    let file = |name: &str| out.join(name).display().to_string();
    match kind {
        CertKind::Engine => Some(format!(
            "dockerd --tlsverify --tlscacert={} --tlscert={} --tlskey={} -H tcp://0.0.0.0:2376",
            file(ca::CA_CERT_FILE),
            file(ca::CERT_FILE),
            file(ca::KEY_FILE)
        )),
        CertKind::Client => {
            let default = default_out_dir(CertKind::Client, None, env).ok();
            if default.as_deref() == Some(out) {
                Some("docker --tlsverify -H tcp://HOST:2376 info".to_string())
            } else {
                Some(format!(
                    "DOCKER_CERT_PATH={} docker --tlsverify -H tcp://HOST:2376 info",
                    out.display()
                ))
            }
        }
        CertKind::Server | CertKind::Manager => None,
    }
}

/// `2026-01-31` of a time, in UTC.
fn date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d")
        .to_string()
}

/// Sends one request to the manager (a JSON body if given) and returns the
/// body of a 2xx answer; any other answer becomes an error carrying the
/// manager's `message`.
async fn call(
    manager: &Upstream,
    method: hyper::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<Bytes> {
    let mut builder = hyper::Request::builder().method(method).uri(path);
    let payload = match body {
        Some(value) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(&value).context("encoding the request body")?)
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(Full::new(payload))
        .context("building the request")?;
    let exchange = async {
        let response = manager.send(request).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the manager's answer")?
            .to_bytes();
        anyhow::Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| {
            format!(
                "{} gave no answer to {path} within {}s",
                manager.addr(),
                REQUEST_TIMEOUT.as_secs()
            )
        })??;
    if !status.is_success() {
        bail!("manager answered {status}: {}", error_message(&body));
    }
    Ok(body)
}

/// The `message` of a Docker-shaped error body, else the body as text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// `swarmctl members`: the manager list as a table or as the manager's JSON.
async fn members(manager: &Upstream, format: Format) -> anyhow::Result<()> {
    let body = call(manager, hyper::Method::GET, "/_swarm/members", None).await?;
    // Parsed in both formats, so a malformed answer is an error, not output.
    let members = parse_members(&body)?;
    match format {
        Format::Json => println!("{}", String::from_utf8_lossy(&body).trim_end()),
        Format::Table => print!("{}", members_table(&members)),
    }
    Ok(())
}

/// Parses the body of `GET /_swarm/members`.
fn parse_members(body: &[u8]) -> anyhow::Result<Vec<Member>> {
    serde_json::from_slice(body).with_context(|| {
        format!(
            "manager answered an unexpected member list: {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// The member list as a table: a header and one row per member, columns
/// left-aligned and separated by at least two spaces, no trailing blanks;
/// a missing index shows as `-`.
fn members_table(members: &[Member]) -> String {
    const HEADER: [&str; 8] = [
        "ID",
        "API_ADDR",
        "RAFT_ADDR",
        "ROLE",
        "TERM",
        "LAST_LOG_INDEX",
        "APPLIED_INDEX",
        "REACHABLE",
    ];
    let index = |i: Option<u64>| i.map_or_else(|| "-".to_string(), |i| i.to_string());
    let mut rows: Vec<Vec<String>> = vec![HEADER.iter().map(|h| h.to_string()).collect()];
    for m in members {
        rows.push(vec![
            m.id.to_string(),
            m.api_addr.clone(),
            m.raft_addr.clone(),
            m.role.clone(),
            m.term.to_string(),
            index(m.last_log_index),
            index(m.applied_index),
            m.reachable.to_string(),
        ]);
    }
    let mut widths = [0usize; HEADER.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `swarmctl nodes`: the nodes of the manager's `info`, one row each.
async fn nodes(manager: &Upstream) -> anyhow::Result<()> {
    let body = call(manager, hyper::Method::GET, "/info", None).await?;
    let info: serde_json::Value =
        serde_json::from_slice(&body).context("manager answered invalid JSON")?;
    let status = info["SystemStatus"].as_array().cloned().unwrap_or_default();
    println!("{:<20} {:<24} {:<10} ADDRESS", "NAME", "ID", "STATUS");
    let mut current: Option<(String, String)> = None;
    let mut id = String::new();
    for pair in status {
        let key = pair[0].as_str().unwrap_or("");
        let value = pair[1].as_str().unwrap_or("").to_string();
        if key.starts_with(' ') && !key.starts_with("  ") {
            current = Some((key.trim().to_string(), value));
        } else if key == "  └ ID" {
            id = value;
        } else if key == "  └ Status" {
            if let Some((name, addr)) = &current {
                println!("{name:<20} {id:<24} {value:<10} {addr}");
            }
        }
    }
    Ok(())
}

/// Table formatting and error decoding.
#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    /// The docker CLI's flags (swarm::tls::ClientTlsArgs), after the
    /// subcommand too, and `DOCKER_TLS_VERIFY` turning verification on.
    #[test]
    fn tls_flags_follow_the_docker_cli() {
        let cli = Cli::try_parse_from(["swarmctl", "members"]).expect("parses");
        assert!(!cli.tls.enabled());
        let none = |_: &str| None;
        assert!(cli.tls.client_config(&none).expect("plain").is_none());
        let cli = Cli::try_parse_from(["swarmctl", "members", "--tlsverify"]).expect("global flag");
        assert!(cli.tls.tlsverify);
        // DOCKER_TLS_VERIFY=1, as docker-machine writes it (the variable is
        // read by the one test that sets it: tests run in threads).
        std::env::set_var("DOCKER_TLS_VERIFY", "1");
        let from_env = Cli::try_parse_from(["swarmctl", "members"]);
        std::env::remove_var("DOCKER_TLS_VERIFY");
        assert!(from_env.expect("DOCKER_TLS_VERIFY=1 parses").tls.tlsverify);
        let dir = tempfile::tempdir().expect("tempdir");
        let env =
            |key: &str| (key == "DOCKER_CERT_PATH").then(|| dir.path().as_os_str().to_owned());
        let err = cli.tls.client_config(&env).expect_err("no files");
        assert!(
            err.to_string()
                .contains(&dir.path().join("ca.pem").display().to_string()),
            "{err}"
        );
    }

    /// Three managers as a manager would send them, one still unapplied.
    const MEMBERS: &str = r#"[
        {"id": 1, "api_addr": "127.0.0.1:4001", "raft_addr": "127.0.0.1:4101",
         "role": "leader", "term": 3, "last_log_index": 1234, "applied_index": 1234,
         "reachable": true},
        {"id": 2, "api_addr": "127.0.0.1:4002", "raft_addr": "127.0.0.1:4102",
         "role": "follower", "term": 3, "last_log_index": 1230, "applied_index": 17,
         "reachable": true},
        {"id": 13, "api_addr": "10.0.0.13:4000", "raft_addr": "10.0.0.13:4100",
         "role": "learner", "term": 2, "last_log_index": null, "applied_index": null,
         "reachable": false}
    ]"#;

    /// Every column is as wide as its widest cell, null indexes are `-`.
    #[test]
    fn table_aligns_columns_and_shows_null_as_dash() {
        let members = parse_members(MEMBERS.as_bytes()).expect("valid member list");
        let expected = "\
ID  API_ADDR        RAFT_ADDR       ROLE      TERM  LAST_LOG_INDEX  APPLIED_INDEX  REACHABLE
1   127.0.0.1:4001  127.0.0.1:4101  leader    3     1234            1234           true
2   127.0.0.1:4002  127.0.0.1:4102  follower  3     1230            17             true
13  10.0.0.13:4000  10.0.0.13:4100  learner   2     -               -              false
";
        assert_eq!(members_table(&members), expected);
    }

    /// No member: only the header, its columns two spaces apart.
    #[test]
    fn table_of_no_member_is_the_header() {
        assert_eq!(
            members_table(&[]),
            "ID  API_ADDR  RAFT_ADDR  ROLE  TERM  LAST_LOG_INDEX  APPLIED_INDEX  REACHABLE\n"
        );
    }

    /// An error object or a member lacking keys is refused, not printed.
    #[test]
    fn malformed_member_list_is_an_error() {
        assert!(parse_members(br#"{"message": "no leader"}"#).is_err());
        assert!(parse_members(br#"[{"id": 1}]"#).is_err());
    }

    /// Causes repeated by the message before them are dropped.
    #[test]
    fn error_line_skips_causes_already_told() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::new(io).context("cannot connect to x: refused");
        assert_eq!(error_line(&e), "cannot connect to x: refused");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }

    /// An environment of the given variables only.
    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    /// A client's certificate goes where the docker CLI looks; any other
    /// into a directory named after it; the CA under ~/.swarm.
    #[test]
    fn default_directories_follow_docker() {
        let env = env_of(&[("HOME", "/home/ann")]);
        assert_eq!(
            default_out_dir(CertKind::Client, Some("ann"), &env).expect("dir"),
            PathBuf::from("/home/ann/.docker")
        );
        let env = env_of(&[("HOME", "/home/ann"), ("DOCKER_CERT_PATH", "/certs")]);
        assert_eq!(
            default_out_dir(CertKind::Client, None, &env).expect("dir"),
            PathBuf::from("/certs")
        );
        for kind in [CertKind::Engine, CertKind::Manager, CertKind::Server] {
            assert_eq!(
                default_out_dir(kind, Some("node-1.example"), &env).expect("dir"),
                PathBuf::from("./node-1.example")
            );
        }
        assert!(default_out_dir(CertKind::Engine, Some("*.example"), &env).is_err());
        assert!(default_out_dir(CertKind::Engine, Some(".."), &env).is_err());
        assert_eq!(
            default_ca_dir(&env).expect("dir"),
            PathBuf::from("/home/ann/.swarm/ca")
        );
        let no_home = env_of(&[]);
        assert!(default_ca_dir(&no_home).is_err());
        assert!(default_out_dir(CertKind::Client, None, &no_home).is_err());
    }

    /// `--san` values: repeated or comma-separated, refused with the reason.
    #[test]
    fn sans_parse_from_the_command_line() {
        let cli = Cli::try_parse_from([
            "swarmctl",
            "cert",
            "issue",
            "--kind",
            "manager",
            "--san",
            "127.0.0.1,localhost",
            "--san",
            "m1.example",
        ])
        .expect("parse");
        let Cmd::Cert(CertCmd::Issue { sans, kind, .. }) = cli.command else {
            panic!("not cert issue: {:?}", cli.command);
        };
        assert_eq!(kind, KindArg::Manager);
        let sans: Vec<String> = sans.iter().map(SanName::to_string).collect();
        assert_eq!(sans, ["127.0.0.1", "localhost", "m1.example"]);
        let err = Cli::try_parse_from([
            "swarmctl",
            "cert",
            "issue",
            "--kind",
            "engine",
            "--san",
            "10.0.0.1:2376",
        ])
        .expect_err("a port is refused");
        assert!(err.to_string().contains("without a port"), "{err}");
    }

    /// The manager's `message` is shown; a non-JSON body as text.
    #[test]
    fn error_message_prefers_the_docker_message() {
        assert_eq!(
            error_message(br#"{"message": "no leader: cluster has 1 of 3 managers"}"#),
            "no leader: cluster has 1 of 3 managers"
        );
        assert_eq!(error_message(b"bad gateway\n"), "bad gateway");
    }
}
