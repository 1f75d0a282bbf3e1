//! The chaos kit's network faults (`swarm_harness::chaos::net`): hosts in
//! network namespaces reach each other and the root namespace, partitions,
//! one-way drops, loss, cut clients, delay and flaps do what they say, heal
//! undoes them, and a dropped `ChaosNet` leaves nothing behind. Needs root.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use swarm_harness::chaos::net::ChaosNet;

/// The port every listener (hosts and root namespace) takes.
const PORT: u16 = 7070;
/// How long a probe waits for a connection or a datagram.
const PROBE: Duration = Duration::from_millis(500);

/// A TCP listener accepting (and closing) connections until stopped.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `addr`; with a host, inside its namespace.
    fn start(net: &ChaosNet, host: Option<usize>, addr: SocketAddr) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let serve = move || {
            let listener = TcpListener::bind(addr).expect("binding a listener");
            listener
                .set_nonblocking(true)
                .expect("nonblocking listener");
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("accept on {addr}: {e}"),
                }
            }
        };
        let thread = match host {
            Some(i) => {
                let handle = net.spawn_in(i, serve);
                thread::spawn(move || handle.join().expect("listener").expect("netns"))
            }
            None => thread::spawn(serve),
        };
        Listener {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a probe runs or goes: a host, or the root namespace (the bridge IP).
#[derive(Clone, Copy, Debug)]
enum At {
    Host(usize),
    Root,
}

use At::{Host, Root};

fn ip_of(net: &ChaosNet, at: At) -> Ipv4Addr {
    match at {
        Host(i) => net.ip(i),
        Root => net.bridge_ip(),
    }
}

/// Runs `f` in the namespace of `at`.
fn run_at<T: Send + 'static>(net: &ChaosNet, at: At, f: impl FnOnce() -> T + Send + 'static) -> T {
    match at {
        Host(i) => net
            .spawn_in(i, f)
            .join()
            .expect("probe thread")
            .expect("entering the namespace"),
        Root => f(),
    }
}

/// How long a TCP connection from `from` to `to` took to open, if it did
/// within `timeout`.
fn connect_time(net: &ChaosNet, from: At, to: At, timeout: Duration) -> Option<Duration> {
    let addr = SocketAddr::from((ip_of(net, to), PORT));
    run_at(net, from, move || {
        let start = Instant::now();
        TcpStream::connect_timeout(&addr, timeout)
            .ok()
            .map(|_| start.elapsed())
    })
}

fn tcp(net: &ChaosNet, from: At, to: At) -> bool {
    connect_time(net, from, to, PROBE).is_some()
}

/// Whether a datagram host `from` sends to host `to` arrives.
fn udp(net: &ChaosNet, from: usize, to: usize) -> bool {
    let (from_ip, to_ip) = (net.ip(from), net.ip(to));
    let receiver = UdpSocketIn::bind(net, to, to_ip);
    let dest = receiver.addr;
    run_at(net, Host(from), move || {
        let socket = UdpSocket::bind((from_ip, 0)).expect("binding a sender");
        socket.send_to(b"probe", dest).expect("sending a datagram");
    });
    receiver.received()
}

/// A UDP socket bound inside a host's namespace, waiting for one datagram.
struct UdpSocketIn {
    addr: SocketAddr,
    thread: JoinHandle<anyhow::Result<bool>>,
}

impl UdpSocketIn {
    fn bind(net: &ChaosNet, host: usize, ip: Ipv4Addr) -> UdpSocketIn {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = net.spawn_in(host, move || {
            let socket = UdpSocket::bind((ip, 0)).expect("binding a receiver");
            socket.set_read_timeout(Some(PROBE)).expect("read timeout");
            tx.send(socket.local_addr().expect("local addr"))
                .expect("sending the address");
            let mut buf = [0u8; 16];
            matches!(socket.recv_from(&mut buf), Ok((5, _)))
        });
        let addr = rx.recv().expect("the receiver's address");
        UdpSocketIn { addr, thread }
    }

    fn received(self) -> bool {
        self.thread
            .join()
            .expect("receiver thread")
            .expect("entering the namespace")
    }
}

