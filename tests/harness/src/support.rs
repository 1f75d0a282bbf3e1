//! Shared helpers for integration tests: extra Docker engines, the `docker`
//! CLI, and `swarm manage` child processes.
//!
//! Use it from a test as `swarm_harness::support`.
//!
//! Engines (see design.md §5): each engine is a real `dockerd` started in its
//! own UTS + mount namespace (so hostname and engine ID differ per engine),
//! with its own socket, loopback TCP listener, data-root (vfs), exec-root,
//! pidfile, managed containerd (own namespaces) and Linux bridge on a private
//! /24 of 172.29.0.0/16 (host side 172.29.N.1, also the engine's default bind
//! IP for published ports, see [`Engine::ip`]). Slots (subnet, bridge name,
//! containerd namespace) are allocated under a file lock in
//! `/tmp/swarm-test-net/`, so several test binaries can run at the same time;
//! slots left behind by a killed test process are reclaimed (processes
//! killed, bridge and files removed) by the next test that starts engines.
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Name (and tag) of the image every started engine holds.
pub const IMAGE: &str = "busybox:local";

/// Directory holding the slot lock files shared by all test processes.
const NET_LOCK_DIR: &str = "/tmp/swarm-test-net";
/// Directory caching the busybox:local image tarball across test processes.
const CACHE_DIR: &str = "/tmp/swarm-test-cache";
/// How long an engine may take to answer `/_ping` after it was spawned.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a stopping dockerd gets after SIGTERM before everything is SIGKILLed.
const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How many lines of a log are printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

// ---------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------

/// One extra dockerd started by the test.
///
/// Dropping it stops the dockerd and everything it started (containerd,
/// shims, containers, docker-proxy), deletes its bridge and removes its
/// directory. Normally engines are owned and dropped by [`Engines`].
pub struct Engine {
    /// Hostname inside the engine's UTS namespace (`docker info` `.Name`), e.g. `node-1`.
    pub name: String,
    /// Path of the engine's unix socket.
    pub socket: PathBuf,
    /// The engine's plain-TCP listener, `127.0.0.1:PORT`.
    pub tcp: String,
    /// Pid of the dockerd process (changes on [`Engine::restart`]).
    pub pid: u32,
    /// Engine ID reported by `docker info` (stable across restarts).
    engine_id: String,
    /// Labels given with `--label k=v`.
    labels: Vec<(String, String)>,
    /// Slot number N: subnet 172.29.N.0/24, bridge `swtbrN`, containerd namespace `swtN`.
    slot: u8,
    /// The engine's own directory (etc/, data/, exec/, socket, pidfile, log).
    dir: PathBuf,
    /// The spawned dockerd, when running.
    child: Option<Child>,
    /// Whether the bridge (and its iptables rule) was created and must be removed.
    bridge_created: bool,
    /// Whether the slot lock file was written and must be removed.
    slot_held: bool,
}

impl Engine {
    /// The engine's unix socket as a docker `-H` value: `unix:///path/to/sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's TCP listener as a docker `-H` value: `tcp://127.0.0.1:PORT`.
    pub fn tcp_host(&self) -> String {
        format!("tcp://{}", self.tcp)
    }

    /// The engine ID from `docker info` (`{{.ID}}`).
    pub fn id(&self) -> String {
        self.engine_id.clone()
    }

    /// The labels the engine was started with.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// Name of the Linux bridge the engine's containers are attached to.
    pub fn bridge(&self) -> String {
        format!("swtbr{}", self.slot)
    }

    /// The engine's private subnet, e.g. `172.29.7.0/24`.
    pub fn subnet(&self) -> String {
        format!("172.29.{}.0/24", self.slot)
    }

    /// The engine's bridge address, e.g. `172.29.7.1`: the host side of its
    /// subnet and its default bind IP for published ports (dockerd `--ip`),
    /// so `-p 8080:80` binds `172.29.7.1:8080` and the same host port can be
    /// published on every engine at once.
    pub fn ip(&self) -> String {
        format!("172.29.{}.1", self.slot)
    }

