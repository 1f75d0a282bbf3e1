//! The network faults of the chaos kit: [`ChaosNet`], n "hosts" (network
//! namespaces) on a bridge of their own, and faults between them.
//!
//! # Layout
//!
//! A `ChaosNet` takes a slot N (1..=254) shared by every test process of
//! the machine, under the same lock file as the engines' slots (a file
//! `chaos-N` in `/tmp/swarm-test-net`, owner pid and start time): its
//! subnet is `198.18.N.0/24`, inside `198.18.0.0/15`, the block RFC 2544
//! reserves for benchmarking network devices. Docker's default address
//! pools (172.17-31/16, 192.168/16), the engines' slots (172.29.N/24) and
//! ordinary networks never use it; a slot whose /24 overlaps an address or
//! route of the machine is skipped all the same. In the root namespace, the
//! bridge `swcbrN` holds [`ChaosNet::bridge_ip`] (`.254`); host i is the
//! namespace `swcN-i` ([`ChaosNet::netns`]) with `lo` up and `eth0` at
//! [`ChaosNet::ip`] (`.(i+1)`, default route through the bridge IP), the
//! peer of the veth `swcvN-i` on the bridge. In the root namespace a
//! FORWARD rule lets bridged traffic through (the machine's FORWARD policy
//! may be DROP, with `br_netfilter` loaded), and the chain
//! `SWARM-CHAOS-N`, jumped from INPUT for the bridge, accepts the hosts'
//! traffic (and drops a host's whose clients are cut). Processes of the
//! root namespace (clients, hollow engines bound to the bridge IP) reach
//! every host; every host reaches the root namespace.
//!
//! A slot whose owner died (a killed test) is reclaimed by the next
//! `ChaosNet::new` of any test process: processes in its namespaces
//! killed, links, namespaces and root rules removed. [`Drop`] does the same
//! for its own slot: every process still running in a host's namespace is
//! killed (a process left in a namespace with no link would be useless)
//! and nothing is left behind.
//!
//! # Faults
//!
//! Faults are iptables rules inside the hosts' namespaces, in chains of
//! their own jumped from INPUT: `CHAOS` (faults between hosts), `CLIENTS`
//! (traffic with the root namespace) and `DELAY`. A packet is always
//! dropped where it arrives, never where it leaves: dropping in OUTPUT
//! would fail the sender's `send` with EPERM, which no real network does.
//! Faults between hosts match the hosts' addresses only, so traffic with
//! the bridge IP is untouched: clients and engines keep reaching every
//! manager unless [`ChaosNet::cut_clients`] says otherwise. Faults add up;
//! [`ChaosNet::heal`] removes every fault between hosts at once (a flush).
//! IPv4 only.
//!
//! "One way" ([`ChaosNet::drop_one_way`]) is one way for packets: a
//! datagram from `from` to `to` is lost, one from `to` to `from` arrives.
//! TCP needs packets both ways, so no TCP connection between the two hosts
//! can be opened in either direction (from `from` the SYN is lost; from
//! `to` the SYN arrives but the SYN-ACK is lost), and an open one stalls
//! (data from `from` is lost; data from `to` arrives and is delivered, but
//! its acknowledgements are lost, so `to` sends it again and again until
//! it gives up). What differs from a partition is what each side sees:
//! `from` receives everything `to` sends (heartbeats, votes), `to` hears
//! nothing from `from`.
//!
//! A flapping link is [`ChaosNet::flap`]: a thread cutting and restoring
//! the link between two hosts every period until a deadline, `heal`, or
//! the drop of the `ChaosNet`.
//!
//! # Delay
//!
//! This kernel has no `netem` qdisc (nor `fq`, `etf` or `plug`: of the
//! qdiscs only `htb`, `tbf`, `ingress` and the defaults, and `tbf`/`htb`
//! shape a rate, which delays a packet only behind others, never by a fixed
//! time). [`ChaosNet::delay`] delays by another real mechanism: an
//! `NFQUEUE` rule in the host's `DELAY` chain hands every packet arriving
//! from another host to the kernel's netfilter queue, and a thread of this
//! process bound to that queue over netlink (in the host's namespace) lets
//! each packet go on once it has been held for the delay, in arrival
//! order. The delay is one way, on arrival: `delay(i, 200)` adds 200 ms to
//! every packet another host sends to host i, so a round trip between host
//! i and another host takes 200 ms more (400 ms more between two hosts
//! both delayed by 200 ms). Packets from the bridge IP are not delayed. If
//! the queue overflows (16384 packets held) the extra packets pass
//! undelayed; if the thread is gone the rule lets packets through
//! (`--queue-bypass`). The delay thread is this process's: a delay ends
//! with it.

