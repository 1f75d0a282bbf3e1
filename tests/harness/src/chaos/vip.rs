//! The managers' virtual IP of a chaos run: Debian's HAProxy in TCP mode in
//! front of every manager, with the health checks `deploy/haproxy.cfg`
//! gives users (`GET /_ping` every 500 ms, out after 2 failures, back after
//! 2 successes, a refused connection retried on another manager), so that
//! part of the workload goes where users' clients go.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench::client::Client;
use crate::ports::try_free_port;
use crate::process::Process;

/// Where Debian's package puts HAProxy.
const HAPROXY: &str = "/usr/sbin/haproxy";
/// How long HAProxy gets to route a first `/_ping`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running HAProxy; stopped when dropped.
pub struct Vip {
    /// The address clients use, `127.0.0.1:PORT`.
    pub addr: String,
    _process: Process,
}

impl Vip {
    /// Starts HAProxy on a free loopback port in front of `apis`, its
    /// configuration and log in `dir`, and waits until a `/_ping` through
    /// it answers.
    pub async fn start(dir: &Path, apis: &[String]) -> anyhow::Result<Vip> {
        if !Path::new(HAPROXY).exists() {
            bail!("{HAPROXY} not found: install Debian's haproxy (tests/run.sh does)");
        }
        let addr = format!("127.0.0.1:{}", try_free_port()?);
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config(&addr, apis))
            .with_context(|| format!("writing {}", cfg.display()))?;
        // -db: in the foreground, so that the process is HAProxy itself.
        let args = vec![
            "-db".to_string(),
            "-f".to_string(),
            cfg.display().to_string(),
        ];
        let process = Process::spawn(
            "haproxy",
            &PathBuf::from(HAPROXY),
            &args,
            &dir.join("haproxy.log"),
        )?;
        let vip = Vip {
            addr,
            _process: process,
        };
        vip.wait_ready().await?;
        Ok(vip)
    }

    /// Until a `/_ping` through HAProxy answers 200.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < READY_TIMEOUT {
            match Client::manager(&self.addr, Duration::from_secs(2)) {
                Ok(mut c) => match c.get("/_ping").await {
                    Ok(a) if a.status == 200 => return Ok(()),
                    Ok(a) => last = a.describe(),
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "HAProxy on {} routed no /_ping within {READY_TIMEOUT:?}: {last}",
            self.addr
        )
    }
}

/// HAProxy's configuration: `deploy/haproxy.cfg`'s settings, bound to
/// `addr`, one server per manager API address.
pub fn config(addr: &str, apis: &[String]) -> String {
    let mut cfg = format!(
        "global\n    maxconn 4096\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout check 2s\n    \
         timeout client 1h\n    timeout server 1h\n    timeout tunnel 1h\n    \
         retries 3\n    option redispatch\n\n\
         frontend swarm\n    bind {addr}\n    default_backend managers\n\n\
         backend managers\n    balance roundrobin\n    option httpchk GET /_ping\n    \
         http-check expect status 200\n    \
         default-server inter 500ms fastinter 250ms downinter 1s fall 2 rise 2\n"
    );
    for (i, api) in apis.iter().enumerate() {
        cfg.push_str(&format!("    server m{} {api} check\n", i + 1));
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_checked_server_per_manager() {
        let apis = ["198.18.7.1:2375".to_string(), "198.18.7.2:2375".to_string()];
        let cfg = config("127.0.0.1:4000", &apis);
        assert!(cfg.contains("bind 127.0.0.1:4000\n"), "{cfg}");
        assert!(cfg.contains("server m1 198.18.7.1:2375 check\n"), "{cfg}");
        assert!(cfg.contains("server m2 198.18.7.2:2375 check\n"), "{cfg}");
        assert!(cfg.contains("mode tcp"), "{cfg}");
        assert!(cfg.contains("option httpchk GET /_ping"), "{cfg}");
    }
}
