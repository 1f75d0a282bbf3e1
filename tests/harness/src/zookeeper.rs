//! A real ZooKeeper for tests: Debian's `zookeeper` (3.8), one standalone
//! server (`ZooKeeperServerMain`) run straight from the package's jars with
//! a configuration written here: its data in a temporary directory, its
//! client port on 127.0.0.1 a free port, the admin server off. `tickTime`
//! is 500 ms, so sessions may time out after 1 s to 10 s (twice and twenty
//! times it): tests can use TTLs of a few seconds. It logs through
//! slf4j-simple (shipped with the package's dependencies) to `zk.log`.
//!
//! [`ZooKeeper::stop`] kills it and [`ZooKeeper::start_again`] starts it
//! on the same port and data (sessions and znodes survive, as in a real
//! restart); dropping the [`ZooKeeper`] kills it and removes its directory.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::ports::free_port;
use crate::process::Process;
use crate::sys::LOG_TAIL_LINES;
use crate::watchdog::{trace, watch_log, watchdog};

/// How long a started ZooKeeper may take to serve.
pub const ZOOKEEPER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's jar; its manifest's class path names the other jars.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An slf4j binding, so the server logs (it has none of its own).
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const JAVA: &str = "/usr/bin/java";

/// A running standalone ZooKeeper (see the module's documentation).
pub struct ZooKeeper {
    /// Its client address, `127.0.0.1:PORT`.
    pub addr: String,
    process: Process,
    /// How long the last start took, until it served.
    pub started_in: Duration,
    /// Configuration, data and log; removed on drop (after the kill:
    /// field order).
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ZooKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooKeeper")
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl ZooKeeper {
    /// Starts a ZooKeeper and waits until it serves.
    pub fn start() -> anyhow::Result<ZooKeeper> {
        watchdog();
        for jar in [ZOOKEEPER_JAR, SLF4J_SIMPLE_JAR, JAVA] {
            if !Path::new(jar).exists() {
                bail!("{jar} missing: apt-get install zookeeper (tests/run.sh does)");
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("swarm-zookeeper-")
            .tempdir()
            .context("creating ZooKeeper's directory")?;
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("zoo.cfg");
        let text = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr,cons\n",
            dir.path().join("data").display()
        );
        std::fs::write(&config, text).context("writing ZooKeeper's configuration")?;
        let args: Vec<String> = [
            // A small, quick JVM: the server needs little.
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xshare:auto",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dzookeeper.admin.enableServer=false",
            "-cp",
            &format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}"),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            &config.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = dir.path().join("zk.log");
        let process = Process::spawn("zookeeper", Path::new(JAVA), &args, &log)?;
        watch_log(format!("zookeeper {addr}"), log);
        let mut zk = ZooKeeper {
            addr,
            process,
            started_in: Duration::ZERO,
            dir,
        };
        zk.wait_ready()?;
        Ok(zk)
    }

    /// Waits until it serves: `srvr` tells its mode (`ruok` answers
    /// `imok` before the server takes sessions).
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if self
                .four_letter("srvr")
                .is_ok_and(|answer| answer.contains("Mode: standalone"))
            {
                self.started_in = started.elapsed();
                trace(format!(
                    "zookeeper {} up in {:?}",
                    self.addr, self.started_in
                ));
                return Ok(());
            }
            if !self.process.is_running() || started.elapsed() > ZOOKEEPER_START_TIMEOUT {
                bail!(
                    "ZooKeeper on {} did not serve (srvr) within {ZOOKEEPER_START_TIMEOUT:?}\n--- log ---\n{}",
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a four-letter command (`ruok`, `srvr`, `cons`) and returns
    /// the answer.
    pub fn four_letter(&self, command: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let addr = self
            .addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(command.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Its discovery URL with `path`: `zk://127.0.0.1:PORT/PATH` (no path
    /// when empty).
    pub fn url(&self, path: &str) -> String {
        match path.trim_matches('/') {
            "" => format!("zk://{}", self.addr),
            path => format!("zk://{}/{path}", self.addr),
        }
    }

    /// Kills it (SIGKILL): the store is down.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts it again after [`ZooKeeper::stop`], on the same port and
    /// data, and waits until it serves.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.start()?;
        self.wait_ready()
    }

    /// Its directory (`zoo.cfg`, `data`, `zk.log`).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

impl Drop for ZooKeeper {
    /// Kills it, printing its log's tail first if the thread panics.
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- zookeeper {} log tail ---\n{}",
                self.addr,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        self.process.kill();
    }
}
