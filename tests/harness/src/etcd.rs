//! A real etcd for tests: the key-value store of the engines' multi-host
//! (legacy) overlay networks, `dockerd --cluster-store=etcd://...` (see
//! [`crate::engines::EngineOptions::cluster_store`]). Debian's `etcd-server`
//! (3.4) run with `--enable-v2`: the engines' libkv client speaks the etcd
//! v2 API.
//!
//! The etcd takes a slot (see the slots module) for its address: the slot's
//! interface `swtbrM` (a bridge without ports) holds `172.29.M.1/32`, a
//! host address that every engine's network namespace reaches through its
//! default route, and that no one else listens on. Its client port there
//! and its peer port on 127.0.0.1 are free ports. Its data dir is in a
//! temporary directory; dropping the [`Etcd`] kills it and removes all of
//! it, and a test process killed before that leaves a slot the next test
//! reclaims (the etcd's command line names its directory).

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::http_get;
use crate::ports::free_port;
use crate::process::Process;
use crate::slots::{
    acquire_slot, bridge_name, reclaim_stale_slots, release_slot, remove_slot_network,
};
use crate::sys::{remove_tree, run_checked, LOG_TAIL_LINES};
use crate::watchdog::{watch_log, watchdog};

/// How long a started etcd may take to answer `GET /v2/keys/`.
pub const ETCD_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running etcd (see the module's documentation).
pub struct Etcd {
    /// Its client address, `172.29.M.1:PORT`.
    pub addr: String,
    process: Option<Process>,
    slot: u8,
    slot_held: bool,
    iface_created: bool,
    dir: PathBuf,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Etcd {
    /// Starts an etcd and waits until its v2 API answers.
    ///
    /// # Panics
    ///
    /// If `etcd` is missing (`apt-get install etcd-server`) or does not
    /// come up in [`ETCD_START_TIMEOUT`] (the message holds its log tail).
    pub fn start() -> Etcd {
        Etcd::try_start().unwrap_or_else(|e| panic!("starting etcd: {e}"))
    }

    /// [`Etcd::start`], with an error rather than a panic.
    pub fn try_start() -> Result<Etcd, String> {
        watchdog();
        reclaim_stale_slots();
        let dir = tempfile::Builder::new()
            .prefix("swarm-etcd-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("creating etcd dir: {e}"))?
            .keep();
        let mut etcd = Etcd {
            addr: String::new(),
            process: None,
            slot: 0,
            slot_held: false,
            iface_created: false,
            dir,
        };
        etcd.slot = acquire_slot(&etcd.dir)?;
        etcd.slot_held = true;
        let ip = format!("172.29.{}.1", etcd.slot);
        let iface = bridge_name(etcd.slot);
        remove_slot_network(etcd.slot);
        run_checked("ip", &["link", "add", &iface, "type", "bridge"])?;
        etcd.iface_created = true;
        run_checked("ip", &["addr", "add", &format!("{ip}/32"), "dev", &iface])?;
        run_checked("ip", &["link", "set", &iface, "up"])?;
        etcd.addr = format!("{ip}:{}", free_port());
        let client = format!("http://{}", etcd.addr);
        let peer = format!("http://127.0.0.1:{}", free_port());
        let args: Vec<String> = [
            "--name",
            "swarm-test",
            "--data-dir",
            &etcd.dir.join("data").display().to_string(),
            "--enable-v2=true",
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("swarm-test={peer}"),
            "--initial-cluster-state",
            "new",
            // One member: it elects itself after one election timeout.
            "--heartbeat-interval",
            "20",
            "--election-timeout",
            "200",
            "--logger",
            "zap",
            // A failing test prints the log's tail: problems, not the startup.
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = etcd.dir.join("etcd.log");
        let process = Process::spawn("etcd", Path::new("etcd"), &args, &log)
            .map_err(|e| format!("{e:#} (is etcd installed? apt-get install etcd-server)"))?;
        etcd.process = Some(process);
        watch_log(format!("etcd {}", etcd.addr), log);
        etcd.wait_ready()?;
        Ok(etcd)
    }

    /// Polls `GET /v2/keys/` until it answers 200 (the v2 API is on and
    /// the member is leader).
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(p) = self.process.as_mut() {
                if !p.is_running() {
                    return Err(format!(
                        "etcd exited during startup\n--- etcd log tail ---\n{}",
                        self.log_tail(LOG_TAIL_LINES)
                    ));
                }
            }
            let last = match self.get("/") {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("{status}: {}", body.trim()),
                Err(e) => e,
            };
            if start.elapsed() > ETCD_START_TIMEOUT {
                return Err(format!(
                    "etcd on {} did not answer GET /v2/keys/ within {ETCD_START_TIMEOUT:?} \
                     (last: {last})\n--- etcd log tail ---\n{}",
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its client URL, `http://172.29.M.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The engines' `--cluster-store` for it, `etcd://172.29.M.1:PORT`.
    pub fn cluster_store(&self) -> String {
        format!("etcd://{}", self.addr)
    }

    /// `GET /v2/keys{key}?recursive=true`: status and body (JSON), e.g.
    /// `get("/docker/nodes")` for the engines registered by libkv
    /// discovery.
    pub fn get(&self, key: &str) -> Result<(u16, String), String> {
        http_get(&self.addr, &format!("/v2/keys{key}?recursive=true"))
            .map_err(|e| format!("GET {}/v2/keys{key}: {e}", self.url()))
    }

    /// Its directory (data dir and `etcd.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }
}

impl Drop for Etcd {
    /// Kills etcd (printing its log tail first if the thread panics),
    /// removes its interface and directory, and frees its slot.
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            if thread::panicking() {
                eprintln!(
                    "--- etcd {} log tail ---\n{}",
                    self.addr,
                    p.log_tail(LOG_TAIL_LINES)
                );
            }
            p.kill();
        }
        if self.iface_created {
            remove_slot_network(self.slot);
        }
        remove_tree(&self.dir);
        if self.slot_held {
            release_slot(self.slot);
        }
    }
}
