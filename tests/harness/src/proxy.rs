//! A TCP proxy for fault tests, e.g. "the registry goes down mid-pull": it
//! listens on `127.0.0.1:PORT` and forwards each connection to a target,
//! the target's answers throttled to a rate that all connections share
//! (what clients send goes through at once). [`Proxy::cut`] closes every
//! open connection and stops listening, so new connections are refused as
//! by a host that went down; [`Proxy::restore`] listens on the same port
//! again. Plain std threads: one accepts, two per connection copy. When
//! either side of a connection ends, both are closed. Dropping the
//! [`Proxy`] cuts it and ends its threads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::ports::try_free_port;

/// Bytes read from the target and written to a client at a time.
const CHUNK: usize = 16 * 1024;
/// How often the accepting thread looks for new connections and for its end.
const POLL: Duration = Duration::from_millis(10);
/// How long [`Proxy::restore`] retries binding its port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy (see the module's documentation).
pub struct Proxy {
    /// Where it listens, `127.0.0.1:PORT`.
    pub addr: String,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

/// What the proxy's threads share.
struct Shared {
    target: String,
    /// Bytes per second from the target to the clients, all connections
    /// together; 0 for no limit.
    rate: AtomicU64,
    /// When the next throttled chunk may be sent.
    next_send: Mutex<Instant>,
    links: Mutex<Links>,
    stop: AtomicBool,
}

/// The listener (none while cut) and the open connections.
#[derive(Default)]
struct Links {
    listener: Option<TcpListener>,
    open: Vec<Link>,
    next_id: u64,
}

/// One proxied connection: its sockets (to close them on a cut) and the
/// bytes the target sent through it.
struct Link {
    id: u64,
    sockets: Vec<TcpStream>,
    sent: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy to `target` (`host:port`) on a free loopback port,
    /// the target's answers limited to `bytes_per_sec` (0: no limit).
    pub fn start(target: &str, bytes_per_sec: u64) -> io::Result<Proxy> {
        let addr = format!("127.0.0.1:{}", try_free_port()?);
        Proxy::start_at(&addr, target, bytes_per_sec)
    }