mod nfqueue;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::docker::timed;
use crate::slots::{bridge_rule, delete_rule, slot_is_stale, slot_lock, slot_record, NET_LOCK_DIR};
use crate::sys::{kill_tree, run_checked, run_quiet, run_with_input};
use crate::watchdog::trace;

/// The most hosts a [`ChaosNet`] holds: `.1` to `.253` of its /24 (`.254`
/// is the bridge's).
pub const MAX_HOSTS: usize = 253;

/// The chain of faults between hosts, in each host's namespace.
const CHAOS: &str = "CHAOS";
/// The chain cutting a host from the root namespace, in each host's namespace.
const CLIENTS: &str = "CLIENTS";
/// The chain queuing packets to be delayed, in each host's namespace.
const DELAY: &str = "DELAY";
/// The comment marking the rules of a flapping link.
const FLAP: &str = "swarm-chaos-flap";
/// How long a flap sleeps between looks at its flags.
const TICK: Duration = Duration::from_millis(20);

/// n hosts, each a network namespace on a bridge of their own, and faults
/// between them (see the [module docs](self)).
pub struct ChaosNet {
    slot: u8,
    hosts: usize,
    /// Set on drop: flap and delay threads end.
    stop: Arc<AtomicBool>,
    /// Bumped by [`ChaosNet::heal`]: running flaps end.
    heals: Arc<AtomicU64>,
    flaps: Mutex<Vec<JoinHandle<()>>>,
    /// Per host, once a delay thread runs there.
    delays: Mutex<Vec<Option<DelayThread>>>,
    /// Per host, whether its clients are cut.
    clients_cut: Mutex<Vec<bool>>,
}

impl ChaosNet {
    /// Makes `hosts` hosts (1..=[`MAX_HOSTS`]) on a free slot, reclaiming
    /// first what killed test processes left. Needs root, iproute2 and
    /// iptables.
    pub fn new(hosts: usize) -> Result<ChaosNet> {
        if hosts == 0 || hosts > MAX_HOSTS {
            bail!("a chaos network has 1 to {MAX_HOSTS} hosts, not {hosts}");
        }
        let started = Instant::now();
        let slot = acquire_slot()?;
        let net = ChaosNet {
            slot,
            hosts,
            stop: Arc::new(AtomicBool::new(false)),
            heals: Arc::new(AtomicU64::new(0)),
            flaps: Mutex::new(Vec::new()),
            delays: Mutex::new((0..hosts).map(|_| None).collect()),
            clients_cut: Mutex::new(vec![false; hosts]),
        };
        // On an error, dropping `net` removes what was made.
        net.build()
            .with_context(|| format!("making the chaos network {}", net.subnet()))?;
        trace(format!(
            "chaos net {} ({hosts} hosts) up in {:?}",
            net.subnet(),
            started.elapsed()
        ));
        Ok(net)
    }

    /// How many hosts there are.
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// The subnet, `198.18.N.0/24`.
    pub fn subnet(&self) -> String {
        format!("198.18.{}.0/24", self.slot)
    }

