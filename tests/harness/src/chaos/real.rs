//! The real engines of a chaos run (`swarm-bench chaos --engines N`):
//! dockerd processes of [`crate::engines`], each with its listener on the
//! root namespace's loopback, which the managers' hosts cannot reach.
//! When the managers have hosts of their own, each engine is reached
//! through a [`Proxy`] (a plain copy both ways: hijacked and streamed
//! connections pass) on the bridge of the hosts ([`ChaosNet::bridge_ip`]),
//! cut while the engine is down, so that the managers' connections are
//! closed and new ones refused as by a dead host.
//!
//! An engine stopped for an outage is SIGKILLed with its containerd, shims
//! and containers ([`Engine::kill`]) and restarted after the outage with
//! the same data ([`Engine::restart`]): its containers are there again,
//! stopped.
//!
//! [`Engine::kill`]: crate::engines::Engine::kill
//! [`Engine::restart`]: crate::engines::Engine::restart

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::fleet::wait_ping;
use super::net::ChaosNet;
use crate::engines::{start_engines, Engines};
use crate::proxy::Proxy;

/// How long an engine gets to answer `/_ping` after its outage (a
/// restarted dockerd starts its containerd and reads its containers).
const BACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The engines module's watchdog ends a process running longer than
/// this, unless `SWARM_TEST_WATCHDOG_SECS` says otherwise.
const WATCHDOG_DEFAULT_SECS: u64 = 600;
/// What a run takes beyond its workload: starting the engines and the
/// managers, settling, reading the end.
const SETUP_MARGIN: Duration = Duration::from_secs(120);

/// Real engines, and the proxies the managers reach them through.
pub struct RealFleet {
    /// The dockerd processes; locked to kill or restart one.
    engines: Arc<Mutex<Engines>>,
    /// Where the managers reach engine i: its proxy, or its own listener.
    addrs: Vec<String>,
    /// Engine i's proxy (none without a network of hosts).
    proxies: Arc<Vec<Proxy>>,
    /// Why engine i could not be restarted, if it could not.
    failed: Arc<Mutex<Vec<Option<String>>>>,
}

impl RealFleet {
    /// Starts `count` engines (each holding `busybox:local`) and, with
    /// `net`, a proxy to each on its bridge IP; an error (after stopping
    /// what started) if one does not come up. A run must end before the
    /// engines module's watchdog: `run_for` longer than it is refused.
    pub async fn start(
        count: usize,
        net: Option<&ChaosNet>,
        run_for: Duration,
    ) -> anyhow::Result<RealFleet> {
        if count == 0 {
            bail!("--engines must be at least 1");
        }
        let watchdog = std::env::var("SWARM_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(WATCHDOG_DEFAULT_SECS);
        if run_for + SETUP_MARGIN >= Duration::from_secs(watchdog) {
            bail!(
                "a run of {run_for:?} (and {SETUP_MARGIN:?} to set up and settle) with real \
                 engines outlasts their watchdog ({watchdog} s): set SWARM_TEST_WATCHDOG_SECS higher"
            );
        }
        let engines = tokio::task::spawn_blocking(move || {
            catch_unwind(|| start_engines(&vec![&[][..]; count])).map_err(panic_text)
        })
        .await
        .map_err(|e| anyhow!("starting the engines: {e}"))?
        .map_err(|e| anyhow!("starting the engines: {e}"))?;
        let mut proxies = Vec::new();
        let mut addrs = engines.tcp_addrs();
        if let Some(net) = net {
            for addr in &mut addrs {
                let listen = format!("{}:0", net.bridge_ip());
                let proxy = Proxy::start_at(&listen, addr, 0)
                    .with_context(|| format!("a proxy on {listen} to engine {addr}"))?;
                *addr = proxy.addr.clone();
                proxies.push(proxy);
            }
        }
        Ok(RealFleet {
            engines: Arc::new(Mutex::new(engines)),
            failed: Arc::new(Mutex::new(vec![None; addrs.len()])),
            addrs,
            proxies: Arc::new(proxies),
        })
    }

    /// How many engines.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Where the managers reach engine i.
    pub fn addr(&self, i: usize) -> String {
        self.addrs[i].clone()
    }

    /// `nodes://A,B,...`: every engine's address.
    pub fn discovery(&self) -> String {
        format!("nodes://{}", self.addrs.join(","))
    }

    /// Engine i goes down (its proxy cut, then dockerd and everything it
    /// started SIGKILLed) and is restarted after `outage` by a task of its
    /// own, its proxy restored then; returns once it is down.
    pub async fn stop_for(&self, i: usize, outage: Duration) -> anyhow::Result<()> {
        if i >= self.len() {
            bail!("no engine {i}");
        }
        if let Some(proxy) = self.proxies.get(i) {
            proxy.cut();
        }
        let engines = Arc::clone(&self.engines);
        tokio::task::spawn_blocking(move || lock(&engines).engines[i].kill())
            .await
            .map_err(|e| anyhow!("killing engine {i}: {e}"))?;
        let (engines, proxies, failed) = (
            Arc::clone(&self.engines),
            Arc::clone(&self.proxies),
            Arc::clone(&self.failed),
        );
        tokio::spawn(async move {
            tokio::time::sleep(outage).await;
            let back = tokio::task::spawn_blocking(move || {
                catch_unwind(AssertUnwindSafe(|| lock(&engines).engines[i].restart()))
                    .map_err(panic_text)?;
                match proxies.get(i) {
                    Some(proxy) => proxy.restore().map_err(|e| format!("proxy: {e}")),
                    None => Ok(()),
                }
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            if let Err(e) = back {
                lock(&failed)[i] = Some(e);
            }
        });
        Ok(())
    }

    /// Waits until engine i answers `/_ping` through its address again;
    /// an error at once if its restart failed.
    pub async fn wait_back(&self, i: usize) -> anyhow::Result<()> {
        let node = self.addr(i);
        let what = format!("engine {node}");
        let failed = || lock(&self.failed).get(i).cloned().flatten();
        wait_ping(
            &node,
            false,
            BACK_TIMEOUT,
            &what,
            "after its outage",
            failed,
        )
        .await
    }
}

/// The lock, even if a thread panicked holding it (a failed restart).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The message of a caught panic.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}