    /// The engine's directory (holds `dockerd.log`, data-root, exec-root...).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the dockerd log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// The last `lines` lines of the dockerd log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path(), lines)
    }

    /// Whether the dockerd process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the engine gracefully (SIGTERM, then SIGKILL after 15 s), keeping
    /// its data so that [`Engine::restart`] brings it back with the same ID,
    /// address and (exited) containers. Note: dockerd stops running
    /// containers with their stop timeout (10 s by default; busybox `sleep`
    /// as pid 1 ignores SIGTERM) — use [`Engine::kill`] to simulate a crash fast.
    pub fn stop(&mut self) {
        self.terminate();
        self.sweep_processes();
    }

    /// SIGTERMs dockerd and waits for its clean shutdown. Once the log says
    /// "Daemon shutdown complete", what is left is dockerd waiting for its
    /// containerd with a 1 s polling sleep, so everything is SIGKILLed then.
    /// SIGKILL as well after 15 s.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let log = self.log_path();
        let offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        signal(&[child.id()], "TERM");
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) | Err(_) = child.try_wait() {
                return;
            }
            if start.elapsed() > ENGINE_STOP_TIMEOUT
                || log_since_contains(&log, offset, "Daemon shutdown complete")
            {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        kill_tree(&[child.id()], Some(&self.marker()));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Simulates a crash of the whole host: SIGKILLs dockerd, its containerd,
    /// shims, docker-proxy and all container processes at once.
    pub fn kill(&mut self) {
        let mut seeds = Vec::new();
        if let Some(c) = self.child.as_ref() {
            seeds.push(c.id());
        }
        kill_tree(&seeds, Some(&self.marker()));
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.sweep_processes();
        remove_cgroups(&self.dir.join("data/containers"));
    }

    /// Starts the engine again (after [`Engine::stop`] or [`Engine::kill`])
    /// with the same directories, socket, TCP port, bridge and labels, and
    /// waits until it answers. Stops it first if it is running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let _ = fs::remove_file(self.dir.join("docker.pid"));
        let _ = fs::remove_file(self.dir.join("exec/containerd/containerd.pid"));
        if let Err(e) = self.spawn_and_wait() {
            panic!("restarting engine {}: {e}", self.name);
        }
    }

    /// A string that occurs in the command line of every process of this
    /// engine (dockerd, containerd, shims): its directory.
    fn marker(&self) -> String {
        format!("{}/", self.dir.display())
    }

    fn containerd_ns(&self) -> String {
        format!("swt{}", self.slot)
    }

    /// Spawns dockerd inside fresh UTS + mount namespaces (unshare execs sh,
    /// sh execs [perl, which execs] dockerd, so the child pid is dockerd's).
    ///
    /// The TCP listener is handed to dockerd with systemd socket activation
    /// (`-H fd://`, socket bound by a perl one-liner) because dockerd 20.10
    /// sleeps 1 s at startup for every plain `-H tcp://` without --tlsverify.
    /// Only dockerd holds the socket (Go marks it close-on-exec), so a killed
    /// engine refuses connections like a dead host would.
    fn spawn(&mut self) -> Result<(), String> {
        let d = &self.dir;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("opening dockerd log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cloning log fd: {e}"))?;
        let ns = self.containerd_ns();
        // The command run inside the namespaces: `[perl -e ACTIVATE ip:port] dockerd flags...`.
        let mut args: Vec<String> = Vec::new();
        let tcp_host = if perl_available() {
            args.extend([
                "perl".into(),
                "-e".into(),
                SOCKET_ACTIVATE_PL.into(),
                self.tcp.clone(),
            ]);
            "fd://".to_string()
        } else {
            format!("tcp://{}", self.tcp)
        };
        args.extend([
            "dockerd".to_string(),
            format!("--host=unix://{}", self.socket.display()),
            format!("--host={tcp_host}"),
            format!("--data-root={}", d.join("data").display()),
            format!("--exec-root={}", d.join("exec").display()),
            format!("--pidfile={}", d.join("docker.pid").display()),
            format!("--bridge={}", self.bridge()),
            // Published ports bind the engine's own address by default: all
            // engines share the host network namespace, and docker-proxy
            // binding 0.0.0.0 would make a host port usable by one engine only.
            format!("--ip={}", self.ip()),
            "--iptables=false".into(),
            "--ip-masq=false".into(),
            "--storage-driver=vfs".into(),
            format!("--containerd-namespace={ns}"),
            format!("--containerd-plugins-namespace={ns}p"),
            format!("--config-file={}", d.join("etc/daemon.json").display()),
        ]);
        for (k, v) in &self.labels {
            args.push(format!("--label={k}={v}"));
        }
        let script = "mount --bind \"$1\" /etc/docker && hostname \"$2\" && shift 2 && exec \"$@\"";
        let child = Command::new("unshare")
            .args([
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(d.join("etc"))
            .arg(&self.name)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("spawning unshare/dockerd: {e}"))?;
        self.pid = child.id();
        self.child = Some(child);
        Ok(())
    }

    /// Spawns dockerd and waits for `/_ping` on the socket and `docker info`
    /// on the TCP address. Retries (with a new TCP port) when dockerd exits
    /// during startup, e.g. because another process took the port.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let mut last_err = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                self.tcp = format!("127.0.0.1:{}", free_port());
                let _ = fs::remove_file(self.dir.join("docker.pid"));
            }
            self.spawn()?;
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last_err = e;
                    let exited = !self.is_running();
                    self.kill();
                    if !exited {
                        break; // a timeout: retrying would not help
                    }
                }
            }
        }
        Err(format!(
            "{last_err}\n--- {} dockerd log tail ---\n{}",
            self.name,
            self.log_tail(LOG_TAIL_LINES)
        ))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "dockerd for {} exited during startup: {status}",
                        self.name
                    ));
                }
            }
            if unix_ping(&self.socket) {
                break;
            }
            if start.elapsed() > ENGINE_START_TIMEOUT {
                return Err(format!(
                    "dockerd for {} did not answer /_ping within {:?}",
                    self.name, ENGINE_START_TIMEOUT
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        let (ok, out, err) = docker(&self.tcp_host(), &["info", "--format", "{{.ID}}"]);
        if !ok || out.trim().is_empty() {
            return Err(format!(
                "`docker -H {} info` failed: {out}{err}",
                self.tcp_host()
            ));
        }
        self.engine_id = out.trim().to_string();
        Ok(())
    }

    /// Creates the bridge (on 172.29.N.1/24) and allows traffic between the
    /// engine's containers (dockerd runs with --iptables=false, and the host's
    /// FORWARD policy is DROP with br_netfilter loaded).
    fn create_bridge(&mut self) -> Result<(), String> {
        let br = self.bridge();
        run_quiet("ip", &["link", "del", &br]);
        run_checked("ip", &["link", "add", &br, "type", "bridge"])?;
        self.bridge_created = true;
        run_checked(
            "ip",
            &["addr", "add", &format!("{}/24", self.ip()), "dev", &br],
        )?;
        run_checked("ip", &["link", "set", &br, "up"])?;
        run_quiet(
            "iptables",
            &["-w", "-I", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"],
        );
        Ok(())
    }

    /// Loads the busybox:local image (built once per process).
    fn load_image(&self) -> Result<(), String> {
        let tarball = busybox_image_tar()?;
        let out = run_with_input(
            "docker",
            &["-H", &self.host(), "load", "-q"],
            &tarball,
            Duration::from_secs(60),
        )
        .map_err(|e| format!("docker load on {}: {e}", self.name))?;
        if !out.status.success() {
            return Err(format!(
                "docker load on {} failed: {}{}\n--- {} dockerd log tail ---\n{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            ));
        }
        Ok(())
    }

    /// SIGKILLs whatever is left of this engine (processes whose command line
    /// names the engine's directory, and their descendants).
    fn sweep_processes(&self) {
        kill_tree(&[], Some(&self.marker()));
    }

    /// Everything, best effort: containers, dockerd, leftovers, bridge, files, slot.
    fn shutdown(&mut self, print_log: bool) {
        if print_log {
            eprintln!(
                "--- {} ({}, {}) dockerd log tail ---\n{}",
                self.name,
                self.tcp,
                self.dir.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        let t0 = Instant::now();
        if self.is_running() {
            // Remove containers through the API so runc cleans cgroups and veths.
            let host = self.host();
            if let Ok(out) = run_with_input(
                "docker",
                &["-H", &host, "ps", "-aq"],
                &[],
                Duration::from_secs(5),
            ) {
                let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                if !ids.is_empty() {
                    let mut args = vec![
                        "-H".to_string(),
                        host.clone(),
                        "rm".into(),
                        "-f".into(),
                        "-v".into(),
                    ];
                    args.extend(ids);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let _ = run_with_input("docker", &args, &[], Duration::from_secs(10));
                }
            }
        }
        let t1 = Instant::now();
        self.terminate();
        let t2 = Instant::now();
        self.sweep_processes();
        if verbose() {
            eprintln!(
                "{}: rm containers {:?}, dockerd exit {:?}, sweep {:?}",
                self.name,
                t1 - t0,
                t2 - t1,
                t2.elapsed()
            );
        }
        remove_cgroups(&self.dir.join("data/containers"));
        if self.bridge_created {
            let br = self.bridge();
            run_quiet(
                "iptables",
                &["-w", "-D", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"],
            );
            run_quiet("ip", &["link", "del", &br]);
            self.bridge_created = false;
        }
        remove_tree(&self.dir);
        if self.slot_held {
            release_slot(self.slot);
            self.slot_held = false;
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown(thread::panicking());
    }
}

/// A set of engines; Drop stops everything started (by pid), also when the test panics.
pub struct Engines {
    /// The engines, `engines[i]` has hostname `node-{i+1}`.
    pub engines: Vec<Engine>,
}

impl Engines {
    /// The engines' TCP addresses (`127.0.0.1:PORT`), in order, e.g. for
    /// `swarm manage nodes://a,b`.
    pub fn tcp_addrs(&self) -> Vec<String> {
        self.engines.iter().map(|e| e.tcp.clone()).collect()
    }

    /// Number of engines.
    pub fn len(&self) -> usize {
        self.engines.len()
    }

    /// Whether there are no engines.
    pub fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }

    /// Iterates over the engines.
    pub fn iter(&self) -> std::slice::Iter<'_, Engine> {
        self.engines.iter()
    }
}

impl std::ops::Index<usize> for Engines {
    type Output = Engine;
    /// `engines[i]` is `engines.engines[i]`.
    fn index(&self, i: usize) -> &Engine {
        &self.engines[i]
    }
}

impl std::ops::IndexMut<usize> for Engines {
    /// Mutable access to `engines.engines[i]` (for stop / kill / restart).
    fn index_mut(&mut self, i: usize) -> &mut Engine {
        &mut self.engines[i]
    }
}

impl Drop for Engines {
    /// Shuts all engines down in parallel (each: `docker rm -f` its
    /// containers, SIGTERM dockerd, SIGKILL leftovers, delete bridge and files).
    fn drop(&mut self) {
        let print_log = thread::panicking();
        let handles: Vec<_> = self
            .engines
            .drain(..)
            .map(|mut e| {
                thread::spawn(move || {
                    e.shutdown(print_log);
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Start `labels.len()` engines; engine i gets hostname `node-{i+1}`, each with
/// `--label k=v` for each label given, its own UTS+mount namespace with its own
/// /etc/docker (so engine IDs and hostnames differ), socket, TCP listener on a
/// free loopback port, data-root, exec-root, pidfile, containerd namespace, and
/// a bridge so that `docker run -p HOSTPORT:80` works (published ports bind
/// the engine's bridge address [`Engine::ip`] by default, not 127.0.0.1, so
/// several engines can publish the same host port). Engines start in
/// parallel; returns when each answers `docker -H ... info` and holds image
/// `busybox:local`.
/// Panics (after cleaning up) if an engine does not come up.
pub fn start_engines(labels: &[&[(&str, &str)]]) -> Engines {
    watchdog();
    let t0 = Instant::now();
    reclaim_stale_slots();
    // Build the image tarball (once per process) while the engines boot.
    thread::spawn(|| {
        let t = Instant::now();
        let _ = busybox_image_tar();
        if verbose() {
            eprintln!("start_engines: image tarball built in {:?}", t.elapsed());
        }
    });
    let handles: Vec<_> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let name = format!("node-{}", i + 1);
            let l: Vec<(String, String)> = l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            thread::spawn(move || start_one(name, l))
        })
        .collect();
    let mut engines = Vec::new();
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(e)) => engines.push(e),
            Ok(Err(e)) => errors.push(e),
            Err(p) => errors.push(format!(
                "engine start thread panicked: {}",
                panic_message(&p)
            )),
        }
    }
    let engines = Engines { engines };
    if !errors.is_empty() {
        drop(engines);
        panic!("start_engines failed:\n{}", errors.join("\n"));
    }
    if verbose() {
        eprintln!(
            "start_engines: {} engines in {:?}",
            engines.len(),
            t0.elapsed()
        );
    }
    engines
}

fn start_one(name: String, labels: Vec<(String, String)>) -> Result<Engine, String> {
    let dir = tempfile::Builder::new()
        .prefix("swarm-eng-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("creating engine dir: {e}"))?
        .keep();
    let mut engine = Engine {
        socket: dir.join("docker.sock"),
        tcp: format!("127.0.0.1:{}", free_port()),
        pid: 0,
        engine_id: String::new(),
        labels,
        slot: 0,
        dir,
        child: None,
        bridge_created: false,
        slot_held: false,
        name,
    };
    for sub in ["etc", "data", "exec"] {
        fs::create_dir_all(engine.dir.join(sub)).map_err(|e| format!("creating {sub}: {e}"))?;
    }
    fs::write(engine.dir.join("etc/daemon.json"), "{}\n")
        .map_err(|e| format!("writing daemon.json: {e}"))?;
    let t0 = Instant::now();
    engine.slot = acquire_slot(&engine.dir)?;
    engine.slot_held = true;
    engine.create_bridge()?;
    let t1 = Instant::now();
    watch_log(format!("{} dockerd", engine.name), engine.log_path());
    engine.spawn_and_wait()?;
    let t2 = Instant::now();
    engine.load_image()?;
    if verbose() {
        eprintln!(
            "{}: slot+bridge {:?}, dockerd ready {:?}, image {:?} (slot {}, {}, pid {})",
            engine.name,
            t1 - t0,
            t2 - t1,
            t2.elapsed(),
            engine.slot,
            engine.tcp,
            engine.pid
        );
    }
    Ok(engine)
}

/// Perl one-liner: bind+listen on `ARGV[0]` (ip:port) as fd 3, set
/// LISTEN_FDS/LISTEN_PID (systemd socket activation) and exec the rest of ARGV.
const SOCKET_ACTIVATE_PL: &str = r#"BEGIN { $^F = 255 }
use strict; use Socket;
my ($ip, $port) = split /:/, shift @ARGV;
socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
setsockopt($s, SOL_SOCKET, SO_REUSEADDR, pack("l", 1)) or die "setsockopt: $!";
bind($s, pack_sockaddr_in($port, inet_aton($ip))) or die "bind $ip:$port: $!";
listen($s, 1024) or die "listen: $!";
if (fileno($s) != 3) { require POSIX; POSIX::dup2(fileno($s), 3) or die "dup2: $!"; }
$ENV{LISTEN_FDS} = 1; $ENV{LISTEN_PID} = $$; delete $ENV{LISTEN_FDNAMES};
exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!";
"#;

/// Whether `perl` with the Socket module can run (it is Essential on Debian).
fn perl_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        Command::new("perl")
            .args(["-MSocket", "-MPOSIX", "-e", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

// ---------------------------------------------------------------------------
// Slots (subnet / bridge / containerd namespace), shared across processes
// ---------------------------------------------------------------------------

/// Takes the process-wide file lock guarding the slot files.
fn slot_lock() -> Result<File, String> {
    fs::create_dir_all(NET_LOCK_DIR).map_err(|e| format!("creating {NET_LOCK_DIR}: {e}"))?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(NET_LOCK_DIR).join(".lock"))
        .map_err(|e| format!("opening slot lock: {e}"))?;
    f.lock().map_err(|e| format!("locking slot lock: {e}"))?;
    Ok(f)
}

/// Contents of a slot file: owner pid, owner start time, engine dir.
fn slot_record(dir: &Path) -> String {
    let pid = std::process::id();
    format!(
        "{pid} {}\n{}\n",
        proc_starttime(pid).unwrap_or(0),
        dir.display()
    )
}

/// Whether the slot file's owner process is gone; returns the engine dir to clean.
fn slot_is_stale(content: &str) -> Option<PathBuf> {
    let mut lines = content.lines();
    let mut first = lines.next()?.split_whitespace();
    let pid: u32 = first.next()?.parse().ok()?;
    let start: u64 = first.next()?.parse().ok()?;
    let dir = PathBuf::from(lines.next()?);
    match proc_starttime(pid) {
        Some(s) if s == start && !proc_is_zombie(pid) => None,
        _ => Some(dir),
    }
}

/// Cleans up after a dead owner: its engine's processes, bridge and files.
fn reclaim(slot: u8, dir: &Path) {
    kill_tree(&[], Some(&format!("{}/", dir.display())));
    remove_cgroups(&dir.join("data/containers"));
    let br = format!("swtbr{slot}");
    run_quiet(
        "iptables",
        &["-w", "-D", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"],
    );
    run_quiet("ip", &["link", "del", &br]);
    remove_tree(dir);
}

/// Reclaims, once per process, every slot whose owner process is dead.
fn reclaim_stale_slots() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(_lock) = slot_lock() else { return };
        let Ok(rd) = fs::read_dir(NET_LOCK_DIR) else {
            return;
        };
        for entry in rd.flatten() {
            let Some(slot) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u8>().ok())
            else {
                continue;
            };
            let Ok(content) = fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some(dir) = slot_is_stale(&content) {
                reclaim(slot, &dir);
                let _ = fs::remove_file(entry.path());
            }
        }
    });
}

/// Picks a free slot N (1..=254) whose subnet 172.29.N.0/24 is not in use on
/// this host and records it for `dir`.
fn acquire_slot(dir: &Path) -> Result<u8, String> {
    let _lock = slot_lock()?;
    let addrs = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let seed = (std::process::id() as usize).wrapping_mul(7);
    for k in 0..254usize {
        let slot = ((seed + k) % 254 + 1) as u8;
        let path = Path::new(NET_LOCK_DIR).join(slot.to_string());
        if let Ok(content) = fs::read_to_string(&path) {
            match slot_is_stale(&content) {
                Some(old) => reclaim(slot, &old),
                None => continue,
            }
        }
        let prefix = format!(" 172.29.{slot}.");
        if addrs
            .lines()
            .any(|l| l.contains(&prefix) && !l.contains(&format!(" swtbr{slot} ")))
        {
            continue; // someone else's network
        }
        fs::write(&path, slot_record(dir)).map_err(|e| format!("writing slot file: {e}"))?;
        return Ok(slot);
    }
    Err("no free 172.29.N.0/24 slot".into())
}

fn release_slot(slot: u8) {
    if let Ok(_lock) = slot_lock() {
        let _ = fs::remove_file(Path::new(NET_LOCK_DIR).join(slot.to_string()));
    }
}

// ---------------------------------------------------------------------------
// The busybox:local image
// ---------------------------------------------------------------------------

/// A `docker load` tarball of busybox:local, built once per process and
/// deterministic (fixed mtimes and creation date), so every engine — and every
/// test run — gets the same image ID, as if it had been pulled.
///
/// The tarball is also cached on disk (keyed by /bin/busybox's size and
/// mtime), so later test processes skip the build.
fn busybox_image_tar() -> Result<Arc<Vec<u8>>, String> {
    static TAR: OnceLock<Result<Arc<Vec<u8>>, String>> = OnceLock::new();
    TAR.get_or_init(|| {
        let cache = busybox_cache_path();
        if let Some(bytes) = cache.as_ref().and_then(|p| fs::read(p).ok()) {
            return Ok(Arc::new(bytes));
        }
        let bytes = build_busybox_image()?;
        if let Some(p) = cache {
            // Write atomically: other processes may read it concurrently.
            let tmp = p.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp, &bytes).is_ok() && fs::rename(&tmp, &p).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
        Ok(Arc::new(bytes))
    })
    .clone()
}

/// Where the busybox:local tarball is cached, or None if /bin/busybox is missing.
fn busybox_cache_path() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata("/bin/busybox").ok()?;
    let dir = Path::new(CACHE_DIR);
    fs::create_dir_all(dir).ok()?;
    Some(dir.join(format!("busybox-local-v1-{}-{}.tar", m.len(), m.mtime())))
}

fn build_busybox_image() -> Result<Vec<u8>, String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox missing: apt-get install -y busybox-static".into());
    }
    let tmp = tempfile::Builder::new()
        .prefix("swarm-img-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let root = tmp.path().join("rootfs");
    for d in ["bin", "etc", "root", "tmp", "var/www"] {
        fs::create_dir_all(root.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    fs::copy(busybox, root.join("bin/busybox")).map_err(|e| format!("copying busybox: {e}"))?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .map_err(|e| format!("symlink {applet}: {e}"))?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .map_err(|e| format!("passwd: {e}"))?;
    fs::write(root.join("etc/group"), "root:x:0:\nnobody:x:65534:\n")
        .map_err(|e| format!("group: {e}"))?;
    run_checked("chmod", &["1777", &root.join("tmp").to_string_lossy()])?;

    let layer = tar_dir(&root)?;
    let diff_id = sha256_hex(&layer)?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let created = "2000-01-01T00:00:00Z";
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created": created, "created_by": "swarm tests/support: busybox rootfs" }]
    });
    let config = serde_json::to_vec(&config).map_err(|e| format!("config json: {e}"))?;
    let config_id = sha256_hex(&config)?;

    let arch_dir = tmp.path().join("archive");
    fs::create_dir_all(arch_dir.join(&diff_id)).map_err(|e| format!("mkdir: {e}"))?;
    fs::write(arch_dir.join(&diff_id).join("layer.tar"), &layer)
        .map_err(|e| format!("layer: {e}"))?;
    fs::write(arch_dir.join(format!("{config_id}.json")), &config)
        .map_err(|e| format!("config: {e}"))?;
    let manifest = serde_json::json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": [IMAGE],
        "Layers": [format!("{diff_id}/layer.tar")]
    }]);
    fs::write(arch_dir.join("manifest.json"), manifest.to_string())
        .map_err(|e| format!("manifest: {e}"))?;
    tar_dir(&arch_dir)
}

/// `tar -c` of a directory's contents, deterministic.
fn tar_dir(dir: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@946684800",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn sha256_hex(data: &[u8]) -> Result<String, String> {
    let out = run_with_input("sha256sum", &[], data, Duration::from_secs(30))?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.split_whitespace()
        .next()
        .filter(|h| h.len() == 64)
        .map(String::from)
        .ok_or_else(|| format!("sha256sum printed {s:?}"))
}

// ---------------------------------------------------------------------------
// docker CLI
// ---------------------------------------------------------------------------

/// `timeout -k 5 SECS PROGRAM`: a command that cannot outlive `secs`. The
/// kill-after matters: `docker run`/`attach` proxy SIGTERM to the container
/// instead of exiting, so a plain `timeout` would never end a hung one.
/// Stdin is /dev/null unless the caller sets it.
pub fn timed(secs: u64, program: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &secs.to_string(), program])
        .stdin(Stdio::null());
    cmd
}