    /// Host i's address, `198.18.N.(i+1)`. Panics if there is no host i.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.expect_host(i);
        host_ip(self.slot, i)
    }

    /// The bridge's address in the root namespace, `198.18.N.254`.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.slot, 254)
    }

    /// The bridge's name in the root namespace, `swcbrN`.
    pub fn bridge(&self) -> String {
        bridge_name(self.slot)
    }

    /// Host i's network namespace, `swcN-i` (`/run/netns/swcN-i`, for
    /// `ip -n` and `ip netns exec`). Panics if there is no host i.
    pub fn netns(&self, i: usize) -> String {
        self.expect_host(i);
        netns_name(self.slot, i)
    }

    /// The host side of host i's veth, `swcvN-i`. Panics if there is no host i.
    pub fn veth(&self, i: usize) -> String {
        self.expect_host(i);
        veth_name(self.slot, i)
    }

    /// The root namespace's chain of this network, `SWARM-CHAOS-N`.
    pub fn root_chain(&self) -> String {
        root_chain(self.slot)
    }

    /// `ip netns exec NETNS PROGRAM`: a command running `program` (arguments
    /// to be added) in host i's namespace. Panics if there is no host i.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec"])
            .arg(self.netns(i))
            .arg(program);
        command
    }

    /// Runs `f` on a new thread inside host i's namespace (sockets it opens
    /// are host i's); the thread's result is an error if it could not enter
    /// the namespace. Panics if there is no host i.
    pub fn spawn_in<T, F>(&self, i: usize, f: F) -> JoinHandle<Result<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.netns(i);
        thread::spawn(move || {
            enter_netns(&ns)?;
            Ok(f())
        })
    }

    /// Splits the hosts into `groups` that cannot reach each other (both
    /// ways); a host in no group reaches no other host. Adds to the faults
    /// already there.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<()> {
        let mut group_of = vec![None; self.hosts];
        for (g, members) in groups.iter().enumerate() {
            for &i in *members {
                self.check_host(i)?;
                if group_of[i].replace(g).is_some() {
                    bail!("host {i} is in two groups of a partition");
                }
            }
        }
        let mut drops = Vec::new();
        for to in 0..self.hosts {
            for from in 0..self.hosts {
                if from != to && (group_of[to].is_none() || group_of[to] != group_of[from]) {
                    drops.push((from, to));
                }
            }
        }
        self.drop_links(&drops, &[])
    }

    /// Cuts host i from every other host, both ways (the root namespace
    /// still reaches it).
    pub fn isolate(&self, i: usize) -> Result<()> {
        self.check_host(i)?;
        let drops: Vec<(usize, usize)> = (0..self.hosts)
            .filter(|&j| j != i)
            .flat_map(|j| [(i, j), (j, i)])
            .collect();
        self.drop_links(&drops, &[])
    }

    /// Drops every packet from host `from` to host `to`; packets from `to`
    /// to `from` pass (what that means for TCP: see the module docs).
    pub fn drop_one_way(&self, from: usize, to: usize) -> Result<()> {
        self.check_pair(from, to)?;
        self.drop_links(&[(from, to)], &[])
    }

    /// Drops packets between hosts `a` and `b`, both ways, each with
    /// `probability` (0.0..=1.0; iptables' `statistic` match).
    pub fn loss(&self, a: usize, b: usize, probability: f64) -> Result<()> {
        self.check_pair(a, b)?;
        if !(0.0..=1.0).contains(&probability) {
            bail!("a loss probability is within 0.0..=1.0, not {probability}");
        }
        let p = probability.to_string();
        let extra = ["-m", "statistic", "--mode", "random", "--probability", &p];
        self.drop_links(&[(a, b), (b, a)], &extra)
    }

    /// Removes every fault between hosts: partitions, one-way drops,
    /// losses, delays; running flaps end (the link restored). Cut clients
    /// stay cut.
    pub fn heal(&self) -> Result<()> {
        self.heals.fetch_add(1, Ordering::SeqCst);
        self.join_flaps();
        let delays = lock(&self.delays);
        for i in 0..self.hosts {
            self.ns_iptables(i, &["-F", CHAOS])?;
            self.ns_iptables(i, &["-F", DELAY])?;
            if let Some(delay) = &delays[i] {
                delay.ms.store(0, Ordering::Relaxed);
            }
        }
        trace(format!("chaos net {}: healed", self.subnet()));
        Ok(())
    }

    /// Cuts host i from the root namespace, both ways (a manager its
    /// clients and engines cannot reach, while it still reaches the other
    /// hosts); [`ChaosNet::heal`] leaves this alone.
    pub fn cut_clients(&self, i: usize) -> Result<()> {
        self.check_host(i)?;
        let mut cut = lock(&self.clients_cut);
        if cut[i] {
            return Ok(());
        }
        let (bridge, subnet) = (self.bridge_ip().to_string(), self.subnet());
        self.ns_restore(
            i,
            &[
                vec!["-A", CLIENTS, "-s", &bridge, "-j", "DROP"],
                vec!["-A", CLIENTS, "!", "-s", &subnet, "-j", "DROP"],
            ],
        )?;
        let (chain, ip) = (self.root_chain(), self.ip(i).to_string());
        iptables(&["-I", &chain, "-s", &ip, "-j", "DROP"])?;
        cut[i] = true;
        trace(format!(
            "chaos net {}: clients of host {i} cut",
            self.subnet()
        ));
        Ok(())
    }

    /// Undoes [`ChaosNet::cut_clients`].
    pub fn restore_clients(&self, i: usize) -> Result<()> {
        self.check_host(i)?;
        let mut cut = lock(&self.clients_cut);
        if !cut[i] {
            return Ok(());
        }
        self.ns_iptables(i, &["-F", CLIENTS])?;
        let (chain, ip) = (self.root_chain(), self.ip(i).to_string());
        iptables(&["-D", &chain, "-s", &ip, "-j", "DROP"])?;
        cut[i] = false;
        trace(format!(
            "chaos net {}: clients of host {i} restored",
            self.subnet()
        ));
        Ok(())
    }

    /// Starts a thread that cuts the link between hosts `a` and `b` (both
    /// ways) for `period`, restores it for `period`, and so on until
    /// `until`, [`ChaosNet::heal`] or the drop of this `ChaosNet`, and
    /// leaves it restored. Its rules are its own: other faults on the same
    /// link stay as they are.
    pub fn flap(&self, a: usize, b: usize, period: Duration, until: Instant) -> Result<()> {
        self.check_pair(a, b)?;
        let (stop, heals) = (self.stop.clone(), self.heals.clone());
        let heals_at_start = heals.load(Ordering::SeqCst);
        let over = move || {
            stop.load(Ordering::Relaxed)
                || heals.load(Ordering::SeqCst) != heals_at_start
                || Instant::now() >= until
        };
        let sides: Vec<(String, String)> = [(a, b), (b, a)]
            .iter()
            .map(|&(to, from)| (self.netns(to), self.ip(from).to_string()))
            .collect();
        let set = move |cut: bool| {
            for (ns, from) in &sides {
                let op = if cut { "-A" } else { "-D" };
                let rule = [
                    "netns",
                    "exec",
                    ns,
                    "iptables",
                    "-w",
                    op,
                    CHAOS,
                    "-s",
                    from,
                    "-m",
                    "comment",
                    "--comment",
                    FLAP,
                    "-j",
                    "DROP",
                ];
                run_quiet("ip", &rule);
            }
        };
        let name = format!("chaos-flap-{a}-{b}");
        let handle = thread::Builder::new().name(name).spawn(move || {
            let mut cut = false;
            while !over() {
                cut = !cut;
                set(cut);
                let turned = Instant::now();
                while !over() && turned.elapsed() < period {
                    thread::sleep(TICK.min(period));
                }
            }
            if cut {
                set(false);
            }
        })?;
        lock(&self.flaps).push(handle);
        trace(format!(
            "chaos net {}: link {a}-{b} flaps every {period:?}",
            self.subnet()
        ));
        Ok(())
    }

    /// Waits until every flap has ended (at its `until`), its link restored.
    pub fn join_flaps(&self) {
        let flaps: Vec<JoinHandle<()>> = lock(&self.flaps).drain(..).collect();
        for flap in flaps {
            let _ = flap.join();
        }
    }

    /// Holds every packet another host sends to host i for `ms`
    /// milliseconds before host i receives it (0: no delay); see the module
    /// docs for the mechanism. Replaces host i's previous delay.
    pub fn delay(&self, i: usize, ms: u64) -> Result<()> {
        self.check_host(i)?;
        let mut delays = lock(&self.delays);
        self.ns_iptables(i, &["-F", DELAY])?;
        if ms == 0 {
            if let Some(delay) = &delays[i] {
                delay.ms.store(0, Ordering::Relaxed);
            }
            return Ok(());
        }
        if delays[i].is_none() {
            delays[i] = Some(self.start_delay_thread(i)?);
        }
        if let Some(delay) = &delays[i] {
            delay.ms.store(ms, Ordering::Relaxed);
        }
        let queue = nfqueue::QUEUE_NUM.to_string();
        let sources: Vec<String> = (0..self.hosts)
            .filter(|&j| j != i)
            .map(|j| self.ip(j).to_string())
            .collect();
        let rules: Vec<Vec<&str>> = sources
            .iter()
            .map(|from| {
                vec![
                    "-A",
                    DELAY,
                    "-s",
                    from,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &queue,
                    "--queue-bypass",
                ]
            })
            .collect();
        self.ns_restore(i, &rules)?;
        trace(format!(
            "chaos net {}: packets to host {i} delayed {ms} ms",
            self.subnet()
        ));
        Ok(())
    }

    /// Starts host i's delay thread, bound to its namespace's queue.
    fn start_delay_thread(&self, i: usize) -> Result<DelayThread> {
        let ns = self.netns(i);
        let held = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let (stop, thread_held) = (self.stop.clone(), held.clone());
        let handle = thread::Builder::new()
            .name(format!("chaos-delay-{i}"))
            .spawn(move || {
                let bound = enter_netns(&ns).and_then(|()| nfqueue::Queue::bind());
                let mut queue = match bound {
                    Ok(queue) => {
                        let _ = tx.send(Ok(()));
                        queue
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = queue.delay(&thread_held, &stop) {
                    trace(format!("chaos delay thread of {ns} ended: {e:#}"));
                }
            })?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("the delay thread of host {i} did not start"))?
            .with_context(|| format!("binding the netfilter queue of host {i}"))?;
        Ok(DelayThread {
            ms: held,
            thread: handle,
        })
    }

    /// Adds, for each `(from, to)`, a rule in `to`'s CHAOS chain dropping
    /// packets from `from` (with the `extra` matches).
    fn drop_links(&self, links: &[(usize, usize)], extra: &[&str]) -> Result<()> {
        let ips: Vec<String> = (0..self.hosts).map(|j| self.ip(j).to_string()).collect();
        for to in 0..self.hosts {
            let rules: Vec<Vec<&str>> = links
                .iter()
                .filter(|l| l.1 == to)
                .map(|&(from, _)| {
                    let mut rule = vec!["-A", CHAOS, "-s", &ips[from]];
                    rule.extend(extra);
                    rule.extend(["-j", "DROP"]);
                    rule
                })
                .collect();
            if !rules.is_empty() {
                self.ns_restore(to, &rules)?;
            }
        }
        let links: Vec<String> = links.iter().map(|(f, t)| format!("{f}->{t}")).collect();
        let what = if extra.is_empty() { "dropped" } else { "lossy" };
        trace(format!(
            "chaos net {}: {what} {}",
            self.subnet(),
            links.join(" ")
        ));
        Ok(())
    }

    /// Makes the bridge, the root rules and the hosts.
    fn build(&self) -> Result<()> {
        let (br, chain) = (self.bridge(), self.root_chain());
        let bridge_cidr = format!("{}/24", self.bridge_ip());
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &bridge_cidr, "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        let mut forward = vec!["-I".to_string()];
        forward.extend(bridge_rule(&br));
        iptables(&forward.iter().map(String::as_str).collect::<Vec<_>>())?;
        iptables(&["-N", &chain])?;
        iptables(&["-A", &chain, "-j", "ACCEPT"])?;
        iptables(&["-I", "INPUT", "-i", &br, "-j", &chain])?;
        let gateway = self.bridge_ip().to_string();
        for i in 0..self.hosts {
            let (ns, veth) = (self.netns(i), self.veth(i));
            let cidr = format!("{}/24", self.ip(i));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &br])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "route", "add", "default", "via", &gateway])?;
            let chains = format!(
                "*filter\n:{CHAOS} - [0:0]\n:{CLIENTS} - [0:0]\n:{DELAY} - [0:0]\n\
                 -A INPUT -j {CHAOS}\n-A INPUT -j {CLIENTS}\n-A INPUT -j {DELAY}\nCOMMIT\n"
            );
            self.restore(i, &chains)?;
        }
        Ok(())
    }

    /// `iptables -w ARGS` in host i's namespace.
    fn ns_iptables(&self, i: usize, args: &[&str]) -> Result<()> {
        let ns = self.netns(i);
        let mut all = vec!["netns", "exec", &ns, "iptables", "-w"];
        all.extend(args);
        run_checked("ip", &all).map_err(|e| anyhow!(e))
    }

    /// Adds `rules` (iptables arguments, `-A CHAIN ...`) to the filter table
    /// of host i's namespace in one `iptables-restore`.
    fn ns_restore(&self, i: usize, rules: &[Vec<&str>]) -> Result<()> {
        let mut input = String::from("*filter\n");
        for rule in rules {
            input.push_str(&rule.join(" "));
            input.push('\n');
        }
        input.push_str("COMMIT\n");
        self.restore(i, &input)
    }

    /// `iptables-restore --noflush` of `input` in host i's namespace.
    fn restore(&self, i: usize, input: &str) -> Result<()> {
        let ns = self.netns(i);
        let args = ["netns", "exec", &ns, "iptables-restore", "-w", "--noflush"];
        let out = run_with_input("ip", &args, input.as_bytes(), Duration::from_secs(30))
            .map_err(|e| anyhow!(e))?;
        if !out.status.success() {
            bail!(
                "iptables-restore in {ns} failed: {}\ninput:\n{input}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Panics unless host i exists (for the accessors).
    fn expect_host(&self, i: usize) {
        assert!(
            i < self.hosts,
            "host {i} of a chaos network of {} hosts",
            self.hosts
        );
    }

    /// An error unless host i exists.
    fn check_host(&self, i: usize) -> Result<()> {
        if i >= self.hosts {
            bail!("no host {i} in a chaos network of {} hosts", self.hosts);
        }
        Ok(())
    }

    /// An error unless `a` and `b` are two hosts.
    fn check_pair(&self, a: usize, b: usize) -> Result<()> {
        self.check_host(a)?;
        self.check_host(b)?;
        if a == b {
            bail!("a link joins two hosts, not host {a} and itself");
        }
        Ok(())
    }
}

impl Drop for ChaosNet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.join_flaps();
        let delays: Vec<_> = lock(&self.delays).drain(..).flatten().collect();
        for delay in delays {
            let _ = delay.thread.join();
        }
        remove_network(self.slot);
        if let Ok(_lock) = slot_lock() {
            let _ = fs::remove_file(slot_file(self.slot));
        }
        trace(format!("chaos net {} removed", self.subnet()));
    }
}