/// Asserts which of every host pair (TCP, both directions) and every
/// host/root pair connect: `cut(a, b)` says whether a to b must fail.
fn assert_reach(net: &ChaosNet, what: &str, cut: impl Fn(At, At) -> bool) {
    let mut ends: Vec<At> = (0..net.hosts()).map(Host).collect();
    ends.push(Root);
    let mut wrong = Vec::new();
    for &from in &ends {
        for &to in &ends {
            if matches!((from, to), (Root, Root))
                || matches!((from, to), (Host(a), Host(b)) if a == b)
            {
                continue;
            }
            let expected = !cut(from, to);
            if tcp(net, from, to) != expected {
                wrong.push(format!("{from:?}->{to:?} expected reachable={expected}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{what}: {wrong:?}");
}

/// Everything reaches everything.
fn all_reach(_: At, _: At) -> bool {
    false
}

/// Whether the host pair (a, b) is the link {x, y}, in any direction.
fn is_link(from: At, to: At, x: usize, y: usize) -> bool {
    matches!((from, to), (Host(a), Host(b)) if (a, b) == (x, y) || (a, b) == (y, x))
}

/// The chaos kit's names the machine has now (namespaces, links, root
/// iptables rules and chains), word by word: `swcbr1` must not match
/// `swcbr12`.
fn machine_names() -> HashSet<String> {
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .expect("listing the machine's network");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    [
        run("ip", &["netns", "list"]),
        run("ip", &["-o", "link", "show"]),
        run("iptables", &["-w", "-S"]),
    ]
    .join("\n")
    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .filter(|w| w.starts_with("swc") || w.starts_with("SWARM-CHAOS-"))
    .map(String::from)
    .collect()
}

#[test]
fn faults_between_three_hosts() {
    swarm_harness::watchdog();
    let started = Instant::now();
    let net = ChaosNet::new(3).expect("making a chaos network");
    let names = [
        net.netns(0),
        net.netns(2),
        net.veth(0),
        net.veth(2),
        net.bridge(),
        net.root_chain(),
    ];
    let state = machine_names();
    for name in &names {
        assert!(state.contains(name), "{name} missing: {state:?}");
    }
    let mut listeners: Vec<Listener> = (0..3)
        .map(|i| Listener::start(&net, Some(i), SocketAddr::from((net.ip(i), PORT))))
        .collect();
    listeners.push(Listener::start(
        &net,
        None,
        SocketAddr::from((net.bridge_ip(), PORT)),
    ));
    // The listeners bind in their threads: wait until every host answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..3).any(|i| !tcp(&net, Root, Host(i))) || !tcp(&net, Host(0), Root) {
        assert!(Instant::now() < deadline, "listeners not reachable");
        thread::sleep(Duration::from_millis(50));
    }
    assert_reach(&net, "at start", all_reach);
    assert!(udp(&net, 0, 1) && udp(&net, 1, 0), "datagrams at start");

    // {0} | {1, 2}: 0 is cut from 1 and 2; the root namespace reaches all.
    net.partition(&[&[0], &[1, 2]]).expect("partition");
    assert_reach(&net, "partition {0},{1,2}", |from, to| {
        matches!((from, to), (Host(0), Host(_)) | (Host(_), Host(0)))
    });
    net.heal().expect("heal");
    assert_reach(&net, "healed after the partition", all_reach);

    // One way 0 -> 1: datagrams 0 -> 1 are lost, 1 -> 0 arrive; TCP needs
    // both ways, so it fails in both directions.
    net.drop_one_way(0, 1).expect("drop one way");
    assert!(!udp(&net, 0, 1), "a datagram 0 -> 1 arrived");
    assert!(udp(&net, 1, 0), "a datagram 1 -> 0 was lost");
    assert!(udp(&net, 0, 2) && udp(&net, 2, 1), "other links");
    assert_reach(&net, "one way 0 -> 1", |from, to| is_link(from, to, 0, 1));
    net.heal().expect("heal");
    assert!(udp(&net, 0, 1), "datagrams 0 -> 1 after heal");

    // Loss with probability 1 between 0 and 1: nothing passes either way.
    net.loss(0, 1, 1.0).expect("loss");
    assert!(
        !udp(&net, 0, 1) && !udp(&net, 1, 0),
        "datagrams through loss 1.0"
    );
    assert_reach(&net, "loss 1.0 on 0-1", |from, to| is_link(from, to, 0, 1));
    assert!(net.loss(0, 1, 1.5).is_err(), "a probability above 1");
    net.heal().expect("heal");

    // Isolated host 2 reaches no host, but the root namespace still.
    net.isolate(2).expect("isolate");
    assert_reach(&net, "isolated 2", |from, to| {
        matches!((from, to), (Host(2), Host(_)) | (Host(_), Host(2)))
    });
    net.heal().expect("heal");

    // Host 1's clients cut: hosts still reach it, the root namespace does
    // not (either way); heal leaves that alone, restore_clients ends it.
    net.cut_clients(1).expect("cut clients");
    let clients_cut = |from: At, to: At| matches!((from, to), (Root, Host(1)) | (Host(1), Root));
    assert_reach(&net, "clients of 1 cut", clients_cut);
    net.heal().expect("heal");
    assert!(!tcp(&net, Root, Host(1)), "heal restored cut clients");
    net.restore_clients(1).expect("restore clients");
    assert_reach(&net, "clients of 1 restored", all_reach);

    // Delay: packets reaching host 1 from other hosts wait 500 ms; the
    // root namespace's do not.
    net.delay(1, 500).expect("delay");
    let delayed = connect_time(&net, Host(0), Host(1), Duration::from_secs(3))
        .expect("connecting through the delay");
    assert!(
        delayed >= Duration::from_millis(490) && delayed < Duration::from_secs(2),
        "connect 0 -> 1 through a 500 ms delay took {delayed:?}"
    );
    let direct = connect_time(&net, Root, Host(1), PROBE).expect("root to 1");
    assert!(
        direct < Duration::from_millis(400),
        "root -> 1 took {direct:?}"
    );
    let reverse = connect_time(&net, Host(1), Host(0), Duration::from_secs(3)).expect("1 to 0");
    assert!(
        reverse >= Duration::from_millis(490),
        "1 -> 0 (the SYN-ACK reaches 1 late) took {reverse:?}"
    );
    net.heal().expect("heal");
    let healed = connect_time(&net, Host(0), Host(1), PROBE).expect("0 to 1 healed");
    assert!(
        healed < Duration::from_millis(400),
        "0 -> 1 took {healed:?}"
    );

    // A flapping link 0-2 is seen both cut and up, and ends up.
    let period = Duration::from_millis(400);
    let until = Instant::now() + Duration::from_millis(2400);
    net.flap(0, 2, period, until).expect("flap");
    let (mut cut_seen, mut up_seen) = (false, false);
    while Instant::now() < until - period {
        if udp(&net, 0, 2) {
            up_seen = true;
        } else {
            cut_seen = true;
        }
    }
    assert!(
        cut_seen && up_seen,
        "flap: cut seen {cut_seen}, up seen {up_seen}"
    );
    net.join_flaps();
    assert!(udp(&net, 0, 2) && udp(&net, 2, 0), "the flap ended cut");
    assert_reach(&net, "after the flap", all_reach);

    listeners.clear();
    drop(net);
    let state = machine_names();
    for name in &names {
        assert!(!state.contains(name), "{name} left behind: {state:?}");
    }
    eprintln!("chaos net test took {:?}", started.elapsed());
}

#[test]
fn two_networks_at_once_do_not_collide() {
    swarm_harness::watchdog();
    let a = ChaosNet::new(2).expect("first chaos network");
    let b = ChaosNet::new(1).expect("second chaos network");
    assert_ne!(a.subnet(), b.subnet());
    assert_ne!(a.netns(0), b.netns(0));
    assert!(ChaosNet::new(0).is_err() && ChaosNet::new(254).is_err());
    assert!(a.partition(&[&[0], &[0, 1]]).is_err(), "host in two groups");
    assert!(a.drop_one_way(0, 2).is_err() && a.isolate(5).is_err());
    // A process started in a host is killed with its network.
    let mut child = a
        .command(1, "sleep")
        .arg("60")
        .spawn()
        .expect("starting a process in a host");
    let out = a
        .command(1, "ip")
        .args(["-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .expect("ip addr in a host");
    let addrs = String::from_utf8_lossy(&out.stdout);
    assert!(
        addrs.contains(&format!(" {}/24 ", a.ip(1))),
        "host 1's eth0: {addrs}"
    );
    let names = [a.netns(0), b.netns(0), a.bridge(), b.bridge()];
    drop(a);
    let status = child.try_wait().expect("waiting for the process");
    assert!(
        status.is_some_and(|s| !s.success()),
        "the process in a dropped host still runs: {status:?}"
    );
    drop(b);
    let state = machine_names();
    for name in &names {
        assert!(!state.contains(name), "{name} left behind");
    }
}

/// Set in the child process of [`reclaims_the_network_of_a_killed_owner`].
const CHILD_ENV: &str = "SWARM_CHAOS_NET_CHILD";

#[test]
fn reclaims_the_network_of_a_killed_owner() {
    swarm_harness::watchdog();
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: make a network, say its names, wait to be killed.
        let net = ChaosNet::new(2).expect("the child's chaos network");
        let mut sleeper = net.command(0, "sleep").arg("60").spawn().expect("sleep");
        println!(
            "CHAOS-NAMES {} {} {} {}",
            net.netns(0),
            net.veth(1),
            net.bridge(),
            net.root_chain()
        );
        thread::sleep(Duration::from_secs(60));
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        panic!("the child was not killed");
    }
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "reclaims_the_network_of_a_killed_owner",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut names = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("reading the child");
        if let Some(rest) = line.strip_prefix("CHAOS-NAMES ") {
            names = rest.split_whitespace().map(String::from).collect();
            break;
        }
    }
    child.kill().expect("killing the child");
    let _ = child.wait();
    assert_eq!(names.len(), 4, "the child's names");
    let state = machine_names();
    for name in &names {
        assert!(state.contains(name), "{name} missing before the reclaim");
    }
    // The next network of any process reclaims what the dead owner left.
    let net = ChaosNet::new(1).expect("a chaos network after the kill");
    let state = machine_names();
    for name in &names {
        assert!(!state.contains(name), "{name} not reclaimed");
    }
    drop(net);
}
