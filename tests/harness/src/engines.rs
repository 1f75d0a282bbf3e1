//! Real Docker engines for tests (docs/architecture.md, "Testing"): each engine is a real
//! `dockerd` started in its own UTS + mount namespace (so hostname and
//! engine ID differ per engine), with its own socket, loopback TCP listener,
//! data-root (vfs), exec-root, pidfile, managed containerd (own namespaces)
//! and Linux bridge on a private /24 of 172.29.0.0/16 (host side 172.29.N.1,
//! also the engine's default bind IP for published ports, see
//! [`Engine::ip`]). An engine may serve its TCP listener with TLS
//! ([`EngineTls`], dockerd's `--tlsverify`; see [`start_engines_with`]).
//! Slots (subnet, bridge name, containerd namespace) are
//! allocated across test processes by the slots module; every engine holds
//! the [`crate::image`] `busybox:local`.
//!
//! An engine with a cluster store ([`EngineOptions::cluster_store`], e.g.
//! an [`crate::etcd::Etcd`]) also runs in its own network namespace, as on
//! a host of its own: two engines in one namespace would fight over the
//! VXLAN devices and sandboxes of the same overlay network. See
//! [`Engine::netns`] for its addresses.

use std::fs::{self, OpenOptions};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::docker::docker;
use crate::http::unix_ping;
use crate::image::busybox_image_tar;
use crate::ports::free_port;
use crate::slots::{
    acquire_slot, bridge_name, bridge_rule, netns_name, reclaim_stale_slots, release_slot,
    remove_slot_network, veth_name, veth_rule,
};
use crate::sys::{
    kill_tree, log_since_contains, remove_cgroups, remove_tree, run_checked, run_quiet,
    run_with_input, signal, tail_file, LOG_TAIL_LINES,
};
use crate::watchdog::{verbose, watch_log, watchdog};

/// How long an engine may take to answer `/_ping` after it was spawned.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a stopping dockerd gets after SIGTERM before everything is SIGKILLed.
const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The TLS of an engine's TCP listener: dockerd runs with `--tlsverify
/// --tlscacert --tlscert --tlskey`, so it serves TLS only and only to
/// clients with a certificate the CA signed. The unix socket stays plain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineTls {
    /// `--tlscacert`: the CA client certificates must chain to.
    pub ca: PathBuf,
    /// `--tlscert`: the engine's certificate.
    pub cert: PathBuf,
    /// `--tlskey`: its key.
    pub key: PathBuf,
}

impl EngineTls {
    /// The files of a certificate directory in Docker's layout:
    /// `DIR/ca.pem`, `DIR/cert.pem`, `DIR/key.pem`.
    pub fn in_dir(dir: &Path) -> EngineTls {
        EngineTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// How to start one engine with [`start_engines_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// `--label k=v` for each pair.
    pub labels: Vec<(String, String)>,
    /// TLS on the TCP listener; plain TCP when `None`.
    pub tls: Option<EngineTls>,
    /// The cluster store (libkv URL, e.g. `etcd://172.29.M.1:PORT`, see
    /// [`crate::etcd::Etcd::cluster_store`]) for multi-host overlay networks:
    /// dockerd runs with `--cluster-store=URL
    /// --cluster-advertise=<its IP>:<its TCP port>`, in a network namespace
    /// of its own ([`Engine::netns`]).
    pub cluster_store: Option<String>,
}

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
    /// The engine's TCP listener, `127.0.0.1:PORT` (plain, or TLS when
    /// [`Engine::tls`] is set).
    pub tcp: String,
    /// Pid of the dockerd process (changes on [`Engine::restart`]).
    pub pid: u32,
    /// Engine ID reported by `docker info` (stable across restarts).
    engine_id: String,
    /// Labels given with `--label k=v`.
    labels: Vec<(String, String)>,
    /// TLS of the TCP listener, if any.
    tls: Option<EngineTls>,
    /// `--cluster-store`, if any (the engine then has its own network namespace).
    cluster_store: Option<String>,
    /// Slot number N: subnet 172.29.N.0/24, bridge `swtbrN`, containerd namespace `swtN`.
    slot: u8,
    /// The engine's own directory (etc/, data/, exec/, socket, pidfile, log).
    dir: PathBuf,
    /// The spawned dockerd, when running.
    child: Option<Child>,
    /// Whether the bridge (and its iptables rule), or the network namespace
    /// (and its veth and rule), was created and must be removed.
    bridge_created: bool,
    /// Whether the slot lock file was written and must be removed.
    slot_held: bool,
}

impl Engine {
    /// The engine's `certs.d` (its own `/etc/docker/certs.d`: the engine
    /// runs with its directory's `etc` mounted on `/etc/docker`), where it
    /// finds the CAs of registries it trusts.
    pub fn certs_d(&self) -> PathBuf {
        self.etc_docker().join("certs.d")
    }

