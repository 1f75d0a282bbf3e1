//! A netfilter queue (`iptables -j NFQUEUE`) read over netlink, with no C
//! library: [`Queue::bind`] binds queue 0 of the calling thread's network
//! namespace, [`Queue::delay`] holds every queued packet for the current
//! delay and then accepts it, in arrival order. The kernel side is
//! `nfnetlink_queue` (`CONFIG_NETFILTER_NETLINK_QUEUE`); messages and
//! attributes are those of `linux/netfilter/nfnetlink_queue.h`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The queue number the `NFQUEUE` rules name (each namespace has its own).
pub(super) const QUEUE_NUM: u16 = 0;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
/// Over the queue's length (or the socket's buffer), packets pass undelayed
/// instead of being dropped.
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// Attribute type bits (nested, byte order flags masked off).
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Netlink header (16 bytes) and nfgenmsg (4 bytes).
const HEADER: usize = 20;
/// How many packets the kernel holds for the queue at most.
const MAX_QUEUED: u32 = 16384;
/// The socket's receive buffer: room for many packet notices.
const RCVBUF: libc::c_int = 8 << 20;
/// How often the loop looks at its stop flag when nothing is queued.
const TICK: Duration = Duration::from_millis(50);

/// A bound netfilter queue.
pub(super) struct Queue {
    fd: OwnedFd,
    seq: u32,
}

impl Queue {
    /// Opens a netlink socket in the calling thread's network namespace and
    /// binds queue [`QUEUE_NUM`]: packet notices carry no payload (only the
    /// packet id), the queue holds up to [`MAX_QUEUED`] packets and fails
    /// open.
    pub(super) fn bind() -> Result<Queue> {
        // SAFETY: socket(2) takes no pointers; the result is checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("netlink socket");
        }
        // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a sockaddr_nl that outlives the call, with its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("binding netlink socket");
        }
        // SAFETY: the option value is a c_int that outlives the call, with its
        // size. Best effort: without it, the default buffer is used.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&RCVBUF as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let mut queue = Queue { fd, seq: 0 };
        // nfqnl_msg_config_cmd: command, pad, pf (big endian, unused by BIND).
        queue
            .configure(&[(NFQA_CFG_CMD, vec![NFQNL_CFG_CMD_BIND, 0, 0, 0])])
            .context("binding nfqueue 0 (is another process bound to it?)")?;
        // nfqnl_msg_config_params: copy range (big endian), copy mode.
        let mut params = 0u32.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_META);
        queue.configure(&[
            (NFQA_CFG_PARAMS, params),
            (NFQA_CFG_QUEUE_MAXLEN, MAX_QUEUED.to_be_bytes().to_vec()),
        ])?;
        queue.configure(&[
            (NFQA_CFG_MASK, NFQA_CFG_F_FAIL_OPEN.to_be_bytes().to_vec()),
            (NFQA_CFG_FLAGS, NFQA_CFG_F_FAIL_OPEN.to_be_bytes().to_vec()),
        ])?;
        Ok(queue)
    }

    /// Holds every packet the queue receives for `delay_ms` (read when the
    /// packet arrives), then accepts it; packets are accepted in arrival
    /// order. Returns once `stop` is set.
    pub(super) fn delay(&mut self, delay_ms: &AtomicU64, stop: &AtomicBool) -> Result<()> {
        let mut held: VecDeque<(u32, Instant)> = VecDeque::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut ids = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while let Some(&(id, due)) = held.front() {
                if due > now {
                    break;
                }
                self.accept(id)?;
                held.pop_front();
            }
            let wait = held
                .front()
                .map_or(TICK, |&(_, due)| due.saturating_duration_since(now))
                .min(TICK);
            if !self.readable(wait)? {
                continue;
            }
            loop {
                // SAFETY: `buf` is writable for its whole length during the call.
                let n = unsafe {
                    libc::recv(
                        self.fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::EINTR) => break,
                        // Notices were lost; their packets passed (fail open).
                        Some(libc::ENOBUFS) => continue,
                        _ => return Err(e).context("reading the nfqueue socket"),
                    }
                }
                let n = usize::try_from(n).unwrap_or(0);
                let arrived = Instant::now();
                let hold = Duration::from_millis(delay_ms.load(Ordering::Relaxed));
                ids.clear();
                parse(&buf[..n.min(buf.len())], &mut ids, &mut |_, _| {});
                held.extend(ids.iter().map(|&id| (id, arrived + hold)));
            }
        }
        Ok(())
    }

    /// Whether the socket has something to read within `wait`.
    fn readable(&self, wait: Duration) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up: a timeout of 0 would spin until the next packet is due.
        let ms = wait.as_micros().div_ceil(1000).min(1000) as libc::c_int;
        // SAFETY: one valid pollfd, outliving the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(e).context("polling the nfqueue socket");
        }
        Ok(rc > 0)
    }

    /// Lets packet `id` go on (NF_ACCEPT).
    fn accept(&mut self, id: u32) -> Result<()> {
        let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
        hdr.extend(id.to_be_bytes());
        let msg = self.message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, &[(NFQA_VERDICT_HDR, hdr)]);
        self.send(&msg)
    }

    /// Sends a config message with `attrs` and waits for the kernel's answer.
    fn configure(&mut self, attrs: &[(u16, Vec<u8>)]) -> Result<()> {
        let msg = self.message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, attrs);
        let seq = self.seq;
        self.send(&msg)?;
        let mut buf = vec![0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.readable(Duration::from_millis(100))? {
                continue;
            }
            // SAFETY: `buf` is writable for its whole length during the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EAGAIN) {
                    continue;
                }
                return Err(e).context("reading the nfqueue config answer");
            }
            let n = usize::try_from(n).unwrap_or(0);
            let mut answer = None;
            parse(&buf[..n.min(buf.len())], &mut Vec::new(), &mut |s, err| {
                if s == seq {
                    answer = Some(err);
                }
            });
            match answer {
                Some(0) => return Ok(()),
                Some(err) => {
                    return Err(io::Error::from_raw_os_error(-err)).context("nfqueue config")
                }
                None => {}
            }
        }
        bail!("no answer from the kernel to an nfqueue config message")
    }

    /// A netlink message of the queue subsystem for queue [`QUEUE_NUM`].
    fn message(&mut self, kind: u16, flags: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut b = Vec::with_capacity(64);
        b.extend(0u32.to_ne_bytes()); // length, set below
        b.extend(((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        b.extend(flags.to_ne_bytes());
        b.extend(self.seq.to_ne_bytes());
        b.extend(0u32.to_ne_bytes()); // port id: the kernel
        b.push(libc::AF_UNSPEC as u8); // nfgenmsg: family, version, queue
        b.push(0);
        b.extend(QUEUE_NUM.to_be_bytes());
        for (kind, payload) in attrs {
            b.extend(((4 + payload.len()) as u16).to_ne_bytes());
            b.extend(kind.to_ne_bytes());
            b.extend(payload);
            b.resize(b.len().next_multiple_of(4), 0);
        }
        let len = (b.len() as u32).to_ne_bytes();
        b[..4].copy_from_slice(&len);
        b
    }

    /// Sends one message whole.
    fn send(&self, msg: &[u8]) -> Result<()> {
        // SAFETY: `msg` is readable for its whole length during the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error()).context("writing the nfqueue socket");
        }
        Ok(())
    }
}

/// Walks the netlink messages in `buf`: the id of each queued packet goes
/// to `ids`, each error or acknowledgement (sequence, error: 0 or -errno)
/// to `on_error`. Malformed input ends the walk.
fn parse(buf: &[u8], ids: &mut Vec<u32>, on_error: &mut dyn FnMut(u32, i32)) {
    let mut off = 0;
    while let Some(head) = buf.get(off..off + 16) {
        let len = u32_at(head, 0).unwrap_or(0) as usize;
        let Some(msg) = buf.get(off..off + len).filter(|_| len >= 16) else {
            return;
        };
        let kind = u16_at(msg, 4).unwrap_or(0);
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            if let Some(id) = packet_id(msg.get(HEADER..).unwrap_or(&[])) {
                ids.push(id);
            }
        } else if kind == NLMSG_ERROR {
            // nlmsgerr: error, then the header of the message it answers.
            let err = u32_at(msg, 16).map(|e| e as i32);
            let seq = u32_at(msg, 20 + 8);
            if let (Some(err), Some(seq)) = (err, seq) {
                on_error(seq, err);
            }
        }
        off += len.next_multiple_of(4);
    }
}