/// `docker -H host ARGS` bounded by [`timed`]`(secs)`; recorded in the trace.
pub fn docker_cmd(secs: u64, host: &str, args: &[&str]) -> Command {
    trace(format!("docker -H {host} {}", args.join(" ")));
    let mut cmd = timed(secs, "docker");
    cmd.args(["-H", host]).args(args);
    cmd
}

/// Runs the docker CLI against `host` with `args`; returns (success, stdout, stderr). Never panics on a failed command.
pub fn docker(host: &str, args: &[&str]) -> (bool, String, String) {
    // A hung CLI must fail the test, not stall the suite.
    let t = Instant::now();
    let result = match docker_cmd(90, host, args).output() {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (false, String::new(), format!("cannot run docker: {e}")),
    };
    trace(format!(
        "  -> {} in {:?}",
        if result.0 { "ok" } else { "failed" },
        t.elapsed()
    ));
    result
}

/// Like `docker` but panics with stdout+stderr when the command fails; returns stdout trimmed.
pub fn docker_ok(host: &str, args: &[&str]) -> String {
    let (ok, out, err) = docker(host, args);
    if !ok {
        panic!(
            "`docker -H {host} {}` failed\nstdout: {out}\nstderr: {err}",
            args.join(" ")
        );
    }
    out.trim().to_string()
}