/// The thread delaying the packets that reach a host.
struct DelayThread {
    /// The delay (ms) of packets arriving now.
    ms: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

/// Locks a mutex, through poisoning (a panicking test thread).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Moves the calling thread into the network namespace `/run/netns/NAME`.
fn enter_netns(name: &str) -> Result<()> {
    let path = Path::new("/run/netns").join(name);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns(2) on a descriptor owned by `file`, alive during the call;
    // it changes only the calling thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("entering network namespace {name}"));
    }
    Ok(())
}

/// `ip ARGS`, an error with its output when it fails.
fn ip(args: &[&str]) -> Result<()> {
    run_checked("ip", args).map_err(|e| anyhow!(e))
}

/// `iptables -w ARGS` in the root namespace, an error when it fails.
fn iptables(args: &[&str]) -> Result<()> {
    let mut all = vec!["-w"];
    all.extend(args);
    run_checked("iptables", &all).map_err(|e| anyhow!(e))
}

fn host_ip(slot: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, slot, (i + 1) as u8)
}

fn bridge_name(slot: u8) -> String {
    format!("swcbr{slot}")
}

fn netns_name(slot: u8, i: usize) -> String {
    format!("swc{slot}-{i}")
}

fn veth_name(slot: u8, i: usize) -> String {
    format!("swcv{slot}-{i}")
}