/// The packet id of NFQA_PACKET_HDR among a packet notice's attributes.
fn packet_id(mut attrs: &[u8]) -> Option<u32> {
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0)? as usize;
        let kind = u16_at(attrs, 2)? & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        if kind == NFQA_PACKET_HDR {
            return attrs
                .get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        }
        attrs = attrs.get(len.next_multiple_of(4)..)?;
    }
    None
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet notice as the kernel writes it, with one other attribute first.
    fn notice(id: u32) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET).to_ne_bytes());
        b.extend([libc::AF_INET as u8, 0, 0, 0]);
        b.extend(6u16.to_ne_bytes()); // an attribute of 2 bytes, padded
        b.extend(9u16.to_ne_bytes());
        b.extend([1, 2, 0, 0]);
        b.extend(11u16.to_ne_bytes());
        b.extend(NFQA_PACKET_HDR.to_ne_bytes());
        b.extend(id.to_be_bytes());
        b.extend([0x08, 0x00, 1, 0]); // hw protocol, hook, padding
        let len = (b.len() as u32).to_ne_bytes();
        b[..4].copy_from_slice(&len);
        b
    }

    #[test]
    fn parse_reads_packet_ids_and_errors() {
        let mut buf = notice(7);
        buf.extend(notice(0x0102_0304));
        let mut ack = vec![0u8; 16 + 4 + 16];
        let len = ack.len() as u32;
        ack[..4].copy_from_slice(&len.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-16i32).to_ne_bytes());
        ack[28..32].copy_from_slice(&42u32.to_ne_bytes());
        buf.extend(ack);
        let (mut ids, mut errors) = (Vec::new(), Vec::new());
        parse(&buf, &mut ids, &mut |seq, err| errors.push((seq, err)));
        assert_eq!(ids, [7, 0x0102_0304]);
        assert_eq!(errors, [(42, -16)]);
    }

    #[test]
    fn parse_stops_at_truncated_input() {
        let buf = notice(7);
        let mut ids = Vec::new();
        parse(&buf[..buf.len() - 1], &mut ids, &mut |_, _| {});
        assert!(ids.is_empty());
        parse(&buf[..10], &mut ids, &mut |_, _| {});
        assert!(ids.is_empty());
        let mut zero = buf.clone();
        zero[..4].copy_from_slice(&0u32.to_ne_bytes());
        parse(&zero, &mut ids, &mut |_, _| {});
        assert!(ids.is_empty());
    }
}