    /// Like [`Proxy::start`], listening on `addr` (`ip:port`, port 0 for
    /// one the kernel picks; [`Proxy::addr`] then has the port), e.g. on
    /// a bridge that hosts in other network namespaces reach.
    pub fn start_at(addr: &str, target: &str, bytes_per_sec: u64) -> io::Result<Proxy> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            target: target.to_string(),
            rate: AtomicU64::new(bytes_per_sec),
            next_send: Mutex::new(Instant::now()),
            links: Mutex::new(Links::default()),
            stop: AtomicBool::new(false),
        });
        let addr = listener.local_addr()?.to_string();
        shared.links().listener = Some(listener);
        Ok(Proxy {
            addr,
            shared: shared.clone(),
            acceptor: Some(thread::spawn(move || accept_loop(shared))),
        })
    }

    /// Sets the limit of the target's answers, all connections together
    /// (bytes per second, 0: no limit).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.shared.rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Closes every open connection (both sides) and stops listening: the
    /// port refuses connections until [`Proxy::restore`].
    pub fn cut(&self) {
        let mut links = self.shared.links();
        links.listener = None;
        for link in links.open.drain(..) {
            for socket in &link.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Closes every open connection (both sides) and keeps listening: as
    /// a network that dropped the connections of the moment, not a host
    /// that went down.
    pub fn reset(&self) {
        let mut links = self.shared.links();
        for link in links.open.drain(..) {
            for socket in &link.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Listens on the proxy's port again (nothing to do if it listens);
    /// retries for a few seconds while the port is still taken.
    pub fn restore(&self) -> io::Result<()> {
        let mut links = self.shared.links();
        if links.listener.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(&self.addr) {
                Ok(listener) => break listener,
                Err(e) if started.elapsed() > REBIND_TIMEOUT => return Err(e),
                Err(_) => thread::sleep(POLL),
            }
        };
        listener.set_nonblocking(true)?;
        links.listener = Some(listener);
        Ok(())
    }

    /// For each open connection, the bytes the target sent through it so far.
    pub fn open_transfers(&self) -> Vec<u64> {
        self.shared
            .links()
            .open
            .iter()
            .map(|l| l.sent.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Shared {
    fn links(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the turn of `n` bytes under the rate limit.
    fn throttle(&self, n: usize) {
        let rate = self.rate.load(Ordering::SeqCst);
        if rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(n as f64 / rate as f64);
        let start = {
            let mut next = self.next_send.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + cost;
            start
        };
        thread::sleep(start.saturating_duration_since(Instant::now()));
    }

    /// Adds `socket` to the open connection `id`; false (and the socket
    /// closed) when a cut closed that connection meanwhile.
    fn attach(&self, id: u64, socket: &TcpStream) -> bool {
        let mut links = self.links();
        let link = links.open.iter_mut().find(|l| l.id == id);
        match (link, socket.try_clone()) {
            (Some(link), Ok(clone)) => {
                link.sockets.push(clone);
                true
            }
            _ => {
                let _ = socket.shutdown(Shutdown::Both);
                false
            }
        }
    }

    /// Forgets the connection `id`, closing its sockets.
    fn close(&self, id: u64) {
        let mut links = self.links();
        if let Some(i) = links.open.iter().position(|l| l.id == id) {
            for socket in &links.open.remove(i).sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Accepts connections while listening, until the proxy is dropped. A
/// connection is recorded in the same step as it is accepted, so a cut
/// never misses one.
fn accept_loop(shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let accepted = {
            let mut links = shared.links();
            let client = links
                .listener
                .as_ref()
                .and_then(|l| l.accept().ok())
                .map(|(client, _)| client);
            client.and_then(|client| {
                let clone = client.try_clone().ok()?;
                let sent = Arc::new(AtomicU64::new(0));
                let id = links.next_id;
                links.next_id += 1;
                links.open.push(Link {
                    id,
                    sockets: vec![clone],
                    sent: sent.clone(),
                });
                Some((id, client, sent))
            })
        };
        match accepted {
            Some((id, client, sent)) => {
                let shared = shared.clone();
                thread::spawn(move || serve(&shared, id, client, &sent));
            }
            None => thread::sleep(POLL),
        }
    }
}

/// Copies one connection both ways until either side ends, then closes it.
fn serve(shared: &Arc<Shared>, id: u64, client: TcpStream, sent: &AtomicU64) {
    let upstream = match TcpStream::connect(&shared.target) {
        Ok(upstream) if shared.attach(id, &upstream) => upstream,
        _ => return shared.close(id),
    };
    // Accepted sockets do not inherit the listener's non-blocking mode on
    // Linux; made sure of anyway.
    let _ = client.set_nonblocking(false);
    let requests = match (client.try_clone(), upstream.try_clone()) {
        (Ok(from), Ok(to)) => {
            let shared = shared.clone();
            thread::spawn(move || {
                copy(from, to, |_| {});
                shared.close(id);
            })
        }
        _ => return shared.close(id),
    };
    copy(upstream, client, |n| {
        shared.throttle(n);
        sent.fetch_add(n as u64, Ordering::SeqCst);
    });
    shared.close(id);
    let _ = requests.join();
}

/// Copies `from` to `to` chunk by chunk until either fails or `from` ends;
/// `before` runs before each chunk is written, with its size.
fn copy(mut from: TcpStream, mut to: TcpStream, mut before: impl FnMut(usize)) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        before(n);
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that sends `size` bytes of `7` to every connection.
    fn target(size: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let addr = listener.local_addr().expect("target address").to_string();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut conn = conn;
                    let _ = conn.write_all(&vec![7u8; size]);
                });
            }
        });
        addr
    }

    #[test]
    fn forwards_at_the_rate_given() {
        let proxy = Proxy::start(&target(300_000), 1_000_000).expect("proxy");
        let started = Instant::now();
        let mut got = Vec::new();
        TcpStream::connect(&proxy.addr)
            .expect("connect")
            .read_to_end(&mut got)
            .expect("read");
        assert_eq!(got.len(), 300_000);
        assert!(got.iter().all(|b| *b == 7));
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "300 kB at 1 MB/s took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_cut_closes_connections_and_refuses_until_restored() {
        let proxy = Proxy::start(&target(10_000_000), 200_000).expect("proxy");
        let mut conn = TcpStream::connect(&proxy.addr).expect("connect");
        let mut buf = [0u8; 1000];
        conn.read_exact(&mut buf).expect("first bytes");
        let sent = proxy.open_transfers();
        assert_eq!(sent.len(), 1, "{sent:?}");
        proxy.cut();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        assert!(
            rest.len() < 1_000_000,
            "read {} bytes after the cut",
            rest.len()
        );
        assert!(proxy.open_transfers().is_empty());
        assert!(
            TcpStream::connect(&proxy.addr).is_err(),
            "accepted while cut"
        );
        proxy.restore().expect("restore");
        proxy.set_rate(0);
        let mut got = Vec::new();
        TcpStream::connect(&proxy.addr)
            .expect("connect after restore")
            .read_to_end(&mut got)
            .expect("read after restore");
        assert_eq!(got.len(), 10_000_000);
    }

    #[test]
    fn listens_where_asked_and_carries_both_ways() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let echo = listener.local_addr().expect("echo address").to_string();
        thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        let _ = conn.write_all(&buf[..n].to_ascii_uppercase());
                    }
                });
            }
        });
        let proxy = Proxy::start_at("127.0.0.1:0", &echo, 0).expect("proxy");
        assert!(!proxy.addr.ends_with(":0"), "{}", proxy.addr);
        let mut conn = TcpStream::connect(&proxy.addr).expect("connect");
        for word in ["ping", "streamed"] {
            conn.write_all(word.as_bytes()).expect("write");
            let mut got = vec![0u8; word.len()];
            conn.read_exact(&mut got).expect("read");
            assert_eq!(got, word.to_ascii_uppercase().as_bytes());
        }
    }
}