fn root_chain(slot: u8) -> String {
    format!("SWARM-CHAOS-{slot}")
}

/// The root INPUT rule sending the bridge's traffic to the slot's chain.
fn input_jump(slot: u8) -> Vec<String> {
    ["INPUT", "-i", &bridge_name(slot), "-j", &root_chain(slot)]
        .map(String::from)
        .to_vec()
}

/// The lock file of chaos slot N: `chaos-N` beside the engines' slots.
fn slot_file(slot: u8) -> PathBuf {
    Path::new(NET_LOCK_DIR).join(format!("chaos-{slot}"))
}

/// The slot a name of this module (namespace, link, root chain) belongs to.
fn slot_of(name: &str) -> Option<u8> {
    let rest = ["swcbr", "swcv", "swc", "SWARM-CHAOS-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))?;
    rest.split('-').next()?.parse().ok()
}

/// The entries of a directory, by name.
fn dir_names(dir: &str) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Standard output of a command (empty if it could not run).
fn output(program: &str, args: &[&str]) -> String {
    timed(30, program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Every slot something of this module is left for on the machine: a
/// namespace, a link or a root chain.
fn slots_in_use_on_host() -> HashSet<u8> {
    let chains = output("iptables", &["-w", "-S"]);
    let chains = chains
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .map(String::from);
    dir_names("/run/netns")
        .into_iter()
        .chain(dir_names("/sys/class/net"))
        .chain(chains)
        .filter_map(|name| slot_of(&name))
        .collect()
}

/// Removes what slot N may have on the machine, best effort: processes in
/// its namespaces, root rules and chain, links, namespaces.
fn remove_network(slot: u8) {
    delete_rule(&input_jump(slot));
    let chain = root_chain(slot);
    run_quiet("iptables", &["-w", "-F", &chain]);
    run_quiet("iptables", &["-w", "-X", &chain]);
    let br = bridge_name(slot);
    delete_rule(&bridge_rule(&br));
    let ns_prefix = format!("swc{slot}-");
    let namespaces: Vec<String> = dir_names("/run/netns")
        .into_iter()
        .filter(|n| n.starts_with(&ns_prefix))
        .collect();
    for ns in &namespaces {
        let pids: Vec<u32> = output("ip", &["netns", "pids", ns])
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        kill_tree(&pids, None);
    }
    let veth_prefix = format!("swcv{slot}-");
    for link in dir_names("/sys/class/net") {
        if link.starts_with(&veth_prefix) {
            run_quiet("ip", &["link", "del", &link]);
        }
    }
    if Path::new("/sys/class/net").join(&br).exists() {
        run_quiet("ip", &["link", "del", &br]);
    }
    for ns in &namespaces {
        run_quiet("ip", &["netns", "del", ns]);
    }
}

/// Takes a free chaos slot: under the slot lock, reclaims the slots of dead
/// owners and leftovers no slot file claims, then records the first slot
/// (from a per-process start) that no live owner holds and whose
/// `198.18.N.0/24` no address or route of the machine overlaps.
fn acquire_slot() -> Result<u8> {
    let _lock = slot_lock().map_err(|e| anyhow!(e))?;
    let mut live = HashSet::new();
    for name in dir_names(NET_LOCK_DIR) {
        let Some(slot) = name
            .strip_prefix("chaos-")
            .and_then(|n| n.parse::<u8>().ok())
        else {
            continue;
        };
        let Ok(content) = fs::read_to_string(slot_file(slot)) else {
            continue;
        };
        if slot_is_stale(&content).is_some() {
            trace(format!("reclaiming chaos slot {slot} of a dead process"));
            remove_network(slot);
            let _ = fs::remove_file(slot_file(slot));
        } else {
            live.insert(slot);
        }
    }
    for slot in slots_in_use_on_host() {
        if !live.contains(&slot) {
            trace(format!("removing leftovers of chaos slot {slot}"));
            remove_network(slot);
        }
    }
    let used = networks_in_use();
    let seed = (std::process::id() as usize).wrapping_mul(7);
    for k in 0..254usize {
        let slot = ((seed + k) % 254 + 1) as u8;
        let ours = (u32::from(Ipv4Addr::new(198, 18, slot, 0)), 24);
        if live.contains(&slot) || used.iter().any(|&net| overlaps(net, ours)) {
            continue;
        }
        fs::write(slot_file(slot), slot_record("chaos network"))
            .with_context(|| format!("writing {}", slot_file(slot).display()))?;
        return Ok(slot);
    }
    bail!("no free 198.18.N.0/24 for a chaos network")
}

/// The IPv4 networks of the root namespace's addresses and routes (all
/// tables), but default routes.
fn networks_in_use() -> Vec<(u32, u8)> {
    let addrs = output("ip", &["-4", "-o", "addr", "show"]);
    let from_addrs = addrs.lines().filter_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        parse_net(words.next()?)
    });
    let routes = output("ip", &["-4", "route", "show", "table", "all"]);
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "throw",
        "unreachable",
        "prohibit",
        "blackhole",
        "nat",
        "anycast",
    ];
    let from_routes = routes.lines().filter_map(|l| {
        let mut words = l.split_whitespace().skip_while(|w| TYPES.contains(w));
        parse_net(words.next()?)
    });
    from_addrs
        .chain(from_routes)
        .filter(|&(_, len)| len > 0)
        .collect()
}