/// Like `docker` but panics when the command succeeds; returns stderr.
pub fn docker_err(host: &str, args: &[&str]) -> String {
    let (ok, out, err) = docker(host, args);
    if ok {
        panic!(
            "`docker -H {host} {}` succeeded but should have failed\nstdout: {out}\nstderr: {err}",
            args.join(" ")
        );
    }
    err
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (never the same one twice in a process).
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0 to find a free port")
            .port();
        let mut g = given.lock().unwrap_or_else(|p| p.into_inner());
        if g.insert(port) {
            return port;
        }
    }
}

/// Polls `f` every 100 ms until it returns Some or `timeout` passes (then panics with `what`).
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `f` every 100 ms until it returns Ok or `timeout` passes; then
/// panics with `what` and the last reason `f` gave.
pub fn wait_ok<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One HTTP/1.0 GET of `path` on `addr` (`127.0.0.1:PORT`); returns the status
/// code and body. Connect timeout 2 s, read timeout 10 s.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {addr}")))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_http(&buf)
}

fn parse_http(buf: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// GET /_ping on a unix socket; true when the answer is 200 OK.
fn unix_ping(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    matches!(parse_http(&buf), Ok((200, body)) if body.trim() == "OK")
}

/// Whether `SWARM_TEST_VERBOSE` is set (prints harness timings).
fn verbose() -> bool {
    std::env::var_os("SWARM_TEST_VERBOSE").is_some()
}

/// Whether the file, from byte `offset` on, contains `needle`.
fn log_since_contains(path: &Path, offset: u64, needle: &str) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).contains(needle)
}

