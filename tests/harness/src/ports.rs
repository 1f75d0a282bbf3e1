//! Free TCP ports, the one place tests, benches and `swarm-bench` get them
//! from: [`free_port`] for one port (manager APIs, Raft, engines), and
//! [`free_port_range`] for a run of consecutive ports (a hollow fleet, node
//! `i` on `base + i`). A port is given out once per process: every port
//! returned is recorded, and neither function returns a recorded port again.

use std::collections::HashSet;
use std::io;
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The ports this process was given.
fn given() -> MutexGuard<'static, HashSet<u16>> {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    GIVEN
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A free TCP port on 127.0.0.1 that the kernel picks (from its ephemeral
/// range), never the same one twice in a process.
pub fn try_free_port() -> io::Result<u16> {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if given().insert(port) {
            return Ok(port);
        }
    }
}

/// [`try_free_port`] for tests: panics if no port can be bound.
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|e| panic!("binding 127.0.0.1:0 to find a free port: {e}"))
}

/// The first port of `n` consecutive free TCP ports on `host`, below the
/// kernel's ephemeral range (so outgoing connections do not take them
/// before the listeners are up): the first run found walking `[10000,
/// ephemeral start)` once around from a pseudo-random port, skipping ports
/// this process was already given.
pub fn free_port_range(host: &str, n: usize) -> io::Result<u16> {
    let n = n.max(1) as u32;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral.min(65_535));
    if high < low + n {
        return Err(io::Error::other(format!(
            "no room for {n} consecutive ports below {high}"
        )));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ std::process::id())
        .unwrap_or(0);
    // Walk the ports once around from a random start, counting free ones
    // in a row; a run broken by the wrap-around starts again.
    let start = seed % (high - low);
    let mut run = 0u32;
    for step in 0..(high - low) {
        let port = low + (start + step) % (high - low);
        if port == low {
            run = 0;
        }
        let taken = given().contains(&(port as u16));
        if !taken && TcpListener::bind((host, port as u16)).is_ok() {
            run += 1;
            if run == n {
                let first = port + 1 - n;
                given().extend((first..=port).map(|p| p as u16));
                return Ok(first as u16);
            }
        } else {
            run = 0;
        }
    }
    Err(io::Error::other(format!(
        "no {n} consecutive free ports on {host} below {high}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests below probe ports by binding them for a moment; run in
    /// parallel, one's probe could take a port of the other's range just
    /// as it checks the range.
    static PROBING: Mutex<()> = Mutex::new(());

    fn probing() -> MutexGuard<'static, ()> {
        PROBING.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn port_range_is_free() {
        let _one_at_a_time = probing();
        let base = free_port_range("127.0.0.1", 1001).expect("a free range");
        assert!(base >= 10_000);
        for p in base..base + 1001 {
            assert!(TcpListener::bind(("127.0.0.1", p)).is_ok(), "port {p}");
        }
    }

    #[test]
    fn a_port_is_given_once() {
        let _one_at_a_time = probing();
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        let base = free_port_range("127.0.0.1", 10).expect("a free range");
        assert!(!(base..base + 10).contains(&a) && !(base..base + 10).contains(&b));
        assert!(given().contains(&base) && given().contains(&(base + 9)));
    }
}