/// `A.B.C.D[/LEN]` as (address, prefix length); `default` is not parsed.
fn parse_net(s: &str) -> Option<(u32, u8)> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len))
}

/// Whether two networks share an address.
fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    a.0 & mask == b.0 & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_of_reads_every_name_of_this_module() {
        assert_eq!(slot_of("swcbr7"), Some(7));
        assert_eq!(slot_of("swcv12-3"), Some(12));
        assert_eq!(slot_of("swc254-0"), Some(254));
        assert_eq!(slot_of("SWARM-CHAOS-9"), Some(9));
        // The engines' slots and others' names are not ours.
        for name in [
            "swtbr7", "swtv7", "swtns7", "swcbr", "swcx1", "eth0", "DOCKER",
        ] {
            assert_eq!(slot_of(name), None, "{name}");
        }
    }

    #[test]
    fn networks_overlap_by_the_shorter_prefix() {
        let ours = parse_net("198.18.5.0/24").expect("net");
        assert!(overlaps(ours, parse_net("198.18.5.7").expect("net")));
        assert!(overlaps(ours, parse_net("198.18.0.0/15").expect("net")));
        assert!(overlaps(ours, parse_net("198.18.5.128/25").expect("net")));
        assert!(!overlaps(ours, parse_net("198.18.6.0/24").expect("net")));
        assert!(!overlaps(ours, parse_net("172.29.5.0/24").expect("net")));
        assert!(overlaps(ours, (0, 0)), "a /0 covers everything");
        assert_eq!(parse_net("default"), None);
        assert_eq!(parse_net("10.0.0.0/33"), None);
    }
}