    /// The directory the engine sees as `/etc/docker` (and no other engine
    /// does): a file put there is on this node only.
    pub fn etc_docker(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// The engine's unix socket as a docker `-H` value: `unix:///path/to/sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's TCP listener as a docker `-H` value: `tcp://127.0.0.1:PORT`.
    pub fn tcp_host(&self) -> String {
        format!("tcp://{}", self.tcp)
    }

    /// The port of the engine's TCP listener.
    pub fn tcp_port(&self) -> u16 {
        self.tcp
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    /// The engine's network namespace (`/run/netns/NAME`, for `ip -n NAME`),
    /// when it has one of its own (engines with a cluster store). It is
    /// linked to the host by a veth pair, host side `swtvN` at
    /// `172.29.N.129/30`, engine side `eth0` at `172.29.N.130/30` ([`Engine::ip`],
    /// default route through the host, which forwards between the engines'
    /// namespaces); the containers' bridge is inside, on `172.29.N.1/25`.
    /// Its TCP listener stays on the host's `127.0.0.1:PORT` (the socket is
    /// bound before dockerd enters the namespace).
    pub fn netns(&self) -> Option<String> {
        self.own_netns().then(|| netns_name(self.slot))
    }

    /// The `--cluster-store` the engine was started with, if any.
    pub fn cluster_store(&self) -> Option<&str> {
        self.cluster_store.as_deref()
    }

    /// Whether the engine runs in a network namespace of its own.
    fn own_netns(&self) -> bool {
        self.cluster_store.is_some()
    }

    /// The engine ID from `docker info` (`{{.ID}}`).
    pub fn id(&self) -> String {
        self.engine_id.clone()
    }

    /// The labels the engine was started with.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The TLS of the engine's TCP listener, if it was started with one.
    pub fn tls(&self) -> Option<&EngineTls> {
        self.tls.as_ref()
    }

    /// Name of the Linux bridge the engine's containers are attached to
    /// (inside [`Engine::netns`] when the engine has its own).
    pub fn bridge(&self) -> String {
        bridge_name(self.slot)
    }

    /// The engine's private subnet, e.g. `172.29.7.0/24` (`172.29.7.0/25`
    /// in a network namespace of its own, see [`Engine::netns`]).
    pub fn subnet(&self) -> String {
        if self.own_netns() {
            format!("172.29.{}.0/25", self.slot)
        } else {
            format!("172.29.{}.0/24", self.slot)
        }
    }

    /// The engine's address, e.g. `172.29.7.1`, and its default bind IP
    /// for published ports (dockerd `--ip`), so `-p 8080:80` binds
    /// `172.29.7.1:8080` and the same host port can be published on every
    /// engine at once. It is the host side of the engine's bridge, or, for
    /// an engine in its own network namespace, its address there,
    /// `172.29.N.130`, reachable from the host and the other engines (its
    /// `--cluster-advertise`).
    pub fn ip(&self) -> String {
        if self.own_netns() {
            format!("172.29.{}.130", self.slot)
        } else {
            format!("172.29.{}.1", self.slot)
        }
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
    /// An engine with its own network namespace is started as `perl
    /// nsenter --net unshare sh dockerd`, each exec'ing the next, so that
    /// perl binds the TCP listener in the host's namespace; in its mount
    /// namespace, a directory of its own is mounted on `/run/docker/netns`,
    /// where libnetwork keeps its sandboxes under names that are the same
    /// on every engine for an overlay network.
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
        let own_netns = self.own_netns();
        if own_netns && !perl_available() {
            return Err("an engine in its own network namespace needs perl".into());
        }
        let activate = [
            "perl".to_string(),
            "-e".into(),
            SOCKET_ACTIVATE_PL.into(),
            self.tcp.clone(),
        ];
        // Around dockerd: `[perl -e ACTIVATE ip:port nsenter --net=NS]`
        // before the UTS + mount namespaces are made, or `[perl -e ...]`
        // inside them.
        let mut outside: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        let tcp_host = if own_netns {
            outside.extend(activate);
            outside.push("nsenter".into());
            outside.push(format!("--net=/run/netns/{}", netns_name(self.slot)));
            "fd://".to_string()
        } else if perl_available() {
            args.extend(activate);
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
        if let Some(tls) = &self.tls {
            args.extend([
                "--tlsverify".to_string(),
                format!("--tlscacert={}", tls.ca.display()),
                format!("--tlscert={}", tls.cert.display()),
                format!("--tlskey={}", tls.key.display()),
            ]);
        }
        if let Some(store) = &self.cluster_store {
            args.extend([
                format!("--cluster-store={store}"),
                format!("--cluster-advertise={}:{}", self.ip(), self.tcp_port()),
            ]);
        }
        // sh's arguments: the directory to mount on /etc/docker, the
        // hostname, [the one to mount on /run/docker/netns,] the command.
        let (script, netns_dir) = if own_netns {
            (
                "mount --bind \"$1\" /etc/docker && mount --bind \"$3\" /run/docker/netns \
                 && hostname \"$2\" && shift 3 && exec \"$@\"",
                Some(d.join("netns").display().to_string()),
            )
        } else {
            (
                "mount --bind \"$1\" /etc/docker && hostname \"$2\" && shift 2 && exec \"$@\"",
                None,
            )
        };
        let mut command = outside;
        command.extend(
            [
                "unshare",
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ]
            .map(String::from),
        );
        command.push(d.join("etc").display().to_string());
        command.push(self.name.clone());
        command.extend(netns_dir);
        command.extend(args);
        let child = Command::new(&command[0])
            .args(&command[1..])
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
        // With TLS the harness holds no client certificate: the ID comes
        // through the socket, and the TCP listener must accept connections.
        let host = match self.tls {
            Some(_) => {
                TcpStream::connect(&self.tcp)
                    .map_err(|e| format!("connecting to {} (TLS): {e}", self.tcp))?;
                self.host()
            }
            None => self.tcp_host(),
        };
        let (ok, out, err) = docker(&host, &["info", "--format", "{{.ID}}"]);
        if !ok || out.trim().is_empty() {
            return Err(format!("`docker -H {host} info` failed: {out}{err}"));
        }
        self.engine_id = out.trim().to_string();
        Ok(())
    }

    /// Creates the bridge (on 172.29.N.1/24) and allows traffic between the
    /// engine's containers (dockerd runs with --iptables=false, and the host's
    /// FORWARD policy is DROP with br_netfilter loaded). For an engine in
    /// its own network namespace, creates that instead ([`Engine::netns`]).
    fn create_bridge(&mut self) -> Result<(), String> {
        if self.own_netns() {
            return self.create_netns();
        }
        let br = self.bridge();
        run_quiet("ip", &["link", "del", &br]);
        run_checked("ip", &["link", "add", &br, "type", "bridge"])?;
        self.bridge_created = true;
        run_checked(
            "ip",
            &["addr", "add", &format!("{}/24", self.ip()), "dev", &br],
        )?;
        run_checked("ip", &["link", "set", &br, "up"])?;
        insert_rule(&bridge_rule(&br));
        Ok(())
    }

    /// Creates the engine's network namespace `swtnsN`: a veth pair from
    /// the host (`swtvN`, 172.29.N.129/30) to the namespace (`eth0`,
    /// 172.29.N.130/30, default route through the host), the containers'
    /// bridge inside (172.29.N.1/25), and a FORWARD rule on the host from
    /// this engine to the others (VXLAN on UDP 4789, gossip on 7946, the
    /// engines' APIs); the host forwards IPv4 (dockerd turns that on, too).
    fn create_netns(&mut self) -> Result<(), String> {
        remove_slot_network(self.slot);
        let (ns, veth, br, n) = (
            netns_name(self.slot),
            veth_name(self.slot),
            self.bridge(),
            self.slot,
        );
        fs::create_dir_all(self.dir.join("netns"))
            .map_err(|e| format!("creating netns dir: {e}"))?;
        // The mount point of the engine's own sandbox directory.
        fs::create_dir_all("/run/docker/netns")
            .map_err(|e| format!("creating /run/docker/netns: {e}"))?;
        let forward = "/proc/sys/net/ipv4/ip_forward";
        if fs::read_to_string(forward).is_ok_and(|v| v.trim() == "0") {
            fs::write(forward, "1").map_err(|e| format!("turning IPv4 forwarding on: {e}"))?;
        }
        run_checked("ip", &["netns", "add", &ns])?;
        self.bridge_created = true;
        let host_ip = format!("172.29.{n}.129");
        let steps: [&[&str]; 9] = [
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
            &["addr", "add", &format!("{host_ip}/30"), "dev", &veth],
            &["link", "set", &veth, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/30", self.ip()),
                "dev",
                "eth0",
            ],
            &["-n", &ns, "link", "set", "eth0", "up"],
            &["-n", &ns, "route", "add", "default", "via", &host_ip],
            &["-n", &ns, "link", "add", &br, "type", "bridge"],
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("172.29.{n}.1/25"),
                "dev",
                &br,
            ],
        ];
        for args in steps {
            run_checked("ip", args)?;
        }
        run_checked("ip", &["-n", &ns, "link", "set", &br, "up"])?;
        insert_rule(&veth_rule(&veth));
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
            remove_slot_network(self.slot);
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
    let options = labels
        .iter()
        .map(|l| EngineOptions {
            labels: l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..EngineOptions::default()
        })
        .collect();
    start_engines_with(options)
}

/// Like [`start_engines`], one engine for each options: its labels and
/// whether its TCP listener serves TLS ([`EngineTls`]). With TLS, the
/// engine is ready when `docker info` answers on its socket and its TCP
/// port accepts connections (the harness holds no client certificate).
pub fn start_engines_with(options: Vec<EngineOptions>) -> Engines {
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
    let handles: Vec<_> = options
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let name = format!("node-{}", i + 1);
            thread::spawn(move || start_one(name, o))
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

fn start_one(name: String, options: EngineOptions) -> Result<Engine, String> {
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
        labels: options.labels,
        tls: options.tls,
        cluster_store: options.cluster_store,
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

/// `iptables -w -I RULE`, quietly (the host may have no iptables).
fn insert_rule(rule: &[String]) {
    let mut args = vec!["-w", "-I"];
    args.extend(rule.iter().map(String::as_str));
    run_quiet("iptables", &args);
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

/// The message of a caught panic.
fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "(non-string panic)".into()
    }
}