/// The last `lines` lines of a file (empty if unreadable).
fn tail_file(path: &Path, lines: usize) -> String {
    let content = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = content.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "(non-string panic)".into()
    }
}

/// Runs a command, returning an error with its output when it fails.
fn run_checked(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = timed(60, cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Runs a command, ignoring its outcome and output.
fn run_quiet(cmd: &str, args: &[&str]) {
    let _ = timed(60, cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a command with `input` on stdin; kills it after `timeout`.
fn run_with_input(
    cmd: &str,
    args: &[&str],
    input: &[u8],
    timeout: Duration,
) -> Result<Output, String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let stdin = child.stdin.take();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&input);
        }
    });
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let status = match wait_child(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            return Err(format!(
                "`{cmd} {}` timed out after {timeout:?}",
                args.join(" ")
            ));
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Waits up to `timeout` for `child` to exit (polling every 50 ms).
fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` (e.g. "TERM", "KILL") to the pids with the `kill` command.
fn signal(pids: &[u32], sig: &str) {
    if pids.is_empty() {
        return;
    }
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{sig}"));
    for p in pids {
        cmd.arg(p.to_string());
    }
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// (pid, ppid, cmdline) of every process.
fn processes() -> Vec<(u32, u32, String)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        v.push((pid, ppid, cmdline));
    }
    v
}

/// Whether a command line is one of the processes an engine runs (not, say,
/// a `swarm manage` whose arguments name the engine's socket).
fn is_engine_process(cmdline: &str) -> bool {
    let program = cmdline.split_whitespace().next().unwrap_or("");
    let base = program.rsplit('/').next().unwrap_or(program);
    [
        "dockerd",
        "containerd",
        "docker-proxy",
        "runc",
        "docker-init",
        "perl",
        "unshare",
        "sh",
    ]
    .iter()
    .any(|p| base.starts_with(p))
}

/// SIGKILLs `seeds`, every engine process whose command line contains `marker`, and
/// all their descendants; waits (up to 5 s) until they are gone.
fn kill_tree(seeds: &[u32], marker: Option<&str>) {
    let me = std::process::id();
    let procs = processes();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid, _) in &procs {
        children.entry(*ppid).or_default().push(*pid);
    }
    let mut set: HashSet<u32> = seeds.iter().copied().collect();
    if let Some(m) = marker {
        for (pid, _, cmd) in &procs {
            if cmd.contains(m) && is_engine_process(cmd) {
                set.insert(*pid);
            }
        }
    }
    let mut stack: Vec<u32> = set.iter().copied().collect();
    while let Some(p) = stack.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if set.insert(*c) {
                stack.push(*c);
            }
        }
    }
    set.remove(&me);
    set.remove(&0);
    set.remove(&1);
    let pids: Vec<u32> = set.into_iter().filter(|p| !proc_is_zombie(*p)).collect();
    if pids.is_empty() {
        return;
    }
    signal(&pids, "KILL");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) && pids.iter().any(|p| proc_alive(*p)) {
        thread::sleep(Duration::from_millis(20));
    }
}

fn proc_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !proc_is_zombie(pid)
}

fn proc_is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Start time (clock ticks since boot) of a process, to detect pid reuse.
fn proc_starttime(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command: state is field 3; starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Removes cgroups left by containers of a killed engine (`/sys/fs/cgroup/*/docker/<id>`).
fn remove_cgroups(containers_dir: &Path) {
    let Ok(rd) = fs::read_dir(containers_dir) else {
        return;
    };
    let ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    if ids.is_empty() {
        return;
    }
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        roots.extend(rd.flatten().map(|e| e.path()));
    }
    for root in roots {
        for id in &ids {
            let _ = fs::remove_dir(root.join("docker").join(id));
        }
    }
}

/// Removes a directory tree, lazily unmounting anything mounted below it first.
fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let prefix = format!("{}/", dir.display());
    if let Ok(mounts) = fs::read_to_string("/proc/mounts") {
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            run_quiet("umount", &["-l", m]);
        }
    }
    if fs::remove_dir_all(dir).is_err() {
        run_quiet("rm", &["-rf", &dir.to_string_lossy()]);
    }
}

// ---------------------------------------------------------------------------
// swarm manage
// ---------------------------------------------------------------------------

/// A running `swarm manage` child process; Drop kills it (by pid) and waits.
pub struct Manager {
    /// The manager's API address, `127.0.0.1:PORT`.
    pub addr: String,
    /// The manager as a docker `-H` value, `tcp://127.0.0.1:PORT`.
    pub host: String,
    /// Pid of the `swarm` process (0 after [`Manager::kill`]).
    pub pid: u32,
    extra_args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    /// The manager's whole log (stdout + stderr).
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the manager's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// A directory that lives as long as the manager (for data dirs etc.).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// SIGKILLs the manager and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.pid = 0;
    }

    /// Whether the manager process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the manager (if running) and starts it again with the same
    /// address and arguments; waits for /_ping (panics after 20 s).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ping();
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening manager log");
        let log2 = log.try_clone().expect("cloning manager log fd");
        let mut cmd = Command::new(crate::binary("swarm"));
        cmd.arg("manage").arg("-H").arg(&self.host);
        // Each manager keeps its Raft data in its own directory (unless the
        // test names one), which survives restarts of the manager.
        if !self.extra_args.iter().any(|a| a == "--data-dir") {
            cmd.arg("--data-dir").arg(self._dir.path().join("data"));
        }
        // Requests and hijacked streams are logged, so a failing test's log
        // tail says which call hung.
        if !self.extra_args.iter().any(|a| a == "--log-level") {
            cmd.args(["--log-level", "info,swarm::api=debug"]);
        }
        let child = cmd
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawning swarm manage");
        self.pid = child.id();
        self.child = Some(child);
        watch_log(format!("swarm manage {}", self.addr), self.log.clone());
    }

    fn wait_ping(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "swarm manage on {} exited during startup: {status}\n--- log ---\n{}",
                        self.addr,
                        self.log_tail(LOG_TAIL_LINES)
                    );
                }
            }
            if matches!(http_get(&self.addr, "/_ping"), Ok((200, body)) if body.trim() == "OK") {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "swarm manage on {} did not answer /_ping within 20 s\n--- log ---\n{}",
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- swarm manage {} log tail ---\n{}",
                self.addr,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        self.kill();
    }
}

/// Starts env!("CARGO_BIN_EXE_swarm") with `manage -H tcp://127.0.0.1:<free port> <extra args>`,
/// stdout+stderr to a log file in a temp dir (its tail is printed on Drop if the
/// test is panicking), and waits until GET /_ping answers OK; panics after 20 s.
pub fn start_manager(extra_args: &[&str]) -> Manager {
    watchdog();
    let dir = tempfile::Builder::new()
        .prefix("swarm-mgr-")
        .tempdir()
        .expect("creating manager temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut m = Manager {
        host: format!("tcp://{addr}"),
        addr,
        pid: 0,
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        child: None,
        log: dir.path().join("manager.log"),
        _dir: dir,
    };
    m.spawn();
    m.wait_ping();
    m
}

// ---------------------------------------------------------------------------
// A cluster: engines plus one manager in front of them
// ---------------------------------------------------------------------------

/// A named check run against a shared cluster.
pub type Scenario = fn(&Cluster);

/// Engines and a `swarm manage` in front of them, with docker CLI helpers
/// aimed at the manager. Test files add their own helpers in `impl Cluster`.
pub struct Cluster {
    /// The engines, `engines[i]` has hostname `node-{i+1}`.
    pub engines: Engines,
    /// The manager.
    pub manager: Manager,
}

/// Manager flags for tests: refresh every 1 s to 2 s, unhealthy after 2 failures.
pub const FAST_REFRESH: [&str; 6] = [
    "--engine-refresh-min-interval",
    "1s",
    "--engine-refresh-max-interval",
    "2s",
    "--engine-failure-retry",
    "2",
];

/// Starts engines with `labels`, a manager over the discovery URL that
/// `discovery` builds from them (fast refresh: 1 s to 2 s, unhealthy after
/// 2 failures), and waits until `docker info` shows every node Healthy.
pub fn start_cluster(
    labels: &[&[(&str, &str)]],
    discovery: impl FnOnce(&Engines) -> String,
) -> Cluster {
    let engines = start_engines(labels);
    let discovery = discovery(&engines);
    let mut args = FAST_REFRESH.to_vec();
    // Node lists kept long: a `docker ps` that misses a change shows it
    // (only a change on the node, not the time, may renew a list).
    args.extend(["--list-cache", "1h"]);
    args.push(&discovery);
    let manager = start_manager(&args);
    let cluster = Cluster { engines, manager };
    let want = vec!["Healthy".to_string(); labels.len()];
    wait_for("every node healthy", Duration::from_secs(30), || {
        (info_value(&cluster.ok(&["info"]), "└ Status") == want).then_some(())
    });
    cluster
}

impl Cluster {
    /// The manager as a docker `-H` value.
    pub fn host(&self) -> &str {
        &self.manager.host
    }

    /// `docker -H manager ARGS` must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        docker_ok(self.host(), args)
    }

    /// `docker -H manager ARGS` must fail; returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        docker_err(self.host(), args)
    }

    /// The engine whose hostname is `node`; panics if there is none.
    pub fn engine_named(&self, node: &str) -> &Engine {
        self.engines
            .iter()
            .find(|e| e.name == node)
            .unwrap_or_else(|| panic!("no engine named {node}"))
    }

    /// The node name a container runs on, from swarm's inspect.
    pub fn node_of(&self, container: &str) -> String {
        self.ok(&["inspect", "-f", "{{.Node.Name}}", container])
    }

    /// Runs each named scenario, catching its panic; prints the manager's
    /// log when any failed and returns the names of those that failed.
    /// `after` runs after each scenario (e.g. cleanup) and counts as one.
    pub fn run_scenarios(
        &self,
        scenarios: &[(&'static str, Scenario)],
        after: impl Fn(&Cluster),
    ) -> Vec<&'static str> {
        let mut failed = Vec::new();
        for (name, scenario) in scenarios {
            eprintln!("--- scenario: {name}");
            trace(format!("scenario {name}"));
            let t = Instant::now();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(self))).is_err() {
                failed.push(*name);
            }
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| after(self))).is_err() {
                failed.push("(after scenario)");
            }
            eprintln!("    {name}: {:?}", t.elapsed());
        }
        if !failed.is_empty() {
            eprintln!("manager log:\n{}", self.manager.log_tail(80));
            if let Ok(t) = trace_buffer().lock() {
                eprintln!("last steps:");
                for l in t.iter() {
                    eprintln!("{l}");
                }
            }
        }
        failed
    }
}

/// The values of `KEY: value` lines of `docker info` output, in order.
pub fn info_value(info: &str, key: &str) -> Vec<String> {
    info.lines()
        .filter_map(|l| l.trim_start().strip_prefix(key))
        .filter_map(|rest| rest.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .collect()
}

/// `docker -H host ARGS` (60 s at most) with `input` written to its stdin
/// (then closed); returns its output.
pub fn docker_with_stdin(host: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = docker_cmd(60, host, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("docker output")
}

/// `docker -H host ARGS` (ARGS one shell-quoted string) run in a terminal
/// that script(1) provides, for `-it`; returns what the terminal showed.
pub fn docker_in_tty(host: &str, args: &str) -> String {
    trace(format!("script: docker -H {host} {args}"));
    // script's stdin stays open (a pipe nobody writes to) until it is done,
    // like a user's terminal: at EOF on its stdin script types an
    // end-of-file into the terminal, which a real session never sees.
    //
    // docker must be in the terminal's foreground process group, or setting
    // raw mode stops it with SIGTTOU and it hangs with no output. A plain
    // `timeout` moves itself and docker into a new group; `--foreground`
    // does not. `exec` and a fixed SHELL keep the result the same whether
    // or not the environment sets SHELL (script runs `$SHELL -c`, and dash
    // does not exec a lone command).
    let mut child = timed(90, "script")
        .env("SHELL", "/bin/sh")
        .args([
            "-qfec",
            &format!("exec timeout --foreground -k 5 60 docker -H {host} {args}"),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let keyboard = child.stdin.take();
    let out = child.wait_with_output().expect("script");
    drop(keyboard);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    trace(format!("  -> {} {text:?}", out.status));
    text
}

// ---------------------------------------------------------------------------
// Trace and watchdog: a hung test must end, and say where it hung
// ---------------------------------------------------------------------------

/// How many trace lines are kept (the newest).
const TRACE_LINES: usize = 60;

fn trace_buffer() -> &'static Mutex<std::collections::VecDeque<String>> {
    static TRACE: OnceLock<Mutex<std::collections::VecDeque<String>>> = OnceLock::new();
    TRACE.get_or_init(|| Mutex::new(std::collections::VecDeque::new()))
}

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Records a step (a command, a scenario) with the time since the process
/// started; the watchdog prints the newest lines. Also printed at once with
/// SWARM_TEST_VERBOSE=1.
pub fn trace(line: String) {
    let line = format!(
        "[{:8.2}s {:?}] {line}",
        process_start().elapsed().as_secs_f64(),
        thread::current().name().unwrap_or("?")
    );
    if verbose() {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    if let Ok(mut t) = trace_buffer().lock() {
        if t.len() == TRACE_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}

/// Starts, once per test process, a watchdog that ends the process when it
/// has run longer than SWARM_TEST_WATCHDOG_SECS (default 600): it prints the
/// trace and the processes this test started straight to stderr (not through
/// the test's captured output), SIGKILLs them, and exits with 101. Engines it
/// leaves behind are reclaimed by the next test process (see the slots).
pub fn watchdog() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        process_start();
        let limit = std::env::var("SWARM_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(600));
        let _ = thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                thread::sleep(limit.saturating_sub(process_start().elapsed()));
                let me = std::process::id();
                let procs = processes();
                let mut report = format!(
                    "\n=== WATCHDOG: test process {me} ran longer than {limit:?}; ending it ===\n--- last steps ---\n"
                );
                if let Ok(t) = trace_buffer().lock() {
                    for l in t.iter() {
                        report.push_str(l);
                        report.push('\n');
                    }
                }
                report.push_str("--- processes this test started ---\n");
                let descendants = descendants_of(me, &procs);
                for (pid, ppid, cmd) in procs.iter().filter(|p| descendants.contains(&p.0)) {
                    report.push_str(&format!("{pid} (parent {ppid}) {cmd}\n"));
                }
                if let Ok(logs) = watched_logs().lock() {
                    for (label, path) in logs.iter() {
                        report.push_str(&format!(
                            "--- {label} log tail ({}) ---\n{}\n",
                            path.display(),
                            tail_file(path, 40)
                        ));
                    }
                }
                let _ = std::io::stderr().write_all(report.as_bytes());
                let seeds: Vec<u32> = procs
                    .iter()
                    .filter(|p| p.1 == me)
                    .map(|p| p.0)
                    .collect();
                kill_tree(&seeds, None);
                std::process::exit(101);
            });
    });
}

fn watched_logs() -> &'static Mutex<Vec<(String, PathBuf)>> {
    static LOGS: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Names a log file whose tail the watchdog prints (managers, engines).
pub fn watch_log(label: String, path: PathBuf) {
    if let Ok(mut logs) = watched_logs().lock() {
        if !logs.iter().any(|(_, p)| *p == path) {
            logs.push((label, path));
        }
    }
}

/// Every pid below `root` in the process tree.
fn descendants_of(root: u32, procs: &[(u32, u32, String)]) -> HashSet<u32> {
    let mut out = HashSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for (pid, ppid, _) in procs {
            if *ppid == p && out.insert(*pid) {
                stack.push(*pid);
            }
        }
    }
    out
}
